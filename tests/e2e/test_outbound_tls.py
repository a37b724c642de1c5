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
