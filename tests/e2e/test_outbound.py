"""Outbound delivery end to end (issue 6): the queue manager and SMTP delivery to remote MX hosts (RFC 5321 5.1 MX
selection, RFC 7505 null MX, RFC 3207 STARTTLS, RFC 4954 AUTH to a relayhost, RFC 6531 SMTPUTF8, RFC 3464 DSN).

alice@example.test submits with SMTP AUTH; the recipients' domains are served by a loopback DNS server
(tests/e2e/dnsserver.py) whose MX hosts are scriptable aiosmtpd sinks (tests/e2e/remote_mx.py) on 127.0.0.x:25.
Port 25 needs root: those tests are skipped otherwise; the relayhost test uses a high port and runs as anyone.
Retries are quick here: minimal_backoff_time 1s, maximal_backoff_time 2s, queue_run_delay 1s.
"""
import os
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
import time

import pytest

from conftest import BIN, DOMAIN, PASSWORD, free_port
from test_dkim import dnsfunc, keygen

ALICE = f"alice@{DOMAIN}"
ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="the remote MX sinks listen on 127.0.0.x:25, which needs root")


def _has_queue_manager():
    """Whether the binary under test has the queue manager (issue 6): postconf knows queue_run_delay."""
    with tempfile.TemporaryDirectory() as d:
        return subprocess.run([BIN, "-c", d, "postconf", "-d", "queue_run_delay"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not _has_queue_manager(), reason="this postern has no queue manager yet (issue 6)")
RETRY = "minimal_backoff_time = 1s\nmaximal_backoff_time = 2s\nqueue_run_delay = 1s\n"
# One attempt, then a long wait: for tests that look at a deferred message (main.cf: the last setting wins).
SLOW = "minimal_backoff_time = 300s\nmaximal_backoff_time = 4000s\n"

# Each test uses its own MX addresses, so that a sink left in TIME_WAIT or a slow stop never meets the next test.
RECORDS = {
    "remote.test": {"MX": [(10, "mx1.remote.test")]},
    "mx1.remote.test": {"A": ["127.0.0.11"]},
    "pref.test": {"MX": [(20, "mx-b.pref.test"), (10, "mx-a.pref.test")]},
    "mx-a.pref.test": {"A": ["127.0.0.21"]},
    "mx-b.pref.test": {"A": ["127.0.0.22"]},
    "a-only.test": {"A": ["127.0.0.31"]},
    "null.test": {"MX": [(0, ".")]},
    "retry.test": {"MX": [(10, "mx.retry.test")]},
    "mx.retry.test": {"A": ["127.0.0.41"]},
    "reject.test": {"MX": [(10, "mx.reject.test")]},
    "mx.reject.test": {"A": ["127.0.0.51"]},
    "ascii.test": {"MX": [(10, "mx.ascii.test")]},
    "mx.ascii.test": {"A": ["127.0.0.61"]},
    "tls.test": {"MX": [(10, "mx.tls.test")]},
    "mx.tls.test": {"A": ["127.0.0.71"]},
    "plain.test": {"MX": [(10, "mx.plain.test")]},
    "mx.plain.test": {"A": ["127.0.0.72"]},
    "silent.test": {"MX": [(10, "mx.silent.test")]},
    "mx.silent.test": {"A": ["127.0.0.81"]},
    "crash.test": {"MX": [(10, "mx.crash.test")]},
    "mx.crash.test": {"A": ["127.0.0.91"]},
    "down.test": {"MX": [(10, "mx.down.test")]},
    "pf.test": {"MX": [(10, "mx.pf.test")]},
    "mx.pf.test": {"A": ["127.0.0.111"]},
    "mx.down.test": {"A": ["127.0.0.101"]},
}


@pytest.fixture
def dns(make_dns):
    return make_dns(RECORDS)


def start(make_postern, dns, extra="", run=True):
    return make_postern(f"dns_servers = 127.0.0.1:{dns.port}\nsmtpd_sasl_auth_enable = yes\n"
                        f"disable_plaintext_auth = no\n{RETRY}{extra}", start=run)


def submit(p, rcpts, body=b"hello\r\n", subject="outbound", message_id=None, mail_options=()):
    """Sends one message as alice (SMTP AUTH) to `rcpts`; returns its Message-ID."""
    message_id = message_id or f"<{time.time_ns()}.{os.getpid()}@{DOMAIN}>"
    msg = (f"From: {ALICE}\r\nTo: {', '.join(rcpts)}\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\n\r\n"
           ).encode() + body
    with smtplib.SMTP("127.0.0.1", p.port, timeout=30) as s:
        s.login(ALICE, PASSWORD)
        assert s.sendmail(ALICE, rcpts, msg, mail_options=list(mail_options)) == {}
    return message_id


def queued(p, state=None):
    """Queue ids in `state` (or in any state); a queue file being rewritten (ID.tmp) is not a message."""
    states = [state] if state else ["incoming", "active", "deferred", "hold", "corrupt"]
    out = []
    for s in states:
        d = os.path.join(p.root, "queue", s)
        out += [n for n in os.listdir(d) if "." not in n] if os.path.isdir(d) else []
    return out


def wait_for(pred, timeout=20.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s")


def wait_bounce(p, timeout=20.0):
    """The one DSN that reaches alice's INBOX, as text."""
    wait_for(lambda: p.messages("alice"), timeout, "a DSN in alice's INBOX")
    msgs = p.messages("alice")
    assert len(msgs) == 1
    return msgs[0].decode("utf-8", "replace")


def arrived(p, mx, n=1, timeout=30.0):
    """The transactions at `mx` once `n` arrived; else fails with the server's log."""
    try:
        return mx.wait_messages(n, timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{p.log()[-3000:]}") from None


def flush(p):
    """`postern queue flush` (Postfix's postqueue -f): every deferred message due now, the queue manager woken."""
    p.run("queue", "flush")


def assert_dsn_to_alice(dsn, rcpt):
    assert re.search(r"^From: .*MAILER-DAEMON", dsn, re.M | re.I), dsn
    assert f"To: {ALICE}" in dsn or f"To: <{ALICE}>" in dsn, dsn
    assert "multipart/report" in dsn and "report-type=delivery-status" in dsn, dsn
    assert re.search(rf"^Final-Recipient: rfc822; ?{re.escape(rcpt)}", dsn, re.M | re.I), dsn
    assert re.search(r"^Action: failed", dsn, re.M), dsn


# --- delivery to the MX in DNS ------------------------------------------------------------------------------

@ROOT
def test_delivery_to_the_mx_in_dns_once_with_received_and_dkim(make_postern, dns, make_mx):
    p = start(make_postern, dns, run=False)
    records, _ = keygen(p, DOMAIN, "--selector", "out")
    p.start()
    mx = make_mx("127.0.0.11")
    mid = submit(p, ["bob@remote.test"], body=b"Hello remote.\r\n.leading dot\r\n")
    (t,) = arrived(p, mx)
    assert (t.sender, t.recipients, t.ehlo) == (ALICE, ["bob@remote.test"], f"mail.{DOMAIN}")
    assert t.tls is False  # the sink offers no STARTTLS
    assert mid.encode() in t.data and t.data.endswith(b"Hello remote.\r\n.leading dot\r\n")
    received = rb"^Received: from .*?\r\n\s+by mail\.example\.test \(Postern\)"
    assert re.search(received, t.data, re.M | re.S), t.data[:600]
    import dkim  # python3-dkim: only under /usr/bin/python3
    assert b"DKIM-Signature:" in t.data and b"d=example.test" in t.data
    assert dkim.verify(t.data, dnsfunc=dnsfunc(records))
    log = p.wait_log("status=sent")
    assert re.search(r"to=<bob@remote\.test>, relay=mx1\.remote\.test\[127\.0\.0\.11\]:25, delay=[\d.]+, "
                     r"dsn=2\.0\.0, status=sent \(250 2\.0\.0 Ok: queued as MX1\)", log), log
    wait_for(lambda: not queued(p), what="the queue empties")
    time.sleep(2)  # a few queue runs later: still once
    assert len(mx.messages) == 1 and dns.asked("remote.test", "MX") >= 1


@ROOT
def test_lowest_preference_first(make_postern, dns, make_mx):
    p = start(make_postern, dns)
    a, b = make_mx("127.0.0.21"), make_mx("127.0.0.22")
    submit(p, ["carol@pref.test"])
    arrived(p, a)
    time.sleep(1)
    assert len(a.messages) == 1 and b.messages == [] and b.attempts == 0


@ROOT
@pytest.mark.parametrize("first", ["down", "421 greeting"])
def test_next_mx_when_the_first_is_down_or_busy(make_postern, dns, make_mx, first):
    p = start(make_postern, dns)
    if first != "down":
        make_mx("127.0.0.21", greeting="421 4.3.2 mx-a is busy")
    b = make_mx("127.0.0.22")
    submit(p, ["carol@pref.test"])
    (t,) = arrived(p, b)
    assert t.recipients == ["carol@pref.test"]
    assert "relay=mx-b.pref.test[127.0.0.22]:25" in p.wait_log("status=sent")


@ROOT
def test_no_mx_means_the_a_record(make_postern, dns, make_mx):
    p = start(make_postern, dns)
    mx = make_mx("127.0.0.31")
    submit(p, ["dave@a-only.test"])
    assert arrived(p, mx)[0].recipients == ["dave@a-only.test"]
    assert "relay=a-only.test[127.0.0.31]:25" in p.wait_log("status=sent")
    assert dns.asked("a-only.test", "MX") >= 1 and dns.asked("a-only.test", "A") >= 1


def test_null_mx_bounces_at_once(make_postern, dns):
    p = start(make_postern, dns, SLOW)
    submit(p, ["erin@null.test"])
    dsn = wait_bounce(p, timeout=10)  # no retry: the first attempt decides
    assert_dsn_to_alice(dsn, "erin@null.test")
    assert "does not accept mail" in dsn, dsn
    assert re.search(r"to=<erin@null\.test>, .*status=bounced \(.*does not accept mail", p.log()), p.log()
    wait_for(lambda: not queued(p), what="the queue empties")


# --- retries and bounces ------------------------------------------------------------------------------------

@ROOT
def test_4xx_then_success_after_a_retry(make_postern, dns, make_mx):
    p = start(make_postern, dns)
    mx = make_mx("127.0.0.41", refuse_first=2)
    mid = submit(p, ["frank@retry.test"])
    (t,) = arrived(p, mx)
    assert mid.encode() in t.data and mx.attempts == 3
    log = p.wait_log("status=sent")
    assert log.count("to=<frank@retry.test>") == 3
    assert len(re.findall(r"status=deferred \(.*451 4\.3\.0 Temporary failure", log)) == 2, log
    wait_for(lambda: not queued(p), what="the queue empties")
    time.sleep(2)
    assert len(mx.messages) == 1 and p.messages("alice") == []  # no bounce, no delay warning


@ROOT
def test_5xx_bounces_that_recipient_with_the_remote_reply(make_postern, dns, make_mx):
    p = start(make_postern, dns)
    reply = "550 5.1.1 <gone@reject.test>: Recipient address rejected: no such user here"
    mx = make_mx("127.0.0.51", rcpt={"gone@reject.test": reply})
    submit(p, ["gone@reject.test", "here@reject.test"], subject="half bounced")
    (t,) = arrived(p, mx)
    assert t.recipients == ["here@reject.test"]
    dsn = wait_bounce(p)
    assert_dsn_to_alice(dsn, "gone@reject.test")
    assert "no such user here" in dsn and re.search(r"^Status: 5\.1\.1", dsn, re.M), dsn
    assert re.search(r"^Remote-MTA: dns; ?mx\.reject\.test", dsn, re.M | re.I), dsn
    assert len(re.findall(r"^Final-Recipient:", dsn, re.M)) == 1, dsn  # only the failed one is reported
    assert "Subject: half bounced" in dsn  # the returned header
    log = p.wait_log("status=bounced")
    assert re.search(r"to=<gone@reject\.test>, relay=mx\.reject\.test\[127\.0\.0\.51\]:25, .*dsn=5\.1\.1, "
                     r"status=bounced \(.*no such user here", log), log
    wait_for(lambda: not queued(p), what="the queue empties")


@ROOT
def test_smtputf8_message_to_a_peer_without_it_bounces_5_6_7(make_postern, dns, make_mx):
    p = start(make_postern, dns)
    mx = make_mx("127.0.0.61", eightbitmime=False, smtputf8=False)
    submit(p, ["jürgen@ascii.test"], body="Grüße\r\n".encode(), mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    dsn = wait_bounce(p)
    assert re.search(r"^Status: 5\.6\.7", dsn, re.M) and "SMTPUTF8" in dsn, dsn
    assert "status=bounced" in p.log() and mx.messages == []


# --- TLS and timeouts ---------------------------------------------------------------------------------------

@ROOT
def test_starttls_is_used_when_offered(make_postern, dns, make_mx):
    p = start(make_postern, dns)
    mx = make_mx("127.0.0.71", starttls=True)
    submit(p, ["gina@tls.test"])
    (t,) = arrived(p, mx)
    assert t.tls is True and t.ehlo == f"mail.{DOMAIN}"


@ROOT
def test_encrypt_refuses_a_peer_without_starttls(make_postern, dns, make_mx):
    p = start(make_postern, dns, "smtp_tls_security_level = encrypt\n" + SLOW)
    mx = make_mx("127.0.0.72")
    submit(p, ["hank@plain.test"])
    log = p.wait_log("status=deferred")
    assert re.search(r"to=<hank@plain\.test>, relay=mx\.plain\.test\[127\.0\.0\.72\]:25, .*status=deferred "
                     r"\(.*TLS is required, but was not offered", log), log
    time.sleep(2)
    assert mx.messages == [] and mx.attempts == 0  # never a MAIL FROM in the clear
    out = p.run("mailq").stdout
    assert re.search(r"\(.*TLS is required, but was not offered.*\)\n\s+hank@plain\.test", out), out
    assert len(queued(p)) == 1 and p.messages("alice") == []


@ROOT
def test_silent_peer_times_out_and_the_message_is_deferred(make_postern, dns, make_mx):
    p = start(make_postern, dns, "smtp_helo_timeout = 2s\n")
    make_mx("127.0.0.81", greeting_delay=float("inf"))
    began = time.time()
    submit(p, ["ivan@silent.test"])
    log = p.wait_log("status=deferred", timeout=15)
    assert time.time() - began < 12  # 2 s, not the default 300 s
    assert re.search(r"to=<ivan@silent\.test>, .*status=deferred \(.*timed out", log), log
    assert len(queued(p)) == 1


# --- the queue ----------------------------------------------------------------------------------------------

@ROOT
def test_mailq_shows_deferred_messages_with_their_reason(make_postern, dns):
    p = start(make_postern, dns, SLOW)
    submit(p, ["judy@down.test"])
    p.wait_log("status=deferred")
    wait_for(lambda: queued(p, "deferred"), what="the message in deferred/")
    out = p.run("mailq").stdout
    (qid,) = queued(p, "deferred")
    assert re.search(rf"^{qid} .*{re.escape(ALICE)}$", out, re.M), out
    assert re.search(r"^ *\(.*mx\.down\.test\[127\.0\.0\.101\]:25.*Connection refused\)\n\s+judy@down\.test$", out,
                     re.M), out
    assert re.search(r"^-- \d+ Kbytes in 1 Request\.$", out, re.M), out  # Postfix's: the sum of sizes // 1024


@ROOT
def test_flush_delivers_at_once_when_the_destination_is_back(make_postern, dns, make_mx):
    p = start(make_postern, dns, SLOW + "queue_run_delay = 300s\n")
    mids = {submit(p, [f"m{i}@down.test"]) for i in range(3)}
    p.wait_log("status=deferred")
    wait_for(lambda: len(queued(p, "deferred")) == 3, what="3 messages in deferred/")
    mx = make_mx("127.0.0.101")
    flush(p)  # the destination failed a moment ago: a flush must try it again all the same, as Postfix's does
    got = arrived(p, mx, 3, timeout=10)
    assert {re.search(rb"^Message-ID: (\S+)", t.data, re.M).group(1).decode() for t in got} == mids


@ROOT
def test_kill_9_with_a_full_queue_then_every_message_exactly_once(make_postern, dns, make_mx):
    p = start(make_postern, dns)
    n = 200
    ids = {f"<crash-{i}.{time.time_ns()}@{DOMAIN}>" for i in range(n)}
    with smtplib.SMTP("127.0.0.1", p.port, timeout=30) as s:
        s.login(ALICE, PASSWORD)
        for i, mid in enumerate(sorted(ids)):
            msg = f"From: {ALICE}\r\nTo: k@crash.test\r\nSubject: {i}\r\nMessage-ID: {mid}\r\n\r\nbody {i}\r\n"
            assert s.sendmail(ALICE, [f"k{i % 7}@crash.test"], msg.encode()) == {}
    p.wait_log("status=deferred")
    # listed state by state while messages move between them: a message may show up twice or not at all once
    wait_for(lambda: len(set(queued(p))) == n, what=f"{n} messages queued")
    p.stop(signal.SIGKILL)
    p.start()
    mx = make_mx("127.0.0.91")
    flush(p)
    arrived(p, mx, n, timeout=120)
    wait_for(lambda: not queued(p), timeout=60, what="the queue empties")
    time.sleep(3)
    got = [re.search(rb"^Message-ID: (\S+)", t.data, re.M | re.I).group(1).decode() for t in mx.messages]
    twice = [re.search(rb" id (\w+)", t.data).group(1).decode() for t in mx.messages if got.count(
        re.search(rb"^Message-ID: (\S+)", t.data, re.M | re.I).group(1).decode()) > 1]
    assert not twice, "delivered twice:\n" + "\n".join(line for line in p.log().splitlines()
                                                       if any(q in line for q in set(twice)))
    assert len(got) == n and set(got) == ids


def test_relayhost_with_sasl_over_starttls(make_postern, dns, make_mx):
    port = free_port()
    p = start(make_postern, dns, run=False)
    secrets = os.path.join(p.dir, "sasl_passwd")
    with open(secrets, "w") as f:
        f.write(f"[127.0.0.1]:{port} relayuser:relay-secret\n")
    os.chmod(secrets, 0o600)
    with open(os.path.join(p.dir, "main.cf"), "a") as f:
        f.write(f"relayhost = [127.0.0.1]:{port}\nsmtp_sasl_auth_enable = yes\n"
                f"smtp_sasl_password_maps = {secrets}\n")
    p.start()
    mx = make_mx("127.0.0.1", port, starttls=True, auth={"relayuser": "relay-secret"})
    mid = submit(p, ["bob@remote.test", "x@elsewhere.test"])
    wait_for(lambda: sum(len(t.recipients) for t in mx.messages) >= 2, what="both recipients at the relayhost")
    time.sleep(1)
    # One transaction as Postfix makes for one next hop, or one per recipient domain: each recipient once.
    assert sorted(r for t in mx.messages for r in t.recipients) == ["bob@remote.test", "x@elsewhere.test"]
    for t in mx.messages:
        assert (t.tls, t.login, t.sender) == (True, "relayuser", ALICE) and mid.encode() in t.data
    assert f"relay=127.0.0.1[127.0.0.1]:{port}" in p.wait_log("status=sent")
    assert dns.asked("remote.test") == 0 and dns.asked("elsewhere.test") == 0  # [host]: no MX lookup


@ROOT
def test_delivery_to_postfix_as_the_remote_mx(make_postern, dns):
    """The real Postfix (a private instance, tests/e2e/test_differential_postfix.py) is the MX of pf.test."""
    from test_differential_postfix import POSTCONF, Postfix, master_cf  # skips when Postfix is missing

    root = tempfile.mkdtemp(prefix="postern-mx-postfix-")
    os.chmod(root, 0o755)  # Postfix's processes run as postfix and nobody
    pf = Postfix(root)
    with open(os.path.join(pf.etc, "vmailbox"), "w") as f:
        f.write("bob@pf.test pf.test/bob/\n")
    with open(os.path.join(pf.etc, "master.cf"), "w") as f:  # also port 25 of the MX address
        f.write(master_cf(pf.port) + "127.0.0.111:25 inet n - n - - smtpd\n")
    subprocess.run([POSTCONF, "-c", pf.etc, "-e", "myhostname = mx.pf.test", "virtual_mailbox_domains = pf.test"],
                   check=True)
    pf.start()
    try:
        p = start(make_postern, dns)
        mid = submit(p, ["bob@pf.test"], subject="to postfix")
        new = os.path.join(pf.mail, "pf.test", "bob", "new")
        wait_for(lambda: os.path.isdir(new) and os.listdir(new), what="the message in Postfix's Maildir")
        time.sleep(1)
        (name,) = os.listdir(new)
        with open(os.path.join(new, name), "rb") as f:
            data = f.read()
        assert mid.encode() in data and b"Subject: to postfix" in data
        assert b"from mail.example.test" in data and b"by mail.example.test (Postern)" in data
        assert "relay=mx.pf.test[127.0.0.111]:25" in p.wait_log("status=sent")
        assert "status=sent (delivered to maildir)" in pf.log()
    finally:
        pf.stop()
        shutil.rmtree(root, ignore_errors=True)
