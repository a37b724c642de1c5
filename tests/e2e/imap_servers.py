"""IMAP servers for the end-to-end IMAP tests: the `imap_server` fixture, parametrized over IMAP_SERVERS.

Each test gets a server with empty mailboxes for alice@example.test and bob@example.test (password
"demo-password") and these helpers:

    srv.name, srv.host, srv.port
    srv.login(user)            -> imaplib.IMAP4 logged in as user ("alice" or "alice@example.test")
    srv.connect()              -> imaplib.IMAP4, not logged in
    srv.raw(user=None)         -> RawImap (exact bytes; logged in when user is given)
    srv.deliver(user, bytes)   -> puts a message into the user's INBOX the way this server gets mail
    srv.maildir(user)          -> the user's Maildir on disk

"dovecot" is a private Dovecot (scripts/dovecot_private.py) shared by the whole session: between tests every
connection a test opened is closed and the Maildirs are wiped. "postern" is a fresh `postern serve`
(conftest.make_postern) with imap_listen on a free port; deliver() goes through its SMTP listener.

conftest.py registers the fixtures (imap_server, dovecot_instance).
"""
import imaplib
import os
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import time

import pytest

from rawsocket import RawSocket

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
import dovecot_private  # noqa: E402
from dovecot_private import DOMAIN, PASSWORD, free_port  # noqa: E402  (not from conftest: it imports this module)

# The servers every IMAP test runs against. The lead adds "postern" once its IMAP server lands.
IMAP_SERVERS = ["dovecot", "postern"]

HOST = "127.0.0.1"
TIMEOUT = 15


def full_user(user):
    return user if "@" in user else f"{user}@{DOMAIN}"


class RawImap(RawSocket):
    """A raw IMAP client: send a tagged command, get back every response line up to its tagged completion.

    Literals ({n} / {n+}) inside responses are inlined, so one response is one bytes object."""

    def __init__(self, host, port, timeout=TIMEOUT, source=None):
        super().__init__(host, port, timeout, source)
        self.n = 0
        self.greeting = self.response()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; unread: %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line + b"\r\n"

    def _exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed inside a literal")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response(self):
        """One whole response (with literals inlined), without the final CRLF."""
        out = b""
        while True:
            line = self._line()
            m = re.search(rb"\{(\d+)\+?\}\r\n$", line)
            if m and not line.startswith(b"+ "):
                out += line + self._exact(int(m.group(1)))
                continue
            return out + line[:-2]

    def tag(self):
        self.n += 1
        return f"R{self.n:03d}"

    def cmd(self, text, tag=None):
        """Sends `TAG text` and returns (status, tagged_line, [untagged and continuation responses]).

        status is "OK", "NO" or "BAD" (from the tagged line)."""
        tag = tag or self.tag()
        if isinstance(text, str):
            text = text.encode()
        self.send(tag.encode() + b" " + text + b"\r\n")
        return self.wait_tagged(tag)

    def wait_tagged(self, tag):
        untagged = []
        while True:
            r = self.response()
            if r.startswith(tag.encode() + b" "):
                status = r.split(b" ", 2)[1].decode()
                return status, r.decode("utf-8", "replace"), untagged
            untagged.append(r)

    def ok(self, text):
        status, line, untagged = self.cmd(text)
        assert status == "OK", f"{text!r}: {line}\n{untagged}"
        return line, untagged

    def login(self, user, password=PASSWORD):
        return self.ok(f'LOGIN "{full_user(user)}" "{password}"')



class SourcedIMAP4(imaplib.IMAP4):
    """imaplib.IMAP4 connecting from a chosen loopback address."""

    def __init__(self, host, port, timeout, source):
        self._source = source
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0) if self._source else None)


_sources = iter(range(1, 1 << 20))


def fresh_source():
    """A loopback source address not used before in this run (127.0.0.0/8 is all loopback on Linux).

    Failed logins from one address make servers slow down that address (Dovecot's auth penalty doubles up to
    15 s), so every test that fails a login on purpose does it from its own address."""
    n = next(_sources) + (os.getpid() % 200) * 4096
    return f"127.{(n >> 16) % 250 + 1}.{(n >> 8) & 255}.{n & 255 or 1}"


class ImapServer:
    def __init__(self, name, port, deliver, maildir, log):
        self.name = name
        self.host = HOST
        self.port = port
        self._deliver = deliver
        self._maildir = maildir
        self._log = log
        self.conns = []

    def connect(self, source=None):
        m = SourcedIMAP4(self.host, self.port, TIMEOUT, source)
        self.conns.append(m)
        return m

    def login(self, user, password=PASSWORD):
        m = self.connect()
        typ, _ = m.login(full_user(user), password)
        assert typ == "OK"
        return m

    def raw(self, user=None, source=None):
        r = RawImap(self.host, self.port, source=source)
        self.conns.append(r)
        if user:
            r.login(user)
        return r

    def deliver(self, user, message):
        if isinstance(message, str):
            message = message.encode()
        self._deliver(full_user(user), message)

    def maildir(self, user):
        return self._maildir(full_user(user))

    def log(self):
        return self._log()

    def close_all(self):
        for c in self.conns:
            try:
                if isinstance(c, imaplib.IMAP4):
                    if c.state != "LOGOUT":
                        c.sock.settimeout(2)
                        try:
                            c.logout()
                        except Exception:
                            c.shutdown()
                else:
                    c.close()
            except Exception:
                pass
        self.conns = []


