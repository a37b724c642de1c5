"""Authenticated TLS of outbound delivery end to end (issue 6): smtp_tls_security_level = verify/secure (PKIX
against smtp_tls_CAfile and the MX host name, RFC 6125) and dane/dane-only (RFC 7672 DANE with TLSA records from a
DNSSEC-signed test zone, RFC 4033-4035, validated against dnssec_trust_anchor_file).

The test makes its own CA and certificates (openssl req/x509); the remote MX (tests/e2e/remote_mx.py) presents
them; the loopback DNS server (tests/e2e/dnsserver.py) serves the MX records. Port 25 needs root.
"""
import os
import re
import subprocess
import time

import pytest

from test_outbound import ROOT, SLOW, arrived, queued, start, submit

# Each test its own MX addresses (127.0.0.16x), apart from test_outbound's.
RECORDS = {
    "vfy.test": {"MX": [(10, "mx.vfy.test")]},
    "mx.vfy.test": {"A": ["127.0.0.161"]},
    "badname.test": {"MX": [(10, "mx.badname.test")]},
    "mx.badname.test": {"A": ["127.0.0.162"]},
    "next.test": {"MX": [(10, "mx1.next.test"), (20, "mx2.next.test")]},
    "mx1.next.test": {"A": ["127.0.0.163"]},
    "mx2.next.test": {"A": ["127.0.0.164"]},
}


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class Pki:
    """A CA of the test's own and server certificates it issues (ECDSA P-256, 30 days)."""

    def __init__(self, directory):
        self.dir = directory
        self.ca = os.path.join(directory, "ca.crt")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
                "-subj", "/CN=Postern Test CA", "-keyout", "ca.key", "-out", "ca.crt",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
                cwd=directory)

    def issue(self, name):
        """(chain file, key file) of a new certificate for DNS name `name`; the chain holds the CA too."""
        ext = os.path.join(self.dir, f"{name}.ext")
        with open(ext, "w") as f:
            f.write(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=self.dir)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "30", "-extfile", ext, "-out", f"{name}.crt", cwd=self.dir)
        chain = os.path.join(self.dir, f"{name}.chain")
        with open(chain, "w") as out:
            for part in (f"{name}.crt", "ca.crt"):
                with open(os.path.join(self.dir, part)) as f:
                    out.write(f.read())
        return chain, os.path.join(self.dir, f"{name}.key")


@pytest.fixture
def pki(tmp_path):
    os.chmod(tmp_path, 0o755)  # as root, the server runs as mail_owner and reads the CA file
    return Pki(str(tmp_path))


@pytest.fixture
def dns(make_dns):
    return make_dns(RECORDS)


