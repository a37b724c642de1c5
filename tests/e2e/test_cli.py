"""The command line end to end: postconf, config errors, start/stop/status/reload, setup, maildirmake, user,
sendmail, mail, and (as root) delivery to a real system user's ~/Maildir as in the guide."""
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time

import pytest

from conftest import BIN, DOMAIN, Raw


def postern(*args, input=None, env=None, cwd=None):
    """Runs `postern ARGS...` (no implied -c) and returns the CompletedProcess."""
    return subprocess.run([BIN, *args], input=input, capture_output=True, text=True, timeout=60, env=env, cwd=cwd)


def write(path, text, mode=None):
    with open(path, "w") as f:
        f.write(text)
    if mode is not None:
        os.chmod(path, mode)


def read(path, binary=False):
    with open(path, "rb" if binary else "r") as f:
        return f.read()


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------------------------------------- postconf

MAIN_CF = """\
# Postern test configuration: comments and order must survive postconf -e.
myhostname = mail.example.test
queue_directory = {root}/queue

# Where mail is accepted.
#home_mailbox = mbox-in-a-comment
mydestination = $myhostname,
    localhost.$mydomain,
    localhost
# a comment right after the continuation lines
message_size_limit = 5000000
alias_maps =
"""


@pytest.fixture
def conf(tmp_path):
    """A configuration directory with a hand-written main.cf (comments, a continuation entry), mode 0640."""
    d = tmp_path / "etc"
    d.mkdir()
    write(d / "main.cf", MAIN_CF.format(root=tmp_path), 0o640)
    return str(d)


def test_postconf_prints_every_parameter_sorted(conf):
    p = postern("-c", conf, "postconf")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) > 40
    keys = [l.split(" =", 1)[0] for l in lines]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    for l in lines:  # Postfix's names are lower case but for a few such as smtp_tls_CAfile
        assert re.fullmatch(r"[a-zA-Z0-9_]+ =( .*)?", l), l
    # Effective values: main.cf's where set (continuation lines joined), the default elsewhere, unexpanded.
    assert "message_size_limit = 5000000" in lines
    assert "mydestination = $myhostname, localhost.$mydomain, localhost" in lines
    assert "smtpd_banner = $myhostname ESMTP $mail_name" in lines
    assert "home_mailbox = Maildir/" in lines
    assert "alias_maps =" in lines


def test_postconf_n_d_keys_and_x(conf, tmp_path):
    p = postern("-c", conf, "postconf", "-n")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "alias_maps =",
        "message_size_limit = 5000000",
        "mydestination = $myhostname, localhost.$mydomain, localhost",
        "myhostname = mail.example.test",
        f"queue_directory = {tmp_path}/queue",
    ]
    p = postern("-c", conf, "postconf", "-d", "message_size_limit", "mydestination", "home_mailbox", "smtp_listen")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "message_size_limit = 10240000",
        "mydestination = $myhostname, localhost.$mydomain, localhost",
        "home_mailbox = Maildir/",
        "smtp_listen = 25",
    ]
    d = postern("-c", conf, "postconf", "-d").stdout.splitlines()
    assert "message_size_limit = 10240000" in d and "queue_directory = /var/spool/postern" in d
    # KEY... in the order asked; -x expands $name.
    p = postern("-c", conf, "postconf", "queue_directory", "myhostname", "smtpd_banner")
    assert p.stdout.splitlines() == [f"queue_directory = {tmp_path}/queue", "myhostname = mail.example.test",
                                     "smtpd_banner = $myhostname ESMTP $mail_name"]
    p = postern("-c", conf, "postconf", "-x", "smtpd_banner", "mydestination", "myorigin")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "smtpd_banner = mail.example.test ESMTP Postern",
        "mydestination = mail.example.test, localhost.example.test, localhost",
        "myorigin = mail.example.test",
    ]
    p = postern("-c", conf, "postconf", "myhostname", "no_such_parameter")
    assert p.returncode != 0 and "no_such_parameter" in p.stderr
    assert "myhostname = mail.example.test" in p.stdout


def test_postconf_e_edits_in_place_keeping_comments_and_order(conf, tmp_path):
    cf = os.path.join(conf, "main.cf")
    # The guide's step: a new key is appended, nothing else moves.
    p = postern("-c", conf, "postconf", "-e", "home_mailbox = Maildir/")
    assert p.returncode == 0, p.stderr
    assert read(cf) == MAIN_CF.format(root=tmp_path) + "home_mailbox = Maildir/\n"
    # Replacing an existing key keeps its place; a multi-line entry becomes one line, and the comment after
    # it stays; the commented-out look-alike is not touched.
    p = postern("-c", conf, "postconf", "-e", "mydestination = mydomain.example, localhost",
                "message_size_limit=20000000")
    assert p.returncode == 0, p.stderr
    expected = MAIN_CF.format(root=tmp_path).replace(
        "mydestination = $myhostname,\n    localhost.$mydomain,\n    localhost\n",
        "mydestination = mydomain.example, localhost\n").replace(
        "message_size_limit = 5000000", "message_size_limit = 20000000") + "home_mailbox = Maildir/\n"
    assert read(cf) == expected
    assert stat.S_IMODE(os.stat(cf).st_mode) == 0o640
    assert sorted(os.listdir(conf)) == ["main.cf"]
    assert postern("-c", conf, "postconf", "mydestination").stdout == "mydestination = mydomain.example, localhost\n"
    # An empty value.
    assert postern("-c", conf, "postconf", "-e", "smtpd_sasl_local_domain =").returncode == 0
    assert read(cf).endswith("home_mailbox = Maildir/\nsmtpd_sasl_local_domain =\n")


