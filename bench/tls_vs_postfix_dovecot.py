#!/usr/bin/python3
"""Postern vs Postfix + Dovecot: TLS handshakes per second on implicit TLS, and authenticated submissions per
second, side by side in one run on this machine.  See bench/README.md.

1. Handshakes: Postern submissions_listen vs Postfix smtpd in wrapper mode (465-style), Postern imaps_listen vs
   Dovecot imaps (993-style); N concurrent connections each doing connect + TLS handshake + read the greeting +
   close, for a fixed time; full handshakes, and (the *-resume tests) resumptions with the previous
   connection's ticket.
2. Submissions: STARTTLS (or --submit-tls implicit) + AUTH PLAIN + K small messages + QUIT per connection,
   Postern's submission listener vs Postfix smtpd with SASL from Dovecot's auth socket; the user's password is
   the same SHA512-CRYPT line in both passwd-files; mail goes into a Maildir on both sides (fsync'd).

All servers use the same certificate and key (one ECDSA P-256 pair, one RSA-2048 pair, made with openssl req at
the start).  The client is bench/tls_load.c, compiled here at run time (C + OpenSSL, one thread per
connection), and its own CPU is reported.  Run as root; only 127.0.0.1 is used.
"""

import argparse
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "scripts"))
import dovecot_private  # noqa: E402
import smtp_vs_postfix as sb  # noqa: E402  (cgroups, cleanup, quiet-machine wait, the private Postfix)
from postfix_private import master_cf  # noqa: E402

log = sb.log
BenchError = sb.BenchError
DOMAIN = "example.test"
USER = f"alice@{DOMAIN}"
PASSWORD = "bench-password"
HOSTNAME = f"mail.{DOMAIN}"
DISTURBED = 0.3  # CPUs used on average by other processes during a measurement above which it is flagged


# ------------------------------------------------------------------------------------------------ helpers

def make_cert(work, kind):
    """A self-signed certificate for HOSTNAME and its key: kind 'ecdsa' (P-256) or 'rsa' (2048 bits)."""
    key, cert = os.path.join(work, f"{kind}.key"), os.path.join(work, f"{kind}.crt")
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ecdsa" else ["-newkey", "rsa:2048"]
    r = subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-days", "30", "-sha256",
                        "-subj", f"/CN={HOSTNAME}", "-addext", f"subjectAltName=DNS:{HOSTNAME}",
                        "-keyout", key, "-out", cert], capture_output=True)
    if r.returncode != 0:
        raise BenchError(f"openssl req failed: {r.stderr.decode(errors='replace')}")
    os.chmod(key, 0o600)
    os.chmod(cert, 0o644)
    return cert, key


def build_client(work):
    """Compiles bench/tls_load.c into the work directory."""
    out = os.path.join(work, "tls_load")
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise BenchError("no C compiler (cc) to build bench/tls_load.c (Debian: apt-get install gcc libssl-dev)")
    r = subprocess.run([cc, "-O2", "-pthread", "-o", out, os.path.join(HERE, "tls_load.c"), "-lssl", "-lcrypto"],
                       capture_output=True)
    if r.returncode != 0:
        raise BenchError(f"building bench/tls_load.c failed:\n{r.stderr.decode(errors='replace')}")
    return out


def tls_greeting(port, prefix, timeout, alive):
    """True once a TLS client gets `prefix` as the greeting on 127.0.0.1:port (implicit TLS)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
                raw.settimeout(5)
                with ctx.wrap_socket(raw, server_hostname=HOSTNAME) as s:
                    if s.recv(512).startswith(prefix):
                        return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def smtp_capabilities(port, implicit=False):
    """EHLO keywords after TLS (STARTTLS on a submission port, or implicit TLS)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        s = ctx.wrap_socket(raw, server_hostname=HOSTNAME) if implicit else raw
        f = s.makefile("rb")

        def reply():
            lines = []
            while True:
                line = f.readline()
                if not line:
                    raise OSError("connection closed")
                lines.append(line.decode(errors="replace").strip())
                if line[3:4] != b"-":
                    return lines

        reply()
        if not implicit:
            s.sendall(b"EHLO probe.example.test\r\n")
            reply()
            s.sendall(b"STARTTLS\r\n")
            if not reply()[0].startswith("220"):
                return []
            f.close()
            s = ctx.wrap_socket(raw, server_hostname=HOSTNAME)
            f = s.makefile("rb")
        s.sendall(b"EHLO probe.example.test\r\n")
        caps = [line[4:] for line in reply()]
        s.sendall(b"QUIT\r\n")
        return caps


