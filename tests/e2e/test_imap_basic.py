"""IMAP session basics against every server in IMAP_SERVERS: greeting, CAPABILITY, LOGIN, LOGOUT, NAMESPACE, ID,
ENABLE, NOOP and what a server must do with bad input (RFC 3501, RFC 9051 and the named extensions)."""
import imaplib
import os
import re

import pytest

from imap_servers import fresh_source, untagged

# RFC 3501 requires these of every IMAP4rev1 server (AUTH=PLAIN only over TLS, STARTTLS only with TLS, so not here)
REQUIRED = {"IMAP4REV1"}
# the extensions a Dovecot admin relies on, named in the IMAP issue
EXTENSIONS = {"IDLE", "UIDPLUS", "LITERAL+", "NAMESPACE", "ID", "ENABLE", "UNSELECT", "CHILDREN", "LIST-EXTENDED",
              "LIST-STATUS", "SPECIAL-USE", "ESEARCH", "SORT", "THREAD=REFERENCES", "CONDSTORE", "QRESYNC", "QUOTA",
              "MOVE", "BINARY"}


def caps_of(line):
    return {c.upper() for c in line.split()}


def test_greeting_is_ok_with_capability_or_plain(imap_server):
    r = imap_server.raw()
    assert r.greeting.startswith(b"* OK"), r.greeting
    m = re.match(rb"\* OK \[CAPABILITY ([^\]]*)\]", r.greeting)
    if m:  # a greeting may announce the pre-login capabilities (RFC 3501 7.1)
        assert "IMAP4REV1" in caps_of(m.group(1).decode())


def test_capability_before_and_after_login(imap_server):
    r = imap_server.raw()
    status, _, lines = r.cmd("CAPABILITY")
    assert status == "OK"
    cap = [ln for ln in lines if ln.upper().startswith(b"* CAPABILITY ")]
    assert len(cap) == 1
    pre = caps_of(cap[0][len(b"* CAPABILITY "):].decode())
    assert REQUIRED <= pre
    assert "LOGINDISABLED" not in pre  # disable_plaintext_auth = no
    tagged, lines = r.login("alice")
    # after LOGIN the capabilities may be sent in the tagged OK's response code, or asked for again
    status, _, lines = r.cmd("CAPABILITY")
    assert status == "OK"
    post = caps_of([ln for ln in lines if ln.upper().startswith(b"* CAPABILITY ")][0][13:].decode())
    missing = (REQUIRED | EXTENSIONS) - post
    assert not missing, f"missing after login: {sorted(missing)}; got {sorted(post)}"
    assert "LOGINDISABLED" not in post


def test_login_good_and_bad_password(imap_server):
    # each failure from its own address: servers slow down an address that failed (Dovecot: up to 15 s), and may
    # delay further attempts on the same connection (Dovecot: 5 s more each)
    m = imap_server.connect(source=fresh_source())
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.login("alice@example.test", "wrong-password")
    assert "AUTHENTICATIONFAILED" in str(e.value)
    assert m.state == "NONAUTH"
    r = imap_server.raw(source=fresh_source())
    status, line, _ = r.cmd('LOGIN "nobody@example.test" "demo-password"')
    assert status == "NO" and "[AUTHENTICATIONFAILED]" in line, line
    # still not authenticated: a selected-state command is refused
    status, line, _ = r.cmd("SELECT INBOX")
    assert status in ("BAD", "NO"), line
    r = imap_server.raw(source=fresh_source())
    status, line, _ = r.cmd('LOGIN "alice@example.test" ""')
    assert status == "NO", line
    r = imap_server.raw()
    tagged, _ = r.login("alice")
    assert tagged.split()[1] == "OK"
    assert r.cmd("SELECT INBOX")[0] == "OK"
    m = imap_server.login("bob")
    assert m.state == "AUTH"