@pytest.mark.parametrize("edit,key", [
    ("message_size_limit = lots", "message_size_limit"),
    ("no_such_parameter = 1", "no_such_parameter"),
    ("smtpd_sasl_auth_enable = perhaps", "smtpd_sasl_auth_enable"),
])
def test_postconf_e_refuses_a_bad_edit_and_leaves_main_cf_alone(conf, edit, key):
    cf = os.path.join(conf, "main.cf")
    before = read(cf, binary=True)
    # Together with a good edit: nothing at all is written.
    p = postern("-c", conf, "postconf", "-e", "home_mailbox = Maildir/", edit)
    assert p.returncode != 0
    assert key in p.stderr and "main.cf" in p.stderr
    assert read(cf, binary=True) == before
    assert sorted(os.listdir(conf)) == ["main.cf"]


def test_postconf_e_accepts_the_guides_sasl_and_restriction_lines(conf):
    lines = [
        "smtpd_sasl_local_domain =",
        "smtpd_sasl_auth_enable = yes",
        "smtpd_sasl_security_options = noanonymous",
        "broken_sasl_auth_clients = yes",
        "smtpd_recipient_restrictions = permit_sasl_authenticated,permit_mynetworks,reject_unauth_destination",
        "inet_interfaces = all",
    ]
    for line in lines:  # one command each, as the guide types them
        p = postern("-c", conf, "postconf", "-e", line)
        assert p.returncode == 0, f"{line}: {p.stderr}"
    n = postern("-c", conf, "postconf", "-n").stdout.splitlines()
    for line in lines:
        assert line in n


# -------------------------------------------------------------------------------------------- config errors

