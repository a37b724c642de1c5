"""Steering the outbound queue (issue 6): `postern mailq` in Postfix's layout (postqueue -p), and `postern queue
flush|delete|hold|release ID...|ALL` (postqueue -f/-i, postsuper -d/-h/-H) moving queue files between
queue_directory/{deferred,active,hold}.

Messages are queued by a mynetworks client relaying to other.example; nothing can leave: dns_servers is a closed
loopback port, so a queue manager (when the binary has one) only defers them. Most tests stop the server after
queueing so that the files stay where the commands put them; the flush of a running server needs the queue
manager (without one SIGUSR1 would end the server) and is skipped until the binary has it.
"""
import os
import re
import smtplib
import subprocess
import tempfile
import time

import pytest

from conftest import BIN, free_port

STATES = ("incoming", "active", "deferred", "hold", "corrupt")


def _has_queue_manager():
    with tempfile.TemporaryDirectory() as d:
        return subprocess.run([BIN, "-c", d, "postconf", "-d", "queue_run_delay"], capture_output=True).returncode == 0


def files(p, state):
    return sorted(os.listdir(os.path.join(p.root, "queue", state)))


def path(p, state, qid):
    return os.path.join(p.root, "queue", state, qid)


def submit(p, recipients, sender="alice@example.test", body="hello"):
    with smtplib.SMTP("127.0.0.1", p.port) as s:
        s.ehlo("client.example")
        s.mail(sender)
        for r in recipients:
            assert s.rcpt(r)[0] == 250, r
        code, msg = s.data(f"Subject: queue test\r\n\r\n{body}\r\n".encode())
    assert code == 250
    return msg.decode().rsplit(" ", 1)[1]


@pytest.fixture
def queued(make_postern):
    """A stopped server with two queued messages: (postern, [older id, newer id])."""
    p = make_postern(f"dns_servers = 127.0.0.1:{free_port()}\n")
    ids = [submit(p, ["friend@other.example"]), submit(p, ["a@other.example", "b@third.example"], sender="")]
    p.stop()
    for qid in ids:  # back in deferred/ whatever a queue manager did meanwhile
        if os.path.exists(path(p, "active", qid)):
            os.rename(path(p, "active", qid), path(p, "deferred", qid))
    assert files(p, "deferred") == sorted(ids)
    return p, ids


def add_reason(p, qid, recipient, reason):
    """Writes a W record (the last deferral reason) after the recipient's record, as the queue manager does."""
    with open(path(p, "deferred", qid), "rb") as f:
        data = f.read()
    rec = b"R%d:%s\n" % (len(recipient), recipient.encode())
    assert rec in data
    data = data.replace(rec, rec + b"W%d:%s\n" % (len(reason), reason.encode()), 1)
    with open(path(p, "deferred", qid), "wb") as f:
        f.write(data)


def size_of(p, state, qid):
    with open(path(p, state, qid), "rb") as f:
        return int(re.search(rb"\nZ\d+:(\d+)\n", f.read()).group(1))


def test_mailq_is_postfix_layout(queued):
    p, (first, second) = queued
    long_reason = "connect to mx.third.example[192.0.2.1]:25: Connection timed out while sending the greeting x"
    add_reason(p, second, "a@other.example", "Host or domain name not found")
    add_reason(p, second, "b@third.example", long_reason)
    out = p.run("mailq").stdout.split("\n")
    date = r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d "
    assert out[0] == "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"
    # Postfix's "%-11s %7ld %20.20s %s": sender and recipients begin in column 41.
    assert re.fullmatch(rf"{first} {size_of(p, 'deferred', first):>7} {date} alice@example\.test", out[1]), out
    assert out[2] == " " * 41 + "friend@other.example"
    assert out[3] == ""
    assert re.fullmatch(rf"{second} {size_of(p, 'deferred', second):>7} {date} MAILER-DAEMON", out[4]), out
    # The reason right-aligned to column 78, on the line before each recipient whose reason differs.
    assert out[5] == " " * (76 - 29) + "(Host or domain name not found)"
    assert out[6] == " " * 41 + "a@other.example"
    assert out[7] == f"({long_reason})"
    assert out[8] == " " * 41 + "b@third.example"
    total = size_of(p, "deferred", first) + size_of(p, "deferred", second)
    assert out[9:] == ["", f"-- {total // 1024} Kbytes in 2 Requests.", ""]


def test_hold_and_release(queued):
    p, (first, second) = queued
    r = p.run("queue", "hold", first)
    assert r.stdout == "postern: Placed on hold: 1 message\n"
    assert files(p, "hold") == [first] and files(p, "deferred") == [second]
    assert os.stat(path(p, "hold", first)).st_mode & 0o777 == 0o600
    out = p.run("mailq").stdout
    assert re.search(rf"^{first}! ", out, re.M) and re.search(rf"^{second}  ", out, re.M), out
    # Holding again finds nothing to hold: a clear message and a failure status.
    r = p.run("queue", "hold", first, check=False)
    assert r.returncode == 1 and f"{first}: no such message in the queue" in r.stderr
    # Released messages are due at once: the deferred file's mtime is now.
    os.utime(path(p, "hold", first), (time.time() + 3600, time.time() + 3600))
    before = time.time()
    assert p.run("queue", "release", first).stdout == "postern: Released from hold: 1 message\n"
    assert files(p, "hold") == [] and files(p, "deferred") == sorted([first, second])
    assert before - 1 <= os.stat(path(p, "deferred", first)).st_mtime <= time.time() + 1
    r = p.run("queue", "release", second, check=False)
    assert r.returncode == 1 and f"{second}: no such message in hold/" in r.stderr
    # ALL, and an active message is held too (postsuper -h takes it from the queue manager).
    os.rename(path(p, "deferred", second), path(p, "active", second))
    assert p.run("mailq").stdout.count(f"{second}*") == 1
    assert p.run("queue", "hold", "ALL").stdout == "postern: Placed on hold: 2 messages\n"
    assert files(p, "hold") == sorted([first, second]) and files(p, "active") == files(p, "deferred") == []
    assert p.run("queue", "release", "ALL").stdout == "postern: Released from hold: 2 messages\n"
    assert files(p, "deferred") == sorted([first, second])


