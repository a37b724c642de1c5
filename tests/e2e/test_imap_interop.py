"""Dovecot and Postern serving the same Maildir in turn (src/store/maildir/mailbox.hpp: "in Dovecot's own
layout so that Dovecot and Postern serve the same Maildir in turn without a UID changing").

One private Dovecot (scripts/dovecot_private.py) and one Postern share one mail directory: Postern's
virtual_mailbox_base is Dovecot's mail directory, both laid out as <base>/example.test/alice (Dovecot:
mail_location = maildir:<base>/%d/%n, Maildir++ folders). Only one of them runs at a time, as when an admin
migrates from one to the other and back:

  (a) Dovecot writes (APPEND with flags and keywords, doveadm save, folders including a non-ASCII one and a
      child "a/b", an EXPUNGE, SUBSCRIBE), then Postern must show the same folders, subscriptions,
      UIDVALIDITY/UIDNEXT, UIDs, flags, keywords, sizes, internal dates and bytes;
  (b) Postern writes (APPEND, STORE, COPY, EXPUNGE, CREATE, SUBSCRIBE/UNSUBSCRIBE), then Dovecot must show
      what Postern showed;
  (c) Dovecot APPENDs again: UIDs keep growing, nothing is reused; Postern then agrees once more.

File ownership: Dovecot accesses mail as its mail_uid (dovecot_private.py: `postern` when run as root, else
`dovecot`; the current user when not root), Postern as its mail_owner (`postern`) once it dropped root.
Between phases the test does what an admin migrating would do: chown -R the mail tree to the user the next
server accesses it as (a no-op when both are `postern`, as with scripts/install-deps.sh's users).
"""
import os
import pwd
import re
import signal
import socket
import sys
import time
from datetime import datetime, timezone

import pytest

from imap_servers import HOST, RawImap, free_port

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
import dovecot_private  # noqa: E402

USER = "alice"
NONASCII = "R&AOk-sum&AOk-"  # "Résumé" in modified UTF-7, as IMAP names it on the wire


# ---------------------------------------------------------------------------------------------------------
# servers


def wait_greeting(port, what, timeout=10.0):
    deadline = time.time() + timeout
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                s.settimeout(5)
                if s.recv(512).startswith(b"* OK"):
                    return
        except OSError:
            pass
        if time.time() > deadline:
            raise AssertionError(f"{what} did not greet on IMAP port {port}")
        time.sleep(0.05)


def chown_tree(path, uid, gid):
    """What an admin handing the Maildirs to the other server does: chown -R."""
    if os.geteuid() != 0:
        return  # both servers run as this user
    for d, dirs, files in os.walk(path):
        os.lchown(d, uid, gid)
        for name in files + dirs:
            os.lchown(os.path.join(d, name), uid, gid)


@pytest.fixture
def pair(make_postern):
    """(dovecot, postern): a private Dovecot (not started) and a Postern (not started) on its mail directory."""
    reason = dovecot_private.available()
    if reason:
        pytest.skip(f"Dovecot cannot run here: {reason}")
    d = dovecot_private.DovecotPrivate()
    p = make_postern(start=False)
    p.imap_port = free_port()
    cf = os.path.join(p.dir, "main.cf")
    with open(cf) as f:
        conf = f.read()
    conf = re.sub(r"(?m)^virtual_mailbox_base = .*$", f"virtual_mailbox_base = {d.mail}", conf)
    conf += f"imap_listen = 127.0.0.1:{p.imap_port}\ndisable_plaintext_auth = no\n"
    with open(cf, "w") as f:
        f.write(conf)
    p.mail = d.mail
    owner = "postern" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    pw = pwd.getpwnam(owner)
    p.owner_ids = (pw.pw_uid, pw.pw_gid)
    try:
        yield d, p
    finally:
        p.stop()
        d.cleanup()


def run_dovecot(d):
    chown_tree(d.mail, d.uid, d.gid)
    d.start()


def stop_dovecot(d):
    d.stop()


def run_postern(p):
    chown_tree(p.mail, *p.owner_ids)
    p.start()
    wait_greeting(p.imap_port, "postern")


def stop_postern(p):
    p.stop(signal.SIGTERM)


def dovecot_client(d):
    c = RawImap(HOST, d.port)
    c.login(USER)
    return c


def postern_client(p):
    c = RawImap(HOST, p.imap_port)
    c.login(USER)
    return c


