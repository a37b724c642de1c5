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


def crlf(data):
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


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


# --- curl --------------------------------------------------------------------------------------------------

def curl(srv, port, url_path, *args, scheme, input=None):
    """curl against NAME (resolved to 127.0.0.1 by --resolve), verifying the server's certificate and name."""
    p = run([tool("curl"), "-sS", "--max-time", "20", "--ssl-reqd", "--cacert", srv.cert,
             "--resolve", f"{NAME}:{port}:127.0.0.1", f"{scheme}://{NAME}:{port}{url_path}", *args], input=input)
    assert p.returncode == 0, f"curl exited {p.returncode}: {p.stderr.decode(errors='replace')}"
    return p.stdout


def test_curl_submits_over_smtps_and_starttls_then_reads_over_imaps_and_pop3s(srv):
    login = ["-u", f"{ALICE}:{PASSWORD}", "--mail-from", ALICE, "--mail-rcpt", BOB]
    for i, (scheme, port) in enumerate([("smtps", srv.ports["submissions"]), ("smtp", srv.ports["submission"])]):
        body = f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: curl {scheme}\r\n\r\nsent by curl over {scheme}\r\n"
        curl(srv, port, "", *login, "-T", "-", scheme=scheme, input=body.encode())
        msgs = wait_messages(srv.p, "bob", i + 1)
        assert any(f"sent by curl over {scheme}".encode() in m and b"with ESMTPSA" in m for m in msgs), msgs
    on_disk = [crlf(m) for m in srv.p.messages("bob")]  # Maildir files end lines with LF, the wire with CRLF
    bob = ["-u", f"{BOB}:{PASSWORD}"]
    for uid, msg in enumerate(on_disk, 1):
        assert curl(srv, srv.ports["imaps"], f"/INBOX;UID={uid}", *bob, scheme="imaps") == msg
        assert curl(srv, srv.ports["pop3s"], f"/{uid}", *bob, scheme="pop3s") == msg
    listing = curl(srv, srv.ports["pop3s"], "/", *bob, scheme="pop3s")
    assert listing.split(b"\r\n")[:-1] == [b"%d %d" % (i, len(m)) for i, m in enumerate(on_disk, 1)]
    # A wrong password over TLS: curl's "login denied".
    p = run([tool("curl"), "-sS", "--max-time", "20", "-k", f"imaps://127.0.0.1:{srv.ports['imaps']}/",
             "-u", f"{BOB}:wrong"])
    assert p.returncode == 67, p


def deliver(srv, user, subject, count):
    """Delivers one message to `user` over port 25 (no TLS needed there) and waits until it is in the Maildir."""
    with smtplib.SMTP("127.0.0.1", srv.smtp, timeout=10) as s:
        s.sendmail(f"sender@{DOMAIN}", [f"{user}@{DOMAIN}"], f"Subject: {subject}\r\n\r\n{subject} body\r\n".encode())
    return wait_messages(srv.p, user, count)


def maildir_files(root):
    out = {}
    for d, _, files in os.walk(root):
        if os.path.basename(d) in ("cur", "new"):
            for f in files:
                with open(os.path.join(d, f), "rb") as fh:
                    out[os.path.join(d, f)] = fh.read()
    return out


# --- mbsync (isync) ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("ssl_type", ["IMAPS", "STARTTLS"])
def test_mbsync_over_tls(srv, ssl_type):
    mbsync = tool("mbsync")
    deliver(srv, "alice", "first for mbsync", 1)
    deliver(srv, "alice", "second for mbsync", 2)
    local = srv.tmp / "Mail"
    local.mkdir()
    rc = srv.tmp / "mbsyncrc"
    rc.write_text(f"""\
IMAPAccount test
Host 127.0.0.1
Port {srv.ports["imaps" if ssl_type == "IMAPS" else "imap"]}
User {ALICE}
Pass {PASSWORD}
SSLType {ssl_type}
SSLVersions TLSv1.3
CertificateFile {srv.cert}

IMAPStore remote
Account test

MaildirStore local
Path {local}/
Inbox {local}/INBOX

Channel test
Far :remote:
Near :local:
Patterns INBOX
Create Near
SyncState *
""")
    p = run([mbsync, "-c", str(rc), "-a"], env=dict(os.environ, HOME=str(srv.tmp)))
    assert p.returncode == 0, p.stdout + p.stderr
    files = maildir_files(local / "INBOX")
    assert sorted(re.search(rb"Subject: (.*) for mbsync", m).group(1) for m in files.values()) == \
        [b"first", b"second"], files
    # mbsync adds X-TUID (its own tracking header) to the copies it writes; otherwise they are the server's files.
    assert sorted(re.sub(rb"X-TUID: \S+\n", b"", m) for m in files.values()) == sorted(srv.p.messages("alice"))
    log = srv.p.log()
    assert "TLS connection established from 127.0.0.1: TLSv1.3" in log
    # With Cyrus SASL's SCRAM plugin (libsasl2-modules) mbsync logs in with SCRAM-SHA-256, a third-party SCRAM
    # client; without it, with PLAIN or LOGIN.
    m = re.search(rf"Login: user=<{re.escape(ALICE)}>, method=([A-Z0-9-]+)", log)
    assert m and m.group(1) in ("SCRAM-SHA-256", "PLAIN", "LOGIN"), log[-2000:]


