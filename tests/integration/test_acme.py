"""ACME (RFC 8555) against Pebble, the Let's Encrypt test CA, on loopback.

Pebble validates for real: its VA resolves every name to 127.0.0.1 through
pebble-challtestsrv's DNS (which also holds the dns-01 TXT records our hook sets) and
connects to the HTTP-01 / TLS-ALPN-01 ports we answer on. PEBBLE_VA_NOSLEEP=1 keeps
it fast and PEBBLE_WFE_NONCEREJECT=50 makes it reject half of the good nonces, so
every order goes through badNonce retries.

Most tests drive src/acme.c through tests/acme_driver.c (the ACME modules on their
own event loop, answering the challenges themselves), so they run before the proxy
wires ACME in. The end-to-end tests through edgeproxy itself run once `edgeproxy
check` accepts [acme] sections, and are skipped with that reason until then."""
import glob
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

import pytest

from harness import BIN, EdgeProxy, free_port, request, run_cli, wait_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
DRIVER = os.environ.get("ACME_DRIVER") or os.path.join(ROOT, "build/x86_64/acme_driver")

pytestmark = pytest.mark.skipif(shutil.which("pebble") is None or
                                shutil.which("pebble-challtestsrv") is None,
                                reason="Pebble is not installed (Debian package pebble)")


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def make_test_ca(d):
    """A throwaway CA and a certificate for localhost/127.0.0.1 for Pebble's own
    HTTPS (the Debian package ships no test certificates)."""
    ca_key, ca, key, csr, crt = (os.path.join(d, n) for n in
                                 ("ca.key", "ca.pem", "localhost.key", "localhost.csr",
                                  "localhost.pem"))
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
       "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=edgeproxy test ACME root",
       "-addext", "basicConstraints=critical,CA:TRUE",
       "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
                "basicConstraints=CA:FALSE\n")
    sh("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
       "-out", crt, "-days", "2", "-extfile", ext)
    return ca, crt, key


