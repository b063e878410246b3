"""The admin listener ([admin], SPEC §3) over real sockets: /ping, /healthz, /readyz,
/.well-known/health, /metrics (checked by promtool when installed), the JSON API,
the [admin] switches, and the dashboard rendered by headless Chromium, which must
show a stopped upstream server as "down". Screenshots of the dashboard are kept in
build/artifacts/ (or $EDGEPROXY_ARTIFACTS)."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from html.parser import HTMLParser

import pytest

from harness import EdgeProxy, HttpConn, free_port, wait_port
from upstream import Upstream

ARTIFACTS = os.environ.get("EDGEPROXY_ARTIFACTS") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "../../build/artifacts"))


FIXTURES = os.path.abspath(os.path.join(os.path.dirname(__file__), "../unit/fixtures"))


def config(port, admin, servers, admin_extra="", svc="", extra=""):
    lines = "\n".join(f"server = {s}" for s in servers)
    return f"""
[global]
state_dir = {{dir}}/state

[admin]
listen = 127.0.0.1:{admin}
{admin_extra}

[entrypoint web]
listen = 127.0.0.1:{port}

[router app]
rule = PathPrefix(`/`)
service = app

[router hi]
rule = Path(`/hello`)
service = hi
priority = 100

[service app]
{lines}
{svc}

