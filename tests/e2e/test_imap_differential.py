"""Differential IMAP test: the same messages APPENDed into Dovecot and Postern, then FETCH ENVELOPE,
BODYSTRUCTURE, BODY, RFC822.SIZE and section bodies compared byte for byte.

Runs only when IMAP_SERVERS (tests/e2e/imap_servers.py) has both "dovecot" and "postern"; until Postern's IMAP
server lands, test_corpus_on_dovecot checks the corpus itself against Dovecot alone.
"""
import re

import pytest

import imap_servers
from imap_servers import _dovecot_server, _postern_server

CRLF = b"\r\n"


def m(*lines):
    return CRLF.join(x if isinstance(x, bytes) else x.encode() for x in lines)


HDR = ("From: Sender <sender@other.test>", "To: Alice <alice@example.test>", "Date: Mon, 04 Mar 2024 10:00:00 +0000",
       "Message-ID: <d-%s@other.test>", "MIME-Version: 1.0")


def hdr(name, *extra):
    return [h % name if "%s" in h else h for h in HDR] + list(extra)


CORPUS = {
    "plain": m(*hdr("plain", "Subject: plain"), "", "hello", ""),
    "alternative": m(*hdr("alt", "Subject: alternative", 'Content-Type: multipart/alternative; boundary="b1"'), "",
                     "--b1", "Content-Type: text/plain; charset=utf-8", "", "plain text", "--b1",
                     "Content-Type: text/html; charset=utf-8", "", "<p>html</p>", "--b1--", ""),
    "mixed-attachment": m(*hdr("mixed", "Subject: attachment", 'Content-Type: multipart/mixed; boundary="b2"'), "",
                          "preamble", "--b2", "Content-Type: text/plain", "", "see attached", "--b2",
                          'Content-Type: application/pdf; name="r.pdf"', "Content-Transfer-Encoding: base64",
                          'Content-Disposition: attachment; filename="r.pdf"', "Content-Language: en",
                          "Content-ID: <att1@other.test>", "Content-Description: a report", "",
                          "JVBERi0xLjQKJcOkw7zDtsOfCg==", "--b2--", "epilogue", ""),
    "nested-rfc822": m(*hdr("nested", "Subject: fwd", 'Content-Type: multipart/mixed; boundary="b3"'), "",
                       "--b3", "Content-Type: text/plain", "", "forwarded below", "--b3", "Content-Type: message/rfc822",
                       "", "From: Inner <inner@other.test>", "Subject: inner", "Date: Sun, 03 Mar 2024 09:00:00 +0000",
                       'Content-Type: multipart/alternative; boundary="in"', "", "--in", "Content-Type: text/plain",
                       "", "inner text", "--in--", "", "--b3--", ""),
    "encoded-words": m("From: =?ISO-8859-1?Q?Andr=E9?= Pirard <pirard@other.test>",
                       "To: =?UTF-8?B?w6lsw6h2ZQ==?= <eleve@example.test>",
                       "Subject: =?UTF-8?Q?caf=C3=A9?= and =?UTF-8?B?8J+Ygw==?=", "Date: Mon, 04 Mar 2024 10:00:00 +0000",
                       "", "body", ""),
    "rfc2231": m(*hdr("2231", "Subject: rfc2231", 'Content-Type: multipart/mixed; boundary="b4"'), "",
                 "--b4", "Content-Type: application/octet-stream;", " name*=UTF-8''%E2%82%AC%20rates.bin",
                 "Content-Disposition: attachment;", " filename*0*=UTF-8''%E2%82%AC%20;", ' filename*1="rates.bin"',
                 "", "data", "--b4--", ""),
    "missing-boundary": m(*hdr("nob", "Subject: no boundary", "Content-Type: multipart/mixed"), "", "--x", "",
                          "text", "--x--", ""),
    "unterminated-multipart": m(*hdr("unt", "Subject: unterminated", 'Content-Type: multipart/mixed; boundary="b5"'),
                                "", "--b5", "Content-Type: text/plain", "", "never closed", ""),
    "8bit": m(*hdr("8bit", "Subject: 8bit", "Content-Type: text/plain; charset=utf-8",
                   "Content-Transfer-Encoding: 8bit"), "", "gr\xfc\xdfe".encode("latin-1").decode("latin-1"),
              "na\u00efve \u2603".encode().decode("latin-1").encode("latin-1"), ""),
    "bare-lf": (b"From: lf@other.test\nTo: alice@example.test\nSubject: bare LF\nDate: Mon, 04 Mar 2024 10:00:00 +0000"
                b"\n\nline one\nline two\n"),
    "group-syntax": m("From: Sender <sender@other.test>", "To: Friends: a@other.test, \"B b\" <b@other.test>;, c@other.test",
                      "Cc: undisclosed-recipients:;", "Bcc: Empty:;", "Reply-To: <reply@other.test>",
                      "In-Reply-To: <parent@other.test>", "Subject: groups", "Date: Mon, 04 Mar 2024 10:00:00 +0000",
                      "", "x", ""),
    "no-headers-of-note": m("X-Only: this", "", "body without From/Date/Subject", ""),
    "params-and-case": m(*hdr("case", "Subject: case", 'Content-Type: TEXT/Plain; CharSet="ISO-8859-1"; format=flowed',
                              "Content-Transfer-Encoding: Quoted-Printable"), "", "caf=E9", ""),
}

