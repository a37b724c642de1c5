"""End-to-end POP3 tests (RFC 1939, CAPA RFC 2449, RESP-CODES RFC 3206, AUTH RFC 5034).

Mail goes in the way each server gets it (Postern: SMTP; Dovecot: doveadm save), then real POP3 sessions
(poplib, or a raw socket for exact bytes) check what comes out and what is left in the Maildir afterwards.
The `pop3_server` fixture runs a test against Postern and against the private Dovecot
(scripts/dovecot_private.py): the same assertions hold for both, which is the compatibility promise. Tests of
behaviour only Postern has (the maildrop lock, its CAPA list, the plaintext-auth default, restarts) use the
`postern_pop3` fixture.
"""
import base64
import imaplib
import os
import poplib
import re
import smtplib
import socket
import time

import pytest

from rawsocket import RawSocket

from imap_servers import _dovecot_wipe, free_port, fresh_source, make_message

HOST = "127.0.0.1"
DOMAIN = "example.test"
PASSWORD = "demo-password"
ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"
TIMEOUT = 15

POP3_SERVERS = ["postern", "dovecot"]


def crlf(data):
    """`data` (bytes) with every line ending as CRLF: what RETR sends (before byte-stuffing)."""
    return re.sub(rb"\r?\n", b"\r\n", data)


def maildir_files(maildir):
    """{base name: (subdir, flags)} of the messages in a Maildir (new/ and cur/)."""
    out = {}
    for sub in ("new", "cur"):
        d = os.path.join(maildir, sub)
        if os.path.isdir(d):
            for name in os.listdir(d):
                base, _, info = name.partition(":")
                out[base] = (sub, info[2:] if info.startswith("2,") else "", os.path.join(d, name))
    return out


def read_uidlist(maildir):
    """(uidvalidity, {base name: uid}) from the Maildir's dovecot-uidlist."""
    with open(os.path.join(maildir, "dovecot-uidlist"), "rb") as f:
        lines = f.read().decode().split("\n")
    header = lines[0].split()
    assert header[0] == "3", lines[0]
    uidvalidity = int([h for h in header if h.startswith("V")][0][1:])
    uids = {}
    for line in lines[1:]:
        if " :" not in line:
            continue
        left, name = line.split(" :", 1)
        uids[name] = int(left.split()[0])
    return uidvalidity, uids


def expected_uidls(maildir):
    """The UIDL values Dovecot's default pop3_uidl_format (%08Xu%08Xv) gives the INBOX, in message order.

    Dovecot's %X modifier prints hex with "%llx" (lib/var-expand.c): the digits are lower case, whatever the
    capital X suggests. What Dovecot 2.3 really sends is what POP3 clients have stored, so that is the
    reference here (the differential tests below check it against the private Dovecot)."""
    uidvalidity, uids = read_uidlist(maildir)
    present = [uids[base] for base in maildir_files(maildir)]
    return ["%08x%08x" % (uid, uidvalidity) for uid in sorted(present)]


class SourcedPOP3(poplib.POP3):
    """poplib.POP3 from a chosen loopback address (failed logins make Dovecot slow down that address)."""

    def __init__(self, host, port, timeout, source=None):
        self._source = source
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0) if self._source else None)


