"""The queue manager's first path end to end (issue 6): a message from a trusted client to an outside domain is
queued, its domain's MX is found in DNS (a loopback DNS server of the test), the accepted recipient is delivered
to that MX (aiosmtpd on 127.0.0.2:25, so root is needed), the refused one is returned to the sender in a DSN
that lands in her INBOX, and the queue file is removed. test_outbound.py covers the rest of the issue."""
import os
import smtplib
import time

import pytest

from conftest import DOMAIN, free_port

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the remote MX listens on port 25: needs root")


class Sink:
    def __init__(self):
        self.got = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bad"):
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.got.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 Ok: queued"


@needs_root
def test_delivered_and_bounced(make_postern, make_dns):
    from aiosmtpd.controller import Controller  # Debian's python3-aiosmtpd: only under /usr/bin/python3

    dns = make_dns({"remote.test": {"MX": [(10, "mx.remote.test")]}, "mx.remote.test": {"A": ["127.0.0.2"]}})
    sink = Sink()
    mx = Controller(sink, hostname="127.0.0.2", port=25)
    mx.start()
    try:
        srv = make_postern(f"dns_servers = 127.0.0.1:{dns.port}\nmynetworks = 127.0.0.0/8\n")
        with smtplib.SMTP("127.0.0.1", srv.port) as s:
            s.sendmail(f"alice@{DOMAIN}", ["bob@remote.test", "bad@remote.test"],
                       b"Subject: out\r\nMessage-ID: <q1@example.test>\r\n\r\nhello\r\n")
        deadline = time.time() + 20
        while time.time() < deadline and not (sink.got and srv.messages("alice")):
            time.sleep(0.1)
        assert len(sink.got) == 1, srv.log()
        sender, rcpts, content = sink.got[0]
        assert (sender, rcpts) == (f"alice@{DOMAIN}", ["bob@remote.test"])
        assert b"Message-ID: <q1@example.test>" in content and b"hello" in content
        bounces = srv.messages("alice")
        assert len(bounces) == 1
        bounce = bounces[0] if isinstance(bounces[0], str) else bounces[0].decode()
        assert "Undelivered Mail Returned to Sender" in bounce
        assert "550 5.1.1 no such user here" in bounce and "Final-Recipient: rfc822; bad@remote.test" in bounce
        log = srv.wait_log("removed")
        assert "to=<bob@remote.test>, relay=mx.remote.test[127.0.0.2]:25" in log and "status=sent" in log
        assert "to=<bad@remote.test>" in log and "status=bounced" in log
        assert not os.listdir(os.path.join(srv.root, "queue", "deferred"))
        assert not os.listdir(os.path.join(srv.root, "queue", "active"))
    finally:
        mx.stop()


def test_relayhost_address_needs_no_dns(make_postern):
    """relayhost = [127.0.0.1]:PORT: every outside recipient goes to that host, no MX lookup (the DNS of the
    base configuration answers nothing)."""
    from aiosmtpd.controller import Controller

    sink = Sink()
    port = free_port()
    relay = Controller(sink, hostname="127.0.0.1", port=port)
    relay.start()
    try:
        srv = make_postern(f"relayhost = [127.0.0.1]:{port}\n")
        with smtplib.SMTP("127.0.0.1", srv.port) as s:
            s.sendmail(f"alice@{DOMAIN}", ["x@one.example", "y@two.example"], b"Subject: via relay\r\n\r\nhi\r\n")
        deadline = time.time() + 20
        while time.time() < deadline and len(sink.got) < 2:
            time.sleep(0.1)
        assert sorted(r for _, rcpts, _ in sink.got for r in rcpts) == ["x@one.example", "y@two.example"]
        srv.wait_log(f"relay=127.0.0.1[127.0.0.1]:{port}")
    finally:
        relay.stop()


