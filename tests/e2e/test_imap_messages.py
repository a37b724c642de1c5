"""IMAP message commands against every server in IMAP_SERVERS: APPEND (flags, date, APPENDUID), FETCH (all the
items a client uses), STORE, keywords, COPY/MOVE (COPYUID), EXPUNGE/UID EXPUNGE, CLOSE vs UNSELECT."""
import re
from datetime import datetime

from imap_servers import make_message

PLAIN = (b"From: Sender <sender@other.test>\r\n"
         b"To: Alice <alice@example.test>, bob@example.test\r\n"
         b"Cc: undisclosed-recipients:;\r\n"
         b"Subject: Hello there\r\n"
         b"Date: Mon, 04 Mar 2024 10:00:00 +0000\r\n"
         b"Message-ID: <plain-1@other.test>\r\n"
         b"MIME-Version: 1.0\r\n"
         b"Content-Type: text/plain; charset=us-ascii\r\n"
         b"\r\n"
         b"0123456789abcdefghij\r\n"
         b"second line\r\n")

MULTI = (b"From: Sender <sender@other.test>\r\n"
         b"To: alice@example.test\r\n"
         b"Subject: multipart\r\n"
         b"Date: Tue, 05 Mar 2024 11:00:00 +0100\r\n"
         b"MIME-Version: 1.0\r\n"
         b'Content-Type: multipart/mixed; boundary="XX"\r\n'
         b"\r\n"
         b"preamble\r\n"
         b"--XX\r\n"
         b"Content-Type: text/plain; charset=utf-8\r\n"
         b"Content-Transfer-Encoding: quoted-printable\r\n"
         b"\r\n"
         b"caf=C3=A9\r\n"
         b"--XX\r\n"
         b'Content-Type: application/octet-stream; name="a.bin"\r\n'
         b"Content-Transfer-Encoding: base64\r\n"
         b'Content-Disposition: attachment; filename="a.bin"\r\n'
         b"\r\n"
         b"AAECAwQFBgcICQ==\r\n"
         b"--XX--\r\n")


def append(r, mailbox, msg, flags="", date=""):
    args = mailbox
    if flags:
        args += f" ({flags})"
    if date:
        args += f' "{date}"'
    status, line, lines = r.cmd(args.join(["APPEND ", ""]).encode() + b" {%d+}\r\n" % len(msg) + msg)
    assert status == "OK", line
    return line


def expunged(lines, count):
    """The original sequence numbers removed by the `* n EXPUNGE` responses in `lines` (in any order), out of
    `count` messages."""
    seqs = list(range(1, count + 1))
    gone = []
    for ln in lines:
        m = re.match(rb"\* (\d+) EXPUNGE$", ln)
        if m:
            gone.append(seqs.pop(int(m.group(1)) - 1))
    return sorted(gone)


def internaldate(resp):
    m = re.search(rb'INTERNALDATE "([^"]+)"', resp)
    return datetime.strptime(m.group(1).decode().strip(), "%d-%b-%Y %H:%M:%S %z")


def fetch_flags(lines):
    """The FLAGS of the first FETCH response, without \\Recent."""
    for ln in lines:
        if re.match(rb"\* \d+ FETCH ", ln):
            return set(re.search(rb"FLAGS \(([^)]*)\)", ln).group(1).split()) - {b"\\Recent"}
    raise AssertionError(f"no FETCH in {lines}")


def append_sync(r, command, msg):
    """APPEND with a synchronizing literal; returns the tagged response (which may come instead of "+")."""
    r.send(b"B1 " + command + b" {%d}\r\n" % len(msg))
    resp = r.response()
    if resp.startswith(b"+"):
        r.send(msg + b"\r\n")
        resp = r.response()
    while resp.startswith(b"* "):
        resp = r.response()
    return resp


def fetch(r, seq, items, uid=False):
    _, lines = r.ok(f"{'UID ' if uid else ''}FETCH {seq} {items}")
    return [ln for ln in lines if re.match(rb"\* \d+ FETCH ", ln)]


