#!/usr/bin/env python3
"""Postern vs Postfix: SMTP delivery throughput into a Maildir, side by side, plus the disk's fsync ceiling.

For every message size x session count, each server is started fresh (empty queue, empty Maildir), fed
the same smtp-source(1) load on a loopback port, and timed from the start of smtp-source until the N-th
message file is present in the Maildir's new/ (Postfix delivers asynchronously, so smtp-source's own end
is not the end).  See bench/README.md.  Run as root; only 127.0.0.1 is used.
"""

import argparse
import ctypes
import ctypes.util
import errno
import os
import platform
import pwd
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from postfix_private import master_cf  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOBODY_UID = 65534  # Postfix's virtual(8) delivers as this uid (virtual_uid_maps = static:65534)
SAMPLE_INTERVAL = 0.1  # seconds between RSS samples
DISTURBED = 0.15  # CPUs used on average by other processes during a run above which the run is redone


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------------------------- cleanup

_cleanups = []  # callables, run in reverse order on every exit path


def on_cleanup(fn):
    _cleanups.append(fn)
    return fn


def run_cleanups():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # keep cleaning up
            log(f"cleanup: {e}")


def _terminate(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


# ------------------------------------------------------------------------------------------- inotify

_IN_CREATE = 0x100
_IN_MOVED_TO = 0x80
_IN_Q_OVERFLOW = 0x4000
_IN_ISDIR = 0x40000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


class DirWatch:
    """Counts files appearing in one directory (created there or renamed/linked into it)."""

    def __init__(self, path):
        self.fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(path), _IN_CREATE | _IN_MOVED_TO)
        if wd < 0:
            e = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(e, f"inotify_add_watch {path}")
        self.path = path
        self.count = 0
        self.overflow = False

    def drain(self):
        while True:
            try:
                buf = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return
            off = 0
            while off < len(buf):
                _wd, mask, _cookie, nlen = struct.unpack_from("iIII", buf, off)
                off += 16 + nlen
                if mask & _IN_Q_OVERFLOW:
                    self.overflow = True
                elif not mask & _IN_ISDIR:
                    self.count += 1

    def close(self):
        os.close(self.fd)


def count_files(path):
    with os.scandir(path) as it:
        return sum(1 for e in it if not e.name.startswith("."))


# ---------------------------------------------------------------------- process groups: CPU and memory

def _cgroup_mounts():
    v2 = v1 = None
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, fstype, opts = line.split()[:4]
            if fstype == "cgroup2" and v2 is None:
                v2 = mnt
            elif fstype == "cgroup" and "cpuacct" in opts.split(",") and v1 is None:
                v1 = mnt
    return v2, v1


CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid):
    """(ppid, utime+stime, cutime+cstime) in seconds, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    # fields[0] is state (field 3); utime is field 14 -> index 11
    ppid = int(fields[1])
    own = (int(fields[11]) + int(fields[12])) / CLK_TCK
    kids = (int(fields[13]) + int(fields[14])) / CLK_TCK
    return ppid, own, kids


def _proc_mem(pid):
    """(VmRSS, VmHWM) in bytes for a process, zeros if gone or a zombie."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, hwm