class Pebble:
    """pebble + pebble-challtestsrv on free loopback ports; stopped by their PIDs."""

    def __init__(self, d, eab=False, nonce_reject=50):
        self.dir = d
        self.ca_root, cert, key = make_test_ca(d)
        self.acme_port, self.mgmt_port = free_port(), free_port()
        self.http_port, self.tls_port = free_port(), free_port()
        self.dns_port, self.chall_mgmt_port = free_udp_tcp_port(), free_port()
        conf = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.acme_port}",
            "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
            "certificate": cert, "privateKey": key,
            "httpPort": self.http_port, "tlsPort": self.tls_port,
            "ocspResponderURL": "", "externalAccountBindingRequired": eab}}
        if eab:
            conf["pebble"]["externalAccountMACKeys"] = {
                "kid-1": "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"}
        self.conf_path = os.path.join(d, "pebble.json")
        with open(self.conf_path, "w") as f:
            json.dump(conf, f)
        self.log_path = os.path.join(d, "pebble.log")
        self.chall_log = open(os.path.join(d, "challtestsrv.log"), "w")
        self.chall = subprocess.Popen(
            ["pebble-challtestsrv", "-dns01", f"127.0.0.1:{self.dns_port}",
             "-management", f"127.0.0.1:{self.chall_mgmt_port}", "-http01", "", "-https01", "",
             "-tlsalpn01", "", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
            stdout=self.chall_log, stderr=subprocess.STDOUT)
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT=str(nonce_reject),
                   PEBBLE_AUTHZREUSE="50")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            ["pebble", "-config", self.conf_path, "-dnsserver", f"127.0.0.1:{self.dns_port}"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        if not (wait_port(self.acme_port, timeout=15) and wait_port(self.chall_mgmt_port, timeout=15)):
            self.stop()
            raise RuntimeError("pebble did not start:\n" + self.output())
        self.directory = f"https://localhost:{self.acme_port}/dir"
        self.root_pem = os.path.join(d, "pebble-root.pem")
        with open(self.root_pem, "wb") as f:
            f.write(self.mgmt_get("/roots/0"))

    def mgmt_get(self, path):
        ctx = ssl.create_default_context(cafile=self.ca_root)
        with urllib.request.urlopen(f"https://localhost:{self.mgmt_port}{path}", context=ctx,
                                    timeout=10) as r:
            return r.read()

    def output(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def orders_added(self):
        return self.output().count("Added order")

    def stop(self):
        for p in (self.proc, self.chall):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def free_udp_tcp_port():
    """A port free for both TCP and UDP (challtestsrv's DNS listens on both)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


@pytest.fixture(scope="module")
def driver_bin():
    srcs = glob.glob(os.path.join(ROOT, "src/*.[ch]")) + [os.path.join(ROOT, "tests/acme_driver.c")]
    if not os.environ.get("ACME_DRIVER") and (
            not os.path.exists(DRIVER) or
            os.path.getmtime(DRIVER) < max(os.path.getmtime(s) for s in srcs)):
        subprocess.run(["bash", os.path.join(ROOT, "tests/build-acme-driver.sh")], check=True,
                       capture_output=True)
    return DRIVER


@pytest.fixture(scope="module")
def pebble():
    d = tempfile.mkdtemp(prefix="edgeproxy-pebble-")
    p = Pebble(d)
    yield p
    p.stop()
    shutil.rmtree(d, ignore_errors=True)


class Driver:
    """One acme_driver process; reads its log as it runs."""

    def __init__(self, binary, pebble, state, domains, *opts, http=True, tls=False, env=None,
                 ca=None):
        self.state = state
        args = [binary, "--state", state, "--name", "le", "--ca", ca or pebble.directory,
                "--ca_root", pebble.ca_root, "--email", "ops@test.example"]
        if http:
            args += ["--http-port", str(pebble.http_port)]
        if tls:
            args += ["--tls-port", str(pebble.tls_port)]
        args += list(opts) + list(domains)
        self.out_path = os.path.join(state + ".log")
        os.makedirs(os.path.dirname(self.out_path), exist_ok=True)
        self.out = open(self.out_path, "w")
        self.proc = subprocess.Popen(args, stdout=self.out, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, DRIVER_DEBUG="1", **(env or {})))

    def output(self):
        self.out.flush()
        with open(self.out_path) as f:
            return f.read()

    def wait_for(self, text, timeout=60, count=1):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.output().count(text) >= count:
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def state(tmp_path):
    return str(tmp_path / "state")


def acme_dir(state, name="le"):
    return os.path.join(state, "acme", name)


def cert_text(path):
    return sh("openssl", "x509", "-in", path, "-noout", "-text", "-serial").stdout


def serial(path):
    return sh("openssl", "x509", "-in", path, "-noout", "-serial").stdout.strip()


def assert_chains_to_pebble(pebble, crt):
    r = subprocess.run(["openssl", "verify", "-CAfile", pebble.root_pem, "-untrusted", crt, crt],
                       capture_output=True, text=True)
    assert r.returncode == 0 and ": OK" in r.stdout, r.stdout + r.stderr


def issue(driver_bin, pebble, state, domains, *opts, **kw):
    d = Driver(driver_bin, pebble, state, domains, *opts, **kw)
    try:
        assert d.wait_for("CERTIFICATE READY"), d.output() + "\n--- pebble ---\n" + pebble.output()[-3000:]
    finally:
        d.stop()
    return d


# ---- issuance with each challenge ----------------------------------------------------

def test_http01_issuance_files_and_chain(driver_bin, pebble, state):
    t0 = time.time()
    d = issue(driver_bin, pebble, state, ["test.example", "www.test.example"])
    elapsed = time.time() - t0
    out = d.output()
    assert "http-01 validated test.example" in out and "http-01 validated www.test.example" in out
    # Pebble fetched the key authorization from us, more than once (multi-perspective)
    assert out.count("-> 200") >= 2, out
    # badNonce answers were retried with the fresh nonce, not fatal
    assert "badNonce, retrying" in out, out
    ad = acme_dir(state)
    crt, key = os.path.join(ad, "test.example.crt"), os.path.join(ad, "test.example.key")
    assert_chains_to_pebble(pebble, crt)
    text = cert_text(crt)
    assert "DNS:test.example, DNS:www.test.example" in text
    assert "id-ecPublicKey" in text and "prime256v1" in text  # key_type ec256
    # keys are private, the directory too; no temp files left behind
    assert os.stat(key).st_mode & 0o777 == 0o600
    assert os.stat(os.path.join(ad, "account.key")).st_mode & 0o777 == 0o600
    assert os.stat(ad).st_mode & 0o777 == 0o700
    assert not [f for f in os.listdir(ad) if f.endswith(".tmp")]
    # the key on disk is the certificate's
    pub1 = sh("openssl", "x509", "-in", crt, "-noout", "-pubkey").stdout
    pub2 = sh("openssl", "pkey", "-in", key, "-pubout").stdout
    assert pub1 == pub2
    acct = json.load(open(os.path.join(ad, "account.json")))
    assert acct["ca"] == pebble.directory and "/my-account/" in acct["url"]
    # the log names what operators look for
    assert "certificate valid until" in out and 'issuer "Pebble Intermediate CA' in out
    assert "renewal from" in out
    print(f"\nhttp-01 order for 2 names: {elapsed:.2f}s from start to certificate")


def test_restart_reuses_stored_certificate(driver_bin, pebble, state):
    issue(driver_bin, pebble, state, ["reuse.test.example"])
    crt = os.path.join(acme_dir(state), "reuse.test.example.crt")
    before, orders = serial(crt), pebble.orders_added()
    d = Driver(driver_bin, pebble, state, ["reuse.test.example"])
    try:
        assert d.wait_for("renewal from", timeout=10), d.output()
        time.sleep(1.5)
        out = d.output()
    finally:
        d.stop()
    assert "order https://" not in out and "ordering" not in out, out
    assert pebble.orders_added() == orders
    assert serial(crt) == before


def test_renew_before_forces_new_serial(driver_bin, pebble, state):
    issue(driver_bin, pebble, state, ["renew.test.example"])
    crt = os.path.join(acme_dir(state), "renew.test.example.crt")
    first = serial(crt)
    # Pebble certifies for five years: renew_before 3000d makes it due at once
    d = issue(driver_bin, pebble, state, ["renew.test.example"], "--renew_before", "3000d")
    out = d.output()
    assert "due for renewal: ordering now" in out
    # the fresh certificate is not ordered again in a loop
    assert "renew_before is longer than" in out
    assert serial(crt) != first
    assert_chains_to_pebble(pebble, crt)
    # the account was reused (account.json), not registered again
    assert "account https://" not in out


def test_tls_alpn01_issuance(driver_bin, pebble, state):
    d = issue(driver_bin, pebble, state, ["alpn.test.example"], "--challenge", "tls-alpn-01",
              http=False, tls=True)
    out = d.output()
    assert "tls-alpn-01 handshake for 'alpn.test.example': answered" in out
    assert "tls-alpn-01 validated alpn.test.example" in out
    assert_chains_to_pebble(pebble, os.path.join(acme_dir(state), "alpn.test.example.crt"))


def test_dns01_wildcard_through_hook(driver_bin, pebble, state, tmp_path):
    hook_log = tmp_path / "hook.log"
    hook = tmp_path / "hook.py"
    hook.write_text(f"""#!/usr/bin/python3
# dns_hook for pebble-challtestsrv: add|del DOMAIN VALUE
import json, sys, urllib.request
op, domain, value = sys.argv[1:4]
with open({str(hook_log)!r}, "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
host = "_acme-challenge." + domain + "."
body = {{"host": host, "value": value}} if op == "add" else {{"host": host}}
url = "http://127.0.0.1:{pebble.chall_mgmt_port}/" + ("set-txt" if op == "add" else "clear-txt")
urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(body).encode()), timeout=5)
""")
    hook.chmod(0o755)
    d = issue(driver_bin, pebble, state, ["wild.example", "*.wild.example"], "--challenge",
              "dns-01", "--dns_hook", str(hook), http=False)
    out = d.output()
    assert "dns-01 validated wild.example" in out and "dns-01 validated *.wild.example" in out
    calls = hook_log.read_text().split("\n")
    adds = [c for c in calls if c.startswith("add wild.example ")]
    dels = [c for c in calls if c.startswith("del wild.example ")]
    assert len(adds) >= 1 and len(dels) == len(adds), calls
    # each value removed is one that was added (base64url SHA-256: 43 characters)
    assert sorted(a.split()[2] for a in adds) == sorted(x.split()[2] for x in dels)
    assert all(len(a.split()[2]) == 43 for a in adds)
    crt = os.path.join(acme_dir(state), "wild.example.crt")
    assert "DNS:wild.example, DNS:*.wild.example" in cert_text(crt)
    assert_chains_to_pebble(pebble, crt)


def test_wildcard_first_name_file(driver_bin, pebble, state, tmp_path):
    hook = tmp_path / "hook.sh"
    hook.write_text(f"""#!/bin/sh
host="_acme-challenge.$2."
case "$1" in
add) body="{{\\"host\\":\\"$host\\",\\"value\\":\\"$3\\"}}"; path=set-txt ;;
del) body="{{\\"host\\":\\"$host\\"}}"; path=clear-txt ;;
esac
exec curl -sf -X POST -d "$body" http://127.0.0.1:{pebble.chall_mgmt_port}/$path
""")
    hook.chmod(0o755)
    issue(driver_bin, pebble, state, ["*.star.example"], "--challenge", "dns-01", "--dns_hook",
          str(hook), "--key_type", "ec384", http=False)
    crt = os.path.join(acme_dir(state), "_.star.example.crt")
    text = cert_text(crt)
    assert "DNS:*.star.example" in text and "secp384r1" in text


def test_rsa2048_keys(driver_bin, pebble, state):
    issue(driver_bin, pebble, state, ["rsa.test.example"], "--key_type", "rsa2048")
    ad = acme_dir(state)
    assert "Public-Key: (2048 bit)" in cert_text(os.path.join(ad, "rsa.test.example.crt"))
    with open(os.path.join(ad, "account.key")) as f:
        assert "BEGIN RSA PRIVATE KEY" in f.read()


def test_external_account_binding(driver_bin, tmp_path):
    d = str(tmp_path / "pebble")
    os.makedirs(d)
    p = Pebble(d, eab=True, nonce_reject=0)
    try:
        state = str(tmp_path / "state")
        drv = Driver(driver_bin, p, state, ["eab.test.example"])
        try:
            assert drv.wait_for("requires external account binding", timeout=20), drv.output()
        finally:
            drv.stop()
        issue(driver_bin, p, str(tmp_path / "state2"), ["eab.test.example"], "--eab_kid", "kid-1",
              "--eab_hmac", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W")
    finally:
        p.stop()


# ---- failures: backoff, nothing deleted, clear logs -------------------------------------

def test_ca_down_backs_off_and_keeps_certificate(driver_bin, pebble, state):
    issue(driver_bin, pebble, state, ["down.test.example"])
    ad = acme_dir(state)
    files = {f: open(os.path.join(ad, f), "rb").read() for f in os.listdir(ad)}
    closed = free_port()
    d = Driver(driver_bin, pebble, state, ["down.test.example"], "--renew_before", "3000d",
               ca=f"https://localhost:{closed}/dir")
    try:
        assert d.wait_for("retrying in", timeout=15), d.output()
        time.sleep(0.5)
        assert d.proc.poll() is None  # still running, waiting to retry
    finally:
        d.stop()
    out = d.output()
    assert f"localhost:{closed}: connect: Connection refused; retrying in 1" in out, out
    assert "(attempt 1)" in out
    # every file is still there, unchanged
    assert {f: open(os.path.join(ad, f), "rb").read() for f in os.listdir(ad)} == files


def test_failed_challenge_logs_problem_and_retries(driver_bin, pebble, state):
    # nobody answers HTTP-01: Pebble marks the authorization invalid
    d = Driver(driver_bin, pebble, state, ["nobody.test.example"], http=False)
    try:
        assert d.wait_for("retrying in", timeout=30), d.output()
    finally:
        d.stop()
    out = d.output()
    assert "http-01 for nobody.test.example is invalid: urn:ietf:params:acme:error:connection" in out
    assert not os.path.exists(os.path.join(acme_dir(state), "nobody.test.example.crt"))


def test_corrupt_state_files_recovered(driver_bin, pebble, state):
    issue(driver_bin, pebble, state, ["corrupt.test.example"])
    ad = acme_dir(state)
    with open(os.path.join(ad, "corrupt.test.example.crt"), "w") as f:
        f.write("not a certificate\n")
    with open(os.path.join(ad, "account.key"), "w") as f:
        f.write("garbage\n")
    with open(os.path.join(ad, "account.json"), "w") as f:
        f.write("{broken")
    d = issue(driver_bin, pebble, state, ["corrupt.test.example"])
    out = d.output()
    assert "stored certificate unusable" in out and "ordering a new one" in out
    assert "account.key: no private key; moved to" in out
    assert glob.glob(os.path.join(ad, "account.key.broken-*"))
    assert_chains_to_pebble(pebble, os.path.join(ad, "corrupt.test.example.crt"))


def test_reload_keeps_running_order(driver_bin, pebble, state):
    # a reload (acme_sync with the same jobs) while the order runs does not restart it
    d = Driver(driver_bin, pebble, state, ["reload.test.example"])
    try:
        assert d.wait_for("ordering one", timeout=10)
        d.proc.send_signal(signal.SIGHUP)
        assert d.wait_for("CERTIFICATE READY"), d.output()
    finally:
        d.stop()
    out = d.output()
    assert out.count("order https://") == 1, out


def test_bad_configuration_reported(driver_bin, pebble, state):
    r = subprocess.run([driver_bin, "--state", state, "--ca", "http://insecure/dir",
                        "--challenge", "dns-01", "--key_type", "ec521", "--renew_before", "soon",
                        "--eab_kid", "k", "--email", "not-an-address", "a.example"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    for msg in ("ca: 'http://insecure/dir' is not an https:// URL",
                "challenge = dns-01 needs dns_hook", "key_type: 'ec521'",
                "renew_before: 'soon'", "eab_kid and eab_hmac go together",
                "email: 'not-an-address' is not an e-mail address"):
        assert msg in r.stderr, r.stderr


# ---- through edgeproxy itself (once the proxy runs acme.c) ------------------------------

def proxy_accepts_acme(tmp_path):
    p = tmp_path / "probe.ini"
    p.write_text(f"[global]\nstate_dir = {tmp_path}/probe-state\n\n[acme le]\n"
                 "ca = https://localhost:1/dir\n\n[entrypoint web]\nlisten = 127.0.0.1:1\n\n"
                 "[router r]\nrule = Host(`a.example`)\nservice = s\ntls_resolver = le\n\n"
                 "[service s]\ntype = hello\n")
    if not os.path.exists(BIN):
        return False, f"{BIN} is not built"
    r = run_cli("check", "-c", str(p))
    if r.returncode != 0:
        return False, "edgeproxy check does not accept [acme] sections yet: " + \
            (r.stdout + r.stderr).strip().splitlines()[0]
    return True, ""


def tls_cert_serial(port, name, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname=name) as t:
            return t.getpeercert()["serialNumber"]


def proxy_config(pebble, http_port, tls_port, extra_acme="", state="{dir}/state"):
    return f"""
