"""Postern's message cache (postern-index beside the Maildir): ENVELOPE, BODY and BODYSTRUCTURE computed when it
is cold (many messages at once are read and parsed on several threads) are the same as those computed one
message at a time, and as those read back from the cache; deleting the index loses nothing."""
import imaplib
import os
import re
import time

from conftest import free_port

PASSWORD = "demo-password"
ITEMS = "(ENVELOPE BODY BODYSTRUCTURE RFC822.SIZE)"


def message(i):
    """Messages that differ in every part of their ENVELOPE and BODYSTRUCTURE."""
    head = (f"From: Sender {i} <s{i}@other.test>\r\nTo: rcpt{i % 7}@example.test\r\n"
            f"Subject: =?utf-8?q?caf=C3=A9_{i}?=\r\nDate: Mon, 04 Mar 2024 10:{i % 60:02d}:00 +0000\r\n"
            f"Message-ID: <m{i}@other.test>\r\nMIME-Version: 1.0\r\n")
    if i % 3 == 0:
        return (head + "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + f"line {i}\r\n" * (i % 5 + 1)).encode()
    if i % 3 == 1:
        return (head + f'Content-Type: multipart/alternative; boundary="b{i}"\r\n\r\n'
                f"--b{i}\r\nContent-Type: text/plain\r\n\r\nplain {i}\r\n"
                f"--b{i}\r\nContent-Type: text/html\r\n\r\n<p>{'x' * i}</p>\r\n--b{i}--\r\n").encode()
    return (head + f'Content-Type: multipart/mixed; boundary="m{i}"\r\n\r\n'
            f"--m{i}\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            f'--m{i}\r\nContent-Type: application/octet-stream; name="f{i}.bin"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\nAAECAwQF\r\n--m{i}--\r\n").encode()


def fetch(port, specs):
    """{uid: the FETCH response} for `UID FETCH spec ITEMS` of each of `specs`, in one session."""
    c = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    c.login("alice@example.test", PASSWORD)
    c.select("INBOX")
    out = {}
    for spec in specs:
        typ, data = c.uid("FETCH", spec, ITEMS)
        assert typ == "OK", data
        for d in data:
            assert isinstance(d, bytes), d  # no literals in these items
            m = re.search(rb"UID (\d+)", d)
            assert m, d
            out[int(m.group(1))] = d
    c.logout()
    return out


def drop_index(p):
    p.stop()
    gone = 0
    for root, _dirs, files in os.walk(p.maildir("alice")):
        if "postern-index" in files:
            os.unlink(os.path.join(root, "postern-index"))
            gone += 1
    assert gone >= 1
    p.start()


def postern_with_files(make_postern, contents, extra=""):
    """(port, server): Postern on an IMAP port, with alice's Maildir made by her first login, then `contents`
    (LF line ends) put into its cur/ as a local delivery agent would leave them (faster than APPENDs, each
    waiting for its fsync): file i named in order and with its size (S=); paths[i] is the file of UID i+1."""
    port = free_port()
    p = make_postern(extra_config=f"imap_listen = 127.0.0.1:{port}\ndisable_plaintext_auth = no\n{extra}")
    c = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    c.login("alice@example.test", PASSWORD)
    c.logout()
    cur = os.path.join(p.maildir("alice"), "cur")
    st = os.stat(cur)
    paths = []
    for i, data in enumerate(contents):
        path = os.path.join(cur, f"{1700000000 + i}.M{i}P1.test,S={len(data)}:2,")
        with open(path, "wb") as f:
            f.write(data)
        os.chown(path, st.st_uid, st.st_gid)
        paths.append(path)
    return port, p, paths


def test_cold_fetch_of_many_equals_one_at_a_time_and_the_cache(make_postern):
    n = 700  # more than one window of the cold FETCH, most of them computed on several threads
    port, p, _paths = postern_with_files(make_postern, [message(i).replace(b"\r\n", b"\n") for i in range(n)])

    cold = fetch(port, ["1:*"])  # no index yet: the first SELECT makes it
    warm = fetch(port, ["1:*"])
    drop_index(p)
    one_by_one = fetch(port, [str(uid) for uid in sorted(cold)])
    assert len(cold) == n
    assert warm == cold
    assert one_by_one == cold
    # and they differ from each other: the parts asked for were really computed per message
    assert len({v for v in cold.values()}) == n
    assert b"caf\xc3\xa9" not in b"".join(cold.values())  # encoded words are sent as they are in the header
    assert all(b'"=?utf-8?q?caf=C3=A9_' in v for v in cold.values())
    # sizes as sent (CRLF) counted in the files (their names have no W=); UIDs in name order
    for uid, v in cold.items():
        assert re.search(rb"RFC822.SIZE (\d+)", v).group(1) == str(len(message(uid - 1))).encode(), (uid, v)
        assert f"<m{uid - 1}@other.test>".encode() in v


def test_sizes_of_files_without_w_are_counted_when_asked(make_postern):
    """A sync reads no file: the size with CRLF line ends (RFC822.SIZE) of a message whose name has no W= is
    counted when something shows it: STATUS SIZE, SEARCH LARGER/SMALLER, SORT SIZE, FETCH, COPY, POP3."""
    import poplib
    pop = free_port()
    sizes, files = {}, []  # uid -> RFC822.SIZE
    for i in range(100):
        lines = (i * 37) % 100 + 1  # sizes on disk and as sent in different orders
        msg = f"Subject: {i}\r\n\r\n" + "".join(f"{'y' * (100 - lines)}\r\n" for _ in range(lines))
        files.append(msg.replace("\r\n", "\n").encode())
        sizes[i + 1] = len(msg)
    port, p, _paths = postern_with_files(make_postern, files, f"pop3_listen = 127.0.0.1:{pop}\n")

    c = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    c.login("alice@example.test", PASSWORD)
    typ, data = c.status("INBOX", "(MESSAGES SIZE)")
    assert typ == "OK" and f"SIZE {sum(sizes.values())}".encode() in data[0], data
    c.select("INBOX")
    limit = sorted(sizes.values())[50]
    typ, data = c.uid("SEARCH", None, "LARGER", str(limit))
    assert sorted(int(x) for x in data[0].split()) == sorted(u for u, s in sizes.items() if s > limit)
    typ, data = c.uid("SEARCH", None, "SMALLER", str(limit))
    assert sorted(int(x) for x in data[0].split()) == sorted(u for u, s in sizes.items() if s < limit)
    typ, data = c.uid("SORT", "(SIZE)", "UTF-8", "ALL")
    assert [int(x) for x in data[0].split()] == sorted(sizes, key=lambda u: (sizes[u], u)), data
    assert c.create("Copied")[0] == "OK"
    assert c.uid("COPY", "1:*", "Copied")[0] == "OK"
    c.select("Copied")
    typ, data = c.fetch("1:*", "(RFC822.SIZE)")
    assert sorted(int(re.search(rb"RFC822.SIZE (\d+)", d).group(1)) for d in data) == sorted(sizes.values())
    c.logout()

    drop_index(p)  # unknown again; POP3 counts them at login
    m = poplib.POP3("127.0.0.1", pop, timeout=30)
    m.user("alice@example.test")
    m.pass_(PASSWORD)
    _resp, listing, _octets = m.list()
    assert {int(a): int(b) for a, b in (x.split() for x in listing)} == sizes
    assert m.stat() == (100, sum(sizes.values()))
    m.quit()

    drop_index(p)  # and FETCH RFC822.SIZE alone counts them too
    c = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    c.login("alice@example.test", PASSWORD)
    c.select("INBOX")
    typ, data = c.uid("FETCH", "1:*", "(RFC822.SIZE)")
    got = {int(re.search(rb"UID (\d+)", d).group(1)): int(re.search(rb"RFC822.SIZE (\d+)", d).group(1))
           for d in data}
    assert got == sizes
    c.logout()


def test_dates_of_files_named_with_their_size_are_looked_up_when_asked(make_postern):
    """A sync stats no file whose name gives its size (S=): its INTERNALDATE (the file's mtime) is looked up
    when something shows or compares it: FETCH INTERNALDATE, SEARCH BEFORE/ON/SINCE, SORT ARRIVAL, and a COPY
    keeps it."""
    day = 86400
    base = 1704067200  # 2024-01-01 00:00:00 UTC
    port, p, paths = postern_with_files(make_postern, [f"Subject: {i}\n\nbody {i}\n".encode() for i in range(60)])
    dates = {}  # uid -> mtime: days apart, in an order other than the names'
    for i, path in enumerate(paths):
        t = base + ((i * 23) % 60) * day + 3600
        os.utime(path, (t, t))
        dates[i + 1] = t

    def internaldates(client):
        typ, data = client.uid("FETCH", "1:*", "(INTERNALDATE)")
        assert typ == "OK", data
        return {int(re.search(rb"UID (\d+)", d).group(1)):
                int(time.mktime(imaplib.Internaldate2tuple(d)))
                for d in data}

    c = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    c.login("alice@example.test", PASSWORD)
    c.select("INBOX")
    # SEARCH first: nothing has asked for a date yet
    cut = base + 30 * day
    typ, data = c.uid("SEARCH", None, "SINCE", "31-Jan-2024")
    assert sorted(int(x) for x in data[0].split()) == sorted(u for u, t in dates.items() if t >= cut)
    typ, data = c.uid("SEARCH", None, "BEFORE", "31-Jan-2024")
    assert sorted(int(x) for x in data[0].split()) == sorted(u for u, t in dates.items() if t < cut)
    typ, data = c.uid("SEARCH", None, "ON", "31-Jan-2024")
    assert [int(x) for x in data[0].split()] == [u for u, t in dates.items() if cut <= t < cut + day]
    c.logout()

    drop_index(p)
    c = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    c.login("alice@example.test", PASSWORD)
    c.select("INBOX")
    typ, data = c.uid("SORT", "(ARRIVAL)", "UTF-8", "ALL")
    assert [int(x) for x in data[0].split()] == sorted(dates, key=lambda u: dates[u]), data
    c.logout()

    drop_index(p)
    c = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    c.login("alice@example.test", PASSWORD)
    c.select("INBOX")
    assert internaldates(c) == dates
    assert c.create("Copied")[0] == "OK"
    assert c.uid("COPY", "1:*", "Copied")[0] == "OK"
    c.select("Copied")
    assert sorted(internaldates(c).values()) == sorted(dates.values())
    c.logout()


def _read_until(sock, tag, decompress=None):
    """Everything up to and with the tagged response of `tag` (b"*": the greeting)."""
    buf = b""
    while not (buf.endswith(b"\r\n") and (buf.startswith(tag + b" ") or (b"\r\n" + tag + b" ") in buf)):
        data = sock.recv(1 << 16)
        assert data, buf[-200:]
        buf += decompress(data) if decompress else data
    return buf


def test_long_fetch_is_sent_while_it_is_made_plain_and_compressed(make_postern):
    """A FETCH whose response is far larger than what the server holds before writing (256 KiB) arrives whole
    and in order, the same as plain text and after COMPRESS DEFLATE (RFC 4978), and the session goes on."""
    import socket
    import zlib
    n = 1500
    port, _p, _paths = postern_with_files(make_postern, [message(i).replace(b"\r\n", b"\n") for i in range(n)])

    def session(compress):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        _read_until(s, b"*")
        s.sendall(b"a LOGIN alice@example.test " + PASSWORD.encode() + b"\r\nb SELECT INBOX\r\n")
        assert b"\r\nb OK" in _read_until(s, b"b")
        send, recv = s.sendall, None
        if compress:
            s.sendall(b"c COMPRESS DEFLATE\r\n")
            assert _read_until(s, b"c").startswith(b"c OK")
            comp, decomp = zlib.compressobj(wbits=-15), zlib.decompressobj(wbits=-15)
            send = lambda b: s.sendall(comp.compress(b) + comp.flush(zlib.Z_SYNC_FLUSH))  # noqa: E731
            recv = decomp.decompress
        send(b"d UID FETCH 1:* " + ITEMS.encode() + b"\r\n")
        fetched = _read_until(s, b"d", recv)
        assert fetched.endswith(b"\r\nd OK Fetch completed.\r\n"), fetched[-200:]
        send(b"e NOOP\r\n")
        assert _read_until(s, b"e", recv).startswith(b"e OK")
        send(b"f LOGOUT\r\n")
        assert b"\r\nf OK" in _read_until(s, b"f", recv)
        s.close()
        return fetched

    plain = session(False)  # cold: computed as it is sent
    assert len(plain) > 3 * 256 * 1024  # drained several times
    lines = plain.split(b"\r\n")
    assert [int(re.search(rb"UID (\d+)", x).group(1)) for x in lines if x.startswith(b"* ")] == list(range(1, n + 1))
    assert session(True) == plain  # warm, compressed
