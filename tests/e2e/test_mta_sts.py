"""MTA-STS (RFC 8461) of outbound delivery end to end (issue 6): the _mta-sts TXT record from the loopback DNS
server (tests/e2e/dnsserver.py), the policy served over HTTPS by a small http.server on 127.0.0.19x:443 with a
certificate for mta-sts.<domain> from the test's own CA (test_outbound_tls.Pki, smtp_tls_CAfile), and remote MX
sinks (tests/e2e/remote_mx.py) on 127.0.0.18x:25. Ports 25 and 443 need root.
"""
import http.server
import os
import re
import ssl
import threading
import time

import pytest

from test_outbound import ROOT, SLOW, arrived, queued, start, submit
from test_outbound_tls import Pki, deferred_reason, pki  # noqa: F401  (pki: the CA fixture)


def domain_records(domain, mx_host, mx_ip, https_ip, sts_id="1"):
    return {
        domain: {"MX": [(10, mx_host)]},
        mx_host: {"A": [mx_ip]},
        f"_mta-sts.{domain}": {"TXT": [f"v=STSv1; id={sts_id};"]},
        f"mta-sts.{domain}": {"A": [https_ip]},
    }


RECORDS = {
    **domain_records("enf.test", "mx.enf.test", "127.0.0.181", "127.0.0.191"),
    **domain_records("stray.test", "mx.elsewhere.test", "127.0.0.182", "127.0.0.192"),
    **domain_records("notls.test", "mx.notls.test", "127.0.0.183", "127.0.0.193"),
    **domain_records("try.test", "mx.elsewhere-try.test", "127.0.0.184", "127.0.0.194"),
    **domain_records("badcert.test", "mx.badcert.test", "127.0.0.186", "127.0.0.196"),
    **domain_records("fakeweb.test", "mx.fakeweb.test", "127.0.0.187", "127.0.0.197"),
    **domain_records("cached.test", "mx.cached.test", "127.0.0.185", "127.0.0.195", sts_id="new"),
}


def policy(mode, *mx, max_age=86400):
    return "version: STSv1\r\nmode: {}\r\n{}max_age: {}\r\n".format(mode, "".join(f"mx: {m}\r\n" for m in mx),
                                                                    max_age)


