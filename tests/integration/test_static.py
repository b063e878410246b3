"""The static-file backend (service type=static) over real sockets: files, index,
directory redirects, validators and 304, ranges, methods, and path escapes."""
import hashlib
import os
import socket
import subprocess

import pytest

from harness import EdgeProxy, free_port, raw, request, run_cli, status_of


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "www"
    (root / "docs").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "docs" / "index.html").write_text("<h1>docs</h1>")
    (root / "style.css").write_text("body{}")
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (tmp_path / "secret.txt").write_text("outside the root")
    port = free_port()
    cfg = f"""
[entrypoint web]
listen = 127.0.0.1:{port}
[router site]
rule = PathPrefix(`/`)
service = site
[service site]
type = static
root = {root}
"""
    with EdgeProxy(cfg, port) as p:
        p.root = root
        yield p


def curl(*args):
    return subprocess.run(["curl", "-s", *args], capture_output=True, timeout=20)


def test_index_and_types(site):
    st, h, body = request(site.port, path="/")
    assert (st, body) == (200, b"<h1>home</h1>")
    assert h["content-type"] == "text/html; charset=utf-8"
    st, h, body = request(site.port, path="/style.css")
    assert (st, body, h["content-type"]) == (200, b"body{}", "text/css; charset=utf-8")
    st, _, body = request(site.port, path="/docs/")
    assert (st, body) == (200, b"<h1>docs</h1>")


def test_directory_without_slash_redirects(site):
    st, h, _ = request(site.port, path="/docs?x=1")
    assert st == 301 and h["location"] == "/docs/?x=1"


def test_large_file_is_intact(site):
    url = f"http://127.0.0.1:{site.port}/big.bin"
    out = curl(url).stdout
    assert hashlib.sha256(out).digest() == hashlib.sha256((site.root / "big.bin").read_bytes()).digest()


def test_head_has_length_no_body(site):
    resp = raw(site.port, b"HEAD /big.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    head, _, body = resp.partition(b"\r\n\r\n")
    assert status_of(resp) == 200 and body == b""
    assert f"Content-Length: {3 * 1024 * 1024 + 17}".encode() in head


def test_validators_give_304(site):
    st, h, _ = request(site.port, path="/style.css")
    etag, modified = h["etag"], h["last-modified"]
    st, _, body = request(site.port, path="/style.css", headers=[f"If-None-Match: {etag}"])
    assert st == 304 and body == b""
    assert request(site.port, path="/style.css", headers=[f"If-Modified-Since: {modified}"])[0] == 304
    assert request(site.port, path="/style.css", headers=['If-None-Match: "other"'])[0] == 200


def test_ranges(site):
    data = (site.root / "big.bin").read_bytes()
    st, h, body = request(site.port, path="/big.bin", headers=["Range: bytes=10-19"])
    assert st == 206 and body == data[10:20]
    assert h["content-range"] == f"bytes 10-19/{len(data)}"
    st, _, body = request(site.port, path="/big.bin", headers=["Range: bytes=-5"])
    assert st == 206 and body == data[-5:]
    st, h, _ = request(site.port, path="/big.bin", headers=[f"Range: bytes={len(data)}-"])
    assert st == 416 and h["content-range"] == f"bytes */{len(data)}"


@pytest.mark.parametrize("path", ["/../secret.txt", "/%2e%2e/secret.txt", "/docs/../../secret.txt",
                                  "/docs%2f..%2f..%2fsecret.txt", "/nope.txt", "/%00"])
def test_paths_cannot_escape_root(site, path):
    st, _, body = request(site.port, path=path)
    assert st in (400, 404)
    assert b"outside the root" not in body


def test_only_get_and_head(site):
    st, h, _ = request(site.port, method="POST", path="/", body=b"x")
    assert st == 405 and h["allow"] == "GET, HEAD"


def test_keep_alive_after_file(site):
    with socket.create_connection(("127.0.0.1", site.port)) as s:
        s.settimeout(5)
        s.sendall(b"GET /style.css HTTP/1.1\r\nHost: a\r\n\r\nGET /docs/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert data.index(b"body{}") < data.index(b"<h1>docs</h1>")


def test_missing_root_is_a_config_error(tmp_path):
    cfg = tmp_path / "c.ini"
    cfg.write_text("[entrypoint web]\nlisten = :1\n[router r]\nrule = Path(`/`)\nservice = s\n"
                   f"[service s]\ntype = static\nroot = {tmp_path}/none\n")
    r = run_cli("check", "-c", str(cfg))
    assert r.returncode == 1 and f"{cfg}:8: root" in r.stderr
