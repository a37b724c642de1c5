"""The guide's section 3.7.3 ("Securing Your Mail System"), step by step, with `postern postconf -e` for each
of its `postconf -e` lines and Dovecot's 10-ssl.conf settings: EHLO then lists STARTTLS and AUTH (also in the
AUTH= form for broken clients), the server is no open relay, an authenticated user may send anywhere (the
message waits in the outbound queue), and IMAP/POP3 logins need TLS (`ssl = required`).
"""
import imaplib
import os
import poplib
import smtplib
import ssl
import subprocess

import pytest

from conftest import DOMAIN, PASSWORD, free_port

ALICE = f"alice@{DOMAIN}"

GUIDE_POSTCONF = [
    "smtpd_sasl_local_domain =",
    "smtpd_sasl_auth_enable = yes",
    "smtpd_sasl_security_options = noanonymous",
    "broken_sasl_auth_clients = yes",
    "smtpd_recipient_restrictions = permit_sasl_authenticated,permit_mynetworks,reject_unauth_destination",
    "inet_interfaces = all",
]


def context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@pytest.fixture
def guide_server(make_postern, tmp_path):
    os.chmod(tmp_path, 0o755)
    # The guide's snakeoil pair, made here (Debian's make-ssl-cert would write into /etc/ssl).
    cert, key = tmp_path / "ssl-cert-snakeoil.pem", tmp_path / "ssl-cert-snakeoil.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                    "-subj", f"/CN=mail.{DOMAIN}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    os.chmod(key, 0o640)
    imap, pop3 = free_port(), free_port()
    # The client is not in mynetworks (the guide's "devices on our own network" are 127.0.0.2 here).
    p = make_postern(extra_config=f"imap_listen = 127.0.0.1:{imap}\npop3_listen = 127.0.0.1:{pop3}\n"
                                  "mynetworks = 127.0.0.2/32\n", start=False)
    for line in GUIDE_POSTCONF + ["ssl = required", f"ssl_cert_file = {cert}", f"ssl_key_file = {key}"]:
        p.run("postconf", "-e", line)
    p.start()
    p.imap, p.pop3 = imap, pop3
    return p


def test_ehlo_lists_starttls_and_auth(guide_server):
    s = smtplib.SMTP("127.0.0.1", guide_server.port, timeout=10)
    code, text = s.ehlo("localhost")
    lines = text.decode().splitlines()
    assert "STARTTLS" in lines, lines  # the guide: "you should receive 250-STARTTLS"
    assert any(l.startswith("AUTH ") and "PLAIN" in l and "LOGIN" in l for l in lines), lines
    assert any(l.startswith("AUTH=") for l in lines), "broken_sasl_auth_clients = yes"
    s.quit()


def test_no_open_relay_but_authenticated_users_relay(guide_server):
    s = smtplib.SMTP("127.0.0.1", guide_server.port, timeout=10)
    s.ehlo("client.test")
    assert s.docmd("MAIL FROM:<spammer@elsewhere.test>")[0] == 250
    code, msg = s.docmd("RCPT TO:<victim@elsewhere.test>")
    # Postfix's answer too: its default smtpd_relay_restrictions end in defer_unauth_destination (454),
    # evaluated before the guide's smtpd_recipient_restrictions.
    assert code == 454 and msg.startswith(b"4.7.1") and b"Relay access denied" in msg, msg
    assert s.docmd("RCPT TO:<" + ALICE + ">")[0] == 250, "mail for our own users is still accepted"
    s.quit()

    s = smtplib.SMTP("127.0.0.1", guide_server.port, timeout=10)
    s.starttls(context=context())
    s.login(ALICE, PASSWORD)
    s.sendmail(ALICE, ["friend@elsewhere.test"], b"Subject: out\r\n\r\nhi\r\n")
    s.quit()
    q = guide_server.run("mailq").stdout
    assert "friend@elsewhere.test" in q and ALICE in q, q


def test_imap_and_pop3_need_tls(guide_server):
    m = imaplib.IMAP4("127.0.0.1", guide_server.imap, timeout=10)
    with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
        m.login(ALICE, PASSWORD)
    m.starttls(ssl_context=context())
    assert m.login(ALICE, PASSWORD)[0] == "OK"
    m.logout()
    p = poplib.POP3("127.0.0.1", guide_server.pop3, timeout=10)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p.user(ALICE)
    p.stls(context=context())
    p.user(ALICE)
    assert p.pass_(PASSWORD).startswith(b"+OK")
    p.quit()
