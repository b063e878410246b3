"""Black-box harness: starts the real edgeproxy binary on loopback with a written
INI file, talks to it over real sockets, and stops it by the PID it started."""
import os
import signal
import socket
import subprocess
import tempfile
import time

BIN = os.environ.get("EDGEPROXY_BIN") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "../../build/x86_64/edgeproxy"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, host="127.0.0.1", timeout=5.0):
    deadline = time.time() + timeout
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    while time.time() < deadline:
        try:
            with socket.socket(fam) as s:
                s.settimeout(0.2)
                s.connect((host, port))
                return True
        except OSError:
            time.sleep(0.02)
    return False


class EdgeProxy:
    """An edgeproxy process on a config; use as a context manager."""

    def __init__(self, config, port=None, wait=True, host="127.0.0.1"):
        self.dir = tempfile.mkdtemp(prefix="edgeproxy-test-")
        self.path = os.path.join(self.dir, "edgeproxy.ini")
        self.port = port
        self.host = host
        self.write(config)
        self.log = open(os.path.join(self.dir, "stderr.log"), "w+")
        self.proc = subprocess.Popen([BIN, "run", "-c", self.path], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        if wait and port and not wait_port(port, host):
            self.stop()
            raise RuntimeError("edgeproxy did not listen:\n" + self.output())

    def write(self, config):
        with open(self.path, "w") as f:
            f.write(config.replace("{dir}", self.dir))

    def output(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def raw(port, data, timeout=3.0, host="127.0.0.1", shutdown=False):
    """Sends bytes, returns everything received until close or timeout."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        s.sendall(data)
        if shutdown:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        except socket.timeout:
            pass
        return b"".join(chunks)


def status_of(resp):
    line = resp.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def split_responses(data):
    """Splits a byte stream of responses that all carry Content-Length."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        out.append((head, rest[:length]))
        data = rest[length:]
    return out


def request(port, method="GET", path="/", host="example.com", headers=(), body=b"", timeout=3.0):
    """One request with Connection: close; returns (status, headers dict, body)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += list(headers)
    if body:
        lines.append(f"Content-Length: {len(body)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    resp = raw(port, data, timeout)
    head, _, rest = resp.partition(b"\r\n\r\n")
    hdrs = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        hdrs[k.strip().lower().decode()] = v.strip().decode()
    return status_of(resp), hdrs, rest


def run_cli(*args, env=None, timeout=10):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout, env=env)


# ---- a client that reads responses by their framing (used by the proxy tests) ----

class Response:
    def __init__(self, head):
        self.head = head
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        parts = lines[0].split(" ", 2)
        self.version = parts[0]
        self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        self.reason = parts[2] if len(parts) > 2 else ""
        self.headers = []
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                self.headers.append((k, v.strip(" \t")))
        self.body = b""
        self.trailers = []
        self.framing = None  # none, length, chunked or close

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def get(self, name, default=None):
        vals = self.all(name)
        return vals[0] if vals else default

    def tokens(self, name):
        return [t.strip().lower() for v in self.all(name) for t in v.split(",") if t.strip()]

    def __repr__(self):
        return f"<Response {self.status_line!r} {len(self.body)} bytes>"


class HttpConn:
    """One client connection with a read buffer; every read is bounded by timeout."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0, source=None):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method="GET", target="/", host="example.com", headers=(), body=b"",
                version="HTTP/1.1", chunked=False):
        lines = [f"{method} {target} {version}"]
        if host is not None:
            lines.append(f"Host: {host}")
        lines += list(headers)
        if chunked:
            lines.append("Transfer-Encoding: chunked")
            payload = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
        else:
            if body or method in ("POST", "PUT"):
                lines.append(f"Content-Length: {len(body)}")
            payload = body
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)

    def _fill(self):
        data = self.sock.recv(262144)
        if data:
            self.buf += data
        return bool(data)

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise EOFError("connection closed before a response head: %r" % self.buf[:200])
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return Response(head)

    def recv_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError(f"closed after {len(self.buf)} of {n} bytes")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_some(self):
        """Whatever is buffered, else one recv (b"" at EOF)."""
        if not self.buf:
            self._fill()
        out, self.buf = self.buf, b""
        return out

    def _line(self):
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise EOFError("closed inside chunked framing")
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def iter_body(self, resp, method="GET"):
        """Yields the decoded body in pieces, per RFC 9112 §6.3; sets resp.framing."""
        te = resp.tokens("transfer-encoding")
        if method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200:
            resp.framing = "none"
        elif te:
            assert te[-1] == "chunked", resp.headers
            resp.framing = "chunked"
            while True:
                n = int(self._line().split(b";")[0].strip(), 16)
                if n == 0:
                    break
                while n:
                    if not self.buf and not self._fill():
                        raise EOFError("closed inside a chunk")
                    piece, self.buf = self.buf[:n], self.buf[n:]
                    n -= len(piece)
                    yield piece
                if self.recv_exact(2) != b"\r\n":
                    raise ValueError("chunk not followed by CRLF")
            while True:
                line = self._line()
                if not line:
                    break
                k, _, v = line.decode("latin-1").partition(":")
                resp.trailers.append((k, v.strip()))
        elif resp.get("content-length") is not None:
            resp.framing = "length"
            n = int(resp.get("content-length"))
            while n:
                if not self.buf and not self._fill():
                    raise EOFError(f"closed with {n} body bytes missing")
                piece, self.buf = self.buf[:n], self.buf[n:]
                n -= len(piece)
                yield piece
        else:
            resp.framing = "close"
            while True:
                if self.buf:
                    piece, self.buf = self.buf, b""
                    yield piece
                if not self._fill():
                    break

    def read_response(self, method="GET", skip_1xx=True):
        while True:
            resp = self.read_head()
            if not (skip_1xx and 100 <= resp.status < 200 and resp.status != 101):
                break
        if resp.status != 101:
            resp.body = b"".join(self.iter_body(resp, method))
        return resp

    def at_eof(self, timeout=2.0):
        """True when the peer closes (or resets) within timeout with nothing more sent."""
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            return not self.buf and not self._fill()
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(old)

    def read_all(self):
        """Everything until the peer closes (or resets)."""
        try:
            while self._fill():
                pass
        except ConnectionResetError:
            pass
        out, self.buf = self.buf, b""
        return out

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def rss_kib(pid):
    """Resident set size of a process, from /proc/PID/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
