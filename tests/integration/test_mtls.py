"""mTLS ([tls] client_ca): a client certificate that chains to client_ca is
accepted; no certificate, or one from another CA, fails the handshake."""
import subprocess

import pytest

from harness import EdgeProxy, free_port, run_cli


def sh(*args, cwd):
    subprocess.run(args, cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("mtls")
    for ca in ("ca", "other"):
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "30", "-subj", f"/CN=test {ca} CA", cwd=d)
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", "server.key", "-out", "server.crt", "-days", "30", "-subj", "/CN=localhost",
       "-addext", "subjectAltName=DNS:localhost", cwd=d)
    for name, ca in (("good", "ca"), ("bad", "other")):
        sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name} client", cwd=d)
        sh("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
           "-CAcreateserial", "-out", f"{name}.crt", "-days", "30",
           cwd=d)
    return d


def config(port, d):
    return f"""
[global]
state_dir = {{dir}}/state
[entrypoint websecure]
listen = 127.0.0.1:{port}
tls = on
[tls]
client_ca = {d}/ca.crt
default_cert = site
[cert site]
cert_file = {d}/server.crt
key_file = {d}/server.key
[router r]
rule = PathPrefix(`/`)
service = hello
[service hello]
type = hello
"""


def curl(port, d, *extra):
    return subprocess.run(["curl", "-s", "--max-time", "5", "--cacert", f"{d}/server.crt",
                           "--resolve", f"localhost:{port}:127.0.0.1", *extra,
                           f"https://localhost:{port}/"], capture_output=True, timeout=15)


def test_client_certificate_from_client_ca_is_accepted(pki):
    port = free_port()
    with EdgeProxy(config(port, pki), port):
        r = curl(port, pki, "--cert", f"{pki}/good.crt", "--key", f"{pki}/good.key")
        assert r.returncode == 0 and r.stdout == f"Hello from edgeproxy @ localhost:{port}".encode()


def test_no_client_certificate_fails_the_handshake(pki):
    port = free_port()
    with EdgeProxy(config(port, pki), port):
        r = curl(port, pki)
        assert r.returncode != 0 and b"Hello" not in r.stdout


def test_certificate_from_another_ca_fails_the_handshake(pki):
    port = free_port()
    with EdgeProxy(config(port, pki), port):
        r = curl(port, pki, "--cert", f"{pki}/bad.crt", "--key", f"{pki}/bad.key")
        assert r.returncode != 0 and b"Hello" not in r.stdout
        # and the server still serves good clients afterwards
        r = curl(port, pki, "--cert", f"{pki}/good.crt", "--key", f"{pki}/good.key")
        assert r.returncode == 0


def test_bad_client_ca_file_is_a_config_error(tmp_path):
    cfg = tmp_path / "c.ini"
    cfg.write_text(f"[entrypoint w]\nlisten = :1\ntls = on\n[tls]\nclient_ca = {tmp_path}/none.pem\n")
    r = run_cli("check", "-c", str(cfg))
    assert r.returncode == 1 and f"{cfg}:4: client_ca" in r.stderr
