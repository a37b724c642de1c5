"""reject_unknown_recipient_domain and reject_unknown_sender_domain against a loopback DNS server
(tests/e2e/dnsserver.py), as Postfix answers them: a domain needs an MX or an A/AAAA record; NXDOMAIN is
unknown_address_reject_code (450), a null MX (RFC 7505) 556 5.1.10 for a recipient and 550 5.7.27 for a
sender, a temporary DNS failure 450 (defer_if_permit) after which the session goes on.
"""
import smtplib
import time

import pytest

RECORDS = {
    "mx.test": {"MX": [(10, "mail.mx.test")]},
    "mail.mx.test": {"A": ["127.0.0.1"]},
    "a-only.test": {"A": ["192.0.2.10"]},
    "v6-only.test": {"AAAA": ["2001:db8::25"]},
    "fresh.test": {"MX": [(10, "mail.mx.test")]},
    "alias.test": {"CNAME": "mx.test"},
    "null.test": {"MX": [(0, ".")]},
    "txt-only.test": {"TXT": ["v=spf1 -all"]},
    "broken.test": "SERVFAIL",
    "silent.test": "TIMEOUT",
}


@pytest.fixture
def dns(make_dns):
    return make_dns(RECORDS)


def start(make_postern, dns, restrictions, extra=""):
    return make_postern(
        f"dns_servers = 127.0.0.1:{dns.port}\n"
        "mynetworks = 127.0.0.0/8\n"
        "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n"
        f"smtpd_recipient_restrictions = {restrictions}\n" + extra
    )


def session(p, sender="sender@mx.test"):
    s = smtplib.SMTP("127.0.0.1", p.port, timeout=60)
    s.ehlo("client.test")
    code, _ = s.mail(sender)
    assert code == 250
    return s


def test_domains_with_mx_or_address_are_accepted(make_postern, dns):
    p = start(make_postern, dns, "reject_unknown_recipient_domain, permit")
    s = session(p)
    for domain in ("mx.test", "a-only.test", "v6-only.test", "alias.test", "MX.Test"):
        assert s.rcpt(f"user@{domain}")[0] == 250, domain
    s.quit()
    assert dns.asked("mx.test", "MX") >= 1
    assert dns.asked("a-only.test", "A") >= 1
    assert dns.asked("mx.test", "A") == 0  # an MX answers it: no address lookup


def test_unknown_domains_are_refused(make_postern, dns):
    p = start(make_postern, dns, "reject_unknown_recipient_domain, permit")
    s = session(p)
    code, text = s.rcpt("user@nx.test")
    assert (code, text.decode()) == (450, "4.1.2 <user@nx.test>: Recipient address rejected: Domain not found")
    code, text = s.rcpt("user@txt-only.test")
    assert (code, text.decode()) == (
        450, "4.1.2 <user@txt-only.test>: Recipient address rejected: Domain not found")
    code, text = s.rcpt("user@null.test")
    assert (code, text.decode()) == (
        556, "5.1.10 <user@null.test>: Recipient address rejected: Domain null.test does not accept mail "
        "(nullMX)")
    assert s.rcpt("user@mx.test")[0] == 250
    s.quit()
    assert "NOQUEUE: reject: RCPT from" in p.wait_log("Domain not found; from=<sender@mx.test> to=<user@nx.test>")


def test_unknown_address_reject_code(make_postern, dns):
    p = start(make_postern, dns, "reject_unknown_recipient_domain, permit", "unknown_address_reject_code = 550\n")
    s = session(p)
    code, text = s.rcpt("user@nx.test")
    assert (code, text.decode()) == (550, "5.1.2 <user@nx.test>: Recipient address rejected: Domain not found")
    s.quit()


@pytest.mark.parametrize("domain,limit", [("broken.test", 5), ("silent.test", 15)])
def test_dns_failure_defers_in_time_and_the_session_goes_on(make_postern, dns, domain, limit):
    """SERVFAIL at once, no answer within the resolver's own 10 s limit: 450, and the session goes on."""
    p = start(make_postern, dns, "reject_unknown_recipient_domain, permit")
    s = session(p)
    t0 = time.monotonic()
    code, text = s.rcpt(f"user@{domain}")
    elapsed = time.monotonic() - t0
    assert (code, text.decode()) == (450, f"4.1.2 <user@{domain}>: Recipient address rejected: Domain not found")
    assert elapsed < limit, elapsed
    # The same DNS server still answers names not asked before.
    assert s.rcpt("user@fresh.test")[0] == 250
    assert s.noop()[0] == 250
    s.quit()


def test_unknown_sender_domain(make_postern, dns):
    p = start(make_postern, dns, "reject_unknown_sender_domain, permit")
    s = session(p, "someone@nx.test")
    code, text = s.rcpt("user@mx.test")
    assert (code, text.decode()) == (450, "4.1.8 <someone@nx.test>: Sender address rejected: Domain not found")
    s.rset()
    s.mail("someone@null.test")
    code, text = s.rcpt("user@mx.test")
    assert (code, text.decode()) == (
        550, "5.7.27 <someone@null.test>: Sender address rejected: Domain null.test does not accept mail "
        "(nullMX)")
    s.rset()
    s.mail("someone@a-only.test")
    assert s.rcpt("user@mx.test")[0] == 250
    s.quit()


def test_no_lookup_without_the_restriction(make_postern, dns):
    p = start(make_postern, dns, "permit")
    s = session(p, "someone@nx.test")
    assert s.rcpt("user@nx.test")[0] == 250
    s.quit()
    assert dns.queries == []


def test_bad_dns_servers_refuse_to_start(make_postern):
    p = make_postern("dns_servers = dns.example:53\n", start=False)
    for command in ("serve", "check"):
        r = p.run(command, check=False)
        assert r.returncode != 0, command
        assert "dns_servers" in r.stderr and "dns.example:53" in r.stderr, (command, r.stderr)
