#!/usr/bin/python3
"""scripts/dovecot_private.py: a private Dovecot 2.3 (IMAP and POP3) on free loopback ports, for the IMAP/POP3
end-to-end and differential tests (tests/e2e/imap_servers.py, tests/e2e/test_imap_differential.py).

Everything lives under one temporary directory: dovecot.conf, users (passwd-file), base_dir (run/), state_dir
(state/), the log (dovecot.log) and the Maildirs (mail/DOMAIN/USER, the same layout as Postern's
virtual_mailbox_base). The master runs in the foreground (`dovecot -F`) as a child of this process and is
stopped with SIGTERM, so no process outlives stop().

As root, mail is accessed as the unprivileged `postern` user (else `dovecot`), login processes run as dovenull
and internal ones as dovecot. As a normal user every process runs as that user.

    with DovecotPrivate() as d:
        imaplib.IMAP4("127.0.0.1", d.port).login("alice@example.test", "demo-password")

Run directly (python3 scripts/dovecot_private.py) it starts one and prints the ports until Ctrl-C.
"""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"
DOMAIN = "example.test"
PASSWORD = "demo-password"
USERS = (f"alice@{DOMAIN}", f"bob@{DOMAIN}")


def available():
    """None when a private Dovecot can run here, else the reason it cannot (for pytest.skip)."""
    if not os.path.exists(DOVECOT):
        return "Dovecot is not installed (Debian: apt-get install dovecot-imapd dovecot-pop3d)"
    if not os.path.exists("/usr/lib/dovecot/imap"):
        return "dovecot-imapd is not installed"
    if os.geteuid() == 0:
        for name in ("dovenull", "dovecot"):
            try:
                pwd.getpwnam(name)
            except KeyError:
                return f"no {name} user (the Dovecot package is not set up)"
    return None


_issued_ports = set()


def free_port():
    """A free port of 127.0.0.1 that this process has not handed out before: two picks in a row can get the
    same port from the kernel, and the server given it twice then fails to start. (The tests' one source of
    ports: tests/e2e/conftest.py uses it too.)"""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _issued_ports:
            _issued_ports.add(port)
            return port


def _mail_user():
    """(name, uid, gid) that owns and accesses the Maildirs."""
    if os.geteuid() != 0:
        pw = pwd.getpwuid(os.geteuid())
        return pw.pw_name, pw.pw_uid, pw.pw_gid
    for name in ("postern", "dovecot"):
        try:
            pw = pwd.getpwnam(name)
            return name, pw.pw_uid, pw.pw_gid
        except KeyError:
            pass
    raise RuntimeError("no unprivileged user for mail (postern or dovecot)")


class DovecotPrivate:
    def __init__(self, root=None, extra_config=""):
        self.own_root = root is None
        self.root = root or tempfile.mkdtemp(prefix="dovecot-private-")
        os.chmod(self.root, 0o755)
        self.conf = os.path.join(self.root, "dovecot.conf")
        self.base_dir = os.path.join(self.root, "run")
        self.state_dir = os.path.join(self.root, "state")
        self.log_path = os.path.join(self.root, "dovecot.log")
        self.mail = os.path.join(self.root, "mail")
        self.users = os.path.join(self.root, "users")
        self.port = free_port()
        self.pop3_port = free_port()
        self.proc = None
        self.extra_config = extra_config
        self.mail_user, self.uid, self.gid = _mail_user()
        self._write()

    # --- configuration -------------------------------------------------------------------------------------------
    def _write(self):
        for d in (self.base_dir, self.state_dir, self.mail):
            os.makedirs(d, mode=0o755, exist_ok=True)
        os.chown(self.mail, self.uid, self.gid)
        with open(self.users, "w") as f:
            for u in USERS:
                f.write(f"{u}:{{PLAIN}}{PASSWORD}::::::\n")
        os.chmod(self.users, 0o644)
        if os.geteuid() == 0:
            login_user, internal_user = "dovenull", "dovecot"
            mail_ids = f"mail_uid = {self.uid}\nmail_gid = {self.gid}\n"
        else:
            me = pwd.getpwuid(os.geteuid()).pw_name
            login_user = internal_user = me
            mail_ids = ""
        conf = f"""\
# private Dovecot for Postern's tests (scripts/dovecot_private.py)
protocols = imap pop3
listen = 127.0.0.1
base_dir = {self.base_dir}
state_dir = {self.state_dir}
instance_name = dovecot-private-{os.path.basename(self.root)}
log_path = {self.log_path}
info_log_path = {self.log_path}
debug_log_path = {self.log_path}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_login_user = {login_user}
default_internal_user = {internal_user}
{mail_ids}first_valid_uid = 0
mail_location = maildir:{self.mail}/%d/%n
mail_plugins = quota
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
plugin {{
  quota = maildir:User quota
  quota_rule = *:storage=1G
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.users}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.users}
  default_fields = home={self.mail}/%d/%n
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Templates {{
    auto = subscribe
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service imap {{
  process_limit = 64
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
service anvil {{
  unix_listener anvil {{
    mode = 0666
  }}
}}
service doveadm {{
  inet_listener {{
    port = 0
  }}
}}
# rawlog, debugging: mail_debug = yes
"""
        with open(self.conf, "w") as f:
            f.write(conf + self.extra_config)

    # --- lifecycle -----------------------------------------------------------------------------------------------
    def start(self, timeout=15.0):
        self.logf = open(os.path.join(self.root, "master.out"), "ab")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf], stdout=self.logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + timeout
        for port in (self.port, self.pop3_port):
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"dovecot exited {self.proc.returncode}: {self.output()}")
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                        s.settimeout(5)
                        if s.recv(512).startswith((b"* OK", b"+OK")):
                            break
                except OSError:
                    pass
                if time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"dovecot did not listen on {port}: {self.output()}")
                time.sleep(0.05)
        return self

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    self.proc.wait()
            # the master's children leave with it; make sure none of its session lingers
            deadline = time.time() + 5
            while time.time() < deadline and self._session_alive():
                time.sleep(0.05)
            if self._session_alive():
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc = None
            self.logf.close()

    def _session_alive(self):
        try:
            os.killpg(self.proc.pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def cleanup(self):
        self.stop()
        if self.own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # --- helpers -------------------------------------------------------------------------------------------------
    def output(self):
        out = ""
        for p in (os.path.join(self.root, "master.out"), self.log_path):
            if os.path.exists(p):
                with open(p, "rb") as f:
                    out += f.read().decode("utf-8", "replace")[-3000:]
        return out

    def log(self):
        if not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def maildir(self, user, domain=DOMAIN):
        if "@" in user:
            user, domain = user.split("@", 1)
        return os.path.join(self.mail, domain, user)

    def doveadm(self, *args, input=None, check=True):
        p = subprocess.run([DOVEADM, "-c", self.conf, *args], input=input, capture_output=True, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError(f"doveadm {' '.join(args)} exited {p.returncode}: "
                                 f"{p.stderr.decode('utf-8', 'replace')}")
        return p

    def deliver(self, user, message, mailbox="INBOX"):
        """Saves `message` (bytes) into the user's mailbox the way Dovecot gets mail locally (doveadm save)."""
        if "@" not in user:
            user = f"{user}@{DOMAIN}"
        self.doveadm("save", "-u", user, "-m", mailbox, input=message)


if __name__ == "__main__":
    reason = available()
    if reason:
        raise SystemExit(reason)
    with DovecotPrivate() as d:
        print(f"dovecot: imap 127.0.0.1:{d.port} pop3 127.0.0.1:{d.pop3_port} conf {d.conf}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
