"""Bad input, limits, pipelining and BDAT over a raw socket: what a hostile or broken client may send.

Replies follow RFC 5321/3463/3030 and what Postfix says in the same situation.
"""
import os
import random
import socket
import threading
import time

from conftest import DOMAIN, Raw

ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"


def all_files(server, user):
    """Every file in the user's Maildir new/, cur/ and tmp/ (names prefixed by the subdirectory)."""
    out = []
    for sub in ("new", "cur", "tmp"):
        d = os.path.join(server.maildir(user), sub)
        if os.path.isdir(d):
            out += [f"{sub}/{n}" for n in os.listdir(d)]
    return out


def replies_until_close(c, timeout=10):
    """Reads until the server closes; returns every reply as (code, [lines]) in order."""
    c.closed(timeout)
    data, c.buf = c.buf, b""
    out, lines = [], []
    for raw in data.split(b"\n"):
        if not raw:
            continue
        line = raw.rstrip(b"\r").decode("utf-8", "replace")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            out.append((int(line[:3]), lines))
            lines = []
    return out


def still_serves(server):
    c = Raw(server.port)
    assert c.greeting[0] == 220
    assert c.cmd("NOOP") == (250, ["250 2.0.0 Ok"])
    c.close()


def mail_rcpt(c, rcpt=ALICE, sender="a@b.example"):
    assert c.cmd(f"MAIL FROM:<{sender}>") == (250, ["250 2.1.0 Ok"])
    assert c.cmd(f"RCPT TO:<{rcpt}>") == (250, ["250 2.1.5 Ok"])


# ---------------------------------------------------------------------------------------------------------
# Bad input


def test_one_mebibyte_line_is_one_error_and_session_survives(server):
    c = Raw(server.port)
    c.cmd("EHLO x")
    big = b"A" * (1024 * 1024)
    c.send(big)
    c.send(b"\r\n")
    assert c.reply() == (500, ["500 5.5.2 Error: line too long"])
    # Exactly one reply for the whole line: the next one answers NOOP.
    assert c.cmd("NOOP") == (250, ["250 2.0.0 Ok"])
    # And a transaction still works.
    mail_rcpt(c)
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: after the long line\r\n\r\nok\r\n.\r\n")
    assert c.reply()[0] == 250
    assert len(server.messages("alice")) == 1


def test_nul_byte_in_command(server):
    c = Raw(server.port)
    c.cmd("EHLO x")
    code, lines = c.cmd("NOOP\0junk")
    assert code == 500 and lines[0].startswith("500 5.5.2 ")
    code, lines = c.cmd("MAIL FROM:<a\0@b.example>")
    assert code == 500 and lines[0].startswith("500 5.5.2 ")
    # No transaction was started by the MAIL with a NUL in it.
    assert c.cmd(f"RCPT TO:<{ALICE}>") == (503, ["503 5.5.1 Error: need MAIL command"])
    assert c.cmd("NOOP") == (250, ["250 2.0.0 Ok"])


def test_binary_garbage_hits_hard_error_limit_then_close(server):
    rng = random.Random(5321)
    garbage = bytes(rng.getrandbits(8) for _ in range(16 * 1024))
    assert garbage.count(b"\n") > 25  # enough lines to reach the default limit of 20 errors
    c = Raw(server.port)
    assert c.cmd("EHLO x")[0] == 250
    try:
        c.send(garbage)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may close before it has read everything
    replies = replies_until_close(c)
    assert replies, "no reply to garbage"
    last_code, last_lines = replies[-1]
    assert last_code == 421
    assert last_lines[0].startswith("421 4.7.0 ") and "too many errors" in last_lines[0]
    errors = replies[:-1]
    assert len(errors) == 20  # smtpd_hard_error_limit = 20: the 20th error is followed by 421
    assert all(500 <= code < 600 for code, _ in errors), errors
    still_serves(server)
    assert server.proc.poll() is None


# ---------------------------------------------------------------------------------------------------------
# Commands out of order


def test_commands_out_of_order(server):
    c = Raw(server.port)
    c.cmd("EHLO x")
    assert c.cmd(f"RCPT TO:<{ALICE}>") == (503, ["503 5.5.1 Error: need MAIL command"])
    assert c.cmd("DATA") == (503, ["503 5.5.1 Error: need MAIL command"])
    assert c.cmd("MAIL FROM:<a@b.example>") == (250, ["250 2.1.0 Ok"])
    assert c.cmd("DATA") == (503, ["503 5.5.1 Error: need RCPT command"])
    assert c.cmd("MAIL FROM:<c@d.example>") == (503, ["503 5.5.1 Error: nested MAIL command"])
    # The first transaction is still open: its sender stands.
    assert c.cmd(f"RCPT TO:<{ALICE}>") == (250, ["250 2.1.5 Ok"])
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: order\r\n\r\nx\r\n.\r\n")
    assert c.reply()[0] == 250
    assert server.messages("alice")[0].startswith(b"Return-Path: <a@b.example>\n")