[service hi]
type = hello
{extra}
"""


@pytest.fixture
def upstreams():
    made = []

    def make(name="up"):
        u = Upstream(name)
        made.append(u)
        return u

    yield make
    for u in made:
        u.stop()
        shutil.rmtree(u.dir, ignore_errors=True)


@pytest.fixture
def edge():
    """edge(servers, ...) starts edgeproxy with an admin listener; .admin is its port."""
    made = []

    def make(servers, **kw):
        port, admin = free_port(), free_port()
        p = EdgeProxy(config(port, admin, [s.url if isinstance(s, Upstream) else s for s in servers], **kw),
                      port)
        made.append(p)
        p.admin = admin
        if not wait_port(admin):
            raise RuntimeError("admin listener did not open:\n" + p.output())
        return p

    yield make
    for p in made:
        p.stop()


def get(port, target, method="GET", host="localhost", headers=()):
    with HttpConn(port) as c:
        c.request(method, target, host=host, headers=headers)
        return c.read_response(method)


def get_json(port, target):
    r = get(port, target)
    assert r.get("content-type", "").startswith("application/json"), r.headers
    return json.loads(r.body)


def wait_for(pred, timeout=10.0, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def server_states(p):
    svc = next(s for s in get_json(p.admin, "/api/services") if s["name"] == "app")
    return {s["url"]: s["state"] for s in svc["servers"]}


# ---- probes and errors ------------------------------------------------------------

def test_ping_healthz_readyz(upstreams, edge):
    p = edge([upstreams("a")])
    for path in ("/ping", "/healthz", "/readyz"):
        r = get(p.admin, path)
        assert (r.status, r.body) == (200, b"OK"), path
        assert r.get("content-type", "").startswith("text/plain")
    r = get(p.admin, "/ping", method="HEAD")
    assert r.status == 200 and r.get("content-length") == "2" and r.body == b""


def test_unknown_paths_404_and_other_methods_405(upstreams, edge):
    p = edge([upstreams("a")])
    for path in ("/nope", "/api", "/api/routers/", "/metrics/x"):
        r = get(p.admin, path)
        assert (r.status, r.body) == (404, b"404 page not found\n"), path
    for method in ("POST", "PUT", "DELETE"):
        with HttpConn(p.admin) as c:
            c.request(method, "/api/services", host="localhost", body=b"x")
            r = c.read_response(method)
        assert r.status == 405 and r.get("allow") == "GET, HEAD", method


def test_admin_is_not_an_entry_point(upstreams, edge):
    """The proxy's routes are not reachable on the admin port, and the admin
    endpoints are not answered on the entry point (they go to the service)."""
    up = upstreams("a")
    p = edge([up])
    assert get(p.admin, "/identify").status == 404
    r = get(p.port, "/ping")
    assert r.get("x-upstream") == "a"


# ---- metrics -------------------------------------------------------------------------

def test_metrics_count_requests_and_pass_promtool(upstreams, edge):
    up = upstreams("a")
    p = edge([up])
    for _ in range(3):
        assert get(p.port, "/identify").status == 200
    assert get(p.port, "/status/503").status == 503
    with HttpConn(p.port) as c:
        c.request("POST", "/echo", host="x", body=b"hi")
        assert c.read_response().status == 200
    assert get(p.port, "/hello").status == 200
    r = get(p.admin, "/metrics")
    assert r.status == 200
    assert r.get("content-type", "").startswith("text/plain; version=0.0.4")
    text = r.body.decode()
    want = [
        'edgeproxy_entrypoint_requests_total{entrypoint="web",code="200",method="GET",protocol="http"} 4',
        'edgeproxy_entrypoint_requests_total{entrypoint="web",code="503",method="GET",protocol="http"} 1',
        'edgeproxy_entrypoint_requests_total{entrypoint="web",code="200",method="POST",protocol="http"} 1',
        'edgeproxy_router_requests_total{router="app",service="app",code="200",method="GET"} 3',
        'edgeproxy_router_requests_total{router="hi",service="hi",code="200",method="GET"} 1',
        'edgeproxy_service_requests_total{service="app",code="503",method="GET"} 1',
        'edgeproxy_service_request_duration_seconds_count{service="app"} 5',
        f'edgeproxy_service_server_up{{service="app",url="{up.url}"}} 1',
        "edgeproxy_config_reloads_total 0",
        "edgeproxy_config_last_reload_success 1",
    ]
    lines = set(text.splitlines())
    for w in want:
        assert w in lines, w + "\n---\n" + text
    for name in ("edgeproxy_entrypoint_request_duration_seconds", "edgeproxy_open_connections",
                 "edgeproxy_tls_certs_not_after", "process_resident_memory_bytes", "process_open_fds",
                 "process_cpu_seconds_total", "process_start_time_seconds"):
        assert f"# TYPE {name} " in text, name
    start = float(re.search(r"^process_start_time_seconds (\S+)$", text, re.M).group(1))
    assert abs(start - time.time()) < 120
    if not shutil.which("promtool"):
        pytest.skip("promtool not installed (Debian package prometheus)")
    check = subprocess.run(["promtool", "check", "metrics"], input=r.body, capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


def test_switches_off_give_404(upstreams, edge):
    p = edge([upstreams("a")], admin_extra="metrics = off\ndashboard = off")
    assert get(p.admin, "/metrics").status == 404
    assert get(p.admin, "/").status == 404
    assert get(p.admin, "/ping").status == 200
    assert get(p.admin, "/api/services").status == 200


# ---- JSON API and health -------------------------------------------------------------

def test_api_routers_services_certs(upstreams, edge):
    a, b = upstreams("a"), upstreams("b")
    p = edge([a, b])
    routers = {r["name"]: r for r in get_json(p.admin, "/api/routers")}
    assert routers["app"]["rule"] == "PathPrefix(`/`)"
    assert routers["app"]["entrypoints"] == ["web"] and routers["app"]["service"] == "app"
    assert routers["hi"]["priority"] == 100
    assert routers["app"]["priority"] == len("PathPrefix(`/`)")  # SPEC: the rule's length by default
    for _ in range(4):
        assert get(p.port, "/identify").status == 200
    services = {s["name"]: s for s in get_json(p.admin, "/api/services")}
    app = services["app"]
    assert app["type"] == "proxy" and app["balance"] == "round_robin" and app["status"] == "pass"
    assert app["requests"] == 4 and app["errors"] == 0
    assert [s["url"] for s in app["servers"]] == [a.url, b.url]
    assert all(s["up"] and s["state"] == "up" for s in app["servers"])
    assert services["hi"]["type"] == "hello" and services["hi"]["servers"] == []
    assert get_json(p.admin, "/api/certs") == []  # no TLS entry point


def test_health_document(upstreams, edge):
    a, b = upstreams("a"), upstreams("b")
    p = edge([a, b])  # a failed connection takes a server out for health_interval (10s)
    r = get(p.admin, "/.well-known/health")
    assert r.status == 200 and r.get("content-type") == "application/health+json"
    doc = json.loads(r.body)
    assert doc["status"] == "pass" and doc["version"]
    check = doc["checks"]["service:app"][0]
    assert check["status"] == "pass" and check["observedValue"] == 2
    assert doc["checks"]["service:hi"][0]["status"] == "pass"

    b.stop()  # one of two servers gone: the service warns, HTTP stays 200
    for _ in range(4):
        get(p.port, "/identify")  # a connection failure marks it down at once
    assert wait_for(lambda: server_states(p)[b.url] == "down")
    r = get(p.admin, "/.well-known/health")
    doc = json.loads(r.body)
    assert r.status == 200 and doc["status"] == "warn", doc
    assert doc["checks"]["service:app"][0]["observedValue"] == 1

    a.stop()  # none left: fail and 503
    for _ in range(4):
        get(p.port, "/identify")
    assert wait_for(lambda: server_states(p)[a.url] == "down")
    r = get(p.admin, "/.well-known/health")
    assert r.status == 503 and json.loads(r.body)["status"] == "fail"


# ---- the dashboard in a real browser ----------------------------------------------

def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def browse(url, *extra, budget=3000, timeout=60):
    """Runs headless Chromium on url after the page's scripts ran for `budget` ms of
    virtual time; returns its stdout (the DOM with --dump-dom)."""
    profile = tempfile.mkdtemp(prefix="edgeproxy-chromium-")
    try:
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
               f"--virtual-time-budget={budget}", *extra, url]
        r = subprocess.run(cmd, capture_output=True, timeout=timeout)
        return r.stdout.decode("utf-8", "replace")
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class ServerRows(HTMLParser):
    """Collects the dashboard's server rows: data-url -> [data-state, [text pieces]]."""

    def __init__(self):
        super().__init__()
        self.rows = {}
        self.stack = []  # per open div: its data-url or None

    def handle_starttag(self, tag, attrs):
        if tag != "div":
            return
        a = dict(attrs)
        if "data-url" in a:
            self.rows[a["data-url"]] = [a.get("data-state"), []]
        self.stack.append(a.get("data-url"))

    def handle_endtag(self, tag):
        if tag == "div" and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        for url in self.stack:
            if url and data.strip():
                self.rows[url][1].append(data.strip())