def test_append_with_flags_date_and_appenduid(imap_server):
    r = imap_server.raw("alice")
    line = append(r, "INBOX", PLAIN, flags="\\Seen \\Flagged $Label1", date="01-Feb-2024 12:34:56 +0200")
    m = re.search(r"\[APPENDUID (\d+) (\d+)\]", line)
    assert m, line
    uidvalidity, uid = int(m.group(1)), int(m.group(2))
    _, lines = r.ok("SELECT INBOX")
    assert any(f"[UIDVALIDITY {uidvalidity}]".encode() in ln for ln in lines), lines
    (resp,) = fetch(r, "1", "(UID FLAGS INTERNALDATE RFC822.SIZE)")
    assert f"UID {uid}".encode() in resp
    # the same instant (a Maildir keeps the time, not the zone: Dovecot answers "01-Feb-2024 10:34:56 +0000")
    assert internaldate(resp) == datetime.strptime("01-Feb-2024 12:34:56 +0200", "%d-%b-%Y %H:%M:%S %z"), resp
    assert f"RFC822.SIZE {len(PLAIN)}".encode() in resp, resp
    flags = re.search(rb"FLAGS \(([^)]*)\)", resp).group(1).split()
    assert {b"\\Seen", b"\\Flagged", b"$Label1"} <= set(flags), flags
    # the message is stored byte for byte
    (resp,) = fetch(r, "1", "BODY.PEEK[]")
    assert resp.endswith(PLAIN + b")"), resp
    # a second APPEND gets a higher UID
    line = append(r, "INBOX", MULTI)
    assert int(re.search(r"\[APPENDUID \d+ (\d+)\]", line).group(1)) > uid


def test_append_errors(imap_server):
    r = imap_server.raw("alice")
    msg = make_message("x")
    status, line, _ = r.cmd(b"APPEND Nosuch {%d+}\r\n" % len(msg) + msg)
    assert status == "NO" and "[TRYCREATE]" in line, line
    # a bad date, with a synchronizing literal (a server may answer BAD before reading a LITERAL+ literal, as
    # Dovecot does, which would make the literal's bytes look like commands)
    assert append_sync(r, b'APPEND INBOX "31-Foo-2024 00:00:00 +0000"', msg).startswith(b"B1 BAD")
    # \Recent cannot be set by a client (Dovecot: BAD)
    assert re.match(rb"B1 (BAD|NO|OK)", append_sync(r, b"APPEND INBOX (\\Recent)", msg))
    assert append_sync(r, b"APPEND INBOX (\\Seen \\Bogus)", msg).startswith(b"B1 BAD")
    _, lines = r.ok("STATUS INBOX (MESSAGES)")
    assert re.search(rb"MESSAGES [01]\)", lines[-1]), lines
    # synchronizing literal: the server asks for it with "+"
    r.send(b"S1 APPEND INBOX {%d}\r\n" % len(msg))
    assert r.response().startswith(b"+")
    r.send(msg + b"\r\n")
    status, line, _ = r.wait_tagged("S1")
    assert status == "OK", line


