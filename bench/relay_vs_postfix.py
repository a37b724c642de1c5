#!/usr/bin/env python3
"""Postern vs Postfix as an outbound relay, side by side: relay throughput and deferred-queue drain time.

Both relay to Postfix's smtp-sink on SINK:25 (relayhost = [SINK]:25, no DNS), which writes one file per
message that is counted with inotify.  Throughput: smtp-source submits N messages for rcpt@remote.test from
127.0.0.1; the clock runs until the sink holds N messages.  Drain: with the sink down, N messages are submitted
and wait in the deferred queue; the sink comes up, the queue is flushed (Postfix: postqueue -f; Postern: the
deferred files made due, then SIGUSR1, the queue manager's flush signal) and the clock runs until the sink holds
N messages and the queue is empty.  See bench/README.md.  Run as root; only loopback addresses are used.
Security: test tool; talks to loopback only.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smtp_vs_postfix as sv  # noqa: E402  (the servers, process groups, inotify counting, cleanup)

RCPT = "rcpt@remote.test"
SENDER = "from@bench.test"
LONG = "3600s"  # backoff and queue_run_delay while the drain waits: only the flush may start deliveries


class Sink:
    """smtp-sink on ADDR:25 dumping each message into a fresh directory; count() is how many arrived."""

    def __init__(self, workdir, addr, name):
        self.addr = addr
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, mode=0o755)
        os.chown(self.dir, sv.NOBODY_UID, sv.NOBODY_UID)
        self.proc = None
        self.watch = sv.DirWatch(self.dir)

    def start(self):
        self.proc = subprocess.Popen(["smtp-sink", "-u", "nobody", "-d", os.path.join(self.dir, "m"),
                                      f"{self.addr}:25", "1000"], stdin=subprocess.DEVNULL)
        sv.on_cleanup(self.stop)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.addr, 25), timeout=1) as s:
                    if s.recv(512).startswith(b"220"):
                        return
            except OSError:
                time.sleep(0.05)
        raise sv.BenchError(f"smtp-sink did not come up on {self.addr}:25")

    def count(self):
        self.watch.drain()
        return self.watch.count

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


class RelayPostern(sv.Postern):
    def postconf_edit(self):
        return [self.binary, "-c", self.dir, "postconf", "-e"]

    def queued(self, state=None):
        states = [state] if state else ("incoming", "active", "deferred")
        dirs = [os.path.join(self.dir, "queue", s) for s in states]
        return sum(sv.count_files(d) for d in dirs if os.path.isdir(d))

    def flush(self):
        subprocess.run([self.binary, "-c", self.dir, "queue", "flush"], check=True, capture_output=True)


class RelayPostfix(sv.Postfix):
    def postconf_edit(self):
        return ["postconf", "-c", self.etc, "-e"]

    def queued(self, state=None):
        if state is None:
            return super().queued()
        return sum(len(files) for _r, _d, files in os.walk(os.path.join(self.queue, state)))

    def flush(self):
        subprocess.run(["postqueue", "-c", self.etc, "-f"], check=True, capture_output=True)


def make_server(kind, args, workdir, settings):
    """A relaying Postern or Postfix (not started) with `settings` (key -> value) on top of the bench config."""
    s = RelayPostern(args.binary, workdir) if kind == "postern" else RelayPostfix(workdir)
    edit = s.postconf_edit() + [f"{k} = {v}" for k, v in settings.items()]
    r = subprocess.run(edit, capture_output=True, text=True)
    if r.returncode != 0:
        raise sv.BenchError(f"{' '.join(edit)} failed: {r.stderr.strip()}")
    return s


def wait_until(what, pred, progress, stall_timeout):
    """Waits until pred(); fails when progress() stays the same for stall_timeout seconds."""
    last, since = progress(), time.monotonic()
    while not pred():
        time.sleep(0.05)
        now = progress()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > stall_timeout:
            raise sv.BenchError(f"{what}: stalled at {now} for {stall_timeout:.0f} s")


def smtp_source(port, n, size, sessions):
    return subprocess.Popen(["smtp-source", "-s", str(sessions), "-m", str(n), "-l", str(size), "-f", SENDER,
                             "-t", RCPT, f"127.0.0.1:{port}"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def relay_settings(args, backoff=None):
    s = {"relayhost": f"[{args.sink}]:25", "mynetworks": "127.0.0.0/8", "default_destination_concurrency_limit":
         str(args.concurrency)}
    if backoff:
        s.update(minimal_backoff_time=backoff, maximal_backoff_time=backoff, queue_run_delay=backoff)
    return s


def throughput(kind, args, workdir):
    sink = Sink(workdir, args.sink, kind + "-sink")
    sink.start()
    server = make_server(kind, args, os.path.join(workdir, kind), relay_settings(args))
    server.start()
    sv.wait_quiet(args.quiet_wait, 0.25)
    cpu0, t0 = server.group.cpu_seconds(), time.monotonic()
    src = smtp_source(server.port, args.messages, args.size, args.sessions)
    wait_until(f"{kind} relay", lambda: sink.count() >= args.messages and server.queued() == 0, sink.count,
               args.stall_timeout)
    elapsed, cpu = time.monotonic() - t0, server.group.cpu_seconds() - cpu0
    if src.wait(60) != 0:
        raise sv.BenchError(f"smtp-source failed: {src.stderr.read().decode(errors='replace')}")
    got = sv.count_files(sink.dir)
    server.stop()
    sink.stop()
    if got != args.messages:
        raise sv.BenchError(f"{kind}: the sink holds {got} messages, not {args.messages}")
    return {"rate": args.messages / elapsed, "seconds": elapsed, "cpu": cpu, "problems": server.problems()}


def drain(kind, args, workdir):
    n = args.drain
    server = make_server(kind, args, os.path.join(workdir, kind + "-drain"), relay_settings(args, LONG))
    server.start()
    src = smtp_source(server.port, n, args.size, args.sessions)
    wait_until(f"{kind}: {n} messages deferred", lambda: server.queued("deferred") >= n,
               lambda: server.queued("deferred"), args.stall_timeout)
    if src.wait(60) != 0:
        raise sv.BenchError(f"smtp-source failed: {src.stderr.read().decode(errors='replace')}")
    sink = Sink(workdir, args.sink, kind + "-drain-sink")
    sink.start()
    sv.wait_quiet(args.quiet_wait, 0.25)
    t0 = time.monotonic()
    server.flush()
    wait_until(f"{kind} drain", lambda: sink.count() >= n and server.queued() == 0, sink.count, args.stall_timeout)
    elapsed = time.monotonic() - t0
    got = sv.count_files(sink.dir)
    server.stop()
    sink.stop()
    if got != n:
        raise sv.BenchError(f"{kind}: the sink holds {got} messages after the drain, not {n}")
    return {"seconds": elapsed, "rate": n / elapsed}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--messages", type=int, default=10000, help="messages for the throughput run")
    ap.add_argument("-n", "--drain", type=int, default=10000,
                    help="deferred messages for the drain run (0: no drain run)")
    ap.add_argument("--size", type=int, default=2048, help="payload bytes per message (smtp-source -l)")
    ap.add_argument("--sessions", type=int, default=16, help="parallel submission sessions (smtp-source -s)")
    ap.add_argument("--concurrency", type=int, default=20, help="default_destination_concurrency_limit of both")
    ap.add_argument("--sink", default="127.0.0.2", help="loopback address of the smtp-sink (port 25)")
    ap.add_argument("--servers", default="postern,postfix", help="which relays to run (postern,postfix)")
    ap.add_argument("--postern", dest="binary_src",
                    default=os.environ.get("POSTERN_BIN", os.path.join(sv.REPO, "build", "postern")),
                    help="the postern binary (copied to the work directory for the run)")
    ap.add_argument("--tmpdir", default="/var/tmp", help="where the work directory goes (a disk, not tmpfs)")
    ap.add_argument("--stall-timeout", type=float, default=60, help="give up when nothing moves for this long")
    ap.add_argument("--quiet-wait", type=float, default=120, help="wait up to this long for an idle machine")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs, dumps)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (Postfix and the sink on port 25 need it)")
    for tool in ("smtp-source", "smtp-sink", "postfix", "postconf", "postqueue"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (apt-get install postfix)")
    if not args.sink.startswith("127."):
        sys.exit("--sink must be a loopback address")
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    signal.signal(signal.SIGTERM, sv._terminate)
    workdir = tempfile.mkdtemp(prefix="postern-relay-bench-", dir=args.tmpdir)
    os.chmod(workdir, 0o755)
    if not args.keep:
        sv.on_cleanup(lambda: shutil.rmtree(workdir, ignore_errors=True))
    args.binary = os.path.join(workdir, "postern-binary")
    results = {}
    try:
        if "postern" in servers:
            shutil.copy2(args.binary_src, args.binary)
        for kind in servers:
            sv.log(f"{kind}: relaying {args.messages} messages ({args.sessions} sessions, {args.size} bytes)")
            results[kind] = throughput(kind, args, workdir)
            if args.drain:
                sv.log(f"{kind}: draining {args.drain} deferred messages")
                results[kind]["drain"] = drain(kind, args, workdir)
    except (sv.BenchError, OSError) as e:
        print(f"benchmark failed: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        sv.run_cleanups()
    print(f"relay to smtp-sink at [{args.sink}]:25, {args.size}-byte messages, {args.sessions} sessions in, "
          f"destination concurrency {args.concurrency}")
    print(f"{'':10} {'relay msg/s':>12} {'CPU s/1k':>9} {'drain s':>9} {'drain msg/s':>12}")
    for kind, r in results.items():
        d = r.get("drain", {"seconds": float("nan"), "rate": float("nan")})
        print(f"{kind:10} {r['rate']:12.1f} {1000 * r['cpu'] / args.messages:9.2f} {d['seconds']:9.1f} "
              f"{d['rate']:12.1f}")
    if len(results) == 2:
        a, b = results["postern"], results["postfix"]
        print(f"Postern/Postfix: relay throughput x{a['rate'] / b['rate']:.2f}")
        if args.drain:
            print(f"Postern/Postfix: drain time x{a['drain']['seconds'] / b['drain']['seconds']:.2f} (lower is faster)")
    for kind, r in results.items():
        for line in r["problems"][:10]:
            print(f"problem ({kind}): {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
