#!/usr/bin/env python3
"""A real HTTP/1.1 upstream for the proxy tests: stdlib sockets, one thread per
connection, keep-alive, and a JSON-lines log of every connection accepted and of
the raw bytes of every request received, so that a test can assert exactly what
the proxy sent upstream.

    python3 upstream.py                  self-test (plain socket client, no proxy)
    python3 upstream.py serve --port 0 --name a --log FILE
                                         serve; prints "PORT n" once listening

Tests use the Upstream class: it runs `serve` as a child process and reads its log.

Paths (query parameters in brackets):
  /echo                 200 JSON: method, target, path, query, version, headers, body length/sha256
  /status/NNN           that status
  /big[size, piece, delay_ms]   Content-Length body of pattern(size), written in pieces
  /chunked[n, size, trailer, ext]   chunked: n chunks of `size` bytes of pattern(n*size)
  /eof[size]            close-delimited body of pattern(size)
  /slow-head[ms]        waits before the head
  /slow-body[ms]        sends half the body, waits, sends the rest (Content-Length)
  /sse[n, ms, mode]     n server-sent events, ms apart (chunked, or mode=eof)
  /ws                   101 on Upgrade: websocket + Connection: upgrade, then echoes bytes
  /close-after[ms, announce]   answers (keep-alive), waits ms, closes the connection
  /100                  Expect: 100-continue -> "100 Continue", reads the body, answers JSON
  /bad-response[kind]   status | clte | cl2 | garbage | fold | empty | chunk
  /headers              response with hop-by-hop headers the proxy must strip
  /identify             body = the upstream's name
  /reset[at, size, sent]   a TCP reset (close with SO_LINGER 0) in the middle of the
                        response: at=head (part of a head), at=body (`sent` bytes of a
                        Content-Length body of `size`), at=chunked (`sent` bytes in chunks),
                        at=eof (`sent` bytes of a close-delimited body)
  /half-close[at]       shutdown(SHUT_WR) after a complete response (at=end) or in the
                        middle of its head (at=head); the connection ends when the peer's does
  /drop[reused, rst, on]   closes without sending a byte (reused=1: only on a connection
                        that carried an earlier request; rst=1: with a TCP reset; on=NAME:
                        only the upstream of that name, the others answer)
Every response carries X-Upstream: NAME.
"""
import argparse
import base64
import fcntl
import hashlib
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import termios
import tempfile
import threading
import time
from urllib.parse import parse_qs, urlsplit

SMALL = 65536  # request bodies up to this size are logged in full


# ---- deterministic bodies ----------------------------------------------------

def pattern_blocks(n):
    """pattern(n) in blocks: block i is sha256(i) repeated (a shifted or lost
    piece changes the digest of the whole)."""
    i = 0
    while n > 0:
        b = (hashlib.sha256(b"%d" % i).digest() * 2048)[:min(65536, n)]
        yield b
        n -= len(b)
        i += 1


def pattern(n):
    return b"".join(pattern_blocks(n))


def pattern_pieces(n, piece):
    """pattern(n) re-cut into pieces of `piece` bytes (the content does not depend on it)."""
    pending = b""
    for b in pattern_blocks(n):
        pending += b
        while len(pending) >= piece:
            yield pending[:piece]
            pending = pending[piece:]
    if pending:
        yield pending


def pattern_sha256(n):
    h = hashlib.sha256()
    for b in pattern_blocks(n):
        h.update(b)
    return h.hexdigest()


# ---- the server --------------------------------------------------------------

class Closed(Exception):
    pass


class Log:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.f = open(path, "a") if path else None

    def write(self, rec):
        if not self.f:
            return
        rec["t"] = time.time()
        with self.lock:
            self.f.write(json.dumps(rec) + "\n")
            self.f.flush()


