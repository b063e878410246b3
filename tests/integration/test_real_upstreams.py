"""edgeproxy in front of real upstreams: the Go backend of tests/backend/main.go (the one
the README shows, built here with Debian's golang-go) and nginx (Debian's nginx-light).
Issue 3, "Tests that must exist": routing, weighted balancing, 10 MiB bodies both ways,
a slow reader of 50 MiB, WebSocket, 100 Continue, an upstream dying mid-response,
502/503/504, upstream connection reuse and forwarded headers."""
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from harness import EdgeProxy, HttpConn, free_port, rss_kib, wait_port

MiB = 1 << 20
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
BACKEND_SRC = os.path.join(ROOT, "tests/backend/main.go")
BUILD_DIR = os.environ.get("EDGEPROXY_TEST_BUILD_DIR") or os.path.join(ROOT, "build/test")
TEST_SECONDS = 60  # no test here may take longer


@pytest.fixture(autouse=True)
def time_bound():
    """Fails a test that runs longer than TEST_SECONDS (every socket read is bounded too)."""
    def expired(*_):
        pytest.fail(f"test took longer than {TEST_SECONDS} s", pytrace=False)
    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_SECONDS)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


# ---- installing and building ------------------------------------------------------

def ensure_tool(cmd, package):
    """Path of cmd; installs the Debian package when missing and running as root."""
    path = shutil.which(cmd) or (os.path.exists(f"/usr/sbin/{cmd}") and f"/usr/sbin/{cmd}")
    if path or os.geteuid() != 0 or not shutil.which("apt-get"):
        return path or None
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", package],
                       env=env, capture_output=True, timeout=600)
    if r.returncode != 0:  # the package lists may be missing on a fresh machine
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=300)
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", package],
                       env=env, capture_output=True, timeout=600)
    return shutil.which(cmd) or (os.path.exists(f"/usr/sbin/{cmd}") and f"/usr/sbin/{cmd}") or None


