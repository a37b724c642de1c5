"""imapflow (npm), a real Node.js IMAP client, against each IMAP server (Dovecot and Postern).

tests/e2e/js/imapflow_check.mjs logs in, lists the mailboxes, opens INBOX, fetches flags, envelope,
bodystructure, size and source of every message, sets \\Flagged, enters IDLE and waits for the message this
test delivers meanwhile, then APPENDs one. It prints READY / EXISTS / RESULT lines (JSON) on stdout.

The npm packages are pinned in tests/e2e/js/package-lock.json; scripts/install-deps.sh runs `npm ci` there.
ENVELOPE and BODYSTRUCTURE are only checked to be present (their content is checked elsewhere).
"""
import base64
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from imap_servers import PASSWORD, full_user, make_message

JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")
SCRIPT = os.path.join(JS_DIR, "imapflow_check.mjs")
NODE = shutil.which("node")


def _skip_reason():
    if not NODE:
        return "node is not installed (scripts/install-deps.sh installs nodejs and npm)"
    if not os.path.isdir(os.path.join(JS_DIR, "node_modules", "imapflow")):
        return "tests/e2e/js/node_modules is missing: run scripts/install-deps.sh (npm ci --prefix tests/e2e/js)"
    v = subprocess.run([NODE, "-p", "process.versions.node"], capture_output=True, text=True, timeout=30)
    try:
        major = int(v.stdout.strip().split(".")[0])
    except ValueError:
        return f"cannot tell node's version: {v.stdout!r} {v.stderr!r}"
    if major < 20:
        return f"node {v.stdout.strip()} is older than imapflow 2's requirement (node >= 20)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


class Script:
    """The node process, its stdout read line by line in a thread."""

    def __init__(self, srv, user):
        self.proc = subprocess.Popen([NODE, SCRIPT, srv.host, str(srv.port), full_user(user), PASSWORD],
                                     cwd=JS_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = []
        self.cond = threading.Condition()
        self.stderr = b""
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)  # EOF
            self.cond.notify_all()

    def _read_err(self):
        self.stderr = self.proc.stderr.read()

    def wait_for(self, word, timeout=25):
        """The JSON after the first stdout line starting with `word`."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for ln in self.lines:
                    if ln is None:
                        self.proc.wait(timeout=5)
                        raise AssertionError(f"imapflow script ended (exit {self.proc.returncode}) before {word}:"
                                             f"\n{self.lines}\n{self.stderr.decode('utf-8', 'replace')}")
                    if ln.startswith(word + " "):
                        return json.loads(ln[len(word) + 1:])
                left = deadline - time.time()
                if left <= 0:
                    self.proc.kill()
                    raise AssertionError(f"no {word} line from the imapflow script within {timeout}s: {self.lines}")
                self.cond.wait(left)

    def finish(self):
        try:
            rc = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_imapflow_reads_flags_idles_and_appends(imap_server):
    srv = imap_server
    srv.deliver("alice", make_message("first via delivery", "one\r\n"))
    srv.deliver("alice", make_message("second via delivery", "two\r\n" * 50))
    # A third message with flags and a keyword, APPENDed (its bytes are then exactly what the server keeps).
    third = make_message("third, appended with flags", "three\r\n")
    m = srv.login("alice")
    typ, _ = m.append("INBOX", r"(\Seen $Forwarded)", None, third)
    assert typ == "OK"
    typ, data = m.select("INBOX")
    assert typ == "OK" and int(data[0]) == 3
    typ, data = m.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE)")
    assert typ == "OK"
    m.logout()

    script = Script(srv, "alice")
    try:
        ready = script.wait_for("READY")
        assert ready == {"idling": True}, ready
        # Delivered while the client idles: the server must push EXISTS without a client command.
        srv.deliver("alice", make_message("arrived during IDLE", "four\r\n"))
        ev = script.wait_for("EXISTS")
        result = script.wait_for("RESULT")
        rc = script.finish()
        assert rc == 0, script.stderr.decode("utf-8", "replace")
    finally:
        script.kill()

    # LIST: INBOX is there, with '/' as separator on both servers' configurations here.
    paths = {mb["path"]: mb for mb in result["mailboxes"]}
    assert "INBOX" in paths, result["mailboxes"]
    assert paths["INBOX"]["delimiter"] in ("/", "."), paths["INBOX"]

    opened = result["opened"]
    assert opened["path"] == "INBOX" and opened["exists"] == 3 and not opened["readOnly"], opened
    assert opened["uidValidity"] > 0 and opened["uidNext"] == 4, opened

    msgs = result["messages"]
    assert [x["subject"] for x in msgs] == ["first via delivery", "second via delivery",
                                            "third, appended with flags"]
    assert [x["uid"] for x in msgs] == [1, 2, 3]
    assert [x["seq"] for x in msgs] == [1, 2, 3]
    for x in msgs:
        assert x["hasEnvelope"] and x["hasBodyStructure"], x
        assert x["size"] == x["sourceLength"], x  # RFC822.SIZE is the length of BODY[]
    assert msgs[0]["flags"] == [] and msgs[1]["flags"] == []
    assert msgs[2]["flags"] == ["$Forwarded", "\\Seen"], msgs[2]
    assert base64.b64decode(msgs[2]["source"]) == third
    assert base64.b64decode(msgs[1]["source"]).endswith(b"\r\n\r\n" + b"two\r\n" * 50)

    assert result["flagStored"] is True
    assert result["flagsAfterStore"] == ["\\Flagged"], result["flagsAfterStore"]

    # IDLE: 'exists' fired while idling, from 3 to 4, and the new message is the one delivered.
    assert ev == result["existsEvent"]
    assert ev["path"] == "INBOX" and ev["prevCount"] == 3 and ev["count"] == 4, ev
    assert ev["duringIdle"] is True, ev
    new = result["newMessages"]
    assert [(x["uid"], x["subject"]) for x in new] == [(4, "arrived during IDLE")], new

    # APPEND through imapflow: APPENDUID gives UID 5 in the same UIDVALIDITY, and STATUS agrees.
    assert result["appended"] == {"uid": 5, "uidValidity": opened["uidValidity"]}, result["appended"]
    assert result["statusAfterAppend"] == {"messages": 5, "uidNext": 6}, result["statusAfterAppend"]

    # What imapflow did is visible to another client: \Flagged on UID 1, the appended message \Seen.
    m = srv.login("alice")
    m.select("INBOX", readonly=True)
    typ, data = m.uid("FETCH", "1:*", "(FLAGS)")
    assert typ == "OK"
    flags = {}
    for item in data:
        text = item.decode() if isinstance(item, bytes) else item[0].decode()
        uid = int(text.split("UID ")[1].split()[0].rstrip(")")) if "UID " in text else None
        flags[uid] = text.split("FLAGS (")[1].split(")")[0].split()
    assert flags[1] == ["\\Flagged"], flags
    assert "\\Seen" in flags[5], flags
    m.logout()
