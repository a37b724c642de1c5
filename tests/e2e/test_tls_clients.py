"""Issue 5's TLS and SASL with clients nobody here wrote (each test is skipped only when its client is missing):

- SCRAM-SHA-256-PLUS with the tls-exporter channel binding (RFC 9266) over imaps, IMAP STARTTLS and submission
  STARTTLS, through pyOpenSSL (Python's ssl module cannot export keying material) and the SCRAM client of
  scram.py: the right binding logs in, a flipped byte and the "y" flag (downgrade) are refused, plain
  SCRAM-SHA-256 inside TLS still works.
- curl over imaps/pop3s/smtps and smtp+STARTTLS (verifying the server's self-signed certificate by name),
  mbsync over IMAPS and STARTTLS, fetchmail over pop3s and STLS, mutt sending through submission and reading
  over imaps, swaks --tls/--tlsc with AUTH PLAIN, openssl s_client -starttls smtp with AUTH typed by hand,
  nodemailer (npm) over STARTTLS.
- smtplib/imaplib/poplib with a verifying context and a certificate signed by a CA made here: the right name
  (SNI) verifies, a wrong name fails.
Every test checks the mail that arrived (Maildir files, or what the client fetched), not only exit codes.
"""
import base64
import email
import fcntl
import imaplib
import os
import poplib
import re
import select
import shutil
import smtplib
import socket
import ssl
import struct
import subprocess
import termios
import time

import pytest

from conftest import DOMAIN, PASSWORD
from scram import ScramClient, b64
from test_tls import TlsServer

try:
    from OpenSSL import SSL
except ImportError:  # python3-openssl (scripts/install-deps.sh installs it)
    SSL = None

ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
NAME = f"mail.{DOMAIN}"  # the name in the server's certificate
JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")


def tool(name):
    path = shutil.which(name)
    if not path:
        pytest.skip(f"{name} is not installed (scripts/install-deps.sh installs it)")
    return path


@pytest.fixture
def srv(make_postern, tmp_path):
    """A started Postern with every TLS listener, serving the self-signed certificate it made itself;
    srv.cert is that certificate alone (PEM), the file clients are told to trust."""
    os.chmod(tmp_path, 0o755)
    s = TlsServer(make_postern).start()
    with open(os.path.join(s.p.root, "queue", "tls", "selfsigned.pem")) as f:
        text = f.read()
    cert = text[text.index("-----BEGIN CERTIFICATE-----"):]
    s.cert = str(tmp_path / "server-cert.pem")
    with open(s.cert, "w") as f:
        f.write(cert)
    s.tmp = tmp_path
    return s


def wait_messages(p, user, count, timeout=10.0):
    """The user's messages once there are `count` of them (delivery finishes after the client's last reply)."""
    deadline = time.time() + timeout
    while True:
        msgs = p.messages(user)
        if len(msgs) >= count or time.time() > deadline:
            assert len(msgs) == count, [m[:300] for m in msgs]
            return msgs
        time.sleep(0.05)


def run(cmd, timeout=60, **kw):
    return subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)


# --- SCRAM-SHA-256-PLUS with pyOpenSSL ------------------------------------------------------------------------

class Conn:
    """A line-oriented client on a plain socket that can switch to TLS (pyOpenSSL) and export the
    tls-exporter channel binding of RFC 9266."""

    def __init__(self, port, cafile):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.settimeout(None)  # pyOpenSSL needs a blocking socket: bound every read by SO_RCVTIMEO instead
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 10, 0))
        self.io, self.buf, self.cafile = self.sock, b"", cafile

    def start_tls(self):
        assert not self.buf, "the server sent something before the handshake"
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.load_verify_locations(self.cafile)
        ctx.set_verify(SSL.VERIFY_PEER, lambda conn, cert, errno, depth, ok: bool(ok))
        c = SSL.Connection(ctx, self.sock)
        c.set_tlsext_host_name(NAME.encode())
        c.set_connect_state()
        c.do_handshake()
        self.io = c
        return c.get_protocol_version_name()

    def binding(self):
        return self.io.export_keying_material(b"EXPORTER-Channel-Binding", 32)

    def send(self, line):
        self.io.sendall(line.encode() + b"\r\n")

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.io.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode()

    def smtp(self, command):
        """Sends an SMTP command, returns (code, [lines])."""
        self.send(command)
        lines = [self.line()]
        while lines[-1][3:4] == "-":
            lines.append(self.line())
        return int(lines[-1][:3]), lines


class ImapSide:
    """IMAP over imaps (`implicit`) or STARTTLS on the IMAP port."""

    def __init__(self, srv, implicit):
        self.c = Conn(srv.ports["imaps" if implicit else "imap"], srv.cert)
        if implicit:
            self.version = self.c.start_tls()
        assert self.c.line().startswith("* OK")
        if not implicit:
            self.c.send("s STARTTLS")
            assert self.c.line().startswith("s OK")
            self.version = self.c.start_tls()
        self.c.send("c CAPABILITY")
        caps = self.c.line()
        assert self.c.line().startswith("c OK")
        self.mechanisms = {w[5:] for w in caps.split() if w.startswith("AUTH=")}

    def authenticate(self, mechanism, steps):
        """Runs AUTHENTICATE; returns (True, line) when logged in, (False, line) when refused."""
        self.c.send(f"a AUTHENTICATE {mechanism}")
        steps = iter(steps)
        while True:
            line = self.c.line()
            if not line.startswith("+"):
                return line.startswith("a OK"), line
            self.c.send(b64(next(steps)(base64.b64decode(line[2:]))))

    def logged_in(self):
        self.c.send("x SELECT INBOX")
        while True:
            line = self.c.line()
            if line.startswith("x "):
                return line.startswith("x OK")


