"""IMAP METADATA (RFC 5464): GETMETADATA / SETMETADATA on the server ("") and on mailboxes, /private and
/shared entries, DEPTH and MAXSIZE, NIL removal, literal and literal8 values, entry name rules, the limits
(imap_metadata_max_size, imap_metadata_max_entries), the server's /shared/admin and /shared/comment
(mail_server_admin, mail_server_comment), the files on disk (RENAME carries them, DELETE removes them, a damaged
one does no harm), and a differential run against a private Dovecot with mail_attribute_dict."""
import imaplib
import os
import re

import pytest

from imap_servers import RawImap, _postern_server, private_dovecot

ADMIN = "mailto:postmaster@example.test"
COMMENT = "Postern test server"


def server_with(make_postern, extra=""):
    """A Postern IMAP server with METADATA settings `extra` (on top of the IMAP test settings)."""

    def factory(extra_config=""):
        return make_postern(extra_config=extra_config + extra)

    return _postern_server(factory)


@pytest.fixture
def srv(make_postern):
    s = server_with(make_postern, f"mail_server_admin = {ADMIN}\nmail_server_comment = {COMMENT}\n")
    yield s
    s.close_all()


def tokens(data):
    """The items of a METADATA response's parenthesized list: atoms, strings (quoted, literal, literal8) and
    None for NIL."""
    out, i = [], 0
    while i < len(data):
        c = data[i:i + 1]
        if c == b" ":
            i += 1
        elif c == b'"':
            j, s = i + 1, b""
            while data[j:j + 1] != b'"':
                if data[j:j + 1] == b"\\":
                    j += 1
                s += data[j:j + 1]
                j += 1
            out.append(s)
            i = j + 1
        elif c in (b"{", b"~"):
            m = re.match(rb"~?\{(\d+)\+?\}\r\n", data[i:])
            n = int(m.group(1))
            start = i + m.end()
            out.append(data[start:start + n])
            i = start + n
        else:
            m = re.match(rb"[^ ()]+", data[i:])
            word = m.group(0)
            out.append(None if word.upper() == b"NIL" else word)
            i += m.end()
    return out


def metadata(untagged):
    """{mailbox: [(entry, value)]} from the METADATA responses among `untagged`."""
    out = {}
    for r in untagged:
        m = re.match(rb'\* METADATA ("(?:[^"\\]|\\.)*"|[^ ]+) \((.*)\)$', r, re.S)
        if not m:
            continue
        t = tokens(m.group(2))
        box = m.group(1).strip(b'"').decode()
        out.setdefault(box, []).extend((t[k].decode(), t[k + 1]) for k in range(0, len(t), 2))
    return out


def get(r, args, box=None):
    """GETMETADATA `args`: (tagged line, [(entry, value)] of the one mailbox answered)."""
    line, untagged = r.ok(f"GETMETADATA {args}")
    found = metadata(untagged)
    assert len(found) <= 1, untagged
    return line, next(iter(found.values()), [])


def test_capability_after_login_only(srv):
    r = srv.raw()
    _, untagged = r.ok("CAPABILITY")
    assert b"METADATA" not in untagged[0]
    status, _, _ = r.cmd("GETMETADATA INBOX /private/comment")
    assert status == "BAD"
    line, _ = r.login("alice")
    caps = r.ok("CAPABILITY")[1][0].split()
    assert b"METADATA" in caps and b"METADATA-SERVER" in caps, caps


def test_set_get_and_remove_on_mailboxes(srv):
    r = srv.raw("alice")
    r.ok('CREATE Work')
    r.ok('SETMETADATA INBOX (/private/comment "My own comment" /shared/comment "Shared one")')
    r.ok('SETMETADATA Work (/Private/Comment "work")')  # names are case-insensitive
    assert get(r, "INBOX (/private/comment /shared/comment)")[1] == [
        ("/private/comment", b"My own comment"), ("/shared/comment", b"Shared one")]
    assert get(r, "Work /PRIVATE/COMMENT")[1] == [("/private/comment", b"work")]
    assert get(r, "Work /shared/comment")[1] == [("/shared/comment", None)]  # absent: NIL
    # NIL removes; removing an absent entry is no error.
    r.ok("SETMETADATA INBOX (/private/comment NIL /private/never NIL)")
    assert get(r, "INBOX (/private/comment /shared/comment)")[1] == [
        ("/private/comment", None), ("/shared/comment", b"Shared one")]
    # The files beside the messages disturb neither SELECT nor STATUS; the commands work while selected.
    srv.deliver("alice", b"Subject: m\r\n\r\nbody\r\n")
    _, untagged = r.ok("SELECT INBOX")
    assert b"* 1 EXISTS" in untagged, untagged
    assert get(r, "INBOX /shared/comment")[1] == [("/shared/comment", b"Shared one")]
    r.ok('SETMETADATA INBOX (/private/selected "yes")')
    _, untagged = r.ok("STATUS Work (MESSAGES)")
    assert untagged == [b"* STATUS Work (MESSAGES 0)"], untagged
    r.ok("CLOSE")
    # Another session sees the values (nothing is kept per session).
    other = srv.raw("alice")
    assert get(other, "Work /private/comment")[1] == [("/private/comment", b"work")]
    # Each user has their own.
    bob = srv.raw("bob")
    assert get(bob, "INBOX /shared/comment")[1] == [("/shared/comment", None)]