# ---------------------------------------------------------------------------------------------------------
# IMAP helpers


def quote(name):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def append(c, box, data, flags="", date=None):
    """APPEND (synchronizing literal); returns the APPENDUID (uidvalidity, uid)."""
    tag = c.tag()
    opts = (f"({flags}) " if flags else "") + (f'"{date}" ' if date else "")
    c.send(f"{tag} APPEND {quote(box)} {opts}{{{len(data)}}}\r\n")
    r = c.response()
    assert r.startswith(b"+"), r
    c.send(data + b"\r\n")
    status, line, _ = c.wait_tagged(tag)
    assert status == "OK", line
    m = re.search(r"\[APPENDUID (\d+) (\d+)\]", line)
    assert m, line
    return int(m.group(1)), int(m.group(2))


LIST_RE = re.compile(rb'^\* (LIST|LSUB) \(([^)]*)\) (NIL|"(?:[^"\\]|\\.)*") (.+)$', re.S)


def unquote(b):
    s = b.decode("utf-8")
    if s.startswith('"'):
        return re.sub(r"\\(.)", r"\1", s[1:-1])
    return s


# Attributes not compared: hints (children; \Marked/\Unmarked, which Dovecot gives from its own index at
# times and Postern never), and special-use flags the two configurations give differently (Postern marks
# "Archive" \Archive by default; dovecot_private.py configures only Drafts, Sent and Trash).
IGNORED_ATTRS = {"\\haschildren", "\\hasnochildren", "\\marked", "\\unmarked",
                 "\\archive", "\\junk", "\\all", "\\flagged"}


def listing(c, cmd):
    """{name: set of attributes (lower case, less IGNORED_ATTRS)} of LIST or LSUB. \\NonExistent counts as
    \\Noselect: it implies it (RFC 5258, RFC 9051); Dovecot says \\Noselect for "a" when only "a/b" exists."""
    _, untagged = c.ok(f'{cmd} "" "*"')
    out = {}
    for ln in untagged:
        m = LIST_RE.match(ln)
        if not m:
            continue
        attrs = {a.lower() for a in m.group(2).decode().split()} - IGNORED_ATTRS
        if "\\nonexistent" in attrs:
            attrs = (attrs - {"\\nonexistent"}) | {"\\noselect"}
        out[unquote(m.group(4))] = attrs
    return out


def parse_fetch(r):
    """One FETCH response (literals inlined by RawImap) -> dict of UID, FLAGS, RFC822.SIZE, INTERNALDATE, BODY[]."""
    m = re.search(rb"BODY\[\] \{(\d+)\}\r\n", r)
    assert m, r[:300]
    n = int(m.group(1))
    body = r[m.end():m.end() + n]
    rest = r[:m.start()] + r[m.end() + n:]
    flags = set(re.search(rb"FLAGS \(([^)]*)\)", rest).group(1).decode().split()) - {"\\Recent"}
    return {
        "uid": int(re.search(rb"UID (\d+)", rest).group(1)),
        "flags": sorted(flags),
        "size": int(re.search(rb"RFC822\.SIZE (\d+)", rest).group(1)),
        "internaldate": re.search(rb'INTERNALDATE "([^"]+)"', rest).group(1).decode(),
        "body": body,
    }


def snapshot(c):
    """Everything the two servers must agree on, read over IMAP."""
    lists = listing(c, "LIST")
    snap = {"list": lists, "lsub": set(listing(c, "LSUB")), "boxes": {}}
    for name, attrs in sorted(lists.items()):
        if attrs & {"\\noselect", "\\nonexistent"}:
            continue
        _, st = c.ok(f"STATUS {quote(name)} (MESSAGES UIDNEXT UIDVALIDITY)")
        s = st[0].decode()
        box = {k: int(re.search(k + r" (\d+)", s).group(1)) for k in ("MESSAGES", "UIDNEXT", "UIDVALIDITY")}
        _, sel = c.ok(f"EXAMINE {quote(name)}")
        # Keywords defined in the mailbox (FLAGS), as a set: servers order them freely.
        fl = next(ln for ln in sel if ln.startswith(b"* FLAGS"))
        box["defined"] = sorted(re.search(rb"\(([^)]*)\)", fl).group(1).decode().split())
        msgs = []
        if box["MESSAGES"]:
            _, untagged = c.ok("UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[])")
            msgs = sorted((parse_fetch(r) for r in untagged if b" FETCH (" in r), key=lambda x: x["uid"])
        box["messages"] = msgs
        snap["boxes"][name] = box
    return snap


