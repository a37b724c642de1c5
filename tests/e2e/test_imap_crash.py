"""IMAP crash safety (Postern only): kill -9 at random instants while clients APPEND, STORE, COPY, MOVE and
EXPUNGE, restart on the same configuration and Maildirs, and check the store's promise
(src/store/maildir/mailbox.hpp): "a message is never lost and a UID is never reused, whatever instant the
process dies".

What is checked after every restart, against what clients were told before the kill:
  - every APPEND answered OK [APPENDUID v u] is there, under UID u (unless a later acknowledged MOVE or
    EXPUNGE took it away); an acknowledged COPY's copy is in the target under its COPYUID UID; an
    acknowledged MOVE's message is in the target exactly once under its COPYUID UID and not in the source;
    an acknowledged EXPUNGE removed the message; an acknowledged STORE's flags are kept;
  - a message whose MOVE was cut short is still somewhere (source or target): never lost;
  - no message (unique Subject) is twice in one mailbox;
  - a UID that any client was given (APPENDUID, COPYUID, FETCH UID, also by the surveys after each restart)
    never names a different message later; UIDNEXT never goes down and stays above every UID handed out;
    UIDVALIDITY never changes.
"""
import os
import random
import re
import signal
import socket
import threading
import time

import pytest

from imap_servers import HOST, RawImap, free_port

KEYWORD = "$CrashKw"
COPIES = "Copies"
MOVED = "Moved"


def wait_imap(srv, timeout=10.0):
    deadline = time.time() + timeout
    while True:
        try:
            with socket.create_connection((HOST, srv.imap_port), timeout=2) as s:
                s.settimeout(5)
                if s.recv(512).startswith(b"* OK"):
                    return
        except OSError:
            pass
        if time.time() > deadline:
            raise AssertionError(f"postern did not greet on IMAP after a restart\n{srv.log()[-3000:]}")
        time.sleep(0.02)


def start_postern(make_postern):
    port = free_port()
    p = make_postern(extra_config=f"imap_listen = 127.0.0.1:{port}\ndisable_plaintext_auth = no\n")
    p.imap_port = port
    wait_imap(p)
    return p


def restart(p):
    p.start()  # same configuration directory, same Maildirs
    wait_imap(p)


def client(p):
    c = RawImap(HOST, p.imap_port, timeout=10)
    c.login("alice")
    return c


def message(tag):
    return (f"From: Crash <crash@other.test>\r\nTo: alice@example.test\r\nSubject: {tag}\r\n"
            f"Message-ID: <{tag}@crash.test>\r\nDate: Mon, 04 Mar 2024 10:00:00 +0000\r\n\r\n"
            + f"body of {tag}\r\n" * random.randint(1, 40)).encode()


def append(c, mailbox, data, flags=""):
    """APPEND with a synchronizing literal; returns (status, tagged line)."""
    tag = c.tag()
    c.send(f'{tag} APPEND "{mailbox}" {("(" + flags + ") ") if flags else ""}{{{len(data)}}}\r\n')
    r = c.response()
    if not r.startswith(b"+"):
        status = r.split(b" ", 2)[1].decode() if r.startswith(tag.encode()) else "?"
        return status, r.decode("utf-8", "replace")
    c.send(data + b"\r\n")
    status, line, _ = c.wait_tagged(tag)
    return status, line


