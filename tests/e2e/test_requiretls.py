"""REQUIRETLS (RFC 8689) end to end: offered only inside TLS and refused outside it (530 5.7.10); a message
submitted with it is relayed only over TLS, with a certificate verified for the next hop's name (a CA of the
test's own in smtp_tls_CAfile), to a server that offers REQUIRETLS and gets the parameter again; it is returned
to its sender with 5.7.30 when the next hop cannot take it that way. "TLS-Required: No" lets a message past a
DANE failure. The remote side is remote_mx (aiosmtpd) as the relayhost [mx.rtls.test] on a free port, its
name in the test's own DNS server."""
import smtplib
import ssl
import time

import pytest

from conftest import DOMAIN, free_port
from test_outbound_tls import Pki

ALICE = f"alice@{DOMAIN}"


def _tls_client(srv):
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=10)
    s.ehlo("client.test")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s.starttls(context=ctx)
    s.ehlo("client.test")
    return s


@pytest.fixture
def pki(tmp_path):
    import os
    os.chmod(tmp_path, 0o755)  # as root, the server runs as mail_owner and reads the CA file
    return Pki(str(tmp_path))


def _relay(make_postern, make_dns, make_mx, pki, name="mx.rtls.test", **script):
    """Postern relaying to [mx.rtls.test]:port, whose certificate (for `name`) the test's CA signed."""
    dns = make_dns({"mx.rtls.test": {"A": ["127.0.0.1"]}})
    port = free_port()
    if script.get("starttls"):
        script["certificate"] = pki.issue(name)
    mx = make_mx("127.0.0.1", port, **script)
    srv = make_postern(f"relayhost = [mx.rtls.test]:{port}\ndns_servers = 127.0.0.1:{dns.port}\n"
                       f"smtp_tls_CAfile = {pki.ca}\nmynetworks = 127.0.0.0/8\n")
    return srv, mx


def _bounce(srv):
    deadline = time.time() + 20
    while time.time() < deadline and not srv.messages("alice"):
        time.sleep(0.1)
    (bounce,) = srv.messages("alice")
    return bounce if isinstance(bounce, str) else bounce.decode()


def test_offered_only_inside_tls(make_postern):
    srv = make_postern()
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        s.ehlo("client.test")
        assert not s.has_extn("requiretls")
        code, msg = s.mail(ALICE, ["REQUIRETLS"])
        assert (code, msg[:6]) == (530, b"5.7.10"), msg
    s = _tls_client(srv)
    assert s.has_extn("requiretls")
    assert s.mail(ALICE, ["REQUIRETLS"])[0] == 250
    s.quit()


def test_relayed_with_requiretls_over_verified_tls(make_postern, make_dns, make_mx, pki):
    srv, mx = _relay(make_postern, make_dns, make_mx, pki, starttls=True, requiretls=True)
    s = _tls_client(srv)
    s.sendmail(ALICE, ["friend@far.example"], b"Subject: secret\r\n\r\nfor your eyes only\r\n",
               mail_options=["REQUIRETLS"])
    s.quit()
    (t,) = mx.wait_messages(1, timeout=20)
    assert t.tls and "REQUIRETLS" in t.mail_options
    assert b"for your eyes only" in t.data
    log = srv.wait_log("status=sent")
    assert "Verified TLS connection established to mx.rtls.test" in log, log


@pytest.mark.parametrize("script,why", [
    (dict(starttls=False), "TLS is required"),
    (dict(starttls=True, requiretls=True, name="other.rtls.test"), "REQUIRETLS: Server certificate not verified"),
    (dict(starttls=True, requiretls=False), "REQUIRETLS support required"),
])
def test_returned_when_the_next_hop_cannot_take_it(make_postern, make_dns, make_mx, pki, script, why):
    """No STARTTLS at the next hop; a certificate for another name; verified TLS but no REQUIRETLS: nothing
    is sent, the sender gets a DSN with 5.7.30 at once (no retries), and a message without REQUIRETLS still
    goes through (over whatever TLS there is)."""
    srv, mx = _relay(make_postern, make_dns, make_mx, pki, **script)
    s = _tls_client(srv)
    s.sendmail(ALICE, ["friend@far.example"], b"Subject: secret\r\n\r\nfor your eyes only\r\n",
               mail_options=["REQUIRETLS"])
    s.sendmail(ALICE, ["friend@far.example"], b"Subject: plain\r\n\r\nanyone may read\r\n")
    s.quit()
    (t,) = mx.wait_messages(1, timeout=20)
    assert b"anyone may read" in t.data
    bounce = _bounce(srv)
    assert "Status: 5.7.30" in bounce and why in bounce, bounce
    assert "Final-Recipient: rfc822; friend@far.example" in bounce
    time.sleep(0.5)
    assert len(mx.messages) == 1 and b"for your eyes only" not in mx.messages[0].data
    assert "status=bounced" in srv.log()


