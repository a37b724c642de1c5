"""Relay policy and the outbound queue: no open relay (the classic address tricks), mynetworks, the restriction
lists, and mail to other domains stored durably in queue_directory/deferred before the 250, shown by mailq.

The client is 127.0.0.1 unless a test binds another loopback address; `mynetworks = 127.0.0.2/32` makes it an
outsider.  The sender-login-mismatch cases need SMTP AUTH, which is not on main yet: they are covered by the unit
tests (src/smtp/server/session_test.cpp, Relay.SenderLoginMismatch).
"""
import os
import re
import signal
import smtplib
import subprocess

import pytest

from conftest import BIN, DOMAIN, Raw
from rawsocket import RawSocket

OUTSIDER = "mynetworks = 127.0.0.2/32\n"
STRICT = "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination\n"
MSG = b"Subject: relay test\r\n\r\nhello\r\n"

# (RCPT argument, reply under STRICT from an outsider); the last ones are not RFC 5321 paths at all.
TRICKS = [
    ("<victim@other.example>", "554 5.7.1 <victim@other.example>: Relay access denied"),
    (f"<user%other.example@{DOMAIN}>", f"554 5.7.1 <user%other.example@{DOMAIN}>: Relay access denied"),
    (f"<@{DOMAIN}:user@other.example>", "554 5.7.1 <user@other.example>: Relay access denied"),
    (f"<@mail.{DOMAIN},@{DOMAIN}:user@other.example>", "554 5.7.1 <user@other.example>: Relay access denied"),
    (f'<"user@other.example"@{DOMAIN}>', f'554 5.7.1 <"user@other.example"@{DOMAIN}>: Relay access denied'),
    (f"<other.example!user@{DOMAIN}>", f"554 5.7.1 <other.example!user@{DOMAIN}>: Relay access denied"),
    (f'<"other.example!alice"@{DOMAIN}>', f"554 5.7.1 <other.example!alice@{DOMAIN}>: Relay access denied"),
    ("<user@[127.0.0.2]>", "554 5.7.1 <user@[127.0.0.2]>: Relay access denied"),
    ("<user@[IPv6:2001:db8::1]>", "554 5.7.1 <user@[IPv6:2001:db8::1]>: Relay access denied"),
    ("<VICTIM@Other.EXAMPLE>", "554 5.7.1 <VICTIM@Other.EXAMPLE>: Relay access denied"),
    ("  <victim@other.example>", "554 5.7.1 <victim@other.example>: Relay access denied"),
    ("victim@other.example", "554 5.7.1 <victim@other.example>: Relay access denied"),
    (f"<user@other.example@{DOMAIN}>", "501 5.1.3 Bad recipient address syntax"),
    ("<user@other.example.>", "501 5.1.3 Bad recipient address syntax"),
]


def queue_files(p, state):
    d = os.path.join(p.root, "queue", state)
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def queued(p):
    """The messages waiting in the queue: deferred, or active while the queue manager tries them."""
    return sorted(queue_files(p, "deferred") + queue_files(p, "active"))


class From(Raw):
    """The raw SMTP client, connecting from the loopback address `source`."""

    def __init__(self, port, source):
        RawSocket.__init__(self, "127.0.0.1", port, source=source)
        self.greeting = self.reply()


def rcpt_reply(port, rcpt, sender="<someone@elsewhere.example>", source="127.0.0.1"):
    """The last line of the reply to RCPT TO:`rcpt` in a fresh session from `source`."""
    c = From(port, source)
    c.cmd("EHLO client.example")
    assert c.cmd(f"MAIL FROM:{sender}")[0] == 250
    code, lines = c.cmd(f"RCPT TO:{rcpt}")
    c.cmd("QUIT")
    c.sock.close()
    return lines[-1]


@pytest.mark.parametrize("rcpt,reply", TRICKS, ids=[t[0] for t in TRICKS])
def test_relay_tricks_refused_from_outside(make_postern, rcpt, reply):
    p = make_postern(OUTSIDER + STRICT)
    assert rcpt_reply(p.port, rcpt) == reply
    assert rcpt_reply(p.port, rcpt, sender="<>") == reply  # a null sender changes nothing
    assert queue_files(p, "deferred") == [] and queue_files(p, "incoming") == []


def test_relay_tricks_refused_with_the_defaults(make_postern):
    # Postfix's default smtpd_relay_restrictions ends in defer_unauth_destination: 454, a temporary refusal.
    p = make_postern(OUTSIDER)
    for rcpt, strict in TRICKS:
        got = rcpt_reply(p.port, rcpt)
        want = strict.replace("554 5.7.1", "454 4.7.1")
        assert got == want, rcpt
    assert queue_files(p, "deferred") == []


def test_routing_through_our_domain_refused_even_from_mynetworks(make_postern):
    p = make_postern()  # the default mynetworks: loopback is trusted
    for rcpt in (f"<user%other.example@{DOMAIN}>", f"<other.example!user@{DOMAIN}>",
                 f'<"user@other.example"@{DOMAIN}>', f'<"alice%other.example"@{DOMAIN}>'):
        assert rcpt_reply(p.port, rcpt).startswith("554 5.7.1 <"), rcpt
    assert queue_files(p, "deferred") == []