def code(text, name):
    """The numbers of response code [NAME a b c] in text (str or bytes), or None."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    m = re.search(r"\[" + name + r" ([^\]]*)\]", text)
    return m.group(1).split() if m else None


class Worker(threading.Thread):
    """One client looping on its own mailbox Wn: APPEND, STORE, COPY to Copies, then MOVE to Moved, or
    STORE \\Deleted + EXPUNGE, or nothing. Runs until the connection breaks; records every tagged OK."""

    def __init__(self, p, n, round_no, ledger):
        super().__init__(daemon=True)
        self.p, self.n, self.round_no, self.ledger = p, n, round_no, ledger
        self.box = f"W{n}"
        self.error = None

    def run(self):
        try:
            c = client(self.p)
            c.ok(f"SELECT {self.box}")
            for i in range(100000):
                self.cycle(c, f"crash-r{self.round_no}-w{self.n}-{i}", i)
        except (OSError, EOFError):
            return  # killed
        except AssertionError as e:
            self.error = str(e)

    def cycle(self, c, tag, i):
        L = self.ledger
        data = message(tag)
        L.sent[tag] = data
        status, line = append(c, self.box, data)
        assert status == "OK", f"APPEND {tag}: {line}"
        v, uid = code(line, "APPENDUID")
        L.event("append", tag, self.box, int(uid), int(v))

        status, line, _ = c.cmd(f"UID STORE {uid} +FLAGS.SILENT (\\Flagged {KEYWORD})")
        assert status == "OK", f"STORE {tag}: {line}"
        L.event("store", tag, self.box, int(uid))

        status, line, _ = c.cmd(f"UID COPY {uid} {COPIES}")
        assert status == "OK", f"COPY {tag}: {line}"
        v, src, dst = code(line, "COPYUID")
        assert src == uid, line
        L.event("copy", tag, COPIES, int(dst), int(v))

        if i % 3 == 0:
            status, line, untagged = c.cmd(f"UID MOVE {uid} {MOVED}")
            assert status == "OK", f"MOVE {tag}: {line}"
            cu = code(line, "COPYUID") or next((code(u, "COPYUID") for u in untagged if code(u, "COPYUID")), None)
            assert cu and cu[1] == uid, f"MOVE {tag}: no COPYUID: {line} {untagged}"
            L.event("move", tag, MOVED, int(cu[2]), int(cu[0]), source=self.box)
        elif i % 3 == 1:
            # Once this STORE is sent, the message may be gone after a kill even without its OK: the
            # next connection's EXPUNGE (every \Deleted message of the mailbox) removes it then.
            L.event("delete", tag, self.box, int(uid))
            c.ok(f"UID STORE {uid} +FLAGS.SILENT (\\Deleted)")
            status, line, _ = c.cmd("EXPUNGE")
            assert status == "OK", f"EXPUNGE {tag}: {line}"
            L.event("expunge", tag, self.box, int(uid))


class Observer(threading.Thread):
    """Reads UIDs the way a client does (UID FETCH) while the workers run; what it sees is 'handed out'."""

    def __init__(self, p, ledger, boxes):
        super().__init__(daemon=True)
        self.p, self.ledger, self.boxes = p, ledger, boxes
        self.error = None

    def run(self):
        try:
            c = client(self.p)
            while True:
                for box in self.boxes:
                    c.ok(f"EXAMINE {box}")
                    for uid, (tag, _) in fetch_all(c).items():
                        self.ledger.seen(box, uid, tag, "observer FETCH")
        except (OSError, EOFError):
            return
        except AssertionError as e:
            self.error = str(e)


def fetch_all(c):
    """{uid: (subject tag, set of flags)} of the selected mailbox."""
    status, line, untagged = c.cmd("UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert status == "OK", line
    out = {}
    for r in untagged:
        if b" FETCH " not in r or b"BODY[" not in r:
            continue  # not a FETCH, or an unsolicited flag update another session caused
        uid = int(re.search(rb"UID (\d+)", r).group(1))
        flags = set(re.search(rb"FLAGS \(([^)]*)\)", r).group(1).decode().split())
        m = re.search(rb"Subject: (\S+)", r)
        assert m, f"a message without our Subject: {r[:300]!r}"
        out[uid] = (m.group(1).decode(), flags)
    return out


class Ledger:
    """What clients were told, and every (mailbox, UID) -> message binding anyone saw."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = {}
        self.events = []  # (kind, tag, mailbox, uid, uidvalidity, extra)
        self.bound = {}  # (mailbox, uid) -> (tag, where it was seen)
        self.uidvalidity = {}
        self.uidnext = {}
        self.errors = []

    def event(self, kind, tag, box, uid, v=None, source=None):
        with self.lock:
            self.events.append((kind, tag, box, uid, v, source))
        if kind in ("append", "copy", "move"):
            self.seen(box, uid, tag, kind.upper() + "UID")
            self.check_validity(box, v)

    def check_validity(self, box, v):
        with self.lock:
            old = self.uidvalidity.setdefault(box, v)
        if old != v:
            self.errors.append(f"{box}: UIDVALIDITY changed from {old} to {v}")

    def seen(self, box, uid, tag, how):
        with self.lock:
            old = self.bound.setdefault((box, uid), (tag, how))
        if old[0] != tag:
            self.errors.append(f"{box} UID {uid} reused: was {old[0]} ({old[1]}), now {tag} ({how})")


