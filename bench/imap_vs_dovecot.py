#!/usr/bin/python3
"""Postern vs Dovecot 2.3: IMAP side by side, on the same messages, in one run (see bench/README.md).

Both servers run at the same time on free loopback ports, each in its own cgroup (CPU seconds of all its
processes), each with the same user alice@example.test / "demo-password" and its own Maildir.  The tests
alternate between the servers phase by phase, so a slow phase of a shared machine hits both:

  1. APPEND N messages over one connection, one at a time; then again into another folder, pipelined with
     LITERAL+ (when both announce it)
  2. SELECT + UID FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE RFC822.SIZE): cold (both servers stopped, their
     cache/index files deleted, started again) and warm
  3. SEARCH TEXT "<word>" over the mailbox (twice)
  4. STORE +FLAGS (\\Seen) on 1,000 messages (5 times, -FLAGS and +FLAGS in turn: the median counts);
     STORE +FLAGS (\\Deleted) on 1,000 others + EXPUNGE
  5. memory per idle connection: N connections logged in, INBOX selected, in IDLE
  6. mixed workload: M clients loop over login, select, fetch 20 headers, flag one, search, logout

Python 3 standard library only; run as root (the Dovecot instance is started the way the tests start it).
"""

import argparse
import asyncio
import os
import pwd
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "scripts"))
import dovecot_private  # noqa: E402
import smtp_vs_postfix as sb  # noqa: E402  (cgroups, cleanup, quiet-machine wait)

log = sb.log
BenchError = sb.BenchError
DOMAIN = dovecot_private.DOMAIN
PASSWORD = dovecot_private.PASSWORD
USER = f"alice@{DOMAIN}"
BIG_USER = f"bob@{DOMAIN}"
SEARCH_WORD = "quokka"  # in about 1% of the bodies
STORE_REPS = 5  # the STORE +FLAGS test is run this many times; the median counts
QUOTA = 20 << 30  # both servers account quota (Postern mailbox_size_limit, Dovecot's quota plugin), never hit
LIT = re.compile(rb"\{(\d+)\+?\}\r\n$")
STALL = 60.0  # seconds without any byte from the server after which a test counts as failed (--stall-timeout)


# ------------------------------------------------------------------------------------------------ corpus

WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which but "
         "have an they you were her she there been one all we their has would when if so no will more about "
         "meeting budget report quarter project release deadline review invoice server network storage "
         "customer contract schedule update draft agenda notes travel office lunch coffee holiday weekend "
         "monday friday morning evening question answer please thanks regards attached document spreadsheet "
         "presentation figures numbers estimate approval manager team colleague partner supplier delivery "
         "shipment warehouse order payment account balance transfer receipt summary decision proposal "
         "feedback issue ticket support backup migration database cluster latency throughput capacity "
         "garden river mountain forest city harbour station airport bridge museum library market kitchen").split()
NAMES = ("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Donald Knuth", "Barbara Liskov",
         "Ken Thompson", "Dennis Ritchie", "Margaret Hamilton", "John McCarthy", "Frances Allen",
         "Leslie Lamport", "Niklaus Wirth", "Radia Perlman", "Tim Berners-Lee", "Vint Cerf", "Bjarne Stroustrup",
         "Guido van Rossum", "Linus Torvalds", "Katherine Johnson", "Hedy Lamarr", "Claude Shannon",
         "Fran Bilas", "Jean Bartik", "Kathleen Booth", "Sophie Wilson", "Anita Borg", "Carol Shaw",
         "Adele Goldberg", "Lynn Conway")
SEARCH_NAMES = ("Lovelace", "Turing", "Hopper", "Knuth", "Liskov", "Lamport", "Perlman", "Shannon")
BASE_TIME = 1704067200  # 2024-01-01 00:00:00 UTC


def _addr(name):
    return f"{name} <{name.split()[-1].lower()}@corp.example>"


def _para(rng, words):
    out, line = [], []
    for _ in range(words):
        line.append(rng.choice(WORDS))
        if len(line) >= 12:
            out.append(" ".join(line))
            line = []
    if line:
        out.append(" ".join(line))
    return "\n".join(out)


def _body_text(rng, size, word):
    paras = []
    total = 0
    while total < size:
        p = _para(rng, rng.randint(30, 120))
        paras.append(p)
        total += len(p) + 2
    if word:
        i = rng.randrange(len(paras))
        paras[i] = paras[i] + f" {word} sighting"
    return "\n\n".join(paras) + "\n"


