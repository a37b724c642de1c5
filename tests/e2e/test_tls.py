"""TLS end to end: STARTTLS on SMTP, IMAP and POP3 (STLS), implicit TLS on submissions/imaps/pop3s, with
Python's smtplib/imaplib/poplib, openssl s_client and swaks; old protocols and weak ciphers refused;
STARTTLS command injection; certificates chosen by SNI and reloaded without a restart; handshake timeout.
"""
import imaplib
import os
import poplib
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import BIN, DOMAIN, PASSWORD, free_port

ALICE = f"alice@{DOMAIN}"


def make_cert(directory, name, cn, key_type="ec"):
    """A self-signed certificate for `cn` (key and certificate in one PEM file); returns its path."""
    path = os.path.join(directory, name)
    key_args = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key_type == "ec" else \
        ["-newkey", "rsa:2048"]
    subprocess.run(["openssl", "req", "-x509", *key_args, "-nodes", "-days", "30", "-subj", f"/CN={cn}",
                    "-addext", f"subjectAltName=DNS:{cn}", "-keyout", path + ".key", "-out", path + ".crt"],
                   check=True, capture_output=True)
    with open(path, "w") as out:
        for part in (".key", ".crt"):
            with open(path + part) as f:
                out.write(f.read())
    os.chmod(path, 0o644)
    return path


def der_of(pem_path):
    with open(pem_path) as f:
        text = f.read()
    start = text.index("-----BEGIN CERTIFICATE-----")
    return ssl.PEM_cert_to_DER_cert(text[start:])


def client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class TlsServer:
    """A started Postern with every listener on its own free port."""

    def __init__(self, make_postern, extra=""):
        self.ports = {k: free_port() for k in
                      ("submission", "submissions", "imap", "imaps", "pop3", "pop3s")}
        conf = "".join(f"{k}_listen = 127.0.0.1:{p}\n" for k, p in self.ports.items())
        self.p = make_postern(extra_config=conf + extra, start=False)
        self.dir = self.p.dir
        self.smtp = self.p.port

    def start(self):
        self.p.start()
        return self


@pytest.fixture
def tls_server(make_postern):
    return TlsServer(make_postern).start()


def s_client(port, *args, data=b"", timeout=10):
    """openssl s_client against 127.0.0.1:port; returns (returncode, stdout+stderr as text)."""
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-ign_eof", *args],
                       input=data, capture_output=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


# --- STARTTLS and implicit TLS with Python's clients ---------------------------------------------------------

def test_smtp_starttls_forgets_the_session(tls_server):
    s = smtplib.SMTP("127.0.0.1", tls_server.smtp, timeout=10)
    s.ehlo("client.test")
    assert s.has_extn("starttls")
    code, _ = s.starttls(context=client_context())
    assert code == 220
    # RFC 3207 4.2: the EHLO before TLS is forgotten: ESMTP parameters need a new EHLO.
    code, msg = s.docmd("MAIL FROM:<a@client.test> SIZE=100")
    assert code == 555 and b"5.5.4" in msg, msg
    s.ehlo("client.test")
    assert not s.has_extn("starttls"), "STARTTLS is not offered again inside TLS"
    code, msg = s.docmd("STARTTLS")
    assert code == 554 and b"5.5.1" in msg, msg
    s.sendmail("a@client.test", [ALICE], b"Subject: over TLS\r\n\r\nhello\r\n")
    s.quit()
    (msg,) = tls_server.p.messages("alice")
    assert b"with ESMTPS" in msg, msg[:400]
    assert "TLS connection established from 127.0.0.1: TLSv1.3" in tls_server.p.log()


def test_submission_requires_starttls(tls_server):
    s = smtplib.SMTP("127.0.0.1", tls_server.ports["submission"], timeout=10)
    s.ehlo("client.test")
    assert s.has_extn("starttls")
    assert not s.has_extn("auth"), "AUTH is offered only inside TLS"
    code, msg = s.docmd("MAIL FROM:<a@client.test>")
    assert (code, msg[:5]) == (530, b"5.7.0"), msg
    s.starttls(context=client_context())
    s.ehlo("client.test")
    assert not s.has_extn("starttls")
    assert "PLAIN" in s.esmtp_features["auth"].split()
    s.login(ALICE, PASSWORD)
    s.sendmail(ALICE, [ALICE], b"Subject: submitted\r\n\r\nhello\r\n")
    s.quit()
    (msg,) = tls_server.p.messages("alice")
    assert b"with ESMTPSA" in msg, msg[:400]


