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
