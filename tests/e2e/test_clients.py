"""Real SMTP clients nobody here wrote, against a real server: swaks, Postfix's smtp-source, telnet (the guide's
dialogue typed into the real program) and smtplib.send_message with a MIME message."""
import email.generator
import io
import os
import re
import shutil
import smtplib
import subprocess
import threading
import time
from email.message import EmailMessage

import pytest

from conftest import DOMAIN


def need(tool):
    path = shutil.which(tool) or (os.path.exists(tool) and tool)
    if not path:
        pytest.skip(f"{tool} is not installed (scripts/install-deps.sh installs it)")
    return path


def run(cmd, timeout=60):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def swaks_data(transcript):
    """What swaks sent after DATA, read from its own transcript (" -> line"), dots unstuffed, LF line ends."""
    lines = transcript.split("\n")
    start = next(i for i, l in enumerate(lines) if l.startswith("<-  354 ")) + 1
    out = []
    for l in lines[start:]:
        assert l.startswith(" -> "), l
        l = l[4:]
        if l == ".":
            return ("\n".join(out) + "\n").encode()
        out.append(l[1:] if l.startswith(".") else l)
    raise AssertionError("no end of DATA in swaks' transcript")


def stored_original(m):
    """The message as the client sent it: the stored file less the three trace headers the server adds."""
    lines = m.split(b"\n")
    assert lines[0].startswith(b"Return-Path: ") and lines[1].startswith(b"Delivered-To: ")
    assert lines[2].startswith(b"Received: ")
    i = 3
    while lines[i].startswith((b" ", b"\t")):
        i += 1
    return b"\n".join(lines[i:])


# -------------------------------------------------------------------------------------------------- swaks

def test_swaks_plain(server):
    swaks = need("swaks")
    r = run([swaks, "--server", f"127.0.0.1:{server.port}", "--to", f"alice@{DOMAIN}", "--from", "x@y.example",
             "--header", "Subject: swaks", "--body", "hi"])
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"<-  250 2\.0\.0 Ok: queued as (\S+)", r.stdout)
    assert m, r.stdout
    msgs = server.messages("alice")
    assert len(msgs) == 1
    assert msgs[0].startswith(b"Return-Path: <x@y.example>\nDelivered-To: alice@example.test\n")
    assert f"id {m.group(1)}".encode() in msgs[0]
    assert b"\nSubject: swaks\n" in msgs[0] and b"\nX-Mailer: swaks" in msgs[0]
    assert stored_original(msgs[0]) == swaks_data(r.stdout)
    assert msgs[0].split(b"\n\n", 1)[1].rstrip(b"\n") == b"hi"
    assert server.tmp_files("alice") == []


def test_swaks_pipeline(server):
    swaks = need("swaks")
    r = run([swaks, "--server", f"127.0.0.1:{server.port}", "--pipeline", "--to", f"alice@{DOMAIN},bob@{DOMAIN}",
             "--from", "x@y.example", "--header", "Subject: pipelined", "--body", "in one go"])
    assert r.returncode == 0, r.stdout + r.stderr
    # swaks really pipelined: MAIL, RCPT, RCPT and DATA went out before the first reply came back.
    out = r.stdout
    i_mail = out.index(" -> MAIL FROM:<x@y.example>")
    assert out.index(" -> DATA", i_mail) < out.index("<-  250 2.1.0", i_mail)
    for u in ("alice", "bob"):
        msgs = server.messages(u)
        assert len(msgs) == 1 and b"\nSubject: pipelined\n" in msgs[0]
        assert stored_original(msgs[0]) == swaks_data(out)
        assert msgs[0].split(b"\n\n", 1)[1].rstrip(b"\n") == b"in one go"


def test_swaks_esmtp_dot_stuffing(server):
    swaks = need("swaks")
    body = ".leading dot\n..two dots\n.\n. space\nend"
    r = run([swaks, "--server", f"127.0.0.1:{server.port}", "--protocol", "ESMTP", "--to", f"alice@{DOMAIN}",
             "--from", "x@y.example", "--header", "Subject: dots", "--body", body])
    assert r.returncode == 0, r.stdout + r.stderr
    assert " -> ..leading dot" in r.stdout and " -> ..." in r.stdout  # swaks stuffed them on the wire
    msgs = server.messages("alice")
    assert len(msgs) == 1
    assert b"with ESMTP id" in msgs[0]
    text = msgs[0].split(b"\n\n", 1)[1]
    assert text.startswith(b".leading dot\n..two dots\n.\n. space\nend\n"), text
    assert stored_original(msgs[0]) == swaks_data(r.stdout)


# ------------------------------------------------------------------------------------------- smtp-source

