"""The SMTP DSN extension on the server side (RFC 3461): EHLO lists DSN; RET and ENVID on MAIL, NOTIFY and ORCPT
on RCPT are checked as the RFC and Postfix check them and kept with each recipient in the outbound queue file
(records e, r, y and o: src/queue/queue_file.hpp), where the queue manager finds them when it reports on
delivery.  A local recipient that asked NOTIFY=SUCCESS is reported "delivered" to the sender at once (RFC 3464
report, read back with Python's email package), into the sender's mailbox or the outbound queue.

The client is 127.0.0.1, inside the default mynetworks: mail to other domains is queued.
"""
import email
import os
import smtplib

import pytest

from conftest import DOMAIN, Raw

MSG = b"Subject: dsn test\r\n\r\nhello\r\n"


def records(data):
    """The queue file's records before the message, as (type, value) pairs."""
    assert data.startswith(b"POSTERN-QUEUE 1\n")
    pos, out = len(b"POSTERN-QUEUE 1\n"), []
    while True:
        kind = data[pos:pos + 1].decode()
        colon = data.index(b":", pos)
        length = int(data[pos + 1:colon])
        if kind == "M":
            return out
        out.append((kind, data[colon + 1:colon + 1 + length].decode()))
        assert data[colon + 1 + length:colon + 2 + length] == b"\n"
        pos = colon + 2 + length


def queued(p, queue_id):
    return records(p.queue_file(queue_id))


def test_ehlo_lists_dsn(server):
    with smtplib.SMTP("127.0.0.1", server.port) as s:
        code, _ = s.ehlo("client.example")
        assert code == 250 and s.has_extn("dsn")


def test_dsn_parameters_are_kept_in_the_queue_file(server):
    with smtplib.SMTP("127.0.0.1", server.port) as s:
        s.ehlo("client.example")
        assert s.mail("a@x.example", ["RET=HDRS", "ENVID=abc"])[0] == 250
        assert s.rcpt("b@elsewhere.example", ["NOTIFY=FAILURE", "ORCPT=rfc822;b@elsewhere.example"])[0] == 250
        assert s.rcpt("c@elsewhere.example", ["NOTIFY=success,delay", "ORCPT=rfc822;C+2Bx@elsewhere.example"])[0] == 250
        assert s.rcpt("d@elsewhere.example", ["NOTIFY=NEVER"])[0] == 250
        assert s.rcpt("e@elsewhere.example")[0] == 250
        # A local recipient with NOTIFY=SUCCESS is delivered at once.
        assert s.rcpt(f"bob@{DOMAIN}", ["NOTIFY=SUCCESS"])[0] == 250
        code, msg = s.data(MSG)
    assert code == 250
    queue_id = msg.decode().rsplit(" ", 1)[1]
    assert len(server.messages("bob")) == 1
    recs = queued(server, queue_id)
    assert ("e", "abc") in recs and ("r", "HDRS") in recs
    rcpts = {}
    current = None
    for kind, value in recs:
        if kind == "R":
            current = rcpts.setdefault(value, {})
        elif kind in "yo":
            assert current is not None, f"{kind} record before any recipient"
            current[kind] = value
    assert rcpts == {
        "b@elsewhere.example": {"y": "FAILURE", "o": "rfc822;b@elsewhere.example"},
        "c@elsewhere.example": {"y": "SUCCESS,DELAY", "o": "rfc822;C+x@elsewhere.example"},  # xtext decoded
        "d@elsewhere.example": {"y": "NEVER"},
        "e@elsewhere.example": {},
    }
    # mailq reads the file with its new records.
    out = server.run("mailq").stdout
    assert queue_id in out and "e@elsewhere.example" in out


def test_without_dsn_parameters_no_dsn_records(server):
    with smtplib.SMTP("127.0.0.1", server.port) as s:
        s.ehlo("client.example")
        s.mail("a@x.example")
        s.rcpt("b@elsewhere.example")
        code, msg = s.data(MSG)
    assert code == 250
    kinds = {kind for kind, _ in queued(server, msg.decode().rsplit(" ", 1)[1])}
    assert not kinds & set("eryo")


