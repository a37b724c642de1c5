"""SORT (RFC 5256, with SORT=DISPLAY of RFC 5957) and THREAD (ORDEREDSUBJECT, REFERENCES) against every server in
IMAP_SERVERS: the same three messages in each, and the orders a client gets, checked by hand and therefore
the same from Dovecot and Postern."""
import re

import pytest

# (From, To, Subject, Date, extra header lines, internal date)
MESSAGES = [
    ('"Zed" <aaa@x.test>', "bob@y.test", "Re: apple", "Sun, 03 Mar 2024 10:00:00 +0000",
     "Message-ID: <m1@x.test>\r\nReferences: <m3@x.test>\r\n", "01-Jan-2024 00:00:01 +0000"),
    ("bob@x.test", '"Alice" <zzz@y.test>', "banana", "Fri, 01 Mar 2024 10:00:00 +0000",
     "Message-ID: <m2@x.test>\r\n", "01-Jan-2024 00:00:02 +0000"),
    ("=?utf-8?q?Mallory?= <ccc@x.test>", "carol <aaa@y.test>", "[list] Apple", "Sat, 02 Mar 2024 10:00:00 +0000",
     "Message-ID: <m3@x.test>\r\n", "01-Jan-2024 00:00:03 +0000"),
]


@pytest.fixture
def box(imap_server):
    r = imap_server.raw("alice")
    for i, (frm, to, subject, date, extra, internal) in enumerate(MESSAGES):
        msg = (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n{extra}\r\n"
               + "x" * (100 * (3 - i)) + "\r\n").encode()
        r.ok(f'APPEND INBOX "{internal}" {{{len(msg)}+}}\r\n'.encode().decode() + msg.decode())
    r.ok("SELECT INBOX")
    return r


def sort(r, criteria, uid=False):
    _, lines = r.ok(f"{'UID ' if uid else ''}SORT ({criteria}) UTF-8 ALL")
    (line,) = [ln for ln in lines if ln.startswith(b"* SORT")]
    return [int(n) for n in line.split()[2:]]


@pytest.mark.parametrize("criteria,order", [
    ("ARRIVAL", [1, 2, 3]),
    ("REVERSE ARRIVAL", [3, 2, 1]),
    ("DATE", [2, 3, 1]),
    ("REVERSE DATE", [1, 3, 2]),
    ("SIZE", [3, 2, 1]),
    ("SUBJECT", [1, 3, 2]),  # base subjects "apple", "banana", "apple": ties in sequence order
    ("SUBJECT REVERSE DATE", [1, 3, 2]),
    ("REVERSE SUBJECT DATE", [2, 3, 1]),
    ("FROM", [1, 2, 3]),  # local parts aaa, bob, ccc
    ("TO", [3, 1, 2]),  # local parts bob, zzz, aaa
    ("CC", [1, 2, 3]),  # none has Cc: all equal
    ("DISPLAYFROM", [2, 3, 1]),  # "bob@x.test" (no name), "Mallory" (encoded word), "Zed"
    ("DISPLAYTO", [2, 1, 3]),  # "Alice", "bob@y.test", "carol"
])
def test_sort(box, criteria, order):
    assert sort(box, criteria) == order


def test_sort_display_is_announced_and_uid_sort(imap_server, box):
    _, lines = box.ok("CAPABILITY")
    assert b"SORT=DISPLAY" in b" ".join(lines).upper()
    _, lines = box.ok("FETCH 1:3 (UID)")
    uids = [int(re.search(rb"UID (\d+)", ln).group(1)) for ln in lines if b"FETCH" in ln]
    assert sort(box, "DISPLAYFROM", uid=True) == [uids[1], uids[2], uids[0]]


def test_sort_errors(box):
    assert box.cmd("SORT (NOSUCH) UTF-8 ALL")[0] == "BAD"
    assert box.cmd("SORT (REVERSE) UTF-8 ALL")[0] == "BAD"
    status, line, _ = box.cmd("SORT (DATE) X-UNKNOWN ALL")
    assert status == "NO" and "[BADCHARSET" in line, line


@pytest.mark.parametrize("algorithm", ["ORDEREDSUBJECT", "REFERENCES"])
def test_thread(box, algorithm):
    # Both group "apple" (3, then its reply 1) apart from "banana" (2), threads in order of their first date.
    _, lines = box.ok(f"THREAD {algorithm} UTF-8 ALL")
    (line,) = [ln for ln in lines if ln.startswith(b"* THREAD")]
    assert line == b"* THREAD (2)(3 1)", line
    _, lines = box.ok("FETCH 1:3 (UID)")
    uids = [int(re.search(rb"UID (\d+)", ln).group(1)) for ln in lines if b"FETCH" in ln]
    _, lines = box.ok(f"UID THREAD {algorithm} UTF-8 ALL")
    (line,) = [ln for ln in lines if ln.startswith(b"* THREAD")]
    assert line == b"* THREAD (%d)(%d %d)" % (uids[1], uids[2], uids[0]), line
