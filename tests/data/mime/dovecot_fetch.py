#!/usr/bin/env python3
"""tests/data/mime/dovecot_fetch.py [--golden OUT] FILE...: starts a private Dovecot 2.3
(scripts/dovecot_private.py), puts each FILE as it is (LF line ends, as Postern stores mail) into the
Maildir INBOX of one of its users and prints, as JSON, what Dovecot answers to FETCH ENVELOPE,
BODYSTRUCTURE, BODY, RFC822.SIZE and BODY[...] / BINARY[...] for the message and each of its parts.
With --golden, writes OUT in the format src/imap/proto/message_view_test.cpp reads instead:

  @ FILE ITEM            then either
  = N                    followed by the N bytes Dovecot sent (a literal's or quoted string's content)
  # N HASH               for long values: their size and FNV-1a 64 hash (hex)
  !                      Dovecot answered NO [UNKNOWN-CTE] (BINARY)

Answers NO [PARSE] (BINARY of invalid base64 / quoted-printable, which Postern decodes leniently) and
BINARY.SIZE (which Dovecot refuses for every part once one part cannot be decoded) are left out.
Regenerate with: python3 tests/data/mime/dovecot_fetch.py --golden tests/data/mime/dovecot.golden \
tests/data/mime/*.eml"""
import json, os, re, shutil, socket, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts"))
from dovecot_private import DOMAIN, PASSWORD, DovecotPrivate  # noqa: E402

def read_response(f, tag):
    out = b""
    while True:
        line = f.readline()
        if not line:
            raise RuntimeError("eof")
        out += line
        m = re.search(rb"~?\{(\d+)\}\r\n$", line)
        if m:
            out += f.read(int(m.group(1)))
            continue
        if line.startswith(tag + b" "):
            return out

class Imap:
    def __init__(self, port, user):
        self.port, self.user = port, user
        self.connect()

    def connect(self):
        self.s = socket.create_connection(("127.0.0.1", self.port))
        self.f = self.s.makefile("rb")
        self.f.readline()
        self.n = 0
        self.cmd(b"LOGIN %s %s" % (self.user.encode(), PASSWORD.encode()))
        self.cmd(b"SELECT INBOX")
    def cmd(self, c):
        self.n += 1
        tag = b"a%d" % self.n
        self.s.sendall(tag + b" " + c + b"\r\n")
        return read_response(self.f, tag)

def fetch_item(imap, uid, item, name=None):
    try:
        r = imap.cmd(b"UID FETCH %d (%s)" % (uid, item.encode()))
    except (RuntimeError, OSError):  # Dovecot's imap process died on this message
        imap.connect()
        return {"error": "disconnected"}
    name = (name or item).encode()
    m = re.match(rb"\* \d+ FETCH \((.*)\)\r\n[^\r\n]*OK[^\r\n]*\r\n$", r, re.S)
    if not m:
        return {"error": r.decode("latin-1")}
    body = m.group(1)
    # strip "UID n " and the item name
    body = re.sub(rb"^UID \d+ ", b"", body)
    body = re.sub(rb" UID \d+$", b"", body)
    if not body.upper().startswith(name.upper() + b" "):
        return {"error": r.decode("latin-1")}
    value = body[len(name) + 1:]
    if name.startswith((b"BODY[", b"BINARY[")):
        m = re.match(rb"~?\{(\d+)\}\r\n", value)
        if m:
            value = value[m.end():]
            assert len(value) == int(m.group(1))
        elif value == b'""':
            value = b""
        else:
            return {"raw": value.decode("latin-1")}
    return value.decode("latin-1")

def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h

def write_golden(result, out):
    with open(out, "wb") as f:
        f.write(b"# Dovecot 2.3.19 FETCH answers for tests/data/mime/*.eml; made by tests/data/mime/dovecot_fetch.py\n")
        for fn in sorted(result):
            for item in sorted(result[fn]):
                if item.startswith("BINARY.SIZE"):
                    continue
                v = result[fn][item]
                if isinstance(v, dict):
                    if "UNKNOWN-CTE" in v.get("error", ""):
                        f.write(b"@ %s %s\n!\n" % (fn.encode(), item.encode()))
                    continue  # NO [PARSE]: Postern decodes leniently
                data = v.encode("latin-1")
                f.write(b"@ %s %s\n" % (fn.encode(), item.encode()))
                if len(data) > 300:
                    f.write(b"# %d %016x\n" % (len(data), fnv1a64(data)))
                else:
                    f.write(b"= %d\n%s\n" % (len(data), data))