def test_nonexistent_and_invalid_mailboxes(srv):
    r = srv.raw("alice")
    status, line, _ = r.cmd("GETMETADATA Nosuch /private/comment")
    assert status == "NO" and "[NONEXISTENT]" in line, line
    status, line, _ = r.cmd('SETMETADATA Nosuch (/private/comment "x")')
    assert status == "NO" and "[NONEXISTENT]" in line, line
    status, line, _ = r.cmd('GETMETADATA "../x" /private/comment')
    assert status == "NO", line


@pytest.mark.parametrize("entry", ["/private/a*", "/private/%", "/other/comment", "private/comment", "/private/",
                                   "/private//x", "/", '"/private/\xe9"'])
def test_invalid_entry_names_are_bad(srv, entry):
    r = srv.raw("alice")
    for cmd in (f"GETMETADATA INBOX {entry}", f'SETMETADATA INBOX ({entry} "v")'):
        status, line, _ = r.cmd(cmd)
        assert status == "BAD", (cmd, line)


def test_bad_syntax(srv):
    r = srv.raw("alice")
    for cmd in ("GETMETADATA INBOX", "GETMETADATA (DEPTH 2) INBOX /private", "GETMETADATA (MAXSIZE x) INBOX /shared",
                "GETMETADATA (FOO 1) INBOX /shared", "SETMETADATA INBOX /private/comment x",
                "SETMETADATA INBOX (/private/comment)", "SETMETADATA INBOX (/private/comment (x))",
                "SETMETADATA INBOX ()"):
        status, line, _ = r.cmd(cmd)
        assert status == "BAD", (cmd, line)


def test_server_entries(srv):
    r = srv.raw("alice")
    line, entries = get(r, '"" (/shared/admin /shared/comment /private/vendor/x)')
    assert entries == [("/shared/admin", ADMIN.encode()), ("/shared/comment", COMMENT.encode()),
                       ("/private/vendor/x", None)]
    assert re.search(r"OK Getmetadata completed", line), line
    status, line, _ = r.cmd('SETMETADATA "" (/shared/admin "mailto:me@example.test")')
    assert status == "NO" and "[NOPERM]" in line, line
    r.ok('SETMETADATA "" (/private/vendor/x "server-wide" /shared/vendor/y "s")')
    assert get(r, '"" /private/vendor/x')[1] == [("/private/vendor/x", b"server-wide")]
    # Server entries and INBOX's are apart.
    assert get(r, "INBOX /private/vendor/x")[1] == [("/private/vendor/x", None)]
    line, entries = get(r, '(DEPTH infinity) "" /shared')
    assert entries == [("/shared/admin", ADMIN.encode()), ("/shared/comment", COMMENT.encode()),
                       ("/shared/vendor/y", b"s")]


def test_server_entries_unset(make_postern):
    s = server_with(make_postern)
    try:
        r = s.raw("alice")
        assert get(r, '"" /shared/admin')[1] == [("/shared/admin", None)]
    finally:
        s.close_all()


