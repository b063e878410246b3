"""Active health checks ([service] health_*) against real upstream processes: a
failing server leaves the rotation after health_fall failures and comes back
after health_rise successes; checks carry health_host; a passive mark ends when
an active check succeeds."""
import time

import pytest

from harness import EdgeProxy, free_port, request
from upstream import Upstream


def config(port, servers, extra=""):
    lines = "\n".join(f"server = {s}" for s in servers)
    return f"""
[global]
state_dir = {{dir}}/state
[entrypoint web]
listen = 127.0.0.1:{port}
[router r]
rule = PathPrefix(`/`)
service = app
[service app]
{lines}
health_interval = 200ms
health_timeout = 300ms
health_rise = 2
health_fall = 2
{extra}
"""


def who(port):
    st, _, body = request(port, path="/identify")
    return st, body.decode()


def wait_for(pred, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def two():
    a, b = Upstream("a"), Upstream("b")
    yield a, b
    a.stop()
    b.stop()


def test_failing_health_path_takes_a_server_out(two):
    a, b = two
    port = free_port()
    cfg = config(port, [a.url, b.url], "health_path = /status/200\nhealth_host = health.example")
    with EdgeProxy(cfg, port) as p:
        assert wait_for(lambda: len(a.requests("/status/200")) >= 2 and len(b.requests("/status/200")) >= 2)
        seen = {who(port)[1] for _ in range(6)}
        assert seen == {"a", "b"}
        checks = a.requests("/status/200")
        assert checks[0].get("host") == "health.example"
        assert checks[0].get("user-agent") == "edgeproxy-health"
        # a dies: after health_fall failed checks only b answers, without 502s
        a.stop()
        assert wait_for(lambda: "is down (health check" in p.output())
        results = [who(port) for _ in range(8)]
        assert results == [(200, "b")] * 8


def test_status_ranges_decide_health(two):
    a, b = two
    port = free_port()
    cfg = config(port, [a.url, b.url], "health_path = /status/503\nhealth_status = 200-399")
    with EdgeProxy(cfg, port) as p:
        # every server fails its check: both are down, the service answers 503
        assert wait_for(lambda: p.output().count("is down (health check: status 503)") == 2)
        assert request(port, path="/identify")[0] == 503


def test_server_comes_back_after_rise_successes():
    port = free_port()
    up = Upstream("a")
    up_port = int(up.url.rsplit(":", 1)[1])
    try:
        cfg = config(port, [up.url], "health_path = /status/200")
        with EdgeProxy(cfg, port) as p:
            assert who(port) == (200, "a")
            up.stop()
            assert wait_for(lambda: "is down" in p.output())
            assert request(port, path="/identify")[0] == 503
            up = Upstream("a", port=up_port)
            assert wait_for(lambda: "is up (health check)" in p.output())
            assert wait_for(lambda: who(port) == (200, "a"))
    finally:
        up.stop()


def test_bad_health_settings_are_config_errors(tmp_path):
    from harness import run_cli
    cfg = tmp_path / "c.ini"
    cfg.write_text("[entrypoint web]\nlisten = :1\n[router r]\nrule = Path(`/`)\nservice = s\n"
                   "[service s]\nserver = http://127.0.0.1:9\nhealth_path = health\nhealth_status = 2xx\n")
    r = run_cli("check", "-c", str(cfg))
    assert r.returncode == 1
    assert f"{cfg}:8: health_path" in r.stderr and f"{cfg}:9: health_status" in r.stderr