def test_mail_before_helo_when_helo_required(make_postern):
    p = make_postern("smtpd_helo_required = yes\n")
    c = Raw(p.port)
    code, lines = c.cmd("MAIL FROM:<a@b.example>")
    assert code == 503 and lines[0].startswith("503 5.5.1 ")
    assert c.cmd(f"RCPT TO:<{ALICE}>")[0] == 503
    assert c.cmd("HELO x")[0] == 250
    assert c.cmd("MAIL FROM:<a@b.example>") == (250, ["250 2.1.0 Ok"])


def test_mail_without_helo_allowed_by_default(server):
    c = Raw(server.port)
    assert c.cmd("MAIL FROM:<a@b.example>") == (250, ["250 2.1.0 Ok"])


# ---------------------------------------------------------------------------------------------------------
# Limits


def test_ten_thousand_recipients_pipelined(make_postern):
    p = make_postern("smtpd_hard_error_limit = 20000\n")
    c = Raw(p.port)
    assert c.cmd("EHLO x")[0] == 250
    n = 10000
    batch = "MAIL FROM:<many@b.example>\r\n" + "".join(
        f"RCPT TO:<{'alice' if i % 2 == 0 else 'bob'}+r{i}@{DOMAIN}>\r\n" for i in range(n))
    # Send from a thread: the server writes replies while we still send, so both directions must flow.
    sender = threading.Thread(target=c.send, args=(batch,))
    sender.start()
    c.sock.settimeout(60)
    assert c.reply() == (250, ["250 2.1.0 Ok"])
    replies = [c.reply() for _ in range(n)]
    sender.join()
    assert replies[:1000] == [(250, ["250 2.1.5 Ok"])] * 1000
    assert replies[1000:] == [(452, ["452 4.5.3 Error: too many recipients"])] * (n - 1000)
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: many\r\n\r\nhello all\r\n.\r\n")
    code, lines = c.reply()
    assert code == 250 and lines[0].startswith("250 2.0.0 Ok: queued as ")
    assert c.cmd("QUIT")[0] == 221
    # 500 addresses each, all the same two mailboxes: one copy each.
    assert len(p.messages("alice")) == 1
    assert len(p.messages("bob")) == 1
    assert p.messages("alice")[0].endswith(b"Subject: many\n\nhello all\n")


def test_message_size_limit(make_postern):
    p = make_postern("message_size_limit = 10000\n")
    c = Raw(p.port)
    code, lines = c.cmd("EHLO x")
    assert "250-SIZE 10000" in lines
    # Declared too big.
    assert c.cmd("MAIL FROM:<a@b.example> SIZE=20000") == (552, ["552 5.3.4 Message size exceeds fixed limit"])
    # Not declared, but too big: refused after the dot, and nothing stored.
    mail_rcpt(c)
    assert c.cmd("DATA")[0] == 354
    line = "x" * 98 + "\r\n"
    c.send("Subject: big\r\n\r\n" + line * 200 + ".\r\n")
    assert c.reply() == (552, ["552 5.3.4 Message size exceeds fixed limit"])
    assert c.cmd("NOOP") == (250, ["250 2.0.0 Ok"])
    # BDAT over the limit in one chunk.
    mail_rcpt(c)
    c.send(b"BDAT 20000 LAST\r\n" + b"y" * 20000)
    assert c.reply() == (552, ["552 5.3.4 Message size exceeds fixed limit"])
    assert c.cmd("NOOP") == (250, ["250 2.0.0 Ok"])
    # BDAT over the limit across chunks: the chunk that crosses it is refused.
    mail_rcpt(c)
    c.send(b"BDAT 6000\r\n" + b"z" * 6000)
    assert c.reply()[0] == 250
    c.send(b"BDAT 6000\r\n" + b"z" * 6000)
    assert c.reply() == (552, ["552 5.3.4 Message size exceeds fixed limit"])
    c.send(b"BDAT 10 LAST\r\n" + b"z" * 10)
    code, _ = c.reply()
    assert 500 <= code < 600
    assert c.cmd("NOOP") == (250, ["250 2.0.0 Ok"])
    assert all_files(p, "alice") == []
    # A message within the limit still goes through in the same session.
    mail_rcpt(c, rcpt=BOB)
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: small\r\n\r\n" + line * 50 + ".\r\n")
    assert c.reply()[0] == 250
    assert len(p.messages("bob")) == 1
    assert all_files(p, "alice") == []