def survey(p, ledger, label):
    """After a restart: every mailbox's contents, checked against the ledger. Returns {box: {uid: ...}}."""
    c = client(p)
    try:
        _, untagged = c.ok('LIST "" "*"')
        boxes = sorted(re.search(rb'"?([^" ]+)"?$', ln).group(1).decode() for ln in untagged
                       if ln.startswith(b"* LIST"))
        contents = {}
        for box in boxes:
            status, line, st = c.cmd(f"STATUS {box} (UIDNEXT UIDVALIDITY MESSAGES)")
            # A dovecot-uidlist.lock the killed server left behind must not lock the restarted one out.
            assert status == "OK", f"{label}: STATUS {box} after the restart: {line}"
            s = st[0].decode()
            uidnext = int(re.search(r"UIDNEXT (\d+)", s).group(1))
            v = int(re.search(r"UIDVALIDITY (\d+)", s).group(1))
            ledger.check_validity(box, v)
            old = ledger.uidnext.get(box, 0)
            assert uidnext >= old, f"{label}: {box} UIDNEXT went down from {old} to {uidnext}"
            ledger.uidnext[box] = uidnext
            c.ok(f"EXAMINE {box}")
            msgs = fetch_all(c)
            contents[box] = msgs
            for uid, (tag, _) in msgs.items():
                assert uid < uidnext, f"{label}: {box} UID {uid} >= UIDNEXT {uidnext}"
                ledger.seen(box, uid, tag, f"survey {label}")
            handed = [u for (b, u) in ledger.bound if b == box]
            if handed:
                assert max(handed) < uidnext, (f"{label}: {box} UIDNEXT {uidnext} is not above UID "
                                               f"{max(handed)} handed out before")
            tags = [t for t, _ in msgs.values()]
            twice = sorted({t for t in tags if tags.count(t) > 1})
            assert not twice, f"{label}: {box} holds these messages more than once: {twice}"
        c.ok("LOGOUT")
    finally:
        c.close()
    assert not ledger.errors, f"{label}: " + "\n".join(ledger.errors[:20])
    return contents


def check_acknowledged(ledger, contents, label):
    """Every acknowledged operation's effect is there."""
    where = {}  # tag -> {box: [uids]}
    for box, msgs in contents.items():
        for uid, (tag, _) in msgs.items():
            where.setdefault(tag, {}).setdefault(box, []).append(uid)
    last = {}  # tag -> the last acknowledged operation on the original (Wn) message
    problems = []
    for kind, tag, box, uid, v, source in ledger.events:
        if kind == "copy":
            # An acknowledged copy is in Copies under its COPYUID UID, exactly once.
            if where.get(tag, {}).get(box) != [uid]:
                problems.append(f"COPY of {tag} acknowledged as {box} UID {uid}; now {where.get(tag)}")
            elif "\\Flagged" not in contents[box][uid][1]:
                problems.append(f"copy of {tag} lost the \\Flagged its source had when copied")
            continue
        last[tag] = (kind, box, uid)
    for tag, (kind, box, uid) in last.items():
        found = where.get(tag, {})
        if kind in ("append", "store"):
            if found.get(box) != [uid] and not found.get(MOVED):
                # (a MOVE cut short by the kill may have taken it to Moved: never lost, but moved)
                problems.append(f"{kind.upper()} of {tag} acknowledged ({box} UID {uid}); now {found}")
            elif kind == "store" and found.get(box) == [uid]:
                flags = contents[box][uid][1]
                if not {"\\Flagged", KEYWORD} <= flags:
                    problems.append(f"STORE on {tag} acknowledged, flags now {sorted(flags)}")
        elif kind == "move":
            src = [b for b in found if b.startswith("W")]
            if found.get(MOVED) != [uid] or src:
                problems.append(f"MOVE of {tag} acknowledged ({MOVED} UID {uid}); now {found}")
        elif kind == "delete":
            # \Deleted sent, the EXPUNGE not acknowledged: there under its UID, or expunged.
            if found.get(box) not in (None, [uid]):
                problems.append(f"{tag} (\\Deleted sent, EXPUNGE not acknowledged) in {box}: {found[box]}")
        elif kind == "expunge":
            if found.get(box):
                problems.append(f"EXPUNGE of {tag} acknowledged; still in {box}: {found[box]}")
    assert not problems, f"{label}: {len(problems)} problems:\n" + "\n".join(problems[:30])


def setup_mailboxes(p, workers):
    c = client(p)
    for box in [COPIES, MOVED] + [f"W{n}" for n in range(workers)]:
        c.ok(f"CREATE {box}")
    c.close()


