"""Several IMAP sessions on one mailbox against every server in IMAP_SERVERS: IDLE sees APPENDs and deliveries,
sessions see each other's flag changes and expunges."""
import re
import time

from imap_servers import make_message


def wait_for(r, pattern, timeout=8.0):
    """Reads untagged responses until one matches `pattern` (bytes regex); returns it or fails."""
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        r.sock.settimeout(max(0.1, deadline - time.time()))
        try:
            resp = r.response()
        except OSError:
            break
        seen.append(resp)
        if re.search(pattern, resp):
            return resp
    raise AssertionError(f"no {pattern!r} within {timeout}s; got {seen}")


def idle(r):
    r.send(b"I1 IDLE\r\n")
    resp = r.response()
    assert resp.startswith(b"+"), resp


def done(r):
    r.send(b"DONE\r\n")
    status, line, _ = r.wait_tagged("I1")
    assert status == "OK", line


def test_idle_sees_append_from_another_session(imap_server):
    a = imap_server.raw("alice")
    a.ok("SELECT INBOX")
    idle(a)
    b = imap_server.raw("alice")
    msg = make_message("while idling")
    b.ok(b"APPEND INBOX {%d+}\r\n" % len(msg) + msg)
    wait_for(a, rb"^\* 1 EXISTS$")
    done(a)
    _, lines = a.ok("FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
    assert b"while idling" in lines[0]


def test_idle_sees_delivery(imap_server):
    a = imap_server.raw("alice")
    a.ok("SELECT INBOX")
    idle(a)
    imap_server.deliver("alice", make_message("delivered during idle"))
    wait_for(a, rb"^\* 1 EXISTS$")
    done(a)
    imap_server.deliver("alice", make_message("delivered after idle"))
    _, lines = a.ok("NOOP")
    assert b"* 2 EXISTS" in lines, lines


def test_sessions_see_flag_changes_and_expunges(imap_server):
    for i in range(3):
        imap_server.deliver("alice", make_message(f"m{i}"))
    a = imap_server.raw("alice")
    b = imap_server.raw("alice")
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    a.ok("STORE 2 +FLAGS (\\Flagged)")
    _, lines = b.ok("NOOP")
    assert any(re.match(rb"\* 2 FETCH \(.*\\Flagged", ln) for ln in lines), lines
    a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    _, lines = b.ok("NOOP")
    assert b"* 1 EXPUNGE" in lines, lines
    _, lines = b.ok("FETCH 1:* FLAGS")
    assert len([ln for ln in lines if b" FETCH " in ln]) == 2
    assert b"\\Flagged" in lines[0]  # the old message 2 is message 1 now
    # FETCH/STORE/SEARCH must not report expunges (RFC 3501 7.4.1); NOOP delivers them
    a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    _, lines = b.ok("FETCH 1 FLAGS")
    assert not [ln for ln in lines if ln.endswith(b"EXPUNGE")], lines
    _, lines = b.ok("NOOP")
    assert b"* 1 EXPUNGE" in lines, lines


def test_idle_sees_expunge_and_flags(imap_server):
    imap_server.deliver("alice", make_message("one"))
    imap_server.deliver("alice", make_message("two"))
    a = imap_server.raw("alice")
    b = imap_server.raw("alice")
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    idle(a)
    b.ok("STORE 2 +FLAGS (\\Answered)")
    wait_for(a, rb"^\* 2 FETCH \(.*\\Answered")
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    wait_for(a, rb"^\* 1 EXPUNGE$")
    done(a)


def test_other_users_mail_is_separate(imap_server):
    imap_server.deliver("bob", make_message("for bob"))
    a = imap_server.raw("alice")
    _, lines = a.ok("SELECT INBOX")
    assert b"* 0 EXISTS" in lines
    b = imap_server.raw("bob")
    _, lines = b.ok("SELECT INBOX")
    assert b"* 1 EXISTS" in lines