def test_login_literal_and_authenticate_plain(imap_server):
    r = imap_server.raw()
    user = b"alice@example.test"
    r.send(b"A1 LOGIN {%d}\r\n" % len(user))
    cont = r.response()
    assert cont.startswith(b"+"), cont
    r.send(user + b" \"demo-password\"\r\n")
    status, line, _ = r.wait_tagged("A1")
    assert status == "OK", line
    m = imap_server.connect()
    typ, _ = m.authenticate("PLAIN", lambda _: b"\0bob@example.test\0demo-password")
    assert typ == "OK" and m.state == "AUTH"


def test_login_twice_is_refused(imap_server):
    r = imap_server.raw("alice")
    status, line, _ = r.cmd('LOGIN "alice@example.test" "demo-password"')
    assert status in ("BAD", "NO"), line


def test_logout_says_bye_then_ok_and_closes(imap_server):
    r = imap_server.raw("alice")
    status, line, lines = r.cmd("LOGOUT")
    assert status == "OK", line
    assert any(ln.startswith(b"* BYE") for ln in lines), lines
    assert r.closed()


def test_logout_before_login(imap_server):
    r = imap_server.raw()
    status, _, lines = r.cmd("LOGOUT")
    assert status == "OK" and any(ln.startswith(b"* BYE") for ln in lines)
    assert r.closed()


def test_noop_in_every_state(imap_server):
    r = imap_server.raw()
    assert r.cmd("NOOP")[0] == "OK"
    r.login("alice")
    assert r.cmd("NOOP")[0] == "OK"
    r.ok("SELECT INBOX")
    assert r.cmd("NOOP")[0] == "OK"
    assert r.cmd("CHECK")[0] == "OK"


def test_namespace(imap_server):
    r = imap_server.raw("alice")
    status, _, lines = r.cmd("NAMESPACE")
    assert status == "OK"
    ns = [ln for ln in lines if ln.startswith(b"* NAMESPACE ")]
    assert len(ns) == 1
    # personal namespace: prefix "" with separator "/", no other users' or shared namespaces configured
    assert re.match(rb'\* NAMESPACE \(\(""\s+"/"(\s[^)]*)?\)\) (NIL|\(.*\)) (NIL|\(.*\))$', ns[0]), ns[0]


def test_id(imap_server):
    r = imap_server.raw()
    status, _, lines = r.cmd('ID ("name" "pytest" "version" "1")')
    assert status == "OK"
    ids = [ln for ln in lines if ln.startswith(b"* ID ")]
    assert len(ids) == 1
    assert re.match(rb'\* ID (NIL|\((".*?"|NIL)( (".*?"|NIL))*\))$', ids[0]), ids[0]
    status, _, lines = r.cmd("ID NIL")
    assert status == "OK" and any(ln.startswith(b"* ID ") for ln in lines)


def test_enable(imap_server):
    r = imap_server.raw()
    r.login("alice")
    status, _, lines = r.cmd("ENABLE CONDSTORE")
    assert status == "OK"
    en = [ln for ln in lines if ln.startswith(b"* ENABLED")]
    assert en and b"CONDSTORE" in en[0].upper()
    # an unknown extension is ignored, not an error
    status, _, lines = r.cmd("ENABLE X-NO-SUCH-EXTENSION")
    assert status == "OK"
    assert not any(b"X-NO-SUCH-EXTENSION" in ln for ln in lines)
    # with CONDSTORE enabled, SELECT reports HIGHESTMODSEQ (or NOMODSEQ)
    _, lines = r.ok("SELECT INBOX")
    assert any(b"[HIGHESTMODSEQ " in ln or b"[NOMODSEQ]" in ln for ln in lines), lines


def test_unknown_command_is_bad(imap_server):
    r = imap_server.raw()
    assert r.cmd("XYZZY")[0] == "BAD"
    r.login("alice")
    assert r.cmd("XYZZY foo bar")[0] == "BAD"
    assert r.cmd("FETCH")[0] == "BAD"  # missing arguments
    # the session survives
    assert r.cmd("NOOP")[0] == "OK"