def test_mynetworks_decides_by_client_address(make_postern):
    p = make_postern("mynetworks = 127.0.0.3/32, [::1]/128\n" + STRICT)
    assert rcpt_reply(p.port, "<friend@other.example>") == "554 5.7.1 <friend@other.example>: Relay access denied"
    assert rcpt_reply(p.port, "<friend@other.example>", source="127.0.0.3") == "250 2.1.5 Ok"


def test_relay_from_mynetworks_is_queued_and_listed(make_postern, make_dns):
    # DNS fails for the outside domains: the queue manager's first attempt defers them at once.
    dns = make_dns({"other.example": "SERVFAIL", "third.example": "SERVFAIL"})
    p = make_postern(f"dns_servers = 127.0.0.1:{dns.port}\n")
    assert p.run("mailq").stdout == "Mail queue is empty\n"
    for state in ("incoming", "active", "deferred", "hold", "corrupt"):
        assert os.path.isdir(os.path.join(p.root, "queue", state)), state
    with smtplib.SMTP("127.0.0.1", p.port) as s:
        s.ehlo("client.example")
        s.mail("alice@example.test")
        assert s.rcpt(f"bob@{DOMAIN}")[0] == 250
        assert s.rcpt("Friend@Other.Example")[0] == 250
        assert s.rcpt("carol@third.example")[0] == 250
        code, msg = s.data(MSG)
    assert code == 250
    queue_id = msg.decode().rsplit(" ", 1)[1]
    # The local recipient has the message; the others are queued.
    assert len(p.messages("bob")) == 1
    p.wait_log(f"{queue_id}: to=<carol@third.example>, relay=none")
    assert queue_files(p, "deferred") == [queue_id] and queue_files(p, "incoming") == []
    with open(os.path.join(p.root, "queue", "deferred", queue_id), "rb") as f:
        data = f.read()
    assert data.startswith(b"POSTERN-QUEUE 1\nI14:" + queue_id.encode())
    assert b"\nR20:Friend@Other.Example\n" in data and b"\nR19:carol@third.example\n" in data
    assert b"bob@" not in data.split(b"\nM")[0]
    assert b"Received: from client.example" in data and data.endswith(b"hello\n\nE0:\n")
    out = p.run("mailq").stdout.splitlines()
    assert out[0] == "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"
    m = re.match(r"^(\w+)\s+(\d+) (\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d)  alice@example\.test$", out[1])
    assert m and m.group(1) == queue_id, out
    # Each recipient after the reason of its last deferral, in parentheses (Postfix's layout).
    assert [line for line in out[2:-1] if line.strip()] == [
        "(Host or domain name not found. Name service error for name=other.example type=MX: Host not found, "
        "try again (server failure))", " " * 41 + "Friend@Other.Example",
        "(Host or domain name not found. Name service error for name=third.example type=MX: Host not found, "
        "try again (server failure))", " " * 41 + "carol@third.example"]
    assert out[-1] == f"-- {int(m.group(2)) // 1024} Kbytes in 1 Request."
    p.wait_log(f"{queue_id}: to=<Friend@Other.Example>, relay=none")


def test_outbound_only_message_and_kill9_right_after_the_250(make_postern):
    p = make_postern()
    with smtplib.SMTP("127.0.0.1", p.port) as s:
        s.ehlo("client.example")
        s.mail("")
        s.rcpt("friend@other.example")
        code, msg = s.data(MSG)
        assert code == 250
        p.stop(signal.SIGKILL)
    queue_id = msg.decode().rsplit(" ", 1)[1]
    assert queued(p) == [queue_id]
    p.start()
    assert queued(p) == [queue_id] and queue_files(p, "incoming") == []
    out = p.run("mailq").stdout
    assert queue_id in out and "MAILER-DAEMON" in out and "friend@other.example" in out


def test_mailq_help_and_damaged_files(make_postern):
    p = make_postern()
    assert "mailq" in subprocess.run([BIN, "--help"], capture_output=True, text=True).stdout
    assert p.run("mailq", "--help").stdout.startswith("postern mailq:")
    with open(os.path.join(p.root, "queue", "deferred", "0BADF00D"), "wb") as f:
        f.write(b"POSTERN-QUEUE 1\nI8:0BADF00D\n")
    r = p.run("mailq")
    assert r.stdout == "Mail queue is empty\n" and "0BADF00D" in r.stderr


def test_unknown_restriction_is_a_startup_error(make_postern):
    p = make_postern("smtpd_recipient_restrictions = permit_mynetworks, reject_unknown_thing\n", start=False)
    for args in (["check"], ["serve"]):
        r = p.run(*args, check=False)
        assert r.returncode != 0, args
        assert "smtpd_recipient_restrictions" in r.stderr and "reject_unknown_thing" in r.stderr, r.stderr


def test_rcpt_enumeration_is_limited(make_postern):
    # Unknown recipients count as errors: smtpd_hard_error_limit (20) ends the session.
    p = make_postern(OUTSIDER)
    c = Raw(p.port)
    c.cmd("EHLO x")
    c.cmd("MAIL FROM:<a@elsewhere.example>")
    replies = [c.cmd(f"RCPT TO:<guess{i}@{DOMAIN}>") for i in range(20)]
    assert all(code == 550 for code, _ in replies)
    assert c.reply() == (421, [f"421 4.7.0 mail.{DOMAIN} Error: too many errors"])
    with pytest.raises((EOFError, OSError)):
        c.cmd("NOOP")
