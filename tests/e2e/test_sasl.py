"""SASL end to end (issue 5): SMTP AUTH (RFC 4954) with smtplib and swaks, IMAP AUTHENTICATE/LOGIN with imaplib,
POP3 AUTH/USER+PASS with poplib, each mechanism (PLAIN, LOGIN, SCRAM-SHA-256 with a client written here) and a
failing case for each. Plaintext logins without TLS are allowed here by disable_plaintext_auth = no /
smtpd_tls_auth_only = no, except where a test checks the refusal. SCRAM-SHA-256-PLUS needs the tls-exporter
channel binding, which Python 3.11's ssl module cannot give: test_tls_clients.py does it with pyOpenSSL. The SCRAM
client is tests/e2e/scram.py."""
import base64
import imaplib
import poplib
import smtplib
import subprocess

import pytest

from conftest import DOMAIN, PASSWORD, free_port
from scram import ScramClient, b64

ALICE = f"alice@{DOMAIN}"


@pytest.fixture
def srv(make_postern):
    imap_port, pop3_port = free_port(), free_port()
    p = make_postern(f"imap_listen = 127.0.0.1:{imap_port}\npop3_listen = 127.0.0.1:{pop3_port}\n"
                     "smtpd_sasl_auth_enable = yes\ndisable_plaintext_auth = no\n"
                     "smtpd_sasl_authenticated_header = yes\n")
    p.imap_port, p.pop3_port = imap_port, pop3_port
    return p


# --- SMTP -------------------------------------------------------------------------------------------------

def test_smtp_auth_plain_and_login(srv):
    with smtplib.SMTP("127.0.0.1", srv.port) as s:
        s.ehlo("client.test")
        assert "PLAIN LOGIN SCRAM-SHA-256" in s.esmtp_features["auth"]
        s.user, s.password = ALICE, PASSWORD
        assert s.auth("PLAIN", s.auth_plain)[0] == 235
        s.sendmail(ALICE, [f"bob@{DOMAIN}"], b"Subject: authenticated\r\n\r\nhi\r\n")
    msgs = [m.decode() if isinstance(m, bytes) else m for m in srv.messages("bob")]
    assert len(msgs) == 1
    assert f"(Authenticated sender: {ALICE})" in msgs[0] and "with ESMTPA" in msgs[0]
    assert f"sasl_method=PLAIN, sasl_username={ALICE}" in srv.log()
    with smtplib.SMTP("127.0.0.1", srv.port) as s:
        s.ehlo("client.test")
        s.user, s.password = ALICE, PASSWORD
        assert s.auth("LOGIN", s.auth_login, initial_response_ok=False)[0] == 235


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_smtp_auth_wrong_password(srv, mechanism):
    with smtplib.SMTP("127.0.0.1", srv.port) as s:
        s.ehlo("client.test")
        s.user, s.password = ALICE, "wrong"
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.auth(mechanism, s.auth_plain if mechanism == "PLAIN" else s.auth_login)
        assert e.value.smtp_code == 535 and e.value.smtp_error.startswith(b"5.7.8")


def smtp_scram(port, user, password):
    with smtplib.SMTP("127.0.0.1", port) as s:
        s.ehlo("client.test")
        c = ScramClient(user, password)
        code, text = s.docmd("AUTH", "SCRAM-SHA-256 " + b64(c.first()))
        assert code == 334, text
        code, text = s.docmd(b64(c.final(base64.b64decode(text))))
        if code != 334:
            return code, text
        code, text = s.docmd(b64(c.check(base64.b64decode(text))))
        return code, text


def test_smtp_auth_scram(srv):
    assert smtp_scram(srv.port, ALICE, PASSWORD)[0] == 235
    code, text = smtp_scram(srv.port, ALICE, "wrong")
    assert code == 535 and text.startswith(b"5.7.8")
    code, text = smtp_scram(srv.port, f"nobody@{DOMAIN}", "x")  # unknown user: the same answer
    assert code == 535 and text.startswith(b"5.7.8")


def test_smtp_auth_protocol_errors(srv):
    with smtplib.SMTP("127.0.0.1", srv.port) as s:
        s.ehlo("client.test")
        assert s.docmd("AUTH", "PLAIN AGFsaWNl=")[0:2] == (501, b"5.5.2 Cannot decode response")
        assert s.docmd("AUTH", "LOGIN")[0] == 334
        assert s.docmd("*") == (501, b"5.7.0 Authentication aborted")
        assert s.docmd("AUTH", "CRAM-MD5")[0] == 504  # not in auth_mechanisms
        authzid = b64(f"bob@{DOMAIN}\0{ALICE}\0{PASSWORD}".encode())
        assert s.docmd("AUTH", "PLAIN " + authzid)[0] == 535
        s.docmd("MAIL", "FROM:<>")
        assert s.docmd("AUTH", "PLAIN " + b64(f"\0{ALICE}\0{PASSWORD}".encode()))[0] == 503