@pytest.fixture(scope="session")
def backend_bin():
    go = ensure_tool("go", "golang-go")
    if not go:
        pytest.skip("go is not installed and could not be installed (apt-get install golang-go)")
    os.makedirs(BUILD_DIR, exist_ok=True)
    out = os.path.join(BUILD_DIR, "backend")
    tmp = tempfile.mkdtemp(prefix="edgeproxy-go-")
    env = dict(os.environ, GOCACHE=os.path.join(tmp, "cache"), GOPATH=os.path.join(tmp, "path"),
               GO111MODULE="off")  # cgo on: Debian ships std prebuilt that way (~1 s cold)
    r = subprocess.run([go, "build", "-o", out, BACKEND_SRC], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    shutil.rmtree(tmp, ignore_errors=True)
    assert r.returncode == 0, "go build of tests/backend/main.go failed:\n" + r.stdout + r.stderr
    return out


# ---- the upstream processes ---------------------------------------------------------

class Process:
    """A server process we started; stopped by its own PID only."""

    def __init__(self, argv, port, log):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        if not wait_port(port, timeout=10):
            self.stop()
            raise RuntimeError(f"{argv[0]} did not listen on {port}:\n" + open(log).read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self):
        self.proc.kill()
        self.proc.wait()


def start_go(binary, name, tmpdir):
    port = free_port()
    return Process([binary, "-addr", f"127.0.0.1:{port}", "-name", name], port,
                   os.path.join(tmpdir, f"go-{name}.log"))


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    types {{ application/octet-stream bin; }}
    default_type text/plain;
    server {{
        listen 127.0.0.1:{port};
        root {dir}/www;
        location /static/ {{ }}
        location = /ok {{ return 200 "nginx ok\\n"; }}
        location / {{ return 200 "nginx @ $host\\n"; }}
    }}
}}
"""


class Upstreams:
    def __init__(self, go_bin, tmpdir, a, b, nginx, static_sha256):
        self.go_bin, self.tmpdir = go_bin, tmpdir
        self.a, self.b, self.nginx, self.static_sha256 = a, b, nginx, static_sha256


@pytest.fixture(scope="session")
def ups(backend_bin):
    """Two Go backends (named a and b) and one nginx with a 10 MiB static file."""
    nginx_bin = ensure_tool("nginx", "nginx-light")
    if not nginx_bin:
        pytest.skip("nginx is not installed and could not be installed (apt-get install nginx-light)")
    tmp = tempfile.mkdtemp(prefix="edgeproxy-upstreams-")
    os.chmod(tmp, 0o755)  # nginx workers may run as nobody
    os.makedirs(os.path.join(tmp, "www/static"))
    os.makedirs(os.path.join(tmp, "tmp"))
    blob = os.urandom(10 * MiB)
    with open(os.path.join(tmp, "www/static/10m.bin"), "wb") as f:
        f.write(blob)
    for d in ("www", "www/static"):
        os.chmod(os.path.join(tmp, d), 0o755)
    os.chmod(os.path.join(tmp, "www/static/10m.bin"), 0o644)
    nport = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(dir=tmp, port=nport))
    started = []
    try:
        started.append(start_go(backend_bin, "a", tmp))
        started.append(start_go(backend_bin, "b", tmp))
        started.append(Process([nginx_bin, "-p", tmp, "-e", os.path.join(tmp, "error.log"), "-c", conf],
                               nport, os.path.join(tmp, "nginx.out")))
        yield Upstreams(backend_bin, tmp, *started, hashlib.sha256(blob).hexdigest())
    finally:
        for p in started:
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# ---- edgeproxy in front of them -----------------------------------------------------

def edge_config(port, services, routers, ep=""):
    """services: {name: [server line, ..., or "key = value"]}; routers: [(rule, service)]."""
    out = [f"[global]\nstate_dir = {{dir}}/state\n\n[entrypoint web]\nlisten = 127.0.0.1:{port}\n{ep}\n"]
    for i, (rule, svc) in enumerate(routers):
        out.append(f"[router r{i}]\nrule = {rule}\nservice = {svc}\n")
    for name, lines in services.items():
        body = "\n".join(x if " = " in x else f"server = {x}" for x in lines)
        out.append(f"[service {name}]\n{body}\n")
    return "\n".join(out)


@pytest.fixture
def edge():
    made = []

    def make(services, routers=None, ep=""):
        if routers is None:
            routers = [("PathPrefix(`/`)", next(iter(services)))]
        port = free_port()
        p = EdgeProxy(edge_config(port, services, routers, ep), port)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


@pytest.fixture
def own_go(ups):
    """own_go(name) starts a Go backend that this test alone may stop or kill."""
    made = []

    def make(name):
        g = start_go(ups.go_bin, name, ups.tmpdir)
        made.append(g)
        return g

    yield make
    for g in made:
        g.stop()


def fetch(port, target="/", host="a.test", method="GET", headers=(), body=b"", timeout=10, **kw):
    with HttpConn(port, timeout=timeout) as c:
        c.request(method, target, host=host, headers=headers, body=body, **kw)
        return c.read_response(method)


def go_pattern_sha256(n):
    """sha256 of what the Go backend's /big sends (see pattern() in main.go)."""
    h, i = hashlib.sha256(), 0
    while n > 0:
        block = (hashlib.sha256(b"%d" % i).digest() * 2048)[:min(65536, n)]
        h.update(block)
        n -= len(block)
        i += 1
    return h.hexdigest()


def echo_doc(r):
    assert r.status == 200, r
    return json.loads(r.body)


# ---- routing and balancing ----------------------------------------------------------

def test_routes_by_host_and_path_to_go_and_nginx(ups, edge):
    p = edge({"go-a": [ups.a.url], "go-b": [ups.b.url], "nginx": [ups.nginx.url]},
             [("Host(`a.test`)", "go-a"), ("Host(`b.test`)", "go-b"),
              ("Host(`nginx.test`)", "nginx"), ("PathPrefix(`/static/`) || Path(`/ok`)", "nginx")])
    r = fetch(p.port, "/", host="a.test")
    assert (r.status, r.body) == (200, b"Hello from go @ a.test")
    assert fetch(p.port, "/name", host="a.test").body == b"a"
    assert fetch(p.port, "/name", host="b.test").body == b"b"
    assert fetch(p.port, "/health", host="B.Test:80").body == b"OK"
    r = fetch(p.port, "/", host="nginx.test")
    assert (r.status, r.body) == (200, b"nginx @ nginx.test\n")
    assert fetch(p.port, "/ok", host="other.test").body == b"nginx ok\n"
    r = fetch(p.port, "/static/10m.bin", host="other.test", method="HEAD")
    assert r.status == 200 and r.get("content-length") == str(10 * MiB)
    assert fetch(p.port, "/", host="other.test").status == 404  # no router matches


