"""System users (the guide's setup: mail accounts are login accounts) when Postern runs as root: the
network-facing process is not root, passwords are checked by the privileged helper (PAM service `postern`
when /etc/pam.d/postern exists, else shadow), mail lands in ~user/Maildir owned by the user, and IMAP and
POP3 sessions run in a process of the user's own (the server's process proxies them).
Skipped when not root (the test creates a Unix user).
"""
import glob
import imaplib
import os
import poplib
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


def session_processes():
    """(pid, uids) of every running session-child process."""
    out = []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(cmdline, "rb") as f:
                args = f.read().split(b"\0")
            if b"session-child" in args:
                pid = int(cmdline.split("/")[2])
                out.append((pid, status_uid(pid), args))
        except (OSError, AssertionError):
            pass
    return out


def test_system_user_reads_mail_in_own_process(make_postern, system_user):
    imap, pop3 = free_port(), free_port()
    p = make_postern(extra_config=f"imap_listen = 127.0.0.1:{imap}\npop3_listen = 127.0.0.1:{pop3}\n"
                                  "disable_plaintext_auth = no\n")
    user = system_user.pw_name

    def deliver(subject):
        s = smtplib.SMTP("127.0.0.1", p.port, timeout=10)
        s.sendmail("someone@client.test", [f"{user}@localhost"], f"Subject: {subject}\r\n\r\nbody\r\n".encode())
        s.quit()

    deliver("first")
    m = imaplib.IMAP4("127.0.0.1", imap, timeout=30)
    assert m.login(user, PASSWORD)[0] == "OK"
    mine = [(pid, uids) for pid, uids, args in session_processes() if user.encode() in args]
    assert len(mine) == 1 and all(u == system_user.pw_uid for u in mine[0][1]), mine
    assert m.select("INBOX") == ("OK", [b"1"])
    typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"Subject: first" in data[0][1]
    assert m.create("Archive")[0] == "OK"
    assert os.stat(os.path.join(system_user.pw_dir, "Maildir", ".Archive")).st_uid == system_user.pw_uid
    # IDLE sees a delivery made by the server's process.
    tag = m._new_tag()
    m.send(tag + b" IDLE\r\n")
    assert m.readline().startswith(b"+")
    deliver("second")
    assert m.readline() == b"* 2 EXISTS\r\n"
    m.send(b"DONE\r\n")
    while not m.readline().startswith(tag + b" OK"):
        pass
    m.logout()

    pop = poplib.POP3("127.0.0.1", pop3, timeout=30)
    pop.user(user)
    assert pop.pass_(PASSWORD).startswith(b"+OK")
    assert pop.stat()[0] == 2
    assert b"Subject: second" in b"\n".join(pop.retr(2)[1])
    pop.dele(1)
    # One POP3 session per maildrop, also between the users' own session processes.
    second = poplib.POP3("127.0.0.1", pop3, timeout=30)
    second.user(user)
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        second.pass_(PASSWORD)
    second.quit()
    pop.quit()
    deadline = time.time() + 10
    while any(user.encode() in args for _, _, args in session_processes()) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(user.encode() in args for _, _, args in session_processes()), "session processes end"
    cur = os.listdir(os.path.join(system_user.pw_dir, "Maildir", "cur"))
    new = os.listdir(os.path.join(system_user.pw_dir, "Maildir", "new"))
    assert len(cur) + len(new) == 1, (cur, new)