def assert_same(a, b, what):
    """a and b snapshots agree; the message points at the first difference."""
    assert a["list"] == b["list"], f"{what}: LIST differs:\n{a['list']}\n{b['list']}"
    assert a["lsub"] == b["lsub"], f"{what}: LSUB differs:\n{sorted(a['lsub'])}\n{sorted(b['lsub'])}"
    assert sorted(a["boxes"]) == sorted(b["boxes"]), what
    for name in a["boxes"]:
        x, y = a["boxes"][name], b["boxes"][name]
        for k in ("UIDVALIDITY", "UIDNEXT", "MESSAGES"):
            assert x[k] == y[k], f"{what}: {name} {k}: {x[k]} != {y[k]}"
        assert [m["uid"] for m in x["messages"]] == [m["uid"] for m in y["messages"]], f"{what}: {name} UIDs"
        for mx, my in zip(x["messages"], y["messages"]):
            for k in ("flags", "size", "internaldate", "body"):
                assert mx[k] == my[k], f"{what}: {name} UID {mx['uid']} {k}: {mx[k]!r:.300} != {my[k]!r:.300}"
        assert x["defined"] == y["defined"], f"{what}: {name} FLAGS: {x['defined']} vs {y['defined']}"


def msg(subject, body="hello\r\n"):
    return (f"From: Sender <sender@other.test>\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@interop.test>\r\n"
            f"Date: Mon, 04 Mar 2024 10:00:00 +0000\r\n\r\n{body}").encode()


def uid_map(snap):
    """{(mailbox, uid): body} of a snapshot."""
    return {(name, m["uid"]): m["body"] for name, box in snap["boxes"].items() for m in box["messages"]}


# ---------------------------------------------------------------------------------------------------------


