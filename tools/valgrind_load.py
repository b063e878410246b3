#!/usr/bin/env python3
"""valgrind_load.py - a short mixed load against edgeproxy running under valgrind
memcheck (issue 10: "a valgrind run of a short load has no leaks and no invalid
accesses").

    /usr/bin/python3 tools/valgrind_load.py [BIN]     (make valgrind: build/valgrind/edgeproxy)
    BIN defaults to build/valgrind/edgeproxy, the glibc -g -O1 build of tools/asan.mk
    env: KEEP=1 keeps the temp dir and prints its path

The load: keep-alive and pipelined requests, Content-Length and chunked bodies both
ways, large and close-delimited responses, an upgrade tunnel, 100-continue, bad
requests from the smuggling table, bad upstream responses, a client that drops mid-
response, a TLS entry point (self-signed default certificate), a reload (SIGHUP)
with a connection left on the old configuration and closed after it, then SIGTERM
with idle connections still open; --leak-check=full at exit.

The static musl binary can be given too, but valgrind then sees no heap at all: its
malloc replacement lives in a preloaded shared object, and a static executable loads
none (--soname-synonyms=somalloc=NONE does not help there). Only uninitialised reads
and wild accesses are checked then, and this script says so ("no heap seen").
Exit status: 0 clean; 1 when valgrind reported errors (invalid reads/writes, use of
uninitialised values, bad frees...) or definite/indirect leaks, or could not tell
(edgeproxy did not exit 0 on SIGTERM, a log lacks its final summary); 2 when it saw
no heap (nothing was leak-checked)."""
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests/integration"))

import harness  # noqa: E402
from harness import EdgeProxy, HttpConn, free_port  # noqa: E402
from upstream import Upstream  # noqa: E402
from wire import CaptureUpstream  # noqa: E402

BAD_REQUESTS = [
    b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /echo HTTP/1.1\nHost: a\n\n",
    b"GET /echo HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"b\r\nhello\r\n0\r\n\r\n",
    b"GET http://evil/ HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    b"GET /" + b"x" * 20000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 100,
]
BAD_RESPONSES = {
    b"/clte": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"/badchunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n",
    b"/garbage": b"SMUGGLED\r\n\r\n",
    b"/fold": b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
    b"/short": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nok",
}


def config(port, tls_port, up, cap):
    return f"""
[global]
state_dir = {{dir}}/state
access_log = {{dir}}/access.log

[entrypoint web]
listen = 127.0.0.1:{port}
header_timeout = 2s

[entrypoint websecure]
listen = 127.0.0.1:{tls_port}
tls = on

[router hello]
rule = Host(`hello.example`)
service = hello

[router bad]
rule = Host(`bad.example`)
service = bad

[router app]
rule = PathPrefix(`/`)
service = app

[service hello]
type = hello

[service bad]
server = {cap.url}

[service app]
server = {up.url}
"""


# The exit status valgrind gives edgeproxy when it reported an error; edgeproxy
# itself exits 0 on SIGTERM and 1 on its own failures.
VG_ERROR_EXIT = 99


def wrapper(tmp, binary, log):
    path = os.path.join(tmp, "edgeproxy-under-valgrind")
    with open(path, "w") as f:
        # --error-exitcode: edgeproxy's own exit status then says whether memcheck
        # found anything (invalid accesses, or definite/indirect leaks, which
        # --errors-for-leak-kinds counts as errors); main() also reads the logs.
        f.write("#!/bin/sh\nexec valgrind --tool=memcheck --leak-check=full "
                "--show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect "
                f"--error-exitcode={VG_ERROR_EXIT} "
                "--soname-synonyms=somalloc=NONE --track-origins=yes --num-callers=30 "
                f"--log-file={log} {binary} \"$@\"\n")
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path


def exchange(port, data, timeout=10):
    with HttpConn(port, timeout=timeout) as c:
        c.send(data)
        try:
            return c.read_all()
        except socket.timeout:
            return c.buf


