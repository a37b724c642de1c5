"""A small authoritative DNS server for the tests, on 127.0.0.1 over UDP and TCP (RFC 1035 4.2), on dnslib.

    records = {
        "mx.test": {"MX": [(10, "mail.mx.test")]},
        "mail.mx.test": {"A": ["127.0.0.1"], "AAAA": ["::1"]},
        "null.test": {"MX": [(0, ".")]},                      # RFC 7505 null MX
        "txt.test": {"TXT": ["v=spf1 -all"]},
        "_25._tcp.mail.mx.test": {"TLSA": [(3, 1, 1, "ab12...")]},  # data in hex
        "alias.test": {"CNAME": "mail.mx.test"},
        "broken.test": "SERVFAIL",                            # every query of the name
        "slow.test": "TIMEOUT",                               # never answered
        "half.test": {"A": ["192.0.2.1"], "AAAA": "SERVFAIL"},  # one type only
    }
    with DnsServer(records) as dns:      # or dns = DnsServer(records).start(); ...; dns.stop()
        ... "dns_servers = 127.0.0.1:%d" % dns.port ...

Names are case-insensitive, without the trailing dot. A name not listed is NXDOMAIN (unless a listed name
lies below it: then NODATA), a listed name without the asked type NODATA. A CNAME is answered for every
type, with the target's records when the target is listed. UDP answers longer than the client's EDNS size
(512 without EDNS) are truncated (TC) so that the client retries over TCP. `queries` lists (name, type) as
they arrived, for tests that check what was (not) asked.

Security: test-only; binds loopback only; parse errors of incoming packets drop them.
Only under /usr/bin/python3 (Debian's python3-dnslib).
"""
import binascii
import socket
import socketserver
import struct
import threading

from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, TLSA, TXT, A, DNSRecord

TTL = 60


def _rdata(rtype, value):
    if rtype == "A":
        return A(value)
    if rtype == "AAAA":
        return AAAA(value)
    if rtype == "MX":
        preference, host = value
        return MX(host if host != "." else "", preference)
    if rtype == "TXT":
        return TXT(value.encode() if isinstance(value, str) else value)
    if rtype == "TLSA":
        usage, selector, matching, data = value
        return TLSA(usage, selector, matching, binascii.unhexlify(data))
    if rtype == "CNAME":
        return CNAME(value)
    raise ValueError(f"unsupported record type {rtype}")


class DnsServer:
    def __init__(self, records, port=0):
        self.records = {self._key(name): value for name, value in records.items()}
        self.queries = []
        self._lock = threading.Lock()
        self._servers = []
        self._threads = []
        self.port = port

    @staticmethod
    def _key(name):
        return name.rstrip(".").lower()

    def start(self):
        # UDP and TCP on the same port: take a free UDP port, then its TCP twin (retry if that is taken).
        for _ in range(50):
            udp = _UdpServer(("127.0.0.1", self.port), _Handler, self)
            try:
                tcp = _TcpServer(("127.0.0.1", udp.server_address[1]), _Handler, self)
            except OSError:
                udp.server_close()
                if self.port:
                    raise
                continue
            break
        else:
            raise RuntimeError("no free port for the DNS server")
        self.port = udp.server_address[1]
        self._servers = [udp, tcp]
        for s in self._servers:
            t = threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        for s in self._servers:
            s.shutdown()
            s.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self._servers, self._threads = [], []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def asked(self, name, rtype=None):
        """How many queries for `name` (and `rtype`, e.g. "MX") arrived."""
        with self._lock:
            return sum(1 for n, t in self.queries if n == self._key(name) and (rtype is None or t == rtype))

    def answer(self, request):
        """The reply to `request` (a DNSRecord), or None to stay silent."""
        q = request.q
        name = self._key(str(q.qname))
        rtype = QTYPE[q.qtype]
        with self._lock:
            self.queries.append((name, rtype))
        reply = request.reply(ra=1, aa=1)
        owner = name
        for _ in range(8):  # CNAME chain
            entry = self.records.get(owner)
            if isinstance(entry, dict) and isinstance(entry.get(rtype), str):
                entry = entry[rtype]
            if entry == "TIMEOUT":
                return None
            if entry == "SERVFAIL":
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            if entry is None:
                below = any(n.endswith("." + owner) for n in self.records)
                if owner == name and not below:
                    reply.header.rcode = RCODE.NXDOMAIN
                return reply
            if "CNAME" in entry and rtype != "CNAME":
                target = self._key(entry["CNAME"])
                reply.add_answer(RR(owner, QTYPE.CNAME, ttl=TTL, rdata=CNAME(target)))
                owner = target
                continue
            values = entry.get(rtype, [])
            for value in (values if isinstance(values, list) else [values]):
                reply.add_answer(RR(owner, getattr(QTYPE, rtype), ttl=TTL, rdata=_rdata(rtype, value)))
            return reply
        return reply


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        dns = self.server.dns
        if self.server.socket_type == socket.SOCK_STREAM:
            self.request.settimeout(5)
            try:
                while True:
                    head = self._read(2)
                    if head is None:
                        return
                    data = self._read(struct.unpack("!H", head)[0])
                    if data is None:
                        return
                    reply = self._reply(dns, data, limit=None)
                    if reply is not None:
                        self.request.sendall(struct.pack("!H", len(reply)) + reply)
            except OSError:
                return
        else:
            data, sock = self.request
            reply = self._reply(dns, data, limit=512)
            if reply is not None:
                sock.sendto(reply, self.client_address)

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.request.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    @staticmethod
    def _reply(dns, data, limit):
        try:
            request = DNSRecord.parse(data)
        except Exception:  # a malformed packet: drop it
            return None
        if limit is not None:
            for rr in request.ar:
                if rr.rtype == QTYPE.OPT:
                    limit = max(512, rr.rclass)  # the EDNS0 UDP payload size
        reply = dns.answer(request)
        if reply is None:
            return None
        wire = reply.pack()
        if limit is not None and len(wire) > limit:
            short = request.reply(ra=1, aa=1)
            short.header.tc = 1
            wire = short.pack()
        return wire


class _UdpServer(socketserver.ThreadingMixIn, socketserver.UDPServer):
    daemon_threads = True

    def __init__(self, address, handler, dns):
        self.dns = dns
        super().__init__(address, handler)


class _TcpServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, dns):
        self.dns = dns
        super().__init__(address, handler)