def test_dovecot_and_postern_serve_the_same_maildir_in_turn(pair):
    d, p = pair

    # (a) Dovecot writes ------------------------------------------------------------------------------
    run_dovecot(d)
    d.deliver(USER, msg("delivered by doveadm save", "first\r\n"))
    c = dovecot_client(d)
    append(c, "INBOX", msg("seen"), "\\Seen", "01-Feb-2024 09:30:00 +0100")
    append(c, "INBOX", msg("forwarded and flagged", "two\r\nlines\r\n"), "\\Flagged $Forwarded")
    gone = append(c, "INBOX", msg("to be expunged"), "\\Seen")[1]
    append(c, "INBOX", msg("junk with a custom keyword"), "Junk ProjectX")
    append(c, "INBOX", msg("answered draft", "x" * 3000 + "\r\n"), "\\Answered \\Draft")
    for box in ("Archive", NONASCII, "a/b"):
        c.ok(f"CREATE {quote(box)}")
    append(c, "Archive", msg("archived 1"), "\\Seen")
    append(c, "Archive", msg("archived 2"), "$Forwarded ProjectX")
    append(c, NONASCII, msg("in the non-ASCII folder"), "\\Flagged")
    append(c, "a/b", msg("in the child folder"))
    c.ok("SELECT INBOX")
    c.ok(f"UID STORE {gone} +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    c.ok("UID STORE 1 +FLAGS.SILENT (\\Seen Work)")  # a keyword set by STORE, not at APPEND
    for box in ("Archive", "a/b", NONASCII):
        c.ok(f"SUBSCRIBE {quote(box)}")
    from_dovecot = snapshot(c)
    c.ok("LOGOUT")
    c.close()
    stop_dovecot(d)

    inbox = from_dovecot["boxes"]["INBOX"]
    assert [m["uid"] for m in inbox["messages"]] == [1, 2, 3, 5, 6] and inbox["UIDNEXT"] == 7, inbox
    assert [m["flags"] for m in inbox["messages"]] == [
        ["Work", "\\Seen"], ["\\Seen"], ["$Forwarded", "\\Flagged"], ["Junk", "ProjectX"],
        ["\\Answered", "\\Draft"]]
    # Maildir keeps the internal date as the file's mtime: the instant survives, the zone is the server's.
    assert datetime.strptime(inbox["messages"][1]["internaldate"], "%d-%b-%Y %H:%M:%S %z") == \
        datetime(2024, 2, 1, 8, 30, tzinfo=timezone.utc)
    assert {"Archive", NONASCII, "a/b", "INBOX"} <= set(from_dovecot["list"])
    assert {"Archive", NONASCII, "a/b"} <= from_dovecot["lsub"]
    assert os.path.exists(os.path.join(d.maildir(USER), "dovecot-uidlist"))
    assert os.path.isdir(os.path.join(d.maildir(USER), ".a.b"))  # Maildir++, as Postern lays it out

    run_postern(p)
    c = postern_client(p)
    from_postern = snapshot(c)
    assert_same(from_dovecot, from_postern, "(a) Postern reading what Dovecot wrote")

    # (b) Postern writes ------------------------------------------------------------------------------
    v, new_uid = append(c, "INBOX", msg("appended by postern", "from postern\r\n"), "\\Seen $Label2")
    assert v == inbox["UIDVALIDITY"] and new_uid == inbox["UIDNEXT"], (v, new_uid, inbox)
    c.ok("SELECT INBOX")
    c.ok("UID STORE 2 -FLAGS.SILENT (\\Seen)")
    c.ok("UID STORE 3 +FLAGS.SILENT (\\Answered PosternKw)")
    c.ok("UID STORE 5 -FLAGS.SILENT (Junk)")
    c.ok('CREATE "Postern made/Child"')
    line, _ = c.ok('UID COPY 3,5 "Postern made/Child"')
    assert "COPYUID" in line, line
    c.ok("UID STORE 6 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    c.ok('SUBSCRIBE "Postern made/Child"')
    c.ok("UNSUBSCRIBE Archive")
    c.ok("SELECT Archive")
    c.ok("UID STORE 1 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    by_postern = snapshot(c)
    c.ok("LOGOUT")
    c.close()
    stop_postern(p)

    inbox_b = by_postern["boxes"]["INBOX"]
    assert [m["uid"] for m in inbox_b["messages"]] == [1, 2, 3, 5, 7], inbox_b
    assert [m["flags"] for m in inbox_b["messages"]] == [
        ["Work", "\\Seen"], [], ["$Forwarded", "PosternKw", "\\Answered", "\\Flagged"], ["ProjectX"],
        ["$Label2", "\\Seen"]]
    assert inbox_b["UIDNEXT"] == 8 and inbox_b["UIDVALIDITY"] == inbox["UIDVALIDITY"]
    assert "Archive" not in by_postern["lsub"] and "Postern made/Child" in by_postern["lsub"]

    run_dovecot(d)
    c = dovecot_client(d)
    dovecot_reads = snapshot(c)
    assert_same(by_postern, dovecot_reads, "(b) Dovecot reading what Postern wrote")

    # (c) Dovecot writes again ------------------------------------------------------------------------
    v, uid_c = append(c, "INBOX", msg("dovecot again"), "\\Flagged")
    assert v == inbox["UIDVALIDITY"] and uid_c == 8, (v, uid_c)
    vc, uid_child = append(c, "Postern made/Child", msg("dovecot into postern's folder"))
    assert uid_child == by_postern["boxes"]["Postern made/Child"]["UIDNEXT"], uid_child
    v2, uid_arch = append(c, "Archive", msg("archived 3"))
    assert uid_arch == 3 and v2 == from_dovecot["boxes"]["Archive"]["UIDVALIDITY"]  # 1 was expunged, not reused
    final_dovecot = snapshot(c)
    c.ok("LOGOUT")
    c.close()
    stop_dovecot(d)

    # Every UID handed out so far still names the same bytes, or is gone for good.
    before = {}
    for snap in (from_dovecot, by_postern):
        before.update(uid_map(snap))
    after = uid_map(final_dovecot)
    for key, body in after.items():
        if key in before:
            assert before[key] == body, f"{key}: UID reused for different bytes"
    new = sorted(set(after) - set(before))
    assert new == sorted([("INBOX", 8), ("Postern made/Child", uid_child), ("Archive", 3)]), new

    run_postern(p)
    c = postern_client(p)
    assert_same(final_dovecot, snapshot(c), "(c) Postern reading what Dovecot wrote after Postern")
    # ... and keeps counting from there.
    assert append(c, "INBOX", msg("postern last"))[1] == 9
    c.ok("LOGOUT")
    c.close()
