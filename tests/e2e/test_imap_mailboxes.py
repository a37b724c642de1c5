"""IMAP mailbox commands against every server in IMAP_SERVERS: LIST (patterns, attributes, LIST-EXTENDED,
SPECIAL-USE, LIST-STATUS), CREATE/DELETE/RENAME, SUBSCRIBE/LSUB, STATUS, SELECT/EXAMINE, mailbox names (mUTF-7,
names that must not escape the Maildir)."""
import os
import re

from imap_servers import make_message

LIST_RE = re.compile(rb'^\* (LIST|LSUB) \(([^)]*)\) (NIL|"(?:[^"\\]|\\.)") (.*)$')
DEFAULTS = {"INBOX", "Drafts", "Sent", "Trash", "Templates"}


def unquote(name):
    name = name.decode()
    if name.startswith('"'):
        return re.sub(r'\\(.)', r'\1', name[1:-1])
    return name


def parse_list(lines, kind=b"LIST"):
    """{mailbox name: set of attributes (lowercase)} from LIST/LSUB responses; checks the separator is "/"."""
    out = {}
    for ln in lines:
        m = LIST_RE.match(ln)
        if not m or m.group(1) != kind:
            continue
        assert m.group(3) == b'"/"', ln
        out[unquote(m.group(4))] = {a.lower() for a in m.group(2).decode().split()}
    return out


def do_list(r, args='"" "*"', kind=b"LIST"):
    _, lines = r.ok(f"{kind.decode()} {args}")
    return parse_list(lines, kind)


def test_list_default_folders_and_special_use(imap_server):
    r = imap_server.raw("alice")
    boxes = do_list(r)
    assert set(boxes) == DEFAULTS, boxes
    assert "\\drafts" in boxes["Drafts"]
    assert "\\sent" in boxes["Sent"]
    assert "\\trash" in boxes["Trash"]
    assert not {"\\drafts", "\\sent", "\\trash", "\\junk", "\\archive"} & boxes["Templates"]
    assert not {"\\drafts", "\\sent", "\\trash", "\\noselect"} & boxes["INBOX"]
    for attrs in boxes.values():  # CHILDREN: no folder has children yet
        assert "\\haschildren" not in attrs


def test_list_separator_and_percent(imap_server):
    r = imap_server.raw("alice")
    _, lines = r.ok('LIST "" ""')
    assert lines == [b'* LIST (\\Noselect) "/" ""'], lines
    r.ok('CREATE "Work/Projects/2024"')
    r.ok('CREATE "Work/Misc"')
    top = do_list(r, '"" "%"')
    assert set(top) == DEFAULTS | {"Work"}, top
    assert "\\haschildren" in top["Work"]
    assert set(do_list(r, '"" "Work/%"')) == {"Work/Projects", "Work/Misc"}
    assert set(do_list(r, '"Work/" "%"')) == {"Work/Projects", "Work/Misc"}
    assert set(do_list(r, '"" "Work/*"')) == {"Work/Projects", "Work/Projects/2024", "Work/Misc"}
    assert set(do_list(r, '"" "T*"')) == {"Templates", "Trash"}
    assert set(do_list(r, '"" "*s"')) == {"Drafts", "Templates", "Work/Projects"}
    assert set(do_list(r, '"" "inbox"')) == {"INBOX"}  # INBOX is case-insensitive
    assert do_list(r, '"" "nosuch*"') == {}
    misc = do_list(r, '"" "Work/Misc"')
    assert "\\hasnochildren" in misc["Work/Misc"] or "\\haschildren" not in misc["Work/Misc"]


def test_list_extended_special_use_and_status(imap_server):
    r = imap_server.raw("alice")
    r.ok("CREATE Other")
    special = do_list(r, '(SPECIAL-USE) "" "*"')
    assert set(special) == {"Drafts", "Sent", "Trash"}, special
    boxes = do_list(r, '"" "*" RETURN (SPECIAL-USE)')
    assert "\\sent" in boxes["Sent"] and set(boxes) >= DEFAULTS | {"Other"}
    imap_server.deliver("alice", make_message("for list-status"))
    _, lines = r.ok('LIST "" "%" RETURN (STATUS (MESSAGES UNSEEN))')
    status = {}
    for ln in lines:
        m = re.match(rb'^\* STATUS ("[^"]*"|\S+) \((.*)\)$', ln)
        if m:
            status[unquote(m.group(1))] = m.group(2).decode()
    assert set(status) == DEFAULTS | {"Other"}, lines
    assert re.search(r"\bMESSAGES 1\b", status["INBOX"]) and re.search(r"\bUNSEEN 1\b", status["INBOX"])
    assert re.search(r"\bMESSAGES 0\b", status["Other"])