def test_depth_and_maxsize(srv):
    r = srv.raw("alice")
    r.ok('SETMETADATA INBOX (/private/a "1" /private/a/b "22" /private/a/b/c "333" /private/a/d "4444" '
         '/private/ab "5" /shared/a "6")')
    assert get(r, "INBOX /private/a")[1] == [("/private/a", b"1")]
    assert get(r, "(DEPTH 0) INBOX /private/a")[1] == [("/private/a", b"1")]
    assert get(r, "(DEPTH 1) INBOX /private/a")[1] == [("/private/a", b"1"), ("/private/a/b", b"22"),
                                                        ("/private/a/d", b"4444")]
    assert get(r, "(DEPTH infinity) INBOX /private/a")[1] == [
        ("/private/a", b"1"), ("/private/a/b", b"22"), ("/private/a/b/c", b"333"), ("/private/a/d", b"4444")]
    # With DEPTH an absent root is left out (no NIL, as Dovecot does).
    assert get(r, "(DEPTH 1) INBOX /private")[1] == [("/private/a", b"1"), ("/private/ab", b"5")]
    line, untagged = r.ok("GETMETADATA (DEPTH 1) INBOX /private/a/b/c/x")
    assert untagged == [], untagged
    line, entries = get(r, "(MAXSIZE 2 DEPTH infinity) INBOX /private/a")
    assert entries == [("/private/a", b"1"), ("/private/a/b", b"22")]
    assert "[METADATA LONGENTRIES 4]" in line, line
    line, entries = get(r, "(MAXSIZE 0) INBOX /private/a")
    assert entries == [] and "[METADATA LONGENTRIES 1]" in line, line
    line, _ = get(r, "(MAXSIZE 100) INBOX /private/a")
    assert "LONGENTRIES" not in line


def test_literal_and_binary_values(srv):
    r = srv.raw("alice")
    text = b"line one\r\nline two \"quoted\" \\ and 8-bit \xc3\xa9"
    binary = bytes(range(256))
    r.send(b"t1 SETMETADATA INBOX (/private/text {%d+}\r\n%s /shared/bin ~{%d+}\r\n%s /shared/empty \"\")\r\n"
           % (len(text), text, len(binary), binary))
    status, line, _ = r.wait_tagged("t1")
    assert status == "OK", line
    _, entries = get(r, "INBOX (/private/text /shared/bin /shared/empty)")
    assert entries == [("/private/text", text), ("/shared/bin", binary), ("/shared/empty", b"")]
    # A synchronizing literal: "+" first, then the value.
    r.send(b"t2 SETMETADATA INBOX (/private/sync {5}\r\n")
    assert r.response().startswith(b"+ ")
    r.send(b"hello)\r\n")
    assert r.wait_tagged("t2")[0] == "OK"
    assert get(r, "INBOX /private/sync")[1] == [("/private/sync", b"hello")]


def test_limits(make_postern):
    s = server_with(make_postern, "imap_metadata_max_size = 100\nimap_metadata_max_entries = 3\n")
    try:
        r = s.raw("alice")
        status, line, _ = r.cmd('SETMETADATA INBOX (/private/a "%s")' % ("x" * 101))
        assert status == "NO" and "[METADATA MAXSIZE 100]" in line, line
        r.ok('SETMETADATA INBOX (/private/a "%s")' % ("x" * 100))
        # All or nothing: one value too large, no entry set.
        status, line, _ = r.cmd('SETMETADATA INBOX (/private/b "ok" /private/c "%s")' % ("y" * 200))
        assert status == "NO" and "[METADATA MAXSIZE 100]" in line, line
        assert get(r, "INBOX /private/b")[1] == [("/private/b", None)]
        r.ok('SETMETADATA INBOX (/private/b "2" /private/c "3")')
        status, line, _ = r.cmd('SETMETADATA INBOX (/private/d "4")')
        assert status == "NO" and "[METADATA TOOMANY]" in line, line
        r.ok('SETMETADATA INBOX (/private/c NIL /private/d "4")')  # one out, one in
        assert get(r, "INBOX /private/d")[1] == [("/private/d", b"4")]
        # Other mailboxes count apart.
        r.ok('SETMETADATA Drafts (/private/a "1" /private/b "2" /private/c "3")')
    finally:
        s.close_all()


def test_large_literal_refused_before_it_is_sent(srv):
    r = srv.raw("alice")
    # 100000 bytes: more than imap_metadata_max_size (65536). No "+": the client never sends the value.
    r.send(b"t1 SETMETADATA INBOX (/private/big {100000}\r\n")
    status, line, _ = r.wait_tagged("t1")
    assert status == "NO" and "[METADATA MAXSIZE 65536]" in line, line
    r.ok("NOOP")
    # Non-synchronizing: the bytes are read and dropped, the session goes on.
    r.send(b"t2 SETMETADATA INBOX (/private/big {100000+}\r\n" + b"z" * 100000 + b")\r\n")
    status, line, _ = r.wait_tagged("t2")
    assert status == "NO" and "[METADATA MAXSIZE 65536]" in line, line
    assert get(r, "INBOX /private/big")[1] == [("/private/big", None)]
    # The largest value allowed passes.
    value = b"v" * 65536
    r.send(b"t3 SETMETADATA INBOX (/private/big {65536+}\r\n" + value + b")\r\n")
    assert r.wait_tagged("t3")[0] == "OK"
    assert get(r, "INBOX /private/big")[1] == [("/private/big", value)]