[global]
state_dir = {state}

[entrypoint web]
listen = 127.0.0.1:{http_port}
redirect_to = websecure

[entrypoint websecure]
listen = 127.0.0.1:{tls_port}
tls = on

[acme le]
email = ops@test.example
ca = {pebble.directory}
ca_root = {pebble.ca_root}
entrypoint = web
{extra_acme}

[router app]
rule = Host(`test.example`)
service = hello
tls_resolver = le

[service hello]
type = hello
"""


def test_edgeproxy_obtains_serves_and_renews(pebble, tmp_path):
    ok, why = proxy_accepts_acme(tmp_path)
    if not ok:
        pytest.skip(why)
    tls_port = free_port()
    state = str(tmp_path / "state")  # kept across the restart below
    t0 = time.time()
    with EdgeProxy(proxy_config(pebble, pebble.http_port, tls_port, state=state),
                   port=tls_port) as ep:
        deadline, served = time.time() + 60, None
        while time.time() < deadline and served is None:
            try:
                served = tls_cert_serial(tls_port, "test.example", pebble.root_pem)
            except (ssl.SSLError, OSError):
                time.sleep(0.2)
        assert served, ep.output()
        print(f"\nedgeproxy: {time.time() - t0:.2f}s from start to serving a Pebble certificate")
        out = ep.output()
        assert "http-01 validated test.example" in out
        crt = os.path.join(state, "acme/le/test.example.crt")
        assert os.path.exists(crt)
        assert os.stat(os.path.join(state, "acme/le/test.example.key")).st_mode & 0o777 == 0o600

        # a keep-alive TLS connection stays up while the certificate is renewed
        ctx = ssl.create_default_context(cafile=pebble.root_pem)
        keep = ctx.wrap_socket(socket.create_connection(("127.0.0.1", tls_port), timeout=5),
                               server_hostname="test.example")
        keep.sendall(b"GET / HTTP/1.1\r\nHost: test.example\r\n\r\n")
        assert b"200" in keep.recv(4096)
        ep.write(proxy_config(pebble, pebble.http_port, tls_port, "renew_before = 3000d",
                              state=state))
        ep.signal(signal.SIGHUP)
        deadline, renewed = time.time() + 60, None
        while time.time() < deadline:
            s = tls_cert_serial(tls_port, "test.example", pebble.root_pem)
            if s != served:
                renewed = s
                break
            time.sleep(0.2)
        assert renewed, ep.output()
        keep.sendall(b"GET / HTTP/1.1\r\nHost: test.example\r\n\r\n")
        assert b"200" in keep.recv(4096)
        keep.close()

    # a restart serves the stored certificate at once and orders nothing
    orders = pebble.orders_added()
    with EdgeProxy(proxy_config(pebble, pebble.http_port, tls_port, "renew_before = 30d",
                                state=state), port=tls_port) as ep2:
        assert tls_cert_serial(tls_port, "test.example", pebble.root_pem) == renewed
        time.sleep(1)
        assert "renewal from" in ep2.output()
    assert pebble.orders_added() == orders


def test_edgeproxy_challenge_path_not_redirected(pebble, tmp_path):
    ok, why = proxy_accepts_acme(tmp_path)
    if not ok:
        pytest.skip(why)
    http_port, tls_port = free_port(), free_port()
    with EdgeProxy(proxy_config(pebble, http_port, tls_port), port=http_port) as ep:
        # every other path on the redirecting entry point gets 308 ...
        status, hdrs, _ = request(http_port, path="/app", host="test.example")
        assert status == 308 and hdrs["location"].startswith("https://test.example:"), ep.output()
        # ... a challenge path never does: a token the proxy does not know goes to the
        # routers (a backend may answer its own challenges)
        status, hdrs, body = request(http_port, path="/.well-known/acme-challenge/unknown",
                                     host="test.example")
        assert status == 200 and b"Hello from edgeproxy" in body, (status, body, ep.output())


def wait_served(port, name, cafile, ep, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            return tls_cert_serial(port, name, cafile)
        except (ssl.SSLError, OSError):
            time.sleep(0.2)
    raise AssertionError(f"no certificate for {name} chaining to Pebble:\n" + ep.output())


def alpn_probe(port, name):
    """'acme-tls/1' when the proxy negotiates it, None when it ignores the protocol,
    'refused' when the handshake fails (no challenge pending: expected once wired)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["acme-tls/1"])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname=name) as t:
                return t.selected_alpn_protocol()
    except (ssl.SSLError, OSError):
        return "refused"


