"""Abuse limits per client address: failed-login throttling (a fail2ban inside: each failure waits longer
before its answer, then the address is blocked for a while; other addresses are not slowed; port 25 keeps
taking mail), RCPT guessing throttled the same way, and connection rate and count limits.
"""
import base64
import smtplib
import socket
import time

from conftest import DOMAIN, PASSWORD, free_port

ALICE = f"alice@{DOMAIN}"
THROTTLE = "auth_failure_delay = 1s\nauth_failure_block_count = 2\nauth_failure_block_time = 60s\n"


def connect(port, source):
    sock = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    return sock, sock.makefile("rb")


def imap_login(port, source, password):
    """One IMAP LOGIN from `source`; returns (tagged answer or the greeting when refused, seconds taken)."""
    sock, f = connect(port, source)
    greeting = f.readline()
    if not greeting.startswith(b"* OK"):
        sock.close()
        return greeting, 0.0
    start = time.time()
    sock.sendall(f'a LOGIN "{ALICE}" "{password}"\r\n'.encode())
    line = f.readline()
    while line.startswith(b"*"):
        line = f.readline()
    took = time.time() - start
    sock.close()
    return line, took


def test_imap_failures_slow_down_then_block_only_that_address(make_postern):
    imap = free_port()
    make_postern(extra_config=f"imap_listen = 127.0.0.1:{imap}\ndisable_plaintext_auth = no\n" + THROTTLE)
    answer, took = imap_login(imap, "127.0.0.1", "wrong")
    assert answer.startswith(b"a NO [AUTHENTICATIONFAILED]") and 0.9 < took < 1.8, (answer, took)
    answer, took = imap_login(imap, "127.0.0.1", "wrong")
    assert answer.startswith(b"a NO [AUTHENTICATIONFAILED]") and 1.9 < took < 3.5, (answer, took)
    # Two failures: 127.0.0.1 is blocked, even with the right password.
    answer, _ = imap_login(imap, "127.0.0.1", PASSWORD)
    assert answer.startswith(b"* BYE [UNAVAILABLE] Too many failed logins"), answer
    # Another client is neither blocked nor slowed.
    answer, took = imap_login(imap, "127.0.0.2", PASSWORD)
    assert answer.startswith(b"a OK") and took < 0.9, (answer, took)


def test_pop3_blocked_address(make_postern):
    pop3 = free_port()
    make_postern(extra_config=f"pop3_listen = 127.0.0.1:{pop3}\ndisable_plaintext_auth = no\n" + THROTTLE)
    for _ in range(2):
        sock, f = connect(pop3, "127.0.0.3")
        assert f.readline().startswith(b"+OK")
        sock.sendall(f"USER {ALICE}\r\nPASS wrong\r\n".encode())
        assert f.readline().startswith(b"+OK")
        assert f.readline().startswith(b"-ERR [AUTH]")
        sock.close()
    sock, f = connect(pop3, "127.0.0.3")
    assert f.readline().startswith(b"-ERR [LOGIN-DELAY]")
    sock.close()


def test_smtp_auth_failures_throttled_port_25_still_takes_mail(make_postern):
    submission = free_port()
    p = make_postern(extra_config=f"submission_listen = 127.0.0.1:{submission}\n"
                                  "submission/smtpd_tls_security_level = may\nsmtpd_tls_auth_only = no\n"
                                  "smtpd_sasl_auth_enable = yes\n" + THROTTLE)
    s = smtplib.SMTP("127.0.0.1", submission, timeout=30, source_address=("127.0.0.4", 0))
    s.ehlo("client.test")
    bad = base64.b64encode(f"\0{ALICE}\0wrong".encode()).decode()
    start = time.time()
    code, _ = s.docmd("AUTH", "PLAIN " + bad)
    assert code == 535 and time.time() - start > 0.9
    start = time.time()
    code, _ = s.docmd("AUTH", "PLAIN " + bad)
    assert code == 535 and time.time() - start > 1.9
    s.close()
    sock, f = connect(submission, "127.0.0.4")
    assert f.readline().startswith(b"421 4.7.0"), "blocked on submission"
    sock.close()
    # Port 25 (mail from other servers) is not blocked.
    s = smtplib.SMTP("127.0.0.1", p.port, timeout=30, source_address=("127.0.0.4", 0))
    s.sendmail("someone@client.test", [ALICE], b"Subject: still accepted\r\n\r\nhi\r\n")
    s.quit()
    assert len(p.messages("alice")) == 1
    assert "blocking 127.0.0.4 for 60s after 2 failed logins" in p.log()


def test_rcpt_guessing_is_throttled_like_password_guessing(make_postern):
    submission = free_port()
    p = make_postern(extra_config=f"submission_listen = 127.0.0.1:{submission}\nmynetworks = 127.0.0.2/32\n"
                                  + THROTTLE)
    s = smtplib.SMTP("127.0.0.1", p.port, timeout=30, source_address=("127.0.0.5", 0))
    s.ehlo("client.test")
    s.docmd("MAIL FROM:<probe@client.test>")
    start = time.time()
    code, _ = s.docmd(f"RCPT TO:<nosuchuser1@{DOMAIN}>")
    assert code == 550 and time.time() - start > 0.9
    start = time.time()
    code, _ = s.docmd(f"RCPT TO:<nosuchuser2@{DOMAIN}>")
    assert code == 550 and time.time() - start > 1.9
    start = time.time()
    assert s.docmd(f"RCPT TO:<{ALICE}>")[0] == 250 and time.time() - start < 0.9, "known users answer at once"
    s.quit()
    sock, f = connect(submission, "127.0.0.5")
    assert f.readline().startswith(b"421 4.7.0"), "the guesser is blocked from logging in too"
    sock.close()
    # A trusted client's typo is not a guess.
    s = smtplib.SMTP("127.0.0.1", p.port, timeout=30, source_address=("127.0.0.2", 0))
    s.ehlo("client.test")
    s.docmd("MAIL FROM:<someone@client.test>")
    start = time.time()
    assert s.docmd(f"RCPT TO:<nosuchuser3@{DOMAIN}>")[0] == 550 and time.time() - start < 0.9
    s.quit()


def test_connection_rate_and_count_limits_per_address(make_postern):
    imap = free_port()
    p = make_postern(extra_config=f"imap_listen = 127.0.0.1:{imap}\nsmtpd_client_connection_rate_limit = 3\n"
                                  "login_client_connection_count_limit = 2\n")
    # SMTP: the fourth connection within a minute from one address is refused; another address is not.
    for i in range(3):
        sock, f = connect(p.port, "127.0.0.6")
        assert f.readline().startswith(b"220"), i
        sock.close()
    sock, f = connect(p.port, "127.0.0.6")
    assert f.readline().startswith(b"421 4.7.0"), "rate limit"
    sock.close()
    sock, f = connect(p.port, "127.0.0.7")
    assert f.readline().startswith(b"220")
    sock.close()
    # IMAP: two open connections from one address at most.
    held = [connect(imap, "127.0.0.6") for _ in range(2)]
    for sock, f in held:
        assert f.readline().startswith(b"* OK")
    sock, f = connect(imap, "127.0.0.6")
    assert f.readline().startswith(b"* BYE [UNAVAILABLE] Too many connections")
    sock.close()
    sock, f = connect(imap, "127.0.0.7")
    assert f.readline().startswith(b"* OK"), "other addresses are not limited"
    sock.close()
    for sock, _ in held:
        sock.close()