def test_create_delete(imap_server):
    r = imap_server.raw("alice")
    r.ok("CREATE Projects")
    status, line, _ = r.cmd("CREATE Projects")
    assert status == "NO", line  # [ALREADYEXISTS] recommended (RFC 5530)
    status, line, _ = r.cmd("CREATE INBOX")
    assert status == "NO", line
    assert "Projects" in do_list(r)
    assert r.cmd("SELECT Projects")[0] == "OK"
    r.ok("UNSELECT")
    r.ok("DELETE Projects")
    assert "Projects" not in do_list(r)
    status, line, _ = r.cmd("DELETE Projects")
    assert status == "NO", line
    status, line, _ = r.cmd("DELETE INBOX")
    assert status == "NO", line
    assert "INBOX" in do_list(r)


def test_create_with_trailing_separator_and_parents(imap_server):
    r = imap_server.raw("alice")
    r.ok('CREATE "Lists/"')
    assert "Lists" in do_list(r)  # the trailing separator is not part of the name (RFC 3501 6.3.3)
    r.ok('CREATE "Deep/er/est"')
    boxes = do_list(r, '"" "Deep*"')
    assert "Deep/er/est" in boxes and "\\haschildren" in boxes.get("Deep", {"\\haschildren"})
    assert r.cmd('SELECT "Deep/er/est"')[0] == "OK"


def test_delete_mailbox_with_children_keeps_children(imap_server):
    r = imap_server.raw("alice")
    r.ok('CREATE "Parent"')
    r.ok('CREATE "Parent/Child"')
    msg = make_message("in parent")
    r.ok(b"APPEND Parent {%d+}\r\n" % len(msg) + msg)
    r.ok(b'APPEND "Parent/Child" {%d+}\r\n' % len(msg) + msg)
    status, line, _ = r.cmd("DELETE Parent")
    # RFC 3501 6.3.4: either refused, or the parent's messages are removed (and it becomes \Noselect; Dovecot's
    # Maildir++ keeps it selectable and empty); the child and its messages survive both ways
    boxes = do_list(r)
    assert "Parent/Child" in boxes, (line, boxes)
    _, lines = r.ok('STATUS "Parent/Child" (MESSAGES)')
    assert any(b"MESSAGES 1" in ln for ln in lines), lines
    if status == "OK":
        attrs = boxes.get("Parent", {"\\noselect"})
        if not {"\\noselect", "\\nonexistent"} & attrs:
            # Dovecot lists it as (\HasChildren) yet STATUS/SELECT say NO: it is gone as a mailbox
            st, line, lines = r.cmd("STATUS Parent (MESSAGES)")
            assert st == "NO" or any(b"MESSAGES 0" in ln for ln in lines), (line, lines)
    else:
        assert status == "NO" and "Parent" in boxes
    r.ok('DELETE "Parent/Child"')
    if status == "NO":
        r.ok("DELETE Parent")
    assert not [b for b in do_list(r) if b.startswith("Parent")]


def test_rename_with_children_and_messages(imap_server):
    r = imap_server.raw("alice")
    r.ok("CREATE Old")
    r.ok('CREATE "Old/Sub"')
    msg = make_message("in old")
    status, line, _ = r.cmd(b"APPEND Old {%d+}\r\n" % len(msg) + msg)
    assert status == "OK", line
    r.ok("RENAME Old New")
    boxes = do_list(r)
    assert {"New", "New/Sub"} <= set(boxes), boxes
    assert "Old" not in boxes and "Old/Sub" not in boxes
    _, lines = r.ok("STATUS New (MESSAGES)")
    assert any(re.search(rb"MESSAGES 1\b", ln) for ln in lines), lines
    status, line, _ = r.cmd("RENAME Nosuch Other")
    assert status == "NO", line
    r.ok("CREATE Existing")
    status, line, _ = r.cmd("RENAME New Existing")
    assert status == "NO", line  # the target exists ([ALREADYEXISTS] recommended)
    assert {"New", "New/Sub", "Existing"} <= set(do_list(r))


def test_rename_inbox(imap_server):
    r = imap_server.raw("alice")
    imap_server.deliver("alice", make_message("inbox one"))
    status, line, _ = r.cmd("RENAME INBOX Archive2024")
    # RFC 3501 6.3.5: renaming INBOX moves its messages into the new mailbox and leaves INBOX empty; a server may
    # refuse it (Dovecot does: NO [CANNOT]); either way INBOX still exists and no message is lost
    inbox = r.ok("STATUS INBOX (MESSAGES)")[1]
    if status == "OK":
        assert any(b"MESSAGES 0" in ln for ln in inbox), inbox
        arch = r.ok("STATUS Archive2024 (MESSAGES)")[1]
        assert any(b"MESSAGES 1" in ln for ln in arch), arch
    else:
        assert status == "NO", line
        assert any(b"MESSAGES 1" in ln for ln in inbox), inbox
        assert "Archive2024" not in do_list(r)