def test_a_failed_move_is_reported_as_itself(queued):
    p, (first, second) = queued
    os.rmdir(os.path.join(p.root, "queue", "hold"))
    r = p.run("queue", "hold", first, check=False)
    assert r.returncode == 74, r
    assert f"rename {path(p, 'deferred', first)} into hold/: No such file or directory" in r.stderr, r.stderr
    assert "no such message" not in r.stderr and r.stdout == "postern: Placed on hold: 0 messages\n"
    assert files(p, "deferred") == sorted([first, second])


def test_delete(queued):
    p, (first, second) = queued
    os.rename(path(p, "deferred", second), path(p, "hold", second))
    assert p.run("queue", "delete", first).stdout == "postern: Deleted: 1 message\n"
    assert files(p, "deferred") == [] and files(p, "hold") == [second]
    r = p.run("queue", "delete", first, check=False)
    assert r.returncode == 1 and f"{first}: no such message" in r.stderr and "Deleted: 0 messages" in r.stdout
    p.start()
    third = submit(p, ["x@other.example"])
    p.stop()
    if os.path.exists(path(p, "active", third)):
        os.rename(path(p, "active", third), path(p, "deferred", third))
    # A transaction in flight (incoming/) is not the queue's: ALL leaves it alone.
    with open(path(p, "incoming", "ABCDEF"), "w") as f:
        f.write("POSTERN-QUEUE 1\n")
    assert p.run("queue", "delete", "ALL").stdout == "postern: Deleted: 2 messages\n"
    assert all(files(p, s) == [] for s in ("active", "deferred", "hold"))
    assert files(p, "incoming") == ["ABCDEF"]
    assert p.run("mailq").stdout == "Mail queue is empty\n"
    assert p.run("queue", "delete", "ALL").stdout == "postern: Deleted: 0 messages\n"


def test_bad_ids_and_usage_are_refused(queued):
    p, ids = queued
    outside = os.path.join(p.root, "victim")
    with open(outside, "w") as f:
        f.write("x")
    for bad in ("../victim", "../../victim", "/etc/passwd", "abcdef", "12AB/CD", ".", "", "ALLX", "1234 5"):
        for verb in ("delete", "hold", "release", "flush"):
            r = p.run("queue", verb, bad, check=False)
            assert r.returncode == 64, (verb, bad)
            assert f'invalid queue id "{bad}"' in r.stderr and r.stdout == "", (verb, bad, r.stderr)
    # A bad id among good ones: nothing is done at all.
    r = p.run("queue", "delete", ids[0], "../victim", check=False)
    assert r.returncode == 64 and files(p, "deferred") == sorted(ids) and os.path.exists(outside)
    for args in (["queue"], ["queue", "frob", "ALL"], ["queue", "delete"], ["queue", "hold"], ["queue", "release"]):
        r = p.run(*args, check=False)
        assert r.returncode == 64 and r.stderr.startswith("usage: postern -c DIR queue flush"), args
    assert files(p, "deferred") == sorted(ids)


def test_flush_without_a_server_makes_deferred_mail_due(queued):
    p, (first, second) = queued
    later = time.time() + 3600
    for qid in (first, second):
        os.utime(path(p, "deferred", qid), (later, later))
    r = p.run("queue", "flush", second)
    assert r.returncode == 0 and "Flushed: 1 message" in r.stdout and "not running" in r.stdout
    assert os.stat(path(p, "deferred", second)).st_mtime <= time.time()
    assert os.stat(path(p, "deferred", first)).st_mtime == pytest.approx(later, abs=1)
    assert "Flushed: 2 messages" in p.run("queue", "flush").stdout
    assert os.stat(path(p, "deferred", first)).st_mtime <= time.time()
    assert files(p, "deferred") == sorted([first, second])


@pytest.mark.skipif(not _has_queue_manager(), reason="this postern has no queue manager yet (issue 6)")
def test_flush_wakes_the_running_queue_manager(queued):
    p, (first, second) = queued
    later = time.time() + 3600
    for qid in (first, second):
        os.utime(path(p, "deferred", qid), (later, later))
    p.start()
    time.sleep(1)
    attempts = p.log().count(f"{first}: to=<friend@other.example>")
    r = p.run("queue", "flush", first)
    assert "not running" not in r.stdout and r.stderr == ""
    deadline = time.time() + 30
    while p.log().count(f"{first}: to=<friend@other.example>") == attempts and time.time() < deadline:
        time.sleep(0.1)
    assert p.log().count(f"{first}: to=<friend@other.example>") > attempts, p.log()[-2000:]
    assert p.proc.poll() is None


def test_help_names_the_commands(make_postern):
    assert re.search(r"^  queue +steer the outbound queue", subprocess.run([BIN, "--help"], capture_output=True,
                                                                           text=True).stdout, re.M)
    out = subprocess.run([BIN, "queue", "--help"], capture_output=True, text=True).stdout
    for verb in ("flush", "delete", "hold", "release"):
        assert f"postern -c DIR queue {verb}" in out, out