def test_special_use_entry(srv):
    r = srv.raw("alice")
    assert get(r, "Sent /private/specialuse")[1] == [("/private/specialuse", b"\\Sent")]
    assert get(r, "Templates /private/specialuse")[1] == [("/private/specialuse", None)]
    status, line, _ = r.cmd('SETMETADATA Sent (/private/specialuse "\\\\Trash")')
    assert status == "NO", line


def test_bare_namespace_cannot_be_set(srv):
    r = srv.raw("alice")
    status, line, _ = r.cmd('SETMETADATA INBOX (/private "x")')
    assert status == "NO", line


def test_files_rename_delete_and_restart(srv):
    maildir = srv.maildir("alice")
    r = srv.raw("alice")
    r.ok("CREATE Work")
    r.ok("CREATE Work/Sub")
    r.ok('SETMETADATA Work (/private/comment "w")')
    r.ok('SETMETADATA Work/Sub (/shared/comment "s")')
    r.ok('SETMETADATA INBOX (/private/comment "i")')
    r.ok('SETMETADATA "" (/private/comment "server")')
    assert os.path.exists(os.path.join(maildir, ".Work", "postern-metadata"))
    assert os.path.exists(os.path.join(maildir, "postern-metadata"))
    assert os.path.exists(os.path.join(maildir, "postern-server-metadata"))
    with open(os.path.join(maildir, ".Work", "postern-metadata"), "rb") as f:
        assert f.read() == b"postern-metadata 1\n/private/comment 1\nw\n"
    assert not [n for n in os.listdir(os.path.join(maildir, ".Work")) if n.endswith(".tmp")]
    # RENAME carries the entries, children's too.
    r.ok("RENAME Work Play")
    assert get(r, "Play /private/comment")[1] == [("/private/comment", b"w")]
    assert get(r, "Play/Sub /shared/comment")[1] == [("/shared/comment", b"s")]
    status, line, _ = r.cmd("GETMETADATA Work /private/comment")
    assert status == "NO" and "[NONEXISTENT]" in line
    # DELETE removes them: a new mailbox of the same name starts empty.
    r.ok("DELETE Play/Sub")
    r.ok("CREATE Play/Sub")
    assert get(r, "Play/Sub /shared/comment")[1] == [("/shared/comment", None)]
    # Removing the last entry removes the file.
    r.ok("SETMETADATA Play (/private/comment NIL)")
    assert not os.path.exists(os.path.join(maildir, ".Play", "postern-metadata"))
    # Durable across a restart.
    r.close()
    srv.postern.stop()
    srv.postern.start()
    r2 = srv.raw("alice")
    assert get(r2, "INBOX /private/comment")[1] == [("/private/comment", b"i")]
    assert get(r2, '"" /private/comment')[1] == [("/private/comment", b"server")]


def test_damaged_file_does_no_harm(srv):
    maildir = srv.maildir("alice")
    r = srv.raw("alice")
    r.ok('SETMETADATA INBOX (/private/a "1")')
    path = os.path.join(maildir, "postern-metadata")
    with open(path, "ab") as f:
        f.write(b"/private/b 999999\ntruncated")
    assert get(r, "INBOX (/private/a /private/b)")[1] == [("/private/a", b"1"), ("/private/b", None)]
    r.ok('SETMETADATA INBOX (/private/c "3")')  # rewrites the file whole
    with open(path, "rb") as f:
        assert f.read() == b"postern-metadata 1\n/private/a 1\n1\n/private/c 1\n3\n"
    for junk in (b"", b"\x00" * 1000, os.urandom(4096), b"postern-metadata 1\n" + b"/private/x 18446744073709551615\n"):
        with open(path, "wb") as f:
            f.write(junk)
        status, line, _ = r.cmd("GETMETADATA (DEPTH infinity) INBOX /private")
        assert status == "OK", line
    # A directory in its place: NO, and the server goes on.
    os.unlink(path)
    os.mkdir(path)
    status, line, _ = r.cmd("GETMETADATA INBOX /private/a")
    assert status == "NO" and "[SERVERBUG]" in line, line
    status, line, _ = r.cmd('SETMETADATA INBOX (/private/a "x")')
    assert status == "NO", line
    r.ok("NOOP")


