"""Postern's IMAP limits a Dovecot admin expects: mail_max_userip_connections (NO [LIMIT] for one more login of
the same user from the same address; other users unaffected; a LOGOUT frees its slot before
its tagged OK)."""
import imaplib

from conftest import free_port

PASSWORD = "demo-password"


def test_userip_limit(make_postern):
    port = free_port()
    make_postern(extra_config=f"imap_listen = 127.0.0.1:{port}\ndisable_plaintext_auth = no\n"
                              f"mail_max_userip_connections = 2\n")
    a = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    a.login("alice@example.test", PASSWORD)
    b = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    b.login("alice@example.test", PASSWORD)
    c = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    try:
        c.login("alice@example.test", PASSWORD)
        raise AssertionError("a third login of alice from 127.0.0.1 was accepted")
    except imaplib.IMAP4.error as e:
        assert "[LIMIT]" in str(e), e
    # another user from the same address is not affected
    d = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    assert d.login("bob@example.test", PASSWORD)[0] == "OK"
    # a logout frees its slot before its tagged OK: a login right after it is accepted, every time
    a.logout()
    assert c.login("alice@example.test", PASSWORD)[0] == "OK"
    for _ in range(20):
        b.logout()
        b = imaplib.IMAP4("127.0.0.1", port, timeout=10)
        assert b.login("alice@example.test", PASSWORD)[0] == "OK"
    for m in (b, c, d):
        m.logout()