@pytest.mark.skipif(chromium() is None, reason="chromium not installed (Debian packages chromium, chromium-driver)")
def test_dashboard_in_chromium_shows_a_stopped_server_down(upstreams, edge):
    a, b = upstreams("a"), upstreams("b")
    tls = f"""
[entrypoint websecure]
listen = 127.0.0.1:{free_port()}
tls = on
[cert site]
cert_file = {FIXTURES}/chain.pem
key_file = {FIXTURES}/ec.key
"""
    p = edge([a, b], extra=tls)
    for _ in range(6):
        assert get(p.port, "/identify").status == 200
    b.stop()
    for _ in range(4):
        get(p.port, "/identify")
    assert wait_for(lambda: server_states(p)[b.url] == "down")

    url = f"http://127.0.0.1:{p.admin}/"
    # Traffic while the page runs, so that the second poll (after 5 s of virtual
    # time) has rates to compute from consecutive /api/services counts.
    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            get(p.port, "/identify")
            time.sleep(0.01)

    t = threading.Thread(target=traffic, daemon=True)
    t.start()
    try:
        dom = browse(url, "--dump-dom", budget=7000)
        rows = ServerRows()
        rows.feed(dom)
        assert b.url in rows.rows, dom
        state, texts = rows.rows[b.url]
        assert state == "down" and "down" in texts, texts  # the state badge reads "down"
        state, texts = rows.rows[a.url]
        assert state == "up" and "up" in texts and "down" not in texts, texts
        # routers with their rules, the header's health, rates per service, no API error
        assert "PathPrefix(`/`)" in dom and "Path(`/hello`)" in dom
        assert "a.example.com, *.wild.example" in dom and "2126-11-03" in dom  # the certificate
        assert re.search(r'<span id="health" class="pill warn">warn</span>', dom), "header health"
        card = dom[dom.index('data-service="app"'):]
        assert re.search(r"<b>\d+\.\d\d</b><span>req/s</span>", card), "request rate shown"
        assert re.search(r"<b>\d+\.\d%</b><span>errors \(5xx\)</span>", card), "error rate shown"
        assert re.search(r'<div id="err"[^>]*></div>', dom), "the page reports an API error"

        os.makedirs(ARTIFACTS, exist_ok=True)
        for w, h in ((1280, 900), (390, 844)):
            shot = os.path.join(ARTIFACTS, f"dashboard-{w}x{h}.png")
            if os.path.exists(shot):
                os.unlink(shot)
            browse(url, f"--screenshot={shot}", f"--window-size={w},{h}", budget=7000)
            assert os.path.getsize(shot) > 10000, shot
    finally:
        stop.set()
        t.join()
