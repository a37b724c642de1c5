"""System users (the guide's setup: mail accounts are login accounts) when Postern runs as root: the
network-facing process is not root, passwords are checked by the privileged helper (PAM service `postern`
when /etc/pam.d/postern exists, else shadow), and mail lands in ~user/Maildir owned by the user.
Skipped when not root (the test creates a Unix user).
"""
import imaplib
import os
import pwd
import smtplib
import subprocess
import time
import uuid

import pytest

from conftest import free_port

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates a system user: needs root")

PASSWORD = "Sys-user-pw-7"


@pytest.fixture
def system_user():
    name = "pt" + uuid.uuid4().hex[:8]
    subprocess.run(["useradd", "--create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    subprocess.run(["chpasswd"], input=f"{name}:{PASSWORD}\n", text=True, check=True)
    yield pwd.getpwnam(name)
    subprocess.run(["userdel", "--remove", name], capture_output=True)


def status_uid(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError("no Uid line")


def test_system_user_login_and_delivery(make_postern, system_user):
    imap = free_port()
    p = make_postern(extra_config=f"imap_listen = 127.0.0.1:{imap}\ndisable_plaintext_auth = no\n")
    # The process that talks to clients runs as mail_owner, every uid of it (real, effective, saved, fs).
    assert all(u == pwd.getpwnam("postern").pw_uid for u in status_uid(p.proc.pid)), status_uid(p.proc.pid)

    s = smtplib.SMTP("127.0.0.1", p.port, timeout=10)
    s.sendmail("someone@client.test", [f"{system_user.pw_name}@localhost"], b"Subject: hi\r\n\r\nfor you\r\n")
    s.quit()
    new = os.path.join(system_user.pw_dir, "Maildir", "new")
    (name,) = os.listdir(new)
    st = os.stat(os.path.join(new, name))
    assert (st.st_uid, st.st_gid) == (system_user.pw_uid, system_user.pw_gid)
    assert os.stat(os.path.join(system_user.pw_dir, "Maildir")).st_mode & 0o777 == 0o700

    # Wrong password and unknown user: the same answer, both slowed down alike.
    timings = {}
    for user, password in ((system_user.pw_name, "wrong"), ("nosuchuser" + system_user.pw_name, "wrong")):
        m = imaplib.IMAP4("127.0.0.1", imap, timeout=30)
        start = time.time()
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            m.login(user, password)
        timings[user] = time.time() - start
        m.logout()
    a, b = timings.values()
    assert abs(a - b) < max(0.5, 0.5 * max(a, b)), timings
    assert PASSWORD not in p.log() and "wrong" not in p.log()