def test_kill9_during_append_store_copy_move_expunge(make_postern):
    p = start_postern(make_postern)
    workers = 3
    setup_mailboxes(p, workers)
    ledger = Ledger()
    rng = random.Random()
    contents = survey(p, ledger, "before the kills")
    t_end = time.time() + 35
    rounds = 0
    while rounds < 10 and (rounds < 3 or time.time() < t_end):
        threads = [Worker(p, n, rounds, ledger) for n in range(workers)]
        threads.append(Observer(p, ledger, [COPIES, MOVED, "W0"]))
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.3, 2.0))  # a random instant to kill at, not a wait for something
        alive = [t for t in threads if t.is_alive()]
        errors = [t.error for t in threads if t.error]
        assert not errors, f"round {rounds}: a client got an unexpected answer before the kill: {errors}"
        assert len(alive) == len(threads), f"round {rounds}: a client stopped before the kill"
        p.stop(signal.SIGKILL)
        for t in threads:
            t.join(timeout=15)
            assert not t.is_alive()
        errors = [t.error for t in threads if t.error]
        assert not errors, f"round {rounds}: a client got an unexpected answer: {errors}"
        restart(p)
        rounds += 1
        contents = survey(p, ledger, f"after kill {rounds}")
        check_acknowledged(ledger, contents, f"after kill {rounds}")
    acked = {k: sum(1 for e in ledger.events if e[0] == k) for k in ("append", "store", "copy", "move", "expunge")}
    assert all(acked.values()), f"some operation was never acknowledged before a kill: {acked}"

    # After all that, the server still works and keeps counting up.
    c = client(p)
    status, line = append(c, COPIES, message("crash-after-all"))
    assert status == "OK", line
    uid = int(code(line, "APPENDUID")[1])
    assert uid >= ledger.uidnext[COPIES], (uid, ledger.uidnext[COPIES])
    c.close()


def test_kill9_right_after_each_acknowledgement(make_postern):
    """SIGKILL the moment a tagged OK is read: its effect must survive, with the same UIDs."""
    p = start_postern(make_postern)
    c = client(p)
    c.ok("CREATE Dest")
    c.close()

    def kill_restart():
        p.stop(signal.SIGKILL)
        restart(p)
        return client(p)

    def uids(c, box):
        c.ok(f"EXAMINE {box}")
        return {uid: v for uid, v in fetch_all(c).items()}

    def status(c, box):
        _, st = c.ok(f"STATUS {box} (UIDNEXT UIDVALIDITY)")
        s = st[0].decode()
        return int(re.search(r"UIDNEXT (\d+)", s).group(1)), int(re.search(r"UIDVALIDITY (\d+)", s).group(1))

    c = client(p)
    v0 = status(c, "INBOX")[1]
    # APPEND, kill
    s, line = append(c, "INBOX", message("crash-t-append"), flags="\\Seen")
    assert s == "OK", line
    v, uid = map(int, code(line, "APPENDUID"))
    assert v == v0
    c = kill_restart()
    got = uids(c, "INBOX")
    assert got == {uid: ("crash-t-append", {"\\Seen"})}, got
    assert status(c, "INBOX") == (uid + 1, v0)

    # STORE, kill
    c.ok("SELECT INBOX")
    c.ok(f"UID STORE {uid} +FLAGS.SILENT (\\Answered $Forwarded)")
    c = kill_restart()
    assert uids(c, "INBOX") == {uid: ("crash-t-append", {"\\Seen", "\\Answered", "$Forwarded"})}

    # COPY, kill
    c.ok("SELECT INBOX")
    line, _ = c.ok(f"UID COPY {uid} Dest")
    dv, _, duid = map(int, code(line, "COPYUID"))
    c = kill_restart()
    assert uids(c, "Dest") == {duid: ("crash-t-append", {"\\Seen", "\\Answered", "$Forwarded"})}
    assert status(c, "Dest") == (duid + 1, dv)

    # a second APPEND gets a UID above the first, never the first again
    s, line = append(c, "INBOX", message("crash-t-append2"))
    assert s == "OK", line
    uid2 = int(code(line, "APPENDUID")[1])
    assert uid2 > uid
    c = kill_restart()
    assert set(uids(c, "INBOX")) == {uid, uid2}

    # MOVE, kill
    c.ok("SELECT INBOX")
    line, untagged = c.ok(f"UID MOVE {uid2} Dest")
    cu = code(line, "COPYUID") or next(code(u, "COPYUID") for u in untagged if code(u, "COPYUID"))
    muid = int(cu[2])
    assert muid > duid
    c = kill_restart()
    assert set(uids(c, "INBOX")) == {uid}
    assert uids(c, "Dest") == {duid: ("crash-t-append", {"\\Seen", "\\Answered", "$Forwarded"}),
                               muid: ("crash-t-append2", set())}

    # EXPUNGE, kill: gone, and its UID is not handed out again
    c.ok("SELECT INBOX")
    c.ok(f"UID STORE {uid} +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    c = kill_restart()
    assert uids(c, "INBOX") == {}
    assert status(c, "INBOX") == (uid2 + 1, v0)
    s, line = append(c, "INBOX", message("crash-t-append3"))
    assert s == "OK", line
    assert int(code(line, "APPENDUID")[1]) == uid2 + 1
    c.close()
