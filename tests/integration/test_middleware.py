"""Middlewares on real routers over real sockets: the seed stack (security headers +
rate limit), basic auth with htpasswd hashes, allowlists, redirects, prefixes,
request ids, order and early answers; request edits reach the upstream."""
import base64
import time

import pytest

from harness import EdgeProxy, free_port, request, run_cli
from upstream import Upstream

BCRYPT = "frank:$2y$10$b.kQXpYxpjF1VKqwevFAluFKM/EWSRB44FNh9XG5JAn/SUdqSwxQO"  # correct-horse-battery-staple
APR1 = "alice:$apr1$tytD1ZJT$uY60Wgdn03DrVZV3aSyce1"  # s3cr3t
SHA = "dave:{SHA}9Rfd8dMqES/xrVXGbRsSyzjn6Pc="  # pässwörd


def basic(user, password):
    return "Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def config(port, middlewares, sections, service="hello", extra_ep=""):
    return f"""
[global]
state_dir = {{dir}}/state
[entrypoint web]
listen = 127.0.0.1:{port}
{extra_ep}
[router r]
rule = PathPrefix(`/`)
service = {service}
middlewares = {middlewares}
[service hello]
type = hello
{sections}
"""


def test_security_headers_and_ratelimit_stack():
    port = free_port()
    cfg = config(port, "secure, limit", """
[middleware secure]
type = headers
sts_seconds = 31536000
frame_deny = on
content_type_nosniff = on
referrer_policy = no-referrer
response_header = X-Powered-By:
response_header = X-Edge: yes
[middleware limit]
type = ratelimit
average = 5
period = 1s
burst = 5
""")
    with EdgeProxy(cfg, port):
        st, h, _ = request(port)
        assert st == 200
        assert h["x-frame-options"] == "DENY" and h["x-content-type-options"] == "nosniff"
        assert h["referrer-policy"] == "no-referrer" and h["x-edge"] == "yes"
        assert "strict-transport-security" not in h  # only on TLS requests
        statuses = [request(port)[0] for _ in range(12)]
        assert statuses.count(429) >= 5
        st, h, body = request(port)
        assert st == 429 and int(h["retry-after"]) >= 1 and b"429" in body
        time.sleep(1.2)
        assert request(port)[0] == 200  # tokens come back


def test_basic_auth_with_htpasswd_hashes(tmp_path):
    users = tmp_path / "users"
    users.write_text(APR1 + "\n" + SHA + "\n")
    port = free_port()
    cfg = config(port, "auth", f"""
[middleware auth]
type = basic_auth
user = {BCRYPT}
users_file = {users}
realm = Staff
""")
    with EdgeProxy(cfg, port):
        st, h, _ = request(port)
        assert st == 401 and h["www-authenticate"] == 'Basic realm="Staff"'
        assert request(port, headers=[basic("frank", "correct-horse-battery-staple")])[0] == 200
        assert request(port, headers=[basic("alice", "s3cr3t")])[0] == 200
        assert request(port, headers=[basic("dave", "pässwörd")])[0] == 200
        assert request(port, headers=[basic("alice", "wrong")])[0] == 401
        assert request(port, headers=[basic("mallory", "s3cr3t")])[0] == 401
        assert request(port, headers=["Authorization: Basic !!!notbase64"])[0] == 401


def test_ip_allowlist():
    port = free_port()
    cfg = config(port, "lan", "[middleware lan]\ntype = ip_allowlist\nsource_range = 10.0.0.0/8, 192.168.0.0/16\n")
    with EdgeProxy(cfg, port):
        assert request(port)[0] == 403
    port = free_port()
    cfg = config(port, "lo", "[middleware lo]\ntype = ip_allowlist\nsource_range = 127.0.0.0/8, ::1\n")
    with EdgeProxy(cfg, port):
        assert request(port)[0] == 200


def test_redirects():
    port = free_port()
    cfg = config(port, "tohttps", "[middleware tohttps]\ntype = redirect_scheme\nscheme = https\npermanent = on\n")
    with EdgeProxy(cfg, port):
        st, h, _ = request(port, path="/a?b=1", host="site.example:8080")
        assert st == 308 and h["location"] == "https://site.example/a?b=1"
    port = free_port()
    cfg = config(port, "re", "[middleware re]\ntype = redirect_regex\nregex = ^http://([^/]+)/old/(.*)$\n"
                             "replacement = http://$1/new/$2\n")
    with EdgeProxy(cfg, port):
        st, h, _ = request(port, path="/old/x/y", host="h.example")
        assert st == 307 and h["location"] == "http://h.example/new/x/y"
        assert request(port, path="/other", host="h.example")[0] == 200


def test_prefixes_request_id_and_order_reach_the_upstream():
    up = Upstream("u")
    port = free_port()
    try:
        cfg = config(port, "strip, add, rid, hdr", f"""
[middleware strip]
type = strip_prefix
prefix = /api
[middleware add]
type = add_prefix
prefix = /v2
[middleware rid]
type = request_id
[middleware hdr]
type = headers
request_header = X-Team: edge
request_header = X-Drop-Me:
[service app]
server = {up.url}
""", service="app")
        with EdgeProxy(cfg, port):
            st, h, _ = request(port, path="/api/echo?q=1", headers=["X-Drop-Me: secret"])
            assert st in (200, 404)
            seen = up.requests()[-1]
            assert seen.path == "/v2/echo"
            assert seen.get("x-forwarded-prefix") == "/api"
            assert seen.get("x-team") == "edge" and seen.get("x-drop-me") is None
            rid = seen.get("x-request-id")
            assert rid and len(rid) == 32 and h["x-request-id"] == rid
            # an incoming id is kept and returned
            st, h, _ = request(port, path="/api/echo", headers=["X-Request-Id: abc-123"])
            assert up.requests()[-1].get("x-request-id") == "abc-123" and h["x-request-id"] == "abc-123"
    finally:
        up.stop()


def test_early_answer_stops_the_chain():
    port = free_port()
    cfg = config(port, "deny, auth", f"""
[middleware deny]
type = ip_allowlist
source_range = 10.0.0.0/8
[middleware auth]
type = basic_auth
user = {APR1}
""")
    with EdgeProxy(cfg, port):
        st, h, _ = request(port)
        assert st == 403 and "www-authenticate" not in h


def test_bad_middleware_config_names_the_line(tmp_path):
    cfg = tmp_path / "c.ini"
    cfg.write_text("[entrypoint w]\nlisten = :1\n[router r]\nrule = Path(`/`)\nservice = s\n"
                   "middlewares = nope, m\n[service s]\ntype = hello\n[middleware m]\ntype = ratelimit\n"
                   "average = lots\n")
    r = run_cli("check", "-c", str(cfg))
    assert r.returncode == 1
    assert f"{cfg}:6: middlewares: no [middleware nope]" in r.stderr
    assert f"{cfg}:11:" in r.stderr
