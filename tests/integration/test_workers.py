"""workers = N over real sockets: a supervisor forks N workers that share the
listeners; /metrics sums what every worker counted; a killed worker is restarted;
reloads reach every worker with zero failed requests under load; a new entry point
gets new workers; SIGUSR2 upgrade and a killed supervisor (graceful stop with
workers: test_lifecycle.py)."""
import os
import re
import signal
import time

from harness import EdgeProxy, free_port, request, wait_port
from test_lifecycle import Load, routed_config, wait_for


def children(pid):
    """PIDs whose parent is pid (from /proc/*/stat), sorted."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return sorted(found)


def wait_children(pid, n, timeout=5.0):
    assert wait_for(lambda: len(children(pid)) == n, timeout), children(pid)
    return children(pid)


def workers_config(port, service="one", workers=2, admin=None, extra=""):
    cfg = routed_config(port, service, extra_global=f"workers = {workers}\n{extra}")
    if admin:
        cfg += f"\n[admin]\nlisten = 127.0.0.1:{admin}\n"
    return cfg


def metric(text, name):
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_workers_share_listeners_and_metrics_are_summed():
    port, admin = free_port(), free_port()
    with EdgeProxy(workers_config(port, admin=admin), port) as p:
        assert wait_port(admin)
        kids = wait_children(p.proc.pid, 2)
        assert "supervising 2 workers" in p.output()
        # Each worker alone in turn (the other stopped): both serve from the shared
        # listener, each counts in its own store.
        for stopped, running in ((kids[0], kids[1]), (kids[1], kids[0])):
            os.kill(stopped, signal.SIGSTOP)
            try:
                for _ in range(10):
                    assert request(port)[0] == 200
            finally:
                os.kill(stopped, signal.SIGCONT)
            with open(f"/proc/{running}/stat") as f:
                assert f.read().rsplit(")", 1)[1].split()[0] != "T"
        status, _, body = request(admin, path="/metrics")
        assert status == 200
        text = body.decode()
        assert metric(text, 'edgeproxy_entrypoint_request_duration_seconds_count{entrypoint="web"}') == 20
        assert metric(text, 'edgeproxy_service_requests_total{service="one",code="200",method="GET"}') == 20
        # process_* adds up the supervisor and both workers
        fds = metric(text, "process_open_fds")
        assert fds is not None and fds >= 3 * 3
        # the supervisor itself never accepts: with both workers stopped, a
        # connection is queued but not answered
        for k in kids:
            os.kill(k, signal.SIGSTOP)
        try:
            import socket
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(0.5)
            try:
                assert s.recv(100) == b""
                raise AssertionError("answered while every worker was stopped")
            except socket.timeout:
                pass
        finally:
            for k in kids:
                os.kill(k, signal.SIGCONT)
        s.settimeout(5)
        assert s.recv(100).startswith(b"HTTP/1.1 200")
        s.close()


def test_killed_worker_is_restarted():
    port = free_port()
    with EdgeProxy(workers_config(port), port) as p:
        kids = wait_children(p.proc.pid, 2)
        os.kill(kids[0], signal.SIGKILL)
        assert wait_for(lambda: len(children(p.proc.pid)) == 2 and kids[0] not in children(p.proc.pid), 5)
        assert re.search(r"worker \d \(pid %d\) was killed by signal 9; restarting" % kids[0], p.output())
        for _ in range(5):
            assert request(port)[0] == 200
        assert kids[1] in children(p.proc.pid)  # the other one was left alone


def test_rewrites_under_load_reach_every_worker():
    port, admin = free_port(), free_port()
    with EdgeProxy(workers_config(port, "one", admin=admin), port) as p:
        kids = wait_children(p.proc.pid, 2)
        with Load(port, threads=6) as load:
            for i in range(20):
                p.write(workers_config(port, "two" if i % 2 == 0 else "one", admin=admin))
                time.sleep(0.25)
            p.write("[entrypoint web]\nlisten = 127.0.0.1:%d\nnonsense here\n" % port)  # invalid
            time.sleep(0.5)
        assert load.failed == []
        assert load.ok > 100
        assert {b.split(b" @ ")[0] for b in load.bodies} == {b"one", b"two"}
        # every worker serves the last valid file: new connections, each worker alone
        for k in kids:
            others = [o for o in kids if o != k]
            for o in others:
                os.kill(o, signal.SIGSTOP)
            try:
                assert request(port)[2].startswith(b"one")
            finally:
                for o in others:
                    os.kill(o, signal.SIGCONT)
        assert children(p.proc.pid) == kids  # reloaded in place, not restarted
        out = p.output()
        # the bad file is reported once, by the supervisor, with its line
        assert len(re.findall(r"edgeproxy\.ini:3: ", out)) == 1, out
        text = request(admin, path="/metrics")[2].decode()
        reloads = metric(text, "edgeproxy_config_reloads_total")
        assert reloads is not None and 21 <= reloads <= 42  # counted once per reload, not per worker
        assert metric(text, "edgeproxy_config_last_reload_success") == 0


def test_new_entrypoint_starts_new_workers():
    port, port2 = free_port(), free_port()
    with EdgeProxy(workers_config(port), port) as p:
        old = wait_children(p.proc.pid, 2)
        cfg = workers_config(port) + f"\n[entrypoint second]\nlisten = 127.0.0.1:{port2}\n"
        cfg = cfg.replace("[router r]\n", "[router r]\nentrypoints = web, second\n")
        with Load(port) as load:
            time.sleep(0.3)
            p.write(cfg)
            assert wait_port(port2)
            assert wait_for(lambda: not set(old) & set(children(p.proc.pid)) and
                            len(children(p.proc.pid)) == 2, 10), p.output()
            time.sleep(0.3)
        assert load.failed == []
        assert request(port2)[0] == 200
        assert request(port)[0] == 200
        assert "entry points changed" in p.output()


def test_upgrade_with_workers_under_load():
    port = free_port()
    new_pid = None
    with EdgeProxy(workers_config(port), port) as p:
        old_kids = wait_children(p.proc.pid, 2)
        try:
            with Load(port) as load:
                time.sleep(0.5)
                p.signal(signal.SIGUSR2)
                assert wait_for(lambda: "serves; draining" in p.output(), 5), p.output()
                new_pid = int(re.search(r"upgrade: started .* as process (\d+)", p.output()).group(1))
                assert p.proc.wait(10) == 0
                time.sleep(0.5)
            assert load.failed == []
            assert load.ok > 50
            new_kids = wait_children(new_pid, 2)
            assert not set(new_kids) & set(old_kids)
            assert request(port)[0] == 200
        finally:
            if new_pid:
                os.kill(new_pid, signal.SIGTERM)
                assert wait_for(lambda: not os.path.exists(f"/proc/{new_pid}"), 10)


def test_workers_end_with_a_killed_supervisor():
    port = free_port()
    with EdgeProxy(workers_config(port), port) as p:
        kids = wait_children(p.proc.pid, 2)
        p.proc.kill()
        p.proc.wait(5)
        assert wait_for(lambda: not any(os.path.exists(f"/proc/{k}") for k in kids), 10)


def test_workers_run_as_configured_user(tmp_path):
    import pwd
    import pytest
    if os.getuid() != 0:
        pytest.skip("needs root to switch users")
    nobody = pwd.getpwnam("nobody")
    port = free_port()
    with EdgeProxy(workers_config(port, extra="user = nobody"), port) as p:
        kids = wait_children(p.proc.pid, 2)
        for pid in [p.proc.pid] + kids:
            with open(f"/proc/{pid}/status") as f:
                uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)", f.read(), re.M).groups()
            assert uids == (str(nobody.pw_uid),) * 3, pid
        assert request(port)[0] == 200
        # a worker restarted by the unprivileged supervisor serves too
        os.kill(kids[0], signal.SIGKILL)
        assert wait_for(lambda: len(children(p.proc.pid)) == 2 and kids[0] not in children(p.proc.pid), 5)
        for _ in range(4):
            assert request(port)[0] == 200