# --- fetchmail ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["pop3s", "stls"])
def test_fetchmail_over_tls(srv, mode):
    fetchmail = tool("fetchmail")
    deliver(srv, "alice", "fetch one", 1)
    expected = deliver(srv, "alice", "fetch two", 2)
    out = srv.tmp / "out"
    out.mkdir()
    if mode == "pop3s":  # implicit TLS, the certificate checked against the file and the name
        port, tls = srv.ports["pop3s"], f"ssl sslcertck sslcertfile '{srv.cert}' sslcommonname '{NAME}'"
    else:  # STLS on the POP3 port, the certificate pinned by its fingerprint (fetchmail takes MD5) instead
        fp = run(["openssl", "x509", "-in", srv.cert, "-noout", "-fingerprint", "-md5"]).stdout.decode()
        port = srv.ports["pop3"]
        tls = f"sslproto 'tls1.2+' no sslcertck sslcommonname '{NAME}' sslfingerprint '{fp.split('=', 1)[1].strip()}'"
    rc = srv.tmp / "fetchmailrc"
    rc.write_text(
        "set no syslog\nset invisible\n"
        f"poll 127.0.0.1 service {port} protocol pop3 auth password timeout 15\n"
        f'  user "{ALICE}" there with password "{PASSWORD}"\n'
        f"  {tls} fetchall no rewrite nokeep\n"
        f"  mda \"/bin/sh -c 'cat > {out}/msg.$$'\"\n")
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=str(srv.tmp), FETCHMAILHOME=str(srv.tmp), FETCHMAILUSER="root", LC_ALL="C")
    p = run([fetchmail, "--nodetach", "--nosyslog", "-f", str(rc), "-i", str(srv.tmp / "ids"),
             "--pidfile", str(srv.tmp / "pid"), "-v"], env=env)
    log = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode == 0, log
    got = sorted(f.read_bytes() for f in out.iterdir())
    assert got == sorted(expected), log
    assert srv.p.messages("alice") == [], "nokeep: fetchmail deleted what it fetched"
    assert re.search(r"2 messages? for alice@example\.test", log), log
    if mode == "stls":
        assert "STLS" in log and "fingerprints match" in log, log
    assert "TLS connection established from 127.0.0.1" in srv.p.log()


# --- mutt --------------------------------------------------------------------------------------------------

def run_in_pty(cmd, env, timeout=30):
    """Runs a full-screen program on a pseudo-terminal (mutt's index needs one); returns (status, output)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    out, deadline = b"", time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the program exited and closed the terminal
                break
            if not data:
                break
            out += data
        elif p.poll() is not None:
            break
    else:
        p.kill()
    os.close(master)
    return p.wait(), out.decode(errors="replace")


def test_mutt_sends_through_submission_and_reads_over_imaps(srv):
    mutt = tool("mutt")
    rc = srv.tmp / "muttrc"
    rc.write_text(f"""\