def test_edgeproxy_tls_alpn01(pebble, tmp_path):
    ok, why = proxy_accepts_acme(tmp_path)
    if not ok:
        pytest.skip(why)
    # Pebble's VA validates TLS-ALPN-01 on its tlsPort: the proxy's TLS entry point
    conf = f"""
[global]
state_dir = {{dir}}/state

[entrypoint websecure]
listen = 127.0.0.1:{pebble.tls_port}
tls = on

[acme le]
ca = {pebble.directory}
ca_root = {pebble.ca_root}
challenge = tls-alpn-01

[router app]
rule = Host(`alpn.test.example`)
service = hello
tls_resolver = le

[service hello]
type = hello
"""
    with EdgeProxy(conf, port=pebble.tls_port) as ep:
        if alpn_probe(pebble.tls_port, "other.test.example") is None and \
                "tls-alpn-01 validated" not in ep.output():
            pytest.skip("edgeproxy's TLS policy does not answer ALPN acme-tls/1 yet "
                        "(acme_tls_alpn_cert)")
        wait_served(pebble.tls_port, "alpn.test.example", pebble.root_pem, ep)
        assert "tls-alpn-01 validated alpn.test.example" in ep.output()
        # with no challenge pending, acme-tls/1 handshakes are refused (RFC 8737 §3:
        # that protocol is for validation only)
        assert alpn_probe(pebble.tls_port, "alpn.test.example") == "refused"