# ---------------------------------------------------------------------------------------------------------
# SMTP smuggling: only CR LF . CR LF ends DATA


SMUGGLE_ENDS = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n"]


def test_smtp_smuggling_variants_do_not_end_data(server):
    c = Raw(server.port)
    c.cmd("EHLO x")
    for i, end in enumerate(SMUGGLE_ENDS):
        mail_rcpt(c)
        assert c.cmd("DATA")[0] == 354
        smuggled = (b"MAIL FROM:<evil@x>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
                    b"Subject: smuggled " + str(i).encode() + b"\r\n\r\nevil\r\n")
        c.send(b"Subject: carrier " + str(i).encode() + b"\r\n\r\nhello" + end + smuggled + b".\r\n")
        code, lines = c.reply()
        assert code == 250 and lines[0].startswith("250 2.0.0 Ok: queued as "), (end, lines)
        # Nothing else was answered: the next reply belongs to NOOP.
        assert c.cmd("NOOP") == (250, ["250 2.0.0 Ok"]), end
    msgs = server.messages("alice")
    assert len(msgs) == len(SMUGGLE_ENDS)
    for i in range(len(SMUGGLE_ENDS)):
        m = [m for m in msgs if b"Subject: carrier " + str(i).encode() in m]
        assert len(m) == 1
        assert b"MAIL FROM:<evil@x>" in m[0] and b"RCPT TO:<bob@example.test>" in m[0]
        assert b"Subject: smuggled " + str(i).encode() in m[0]
    assert server.messages("bob") == []
    assert all_files(server, "bob") == []


# ---------------------------------------------------------------------------------------------------------
# Pipelining (RFC 2920)


def test_pipelined_transaction_replies_in_order(server):
    c = Raw(server.port)
    c.cmd("EHLO x")
    c.send(f"MAIL FROM:<a@b.example>\r\nRCPT TO:<{ALICE}>\r\nRCPT TO:<nobody@{DOMAIN}>\r\n"
           f"RCPT TO:<{BOB}>\r\nDATA\r\n")
    assert c.reply() == (250, ["250 2.1.0 Ok"])
    assert c.reply() == (250, ["250 2.1.5 Ok"])
    code, lines = c.reply()
    assert code == 550 and lines[0].startswith("550 5.1.1 <nobody@example.test>")
    assert c.reply() == (250, ["250 2.1.5 Ok"])
    assert c.reply()[0] == 354
    c.send("Subject: piped\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    assert c.reply()[0] == 250
    assert c.reply() == (221, ["221 2.0.0 Bye"])
    assert len(server.messages("alice")) == 1 and len(server.messages("bob")) == 1


def test_bytes_after_data_before_354_is_sync_error(server):
    c = Raw(server.port)
    c.cmd("EHLO x")
    mail_rcpt(c)
    c.send("DATA\r\nSubject: x\r\n")
    replies = replies_until_close(c)
    assert replies == [(554, ["554 5.5.0 Error: SMTP protocol synchronization"])]
    assert all_files(server, "alice") == []
    still_serves(server)


def test_pipelining_after_helo_is_sync_error(server):
    c = Raw(server.port)
    assert c.cmd("HELO x")[0] == 250
    c.send(f"MAIL FROM:<a@b.example>\r\nRCPT TO:<{ALICE}>\r\n")
    replies = replies_until_close(c)
    assert replies == [(554, ["554 5.5.0 Error: SMTP protocol synchronization"])]


def test_talking_before_greeting(make_postern):
    p = make_postern("smtpd_pregreet_wait = 1s\n")
    start = time.time()
    c = Raw(p.port, read_greeting=False)
    c.send("EHLO early\r\n")
    replies = replies_until_close(c)
    assert replies == [(554, ["554 5.5.0 Error: SMTP protocol synchronization"])]
    assert time.time() - start < 5
    # A patient client gets the greeting after the wait.
    c = Raw(p.port)
    assert c.greeting[0] == 220
    assert c.cmd("EHLO patient")[0] == 250


# ---------------------------------------------------------------------------------------------------------
# BDAT (RFC 3030)


def test_bdat_chunks_with_crlf_split_across_chunks(server):
    c = Raw(server.port)
    c.cmd("EHLO x")
    mail_rcpt(c)
    first = b"Subject: chunks\r\n\r\nline one\r"  # ends in CR ...
    second = b"\n.line two starts with a dot\r\n.\r\nafter a lone dot\r\n"  # ... next starts with LF
    c.send(b"BDAT %d\r\n" % len(first) + first)
    assert c.reply() == (250, [f"250 2.0.0 Ok: {len(first)} bytes"])
    c.send(b"BDAT %d\r\n" % len(second) + second)
    assert c.reply() == (250, [f"250 2.0.0 Ok: {len(first) + len(second)} bytes"])
    code, lines = c.cmd("BDAT 0 LAST")
    assert code == 250 and lines[0].startswith("250 2.0.0 Ok: queued as ")
    msgs = server.messages("alice")
    assert len(msgs) == 1
    assert b"\r" not in msgs[0]
    # No dot-unstuffing in BDAT: the content is exactly what was sent, with LF line ends.
    assert msgs[0].endswith(b"\nSubject: chunks\n\nline one\n.line two starts with a dot\n.\nafter a lone dot\n")


def test_bdat_last_in_one_send_and_pipelined_chunks(server):
    c = Raw(server.port)
    c.cmd("EHLO x")
    body = b"Subject: one send\r\n\r\nall in one\r\n"
    c.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<alice@example.test>\r\nBDAT %d LAST\r\n" % len(body) + body)
    assert c.reply()[0] == 250
    assert c.reply()[0] == 250
    code, lines = c.reply()
    assert code == 250 and lines[0].startswith("250 2.0.0 Ok: queued as ")
    # Two chunks and the rest of a transaction in one send; a chunk may contain what looks like commands.
    a = b"Subject: two\r\n\r\nQUIT\r\n"
    b = b"RSET\r\nend\r\n"
    c.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<alice@example.test>\r\n"
           b"BDAT %d\r\n" % len(a) + a + b"BDAT %d LAST\r\n" % len(b) + b + b"NOOP\r\n")
    assert c.reply()[0] == 250
    assert c.reply()[0] == 250
    assert c.reply() == (250, [f"250 2.0.0 Ok: {len(a)} bytes"])
    code, lines = c.reply()
    assert code == 250 and lines[0].startswith("250 2.0.0 Ok: queued as ")
    assert c.reply() == (250, ["250 2.0.0 Ok"])
    msgs = sorted(server.messages("alice"), key=lambda m: b"Subject: two" in m)
    assert len(msgs) == 2
    assert msgs[0].endswith(b"\nSubject: one send\n\nall in one\n")
    assert msgs[1].endswith(b"\nSubject: two\n\nQUIT\nRSET\nend\n")


