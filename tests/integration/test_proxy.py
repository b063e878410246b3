"""The reverse proxy ([service NAME] type=proxy) over real sockets, against real
upstream processes (upstream.py) that log the raw bytes of every request they get:
forwarding and re-serialisation, bodies and framing, hop-by-hop and forwarded
headers, upstream keep-alive, errors, load balancing, streaming, upgrades, access log."""
import hashlib
import json
import os
import shutil
import signal
import socket
import threading
import time

import pytest

from harness import EdgeProxy, HttpConn, free_port, rss_kib
from upstream import Upstream, pattern, pattern_sha256, self_test

MiB = 1 << 20
FORWARDED = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-real-ip"}


def config(port, servers, svc="", ep="", glob=""):
    lines = "\n".join(f"server = {s}" for s in servers)
    return f"""
[global]
state_dir = {{dir}}/state
{glob}

[entrypoint web]
listen = 127.0.0.1:{port}
{ep}

[router r]
rule = PathPrefix(`/`)
service = app

[service app]
{lines}
{svc}
"""


@pytest.fixture
def upstreams():
    """upstreams(name) starts an upstream process; all are stopped after the test."""
    made = []

    def make(name="up", host="127.0.0.1"):
        u = Upstream(name, host=host)
        made.append(u)
        return u

    yield make
    for u in made:
        u.stop()
        shutil.rmtree(u.dir, ignore_errors=True)


@pytest.fixture
def edge():
    """edge(servers, svc=..., ep=..., glob=...) starts edgeproxy in front of them."""
    made = []

    def make(servers, **kw):
        port = free_port()
        servers = [s.url if isinstance(s, Upstream) else s for s in servers]
        p = EdgeProxy(config(port, servers, **kw), port)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def fetch(port, target="/echo", method="GET", host="app.example", headers=(), body=b"", timeout=5.0, **kw):
    """One request on a fresh connection; returns the Response (body read by its framing)."""
    with HttpConn(port, timeout=timeout, source=kw.pop("source", None)) as c:
        c.request(method, target, host=host, headers=headers, body=body, **kw)
        return c.read_response(method)


def who(port, **kw):
    r = fetch(port, "/identify", **kw)
    return r.body.decode() if r.status == 200 else r.status


def echo(resp):
    assert resp.status == 200, resp
    return json.loads(resp.body)


# ---- the upstream itself (no proxy involved) -----------------------------------

def test_upstream_self_test():
    self_test()


# ---- 1. methods, status, headers, bodies ----------------------------------------

def test_get_passes_status_headers_and_body(upstreams, edge):
    up = upstreams("a")
    p = edge([up])
    r = fetch(p.port, "/echo?x=1&y=%20z", host="app.example")
    doc = echo(r)
    assert (doc["method"], doc["target"], doc["version"]) == ("GET", "/echo?x=1&y=%20z", "HTTP/1.1")
    assert r.get("content-type") == "application/json" and r.get("x-upstream") == "a"
    assert r.framing == "length" and int(r.get("content-length")) == len(r.body)


@pytest.mark.parametrize("status", [201, 204, 304, 404, 418, 500, 503])
def test_upstream_status_passes_through(upstreams, edge, status):
    up = upstreams("a")
    p = edge([up])
    r = fetch(p.port, f"/status/{status}")
    assert r.status == status and r.get("x-upstream") == "a"
    assert r.body == (b"" if status in (204, 304) else f"status {status}\n".encode())


def test_head_has_headers_no_body_and_keeps_the_connection(upstreams, edge):
    up = upstreams("a")
    p = edge([up])
    with HttpConn(p.port) as c:
        c.request("HEAD", "/big?size=100000")
        r = c.read_response("HEAD")
        assert r.status == 200 and r.get("content-length") == "100000"
        c.request("HEAD", "/chunked?n=3")  # upstream answers a chunked head and nothing else
        r = c.read_response("HEAD")
        assert r.status == 200
        c.request("GET", "/identify")
        r = c.read_response()
        assert (r.status, r.body) == (200, b"a")  # nothing stray was left after the HEADs
    assert [r.method for r in up.requests()] == ["HEAD", "HEAD", "GET"]