def test_edgeproxy_acme_with_workers(pebble, tmp_path):
    """workers = 2: the supervisor runs each order once; the workers, which serve
    the entry points, answer http-01 and tls-alpn-01 from the shared board."""
    ok, why = proxy_accepts_acme(tmp_path)
    if not ok:
        pytest.skip(why)
    conf = f"""
[global]
state_dir = {{dir}}/state
workers = 2

[entrypoint web]
listen = 127.0.0.1:{pebble.http_port}

[entrypoint websecure]
listen = 127.0.0.1:{pebble.tls_port}
tls = on

[acme le]
ca = {pebble.directory}
ca_root = {pebble.ca_root}
entrypoint = web

[acme alpn]
ca = {pebble.directory}
ca_root = {pebble.ca_root}
challenge = tls-alpn-01

[router app]
rule = Host(`test.example`)
service = hello
tls_resolver = le

[router alpn]
rule = Host(`alpn.test.example`)
service = hello
tls_resolver = alpn

[service hello]
type = hello
"""
    with EdgeProxy(conf, port=pebble.tls_port) as ep:
        wait_served(pebble.tls_port, "test.example", pebble.root_pem, ep)
        wait_served(pebble.tls_port, "alpn.test.example", pebble.root_pem, ep)
        out = ep.output()
        assert "supervising 2 workers" in out
        # one order each, run by the supervisor (worker lines carry "worker N:")
        assert len(re.findall(r"info  acme \w+: .*http-01 validated test\.example", out)) == 1, out
        assert len(re.findall(r"info  acme \w+: .*tls-alpn-01 validated alpn\.test\.example", out)) == 1, out
        assert not re.search(r"worker \d: acme", out), out
        # the challenge certificate is gone from the board once validated
        assert alpn_probe(pebble.tls_port, "alpn.test.example") == "refused"


