"""Lifecycle over real sockets: reload by file watching under load with zero failed
requests, bad files keep the old routing, graceful stop finishes in-flight
requests, SIGUSR2 upgrade under load, log reopen, privilege drop."""
import os
import pwd
import re
import signal
import socket
import threading
import time

import pytest

from harness import EdgeProxy, free_port, request, wait_port
from upstream import Upstream


def routed_config(port, service, log=None, extra_global=""):
    log_line = f"access_log = {log}" if log else ""
    return f"""
[global]
state_dir = {{dir}}/state
grace_period = 5s
{log_line}
{extra_global}

[entrypoint web]
listen = 127.0.0.1:{port}

[router r]
rule = PathPrefix(`/`)
service = {service}

[service one]
type = hello
message = one

[service two]
type = hello
message = two
"""


class Load:
    """Keep-alive clients in threads; a request that fails on a reused connection
    before any response byte is retried once on a new one (as HTTP clients do),
    anything else counts as a failure."""

    def __init__(self, port, threads=4):
        self.port = port
        self.stop_flag = threading.Event()
        self.ok = 0
        self.failed = []
        self.bodies = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def one(self, sock):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: load\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed" if not data else "closed mid-head")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        while len(body) < length:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed mid-body")
            body += chunk
        return int(head.split(b" ")[1]), body, b"Connection: close" in head

    def run(self):
        sock = None
        while not self.stop_flag.is_set():
            fresh = sock is None
            try:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                status, body, closing = self.one(sock)
            except (ConnectionError, OSError) as e:
                if sock is not None:
                    sock.close()
                sock = None
                if fresh:
                    with self.lock:
                        self.failed.append(repr(e))
                continue
            with self.lock:
                if status == 200:
                    self.ok += 1
                    self.bodies.append(body)
                else:
                    self.failed.append(status)
            if closing:
                sock.close()
                sock = None
        if sock:
            sock.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(10)


def wait_for(pred, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_file_change_reloads_without_signal(tmp_path):
    port = free_port()
    with EdgeProxy(routed_config(port, "one"), port) as p:
        assert request(port)[2].startswith(b"one")
        start = time.time()
        p.write(routed_config(port, "two"))
        assert wait_for(lambda: request(port)[2].startswith(b"two"), 3)
        latency = time.time() - start
        print(f"reload latency (file written -> new routing live): {latency * 1000:.0f} ms")
        # an editor that writes a new file and renames it over the old one
        tmp = p.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(routed_config(port, "one").replace("{dir}", p.dir))
        os.rename(tmp, p.path)
        assert wait_for(lambda: request(port)[2].startswith(b"one"), 3)


def test_rewrites_under_load_fail_no_request(tmp_path):
    port = free_port()
    with EdgeProxy(routed_config(port, "one"), port) as p:
        with Load(port) as load:
            for i in range(20):
                p.write(routed_config(port, "two" if i % 2 == 0 else "one"))
                time.sleep(0.25)
            p.write("[entrypoint web]\nlisten = 127.0.0.1:%d\nnonsense here\n" % port)  # invalid: ignored
            time.sleep(0.5)
        assert load.failed == []
        assert load.ok > 100
        assert {b.split(b" @ ")[0] for b in load.bodies} == {b"one", b"two"}
        # the last valid file (i = 19 -> "one") is what serves
        assert request(port)[2].startswith(b"one")
        assert "reload failed" in p.output()


@pytest.mark.parametrize("workers", [1, 2])
def test_graceful_stop_finishes_in_flight_request(workers):
    up = Upstream("slow")
    port = free_port()
    cfg = f"""
[global]
grace_period = 5s
workers = {workers}
[entrypoint web]
listen = 127.0.0.1:{port}
[router r]
rule = PathPrefix(`/`)
service = app
[service app]
server = {up.url}
"""
    try:
        with EdgeProxy(cfg, port) as p:
            result = {}

            def slow():
                result["r"] = request(port, path="/slow-head?ms=2000", timeout=10)

            t = threading.Thread(target=slow)
            t.start()
            assert wait_for(lambda: len(up.requests()) >= 1, 3)
            kids = [int(e) for e in os.listdir("/proc") if e.isdigit() and _ppid(int(e)) == p.proc.pid]
            assert len(kids) == (workers if workers > 1 else 0)
            p.signal(signal.SIGTERM)
            time.sleep(0.3)
            # no new connections once stopping
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).recv(1)
            t.join(10)
            assert result["r"][0] == 200
            assert p.proc.wait(10) == 0
            # with workers, the supervisor exits once they have (no orphan left)
            assert not [k for k in kids if _ppid(k) is not None]
    finally:
        up.stop()


def _ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def test_sigusr2_upgrade_under_load(tmp_path):
    port = free_port()
    new_pid = None
    with EdgeProxy(routed_config(port, "one"), port) as p:
        old_pid = p.proc.pid
        try:
            with Load(port) as load:
                time.sleep(0.5)
                p.signal(signal.SIGUSR2)
                assert wait_for(lambda: "serves; draining" in p.output(), 5), p.output()
                m = re.search(r"upgrade: started .* as process (\d+)", p.output())
                new_pid = int(m.group(1))
                assert p.proc.wait(10) == 0  # the old process drained and exited
                time.sleep(0.5)
            assert load.failed == []
            assert load.ok > 50
            assert request(port)[0] == 200
            with open(f"/proc/{new_pid}/status") as f:
                assert "edgeproxy" in f.read()
            assert new_pid != old_pid
        finally:
            if new_pid:
                os.kill(new_pid, signal.SIGTERM)


def test_failed_upgrade_keeps_serving(tmp_path):
    import shutil
    from harness import BIN
    binary = tmp_path / "edgeproxy"
    shutil.copy(BIN, binary)
    port = free_port()
    cfg = tmp_path / "c.ini"
    cfg.write_text(routed_config(port, "one").replace("{dir}", str(tmp_path)))
    import subprocess
    log = open(tmp_path / "log", "w+")
    proc = subprocess.Popen([str(binary), "run", "-c", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_port(port)
        # the "new binary" on disk is broken
        binary.unlink()
        binary.write_text("#!/bin/sh\nexit 3\n")
        binary.chmod(0o755)
        proc.send_signal(signal.SIGUSR2)
        assert wait_for(lambda: "still serving" in open(tmp_path / "log").read(), 5)
        assert proc.poll() is None
        assert request(port)[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def test_sigusr1_reopens_access_log(tmp_path):
    port = free_port()
    log = tmp_path / "access.log"
    with EdgeProxy(routed_config(port, "one", log=log), port) as p:
        request(port, path="/before")
        time.sleep(0.2)
        os.rename(log, tmp_path / "access.log.1")
        p.signal(signal.SIGUSR1)
        time.sleep(0.3)
        request(port, path="/after")
        p.stop()
    assert "/before" in (tmp_path / "access.log.1").read_text()
    assert "/after" in log.read_text() and "/before" not in log.read_text()


def test_runs_as_configured_user(tmp_path):
    if os.getuid() != 0:
        pytest.skip("needs root to switch users")
    nobody = pwd.getpwnam("nobody")
    port = free_port()
    os.chmod(tmp_path, 0o755)
    with EdgeProxy(routed_config(port, "one", extra_global="user = nobody"), port) as p:
        # the port opens before the switch: wait for the log line that follows it
        assert wait_for(lambda: "running as uid" in p.output(), 5)
        with open(f"/proc/{p.proc.pid}/status") as f:
            status = f.read()
        uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).groups()
        assert uids == (str(nobody.pw_uid),) * 3
        assert request(port)[0] == 200