def test_submissions_implicit_tls(tls_server):
    s = smtplib.SMTP_SSL("127.0.0.1", tls_server.ports["submissions"], context=client_context(), timeout=10)
    code, _ = s.ehlo("client.test")
    assert code == 250
    assert not s.has_extn("starttls")
    assert s.sock.version() == "TLSv1.3"
    s.quit()


def test_encrypt_level_on_port_25(make_postern):
    p = make_postern(extra_config="smtpd_tls_security_level = encrypt\n")
    s = smtplib.SMTP("127.0.0.1", p.port, timeout=10)
    s.ehlo("client.test")
    for cmd in ("MAIL FROM:<a@client.test>", "RCPT TO:<x@y.test>", "VRFY alice", "DATA"):
        code, msg = s.docmd(cmd)
        assert (code, msg[:5]) == (530, b"5.7.0"), (cmd, msg)
    assert s.noop()[0] == 250
    s.starttls(context=client_context())
    s.ehlo("client.test")
    assert s.docmd("MAIL FROM:<a@client.test>")[0] == 250
    s.quit()


def test_level_none_offers_no_starttls(make_postern):
    p = make_postern(extra_config="smtpd_tls_security_level = none\n")
    s = smtplib.SMTP("127.0.0.1", p.port, timeout=10)
    s.ehlo("client.test")
    assert not s.has_extn("starttls")
    code, msg = s.docmd("STARTTLS")
    assert (code, msg[:5]) == (502, b"5.5.1"), msg
    s.quit()


def test_imap_starttls_then_login(tls_server):
    m = imaplib.IMAP4("127.0.0.1", tls_server.ports["imap"], timeout=10)
    assert "STARTTLS" in m.capabilities and "LOGINDISABLED" in m.capabilities
    with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
        m.login(ALICE, PASSWORD)
    m.starttls(ssl_context=client_context())
    assert "STARTTLS" not in m.capabilities and "AUTH=PLAIN" in m.capabilities
    with pytest.raises(imaplib.IMAP4.error, match="TLS is already active"):
        m._simple_command("STARTTLS")
    assert m.login(ALICE, PASSWORD)[0] == "OK"
    m.logout()


def test_imaps_and_pop3s(tls_server):
    m = imaplib.IMAP4_SSL("127.0.0.1", tls_server.ports["imaps"], ssl_context=client_context(), timeout=10)
    assert "STARTTLS" not in m.capabilities
    assert m.login(ALICE, PASSWORD)[0] == "OK"
    m.logout()
    p = poplib.POP3_SSL("127.0.0.1", tls_server.ports["pop3s"], context=client_context(), timeout=10)
    assert "STLS" not in p.capa()
    p.user(ALICE)
    assert p.pass_(PASSWORD).startswith(b"+OK")
    p.quit()


def test_pop3_stls(tls_server):
    p = poplib.POP3("127.0.0.1", tls_server.ports["pop3"], timeout=10)
    assert "STLS" in p.capa() and "USER" not in p.capa()
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p.user(ALICE)
    p.stls(context=client_context())
    caps = p.capa()
    assert "STLS" not in caps and "USER" in caps
    p.user(ALICE)
    assert p.pass_(PASSWORD).startswith(b"+OK")
    p.quit()


def test_ssl_no_turns_tls_off_for_imap(make_postern):
    imap, imaps = free_port(), free_port()
    p = make_postern(extra_config=f"ssl = no\nimap_listen = 127.0.0.1:{imap}\nimaps_listen = 127.0.0.1:{imaps}\n")
    m = imaplib.IMAP4("127.0.0.1", imap, timeout=10)
    assert "STARTTLS" not in m.capabilities
    with pytest.raises(imaplib.IMAP4.error, match="TLS support isn't enabled"):
        m._simple_command("STARTTLS")
    m.logout()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", imaps), timeout=2).close()
    assert "ssl = no: not listening on imaps_listen" in p.log()


# --- other clients ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("proto,key", [("smtp", None), ("imap", "imap"), ("pop3", "pop3")])
def test_openssl_s_client_starttls(tls_server, proto, key):
    port = tls_server.smtp if key is None else tls_server.ports[key]
    quit_cmd = {"smtp": b"QUIT\r\n", "imap": b"a LOGOUT\r\n", "pop3": b"QUIT\r\n"}[proto]
    rc, out = s_client(port, "-starttls", proto, "-brief", data=quit_cmd)
    assert "Protocol version: TLSv1.3" in out, out
    assert {"smtp": "221 2.0.0", "imap": "a OK", "pop3": "+OK Logging out"}[proto] in out, out