def test_edgeproxy_dns01_wildcard(pebble, tmp_path):
    ok, why = proxy_accepts_acme(tmp_path)
    if not ok:
        pytest.skip(why)
    hook = tmp_path / "hook.py"
    hook.write_text(f"""#!/usr/bin/python3
import json, sys, urllib.request
op, domain, value = sys.argv[1:4]
host = "_acme-challenge." + domain + "."
body = {{"host": host, "value": value}} if op == "add" else {{"host": host}}
url = "http://127.0.0.1:{pebble.chall_mgmt_port}/" + ("set-txt" if op == "add" else "clear-txt")
urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(body).encode()), timeout=5)
""")
    hook.chmod(0o755)
    tls_port = free_port()
    conf = f"""
[global]
state_dir = {{dir}}/state

[entrypoint websecure]
listen = 127.0.0.1:{tls_port}
tls = on

[acme dns]
ca = {pebble.directory}
ca_root = {pebble.ca_root}
challenge = dns-01
dns_hook = {hook}
key_type = ec384

[router app]
rule = HostRegexp(`^[a-z]+\\.wild2\\.example$`)
service = hello
tls_resolver = dns
tls_domains = *.wild2.example, wild2.example

[service hello]
type = hello
"""
    with EdgeProxy(conf, port=tls_port) as ep:
        wait_served(tls_port, "anything.wild2.example", pebble.root_pem, ep)
        assert os.path.exists(os.path.join(ep.dir, "state/acme/dns/_.wild2.example.crt"))
        assert "dns-01 validated *.wild2.example" in ep.output()