def mail_ids():
    """uid, gid that own Postern's Maildirs: its mail_owner as root (what Dovecot's private config uses too)."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    for name in ("postern", "dovecot"):
        try:
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            pass
    raise BenchError("no postern or dovecot user to own the Maildirs")


def make_maildir(path, uid, gid):
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), mode=0o700, exist_ok=True)
        os.chown(os.path.join(path, sub), uid, gid)
    os.chown(path, uid, gid)
    os.chown(os.path.dirname(path), uid, gid)


def log_problems(path, words, ignore=()):
    """Log lines with one of `words`, one per kind (numbers masked) with its count."""
    kinds = {}
    try:
        with open(path, errors="replace") as f:
            for line in f:
                low = line.lower()
                if any(w in low for w in words) and not any(w in low for w in ignore):
                    key = re.sub(r"\d+", "N", re.sub(r"^\w{3} +\d+ [\d:]+ |<[^>]*>|\[[^]]*\]", "", line.strip()))
                    key = key[:160]
                    kinds.setdefault(key, [line.rstrip(), 0])[1] += 1
    except OSError:
        pass
    return [f"{first} ({n} such lines)" if n > 1 else first for first, n in kinds.values()]


# ------------------------------------------------------------------------------------------------ servers

class Postern:
    name = "Postern"

    def __init__(self, binary, root, cert, key, users_line=None):
        self.binary = binary
        self.dir = os.path.join(root, "etc")
        os.makedirs(self.dir, mode=0o755)
        os.chmod(root, 0o755)
        self.submission, self.submissions, self.imaps = sb.free_port(), sb.free_port(), sb.free_port()
        self.mail = os.path.join(root, "mail")
        self.group = sb.ProcGroup("postern")
        self.proc = None
        self.logf = None
        self.log_path = os.path.join(root, "postern.log")
        with open(os.path.join(self.dir, "main.cf"), "w") as f:
            f.write(f"""# written by bench/tls_vs_postfix_dovecot.py
