"""Loopback peers that see raw bytes, for the smuggling and abuse tests.

CaptureUpstream is an in-process upstream that records every byte each connection
sends it (not only complete requests, as upstream.py does), answers each complete
request through a reply function, and has a strict parser (parse_stream) that says
whether what it received is unambiguous: CRLF only, origin-form request lines,
one Host, at most one framing field, canonical Content-Length, Transfer-Encoding
exactly "chunked", chunk sizes of bare hex digits, no extensions, no trailers.
Every socket has a timeout; stop() closes everything it opened."""
import os
import re
import socket
import threading
import time

TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
REQ_LINE = re.compile(rb"(" + TCHAR + rb"+) (/[\x21-\x7e]*|\*) HTTP/1\.1")
FIELD = re.compile(rb"(" + TCHAR + rb"+): ?([\t\x20-\x7e\x80-\xff]*)")
CANON_CL = re.compile(rb"0|[1-9][0-9]*")
HEX = re.compile(rb"[0-9a-fA-F]+")


class Incomplete(Exception):
    pass


class WireRequest:
    """One request as an upstream received it."""

    def __init__(self, raw_head):
        self.raw_head = raw_head
        self.raw_body = b""
        self.body = b""
        self.line = raw_head.split(b"\r\n", 1)[0]
        self.method = self.target = None
        self.fields = []
        self.framing = None  # None (no body), "length" or "chunked"

    @property
    def raw(self):
        return self.raw_head + self.raw_body

    def all(self, name):
        return [v for k, v in self.fields if k.lower() == name.lower()]

    def get(self, name):
        vals = self.all(name)
        return vals[0] if vals else None

    def __repr__(self):
        return f"<WireRequest {self.line!r} {self.framing} body={self.body[:40]!r}>"


def _parse_head(head, problems):
    """head: bytes up to and including the CRLF CRLF."""
    r = WireRequest(head)
    text = head[:-4]
    if b"\n" in text.replace(b"\r\n", b"") or b"\r" in text.replace(b"\r\n", b""):
        problems.append(f"bare CR or LF in head {head[:200]!r}")
    lines = text.split(b"\r\n")
    m = REQ_LINE.fullmatch(lines[0])
    if not m:
        problems.append(f"request line not METHOD origin-form HTTP/1.1: {lines[0][:200]!r}")
    else:
        r.method, r.target = m.group(1), m.group(2)
    for line in lines[1:]:
        m = FIELD.fullmatch(line)
        if not m:
            problems.append(f"malformed field line {line[:200]!r}")
            continue
        name, value = m.group(1), m.group(2)
        if value != value.strip(b" \t"):
            problems.append(f"untrimmed field value {line[:200]!r}")
        r.fields.append((name, value))
    hosts, cls, tes = r.all(b"host"), r.all(b"content-length"), r.all(b"transfer-encoding")
    if len(hosts) != 1:
        problems.append(f"{len(hosts)} Host fields")
    if cls and tes:
        problems.append("both Content-Length and Transfer-Encoding")
    if len(cls) > 1 or len(tes) > 1:
        problems.append(f"repeated framing fields: CL={cls} TE={tes}")
    if tes:
        if tes[0] != b"chunked":
            problems.append(f"Transfer-Encoding is {tes[0]!r}, not exactly chunked")
        r.framing = "chunked"
    elif cls:
        if not CANON_CL.fullmatch(cls[0]):
            problems.append(f"non-canonical Content-Length {cls[0]!r}")
        r.framing = "length"
    return r