def _proc_pss(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class ProcGroup:
    """All processes of one server under test.

    Preferred: a private cgroup (v2 cpu.stat usage_usec, or v1 cpuacct.usage) that the server is started
    in, so every process it ever forks is counted, including ones that already exited.  Fallback: the
    process tree under the root pid from /proc (root's own + reaped children's time + live descendants')."""

    _seq = 0

    def __init__(self, name):
        ProcGroup._seq += 1
        self.name = name
        self.root_pid = None
        self.path = None
        self.kind = "proc"
        v2, v1 = _cgroup_mounts()
        leaf = f"postern-bench-{os.getpid()}-{ProcGroup._seq}-{name}"
        for kind, mnt in (("cgroup2", v2), ("cgroup1-cpuacct", v1)):
            if not mnt:
                continue
            p = os.path.join(mnt, leaf)
            try:
                os.mkdir(p)
            except OSError:
                continue
            probe = "cpu.stat" if kind == "cgroup2" else "cpuacct.usage"
            if os.path.exists(os.path.join(p, probe)) and os.access(os.path.join(p, "cgroup.procs"), os.W_OK):
                self.path, self.kind = p, kind
                on_cleanup(self.remove)
                break
            os.rmdir(p)

    def describe(self):
        return {"cgroup2": "cgroup v2 cpu.stat usage_usec of a private cgroup",
                "cgroup1-cpuacct": "cgroup v1 cpuacct.usage of a private cgroup",
                "proc": "/proc process tree (utime+stime of live processes + cutime+cstime of the root)"}[self.kind]

    def preexec(self):
        """Runs in the child between fork and exec: join the cgroup so all descendants are in it."""
        if self.path:
            with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        os.setsid()

    def pids(self):
        if self.path:
            try:
                with open(os.path.join(self.path, "cgroup.procs")) as f:
                    return [int(x) for x in f.read().split()]
            except OSError:
                return []
        if self.root_pid is None:
            return []
        children = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                st = _proc_stat(int(d))
                if st:
                    children.setdefault(st[0], []).append(int(d))
        out, todo = [], [self.root_pid]
        while todo:
            p = todo.pop()
            if _proc_stat(p) is None:
                continue
            out.append(p)
            todo.extend(children.get(p, []))
        return out

    def cpu_seconds(self):
        if self.kind == "cgroup2":
            with open(os.path.join(self.path, "cpu.stat")) as f:
                for line in f:
                    k, v = line.split()
                    if k == "usage_usec":
                        return int(v) / 1e6
        if self.kind == "cgroup1-cpuacct":
            with open(os.path.join(self.path, "cpuacct.usage")) as f:
                return int(f.read()) / 1e9
        total = 0.0
        for p in self.pids():
            st = _proc_stat(p)
            if st:
                total += st[1] + (st[2] if p == self.root_pid else 0.0)
        return total

    def mem_sample(self):
        """(sum of VmRSS, sum of PSS) over the group's processes now."""
        rss = pss = 0
        for p in self.pids():
            rss += _proc_mem(p)[0]
            pss += _proc_pss(p)
        return rss, pss

    def kill_all(self):
        if self.path and os.path.exists(os.path.join(self.path, "cgroup.kill")):
            try:
                with open(os.path.join(self.path, "cgroup.kill"), "w") as f:
                    f.write("1")
                return
            except OSError:
                pass
        for p in self.pids():
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass

    def remove(self):
        if not self.path or not os.path.isdir(self.path):
            return
        deadline = time.monotonic() + 10
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.pids():
            self.kill_all()
            time.sleep(0.3)
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                time.sleep(0.1)
        log(f"could not remove cgroup {self.path}")


# ------------------------------------------------------------------------------------------ helpers

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout, alive=lambda: True):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.settimeout(2)
                banner = s.recv(512)
                s.sendall(b"QUIT\r\n")
                try:
                    s.recv(512)
                except OSError:
                    pass
                if banner.startswith(b"220"):
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def sys_busy_seconds():
    """CPU seconds the whole machine spent busy (all CPUs, not idle/iowait) since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def own_cpu_seconds():
    """CPU of this script and of its waited-for children (smtp-source, postfix commands, ...)."""
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime, b.ru_utime + b.ru_stime


_DISK_STAT = None  # /sys/dev/block/MAJ:MIN/stat of the disk under the work directory


def disk_writes():
    if not _DISK_STAT:
        return 0
    try:
        with open(_DISK_STAT) as f:
            return int(f.read().split()[4])  # writes completed
    except (OSError, IndexError, ValueError):
        return 0


def wait_quiet(max_wait, threshold, max_writes=30):
    """Wait until the machine is nearly idle: at most `threshold` CPUs busy and at most `max_writes` disk
    writes over 1 s (other people's builds and tests distort the numbers).  Returns (cpus, writes/s) of the
    last 1 s window."""
    deadline = time.monotonic() + max_wait
    announced = False
    while True:
        b0, w0 = sys_busy_seconds(), disk_writes()
        time.sleep(1.0)
        busy, writes = sys_busy_seconds() - b0, disk_writes() - w0
        if (busy <= threshold and writes <= max_writes) or time.monotonic() >= deadline:
            return busy, writes
        if not announced:
            log(f"  machine busy ({busy:.2f} CPUs, {writes} disk writes/s by others); waiting up to "
                f"{max_wait:.0f} s for it to calm down")
            announced = True


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def fstype_of(path):
    best, fs, dev = "", "?", "?"
    with open("/proc/mounts") as f:
        for line in f:
            d, mnt, t = line.split()[:3]
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, fs, dev = mnt, t, d
    return fs, dev, best


def chown_tree(path, uid, gid):
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for n in files:
            os.chown(os.path.join(root, n), uid, gid)


# ------------------------------------------------------------------------------------------ servers

class Postern:
    label = "Postern"

    def __init__(self, binary, workdir):
        self.binary = binary
        self.dir = workdir
        self.port = free_port()
        self.group = ProcGroup("postern")
        self.proc = None
        self.logf = None
        os.makedirs(self.dir, mode=0o755)
        with open(os.path.join(self.dir, "main.cf"), "w") as f:
            f.write(f"""# written by bench/smtp_vs_postfix.py
smtp_listen = 127.0.0.1:{self.port}
submission_listen =
submissions_listen =
imap_listen =
imaps_listen =
pop3_listen =
pop3s_listen =
myhostname = bench.example.test
queue_directory = {self.dir}/queue
alias_maps =
virtual_mailbox_domains = bench.test
virtual_mailbox_base = {self.dir}/mail
mailbox_size_limit = 0
message_size_limit = 0
smtpd_client_connection_count_limit = 0
""")
        r = subprocess.run([self.binary, "-c", self.dir, "user", "add", "bench@bench.test", "--password-stdin"],
                           input=b"pw\n", capture_output=True)
        if r.returncode != 0:
            raise BenchError(f"postern user add failed: {r.stderr.decode(errors='replace').strip()}")
        self.maildir = os.path.join(self.dir, "mail", "bench.test", "bench")
        r = subprocess.run([self.binary, "maildirmake", self.maildir], capture_output=True)
        if r.returncode != 0:
            raise BenchError(f"postern maildirmake failed: {r.stderr.decode(errors='replace').strip()}")
        self.new = os.path.join(self.maildir, "new")
        # Started as root, Postern runs as mail_owner and virtual mail belongs to that user: hand it the
        # mailbox tree, as an administrator would (older builds without privilege separation: no-op).
        self.owner = None
        r = subprocess.run([self.binary, "-c", self.dir, "postconf", "mail_owner"], capture_output=True, text=True)
        name = r.stdout.partition("=")[2].strip() if r.returncode == 0 else ""
        try:
            pw = pwd.getpwnam(name) if name else None
        except KeyError:
            pw = None
        if pw:
            self.owner = name
            chown_tree(os.path.join(self.dir, "mail"), pw.pw_uid, pw.pw_gid)

    def start(self):
        self.logf = open(os.path.join(self.dir, "postern.log"), "wb")
        self.proc = subprocess.Popen([self.binary, "-c", self.dir, "serve"], stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=subprocess.STDOUT, preexec_fn=self.group.preexec)
        self.group.root_pid = self.proc.pid
        on_cleanup(self.stop)
        if not wait_port(self.port, 20, alive=lambda: self.proc.poll() is None):
            raise BenchError(f"Postern did not come up on 127.0.0.1:{self.port} "
                             f"(exit={self.proc.poll()}):\n{tail(self.logf.name)}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def crashed(self):
        if self.proc is not None and self.proc.poll() is not None:
            return f"Postern exited with status {self.proc.returncode} during the run"
        return None

    def settled(self):
        return True  # Postern fsyncs into the Maildir before its 250 reply: nothing is pending afterwards

    def peak_rss(self, sampled):
        # The server process (threads), plus, started as root, its small privileged delivery helper: the sum
        # of the kernel's own high-water marks (fresh processes for each run), or the sampled peak if higher.
        hwm = sum(_proc_mem(p)[1] for p in self.group.pids()) if self.alive() else 0
        return max(hwm, sampled)

    def problems(self):
        out = []
        try:
            with open(self.logf.name, errors="replace") as f:
                for line in f:
                    low = line.lower()
                    if "has no effect yet" in low:  # the disabled listeners in our main.cf
                        continue
                    if any(w in low for w in ("fatal", "panic", "error", "warning", "abort", "sanitizer")):
                        out.append(line.rstrip())
        except OSError:
            pass
        return out

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                log("Postern did not stop on SIGTERM within 15 s; killing it")
                self.proc.kill()
                self.proc.wait()
        if self.logf:
            self.logf.close()
        self.group.remove()
        self.proc = None


class Postfix:
    label = "Postfix"

    def __init__(self, workdir):
        self.dir = workdir
        self.etc = os.path.join(workdir, "etc")
        self.queue = os.path.join(workdir, "queue")
        self.data = os.path.join(workdir, "data")
        self.mail = os.path.join(workdir, "mail")
        self.maillog = os.path.join(workdir, "maillog")
        self.port = free_port()
        self.group = ProcGroup("postfix")
        self.started = False
        pw = pwd.getpwnam("postfix")
        os.makedirs(self.dir, mode=0o755)
        os.chmod(self.dir, 0o755)
        for d in (self.etc, self.queue, self.data, self.mail):
            os.makedirs(d, mode=0o755)
        os.chown(self.data, pw.pw_uid, pw.pw_gid)
        open(self.maillog, "w").close()
        os.chown(self.maillog, pw.pw_uid, pw.pw_gid)
        self.maildir = os.path.join(self.mail, "bench.test", "bench")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(self.maildir, sub), mode=0o700)
        chown_tree(self.mail, NOBODY_UID, NOBODY_UID)
        os.chmod(self.mail, 0o755)
        self.new = os.path.join(self.maildir, "new")
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(f"""# written by bench/smtp_vs_postfix.py: a private Postfix instance, Maildir delivery on loopback.
# Durability settings are Postfix's defaults (cleanup fsyncs the queue file before 250, virtual(8) fsyncs
# the Maildir file).  Only name lookups, the listener and the delivery target are set here.
compatibility_level = 3.6
config_directory = {self.etc}
queue_directory = {self.queue}
data_directory = {self.data}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-bench.example.test
mydomain = example.test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
alias_maps =
alias_database =
local_recipient_maps =
biff = no
# no DNS anywhere (loopback only); smtpd does not resolve the client (Postern does not either)
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
smtpd_relay_restrictions = permit_mynetworks reject_unauth_destination
# virtual Maildir delivery: bench@bench.test -> {self.maildir}/ (trailing slash = Maildir)
virtual_mailbox_domains = bench.test
virtual_mailbox_base = {self.mail}
virtual_mailbox_maps = static:bench.test/bench/
virtual_uid_maps = static:{NOBODY_UID}
virtual_gid_maps = static:{NOBODY_UID}
virtual_mailbox_limit = 0
mailbox_size_limit = 0
message_size_limit = 0
# headroom so 16 parallel sessions (plus cleanup/virtual/trivial-rewrite processes) are never limited
default_process_limit = 200
smtpd_client_connection_count_limit = 0
# log to a file in the private directory (there is no syslog here); postlogd's CPU is counted
maillog_file = {self.maillog}
maillog_file_prefixes = {self.dir}
""")
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(master_cf(self.port))

    def _postfix(self, *args, group=False):
        env = dict(os.environ, MAIL_CONFIG=self.etc)
        return subprocess.run(["postfix", "-c", self.etc, *args], stdin=subprocess.DEVNULL, capture_output=True,
                              env=env, preexec_fn=self.group.preexec if group else None, timeout=60)

    def start(self):
        r = self._postfix("check")
        if r.returncode != 0:
            raise BenchError(f"postfix check failed:\n{r.stdout.decode()}{r.stderr.decode()}{tail(self.maillog)}")
        self.started = True
        on_cleanup(self.stop)
        r = self._postfix("start", group=True)
        if r.returncode != 0:
            raise BenchError(f"postfix start failed:\n{r.stdout.decode()}{r.stderr.decode()}{tail(self.maillog)}")
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                self.group.root_pid = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
        if not wait_port(self.port, 20):
            raise BenchError(f"Postfix did not come up on 127.0.0.1:{self.port}:\n{tail(self.maillog)}")

    def alive(self):
        return self.started

    def crashed(self):
        return None

    def queued(self):
        n = 0
        for q in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _root, _dirs, files in os.walk(os.path.join(self.queue, q)):
                n += len(files)
        return n

    def settled(self):
        return self.queued() == 0

    def peak_rss(self, sampled):
        return sampled

    def problems(self):
        out = []
        try:
            with open(self.maillog, errors="replace") as f:
                for line in f:
                    if any(w in line for w in (" fatal:", " panic:", " error:", " warning:", "status=deferred",
                                               "status=bounced")):
                        out.append(line.rstrip())
        except OSError:
            pass
        return out

    def stop(self):
        if not self.started:
            return
        self.started = False
        try:
            self._postfix("stop")
        except subprocess.TimeoutExpired:
            log("postfix stop timed out")
        deadline = time.monotonic() + 15
        while self.group.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.group.pids():
            log("Postfix processes left after 'postfix stop'; killing them")
            self.group.kill_all()
        self.group.remove()


# ------------------------------------------------------------------------------------------ one run

def run_one(server, n_msgs, size, sessions, stall_timeout, quiet_wait, quiet_threshold):
    """Feed `server` with smtp-source and time delivery of n_msgs messages into its Maildir."""
    res = {"server": server.label, "size": size, "sessions": sessions, "ok": False, "notes": []}
    server.start()
    if quiet_wait > 0:
        busy, writes = wait_quiet(quiet_wait, quiet_threshold)
        if busy > quiet_threshold or writes > 30:
            res["notes"].append(f"machine still busy before the run ({busy:.2f} CPUs, {writes} disk writes/s "
                                "by others)")
    watch = DirWatch(server.new)
    try:
        cmd = ["smtp-source", "-s", str(sessions), "-m", str(n_msgs), "-l", str(size),
               "-f", "from@bench.test", "-t", "bench@bench.test", f"127.0.0.1:{server.port}"]
        res["cmd"] = " ".join(cmd)
        cpu0 = server.group.cpu_seconds()
        busy0, (self0, kids0) = sys_busy_seconds(), own_cpu_seconds()
        peak_rss = peak_pss = 0
        t0 = time.monotonic()
        src = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        on_cleanup(lambda: src.poll() is None and (src.kill(), src.wait()))
        src_out = []
        reader = threading.Thread(target=lambda: src_out.append(src.stdout.read()), daemon=True)
        reader.start()
        poller = select.poll()
        poller.register(watch.fd, select.POLLIN)
        t_done = None
        last_count, last_progress = 0, t0
        next_sample = t0
        polling = False  # fall back to listing the directory if inotify overflowed
        while True:
            now = time.monotonic()
            poller.poll(max(0, int((next_sample - now) * 1000)) + 1)
            watch.drain()
            now = time.monotonic()
            if watch.overflow and not polling:
                polling = True
                res["notes"].append("inotify queue overflowed; counted by listing new/")
            count = count_files(server.new) if polling else watch.count
            if count >= n_msgs:
                real = count_files(server.new)  # confirm with the directory itself
                if real >= n_msgs:
                    t_done = now
                    break
                polling = True
                count = real
            if count != last_count:
                last_count, last_progress = count, now
            if now >= next_sample:
                rss, pss = server.group.mem_sample()
                peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
                next_sample = now + SAMPLE_INTERVAL
            crash = server.crashed()
            if crash:
                res["notes"].append(crash)
                break
            if now - last_progress > stall_timeout:
                res["notes"].append(f"no new message for {stall_timeout:.0f} s; giving up at {count} of {n_msgs}"
                                    + ("" if src.poll() is None else f" (smtp-source exited {src.returncode})"))
                break
        elapsed = (t_done or time.monotonic()) - t0
        # let smtp-source finish (it normally has: the server answers 250 before or at delivery)
        try:
            src.wait(max(stall_timeout, 30))
        except subprocess.TimeoutExpired:
            res["notes"].append("smtp-source still running after the messages arrived; killed")
            src.kill()
            src.wait()
        reader.join(5)
        out = (src_out[0] if src_out else b"").decode(errors="replace").strip()
        res["smtp_source_rc"] = src.returncode
        if src.returncode != 0 or out:
            res["notes"].append(f"smtp-source exit {src.returncode}: {out[-800:]}")
        # CPU: include the work the server still does for these messages (Postfix: queue file removal)
        settle_deadline = time.monotonic() + 30
        while not server.settled() and time.monotonic() < settle_deadline:
            rss, pss = server.group.mem_sample()
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(0.05)
        if not server.settled():
            res["notes"].append(f"{server.queued()} message(s) still in the Postfix queue 30 s after the run")
        cpu = server.group.cpu_seconds() - cpu0
        busy1, (self1, kids1) = sys_busy_seconds(), own_cpu_seconds()
        window = time.monotonic() - t0
        # whatever else ran on the machine meanwhile (not the server, smtp-source or this script)
        bg = max(0.0, (busy1 - busy0) - cpu - (self1 - self0) - (kids1 - kids0)) / window
        res["background_cpus"] = bg
        res["client_cpu"] = kids1 - kids0
        if bg > DISTURBED:
            res["notes"].append(f"other processes used {bg:.2f} CPUs on average during the run (numbers disturbed)")
        rss, pss = server.group.mem_sample()
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        final = count_files(server.new)
        res.update(delivered=final, elapsed=elapsed, cpu=cpu, rss=server.peak_rss(peak_rss),
                   rss_sampled=peak_rss, pss=peak_pss, cpu_method=server.group.describe())
        crash = server.crashed()
        if crash and crash not in res["notes"]:
            res["notes"].append(crash)
        if final != n_msgs:
            res["notes"].append(f"{final} message files in new/, expected exactly {n_msgs}")
        res["ok"] = final == n_msgs and t_done is not None and src.returncode == 0 and not crash
        res["rate"] = (n_msgs if res["ok"] else final) / elapsed if elapsed > 0 else 0.0
        probs = server.problems()
        if probs:
            res["notes"].append(f"{len(probs)} warning/error log line(s), first: " + " | ".join(probs[:3]))
    finally:
        watch.close()
        server.stop()
    return res


# ------------------------------------------------------------------------------------------ fsync ceiling

# NO_DELETIONS: nothing the benchmark writes is deleted before its end (the work directory goes then). On ext4
# without a journal, as on these VMs, creating a file skips every inode freed in the last 5 minutes (5 minutes
# and 5 seconds while the inode table block is dirty), checking them one at a time under the directory's lock;
# thousands of files deleted just before a run made each file creation of that run scan past them, and that
# scan was most of the server's CPU time (perf: recently_deleted, find_get_block_common).

CEILING_BUSY = []  # CPUs the machine kept busy during each parallel fsync_ceiling measurement


def fsync_ceiling(base, threads, seconds, size=2048):
    """Each thread loops: create tmp/FILE, write `size` bytes, fsync, close, rename into new/, fsync new/."""
    d = tempfile.mkdtemp(prefix="fsync-", dir=base)
    os.mkdir(os.path.join(d, "tmp"))
    os.mkdir(os.path.join(d, "new"))
    data = os.urandom(size)
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    stop_at = [0.0]

    def worker(i):
        dfd = os.open(os.path.join(d, "new"), os.O_RDONLY | os.O_DIRECTORY)
        start.wait()
        n = 0
        try:
            while time.monotonic() < stop_at[0]:
                name = f"{i}.{n}"
                tmp = os.path.join(d, "tmp", name)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                os.write(fd, data)
                os.fsync(fd)
                os.close(fd)
                os.rename(tmp, os.path.join(d, "new", name))
                os.fsync(dfd)
                n += 1
        finally:
            os.close(dfd)
            counts[i] = n

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    t0 = time.monotonic()
    stop_at[0] = t0 + seconds
    busy0 = sys_busy_seconds()
    start.wait()
    for t in ts:
        t.join()
    elapsed = time.monotonic() - t0
    if threads > 1:
        CEILING_BUSY.append((sys_busy_seconds() - busy0) / elapsed)
    os.sync()  # the files stay until the end of the benchmark: see NO_DELETIONS
    return sum(counts) / elapsed


# ------------------------------------------------------------------------------------------ output

def mib(b):
    return f"{b / 1048576:.1f} MiB"


def fmt_size(b):
    return f"{b // 1024} KiB" if b % 1024 == 0 else f"{b} B"


def sessions_of(cells):
    return [sess for (_size, sess), _runs in cells]


def print_report(args, cells, ceil_runs, local_ceil, meta):
    w = sys.stdout.write
    w("\n")
    w(f"Postern vs Postfix: SMTP delivery into a Maildir, {args.messages} messages per run, smtp-source on 127.0.0.1\n")
    for k, v in meta:
        w(f"  {k}: {v}\n")
    w("\n")
    hdr = ["size", "sessions", "Postern msg/s", "Postfix msg/s", "ratio", "Postern CPU s/1000",
           "Postfix CPU s/1000", "Postern peak RSS", "Postfix peak RSS"]
    rows = []
    for (size, sess), runs in cells:
        def pick(label):
            rs = [r for r in runs if r["server"] == label]
            if not rs:
                return None
            rs.sort(key=lambda r: r["rate"])
            return rs[len(rs) // 2]  # median run by throughput
        a, b = pick("Postern"), pick("Postfix")

        def rate(r):
            if r is None:
                return "-"
            return f"{r['rate']:.0f}" + ("" if r["ok"] else " FAIL")

        def cpu(r):
            if r is None or not r.get("delivered"):
                return "-"
            return f"{r['cpu'] / r['delivered'] * 1000:.3f}"

        ratio = "-"
        if a and b and b["rate"] > 0:
            ratio = f"{a['rate'] / b['rate']:.2f}x"
        rows.append([fmt_size(size), str(sess), rate(a), rate(b), ratio, cpu(a), cpu(b),
                     mib(a["rss"]) if a else "-", mib(b["rss"]) if b else "-"])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(hdr)]
    line = "  ".join(h.rjust(widths[i]) for i, h in enumerate(hdr))
    w(line + "\n" + "-" * len(line) + "\n")
    for r in rows:
        w("  ".join(c.rjust(widths[i]) for i, c in enumerate(r)) + "\n")
    w("\n")
    w("msg/s: messages delivered (every one a file in the Maildir's new/, fsync'd) per second, from the start of\n"
      "  smtp-source until the last message file is in new/; ratio = Postern / Postfix.\n")
    w("CPU s/1000: CPU seconds (user+system, all processes of the server) per 1,000 delivered messages.\n")
    w("Peak RSS: Postern = sum of VmHWM of its processes (the server and its privileged delivery helper);\n"
      "  Postfix = peak over 100 ms samples of the SUM of VmRSS of all its processes (master, smtpd, cleanup,\n"
      "  qmgr, virtual, ...; shared pages counted in every process).\n")
    pss = [f"{fmt_size(s)}/{n}: {mib(max((r['pss'] for r in runs if r['server'] == 'Postfix'), default=0))}"
           for (s, n), runs in cells if any(r["server"] == "Postfix" for r in runs)]
    if pss:
        w("  Postfix peak PSS sum (shared pages divided among sharers): " + ", ".join(pss) + "\n")
    w("\n")
    def median(runs, label):
        rs = sorted((r for r in runs if r["server"] == label), key=lambda r: r["rate"])
        return rs[len(rs) // 2] if rs else None

    top = max(sessions_of(cells), default=0)
    par = [c for _w, _c1, c in ceil_runs] + list(local_ceil.values())
    best = max(par, default=0)
    for when, c1, c16 in ceil_runs:
        w(f"fsync ceiling ({when}): 1 thread {c1:.0f} ops/s, 16 threads {c16:.0f} ops/s\n")
    for (size, sess), c in local_ceil.items():
        w(f"fsync ceiling (just before the {fmt_size(size)} x {sess} sessions runs): {sess} threads {c:.0f} ops/s\n")
    if par:
        w("  (one op = create a file (2 KiB before and after the runs, the cell's message size next to a cell),\n"
          "   write, fsync it, rename it into new/, fsync new/: what a Maildir delivery must do at least; Python\n"
          "   threads, same file system as the servers' directories)\n")
    ncpu = os.cpu_count() or 1
    if CEILING_BUSY:
        busy = sum(CEILING_BUSY) / len(CEILING_BUSY)
        w(f"  While the parallel ceiling was measured, {busy:.2f} of the {ncpu} CPUs were busy on average"
          f"{' (bound by the CPUs more than by the disk)' if busy >= 0.8 * ncpu else ''}.\n")
    goals = []
    for (size, sess), runs in cells:
        if sess != top:
            continue
        a, b = median(runs, "Postern"), median(runs, "Postfix")
        if a and a.get("delivered") and par:
            half = local_ceil.get((size, sess), best) / 2
            per_msg = a["client_cpu"] / a["delivered"]
            w(f"smtp-source itself used {1000 * per_msg:.2f} CPU s per 1,000 messages in the Postern run of "
              f"{fmt_size(size)} x {sess}: at half the ceiling ({half:.0f} msg/s) it alone would keep "
              f"{per_msg * half:.2f} of the {ncpu} CPUs busy.\n")
        if a and b:
            x = a["rate"] / b["rate"] if b["rate"] else float("inf")
            goals.append(f"Goal >= 3x Postfix at {sess} sessions, {fmt_size(size)}: {x:.2f}x -> "
                         f"{'met' if x >= 3 and a['ok'] and b['ok'] else 'NOT met'}")
        if a and par:
            ref = local_ceil.get((size, sess), best)
            pct = 100 * a["rate"] / ref
            w(f"Postern at {sess} sessions = {pct:.0f}% of the parallel fsync ceiling ({fmt_size(size)} messages: "
              f"{a['rate']:.0f} msg/s vs {ref:.0f} ops/s measured next to it; {100 * a['rate'] / best:.0f}% of the "
              f"highest parallel measurement, {best:.0f} ops/s)\n")
            goals.append(f"Goal >= 50% of the parallel fsync ceiling, {fmt_size(size)}: {pct:.0f}% -> "
                         f"{'met' if pct >= 50 and a['ok'] else 'NOT met'}")
    if goals:
        w("\n" + "\n".join(goals) + "\n")
    notes = [(r, n) for _k, runs in cells for r in runs for n in r["notes"]]
    if notes:
        w("\nProblems seen:\n")
        for r, n in notes:
            w(f"  {r['server']} {fmt_size(r['size'])} x {r['sessions']} sessions: {n}\n")
    sys.stdout.flush()


# ------------------------------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--messages", type=int, default=int(os.environ.get("BENCH_MESSAGES", 10000)),
                    help="messages per run (env BENCH_MESSAGES, default 10000)")
    ap.add_argument("--sizes", default=os.environ.get("BENCH_SIZES", "2048,20480"),
                    help="message payload sizes in bytes (smtp-source -l), comma-separated")
    ap.add_argument("--sessions", default=os.environ.get("BENCH_SESSIONS", "1,4,16"),
                    help="parallel SMTP sessions (smtp-source -s), comma-separated")
    ap.add_argument("--servers", default="postern,postfix", help="which servers to run (postern,postfix)")
    ap.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", 1)),
                    help="runs per cell and server; the median by throughput is reported")
    ap.add_argument("--postern", default=os.environ.get("POSTERN_BIN", os.path.join(REPO, "build", "postern")),
                    help="the postern binary (copied to the work directory for the run)")
    ap.add_argument("--tmpdir", default=os.environ.get("BENCH_TMPDIR", "/var/tmp"),
                    help="where the work directory goes (a real disk file system, not tmpfs)")
    ap.add_argument("--fsync-seconds", type=float, default=float(os.environ.get("BENCH_FSYNC_SECONDS", 5)),
                    help="duration of each fsync ceiling measurement (0 skips it)")
    ap.add_argument("--stall-timeout", type=float, default=60,
                    help="give up a run when no message arrives for this many seconds")
    ap.add_argument("--quiet-wait", type=float, default=float(os.environ.get("BENCH_QUIET_WAIT", 300)),
                    help="before each run wait up to this many seconds for the machine to be idle (0: don't)")
    ap.add_argument("--quiet-threshold", type=float, default=0.25,
                    help="'idle' means at most this many CPUs busy over 1 s")
    ap.add_argument("--retries", type=int, default=int(os.environ.get("BENCH_RETRIES", 2)),
                    help="run again (up to this many times) when other processes disturbed a run; the least "
                         "disturbed attempt is reported")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs, mail)")
    args = ap.parse_args()

    if os.geteuid() != 0:
        sys.exit("run as root (Postfix needs it)")
    sizes = [int(x) for x in args.sizes.split(",") if x]
    sessions = [int(x) for x in args.sessions.split(",") if x]
    servers = [x.strip().lower() for x in args.servers.split(",") if x.strip()]
    for tool in ("smtp-source",) + (("postfix", "postconf") if "postfix" in servers else ()):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (Debian: apt-get install postfix)")
    if "postern" in servers and not os.access(args.postern, os.X_OK):
        sys.exit(f"{args.postern} not found: run 'make build' first")

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _terminate)

    work = tempfile.mkdtemp(prefix="postern-bench-", dir=args.tmpdir)
    os.chmod(work, 0o755)
    if not args.keep:
        on_cleanup(lambda: shutil.rmtree(work, ignore_errors=True))
    else:
        on_cleanup(lambda: log(f"kept {work}"))
    fs, dev, mnt = fstype_of(os.path.realpath(work))
    global _DISK_STAT
    st = os.stat(work)
    cand = f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/stat"
    if os.path.exists(cand):
        _DISK_STAT = cand
    if fs in ("tmpfs", "ramfs"):
        log(f"WARNING: {work} is on {fs}: fsync costs nothing there, numbers are not meaningful")

    postern_bin = None
    meta = []
    if "postern" in servers:
        postern_bin = os.path.join(work, "postern")
        shutil.copy2(args.postern, postern_bin)  # a rebuild of build/ during the run cannot change it
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "src"], capture_output=True,
                               text=True)
        meta.append(("Postern", f"{args.postern} (git {rev.stdout.strip() or '?'}"
                     f"{', src/ has local changes' if dirty.stdout.strip() else ''}, binary from "
                     f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(os.stat(args.postern).st_mtime))})"))
    if "postfix" in servers:
        v = subprocess.run(["postconf", "-h", "-d", "mail_version"], capture_output=True, text=True)
        meta.append(("Postfix", f"{v.stdout.strip()} (Debian package), private instance, virtual(8) Maildir "
                                "delivery, durability defaults"))
    cpu_desc = ProcGroup("probe")
    meta.append(("CPU accounting", cpu_desc.describe()))
    cpu_desc.remove()
    meta.append(("machine", f"{os.cpu_count()} CPUs, {platform.release()}, load average "
                            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at start"))
    meta.append(("file system", f"{work} on {dev} ({fs}, mounted at {mnt})"))
    meta.append(("load", f"smtp-source -s SESSIONS -m {args.messages} -l SIZE (one message per connection)"))

    cells = []
    ceil_runs = []
    local_ceil = {}
    try:
        if args.fsync_seconds > 0:
            log(f"fsync ceiling (before): 1 and 16 threads, {args.fsync_seconds:g} s each")
            if args.quiet_wait > 0:
                wait_quiet(args.quiet_wait, args.quiet_threshold)
            c1 = fsync_ceiling(work, 1, args.fsync_seconds)
            c16 = fsync_ceiling(work, 16, args.fsync_seconds)
            ceil_runs.append(("before the runs", c1, c16))
            log(f"  1 thread {c1:.0f} ops/s, 16 threads {c16:.0f} ops/s")
        seq = 0
        for size in sizes:
            for sess in sessions:
                runs = []
                if args.fsync_seconds > 0 and sess == max(sessions) and sess > 1:
                    # the disk's speed drifts (shared host): measure the parallel ceiling right next to the cell
                    if args.quiet_wait > 0:
                        wait_quiet(args.quiet_wait, args.quiet_threshold)
                    c = fsync_ceiling(work, sess, args.fsync_seconds, size)
                    local_ceil[(size, sess)] = c
                    log(f"fsync ceiling just before this cell, {sess} threads: {c:.0f} ops/s")
                cells.append(((size, sess), runs))  # now, so that an interrupted run still reports
                for rep in range(args.repeat):
                    order = list(servers)
                    if seq % 2:
                        order.reverse()  # alternate who goes first, so slow disk phases hit both alike
                    seq += 1
                    for name in order:
                        best = None
                        for attempt in range(1 + args.retries):
                            d = os.path.join(work, f"{name}-{size}-{sess}-{rep}-{attempt}")
                            srv = Postern(postern_bin, d) if name == "postern" else Postfix(d)
                            os.sync()
                            log(f"{srv.label}: {args.messages} x {fmt_size(size)}, {sess} session(s)"
                                + (f", attempt {attempt + 1}" if attempt else "") + " ...")
                            r = run_one(srv, args.messages, size, sess, args.stall_timeout, args.quiet_wait,
                                        args.quiet_threshold)
                            status = "ok" if r["ok"] else "FAILED"
                            log(f"  {status}: {r.get('delivered', 0)} delivered in {r.get('elapsed', 0):.2f} s = "
                                f"{r['rate']:.0f} msg/s, CPU {r.get('cpu', 0):.2f} s, peak RSS "
                                f"{mib(r.get('rss', 0))}, others {r.get('background_cpus', 0):.2f} CPUs")
                            for n in r["notes"]:
                                log(f"  note: {n}")
                            if not r["ok"]:
                                best = r  # a failure is a result in itself: report it, do not retry it away
                                break
                            if best is None or r.get("background_cpus", 9) < best.get("background_cpus", 9):
                                best = r
                            if r.get("background_cpus", 0) <= DISTURBED:
                                break
                            log("  disturbed by other processes; running it again")
                        if attempt > 0:
                            best["notes"].append(f"kept the least disturbed of {attempt + 1} attempts")
                        runs.append(best)
        if args.fsync_seconds > 0:
            log("fsync ceiling (after)")
            if args.quiet_wait > 0:
                wait_quiet(args.quiet_wait, args.quiet_threshold)
            c1 = fsync_ceiling(work, 1, args.fsync_seconds)
            c16 = fsync_ceiling(work, 16, args.fsync_seconds)
            ceil_runs.append(("after the runs", c1, c16))
            log(f"  1 thread {c1:.0f} ops/s, 16 threads {c16:.0f} ops/s")
    except KeyboardInterrupt as e:
        log(f"interrupted ({str(e) or 'Ctrl-C'}); cleaning up")
        run_cleanups()
        if cells:
            print_report(args, cells, ceil_runs, local_ceil, meta)
        sys.exit(130)
    except BenchError as e:
        log(f"error: {e}")
        run_cleanups()
        if cells:
            print_report(args, cells, ceil_runs, local_ceil, meta)
        sys.exit(1)
    finally:
        run_cleanups()
    print_report(args, cells, ceil_runs, local_ceil, meta)
    failed = any(not r["ok"] for _k, runs in cells for r in runs)
    sys.exit(2 if failed else 0)


if __name__ == "__main__":
    main()