def test_bdat_without_mail_consumes_chunk_and_stays_in_sync(server):
    c = Raw(server.port)
    c.cmd("EHLO x")
    chunk = b"QUIT\r\nRSET\r\n"
    c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
    code, lines = c.reply()
    assert code == 503 and lines[0].startswith("503 5.5.1 ")
    # The chunk was not read as commands (no 221, no close), and exactly one reply was sent for BDAT.
    assert c.cmd("NOOP") == (250, ["250 2.0.0 Ok"])
    assert c.cmd("NOOP") == (250, ["250 2.0.0 Ok"])
    # With MAIL but no RCPT: the same.
    assert c.cmd("MAIL FROM:<a@b.example>")[0] == 250
    c.send(b"BDAT 5 LAST\r\nQUIT\n")
    code, lines = c.reply()
    assert code == 503 and lines[0].startswith("503 5.5.1 ")
    assert c.cmd("NOOP") == (250, ["250 2.0.0 Ok"])
    assert all_files(server, "alice") == []


def test_data_after_bdat_refused(server):
    c = Raw(server.port)
    c.cmd("EHLO x")
    mail_rcpt(c)
    c.send(b"BDAT 5\r\nHello")
    assert c.reply() == (250, ["250 2.0.0 Ok: 5 bytes"])
    code, lines = c.cmd("DATA")
    assert code == 503 and lines[0].startswith("503 5.5.1 ")
    # The chunked transfer can still be finished.
    c.send(b"BDAT 3 LAST\r\n!\r\n")
    code, lines = c.reply()
    assert code == 250 and lines[0].startswith("250 2.0.0 Ok: queued as ")
    assert server.messages("alice")[0].endswith(b"Hello!\n")


# ---------------------------------------------------------------------------------------------------------
# Disconnects, timeouts, connection limits


