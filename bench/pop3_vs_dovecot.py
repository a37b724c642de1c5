#!/usr/bin/python3
"""Postern vs Dovecot 2.3: POP3 side by side, on the same messages, in one run (see bench/README.md).

The same N generated messages (bench/imap_vs_dovecot.py's corpus) are written into alice@example.test's
Maildir cur/ of each server before they start; then, Postern and Dovecot alternating:

  1. the first session: USER/PASS, STAT, UIDL, QUIT (neither server has an index of the Maildir yet)
  2. S more such sessions (default 100), one after the other (--parallel P: P at a time)
  3. one session: RETR + DELE of every message, then QUIT (the deletions happen at QUIT), by a client in C
     (bench/pop3_retr.c, compiled here): one command at a time, so a Python client would cost as much time
     per command as the servers and be most of what is measured
  4. the same Maildir written again (both servers see it in an untimed STAT/UIDL session first), then one
     session: RETR + DELE of every message with up to --window commands sent ahead of their replies (RFC
     2449 PIPELINING, which both servers announce), then QUIT. Test 3 waits for every reply, so most of its
     time is the loopback round trip and the wake-ups of client and server, the same for both servers; this
     one shows what each server itself spends on a command

Python 3 standard library and a C compiler; run as root.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imap_vs_dovecot as ib  # noqa: E402
from imap_vs_dovecot import BenchError, log, sb  # noqa: E402


class Pop:
    """A blocking raw POP3 client."""

    def __init__(self, port, timeout=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout or ib.STALL)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0
        self.greeting = self.line()
        if not self.greeting.startswith(b"+OK"):
            raise BenchError(f"POP3 greeting {self.greeting!r}")

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

    def multiline(self):
        """The body of a multi-line reply up to (without) the terminating '.' line, still dot-stuffed."""
        start = self.pos
        if self.buf.startswith(b".\r\n", start):
            self.pos += 3
            return b""
        # start is right after the status line, so a body's first line needs no special case: search for
        # CRLF.CRLF from two bytes before it
        scan = start - 2
        while True:
            i = self.buf.find(b"\r\n.\r\n", scan)
            if i >= 0:
                out = bytes(self.buf[start:i + 2])
                self.pos = i + 5
                return out
            scan = max(start - 2, len(self.buf) - 4)
            d = self.sock.recv(1 << 20)  # no compaction here: start must stay valid
            if not d:
                raise EOFError("connection closed by the server")
            self.buf += d

    def cmd(self, text, multi=False):
        self.sock.sendall(text.encode() + b"\r\n")
        first = self.line()
        if not first.startswith(b"+OK"):
            raise BenchError(f"{text.split()[0]}: {first!r}")
        return (first, self.multiline()) if multi else first

    def login(self, user=ib.USER):
        self.cmd(f"USER {user}")
        self.cmd(f"PASS {ib.PASSWORD}")

    def quit(self):
        try:
            self.cmd("QUIT")
        finally:
            self.sock.close()


def stat_uidl(port):
    p = Pop(port)
    p.login()
    st = p.cmd("STAT").split()
    _first, body = p.cmd("UIDL", multi=True)
    p.quit()
    return int(st[1]), body.count(b"\r\n")


def sessions(port, count, parallel):
    results, errors = [], []

    def worker(k):
        for _ in range(k):
            try:
                results.append(stat_uidl(port))
            except (BenchError, OSError, EOFError) as e:
                errors.append(repr(e))

    per = [count // parallel + (1 if i < count % parallel else 0) for i in range(parallel)]
    ths = [threading.Thread(target=worker, args=(k,)) for k in per]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    if errors and not results:
        raise BenchError(errors[0])
    counts = sorted(set(results))
    return {"count": len(results), "errors": errors, "stat": counts[0][0] if counts else 0,
            "uidl": counts[0][1] if counts else 0, "distinct": len(counts)}


def build_retr_client(work):
    """Compiles bench/pop3_retr.c, the RETR + DELE client, into the work directory."""
    out = os.path.join(work, "pop3_retr")
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise BenchError("no C compiler (cc) to build bench/pop3_retr.c (Debian: apt-get install gcc)")
    r = subprocess.run([cc, "-O2", "-o", out, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                           "pop3_retr.c")], capture_output=True)
    if r.returncode != 0:
        raise BenchError(f"building bench/pop3_retr.c failed:\n{r.stderr.decode(errors='replace')}")
    return out


def retr_dele(client, port, maildir, window=1):
    r = subprocess.run([client, str(port), ib.USER, ib.PASSWORD, str(window)], capture_output=True,
                       timeout=ib.STALL * 10)
    if r.returncode != 0:
        raise BenchError(r.stderr.decode(errors="replace").strip())
    n, total = map(int, r.stdout.split())
    left = sum(len([x for x in os.listdir(os.path.join(maildir, d)) if not x.startswith(".")])
               for d in ("cur", "new"))
    return {"count": n, "bytes": total, "left": left}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ib.common_args(ap)
    ap.add_argument("--sessions", type=int, default=100, help="STAT/UIDL sessions (default 100)")
    ap.add_argument("--parallel", type=int, default=1, help="STAT/UIDL sessions at a time (default 1)")
    ap.add_argument("--window", type=int, default=16,
                    help="commands sent ahead of their replies in the pipelined RETR + DELE test (default 16)")
    ap.add_argument("--stall-timeout", type=float, default=60,
                    help="a test fails when the server sends nothing for this many seconds")
    args = ap.parse_args()
    if args.quick:
        args.messages = min(args.messages, 1000)
        args.sessions = min(args.sessions, 20)
        args.quiet_wait = 0
    args.servers = [x.strip().lower() for x in args.servers.split(",") if x.strip()]
    args.connections = max(100, args.parallel)
    ib.STALL = args.stall_timeout

    work, servers, meta = ib.setup(args, "pop3-bench-")
    problems, results = [], {}
    try:
        retr_client = build_retr_client(work)
        log(f"generating {args.messages} messages (seed {args.seed}) and writing them into each server's cur/")
        msgs = ib.corpus(args.messages, args.seed)
        meta.append(("corpus", f"{len(msgs)} messages, seed {args.seed}, {sum(map(len, msgs)) / 1048576:.1f} MiB "
                               "(LF, in cur/), the IMAP benchmark's generator"))
        uid, gid = ib.mail_ids()
        for s in servers:
            ib.write_maildir(s.maildir(), msgs, uid, gid)
        for s in servers:
            s.start()
        ib.run_phase(args, servers, "first session (STAT, UIDL; no index yet)",
                     lambda s: sessions(s.pop3_port, 1, 1), problems, results, "first")
        ib.run_phase(args, servers, f"{args.sessions} sessions (STAT, UIDL)",
                     lambda s: sessions(s.pop3_port, args.sessions, args.parallel), problems, results, "sessions")
        for k in ("first", "sessions"):
            for n, r in results[k].items():
                if not r.get("failed") and (r["stat"] != args.messages or r["uidl"] != args.messages
                                            or r["distinct"] != 1):
                    problems.append(f"{n}: STAT/UIDL reported {r['stat']}/{r['uidl']} messages, "
                                    f"{args.messages} expected")
        ib.run_phase(args, servers, f"RETR + DELE of {args.messages}, QUIT",
                     lambda s: retr_dele(retr_client, s.pop3_port, s.maildir()), problems, results, "retr")
        log(f"writing the {args.messages} messages again, for the pipelined RETR + DELE")
        for s in servers:
            ib.write_maildir(s.maildir(), msgs, uid, gid, start=len(msgs))  # new names: new messages
            stat_uidl(s.pop3_port)
        del msgs
        ib.run_phase(args, servers, f"RETR + DELE of {args.messages} pipelined ({args.window} ahead), QUIT",
                     lambda s: retr_dele(retr_client, s.pop3_port, s.maildir(), args.window), problems, results,
                     "pipelined")
        for key in ("retr", "pipelined"):
            ib.check_same(results, key, "bytes", "RETR", problems)
            for n, r in results[key].items():
                if not r.get("failed") and r["left"]:
                    problems.append(f"{n}: {r['left']} messages left in the Maildir after DELE + QUIT")
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
            lines = s.problems()
            for p in lines[:5]:
                problems.append(f"{s.name} log: {p[:300]}")
            if len(lines) > 5:
                problems.append(f"{s.name} log: ... {len(lines) - 5} more such lines")
        sb.run_cleanups()

    rows = []

    def row(label, key, unit):
        a, b = results.get(key, {}).get("Postern"), results.get(key, {}).get("Dovecot")
        if a is None and b is None:
            return
        rows.append([label, ib.cell_time(a, unit), ib.cell_time(b, unit), ib.ratio_time(a, b), ib.cpu_cell(a),
                     ib.cpu_cell(b), ib.mem_cell(a), ib.mem_cell(b)])

    row(f"first session: USER/PASS, STAT, UIDL ({args.messages} msgs), QUIT; no index yet", "first", None)
    row(f"{args.sessions} sessions: USER/PASS, STAT, UIDL, QUIT ({args.parallel} at a time)", "sessions", "session")
    row(f"1 session: RETR + DELE of {args.messages} msgs, QUIT (each command waits for its reply)", "retr", "msg")
    row(f"1 session: RETR + DELE of {args.messages} msgs, QUIT ({args.window} commands ahead, PIPELINING)",
        "pipelined", "msg")
    notes = [
        "Times are wall-clock seconds of the client (Python; RETR + DELE: C, bench/pop3_retr.c), on the same CPUs; rates in (..) per "
        "second.",
        "ratio D/P = Dovecot time / Postern time (> 1: Postern is faster).",
        "CPU s = user+system CPU seconds of all processes of the server during the test (its own cgroup); "
        "mem = sum of PSS over the server's processes at the end of the test.",
    ]
    ib.print_table("POP3: Postern vs Dovecot", meta, rows, notes, problems)
    failed = any(r.get("failed") for k in results for r in results[k].values())
    sys.exit(2 if failed or "interrupted" in problems else 0)


if __name__ == "__main__":
    main()