def test_missing_tag_and_garbage(imap_server):
    r = imap_server.raw("alice")
    r.send(b"\r\n")
    resp = r.response()
    assert resp.startswith(b"* BAD") or resp.split(b" ")[1] == b"BAD", resp
    assert r.cmd("NOOP")[0] == "OK"


def test_bad_arguments(imap_server):
    r = imap_server.raw("alice")
    r.ok("SELECT INBOX")
    for bad in ("FETCH 1:* (NOSUCHITEM)", "FETCH x FLAGS", "FETCH 0 FLAGS", "STORE 1 +FLAGS", "SEARCH NOSUCHKEY",
                "UID FETCH", "SELECT", 'LIST ""', "FETCH 1 (FLAGS"):
        status, line, _ = r.cmd(bad)
        assert status == "BAD", f"{bad}: {line}"
    assert r.cmd("NOOP")[0] == "OK"


def test_commands_in_the_wrong_state(imap_server):
    r = imap_server.raw("alice")
    for cmd in ("FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "EXPUNGE", "CLOSE", "SEARCH ALL", "COPY 1 Trash",
                "UID FETCH 1 FLAGS"):
        status, line, _ = r.cmd(cmd)
        assert status in ("BAD", "NO"), f"{cmd}: {line}"


def test_command_too_long(imap_server):
    r = imap_server.raw("alice")
    r.ok("SELECT INBOX")
    # a 200 kB command line: refused with BAD (or the connection closed with BYE), never accepted
    r.send(b"L1 FETCH 1 (FLAGS " + b"BODY[HEADER.FIELDS (" + b"X-A " * 50000 + b")])\r\n")
    try:
        while True:
            resp = r.response()
            if resp.startswith(b"L1 ") or resp.startswith(b"* BYE"):
                break
        assert resp.startswith(b"L1 BAD") or resp.startswith(b"* BYE") or resp.startswith(b"L1 NO"), resp
    except (EOFError, ConnectionResetError):
        pass  # closing the connection is allowed too


def test_huge_literal_is_refused(imap_server):
    r = imap_server.raw("alice")
    # a 10 GB synchronizing literal: the server must say NO/BAD instead of "+" (or close the connection)
    r.send(b"H1 APPEND INBOX {10000000000}\r\n")
    try:
        resp = r.response()
        assert not resp.startswith(b"+"), resp
        assert resp.startswith(b"H1 NO") or resp.startswith(b"H1 BAD") or resp.startswith(b"* BYE"), resp
    except (EOFError, ConnectionResetError):
        pass


def test_idle_done(imap_server):
    r = imap_server.raw("alice")
    r.ok("SELECT INBOX")
    r.send(b"I1 IDLE\r\n")
    assert r.response().startswith(b"+")
    r.send(b"DONE\r\n")
    status, line, _ = r.wait_tagged("I1")
    assert status == "OK", line


def test_quota_root(imap_server):
    r = imap_server.raw("alice")
    status, _, lines = r.cmd("GETQUOTAROOT INBOX")
    assert status == "OK"
    assert any(ln.startswith(b"* QUOTAROOT INBOX") or ln.startswith(b'* QUOTAROOT "INBOX"') for ln in lines), lines


def test_select_nonexistent(imap_server):
    r = imap_server.raw("alice")
    status, line, _ = r.cmd('SELECT "No such folder"')
    assert status == "NO", line
    assert "[NONEXISTENT]" in line or "[TRYCREATE]" in line or "exist" in line.lower(), line
    assert r.cmd("FETCH 1 FLAGS")[0] in ("BAD", "NO")  # a failed SELECT leaves no mailbox selected


def test_environment_sanity(imap_server):
    assert os.path.isabs(imap_server.maildir("alice"))