def test_post_content_length_body_5mib_intact(upstreams, edge):
    up = upstreams("a")
    p = edge([up])
    body = os.urandom(5 * MiB)
    doc = echo(fetch(p.port, "/echo", method="POST", body=body, timeout=20))
    assert doc["body_len"] == len(body) and doc["body_sha256"] == hashlib.sha256(body).hexdigest()
    req = up.requests("/echo")[0]
    assert req.get("content-length") == str(len(body)) and not req.chunked
    assert req.get("transfer-encoding") is None


def test_post_chunked_body_is_rechunked_without_extensions_or_trailers(upstreams, edge):
    up = upstreams("a")
    p = edge([up])
    body = os.urandom(5 * MiB + 123)
    pieces = [body[i:i + 65536] for i in range(0, len(body), 65536)]
    wire = b"".join(b"%x;ext=%d\r\n%s\r\n" % (len(x), i, x) for i, x in enumerate(pieces))
    wire += b"0\r\nX-Trailer: t\r\n\r\n"
    with HttpConn(p.port, timeout=20) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + wire)
        doc = echo(c.read_response())
        assert doc["body_len"] == len(body) and doc["body_sha256"] == hashlib.sha256(body).hexdigest()
        # a small one, whose raw framing the upstream logs in full
        c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3;a=b\r\nabc\r\n4\r\ndefg\r\n0\r\nX-T: 1\r\n\r\n")
        assert echo(c.read_response())["body_len"] == 7
    big, small = up.requests("/echo")
    for req in (big, small):
        assert req.chunked and not req.chunk_ext and req.trailers == []
        assert req.tokens("transfer-encoding") == ["chunked"] and req.get("content-length") is None
    assert small.raw_body.endswith(b"\r\n0\r\n\r\n")  # last chunk, no trailer section


@pytest.mark.parametrize("target,size", [
    ("/big?size=3000000&piece=1000", 3000000),
    ("/chunked?n=200&size=10007&ext=1&trailer=1", 200 * 10007),
    ("/eof?size=2000000", 2000000),
])
def test_response_bodies_arrive_intact(upstreams, edge, target, size):
    up = upstreams("a")
    p = edge([up])
    with HttpConn(p.port, timeout=10) as c:
        c.request("GET", target)
        r = c.read_response()
        assert r.status == 200
        assert len(r.body) == size and hashlib.sha256(r.body).hexdigest() == pattern_sha256(size)
        if target.startswith("/big"):
            assert r.framing == "length" and r.get("content-length") == str(size)
        if r.framing == "close":
            return
        c.request("GET", "/identify")  # the client connection is still good
        assert c.read_response().body == b"a"


def test_64mib_response_to_slow_reader_keeps_memory_bounded(upstreams, edge):
    up = upstreams("a")
    p = edge([up])
    size = 64 * MiB
    c = HttpConn(p.port, timeout=15)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    try:
        c.request("GET", f"/big?size={size}")
        r = c.read_head()
        assert r.status == 200 and r.get("content-length") == str(size)
        time.sleep(1.5)  # the upstream writes as fast as it can; nobody reads
        peak = rss_kib(p.proc.pid)
        h, got, next_pause = hashlib.sha256(), 0, 4 * MiB
        for piece in c.iter_body(r):
            h.update(piece)
            got += len(piece)
            if got >= next_pause:
                peak = max(peak, rss_kib(p.proc.pid))
                time.sleep(0.15)
                next_pause += 4 * MiB
        peak = max(peak, rss_kib(p.proc.pid))
    finally:
        c.close()
    assert got == size and h.hexdigest() == pattern_sha256(size)
    assert peak < 8 * 1024, f"edgeproxy VmRSS reached {peak} KiB"


def test_client_abort_mid_response_leaves_the_proxy_serving(upstreams, edge):
    up = upstreams("a")
    p = edge([up])
    with HttpConn(p.port) as c:
        c.request("GET", f"/big?size={64 * MiB}")
        r = c.read_head()
        assert r.status == 200
        c.recv_exact(MiB)
    for _ in range(3):
        assert who(p.port) == "a"