def _parse_chunked(data, p, problems):
    """Returns (raw end offset, body); raises Incomplete."""
    body = []
    while True:
        e = data.find(b"\r\n", p)
        if e < 0:
            if len(data) - p > 64:
                problems.append(f"unterminated chunk size line {data[p:p + 64]!r}")
                return len(data), b"".join(body)
            raise Incomplete()
        size = data[p:e]
        if not HEX.fullmatch(size):
            problems.append(f"chunk size line {size[:80]!r} is not bare hex")
            return len(data), b"".join(body)
        n = int(size, 16)
        p = e + 2
        if n == 0:
            if len(data) < p + 2:
                raise Incomplete()
            if data[p:p + 2] != b"\r\n":
                problems.append(f"trailer section or junk after the last chunk: {data[p:p + 80]!r}")
                e = data.find(b"\r\n\r\n", p)
                return (len(data) if e < 0 else e + 4), b"".join(body)
            return p + 2, b"".join(body)
        if len(data) < p + n + 2:
            raise Incomplete()
        body.append(data[p:p + n])
        if data[p + n:p + n + 2] != b"\r\n":
            problems.append("chunk data not followed by CRLF")
            return len(data), b"".join(body)
        p += n + 2


def parse_stream(data):
    """Splits what one upstream connection received into requests, strictly.
    Returns (requests, problems, consumed): an incomplete request at the end is
    left unconsumed."""
    reqs, problems, pos = [], [], 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            if b"\n\n" in data[pos:]:
                problems.append(f"head ended by bare LFs: {data[pos:pos + 200]!r}")
            break
        local = []
        r = _parse_head(data[pos:end + 4], local)
        p = end + 4
        try:
            if r.framing == "chunked":
                q, r.body = _parse_chunked(data, p, local)
            elif r.framing == "length":
                try:
                    n = int(r.get(b"content-length"))
                except ValueError:
                    n = 0
                if len(data) < p + n:
                    raise Incomplete()
                q, r.body = p + n, data[p:p + n]
            else:
                q = p
        except Incomplete:
            break
        r.raw_body = data[p:q]
        problems += local
        reqs.append(r)
        pos = q
    return reqs, problems, pos


class _Peer:
    def __init__(self, sock, index):
        self.sock = sock
        self.index = index
        self.data = bytearray()
        self.closed = False


def ok_reply(req, index):
    body = b"seen %d" % index
    return (b"HTTP/1.1 200 OK\r\nX-Upstream: capture\r\nContent-Length: %d\r\n\r\n" % len(body)) + body, False


class CaptureUpstream:
    """reply(request, index_on_connection) -> (bytes to send, close after)."""

    def __init__(self, reply=ok_reply):
        self.reply = reply
        self.peers = []
        self.lock = threading.Lock()
        self.stopping = False
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stopping:
            try:
                s, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            s.settimeout(0.1)
            with self.lock:
                peer = _Peer(s, len(self.peers))
                self.peers.append(peer)
            t = threading.Thread(target=self._serve, args=(peer,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, peer):
        answered = 0
        try:
            while not self.stopping:
                try:
                    data = peer.sock.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                with self.lock:
                    peer.data += data
                    snapshot = bytes(peer.data)
                reqs, _, _ = parse_stream(snapshot)
                close = False
                for i in range(answered, len(reqs)):
                    out, close = self.reply(reqs[i], i)
                    if out:
                        peer.sock.sendall(out)
                    if close:
                        break
                answered = len(reqs)
                if close:
                    break
        except OSError:
            pass
        finally:
            peer.closed = True
            try:
                peer.sock.close()
            except OSError:
                pass

    def streams(self):
        with self.lock:
            return [bytes(p.data) for p in self.peers]

    def closed(self):
        with self.lock:
            return [p.closed for p in self.peers]

    def total_bytes(self):
        return sum(len(s) for s in self.streams())

    def connections(self):
        with self.lock:
            return len(self.peers)

    def settle(self, quiet=0.3, limit=3.0):
        """Waits until no new byte arrived for `quiet` seconds (at most `limit`)."""
        deadline = time.time() + limit
        last = (self.connections(), self.total_bytes())
        stable_since = time.time()
        while time.time() < deadline:
            time.sleep(0.05)
            now = (self.connections(), self.total_bytes())
            if now != last:
                last, stable_since = now, time.time()
            elif time.time() - stable_since >= quiet:
                return

    def stop(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            peers = list(self.peers)
        for p in peers:
            try:
                p.sock.close()
            except OSError:
                pass
        for t in self.threads:
            t.join(2)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def proc_fds(pid):
    """Open file descriptors of a process, from /proc/PID/fd."""
    return len(os.listdir(f"/proc/{pid}/fd"))