# (command after EHLO and a good MAIL where needed, the full reply line)
BAD = [
    ("MAIL FROM:<a@x.example> RET=HEADERS", "501 5.5.4 Bad RET parameter syntax"),
    ("MAIL FROM:<a@x.example> RET=FULL RET=HDRS", "501 5.5.4 Bad RET parameter syntax"),
    ("MAIL FROM:<a@x.example> ENVID=abc ENVID=abc", "501 5.5.4 Bad ENVID parameter syntax"),
    ("MAIL FROM:<a@x.example> ENVID=a+0D+0AX-Evil:+201", "501 5.5.4 Bad ENVID parameter syntax"),
    ("MAIL FROM:<a@x.example> ENVID=a+4", "501 5.5.4 Bad ENVID parameter syntax"),
    ("MAIL FROM:<a@x.example> ENVID=" + "x" * 101, "501 5.5.4 Bad ENVID parameter syntax"),
    ("MAIL FROM:<a@x.example> NOTIFY=NEVER", "555 5.5.4 Unsupported option: NOTIFY"),
    ("RCPT TO:<b@elsewhere.example> NOTIFY=NEVER,FAILURE", "501 5.5.4 Bad NOTIFY parameter syntax"),
    ("RCPT TO:<b@elsewhere.example> NOTIFY=FAILURE,", "501 5.5.4 Bad NOTIFY parameter syntax"),
    ("RCPT TO:<b@elsewhere.example> NOTIFY=DELAY NOTIFY=DELAY", "501 5.5.4 Bad NOTIFY parameter syntax"),
    ("RCPT TO:<b@elsewhere.example> NOTIFY=WHENEVER", "501 5.5.4 Bad NOTIFY parameter syntax"),
    ("RCPT TO:<b@elsewhere.example> ORCPT=b@elsewhere.example", "501 5.5.4 Bad ORCPT parameter syntax"),
    ("RCPT TO:<b@elsewhere.example> ORCPT=rfc822;b+0A", "501 5.5.4 Bad ORCPT parameter syntax"),
    ("RCPT TO:<b@elsewhere.example> ORCPT=rfc822;" + "b" * 494, "501 5.5.4 Bad ORCPT parameter syntax"),
    ("RCPT TO:<b@elsewhere.example> ORCPT=rfc822;b ORCPT=rfc822;b", "501 5.5.4 Bad ORCPT parameter syntax"),
    ("RCPT TO:<b@elsewhere.example> RET=FULL", "555 5.5.4 Unsupported option: RET"),
]


@pytest.mark.parametrize("command,reply", BAD, ids=[b[0][:60] for b in BAD])
def test_bad_dsn_parameters_are_refused(server, command, reply):
    c = Raw(server.port)
    assert c.cmd("EHLO client.example")[0] == 250
    if command.startswith("RCPT"):
        assert c.cmd("MAIL FROM:<a@x.example>")[0] == 250
    code, lines = c.cmd(command)
    assert lines[-1] == reply
    # The transaction goes on: the right form of the same command is taken.
    if command.startswith("RCPT"):
        assert c.cmd("RCPT TO:<b@elsewhere.example> NOTIFY=FAILURE ORCPT=rfc822;b@elsewhere.example")[0] == 250
    else:
        assert c.cmd("MAIL FROM:<a@x.example> RET=FULL ENVID=" + "x" * 100)[0] == 250
    c.cmd("QUIT")


def test_dsn_parameters_need_ehlo(server):
    c = Raw(server.port)
    assert c.cmd("HELO client.example")[0] == 250
    assert c.cmd("MAIL FROM:<a@x.example> RET=HDRS")[1][-1] == "555 5.5.4 Unsupported option: ESMTP parameters need EHLO"
    assert c.cmd("MAIL FROM:<a@x.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@elsewhere.example> NOTIFY=NEVER")[1][-1] == (
        "555 5.5.4 Unsupported option: ESMTP parameters need EHLO")
    c.cmd("QUIT")


def delivered_report(raw):
    """The parts of a success DSN, checked with Python's email package: (top, [blocks], returned headers)."""
    m = email.message_from_bytes(raw)
    assert m.get_content_type() == "multipart/report" and m.get_param("report-type") == "delivery-status"
    assert m["Subject"] == "Successful Mail Delivery Report"
    assert m["From"] == f"MAILER-DAEMON@mail.{DOMAIN} (Mail Delivery System)"
    assert m["Auto-Submitted"] == "auto-replied"
    parts = m.get_payload()
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    assert not m.defects and not any(p.defects for p in m.walk())
    return m, parts[1].get_payload(), parts[2].get_payload()