def test_disabled(make_postern):
    s = server_with(make_postern, "imap_metadata = no\n")
    try:
        r = s.raw("alice")
        caps = r.ok("CAPABILITY")[1][0]
        assert b"METADATA" not in caps
        assert r.cmd("GETMETADATA INBOX /private/comment")[0] == "BAD"
        assert r.cmd('SETMETADATA INBOX (/private/comment "x")')[0] == "BAD"
    finally:
        s.close_all()


def test_imaplib_client(srv):
    """Python's imaplib, through its generic command path (it has no METADATA methods)."""
    for name in ("GETMETADATA", "SETMETADATA"):
        imaplib.Commands.setdefault(name, ("AUTH", "SELECTED"))
    m = srv.login("alice")
    typ, data = m._simple_command("SETMETADATA", "INBOX", '(/private/comment "from imaplib")')
    assert typ == "OK", data
    typ, data = m._simple_command("GETMETADATA", "INBOX", "/private/comment")
    assert typ == "OK", data
    typ, data = m._untagged_response(typ, data, "METADATA")
    assert data == [b'INBOX (/private/comment "from imaplib")'], data
    typ, data = m._simple_command("GETMETADATA", '""', "/shared/admin")
    typ, data = m._untagged_response(typ, data, "METADATA")
    assert data == [b'"" (/shared/admin "%s")' % ADMIN.encode()], data


# --- the same dialogue against Dovecot --------------------------------------------------------------------------

DOVECOT_METADATA = f"""
mail_attribute_dict = file:%h/dovecot-attributes
imap_metadata = yes
mail_server_admin = {ADMIN}
"""

DIALOGUE = [
    'SETMETADATA INBOX (/private/comment "mine" /shared/comment "ours")',
    "GETMETADATA INBOX (/private/comment /shared/comment /private/none)",
    "GETMETADATA INBOX /PRIVATE/COMMENT",
    'SETMETADATA INBOX (/Private/Vendor/X/A "1" /private/vendor/x/a/b "22" /private/vendor/x/c "333")',
    "GETMETADATA (DEPTH 1) INBOX /private/vendor/x",
    "GETMETADATA (DEPTH infinity) INBOX /private/vendor",
    "GETMETADATA (MAXSIZE 2 DEPTH infinity) INBOX /private/vendor/x",
    "SETMETADATA INBOX (/private/comment NIL)",
    "GETMETADATA INBOX /private/comment",
    "CREATE Work",
    'SETMETADATA Work (/shared/comment "work")',
    "RENAME Work Play",
    "GETMETADATA Play /shared/comment",
    "GETMETADATA Work /shared/comment",
    "GETMETADATA Nosuch /shared/comment",
    'SETMETADATA Nosuch (/shared/comment "x")',
    'SETMETADATA "" (/private/vendor/s "server")',
    'GETMETADATA "" (/private/vendor/s /shared/admin)',
    "GETMETADATA INBOX /private/vendor/s",
    "GETMETADATA Sent /private/specialuse",
    "GETMETADATA INBOX /private/a*",
    "GETMETADATA INBOX /other",
    "GETMETADATA INBOX /private//a",
    "GETMETADATA INBOX /private/a/",
    "GETMETADATA (DEPTH 2) INBOX /private",
    'SETMETADATA INBOX (/private/a "1" /private/b)',
    "SETMETADATA INBOX (/private/a (x))",
]


def transcript(r):
    out = []
    for cmd in DIALOGUE:
        status, line, untagged = r.cmd(cmd)
        code = re.match(r"\S+ \S+ (\[[^\]]*\])?", line).group(1) or ""
        # Dovecot (2.3) answers a missing mailbox without a response code; Postern says [NONEXISTENT].
        code = code.replace("[NONEXISTENT]", "")
        # Dovecot's file dict lists entries below a DEPTH root in no particular order.
        found = {box: sorted(entries) for box, entries in metadata(untagged).items()}
        out.append((cmd, status, code, found))
    return out


@pytest.fixture(scope="module")
def dovecot_metadata():
    yield from private_dovecot(DOVECOT_METADATA)


def test_differential_dovecot(dovecot_metadata, make_postern):
    dov = RawImap("127.0.0.1", dovecot_metadata.port)
    dov.login("alice")
    caps = dov.ok("CAPABILITY")[1][0]
    if b"METADATA" not in caps:
        pytest.skip("this Dovecot offers no METADATA")
    s = server_with(make_postern, f"mail_server_admin = {ADMIN}\n")
    try:
        ours = s.raw("alice")
        expected, got = transcript(dov), transcript(ours)
        differ = [f"dovecot {e}\npostern {g}" for e, g in zip(expected, got) if e != g]
        assert not differ, "\n".join(differ)
    finally:
        dov.close()
        s.close_all()