def load(p, tls_port):
    port = p.port
    done = 0
    with HttpConn(port, timeout=20) as c:  # keep-alive, every body framing
        for i in range(30):
            c.request("GET", f"/echo?i={i}", host="a.example")
            assert c.read_response().status == 200
            c.request("POST", "/echo", host="a.example", body=os.urandom(i * 1000))
            assert c.read_response().status == 200
            c.request("POST", "/echo", host="a.example", body=os.urandom(7000), chunked=True)
            assert c.read_response().status == 200
            done += 3
        for target in ("/big?size=2000000", "/chunked?n=50&size=10000&trailer=1&ext=1", "/status/204",
                       "/headers", "/sse?n=3&ms=50"):
            c.request("GET", target, host="a.example")
            assert c.read_response().status in (200, 204)
            done += 1
    with HttpConn(port, timeout=20) as c:  # pipelined, then the hello service
        c.send(b"".join(b"GET /identify HTTP/1.1\r\nHost: a.example\r\n\r\n" for _ in range(50)))
        for _ in range(50):
            assert c.read_response().body == b"a"
        c.request("GET", "/", host="hello.example")
        assert c.read_response().status == 200
        done += 51
    with HttpConn(port, timeout=20) as c:  # close-delimited response
        c.request("GET", "/eof?size=300000", host="a.example")
        assert len(c.read_response().body) == 300000
        done += 1
    with HttpConn(port, timeout=20) as c:  # 100-continue
        c.send(b"POST /100 HTTP/1.1\r\nHost: a.example\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        assert c.read_head().status == 100
        c.send(b"data")
        assert c.read_response().status == 200
        done += 1
    with HttpConn(port, timeout=20) as c:  # upgrade tunnel
        c.send(b"GET /ws HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        assert c.read_head().status == 101
        c.send(b"x" * 100000)
        assert c.recv_exact(100000) == b"x" * 100000
        done += 1
    with HttpConn(port, timeout=20) as c:  # the client drops mid-response
        c.request("GET", "/big?size=20000000", host="a.example")
        c.read_head()
        c.recv_exact(100000)
    for data in BAD_REQUESTS:
        exchange(port, data)
        done += 1
    for target in BAD_RESPONSES:
        exchange(port, b"GET " + target + b" HTTP/1.1\r\nHost: bad.example\r\n\r\n")
        done += 1
    for _ in range(20):  # connections dropped in every state
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /big?size=1000000 HTTP/1.1\r\nHost: a.example\r\n\r\n")
        s.close()
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: a.example\r\nContent-Length: 100000\r\n\r\nabc")
        s.close()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for i in range(5):  # TLS: full handshakes, then requests
        with socket.create_connection(("127.0.0.1", tls_port), timeout=30) as raw:
            with ctx.wrap_socket(raw, server_hostname="a.example") as s:
                s.sendall(b"GET /identify HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    data += b
                assert data.startswith(b"HTTP/1.1 200"), data[:100]
                done += 1
    # A connection that stays on the old configuration across a reload holds the
    # last reference to the old snapshot: closing it frees the snapshot.
    old = HttpConn(port, timeout=20)
    old.request("GET", "/identify", host="a.example")
    assert old.read_response().body == b"a"
    done += 1
    p.signal(signal.SIGHUP)  # reload, with traffic after it
    time.sleep(2)
    with HttpConn(port, timeout=20) as c:
        c.request("GET", "/identify", host="a.example")
        assert c.read_response().body == b"a"
        done += 1
    old.close()
    with HttpConn(port, timeout=20) as c:  # still serving after that
        c.request("GET", "/identify", host="a.example")
        assert c.read_response().body == b"a"
        done += 1
    return done


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build/valgrind/edgeproxy")
    if not shutil.which("valgrind"):
        sys.exit("valgrind is not installed")
    tmp = tempfile.mkdtemp(prefix="edgeproxy-valgrind-")
    vlog = os.path.join(tmp, "valgrind.%p.log")
    harness.BIN = wrapper(tmp, os.path.abspath(binary), vlog)
    up = Upstream("a")
    cap = CaptureUpstream(lambda r, i: (BAD_RESPONSES.get(r.target, b"HTTP/1.1 404 X\r\nContent-Length: 0\r\n\r\n"),
                                        True))
    port, tls_port = free_port(), free_port()
    p, rc = None, None
    try:
        p = EdgeProxy(config(port, tls_port, up, cap), port)
        if not harness.wait_port(port, timeout=30):
            sys.exit("edgeproxy under valgrind did not listen:\n" + p.output())
        t0 = time.time()
        n = load(p, tls_port)
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]  # open at stop
        half = HttpConn(port, timeout=5)
        half.send(b"GET /slow-head?ms=300 HTTP/1.1\r\nHost: a.example\r\n\r\n")  # in flight at stop
        time.sleep(0.1)
        p.signal(signal.SIGTERM)
        rc = p.proc.wait(60)
        for s in idle:
            s.close()
        half.close()
        print(f"{n} exchanges in {time.time() - t0:.1f}s under valgrind; edgeproxy exited {rc}")
    finally:
        if p:
            p.stop(timeout=60)
        up.stop()
        cap.stop()
    # Every way the run can fail to prove the absence of errors counts as a
    # failure: a non-zero exit (valgrind's --error-exitcode, or edgeproxy not
    # stopping cleanly), a missing log, a log without its final summaries (the
    # process was killed before memcheck's exit checks ran), errors, leaks.
    failures, no_heap = [], False
    if rc != 0:
        failures.append(f"edgeproxy exited {rc}" + (" (valgrind's --error-exitcode: memcheck reported errors)"
                                                    if rc == VG_ERROR_EXIT else ""))
        print(p.output()[-3000:])
    logs = sorted(f for f in os.listdir(tmp) if f.startswith("valgrind."))
    if not logs:
        failures.append("valgrind wrote no log")
    for path in logs:
        text = open(os.path.join(tmp, path)).read()
        errors = re.search(r"ERROR SUMMARY: ([\d,]+) errors", text)
        leaks = {k: int(v.replace(",", "")) for k, v in re.findall(
            r"(definitely lost|indirectly lost|possibly lost|still reachable): ([\d,]+) bytes", text)}
        heap = re.search(r"total heap usage: ([\d,]+) allocs, ([\d,]+) frees", text)
        print(f"--- {path}: errors={errors.group(1) if errors else '?'} leaks={leaks} "
              f"heap={'%s allocs / %s frees' % heap.groups() if heap else '?'}")
        bad = False
        if not errors or not heap:
            failures.append(f"{path}: no final summary (valgrind did not see the process exit)")
            bad = True
        elif heap.group(1) == "0":
            no_heap = True
            print("    no heap seen: malloc was not replaced (a static binary?), leaks were not checked")
        if errors and errors.group(1) != "0":
            failures.append(f"{path}: {errors.group(1)} errors")
            bad = True
        for kind in ("definitely lost", "indirectly lost"):
            if leaks.get(kind):
                failures.append(f"{path}: {kind}: {leaks[kind]} bytes")
                bad = True
        if bad:
            print(text)
    for f in failures:
        print("valgrind_load: FAIL:", f)
    if os.environ.get("KEEP"):
        print("kept", tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(p.dir, ignore_errors=True)
    sys.exit(1 if failures else 2 if no_heap else 0)


if __name__ == "__main__":
    main()