# ---- 2. what the upstream sees ---------------------------------------------------

def test_request_is_reserialised_with_the_clients_host(upstreams, edge):
    up = upstreams("a")
    p = edge([up])
    sent = [("User-Agent", "t/1"), ("Accept", "*/*"), ("X-Custom", "one"), ("X-Custom", "two"),
            ("X-Empty", "")]
    r = fetch(p.port, "/a/b?c=d&e", host="front.example:8080", headers=[f"{k}: {v}" for k, v in sent])
    assert r.status == 404  # the upstream's own answer for an unknown path
    req = up.requests()[0]
    assert req.request_line == "GET /a/b?c=d&e HTTP/1.1"
    assert b"\n" not in req.head.replace(b"\r\n", b"")  # CRLF only
    assert req.all("host") == ["front.example:8080"]
    rest = [(k.lower(), v) for k, v in req.headers if k.lower() not in FORWARDED | {"host", "connection"}]
    assert rest == [(k.lower(), v) for k, v in sent]  # same fields, same order, no body framing added
    assert set(req.tokens("connection")) <= {"keep-alive"}


def test_pass_host_header_off_sends_the_servers_host(upstreams, edge):
    up = upstreams("a")
    p = edge([up], svc="pass_host_header = off")
    fetch(p.port, "/echo", host="front.example")
    req = up.requests()[0]
    assert req.all("host") == [f"127.0.0.1:{up.port}"]
    assert req.get("x-forwarded-host") == "front.example"


def test_ipv6_upstream(upstreams, edge):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    up = upstreams("v6", host="::1")
    p = edge([up], svc="pass_host_header = off")
    assert who(p.port) == "v6"
    assert up.requests()[0].get("host") == f"[::1]:{up.port}"


def test_hop_by_hop_request_headers_are_removed(upstreams, edge):
    up = upstreams("a")
    p = edge([up])
    r = fetch(p.port, "/echo", headers=[
        "Connection: keep-alive, X-Drop", "X-Drop: 1", "Keep-Alive: timeout=300", "Proxy-Connection: keep-alive",
        "TE: trailers", "Trailer: X-T", "Upgrade: foo/1", "X-Keep: 1"])
    assert r.status == 200
    req = up.requests()[0]
    for name in ("x-drop", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"):
        assert req.get(name) is None, f"{name} reached the upstream: {req.headers}"
    assert req.all("x-keep") == ["1"]
    assert set(req.tokens("connection")) <= {"keep-alive"}


# ---- 3. forwarded headers -------------------------------------------------------

def test_forwarded_headers_from_an_untrusted_client_are_replaced(upstreams, edge):
    up = upstreams("a")
    p = edge([up])
    fetch(p.port, "/echo", host="app.example", headers=[
        "X-Forwarded-For: 1.2.3.4", "X-Forwarded-Proto: https", "X-Forwarded-Host: evil.example",
        "X-Forwarded-Port: 1", "X-Real-Ip: 6.6.6.6"])
    req = up.requests()[0]
    assert req.all("x-forwarded-for") == ["127.0.0.1"]
    assert req.all("x-forwarded-proto") == ["http"]
    assert req.all("x-forwarded-host") == ["app.example"]
    assert req.all("x-forwarded-port") == [str(p.port)]
    assert req.all("x-real-ip") == ["127.0.0.1"]


def test_forwarded_headers_without_incoming_ones(upstreams, edge):
    up = upstreams("a")
    p = edge([up], ep="trusted_proxies = 10.0.0.0/8")
    fetch(p.port, "/echo", host="plain.example")
    req = up.requests()[0]
    assert [req.all(h) for h in ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                                 "x-forwarded-port", "x-real-ip")] == [
        ["127.0.0.1"], ["http"], ["plain.example"], [str(p.port)], ["127.0.0.1"]]


