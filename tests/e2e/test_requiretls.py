"""REQUIRETLS (RFC 8689) end to end: offered only inside TLS and refused outside it (530 5.7.10); a message
submitted with it is relayed only over TLS to a server that offers REQUIRETLS and gets the parameter again,
and is returned to its sender with 5.7.30 when the next hop cannot take it. The remote side is remote_mx
(aiosmtpd) as the relayhost on a free port."""
import smtplib
import ssl
import time

from conftest import DOMAIN, free_port

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


def _relay(make_postern, make_mx, **script):
    port = free_port()
    mx = make_mx("127.0.0.1", port, **script)
    srv = make_postern(f"relayhost = [127.0.0.1]:{port}\nmynetworks = 127.0.0.0/8\n")
    return srv, mx


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


def test_relayed_with_requiretls_over_tls(make_postern, make_mx):
    srv, mx = _relay(make_postern, make_mx, starttls=True, requiretls=True)
    s = _tls_client(srv)
    s.sendmail(ALICE, ["friend@far.example"], b"Subject: secret\r\n\r\nfor your eyes only\r\n",
               mail_options=["REQUIRETLS"])
    s.quit()
    (t,) = mx.wait_messages(1, timeout=20)
    assert t.tls and "REQUIRETLS" in t.mail_options
    assert b"for your eyes only" in t.data
    srv.wait_log("status=sent")


def test_returned_when_the_next_hop_cannot_take_it(make_postern, make_mx):
    """Without STARTTLS at the next hop, and with TLS but no REQUIRETLS there: nothing is sent, the sender gets
    a DSN with 5.7.30 at once (no retries), and a message without REQUIRETLS still goes through."""
    for script in (dict(starttls=False), dict(starttls=True, requiretls=False)):
        srv, mx = _relay(make_postern, make_mx, **script)
        s = _tls_client(srv)
        s.sendmail(ALICE, ["friend@far.example"], b"Subject: secret\r\n\r\nfor your eyes only\r\n",
                   mail_options=["REQUIRETLS"])
        s.sendmail(ALICE, ["friend@far.example"], b"Subject: plain\r\n\r\nanyone may read\r\n")
        s.quit()
        (t,) = mx.wait_messages(1, timeout=20)
        assert b"anyone may read" in t.data
        deadline = time.time() + 20
        while time.time() < deadline and not srv.messages("alice"):
            time.sleep(0.1)
        (bounce,) = srv.messages("alice")
        bounce = bounce if isinstance(bounce, str) else bounce.decode()
        assert "Status: 5.7.30" in bounce and "REQUIRETLS" in bounce, bounce
        assert "Final-Recipient: rfc822; friend@far.example" in bounce
        time.sleep(0.5)
        assert len(mx.messages) == 1 and b"for your eyes only" not in mx.messages[0].data
        assert "status=bounced" in srv.log()