def test_disconnect_mid_data_leaves_nothing(server):
    c = Raw(server.port)
    c.cmd("EHLO x")
    mail_rcpt(c)
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: cut\r\n\r\n" + "partial line\r\n" * 1000 + "no end")
    c.close()
    deadline = time.time() + 5
    while "lost connection in transaction" not in server.log() and time.time() < deadline:
        time.sleep(0.05)
    assert "lost connection in transaction from unknown[127.0.0.1]" in server.log()
    assert all_files(server, "alice") == []
    still_serves(server)


def test_idle_client_times_out(make_postern):
    p = make_postern("smtpd_timeout = 2s\n")
    c = Raw(p.port)
    c.cmd("EHLO x")
    start = time.time()
    c.sock.settimeout(6)
    code, lines = c.reply()
    elapsed = time.time() - start
    assert code == 421 and lines[0].startswith("421 4.4.2 ") and "Error: timeout exceeded" in lines[0]
    assert 1.5 <= elapsed < 5, elapsed
    assert c.closed(3)
    # Also inside DATA.
    c = Raw(p.port)
    c.cmd("EHLO x")
    mail_rcpt(c)
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: slow\r\n")
    code, lines = c.reply()
    assert code == 421 and lines[0].startswith("421 4.4.2 ")
    assert c.closed(3)
    assert all_files(p, "alice") == []


def test_connection_count_limit_per_client_address(make_postern):
    p = make_postern("smtpd_client_connection_count_limit = 2\n", start=False)
    with open(os.path.join(p.dir, "main.cf"), "a") as f:
        f.write(f"smtp_listen = 127.0.0.1:{p.port}, 127.0.0.2:{p.port}\n")
    p.start()
    time.sleep(0.2)  # wait_port's probe connection must be gone from the count
    first, second = Raw(p.port), Raw(p.port)
    assert first.greeting[0] == 220 and second.greeting[0] == 220
    third = Raw(p.port)
    assert third.greeting[0] == 421
    assert third.greeting[1][0].startswith("421 4.7.0 ")
    assert third.closed(5)
    # Another client address is counted on its own.
    other = Raw.__new__(Raw)
    other.sock = socket.create_connection(("127.0.0.2", p.port), timeout=15, source_address=("127.0.0.2", 0))
    other.buf = b""
    assert other.reply()[0] == 220
    assert other.cmd("NOOP") == (250, ["250 2.0.0 Ok"])
    # The first two are still served; when one leaves, a new one from 127.0.0.1 gets in.
    assert first.cmd("NOOP")[0] == 250
    assert second.cmd("QUIT")[0] == 221
    assert second.closed(5)
    time.sleep(0.2)
    fourth = Raw(p.port)
    assert fourth.greeting[0] == 220


def test_mailbox_size_limit_refuses_at_data_then_at_rcpt(make_postern):
    # mailbox_size_limit is the Maildir's total: a message that would overflow it gets 552 5.2.2 after DATA
    # (nothing stored); once the mailbox is full, RCPT itself gets 552 5.2.2.
    import smtplib
    p = make_postern("mailbox_size_limit = 6000\nmessage_size_limit = 5000\n")
    body = b"Subject: fill\r\n\r\n" + b"x" * 2400 + b"\r\n"
    with smtplib.SMTP("127.0.0.1", p.port) as s:
        s.sendmail("a@b.example", ["alice@example.test"], body)
        s.sendmail("a@b.example", ["alice@example.test"], body)
        s.mail("a@b.example")
        assert s.rcpt("alice@example.test")[0] == 250
        code, msg = s.data(body)
        assert (code, msg[:5]) == (552, b"5.2.2")
        s.rset()
        s.mail("a@b.example")
        # bob is unaffected by alice's full mailbox.
        assert s.rcpt("bob@example.test")[0] == 250
    assert len(p.messages("alice")) == 2 and p.tmp_files("alice") == []
    # The administrator lowers nothing, but a big message arrives by other means (another delivery agent, a
    # restore): the mailbox is now over its limit, and RCPT says so before any data is sent.
    with open(os.path.join(p.maildir("alice"), "new", "1700000000.M1P1.restore,S=4000"), "wb") as f:
        f.write(b"Subject: restored\n\n" + b"z" * 3980)
    with smtplib.SMTP("127.0.0.1", p.port) as s:
        s.mail("a@b.example")
        code, msg = s.rcpt("alice@example.test")
        assert code == 552 and msg == b"5.2.2 <alice@example.test>: Mailbox full", (code, msg)
        assert s.rcpt("bob@example.test")[0] == 250
    p.wait_log("reject: RCPT from unknown[127.0.0.1]: 552 5.2.2 <alice@example.test>: Mailbox full")
