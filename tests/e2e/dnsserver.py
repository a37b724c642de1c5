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

    DnsServer(records, signed=["dane.test"])  # DNSSEC (RFC 4033-4035): the zone dane.test signed
        ... dns.trust_anchor() ...             # its DNSKEY as a trust anchor file's text (dnssec_trust_anchor_file)

Names are case-insensitive, without the trailing dot. A name not listed is NXDOMAIN (unless a listed name
lies below it: then NODATA), a listed name without the asked type NODATA. A CNAME is answered for every
type, with the target's records when the target is listed. UDP answers longer than the client's EDNS size
(512 without EDNS) are truncated (TC) so that the client retries over TCP. `queries` lists (name, type) as
they arrived, for tests that check what was (not) asked.

A signed zone (python3-dnspython's dns.dnssec.sign, ECDSA P-256, one key that is also the trust anchor) holds
its SOA, DNSKEY, the listed names at or below it (A, AAAA, MX, TXT, TLSA; no CNAME) and an NSEC chain; answers
carry their RRSIGs, NODATA and NXDOMAIN their NSEC proofs (RFC 4035 3.1.3). A "SERVFAIL" or "TIMEOUT" entry
inside it still works as above (unsigned).

Security: test-only; binds loopback only; parse errors of incoming packets drop them.
Only under /usr/bin/python3 (Debian's python3-dnslib).
"""
import binascii
import socket
import socketserver
import struct
import threading
import time

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
    def __init__(self, records, port=0, signed=()):
        self.records = {self._key(name): value for name, value in records.items()}
        self.zones = [_SignedZone(self._key(origin), self.records) for origin in signed]
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

    def trust_anchor(self):
        """The DNSKEY records of the signed zones, as a trust anchor file (zone file format) holds them."""
        return "".join(z.dnskey_text() for z in self.zones)

    def signed_reply(self, data, name, rtype):
        """The wire reply from a signed zone, or None when `name` is not in one (or its entry is a failure)."""
        entry = self.records.get(name)
        if isinstance(entry, str) or (isinstance(entry, dict) and isinstance(entry.get(rtype), str)):
            return None
        for zone in self.zones:
            if name == zone.origin or name.endswith("." + zone.origin):
                with self._lock:
                    self.queries.append((name, rtype))
                return zone.reply(data)
        return None

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


def _text(rtype, value):
    """A record of the `records` format in zone file text."""
    if rtype == "MX":
        return f"{value[0]} {value[1].rstrip('.')}."
    if rtype == "TXT":
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if rtype == "TLSA":
        return " ".join(str(v) for v in value)
    return value


class _SignedZone:
    """One DNSSEC-signed zone built from the names of `records` at or below `origin` (see the module text)."""

    def __init__(self, origin, records):
        import dns.dnssec
        import dns.name
        import dns.rdatatype
        import dns.rrset
        from cryptography.hazmat.primitives.asymmetric import ec

        self.origin = origin
        self.name = dns.name.from_text(origin)
        key = ec.generate_private_key(ec.SECP256R1())
        self.dnskey = dns.dnssec.make_dnskey(key.public_key(), dns.dnssec.Algorithm.ECDSAP256SHA256, flags=257)
        self.rrsets = {}  # (name, rdtype) -> RRset

        def add(owner, rtype, texts):
            rrset = dns.rrset.from_text_list(owner, TTL, "IN", rtype, texts)
            self.rrsets[(rrset.name, rrset.rdtype)] = rrset

        add(self.name, "SOA", [f"ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 {TTL}"])
        self.rrsets[(self.name, dns.rdatatype.DNSKEY)] = dns.rrset.from_rdata(self.name, TTL, self.dnskey)
        # A name or type that fails is still in the NSEC chain: else the chain would prove it does not exist,
        # and a validating resolver may answer from that proof without asking (RFC 8198).
        failing = {}
        for owner, entry in records.items():
            if not (owner == origin or owner.endswith("." + origin)):
                continue
            types = failing.setdefault(dns.name.from_text(owner), set())
            for rtype, values in entry.items() if isinstance(entry, dict) else []:
                if isinstance(values, str) and values in ("SERVFAIL", "TIMEOUT"):
                    types.add(rtype)
                    continue
                values = values if isinstance(values, list) else [values]
                add(dns.name.from_text(owner), rtype, [_text(rtype, v) for v in values])
        self.names = sorted({n for n, _ in self.rrsets} | set(failing))  # canonical order (RFC 4034 6.1)
        for i, owner in enumerate(self.names):
            types = {dns.rdatatype.to_text(t) for n, t in self.rrsets if n == owner} | {"RRSIG", "NSEC"}
            types |= failing.get(owner, set())
            add(owner, "NSEC", [f"{self.names[(i + 1) % len(self.names)]} {' '.join(sorted(types))}"])
        now = int(time.time())
        self.sigs = {k: dns.rrset.from_rdata(rrset.name, TTL, dns.dnssec.sign(
            rrset, key, self.name, self.dnskey, inception=now - 3600, expiration=now + 86400))
            for k, rrset in self.rrsets.items()}

    def dnskey_text(self):
        return f"{self.origin}. {TTL} IN DNSKEY {self.dnskey.to_text()}\n"

    def _signed(self, key):
        return [self.rrsets[key], self.sigs[key]]

    def _nsec_covering(self, qname):
        """The NSEC proof that `qname` does not exist: the last owner before it, in canonical order."""
        import dns.rdatatype
        before = [n for n in self.names if n < qname]
        return self._signed(((before or self.names)[-1], dns.rdatatype.NSEC))

    def reply(self, data):
        import dns.flags
        import dns.message
        import dns.name
        import dns.rcode
        import dns.rdatatype

        try:
            request = dns.message.from_wire(data)
        except Exception:  # a malformed packet: drop it
            return None
        response = dns.message.make_response(request)
        response.flags |= dns.flags.AA | dns.flags.RA
        qname, rdtype = request.question[0].name, request.question[0].rdtype
        soa = self._signed((self.name, dns.rdatatype.SOA))
        exists = any(n == qname or n.is_subdomain(qname) for n in self.names)  # empty non-terminals exist
        if (qname, rdtype) in self.rrsets:
            response.answer += self._signed((qname, rdtype))
        elif qname in self.names:  # NODATA: the name's own NSEC lists its types
            response.authority += soa + self._signed((qname, dns.rdatatype.NSEC))
        elif exists:  # NODATA at an empty non-terminal: the NSEC that covers it
            response.authority += soa + self._nsec_covering(qname)
        else:  # NXDOMAIN: no such name, and no wildcard at the closest encloser
            response.set_rcode(dns.rcode.NXDOMAIN)
            encloser = qname.parent()
            while not any(n == encloser or n.is_subdomain(encloser) for n in self.names):
                encloser = encloser.parent()
            wildcard = dns.name.from_text("*", encloser)
            proofs = self._nsec_covering(qname)
            if self._nsec_covering(wildcard)[0].name != proofs[0].name:
                proofs += self._nsec_covering(wildcard)
            response.authority += soa + proofs
        return response.to_wire()


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
        wire = dns.signed_reply(data, dns._key(str(request.q.qname)), QTYPE[request.q.qtype])
        if wire is None:
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