ITEMS = ["ENVELOPE", "BODYSTRUCTURE", "BODY", "RFC822.SIZE", "BODY.PEEK[HEADER]", "BODY.PEEK[TEXT]", "BODY.PEEK[1]",
         "BODY.PEEK[1.MIME]", "BINARY.SIZE[1]", "BODY.PEEK[2]", "BODY.PEEK[2.HEADER]"]


def load(srv):
    """APPENDs the corpus into alice's INBOX and returns the raw session with INBOX selected."""
    r = srv.raw("alice")
    for name, msg in CORPUS.items():
        status, line, _ = r.cmd(b"APPEND INBOX {%d+}\r\n" % len(msg) + msg)
        assert status == "OK", f"{name}: {line}"
    r.ok("SELECT INBOX")
    return r


def fetch_item(r, seq, item):
    status, line, lines = r.cmd(f"FETCH {seq} ({item})")
    data = [ln for ln in lines if re.match(rb"\* \d+ FETCH ", ln)]
    return status, data


@pytest.fixture
def both(request):
    if "dovecot" not in imap_servers.IMAP_SERVERS or "postern" not in imap_servers.IMAP_SERVERS:
        pytest.skip("differential IMAP tests need both servers: IMAP_SERVERS in tests/e2e/imap_servers.py does not "
                    "list \"postern\" yet (Postern's IMAP server has not landed)")
    d = request.getfixturevalue("dovecot_instance")
    dov = _dovecot_server(d)
    pos = _postern_server(request.getfixturevalue("make_postern"))
    yield dov, pos
    dov.close_all()
    pos.close_all()


def test_corpus_on_dovecot(request):
    """The corpus is valid IMAP input: every message APPENDs and every item FETCHes on Dovecot."""
    if "dovecot" not in imap_servers.IMAP_SERVERS:
        pytest.skip("dovecot is not in IMAP_SERVERS")
    dov = _dovecot_server(request.getfixturevalue("dovecot_instance"))
    try:
        r = load(dov)
        for seq, name in enumerate(CORPUS, 1):
            status, data = fetch_item(r, seq, "ENVELOPE BODYSTRUCTURE RFC822.SIZE")
            assert status == "OK" and len(data) == 1, name
            assert b"BODYSTRUCTURE (" in data[0] and b"ENVELOPE (" in data[0], name
        # spot checks of what the corpus exercises
        names = list(CORPUS)
        _, data = fetch_item(r, names.index("group-syntax") + 1, "ENVELOPE")
        assert b'(NIL NIL "Friends" NIL)' in data[0] and b"(NIL NIL NIL NIL)" in data[0], data
        _, data = fetch_item(r, names.index("nested-rfc822") + 1, "BODYSTRUCTURE")
        assert b'"message" "rfc822"' in data[0], data
        _, data = fetch_item(r, names.index("rfc2231") + 1, "BODYSTRUCTURE")
        assert b"rates.bin" in data[0], data
    finally:
        dov.close_all()


@pytest.mark.parametrize("item", ITEMS)
def test_same_fetch_results(both, item):
    dov, pos = both
    rd, rp = load(dov), load(pos)
    diffs = []
    for seq, name in enumerate(CORPUS, 1):
        sd, dd = fetch_item(rd, seq, item)
        sp, dp = fetch_item(rp, seq, item)
        if (sd, dd) != (sp, dp):
            diffs.append(f"{name} FETCH {item}:\n  dovecot {sd} {dd!r}\n  postern {sp} {dp!r}")
    assert not diffs, "\n".join(diffs)
