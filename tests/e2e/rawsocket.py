"""The socket part of the tests' raw SMTP, IMAP and POP3 clients: exact bytes out, EOF detection."""
import socket


class RawSocket:
    """A client socket for exact bytes, shared by the raw SMTP, IMAP and POP3 clients of the tests."""

    def __init__(self, host, port, timeout=15, source=None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def closed(self, timeout=5):
        """True when the server has closed the connection (EOF) within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