smtp_listen =
submission_listen = 127.0.0.1:{self.submission}
submissions_listen = 127.0.0.1:{self.submissions}
imap_listen =
imaps_listen = 127.0.0.1:{self.imaps}
pop3_listen =
pop3s_listen =
myhostname = {HOSTNAME}
queue_directory = {root}/queue
alias_maps =
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_base = {self.mail}
mailbox_size_limit = 0
message_size_limit = 0
ssl_cert_file = {cert}
ssl_key_file = {key}
smtpd_client_connection_count_limit = 0
""")
        if users_line:
            with open(os.path.join(self.dir, "users"), "w") as f:
                f.write(users_line + "\n")
        else:
            r = subprocess.run([binary, "-c", self.dir, "user", "add", USER, "--password-stdin"],
                               input=(PASSWORD + "\n").encode(), capture_output=True)
            if r.returncode != 0:
                raise BenchError(f"postern user add failed: {r.stderr.decode(errors='replace').strip()}")
        os.makedirs(self.mail, mode=0o755, exist_ok=True)
        uid, gid = mail_ids()
        os.chown(self.mail, uid, gid)
        make_maildir(self.maildir(), uid, gid)
        self.new = os.path.join(self.maildir(), "new")

    def users_line(self):
        with open(os.path.join(self.dir, "users")) as f:
            return next(line.strip() for line in f if line.startswith(USER + ":"))

    def maildir(self):
        local, domain = USER.split("@")
        return os.path.join(self.mail, domain, local)

    def start(self):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "-c", self.dir, "serve"], stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=subprocess.STDOUT, preexec_fn=self.group.preexec)
        self.group.root_pid = self.proc.pid
        sb.on_cleanup(self.stop)
        alive = lambda: self.proc.poll() is None  # noqa: E731
        for port, prefix in ((self.imaps, b"* OK"), (self.submissions, b"220")):
            if not tls_greeting(port, prefix, 20, alive):
                raise BenchError(f"Postern did not greet over TLS on 127.0.0.1:{port} (exit={self.proc.poll()}):\n"
                                 f"{sb.tail(self.log_path)}")

    def settled(self):
        return True  # Postern answers 250 only once the message is in the Maildir

    def crashed(self):
        if self.proc is not None and self.proc.poll() is not None:
            return f"Postern exited with status {self.proc.returncode}"
        return None

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                log("Postern did not stop on SIGTERM within 20 s; killing it")
                self.group.kill_all()
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        self.group.remove()
        self.proc = None

    def problems(self):
        return log_problems(self.log_path, ("fatal", "panic", "error", "warning", "abort", "sanitizer"),
                            ("has no effect yet",))


class Postfix(sb.Postfix):
    """bench/smtp_vs_postfix.py's private Postfix (Debian's services, no chroot, virtual(8) Maildir delivery with
    Postfix's durability defaults), plus two smtpd services like Debian's master.cf "submission" and
    "submissions" examples: TLS required (wrapper mode on the second), SASL from Dovecot's auth socket."""
    name = "Postfix"

    def __init__(self, root, cert, key):
        super().__init__(root)
        self.submission, self.submissions = sb.free_port(), sb.free_port()
        self.auth_socket = os.path.join(self.queue, "private", "auth")
        mail = os.path.join(self.mail, DOMAIN, USER.split("@")[0])
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(mail, sub), mode=0o700)
        sb.chown_tree(self.mail, sb.NOBODY_UID, sb.NOBODY_UID)
        self.maildir, self.new = mail, os.path.join(mail, "new")
        settings = {
            "myhostname": HOSTNAME,
            "virtual_mailbox_domains": DOMAIN,
            "virtual_mailbox_maps": f"inline:{{ {USER}={DOMAIN}/{USER.split('@')[0]}/ }}",
            # one certificate for every service; TLS sessions resumed with tickets (Postfix's defaults)
            "smtpd_tls_chain_files": f"{key}, {cert}",
            "smtpd_tls_security_level": "may",
            "smtpd_tls_auth_only": "yes",
            # SASL: Dovecot's auth service, the guide's setup
            "smtpd_sasl_type": "dovecot",
            "smtpd_sasl_path": "private/auth",
            "smtpd_sasl_security_options": "noanonymous",
        }
        r = subprocess.run(["postconf", "-c", self.etc, "-e", *(f"{k} = {v}" for k, v in settings.items())],
                           capture_output=True)
        if r.returncode != 0:
            raise BenchError(f"postconf -e failed: {r.stderr.decode(errors='replace')}")
        opts = ("  -o smtpd_sasl_auth_enable=yes\n"
                "  -o smtpd_client_restrictions=\n"
                "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n"
                "  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject\n")
        with open(os.path.join(self.etc, "master.cf"), "a") as f:
            f.write(f"127.0.0.1:{self.submission} inet n - n - - smtpd\n"
                    f"  -o syslog_name=postfix/submission\n  -o smtpd_tls_security_level=encrypt\n{opts}"
                    f"127.0.0.1:{self.submissions} inet n - n - - smtpd\n"
                    f"  -o syslog_name=postfix/submissions\n  -o smtpd_tls_wrappermode=yes\n"
                    f"  -o smtpd_tls_security_level=encrypt\n{opts}")

    def wait_tls(self):
        """After Dovecot is up: an smtpd with SASL enabled exits when the auth socket is missing."""
        alive = lambda: True  # noqa: E731
        if not tls_greeting(self.submissions, b"220", 20, alive):
            raise BenchError(f"Postfix did not greet over TLS on 127.0.0.1:{self.submissions}:\n"
                             f"{sb.tail(self.maillog)}")

    def problems(self):
        return log_problems(self.maillog, (" fatal:", " panic:", " error:", " warning:", "status=deferred",
                                           "status=bounced"))