def test_sendmail_to_an_outside_address_is_queued_and_sent(make_postern):
    """postern sendmail (cron, scripts, mail(1)) to another domain: queued, and the running server is woken
    to deliver it at once (queue_run_delay is 300 s)."""
    from aiosmtpd.controller import Controller

    sink = Sink()
    port = free_port()
    relay = Controller(sink, hostname="127.0.0.1", port=port)
    relay.start()
    try:
        srv = make_postern(f"relayhost = [127.0.0.1]:{port}\n")
        r = srv.run("sendmail", "-f", f"alice@{DOMAIN}", "friend@far.example",
                    input="Subject: from a script\n\nnightly report\n")
        assert r.returncode == 0 and r.stderr == ""
        deadline = time.time() + 10
        while time.time() < deadline and not sink.got:
            time.sleep(0.1)
        assert [(s, rcpts) for s, rcpts, _ in sink.got] == [(f"alice@{DOMAIN}", ["friend@far.example"])]
        assert b"nightly report" in sink.got[0][2]
    finally:
        relay.stop()


def test_delay_warning_once(make_postern):
    """delay_warning_time: a message still deferred after it gets one "Delayed Mail" report to its sender
    (action delayed, Will-Retry-Until), not one per retry, and stays queued."""
    from aiosmtpd.controller import Controller

    class Busy:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            return "451 4.3.2 try again later"

    port = free_port()
    relay = Controller(Busy(), hostname="127.0.0.1", port=port)
    relay.start()
    try:
        srv = make_postern(f"relayhost = [127.0.0.1]:{port}\ndelay_warning_time = 1s\nminimal_backoff_time = 1s\n"
                           "maximal_backoff_time = 1s\nqueue_run_delay = 1s\n")
        with smtplib.SMTP("127.0.0.1", srv.port) as s:
            s.sendmail(f"alice@{DOMAIN}", ["slow@far.example"], b"Subject: patience\r\n\r\nhi\r\n")
        deadline = time.time() + 15
        while time.time() < deadline and not srv.messages("alice"):
            time.sleep(0.1)
        srv.wait_log("status=deferred")
        time.sleep(3)  # more retries: no second warning
        warnings = [m if isinstance(m, str) else m.decode() for m in srv.messages("alice")]
        assert len(warnings) == 1, warnings
        w = warnings[0]
        assert "Subject: Delayed Mail (still being retried)" in w
        assert "Action: delayed" in w and "Will-Retry-Until:" in w and "451 4.3.2 try again later" in w
        assert srv.log().count("status=deferred") >= 2
        out = srv.run("mailq").stdout
        assert "slow@far.example" in out
    finally:
        relay.stop()



def _send_each(srv, count, rcpt="friend@far.example"):
    """`count` messages, one SMTP transaction each, from a trusted client."""
    with smtplib.SMTP("127.0.0.1", srv.port) as s:
        for i in range(count):
            s.sendmail(f"alice@{DOMAIN}", [rcpt], f"Subject: n{i}\r\n\r\nbody {i}\r\n".encode())


def _bodies(transactions):
    return sorted(t.data.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1].strip().decode() for t in transactions)


def _one_at_a_time(make_postern, make_mx, cache_time):
    """A relayhost MX on a free port, one delivery at a time to it, and the connection cache time given."""
    port = free_port()
    mx = make_mx("127.0.0.1", port)
    srv = make_postern(f"relayhost = [127.0.0.1]:{port}\ndefault_destination_concurrency_limit = 1\n"
                       f"smtp_connection_cache_time_limit = {cache_time}\n")
    return srv, mx


def test_connection_is_reused_for_the_next_message(make_postern, make_mx):
    """One delivery at a time to the destination: every message after the first rides the connection the first
    one opened (RSET, then the next transaction), and the idle connection is closed with QUIT after
    smtp_connection_cache_time_limit."""
    srv, mx = _one_at_a_time(make_postern, make_mx, "3s")
    _send_each(srv, 4)
    got = mx.wait_messages(4, timeout=20)
    assert _bodies(got) == [f"body {i}" for i in range(4)]
    assert (mx.connections, mx.quits) == (1, 0), srv.log()  # one connection, still open
    deadline = time.time() + 10
    while time.time() < deadline and mx.quits == 0:
        time.sleep(0.1)
    assert (mx.connections, mx.quits) == (1, 1)