def test_forwarded_for_from_a_trusted_proxy_is_appended(upstreams, edge):
    up = upstreams("a")
    p = edge([up], ep="trusted_proxies = 127.0.0.0/8, ::1/128")
    fetch(p.port, "/echo", headers=["X-Forwarded-For: 1.2.3.4", "X-Forwarded-Proto: https",
                                    "X-Forwarded-Host: orig.example"])
    fetch(p.port, "/echo", headers=["X-Forwarded-For: 1.2.3.4", "X-Forwarded-For: 5.6.7.8"])
    first, second = up.requests()
    assert first.all("x-forwarded-for") == ["1.2.3.4, 127.0.0.1"]
    assert first.all("x-forwarded-proto") == ["https"]  # SPEC §3: kept from trusted proxies
    assert first.all("x-forwarded-host") == ["orig.example"]
    assert second.all("x-forwarded-for") == ["1.2.3.4, 5.6.7.8, 127.0.0.1"]


# ---- 4. response headers, HTTP/1.0 clients, pipelining ----------------------------

def test_hop_by_hop_response_headers_are_removed(upstreams, edge):
    up = upstreams("a")
    p = edge([up])
    r = fetch(p.port, "/headers")
    assert (r.status, r.body) == (200, b"ok")
    for name in ("x-foo", "keep-alive", "proxy-connection", "upgrade"):
        assert r.get(name) is None, f"{name} reached the client: {r.headers}"
    assert r.get("x-keep") == "yes" and r.all("set-cookie") == ["a=1", "b=2"]
    assert set(r.tokens("connection")) <= {"keep-alive", "close"}


@pytest.mark.parametrize("target,size", [("/chunked?n=5&size=1000", 5000), ("/big?size=10000", 10000),
                                         ("/eof?size=7000", 7000)])
def test_http10_client_gets_an_unchunked_response(upstreams, edge, target, size):
    up = upstreams("a")
    p = edge([up])
    with HttpConn(p.port) as c:
        c.send(f"GET {target} HTTP/1.0\r\nHost: old.example\r\n\r\n".encode())
        r = c.read_head()
        assert r.status == 200 and r.version in ("HTTP/1.0", "HTTP/1.1")
        assert r.get("transfer-encoding") is None
        assert b"".join(c.iter_body(r)) == pattern(size)
        assert c.at_eof()  # HTTP/1.0 without keep-alive: closed after the response
    assert up.requests()[0].request_line == f"GET {target} HTTP/1.1"