def main():
    golden = None
    if len(sys.argv) > 2 and sys.argv[1] == "--golden":
        golden = sys.argv[2]
        del sys.argv[1:3]
    files = sys.argv[1:]
    with DovecotPrivate() as d:
        user = "alice"
        box = os.path.join(d.mail, DOMAIN, user)
        shutil.rmtree(box, ignore_errors=True)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(box, sub))
        for i, fn in enumerate(files):
            shutil.copy(fn, os.path.join(box, "cur", "%d.M1P1.test:2," % (1000 + i)))
        for dirpath, dirnames, filenames in os.walk(os.path.join(d.mail, DOMAIN)):
            for name in [dirpath] + [os.path.join(dirpath, f) for f in filenames]:
                os.chown(name, d.uid, d.gid)
        imap = Imap(d.port, "%s@%s" % (user, DOMAIN))
        result = fetch_all(imap, files)
    if golden:
        write_golden(result, golden)
    else:
        json.dump(result, sys.stdout, indent=1, sort_keys=True)

def fetch_all(imap, files):
    result = {}
    for i, fn in enumerate(files):
        uid = i + 1
        items = {}
        for it in ["ENVELOPE", "BODYSTRUCTURE", "BODY", "RFC822.SIZE"]:
            items[it] = fetch_item(imap, uid, it)
        for sec in sections_for(items["BODYSTRUCTURE"]):
            items[sec] = fetch_item(imap, uid, sec.replace("BODY[", "BODY.PEEK[").replace("BINARY[", "BINARY.PEEK["), sec)
        result[os.path.basename(fn)] = items
    return result

def parse_list(s, i):
    """Parses an IMAP list at s[i] == '('; returns (python list, next index). Strings as str, NIL None."""
    assert s[i] == "("
    i += 1
    out = []
    while True:
        while s[i] == " ":
            i += 1
        c = s[i]
        if c == ")":
            return out, i + 1
        if c == "(":
            v, i = parse_list(s, i)
        elif c == '"':
            j = i + 1; v = ""
            while s[j] != '"':
                if s[j] == "\\":
                    j += 1
                v += s[j]; j += 1
            i = j + 1
        elif c == "{":
            j = s.index("}", i); n = int(s[i + 1:j]); v = s[j + 3:j + 3 + n]; i = j + 3 + n
        else:
            j = i
            while s[j] not in " )":
                j += 1
            v = s[i:j]; i = j
            v = None if v == "NIL" else v
        out.append(v)

def walk(bs, path, out):
    """Appends part paths of a body structure list."""
    if isinstance(bs[0], list):  # multipart
        n = 0
        for child in bs:
            if not isinstance(child, list):
                break
            n += 1
            walk(child, path + [n], out)
    else:
        out.append(path)
        if str(bs[0]).lower() == "message" and str(bs[1]).lower() in ("rfc822", "global") and len(bs) > 8 and isinstance(bs[8], list):
            out.append(path + ["msg"])
            walk(bs[8], path, out)

def sections_for(bodystructure):
    if not isinstance(bodystructure, str):
        return []
    bs, _ = parse_list(bodystructure, 0)
    paths = []
    walk(bs, [], paths)
    secs = ["BODY[]", "BODY[HEADER]", "BODY[TEXT]", "BODY[HEADER.FIELDS (From Subject)]",
            "BODY[HEADER.FIELDS.NOT (From Subject Received)]", "BODY[1]", "BINARY[]", "BINARY[1]", "BINARY.SIZE[1]"]
    seen = set()
    for p in paths:
        if not p or p[-1] == "msg":
            continue
        ps = ".".join(str(x) for x in p)
        for suf in ["", ".MIME", ".HEADER", ".TEXT", ".HEADER.FIELDS (Content-Type)"]:
            secs.append("BODY[%s%s]" % (ps, suf))
        secs.append("BINARY[%s]" % ps)
        secs.append("BINARY.SIZE[%s]" % ps)
    out = []
    for s in secs:
        if s not in seen:
            seen.add(s); out.append(s)
    return out[:80]

if __name__ == "__main__":
    main()
