"""DKIM signing (issue 6): `postern dkim keygen` for RSA and Ed25519 and the DNS records it prints, then mail to
another domain, read from its queue file, checked by an independent verifier (python3-dkim's dkim.verify, with a
DNS function that answers the TXT record keygen printed): from mynetworks (RSA) and after SMTP AUTH (Ed25519).
A signed field changed afterwards fails verification; mail from a domain without a key, and the local
recipients' copies, are not signed; a key file that does not load is a logged error, not a failed start.
"""
import os
import re
import signal
import smtplib

import dkim

from conftest import DOMAIN, PASSWORD

OTHER = "other.test"  # a virtual domain of conftest's configuration, here with an Ed25519 key
OUTSIDER = "mynetworks = 127.0.0.2/32\nsmtpd_sasl_auth_enable = yes\ndisable_plaintext_auth = no\n"


def keygen(p, domain, *args):
    """Runs keygen; returns ({owner name: TXT text joined}, {owner name: [strings]}) of the printed records."""
    out = p.run("dkim", "keygen", domain, *args).stdout
    joined, strings = {}, {}
    for line in out.splitlines():
        if line.startswith(";"):
            continue
        m = re.fullmatch(r'(\S+) IN TXT ((?:"[^"]*" ?)+)', line)
        assert m, line
        parts = re.findall(r'"([^"]*)"', m.group(2))
        strings[m.group(1)] = parts
        joined[m.group(1)] = "".join(parts)
    return joined, strings


def queued_message(p, queue_id):
    """The message of a queue file (the value of its M record), as it goes on the wire (CR LF). The file is in
    deferred/ or active/."""
    data = p.queue_file(queue_id)
    m = re.search(rb"\nM(\d+):", data)
    start = m.end()
    return data[start:start + int(m.group(1))].replace(b"\n", b"\r\n")


def send(p, sender, rcpts, from_header, login=None):
    msg = (f"From: Alice <{from_header}>\r\nTo: {', '.join(rcpts)}\r\nSubject: dkim test\r\n"
           f"Date: Tue, 24 Nov 2026 12:00:00 +0000\r\nMessage-ID: <t1@{DOMAIN}>\r\n\r\n"
           "Hello,  this is   signed.\r\n\r\n-- \r\nAlice\r\n\r\n\r\n").encode()
    with smtplib.SMTP("127.0.0.1", p.port) as s:
        s.ehlo("client.example")
        if login:
            s.login(login, PASSWORD)
        s.mail(sender)
        for r in rcpts:
            assert s.rcpt(r)[0] == 250
        code, reply = s.data(msg)
    assert code == 250, reply
    return reply.decode().rsplit(" ", 1)[1]


def dnsfunc(records):
    def lookup(name, timeout=5):
        return records.get(name.decode()).encode()
    return lookup


def test_keygen_records_and_refusal(make_postern):
    p = make_postern(start=False)
    records, strings = keygen(p, DOMAIN, "--selector", "s1")
    assert set(records) == {f"s1._domainkey.{DOMAIN}.", f"{DOMAIN}.", f"_dmarc.{DOMAIN}."}
    assert re.fullmatch(r"v=DKIM1; k=rsa; p=[A-Za-z0-9+/]+=*", records[f"s1._domainkey.{DOMAIN}."])
    # A 2048-bit key's record does not fit one DNS character-string: split at 255 bytes.
    assert [len(s) for s in strings[f"s1._domainkey.{DOMAIN}."]][0] == 255
    assert all(len(s) <= 255 for s in strings[f"s1._domainkey.{DOMAIN}."])
    assert records[f"{DOMAIN}."] == "v=spf1 mx -all"
    assert records[f"_dmarc.{DOMAIN}."] == f"v=DMARC1; p=none; rua=mailto:postmaster@{DOMAIN}"
    key = os.path.join(p.dir, "dkim", DOMAIN, "s1.key")
    assert os.stat(key).st_mode & 0o777 == 0o600
    assert open(key).read().startswith("-----BEGIN PRIVATE KEY-----")

    again = p.run("dkim", "keygen", DOMAIN, "--selector", "s1", check=False)
    assert again.returncode != 0 and "exists already; --force replaces it" in again.stderr
    forced, _ = keygen(p, DOMAIN, "--selector", "s1", "--type", "ed25519", "--force")
    assert re.fullmatch(r"v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=", forced[f"s1._domainkey.{DOMAIN}."])
    assert os.stat(key).st_mode & 0o777 == 0o600

    # The default selector is the year and month.
    default, _ = keygen(p, OTHER)
    assert any(re.fullmatch(r"20\d{4}\._domainkey\.other\.test\.", name) for name in default)
    for bad in (["bad_domain!"], [DOMAIN, "--type", "dsa"], [DOMAIN, "--selector", "../x"]):
        r = p.run("dkim", "keygen", *bad, check=False)
        assert r.returncode != 0 and r.stderr.startswith("postern: dkim: "), r.stderr
    assert "keygen DOMAIN" in p.run("dkim", "--help").stdout


