"""Real POP3 clients against Postern (and the private Dovecot, the same assertions): fetchmail retrieving mail
into an MDA, with --keep (the messages stay) and without (they are deleted), and curl's pop3:// URLs
(LIST, RETR, UIDL). Each test is skipped when its client is not installed.
"""
import os
import re
import shutil
import subprocess

import pytest

from imap_servers import make_message
from test_pop3 import ALICE, BOB, PASSWORD, crlf, maildir_files, on_disk, pop3_server, postern_pop3  # noqa: F401

FETCHMAIL = shutil.which("fetchmail")
CURL = shutil.which("curl")


def fetchmail(srv, tmp_path, keep):
    """Runs fetchmail once for alice and returns the messages it handed to its MDA (bytes, LF line ends)."""
    out = tmp_path / "out"
    out.mkdir()
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no syslog\nset invisible\n"
        f"poll 127.0.0.1 service {srv.port} protocol pop3 auth password timeout 15\n"
        f'  user "{ALICE}" there with password "{PASSWORD}"\n'
        "  sslproto '' fetchall no rewrite" + (" keep" if keep else " nokeep") + "\n"
        f"  mda \"/bin/sh -c 'cat > {out}/msg.$$'\"\n")
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path), FETCHMAILUSER="root",
               LC_ALL="C")
    p = subprocess.run([FETCHMAIL, "--nodetach", "--nosyslog", "-f", str(rc), "-i", str(tmp_path / "ids"),
                        "--pidfile", str(tmp_path / "pid"), "-v"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, f"fetchmail exited {p.returncode}\n{p.stdout}\n{p.stderr}"
    got = []
    for name in os.listdir(out):
        with open(out / name, "rb") as f:
            got.append(f.read())
    return got, p.stdout + p.stderr


def lf(data):
    return data.replace(b"\r\n", b"\n")


@pytest.mark.skipif(not FETCHMAIL, reason="fetchmail is not installed")
@pytest.mark.parametrize("keep", [True, False], ids=["keep", "nokeep"])
def test_fetchmail(pop3_server, tmp_path, keep):
    srv = pop3_server
    srv.deliver(ALICE, make_message(subject="fetch one", body="one\r\n.dot line\r\n"))
    srv.deliver(ALICE, make_message(subject="fetch two", body="two\r\n"))
    p = srv.login(ALICE)
    expected = sorted(lf(m) for m in on_disk(srv))
    p.quit()
    got, log = fetchmail(srv, tmp_path, keep)
    assert sorted(got) == expected, log
    assert re.search(r"2 messages? for alice@example\.test", log), log
    left = maildir_files(srv.maildir(ALICE))
    if keep:
        assert len(left) == 2
        # fetchmail retrieved with RETR: the messages are \Seen now
        assert all("S" in flags for _, flags, _ in left.values()), left
    else:
        assert left == {}
        p = srv.login(ALICE)
        assert p.stat() == (0, 0)
        p.quit()


def curl(*args):
    p = subprocess.run([CURL, "-sS", "--max-time", "15", *args], capture_output=True, timeout=30)
    assert p.returncode == 0, f"curl {args} exited {p.returncode}: {p.stderr.decode(errors='replace')}"
    return p.stdout


@pytest.mark.skipif(not CURL, reason="curl is not installed")
def test_curl_list_retr_uidl(pop3_server):
    srv = pop3_server
    srv.deliver(ALICE, make_message(subject="curl one", body="first\r\n"))
    srv.deliver(ALICE, make_message(subject="curl two", body=".leading dot\r\nsecond\r\n"))
    p = srv.login(ALICE)
    expected = on_disk(srv)
    uidls = p.uidl()[1]
    p.quit()
    base = f"pop3://127.0.0.1:{srv.port}"
    user = f"{ALICE}:{PASSWORD}"
    listing = curl(f"{base}/", "-u", user)
    assert listing.split(b"\r\n") == [b"%d %d" % (i + 1, len(m)) for i, m in enumerate(expected)] + [b""]
    assert curl(f"{base}/2", "-u", user) == expected[1]  # curl removes the byte-stuffing again
    assert curl(f"{base}/1", "-u", user) == expected[0]
    assert curl(f"{base}/", "-u", user, "-X", "UIDL").split(b"\r\n")[:-1] == uidls
    # curl sends QUIT: the RETRs mark the messages \Seen
    assert all("S" in flags for _, flags, _ in maildir_files(srv.maildir(ALICE)).values())


@pytest.mark.skipif(not CURL, reason="curl is not installed")
def test_curl_wrong_password(postern_pop3):
    p = subprocess.run([CURL, "-sS", "--max-time", "15", f"pop3://127.0.0.1:{postern_pop3.port}/",
                        "-u", f"{BOB}:wrong"], capture_output=True, timeout=30)
    assert p.returncode == 67, p  # CURLE_LOGIN_DENIED