def test_weighted_round_robin_3_to_1(ups, edge):
    p = edge({"app": [f"{ups.a.url} weight=3", f"{ups.b.url} weight=1"]})
    with HttpConn(p.port) as c:
        seq = []
        for _ in range(40):
            c.request("GET", "/name", host="app.test")
            seq.append(c.read_response().body.decode())
    assert seq.count("a") == 30 and seq.count("b") == 10, seq
    # smooth weighted round robin spreads b out: one in every cycle of 4
    assert all(seq[i:i + 4].count("b") == 1 for i in range(0, 40, 4)), seq


# ---- 10 MiB bodies both ways ------------------------------------------------------

@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_10mib_upload_to_go(ups, edge, chunked):
    p = edge({"app": [ups.a.url]})
    body = os.urandom(10 * MiB)
    with HttpConn(p.port, timeout=20) as c:
        if chunked:
            head = b"POST /echo HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            pieces = [body[i:i + 100000] for i in range(0, len(body), 100000)]
            wire = b"".join(b"%x\r\n%s\r\n" % (len(x), x) for x in pieces) + b"0\r\n\r\n"
            sender = threading.Thread(target=c.send, args=(head + wire,))
        else:
            head = b"POST /echo HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n" % len(body)
            sender = threading.Thread(target=c.send, args=(head + body,))
        sender.start()
        doc = echo_doc(c.read_response())
        sender.join(20)
    assert doc["method"] == "POST" and doc["body_len"] == len(body)
    assert doc["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_10mib_static_file_from_nginx(ups, edge):
    p = edge({"nginx": [ups.nginx.url]})
    with HttpConn(p.port, timeout=20) as c:
        c.request("GET", "/static/10m.bin", host="files.test")
        r = c.read_response()
        assert r.status == 200 and r.framing == "length" and r.get("content-length") == str(10 * MiB)
        assert hashlib.sha256(r.body).hexdigest() == ups.static_sha256
        c.request("GET", "/ok", host="files.test")  # the client connection is still in step
        assert c.read_response().body == b"nginx ok\n"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_10mib_download_from_go(ups, edge, chunked):
    p = edge({"app": [ups.a.url]})
    size = 10 * MiB
    with HttpConn(p.port, timeout=20) as c:
        c.request("GET", f"/big?size={size}" + ("&chunked=1" if chunked else ""), host="a.test")
        r = c.read_response()
        assert r.status == 200
        assert r.framing == ("chunked" if chunked else "length"), r.headers
        assert len(r.body) == size and hashlib.sha256(r.body).hexdigest() == go_pattern_sha256(size)
        c.request("GET", "/name", host="a.test")
        assert c.read_response().body == b"a"


# ---- streaming, backpressure, tunnels -------------------------------------------------

@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_slow_reader_of_50mib_keeps_edgeproxy_rss_bounded(ups, edge, chunked):
    p = edge({"app": [ups.a.url]})
    size = 50 * MiB
    c = HttpConn(p.port, timeout=15)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    try:
        c.request("GET", f"/big?size={size}" + ("&chunked=1" if chunked else ""), host="a.test")
        r = c.read_head()
        assert r.status == 200
        time.sleep(1.5)  # Go writes as fast as it can; nobody reads
        peak = rss_kib(p.proc.pid)
        h, got, next_pause = hashlib.sha256(), 0, 5 * MiB
        for piece in c.iter_body(r):
            h.update(piece)
            got += len(piece)
            if got >= next_pause:
                peak = max(peak, rss_kib(p.proc.pid))
                time.sleep(0.1)
                next_pause += 5 * MiB
        peak = max(peak, rss_kib(p.proc.pid))
    finally:
        c.close()
    assert got == size and h.hexdigest() == go_pattern_sha256(size)
    assert peak < 16 * 1024, f"edgeproxy VmRSS reached {peak} KiB while relaying {size} bytes"


def test_server_sent_events_arrive_as_go_flushes_them(ups, edge):
    p = edge({"app": [ups.a.url]})
    with HttpConn(p.port, timeout=8) as c:
        t0 = time.time()
        c.request("GET", "/sse?n=3&ms=700", host="a.test", headers=["Accept: text/event-stream"])
        r = c.read_head()
        assert r.status == 200 and r.get("content-type") == "text/event-stream"
        pieces, body = c.iter_body(r), b""
        while b"\n\n" not in body:
            body += next(pieces)
        assert body == b"id: 0\ndata: event 0\n\n" and time.time() - t0 < 0.6
        body += b"".join(pieces)
        assert body == b"".join(b"id: %d\ndata: event %d\n\n" % (i, i) for i in range(3))
        assert time.time() - t0 >= 1.3


def test_websocket_echo_through_the_tunnel(ups, edge):
    p = edge({"app": [ups.a.url]})
    with HttpConn(p.port, timeout=10) as c:
        c.send(b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        r = c.read_head()
        assert r.status == 101, r.head
        assert r.tokens("upgrade") == ["websocket"] and "upgrade" in r.tokens("connection")
        assert r.get("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 §1.3
        c.send(b"\x81\x05hello")  # bytes, not decoded by anybody: a frame is just a payload here
        assert c.recv_exact(7) == b"\x81\x05hello"
        blob = os.urandom(4 * MiB)
        sender = threading.Thread(target=c.send, args=(blob,))
        sender.start()
        got = c.recv_exact(len(blob))
        sender.join(10)
        assert got == blob
        c.sock.shutdown(socket.SHUT_WR)  # Go sees EOF and closes; so must edgeproxy
        assert c.at_eof(timeout=3)
    assert fetch(p.port, "/name").body == b"a"


def test_expect_100_continue_upload_to_go(ups, edge):
    p = edge({"app": [ups.a.url]})
    body = os.urandom(MiB)
    with HttpConn(p.port, timeout=5) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body))
        interim = c.read_head()  # times out (5 s) if nobody says 100 Continue
        assert interim.status == 100, interim.head
        sender = threading.Thread(target=c.send, args=(body,))
        sender.start()
        r = c.read_response()  # skips any further 1xx
        sender.join(5)
        doc = echo_doc(r)
        assert doc["body_len"] == len(body) and doc["body_sha256"] == hashlib.sha256(body).hexdigest()
        c.request("GET", "/name", host="a.test")  # still in step afterwards
        assert c.read_response().body == b"a"


# ---- upstreams failing --------------------------------------------------------------

def test_upstream_cutting_a_response_cuts_the_client_and_others_are_served(ups, edge):
    p = edge({"app": [ups.a.url]})
    for _ in range(2):
        with HttpConn(p.port, timeout=5) as c:
            c.request("GET", "/kill-mid?size=1048576", host="a.test")
            r = c.read_head()
            assert r.status == 200 and r.get("content-length") == "1048576"
            got = 0
            with pytest.raises((EOFError, ConnectionResetError)):
                for piece in c.iter_body(r):
                    got += len(piece)
            assert got < 1048576
    for _ in range(5):
        assert fetch(p.port, "/name").body == b"a"


def test_upstream_process_killed_mid_response(ups, edge, own_go):
    victim = own_go("victim")
    p = edge({"victim": [victim.url], "app": [ups.a.url]},
             [("Host(`victim.test`)", "victim"), ("Host(`a.test`)", "app")])
    size = 50 * MiB
    with HttpConn(p.port, timeout=5) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.request("GET", f"/big?size={size}", host="victim.test")
        r = c.read_head()
        assert r.status == 200 and r.get("content-length") == str(size)
        pieces, got = c.iter_body(r), 0
        while got < MiB:
            got += len(next(pieces))
        victim.kill()  # SIGKILL: the kernel closes its socket mid-body
        with pytest.raises((EOFError, ConnectionResetError)):
            for piece in pieces:
                got += len(piece)
        assert got < size
    assert [fetch(p.port, "/name", host="a.test").body for _ in range(5)] == [b"a"] * 5


def test_nothing_listening_is_502(ups, edge):
    p = edge({"dead": [f"http://127.0.0.1:{free_port()}"], "app": [ups.a.url]},
             [("Host(`dead.test`)", "dead"), ("Host(`a.test`)", "app")])
    t0 = time.time()
    r = fetch(p.port, "/", host="dead.test")
    assert r.status == 502 and time.time() - t0 < 3
    assert fetch(p.port, "/name", host="a.test").body == b"a"


def test_all_servers_down_after_a_failure_is_503(ups, edge, own_go):
    g = own_go("doomed")
    p = edge({"app": [g.url, "health_interval = 60s"]})
    assert fetch(p.port, "/name").body == b"doomed"  # also leaves a pooled connection behind
    g.stop()
    statuses = []
    for _ in range(5):
        t0 = time.time()
        statuses.append(fetch(p.port, "/name").status)
        assert time.time() - t0 < 3
    # the first request finds it gone (502; a dead pooled connection never shows);
    # from then on the server is down and nothing is left: 503 without trying
    assert statuses[0] in (502, 503) and statuses[1:] == [503] * 4, statuses


def test_response_timeout_is_504(ups, edge):
    p = edge({"app": [ups.a.url, "response_timeout = 500ms"]})
    t0 = time.time()
    r = fetch(p.port, "/slow?ms=2000")
    elapsed = time.time() - t0
    assert r.status == 504, r
    assert 0.4 <= elapsed < 1.8, elapsed  # the proxy's 500 ms, not Go's 2 s


# ---- upstream keep-alive and forwarded headers ---------------------------------------

def test_pooled_upstream_connections_are_reused(ups, edge):
    p = edge({"app": [ups.a.url]})
    seen = []
    with HttpConn(p.port) as c:  # one client connection, keep-alive
        for _ in range(30):
            c.request("GET", "/conn", host="a.test")
            seen.append(c.read_response().body.decode())
    for _ in range(30):  # a new client connection each time
        seen.append(fetch(p.port, "/conn").body.decode())
    assert all(s.startswith("127.0.0.1:") for s in seen), seen
    assert len(set(seen)) <= 2, f"60 sequential requests used {len(set(seen))} upstream connections"

    def worker(out):
        with HttpConn(p.port) as c:
            for _ in range(25):
                c.request("GET", "/conn", host="a.test")
                out.append(c.read_response().body.decode())
    results = [[] for _ in range(4)]
    threads = [threading.Thread(target=worker, args=(r,)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    concurrent = [x for r in results for x in r]
    assert len(concurrent) == 100
    assert len(set(concurrent)) <= 8, f"4 clients x 25 requests used {len(set(concurrent))} upstream connections"


def test_forwarded_headers_seen_by_go(ups, edge):
    p = edge({"app": [ups.a.url]})
    doc = echo_doc(fetch(p.port, "/echo?q=1", host="shop.test", headers=[
        "X-Forwarded-For: 6.6.6.6", "X-Real-Ip: 6.6.6.6", "X-Forwarded-Host: evil.test"]))
    h = doc["headers"]
    assert doc["host"] == "shop.test" and doc["path"] == "/echo" and doc["query"] == "q=1"
    assert h.get("X-Forwarded-For") == ["127.0.0.1"], h  # an untrusted client's are replaced
    assert h.get("X-Forwarded-Proto") == ["http"], h
    assert h.get("X-Forwarded-Host") == ["shop.test"], h
    assert h.get("X-Forwarded-Port") == [str(p.port)], h
    assert h.get("X-Real-Ip") == ["127.0.0.1"], h


def test_forwarded_for_from_a_trusted_proxy_is_appended_for_go(ups, edge):
    p = edge({"app": [ups.a.url]}, ep="trusted_proxies = 127.0.0.0/8")
    doc = echo_doc(fetch(p.port, "/echo", host="shop.test", headers=[
        "X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https"]))
    h = doc["headers"]
    assert h.get("X-Forwarded-For") == ["203.0.113.7, 127.0.0.1"], h
    assert h.get("X-Forwarded-Proto") == ["https"], h
