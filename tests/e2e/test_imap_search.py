"""IMAP SEARCH against every server in IMAP_SERVERS: keys, dates, sizes, sets, NOT/OR, CHARSET UTF-8 against an
RFC 2047 subject, UID SEARCH and ESEARCH (RETURN MIN MAX COUNT ALL)."""
import re

import pytest

MSGS = [
    (b"From: Ann Example <ann@other.test>\r\nTo: alice@example.test\r\nSubject: quarterly report\r\n"
     b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nX-Tag: red\r\n\r\nnumbers inside\r\n"),
    (b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: lunch?\r\n"
     b"Date: Fri, 15 Mar 2024 12:00:00 +0000\r\n\r\nthe pizza place\r\n" + b"x" * 3000 + b"\r\n"),
    (b"From: Carl <carl@other.test>\r\nTo: alice@example.test\r\nSubject: =?UTF-8?B?w6ljb2xlIGTDqXTDqQ==?=\r\n"
     b"Date: Sat, 01 Jun 2024 08:00:00 +0000\r\nX-Tag: blue\r\n\r\nsummer report\r\n"),
]
DATES = ["01-Jan-2024 10:00:00 +0000", "15-Mar-2024 12:00:00 +0000", "01-Jun-2024 08:00:00 +0000"]


@pytest.fixture
def box(imap_server):
    r = imap_server.raw("alice")
    for msg, date in zip(MSGS, DATES):
        r.ok(b'APPEND INBOX "%s" {%d+}\r\n' % (date.encode(), len(msg)) + msg)
    r.ok("SELECT INBOX")
    r.ok("STORE 1 +FLAGS.SILENT (\\Seen)")
    return r


def search(r, criteria, uid=False):
    _, lines = r.ok(("UID " if uid else "") + "SEARCH " + criteria)
    found = [ln for ln in lines if ln.startswith(b"* SEARCH")]
    assert len(found) == 1, lines
    return [int(x) for x in found[0].split()[2:]]


CASES = [
    ("ALL", [1, 2, 3]),
    ("UNSEEN", [2, 3]),
    ("SEEN", [1]),
    ("FROM ann", [1]),
    ('FROM "other.test"', [1, 3]),
    ("TO alice", [1, 2, 3]),
    ("SUBJECT report", [1]),
    ("SUBJECT LUNCH", [2]),
    ("TEXT pizza", [2]),
    ("TEXT quarterly", [1]),  # TEXT covers the header too
    ("BODY report", [3]),
    ("BODY quarterly", []),
    ("HEADER X-Tag red", [1]),
    ('HEADER X-Tag ""', [1, 3]),
    ("SINCE 15-Mar-2024", [2, 3]),
    ("BEFORE 15-Mar-2024", [1]),
    ("ON 15-Mar-2024", [2]),
    ("SENTSINCE 01-Jun-2024", [3]),
    ("SENTBEFORE 02-Jan-2024", [1]),
    ("LARGER 1000", [2]),
    ("SMALLER 1000", [1, 3]),
    ("1:2", [1, 2]),
    ("2:*", [2, 3]),
    ("1,3", [1, 3]),
    ("NOT SEEN", [2, 3]),
    ("OR FROM ann FROM carl", [1, 3]),
    ("NOT OR FROM ann FROM carl", [2]),
    ("(FROM ann) (SUBJECT report)", [1]),
    ("UNSEEN LARGER 1000", [2]),
    ("DELETED", []),
    ("KEYWORD $Nothing", []),
]


@pytest.mark.parametrize("criteria,expected", CASES, ids=[c for c, _ in CASES])
def test_search_keys(box, criteria, expected):
    assert search(box, criteria) == expected


def test_search_charset_utf8_encoded_word(box):
    word = "école".encode()
    status, line, lines = box.cmd(b"SEARCH CHARSET UTF-8 SUBJECT {%d+}\r\n" % len(word) + word)
    assert status == "OK", line
    assert [ln for ln in lines if ln.startswith(b"* SEARCH")] == [b"* SEARCH 3"], lines
    status, line, _ = box.cmd("SEARCH CHARSET X-NO-SUCH-CHARSET SUBJECT a")
    assert status == "NO" and "[BADCHARSET" in line, line


def test_uid_search_and_ranges(box):
    _, lines = box.ok("FETCH 1:* UID")
    uids = [int(re.search(rb"UID (\d+)", ln).group(1)) for ln in lines]
    assert search(box, "ALL", uid=True) == uids
    assert search(box, f"UID {uids[1]}:{uids[2]}") == [2, 3]
    assert search(box, f"UID {uids[1]}:*", uid=True) == uids[1:]
    assert search(box, f"UID {uids[2] + 50}:*") == [3]  # * is the highest UID
    assert search(box, f"UID {uids[2] + 50}") == []


def test_search_bad_sequence_set(box):
    for bad in ("SEARCH 0", "SEARCH 1:x", "SEARCH ,1", "SEARCH SINCE 31-Foo-2024", "SEARCH LARGER x"):
        status, line, _ = box.cmd(bad)
        assert status == "BAD", f"{bad}: {line}"


def test_esearch(box):
    _, lines = box.ok("SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN")
    es = [ln for ln in lines if ln.startswith(b"* ESEARCH")]
    assert len(es) == 1, lines
    assert re.match(rb'\* ESEARCH \(TAG "R\d+"\)', es[0]), es
    data = es[0].split(b")", 1)[1].split()
    items = dict(zip(data[::2], data[1::2]))
    assert items == {b"MIN": b"2", b"MAX": b"3", b"COUNT": b"2", b"ALL": b"2:3"}, es
    _, lines = box.ok("UID SEARCH RETURN (COUNT) ALL")
    es = [ln for ln in lines if ln.startswith(b"* ESEARCH")]
    assert b" UID" in es[0] and es[0].endswith(b"COUNT 3"), es
    _, lines = box.ok("SEARCH RETURN () DELETED")  # RETURN () means ALL; no match: no ALL item
    es = [ln for ln in lines if ln.startswith(b"* ESEARCH")]
    assert es and b"ALL" not in es[0], es