def _maildir_messages(path):
    n = 0
    for sub in ("new", "cur"):
        d = os.path.join(path, sub)
        if os.path.isdir(d):
            n += len(os.listdir(d))
    return n


# --- Dovecot: one private instance for the session ----------------------------------------------------------------

def private_dovecot(extra_config=""):
    """For a fixture: a started private Dovecot with `extra_config`, cleaned up after (the test is skipped when
    Dovecot cannot run here)."""
    reason = dovecot_private.available()
    if reason:
        pytest.skip(reason)
    d = dovecot_private.DovecotPrivate(extra_config=extra_config)
    d.start()
    yield d
    d.cleanup()


@pytest.fixture(scope="session")
def dovecot_instance():
    yield from private_dovecot()


def _dovecot_idle(d, timeout=5.0):
    """Waits until no IMAP/POP3 session of this Dovecot is left (anvil's view, `doveadm who`)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        p = d.doveadm("who", check=False)
        lines = [ln for ln in p.stdout.decode("utf-8", "replace").splitlines()[1:] if ln.strip()]
        if p.returncode == 0 and not lines:
            return
        time.sleep(0.05)


def _dovecot_wipe(d):
    _dovecot_idle(d)
    for entry in os.listdir(d.mail):
        shutil.rmtree(os.path.join(d.mail, entry), ignore_errors=True)


def _dovecot_server(d):
    _dovecot_wipe(d)
    return ImapServer("dovecot", d.port, d.deliver, d.maildir, d.log)


# --- Postern -----------------------------------------------------------------------------------------------------

def _postern_server(make_postern):
    port = free_port()
    p = make_postern(extra_config=f"imap_listen = 127.0.0.1:{port}\ndisable_plaintext_auth = no\n")
    # wait for the IMAP greeting too (make_postern waited for SMTP only)
    deadline = time.time() + 10
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                s.settimeout(5)
                if s.recv(512).startswith(b"* OK"):
                    break
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError(f"postern did not greet on IMAP port {port}\n{p.log()[-3000:]}")
        time.sleep(0.05)

    def maildir(user):
        local, domain = user.split("@", 1)
        return p.maildir(local, domain)

    def deliver(user, message):
        before = _maildir_messages(maildir(user))
        with smtplib.SMTP(HOST, p.port, timeout=TIMEOUT) as s:
            s.sendmail(f"sender@other.test", [user], message)
        deadline = time.time() + 10
        while _maildir_messages(maildir(user)) <= before:
            if time.time() > deadline:
                raise AssertionError(f"postern did not deliver to {user} within 10 s\n{p.log()[-3000:]}")
            time.sleep(0.02)

    srv = ImapServer("postern", port, deliver, maildir, p.log)
    srv.postern = p
    return srv


# POSTERN_TEST_REFERENCE=0 (scripts/test.sh sets it for its second build) drops the runs against Dovecot
# alone: they check the tests, not Postern. The differential tests still start Dovecot.
FIXTURE_SERVERS = [s for s in IMAP_SERVERS if s == "postern" or os.environ.get("POSTERN_TEST_REFERENCE") != "0"]


@pytest.fixture(params=FIXTURE_SERVERS)
def imap_server(request):
    if request.param == "dovecot":
        d = request.getfixturevalue("dovecot_instance")
        srv = _dovecot_server(d)
        srv.dovecot = d
    elif request.param == "postern":
        srv = _postern_server(request.getfixturevalue("make_postern"))
    else:
        raise ValueError(f"unknown IMAP server {request.param!r}")
    yield srv
    srv.close_all()


# --- helpers shared by the test modules ---------------------------------------------------------------------------

def make_message(subject="test", body="hello\r\n", sender="Sender <sender@other.test>",
                 to="Alice <alice@example.test>", date="Mon, 04 Mar 2024 10:00:00 +0000", extra=""):
    msg = (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n"
           f"Message-ID: <{abs(hash((subject, body, date)))}@other.test>\r\n{extra}\r\n{body}")
    return msg.encode("utf-8")


def untagged(lines, word):
    """Untagged responses (bytes) whose second or third token is `word` (e.g. b"EXISTS", b"FETCH", b"LIST")."""
    out = []
    for ln in lines:
        parts = ln.split(b" ", 3)
        if len(parts) >= 2 and parts[0] == b"*" and (parts[1].upper() == word or
                                                     (len(parts) >= 3 and parts[2].upper() == word)):
            out.append(ln)
    return out


def run_tool(args, timeout=30, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