def make_message(i, rng):
    """One message (bytes, LF line ends): plain text, multipart/alternative or multipart/mixed with an
    attachment, 2-20 KiB (log-uniform)."""
    size = int(2048 * (10 ** rng.random()))  # 2 KiB .. 20 KiB
    word = SEARCH_WORD if rng.random() < 0.01 else None
    sender, to = rng.choice(NAMES), rng.choice(NAMES)
    t = time.gmtime(BASE_TIME + i * 97)
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", t)
    subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))).capitalize()
    kind = rng.random()
    hdr = (f"Return-Path: <{sender.split()[-1].lower()}@corp.example>\n"
           f"Received: from mx.corp.example (mx.corp.example [192.0.2.{i % 250 + 1}])\n"
           f"\tby mail.example.test with ESMTPS id {i:08X}; {date}\n"
           f"From: {_addr(sender)}\nTo: {_addr(to)}\n"
           + (f"Cc: {_addr(rng.choice(NAMES))}, {_addr(rng.choice(NAMES))}\n" if rng.random() < 0.3 else "")
           + f"Subject: {subject}\nDate: {date}\nMessage-ID: <{i}.{rng.getrandbits(32):08x}@corp.example>\n"
           + (f"In-Reply-To: <{max(i - 1, 0)}.0@corp.example>\n" if rng.random() < 0.3 else "")
           + "MIME-Version: 1.0\n")
    if kind < 0.5:
        body = _body_text(rng, size - len(hdr), word)
        return (hdr + "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
                + body).encode()
    b = f"=_bench_{i}_{rng.getrandbits(24):06x}"
    if kind < 0.8:
        text = _body_text(rng, (size - len(hdr)) * 2 // 5, word)
        html = "<html><body>\n" + "".join(f"<p>{p}</p>\n" for p in text.split("\n\n")) + "</body></html>\n"
        return (hdr + f'Content-Type: multipart/alternative; boundary="{b}"\n\nThis is a MIME message.\n\n'
                f"--{b}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{text}\n"
                f"--{b}\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{html}\n"
                f"--{b}--\n").encode()
    import base64
    text = _body_text(rng, min(1500, size // 4), word)
    att_len = max(256, (size - len(hdr) - len(text)) * 3 // 4)
    data = base64.encodebytes(rng.randbytes(att_len)).decode()
    name = rng.choice(("report.pdf", "figures.xlsx", "photo.jpg", "notes.odt", "archive.zip"))
    ctype = {"pdf": "application/pdf", "xlsx": "application/vnd.ms-excel", "jpg": "image/jpeg",
             "odt": "application/vnd.oasis.opendocument.text", "zip": "application/zip"}[name.rsplit(".", 1)[1]]
    return (hdr + f'Content-Type: multipart/mixed; boundary="{b}"\n\nThis is a MIME message.\n\n'
            f"--{b}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{text}\n"
            f'--{b}\nContent-Type: {ctype}; name="{name}"\nContent-Disposition: attachment; filename="{name}"\n'
            f"Content-Transfer-Encoding: base64\n\n{data}\n--{b}--\n").encode()


def corpus(n, seed):
    rng = random.Random(seed)
    return [make_message(i, rng) for i in range(n)]


def write_maildir(maildir, messages, uid, gid, start=0):
    """Puts the messages into maildir/cur/ as files (LF line ends), the way a local delivery leaves them."""
    cur = os.path.join(maildir, "cur")
    for i, m in enumerate(messages, start):
        name = f"{BASE_TIME + i}.M{i}P4242.bench,S={len(m)}:2,"
        p = os.path.join(cur, name)
        with open(p, "wb") as f:
            f.write(m)
        os.utime(p, (BASE_TIME + i * 97, BASE_TIME + i * 97))
        os.chown(p, uid, gid)


def make_maildir(path, uid, gid):
    """path = .../DOMAIN/USER: the Maildir (cur, new, tmp) and its domain directory, owned by the mail user."""
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), mode=0o700, exist_ok=True)
        os.chown(os.path.join(path, sub), uid, gid)
    os.chown(path, uid, gid)
    os.chown(os.path.dirname(path), uid, gid)


def mail_ids():
    """uid, gid that own the Maildirs: what Dovecot (scripts/dovecot_private.py) and Postern use as root."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    for name in ("postern", "dovecot"):
        try:
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            pass
    raise BenchError("no postern or dovecot user to own the Maildirs")


# ------------------------------------------------------------------------------------------------ servers

def wait_greeting(port, prefix, timeout, alive):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(5)
                if s.recv(512).startswith(prefix):
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


class PosternServer:
    name = "Postern"

    def __init__(self, binary, root, connections):
        self.binary = binary
        self.root = root
        self.dir = os.path.join(root, "etc")
        os.makedirs(self.dir, mode=0o755)
        os.chmod(root, 0o755)
        self.port, self.pop3_port, smtp = sb.free_port(), sb.free_port(), sb.free_port()
        self.mail = os.path.join(root, "mail")
        self.group = sb.ProcGroup("postern")
        self.proc = None
        self.logf = None
        self.log_path = os.path.join(root, "postern.log")
        with open(os.path.join(self.dir, "main.cf"), "w") as f:
            f.write(f"""# written by bench/imap_vs_dovecot.py
smtp_listen = 127.0.0.1:{smtp}
submission_listen =
submissions_listen =
imap_listen = 127.0.0.1:{self.port}
imaps_listen =
pop3_listen = 127.0.0.1:{self.pop3_port}
pop3s_listen =
disable_plaintext_auth = no
myhostname = mail.{DOMAIN}
queue_directory = {root}/queue
alias_maps =
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_base = {self.mail}
mailbox_size_limit = {QUOTA}
imap_connection_limit = {connections + 100}
mail_max_userip_connections = {connections + 100}
login_client_connection_count_limit = {connections + 100}
""")
        for u in (USER, BIG_USER):
            r = subprocess.run([binary, "-c", self.dir, "user", "add", u, "--password-stdin"],
                               input=(PASSWORD + "\n").encode(), capture_output=True)
            if r.returncode != 0:
                raise BenchError(f"postern user add failed: {r.stderr.decode(errors='replace').strip()}")
        os.makedirs(self.mail, mode=0o755, exist_ok=True)
        uid, gid = mail_ids()
        os.chown(self.mail, uid, gid)
        for u in (USER, BIG_USER):
            make_maildir(self.maildir(u), uid, gid)

    def maildir(self, user=USER):
        local, domain = user.split("@")
        return os.path.join(self.mail, domain, local)

    def start(self):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "-c", self.dir, "serve"], stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=subprocess.STDOUT, preexec_fn=self.group.preexec)
        self.group.root_pid = self.proc.pid
        for port, pre in ((self.port, b"* OK"), (self.pop3_port, b"+OK")):
            if not wait_greeting(port, pre, 20, lambda: self.proc.poll() is None):
                raise BenchError(f"Postern did not greet on 127.0.0.1:{port} (exit={self.proc.poll()}):\n"
                                 f"{sb.tail(self.log_path)}")

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                log("Postern did not stop on SIGTERM within 30 s; killing it")
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        self.proc = None

    def drop_index(self, user=USER):
        gone = []
        for root, _dirs, files in os.walk(self.maildir(user)):
            for n in files:
                if n == "postern-index":
                    os.unlink(os.path.join(root, n))
                    gone.append(n)
        return gone

    def problems(self):
        return grep_log(self.log_path, ("fatal", "panic", "error", "warning", "abort", "sanitizer"),
                        ("has no effect yet",))

    def describe(self):
        return f"{self.binary}"


def sha512_crypt(password):
    """"{SHA512-CRYPT}" + a crypt(3) SHA-512 hash of `password` with a random salt and the default 5,000 rounds."""
    r = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password + "\n", capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.startswith("$6$"):
        raise BenchError(f"openssl passwd -6 failed: {r.stderr.strip()}")
    return "{SHA512-CRYPT}" + r.stdout.strip()


class DovecotServer(dovecot_private.DovecotPrivate):
    """scripts/dovecot_private.py's private Dovecot (same passwd-file users, quota plugin, namespaces), with
    limits raised for many connections, started inside its own cgroup."""
    name = "Dovecot"

    def __init__(self, root, connections):
        os.makedirs(root, mode=0o755)
        n = connections + 100
        extra = f"""
# added by bench/imap_vs_dovecot.py: room for {connections} simultaneous logged-in connections
mail_max_userip_connections = {n}
default_process_limit = {n + 100}
default_client_limit = {2 * n + 1000}
service auth {{
  client_limit = {6 * n + 1000}
}}
service anvil {{
  client_limit = {6 * n + 1000}
}}
service imap {{
  process_limit = {n}
}}
service pop3 {{
  process_limit = {n}
}}
service imap-login {{
  service_count = 0
  process_min_avail = {os.cpu_count() or 2}
  client_limit = {n}
}}
service pop3-login {{
  service_count = 0
  process_min_avail = 1
  client_limit = {n}
}}
plugin {{
  quota_rule = *:storage={QUOTA >> 10}K
}}
"""
        super().__init__(root=root, extra_config=extra)
        # The passwords as PosternServer's `postern user add` stores them ({SHA512-CRYPT}, 5,000 rounds), not
        # scripts/dovecot_private.py's {PLAIN}: both servers run the same crypt(3) at each login.
        hashed = sha512_crypt(PASSWORD)
        with open(self.users, "w") as f:
            for u in dovecot_private.USERS:
                f.write(f"{u}:{hashed}::::::\n")
        self.own_root = False
        self.group = sb.ProcGroup("dovecot")
        self.log_path_ = self.log_path
        self.binary = dovecot_private.DOVECOT
        for u in (USER, BIG_USER):
            make_maildir(self.maildir(u), self.uid, self.gid)

    def start(self, timeout=30.0):
        self.logf = open(os.path.join(self.root, "master.out"), "ab")
        self.proc = subprocess.Popen([dovecot_private.DOVECOT, "-F", "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=subprocess.STDOUT, preexec_fn=self.group.preexec)
        self.group.root_pid = self.proc.pid
        for port, pre in ((self.port, b"* OK"), (self.pop3_port, b"+OK")):
            if not wait_greeting(port, pre, timeout, lambda: self.proc.poll() is None):
                out = self.output()
                self.stop()
                raise BenchError(f"Dovecot did not greet on 127.0.0.1:{port}:\n{out}")
        return self

    def maildir(self, user=USER):
        return super().maildir(user)

    def drop_index(self, user=USER):
        gone = []
        for root, _dirs, files in os.walk(self.maildir(user)):
            for n in files:
                if n.startswith("dovecot.index") or n == "dovecot.list.index" or n.startswith("dovecot.list.index."):
                    os.unlink(os.path.join(root, n))
                    gone.append(n)
        return gone

    def problems(self):
        return grep_log(self.log_path, ("fatal", "panic", "error", "warning"), ("killed with signal 15",))

    def describe(self):
        v = subprocess.run([dovecot_private.DOVECOT, "--version"], capture_output=True, text=True).stdout.strip()
        return f"Dovecot {v} (Debian package), scripts/dovecot_private.py configuration"


def grep_log(path, words, ignore):
    """Log lines with one of `words`, one per kind (timestamps, pids and numbers masked) with its count."""
    kinds = {}
    try:
        with open(path, errors="replace") as f:
            for line in f:
                low = line.lower()
                if any(w in low for w in words) and not any(w in low for w in ignore):
                    key = re.sub(r"\d+", "N", re.sub(r"^\w{3} +\d+ [\d:]+ |<[^>]*>", "", line.strip()))[:160]
                    if key not in kinds:
                        kinds[key] = [line.rstrip(), 0]
                    kinds[key][1] += 1
    except OSError:
        pass
    return [f"{first} ({n} such lines)" if n > 1 else first for first, n in kinds.values()]


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return need
        except (ValueError, OSError):
            pass
    new = hard if hard == resource.RLIM_INFINITY or hard >= need else hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ------------------------------------------------------------------------------------------------ clients

class Imap:
    """A blocking raw IMAP client for the big single-connection tests (fast: no per-line imaplib overhead)."""

    def __init__(self, port, timeout=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout or STALL)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0
        self.n = 0
        self.greeting = self.line()

    def _more(self):
        d = self.sock.recv(1 << 20)
        if not d:
            raise EOFError("connection closed by the server")
        if self.pos > (1 << 20):
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += d

    def line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                out = bytes(self.buf[self.pos:i + 2])
                self.pos = i + 2
                return out
            self._more()

    def exact(self, n):
        while len(self.buf) - self.pos < n:
            self._more()
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return out

    def response(self):
        ln = self.line()
        if not ln.endswith(b"}\r\n") or ln.startswith(b"+ "):
            return ln
        parts = [ln]
        while parts[-1].endswith(b"}\r\n"):
            m = LIT.search(parts[-1])
            if not m:
                break
            parts.append(self.exact(int(m.group(1))))
            parts.append(self.line())
        return b"".join(parts)

    def tag(self):
        self.n += 1
        return f"T{self.n}"

    def cmd(self, text, keep=True):
        """-> (status, tagged line, untagged responses (when keep), number of untagged responses)"""
        tag = self.tag()
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        return self.wait(tag, keep)

    def wait(self, tag, keep=True):
        t = tag.encode() + b" "
        untagged, n = [], 0
        while True:
            r = self.response()
            if r.startswith(t):
                return r.split(b" ", 2)[1].decode(), r.decode(errors="replace").strip(), untagged, n
            n += 1
            if keep:
                untagged.append(r)

    def ok(self, text, keep=True):
        st, line, untagged, n = self.cmd(text, keep)
        if st != "OK":
            raise BenchError(f"{text[:60]!r}: {line}")
        return untagged, n

    def login(self, user=USER):
        self.ok(f'LOGIN "{user}" "{PASSWORD}"')

    def select(self, box="INBOX"):
        untagged, _ = self.ok(f"SELECT {box}")
        return exists_of(untagged)

    def close(self):
        try:
            self.sock.sendall(b"Z LOGOUT\r\n")
            self.sock.settimeout(10)
            while self.sock.recv(65536):
                pass
        except OSError:
            pass
        self.sock.close()


def exists_of(untagged):
    for r in untagged:
        m = re.match(rb"\* (\d+) EXISTS", r)
        if m:
            return int(m.group(1))
    return None


class AImap:
    """asyncio IMAP client for the many-connection tests."""

    @classmethod
    async def open(cls, port):
        self = cls()
        self.r, self.w = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        self.n = 0
        self.greeting = await self.r.readline()
        if not self.greeting.startswith(b"* OK"):
            raise BenchError(f"greeting {self.greeting!r}")
        return self

    async def response(self):
        ln = await self.r.readline()
        if not ln:
            raise EOFError("connection closed by the server")
        while ln.endswith(b"}\r\n") and not ln.startswith(b"+ "):
            m = LIT.search(ln)
            if not m:
                break
            ln += await self.r.readexactly(int(m.group(1)))
            ln += await self.r.readline()
        return ln

    async def cmd(self, text):
        self.n += 1
        tag = f"a{self.n}".encode()
        self.w.write(tag + b" " + text.encode() + b"\r\n")
        untagged = []
        while True:
            r = await self.response()
            if r.startswith(tag + b" "):
                st = r.split(b" ", 2)[1].decode()
                if st != "OK":
                    raise BenchError(f"{text[:60]!r}: {r[:200]!r}")
                return untagged
            untagged.append(r)

    def close(self):
        try:
            self.w.close()
        except Exception:
            pass


# ------------------------------------------------------------------------------------------------ measuring

class Result(dict):
    pass


def measure(srv, fn):
    """Runs fn() (the client side of one test) and returns its result with wall time, the server's CPU
    seconds (its cgroup), this client's CPU seconds, the other processes' CPUs and the server's memory."""
    c0 = srv.group.cpu_seconds()
    b0 = sb.sys_busy_seconds()
    s0, k0 = sb.own_cpu_seconds()
    t0 = time.perf_counter()
    out = fn() or {}
    t = time.perf_counter() - t0
    cpu = srv.group.cpu_seconds() - c0
    s1, k1 = sb.own_cpu_seconds()
    client = (s1 - s0) + (k1 - k0)
    busy = sb.sys_busy_seconds() - b0
    rss, pss = srv.group.mem_sample()
    r = Result(time=t, cpu=cpu, client=client, others=max(0.0, busy - cpu - client) / max(t, 1e-9),
               rss=rss, pss=pss)
    r.update(out)
    return r


def quiet(args):
    if args.quiet_wait > 0:
        sb.wait_quiet(args.quiet_wait, args.quiet_threshold, max_writes=200)


def append_all(port, messages, pipelined, box="INBOX"):
    c = Imap(port)
    c.login()
    if box != "INBOX":
        c.cmd(f"CREATE {box}")
    if pipelined:
        err = []

        def writer():
            try:
                chunk = []
                size = 0
                for i, m in enumerate(messages):
                    chunk.append(b"A%d APPEND %s {%d+}\r\n" % (i, box.encode(), len(m)))
                    chunk.append(m)
                    chunk.append(b"\r\n")
                    size += len(m)
                    if size > (256 << 10):
                        c.sock.sendall(b"".join(chunk))
                        chunk, size = [], 0
                if chunk:
                    c.sock.sendall(b"".join(chunk))
            except OSError as e:
                err.append(e)

        th = threading.Thread(target=writer, daemon=True)
        th.start()
        done = bad = 0
        first_bad = None
        while done < len(messages):
            try:
                r = c.response()
            except socket.timeout:
                raise BenchError(f"pipelined APPEND stalled: no reply for {STALL:g} s after {done} of "
                                 f"{len(messages)} APPENDs were answered") from None
            if r.startswith(b"A"):
                done += 1
                if r.split(b" ", 2)[1] != b"OK":
                    bad += 1
                    first_bad = first_bad or r.decode(errors="replace").strip()
            elif r.startswith(b"* BYE"):
                raise BenchError(f"server closed the connection during APPEND: {r!r}")
        th.join()
        if err:
            raise BenchError(f"APPEND writer: {err[0]}")
        if bad:
            raise BenchError(f"{bad} APPENDs failed, first: {first_bad}")
    else:
        for m in messages:
            tag = c.tag()
            c.sock.sendall(f"{tag} APPEND {box} {{{len(m)}}}\r\n".encode())
            ln = c.line()
            if not ln.startswith(b"+"):
                raise BenchError(f"APPEND: {ln!r}")
            c.sock.sendall(m + b"\r\n")
            st, line, _u, _n = c.wait(tag, keep=False)
            if st != "OK":
                raise BenchError(f"APPEND: {line}")
    c.close()
    return {"count": len(messages)}


FETCH_ITEMS = "(FLAGS ENVELOPE BODYSTRUCTURE RFC822.SIZE)"


def select_fetch(port, user=USER):
    c = Imap(port)
    c.login(user)
    exists = c.select()
    _u, n = c.ok(f"UID FETCH 1:* {FETCH_ITEMS}", keep=False)
    c.close()
    return {"count": n, "exists": exists}


def search_text(port, word):
    c = Imap(port)
    c.login()
    c.select()
    untagged, _ = c.ok(f'SEARCH TEXT "{word}"')
    c.close()
    hits = sum(len(r.split()) - 2 for r in untagged if r.startswith(b"* SEARCH"))
    return {"count": hits}


def spread(exists, count, offset):
    step = max(1, exists // count)
    seqs = list(range(1 + offset, exists + 1, step))[:count]
    return seqs


def seqset(nums):
    nums = sorted(nums)
    out, i = [], 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(str(nums[i]) if i == j else f"{nums[i]}:{nums[j]}")
        i = j + 1
    return ",".join(out)


def uids_of(c):
    untagged, _ = c.ok("UID SEARCH ALL")
    uids = []
    for r in untagged:
        if r.startswith(b"* SEARCH"):
            uids += [int(x) for x in r.split()[2:]]
    return sorted(uids)


def store_seen(port, count, sign="+"):
    c = Imap(port)
    c.login()
    exists = c.select()
    uids = uids_of(c)
    pick = [uids[i - 1] for i in spread(exists, count, 0)]
    t0 = time.perf_counter()
    _u, n = c.ok(f"UID STORE {seqset(pick)} {sign}FLAGS (\\Seen)", keep=False)
    t = time.perf_counter() - t0
    c.close()
    return {"count": len(pick), "cmd_time": t}


def expunge(port, count):
    c = Imap(port)
    c.login()
    exists = c.select()
    uids = uids_of(c)
    pick = [uids[i - 1] for i in spread(exists, count, 1)]
    t0 = time.perf_counter()
    c.ok(f"UID STORE {seqset(pick)} +FLAGS.SILENT (\\Deleted)", keep=False)
    untagged, n = c.ok("EXPUNGE")
    t = time.perf_counter() - t0
    left = c.select()
    c.close()
    gone = sum(1 for r in untagged if r.endswith(b" EXPUNGE\r\n"))
    return {"count": gone, "left": left, "cmd_time": t}


# ---- many idle connections

async def _open_idle(port, n, concurrency):
    sem = asyncio.Semaphore(concurrency)
    conns, errors = [], []

    async def one():
        async with sem:
            try:
                c = await AImap.open(port)
                await c.cmd(f'LOGIN "{USER}" "{PASSWORD}"')
                await c.cmd("SELECT INBOX")
                c.w.write(b"i IDLE\r\n")
                ln = await asyncio.wait_for(c.r.readline(), 60)
                if not ln.startswith(b"+"):
                    raise BenchError(f"IDLE: {ln!r}")
                conns.append(c)
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors.append(repr(e))

    await asyncio.gather(*(one() for _ in range(n)))
    return conns, errors


async def _close_idle(conns):
    for c in conns:
        try:
            c.w.write(b"DONE\r\nz LOGOUT\r\n")
        except Exception:
            pass
    await asyncio.sleep(0.5)
    for c in conns:
        c.close()
    await asyncio.sleep(0.2)


def idle_memory(srv, n, concurrency=100, settle=3.0):
    """Memory of n logged-in connections in IDLE: (sum of PSS now - before) / n, and the same for RSS."""
    c = Imap(srv.port)  # one session first: whatever the server loads once per mailbox is in the baseline
    c.login()
    c.select()
    c.close()
    time.sleep(1.0)
    rss0, pss0 = srv.group.mem_sample()
    procs0 = len(srv.group.pids())

    async def run():
        t0 = time.perf_counter()
        conns, errors = await _open_idle(srv.port, n, concurrency)
        t_open = time.perf_counter() - t0
        await asyncio.sleep(settle)
        samples = []
        for _ in range(3):
            samples.append(srv.group.mem_sample())
            await asyncio.sleep(0.5)
        procs = len(srv.group.pids())
        await _close_idle(conns)
        return conns, errors, t_open, samples, procs

    conns, errors, t_open, samples, procs = asyncio.run(run())
    rss1 = max(s[0] for s in samples)
    pss1 = max(s[1] for s in samples)
    ok = len(conns)
    # let the server wind the sessions down (Dovecot: one imap process per connection exits)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(srv.group.pids()) > procs0 + 2:
        time.sleep(0.5)
    return {"count": ok, "errors": errors, "open_time": t_open, "rss0": rss0, "pss0": pss0, "rss1": rss1,
            "pss1": pss1, "procs0": procs0, "procs1": procs,
            "pss_per": (pss1 - pss0) / ok if ok else 0, "rss_per": (rss1 - rss0) / ok if ok else 0}


# ---- mixed workload

def mixed(port, clients, seconds, seed):
    async def session(rng, lat):
        t0 = time.perf_counter()
        c = await AImap.open(port)
        try:
            await c.cmd(f'LOGIN "{USER}" "{PASSWORD}"')
            exists = exists_of(await c.cmd("SELECT INBOX")) or 0
            if exists:
                seqs = rng.sample(range(1, exists + 1), min(20, exists))
                await c.cmd(f"FETCH {seqset(seqs)} (UID FLAGS BODY.PEEK[HEADER])")
                await c.cmd(f"STORE {rng.randint(1, exists)} +FLAGS (\\Flagged)")
            await c.cmd(f'SEARCH FROM "{rng.choice(SEARCH_NAMES)}"')
            await c.cmd("LOGOUT")
        finally:
            c.close()
        lat.append(time.perf_counter() - t0)

    async def client(i, deadline, lat, errors):
        rng = random.Random(seed * 1000 + i)
        while time.perf_counter() < deadline:
            try:
                await session(rng, lat)
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors.append(repr(e))
                await asyncio.sleep(0.05)

    async def run():
        lat, errors = [], []
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(client(i, deadline, lat, errors) for i in range(clients)))
        return lat, errors

    t0 = time.perf_counter()
    lat, errors = asyncio.run(run())
    t = time.perf_counter() - t0
    lat.sort()

    def pct(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else 0

    return {"count": len(lat), "errors": errors, "rate": len(lat) / t, "p50": pct(0.5), "p95": pct(0.95)}


# ------------------------------------------------------------------------------------------------ report

def fmt_t(s):
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def kib(b):
    return f"{b / 1024:.0f} KiB"


def mib(b):
    return f"{b / 1048576:.1f} MiB"


def print_table(title, meta, rows, notes, problems):
    """rows: (test, postern cell, dovecot cell, ratio, postern cpu, dovecot cpu, postern mem, dovecot mem)"""
    w = sys.stdout.write
    w(f"\n### {title}\n\n")
    for k, v in meta:
        w(f"- {k}: {v}\n")
    hdr = ("test", "Postern", "Dovecot", "ratio D/P", "Postern CPU s", "Dovecot CPU s", "Postern mem",
           "Dovecot mem")
    w("\n| " + " | ".join(hdr) + " |\n|" + "|".join("---" if i == 0 else "---:" for i in range(len(hdr))) + "|\n")
    for r in rows:
        w("| " + " | ".join(r) + " |\n")
    w("\n")
    for n in notes:
        w(f"{n}\n")
    if problems:
        w("\nProblems seen:\n\n")
        for p in problems:
            w(f"- {p}\n")
    sys.stdout.flush()


def cell_time(r, unit="msg"):
    if r is None:
        return "-"
    if r.get("failed"):
        return "FAILED"
    s = fmt_t(r["time"])
    if r.get("count") and unit:
        s += f" ({r['count'] / r['time']:.0f} {unit}/s)"
    return s


def ratio_time(a, b):
    if not a or not b or a.get("failed") or b.get("failed") or a["time"] <= 0:
        return "-"
    return f"{b['time'] / a['time']:.2f}x"


def cpu_cell(r):
    return "-" if not r or r.get("failed") else f"{r['cpu']:.2f}"


def mem_cell(r):
    return "-" if not r or r.get("failed") else mib(r["pss"])


def run_phase(args, servers, title, fn, problems, results, key):
    """Runs fn(srv) for each server, Postern and Dovecot alternating who goes first."""
    order = list(servers)
    if len(results) % 2:
        order.reverse()
    results[key] = {}
    for srv in order:
        quiet(args)
        log(f"{srv.name}: {title} ...")
        try:
            r = measure(srv, lambda: fn(srv))
        except (BenchError, OSError, EOFError) as e:
            log(f"  {srv.name} FAILED: {e}")
            problems.append(f"{srv.name}, {title}: {e}")
            r = Result(failed=True, error=str(e))
        else:
            log(f"  {fmt_t(r['time'])}, server CPU {r['cpu']:.2f} s, client CPU {r['client']:.2f} s, "
                f"others {r['others']:.2f} CPUs" + (f", count {r['count']}" if "count" in r else ""))
            if r["others"] > 0.3:
                problems.append(f"{srv.name}, {title}: other processes used {r['others']:.2f} CPUs meanwhile")
            for e in r.get("errors", [])[:3]:
                problems.append(f"{srv.name}, {title}: client error {e}")
        results[key][srv.name] = r
    return results[key]


def median_result(rs):
    """The run of median time among rs (the results of one test repeated), or a failed one."""
    failed = [r for r in rs if r.get("failed")]
    if failed:
        return failed[0]
    return sorted(rs, key=lambda r: r["time"])[len(rs) // 2]


def check_same(results, key, field, title, problems):
    vals = {n: r.get(field) for n, r in results.get(key, {}).items() if not r.get("failed")}
    if len(set(vals.values())) > 1:
        problems.append(f"{title}: the servers disagree on {field}: {vals}")


def restart(servers, drop=False, user=USER, drop_caches=False):
    for s in servers:
        s.stop()
    gone = {}
    if drop:
        for s in servers:
            gone[s.name] = s.drop_index(user)
    if drop_caches:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    for s in servers:
        s.start()
    return gone


def setup(args, prefix):
    """Common start: limits, signals, work directory, the two servers (not started). -> (work, servers, meta)"""
    if os.geteuid() != 0:
        sys.exit("run as root (the private Dovecot and Postern drop to their mail users)")
    reason = dovecot_private.available()
    if reason and "dovecot" in args.servers:
        sys.exit(reason)
    if "postern" in args.servers and not os.access(args.postern, os.X_OK):
        sys.exit(f"{args.postern} not found: cmake --build build --target postern")
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, sb._terminate)
    want = getattr(args, "connections", 0) * 2 + 1000
    got = raise_nofile(want)
    if got < getattr(args, "connections", 0) + 200:
        log(f"WARNING: open files limit {got} is below what {args.connections} connections need")
    work = tempfile.mkdtemp(prefix=prefix, dir=args.tmpdir)
    os.chmod(work, 0o755)
    if args.keep:
        sb.on_cleanup(lambda: log(f"kept {work}"))
    else:
        sb.on_cleanup(lambda: shutil.rmtree(work, ignore_errors=True))
    conns = getattr(args, "connections", 100)
    servers = []
    if "postern" in args.servers:
        binary = os.path.join(work, "postern")
        shutil.copy2(args.postern, binary)  # a rebuild of build/ during the run cannot change what is measured
        servers.append(PosternServer(binary, os.path.join(work, "postern-srv"), conns))
    if "dovecot" in args.servers:
        servers.append(DovecotServer(os.path.join(work, "dovecot-srv"), conns))
    for s in servers:
        sb.on_cleanup(s.stop)
    rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "src"], capture_output=True,
                           text=True)
    meta = []
    for s in servers:
        if s.name == "Postern":
            meta.append(("Postern", f"{args.postern} (git {rev.stdout.strip() or '?'}"
                         f"{', src/ has local changes' if dirty.stdout.strip() else ''}, binary from "
                         f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(os.stat(args.postern).st_mtime))})"))
        else:
            meta.append(("Dovecot", s.describe()))
    fs, dev, mnt = sb.fstype_of(os.path.realpath(work))
    meta.append(("machine", f"{os.cpu_count()} CPUs, load average "
                            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at start; {work} on {fs}"))
    meta.append(("CPU accounting", servers[0].group.describe() if servers else "-"))
    return work, servers, meta


def common_args(ap):
    ap.add_argument("-n", "--messages", type=int, default=10000, help="messages in the mailbox (default 10000)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the generated corpus")
    ap.add_argument("--servers", default="postern,dovecot", help="postern,dovecot (default both)")
    ap.add_argument("--postern", default=os.environ.get("POSTERN_BIN", os.path.join(REPO, "build", "postern")))
    ap.add_argument("--tmpdir", default=os.environ.get("BENCH_TMPDIR", "/var/tmp"))
    ap.add_argument("--quiet-wait", type=float, default=30,
                    help="before each measurement wait up to this many seconds for an idle machine (0: don't)")
    ap.add_argument("--quiet-threshold", type=float, default=0.3)
    ap.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs, mail)")
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke test (< 60 s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_args(ap)
    ap.add_argument("--connections", type=int, default=None, help="idle connections (default 1000, --big 10000)")
    ap.add_argument("--clients", type=int, default=50, help="concurrent clients of the mixed workload")
    ap.add_argument("--seconds", type=float, default=30, help="duration of the mixed workload")
    ap.add_argument("--store", type=int, default=1000, help="messages flagged, and expunged (default 1000)")
    ap.add_argument("--big", action="store_true",
                    help="also 100,000 messages (written into cur/) for the cold/warm FETCH; 10,000 connections")
    ap.add_argument("--big-messages", type=int, default=100000)
    ap.add_argument("--sync-append", action="store_true", help="skip the pipelined (LITERAL+) APPEND test")
    ap.add_argument("--stall-timeout", type=float, default=60,
                    help="a test fails when the server sends nothing for this many seconds")
    ap.add_argument("--drop-caches", action="store_true",
                    help="also drop the kernel's page cache before the cold FETCH (affects the whole machine)")
    args = ap.parse_args()
    if args.quick:
        args.messages = min(args.messages, 300)
        args.store = min(args.store, 50)
        args.connections = args.connections or 100
        args.clients = min(args.clients, 10)
        args.seconds = min(args.seconds, 5)
        args.quiet_wait = 0
        args.big_messages = min(args.big_messages, 2000)
    if args.connections is None:
        args.connections = 10000 if args.big else 1000
    args.store = min(args.store, args.messages // 3)
    args.servers = [x.strip().lower() for x in args.servers.split(",") if x.strip()]
    global STALL
    STALL = args.stall_timeout

    work, servers, meta = setup(args, "imap-bench-")
    problems, results = [], {}
    rows = []
    try:
        log(f"generating {args.messages} messages (seed {args.seed})")
        msgs = corpus(args.messages, args.seed)
        crlf = [m.replace(b"\n", b"\r\n") for m in msgs]
        expect_hits = sum(1 for m in msgs if SEARCH_WORD.encode() in m)
        meta.append(("corpus", f"{len(msgs)} messages, seed {args.seed}, {sum(map(len, crlf)) / 1048576:.1f} MiB "
                               f"(CRLF), 2-20 KiB: 50% text/plain, 30% multipart/alternative, 20% multipart/mixed "
                               f"with a base64 attachment; '{SEARCH_WORD}' in {expect_hits} of them"))
        for s in servers:
            s.start()
        caps = {}
        for s in servers:
            c = Imap(s.port)
            st, line, untagged, _ = c.cmd("CAPABILITY")
            caps[s.name] = b" ".join(untagged).upper()
            c.close()
        literal_plus = all(b"LITERAL+" in v for v in caps.values())
        # INBOX, which every later test uses, is filled one APPEND at a time (what imaplib does): robust
        run_phase(args, servers, f"APPEND {len(crlf)}, one at a time",
                  lambda s: append_all(s.port, crlf, False), problems, results, "append")
        if literal_plus and not args.sync_append:
            # then the same messages once more into another folder, every APPEND sent without waiting
            run_phase(args, servers, f"APPEND {len(crlf)}, pipelined (LITERAL+)",
                      lambda s: append_all(s.port, crlf, True, "Pipelined"), problems, results, "append_pipe")
        log("stopping both servers, deleting their cache/index files (Postern postern-index, Dovecot "
            "dovecot.index*), starting them again")
        gone = restart(servers, drop=True, drop_caches=args.drop_caches)
        for n, files in gone.items():
            log(f"  {n}: deleted {', '.join(sorted(set(files))) or 'nothing'}")
        run_phase(args, servers, "SELECT + UID FETCH 1:* cold", lambda s: select_fetch(s.port), problems, results,
                  "fetch_cold")
        run_phase(args, servers, "SELECT + UID FETCH 1:* warm", lambda s: select_fetch(s.port), problems, results,
                  "fetch_warm")
        check_same(results, "fetch_cold", "count", "FETCH cold", problems)
        run_phase(args, servers, f'SEARCH TEXT "{SEARCH_WORD}"', lambda s: search_text(s.port, SEARCH_WORD),
                  problems, results, "search1")
        run_phase(args, servers, f'SEARCH TEXT "{SEARCH_WORD}" again', lambda s: search_text(s.port, SEARCH_WORD),
                  problems, results, "search2")
        for k in ("search1", "search2"):
            for n, r in results[k].items():
                if not r.get("failed") and r["count"] != expect_hits:
                    problems.append(f"{n}: SEARCH TEXT found {r['count']} messages, {expect_hits} contain the word")
        # A STORE takes some 20-50 ms, as long as a hiccup of this machine: the median of a few counts. They
        # set and clear \Seen in turn, so that each changes every message; the last one sets it.
        reps = []
        for k in range(STORE_REPS):
            sign = "-" if k % 2 else "+"
            reps.append(run_phase(args, servers, f"STORE {sign}FLAGS (\\Seen) on {args.store} ({k + 1}/{STORE_REPS})",
                                  lambda s, sign=sign: store_seen(s.port, args.store, sign), problems, results,
                                  f"store{k + 1}"))
        results["store"] = {name: median_result([r[name] for r in reps]) for name in reps[0]}
        run_phase(args, servers, f"STORE \\Deleted + EXPUNGE of {args.store}", lambda s: expunge(s.port, args.store),
                  problems, results, "expunge")
        check_same(results, "expunge", "left", "EXPUNGE", problems)
        log("restarting both servers (fresh memory for the idle-connection test)")
        restart(servers)
        run_phase(args, servers, f"{args.connections} idle connections",
                  lambda s: idle_memory(s, args.connections), problems, results, "idle")
        run_phase(args, servers, f"mixed workload, {args.clients} clients, {args.seconds:g} s",
                  lambda s: mixed(s.port, args.clients, args.seconds, args.seed), problems, results, "mixed")
        if args.big:
            log(f"--big: generating {args.big_messages} messages, writing them into {BIG_USER}'s cur/ of each")
            big = corpus(args.big_messages, args.seed + 1)
            for s in servers:
                s.stop()
            for s in servers:
                uid, gid = mail_ids()
                write_maildir(s.maildir(BIG_USER), big, uid, gid)
            del big
            # Written back to the disk now, not during the cold FETCH that follows: the kernel's write-back of
            # these files took a core from whichever server came first (with a short --quiet-wait).
            os.sync()
            for s in servers:
                s.start()
            run_phase(args, servers, f"SELECT + UID FETCH 1:* cold, {args.big_messages} messages",
                      lambda s: select_fetch(s.port, BIG_USER), problems, results, "big_cold")
            run_phase(args, servers, f"SELECT + UID FETCH 1:* warm, {args.big_messages} messages",
                      lambda s: select_fetch(s.port, BIG_USER), problems, results, "big_warm")
    except KeyboardInterrupt as e:
        log(f"interrupted ({str(e) or 'Ctrl-C'})")
        problems.append("interrupted")
    except BenchError as e:
        log(f"error: {e}")
        problems.append(f"benchmark error: {e}")
    finally:
        for s in servers:
            try:
                s.stop()
            except Exception as e:  # noqa: BLE001
                log(f"stop {s.name}: {e}")
        for s in servers:
            for p in s.problems()[:5]:
                problems.append(f"{s.name} log: {p[:300]}")
            n = len(s.problems())
            if n > 5:
                problems.append(f"{s.name} log: ... {n - 5} more such lines")
        sb.run_cleanups()

    def get(key, name):
        return results.get(key, {}).get(name)

    def row(label, key, unit="msg"):
        a, b = get(key, "Postern"), get(key, "Dovecot")
        if a is None and b is None:
            return
        rows.append([label, cell_time(a, unit), cell_time(b, unit), ratio_time(a, b), cpu_cell(a), cpu_cell(b),
                     mem_cell(a), mem_cell(b)])

    row(f"APPEND {args.messages} msgs, 1 connection, one at a time (synchronizing literal)", "append")
    row(f"APPEND {args.messages} msgs, 1 connection, pipelined with LITERAL+ (other folder)", "append_pipe")
    row(f"SELECT + UID FETCH 1:* {FETCH_ITEMS}, cold (index deleted)", "fetch_cold")
    row("... same, warm", "fetch_warm")
    row(f'SEARCH TEXT "{SEARCH_WORD}"', "search1", None)
    row(f'SEARCH TEXT "{SEARCH_WORD}" again', "search2", None)
    row(f"STORE +FLAGS / -FLAGS (\\Seen), {args.store} msgs (login+select+UID SEARCH ALL+STORE), median of "
        f"{STORE_REPS}", "store")
    row(f"STORE +FLAGS (\\Deleted) + EXPUNGE, {args.store} msgs", "expunge")
    a, b = get("idle", "Postern"), get("idle", "Dovecot")
    if a or b:
        def idle_cell(r):
            if not r or r.get("failed"):
                return "-"
            return f"{kib(r['pss_per'])}/conn PSS ({kib(r['rss_per'])} RSS), {r['count']} conns"
        ratio = "-"
        if a and b and not a.get("failed") and not b.get("failed") and a["pss_per"] > 0:
            ratio = f"{b['pss_per'] / a['pss_per']:.2f}x"
        rows.append([f"{args.connections} idle connections (LOGIN, SELECT, IDLE): memory per connection",
                     idle_cell(a), idle_cell(b), ratio, cpu_cell(a), cpu_cell(b),
                     "-" if not a or a.get("failed") else mib(a["pss1"]),
                     "-" if not b or b.get("failed") else mib(b["pss1"])])
        def open_cell(r):
            if not r or r.get("failed"):
                return "-"
            return f"{fmt_t(r['open_time'])} ({r['count'] / r['open_time']:.0f} conn/s)"
        ratio = "-"
        if a and b and not a.get("failed") and not b.get("failed"):
            ratio = f"{b['open_time'] / a['open_time']:.2f}x"
        rows.append([f"... time to open them (100 at a time)", open_cell(a), open_cell(b), ratio, "", "", "", ""])
    a, b = get("mixed", "Postern"), get("mixed", "Dovecot")
    if a or b:
        def mixed_cell(r):
            if not r or r.get("failed"):
                return "-"
            return (f"{r['rate']:.1f} sessions/s ({r['rate'] * 6:.0f} cmds/s), p50 {fmt_t(r['p50'])}, "
                    f"p95 {fmt_t(r['p95'])}")
        ratio = "-"
        if a and b and not a.get("failed") and not b.get("failed") and b["rate"] > 0:
            ratio = f"{a['rate'] / b['rate']:.2f}x"
        rows.append([f"mixed: {args.clients} clients x {args.seconds:g} s (LOGIN, SELECT, FETCH 20 headers, "
                     f"STORE, SEARCH FROM, LOGOUT)", mixed_cell(a), mixed_cell(b), ratio, cpu_cell(a), cpu_cell(b),
                     mem_cell(a), mem_cell(b)])
    if args.big:
        row(f"SELECT + UID FETCH 1:*, {args.big_messages} msgs written into cur/, cold", "big_cold")
        row("... same, warm", "big_warm")
    client_cpu = {n: sum(r.get("client", 0) for k in results for n2, r in results[k].items() if n2 == n)
                  for n in ("Postern", "Dovecot")}
    notes = [
        "Times are wall-clock seconds of the client (Python, on the same 2 CPUs), from its connect to the last "
        "reply; rates in (..) are items per second.",
        "ratio D/P = Dovecot time / Postern time (> 1: Postern is faster); for memory, Dovecot / Postern (> 1: "
        "Postern uses less); for the mixed workload, Postern sessions/s / Dovecot sessions/s.",
        "CPU s = user+system CPU seconds of all processes of the server during the test (its own cgroup); "
        "mem = sum of PSS over the server's processes at the end of the test.",
        "Idle connections: (sum of PSS over all server processes with N connections in IDLE - the same before) "
        "/ N; Dovecot runs one imap process per connection (its default client_limit = 1).",
        f"Client CPU over all tests: against Postern {client_cpu['Postern']:.1f} s, against Dovecot "
        f"{client_cpu['Dovecot']:.1f} s.",
    ]
    print_table("IMAP: Postern vs Dovecot", meta, rows, notes, problems)
    failed = any(r.get("failed") for k in results for r in results[k].values())
    sys.exit(2 if failed or "interrupted" in problems else 0)


if __name__ == "__main__":
    main()
