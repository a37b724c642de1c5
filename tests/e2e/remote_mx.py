"""A scriptable remote MX for the outbound delivery tests (RFC 5321, RFC 3207 STARTTLS, RFC 4954 AUTH), on aiosmtpd.

    mx = RemoteMx("127.0.0.2", 25,                      # 25 needs root; any free port for a relayhost
                  rcpt={"bob@remote.test": "550 5.1.1 <bob@remote.test>: no such user"},  # else 250
                  refuse_first=2,                       # MAIL answered 451 4.3.0 twice, then accepted
                  greeting="421 4.3.2 busy",            # instead of 220 (then the connection is closed)
                  greeting_delay=None,                  # seconds before the greeting; math.inf: never
                  starttls=True,                        # STARTTLS with a fresh self-signed certificate
                  certificate=("chain.pem", "key.pem"), # ... or with this chain and key (the test's own CA)
                  eightbitmime=True, smtputf8=True,     # False: not offered in the EHLO reply
                  auth={"user": "secret"},              # AUTH PLAIN/LOGIN required (after STARTTLS if offered)
                  requiretls=True)                      # REQUIRETLS (RFC 8689) offered inside TLS
    mx.start(); ... mx.messages ...; mx.stop()

`messages` holds one Transaction per accepted DATA: envelope sender, accepted recipients, the data bytes as
received (dot-unstuffed), MAIL parameters, the EHLO name, whether STARTTLS was used and the AUTH login.
`attempts` counts MAIL commands (refused ones included), `connections` the connections that said EHLO, `quits` the QUITs.

Security: test-only; binds the loopback address it is given; a peer's bytes are only recorded.
Only under /usr/bin/python3 (Debian's python3-aiosmtpd).
"""
import asyncio
import dataclasses
import math
import os
import socket
import ssl
import subprocess
import tempfile
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


@dataclasses.dataclass
class Transaction:
    sender: str
    recipients: list
    data: bytes
    mail_options: list
    ehlo: str
    tls: bool
    login: str


def self_signed_context(directory, cn):
    """A server TLS context with a new self-signed certificate for `cn`, its files under `directory`."""
    cert, key = os.path.join(directory, "mx.crt"), os.path.join(directory, "mx.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "30", "-subj", f"/CN={cn}", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


class _Handler:
    def __init__(self, mx):
        self.mx = mx

    async def handle_QUIT(self, server, session, envelope):
        with self.mx.lock:
            self.mx.quits += 1
        return "221 2.0.0 Bye"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        if not getattr(session, "counted", False):  # not the connection of Controller's start-up trigger
            session.counted = True
            with self.mx.lock:
                self.mx.connections += 1
        session.host_name = hostname
        hidden = {"250-8BITMIME"} if not self.mx.eightbitmime else set()
        shown = [r for r in responses if r not in hidden]
        if self.mx.requiretls and session.ssl is not None:
            shown.insert(-1, "250-REQUIRETLS")
        return shown

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.mx.lock:
            self.mx.attempts += 1
            refuse = self.mx.attempts <= self.mx.refuse_first
        if refuse:
            return "451 4.3.0 Temporary failure, try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        if getattr(session, "requiretls", False):
            envelope.mail_options.append("REQUIRETLS")
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer = self.mx.rcpt.get(address.lower(), "250 2.1.5 Ok")
        if answer.startswith("250"):
            envelope.rcpt_tos.append(address)
        return answer

    async def handle_DATA(self, server, session, envelope):
        t = Transaction(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content,
                        list(envelope.mail_options), session.host_name or "", session.ssl is not None,
                        session.auth_data.login.decode() if session.authenticated else "")
        with self.mx.lock:
            self.mx.messages.append(t)
            n = len(self.mx.messages)
        return f"250 2.0.0 Ok: queued as MX{n}"


class _Smtp(SMTP):
    """aiosmtpd's server with the scripted greeting."""

    def __init__(self, mx, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.mx = mx

    async def smtp_MAIL(self, arg):
        # REQUIRETLS (RFC 8689), which aiosmtpd does not know: taken off the line when offered (inside TLS).
        self.session.requiretls = False
        if self.mx.requiretls and self.session.ssl is not None and arg:
            words = arg.split(" ")
            if any(w.upper() == "REQUIRETLS" for w in words[1:]):
                self.session.requiretls = True
                arg = " ".join([words[0]] + [w for w in words[1:] if w.upper() != "REQUIRETLS"])
        await super().smtp_MAIL(arg)

    async def _handle_client(self):
        if self.mx.greeting_delay is not None:
            await asyncio.sleep(self.mx.greeting_delay if math.isfinite(self.mx.greeting_delay) else 1e9)
        if self.mx.greeting is not None:
            await self.push(self.mx.greeting)
            self.transport.close()
            return
        await super()._handle_client()


class _Controller(Controller):
    def __init__(self, mx, **kwargs):
        super().__init__(_Handler(mx), hostname=mx.host, port=mx.port, **kwargs)
        self.mx = mx

    def factory(self):
        return _Smtp(self.mx, self.handler, **self.SMTP_kwargs)

    def _trigger_server(self):
        # A connection makes asyncio create the protocol; aiosmtpd's own trigger waits for a greeting, which a
        # silent or slow MX never sends.
        with socket.create_connection((self.hostname, self.port), 1.0):
            pass


class RemoteMx:
    def __init__(self, host="127.0.0.1", port=25, *, rcpt=None, refuse_first=0, greeting=None, greeting_delay=None,
                 starttls=False, eightbitmime=True, smtputf8=True, auth=None, requiretls=False,
                 name="mx.remote.test", certificate=None):
        self.host, self.port, self.name = host, port, name
        self.rcpt = {k.lower(): v for k, v in (rcpt or {}).items()}
        self.refuse_first, self.greeting, self.greeting_delay = refuse_first, greeting, greeting_delay
        self.starttls, self.eightbitmime, self.smtputf8, self.auth = starttls, eightbitmime, smtputf8, auth
        self.requiretls = requiretls
        self.certificate = certificate
        self.lock = threading.Lock()
        self.messages = []
        self.attempts = 0
        self.connections = 0
        self.quits = 0
        self._tmp = tempfile.TemporaryDirectory(prefix="remote-mx-")
        self._controller = None

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and self.auth.get(auth_data.login.decode()) == \
            auth_data.password.decode()
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def start(self):
        kwargs = dict(server_hostname=self.name, enable_SMTPUTF8=self.smtputf8, decode_data=False,
                      ident="ESMTP remote_mx")
        if self.starttls and self.certificate:
            kwargs["tls_context"] = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            kwargs["tls_context"].load_cert_chain(*self.certificate)
        elif self.starttls:
            kwargs["tls_context"] = self_signed_context(self._tmp.name, self.name)
        if self.auth is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True, auth_require_tls=self.starttls)
        self._controller = _Controller(self, **kwargs)
        self._controller.start()
        return self

    def stop(self):
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def cleanup(self):
        self.stop()
        self._tmp.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    def wait_messages(self, n, timeout=30.0):
        """Waits until at least `n` transactions arrived; returns them all."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.messages)} of {n} messages arrived at {self.host}:{self.port} "
                             f"within {timeout}s")
