"""Slow and abusive clients (issue 10): slow heads and bodies, slow readers of large
responses, floods past max_connections, thousands of connections opened and dropped,
garbage bytes. What is checked is what an operator sees: the right answer or a
close, memory that stays bounded (VmRSS from /proc/PID/status), file descriptors
that come back to their baseline (/proc/PID/fd), no half-closed sockets left behind
(/proc/net/tcp), and a proxy that still serves afterwards."""
import hashlib
import os
import random
import shutil
import socket
import struct
import threading
import time

import signal

import pytest

from harness import EdgeProxy, HttpConn, free_port, rss_kib
from upstream import Upstream, pattern_sha256
from wire import CaptureUpstream, parse_stream, proc_fds

MiB = 1 << 20
H = b"Host: a.example\r\n"
# Under ASan (make test-asan) shadow memory and the free quarantine make RSS
# figures meaningless: the traffic still runs, the bound is not checked.
CHECK_RSS = not os.environ.get("EDGEPROXY_SANITIZED")


def config(port, upstream_url, ep="", svc="", glob=""):
    return f"""
[global]
state_dir = {{dir}}/state
{glob}

[entrypoint web]
listen = 127.0.0.1:{port}
{ep}

[router hello]
rule = Host(`hello.example`)
service = hello

[router r]
rule = PathPrefix(`/`)
service = app

[service hello]
type = hello

[service app]
server = {upstream_url}
{svc}
"""


@pytest.fixture
def upstream():
    u = Upstream("a")
    yield u
    u.stop()
    shutil.rmtree(u.dir, ignore_errors=True)


@pytest.fixture
def capture():
    with CaptureUpstream() as c:
        yield c


@pytest.fixture
def edge():
    made = []

    def make(url, **kw):
        port = free_port()
        p = EdgeProxy(config(port, url, **kw), port)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def tcp_states(port):
    """States of edgeproxy's own sockets on its listening port (local port == port),
    from /proc/net/tcp: {state hex: count}, LISTEN and TIME_WAIT left out."""
    out = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                lines = f.readlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            parts = line.split()
            local, state = parts[1], parts[3]
            if int(local.rsplit(":", 1)[1], 16) == port and state not in ("0A", "06"):
                out[state] = out.get(state, 0) + 1
    return out


def held_sockets(port):
    """Sockets edgeproxy still holds open towards clients: ESTABLISHED (01) or
    CLOSE_WAIT (08, the client closed and edgeproxy has not)."""
    s = tcp_states(port)
    return s.get("01", 0) + s.get("08", 0)