set from = "{ALICE}"
set use_from = yes
set hostname = {DOMAIN}
set record = ""
set smtp_url = "smtp://{ALICE.replace('@', '%40')}@127.0.0.1:{srv.ports['submission']}/"
set smtp_pass = "{PASSWORD}"
set smtp_authenticators = "plain"
set ssl_starttls = yes
set ssl_force_tls = yes
set ssl_verify_host = no
set certificate_file = "{srv.cert}"
set imap_user = "{BOB}"
set imap_pass = "{PASSWORD}"
set folder = "imaps://127.0.0.1:{srv.ports['imaps']}/"
set spoolfile = "+INBOX"
set confirmcreate = no
set confirmappend = no
set quit = yes
set mbox_type = mbox
""")
    env = dict(os.environ, HOME=str(srv.tmp), TERM="vt100", LC_ALL="C.UTF-8")
    # Batch mode (standard input not a terminal): mutt sends at once, over STARTTLS with AUTH PLAIN.
    p = run([mutt, "-n", "-F", str(rc), "-s", "mutt over submission", BOB], env=env,
            input=b"written in mutt\n")
    assert p.returncode == 0, p.stdout + p.stderr
    (msg,) = wait_messages(srv.p, "bob", 1)
    assert b"Subject: mutt over submission" in msg and b"written in mutt" in msg and b"with ESMTPSA" in msg, msg
    assert f"sasl_method=PLAIN, sasl_username={ALICE}" in srv.p.log()
    # Reading: mutt opens bob's INBOX over imaps and copies every message into a local mbox.
    out = srv.tmp / "copied.mbox"
    status, screen = run_in_pty(
        [mutt, "-n", "-F", str(rc), "-e", f"push '<tag-pattern>~A<enter><tag-prefix><copy-message>{out}<enter><quit>'"],
        env)
    assert status == 0 and out.exists(), screen[-2000:]
    copied = email.message_from_bytes(out.read_bytes().split(b"\n", 1)[1])  # after the mbox "From " line
    assert copied["Subject"] == "mutt over submission" and "written in mutt" in copied.get_payload(), copied
    assert re.search(rf"Login: user=<{re.escape(BOB)}>, method=", srv.p.log())


# --- swaks and openssl s_client -------------------------------------------------------------------------------

@pytest.mark.parametrize("listener,tls_flag", [("submission", "--tls"), ("submissions", "--tlsc")])
def test_swaks_auth_plain_over_tls(srv, listener, tls_flag):
    swaks = tool("swaks")

    def send(password):
        return run([swaks, "--server", f"127.0.0.1:{srv.ports[listener]}", tls_flag, "--auth", "PLAIN",
                    "--auth-user", ALICE, "--auth-password", password, "--from", ALICE, "--to", BOB,
                    "--header", f"Subject: swaks {listener}", "--body", f"sent by swaks {tls_flag}"], timeout=30)
    p = send(PASSWORD)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0 and "235 2.7.0" in out and "TLS started" in out, out
    (msg,) = wait_messages(srv.p, "bob", 1)
    assert f"Subject: swaks {listener}".encode() in msg and b"with ESMTPSA" in msg, msg
    p = send("wrong")
    assert p.returncode != 0 and "535 5.7.8" in p.stdout.decode(errors="replace"), p.stdout
    time.sleep(0.2)
    assert len(srv.p.messages("bob")) == 1


def test_openssl_s_client_starttls_auth_plain_by_hand(srv):
    """The classic by-hand check: s_client -starttls smtp, then EHLO, AUTH PLAIN and a message, typed line by line."""
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{srv.ports['submission']}",
                          "-starttls", "smtp", "-crlf", "-quiet", "-CAfile", srv.cert, "-verify_return_error",
                          "-verify_hostname", NAME, "-servername", NAME],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    buf = b""

    def reply():
        nonlocal buf
        deadline = time.time() + 10
        while True:
            lines = buf.split(b"\n")
            done = [l for l in lines[:-1] if re.match(rb"^\d{3} ", l)]
            if done:
                end = buf.index(done[0]) + len(done[0]) + 1
                text, buf = buf[:end].decode(), buf[end:]
                return int(done[0][:3]), text
            ready, _, _ = select.select([p.stdout], [], [], max(0.0, deadline - time.time()))
            assert ready, f"no reply; so far {buf!r}"
            chunk = os.read(p.stdout.fileno(), 65536)
            assert chunk, f"s_client ended: {p.stderr.read().decode(errors='replace')}"
            buf += chunk

    def type_line(text):
        p.stdin.write(text.encode() + b"\n")  # -crlf: s_client sends CRLF
        p.stdin.flush()
        return reply()

    try:
        # s_client read the greeting and did EHLO + STARTTLS itself: inside TLS the session starts anew.
        code, text = type_line("EHLO client.test")
        assert code == 250 and "AUTH PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS" in text, text
        assert type_line("AUTH PLAIN " + b64(f"\0{ALICE}\0wrong".encode()))[0] == 535
        code, text = type_line("AUTH PLAIN " + b64(f"\0{ALICE}\0{PASSWORD}".encode()))
        assert code == 235 and "2.7.0" in text, text
        assert type_line(f"MAIL FROM:<{ALICE}>")[0] == 250
        assert type_line(f"RCPT TO:<{BOB}>")[0] == 250
        assert type_line("DATA")[0] == 354
        for line in ("Subject: typed into s_client", "", "..a line starting with a dot", "hello"):
            p.stdin.write(line.encode() + b"\n")
        assert type_line(".")[0] == 250
        assert type_line("QUIT")[0] == 221
    finally:
        p.stdin.close()
        p.wait(timeout=10)
    (msg,) = wait_messages(srv.p, "bob", 1)
    assert b"Subject: typed into s_client" in msg and b"\n.a line starting with a dot\n" in msg, msg
    assert b"with ESMTPSA" in msg, msg


# --- smtplib / imaplib / poplib verifying a CA-signed certificate ---------------------------------------------

def make_ca_and_server_cert(directory):
    """A CA and a certificate for NAME signed by it; returns (CA certificate, server key+certificate PEM)."""
    d = str(directory)

    def openssl(*args):
        p = run(["openssl", *args], cwd=d)
        assert p.returncode == 0, p.stderr

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-days", "30", "-subj", "/CN=Postern Test CA", "-keyout", "ca.key", "-out", "ca.crt",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", *ec, "-subj", f"/CN={NAME}", "-keyout", "server.key", "-out", "server.csr")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write(f"subjectAltName=DNS:{NAME}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "30",
            "-extfile", "server.ext", "-out", "server.crt")
    pem = os.path.join(d, "server.pem")
    with open(pem, "w") as out:
        for part in ("server.key", "server.crt"):
            with open(os.path.join(d, part)) as f:
                out.write(f.read())
    os.chmod(pem, 0o644)
    return os.path.join(d, "ca.crt"), pem


class NamedContext(ssl.SSLContext):
    """A verifying client context that asks for (SNI) and checks `server_name` whatever address the library
    connected to: smtplib/imaplib/poplib pass the host they dialled, 127.0.0.1 here."""
    server_name = None

    def wrap_socket(self, sock, server_hostname=None, **kw):
        return super().wrap_socket(sock, server_hostname=self.server_name, **kw)


def verifying_context(cafile, name):
    ctx = NamedContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname=True and CERT_REQUIRED
    ctx.load_verify_locations(cafile)
    ctx.server_name = name
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    return ctx


def python_clients(srv, ctx):
    """Each of smtplib, imaplib and poplib with STARTTLS and with implicit TLS; yields (name, session) pairs
    as each logs in: the handshake (and so the verification) happens while the client is made."""
    s = smtplib.SMTP("127.0.0.1", srv.ports["submission"], timeout=10)
    s.starttls(context=ctx)
    s.login(ALICE, PASSWORD)
    s.sendmail(ALICE, [BOB], b"Subject: smtplib STARTTLS verified\r\n\r\nhi\r\n")
    s.quit()
    s = smtplib.SMTP_SSL("127.0.0.1", srv.ports["submissions"], context=ctx, timeout=10)
    s.login(ALICE, PASSWORD)
    s.sendmail(ALICE, [BOB], b"Subject: smtplib implicit verified\r\n\r\nhi\r\n")
    s.quit()
    m = imaplib.IMAP4("127.0.0.1", srv.ports["imap"], timeout=10)
    m.starttls(ssl_context=ctx)
    m.login(BOB, PASSWORD)
    yield "imap", m
    m = imaplib.IMAP4_SSL("127.0.0.1", srv.ports["imaps"], ssl_context=ctx, timeout=10)
    m.login(BOB, PASSWORD)
    yield "imaps", m
    p = poplib.POP3("127.0.0.1", srv.ports["pop3"], timeout=10)
    p.stls(context=ctx)
    p.user(BOB)
    p.pass_(PASSWORD)
    yield "pop3", p
    p = poplib.POP3_SSL("127.0.0.1", srv.ports["pop3s"], context=ctx, timeout=10)
    p.user(BOB)
    p.pass_(PASSWORD)
    yield "pop3s", p


def test_python_clients_verify_a_ca_signed_certificate(make_postern, tmp_path):
    os.chmod(tmp_path, 0o755)
    cafile, pem = make_ca_and_server_cert(tmp_path)
    srv = TlsServer(make_postern, f"ssl_cert_file = {pem}\n").start()
    seen = []
    for name, session in python_clients(srv, verifying_context(cafile, NAME)):
        assert session.sock.getpeercert()["subjectAltName"] == (("DNS", NAME),)
        if name.startswith("imap"):
            typ, data = session.select("INBOX", readonly=True)
            _, subjects = session.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            seen.append(sorted(part[1].strip() for part in subjects if isinstance(part, tuple)))
            session.logout()
        else:
            seen.append(session.stat()[0])
            session.quit()
    subjects = [b"Subject: smtplib STARTTLS verified", b"Subject: smtplib implicit verified"]
    assert seen == [sorted(subjects)] * 2 + [2, 2], seen
    assert len(srv.p.messages("bob")) == 2


@pytest.mark.parametrize("wrong", ["ca", "name"])
def test_python_clients_refuse_a_wrong_name_or_ca(make_postern, tmp_path, wrong):
    os.chmod(tmp_path, 0o755)
    cafile, pem = make_ca_and_server_cert(tmp_path)
    srv = TlsServer(make_postern, f"ssl_cert_file = {pem}\n").start()
    if wrong == "name":
        ctx, reason = verifying_context(cafile, "wrong.example.test"), "Hostname mismatch"
    else:  # the right name, but trusting another CA than the one that signed the server's certificate
        other = tmp_path / "other"
        other.mkdir()
        other_ca, _ = make_ca_and_server_cert(other)
        ctx, reason = verifying_context(other_ca, NAME), "unable to get local issuer certificate"
    with pytest.raises(ssl.SSLCertVerificationError, match=reason):
        smtplib.SMTP("127.0.0.1", srv.ports["submission"], timeout=10).starttls(context=ctx)
    with pytest.raises(ssl.SSLCertVerificationError, match=reason):
        smtplib.SMTP_SSL("127.0.0.1", srv.ports["submissions"], context=ctx, timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError, match=reason):
        imaplib.IMAP4("127.0.0.1", srv.ports["imap"], timeout=10).starttls(ssl_context=ctx)
    with pytest.raises(ssl.SSLCertVerificationError, match=reason):
        imaplib.IMAP4_SSL("127.0.0.1", srv.ports["imaps"], ssl_context=ctx, timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError, match=reason):
        poplib.POP3("127.0.0.1", srv.ports["pop3"], timeout=10).stls(context=ctx)
    with pytest.raises(ssl.SSLCertVerificationError, match=reason):
        poplib.POP3_SSL("127.0.0.1", srv.ports["pop3s"], context=ctx, timeout=10)
    # The same server is fine for a client that asks for the right name with the right CA.
    m = imaplib.IMAP4_SSL("127.0.0.1", srv.ports["imaps"], ssl_context=verifying_context(cafile, NAME), timeout=10)
    assert m.login(BOB, PASSWORD)[0] == "OK"
    m.logout()


# --- nodemailer (npm) --------------------------------------------------------------------------------------

def test_nodemailer_starttls_auth_plain(make_postern, tmp_path):
    node = tool("node")
    if not os.path.isdir(os.path.join(JS_DIR, "node_modules", "nodemailer")):
        pytest.skip("tests/e2e/js/node_modules/nodemailer is missing: run scripts/install-deps.sh (npm ci)")
    os.chmod(tmp_path, 0o755)
    cafile, pem = make_ca_and_server_cert(tmp_path)
    srv = TlsServer(make_postern, f"ssl_cert_file = {pem}\n").start()
    script = os.path.join(JS_DIR, "nodemailer_send.mjs")

    def send(password, name=NAME):
        return run([node, script, str(srv.ports["submission"]), ALICE, password, BOB, "from nodemailer", cafile, name],
                   cwd=JS_DIR, timeout=30)
    p = send(PASSWORD)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert b'"accepted":["' + BOB.encode() + b'"]' in p.stdout, p.stdout
    (msg,) = wait_messages(srv.p, "bob", 1)
    assert b"Subject: from nodemailer" in msg and b"sent by nodemailer over STARTTLS" in msg, msg
    assert b"with ESMTPSA" in msg, msg
    assert f"sasl_method=PLAIN, sasl_username={ALICE}" in srv.p.log()
    # A wrong password, and a certificate that does not name the host nodemailer asked for: nothing is sent.
    p = send("wrong")
    assert p.returncode != 0 and b"EAUTH" in p.stderr, p.stderr
    p = send(PASSWORD, name="wrong.example.test")
    assert p.returncode != 0 and b"wrong.example.test" in p.stderr, p.stderr
    time.sleep(0.2)
    assert len(srv.p.messages("bob")) == 1
