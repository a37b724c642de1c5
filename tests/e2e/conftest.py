"""End-to-end fixtures: a real `postern serve` on a free loopback port with a private configuration.

Each test gets its own configuration directory, queue and Maildirs under a temporary directory, so tests
never touch the machine's mail. POSTERN_BIN names the binary (make test sets it).
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from rawsocket import RawSocket

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
from dovecot_private import free_port  # noqa: E402,F401  (one set of ports handed out, for every test module)

BIN = os.environ.get("POSTERN_BIN") or os.path.join(os.path.dirname(__file__), "..", "..", "build", "postern")
BIN = os.path.abspath(BIN)
DOMAIN = "example.test"
PASSWORD = "demo-password"


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.recv(512)  # the greeting; a connection that only counts as "up" when it answers
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"postern did not listen on {port}")


class Postern:
    """One server: its configuration directory, port, log and helpers to read the Maildirs it writes."""

    def __init__(self, root, extra_config=""):
        self.root = root
        self.dir = os.path.join(root, "etc")
        os.makedirs(self.dir)
        self.port = free_port()
        self.mail = os.path.join(root, "mail")
        self.log_path = os.path.join(root, "postern.log")
        self.proc = None
        config = (
            f"smtp_listen = 127.0.0.1:{self.port}\n"
            f"imap_listen =\n"
            f"pop3_listen =\n"
            f"submission_listen =\n"
            f"submissions_listen =\n"
            f"imaps_listen =\n"
            f"pop3s_listen =\n"
            f"myhostname = mail.{DOMAIN}\n"
            f"queue_directory = {root}/queue\n"
            f"alias_maps = hash:{self.dir}/aliases\n"
            f"virtual_mailbox_domains = {DOMAIN}, other.test\n"
            f"virtual_mailbox_base = {self.mail}\n"
            f"smtpd_error_sleep_time = 0\n"
            # Outbound mail never asks a real DNS server: nothing listens on the discard port (tests that
            # deliver set their own dns_servers).
            f"dns_servers = 127.0.0.1:9\n"
            # Failed-login throttling off: many tests fail logins on purpose (test_throttle.py turns it on).
            f"auth_failure_delay = 0\n"
            f"auth_failure_block_count = 0\n"
        ) + extra_config
        with open(os.path.join(self.dir, "main.cf"), "w") as f:
            f.write(config)
        with open(os.path.join(self.dir, "aliases"), "w") as f:
            f.write(f"postmaster: alice@{DOMAIN}\nteam: alice@{DOMAIN}, bob@{DOMAIN}\n")
        for user in ("alice", "bob"):
            self.run("user", "add", f"{user}@{DOMAIN}", "--password-stdin", input=PASSWORD + "\n")

    def run(self, *args, input=None, check=True, env=None):
        """Runs `postern -c DIR ARGS...` and returns the CompletedProcess."""
        p = subprocess.run([BIN, "-c", self.dir, *args], input=input, capture_output=True, text=True,
                           timeout=60, env=env)
        if check and p.returncode != 0:
            raise AssertionError(f"postern {' '.join(args)} exited {p.returncode}: {p.stderr}")
        return p

    def start(self):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BIN, "-c", self.dir, "serve"], stdout=self.logf, stderr=subprocess.STDOUT)
        try:
            wait_port(self.port)
        except RuntimeError as e:
            with open(self.log_path, errors="replace") as f:
                log = f.read()[-3000:]
            raise RuntimeError(f"{e} (exit status {self.proc.poll()}); its log ends:\n{log}") from e
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, text, timeout=10.0):
        """Waits until `text` appears in the log (lines are written after the reply that caused them)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            log = self.log()
            if text in log:
                return log
            time.sleep(0.05)
        raise AssertionError(f"not in the log after {timeout}s: {text!r}\n{self.log()[-3000:]}")

    def maildir(self, user, domain=DOMAIN):
        return os.path.join(self.mail, domain, user)

    def messages(self, user, domain=DOMAIN):
        """Contents (bytes) of every message in the user's INBOX (new/ and cur/), oldest first."""
        root = self.maildir(user, domain)
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(root, sub)
            if os.path.isdir(d):
                for name in sorted(os.listdir(d)):
                    with open(os.path.join(d, name), "rb") as f:
                        out.append(f.read())
        return out

    def tmp_files(self, user, domain=DOMAIN):
        d = os.path.join(self.maildir(user, domain), "tmp")
        return os.listdir(d) if os.path.isdir(d) else []

    def queue_file(self, queue_id, timeout=5.0):
        """The bytes of a queued message's file: in deferred/, or in active/ while the queue manager tries
        it (without a DNS server of the test's, it comes back deferred)."""
        deadline = time.time() + timeout
        while True:
            for state in ("deferred", "active"):
                try:
                    with open(os.path.join(self.root, "queue", state, queue_id), "rb") as f:
                        return f.read()
                except FileNotFoundError:
                    pass
            if time.time() > deadline:
                raise FileNotFoundError(f"{queue_id} is not queued")
            time.sleep(0.05)


@pytest.fixture
def make_postern():
    """Factory: make_postern(extra_config="") -> a started Postern; all are stopped at the end of the test."""
    made = []

    def factory(extra_config="", start=True):
        root = tempfile.mkdtemp(prefix="postern-e2e-")
        os.chmod(root, 0o755)  # as root, the server runs as mail_owner and must reach its files
        p = Postern(root, extra_config)
        made.append(p)
        return p.start() if start else p

    yield factory
    for p in made:
        p.stop()
        shutil.rmtree(p.root, ignore_errors=True)


@pytest.fixture
def server(make_postern):
    return make_postern()


@pytest.fixture
def make_dns():
    """Factory: make_dns(records) -> a started dnsserver.DnsServer on a free loopback port (records: see
    tests/e2e/dnsserver.py); all are stopped at the end of the test. Postern uses it with
    f"dns_servers = 127.0.0.1:{dns.port}"."""
    from dnsserver import DnsServer  # python3-dnslib: only under /usr/bin/python3

    made = []

    def factory(records, **options):  # options: signed=[zones] (see dnsserver.py)
        made.append(DnsServer(records, **options).start())
        return made[-1]

    yield factory
    for d in made:
        d.stop()


@pytest.fixture
def make_mx():
    """Factory: make_mx(host, port=25, **script) -> a started remote_mx.RemoteMx (a scriptable remote MX on
    aiosmtpd, see tests/e2e/remote_mx.py); all are stopped at the end of the test. Port 25 needs root."""
    from remote_mx import RemoteMx  # python3-aiosmtpd: only under /usr/bin/python3

    made = []

    def factory(host="127.0.0.1", port=25, **script):
        made.append(RemoteMx(host, port, **script).start())
        return made[-1]

    yield factory
    for mx in made:
        mx.cleanup()


class Raw(RawSocket):
    """A raw SMTP client over a socket, for exact bytes: send what a test says, read replies."""

    def __init__(self, port, read_greeting=True):
        super().__init__("127.0.0.1", port)
        self.greeting = self.reply() if read_greeting else None

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        """One whole (possibly multi-line) reply as (code, [lines])."""
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), lines

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()



from imap_servers import dovecot_instance, imap_server  # noqa: E402,F401  (the IMAP fixtures, tests/e2e/imap_servers.py)