def test_notify_success_for_a_local_recipient_reaches_a_local_sender(server):
    with smtplib.SMTP("127.0.0.1", server.port) as s:
        s.ehlo("client.example")
        s.mail(f"alice@{DOMAIN}", ["ENVID=order+2B42"])
        assert s.rcpt(f"bob@{DOMAIN}", ["NOTIFY=SUCCESS", f"ORCPT=rfc822;Bob@{DOMAIN}"])[0] == 250
        code, msg = s.data(MSG)
    assert code == 250
    queue_id = msg.decode().rsplit(" ", 1)[1]
    assert len(server.messages("bob")) == 1
    server.wait_log(f"{queue_id}: sender delivery status notification")
    (report,) = server.messages("alice")
    assert report.startswith(b"Return-Path: <>\n")
    m, blocks, returned = delivered_report(report)
    assert m["To"] == f"alice@{DOMAIN}"
    assert blocks[0]["Reporting-MTA"] == f"dns; mail.{DOMAIN}"
    assert blocks[0]["X-Postern-Queue-ID"] == queue_id
    assert blocks[0]["Original-Envelope-Id"] == "order+42"
    assert blocks[1]["Final-Recipient"] == f"rfc822; bob@{DOMAIN}"
    assert blocks[1]["Original-Recipient"] == f"rfc822;Bob@{DOMAIN}"
    assert blocks[1]["Action"] == "delivered" and blocks[1]["Status"] == "2.0.0"
    assert "Subject: dsn test" in returned and "hello" not in returned  # the header only


def test_notify_success_for_a_remote_sender_is_queued_from_the_null_sender(server):
    with smtplib.SMTP("127.0.0.1", server.port) as s:
        s.ehlo("client.example")
        s.mail("a@x.example")
        assert s.rcpt(f"bob@{DOMAIN}", ["NOTIFY=SUCCESS,FAILURE"])[0] == 250
        assert s.rcpt(f"alice@{DOMAIN}", ["NOTIFY=FAILURE"])[0] == 250
        code, msg = s.data(MSG)
    assert code == 250
    queue_id = msg.decode().rsplit(" ", 1)[1]
    log = server.wait_log(f"{queue_id}: sender delivery status notification: ")
    notice_id = log.split(f"{queue_id}: sender delivery status notification: ", 1)[1].split()[0]
    data = server.queue_file(notice_id)
    recs = records(data)
    assert ("S", "") in recs and ("R", "a@x.example") in recs
    _, blocks, _ = delivered_report(data.split(b"\nM", 1)[1].split(b":", 1)[1][: -len(b"\nE0:\n")])
    assert [b["Final-Recipient"] for b in blocks[1:]] == [f"rfc822; bob@{DOMAIN}"]  # alice did not ask


@pytest.mark.parametrize("sender,notify", [("", "SUCCESS"), (f"alice@{DOMAIN}", "FAILURE,DELAY"),
                                           (f"alice@{DOMAIN}", "NEVER"), (f"alice@{DOMAIN}", None)])
def test_no_success_report_unless_asked_and_never_to_the_null_sender(server, sender, notify):
    with smtplib.SMTP("127.0.0.1", server.port) as s:
        s.ehlo("client.example")
        s.mail(sender)
        assert s.rcpt(f"bob@{DOMAIN}", [f"NOTIFY={notify}"] if notify else [])[0] == 250
        code, msg = s.data(MSG)
    assert code == 250
    assert len(server.messages("bob")) == 1
    assert server.messages("alice") == []
    assert os.listdir(os.path.join(server.root, "queue", "deferred")) == []
    assert "delivery status notification" not in server.log()


def test_bounce_size_limit_caps_the_returned_header(make_postern):
    p = make_postern("bounce_size_limit = 300\n")
    header = "".join(f"X-Filler-{i}: {'f' * 60}\r\n" for i in range(20))
    with smtplib.SMTP("127.0.0.1", p.port) as s:
        s.ehlo("client.example")
        s.mail(f"alice@{DOMAIN}")
        assert s.rcpt(f"bob@{DOMAIN}", ["NOTIFY=SUCCESS"])[0] == 250
        assert s.data(header.encode() + MSG)[0] == 250
    (report,) = p.messages("alice")
    _, _, returned = delivered_report(report)
    assert returned.startswith("Received: from client.example")
    assert 0 < len(returned.encode()) <= 300 and returned.endswith("\n") and "X-Filler-19" not in returned