def test_subscribe_lsub(imap_server):
    r = imap_server.raw("alice")
    subs = do_list(r, '"" "*"', kind=b"LSUB")
    assert set(subs) >= {"Drafts", "Sent", "Trash", "Templates"}, subs  # auto = subscribe
    r.ok("CREATE Lists")
    assert "Lists" not in do_list(r, '"" "*"', kind=b"LSUB")
    r.ok("SUBSCRIBE Lists")
    assert "Lists" in do_list(r, '"" "*"', kind=b"LSUB")
    assert "\\subscribed" in do_list(r, '(SUBSCRIBED) "" "*"')["Lists"]
    assert "Lists" in do_list(r, '"" "*" RETURN (SUBSCRIBED)')
    r.ok("UNSUBSCRIBE Lists")
    assert "Lists" not in do_list(r, '"" "*"', kind=b"LSUB")
    assert "Lists" in do_list(r)  # unsubscribing does not delete


def test_status(imap_server):
    r = imap_server.raw("alice")
    _, lines = r.ok("STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)")
    m = re.match(rb"^\* STATUS (\"INBOX\"|INBOX) \((.*)\)$", lines[-1])
    assert m, lines
    items = dict(zip(*[iter(m.group(2).split())] * 2))
    assert items[b"MESSAGES"] == b"0" and items[b"UNSEEN"] == b"0"
    assert int(items[b"UIDVALIDITY"]) > 0 and int(items[b"UIDNEXT"]) >= 1
    uidnext = int(items[b"UIDNEXT"])
    imap_server.deliver("alice", make_message("one"))
    imap_server.deliver("alice", make_message("two"))
    _, lines = r.ok("STATUS INBOX (MESSAGES UIDNEXT UNSEEN UIDVALIDITY)")
    items2 = dict(zip(*[iter(re.search(rb"\((.*)\)$", lines[-1]).group(1).split())] * 2))
    assert items2[b"MESSAGES"] == b"2" and items2[b"UNSEEN"] == b"2"
    assert int(items2[b"UIDNEXT"]) >= uidnext + 2
    assert items2[b"UIDVALIDITY"] == items[b"UIDVALIDITY"]
    status, line, _ = r.cmd("STATUS Nosuch (MESSAGES)")
    assert status == "NO", line
    assert r.cmd("STATUS INBOX (NOSUCHITEM)")[0] == "BAD"