class SubmissionSide:
    """SMTP submission with STARTTLS."""

    def __init__(self, srv, implicit=False):
        assert not implicit
        self.c = Conn(srv.ports["submission"], srv.cert)
        assert self.c.line().startswith("220 ")
        assert self.c.smtp("EHLO client.test")[0] == 250
        assert self.c.smtp("STARTTLS")[0] == 220
        self.version = self.c.start_tls()
        code, lines = self.c.smtp("EHLO client.test")
        assert code == 250
        (auth,) = [l[4:] for l in lines if l[4:].startswith("AUTH ")]
        self.mechanisms = set(auth.split()[1:])

    def authenticate(self, mechanism, steps):
        steps = iter(steps)
        code, lines = self.c.smtp(f"AUTH {mechanism}")
        while code == 334:
            code, lines = self.c.smtp(b64(next(steps)(base64.b64decode(lines[-1][4:]))))
        return code == 235, lines[-1]

    def logged_in(self):
        # RFC 4954: AUTH in an authenticated session is 503; otherwise a wrong password is 535 5.7.8.
        code, lines = self.c.smtp("AUTH PLAIN " + b64(f"\0{ALICE}\0wrong".encode()))
        assert code in (503, 535), lines
        return code == 503

    def send(self, subject):
        for command in (f"MAIL FROM:<{ALICE}>", f"RCPT TO:<{BOB}>"):
            assert self.c.smtp(command)[0] == 250
        assert self.c.smtp("DATA")[0] == 354
        assert self.c.smtp(f"Subject: {subject}\r\n\r\nbound to this TLS connection\r\n.")[0] == 250


def refused(line):
    """The failure reply of IMAP (RFC 5530) or SMTP AUTH (RFC 4954) for bad credentials."""
    return "NO [AUTHENTICATIONFAILED]" in line or line.startswith("535 5.7.8")


SIDES = [(ImapSide, True), (ImapSide, False), (SubmissionSide, False)]
SIDE_IDS = ["imaps", "imap-starttls", "submission-starttls"]


@pytest.mark.skipif(SSL is None, reason="pyOpenSSL is not installed (python3-openssl, scripts/install-deps.sh)")
@pytest.mark.parametrize("side,implicit", SIDES, ids=SIDE_IDS)
def test_scram_plus_channel_binding(srv, side, implicit):
    s = side(srv, implicit)
    assert s.version == "TLSv1.3"
    assert {"SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"} <= s.mechanisms, s.mechanisms
    c = ScramClient(ALICE, PASSWORD, "p=tls-exporter,,", s.c.binding())
    ok, line = s.authenticate("SCRAM-SHA-256-PLUS", c.steps())
    assert ok and c.verified, line
    assert s.logged_in()
    if isinstance(s, SubmissionSide):
        s.send("after SCRAM-SHA-256-PLUS")
        (msg,) = wait_messages(srv.p, "bob", 1)
        assert b"with ESMTPSA" in msg and b"Subject: after SCRAM-SHA-256-PLUS" in msg, msg[:500]
        srv.p.wait_log(f"sasl_method=SCRAM-SHA-256-PLUS, sasl_username={ALICE}")
    else:
        srv.p.wait_log(f"Login: user=<{ALICE}>, method=SCRAM-SHA-256-PLUS")


@pytest.mark.skipif(SSL is None, reason="pyOpenSSL is not installed (python3-openssl, scripts/install-deps.sh)")
@pytest.mark.parametrize("side,implicit", SIDES, ids=SIDE_IDS)
def test_scram_plus_refusals(srv, side, implicit):
    # A binding that is not this connection's (one byte flipped), as a man in the middle would present.
    s = side(srv, implicit)
    binding = bytearray(s.c.binding())
    binding[7] ^= 0x01
    c = ScramClient(ALICE, PASSWORD, "p=tls-exporter,,", bytes(binding))
    ok, line = s.authenticate("SCRAM-SHA-256-PLUS", c.steps())
    assert not ok and not c.verified and refused(line), line
    assert not s.logged_in()
    # "y": the client could bind but believes the server cannot. The server offers -PLUS, so someone removed
    # it from the list: RFC 5802 section 6 says to fail (downgrade protection), even with the right password.
    s = side(srv, implicit)
    c = ScramClient(ALICE, PASSWORD, "y,,")
    ok, line = s.authenticate("SCRAM-SHA-256", c.steps())
    assert not ok and not c.verified and refused(line), line
    assert not s.logged_in()
    # The -PLUS gs2 header under the name without -PLUS is refused too.
    s = side(srv, implicit)
    c = ScramClient(ALICE, PASSWORD, "p=tls-exporter,,", s.c.binding())
    ok, line = s.authenticate("SCRAM-SHA-256", c.steps())
    assert not ok and not c.verified and refused(line), line
    # Plain SCRAM-SHA-256 ("n": no binding) inside TLS is still a valid login.
    s = side(srv, implicit)
    c = ScramClient(ALICE, PASSWORD)
    ok, line = s.authenticate("SCRAM-SHA-256", c.steps())
    assert ok and c.verified, line
    assert s.logged_in()


def test_submission_refuses_local_recipient_without_auth(srv):
    # Inside TLS but without AUTH, submission accepts no recipient at all, not even a local one.
    s = smtplib.SMTP("127.0.0.1", srv.ports["submission"], timeout=10)
    s.starttls(context=ssl._create_unverified_context())
    s.ehlo("client.test")
    assert s.docmd(f"MAIL FROM:<{ALICE}>")[0] == 250
    code, msg = s.docmd(f"RCPT TO:<{BOB}>")
    s.quit()
    assert code == 554 and msg.startswith(b"5.7.1"), (code, msg)