def deferred_reason(p, text, timeout=15.0):
    """The server's log once a deferral mentioning `text` is in it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        log = p.log()
        if re.search(r"status=deferred \(.*" + re.escape(text), log):
            return log
        time.sleep(0.1)
    raise AssertionError(f"no deferral with {text!r}:\n{p.log()[-3000:]}")


# --- verify / secure: PKIX ----------------------------------------------------------------------------------

@ROOT
def test_verify_delivers_to_a_certificate_of_the_configured_ca(make_postern, dns, make_mx, pki):
    p = start(make_postern, dns, f"smtp_tls_security_level = verify\nsmtp_tls_CAfile = {pki.ca}\n")
    mx = make_mx("127.0.0.161", starttls=True, certificate=pki.issue("mx.vfy.test"))
    submit(p, ["vera@vfy.test"])
    (t,) = arrived(p, mx)
    assert t.tls is True
    log = p.wait_log("status=sent")
    assert "Verified TLS connection established to mx.vfy.test[127.0.0.161]:25: TLSv1.3" in log, log


@ROOT
def test_verify_defers_a_certificate_for_another_name(make_postern, dns, make_mx, pki):
    p = start(make_postern, dns, f"smtp_tls_security_level = verify\nsmtp_tls_CAfile = {pki.ca}\n" + SLOW)
    mx = make_mx("127.0.0.162", starttls=True, certificate=pki.issue("other.badname.test"))
    submit(p, ["bert@badname.test"])
    log = deferred_reason(p, "Server certificate not verified")
    assert re.search(r"to=<bert@badname\.test>, relay=mx\.badname\.test\[127\.0\.0\.162\]:25, .*dsn=4\.7\.5, "
                     r"status=deferred \(Server certificate not verified", log), log
    assert "hostname mismatch" in log, log
    time.sleep(1)
    assert mx.messages == [] and mx.attempts == 0  # nothing sent to the unverified peer
    assert len(queued(p)) == 1


@ROOT
def test_verify_tries_the_next_mx_after_an_untrusted_one(make_postern, dns, make_mx, pki):
    # The first MX has a self-signed certificate, the second one from the CA.
    p = start(make_postern, dns, f"smtp_tls_security_level = verify\nsmtp_tls_CAfile = {pki.ca}\n")
    first = make_mx("127.0.0.163", starttls=True, name="mx1.next.test")
    second = make_mx("127.0.0.164", starttls=True, certificate=pki.issue("mx2.next.test"))
    submit(p, ["nina@next.test"])
    (t,) = arrived(p, second)
    assert t.tls is True and first.messages == []
    log = p.wait_log("status=sent")
    assert "Untrusted TLS connection established to mx1.next.test[127.0.0.163]:25" in log, log
    assert "Verified TLS connection established to mx2.next.test[127.0.0.164]:25" in log, log


@ROOT
def test_may_logs_a_trusted_peer_without_checking_its_name(make_postern, dns, make_mx, pki):
    p = start(make_postern, dns, f"smtp_tls_CAfile = {pki.ca}\n")
    mx = make_mx("127.0.0.162", starttls=True, certificate=pki.issue("other.badname.test"))
    submit(p, ["tom@badname.test"])
    arrived(p, mx)
    log = p.wait_log("status=sent")
    assert "Trusted TLS connection established to mx.badname.test[127.0.0.162]:25" in log, log


# --- dane / dane-only: RFC 7672 -----------------------------------------------------------------------------

def spki_sha256(chain):
    """The data of a DANE-EE(3) SPKI(1) SHA-256(1) TLSA record for the first certificate in `chain`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    with open(chain, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return digest.finalize().hex()


def dane_postern(make_postern, make_dns, pki, records, level="dane", extra=""):
    """A Postern at `level` whose DNS serves `records` with the zone dane.test signed, and trusts its key."""
    dns = make_dns(records, signed=["dane.test"])
    # Relative to the configuration directory, which the unprivileged mail_owner reads (libunbound reads the
    # file at the first validating lookup).
    p = start(make_postern, dns, f"smtp_tls_security_level = {level}\ndnssec_trust_anchor_file = dane.test.key\n"
                                 + extra, run=False)
    with open(os.path.join(p.dir, "dane.test.key"), "w") as f:
        f.write(dns.trust_anchor())
    return p.start(), dns


@ROOT
def test_dane_ee_match_delivers_over_verified_tls(make_postern, make_dns, make_mx, pki):
    # DANE-EE ignores the name and the trust store: a certificate for another name, not in smtp_tls_CAfile.
    cert = pki.issue("elsewhere.example")
    p, dns = dane_postern(make_postern, make_dns, pki, {
        "dane.test": {"MX": [(10, "mx.dane.test")]},
        "mx.dane.test": {"A": ["127.0.0.165"]},
        "_25._tcp.mx.dane.test": {"TLSA": [(3, 1, 1, spki_sha256(cert[0])), (1, 1, 1, "00" * 32)]},
    })
    mx = make_mx("127.0.0.165", starttls=True, certificate=cert)
    submit(p, ["dana@dane.test"])
    (t,) = arrived(p, mx)
    assert t.tls is True
    log = p.wait_log("status=sent")
    assert "Verified TLS connection established to mx.dane.test[127.0.0.165]:25" in log, log
    assert dns.asked("_25._tcp.mx.dane.test", "TLSA") >= 1


@ROOT
def test_dane_mismatch_defers_and_sends_nothing(make_postern, make_dns, make_mx, pki):
    cert = pki.issue("mx.bad.dane.test")
    p, _ = dane_postern(make_postern, make_dns, pki, {
        "bad.dane.test": {"MX": [(10, "mx.bad.dane.test")]},
        "mx.bad.dane.test": {"A": ["127.0.0.166"]},
        "_25._tcp.mx.bad.dane.test": {"TLSA": [(3, 1, 1, "ab" * 32)]},
    }, extra=f"smtp_tls_CAfile = {pki.ca}\n" + SLOW)  # PKIX would accept it: DANE does not fall back
    mx = make_mx("127.0.0.166", starttls=True, certificate=cert)
    submit(p, ["mo@bad.dane.test"])
    log = deferred_reason(p, "Server certificate not verified")
    assert re.search(r"to=<mo@bad\.dane\.test>, relay=mx\.bad\.dane\.test\[127\.0\.0\.166\]:25, .*dsn=4\.7\.5, "
                     r"status=deferred", log), log
    time.sleep(1)
    assert mx.messages == [] and mx.attempts == 0
    assert len(queued(p)) == 1


@ROOT
def test_dane_tlsa_servfail_skips_that_mx(make_postern, make_dns, make_mx, pki):
    cert = pki.issue("mx2.fail.dane.test")
    p, _ = dane_postern(make_postern, make_dns, pki, {
        "fail.dane.test": {"MX": [(10, "mx1.fail.dane.test"), (20, "mx2.fail.dane.test")]},
        "mx1.fail.dane.test": {"A": ["127.0.0.169"]},
        "mx2.fail.dane.test": {"A": ["127.0.0.170"]},
        "_25._tcp.mx1.fail.dane.test": {"TLSA": "SERVFAIL"},
        "_25._tcp.mx2.fail.dane.test": {"TLSA": [(3, 1, 1, spki_sha256(cert[0]))]},
    })
    first = make_mx("127.0.0.169", starttls=True)
    second = make_mx("127.0.0.170", starttls=True, certificate=cert)
    submit(p, ["finn@fail.dane.test"])
    arrived(p, second)
    log = p.wait_log("status=sent")
    assert "TLSA lookup error for _25._tcp.mx1.fail.dane.test" in log, log
    assert first.connections == 0 and first.messages == []


@ROOT
def test_dane_with_an_insecure_zone_delivers_opportunistically(make_postern, make_dns, make_mx, pki):
    p, dns = dane_postern(make_postern, make_dns, pki, {
        "unsigned.test": {"MX": [(10, "mx.unsigned.test")]},
        "mx.unsigned.test": {"A": ["127.0.0.167"]},
        "_25._tcp.mx.unsigned.test": {"TLSA": [(3, 1, 1, "ab" * 32)]},  # not validated: not used
    })
    mx = make_mx("127.0.0.167", starttls=True)
    submit(p, ["una@unsigned.test"])
    (t,) = arrived(p, mx)
    assert t.tls is True
    log = p.wait_log("status=sent")
    assert "Untrusted TLS connection established to mx.unsigned.test[127.0.0.167]:25" in log, log
    assert dns.asked("_25._tcp.mx.unsigned.test") == 0


@ROOT
def test_dane_only_without_tlsa_defers(make_postern, make_dns, make_mx, pki):
    p, _ = dane_postern(make_postern, make_dns, pki, {
        "notlsa.dane.test": {"MX": [(10, "mx.notlsa.dane.test")]},
        "mx.notlsa.dane.test": {"A": ["127.0.0.168"]},
    }, level="dane-only", extra=SLOW)
    mx = make_mx("127.0.0.168", starttls=True)
    submit(p, ["nora@notlsa.dane.test"])
    log = deferred_reason(p, "no DNSSEC-validated TLSA records for _25._tcp.mx.notlsa.dane.test")
    assert re.search(r"to=<nora@notlsa\.dane\.test>, .*dsn=4\.7\.5, status=deferred", log), log
    time.sleep(1)
    assert mx.connections == 0 and mx.messages == []


@ROOT
def test_dane_ta_checks_the_mx_name(make_postern, make_dns, make_mx, pki):
    # DANE-TA(2) names the test's CA: the first MX's certificate is for another name, the second's is right.
    ta = [(2, 1, 1, spki_sha256(pki.ca))]
    p, _ = dane_postern(make_postern, make_dns, pki, {
        "ta.dane.test": {"MX": [(10, "mx1.ta.dane.test"), (20, "mx2.ta.dane.test")]},
        "mx1.ta.dane.test": {"A": ["127.0.0.171"]},
        "mx2.ta.dane.test": {"A": ["127.0.0.172"]},
        "_25._tcp.mx1.ta.dane.test": {"TLSA": ta},
        "_25._tcp.mx2.ta.dane.test": {"TLSA": ta},
    })
    first = make_mx("127.0.0.171", starttls=True, certificate=pki.issue("other.ta.dane.test"))
    second = make_mx("127.0.0.172", starttls=True, certificate=pki.issue("mx2.ta.dane.test"))
    submit(p, ["tara@ta.dane.test"])
    arrived(p, second)
    log = p.wait_log("status=sent")
    assert "mx1.ta.dane.test[127.0.0.171]:25: Server certificate not verified" in log, log
    assert "Verified TLS connection established to mx2.ta.dane.test[127.0.0.172]:25" in log, log
    assert first.messages == [] and first.attempts == 0


def test_check_names_bad_outbound_tls_settings(make_postern):
    p = make_postern("smtp_tls_security_level = dane-ish\n", start=False)
    r = p.run("check", check=False)
    assert r.returncode != 0 and 'smtp_tls_security_level: "dane-ish" is not none, may' in r.stderr, r.stderr
    p = make_postern("smtp_tls_security_level = verify\nsmtp_tls_CAfile = missing-ca.pem\n", start=False)
    r = p.run("check", check=False)
    assert r.returncode != 0 and "smtp_tls_CAfile" in r.stderr and "missing-ca.pem" in r.stderr, r.stderr
    p = make_postern("smtp_tls_security_level = dane\ndnssec_trust_anchor_file = missing.key\n", start=False)
    r = p.run("check", check=False)
    assert r.returncode != 0 and f"dnssec_trust_anchor_file {p.dir}/missing.key is not readable" in r.stderr, \
        r.stderr
    p = make_postern("smtp_tls_security_level = dane\n", start=False)  # Debian's root key
    r = p.run("check", check=False)
    assert "smtp_tls" not in r.stderr and "dnssec" not in r.stderr, r.stderr
