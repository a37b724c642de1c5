"""Real IMAP clients against every server in IMAP_SERVERS: mbsync (isync) two-way sync, offlineimap3 one sync,
curl imap:// listing and fetching. Each is skipped when the tool is not installed."""
import os
import re
import shutil
import subprocess

import pytest

from imap_servers import PASSWORD, make_message


def tool(name):
    path = shutil.which(name)
    if not path:
        pytest.skip(f"{name} is not installed (scripts/install-deps.sh installs it)")
    return path


def maildir_files(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            if os.path.basename(d) in ("cur", "new"):
                out[os.path.join(d, f)] = open(os.path.join(d, f), "rb").read()
    return out


def test_mbsync_two_way(imap_server, tmp_path):
    mbsync = tool("mbsync")
    imap_server.deliver("alice", make_message("first for mbsync"))
    imap_server.deliver("alice", make_message("second for mbsync"))
    local = tmp_path / "Mail"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(f"""\
IMAPAccount test
Host {imap_server.host}
Port {imap_server.port}
User alice@example.test
Pass {PASSWORD}
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account test

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel test
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
""")

    def run():
        p = subprocess.run([mbsync, "-c", str(rc), "-a"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        return p

    run()
    files = maildir_files(local / "INBOX")
    assert len(files) == 2, files
    assert sorted(b"first for mbsync" in v for v in files.values()) == [False, True]
    for sub in ("Drafts", "Sent", "Trash", "Templates"):
        assert (local / sub / "cur").is_dir(), os.listdir(local)
    # local change: a new message in the local Sent folder goes up to the server
    sent = local / "Sent" / "new"
    (sent / "1700000000.test.host").write_bytes(make_message("written locally"))
    run()
    r = imap_server.raw("alice")
    _, lines = r.ok("STATUS Sent (MESSAGES)")
    assert b"MESSAGES 1" in lines[-1], lines
    # a second run changes nothing, locally or on the server
    before = maildir_files(local)
    run()
    assert maildir_files(local) == before
    _, lines = r.ok("STATUS INBOX (MESSAGES)")
    assert b"MESSAGES 2" in lines[-1]


def test_offlineimap_sync(imap_server, tmp_path):
    offlineimap = tool("offlineimap")
    imap_server.deliver("alice", make_message("for offlineimap"))
    local = tmp_path / "Mail"
    rc = tmp_path / "offlineimaprc"
    rc.write_text(f"""\
[general]
accounts = test
metadata = {tmp_path}/meta

[Account test]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {local}
sep = /

[Repository remote]
type = IMAP
remotehost = {imap_server.host}
remoteport = {imap_server.port}
remoteuser = alice@example.test
remotepass = {PASSWORD}
ssl = no
starttls = no
""")
    p = subprocess.run([offlineimap, "-c", str(rc), "-o", "-u", "basic"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "ERROR" not in p.stdout + p.stderr, p.stdout + p.stderr
    files = maildir_files(local / "INBOX")
    assert len(files) == 1 and b"for offlineimap" in list(files.values())[0], files
    assert (local / "Sent").is_dir()


def test_curl_list_and_fetch(imap_server):
    curl = tool("curl")
    msg = make_message("for curl", body="curl body line\r\n")
    imap_server.deliver("alice", msg)
    base = f"imap://{imap_server.host}:{imap_server.port}"
    auth = ["--user", f"alice@example.test:{PASSWORD}", "--max-time", "20", "-s", "-S"]
    p = subprocess.run([curl, *auth, f"{base}/"], capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    names = re.findall(rb'^\* LIST \([^)]*\) "/" "?([^"\r\n]+)"?\r?$', p.stdout, re.M)
    assert {b"INBOX", b"Drafts", b"Sent", b"Trash", b"Templates"} <= set(names), p.stdout
    p = subprocess.run([curl, *auth, f"{base}/INBOX;UID=1"], capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    # Postern adds Return-Path, Delivered-To and Received on SMTP delivery, as Postfix does.
    assert p.stdout.endswith(msg), p.stdout
    p = subprocess.run([curl, *auth, f"{base}/INBOX?SUBJECT%20curl"], capture_output=True, timeout=30)
    assert p.returncode == 0 and p.stdout.strip() == b"* SEARCH 1", p.stdout