class Dovecot(dovecot_private.DovecotPrivate):
    """scripts/dovecot_private.py's private Dovecot with imaps (ssl = required, the same certificate), login
    processes in Dovecot's high-performance mode, and its auth service listening for Postfix's smtpd."""
    name = "Dovecot"

    def __init__(self, root, cert, key, users_line, postfix_auth_socket):
        os.makedirs(root, mode=0o755)
        self.imaps = sb.free_port()
        n = 300
        extra = f"""
# added by bench/tls_vs_postfix_dovecot.py
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
default_process_limit = {n}
default_client_limit = {4 * n}
service imap-login {{
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.imaps}
  }}
  service_count = 0
  process_min_avail = {os.cpu_count() or 2}
  client_limit = {n}
}}
service auth {{
  unix_listener {postfix_auth_socket} {{
    mode = 0660
    user = postfix
    group = postfix
  }}
  client_limit = {4 * n}
}}
service anvil {{
  client_limit = {4 * n}
}}
"""
        super().__init__(root=root, extra_config=extra)
        self.own_root = False
        with open(self.users, "w") as f:  # the same SHA512-CRYPT line as Postern's passwd-file
            f.write(users_line + "\n")
        self.group = sb.ProcGroup("dovecot")

    def start(self, timeout=30.0):
        self.logf = open(os.path.join(self.root, "master.out"), "ab")
        self.proc = subprocess.Popen([dovecot_private.DOVECOT, "-F", "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=subprocess.STDOUT, preexec_fn=self.group.preexec)
        self.group.root_pid = self.proc.pid
        sb.on_cleanup(self.stop_all)
        if not tls_greeting(self.imaps, b"* OK", timeout, lambda: self.proc.poll() is None):
            raise BenchError(f"Dovecot did not greet over TLS on 127.0.0.1:{self.imaps}:\n{self.output()}")
        return self

    def stop_all(self):
        if self.proc is not None:
            self.stop()
        self.group.remove()

    def problems(self):
        return log_problems(self.log_path, ("fatal", "panic", "error", "warning"), ("killed with signal 15",))


# ------------------------------------------------------------------------------------------------ measuring

class DovecotAlive:
    """settled()/crashed() for a Dovecot side (nothing pending after a handshake)."""

    def __init__(self, d):
        self.d = d

    def settled(self):
        return True

    def crashed(self):
        if self.d.proc is not None and self.d.proc.poll() is not None:
            return f"Dovecot exited with status {self.d.proc.returncode}"
        return None


def parse_client(out):
    m = dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
    for k in ("ops", "msgs", "errors", "handshakes", "resumed"):
        m[k] = int(m.get(k, 0))
    for k in ("elapsed", "utime", "stime", "p50", "p99"):
        m[k] = float(m.get(k, 0))
    return m


def run_client(client, argv, seconds):
    p = subprocess.Popen([client, *argv, "--seconds", str(seconds)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sb.on_cleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
    try:
        out, err = p.communicate(timeout=seconds + 120)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise BenchError(f"tls_load did not finish: {err[-500:]}")
    if p.returncode != 0:
        raise BenchError(f"tls_load exited {p.returncode}: {err[-500:]}")
    return parse_client(out), err.strip()


def measure(args, client, side, argv, seconds):
    """One measurement of one side: a short warm-up, then `seconds` of load.  side: dict with name, groups
    (ProcGroups whose CPU counts), servers (for settled/crashed), new (Maildir new/ or None)."""
    warm = min(1.0, max(0.3, seconds / 5))
    run_client(client, argv, warm)  # server processes forked, caches warm; not counted
    for srv in side["servers"]:
        deadline = time.monotonic() + 60
        while not srv.settled() and time.monotonic() < deadline:
            time.sleep(0.05)
    if args.quiet_wait > 0:
        sb.wait_quiet(args.quiet_wait, args.quiet_threshold)  # also: the disk settled (fsync-bound submissions)
    n0 = sb.count_files(side["new"]) if side["new"] else 0
    cpu0 = [g.cpu_seconds() for g in side["groups"]]
    busy0, (self0, _k0) = sb.sys_busy_seconds(), sb.own_cpu_seconds()
    t0 = time.monotonic()
    res, err = run_client(client, argv, seconds)
    t_end = time.monotonic()
    notes = []
    if side["new"]:
        # Postfix delivers after its 250: the clock stops when the last accepted message is in new/
        deadline = time.monotonic() + 60
        while sb.count_files(side["new"]) < n0 + res["msgs"] and time.monotonic() < deadline:
            time.sleep(0.01)
        t_end = max(t_end, time.monotonic())
        got = sb.count_files(side["new"]) - n0
        if got != res["msgs"]:
            notes.append(f"{got} message files in new/ for {res['msgs']} accepted")
        for srv in side["servers"]:
            deadline = time.monotonic() + 60
            while not srv.settled() and time.monotonic() < deadline:
                time.sleep(0.05)
    cpu = sum(g.cpu_seconds() - c for g, c in zip(side["groups"], cpu0))
    busy1, (self1, _k1) = sb.sys_busy_seconds(), sb.own_cpu_seconds()
    window = time.monotonic() - t0
    client_cpu = res["utime"] + res["stime"]
    others = max(0.0, (busy1 - busy0) - cpu - client_cpu - (self1 - self0)) / window
    elapsed = max(t_end - t0, 1e-9) if side["new"] else res["elapsed"]
    count = res["msgs"] if side["new"] else res["ops"]
    res.update(cpu=cpu, client_cpu=client_cpu, others=others, count=count, rate=count / elapsed,
               busy=(busy1 - busy0) / window, wall=elapsed, window=window)
    if res["errors"]:
        notes.append(f"{res['errors']} failed operations" + (f": {err.splitlines()[0]}" if err else ""))
    ncpu = os.cpu_count() or 1
    if res["busy"] >= 0.9 * ncpu and client_cpu >= cpu:
        notes.append(f"the machine's CPUs were saturated and the client used as much CPU as the server or more "
                     f"({client_cpu / window:.2f} vs {cpu / window:.2f} CPUs): the client limits this rate too")
    if others > DISTURBED:
        notes.append(f"other processes used {others:.2f} CPUs meanwhile (disturbed)")
    for srv in side["servers"]:
        c = srv.crashed()
        if c:
            notes.append(c)
    res["notes"] = notes
    return res


def cell(args, test, k, c, postern, postfix, dovecot, postern_auth):
    """What one table row measures: (label, tls_load arguments without --port, the two sides, reference name).
    A side: port, groups (ProcGroups whose CPU counts), servers (settled()/crashed()), new (the Maildir's new/
    whose files are counted, or None), skip."""
    def side(port, groups, servers, new=None, skip=False):
        return dict(port=port, groups=groups, servers=servers, new=new, skip=skip)

    if test == "submit":
        implicit = args.submit_tls == "implicit"
        argv = ["--mode", "submit", "--tls", args.submit_tls, "--user", USER, "--password", PASSWORD,
                "--from", USER, "--to", USER, "--messages", str(k), "--size", str(args.size)]
        sides = {"postern": side(postern.submissions if implicit else postern.submission, [postern.group],
                                 [postern], postern.new, skip=not postern_auth),
                 "ref": side(postfix.submissions if implicit else postfix.submission, [postfix.group, dovecot.group],
                             [postfix, DovecotAlive(dovecot)], postfix.new)}
        label, refname = f"submit {args.submit_tls} x{k} msg", "Postfix+Dovecot auth"
    else:
        proto = "smtp" if test.startswith("smtps") else "imap"
        label = f"{proto}s handshake" + (" resumed" if test.endswith("resume") else " full")
        argv = ["--mode", "handshake", "--proto", proto] + (["--resume"] if test.endswith("resume") else [])
        if proto == "smtp":
            sides = {"postern": side(postern.submissions, [postern.group], [postern]),
                     "ref": side(postfix.submissions, [postfix.group], [postfix])}
            refname = "Postfix"
        else:
            sides = {"postern": side(postern.imaps, [postern.group], [postern]),
                     "ref": side(dovecot.imaps, [dovecot.group], [DovecotAlive(dovecot)])}
            refname = "Dovecot"
    return label, argv + ["--concurrency", str(c), "--sni", HOSTNAME], sides, refname


# ------------------------------------------------------------------------------------------------ report

def fmt_rate(r):
    if r is None:
        return "-"
    return f"{r['rate']:.0f}" + (" ERR" if r["errors"] and not r["count"] else "")


def fmt_ms(cpu, n):
    return f"{1000 * cpu / n:.2f}" if n else "-"


def print_report(meta, rows, problems, ncpu):
    w = sys.stdout.write
    w("\nPostern vs Postfix + Dovecot: TLS handshakes and authenticated submissions, 127.0.0.1\n")
    for k, v in meta:
        w(f"  {k}: {v}\n")
    w("\n")
    hdr = ["key", "test", "conc", "Postern/s", "ref/s", "ratio", "Postern CPU ms/op", "ref CPU ms/op",
           "p50 ms P|R", "server CPUs P|R", "client CPUs P|R", "busy P|R", "resumed P|R", "reference"]
    out = []
    for row in rows:
        a, b = row["postern"], row["ref"]
        ratio = f"{a['rate'] / b['rate']:.2f}x" if a and b and b["rate"] > 0 else "-"
        lat = "|".join(f"{1000 * r['p50']:.1f}" if r else "-" for r in (a, b))
        sc = "|".join(f"{r['cpu'] / r['window']:.2f}" if r else "-" for r in (a, b))
        cc = "|".join(f"{r['client_cpu'] / r['wall']:.2f}" if r else "-" for r in (a, b))
        busy = "|".join(f"{100 * r['busy'] / ncpu:.0f}%" if r else "-" for r in (a, b))
        res = "|".join(f"{100 * r['resumed'] / r['handshakes']:.0f}%" if r and r["handshakes"] else "-"
                       for r in (a, b))
        out.append([row["key"], row["test"], str(row["conc"]), fmt_rate(a), fmt_rate(b), ratio,
                    fmt_ms(a["cpu"], a["count"]) if a else "-", fmt_ms(b["cpu"], b["count"]) if b else "-",
                    lat, sc, cc, busy, res, row["refname"]])
    widths = [max(len(h), *(len(r[i]) for r in out)) if out else len(h) for i, h in enumerate(hdr)]
    line = "  ".join(h.rjust(widths[i]) for i, h in enumerate(hdr))
    w(line + "\n" + "-" * len(line) + "\n")
    for r in out:
        w("  ".join(c.rjust(widths[i]) for i, c in enumerate(r)) + "\n")
    w("\n"
      "Postern/s, ref/s: handshakes (connect + TLS handshake + greeting + close) or messages (accepted and in the\n"
      "  Maildir's new/) per second; ratio = Postern / reference.\n"
      "CPU ms/op: CPU time (user + system) of all the server's processes per handshake or message; the reference\n"
      "  is Postfix (all its processes) + Dovecot (auth) for SMTP, Dovecot for IMAP.\n"
      "server CPUs: the server's CPU time / wall time (1.00 = one CPU busy all the time).\n"
      "client CPUs: CPUs used by the load generator (bench/tls_load.c, getrusage) during the run; busy: the whole\n"
      f"  machine's CPU use ({ncpu} CPUs = 100%).  Near 100% busy the machine, not one server, is the limit: the\n"
      "  client competes with the server for the same CPUs; then compare CPU ms/op rather than the rates.\n"
      "p50: median time of one connection as the client saw it (connect to close).\n"
      "resumed: share of handshakes that resumed the previous connection's TLS session (ticket).\n")
    notes = [(row, side, n) for row in rows for side in ("postern", "ref") if row[side] for n in row[side]["notes"]]
    if notes or problems:
        w("\nProblems seen:\n")
        for row, side, n in notes:
            w(f"  {row['key']} {row['test']} x{row['conc']} {'Postern' if side == 'postern' else row['refname']}: "
              f"{n}\n")
        for p in problems:
            w(f"  {p}\n")
    sys.stdout.flush()


def machine_info(args, work):
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        pass
    meta = [("machine", f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, load average "
                        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at start"),
            ("OpenSSL", subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip())]
    rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    meta.append(("Postern", f"{args.postern} (git {rev.stdout.strip() or '?'}, binary from "
                 f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(os.stat(args.postern).st_mtime))})"))
    v = subprocess.run(["postconf", "-h", "-d", "mail_version"], capture_output=True, text=True).stdout.strip()
    meta.append(("Postfix", f"{v} (Debian), private instance; smtpd per connection (max_use 100), TLS session "
                            "tickets on (defaults); virtual(8) Maildir delivery"))
    v = subprocess.run([dovecot_private.DOVECOT, "--version"], capture_output=True, text=True).stdout.strip()
    meta.append(("Dovecot", f"{v} (Debian), private instance; imap-login in high-performance mode "
                            "(service_count = 0, process_min_avail = CPUs); auth from a passwd-file, no auth cache"))
    g = sb.ProcGroup("probe")
    meta.append(("CPU accounting", g.describe()))
    g.remove()
    meta.append(("client", f"bench/tls_load.c (C, OpenSSL, one thread per connection), {args.seconds:g} s per "
                           "measurement after a short warm-up"))
    meta.append(("work directory", f"{work} ({sb.fstype_of(os.path.realpath(work))[0]})"))
    return meta


# ------------------------------------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10, help="length of each measurement (default 10)")
    ap.add_argument("--concurrency", default="1,16,64", help="concurrent connections, comma-separated")
    ap.add_argument("--keys", default="ecdsa,rsa", help="certificate key types: ecdsa (P-256), rsa (2048)")
    ap.add_argument("--tests", default="smtps,imaps,smtps-resume,imaps-resume,submit",
                    help="which tests: smtps, imaps (handshakes), *-resume (with session resumption), submit")
    ap.add_argument("--messages", default="1,10", help="messages per submission connection, comma-separated")
    ap.add_argument("--size", type=int, default=1024, help="body size of the submitted messages (bytes)")
    ap.add_argument("--submit-tls", choices=("starttls", "implicit"), default="starttls",
                    help="submission over port-587 style STARTTLS (default) or 465 style implicit TLS")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 2 s per measurement, concurrency 1,16, ECDSA only, 1 and 5 messages")
    ap.add_argument("--postern", default=os.environ.get("POSTERN_BIN", os.path.join(REPO, "build", "postern")),
                    help="the postern binary (copied into the work directory)")
    ap.add_argument("--tmpdir", default="/var/tmp", help="where the work directory goes (a disk, not tmpfs)")
    ap.add_argument("--quiet-wait", type=float, default=30,
                    help="before each measurement wait up to this many seconds for an idle machine (0: don't)")
    ap.add_argument("--quiet-threshold", type=float, default=0.3, help="'idle': at most this many CPUs busy")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs, Maildirs)")
    args = ap.parse_args()
    if args.quick:
        args.seconds = min(args.seconds, 2)
        if args.concurrency == ap.get_default("concurrency"):
            args.concurrency = "1,16"
        if args.keys == ap.get_default("keys"):
            args.keys = "ecdsa"
        if args.messages == ap.get_default("messages"):
            args.messages = "1,5"
        if args.quiet_wait == ap.get_default("quiet_wait"):
            args.quiet_wait = 5
    conc = [int(x) for x in args.concurrency.split(",") if x]
    keys = [x.strip() for x in args.keys.split(",") if x.strip()]
    tests = [x.strip() for x in args.tests.split(",") if x.strip()]
    per_conn = [int(x) for x in args.messages.split(",") if x]
    if os.geteuid() != 0:
        sys.exit("run as root (Postfix and Dovecot need it)")
    for tool in ("postfix", "postconf", "openssl", dovecot_private.DOVECOT):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (Debian: apt-get install postfix dovecot-imapd openssl)")
    if not os.access(args.postern, os.X_OK):
        sys.exit(f"{args.postern} not found: build it first (cmake --build build --target postern)")
    bad = [k for k in keys if k not in ("ecdsa", "rsa")] + \
        [t for t in tests if t not in ("smtps", "imaps", "smtps-resume", "imaps-resume", "submit")]
    if bad:
        sys.exit(f"unknown: {', '.join(bad)}")

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (nohup, &)
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, sb._terminate)
    work = tempfile.mkdtemp(prefix="postern-tls-bench-", dir=args.tmpdir)
    os.chmod(work, 0o755)
    sb.on_cleanup((lambda: log(f"kept {work}")) if args.keep else (lambda: shutil.rmtree(work, ignore_errors=True)))

    rows, problems = [], []
    meta = []
    try:
        meta = machine_info(args, work)
        client = build_client(work)
        postern_bin = os.path.join(work, "postern")
        shutil.copy2(args.postern, postern_bin)  # a rebuild of build/ during the run cannot change it
        seq = 0
        for key in keys:
            cert, keyfile = make_cert(work, key)
            base = os.path.join(work, key)
            log(f"{key}: starting Postern, Postfix and Dovecot with the same {key} certificate")
            postern = Postern(postern_bin, os.path.join(base, "postern"), cert, keyfile)
            postfix = Postfix(os.path.join(base, "postfix"), cert, keyfile)
            dovecot = Dovecot(os.path.join(base, "dovecot"), cert, keyfile, postern.users_line(), postfix.auth_socket)
            postern.start()
            postfix.start()  # before Dovecot: Dovecot's auth socket goes into Postfix's queue_directory/private
            dovecot.start()
            postfix.wait_tls()
            postern_auth = "submit" in tests and any(
                c.upper().startswith("AUTH") for c in smtp_capabilities(
                    postern.submissions if args.submit_tls == "implicit" else postern.submission,
                    implicit=args.submit_tls == "implicit"))
            if "submit" in tests and not postern_auth:
                problems.append(f"{key}: this Postern build offers no AUTH on its submission listener (SMTP AUTH "
                                "not on this branch yet?): Postern's submission cells are skipped")
            plan = [(t, k) for t in tests for k in (per_conn if t == "submit" else [None])]
            for test, k in plan:
                for c in conc:
                    label, common, sides, refname = cell(args, test, k, c, postern, postfix, dovecot,
                                                         postern_auth)
                    row = {"key": key, "test": label, "conc": c, "refname": refname, "postern": None, "ref": None}
                    rows.append(row)
                    order = ["postern", "ref"] if seq % 2 == 0 else ["ref", "postern"]
                    seq += 1
                    for name in order:
                        side = sides[name]
                        if side["skip"]:
                            continue
                        side["name"] = "Postern" if name == "postern" else refname
                        log(f"{key} {label}, {c} connection(s): {side['name']} ...")
                        r = measure(args, client, side, common + ["--port", str(side["port"])], args.seconds)
                        row[name] = r
                        log(f"  {r['count']} in {r['wall']:.2f} s = {r['rate']:.0f}/s, server CPU "
                            f"{1000 * r['cpu'] / max(r['count'], 1):.2f} ms/op, client {r['client_cpu']:.2f} s CPU,"
                            f" {r['version']} {r['cipher']} {r['group']}, resumed {r['resumed']}/{r['handshakes']}"
                            + (f", errors {r['errors']}" if r["errors"] else ""))
                        for n in r["notes"]:
                            log(f"  note: {n}")
            if key == keys[0]:
                meta.append(("negotiated", "; ".join(
                    f"{row['test'].split()[0]} {side}: {row[side]['version']} {row[side]['cipher']} "
                    f"{row[side]['group']}" for row in rows if row["key"] == key and "full" in row["test"]
                    and row["conc"] == conc[0] for side in ("postern", "ref") if row[side])))
            for srv in (postern, postfix, dovecot):
                problems.extend(f"{key} {srv.name} log: {p}" for p in srv.problems()[:8])
            dovecot.stop_all()
            postfix.stop()
            postern.stop()
    except KeyboardInterrupt as e:
        log(f"interrupted ({str(e) or 'Ctrl-C'}); cleaning up")
        sb.run_cleanups()
        if rows:
            print_report(meta, rows, problems, os.cpu_count() or 1)
        sys.exit(130)
    except BenchError as e:
        log(f"error: {e}")
        sb.run_cleanups()
        if rows:
            print_report(meta, rows, problems, os.cpu_count() or 1)
        sys.exit(1)
    finally:
        sb.run_cleanups()
    print_report(meta, rows, problems, os.cpu_count() or 1)
    failed = any(row[s] and row[s]["errors"] for row in rows for s in ("postern", "ref"))
    sys.exit(2 if failed else 0)


if __name__ == "__main__":
    main()