def test_select_and_examine(imap_server):
    imap_server.deliver("alice", make_message("one"))
    imap_server.deliver("alice", make_message("two"))
    r = imap_server.raw("alice")
    tagged, lines = r.ok("SELECT INBOX")
    assert "[READ-WRITE]" in tagged
    flags = [ln for ln in lines if ln.startswith(b"* FLAGS ")]
    assert len(flags) == 1
    for f in (b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Seen", b"\\Draft"):
        assert f in flags[0], flags
    assert b"* 2 EXISTS" in lines
    assert any(re.match(rb"\* \d+ RECENT$", ln) for ln in lines) or True  # RECENT is gone in IMAP4rev2
    assert any(re.match(rb"\* OK \[UIDVALIDITY [1-9]\d*\]", ln) for ln in lines), lines
    assert any(re.match(rb"\* OK \[UIDNEXT [3-9]\d*\]|\* OK \[UIDNEXT [1-9]\d+\]", ln) for ln in lines), lines
    perm = [ln for ln in lines if ln.startswith(b"* OK [PERMANENTFLAGS (")]
    assert perm and b"\\Seen" in perm[0] and b"\\Deleted" in perm[0] and b"\\*" in perm[0], perm
    tagged, lines = r.ok("EXAMINE INBOX")
    assert "[READ-ONLY]" in tagged
    assert b"* 2 EXISTS" in lines
    perm = [ln for ln in lines if ln.startswith(b"* OK [PERMANENTFLAGS (")]
    assert not perm or perm[0].startswith(b"* OK [PERMANENTFLAGS ()]"), perm
    # read-only: STORE is refused (NO) or ignored (Dovecot: "OK Store ignored with read-only mailbox"), and
    # EXPUNGE removes nothing
    status, line, _ = r.cmd("STORE 1 +FLAGS (\\Deleted)")
    assert status in ("NO", "OK"), line
    status, line, lines = r.cmd("EXPUNGE")
    assert status in ("NO", "OK") and not [ln for ln in lines if ln.endswith(b" EXPUNGE")], (line, lines)
    # FETCH BODY[] in EXAMINE does not set \Seen
    r.ok("FETCH 1 BODY[]")
    tagged, lines = r.ok("SELECT INBOX")
    assert b"* 2 EXISTS" in lines
    _, lines = r.ok("FETCH 1 FLAGS")
    assert b"\\Seen" not in lines[0] and b"\\Deleted" not in lines[0], lines


def test_select_other_mailbox_reports_closed_or_switches(imap_server):
    r = imap_server.raw("alice")
    r.ok("SELECT INBOX")
    tagged, lines = r.ok("SELECT Trash")
    assert "[READ-WRITE]" in tagged
    assert b"* 0 EXISTS" in lines


def test_mutf7_mailbox_name(imap_server):
    r = imap_server.raw("alice")
    r.ok('CREATE "&ZeVnLIqe-"')  # 日本語
    boxes = do_list(r)
    assert "&ZeVnLIqe-" in boxes, boxes
    r.ok('CREATE "Caf&AOk-/Men&APw-"')  # Café/Menü
    assert {"Caf&AOk-", "Caf&AOk-/Men&APw-"} <= set(do_list(r))
    assert r.cmd('SELECT "&ZeVnLIqe-"')[0] == "OK"
    # on disk, Dovecot's Maildir++ layout: ".NAME" with "." as the hierarchy separator, names in mUTF-7
    root = imap_server.maildir("alice")
    entries = set(os.listdir(root))
    assert ".&ZeVnLIqe-" in entries, entries
    assert ".Caf&AOk-.Men&APw-" in entries, entries
    assert os.path.isdir(os.path.join(root, ".&ZeVnLIqe-", "cur"))
    # invalid modified UTF-7 is refused
    for bad in ('"&Jjo"', '"&ZeVnLIqe"', '"caf\xc3\xa9"'):
        status, line, _ = r.cmd(f"CREATE {bad}")
        assert status in ("NO", "BAD"), f"{bad}: {line}"


def _tree(path):
    out = set()
    for d, dirs, files in os.walk(path):
        for n in dirs + files:
            out.add(os.path.relpath(os.path.join(d, n), path))
    return out


def test_bad_mailbox_names_stay_inside_the_maildir(imap_server):
    r = imap_server.raw("alice")
    root = imap_server.maildir("alice")
    mail_dir = os.path.dirname(os.path.dirname(root))  # virtual_mailbox_base / mail_location's root

    def outside():
        return {p for p in _tree(mail_dir) if not (p + "/").startswith(os.path.relpath(root, mail_dir) + "/")}

    before = outside()
    for name in ("../x", "../../x", "a//b", "/abs", "..", ".", "x/../y", "a/./b"):
        status, line, _ = r.cmd(f'CREATE "{name}"')
        assert status in ("NO", "BAD"), f"CREATE {name!r}: {line}"
    assert outside() == before
    assert not os.path.exists(os.path.join(os.path.dirname(root), "x"))
    boxes = do_list(r)
    assert set(boxes) == DEFAULTS, boxes


def test_maildir_internal_names_do_not_clash(imap_server):
    """cur, new and tmp are valid mailbox names; a server may refuse them (NO), but if it accepts them they must be
    separate mailboxes, never INBOX's own cur/ new/ tmp/ directories."""
    imap_server.deliver("alice", make_message("in inbox"))
    r = imap_server.raw("alice")
    for name in ("cur", "new", "tmp"):
        status, line, _ = r.cmd(f'CREATE "{name}"')
        assert status in ("OK", "NO"), line
        if status == "OK":
            _, lines = r.ok(f"STATUS {name} (MESSAGES)")
            assert any(b"MESSAGES 0" in ln for ln in lines), lines
            msg = make_message(f"into {name}")
            r.ok(b"APPEND %s {%d+}\r\n" % (name.encode(), len(msg)) + msg)
    _, lines = r.ok("STATUS INBOX (MESSAGES)")
    assert any(b"MESSAGES 1" in ln for ln in lines), lines
    _, lines = r.ok("SELECT INBOX")
    assert b"* 1 EXISTS" in lines


def test_create_and_select_case(imap_server):
    r = imap_server.raw("alice")
    r.ok("CREATE Folder")
    # mailbox names other than INBOX are case-sensitive
    status, _, _ = r.cmd("SELECT folder")
    assert status == "NO"
    assert r.cmd("SELECT inBox")[0] == "OK"