def test_swaks_tls(tls_server):
    if not shutil.which("swaks"):
        pytest.skip("swaks is not installed")
    p = subprocess.run(["swaks", "--server", f"127.0.0.1:{tls_server.smtp}", "--tls", "--to", ALICE,
                        "--from", "a@client.test", "--helo", "client.test"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "TLS started" in p.stdout, p.stdout
    assert len(tls_server.p.messages("alice")) == 1


# --- refused protocols and ciphers -----------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_old_tls_versions_refused(tls_server, version):
    rc, out = s_client(tls_server.ports["imaps"], version, "-cipher", "DEFAULT@SECLEVEL=0", "-brief")
    # The client offered the old version (no local refusal) and the server answered with an alert.
    assert rc != 0 and "alert protocol version" in out, out


def test_weak_tls12_cipher_refused(tls_server):
    # CBC suites (MAC-then-encrypt, SHA-1/SHA-2 HMAC): usable with the server's ECDSA key, but not on its list.
    for cipher in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384"):
        rc, out = s_client(tls_server.ports["imaps"], "-tls1_2", "-cipher", cipher + "@SECLEVEL=0", "-brief")
        assert rc != 0 and "alert handshake failure" in out, (cipher, out)
    rc, out = s_client(tls_server.ports["imaps"], "-tls1_2", "-brief", data=b"a LOGOUT\r\n")
    assert "Protocol version: TLSv1.2" in out and "ECDHE-ECDSA-AES" in out, out


def test_min_protocol_tls13(make_postern):
    imaps = free_port()
    make_postern(extra_config=f"imaps_listen = 127.0.0.1:{imaps}\nssl_min_protocol = TLSv1.3\n")
    rc, out = s_client(imaps, "-tls1_2", "-brief")
    assert rc != 0 and "alert protocol version" in out, out
    rc, out = s_client(imaps, "-brief", data=b"a LOGOUT\r\n")
    assert "Protocol version: TLSv1.3" in out, out


# --- STARTTLS injection (CVE-2011-0411 and the 2021 family) ---------------------------------------------------

def raw_starttls(port, greeting_lines, plain, expect):
    """Sends `plain` (STARTTLS and an injected command) in one write, completes TLS, then returns what the
    server sends within a short time afterwards, inside TLS."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    f = sock.makefile("rb")
    for _ in range(greeting_lines):
        f.readline()
    sock.sendall(plain)
    line = f.readline()
    assert line.startswith(expect), line
    tls = client_context().wrap_socket(sock, server_hostname="x")
    tls.settimeout(1.0)
    got = b""
    try:
        while True:
            chunk = tls.recv(4096)
            if not chunk:
                break
            got += chunk
    except (socket.timeout, TimeoutError):
        pass
    return tls, got


def smtp_after_ehlo(port):
    """A raw SMTP connection past its greeting and EHLO: (socket, reader)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"EHLO x\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    return sock, f


def test_injection_smtp(tls_server):
    # SMTP refuses STARTTLS that is not the last command of a group (RFC 2920 3.1): nothing runs after it.
    sock, f = smtp_after_ehlo(tls_server.smtp)
    sock.sendall(b"STARTTLS\r\nRSET\r\n")
    line = f.readline()
    assert line.startswith(b"554 5.5.0"), line
    sock.close()


def test_injection_imap(tls_server):
    tls, got = raw_starttls(tls_server.ports["imap"], 1, b"a STARTTLS\r\nb CAPABILITY\r\n", b"a OK")
    assert got == b"", got  # "b CAPABILITY" was sent in plaintext: it must not be answered inside TLS
    tls.sendall(b"c NOOP\r\n")
    assert tls.recv(4096).startswith(b"c OK"), "the session goes on normally"
    tls.close()


def test_injection_pop3(tls_server):
    tls, got = raw_starttls(tls_server.ports["pop3"], 1, b"STLS\r\nCAPA\r\n", b"+OK")
    assert got == b"", got
    tls.sendall(b"NOOP\r\n")
    assert tls.recv(4096).startswith(b"-ERR"), "NOOP before login: an error, but an answer"
    tls.close()


def test_injection_smtp_after_220(tls_server):
    # The client's injected command arrives after the 220, before its ClientHello, in plaintext: Postern reads
    # it as (failed) TLS, so the handshake fails and the session ends; nothing is executed.
    sock, f = smtp_after_ehlo(tls_server.smtp)
    sock.sendall(b"STARTTLS\r\n")
    assert f.readline().startswith(b"220 2.0.0")
    sock.sendall(b"MAIL FROM:<evil@x.test>\r\n")
    sock.settimeout(5)
    data = sock.recv(4096)
    assert not data.startswith(b"250"), data
    sock.close()


# --- certificates: SNI, reload, handshake timeout -------------------------------------------------------------

def test_sni_and_reload(make_postern, tmp_path):
    os.chmod(tmp_path, 0o755)
    main = make_cert(str(tmp_path), "main.pem", f"mail.{DOMAIN}")
    other = make_cert(str(tmp_path), "other.pem", "mail.other.test")
    sni_map = tmp_path / "sni"
    sni_map.write_text(f"mail.other.test  {other}\n.sub.test  {other}\n")
    imaps = free_port()
    p = make_postern(extra_config=f"imaps_listen = 127.0.0.1:{imaps}\nssl_cert_file = {main}\n"
                                  f"tls_server_sni_maps = {sni_map}\n")

    def peer_cert(name):
        with socket.create_connection(("127.0.0.1", imaps), timeout=5) as raw:
            with client_context().wrap_socket(raw, server_hostname=name) as s:
                return s.getpeercert(binary_form=True)

    assert peer_cert(f"mail.{DOMAIN}") == der_of(main)
    assert peer_cert("mail.other.test") == der_of(other)
    assert peer_cert("a.sub.test") == der_of(other)
    assert peer_cert("unknown.test") == der_of(main)

    # An open session survives the reload; new connections get the renewed certificate.
    kept = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=client_context(), timeout=10)
    renewed = make_cert(str(tmp_path), "renewed.pem", f"mail.{DOMAIN}", key_type="rsa")
    shutil.copy(renewed, main)
    p.proc.send_signal(signal.SIGHUP)
    p.wait_log("reload -- configuration")
    assert peer_cert(f"mail.{DOMAIN}") == der_of(renewed)
    assert kept.noop()[0] == "OK"
    assert kept.login(ALICE, PASSWORD)[0] == "OK"
    kept.logout()


def test_bad_certificate_is_refused_at_start_and_reload(make_postern, tmp_path):
    os.chmod(tmp_path, 0o755)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    p = make_postern(extra_config=f"ssl_cert_file = {bad}\n", start=False)
    r = subprocess.run([BIN, "-c", p.dir, "serve"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "no PEM certificate" in r.stderr, r.stderr
    # A running server keeps its certificate when a reload finds a broken one.
    good = make_cert(str(tmp_path), "good.pem", f"mail.{DOMAIN}")
    with open(os.path.join(p.dir, "main.cf"), "a") as f:
        f.write(f"ssl_cert_file = {good}\n")
    p.start()
    shutil.copy(bad, good)
    p.proc.send_signal(signal.SIGHUP)
    p.wait_log("reload failed, keeping the running configuration")
    s = smtplib.SMTP("127.0.0.1", p.port, timeout=10)
    s.starttls(context=client_context())
    s.quit()


def test_self_signed_certificate_made_once(make_postern):
    p = make_postern()
    path = os.path.join(p.root, "queue", "tls", "selfsigned.pem")
    assert os.path.exists(path)
    assert os.stat(path).st_mode & 0o077 == 0, "the key is private"
    assert f"using the self-signed certificate {path}" in p.log()
    before = open(path, "rb").read()
    p.stop()
    p.start()
    assert open(path, "rb").read() == before, "the same certificate after a restart"


def test_handshake_timeout(make_postern):
    imaps = free_port()
    p = make_postern(extra_config=f"imaps_listen = 127.0.0.1:{imaps}\ntls_handshake_timeout = 1s\n")
    sock = socket.create_connection(("127.0.0.1", imaps), timeout=10)
    start = time.time()
    assert sock.recv(100) == b""  # closed without a byte: the client never sent a ClientHello
    assert time.time() - start < 5
    sock.close()
    p.wait_log("TLS handshake failed from 127.0.0.1: timeout")


def test_reload_turning_tls_off_keeps_the_server_up(make_postern):
    imaps = free_port()
    p = make_postern(extra_config=f"imaps_listen = 127.0.0.1:{imaps}\n")
    p.run("postconf", "-e", "ssl = no", "smtpd_tls_security_level = none")
    p.proc.send_signal(signal.SIGHUP)
    p.wait_log("reload -- configuration")
    # The imaps listener stays bound until a restart; with no certificate left its clients are turned away.
    rc, out = s_client(imaps, "-brief")
    assert "Protocol version" not in out, out
    p.wait_log("TLS connection from 127.0.0.1 refused: no certificate loaded")
    s = smtplib.SMTP("127.0.0.1", p.port, timeout=10)
    assert s.ehlo("client.test")[0] == 250 and not s.has_extn("starttls")
    s.quit()