def test_smtp_auth_off_and_tls_only(make_postern):
    off = make_postern()
    with smtplib.SMTP("127.0.0.1", off.port) as s:
        s.ehlo("client.test")
        assert not s.has_extn("auth")
        assert s.docmd("AUTH", "PLAIN")[0] == 503
    only = make_postern("smtpd_sasl_auth_enable = yes\nsmtpd_tls_auth_only = yes\nbroken_sasl_auth_clients = yes\n")
    with smtplib.SMTP("127.0.0.1", only.port) as s:
        code, text = s.ehlo("client.test")
        assert b"\nAUTH SCRAM-SHA-256\n" in text and b"\nAUTH=SCRAM-SHA-256\n" in text, text
        code, text = s.docmd("AUTH", "PLAIN " + b64(f"\0{ALICE}\0{PASSWORD}".encode()))
        assert (code, text) == (538, b"5.7.11 Encryption required for requested authentication mechanism")


def test_swaks_auth(srv):
    def swaks(auth, password):
        return subprocess.run(["swaks", "--server", f"127.0.0.1:{srv.port}", "--from", ALICE, "--to", f"bob@{DOMAIN}",
                               "--auth", auth, "--auth-user", ALICE, "--auth-password", password],
                              capture_output=True, text=True, timeout=60)
    for auth in ("PLAIN", "LOGIN"):
        ok = swaks(auth, PASSWORD)
        assert ok.returncode == 0 and "235 2.7.0" in ok.stdout, ok.stdout
        bad = swaks(auth, "wrong")
        assert bad.returncode != 0 and "535 5.7.8" in bad.stdout, bad.stdout


# --- IMAP -------------------------------------------------------------------------------------------------

def test_imap_mechanisms(srv):
    with imaplib.IMAP4("127.0.0.1", srv.imap_port) as m:
        assert {"AUTH=PLAIN", "AUTH=LOGIN", "AUTH=SCRAM-SHA-256", "SASL-IR"} <= set(m.capabilities)
        assert "AUTH=SCRAM-SHA-256-PLUS" not in m.capabilities  # no TLS, no binding
        c = ScramClient(ALICE, PASSWORD)
        assert m.authenticate("SCRAM-SHA-256", c.imap_callback())[0] == "OK"
        assert c.verified
    with imaplib.IMAP4("127.0.0.1", srv.imap_port) as m:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            m.authenticate("SCRAM-SHA-256", ScramClient(ALICE, "wrong").imap_callback())
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            m.authenticate("PLAIN", lambda _: f"\0{ALICE}\0wrong".encode())
        assert m.authenticate("PLAIN", lambda _: f"\0{ALICE}\0{PASSWORD}".encode())[0] == "OK"
    with imaplib.IMAP4("127.0.0.1", srv.imap_port) as m:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            m.login(ALICE, "wrong")
        assert m.login(ALICE, PASSWORD)[0] == "OK"
    assert f"Login: user=<{ALICE}>, method=SCRAM-SHA-256" in srv.log()


def test_imap_plaintext_refused(make_postern):
    port = free_port()
    make_postern(f"imap_listen = 127.0.0.1:{port}\n")  # disable_plaintext_auth = yes (default)
    with imaplib.IMAP4("127.0.0.1", port) as m:
        assert "LOGINDISABLED" in m.capabilities and "AUTH=PLAIN" not in m.capabilities
        assert "AUTH=SCRAM-SHA-256" in m.capabilities
        with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
            m.login(ALICE, PASSWORD)
        assert m.authenticate("SCRAM-SHA-256", ScramClient(ALICE, PASSWORD).imap_callback())[0] == "OK"
    port2 = free_port()
    make_postern(f"imap_listen = 127.0.0.1:{port2}\nssl = required\n")
    with imaplib.IMAP4("127.0.0.1", port2) as m:
        assert not any(c.startswith("AUTH=") for c in m.capabilities), m.capabilities
        with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
            m.authenticate("SCRAM-SHA-256", ScramClient(ALICE, PASSWORD).imap_callback())


# --- POP3 -------------------------------------------------------------------------------------------------

def pop3_auth(port, mechanism, responses):
    """AUTH with raw lines: each item of `responses` is a function of the decoded challenge."""
    p = poplib.POP3("127.0.0.1", port)
    p._putcmd(f"AUTH {mechanism}")
    for respond in responses:
        line = p._getline()[0]
        if not line.startswith(b"+ "):
            return p, line
        p._putcmd(b64(respond(base64.b64decode(line[2:]))))
    return p, p._getline()[0]


