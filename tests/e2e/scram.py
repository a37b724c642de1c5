"""The client side of SCRAM-SHA-256 (RFC 5802 / RFC 7677), with channel binding for SCRAM-SHA-256-PLUS
(tls-exporter, RFC 9266), written here from the RFCs so that the server is checked against an independent
implementation. Shared by test_sasl.py (no TLS) and test_tls_clients.py (-PLUS over TLS)."""
import base64
import hashlib
import hmac
import os


def b64(data):
    return base64.b64encode(data).decode()


class ScramClient:
    """One SCRAM-SHA-256 exchange. `gs2_header` is "n,," (no binding), "y,," (the client could bind but
    thinks the server cannot) or "p=tls-exporter,," with `cbind_data` the exporter bytes (RFC 9266)."""

    def __init__(self, user, password, gs2_header="n,,", cbind_data=b""):
        self.user, self.password = user, password
        self.gs2_header, self.cbind_data = gs2_header, cbind_data
        self.nonce = b64(os.urandom(18))
        self.first_bare = f"n={user},r={self.nonce}"
        self.verified = False

    def first(self):
        return (self.gs2_header + self.first_bare).encode()

    def final(self, server_first):
        server_first = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        assert attrs["r"].startswith(self.nonce)
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        # RFC 5802 7: c= is the base64 of the gs2 header followed by the channel binding data (if any).
        without_proof = f"c={b64(self.gs2_header.encode() + self.cbind_data)},r={attrs['r']}"
        self.auth_message = f"{self.first_bare},{server_first},{without_proof}".encode()
        signature = hmac.new(hashlib.sha256(client_key).digest(), self.auth_message, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self.server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        return f"{without_proof},p={b64(proof)}".encode()

    def check(self, server_final):
        expected = b"v=" + base64.b64encode(hmac.new(self.server_key, self.auth_message, "sha256").digest())
        assert server_final == expected, server_final
        self.verified = True
        return b""

    def steps(self):
        """The client's answers in order, each a function of the decoded server challenge."""
        return [lambda _: self.first(), self.final, self.check]

    def imap_callback(self):
        steps = iter(self.steps())
        return lambda challenge: next(steps)(challenge)
