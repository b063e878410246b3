"""Foundation behaviour over real sockets: CLI, config errors, routing, the hello
backend, keep-alive and pipelining, strict parsing, timeouts, access log, reload."""
import glob
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from harness import (BIN, EdgeProxy, free_port, raw, request, run_cli, split_responses,
                     status_of, wait_port)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))


def hello_config(port, extra_ep="", extra="", global_extra=""):
    return f"""
[global]
state_dir = {{dir}}/state
{global_extra}

[entrypoint web]
listen = 127.0.0.1:{port}
{extra_ep}

[router hello]
rule = PathPrefix(`/`)
service = hello

[service hello]
type = hello
{extra}
"""


@pytest.fixture
def hello():
    port = free_port()
    with EdgeProxy(hello_config(port, extra_ep="header_timeout = 1s\nidle_timeout = 2s\nmax_body_size = 1k"),
                   port) as p:
        yield p


# ---- binary and command line -------------------------------------------------

def test_binary_is_static_and_stripped():
    out = subprocess.run(["file", BIN], capture_output=True, text=True).stdout
    assert "statically linked" in out
    assert "stripped" in out and "not stripped" not in out


def test_version_names_target_and_libraries():
    r = run_cli("version")
    assert r.returncode == 0
    assert "edgeproxy" in r.stdout and "linux-musl" in r.stdout
    assert "BearSSL 0.6" in r.stdout and "libev 4.33" in r.stdout


def test_bad_command_line_exits_2():
    assert run_cli("frobnicate").returncode == 2
    assert run_cli("check", "--nope").returncode == 2
    r = run_cli("help")
    assert r.returncode == 0 and "usage" in r.stdout


def test_check_accepts_every_shipped_config():
    files = glob.glob(os.path.join(ROOT, "configs", "*.ini"))
    assert files
    for f in files:
        r = run_cli("check", "-c", f)
        assert r.returncode == 0, f + ": " + r.stderr


def test_check_reports_every_error_with_its_line(tmp_path):
    cfg = tmp_path / "bad.ini"
    cfg.write_text("""[global]
log_level = loud
grace_period = 10 parsecs

[entrypoint web]
listen = 127.0.0.1:99999
colour = blue

[entrypoint web]
listen = :81

[router r1]
rule = Host(`a.example`) && Paht(`/x`)
service = missing

[router r2]
service = hello
entrypoints = web, nowhere

[service hello]
type = hello
type = hello

[bogus]
""")
    r = run_cli("check", "-c", str(cfg))
    assert r.returncode == 1
    err = r.stderr
    path = str(cfg)
    expected = [
        (2, "log_level"), (3, "grace_period"), (6, "listen"), (7, "unknown key 'colour'"),
        (9, "duplicate [entrypoint web]"), (13, "column 22"), (14, "no [service missing]"),
        (16, "needs rule"), (18, "no [entrypoint nowhere]"), (22, "duplicate key 'type'"),
        (24, "unknown section"),
    ]
    for line, text in expected:
        hits = [l for l in err.splitlines() if l.startswith(f"{path}:{line}: ")]
        assert hits, f"no error for line {line} in:\n{err}"
        assert any(text in h for h in hits), f"line {line}: {hits} lacks {text!r}"


def test_check_missing_file_and_env_default(tmp_path):
    r = run_cli("check", "-c", str(tmp_path / "nope.ini"))
    assert r.returncode == 1 and "nope.ini" in r.stderr
    port = free_port()
    cfg = tmp_path / "env.ini"
    cfg.write_text(hello_config(port).replace("{dir}", str(tmp_path)))
    env = dict(os.environ, EDGEPROXY_CONFIG=str(cfg))
    assert run_cli("check", env=env).returncode == 0


def test_run_with_bad_config_exits_1(tmp_path):
    cfg = tmp_path / "bad.ini"
    cfg.write_text("[entrypoint web]\nlisten = nonsense\n")
    r = subprocess.run([BIN, "run", "-c", str(cfg)], capture_output=True, text=True, timeout=5)
    assert r.returncode == 1
    assert f"{cfg}:2:" in r.stderr