def test_pop3_mechanisms(srv):
    p = poplib.POP3("127.0.0.1", srv.pop3_port)
    assert "PLAIN LOGIN SCRAM-SHA-256" in " ".join(p.capa()["SASL"])
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p.user(ALICE)
        p.pass_("wrong")
    p.user(ALICE)
    assert p.pass_(PASSWORD).startswith(b"+OK")
    p.quit()
    c = ScramClient(ALICE, PASSWORD)
    p, last = pop3_auth(srv.pop3_port, "SCRAM-SHA-256", [lambda _: c.first(), c.final, c.check])
    assert last.startswith(b"+OK") and c.verified, last
    p.quit()
    c = ScramClient(ALICE, "wrong")
    p, last = pop3_auth(srv.pop3_port, "SCRAM-SHA-256", [lambda _: c.first(), c.final, c.check])
    assert last.startswith(b"-ERR [AUTH]"), last
    # RFC 5034: the initial response on the AUTH line.
    p = poplib.POP3("127.0.0.1", srv.pop3_port)
    assert p._shortcmd("AUTH PLAIN " + b64(f"\0{ALICE}\0{PASSWORD}".encode())).startswith(b"+OK")
    p.quit()
    p = poplib.POP3("127.0.0.1", srv.pop3_port)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p._shortcmd("AUTH PLAIN " + b64(f"\0{ALICE}\0wrong".encode()))
    p, last = pop3_auth(srv.pop3_port, "LOGIN", [lambda _: ALICE.encode(), lambda _: b"wrong"])
    assert last.startswith(b"-ERR [AUTH]"), last


# --- a password database that cannot answer ---------------------------------------------------------------

def test_broken_passwd_file_is_a_temporary_failure(make_postern):
    """A passwd_file that exists but does not parse (a bad edit) means no password can be checked: every
    protocol answers with its temporary failure (SMTP 454 4.7.0 as RFC 4954 says, IMAP NO [UNAVAILABLE], POP3
    -ERR [SYS/TEMP]), recipients of its domains get 451 4.3.0, and none of it counts as a failed login: with
    auth_failure_block_count = 2, three such answers do not block the client."""
    imap_port, pop3_port = free_port(), free_port()
    srv = make_postern(f"imap_listen = 127.0.0.1:{imap_port}\npop3_listen = 127.0.0.1:{pop3_port}\n"
                       "smtpd_sasl_auth_enable = yes\ndisable_plaintext_auth = no\n"
                       "auth_failure_block_count = 2\n")
    users = f"{srv.dir}/users"
    with open(users) as f:
        good = f.read()
    with open(users, "a") as f:
        f.write("this line is not a passwd-file entry\n")

    with smtplib.SMTP("127.0.0.1", srv.port) as s:
        s.ehlo("client.test")
        s.user, s.password = ALICE, PASSWORD
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.auth("PLAIN", s.auth_plain)
        assert e.value.smtp_code == 454 and e.value.smtp_error == b"4.7.0 Temporary authentication failure"
        s.mail("someone@elsewhere.test")
        code, text = s.rcpt(f"bob@{DOMAIN}")
        assert (code, text) == (451, f"4.3.0 <bob@{DOMAIN}>: Temporary lookup failure".encode())
    imap = imaplib.IMAP4("127.0.0.1", imap_port)
    with pytest.raises(imaplib.IMAP4.error, match=r"\[UNAVAILABLE\] Temporary authentication failure"):
        imap.login(ALICE, PASSWORD)
    c = ScramClient(ALICE, PASSWORD)
    with pytest.raises(imaplib.IMAP4.error, match=r"\[UNAVAILABLE\]"):
        imap.authenticate("SCRAM-SHA-256", lambda _: c.first())
    imap.logout()
    p = poplib.POP3("127.0.0.1", pop3_port)
    p.user(ALICE)
    with pytest.raises(poplib.error_proto, match=r"\[SYS/TEMP\] Temporary authentication failure"):
        p.pass_(PASSWORD)
    p.quit()
    log = srv.log()
    assert "logins fail temporarily until this is fixed" in log
    assert "authentication failed" not in log and "blocked" not in log

    # Fixed: logins work again, from the same address (it was never blocked).
    with open(users, "w") as f:
        f.write(good)
    imap = imaplib.IMAP4("127.0.0.1", imap_port)
    assert imap.login(ALICE, PASSWORD)[0] == "OK"
    imap.logout()
    with smtplib.SMTP("127.0.0.1", srv.port) as s:
        s.ehlo("client.test")
        s.user, s.password = ALICE, PASSWORD
        assert s.auth("PLAIN", s.auth_plain)[0] == 235
