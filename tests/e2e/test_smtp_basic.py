"""SMTP in, Maildir out: the guide's telnet session and Python's smtplib."""
import os
import smtplib
import stat

from conftest import DOMAIN, Raw


def test_guide_telnet_dialogue_byte_for_byte(server):
    # Exactly what a person types in the guide (telnet sends CRLF), with lower-case verbs, no angle brackets
    # and a space after the colon.
    c = Raw(server.port)
    assert c.greeting == (220, [f"220 mail.{DOMAIN} ESMTP Postern"])
    code, lines = c.cmd("ehlo localhost")
    assert code == 250 and lines[0] == f"250-mail.{DOMAIN}"
    assert "250-PIPELINING" in lines and "250-8BITMIME" in lines and "250 CHUNKING" in lines
    assert c.cmd("mail from: root@localhost") == (250, ["250 2.1.0 Ok"])
    assert c.cmd(f"rcpt to: alice@{DOMAIN}") == (250, ["250 2.1.5 Ok"])
    assert c.cmd("data")[0] == 354
    c.send("Subject: My Postfix Test\r\n\r\nTest Message 123\r\nThis is the body\r\nGoodbye\r\n.\r\n")
    code, lines = c.reply()
    assert code == 250 and lines[0].startswith("250 2.0.0 Ok: queued as ")
    assert c.cmd("quit") == (221, ["221 2.0.0 Bye"])
    msgs = server.messages("alice")
    assert len(msgs) == 1
    m = msgs[0]
    assert m.startswith(b"Return-Path: <root@localhost>\nDelivered-To: alice@example.test\nReceived: from localhost")
    assert m.endswith(b"Subject: My Postfix Test\n\nTest Message 123\nThis is the body\nGoodbye\n")
    queue_id = lines[0].rsplit(" ", 1)[1]
    assert f"with ESMTP id {queue_id}".encode() in m
    md = server.maildir("alice")
    assert stat.S_IMODE(os.stat(md).st_mode) == 0o700
    assert server.tmp_files("alice") == []
    log = server.wait_log("disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5")
    assert f"{queue_id}: to=<alice@{DOMAIN}>, relay=local" in log and "status=sent (delivered to maildir)" in log


def test_smtplib_several_recipients_alias_and_extension(server):
    with smtplib.SMTP("127.0.0.1", server.port) as s:
        s.ehlo("client.example")
        assert s.has_extn("pipelining") and s.has_extn("size") and s.has_extn("smtputf8")
        refused = s.sendmail("sender@elsewhere.example", [f"alice+lists@{DOMAIN}", f"team@mail.{DOMAIN}", "postmaster"],
                             b"Subject: hi\r\n\r\nbody\r\n")
        assert refused == {}
    # alice is reached three ways but gets one copy; bob through the alias.
    assert len(server.messages("alice")) == 1
    assert len(server.messages("bob")) == 1
    assert b"Delivered-To: bob@example.test" in server.messages("bob")[0]


def test_unknown_user_and_relay_refused(make_postern):
    # The client is outside mynetworks; Postfix's default relay restrictions defer (454) relaying.
    server = make_postern("mynetworks = 127.0.0.2/32\n")
    with smtplib.SMTP("127.0.0.1", server.port) as s:
        s.ehlo("x")
        s.mail("a@b.example")
        assert s.rcpt(f"nobody@{DOMAIN}") == (550, f"5.1.1 <nobody@{DOMAIN}>: Recipient address rejected: User unknown".encode())
        code, msg = s.rcpt("victim@gmail.example")
        assert code == 454 and msg == b"4.7.1 <victim@gmail.example>: Relay access denied"
        code, msg = s.docmd("DATA")
        assert code == 554 and msg.startswith(b"5.5.1")
    server.wait_log("NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 454 4.7.1 <victim@gmail.example>: Relay access denied")


def test_smtputf8_and_8bitmime(server):
    body = "Subject: Grüße\r\n\r\nÄpfel und Birnen\r\n".encode()
    with smtplib.SMTP("127.0.0.1", server.port) as s:
        s.ehlo("x")
        s.sendmail("jörg@bücher.example", [f"alice@{DOMAIN}"], body, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    m = server.messages("alice")[0]
    assert "Return-Path: <jörg@bücher.example>".encode() in m and "Äpfel".encode() in m
    assert b"with UTF8SMTP id" in m


def test_rset_noop_vrfy_help(server):
    c = Raw(server.port)
    c.cmd("EHLO x")
    assert c.cmd("MAIL FROM:<a@b.example>")[0] == 250
    assert c.cmd("RSET") == (250, ["250 2.0.0 Ok"])
    assert c.cmd("RCPT TO:<alice@example.test>") == (503, ["503 5.5.1 Error: need MAIL command"])
    assert c.cmd("NOOP") == (250, ["250 2.0.0 Ok"])
    # The same answer for a user that exists and one that does not.
    assert c.cmd("VRFY alice")[0] == 252
    assert c.cmd("VRFY nobody")[1] == c.cmd("VRFY alice")[1]
    assert c.cmd("HELP")[0] == 214
    assert c.cmd("EXPN team")[0] == 502


def test_vrfy_can_be_disabled(make_postern):
    p = make_postern("disable_vrfy_command = yes\n")
    c = Raw(p.port)
    code, lines = c.cmd("EHLO x")
    assert "250-VRFY" not in lines
    assert c.cmd("VRFY alice") == (502, ["502 5.5.1 VRFY command is disabled"])


def test_virtual_alias_maps(make_postern):
    # Postfix's virtual(5) table: exact address, extension stripped, catch-all, an address that keeps its own
    # mailbox and copies another, a domain with aliases only; unknown addresses are still refused.
    p = make_postern(start=False)
    with open(os.path.join(p.dir, "virtual"), "w") as f:
        f.write(
            f"postmaster@{DOMAIN}  alice@{DOMAIN}\n"
            f"sales@{DOMAIN}       alice@{DOMAIN}, bob@{DOMAIN}\n"
            f"bob@{DOMAIN}         bob@{DOMAIN}, alice@{DOMAIN}\n"
            f"@aliases.test        bob@{DOMAIN}\n"
        )
    with open(os.path.join(p.dir, "main.cf"), "a") as f:
        f.write("virtual_alias_maps = hash:virtual\nvirtual_alias_domains = aliases.test\n")
    p.start()
    with smtplib.SMTP("127.0.0.1", p.port) as s:
        s.ehlo("x")
        for rcpt in (f"postmaster@{DOMAIN}", f"sales+q3@{DOMAIN}", "anyone@aliases.test"):
            s.sendmail("a@b.example", [rcpt], f"Subject: to {rcpt}\r\n\r\nx\r\n".encode())
        s.sendmail("a@b.example", [f"bob@{DOMAIN}"], b"Subject: to bob\r\n\r\nx\r\n")
        s.mail("a@b.example")
        assert s.rcpt(f"nobody@{DOMAIN}")[0] == 550
    alice = b"".join(p.messages("alice"))
    bob = b"".join(p.messages("bob"))
    # postmaster, sales, and bob's copy of both mail to bob and mail to the catch-all (expansion is recursive)
    assert alice.count(b"Subject: to ") == 4
    assert b"Subject: to postmaster@" in alice and b"Subject: to sales+q3@" in alice and b"Subject: to bob" in alice
    assert bob.count(b"Subject: to ") == 3  # sales, the catch-all, bob himself
    assert b"Subject: to anyone@aliases.test" in bob
    p.wait_log(f"to=<alice@{DOMAIN}>, orig_to=<postmaster@{DOMAIN}>")