def test_pipelined_requests_are_answered_in_order(upstreams, edge):
    up = upstreams("a")
    p = edge([up])
    with HttpConn(p.port) as c:
        c.send(b"GET /status/201 HTTP/1.1\r\nHost: a\r\n\r\n"
               b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
               b"GET /chunked?n=2&size=5 HTTP/1.1\r\nHost: a\r\n\r\n"
               b"GET /identify HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert c.read_response().status == 201
        assert echo(c.read_response())["body_len"] == 3
        assert c.read_response().body == pattern(10)
        assert c.read_response().body == b"a"
        assert c.at_eof()


# ---- 5. keep-alive to the upstream -------------------------------------------------

def test_upstream_connections_are_reused(upstreams, edge):
    up = upstreams("a")
    p = edge([up])
    with HttpConn(p.port) as c:
        for i in range(10):
            c.request("GET", f"/echo?i={i}")
            assert c.read_response().status == 200
    for i in range(10, 20):
        assert fetch(p.port, f"/echo?i={i}").status == 200
    assert [r.target for r in up.requests()] == [f"/echo?i={i}" for i in range(20)]
    assert up.accepted() <= 2


def test_upstream_closing_a_kept_alive_connection_does_not_fail_the_next_request(upstreams, edge):
    up = upstreams("a")
    p = edge([up])
    with HttpConn(p.port) as c:
        for pause in (0.3, 0, 0, 0, 0):  # the close is seen while idle, then races with the next request
            c.request("GET", "/close-after")
            r = c.read_response()
            assert (r.status, r.body) == (200, b"bye\n")
            time.sleep(pause)
            c.request("GET", "/identify")
            r = c.read_response()
            assert (r.status, r.body) == (200, b"a")
        # the upstream keeps the connection 300 ms without reading, then closes it:
        # the next request goes out on it and gets no answer, so it is sent again
        c.request("GET", "/close-after?ms=300")
        assert c.read_response().status == 200
        c.request("GET", "/identify")
        r = c.read_response()
        assert (r.status, r.body) == (200, b"a")


# ---- 6. errors ---------------------------------------------------------------------

def test_nothing_listening_is_502(edge):
    p = edge([f"http://127.0.0.1:{free_port()}"])
    r = fetch(p.port, "/x")
    assert r.status == 502 and r.get("content-type", "").startswith("text/plain")
    assert b"127.0.0.1" not in r.body  # no internals in the error page


def test_response_timeout_is_504(upstreams, edge):
    up = upstreams("a")
    p = edge([up], svc="response_timeout = 500ms")
    t0 = time.time()
    r = fetch(p.port, "/slow-head?ms=3000")
    assert r.status == 504
    assert time.time() - t0 < 2.5  # not the upstream's 3 s


@pytest.mark.parametrize("kind", ["status", "clte", "cl2", "garbage", "fold", "empty"])
def test_malformed_upstream_response_is_502(upstreams, edge, kind):
    up = upstreams("a")
    p = edge([up])
    r = fetch(p.port, f"/bad-response?kind={kind}")
    assert r.status == 502, r.body
    assert b"hello" not in r.body and b"HELLO" not in r.body


def test_broken_chunk_after_the_head_aborts_the_client_connection(upstreams, edge):
    up = upstreams("a")
    p = edge([up])
    with HttpConn(p.port) as c:
        c.request("GET", "/bad-response?kind=chunk")
        r = c.read_head()
        if r.status == 502:
            return
        assert r.status == 200
        with pytest.raises((EOFError, ValueError, ConnectionResetError)):
            b"".join(c.iter_body(r))  # never a complete (valid) body


def test_only_server_down_gives_503(edge):
    p = edge([f"http://127.0.0.1:{free_port()}"], svc="health_interval = 10s")
    statuses = []
    for _ in range(4):
        t0 = time.time()
        statuses.append(fetch(p.port, "/x").status)
        assert time.time() - t0 < 2
    assert set(statuses) <= {502, 503} and 503 in statuses and statuses[-1] == 503, statuses


def test_retries_send_idempotent_requests_to_another_server(upstreams, edge):
    up = upstreams("a")
    p = edge([f"http://127.0.0.1:{free_port()}", up], svc="retries = 1")
    assert [who(p.port) for _ in range(20)] == ["a"] * 20


def test_non_idempotent_requests_are_not_retried(upstreams, edge):
    up = upstreams("a")
    p = edge([f"http://127.0.0.1:{free_port()}", up], svc="retries = 1\nhealth_interval = 10s")
    # equal weights: the first two picks cover both servers, so one POST meets the dead one
    first_two = sorted(fetch(p.port, "/echo", method="POST", body=b"x").status for _ in range(2))
    assert first_two == [200, 502]  # SPEC §3 retries: idempotent methods only
    assert [fetch(p.port, "/echo", method="POST", body=b"x").status for _ in range(4)] == [200] * 4
    assert len(up.requests("/echo")) == 5


def test_retry_whose_connect_fails_at_once_answers_once(edge):
    # The first server's refusal arrives later (a non-blocking connect on loopback);
    # the retry's connect fails inside connect() itself: Linux refuses TCP to the
    # broadcast address with ENETUNREACH before sending anything. The retry answers
    # 502 and finishes the exchange; the request once got a second 502 on top and
    # its exchange was finished twice (found by gcc -fanalyzer, make analyze).
    p = edge([f"http://127.0.0.1:{free_port()}", "http://255.255.255.255:80 backup"], svc="retries = 1")
    with HttpConn(p.port) as c:
        c.request("GET", "/x", host="app.example")
        assert c.read_response().status == 502
        c.at_eof(timeout=1.0)
        assert c.buf == b"", f"more than one response: {c.buf[:200]!r}"
    assert fetch(p.port, "/x").status in (502, 503)
    assert p.proc.poll() is None
    log = p.output()
    assert "255.255.255.255:80 marked down" in log, log


# ---- 7. load balancing -------------------------------------------------------------

def test_smooth_weighted_round_robin(upstreams, edge):
    a, b = upstreams("a"), upstreams("b")
    p = edge([f"{a.url} weight=1", f"{b.url} weight=3"])
    seq = [who(p.port) for _ in range(40)]
    assert seq.count("a") == 10 and seq.count("b") == 30, seq
    # smooth: every run of one full cycle (4 picks) has exactly one a
    assert all(seq[i:i + 4].count("a") == 1 for i in range(0, 40, 4)), seq


def test_equal_round_robin_alternates(upstreams, edge):
    a, b = upstreams("a"), upstreams("b")
    p = edge([a, b])
    seq = [who(p.port) for _ in range(10)]
    assert all(seq[i] != seq[i + 1] for i in range(9)), seq


def test_backup_only_when_the_primary_is_down(upstreams, edge):
    a, b = upstreams("a"), upstreams("b")
    p = edge([a, f"{b.url} backup"], svc="health_interval = 10s")
    assert [who(p.port) for _ in range(10)] == ["a"] * 10
    assert b.accepted() == 0
    a.stop()
    after = [who(p.port) for _ in range(8)]
    assert all(x in ("b", 502, 503) for x in after) and after.count("b") >= 6, after
    assert after[-5:] == ["b"] * 5, after


def test_ip_hash_pins_each_client_address(upstreams, edge):
    a, b = upstreams("a"), upstreams("b")
    p = edge([a, b], svc="balance = ip_hash")
    seen = {}
    for i in range(1, 17):
        src = f"127.0.{i}.{i + 1}"  # loopback is 127.0.0.0/8 on Linux
        picks = {who(p.port, source=src) for _ in range(3)}
        assert len(picks) == 1, (src, picks)
        seen[src] = picks.pop()
    assert set(seen.values()) == {"a", "b"}, seen


def test_sticky_cookie_keeps_a_client_on_its_server(upstreams, edge):
    a, b = upstreams("a"), upstreams("b")
    p = edge([a, b], svc="sticky_cookie = EPSTICKY")
    cookies = {}
    for _ in range(2):  # round robin: two fresh clients land on both servers
        r = fetch(p.port, "/identify")
        assert r.status == 200
        sc = [v for v in r.all("set-cookie") if v.startswith("EPSTICKY=")]
        assert len(sc) == 1, r.headers
        cookies[r.body.decode()] = sc[0].split(";")[0]
    assert set(cookies) == {"a", "b"} and cookies["a"] != cookies["b"]
    for name, cookie in cookies.items():
        for _ in range(6):
            assert who(p.port, headers=[f"Cookie: theme=dark; {cookie}"]) == name


def test_least_conn_avoids_the_busy_server(upstreams, edge):
    a, b = upstreams("a"), upstreams("b")
    p = edge([a, b], svc="balance = least_conn")
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", fetch(p.port, "/slow-head?ms=2000")))
    t.start()
    try:
        deadline = time.time() + 3
        while time.time() < deadline and not (a.requests("/slow-head") or b.requests("/slow-head")):
            time.sleep(0.02)
        assert a.requests("/slow-head") or b.requests("/slow-head"), "slow request never arrived"
        busy = "a" if a.requests("/slow-head") else "b"
        other = "b" if busy == "a" else "a"
        assert [who(p.port) for _ in range(4)] == [other] * 4
    finally:
        t.join(10)
    assert result["r"].status == 200 and result["r"].get("x-upstream") == busy


def test_reload_sends_new_requests_to_new_servers_and_finishes_in_flight(upstreams, edge):
    a, b = upstreams("a"), upstreams("b")
    p = edge([a])
    result = {}
    keep = HttpConn(p.port)
    keep.request("GET", "/identify")
    assert keep.read_response().body == b"a"
    t = threading.Thread(target=lambda: result.setdefault("r", fetch(p.port, "/slow-head?ms=1500")))
    t.start()
    try:
        assert a.wait_requests(1, "/slow-head", timeout=3), "slow request never arrived"
        p.write(config(p.port, [b.url]))
        p.signal(signal.SIGHUP)
        deadline = time.time() + 3
        while time.time() < deadline and who(p.port) != "b":
            time.sleep(0.05)
        assert who(p.port) == "b"
        keep.request("GET", "/identify")  # a connection from before the reload
        assert keep.read_response().body == b"b"
    finally:
        t.join(10)
        keep.close()
    assert result["r"].status == 200 and result["r"].get("x-upstream") == "a"


# ---- 8. streaming ------------------------------------------------------------------

def test_server_sent_events_stream_as_written(upstreams, edge):
    up = upstreams("a")
    p = edge([up])
    with HttpConn(p.port, timeout=8) as c:
        t0 = time.time()
        c.request("GET", "/sse?n=2&ms=2000", headers=["Accept: text/event-stream"])
        r = c.read_head()
        assert r.status == 200 and r.get("content-type") == "text/event-stream"
        body, pieces = b"", c.iter_body(r)
        while b"\n\n" not in body:
            body += next(pieces)
        assert time.time() - t0 < 1.5 and body == b"id: 0\ndata: event 0\n\n"
        body += b"".join(pieces)
        assert body == b"id: 0\ndata: event 0\n\nid: 1\ndata: event 1\n\n"
        assert time.time() - t0 >= 1.8


def test_slow_body_is_relayed_before_it_is_complete(upstreams, edge):
    up = upstreams("a")
    p = edge([up])
    with HttpConn(p.port, timeout=8) as c:
        t0 = time.time()
        c.request("GET", "/slow-body?ms=2000")
        r = c.read_head()
        pieces = c.iter_body(r)
        first = next(pieces)
        assert time.time() - t0 < 1.5 and first == b"first-part\n"
        assert first + b"".join(pieces) == b"first-part\nsecond-part\n"


def test_expect_100_continue_is_relayed(upstreams, edge):
    up = upstreams("a")
    p = edge([up])
    with HttpConn(p.port, timeout=3) as c:
        c.send(b"POST /100 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n")
        interim = c.read_head()  # times out if nobody says 100 Continue
        assert interim.status == 100
        c.send(b"hello world")
        r = c.read_response()
        doc = json.loads(r.body)
        assert r.status == 200 and doc["expect"] is True and doc["body_len"] == 11
        assert doc["body_sha256"] == hashlib.sha256(b"hello world").hexdigest()
        c.request("GET", "/identify")
        assert c.read_response().body == b"a"
    assert up.requests("/100")[0].tokens("expect") == ["100-continue"]


# ---- 9. upgrade tunnels ------------------------------------------------------------

def test_websocket_upgrade_tunnels_both_ways(upstreams, edge):
    up = upstreams("a")
    p = edge([up])
    with HttpConn(p.port) as c:
        c.send(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        r = c.read_head()
        assert r.status == 101
        assert r.tokens("upgrade") == ["websocket"] and "upgrade" in r.tokens("connection")
        assert r.get("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        c.send(b"hello")
        assert c.recv_exact(5) == b"hello"
        blob = os.urandom(200000)
        sender = threading.Thread(target=c.send, args=(blob,))
        sender.start()
        got = c.recv_exact(len(blob))
        sender.join(5)
        assert got == blob
        c.sock.shutdown(socket.SHUT_WR)
        assert c.at_eof(timeout=3)
    req = up.requests("/ws")[0]
    assert req.tokens("upgrade") == ["websocket"] and "upgrade" in req.tokens("connection")
    assert req.get("sec-websocket-key") == "dGhlIHNhbXBsZSBub25jZQ=="


# ---- 10. access log ----------------------------------------------------------------

def test_access_log_names_the_server_and_the_upstream_status(upstreams, edge):
    up = upstreams("a")
    p = edge([up], glob="access_log = {dir}/access.log")
    fetch(p.port, "/status/418")
    fetch(p.port, "/slow-head?ms=300")
    p.stop()
    with open(os.path.join(p.dir, "access.log")) as f:
        lines = f.read().splitlines()
    assert len(lines) == 2, lines
    teapot, slow = lines
    assert '"GET /status/418 HTTP/1.1" 418 11 ' in teapot
    assert f' "r" "http://127.0.0.1:{up.port}" ' in teapot and teapot.endswith("ms")
    assert '"GET /slow-head?ms=300 HTTP/1.1" 200 5 ' in slow
    assert int(slow.rsplit(" ", 1)[1][:-2]) >= 290