def wait_for(cond, timeout, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def quiet_fds(p):
    """edgeproxy's fd count once it holds no client socket (a client that just
    closed may not have been noticed yet)."""
    wait_for(lambda: held_sockets(p.port) == 0, 5)
    return proc_fds(p.proc.pid)


def get(port, target="/identify", host="a.example", timeout=5):
    with HttpConn(port, timeout=timeout) as c:
        c.send(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        return c.read_response()


def recv_until_close(sock, limit=1 << 20):
    data = b""
    try:
        while len(data) < limit:
            b = sock.recv(65536)
            if not b:
                break
            data += b
    except ConnectionResetError:
        pass
    return data


# ---- slow heads -------------------------------------------------------------------

def test_trickled_head_is_cut_at_header_timeout(capture, edge):
    """One byte every 100 ms of a head that would take ~5 s: the header timeout (1 s)
    runs from the first byte and progress does not extend it: 408, then close."""
    p = edge(capture.url, ep="header_timeout = 1s\nidle_timeout = 30s")
    head = b"GET /echo HTTP/1.1\r\n" + H + b"X-Pad: " + b"p" * 30 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        got, sent = b"", 0
        s.setblocking(False)
        try:
            while sent < len(head) - 1:  # never the last byte: the head never completes
                s.send(head[sent:sent + 1])
                sent += 1
                time.sleep(0.1)
                try:
                    b = s.recv(4096)
                    got += b
                    if not b or b"\r\n\r\n" in got:
                        break
                except BlockingIOError:
                    pass
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.setblocking(True)
        s.settimeout(5)
        got += recv_until_close(s)
    assert got.startswith(b"HTTP/1.1 408 "), (sent, got[:200])
    assert sent < len(head) - 1, "the header timeout was extended by the trickle"
    capture.settle()
    assert capture.total_bytes() == 0


def test_second_head_on_a_kept_alive_connection_is_timed_too(capture, edge):
    p = edge(capture.url, ep="header_timeout = 1s\nidle_timeout = 30s")
    with HttpConn(p.port, timeout=5) as c:
        c.send(b"GET /one HTTP/1.1\r\n" + H + b"\r\n")
        assert c.read_response().status == 200
        c.send(b"GET /two HTTP/1.1\r\n" + H)  # and nothing more
        r = c.read_response()
        assert r.status == 408 and r.get("x-upstream") is None
        assert c.at_eof(timeout=3)
    capture.settle()
    reqs, problems, _ = parse_stream(b"".join(capture.streams()))
    assert [r.target for r in reqs] == [b"/one"] and not problems


def test_silent_connection_is_closed(capture, edge):
    p = edge(capture.url, ep="header_timeout = 1s\nidle_timeout = 30s")
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        data = recv_until_close(s)  # a socket.timeout here means it was never closed
    assert data == b"" or data.startswith(b"HTTP/1.1 408 ")


# ---- slow bodies ----------------------------------------------------------------------

def test_stalled_proxied_body_is_cut_at_body_timeout(capture, edge):
    """SPEC §3 body_timeout: the longest gap while receiving a request body. A
    client that stops half-way through a proxied body is dropped after it (1 s),
    long before response_timeout (20 s) would end the exchange."""
    p = edge(capture.url, ep="body_timeout = 1s\nheader_timeout = 5s\nidle_timeout = 60s",
             svc="response_timeout = 20s")
    with HttpConn(p.port, timeout=6) as c:
        c.send(b"POST /upload HTTP/1.1\r\n" + H + b"Content-Length: 1000\r\n\r\n" + b"x" * 100)
        try:
            data = c.read_all()  # socket.timeout (6 s) here: still open
        except socket.timeout:
            pytest.fail("a client stalled mid-body for 6 s was not dropped (body_timeout = 1s)")
    assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data[:200]
    capture.settle()
    reqs, _, _ = parse_stream(b"".join(capture.streams()))
    assert reqs == [], "the upstream got a complete request from a partial body"
    assert all(capture.closed()), "the upstream connection of the abandoned exchange was kept"


def test_steady_proxied_upload_longer_than_response_timeout_succeeds(upstream, edge):
    """response_timeout is the wait for the response head (SPEC §3); a body that
    keeps arriving (gaps well under body_timeout) takes as long as it takes."""
    p = edge(upstream.url, ep="body_timeout = 2s", svc="response_timeout = 1s")
    pieces = [os.urandom(1000) for _ in range(12)]
    body = b"".join(pieces)
    with HttpConn(p.port, timeout=10) as c:
        c.send(b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % len(body))
        for piece in pieces:  # ~3 s in all, a piece every 250 ms
            c.send(piece)
            time.sleep(0.25)
        r = c.read_response()
    assert r.status == 200, (r, r.body[:200])
    assert hashlib.sha256(body).hexdigest() in r.body.decode()


def test_trickled_proxied_body_within_body_timeout_succeeds(upstream, edge):
    p = edge(upstream.url, ep="body_timeout = 1s", svc="response_timeout = 20s")
    body = b"0123456789" * 5
    with HttpConn(p.port, timeout=10) as c:
        c.send(b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(body), 10):  # a chunk every 400 ms: progress restarts the gap timer
            c.send(b"a\r\n" + body[i:i + 10] + b"\r\n")
            time.sleep(0.4)
        c.send(b"0\r\n\r\n")
        r = c.read_response()
    assert r.status == 200 and hashlib.sha256(body).hexdigest() in r.body.decode()


def test_stalled_body_to_a_builtin_service_is_closed(capture, edge):
    p = edge(capture.url, ep="body_timeout = 1s\nidle_timeout = 60s")
    with HttpConn(p.port, timeout=6) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: hello.example\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        r = c.read_response()  # the hello service answers without the body
        assert r.status == 200
        assert c.at_eof(timeout=5), "the stalled body kept the connection open past body_timeout"


# ---- slow readers -------------------------------------------------------------------------

@pytest.mark.parametrize("target,size", [
    ("/big?size=%d" % (32 * MiB), 32 * MiB),
    ("/chunked?n=512&size=65536", 512 * 65536),
    ("/eof?size=%d" % (32 * MiB), 32 * MiB),
])
def test_slow_readers_of_large_responses_keep_memory_bounded(upstream, edge, target, size):
    """Eight clients ask for 32 MiB each and read nothing for 2 s, then slowly:
    edgeproxy holds a fixed buffer per exchange, never the body."""
    p = edge(upstream.url, ep="idle_timeout = 30s")
    get(p.port)  # warm up: pools and buffers that exist anyway
    base = rss_kib(p.proc.pid)
    conns = []
    try:
        for _ in range(8):
            c = HttpConn(p.port, timeout=15)
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            c.send(f"GET {target} HTTP/1.1\r\nHost: a.example\r\n\r\n".encode())
            conns.append(c)
        time.sleep(2)
        peak = rss_kib(p.proc.pid)
        results = {}

        def reader(i, c):
            r = c.read_head()
            h, n, pause = hashlib.sha256(), 0, 2 * MiB
            for piece in c.iter_body(r):
                h.update(piece)
                n += len(piece)
                if n >= pause:
                    time.sleep(0.05)
                    pause += 2 * MiB
            results[i] = (r.status, n, h.hexdigest())

        threads = [threading.Thread(target=reader, args=(i, c)) for i, c in enumerate(conns)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak = max(peak, rss_kib(p.proc.pid))
            time.sleep(0.1)
        for t in threads:
            t.join(1)
    finally:
        for c in conns:
            c.close()
    want = (200, size, pattern_sha256(size))
    assert [results.get(i) for i in range(8)] == [want] * 8
    assert peak - base < 4 * 1024 or not CHECK_RSS, f"VmRSS grew from {base} to {peak} KiB for 8 slow readers"


def test_pipelined_flood_without_reading_keeps_memory_bounded(upstream, edge):
    """5000 pipelined requests from a client that does not read: edgeproxy stops
    reading when its output is full (backpressure), then answers all, in order."""
    p = edge(upstream.url, ep="idle_timeout = 30s")
    get(p.port)
    base = rss_kib(p.proc.pid)
    n = 5000
    wire = b"".join(b"GET /identify?i=%d HTTP/1.1\r\nHost: a.example\r\nX-Pad: %s\r\n\r\n" % (i, b"p" * 200)
                    for i in range(n))
    c = HttpConn(p.port, timeout=20)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    sender = threading.Thread(target=c.send, args=(wire,), daemon=True)
    try:
        sender.start()
        time.sleep(2)
        peak = rss_kib(p.proc.pid)
        for i in range(n):
            r = c.read_response()
            assert (r.status, r.body) == (200, b"a"), (i, r)
            if i % 500 == 0:
                peak = max(peak, rss_kib(p.proc.pid))
        sender.join(5)
    finally:
        c.close()
    assert peak - base < 4 * 1024 or not CHECK_RSS, f"VmRSS grew from {base} to {peak} KiB"
    assert [r.target for r in upstream.requests("/identify")][1:] == [f"/identify?i={i}" for i in range(n)]


# ---- floods ------------------------------------------------------------------------------

def test_flood_past_max_connections_pauses_accept_and_recovers(capture, edge):
    limit, extra = 20, 200
    p = edge(capture.url, glob=f"max_connections = {limit}", ep="header_timeout = 30s\nidle_timeout = 30s")
    get(p.port)
    base = quiet_fds(p)
    held = [socket.create_connection(("127.0.0.1", p.port), timeout=5) for _ in range(limit)]
    waiting = []
    try:
        assert wait_for(lambda: proc_fds(p.proc.pid) >= base + limit, 5)
        for i in range(extra):  # these complete in the kernel's backlog
            s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
            s.sendall(b"GET /w%d HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n" % i)
            waiting.append(s)
        time.sleep(1)
        assert proc_fds(p.proc.pid) <= base + limit + 2, "accepted past max_connections"
        waiting[0].settimeout(0.5)
        with pytest.raises(socket.timeout):
            waiting[0].recv(1)  # not accepted, so not answered
        # the accepted ones are still served
        held[0].sendall(b"GET /held HTTP/1.1\r\nHost: a.example\r\n\r\n")
        held[0].settimeout(5)
        assert held[0].recv(4096).startswith(b"HTTP/1.1 200 ")
        for s in held:
            s.close()
        held = []
        answered = 0
        for s in waiting:
            s.settimeout(15)
            if recv_until_close(s).startswith(b"HTTP/1.1 200 "):
                answered += 1
        assert answered == extra
    finally:
        for s in held + waiting:
            s.close()
    assert p.proc.poll() is None
    assert get(p.port).status == 200
    assert wait_for(lambda: held_sockets(p.port) == 0, 10), tcp_states(p.port)


def _burst(port, n, rng):
    """n connections, each abandoned in one of several ways; returns when all are closed."""
    socks = []
    for i in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            continue
        kind = rng.randrange(6)
        try:
            if kind == 1:  # reset
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif kind == 2:
                s.sendall(b"GET /half HTTP/1.1\r\nHost: a.ex")
            elif kind == 3:
                s.sendall(b"GET / HTTP/1.1\r\nHost: hello.example\r\n\r\n")
            elif kind == 4:
                s.sendall(b"GET /big?size=200000 HTTP/1.1\r\nHost: a.example\r\n\r\n")
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif kind == 5:
                s.sendall(b"POST /echo HTTP/1.1\r\nHost: a.example\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
        except OSError:
            pass
        socks.append(s)
    for s in socks:
        s.close()


def test_10k_connections_opened_and_dropped_leave_no_fd_behind(upstream, edge):
    p = edge(upstream.url, ep="header_timeout = 5s\nidle_timeout = 5s\nbody_timeout = 5s",
             svc="max_idle_per_server = 4")
    assert get(p.port).status == 200
    base_fds = quiet_fds(p)
    base_rss = rss_kib(p.proc.pid)
    rng = random.Random(10)
    for _ in range(20):
        _burst(p.port, 500, rng)
        assert p.proc.poll() is None, p.output()[-2000:]
    # everything the clients dropped is closed on edgeproxy's side too (pooled
    # upstream connections, at most max_idle_per_server, may stay)
    assert wait_for(lambda: held_sockets(p.port) == 0, 15), f"half-closed sockets left: {tcp_states(p.port)}"
    assert wait_for(lambda: proc_fds(p.proc.pid) <= base_fds + 4, 10), (base_fds, proc_fds(p.proc.pid))
    assert get(p.port).status == 200 and get(p.port, "/", host="hello.example").status == 200
    # Not back to the idle figure: the allocator keeps some of the peak (measured
    # 7-12 MiB after each of four such rounds, not growing); a leak of even one 4 KiB
    # buffer per dropped connection would pass 40 MiB.
    assert rss_kib(p.proc.pid) - base_rss < 32 * 1024 or not CHECK_RSS


def test_garbage_connections_then_a_normal_request(capture, edge):
    p = edge(capture.url, ep="header_timeout = 1s")
    get(p.port)
    base = quiet_fds(p)
    rng = random.Random(200)
    seeds = [b"\r\n", b"GET ", b"HTTP/1.1", b"\x00", b"\xff", b":", b" ", b"\t", b"Host: ", b"\n",
             b"Transfer-Encoding: chunked", b"Content-Length: 9", b"0\r\n\r\n"]
    statuses = {}
    for i in range(200):
        if i % 2:
            junk = os.urandom(rng.randrange(1, 3000))
        else:
            junk = b"".join(rng.choice(seeds) for _ in range(rng.randrange(1, 200)))
        with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
            try:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                data = recv_until_close(s)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
        st = data[9:12] if data.startswith(b"HTTP/1.1 ") else b"-"
        statuses[st] = statuses.get(st, 0) + 1
    assert p.proc.poll() is None
    r = get(p.port, "/after")
    assert r.status == 200 and r.get("x-upstream") == "capture"
    capture.settle()
    for s in capture.streams():
        _, problems, consumed = parse_stream(s)
        assert not problems and consumed == len(s), (problems, s[:300])
    assert wait_for(lambda: proc_fds(p.proc.pid) <= base + 1, 10)
    assert set(statuses) <= {b"400", b"408", b"431", b"501", b"505", b"200", b"404", b"-"}, statuses


# ---- connections that outlive their listener -----------------------------------------

@pytest.mark.parametrize("change", ["moved", "removed"])
def test_connections_outlive_a_reload_that_closes_their_listener(capture, edge, change):
    """SPEC §4: reload keeps every established connection. A reload that moves an
    entry point to another port, or removes it, closes its listening socket; the
    connections accepted on it go on serving, then close cleanly at stop (under
    ASan this is where a freed listener would be read)."""
    p = edge(capture.url, ep="idle_timeout = 30s")
    conns = [HttpConn(p.port, timeout=5) for _ in range(3)]
    try:
        for c in conns:
            c.send(b"GET /before HTTP/1.1\r\n" + H + b"\r\n")
            assert c.read_response().status == 200
        new_port = free_port()
        cfg = config(new_port, capture.url, ep="idle_timeout = 30s")
        if change == "removed":
            cfg = cfg.replace("[entrypoint web]", "[entrypoint other]")
        p.write(cfg)
        p.signal(signal.SIGHUP)
        assert wait_for(lambda: _listening(new_port), 5), p.output()[-2000:]
        for c in conns[:2]:
            c.send(b"GET /after HTTP/1.1\r\n" + H + b"\r\n")
            r = c.read_response()
            assert r.status == 200 and r.get("x-upstream") == "capture", r
        conns[0].close()  # one closes itself; the others are open when edgeproxy stops
        assert get(new_port).status == 200
        p.signal(signal.SIGTERM)
        assert p.proc.wait(15) == 0, p.output()[-3000:]
    finally:
        for c in conns:
            c.close()


def _listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