def test_fetch_items(imap_server):
    # APPENDed, not delivered: an MTA adds trace headers (Return-Path, Received), and sizes are checked here.
    r = imap_server.raw("alice")
    append(r, "INBOX", PLAIN)
    append(r, "INBOX", MULTI)
    r.ok("SELECT INBOX")
    (resp,) = fetch(r, "1", "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)")
    assert b"FLAGS (" in resp and b"\\Seen" not in resp
    assert re.search(rb'INTERNALDATE "\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}"', resp), resp
    assert b"RFC822.SIZE %d" % len(PLAIN) in resp
    env = resp[resp.index(b"ENVELOPE (") + 9:]
    assert env.startswith(b'("Mon, 04 Mar 2024 10:00:00 +0000" "Hello there" '
                          b'(("Sender" NIL "sender" "other.test")) (("Sender" NIL "sender" "other.test")) '
                          b'(("Sender" NIL "sender" "other.test")) '
                          b'(("Alice" NIL "alice" "example.test")(NIL NIL "bob" "example.test")) '
                          b'((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) NIL NIL '
                          b'"<plain-1@other.test>")'), env
    (resp,) = fetch(r, "1", "BODYSTRUCTURE")
    assert b'BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 35 2 NIL NIL NIL NIL))' in resp, resp
    (resp,) = fetch(r, "2", "BODYSTRUCTURE")
    # a part ends before the CRLF that precedes the boundary: "caf=C3=A9" is 9 octets, 0 lines
    assert re.search(rb'BODYSTRUCTURE \(\("text" "plain" \("charset" "utf-8"\) NIL NIL "quoted-printable" 9 0 '
                     rb'NIL NIL NIL NIL\)\("application" "octet-stream" \("name" "a.bin"\) NIL NIL "base64" 16 NIL '
                     rb'\("attachment" \("filename" "a.bin"\)\) NIL NIL\) "mixed" \("boundary" "XX"\) NIL NIL NIL\)\)',
                     resp), resp
    (resp,) = fetch(r, "2", "BODY")
    assert re.search(rb'BODY \(\("text" "plain" \("charset" "utf-8"\) NIL NIL "quoted-printable" 9 0\)'
                     rb'\("application" "octet-stream" \("name" "a.bin"\) NIL NIL "base64" 16\) "mixed"\)\)', resp), resp
    (resp,) = fetch(r, "1", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
    assert re.search(rb'BODY\[HEADER\.FIELDS \("?SUBJECT"?\)\] \{\d+\}\r\nSubject: Hello there\r\n\r\n\)$', resp), resp
    (resp,) = fetch(r, "1", "BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT DATE FROM TO CC MESSAGE-ID)]")
    assert resp.endswith(b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n)"), resp
    (resp,) = fetch(r, "1", "BODY.PEEK[TEXT]<0.10>")
    assert resp.endswith(b"BODY[TEXT]<0> {10}\r\n0123456789)"), resp
    (resp,) = fetch(r, "1", "BODY.PEEK[TEXT]<15.100>")
    assert resp.endswith(b"BODY[TEXT]<15> {20}\r\nfghij\r\nsecond line\r\n)"), resp
    (resp,) = fetch(r, "2", "(BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[2])")
    assert b"BODY[1] {9}\r\ncaf=C3=A9 " in resp, resp
    assert (b"BODY[1.MIME] {88}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n ") in resp, resp
    assert b"BODY[2] {16}\r\nAAECAwQFBgcICQ==)" in resp, resp
    (resp,) = fetch(r, "2", "(BINARY.SIZE[1] BINARY.SIZE[2])")
    assert b"BINARY.SIZE[1] 5" in resp and b"BINARY.SIZE[2] 10" in resp, resp
    (resp,) = fetch(r, "2", "BINARY.PEEK[2]")
    assert b"BINARY[2] ~{10}\r\n\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09" in resp, resp
    (resp,) = fetch(r, "2", "BINARY.PEEK[1]")
    assert resp.endswith(b"BINARY[1] {5}\r\ncaf\xc3\xa9)") or resp.endswith(b"BINARY[1] ~{5}\r\ncaf\xc3\xa9)"), resp
    (resp,) = fetch(r, "1", "(RFC822.HEADER)")
    assert resp.endswith(PLAIN[:PLAIN.index(b"\r\n\r\n") + 4] + b")") or b"RFC822.HEADER {" in resp
    (resp,) = fetch(r, "1:2", "FLAGS")[:1]
    # none of the PEEKs set \Seen
    _, lines = r.ok("FETCH 1:2 FLAGS")
    assert not any(b"\\Seen" in ln for ln in lines), lines
    # FAST / ALL / FULL macros
    (resp,) = fetch(r, "1", "FAST")
    assert b"FLAGS" in resp and b"INTERNALDATE" in resp and b"RFC822.SIZE" in resp
    (resp,) = fetch(r, "1", "ALL")
    assert b"ENVELOPE" in resp
    (resp,) = fetch(r, "1", "FULL")
    assert b"BODY (" in resp


def test_fetch_body_sets_seen_but_peek_does_not(imap_server):
    imap_server.deliver("alice", PLAIN)
    imap_server.deliver("alice", PLAIN)
    r = imap_server.raw("alice")
    r.ok("SELECT INBOX")
    (resp,) = fetch(r, "1", "BODY.PEEK[]")
    assert b"\\Seen" not in resp
    _, lines = r.ok("FETCH 1 FLAGS")
    assert b"\\Seen" not in lines[0]
    _, lines = r.ok("FETCH 1 BODY[]")
    fetched = b"".join(lines)
    assert PLAIN in fetched
    assert b"\\Seen" in fetched  # the implicit FLAGS change is reported (RFC 3501 6.4.5)
    _, lines = r.ok("FETCH 1:2 FLAGS")
    assert b"\\Seen" in lines[0] and b"\\Seen" not in lines[1], lines
    _, lines = r.ok("FETCH 2 RFC822.TEXT")
    _, lines = r.ok("FETCH 2 FLAGS")
    assert b"\\Seen" in lines[0]
    _, lines = r.ok("STATUS INBOX (UNSEEN)")  # STATUS on the selected mailbox is allowed
    assert b"UNSEEN 0" in lines[-1]


def test_uid_fetch(imap_server):
    for i in range(3):
        imap_server.deliver("alice", make_message(f"m{i}"))
    r = imap_server.raw("alice")
    r.ok("SELECT INBOX")
    _, lines = r.ok("FETCH 1:* UID")
    uids = [int(re.search(rb"UID (\d+)", ln).group(1)) for ln in lines if b" FETCH " in ln]
    assert len(uids) == 3 and uids == sorted(uids)
    resps = fetch(r, f"{uids[1]}:*", "FLAGS", uid=True)
    assert len(resps) == 2
    for resp in resps:
        assert re.search(rb"UID \d+", resp), resp  # UID FETCH always returns UID
    resps = fetch(r, f"{uids[2] + 100}:*", "FLAGS", uid=True)  # n:* always includes the highest UID
    assert len(resps) == 1 and f"UID {uids[2]}".encode() in resps[0], resps
    assert fetch(r, f"{uids[2] + 100}", "FLAGS", uid=True) == []  # nonexistent UID: OK, no data
    resps = fetch(r, f"{uids[0]},{uids[2]}", "(UID RFC822.SIZE)", uid=True)
    assert [re.match(rb"\* (\d+)", x).group(1) for x in resps] == [b"1", b"3"]
    status, line, _ = r.cmd("FETCH 4 FLAGS")  # beyond EXISTS: BAD (RFC 9051) or NO
    assert status in ("BAD", "NO"), line


def test_store_flags_and_keywords(imap_server):
    for i in range(3):
        imap_server.deliver("alice", make_message(f"m{i}"))
    r = imap_server.raw("alice")
    r.ok("SELECT INBOX")
    _, lines = r.ok("STORE 1 +FLAGS (\\Flagged \\Answered)")
    assert re.search(rb"^\* 1 FETCH \(.*FLAGS \(", lines[0]) and b"\\Flagged" in lines[0], lines
    _, lines = r.ok("STORE 1 -FLAGS (\\Answered)")
    assert b"\\Answered" not in lines[0] and b"\\Flagged" in lines[0]
    _, lines = r.ok("STORE 2 +FLAGS.SILENT (\\Seen)")
    assert not [ln for ln in lines if b"FETCH" in ln], lines  # .SILENT: no FETCH response for our own change
    _, lines = r.ok("FETCH 2 FLAGS")
    assert b"\\Seen" in lines[0]
    _, lines = r.ok("STORE 3 FLAGS (\\Draft Work)")
    assert fetch_flags(lines) == {b"\\Draft", b"Work"}, lines
    # a new keyword is announced with untagged FLAGS (and PERMANENTFLAGS) before the FETCH (RFC 3501 7.2.6)
    flag_lines = [ln for ln in lines if ln.startswith(b"* FLAGS ")]
    if flag_lines:
        assert b"Work" in flag_lines[0], lines
    _, lines = r.ok("STORE 3 FLAGS ()")
    assert fetch_flags(lines) == set(), lines
    # keywords: a new keyword shows up in FLAGS (and PERMANENTFLAGS) of the mailbox
    _, lines = r.ok("STORE 1:3 +FLAGS ($Important)")
    assert len([ln for ln in lines if b" FETCH " in ln and b"$Important" in ln]) == 3, lines
    _, lines = r.ok("SELECT INBOX")
    flag_line = [ln for ln in lines if ln.startswith(b"* FLAGS ")][0]
    assert b"$Important" in flag_line, lines
    # UID STORE
    _, lines = r.ok("FETCH 2 UID")
    uid = int(re.search(rb"UID (\d+)", lines[0]).group(1))
    _, lines = r.ok(f"UID STORE {uid} +FLAGS (\\Deleted)")
    assert re.search(rb"^\* 2 FETCH \(", lines[0]) and f"UID {uid}".encode() in lines[0], lines
    # \Recent cannot be stored; bad flag syntax is BAD
    assert r.cmd("STORE 1 +FLAGS (\\Recent)")[0] in ("BAD", "NO", "OK")
    assert r.cmd("STORE 1 +FLAGS (\\NoSuchSystemFlag)")[0] in ("BAD", "NO")
    assert r.cmd("STORE 1 XFLAGS (\\Seen)")[0] == "BAD"


def test_copy_and_move_with_copyuid(imap_server):
    for i in range(3):
        imap_server.deliver("alice", make_message(f"m{i}"))
    r = imap_server.raw("alice")
    r.ok("CREATE Archive")
    r.ok("SELECT INBOX")
    r.ok("STORE 1 +FLAGS (\\Flagged)")
    tagged, lines = r.ok("COPY 1:2 Archive")
    m = re.search(r"\[COPYUID (\d+) (\S+) (\S+)\]", tagged)
    assert m, tagged
    _, st = r.ok("STATUS Archive (MESSAGES UIDVALIDITY)")
    assert b"MESSAGES 2" in st[-1] and f"UIDVALIDITY {m.group(1)}".encode() in st[-1]
    _, lines = r.ok("SELECT INBOX")
    assert b"* 3 EXISTS" in lines  # COPY leaves the source
    # MOVE: untagged COPYUID in an OK response (RFC 6851), EXPUNGE for the source message
    status, tagged, lines = r.cmd("MOVE 3 Archive")
    assert status == "OK", tagged
    assert any(b"[COPYUID " in ln for ln in lines) or "[COPYUID " in tagged, lines
    assert b"* 3 EXPUNGE" in lines, lines
    _, lines = r.ok("STATUS Archive (MESSAGES)")
    assert b"MESSAGES 3" in lines[-1]
    # UID MOVE
    _, lines = r.ok("FETCH 1 UID")
    uid = int(re.search(rb"UID (\d+)", lines[0]).group(1))
    status, tagged, lines = r.cmd(f"UID MOVE {uid} Archive")
    assert status == "OK" and b"* 1 EXPUNGE" in lines, (tagged, lines)
    # the copied flags travel with the message
    r.ok("SELECT Archive")
    _, lines = r.ok("FETCH 1:* FLAGS")
    assert sum(b"\\Flagged" in ln for ln in lines) == 2, lines  # the COPY and the UID MOVE of message 1
    # into a mailbox that does not exist: NO [TRYCREATE]
    status, line, _ = r.cmd("COPY 1 Nosuch")
    assert status == "NO" and "[TRYCREATE]" in line, line
    status, line, _ = r.cmd("MOVE 1 Nosuch")
    assert status == "NO" and "[TRYCREATE]" in line, line


def test_expunge_and_uid_expunge(imap_server):
    for i in range(5):
        imap_server.deliver("alice", make_message(f"m{i}"))
    r = imap_server.raw("alice")
    r.ok("SELECT INBOX")
    r.ok("STORE 2,4 +FLAGS.SILENT (\\Deleted)")
    _, lines = r.ok("EXPUNGE")
    # sequence numbers shift down after each EXPUNGE response: "2, 3" or (Dovecot) "4, 2" both mean 2 and 4
    assert expunged(lines, 5) == [2, 4], lines
    _, lines = r.ok("FETCH 1:* UID")
    uids = [int(re.search(rb"UID (\d+)", ln).group(1)) for ln in lines]
    assert len(uids) == 3
    r.ok("STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    _, lines = r.ok(f"UID EXPUNGE {uids[1]}")  # only that UID, though all three are \Deleted
    assert [ln for ln in lines if ln.endswith(b"EXPUNGE")] == [b"* 2 EXPUNGE"], lines
    _, lines = r.ok("SELECT INBOX")
    assert b"* 2 EXISTS" in lines


def test_close_expunges_unselect_does_not(imap_server):
    for i in range(3):
        imap_server.deliver("alice", make_message(f"m{i}"))
    r = imap_server.raw("alice")
    r.ok("SELECT INBOX")
    r.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    _, lines = r.ok("UNSELECT")
    assert not [ln for ln in lines if b"EXPUNGE" in ln]
    assert r.cmd("FETCH 1 FLAGS")[0] in ("BAD", "NO")  # nothing is selected any more
    _, lines = r.ok("SELECT INBOX")
    assert b"* 3 EXISTS" in lines
    _, lines = r.ok("CLOSE")
    assert not [ln for ln in lines if b"EXPUNGE" in ln]  # CLOSE expunges silently
    _, lines = r.ok("EXAMINE INBOX")
    assert b"* 2 EXISTS" in lines
    # CLOSE on a read-only mailbox expunges nothing
    r.ok("CLOSE")
    r.ok("SELECT INBOX")
    r.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    r.ok("EXAMINE INBOX")
    r.ok("CLOSE")
    _, lines = r.ok("SELECT INBOX")
    assert b"* 2 EXISTS" in lines


def test_append_to_selected_mailbox_reports_exists(imap_server):
    r = imap_server.raw("alice")
    r.ok("SELECT INBOX")
    msg = make_message("appended")
    status, line, lines = r.cmd(b"APPEND INBOX {%d+}\r\n" % len(msg) + msg)
    assert status == "OK"
    if b"* 1 EXISTS" not in lines:
        _, lines = r.ok("NOOP")
    assert b"* 1 EXISTS" in lines, lines


def test_append_utf8_after_enable(imap_server):
    """RFC 6855 4: after ENABLE UTF8=ACCEPT, APPEND takes "UTF8 (~{n}...)": a message with a UTF-8 header,
    stored byte for byte; before ENABLE, and with a plain literal inside, the same APPEND is BAD."""
    r = imap_server.raw("alice")
    _, caps = r.ok("CAPABILITY")
    if b"UTF8=ACCEPT" not in b" ".join(caps):
        import pytest
        pytest.skip(f"{imap_server.name} does not offer UTF8=ACCEPT")
    msg = ("From: Jörg <jörg@exämple.test>\r\nTo: alice@example.test\r\nSubject: Grüße\r\n\r\nHallo\r\n").encode()
    status, line, _ = r.cmd(b"APPEND INBOX UTF8 (~{%d+}\r\n" % len(msg) + msg + b")")
    assert status == "BAD", line
    r.ok("ENABLE UTF8=ACCEPT")
    status, line, _ = r.cmd(b"APPEND INBOX UTF8 ({%d+}\r\n" % len(msg) + msg + b")")
    assert status == "BAD", line
    status, line, _ = r.cmd(b"APPEND INBOX (\\Seen) UTF8 (~{%d+}\r\n" % len(msg) + msg + b")")
    assert status == "OK" and "[APPENDUID" in line, line
    r.ok("SELECT INBOX")
    (resp,) = fetch(r, "1", "(FLAGS BODY.PEEK[])")
    assert resp.endswith(msg + b")") and b"\\Seen" in resp, resp
    (resp,) = fetch(r, "1", "ENVELOPE")
    assert "Grüße".encode() in resp, resp