@pytest.mark.parametrize("bad,needles", [
    ("no_such_parameter = 1\n", ["no_such_parameter"]),
    ("message_size_limit = lots\n", ["message_size_limit", "lots"]),
    ("smtpd_timeout = soon\n", ["smtpd_timeout"]),
    ("this line has no equals sign\n", ["this line has no equals sign"]),
])
def test_config_error_names_file_line_and_key_and_serve_does_not_listen(make_postern, bad, needles):
    p = make_postern(start=False)
    cf = os.path.join(p.dir, "main.cf")
    text = read(cf) + "# a comment before the bad line\n"
    line = text.count("\n") + 1
    write(cf, text + bad)
    for cmd in (["check"], ["postconf", "-n"], ["sendmail", f"alice@{DOMAIN}"]):
        r = p.run(*cmd, check=False, input="Subject: x\n\nx\n")
        assert r.returncode != 0, cmd
        assert f"{cf}, line {line}" in r.stderr, (cmd, r.stderr)
        for n in needles:
            assert n in r.stderr, (cmd, r.stderr)
    assert p.messages("alice") == []
    proc = subprocess.Popen([BIN, "-c", p.dir, "serve"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("serve kept running on a bad main.cf")
    assert proc.returncode != 0
    assert f"{cf}, line {line}" in err and all(n in err for n in needles), err
    assert not listening(p.port)
    r = p.run("start", check=False)
    assert r.returncode != 0 and f"{cf}, line {line}" in r.stderr
    assert not listening(p.port)
    assert not os.path.exists(os.path.join(p.root, "queue", "pid", "master.pid"))


def test_config_error_unreadable_main_cf(make_postern):
    p = make_postern(start=False)
    cf = os.path.join(p.dir, "main.cf")
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if not setpriv:
            pytest.skip("running as root and setpriv(1) is missing: cannot make main.cf unreadable")
        os.chmod(p.root, 0o755)
        os.chmod(p.dir, 0o755)
        os.chmod(cf, 0o600)
        prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    else:
        os.chmod(cf, 0)
        prefix = []
    for cmd in (["check"], ["serve"], ["postconf"]):
        r = subprocess.run(prefix + [BIN, "-c", p.dir, *cmd], capture_output=True, text=True, timeout=15)
        assert r.returncode != 0, (cmd, r.stderr)
        assert cf in r.stderr and "Permission denied" in r.stderr, (cmd, r.stderr)
    assert not listening(p.port)


def test_config_error_main_cf_is_a_directory(make_postern):
    # A main.cf that cannot be read must not be taken for an empty one (which would mean: listen on port 25
    # and every other default). Only `check` and `postconf` are run here, never `serve`, so that a failure
    # cannot open a port beyond loopback.
    p = make_postern(start=False)
    cf = os.path.join(p.dir, "main.cf")
    os.unlink(cf)
    os.mkdir(cf)
    for cmd in (["check"], ["postconf", "-n"]):
        r = p.run(*cmd, check=False)
        assert r.returncode != 0, (cmd, r.stdout, r.stderr)
        assert cf in r.stderr, (cmd, r.stderr)


# ------------------------------------------------------------------------------------------ service control

@pytest.fixture
def daemon(make_postern):
    """A configuration for `postern start` (log to DIR/maillog); whatever it started is stopped afterwards."""
    p = make_postern("maillog_file = maillog\n", start=False)
    p.pid_file = os.path.join(p.root, "queue", "pid", "master.pid")
    yield p
    p.run("stop", check=False)
    if os.path.exists(p.pid_file):
        try:
            os.kill(int(read(p.pid_file).strip()), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass


def banner(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = s.recv(512)
            if not chunk:
                break
            data += chunk
        s.sendall(b"QUIT\r\n")
        return data.decode().rstrip("\r\n")


def wait_for(pred, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_start_status_reload_stop_restart(daemon):
    p = daemon
    r = p.run("status", check=False)
    assert r.returncode != 0 and "not running" in r.stderr
    r = p.run("start", check=False)
    assert r.returncode == 0, r.stderr
    pid = int(read(p.pid_file).strip())
    assert pid_alive(pid) and pid != os.getpid()
    assert str(pid) in r.stderr
    r = p.run("status", check=False)
    assert r.returncode == 0 and "running" in r.stderr and str(pid) in r.stderr
    # A second start refuses and leaves the first alone.
    r = p.run("start", check=False)
    assert r.returncode != 0 and "already running" in r.stderr and str(pid) in r.stderr
    assert int(read(p.pid_file).strip()) == pid and pid_alive(pid)
    # SMTP works.
    assert banner(p.port) == f"220 mail.{DOMAIN} ESMTP Postern"
    c = Raw(p.port)
    assert c.greeting == (220, [f"220 mail.{DOMAIN} ESMTP Postern"])
    assert c.cmd("EHLO before.example")[0] == 250
    assert c.cmd("MAIL FROM:<a@b.example>")[0] == 250
    # Reload with a new banner: new connections see it, the one opened before keeps working.
    assert p.run("postconf", "-e", "smtpd_banner = $myhostname ESMTP changed").returncode == 0
    r = p.run("reload", check=False)
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: banner(p.port) == f"220 mail.{DOMAIN} ESMTP changed"), banner(p.port)
    assert c.cmd(f"RCPT TO:<alice@{DOMAIN}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: across a reload\r\n\r\nstill here\r\n.\r\n")
    assert c.reply()[0] == 250
    assert c.cmd("QUIT")[0] == 221
    c.close()
    assert int(read(p.pid_file).strip()) == pid and pid_alive(pid)
    msgs = p.messages("alice")
    assert len(msgs) == 1 and msgs[0].endswith(b"Subject: across a reload\n\nstill here\n")
    log = read(os.path.join(p.dir, "maillog"))
    assert "reload" in log and f"to=<alice@{DOMAIN}>" in log
    # stop: exit 0, process gone, pid file removed, status says so.
    r = p.run("stop", check=False)
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: not pid_alive(pid), 5)
    assert not os.path.exists(p.pid_file)
    assert not listening(p.port)
    r = p.run("status", check=False)
    assert r.returncode != 0 and "not running" in r.stderr
    assert p.run("stop", check=False).returncode != 0
    # restart from stopped starts; restart while running replaces the process.
    r = p.run("restart", check=False)
    assert r.returncode == 0, r.stderr
    pid2 = int(read(p.pid_file).strip())
    assert pid_alive(pid2) and listening(p.port)
    r = p.run("restart", check=False)
    assert r.returncode == 0, r.stderr
    pid3 = int(read(p.pid_file).strip())
    assert pid3 != pid2 and pid_alive(pid3) and not pid_alive(pid2)
    assert banner(p.port) == f"220 mail.{DOMAIN} ESMTP changed"
    assert p.run("stop", check=False).returncode == 0
    assert not pid_alive(pid3) and not os.path.exists(p.pid_file)


def test_start_on_a_port_in_use_fails_clearly(daemon):
    p = daemon
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", p.port))
        blocker.listen()
        for cmd in ("start", "serve"):
            r = p.run(cmd, check=False)
            assert r.returncode != 0, cmd
            assert f"127.0.0.1:{p.port}" in r.stderr and "in use" in r.stderr, (cmd, r.stderr)
        assert not os.path.exists(p.pid_file)
        assert p.run("status", check=False).returncode != 0


# --------------------------------------------------------------------------------------------------- setup

@pytest.fixture
def setup_dir(tmp_path):
    d = tmp_path / "etc"
    d.mkdir()
    write(d / "main.cf", f"# written by hand\nmyhostname = mail.mydomain.example\nqueue_directory = {tmp_path}/q\n"
          f"alias_maps = hash:{d}/aliases\n")
    write(d / "aliases", "postmaster: root\n")
    return str(d)


def test_setup_non_interactive(setup_dir):
    p = postern("-c", setup_dir, "setup", "--type", "internet", "--mailname", "mydomain.example",
                "--destinations", "mydomain.example, localhost", "--mynetworks", "127.0.0.0/8",
                "--mailbox-size-limit", "0", "--recipient-delimiter", "+", "--inet-protocols", "all",
                "--root-recipient", "alice@example.test", "--non-interactive")
    assert p.returncode == 0, p.stderr
    n = postern("-c", setup_dir, "postconf", "-n").stdout.splitlines()
    for line in ("myorigin = mydomain.example", "mydestination = mydomain.example, localhost",
                 "mynetworks = 127.0.0.0/8", "mailbox_size_limit = 0", "recipient_delimiter = +",
                 "inet_protocols = all", "inet_interfaces = all", "myhostname = mail.mydomain.example"):
        assert line in n
    cf = read(os.path.join(setup_dir, "main.cf"))
    assert cf.startswith("# written by hand\nmyhostname = mail.mydomain.example\n")
    assert "root: alice@example.test" in read(os.path.join(setup_dir, "aliases")).splitlines()
    # The DNS records to publish.
    out = p.stdout
    assert re.search(r"^\s*mydomain\.example\.\s+MX\s+10 mail\.mydomain\.example\.$", out, re.M), out
    assert re.search(r'^\s*mydomain\.example\.\s+TXT\s+"v=spf1 [^"]*"$', out, re.M), out
    assert postern("-c", setup_dir, "check").returncode == 0


def test_setup_interactive_defaults_and_answers(setup_dir):
    answers = [
        "",                             # configuration type -> internet
        "mydomain.example",             # mail name
        "",                             # root recipient: none
        "mydomain.example, localhost",  # destinations
        "",                             # synchronous updates
        "",                             # local networks: default
        "0",                            # mailbox size limit
        "",                             # extension character: default
        "ipv4",                         # protocols
    ]
    p = postern("-c", setup_dir, "setup", input="\n".join(answers) + "\n")
    assert p.returncode == 0, p.stderr
    for prompt in ("System mail name", "Local networks", "Mailbox size limit", "Internet protocols"):
        assert prompt in p.stdout
    q = postern("-c", setup_dir, "postconf", "myorigin", "mydestination", "mynetworks", "mailbox_size_limit",
                "recipient_delimiter", "inet_protocols", "inet_interfaces").stdout.splitlines()
    assert q == ["myorigin = mydomain.example", "mydestination = mydomain.example, localhost",
                 "mynetworks = 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128", "mailbox_size_limit = 0",
                 "recipient_delimiter = +", "inet_protocols = ipv4", "inet_interfaces = all"]
    assert "MX" in p.stdout
    assert "root:" not in read(os.path.join(setup_dir, "aliases"))


def test_setup_local_only_and_bad_type(setup_dir):
    cf = os.path.join(setup_dir, "main.cf")
    before = read(cf)
    p = postern("-c", setup_dir, "setup", "--type", "bogus", "--non-interactive")
    assert p.returncode != 0 and "bogus" in p.stderr
    p = postern("-c", setup_dir, "setup", input="satellite\n" + "\n" * 8)
    assert p.returncode != 0 and "satellite" in p.stderr
    assert read(cf) == before
    p = postern("-c", setup_dir, "setup", "--type", "local", "--mailname", "mydomain.example", "--non-interactive")
    assert p.returncode == 0, p.stderr
    assert postern("-c", setup_dir, "postconf", "inet_interfaces").stdout == "inet_interfaces = loopback-only\n"
    assert " MX " not in p.stdout


# --------------------------------------------------------------------------------------------- maildirmake

def assert_maildir(path, folder=False):
    for sub in ("", "cur", "new", "tmp"):
        st = os.stat(os.path.join(path, sub))
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700, (path, sub, oct(st.st_mode))
    assert os.path.isfile(os.path.join(path, "maildirfolder")) == folder


def test_maildirmake(tmp_path):
    md = str(tmp_path / "Maildir")
    p = postern("maildirmake", md)
    assert p.returncode == 0, p.stderr
    assert_maildir(md)
    assert sorted(os.listdir(md)) == ["cur", "new", "tmp"]
    assert postern("maildirmake", "-f", "Sent", md).returncode == 0
    assert_maildir(os.path.join(md, ".Sent"), folder=True)
    # The guide's form: maildirmake.dovecot /etc/skel/Maildir/.Drafts
    for folder in (".Drafts", ".Trash", ".Templates"):
        p = postern("maildirmake", os.path.join(md, folder))
        assert p.returncode == 0, p.stderr
        assert_maildir(os.path.join(md, folder), folder=True)
    assert sorted(os.listdir(md)) == [".Drafts", ".Sent", ".Templates", ".Trash", "cur", "new", "tmp"]
    assert postern("maildirmake").returncode != 0


# ---------------------------------------------------------------------------------------------------- user

def verify_crypt(password, hashed):
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
        return crypt.crypt(password, hashed) == hashed
    except ImportError:
        if not shutil.which("openssl"):
            pytest.skip("neither Python's crypt module nor openssl to verify SHA512-CRYPT")
        salt = hashed.split("$")[2]
        out = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, password], capture_output=True,
                             text=True, check=True).stdout.strip()
        return out == hashed


# The crypt hash for every login, and the SCRAM-SHA-256 keys in an extra field (Dovecot ignores it).
LINE_RE = re.compile(r"([^:]+):\{SHA512-CRYPT\}(\$6\$[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86})::::::"
                     r"postern_scram_sha_256=\{SCRAM-SHA-256\}4096,[A-Za-z0-9+/=]+,[A-Za-z0-9+/=]{44},[A-Za-z0-9+/=]{44}")


def passwd_entries(p):
    path = os.path.join(p.dir, "users")
    st = os.stat(path)
    if os.geteuid() == 0:
        # root:mail_owner 0640: the server, running as mail_owner, reads it (like Dovecot's root:dovecot).
        import grp
        assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == 0
        assert grp.getgrgid(st.st_gid).gr_name == "postern"
    else:
        assert stat.S_IMODE(st.st_mode) == 0o600
    out = {}
    for line in read(path).splitlines():
        m = LINE_RE.fullmatch(line)
        assert m, line
        out[m.group(1)] = m.group(2)
    return out


def test_user_add_list_passwd_del(make_postern):
    p = make_postern(start=False)
    users = passwd_entries(p)
    assert sorted(users) == [f"alice@{DOMAIN}", f"bob@{DOMAIN}"]
    assert verify_crypt("demo-password", users[f"alice@{DOMAIN}"])
    assert not verify_crypt("wrong-password", users[f"alice@{DOMAIN}"])
    r = p.run("user", "add", f"carol@{DOMAIN}", "--password-stdin", input="c4rol secret\n", check=False)
    assert r.returncode == 0, r.stderr
    users = passwd_entries(p)
    assert verify_crypt("c4rol secret", users[f"carol@{DOMAIN}"])
    r = p.run("user", "add", f"Carol@{DOMAIN}", "--password-stdin", input="other\n", check=False)
    assert r.returncode != 0 and "carol" in r.stderr.lower()
    assert passwd_entries(p) == users
    assert p.run("user", "list").stdout.split() == [f"alice@{DOMAIN}", f"bob@{DOMAIN}", f"carol@{DOMAIN}"]
    r = p.run("user", "passwd", f"carol@{DOMAIN}", "--password-stdin", input="n3w pass\n", check=False)
    assert r.returncode == 0, r.stderr
    after = passwd_entries(p)
    assert after[f"carol@{DOMAIN}"] != users[f"carol@{DOMAIN}"]
    assert verify_crypt("n3w pass", after[f"carol@{DOMAIN}"])
    assert not verify_crypt("c4rol secret", after[f"carol@{DOMAIN}"])
    assert after[f"alice@{DOMAIN}"] == users[f"alice@{DOMAIN}"]
    r = p.run("user", "del", f"bob@{DOMAIN}", check=False)
    assert r.returncode == 0, r.stderr
    assert p.run("user", "list").stdout.split() == [f"alice@{DOMAIN}", f"carol@{DOMAIN}"]
    assert sorted(passwd_entries(p)) == [f"alice@{DOMAIN}", f"carol@{DOMAIN}"]
    assert p.run("user", "del", f"bob@{DOMAIN}", check=False).returncode != 0
    assert p.run("user", "passwd", f"bob@{DOMAIN}", "--password-stdin", input="x\n", check=False).returncode != 0
    # Not a virtual domain: refused, and the file is untouched.
    before = read(os.path.join(p.dir, "users"))
    r = p.run("user", "add", "dave@elsewhere.example", "--password-stdin", input="x\n", check=False)
    assert r.returncode != 0 and "elsewhere.example" in r.stderr
    assert read(os.path.join(p.dir, "users")) == before


# ------------------------------------------------------------------------------------------------ sendmail

def login_name():
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def header_names(msg):
    head = msg.split(b"\n\n", 1)[0].decode()
    return [l.split(":", 1)[0] for l in head.splitlines() if l and l[0] not in " \t"]


def test_sendmail_from_a_shell_pipeline(make_postern):
    p = make_postern(start=False)
    r = subprocess.run(f"printf 'Subject: cron\\n\\nhello\\n' | '{BIN}' -c '{p.dir}' sendmail alice@{DOMAIN}",
                       shell=True, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    msgs = p.messages("alice")
    assert len(msgs) == 1
    m = msgs[0]
    me = f"{login_name()}@mail.{DOMAIN}"
    assert m.startswith(f"Return-Path: <{me}>\nDelivered-To: alice@{DOMAIN}\n".encode())
    names = header_names(m)
    for h in ("Received", "From", "Date", "Message-Id", "Subject"):
        assert h in names, names
    assert f"\nFrom: {me}\n".encode() in m
    assert re.search(rb"\nMessage-Id: <[^@>\s]+@mail\.example\.test>\n", m)
    assert re.search(rb"\nDate: \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}", m)
    assert m.endswith(b"Subject: cron\n\nhello\n")
    assert p.tmp_files("alice") == []


def test_sendmail_is_silent_on_success(make_postern):
    # Like Postfix's sendmail: cron mails whatever a job prints, so a successful submission prints nothing
    # (the log belongs in maillog_file or syslog, not on the caller's stderr).
    p = make_postern("maillog_file = maillog\n", start=False)
    r = p.run("sendmail", f"alice@{DOMAIN}", input="Subject: cron\n\nhello\n", check=False)
    assert r.returncode == 0 and len(p.messages("alice")) == 1
    assert (r.stdout, r.stderr) == ("", "")


def test_sendmail_t_with_to_cc_bcc(make_postern):
    p = make_postern(start=False)
    for u in ("carol", "dave"):
        p.run("user", "add", f"{u}@{DOMAIN}", "--password-stdin", input="pw\n")
    text = (f"From: Boss <boss@corp.example>\nTo: Alice <alice@{DOMAIN}>\nCc: bob@{DOMAIN}\n"
            f"Bcc: carol@{DOMAIN},\n\tdave@{DOMAIN}\nSubject: minutes\nMessage-ID: <m1@corp.example>\n\nsee attached\n")
    r = p.run("sendmail", "-t", "-f", "boss@corp.example", input=text, check=False)
    assert r.returncode == 0, r.stderr
    for u in ("alice", "bob", "carol", "dave"):
        msgs = p.messages(u)
        assert len(msgs) == 1, u
        m = msgs[0]
        assert m.startswith(f"Return-Path: <boss@corp.example>\nDelivered-To: {u}@{DOMAIN}\n".encode())
        rest = m.split(b"\n", 2)[2]  # after Return-Path and Delivered-To
        assert b"Bcc" not in rest and b"dave@" not in rest and b"carol@" not in rest, (u, m)
        assert m.endswith(f"From: Boss <boss@corp.example>\nTo: Alice <alice@{DOMAIN}>\nCc: bob@{DOMAIN}\n"
                          f"Subject: minutes\nMessage-ID: <m1@corp.example>\n\nsee attached\n".encode())
        # From, Date and Message-ID given: only Date is added.
        assert header_names(m).count("From") == 1 and header_names(m).count("Message-ID") == 1
        assert "Date" in header_names(m) and "Message-Id" not in header_names(m)


def test_sendmail_f_and_dot_handling(make_postern):
    p = make_postern(start=False)
    text = "Subject: dots\n\nbefore\n.hidden stays\n..two\n.\nafter the dot\n"
    r = p.run("sendmail", "-f", "robot@corp.example", f"alice@{DOMAIN}", input=text, check=False)
    assert r.returncode == 0, r.stderr
    m = p.messages("alice")[0]
    assert m.startswith(b"Return-Path: <robot@corp.example>\n")
    assert b"\nFrom: robot@corp.example\n" in m
    assert m.endswith(b"Subject: dots\n\nbefore\n.hidden stays\n..two\n")
    # With -i (and -oi) a lone dot is just a line.
    for flag in ("-i", "-oi"):
        r = p.run("sendmail", flag, f"bob@{DOMAIN}", input=text, check=False)
        assert r.returncode == 0, r.stderr
    for m in p.messages("bob"):
        assert m.endswith(b"Subject: dots\n\nbefore\n.hidden stays\n..two\n.\nafter the dot\n")
    assert len(p.messages("bob")) == 2


@pytest.mark.parametrize("rcpt,code", [
    (f"nobody@{DOMAIN}", 67),           # EX_NOUSER
    ("a@example.test@remote.example", 65),
    ("a@@b", 65),                       # EX_DATAERR
    (f"alice@{DOMAIN}>", 65),
    (f"alice@{DOMAIN} junk", 65),       # one argument, one address: not "alice" and some junk
    (f"al ice@{DOMAIN}", 65),
])
def test_sendmail_exit_codes(make_postern, rcpt, code):
    p = make_postern(start=False)
    r = p.run("sendmail", rcpt, input="Subject: x\n\nx\n", check=False)
    assert r.returncode == code, (r.returncode, r.stderr)
    assert r.stderr.strip(), "a failure says why"
    assert p.messages("alice") == [] and p.messages("bob") == []


def test_sendmail_several_recipients_all_or_nothing(make_postern):
    p = make_postern(start=False)
    r = p.run("sendmail", f"alice@{DOMAIN}", f"nobody@{DOMAIN}", input="Subject: x\n\nx\n", check=False)
    assert r.returncode == 67 and f"nobody@{DOMAIN}" in r.stderr
    assert p.messages("alice") == []
    r = p.run("sendmail", "-t", input="Subject: no recipients\n\nx\n", check=False)
    assert r.returncode != 0 and "recipient" in r.stderr


# ---------------------------------------------------------------------------------------------------- mail

def test_mail_lists_reads_and_marks_seen(make_postern):
    p = make_postern(start=False)
    msgs = [("one@corp.example", "Fri, 13 Mar 2020 10:20:30 +0000", "Fri Mar 13 10:20", "first subject"),
            ("two@corp.example", "Sat, 14 Mar 2020 11:21:31 +0000", "Sat Mar 14 11:21", "second subject")]
    for sender, date, _, subject in msgs:
        text = f"Date: {date}\nSubject: {subject}\n\nbody of {subject}\n"
        r = p.run("sendmail", "-f", sender, f"alice@{DOMAIN}", input=text, check=False)
        assert r.returncode == 0, r.stderr
    md = p.maildir("alice")
    r = p.run("mail", "-u", f"alice@{DOMAIN}", check=False)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    listed = [l for l in lines if re.match(r"^.{0,3}\s*\d+ ", l)]
    assert len(listed) == 2, r.stdout
    subject_of = {}
    for l in listed:
        num = int(re.match(r"^\D*(\d+) ", l).group(1))
        which = [m for m in msgs if m[3] in l]
        assert len(which) == 1, l
        sender, _, short, subject = which[0]
        assert sender in l and short in l, l
        subject_of[num] = subject
    assert sorted(subject_of) == [1, 2]
    r = p.run("mail", "-u", f"alice@{DOMAIN}", "read", "1", check=False)
    assert r.returncode == 0, r.stderr
    assert f"Subject: {subject_of[1]}\n" in r.stdout and f"\n\nbody of {subject_of[1]}\n" in r.stdout
    assert f"Delivered-To: alice@{DOMAIN}" in r.stdout and subject_of[2] not in r.stdout
    cur = os.listdir(os.path.join(md, "cur"))
    assert len(cur) == 1 and cur[0].endswith(":2,S")
    assert len(os.listdir(os.path.join(md, "new"))) == 1
    assert subject_of[1].encode() in read(os.path.join(md, "cur", cur[0]), binary=True)
    # Still two messages, same numbering; reading again changes nothing.
    again = p.run("mail", "-u", f"alice@{DOMAIN}", "read", "1", check=False)
    assert again.returncode == 0 and again.stdout == r.stdout
    assert os.listdir(os.path.join(md, "cur")) == cur
    for bad in ("3", "0", "x", "-1"):
        r = p.run("mail", "-u", f"alice@{DOMAIN}", "read", bad, check=False)
        assert r.returncode != 0 and r.stdout == "", bad
    # The guide's way: MAIL=/home/$username/Maildir, then `mail`.
    env = dict(os.environ, MAIL=md)
    r = subprocess.run([BIN, "-c", p.dir, "mail"], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    assert md in r.stdout and all(m[3] in r.stdout for m in msgs)
    r = subprocess.run([BIN, "-c", p.dir, "mail", "read", "2"], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0 and f"Subject: {subject_of[2]}" in r.stdout
    assert len(os.listdir(os.path.join(md, "cur"))) == 2 and os.listdir(os.path.join(md, "new")) == []
    r = p.run("mail", "-u", f"nobody@{DOMAIN}", check=False)
    assert r.returncode != 0 and "nobody" in r.stderr


def test_mail_lists_in_delivery_order_within_one_second(tmp_path, make_postern):
    # Maildir names start "SECONDS.M<microseconds>P<pid>" with microseconds not zero-padded (Dovecot and
    # Postern alike): within one second M99999 (0.099999 s) comes before M100000 (0.1 s).
    p = make_postern(start=False)
    md = str(tmp_path / "Maildir")
    assert postern("maildirmake", md).returncode == 0
    names = ["1700000000.M900000P7.host", "1700000001.M99999P7.host", "1700000001.M100000P7.host",
             "1700000001.M100001P7.host"]
    for i, name in enumerate(names):
        write(os.path.join(md, "new", name), f"From: s{i}@corp.example\nSubject: number {i + 1}\n\nbody\n")
    r = subprocess.run([BIN, "-c", p.dir, "mail"], capture_output=True, text=True, env=dict(os.environ, MAIL=md),
                       timeout=30)
    assert r.returncode == 0, r.stderr
    order = re.findall(r"number (\d)", r.stdout)
    assert order == ["1", "2", "3", "4"], r.stdout


# ------------------------------------------------------------------------------------- system users (root)

@pytest.fixture
def system_user():
    if os.geteuid() != 0:
        pytest.skip("needs root to create a system user")
    if not shutil.which("useradd") or not shutil.which("userdel"):
        pytest.skip("useradd/userdel missing")
    name = "pt" + secrets.token_hex(4)
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", "-r", name], capture_output=True)


def test_system_user_gets_mail_in_home_maildir(make_postern, system_user):
    u = system_user
    p = make_postern("mydestination = localhost\nhome_mailbox = Maildir/\n")
    c = Raw(p.port)
    assert c.cmd("ehlo localhost")[0] == 250
    assert c.cmd("mail from: root@localhost")[0] == 250
    assert c.cmd(f"rcpt to: {u.pw_name}@localhost") == (250, ["250 2.1.5 Ok"])
    assert c.cmd("data")[0] == 354
    c.send("Subject: My Postfix Test\r\n\r\nTest Message 123\r\nThis is the body\r\nGoodbye\r\n.\r\n")
    assert c.reply()[0] == 250
    # An address extension goes to the same user.
    assert c.cmd("mail from: root@localhost")[0] == 250
    assert c.cmd(f"rcpt to: {u.pw_name}+tag@localhost")[0] == 250
    assert c.cmd("data")[0] == 354
    c.send("Subject: with extension\r\n\r\ntagged\r\n.\r\n")
    assert c.reply()[0] == 250
    assert c.cmd("quit")[0] == 221
    md = os.path.join(u.pw_dir, "Maildir")
    for sub in ("", "cur", "new", "tmp"):
        st = os.stat(os.path.join(md, sub))
        assert (st.st_uid, st.st_gid) == (u.pw_uid, u.pw_gid), sub
        assert stat.S_IMODE(st.st_mode) == 0o700, (sub, oct(st.st_mode))
    new = sorted(os.listdir(os.path.join(md, "new")))
    assert len(new) == 2 and os.listdir(os.path.join(md, "tmp")) == []
    bodies = []
    for name in new:
        path = os.path.join(md, "new", name)
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (u.pw_uid, u.pw_gid) and stat.S_IMODE(st.st_mode) & 0o077 == 0
        bodies.append(read(path, binary=True))
    assert any(b.endswith(b"Subject: My Postfix Test\n\nTest Message 123\nThis is the body\nGoodbye\n") for b in bodies)
    assert any(b.endswith(b"Subject: with extension\n\ntagged\n") for b in bodies)
    assert all(b.startswith(b"Return-Path: <root@localhost>\n") for b in bodies)
    r = p.run("mail", "-u", u.pw_name, check=False)
    assert r.returncode == 0, r.stderr
    assert "My Postfix Test" in r.stdout and "with extension" in r.stdout and md in r.stdout
    r = subprocess.run([BIN, "-c", p.dir, "mail"], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, MAIL=md))
    assert r.returncode == 0 and "My Postfix Test" in r.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege separation happens only when started as root")
def test_network_process_runs_as_mail_owner_and_helper_keeps_root(make_postern):
    import pwd
    p = make_postern()
    owner = pwd.getpwnam("postern")

    def ids(pid):
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return [int(x) for x in fields["Uid"].split()], [int(x) for x in fields["Gid"].split()], fields["Groups"].split()

    uids, gids, groups = ids(p.proc.pid)
    assert uids == [owner.pw_uid] * 4 and gids == [owner.pw_gid] * 4 and groups == [str(owner.pw_gid)]
    with open(f"/proc/{p.proc.pid}/task/{p.proc.pid}/children") as f:
        children = [int(x) for x in f.read().split()]
    assert len(children) == 1, "one privileged delivery helper"
    helper_uids, _, _ = ids(children[0])
    assert helper_uids[0] == 0
    # Past stdin/stdout/stderr the helper holds only its request channels: no listener, no file of the server.
    fds = [int(fd) for fd in os.listdir(f"/proc/{children[0]}/fd") if int(fd) > 2]
    links = [os.readlink(f"/proc/{children[0]}/fd/{fd}") for fd in fds]
    assert links and all(l.startswith("socket:") for l in links), links
    with open("/proc/net/tcp") as f:
        listening_inodes = {line.split()[9] for line in f.readlines()[1:] if line.split()[3] == "0A"}
    assert not any(l[len("socket:["):-1] in listening_inodes for l in links)
    p.wait_log(f"running as postern (uid {owner.pw_uid}); privileged delivery helper pid {children[0]}")
    # Virtual mail is written by mail_owner.
    import smtplib
    with smtplib.SMTP("127.0.0.1", p.port) as s:
        s.sendmail("a@b.example", ["alice@example.test"], b"Subject: x\r\n\r\ny\r\n")
    md = p.maildir("alice")
    assert os.stat(md).st_uid == owner.pw_uid


@pytest.mark.skipif(os.geteuid() != 0, reason="mail_owner matters only when started as root")
def test_check_names_a_virtual_mailbox_base_mail_owner_cannot_write(make_postern):
    p = make_postern(start=False)
    os.makedirs(p.mail, exist_ok=True)
    os.chown(p.mail, 0, 0)
    r = p.run("check", check=False)
    assert r.returncode != 0
    assert f"virtual_mailbox_base {p.mail} belongs to uid 0, not to mail_owner postern" in r.stderr
    import pwd
    pw = pwd.getpwnam("postern")
    os.chown(p.mail, pw.pw_uid, pw.pw_gid)
    assert p.run("check", check=False).returncode == 0