class Request:
    """One parsed request (server side) or one logged request (test side)."""

    def __init__(self, head, conn=0, seq=0):
        self.head = head
        self.conn, self.seq = conn, seq
        lines = head.decode("latin-1").split("\r\n")
        self.request_line = lines[0]
        parts = self.request_line.split(" ")
        self.method, self.target, self.version = (parts + ["", "", ""])[:3]
        self.headers = []
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                self.headers.append((k, v.strip(" \t")))
        u = urlsplit(self.target)
        self.path, self.query = u.path, u.query
        self.params = {k: v[-1] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
        self.body = b""
        self.raw_body = b""
        self.body_len = 0
        self.body_sha256 = hashlib.sha256(b"").hexdigest()
        self.chunked = False
        self.chunk_ext = False
        self.trailers = []

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def get(self, name):
        vals = self.all(name)
        return vals[0] if vals else None

    def tokens(self, name):
        return [t.strip().lower() for v in self.all(name) for t in v.split(",") if t.strip()]

    def param(self, name, default):
        return type(default)(self.params.get(name, default))

    def __repr__(self):
        return f"<Request {self.request_line!r} conn={self.conn}>"


class Conn:
    def __init__(self, server, sock, cid):
        self.server, self.sock, self.cid = server, sock, cid
        self.buf = b""
        self.seq = 0

    # reading
    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Closed()
        self.buf += data

    def read_until(self, sep, limit=1 << 20):
        while sep not in self.buf:
            if len(self.buf) > limit:
                raise Closed()
            self.fill()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_body(self, req):
        raw, body = [], []
        te = req.tokens("transfer-encoding")
        if te and te[-1] == "chunked":
            req.chunked = True
            while True:
                line = self.read_until(b"\r\n")
                raw.append(line)
                size, semi, _ = line[:-2].partition(b";")
                req.chunk_ext |= bool(semi)
                n = int(size.strip(), 16)
                if n == 0:
                    break
                data = self.read_exact(n + 2)
                raw.append(data)
                body.append(data[:-2])
            while True:
                line = self.read_until(b"\r\n")
                raw.append(line)
                if line == b"\r\n":
                    break
                k, _, v = line.decode("latin-1").partition(":")
                req.trailers.append((k, v.strip()))
        elif req.get("content-length") is not None:
            data = self.read_exact(int(req.get("content-length")))
            raw.append(data)
            body.append(data)
        req.raw_body = b"".join(raw)
        req.body = b"".join(body)
        req.body_len = len(req.body)
        req.body_sha256 = hashlib.sha256(req.body).hexdigest()

    def log_request(self, req):
        rec = {"type": "request", "conn": self.cid, "seq": req.seq,
               "head": base64.b64encode(req.head).decode(), "body_len": req.body_len,
               "body_sha256": req.body_sha256, "raw_body_len": len(req.raw_body),
               "chunked": req.chunked, "chunk_ext": req.chunk_ext, "trailers": req.trailers}
        if len(req.raw_body) <= SMALL:
            rec["raw_body"] = base64.b64encode(req.raw_body).decode()
        self.server.log.write(rec)

    # writing
    def send(self, data):
        self.sock.sendall(data)

    def respond(self, req, status, body=b"", headers=(), reason=None, length=True):
        reason = reason or REASONS.get(status, "Whatever")
        lines = [f"HTTP/1.1 {status} {reason}", f"X-Upstream: {self.server.name}"]
        lines += list(headers)
        if length and status >= 200 and status not in (204, 304):
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.send(head if req.method == "HEAD" else head + body)

    def reset_on_close(self):
        """Makes the coming close() a TCP reset: SO_LINGER with a zero timeout."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def wait_sent(self, timeout=5.0):
        """Waits until the peer has acknowledged everything sent (TIOCOUTQ, bytes not
        yet acknowledged, is 0): a reset throws away what is still queued."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if struct.unpack("i", fcntl.ioctl(self.sock, termios.TIOCOUTQ, b"\0\0\0\0"))[0] == 0:
                return
            time.sleep(0.01)

    def head_only(self, status, headers):
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Whatever')}", f"X-Upstream: {self.server.name}"]
        self.send(("\r\n".join(lines + list(headers)) + "\r\n\r\n").encode("latin-1"))

    # the loop
    def run(self):
        try:
            while True:
                head = self.read_until(b"\r\n\r\n")
                req = Request(head, self.cid, self.seq)
                self.seq += 1
                special = SPECIAL.get(req.path)
                if special:
                    keep = special(self, req)
                else:
                    self.read_body(req)
                    self.log_request(req)
                    handler = HANDLERS.get(req.path)
                    if handler is None and req.path.startswith("/status/"):
                        handler = h_status
                    keep = (handler or h_notfound)(self, req)
                conn_tokens = req.tokens("connection")
                if keep is False or "close" in conn_tokens or (
                        req.version == "HTTP/1.0" and "keep-alive" not in conn_tokens):
                    break
        except (Closed, OSError, ValueError):
            pass
        finally:
            self.server.log.write({"type": "close", "conn": self.cid})
            try:
                self.sock.close()
            except OSError:
                pass


REASONS = {100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created", 204: "No Content",
           304: "Not Modified", 400: "Bad Request", 404: "Not Found", 418: "I'm a teapot",
           426: "Upgrade Required", 500: "Internal Server Error", 503: "Service Unavailable"}


def h_echo(c, req):
    doc = {"server": c.server.name, "method": req.method, "target": req.target, "path": req.path,
           "query": req.query, "version": req.version, "headers": req.headers,
           "body_len": req.body_len, "body_sha256": req.body_sha256, "chunked": req.chunked}
    c.respond(req, 200, json.dumps(doc).encode(), ["Content-Type: application/json"])


def h_status(c, req):
    try:
        status = int(req.path[len("/status/"):])
    except ValueError:
        status = 400
    body = b"" if status in (204, 304) else f"status {status}\n".encode()
    c.respond(req, status, body, ["Content-Type: text/plain"])


def h_notfound(c, req):
    c.respond(req, 404, b"no such path\n", ["Content-Type: text/plain"])


def h_identify(c, req):
    c.respond(req, 200, c.server.name.encode(), ["Content-Type: text/plain"])


def h_big(c, req):
    size, piece, delay = req.param("size", 1024), req.param("piece", 65536), req.param("delay_ms", 0)
    c.head_only(200, ["Content-Type: application/octet-stream", f"Content-Length: {size}"])
    if req.method == "HEAD":
        return
    for b in pattern_pieces(size, max(1, piece)):
        c.send(b)
        if delay:
            time.sleep(delay / 1000)


def h_chunked(c, req):
    n, size = req.param("n", 5), req.param("size", 100)
    trailer, ext = req.param("trailer", 0), req.param("ext", 0)
    hdrs = ["Content-Type: application/octet-stream", "Transfer-Encoding: chunked"]
    if trailer:
        hdrs.append("Trailer: X-Checksum")
    c.head_only(200, hdrs)
    if req.method == "HEAD":
        return
    body = pattern(n * size)
    for i in range(n):
        piece = body[i * size:(i + 1) * size]
        c.send(b"%x%s\r\n" % (len(piece), b";piece=%d" % i if ext else b"") + piece + b"\r\n")
    tail = b"0\r\n"
    if trailer:
        tail += b"X-Checksum: " + hashlib.sha256(body).hexdigest().encode() + b"\r\n"
    c.send(tail + b"\r\n")


def h_eof(c, req):
    size = req.param("size", 10000)
    c.head_only(200, ["Content-Type: application/octet-stream", "Connection: close"])
    if req.method != "HEAD":
        for b in pattern_blocks(size):
            c.send(b)
    return False


def h_slow_head(c, req):
    time.sleep(req.param("ms", 1000) / 1000)
    c.respond(req, 200, b"slow\n", ["Content-Type: text/plain"])


def h_slow_body(c, req):
    first, second = b"first-part\n", b"second-part\n"
    c.head_only(200, ["Content-Type: text/plain", f"Content-Length: {len(first) + len(second)}"])
    if req.method == "HEAD":
        return
    c.send(first)
    time.sleep(req.param("ms", 1000) / 1000)
    c.send(second)


def h_sse(c, req):
    n, ms, mode = req.param("n", 3), req.param("ms", 1000), req.param("mode", "chunked")
    hdrs = ["Content-Type: text/event-stream", "Cache-Control: no-cache"]
    hdrs.append("Transfer-Encoding: chunked" if mode == "chunked" else "Connection: close")
    c.head_only(200, hdrs)
    for i in range(n):
        if i:
            time.sleep(ms / 1000)
        ev = f"id: {i}\ndata: event {i}\n\n".encode()
        c.send(b"%x\r\n%s\r\n" % (len(ev), ev) if mode == "chunked" else ev)
    if mode == "chunked":
        c.send(b"0\r\n\r\n")
        return True
    return False


def h_close_after(c, req):
    hdrs = ["Content-Type: text/plain"] + (["Connection: close"] if req.param("announce", 0) else [])
    c.respond(req, 200, b"bye\n", hdrs)
    time.sleep(req.param("ms", 0) / 1000)
    return False


def h_headers(c, req):
    c.respond(req, 200, b"ok", ["Content-Type: text/plain", "Connection: X-Foo", "X-Foo: bar",
                                "Keep-Alive: timeout=5", "Proxy-Connection: keep-alive", "Upgrade: h2c",
                                "X-Keep: yes", "Set-Cookie: a=1", "Set-Cookie: b=2"])


BAD = {
    "status": b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok",
    "clte": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "cl2": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
    "garbage": b"HELLO WORLD\r\n\r\n",
    "fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n folded\r\nContent-Length: 2\r\n\r\nok",
    "empty": b"",
    # a valid head, then a broken chunk: too late for a 502 once the head is relayed
    "chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nbroken\r\n0\r\n\r\n",
}


def h_bad(c, req):
    c.send(BAD.get(req.param("kind", "status"), BAD["status"]))
    return False


def h_reset(c, req):
    at, size, sent = req.param("at", "head"), req.param("size", 100000), req.param("sent", 30000)
    if at == "head":
        c.send(f"HTTP/1.1 200 OK\r\nX-Upstream: {c.server.name}\r\nContent-Le".encode())
    elif at == "chunked":
        c.head_only(200, ["Content-Type: application/octet-stream", "Transfer-Encoding: chunked"])
        for piece in pattern_pieces(sent, 10000):
            c.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        c.send(b"2710\r\n" + b"x" * 100)  # a chunk of 10000 announced, 100 bytes of it sent
    elif at == "eof":
        c.head_only(200, ["Content-Type: application/octet-stream", "Connection: close"])
        c.send(pattern(sent))
    else:
        c.head_only(200, ["Content-Type: application/octet-stream", f"Content-Length: {size}"])
        c.send(pattern(sent))
    c.wait_sent()
    c.reset_on_close()
    return False


def h_half_close(c, req):
    if req.param("at", "end") == "head":
        c.send(f"HTTP/1.1 200 OK\r\nX-Upstream: {c.server.name}\r\nContent-Le".encode())
    else:
        c.respond(req, 200, b"half-closed\n", ["Content-Type: text/plain"])
    c.sock.shutdown(socket.SHUT_WR)
    c.sock.recv(65536)  # the peer closing (or sending anything more) ends the connection
    return False


def h_drop(c, req):
    if req.param("reused", 0) and req.seq == 0:
        c.respond(req, 200, b"new connection\n", ["Content-Type: text/plain"])
        return True
    if req.param("on", c.server.name) != c.server.name:
        c.respond(req, 200, f"kept by {c.server.name}\n".encode(), ["Content-Type: text/plain"])
        return True
    if req.param("rst", 0):
        c.reset_on_close()
    return False


HANDLERS = {"/echo": h_echo, "/identify": h_identify, "/big": h_big, "/chunked": h_chunked,
            "/eof": h_eof, "/slow-head": h_slow_head, "/slow-body": h_slow_body, "/sse": h_sse,
            "/close-after": h_close_after, "/headers": h_headers, "/bad-response": h_bad,
            "/reset": h_reset, "/half-close": h_half_close, "/drop": h_drop}


def s_continue(c, req):
    """Answers 100 Continue itself only when asked to, then reads the body."""
    expect = "100-continue" in req.tokens("expect")
    if expect:
        c.send(b"HTTP/1.1 100 Continue\r\n\r\n")
    c.read_body(req)
    c.log_request(req)
    doc = {"server": c.server.name, "expect": expect, "body_len": req.body_len, "body_sha256": req.body_sha256}
    c.respond(req, 200, json.dumps(doc).encode(), ["Content-Type: application/json"])


def s_ws(c, req):
    """Upgrade tunnel: 101, then every byte is echoed back until the peer closes."""
    c.log_request(req)
    if "websocket" not in req.tokens("upgrade") or "upgrade" not in req.tokens("connection"):
        c.read_body(req)
        c.respond(req, 426, b"upgrade required\n", ["Content-Type: text/plain"])
        return True
    accept = []
    key = req.get("sec-websocket-key")
    if key:
        digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        accept = ["Sec-WebSocket-Accept: " + base64.b64encode(digest).decode()]
    c.head_only(101, ["Upgrade: websocket", "Connection: Upgrade"] + accept)
    if c.buf:
        c.send(c.buf)
        c.buf = b""
    while True:
        data = c.sock.recv(65536)
        if not data:
            break
        c.send(data)
    c.sock.shutdown(socket.SHUT_WR)
    return False


SPECIAL = {"/100": s_continue, "/ws": s_ws}


class Server:
    def __init__(self, port=0, name="upstream", log=None, host="127.0.0.1"):
        self.name = name
        self.log = Log(log)
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.next_id = 0

    def serve_forever(self):
        while True:
            sock, peer = self.sock.accept()
            self.next_id += 1
            self.log.write({"type": "accept", "conn": self.next_id, "peer": list(peer[:2])})
            threading.Thread(target=Conn(self, sock, self.next_id).run, daemon=True).start()


# ---- the test side -----------------------------------------------------------

class Upstream:
    """A `serve` child process on a free loopback port; stop() ends it (by PID)."""

    def __init__(self, name="up", port=0, host="127.0.0.1"):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="upstream-")
        self.log_path = os.path.join(self.dir, "log.jsonl")
        self.err = open(os.path.join(self.dir, "stderr"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "serve", "--port", str(port), "--name", name,
             "--log", self.log_path, "--host", host], stdout=subprocess.PIPE, stderr=self.err)
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"upstream {name} did not start: {line!r}")
        self.port = int(line.split()[1])
        self.host = host
        hostport = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        self.url = "http://" + hostport
        self.authority = hostport

    def events(self):
        try:
            with open(self.log_path) as f:
                return [json.loads(line) for line in f if line.endswith("\n")]
        except FileNotFoundError:
            return []

    def accepted(self):
        """Number of connections accepted so far."""
        return sum(1 for e in self.events() if e["type"] == "accept")

    def requests(self, path=None):
        out = []
        for e in self.events():
            if e["type"] != "request":
                continue
            r = Request(base64.b64decode(e["head"]), e["conn"], e["seq"])
            r.body_len, r.body_sha256 = e["body_len"], e["body_sha256"]
            r.chunked, r.chunk_ext, r.trailers = e["chunked"], e["chunk_ext"], e["trailers"]
            r.raw_body = base64.b64decode(e["raw_body"]) if "raw_body" in e else None
            if path is None or r.path == path:
                out.append(r)
        return out

    def wait_requests(self, n, path=None, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            reqs = self.requests(path)
            if len(reqs) >= n:
                return reqs
            time.sleep(0.02)
        return self.requests(path)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.err.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# ---- self-test: the upstream against a plain socket client ----------------------

def self_test():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from harness import HttpConn

    with Upstream("self") as up:
        # keep-alive: several requests, one connection, logged in order
        c = HttpConn(up.port)
        for i in range(3):
            c.send(f"GET /echo?i={i} HTTP/1.1\r\nHost: h{i}\r\n\r\n".encode())
            r = c.read_response()
            doc = json.loads(r.body)
            assert r.status == 200 and doc["query"] == f"i={i}" and ["Host", f"h{i}"] in doc["headers"], doc
            assert r.get("x-upstream") == "self"
        c.close()
        assert up.accepted() == 1
        reqs = up.requests("/echo")
        assert [r.target for r in reqs] == ["/echo?i=0", "/echo?i=1", "/echo?i=2"]
        assert reqs[0].head == b"GET /echo?i=0 HTTP/1.1\r\nHost: h0\r\n\r\n"

        # request bodies: Content-Length and chunked (raw framing logged)
        c = HttpConn(up.port)
        c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
        assert json.loads(c.read_response().body)["body_len"] == 5
        c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n")
        doc = json.loads(c.read_response().body)
        assert doc["chunked"] and doc["body_sha256"] == hashlib.sha256(b"abcde").hexdigest()
        r = up.requests("/echo")[-1]
        assert r.chunked and r.chunk_ext and r.trailers == [["T", "v"]]
        assert r.raw_body == b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n"

        # response bodies: Content-Length, chunked with trailer, close-delimited
        c.send(b"GET /big?size=300000&piece=7000 HTTP/1.1\r\nHost: a\r\n\r\n")
        assert c.read_response().body == pattern(300000)
        c.send(b"HEAD /big?size=300000 HTTP/1.1\r\nHost: a\r\n\r\n")
        r = c.read_response("HEAD")
        assert r.get("content-length") == "300000" and r.body == b""
        c.send(b"GET /chunked?n=4&size=10&trailer=1&ext=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        r = c.read_response()
        assert r.framing == "chunked" and r.body == pattern(40)
        assert r.trailers == [("X-Checksum", hashlib.sha256(pattern(40)).hexdigest())]
        c.send(b"GET /status/418 HTTP/1.1\r\nHost: a\r\n\r\n")
        assert c.read_response().status == 418
        c.send(b"GET /eof?size=5000 HTTP/1.1\r\nHost: a\r\n\r\n")
        r = c.read_response()
        assert r.framing == "close" and r.body == pattern(5000)
        c.close()

        # hop-by-hop response headers are there to be stripped
        c = HttpConn(up.port)
        c.send(b"GET /headers HTTP/1.1\r\nHost: a\r\n\r\n")
        r = c.read_response()
        assert r.get("x-foo") == "bar" and r.all("set-cookie") == ["a=1", "b=2"]
        # /close-after closes after answering although the response said nothing
        c.send(b"GET /close-after HTTP/1.1\r\nHost: a\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.get("connection") is None
        assert c.at_eof(timeout=2)
        c.close()

        # 100-continue
        c = HttpConn(up.port)
        c.send(b"POST /100 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        assert c.read_response(skip_1xx=False).status == 100
        c.send(b"data")
        assert json.loads(c.read_response().body) == {"server": "self", "expect": True, "body_len": 4,
                                                      "body_sha256": hashlib.sha256(b"data").hexdigest()}
        c.close()

        # upgrade tunnel
        c = HttpConn(up.port)
        c.send(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        r = c.read_head()
        assert r.status == 101 and r.get("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        c.send(b"ping-1")
        assert c.recv_exact(6) == b"ping-1"
        c.sock.shutdown(socket.SHUT_WR)
        assert c.at_eof(timeout=2)
        c.close()

        # SSE streams, slow head waits
        c = HttpConn(up.port)
        c.send(b"GET /sse?n=2&ms=300 HTTP/1.1\r\nHost: a\r\n\r\n")
        t0 = time.time()
        r = c.read_response()
        assert b"data: event 1" in r.body and time.time() - t0 >= 0.25
        c.close()

        # malformed responses are malformed
        for kind, start in (("status", b"HTTP/1.1 2x0"), ("garbage", b"HELLO"), ("empty", b"")):
            c = HttpConn(up.port)
            c.send(f"GET /bad-response?kind={kind} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
            data = c.read_all()
            assert data.startswith(start) and (start or data == b""), (kind, data)
            c.close()

        # faults: a reset after part of the body, a half-close, a close without a byte
        c = HttpConn(up.port)
        c.send(b"GET /reset?at=body&size=5000&sent=3000 HTTP/1.1\r\nHost: a\r\n\r\n")
        r = c.read_head()
        assert r.get("content-length") == "5000" and c.recv_exact(3000) == pattern(3000)
        try:
            assert c.sock.recv(1) == b"" and False, "a FIN, not a reset"
        except ConnectionResetError:
            pass
        c.close()
        c = HttpConn(up.port)
        c.send(b"GET /half-close HTTP/1.1\r\nHost: a\r\n\r\n")
        assert c.read_response().body == b"half-closed\n" and c.at_eof(timeout=2)
        c.close()
        c = HttpConn(up.port)
        c.send(b"GET /drop?reused=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        assert c.read_response().body == b"new connection\n"
        c.send(b"GET /drop?reused=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        assert c.read_all() == b""
        c.close()

        deadline = time.time() + 5  # the half-closed one ends when its thread sees our close
        while [e["type"] for e in up.events()].count("close") < 12 and time.time() < deadline:
            time.sleep(0.02)
        kinds = [e["type"] for e in up.events()]
        assert kinds.count("accept") == 12 and kinds.count("close") == 12, kinds
    shutil.rmtree(up.dir, ignore_errors=True)
    print("upstream self-test: ok")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd")
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--name", default="upstream")
    s.add_argument("--log")
    sub.add_parser("selftest")
    args = ap.parse_args()
    if args.cmd == "serve":
        srv = Server(args.port, args.name, args.log, args.host)
        print(f"PORT {srv.port}", flush=True)
        try:
            srv.serve_forever()
        except KeyboardInterrupt:
            pass
    else:
        self_test()


if __name__ == "__main__":
    main()