def test_smtp_source_1000_messages_4_sessions(server):
    source = need("/usr/sbin/smtp-source")
    t0 = time.time()
    r = run([source, "-s", "4", "-m", "1000", "-f", "x@y.example", "-t", f"alice@{DOMAIN}",
             f"127.0.0.1:{server.port}"], timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stderr == "", r.stderr
    new = os.path.join(server.maildir("alice"), "new")
    names = os.listdir(new)
    assert len(names) == 1000
    assert server.tmp_files("alice") == []
    assert os.listdir(os.path.join(server.maildir("alice"), "cur")) == []
    ids, message_ids = set(), set()
    for name in names:
        with open(os.path.join(new, name), "rb") as f:
            m = f.read()
        assert m.startswith(b"Return-Path: <x@y.example>\nDelivered-To: alice@example.test\n"), name
        assert b"\nFrom: <x@y.example>\nTo: <alice@example.test>\n" in m, name
        ids.add(re.search(rb" with E?SMTP id (\S+)", m).group(1))
        message_ids.add(re.search(rb"\nMessage-Id: (<[^>]+>)", m, re.I).group(1))
        size = int(re.search(r",S=(\d+)", name).group(1))
        assert size == len(m), name
    assert len(ids) == 1000 and len(message_ids) == 1000
    log = server.log()
    assert log.count("status=sent (delivered to maildir)") == 1000
    print(f"smtp-source: 1000 messages in {time.time() - t0:.2f}s")


# ------------------------------------------------------------------------------------------------- telnet

class Telnet:
    """The real telnet(1) with its stdin on a pipe, as a person would type into it."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([need("telnet"), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.out = b""
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for chunk in iter(lambda: self.proc.stdout.read1(4096), b""):
            with self.lock:
                self.out += chunk

    def expect(self, pattern, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                m = re.search(pattern, self.out, re.M)
            if m:
                return m
            time.sleep(0.02)
        raise AssertionError(f"telnet: no {pattern!r} in {self.out!r}")

    def type(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def close(self):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def test_guide_dialogue_through_real_telnet(server):
    t = Telnet("localhost", str(server.port))
    try:
        t.expect(rb"^Connected to ")
        t.expect(rb"^220 mail\.example\.test ESMTP Postern\r?$")
        t.type("ehlo localhost")
        t.expect(rb"^250 [A-Z0-9]+( .*)?\r?$")  # the last line of the EHLO reply
        t.type("mail from: root@localhost")
        t.expect(rb"^250 2\.1\.0 Ok\r?$")
        t.type(f"rcpt to: alice@{DOMAIN}")
        t.expect(rb"^250 2\.1\.5 Ok\r?$")
        t.type("data")
        t.expect(rb"^354 ")
        for line in ("Subject: My Postfix Test", "", "Test Message 123", "This is the body", "Goodbye", "."):
            t.type(line)
        queue_id = t.expect(rb"^250 2\.0\.0 Ok: queued as (\S+?)\r?$").group(1)
        t.type("quit")
        t.expect(rb"^221 2\.0\.0 Bye\r?$")
        t.expect(rb"^Connection closed by foreign host")
    finally:
        t.close()
    msgs = server.messages("alice")
    assert len(msgs) == 1
    assert msgs[0].startswith(b"Return-Path: <root@localhost>\nDelivered-To: alice@example.test\n")
    assert b"with ESMTP id " + queue_id in msgs[0]
    assert msgs[0].endswith(b"Subject: My Postfix Test\n\nTest Message 123\nThis is the body\nGoodbye\n")
    assert "ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5" in server.log()


# -------------------------------------------------------------------------------- smtplib.send_message (MIME)

def flatten(msg, policy):
    buf = io.BytesIO()
    email.generator.BytesGenerator(buf, policy=policy).flatten(msg, linesep="\n")
    return buf.getvalue()


def mime_message(sender):
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = f"Alice <alice@{DOMAIN}>"
    msg["Subject"] = "Grüße mit Anhang"
    msg["Message-ID"] = "<mime-test@corp.example>"
    msg.set_content("Hallo Alice,\nanbei die Notizen: Äpfel, Öl, Straße.\n.eine Zeile mit Punkt\n\n-- \nJörg\n",
                    cte="8bit")
    msg.add_attachment("Notizen ✓\nZeile zwei: naïve café\n\ttab and trailing space \n.\n", subtype="plain",
                       filename="notizen.txt", cte="8bit")
    msg.add_attachment(bytes(range(256)) * 4, maintype="application", subtype="octet-stream",
                       filename="blob.bin")
    return msg


def test_smtplib_send_message_utf8_attachment_8bitmime(server):
    msg = mime_message("Jörg <joerg@corp.example>")
    expected = flatten(msg, msg.policy)  # also fixes the MIME boundary used when sending
    assert b"\xc3\x84pfel" in expected and b"Content-Transfer-Encoding: 8bit" in expected
    with smtplib.SMTP("127.0.0.1", server.port) as s:
        s.ehlo("client.example")
        assert s.has_extn("8bitmime")
        assert s.send_message(msg, mail_options=["BODY=8BITMIME"]) == {}
    msgs = server.messages("alice")
    assert len(msgs) == 1
    assert msgs[0].startswith(b"Return-Path: <joerg@corp.example>\n")
    assert stored_original(msgs[0]) == expected


def test_smtplib_send_message_smtputf8(server):
    # A non-ASCII address makes smtplib use SMTPUTF8 + BODY=8BITMIME and raw UTF-8 headers.
    msg = mime_message("Jörg <jörg@bücher.example>")
    expected = flatten(msg, msg.policy.clone(utf8=True))
    assert "Subject: Grüße mit Anhang".encode() in expected
    with smtplib.SMTP("127.0.0.1", server.port) as s:
        s.ehlo("client.example")
        assert s.send_message(msg) == {}
    msgs = server.messages("alice")
    assert len(msgs) == 1
    assert msgs[0].startswith("Return-Path: <jörg@bücher.example>\n".encode())
    assert stored_original(msgs[0]) == expected