def test_without_the_cache_each_message_connects(make_postern, make_mx):
    srv, mx = _one_at_a_time(make_postern, make_mx, "0")
    _send_each(srv, 3)
    got = mx.wait_messages(3, timeout=20)
    assert _bodies(got) == [f"body {i}" for i in range(3)]
    deadline = time.time() + 5
    while time.time() < deadline and mx.quits < 3:
        time.sleep(0.1)
    assert (mx.connections, mx.quits) == (3, 3), srv.log()


def test_a_closed_cached_connection_is_replaced(make_postern, make_mx):
    """The remote side drops the cached connection (it restarted): the next message connects again and is
    delivered, not deferred."""
    port = free_port()
    mx = make_mx("127.0.0.1", port)
    srv = make_postern(f"relayhost = [127.0.0.1]:{port}\nsmtp_connection_cache_time_limit = 60s\n")
    _send_each(srv, 1)
    mx.wait_messages(1, timeout=20)
    mx.stop()
    mx.start()
    _send_each(srv, 1)
    got = mx.wait_messages(2, timeout=20)
    assert _bodies(got) == ["body 0", "body 0"]
    assert mx.connections == 2
    assert "status=deferred" not in srv.log()


def test_rate_delay_spaces_deliveries(make_postern, make_mx):
    """default_destination_rate_delay: one delivery at a time to the destination, starting that far apart."""
    port = free_port()
    mx = make_mx("127.0.0.1", port)
    srv = make_postern(f"relayhost = [127.0.0.1]:{port}\ndefault_destination_rate_delay = 1s\n")
    start = time.time()
    _send_each(srv, 3)
    mx.wait_messages(3, timeout=20)
    assert time.time() - start >= 2.0
    assert _bodies(mx.messages) == [f"body {i}" for i in range(3)]


def test_recipient_limit_splits_transactions(make_postern, make_mx):
    """default_destination_recipient_limit: a message to 5 recipients of one destination goes in 3 transactions
    of at most 2 recipients."""
    port = free_port()
    mx = make_mx("127.0.0.1", port)
    srv = make_postern(f"relayhost = [127.0.0.1]:{port}\ndefault_destination_recipient_limit = 2\n")
    rcpts = [f"r{i}@far.example" for i in range(5)]
    with smtplib.SMTP("127.0.0.1", srv.port) as s:
        s.sendmail(f"alice@{DOMAIN}", rcpts, b"Subject: many\r\n\r\nhi\r\n")
    got = mx.wait_messages(3, timeout=20)
    assert sorted(len(t.recipients) for t in got) == [1, 2, 2]
    assert sorted(r for t in got for r in t.recipients) == rcpts


def test_alias_forwarding_to_another_domain(make_postern, make_mx):
    """Forwarding through virtual_alias_maps ("fwd@ friend@far.example", "bob@ bob@, bob@far.example"): mail
    for an alias that names addresses of other domains is queued to them (from any client: it is our
    recipient), the local copy still lands, and the forward-only alias has no mailbox of its own."""
    port = free_port()
    mx = make_mx("127.0.0.1", port)
    srv = make_postern(f"relayhost = [127.0.0.1]:{port}\nvirtual_alias_maps = hash:virtual\n", start=False)
    with open(os.path.join(srv.dir, "virtual"), "w") as f:
        f.write(f"fwd@{DOMAIN} friend@far.example\nbob@{DOMAIN} bob@{DOMAIN}, bob@far.example\n")
    srv.start()
    with smtplib.SMTP("127.0.0.1", srv.port) as s:
        refused = s.sendmail("stranger@elsewhere.example", [f"fwd@{DOMAIN}", f"bob@{DOMAIN}"],
                             b"Subject: pass it on\r\n\r\nhello\r\n")
        assert refused == {}
    (t,) = mx.wait_messages(1, timeout=20)
    assert sorted(t.recipients) == ["bob@far.example", "friend@far.example"]
    assert t.sender == "stranger@elsewhere.example" and b"pass it on" in t.data
    (mine,) = srv.messages("bob")
    assert b"pass it on" in mine
    log = srv.wait_log("status=sent (250")
    assert f"to=<fwd@{DOMAIN}>, relay=local, status=sent (forwarded to friend@far.example)" in log, log