def _via_mx(make_postern, make_dns, make_mx, pki, signed):
    """far.example's MX is mx.rtls.test on a free port (relayhost = far.example:port, so MX records are
    looked up), in a zone signed or not; the server trusts the signed zone's key either way."""
    port = free_port()
    dns = make_dns({"far.example": {"MX": [(10, "mx.rtls.test")]}, "mx.rtls.test": {"A": ["127.0.0.1"]},
                    "anchor.test": {"A": ["127.0.0.1"]}},
                   signed=["far.example"] if signed else ["anchor.test"])
    mx = make_mx("127.0.0.1", port, starttls=True, requiretls=True, certificate=pki.issue("mx.rtls.test"))
    srv = make_postern(f"relayhost = far.example:{port}\ndns_servers = 127.0.0.1:{dns.port}\n"
                       f"smtp_tls_CAfile = {pki.ca}\nmynetworks = 127.0.0.0/8\n"
                       "dnssec_trust_anchor_file = anchor.key\n", start=False)
    with open(f"{srv.dir}/anchor.key", "w") as f:
        f.write(dns.trust_anchor())
    srv.start()
    s = _tls_client(srv)
    s.sendmail(ALICE, ["friend@far.example"], b"Subject: secret\r\n\r\nfor your eyes only\r\n",
               mail_options=["REQUIRETLS"])
    s.quit()
    return srv, mx


def test_delivered_through_dnssec_validated_mx_records(make_postern, make_dns, make_mx, pki):
    srv, mx = _via_mx(make_postern, make_dns, make_mx, pki, signed=True)
    (t,) = mx.wait_messages(1, timeout=20)
    assert t.tls and "REQUIRETLS" in t.mail_options


def test_requires_dnssec_validated_mx_records(make_postern, make_dns, make_mx, pki):
    """Unsigned MX records cannot carry a REQUIRETLS message (RFC 8689 4.2.1: no DNSSEC, and no MTA-STS
    policy): returned with 5.7.30."""
    srv, mx = _via_mx(make_postern, make_dns, make_mx, pki, signed=False)
    bounce = _bounce(srv)
    assert "Status: 5.7.30" in bounce and "not DNSSEC-validated" in bounce, bounce
    assert not mx.messages


def test_tls_required_no_passes_a_dane_failure(make_postern, make_dns, make_mx, pki):
    """RFC 8689 4.2.2: at smtp_tls_security_level = dane, a TLSA record that does not match keeps an ordinary
    message queued (4.7.5), while one with "TLS-Required: No" is delivered over the TLS there is."""
    port = free_port()
    dns = make_dns({"far.example": {"MX": [(10, "mx.far.example")]}, "mx.far.example": {"A": ["127.0.0.1"]},
                    f"_{port}._tcp.mx.far.example": {"TLSA": [(3, 1, 1, "ab" * 32)]}}, signed=["far.example"])
    mx = make_mx("127.0.0.1", port, starttls=True, certificate=pki.issue("mx.far.example"))
    srv = make_postern(f"relayhost = far.example:{port}\ndns_servers = 127.0.0.1:{dns.port}\n"
                       "smtp_tls_security_level = dane\ndnssec_trust_anchor_file = anchor.key\n"
                       "mynetworks = 127.0.0.0/8\nminimal_backoff_time = 1h\nmaximal_backoff_time = 1h\n",
                       start=False)
    with open(f"{srv.dir}/anchor.key", "w") as f:
        f.write(dns.trust_anchor())
    srv.start()
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        s.sendmail(ALICE, ["friend@far.example"], b"Subject: guarded\r\n\r\nfor a verified peer\r\n")
        s.sendmail(ALICE, ["friend@far.example"],
                   b"Subject: urgent\r\nTLS-Required: No\r\n\r\nrather late than never\r\n")
    (t,) = mx.wait_messages(1, timeout=20)
    assert b"rather late than never" in t.data and t.tls
    log = srv.wait_log("status=deferred")
    assert "Server certificate not verified" in log or "4.7.5" in log, log
    time.sleep(0.5)
    assert len(mx.messages) == 1