def test_run_fails_cleanly_when_port_taken(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cfg = tmp_path / "c.ini"
        cfg.write_text(hello_config(port).replace("{dir}", str(tmp_path)))
        r = subprocess.run([BIN, "run", "-c", str(cfg)], capture_output=True, text=True, timeout=5)
        assert r.returncode == 1 and "cannot listen" in r.stderr


def test_healthcheck_command(tmp_path):
    port = free_port()
    cfg = hello_config(port)
    with EdgeProxy(cfg, port) as p:
        assert run_cli("healthcheck", "-c", p.path).returncode == 0
        p.stop()
        assert run_cli("healthcheck", "-c", p.path).returncode == 1


# ---- hello backend and routing ---------------------------------------------

def test_hello_backend_answers(hello):
    st, h, body = request(hello.port, host=f"app.example:{hello.port}")
    assert st == 200 and body == f"Hello from edgeproxy @ app.example:{hello.port}".encode()
    assert h["content-type"].startswith("text/plain")
    st, _, body = request(hello.port, path="/health")
    assert (st, body) == (200, b"OK")
    out = subprocess.run(["curl", "-s", f"http://127.0.0.1:{hello.port}/x"], capture_output=True).stdout
    assert out == f"Hello from edgeproxy @ 127.0.0.1:{hello.port}".encode()


def test_head_has_length_but_no_body(hello):
    resp = raw(hello.port, b"HEAD /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert status_of(resp) == 200
    head, _, body = resp.partition(b"\r\n\r\n")
    assert b"Content-Length: 2" in head and body == b""


def test_routing_rules_and_priorities(tmp_path):
    port = free_port()
    cfg = f"""
[entrypoint web]
listen = 127.0.0.1:{port}

[router api]
rule = Host(`api.example`) && PathPrefix(`/v1`)
service = api

[router api-admin]
rule = Host(`api.example`) && PathPrefix(`/v1/admin`) && Method(`POST`)
service = admin

[router catch]
rule = PathPrefix(`/`)
priority = 1
service = fallback

[router beta]
rule = Header(`X-Beta`, `yes`) || Query(`beta`, `1`)
priority = 100
service = beta

[router local]
rule = ClientIP(`10.0.0.0/8`)
priority = 200
service = beta

[router www]
rule = HostRegexp(`^w+\\.example$`) && !Path(`/private`)
service = www

[service api]
type = hello
message = api
[service admin]
type = hello
message = admin
[service fallback]
type = hello
message = fallback
[service beta]
type = hello
message = beta
[service www]
type = hello
message = www
"""
    with EdgeProxy(cfg, port):
        def who(host, path="/", method="GET", headers=()):
            st, _, body = request(port, method=method, path=path, host=host, headers=headers)
            return st, body.split(b" @ ")[0].decode()

        assert who("api.example", "/v1/users") == (200, "api")
        assert who("API.Example:8080", "/v1/users") == (200, "api")
        assert who("api.example", "/v1/admin/x", "POST") == (200, "admin")
        assert who("api.example", "/v1/admin/x", "GET") == (200, "api")
        assert who("other.example", "/v1/users") == (200, "fallback")
        assert who("other.example", "/", headers=["X-Beta: yes"]) == (200, "beta")
        assert who("other.example", "/?beta=1") == (200, "beta")
        assert who("www.example", "/") == (200, "www")
        assert who("www.example", "/private") == (200, "fallback")


def test_no_matching_router_is_404(tmp_path):
    port = free_port()
    cfg = f"""
[entrypoint web]
listen = 127.0.0.1:{port}
[router only]
rule = Host(`only.example`)
service = h
[service h]
type = hello
"""
    with EdgeProxy(cfg, port):
        st, _, body = request(port, host="else.example")
        assert st == 404 and b"404" in body
        assert request(port, host="only.example")[0] == 200


def test_router_bound_to_entrypoints(tmp_path):
    p1, p2 = free_port(), free_port()
    cfg = f"""
[entrypoint a]
listen = 127.0.0.1:{p1}
[entrypoint b]
listen = 127.0.0.1:{p2}
[router on-a]
rule = PathPrefix(`/`)
entrypoints = a
service = h
[service h]
type = hello
"""
    with EdgeProxy(cfg, p1):
        assert wait_port(p2)
        assert request(p1)[0] == 200
        assert request(p2)[0] == 404


def test_ipv6_listener(tmp_path):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    port = free_port()
    cfg = f"""
[entrypoint v6]
listen = [::1]:{port}
[router r]
rule = PathPrefix(`/`)
service = h
[service h]
type = hello
"""
    with EdgeProxy(cfg, port, host="::1"):
        resp = raw(port, b"GET / HTTP/1.1\r\nHost: v6\r\nConnection: close\r\n\r\n", host="::1")
        assert status_of(resp) == 200 and resp.endswith(b"@ v6")


# ---- HTTP/1.1 connection handling -------------------------------------------

def test_keep_alive_serves_several_requests_on_one_connection(hello):
    with socket.create_connection(("127.0.0.1", hello.port)) as s:
        s.settimeout(3)
        for i in range(3):
            s.sendall(f"GET /n{i} HTTP/1.1\r\nHost: k{i}\r\n\r\n".encode())
            data = b""
            while not data.endswith(f"@ k{i}".encode()):
                chunk = s.recv(4096)
                assert chunk, "closed early"
                data += chunk
            assert status_of(data) == 200


def test_http10_closes_unless_keep_alive(hello):
    resp = raw(hello.port, b"GET / HTTP/1.0\r\nHost: old\r\n\r\n")
    assert status_of(resp) == 200 and resp.endswith(b"@ old")  # closed by the server
    resp = raw(hello.port, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", timeout=1)
    assert b"Connection: keep-alive" in resp


def test_pipelined_requests_answer_in_order(hello):
    reqs = b"".join(f"GET /{i} HTTP/1.1\r\nHost: p{i}\r\n\r\n".encode() for i in range(20))
    reqs += b"GET /last HTTP/1.1\r\nHost: end\r\nConnection: close\r\n\r\n"
    resp = raw(hello.port, reqs)
    parts = split_responses(resp)
    assert [b for _, b in parts] == [f"Hello from edgeproxy @ p{i}".encode() for i in range(20)] + [
        b"Hello from edgeproxy @ end"]


def test_pipelined_after_half_close(hello):
    resp = raw(hello.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: b\r\n\r\n", shutdown=True)
    assert [b for _, b in split_responses(resp)] == [b"Hello from edgeproxy @ a", b"Hello from edgeproxy @ b"]


def test_request_bodies_are_consumed_for_keep_alive(hello):
    reqs = (b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
            b"POST /b HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n"
            b"GET /c HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n")
    resp = raw(hello.port, reqs)
    assert [b for _, b in split_responses(resp)] == [b"Hello from edgeproxy @ " + h for h in (b"a", b"b", b"c")]


@pytest.mark.parametrize("req,status", [
    (b"GET / HTTP/1.1\r\n\r\n", 400),                                              # no Host
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),                       # two Hosts
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n folded\r\n\r\n", 400),               # obs-fold
    (b"GET / HTTP/1.1\nHost: a\n\n", 400),                                         # bare LF
    (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
])
def test_malformed_requests_get_4xx_and_close(hello, req, status):
    resp = raw(hello.port, req + b"GET / HTTP/1.1\r\nHost: smuggled\r\n\r\n")
    assert status_of(resp) == status
    assert b"Connection: close" in resp
    assert b"smuggled" not in resp  # nothing after the bad request was served


def test_oversized_head_is_431(hello):
    resp = raw(hello.port, b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    assert status_of(resp) == 431


def test_oversized_body_is_413(hello):
    resp = raw(hello.port, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n")
    assert status_of(resp) == 413


def test_chunked_body_over_limit_closes(hello):
    body = b"".join(b"100\r\n" + b"x" * 256 + b"\r\n" for _ in range(8))
    resp = raw(hello.port, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body +
               b"GET / HTTP/1.1\r\nHost: after\r\n\r\n")
    assert b"after" not in resp  # the connection was closed at the limit


def test_slow_header_gets_408_and_close(hello):
    with socket.create_connection(("127.0.0.1", hello.port)) as s:
        s.settimeout(5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: sl")
        start = time.time()
        data = b""
        while True:
            # keep trickling: progress must not extend the header timeout
            try:
                s.sendall(b"o")
            except OSError:
                break
            time.sleep(0.2)
            s.setblocking(False)
            try:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            except BlockingIOError:
                pass
            finally:
                s.setblocking(True)
            if time.time() - start > 4:
                break
        assert status_of(data) == 408
        assert time.time() - start < 3.5


def test_idle_keep_alive_connection_is_closed(hello):
    with socket.create_connection(("127.0.0.1", hello.port)) as s:
        s.settimeout(5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert status_of(s.recv(4096)) == 200
        start = time.time()
        assert s.recv(4096) == b""  # closed after idle_timeout (2s)
        assert 1.0 < time.time() - start < 4.5


def test_max_connections_pauses_accept(tmp_path):
    port = free_port()
    with EdgeProxy(hello_config(port, global_extra="max_connections = 2"), port):
        a = socket.create_connection(("127.0.0.1", port))
        b = socket.create_connection(("127.0.0.1", port))
        time.sleep(0.2)
        c = socket.create_connection(("127.0.0.1", port))  # lands in the backlog
        c.settimeout(0.8)
        c.sendall(b"GET / HTTP/1.1\r\nHost: third\r\nConnection: close\r\n\r\n")
        with pytest.raises(socket.timeout):
            c.recv(100)
        a.close()
        c.settimeout(3)
        data = c.recv(4096)
        assert status_of(data) == 200
        for s in (b, c):
            s.close()


# ---- access log, reload, stop ----------------------------------------------

def test_access_log_common_format(tmp_path):
    port = free_port()
    log = tmp_path / "access.log"
    with EdgeProxy(hello_config(port, global_extra=f"access_log = {log}"), port) as p:
        request(port, path="/a?b=c", host="h.example", headers=["User-Agent: t\"ua", "Referer: r"])
        request(port, path="/zz", method="HEAD")
        p.stop()
    lines = log.read_text().splitlines()
    assert len(lines) == 2
    first = lines[0]
    assert first.startswith("127.0.0.1 - - [")
    assert '"GET /a?b=c HTTP/1.1" 200 ' in first
    assert '"r" "t\\"ua" 1 "hello" "hello" ' in first and first.endswith("ms")
    assert '"HEAD /zz HTTP/1.1" 200 0 ' in lines[1]


def test_access_log_json_format(tmp_path):
    port = free_port()
    log = tmp_path / "access.json"
    with EdgeProxy(hello_config(port, global_extra=f"access_log = {log}\naccess_log_format = json"), port) as p:
        request(port, path="/j", host="h.example")
        p.stop()
    rec = json.loads(log.read_text().splitlines()[0])
    assert rec["RequestMethod"] == "GET" and rec["RequestPath"] == "/j"
    assert rec["DownstreamStatus"] == 200 and rec["RouterName"] == "hello"
    assert rec["ClientHost"] == "127.0.0.1" and isinstance(rec["Duration"], int)


def test_sighup_reload_and_bad_reload_keeps_old(tmp_path):
    port = free_port()
    with EdgeProxy(hello_config(port, extra="message = first"), port) as p:
        keep = socket.create_connection(("127.0.0.1", port))
        assert request(port)[2].startswith(b"first")
        p.write(hello_config(port, extra="message = second"))
        p.signal(signal.SIGHUP)
        deadline = time.time() + 3
        while time.time() < deadline and not request(port)[2].startswith(b"second"):
            time.sleep(0.05)
        assert request(port)[2].startswith(b"second")
        # the connection opened before the reload still works, on the new config
        keep.sendall(b"GET / HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n")
        keep.settimeout(3)
        assert b"second @ k" in keep.recv(4096)
        keep.close()
        p.write("[entrypoint web]\nlisten = 127.0.0.1:%d\nbogus = 1\n" % port)
        p.signal(signal.SIGHUP)
        time.sleep(0.5)
        assert request(port)[2].startswith(b"second")
        assert f"{p.path}:3: unknown key 'bogus'" in p.output()


def test_sigterm_stops_gracefully(tmp_path):
    port = free_port()
    with EdgeProxy(hello_config(port), port) as p:
        idle = socket.create_connection(("127.0.0.1", port))
        p.signal(signal.SIGTERM)
        assert p.proc.wait(5) == 0
        idle.settimeout(2)
        assert idle.recv(10) == b""