class PolicyServer:
    """HTTPS on `address`:443 serving `body` at /.well-known/mta-sts.txt (text/plain); counts the requests."""

    def __init__(self, address, certificate, body):
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Host")))
                if self.path != "/.well-known/mta-sts.txt":
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*certificate)
        self.httpd = http.server.ThreadingHTTPServer((address, 443), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def make_policy_server():
    made = []

    def factory(address, certificate, body):
        made.append(PolicyServer(address, certificate, body))
        return made[-1]

    yield factory
    for s in made:
        s.stop()


@pytest.fixture
def dns(make_dns):
    return make_dns(RECORDS)


def start_sts(make_postern, dns, pki, extra="", run=True):  # noqa: F811
    return start(make_postern, dns, f"smtp_tls_CAfile = {pki.ca}\nsmtp_mta_sts_timeout = 10s\n{extra}", run=run)


def delivered_over_tls(p, mx, rcpt):
    """Submits a message to `rcpt`; it reaches `mx` over TLS; the log once it says so."""
    submit(p, [rcpt])
    (t,) = arrived(p, mx)
    assert t.tls is True
    return p.wait_log("status=sent")


@ROOT
def test_enforce_delivers_to_a_listed_mx_with_a_valid_certificate(make_postern, dns, make_mx, pki,  # noqa: F811
                                                                   make_policy_server):
    web = make_policy_server("127.0.0.191", pki.issue("mta-sts.enf.test"), policy("enforce", "mx.enf.test"))
    mx = make_mx("127.0.0.181", starttls=True, certificate=pki.issue("mx.enf.test"))
    p = start_sts(make_postern, dns, pki)
    log = delivered_over_tls(p, mx, "erin@enf.test")
    assert "MTA-STS policy of enf.test (id 1): mode enforce, max_age 86400" in log, log
    assert "Verified TLS connection established to mx.enf.test[127.0.0.181]:25" in log, log
    assert web.requests == [("/.well-known/mta-sts.txt", "mta-sts.enf.test")]
    with open(os.path.join(p.root, "queue", "mta-sts", "enf.test")) as f:
        cached = f.read()
    assert cached.startswith("id: 1\nexpires: ") and "mode: enforce" in cached
    # The next message uses the cached policy: no second fetch.
    submit(p, ["erin@enf.test"])
    arrived(p, mx, 2)
    assert len(web.requests) == 1


def assert_deferred(p, mx, relay, reason):
    """The message waits in the queue with a 4.7.x deferral whose reason contains `reason` (a regular
    expression), and `mx` got no transaction."""
    log = deferred_reason(p, "")
    assert re.search(rf"relay={re.escape(relay)}, .*dsn=4\.7\.\d, status=deferred \(.*{reason}", log), log
    time.sleep(1)
    assert mx.messages == [] and mx.attempts == 0
    assert len(queued(p)) == 1
    return log


@ROOT
def test_enforce_refuses_an_mx_outside_the_policy(make_postern, dns, make_mx, pki, make_policy_server):  # noqa: F811
    make_policy_server("127.0.0.192", pki.issue("mta-sts.stray.test"), policy("enforce", "mx.stray.test"))
    mx = make_mx("127.0.0.182", starttls=True, certificate=pki.issue("mx.elsewhere.test"))
    p = start_sts(make_postern, dns, pki, SLOW)
    submit(p, ["sam@stray.test"])
    log = assert_deferred(p, mx, "none", r"mx\.elsewhere\.test is not an MX host of the MTA-STS policy of stray\.test")
    assert "dsn=4.7.5" in log and mx.connections == 0


@ROOT
@pytest.mark.parametrize("domain, address, reason", [
    ("notls.test", "127.0.0.183", "TLS is required"),
    ("badcert.test", "127.0.0.186", r"Server certificate not verified \(MTA-STS policy of badcert\.test\)"),
])
def test_enforce_requires_verified_tls(make_postern, dns, make_mx, pki, make_policy_server,  # noqa: F811
                                       domain, address, reason):
    # mx.notls.test offers no STARTTLS; mx.badcert.test has a self-signed certificate.
    make_policy_server(RECORDS[f"mta-sts.{domain}"]["A"][0], pki.issue(f"mta-sts.{domain}"),
                       policy("enforce", f"*.{domain}"))
    mx = make_mx(address, starttls=domain == "badcert.test", name=f"mx.{domain}")
    p = start_sts(make_postern, dns, pki, SLOW)
    submit(p, [f"nat@{domain}"])
    assert_deferred(p, mx, f"mx.{domain}[{address}]:25", reason)


@ROOT
def test_testing_mode_reports_but_delivers(make_postern, dns, make_mx, pki, make_policy_server):  # noqa: F811
    # Neither the MX name nor its (self-signed) certificate passes the policy: logged, delivered all the same.
    make_policy_server("127.0.0.194", pki.issue("mta-sts.try.test"), policy("testing", "mx.try.test"))
    mx = make_mx("127.0.0.184", starttls=True, name="mx.elsewhere-try.test")
    p = start_sts(make_postern, dns, pki)
    log = delivered_over_tls(p, mx, "tia@try.test")
    assert "MTA-STS policy of try.test (id 1): mode testing" in log, log
    assert "mx.elsewhere-try.test is not an MX host of the MTA-STS policy of try.test (testing" in log, log
    assert re.search(r"MTA-STS policy of try\.test \(testing.*not verified", log), log


@ROOT
def test_failed_fetch_keeps_the_cached_policy(make_postern, dns, make_mx, pki):  # noqa: F811
    # The TXT id is new, the policy host is down: the cached (unexpired) policy stays in force. It lists
    # another MX, so the message waits instead of going to mx.cached.test as it would without a policy.
    mx = make_mx("127.0.0.185", starttls=True, certificate=pki.issue("mx.cached.test"))
    p = start_sts(make_postern, dns, pki, SLOW, run=False)
    cache = os.path.join(p.root, "queue", "mta-sts")
    os.makedirs(cache)
    with open(os.path.join(cache, "cached.test"), "w") as f:
        f.write(f"id: old\nexpires: {int(time.time()) + 3600}\n\n" + policy("enforce", "mx2.cached.test"))
    p.start()
    submit(p, ["cid@cached.test"])
    log = assert_deferred(p, mx, "none", r"mx\.cached\.test is not an MX host of the MTA-STS policy of cached\.test")
    assert re.search(r"MTA-STS policy of cached\.test \(id new\): connect to mta-sts\.cached\.test\[127\.0\.0\.195\]"
                     r":443: .*; the cached policy stays in force", log), log


@ROOT
def test_a_policy_host_without_a_valid_certificate_gives_no_policy(make_postern, dns, make_mx, pki,  # noqa: F811
                                                                   make_policy_server, tmp_path):
    # The policy would refuse this MX (no STARTTLS), but its HTTPS server's certificate comes from a CA that
    # smtp_tls_CAfile does not hold: the policy is not taken, and the mail goes as without one.
    other = tmp_path / "other-ca"
    other.mkdir()
    web = make_policy_server("127.0.0.197", Pki(str(other)).issue("mta-sts.fakeweb.test"),
                             policy("enforce", "*.fakeweb.test"))
    mx = make_mx("127.0.0.187")
    p = start_sts(make_postern, dns, pki)
    submit(p, ["fay@fakeweb.test"])
    (t,) = arrived(p, mx)
    assert t.tls is False and web.requests == []
    log = p.wait_log("status=sent")
    assert re.search(r"MTA-STS policy of fakeweb\.test \(id 1\): the certificate of mta-sts\.fakeweb\.test is not "
                     r"verified: .*certificate", log), log
    assert not os.path.exists(os.path.join(p.root, "queue", "mta-sts", "fakeweb.test"))