def test_signed_mail_verifies_rsa_and_ed25519(make_postern):
    p = make_postern(OUTSIDER, start=False)
    rsa, _ = keygen(p, DOMAIN, "--selector", "mail")
    ed, _ = keygen(p, OTHER, "--selector", "ed", "--type", "ed25519")
    # A key file that does not load: an error in the log naming it; the server starts and signs with the rest.
    os.makedirs(os.path.join(p.dir, "dkim", "broken.test"))
    broken = os.path.join(p.dir, "dkim", "broken.test", "x.key")
    with open(broken, "w") as f:
        f.write("not a key\n")
    p.start()
    log = p.wait_log(f"{broken}: cannot load the DKIM key")
    assert f"signing mail from {DOMAIN}" in log and f"signing mail from {OTHER}" in log
    records = {**rsa, **ed}

    # An authenticated client (mynetworks is 127.0.0.2 here), the RSA key, and a local recipient whose copy
    # needs no signature.
    qid = send(p, f"alice@{DOMAIN}", [f"bob@{DOMAIN}", "friend@outside.example"], f"alice@{DOMAIN}",
               login=f"alice@{DOMAIN}")
    msg = queued_message(p, qid)
    assert msg.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
    field = re.match(rb"DKIM-Signature:.*?\r\n(?!\t)", msg, re.S).group(0)
    assert all(len(line) <= 78 for line in field.split(b"\r\n")), field
    sig = dkim.DKIM(msg)
    assert sig.verify(dnsfunc=dnsfunc(records)), sig.logger
    assert f"d={DOMAIN}".encode() in msg and b"s=mail;" in msg
    assert b"DKIM-Signature" not in p.messages("bob")[0]
    p.wait_log(f"{qid}: DKIM-Signature field added (s=mail, d={DOMAIN})")

    # Changed after signing: a signed field, the body, or a second From added (From is signed twice).
    for before, after in ((b"Subject: dkim test", b"Subject: dkim test!"),
                          (b"signed.", b"changed."),
                          (b"To: ", b"From: mallory@outside.example\r\nTo: ")):
        assert not dkim.verify(msg.replace(before, after, 1), dnsfunc=dnsfunc(records)), before
    # Relaxed canonicalization: white space may change in transit.
    assert dkim.verify(msg.replace(b"Hello,  this", b"Hello, \t this"), dnsfunc=dnsfunc(records))

    # Ed25519 (RFC 8463), the From field's domain deciding the key.
    qid = send(p, f"alice@{DOMAIN}", ["friend@outside.example"], f"alice@{OTHER}", login=f"alice@{DOMAIN}")
    msg = queued_message(p, qid)
    assert msg.startswith(b"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;")
    assert dkim.verify(msg, dnsfunc=dnsfunc(records))
    assert not dkim.verify(msg.replace(b"Subject: dkim", b"Subject: DKIM"), dnsfunc=dnsfunc(records))


def test_mail_from_a_domain_without_a_key_is_not_signed(make_postern):
    p = make_postern(start=False)
    keygen(p, DOMAIN, "--selector", "s1")
    p.start()
    # From mynetworks (127.0.0.1 is in the default mynetworks), From: a domain without a key.
    qid = send(p, f"alice@{DOMAIN}", ["friend@outside.example"], "someone@nokey.example")
    msg = queued_message(p, qid)
    assert msg.startswith(b"Received: ") and b"DKIM-Signature" not in msg
    # The same client with From: our domain is signed.
    qid = send(p, f"alice@{DOMAIN}", ["friend@outside.example"], f"alice@{DOMAIN}")
    assert queued_message(p, qid).startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")


def test_key_made_while_running_signs_after_reload(make_postern):
    """A reload loads new keys; as root the server has dropped privileges by then, so the key (root's, mode
    0600) is read through the privileged helper."""
    p = make_postern()
    qid = send(p, f"alice@{DOMAIN}", ["friend@outside.example"], f"alice@{DOMAIN}")
    assert b"DKIM-Signature" not in queued_message(p, qid)
    records, _ = keygen(p, DOMAIN, "--selector", "later", "--type", "ed25519")
    p.proc.send_signal(signal.SIGHUP)
    p.wait_log(f"signing mail from {DOMAIN}")
    qid = send(p, f"alice@{DOMAIN}", ["friend@outside.example"], f"alice@{DOMAIN}")
    msg = queued_message(p, qid)
    assert b"s=later;" in msg and dkim.verify(msg, dnsfunc=dnsfunc(records))