class RawPop3(RawSocket):
    """A raw POP3 client: exact bytes out, status lines and dot-terminated multi-line bodies back."""

    def __init__(self, port, source=None, timeout=TIMEOUT):
        super().__init__(HOST, port, timeout, source)
        self.greeting = self.line()

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; unread: %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.line()

    def multi(self):
        """The lines of a multi-line body up to the terminating ".", still byte-stuffed, as bytes."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError("connection closed inside a multi-line response")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            if line == b".":
                return lines
            lines.append(line)

    def login(self, user=ALICE, password=PASSWORD):
        assert self.cmd(f"USER {user}").startswith("+OK")
        reply = self.cmd(f"PASS {password}")
        assert reply.startswith("+OK"), reply
        return reply



class Pop3Server:
    def __init__(self, name, port, deliver, maildir):
        self.name = name
        self.port = port
        self._deliver = deliver
        self._maildir = maildir
        self.conns = []

    def connect(self, source=None):
        p = SourcedPOP3(HOST, self.port, TIMEOUT, source)
        self.conns.append(p)
        return p

    def login(self, user=ALICE, password=PASSWORD, source=None, wait=10):
        """poplib.POP3 logged in. Waits (up to `wait` seconds) while the user's maildrop is still held by a
        session that just ended (Postern releases it when it has read the client's EOF or QUIT)."""
        deadline = time.time() + wait
        while True:
            p = self.connect(source)
            p.user(user)
            try:
                p.pass_(password)
                return p
            except poplib.error_proto as e:
                p.close()
                if b"[IN-USE]" not in e.args[0] or time.time() > deadline:
                    raise
                time.sleep(0.02)

    def raw(self, user=None, source=None):
        r = RawPop3(self.port, source=source)
        self.conns.append(r)
        if user:
            r.login(user)
        return r

    def deliver(self, user, message):
        self._deliver(user, message)

    def maildir(self, user=ALICE):
        return self._maildir(user)

    def close_all(self):
        for c in self.conns:
            try:
                if isinstance(c, poplib.POP3):
                    c.close()
                else:
                    c.close()
            except Exception:
                pass
        self.conns = []


def _count(maildir):
    return len(maildir_files(maildir))


def wait_greeting(port, prefix=b"+OK", log=lambda: ""):
    deadline = time.time() + 10
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                s.settimeout(5)
                if s.recv(512).startswith(prefix):
                    return
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError(f"no greeting on port {port}\n{log()[-3000:]}")
        time.sleep(0.05)


def smtp_deliver(postern, user, message):
    local, domain = user.split("@", 1)
    md = postern.maildir(local, domain)
    before = _count(md)
    with smtplib.SMTP(HOST, postern.port, timeout=TIMEOUT) as s:
        s.sendmail("sender@other.test", [user], message)
    deadline = time.time() + 10
    while _count(md) <= before:
        if time.time() > deadline:
            raise AssertionError(f"postern did not deliver to {user} within 10 s\n{postern.log()[-3000:]}")
        time.sleep(0.02)


def start_postern_pop3(make_postern, extra="", plaintext=True):
    pop3_port, imap_port = free_port(), free_port()
    config = f"pop3_listen = 127.0.0.1:{pop3_port}\nimap_listen = 127.0.0.1:{imap_port}\n"
    if plaintext:
        config += "disable_plaintext_auth = no\n"
    p = make_postern(extra_config=config + extra)
    wait_greeting(pop3_port, log=p.log)
    srv = Pop3Server("postern", pop3_port, lambda user, msg: smtp_deliver(p, user, msg),
                     lambda user: p.maildir(*user.split("@", 1)))
    srv.postern = p
    srv.imap_port = imap_port
    return srv


@pytest.fixture
def postern_pop3(make_postern):
    srv = start_postern_pop3(make_postern)
    yield srv
    srv.close_all()


@pytest.fixture(params=[s for s in POP3_SERVERS if s == "postern" or os.environ.get("POSTERN_TEST_REFERENCE") != "0"])
def pop3_server(request):
    if request.param == "postern":
        srv = start_postern_pop3(request.getfixturevalue("make_postern"))
    else:
        d = request.getfixturevalue("dovecot_instance")
        _dovecot_wipe(d)
        srv = Pop3Server("dovecot", d.pop3_port, d.deliver, d.maildir)
        srv.dovecot = d
    yield srv
    srv.close_all()


# --- messages -------------------------------------------------------------------------------------------------------

BODY_LINES = ["first body line", ".starts with a dot", "..two dots", ".", "last line"]


def dotted_message(subject="dots"):
    return make_message(subject=subject, body="".join(line + "\r\n" for line in BODY_LINES))


def retr_lines(pop, n):
    """RETR n through poplib: the message as bytes with CRLF (poplib un-stuffs the dots)."""
    resp, lines, octets = pop.retr(n)
    assert resp.startswith(b"+OK")
    return b"".join(line + b"\r\n" for line in lines)


def on_disk(srv, user=ALICE):
    """The CRLF contents of the user's messages in UID order (what RETR 1..n must send). A server that just
    logged the user in may still be moving files from new/ to cur/ (Dovecot does): read again when one moved."""
    md = srv.maildir(user)
    for _ in range(50):
        _, uids = read_uidlist(md)
        files = maildir_files(md)
        try:
            out = []
            for base in sorted(files, key=lambda b: uids[b]):
                with open(files[base][2], "rb") as f:
                    out.append(crlf(f.read()))
            return out
        except FileNotFoundError:
            time.sleep(0.02)
    raise AssertionError(f"the Maildir {md} kept changing")


# --- the whole session, both servers --------------------------------------------------------------------------------

def test_session_flow(pop3_server):
    srv = pop3_server
    first = make_message(subject="first", body="hello\r\nworld\r\n")
    second = dotted_message("second")
    srv.deliver(ALICE, first)
    srv.deliver(ALICE, second)

    p = srv.login(ALICE)
    expected = on_disk(srv)  # after the login: UIDs are assigned when a session first looks
    assert len(expected) == 2
    # The delivered message is the sent one (Postern adds trace headers in front).
    assert expected[0].endswith(first) and expected[1].endswith(second)
    count, size = p.stat()
    assert (count, size) == (2, sum(len(m) for m in expected))
    resp, listing, _ = p.list()
    assert listing == [b"%d %d" % (i + 1, len(m)) for i, m in enumerate(expected)]
    assert p.list(2) == b"+OK 2 %d" % len(expected[1])
    resp, uidls, _ = p.uidl()
    uids = [line.split()[1] for line in uidls]
    assert [line.split()[0] for line in uidls] == [b"1", b"2"]
    assert len(set(uids)) == 2
    assert p.uidl(1).split()[1:] == [b"1", uids[0]]

    # TOP n 0: the header and the blank line; TOP n 2: two body lines more.
    header, _, body = expected[1].partition(b"\r\n\r\n")
    resp, lines, _ = p.top(2, 0)
    assert b"".join(line + b"\r\n" for line in lines) == header + b"\r\n\r\n"
    resp, lines, _ = p.top(2, 2)
    assert b"".join(line + b"\r\n" for line in lines) == header + b"\r\n\r\n" + b"".join(
        line.encode() + b"\r\n" for line in BODY_LINES[:2])

    assert retr_lines(p, 1) == expected[0]
    assert retr_lines(p, 2) == expected[1]

    assert p.dele(1).startswith(b"+OK")
    assert p.stat() == (1, len(expected[1]))
    with pytest.raises(poplib.error_proto):
        p.list(1)
    with pytest.raises(poplib.error_proto):
        p.retr(1)
    with pytest.raises(poplib.error_proto):
        p.dele(1)
    resp, listing, _ = p.list()
    assert listing == [b"2 %d" % len(expected[1])]
    assert p.rset().startswith(b"+OK")
    assert p.stat() == (2, size)
    assert p.noop().startswith(b"+OK")
    assert p.dele(1).startswith(b"+OK")
    assert p.quit().startswith(b"+OK")

    # The next session sees what QUIT left: message 2 renumbered 1, with the same UIDL.
    p = srv.login(ALICE)
    assert p.stat() == (1, len(expected[1]))
    assert p.uidl()[1] == [b"1 " + uids[1]]
    assert retr_lines(p, 1) == expected[1]
    p.quit()
    assert len(maildir_files(srv.maildir(ALICE))) == 1


def test_byte_stuffing_on_the_wire(pop3_server):
    srv = pop3_server
    srv.deliver(ALICE, dotted_message())
    r = srv.raw(ALICE)
    expected = on_disk(srv)[0]
    assert r.cmd("RETR 1").startswith("+OK")
    wire = r.multi()
    # Every line starting with "." gets one more; nothing else changes.
    assert wire == [b"." + line if line.startswith(b".") else line for line in expected.split(b"\r\n")[:-1]]
    assert b"..starts with a dot" in wire and b"...two dots" in wire and b".." in wire
    assert r.cmd("TOP 1 4").startswith("+OK")
    top = r.multi()
    assert top[-4:] == [b"first body line", b"..starts with a dot", b"...two dots", b".."]
    assert r.cmd("QUIT").startswith("+OK")


def test_uidl_is_dovecot_format_from_uidlist(pop3_server):
    srv = pop3_server
    for i in range(3):
        srv.deliver(ALICE, make_message(subject=f"m{i}"))
    p = srv.login(ALICE)
    uidls = [line.split()[1].decode() for line in p.uidl()[1]]
    p.quit()
    assert all(re.fullmatch(r"[0-9a-f]{16}", u) for u in uidls), \
        f"{uidls}: Dovecot's %08Xu%08Xv gives 16 lower-case hex digits"
    assert uidls == expected_uidls(srv.maildir(ALICE))


def test_uidl_stable_across_sessions(pop3_server):
    srv = pop3_server
    for i in range(3):
        srv.deliver(ALICE, make_message(subject=f"s{i}"))
    p = srv.login(ALICE)
    before = p.uidl()[1]
    p.dele(2)
    p.quit()
    srv.deliver(ALICE, make_message(subject="later"))
    p = srv.login(ALICE)
    after = [line.split()[1] for line in p.uidl()[1]]
    p.quit()
    old = [line.split()[1] for line in before]
    assert after[:2] == [old[0], old[2]]
    assert after[2] not in old
    # the same UIDs and UIDVALIDITY as dovecot-uidlist (the exact format: test_uidl_is_dovecot_format_...)
    assert [u.decode().lower() for u in after] == expected_uidls(srv.maildir(ALICE))


def test_dropped_connection_deletes_nothing(pop3_server):
    srv = pop3_server
    srv.deliver(ALICE, make_message(subject="keep me"))
    srv.deliver(ALICE, make_message(subject="keep me too"))
    files = set(maildir_files(srv.maildir(ALICE)))
    r = srv.raw(ALICE)
    assert r.cmd("DELE 1").startswith("+OK")
    assert r.cmd("DELE 2").startswith("+OK")
    assert r.cmd("RETR 1").startswith("-ERR")
    r.close()  # no QUIT
    p = srv.login(ALICE)
    assert p.stat()[0] == 2
    p.quit()
    assert set(maildir_files(srv.maildir(ALICE))) == files


def test_dele_quit_expunges_for_imap_too(pop3_server):
    srv = pop3_server
    for i in range(3):
        srv.deliver(ALICE, make_message(subject=f"d{i}"))
    p = srv.login(ALICE)
    uidvalidity, uids = read_uidlist(srv.maildir(ALICE))
    p.dele(1)
    p.dele(3)
    assert p.quit().startswith(b"+OK")
    files = maildir_files(srv.maildir(ALICE))
    assert len(files) == 1
    _, uids = read_uidlist(srv.maildir(ALICE))
    left = uids[next(iter(files))]
    imap_port = srv.imap_port if srv.name == "postern" else srv.dovecot.port
    m = imaplib.IMAP4(HOST, imap_port, timeout=TIMEOUT)
    try:
        m.login(ALICE, PASSWORD)
        typ, data = m.status("INBOX", "(MESSAGES UIDVALIDITY)")
        assert typ == "OK"
        assert b"MESSAGES 1" in data[0] and b"UIDVALIDITY %d" % uidvalidity in data[0], data
        typ, _ = m.select("INBOX")
        assert typ == "OK"
        typ, data = m.uid("SEARCH", "ALL")
        assert data[0].split() == [str(left).encode()]
        m.logout()
    finally:
        try:
            m.shutdown()
        except OSError:
            pass


def test_retr_marks_seen_after_quit(pop3_server):
    srv = pop3_server
    for i in range(3):
        srv.deliver(ALICE, make_message(subject=f"r{i}"))
    md = srv.maildir(ALICE)
    p = srv.login(ALICE)
    _, uids = read_uidlist(md)
    by_uid = sorted(maildir_files(md), key=lambda b: uids[b])
    retr_lines(p, 2)
    p.top(3, 1)  # TOP does not count as retrieval
    files = maildir_files(md)
    assert all("S" not in files[b][1] for b in by_uid), files  # not before QUIT
    p.quit()
    files = maildir_files(md)
    assert "S" in files[by_uid[1]][1] and files[by_uid[1]][0] == "cur", files
    assert "S" not in files[by_uid[0]][1] and "S" not in files[by_uid[2]][1], files


def test_retr_without_quit_does_not_mark_seen(postern_pop3):
    # Postern only: a dropped session changes nothing. (Dovecot commits \Seen even when the client
    # disconnects without QUIT; only deletions wait for QUIT there.)
    srv = postern_pop3
    srv.deliver(ALICE, make_message(subject="dropped"))
    r = srv.raw(ALICE)
    assert r.cmd("RETR 1").startswith("+OK")
    r.multi()
    r.close()
    p = srv.login(ALICE)  # waits until the dropped session is gone
    p.quit()
    files = maildir_files(srv.maildir(ALICE))
    assert ["S" in f[1] for f in files.values()] == [False]


def test_mail_arriving_during_a_session(pop3_server):
    """The maildrop is the INBOX as it was at login: later mail waits for the next session and survives the
    QUIT that deletes the messages the session saw."""
    srv = pop3_server
    srv.deliver(ALICE, make_message(subject="old one"))
    srv.deliver(ALICE, make_message(subject="old two"))
    p = srv.login(ALICE)
    count, size = p.stat()
    assert count == 2
    srv.deliver(ALICE, make_message(subject="arrived meanwhile"))
    assert p.stat() == (count, size)
    assert len(p.list()[1]) == 2
    with pytest.raises(poplib.error_proto):
        p.retr(3)
    p.dele(1)
    p.dele(2)
    assert p.quit().startswith(b"+OK")
    p = srv.login(ALICE)
    assert p.stat()[0] == 1
    assert b"Subject: arrived meanwhile" in retr_lines(p, 1)
    p.quit()


def test_empty_maildrop(pop3_server):
    p = pop3_server.login(BOB)
    assert p.stat() == (0, 0)
    assert p.list()[1] == [] and p.uidl()[1] == []
    with pytest.raises(poplib.error_proto):
        p.retr(1)
    assert p.quit().startswith(b"+OK")


# --- authentication ---------------------------------------------------------------------------------------------

def plain(user=ALICE, password=PASSWORD, authzid=""):
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def test_auth_plain_initial_response(pop3_server):
    pop3_server.deliver(ALICE, make_message())
    r = pop3_server.raw()
    assert r.cmd(f"AUTH PLAIN {plain()}").startswith("+OK")
    assert r.cmd("STAT").startswith("+OK 1 ")
    assert r.cmd("QUIT").startswith("+OK")
    assert r.closed()


def test_auth_plain_continuation(pop3_server):
    r = pop3_server.raw()
    assert r.cmd("AUTH PLAIN") == "+ "
    assert r.cmd(plain(BOB)).startswith("+OK")
    assert r.cmd("STAT") == "+OK 0 0"
    assert r.cmd("QUIT").startswith("+OK")


def test_auth_plain_abort_and_bad_password(pop3_server):
    r = pop3_server.raw(source=fresh_source())
    assert r.cmd("AUTH PLAIN") == "+ "
    assert r.cmd("*").startswith("-ERR")
    assert r.cmd(f"AUTH PLAIN {plain(password='wrong')}").startswith("-ERR")
    assert r.cmd("STAT").startswith("-ERR")  # still not logged in
    r.login(ALICE)
    assert r.cmd("STAT").startswith("+OK")


def test_user_pass_wrong_password(pop3_server):
    r = pop3_server.raw(source=fresh_source())
    assert r.cmd(f"USER {ALICE}").startswith("+OK")
    assert r.cmd("PASS wrong").startswith("-ERR")
    assert r.cmd("PASS demo-password").startswith("-ERR")  # USER must come again
    r.login(ALICE)
    assert r.cmd("LIST").startswith("+OK")


def test_apop_refused(pop3_server):
    r = pop3_server.raw(source=fresh_source())
    assert not re.search(r"<[^>]+@[^>]+>", r.greeting), r.greeting  # no APOP timestamp offered
    assert r.cmd(f"APOP {ALICE} c4c9334bac560ecc979e58001b3e22fb").startswith("-ERR")
    assert r.cmd("STAT").startswith("-ERR")


def test_capa_both(pop3_server):
    p = pop3_server.connect()
    caps = p.capa()
    for cap in ("TOP", "UIDL", "USER", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"):
        assert cap in caps, caps
    assert "PLAIN" in caps.get("SASL", []), caps
    p.quit()


def test_capa_postern(postern_pop3):
    r = postern_pop3.raw()
    assert r.cmd("CAPA").startswith("+OK")
    caps = [c.decode() for c in r.multi()]
    for cap in ("TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "SASL PLAIN LOGIN SCRAM-SHA-256", "STLS"):
        assert cap in caps, caps
    assert any(c.startswith("IMPLEMENTATION ") for c in caps), caps
    assert not any(c.startswith("APOP") for c in caps), caps


def test_plaintext_refused_by_default(make_postern):
    srv = start_postern_pop3(make_postern, plaintext=False)
    r = srv.raw()
    try:
        assert r.cmd(f"USER {ALICE}").startswith("-ERR [AUTH]")
        assert r.cmd(f"PASS {PASSWORD}").startswith("-ERR")
        assert r.cmd(f"AUTH PLAIN {plain()}").startswith("-ERR [AUTH]")
        assert r.cmd("STAT").startswith("-ERR")
        assert r.cmd("CAPA").startswith("+OK")
        caps = [c.decode() for c in r.multi()]
        assert "USER" not in caps and "SASL PLAIN" not in caps, caps
        assert r.cmd("QUIT").startswith("+OK")
    finally:
        r.close()


# --- the maildrop lock, restarts (Postern) --------------------------------------------------------------------

def test_second_session_gets_in_use(postern_pop3):
    srv = postern_pop3
    srv.deliver(ALICE, make_message())
    first = srv.raw(ALICE)
    second = srv.raw()
    assert second.cmd(f"USER {ALICE}").startswith("+OK")
    assert second.cmd(f"PASS {PASSWORD}").startswith("-ERR [IN-USE]")
    assert second.cmd(f"AUTH PLAIN {plain()}").startswith("-ERR [IN-USE]")
    # another user is not affected
    other = srv.raw(BOB)
    assert other.cmd("STAT") == "+OK 0 0"
    # the first session goes on, and after its QUIT the maildrop is free again
    assert first.cmd("STAT").startswith("+OK 1 ")
    assert first.cmd("QUIT").startswith("+OK")
    assert first.closed()
    p = srv.login(ALICE)
    assert p.stat()[0] == 1
    p.quit()


def test_in_use_released_when_connection_drops(postern_pop3):
    srv = postern_pop3
    first = srv.raw(ALICE)
    first.close()
    p = srv.login(ALICE)  # retries only while [IN-USE]; fails if the lock is never released
    assert p.stat() == (0, 0)
    p.quit()


def test_uidl_stable_across_restart(postern_pop3):
    srv = postern_pop3
    for i in range(3):
        srv.deliver(ALICE, make_message(subject=f"restart{i}"))
    p = srv.login(ALICE)
    before = p.uidl()[1]
    sizes = p.list()[1]
    p.quit()
    srv.postern.stop()
    srv.postern.start()
    wait_greeting(srv.port, log=srv.postern.log)
    p = srv.login(ALICE)
    assert p.uidl()[1] == before
    assert p.list()[1] == sizes
    p.quit()
    assert [line.split()[1].decode().lower() for line in before] == expected_uidls(srv.maildir(ALICE))


# --- bad input ------------------------------------------------------------------------------------------------

def test_bad_input_keeps_the_session(pop3_server):
    srv = pop3_server
    srv.deliver(ALICE, make_message())
    r = srv.raw(source=fresh_source())
    assert r.cmd("STAT").startswith("-ERR")  # wrong state
    assert r.cmd("RETR 1").startswith("-ERR")
    r.login(ALICE)
    assert r.cmd("XYZZY").startswith("-ERR")  # unknown
    assert r.cmd("USER bob@example.test").startswith("-ERR")  # wrong state
    assert r.cmd("STAT").startswith("+OK 1 ")
    assert r.cmd("QUIT").startswith("+OK")
    # Postern closes a session at its 10th error: a new one for the next cases.
    r = srv.raw(ALICE)
    for bad in ("RETR 2", "RETR 0", "RETR -1", "RETR x", "LIST 99", "TOP 5 1", "DELE 4294967296"):
        assert r.cmd(bad).startswith("-ERR"), bad
    assert r.cmd("DELE 1").startswith("+OK")
    assert r.cmd("DELE 1").startswith("-ERR")  # deleted
    assert r.cmd("TOP 1 0").startswith("-ERR")
    assert r.cmd("STAT") == "+OK 0 0"  # still alive
    assert r.cmd("RSET").startswith("+OK")
    assert r.cmd("STAT").startswith("+OK 1 ")


def test_overlong_line(postern_pop3):
    r = postern_pop3.raw(ALICE)
    r.send("NOOP " + "x" * 70000 + "\r\n")
    assert r.line().startswith("-ERR")
    assert r.cmd("NOOP").startswith("+OK")  # the rest of the long line was dropped, the session goes on
    assert r.cmd("QUIT").startswith("+OK")


def test_overlong_argument(pop3_server):
    r = pop3_server.raw(ALICE)
    assert r.cmd("LIST " + "1" * 300).startswith("-ERR")
    assert r.cmd("STAT").startswith("+OK")


def test_too_many_errors_disconnects(pop3_server):
    r = pop3_server.raw(ALICE)
    for i in range(50):
        try:
            reply = r.cmd(f"BOGUS{i}")
        except (EOFError, ConnectionResetError, BrokenPipeError):
            break
        assert reply.startswith("-ERR"), reply
    else:
        pytest.fail("still connected after 50 bad commands")


def test_too_many_errors_postern(postern_pop3):
    r = postern_pop3.raw(ALICE)
    for i in range(9):
        assert r.cmd("NOPE").startswith("-ERR")
    assert r.cmd("STAT").startswith("+OK")
    assert r.cmd("NOPE").startswith("-ERR")
    assert r.line().startswith("-ERR")
    assert r.closed()


def test_pipelining(pop3_server):
    srv = pop3_server
    srv.deliver(ALICE, make_message(subject="p1"))
    srv.deliver(ALICE, make_message(subject="p2"))
    r = srv.raw()
    r.send(f"USER {ALICE}\r\nPASS {PASSWORD}\r\nSTAT\r\nLIST\r\nRETR 1\r\nDELE 2\r\nNOOP\r\n")
    assert r.line().startswith("+OK")
    assert r.line().startswith("+OK")
    assert r.line().startswith("+OK 2 ")
    assert r.line().startswith("+OK")
    assert len(r.multi()) == 2
    assert r.line().startswith("+OK")
    assert b"Subject: p1" in r.multi()
    assert r.line().startswith("+OK")
    assert r.line().startswith("+OK")
    assert r.cmd("STAT").startswith("+OK 1 ")


# --- the migration promise: Dovecot and Postern on the same Maildir -----------------------------------------------

def test_same_maildir_same_uidls(dovecot_instance, make_postern):
    d = dovecot_instance
    _dovecot_wipe(d)
    dove = Pop3Server("dovecot", d.pop3_port, d.deliver, d.maildir)
    for i in range(3):
        d.deliver(ALICE, make_message(subject=f"from dovecot {i}"))
    p = dove.login(ALICE)
    dovecot_uidls = p.uidl()[1]
    dovecot_list = p.list()[1]
    p.quit()

    srv = start_postern_pop3(make_postern, extra=f"virtual_mailbox_base = {d.mail}\n")
    srv.postern.mail = d.mail  # the later virtual_mailbox_base wins, as in Postfix
    try:
        assert srv.maildir(ALICE) == d.maildir(ALICE)
        p = srv.login(ALICE)
        postern_uidls = p.uidl()[1]
        assert p.list()[1] == dovecot_list
        p.quit()
        # Mail Postern delivers into the same tree: both servers still agree on every UIDL.
        srv.deliver(ALICE, make_message(subject="from postern"))
        p = srv.login(ALICE)
        postern_uidls2 = p.uidl()[1]
        postern_list = p.list()[1]
        p.quit()
        assert len(postern_uidls2) == 4 and postern_uidls2[:3] == postern_uidls
        p = dove.login(ALICE)
        dovecot_uidls2 = p.uidl()[1]
        assert p.list()[1] == postern_list
        p.quit()
        # The same UIDs and UIDVALIDITY on both sides...
        assert [u.lower() for u in postern_uidls] == dovecot_uidls
        assert [u.lower() for u in postern_uidls2] == dovecot_uidls2
        # ...and the same strings: a POP3 client compares UIDLs byte for byte, and one that sees other
        # strings after the migration downloads every message again.
        assert postern_uidls == dovecot_uidls
        assert postern_uidls2 == dovecot_uidls2
    finally:
        srv.close_all()
        dove.close_all()


TRICKY_FILES = [
    b"Subject: lf\n\nbody\n.dot\n..two\n.\n",
    b"Subject: no final newline\n\nlast line without one",
    b"Subject: header only\n",
    b"Subject: header only, no newline",
    b"Subject: crlf\r\n\r\n\r\nafter a blank line\r\n\r\n",
    b"Subject: empty body\n\n",
    b"Subject: bare cr\n\nbare\rcr\n",
    b"Subject: folded\n header\n\n\n\nthree blank lines before\n",
    # over 1 MiB: Postern sends it from a worker thread, not the connection's I/O thread
    b"Subject: big\n\n" + b"".join(b".%06d dotted and bare LF\n" % i for i in range(50000)) + b"\r\nend",
]


def transcript(port, count):
    """Exact wire lines of LIST, TOP n 0, TOP n 1, TOP n 99 and RETR n for every message."""
    r = RawPop3(port)
    try:
        r.login(ALICE)
        out = []
        assert r.cmd("LIST").startswith("+OK")
        out.append(("LIST", r.multi()))
        out.append(("STAT", r.cmd("STAT")))
        for n in range(1, count + 1):
            for cmd in (f"TOP {n} 0", f"TOP {n} 1", f"TOP {n} 99", f"RETR {n}"):
                status = r.cmd(cmd)
                out.append((cmd, status[:3], r.multi() if status.startswith("+OK") else None))
        assert r.cmd("QUIT").startswith("+OK")
        return out
    finally:
        r.close()


def test_same_maildir_same_bytes(dovecot_instance, make_postern):
    """Files as other programs leave them in a Maildir (LF, CRLF, no final newline, no body): Postern sends the
    same bytes as Dovecot for LIST, STAT, TOP and RETR."""
    d = dovecot_instance
    _dovecot_wipe(d)
    dove = Pop3Server("dovecot", d.pop3_port, d.deliver, d.maildir)
    dove.login(ALICE).quit()  # creates the Maildir
    new = os.path.join(d.maildir(ALICE), "new")
    for i, content in enumerate(TRICKY_FILES):
        name = os.path.join(new, f"17000000{i:02d}.M1P1.test")
        with open(name, "wb") as f:
            f.write(content)
        os.chown(name, d.uid, d.gid)
    expected = transcript(d.pop3_port, len(TRICKY_FILES))
    assert len(expected[0][1]) == len(TRICKY_FILES)
    assert ("RETR 2", "+OK", [b"Subject: no final newline", b"", b"last line without one"]) in expected
    srv = start_postern_pop3(make_postern, extra=f"virtual_mailbox_base = {d.mail}\n")
    got = transcript(srv.port, len(TRICKY_FILES))
    for e, g in zip(expected, got):
        assert g == e, f"{e[0]}: postern differs from dovecot"
    assert len(got) == len(expected)


def test_password_with_spaces_and_long_password(postern_pop3):
    srv = postern_pop3
    spaced = "two words  and more "
    long_pw = "L" * 300
    srv.postern.run("user", "add", f"carol@{DOMAIN}", "--password-stdin", input=spaced + "\n")
    srv.postern.run("user", "add", f"dave@{DOMAIN}", "--password-stdin", input=long_pw + "\n")
    r = srv.raw()
    r.login(f"carol@{DOMAIN}", spaced)  # PASS takes the rest of the line, spaces included
    assert r.cmd("STAT") == "+OK 0 0"
    r = srv.raw()
    r.login(f"dave@{DOMAIN}", long_pw)
    assert r.cmd("QUIT").startswith("+OK") and r.closed()
    r = srv.raw()
    assert r.cmd("AUTH PLAIN") == "+ "  # a long response goes on the continuation line (RFC 5034 4)
    assert r.cmd(plain(f"dave@{DOMAIN}", long_pw)).startswith("+OK")


def test_failed_maildrop_open_releases_the_lock(postern_pop3):
    """A login whose Maildir cannot be opened ([SYS/TEMP]) must not keep the user's maildrop locked, also
    when the same connection then logs in as someone else."""
    srv = postern_pop3
    srv.login(ALICE).quit()  # creates the Maildir
    cur = os.path.join(srv.maildir(ALICE), "cur")
    os.chmod(cur, 0)
    try:
        r = srv.raw()
        assert r.cmd(f"USER {ALICE}").startswith("+OK")
        reply = r.cmd(f"PASS {PASSWORD}")
        if reply.startswith("+OK"):
            pytest.skip("the server runs as root here: a mode 000 directory does not stop it")
        assert reply.startswith("-ERR [SYS/TEMP]"), reply
        r.login(BOB)
        assert r.cmd("QUIT").startswith("+OK") and r.closed()
    finally:
        os.chmod(cur, 0o700)
    p = srv.login(ALICE, wait=2)  # fails with [IN-USE] when the lock leaked
    assert p.stat() == (0, 0)
    p.quit()
