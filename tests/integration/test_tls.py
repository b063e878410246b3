"""TLS termination ([entrypoint] tls = on, [tls], [cert NAME]) over real sockets,
black-box: Python's ssl module, curl and `openssl s_client` as clients, and test
certificates made at test time with the openssl CLI (a private root CA, an
intermediate, EC P-256 and RSA-2048 leaves, SAN lists, a wildcard).

Covered: protocol versions and suites (server preference, ChaCha20 for clients that
ask first), the certificate chain, SNI choice (exact, wildcard, EC vs RSA, default
certificate, the generated self-signed default in state_dir), key formats, ALPN,
session resumption, HTTP over TLS (keep-alive, pipelining, large bodies through the
proxy, X-Forwarded-Proto), redirect_to, handshake timeouts and garbage, `check`
errors for bad [cert] sections, reload with a replaced certificate, and a burst of
failed handshakes."""
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import wait_port, BIN, EdgeProxy, HttpConn, free_port, request, run_cli
from upstream import Upstream, pattern_sha256

MiB = 1 << 20
HELLO = "Hello from edgeproxy"


# ---- test PKI (made once per session with the openssl CLI) ---------------------

def openssl(*args, cwd=None):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert r.returncode == 0, f"openssl {' '.join(args)}:\n{r.stderr}"
    return r.stdout


def make_key(path, kind):
    """kind: ec (PKCS#8), ec-sec1 (EC PRIVATE KEY), ec-sec1-params (EC PARAMETERS block
    first, as `openssl ecparam -genkey` writes it), rsa (PKCS#8), rsa-pkcs1 (RSA PRIVATE KEY)."""
    if kind == "ec":
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    elif kind == "ec-sec1":
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path)
    elif kind == "ec-sec1-params":
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-out", path)
    elif kind == "rsa":
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path)
    elif kind == "rsa-pkcs1":
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path + ".p8")
        openssl("rsa", "-in", path + ".p8", "-traditional", "-out", path)
        os.unlink(path + ".p8")
    else:
        raise ValueError(kind)
    return path


def pem_blocks(text, label="CERTIFICATE"):
    return re.findall(rf"-----BEGIN {label}-----.*?-----END {label}-----\n?", text, re.S)


def leaf_der(path):
    """DER of the first certificate in a PEM file."""
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(pem_blocks(f.read())[0])


class Cert:
    """A [cert] section's files: chain (leaf + intermediate) and key."""

    def __init__(self, name, chain, key, leaf, sans, kind):
        self.name, self.chain, self.key, self.leaf, self.sans, self.kind = name, chain, key, leaf, sans, kind
        self.der = leaf_der(leaf)

    def section(self, name=None):
        return f"[cert {name or self.name}]\ncert_file = {self.chain}\nkey_file = {self.key}\n"


class PKI:
    def __init__(self, d):
        self.dir = str(d)
        self.serial = random.randrange(1 << 40, 1 << 60)
        # root CA (self-signed) -> intermediate CA -> leaves
        self.root_key = make_key(self.p("root.key"), "ec")
        openssl("req", "-x509", "-new", "-key", self.root_key, "-subj", "/CN=edgeproxy test root",
                "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", self.p("root.pem"))
        self.root = self.p("root.pem")
        self.inter_key = make_key(self.p("inter.key"), "ec")
        self._sign("inter", self.inter_key, "/CN=edgeproxy test intermediate", self.root, self.root_key,
                   "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n")
        self.inter = self.p("inter.crt")

    def p(self, name):
        return os.path.join(self.dir, name)

    def _sign(self, base, key, subj, ca, ca_key, ext):
        csr, extf = self.p(base + ".csr"), self.p(base + ".ext")
        openssl("req", "-new", "-key", key, "-subj", subj, "-out", csr)
        with open(extf, "w") as f:
            f.write(ext)
        self.serial += 1
        openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-set_serial", str(self.serial),
                "-days", "30", "-extfile", extf, "-out", self.p(base + ".crt"))
        return self.p(base + ".crt")

    def leaf(self, name, sans, kind="ec", key=None):
        """A leaf for DNS names `sans`, signed by the intermediate; its chain file
        holds leaf then intermediate. key: reuse an existing key file."""
        key = key or make_key(self.p(name + ".key"), kind)
        ext = ("subjectAltName=" + ",".join("DNS:" + s for s in sans) + "\nbasicConstraints=CA:FALSE\n"
               "extendedKeyUsage=serverAuth\n")
        crt = self._sign(name, key, f"/CN={sans[0]}", self.inter, self.inter_key, ext)
        chain = self.p(name + ".chain.pem")
        with open(chain, "w") as out, open(crt) as a, open(self.inter) as b:
            out.write(a.read() + b.read())
        return Cert(name, chain, key, crt, sans, kind)


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    p = PKI(tmp_path_factory.mktemp("pki"))
    p.site_ec = p.leaf("site_ec", ["site.example", "www.site.example"], "ec")
    p.site_rsa = p.leaf("site_rsa", ["site.example", "www.site.example"], "rsa-pkcs1")
    p.wild = p.leaf("wild", ["*.wild.example"], "ec")
    p.exact = p.leaf("exact", ["exact.wild.example"], "ec")
    p.dflt = p.leaf("dflt", ["default.example"], "ec")
    p.rsa_only = p.leaf("rsa_only", ["rsa-only.example"], "rsa")
    return p


# ---- configs and clients ---------------------------------------------------------

def tls_config(port, certs=(), tls="", ep="", glob="", extra=""):
    """A TLS entry point `websecure` in front of the hello backend."""
    sections = "\n".join(c if isinstance(c, str) else c.section() for c in certs)
    tls_section = f"[tls]\n{tls}\n" if tls else ""
    return f"""
[global]
state_dir = {{dir}}/state
{glob}

[entrypoint websecure]
listen = 127.0.0.1:{port}
tls = on
{ep}

[router hello]
rule = PathPrefix(`/`)
service = hello

[service hello]
type = hello

{tls_section}
{sections}
{extra}
"""


@pytest.fixture
def edge():
    """edge(config_fn) -> EdgeProxy on a fresh port; config_fn(port) gives the INI text."""
    made = []

    def make(config_fn, port=None):
        port = port or free_port()
        p = EdgeProxy(config_fn(port), port)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()
        shutil.rmtree(p.dir, ignore_errors=True)


def client_ctx(ciphers=None, alpn=None, minv=None, maxv=None, ca=None):
    """A client context; verifying against `ca` (hostname checked) when given."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if ca:
            ctx = ssl.create_default_context(cafile=ca)
        else:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if minv:
            ctx.minimum_version = minv
        if maxv:
            ctx.maximum_version = maxv
        if ciphers:
            ctx.set_ciphers(ciphers)
        if alpn:
            ctx.set_alpn_protocols(alpn)
    return ctx


def tls_connect(port, sni="site.example", ctx=None, session=None, timeout=5.0):
    """A finished handshake (SNI `sni`, none when None); raises on failure."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return (ctx or client_ctx()).wrap_socket(s, server_hostname=sni, session=session)
    except BaseException:
        s.close()
        raise


def handshake(port, sni="site.example", ctx=None, session=None, timeout=5.0):
    """Handshake, then close; returns what was negotiated."""
    with tls_connect(port, sni, ctx, session, timeout) as s:
        return {"der": s.getpeercert(binary_form=True), "cipher": s.cipher()[0], "version": s.version(),
                "alpn": s.selected_alpn_protocol(), "reused": s.session_reused, "session": s.session}


def handshake_refused(port, sni="site.example", ctx=None, timeout=5.0):
    """True when the server refuses the handshake (alert or close); a timeout is a
    test failure (the server must answer), not a refusal."""
    try:
        r = handshake(port, sni, ctx, timeout=timeout)
    except (socket.timeout, TimeoutError):
        raise AssertionError("server neither finished nor refused the handshake in time")
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    raise AssertionError(f"handshake succeeded but should have been refused: {r['version']} {r['cipher']}")


class TlsConn(HttpConn):
    """HttpConn over TLS (same framing-aware reads)."""

    def __init__(self, port, sni="site.example", ctx=None, timeout=5.0, session=None):
        super().__init__(port, timeout=timeout)
        try:
            self.sock = (ctx or client_ctx()).wrap_socket(self.sock, server_hostname=sni, session=session)
        except BaseException:
            self.sock.close()
            raise


def tls_get(port, target="/", host="site.example", sni="site.example", ctx=None, **kw):
    with TlsConn(port, sni, ctx) as c:
        c.request("GET", target, host=host, **kw)
        return c.read_response()


def s_client(port, *args, sni="site.example", timeout=10):
    """openssl s_client with stdin at EOF (handshake, then quit); returns stdout+stderr."""
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}"]
    if sni:
        cmd += ["-servername", sni]
    r = subprocess.run(cmd + list(args), input=b"", capture_output=True, timeout=timeout)
    return (r.stdout + r.stderr).decode("latin-1")


def client_hello(sni="site.example"):
    """The bytes of a real ClientHello (Python's ssl over memory BIOs)."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx().wrap_bio(inc, out, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    data = out.read()
    assert data[0] == 0x16 and len(data) > 100
    return data


def closed_within(sock, seconds):
    """Seconds until the peer closed (EOF or reset) without sending a plaintext
    HTTP answer, or None when still open after `seconds`."""
    t0 = time.time()
    sock.settimeout(seconds)
    got = b""
    try:
        while True:
            b = sock.recv(4096)
            if not b:
                break
            got += b
    except (ConnectionResetError, BrokenPipeError):
        pass
    except socket.timeout:
        return None
    assert not got.startswith(b"HTTP/"), f"a plaintext HTTP answer on the TLS port: {got[:80]!r}"
    return time.time() - t0


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


V = ssl.TLSVersion
MODERN_ECDSA = "ECDHE-ECDSA-AES128-GCM-SHA256"


# ---- 1. protocol versions --------------------------------------------------------

def test_tls12_handshake_verifies_chain_and_serves_http(pki, edge):
    p = edge(lambda port: tls_config(port, [pki.site_ec]))
    ctx = client_ctx(ca=pki.root)  # trusts only the root: the intermediate must come from the server
    with TlsConn(p.port, "site.example", ctx) as c:
        assert c.sock.version() == "TLSv1.2"
        assert c.sock.getpeercert(binary_form=True) == pki.site_ec.der
        c.request("GET", "/x", host="site.example")
        r = c.read_response()
    assert r.status == 200 and r.body.decode().startswith(f"{HELLO} @ site.example")


def test_chain_is_sent_leaf_first_with_intermediate(pki, edge):
    p = edge(lambda port: tls_config(port, [pki.site_ec]))
    out = s_client(p.port, "-showcerts", "-CAfile", pki.root, "-verify_hostname", "site.example")
    sent = pem_blocks(out)
    assert len(sent) == 2, out
    assert ssl.PEM_cert_to_DER_cert(sent[0]) == pki.site_ec.der
    assert ssl.PEM_cert_to_DER_cert(sent[1]) == leaf_der(pki.inter)
    assert "Verify return code: 0 (ok)" in out, out


def test_tls13_only_client_is_refused(pki, edge):
    p = edge(lambda port: tls_config(port, [pki.site_ec]))
    assert handshake_refused(p.port, ctx=client_ctx(minv=V.TLSv1_3))
    # and a client that offers 1.3 and 1.2 gets 1.2
    assert handshake(p.port, ctx=client_ctx())["version"] == "TLSv1.2"


def test_openssl_tls13_only_client_is_refused(pki, edge):
    p = edge(lambda port: tls_config(port, [pki.site_ec]))
    out = s_client(p.port, "-tls1_3")
    assert "Cipher is (NONE)" in out or "alert" in out.lower() or "error" in out.lower(), out
    assert "TLSv1.3" not in re.findall(r"Protocol\s*:\s*(\S+)", out), out


OLD_SUITES = "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:@SECLEVEL=0"


@pytest.mark.parametrize("min_version,client,accepted", [
    (None, V.TLSv1_1, False),       # default 1.2
    (None, V.TLSv1, False),
    ("1.2", V.TLSv1_1, False),
    ("1.1", V.TLSv1_1, True),
    ("1.1", V.TLSv1, False),
    ("1.0", V.TLSv1, True),
    ("1.0", V.TLSv1_1, True),
])
def test_min_version(pki, edge, min_version, client, accepted):
    # compatible: TLS 1.0/1.1 have only CBC suites, so refusal is about the version
    tls = "ciphers = compatible\n" + (f"min_version = {min_version}\n" if min_version else "")
    p = edge(lambda port: tls_config(port, [pki.site_ec], tls=tls))
    ctx = client_ctx(ciphers=OLD_SUITES, minv=client, maxv=client)
    if accepted:
        r = handshake(p.port, ctx=ctx)
        assert r["version"] == {V.TLSv1: "TLSv1", V.TLSv1_1: "TLSv1.1"}[client]
        assert r["der"] == pki.site_ec.der
        resp = tls_get(p.port, ctx=ctx)
        assert resp.status == 200
    else:
        assert handshake_refused(p.port, ctx=ctx)
        # a TLS 1.2 client still gets in
        assert handshake(p.port, ctx=client_ctx(maxv=V.TLSv1_2))["version"] == "TLSv1.2"


# ---- 2. cipher suites ------------------------------------------------------------

CBC_ONLY = "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:" \
           "ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES128-SHA"


def test_modern_default_refuses_cbc_only_client(pki, edge):
    p = edge(lambda port: tls_config(port, [pki.site_ec]))
    assert handshake_refused(p.port, ctx=client_ctx(ciphers=CBC_ONLY, maxv=V.TLSv1_2))
    p2 = edge(lambda port: tls_config(port, [pki.site_ec], tls="ciphers = modern"))
    assert handshake_refused(p2.port, ctx=client_ctx(ciphers=CBC_ONLY, maxv=V.TLSv1_2))


def test_compatible_accepts_cbc_only_client(pki, edge):
    p = edge(lambda port: tls_config(port, [pki.site_ec], tls="ciphers = compatible"))
    ctx = client_ctx(ciphers=CBC_ONLY, maxv=V.TLSv1_2)
    r = handshake(p.port, ctx=ctx)
    assert r["version"] == "TLSv1.2" and r["cipher"] == "ECDHE-ECDSA-AES128-SHA256", r["cipher"]
    resp = tls_get(p.port, ctx=ctx)
    assert resp.status == 200 and resp.body.startswith(HELLO.encode())
    # a client offering everything still gets the AEAD suite first
    assert handshake(p.port, ctx=client_ctx(maxv=V.TLSv1_2))["cipher"] == MODERN_ECDSA


@pytest.mark.parametrize("client_list,expected", [
    # server preference: AES-128-GCM first whatever the client's order (unless ChaCha20 leads)
    ("ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305",
     "ECDHE-ECDSA-AES128-GCM-SHA256"),
    ("ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES256-GCM-SHA384"),
    ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES128-GCM-SHA256"),
    # a client that lists ChaCha20 first gets it
    ("ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
     "ECDHE-ECDSA-CHACHA20-POLY1305"),
    ("ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-CHACHA20-POLY1305"),
    ("ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"),
])
def test_suite_preference_python(pki, edge, client_list, expected):
    p = edge(lambda port: tls_config(port, [pki.site_ec]))
    ctx = client_ctx(ciphers=client_list, maxv=V.TLSv1_2)
    assert handshake(p.port, ctx=ctx)["cipher"] == expected
    assert tls_get(p.port, ctx=ctx).status == 200


@pytest.mark.parametrize("client_list,expected", [
    ("ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256",
     "ECDHE-ECDSA-AES128-GCM-SHA256"),
    ("ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"),
])
def test_suite_preference_openssl(pki, edge, client_list, expected):
    p = edge(lambda port: tls_config(port, [pki.site_ec]))
    out = s_client(p.port, "-tls1_2", "-cipher", client_list)
    assert f"Cipher is {expected}" in out, out


def test_rsa_certificate_suites_and_chacha(pki, edge):
    p = edge(lambda port: tls_config(port, [pki.rsa_only]))
    r = handshake(p.port, "rsa-only.example", client_ctx(maxv=V.TLSv1_2))
    assert r["der"] == pki.rsa_only.der and r["cipher"] == "ECDHE-RSA-AES128-GCM-SHA256"
    ctx = client_ctx(ciphers="ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256", maxv=V.TLSv1_2)
    assert handshake(p.port, "rsa-only.example", ctx)["cipher"] == "ECDHE-RSA-CHACHA20-POLY1305"
    assert tls_get(p.port, host="rsa-only.example", sni="rsa-only.example", ctx=ctx).status == 200


# ---- 3. certificates: key formats, SNI, EC/RSA, defaults ----------------------------

@pytest.mark.parametrize("kind", ["ec", "ec-sec1", "ec-sec1-params", "rsa", "rsa-pkcs1"])
def test_key_formats(pki, edge, kind):
    cert = pki.leaf("fmt-" + kind, [f"{kind}.fmt.example"], kind)
    with open(cert.key) as f:
        label = re.search(r"-----BEGIN ([A-Z ]+)-----", f.read()).group(1)
    assert label == {"ec": "PRIVATE KEY", "ec-sec1": "EC PRIVATE KEY", "ec-sec1-params": "EC PARAMETERS",
                     "rsa": "PRIVATE KEY", "rsa-pkcs1": "RSA PRIVATE KEY"}[kind]
    p = edge(lambda port: tls_config(port, [cert]))
    ctx = client_ctx(ca=pki.root)
    r = handshake(p.port, f"{kind}.fmt.example", ctx)
    assert r["der"] == cert.der
    assert ("ECDSA" in r["cipher"]) == kind.startswith("ec"), r["cipher"]
    assert tls_get(p.port, host=f"{kind}.fmt.example", sni=f"{kind}.fmt.example", ctx=ctx).status == 200


@pytest.mark.parametrize("order", ["wild-first", "exact-first"])
def test_sni_picks_certificate(pki, edge, order):
    certs = [pki.site_ec, pki.wild, pki.exact, pki.dflt]
    if order == "exact-first":
        certs = [pki.dflt, pki.exact, pki.wild, pki.site_ec]
    p = edge(lambda port: tls_config(port, certs, tls="default_cert = dflt"))
    cases = {
        "site.example": pki.site_ec,
        "www.site.example": pki.site_ec,      # second SAN
        "SITE.Example": pki.site_ec,          # DNS names ignore case
        "a.wild.example": pki.wild,           # wildcard: one label
        "zz-9.wild.example": pki.wild,
        "exact.wild.example": pki.exact,      # exact beats wildcard
        "a.b.wild.example": pki.dflt,         # a wildcard covers one label only
        "wild.example": pki.dflt,             # ...and not the bare parent
        "unknown.example": pki.dflt,          # unknown name -> default_cert
        "default.example": pki.dflt,
        None: pki.dflt,                       # no SNI -> default_cert
    }
    got = {sni: handshake(p.port, sni)["der"] for sni in cases}
    names = {c.der: c.name for c in certs}
    wrong = {sni: names.get(got[sni], "?") for sni, want in cases.items() if got[sni] != want.der}
    assert not wrong, f"wrong certificate for: {wrong}"
    # hostname verification passes for the names that a certificate covers
    for sni in ("www.site.example", "a.wild.example", "exact.wild.example"):
        assert handshake(p.port, sni, client_ctx(ca=pki.root))["version"] == "TLSv1.2"


@pytest.mark.parametrize("order", ["ec-first", "rsa-first"])
def test_ec_and_rsa_certificates_for_one_name(pki, edge, order):
    certs = [pki.site_ec, pki.site_rsa] if order == "ec-first" else [pki.site_rsa, pki.site_ec]
    p = edge(lambda port: tls_config(port, certs))
    # an ECDSA-capable client gets the EC certificate
    r = handshake(p.port, "site.example", client_ctx(maxv=V.TLSv1_2))
    assert r["der"] == pki.site_ec.der and r["cipher"] == MODERN_ECDSA
    r = handshake(p.port, "site.example", client_ctx(ciphers="ECDHE-ECDSA-AES128-GCM-SHA256", maxv=V.TLSv1_2))
    assert r["der"] == pki.site_ec.der
    # an RSA-only client gets the RSA certificate
    rsa_ctx = client_ctx(ciphers="ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384", maxv=V.TLSv1_2)
    r = handshake(p.port, "site.example", rsa_ctx)
    assert r["der"] == pki.site_rsa.der and r["cipher"] == "ECDHE-RSA-AES128-GCM-SHA256"
    # the same with openssl s_client
    out = s_client(p.port, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256", "-CAfile", pki.root,
                   "-verify_hostname", "site.example")
    assert "Cipher is ECDHE-RSA-AES128-GCM-SHA256" in out and "Verify return code: 0 (ok)" in out, out
    assert tls_get(p.port, ctx=rsa_ctx).status == 200


def read_default(state):
    with open(os.path.join(state, "default.crt"), "rb") as f:
        crt = f.read()
    with open(os.path.join(state, "default.key"), "rb") as f:
        key = f.read()
    return crt, key


def test_generated_default_certificate_is_kept_in_state_dir(tmp_path, edge):
    state = str(tmp_path / "state")
    cfg = lambda port: tls_config(port).replace("{dir}/state", state)
    p = edge(cfg)
    r = handshake(p.port, None)  # no SNI
    crt, key = read_default(state)
    assert r["der"] == ssl.PEM_cert_to_DER_cert(pem_blocks(crt.decode())[0])
    assert stat.S_IMODE(os.stat(os.path.join(state, "default.key")).st_mode) == 0o600
    text = openssl("x509", "-in", os.path.join(state, "default.crt"), "-noout", "-text")
    assert "id-ecPublicKey" in text and ("prime256v1" in text or "P-256" in text), text
    assert re.search(r"Signature Algorithm: ecdsa-with-SHA\d+", text), text
    # the key really belongs to the certificate
    assert openssl("pkey", "-in", os.path.join(state, "default.key"), "-pubout") == \
        openssl("x509", "-in", os.path.join(state, "default.crt"), "-noout", "-pubkey")
    # an unknown name gets it too, and it works for HTTP
    assert handshake(p.port, "nobody.example")["der"] == r["der"]
    assert tls_get(p.port, host="nobody.example", sni=None).status == 200
    serial = openssl("x509", "-in", os.path.join(state, "default.crt"), "-noout", "-serial")
    assert p.stop() == 0

    # next start: the same certificate, not a new one
    p2 = edge(cfg)
    assert handshake(p2.port, None)["der"] == r["der"]
    assert read_default(state) == (crt, key)
    assert openssl("x509", "-in", os.path.join(state, "default.crt"), "-noout", "-serial") == serial


def test_state_dir_is_created_0700(tmp_path, edge):
    state = str(tmp_path / "newstate")
    p = edge(lambda port: tls_config(port).replace("{dir}/state", state))
    handshake(p.port, None)
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700


def test_unknown_name_without_default_cert_gets_generated_one(pki, edge):
    p = edge(lambda port: tls_config(port, [pki.site_ec, pki.dflt]))
    state = os.path.join(p.dir, "state")
    generated = ssl.PEM_cert_to_DER_cert(pem_blocks(read_default(state)[0].decode())[0])
    assert generated not in (pki.site_ec.der, pki.dflt.der)
    assert handshake(p.port, "unknown.example")["der"] == generated
    assert handshake(p.port, None)["der"] == generated
    assert handshake(p.port, "site.example")["der"] == pki.site_ec.der


# ---- 4. ALPN ----------------------------------------------------------------------

def test_alpn_curl_gets_http11(pki, edge):
    p = edge(lambda port: tls_config(port, [pki.site_ec]))
    for extra in ([], ["--http2"], ["--http1.1"]):
        r = subprocess.run(["curl", "-sv", "--max-time", "10", "--cacert", pki.root, "--resolve",
                            f"site.example:{p.port}:127.0.0.1", *extra, f"https://site.example:{p.port}/c"],
                           capture_output=True, timeout=20)
        err = r.stderr.decode("latin-1")
        assert r.returncode == 0, err
        assert "ALPN: server accepted http/1.1" in err, err
        assert "< HTTP/1.1 200" in err, err
        assert r.stdout.decode().startswith(f"{HELLO} @ site.example"), r.stdout


def test_alpn_python(pki, edge):
    p = edge(lambda port: tls_config(port, [pki.site_ec]))
    assert handshake(p.port, ctx=client_ctx(alpn=["h2", "http/1.1"]))["alpn"] == "http/1.1"
    assert handshake(p.port, ctx=client_ctx(alpn=["http/1.1"]))["alpn"] == "http/1.1"
    assert handshake(p.port, ctx=client_ctx())["alpn"] is None
    # an h2-only client never gets h2 (no ALPN answer, or a refused handshake)
    try:
        r = handshake(p.port, ctx=client_ctx(alpn=["h2"]))
    except ssl.SSLError:
        r = None
    assert r is None or r["alpn"] != "h2"


def test_alpn_openssl_h2_only(pki, edge):
    p = edge(lambda port: tls_config(port, [pki.site_ec]))
    out = s_client(p.port, "-alpn", "h2")
    assert "ALPN protocol: h2" not in out, out
    out = s_client(p.port, "-alpn", "h2,http/1.1")
    assert "ALPN protocol: http/1.1" in out, out


# ---- 5. session resumption ----------------------------------------------------------

def test_session_resumption_python(pki, edge):
    p = edge(lambda port: tls_config(port, [pki.site_ec]))
    ctx = client_ctx(maxv=V.TLSv1_2)
    with TlsConn(p.port, ctx=ctx) as c:
        c.request("GET", "/one", host="site.example")
        assert c.read_response().status == 200
        assert not c.sock.session_reused
        sess = c.sock.session
    assert sess is not None and sess.id
    with TlsConn(p.port, ctx=ctx, session=sess) as c:
        assert c.sock.session_reused, "the server did not resume the session"
        assert c.sock.cipher()[0] == MODERN_ECDSA
        c.request("GET", "/two", host="site.example")
        assert c.read_response().status == 200
    # resumed again (the session stays in the cache)
    assert handshake(p.port, ctx=ctx, session=sess)["reused"]


def test_session_resumption_openssl(pki, edge, tmp_path):
    p = edge(lambda port: tls_config(port, [pki.site_ec]))
    sess = str(tmp_path / "sess.pem")
    first = s_client(p.port, "-tls1_2", "-sess_out", sess)
    assert "New, TLSv1.2" in first, first
    again = s_client(p.port, "-tls1_2", "-sess_in", sess)
    assert "Reused, TLSv1.2" in again, again


def test_session_cache_0_disables_resumption(pki, edge, tmp_path):
    p = edge(lambda port: tls_config(port, [pki.site_ec], tls="session_cache = 0"))
    ctx = client_ctx(maxv=V.TLSv1_2)
    first = handshake(p.port, ctx=ctx)
    second = handshake(p.port, ctx=ctx, session=first["session"])
    assert not second["reused"]
    sess = str(tmp_path / "sess.pem")
    s_client(p.port, "-tls1_2", "-sess_out", sess)
    out = s_client(p.port, "-tls1_2", "-sess_in", sess)
    assert "New, TLSv1.2" in out and "Reused" not in out, out


# ---- 6. HTTP over TLS ----------------------------------------------------------------

def test_keep_alive_many_requests_on_one_connection(pki, edge):
    p = edge(lambda port: tls_config(port, [pki.site_ec]))
    with TlsConn(p.port) as c:
        for i in range(30):
            c.request("GET", f"/r{i}", host=f"h{i}.site.example")
            r = c.read_response()
            assert r.status == 200 and r.body.decode().startswith(f"{HELLO} @ h{i}.site.example"), (i, r)
        c.request("GET", "/health", host="site.example", headers=["Connection: close"])
        r = c.read_response()
        assert r.status == 200 and r.body.strip() == b"OK"
        assert c.at_eof(3.0), "the server kept the connection after Connection: close"


def test_pipelined_requests_over_tls(pki, edge):
    p = edge(lambda port: tls_config(port, [pki.site_ec]))
    n = 20
    with TlsConn(p.port) as c:
        c.send(b"".join(f"GET /p{i} HTTP/1.1\r\nHost: p{i}.example\r\n\r\n".encode() for i in range(n)))
        for i in range(n):
            r = c.read_response()
            assert r.status == 200 and r.body.decode().startswith(f"{HELLO} @ p{i}.example"), (i, r)
        # the connection is still usable afterwards
        c.request("GET", "/after", host="after.example")
        assert c.read_response().body.decode().startswith(f"{HELLO} @ after.example")


def test_request_head_split_across_tls_records(pki, edge):
    p = edge(lambda port: tls_config(port, [pki.site_ec]))
    with TlsConn(p.port) as c:
        for piece in (b"GET /sp", b"lit HTTP/1.1\r\nHo", b"st: split.example\r", b"\n\r\n"):
            c.send(piece)
            time.sleep(0.05)
        r = c.read_response()
        assert r.status == 200 and r.body.decode().startswith(f"{HELLO} @ split.example")


@pytest.fixture
def upstream():
    u = Upstream("tlsup")
    yield u
    u.stop()
    shutil.rmtree(u.dir, ignore_errors=True)


def proxy_config(pki, up, web_port):
    """websecure (TLS) and web (plain) both routed to the upstream."""
    def cfg(port):
        return f"""
[global]
state_dir = {{dir}}/state

[entrypoint websecure]
listen = 127.0.0.1:{port}
tls = on

[entrypoint web]
listen = 127.0.0.1:{web_port}

[router app]
rule = PathPrefix(`/`)
service = app

[service app]
server = {up.url}

{pki.site_ec.section()}
"""
    return cfg


def test_large_response_through_proxy_over_tls(pki, edge, upstream):
    p = edge(proxy_config(pki, upstream, free_port()))
    size = 10 * MiB
    with TlsConn(p.port, timeout=20) as c:
        c.request("GET", f"/big?size={size}", host="site.example")
        r = c.read_head()
        assert r.status == 200 and r.get("content-length") == str(size), r
        h = hashlib.sha256()
        got = 0
        for piece in c.iter_body(r):
            h.update(piece)
            got += len(piece)
        assert got == size and h.hexdigest() == pattern_sha256(size)
        # the same connection serves the next request
        c.request("GET", "/identify", host="site.example")
        r = c.read_response()
        assert r.status == 200 and r.body == b"tlsup"


def test_large_chunked_response_through_proxy_over_tls(pki, edge, upstream):
    p = edge(proxy_config(pki, upstream, free_port()))
    n, size = 64, 32768
    with TlsConn(p.port, timeout=20) as c:
        c.request("GET", f"/chunked?n={n}&size={size}", host="site.example")
        r = c.read_response()
        assert r.status == 200 and len(r.body) == n * size
        assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(n * size)


def test_large_upload_through_proxy_over_tls(pki, edge, upstream):
    p = edge(proxy_config(pki, upstream, free_port()))
    body = os.urandom(4 * MiB)
    with TlsConn(p.port, timeout=20) as c:
        c.request("POST", "/echo", host="site.example", body=body)
        r = c.read_response()
        doc = json.loads(r.body)
        assert r.status == 200 and doc["body_len"] == len(body)
        assert doc["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_x_forwarded_proto_https_reaches_upstream(pki, edge, upstream):
    web = free_port()
    p = edge(proxy_config(pki, upstream, web))
    # a client-sent X-Forwarded-Proto (untrusted) is replaced
    r = tls_get(p.port, "/echo", headers=["X-Forwarded-Proto: http"])
    assert r.status == 200
    req = upstream.wait_requests(1)[0]
    assert req.all("x-forwarded-proto") == ["https"], req.headers
    assert req.all("x-forwarded-port") == [str(p.port)], req.headers
    assert req.all("x-forwarded-host") == ["site.example"], req.headers
    # and the plain entry point of the same process says http
    st, _, _ = request(web, path="/echo", host="site.example")
    assert st == 200
    req = upstream.wait_requests(2)[1]
    assert req.all("x-forwarded-proto") == ["http"], req.headers


# ---- 7. redirect_to ---------------------------------------------------------------

def redirect_config(pki, web_port):
    def cfg(port):
        return tls_config(port, [pki.site_ec], extra=f"""
[entrypoint web]
listen = 127.0.0.1:{web_port}
redirect_to = websecure
""")
    return cfg


@pytest.mark.parametrize("method,target,host,location", [
    ("GET", "/a/b?x=1&y=%20z", "site.example:{web}", "https://site.example:{tls}/a/b?x=1&y=%20z"),
    ("GET", "/", "site.example", "https://site.example:{tls}/"),
    ("POST", "/form", "Site.Example:{web}", "https://Site.Example:{tls}/form"),
    ("HEAD", "/x?q", "site.example", "https://site.example:{tls}/x?q"),
    ("GET", "/.well-known/other", "site.example", "https://site.example:{tls}/.well-known/other"),
])
def test_redirect_to_tls_entrypoint(pki, edge, method, target, host, location):
    web = free_port()
    p = edge(redirect_config(pki, web))
    with HttpConn(web) as c:
        c.request(method, target, host=host.format(web=web))
        r = c.read_response(method)
    assert r.status == 308, r
    assert r.get("location") == location.format(tls=p.port)
    # and the target answers over TLS
    assert tls_get(p.port, target if method == "GET" else "/").status == 200


def test_acme_challenge_is_not_redirected(pki, edge):
    web = free_port()
    edge(redirect_config(pki, web))
    assert wait_port(web)  # the harness waited for the TLS port only
    st, hdrs, body = request(web, path="/.well-known/acme-challenge/tok123", host="site.example")
    assert st == 200 and "location" not in hdrs, (st, hdrs)
    assert body.decode().startswith(f"{HELLO} @ site.example")


# ---- 8. handshake timeouts and garbage --------------------------------------------

def test_silent_client_is_closed_after_header_timeout(pki, edge):
    p = edge(lambda port: tls_config(port, [pki.site_ec], ep="header_timeout = 1s"))
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        t = closed_within(s, 4.0)
    assert t is not None, "a connection that sent nothing was still open after 4s (header_timeout = 1s)"
    assert 0.7 <= t <= 3.0, t


@pytest.mark.parametrize("how", ["half-hello", "record-header-only", "hello-minus-one-byte"])
def test_partial_client_hello_is_closed_after_header_timeout(pki, edge, how):
    p = edge(lambda port: tls_config(port, [pki.site_ec], ep="header_timeout = 1s"))
    hello = client_hello()
    part = {"half-hello": hello[:len(hello) // 2], "record-header-only": hello[:5],
            "hello-minus-one-byte": hello[:-1]}[how]
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        s.sendall(part)
        # meanwhile other clients are served at once
        t0 = time.time()
        assert tls_get(p.port).status == 200
        assert time.time() - t0 < 0.5
        t = closed_within(s, 4.0)
    assert t is not None, f"a stalled handshake ({how}) was still open after 4s (header_timeout = 1s)"
    assert t <= 2.5, t


def test_trickled_handshake_does_not_extend_header_timeout(pki, edge):
    p = edge(lambda port: tls_config(port, [pki.site_ec], ep="header_timeout = 1s"))
    hello = client_hello()
    t0 = time.time()
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        try:
            for b in hello[:-1]:
                s.send(bytes([b]))
                time.sleep(0.02)
                if time.time() - t0 > 4:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        closed = closed_within(s, max(0.1, 4.5 - (time.time() - t0)))
    assert closed is not None, "a trickled ClientHello kept the connection open past 4s"
    assert time.time() - t0 < 3.0, time.time() - t0


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: site.example\r\n\r\n",
    b"\x16\x03\x01\x00\x10" + b"\xff" * 16,             # a handshake record with a nonsense message
    b"\x17\x03\x03\x00\x20" + b"\x00" * 32,             # application data before any handshake
    b"\x16\x03\x01\xff\xff" + b"A" * 32,                 # a record longer than TLS allows
    b"\x80\x2e\x01\x00\x02" + b"\x00" * 44,             # an SSLv2-style hello
])
def test_garbage_instead_of_client_hello(pki, edge, garbage):
    p = edge(lambda port: tls_config(port, [pki.site_ec], ep="header_timeout = 10s"))
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        s.sendall(garbage)
        t = closed_within(s, 3.0)
    assert t is not None, f"connection still open 3s after garbage {garbage[:16]!r} (header_timeout = 10s)"
    assert p.proc.poll() is None
    assert tls_get(p.port).status == 200


def test_burst_of_failed_handshakes(pki, edge):
    p = edge(lambda port: tls_config(port, [pki.site_ec], ep="header_timeout = 2s"))
    assert tls_get(p.port).status == 200
    base_fds = open_fds(p.proc.pid)
    hello = client_hello()
    rnd = random.Random(1234)
    payloads = []
    for i in range(200):
        k = i % 4
        if k == 0:
            data = os.urandom(rnd.randrange(1, 4096))
        elif k == 1:  # complete handshake records full of noise
            n = rnd.randrange(4, 2000)
            data = b"\x16\x03\x01" + n.to_bytes(2, "big") + os.urandom(n)
        elif k == 2:  # a real ClientHello with flipped bytes
            b = bytearray(hello)
            for _ in range(8):
                b[rnd.randrange(5, len(b))] ^= 1 << rnd.randrange(8)
            data = bytes(b)
        else:  # a ClientHello cut short, then the client goes away
            data = hello[:rnd.randrange(1, len(hello))]
        payloads.append(data)

    def one(data):
        try:
            with socket.create_connection(("127.0.0.1", p.port), timeout=3) as s:
                s.sendall(data)
                s.settimeout(0.5)
                try:
                    s.recv(4096)
                except (socket.timeout, OSError):
                    pass
        except OSError:
            pass

    with ThreadPoolExecutor(40) as ex:
        list(ex.map(one, payloads))
    assert p.proc.poll() is None, "edgeproxy died:\n" + p.output()
    ctx = client_ctx(ca=pki.root)
    for _ in range(5):
        assert tls_get(p.port, ctx=ctx).status == 200
    deadline = time.time() + 5
    while time.time() < deadline and open_fds(p.proc.pid) > base_fds + 2:
        time.sleep(0.1)
    assert open_fds(p.proc.pid) <= base_fds + 2, (base_fds, open_fds(p.proc.pid))


# ---- 9. check and run with bad [cert] sections --------------------------------------

def bad_cert_cases(pki, d):
    garbage = os.path.join(d, "garbage.pem")
    with open(garbage, "w") as f:
        f.write("this is not PEM\n")
    empty = os.path.join(d, "empty.pem")
    open(empty, "w").close()
    truncated = os.path.join(d, "truncated.pem")
    with open(pki.site_ec.chain) as f:
        text = f.read()
    with open(truncated, "w") as f:
        f.write(text[:len(text) // 4])
    return {
        "missing-cert": (os.path.join(d, "nope.pem"), pki.site_ec.key),
        "missing-key": (pki.site_ec.chain, os.path.join(d, "nope.key")),
        "key-mismatch": (pki.site_ec.chain, pki.dflt.key),
        "rsa-key-for-ec-cert": (pki.site_ec.chain, pki.site_rsa.key),
        "garbage-cert": (garbage, pki.site_ec.key),
        "garbage-key": (pki.site_ec.chain, garbage),
        "empty-cert": (empty, pki.site_ec.key),
        "key-as-cert": (pki.site_ec.key, pki.site_ec.key),
        "cert-as-key": (pki.site_ec.chain, pki.site_ec.chain),
        "truncated-cert": (truncated, pki.site_ec.key),
    }


BAD_CASES = ["missing-cert", "missing-key", "key-mismatch", "rsa-key-for-ec-cert", "garbage-cert",
             "garbage-key", "empty-cert", "key-as-cert", "cert-as-key", "truncated-cert"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_check_reports_bad_cert(pki, tmp_path, case):
    cert_file, key_file = bad_cert_cases(pki, str(tmp_path))[case]
    port = free_port()
    text = tls_config(port, [pki.dflt, f"[cert broken]\ncert_file = {cert_file}\nkey_file = {key_file}\n"])
    text = text.replace("{dir}", str(tmp_path))
    cfg = tmp_path / "bad.ini"
    cfg.write_text(text)
    lines = text.split("\n")
    sect = lines.index("[cert broken]") + 1
    allowed = {sect, sect + 1, sect + 2}  # the section, its cert_file or its key_file line
    r = run_cli("check", "-c", str(cfg))
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    errs = re.findall(rf"^{re.escape(str(cfg))}:(\d+): (.*)$", out, re.M)
    assert errs, f"no FILE:LINE: message in:\n{out}"
    assert all(int(n) in allowed for n, _ in errs), (allowed, out)
    assert any("broken" in msg or os.path.basename(cert_file) in msg or os.path.basename(key_file) in msg
               for _, msg in errs), out

    # run refuses the same file, exit 1, and never listens
    proc = subprocess.run([BIN, "run", "-c", str(cfg)],
                          capture_output=True, text=True, timeout=10)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(rf"{re.escape(str(cfg))}:\d+: ", proc.stdout + proc.stderr), proc.stderr


def test_check_reports_dangling_default_cert(pki, tmp_path):
    cfg = tmp_path / "bad.ini"
    text = tls_config(free_port(), [pki.site_ec], tls="default_cert = nosuch").replace("{dir}", str(tmp_path))
    cfg.write_text(text)
    r = run_cli("check", "-c", str(cfg))
    line = text.split("\n").index("[tls]") + 1
    assert r.returncode == 1
    assert re.search(rf"^{re.escape(str(cfg))}:({line}|{line + 1}): .*nosuch", r.stdout + r.stderr, re.M), \
        r.stdout + r.stderr


def test_check_accepts_good_tls_config(pki, tmp_path):
    cfg = tmp_path / "good.ini"
    cfg.write_text(tls_config(free_port(), [pki.site_ec, pki.site_rsa, pki.wild],
                              tls="min_version = 1.1\nciphers = compatible\ndefault_cert = wild\n"
                                  "session_cache = 100").replace("{dir}", str(tmp_path)))
    r = run_cli("check", "-c", str(cfg))
    assert r.returncode == 0, r.stdout + r.stderr


# ---- 10. reload ------------------------------------------------------------------

def replace_file(src, dst):
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def wait_for_cert(port, sni, der, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if handshake(port, sni)["der"] == der:
                return True
        except (ssl.SSLError, OSError):
            pass
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("new_kind", ["ec", "rsa"])
def test_reload_with_replaced_certificate(pki, edge, tmp_path, new_kind):
    live = pki.leaf(f"live-{new_kind}", ["live.example"], "ec")
    new = pki.leaf(f"live2-{new_kind}", ["live.example"], new_kind)
    # the config points at files we will overwrite
    crt, key = str(tmp_path / "live.pem"), str(tmp_path / "live.key")
    shutil.copyfile(live.chain, crt)
    shutil.copyfile(live.key, key)
    section = f"[cert live]\ncert_file = {crt}\nkey_file = {key}\n"
    p = edge(lambda port: tls_config(port, [section]))
    assert handshake(p.port, "live.example")["der"] == live.der

    old = TlsConn(p.port, "live.example")
    try:
        old.request("GET", "/before", host="live.example")
        assert old.read_response().status == 200
        replace_file(new.key, key)
        replace_file(new.chain, crt)
        p.signal(signal.SIGHUP)
        assert wait_for_cert(p.port, "live.example", new.der), \
            "new connections still get the old certificate after SIGHUP:\n" + p.output()
        r = handshake(p.port, "live.example", client_ctx(ca=pki.root))
        assert r["der"] == new.der and (("ECDSA" in r["cipher"]) == (new_kind == "ec"))
        # the connection established before the reload keeps working
        for i in range(3):
            old.request("GET", f"/after{i}", host="live.example")
            r = old.read_response()
            assert r.status == 200 and r.body.decode().startswith(f"{HELLO} @ live.example"), r
        assert old.sock.getpeercert(binary_form=True) == live.der
    finally:
        old.close()
    assert p.proc.poll() is None


def test_reload_with_broken_certificate_keeps_serving_the_old_one(pki, edge, tmp_path):
    crt, key = str(tmp_path / "live.pem"), str(tmp_path / "live.key")
    shutil.copyfile(pki.site_ec.chain, crt)
    shutil.copyfile(pki.site_ec.key, key)
    section = f"[cert live]\ncert_file = {crt}\nkey_file = {key}\n"
    p = edge(lambda port: tls_config(port, [section]))
    assert handshake(p.port)["der"] == pki.site_ec.der
    replace_file(pki.dflt.key, key)  # no longer matches the certificate
    p.signal(signal.SIGHUP)
    deadline = time.time() + 5
    while time.time() < deadline and not re.search(r"edgeproxy\.ini:\d+: .*live", p.output()):
        time.sleep(0.05)
    assert p.proc.poll() is None
    assert handshake(p.port, ctx=client_ctx(ca=pki.root))["der"] == pki.site_ec.der
    assert tls_get(p.port).status == 200
    assert re.search(r"edgeproxy\.ini:\d+: .*live", p.output()), p.output()


def test_idle_tls_connections_give_back_record_buffers(edge):
    """An engine between records lends its 25 KiB of record buffers back: idle
    keep-alive TLS connections cost the engine context (~4 KiB), and each one
    serves again after idling (buffers taken again, records intact), including a
    pipelined pair and a body larger than one record."""
    from harness import rss_kib
    p = edge(lambda port: tls_config(port))
    n = 300
    conns = []
    try:
        for _ in range(4):  # warm the allocator
            tls_get(p.port)
        before = rss_kib(p.proc.pid)
        for _ in range(n):
            c = TlsConn(p.port)
            c.request("GET", "/", host="site.example")
            assert c.read_response().status == 200
            conns.append(c)
        time.sleep(0.3)
        per_conn = (rss_kib(p.proc.pid) - before) / n
        if not os.environ.get("EDGEPROXY_SANITIZED"):
            # 16.7 KiB input + 8.3 KiB output buffer each if they were kept
            assert per_conn < 10, f"{per_conn:.1f} KiB per idle TLS connection"
        for i, c in enumerate(conns):
            if i % 3 == 0:
                c.send(b"GET /a HTTP/1.1\r\nHost: site.example\r\n\r\n"
                       b"GET /b HTTP/1.1\r\nHost: site.example\r\n\r\n")
                assert c.read_response().status == 200
                assert c.read_response().status == 200
            else:
                c.request("POST", "/", host="site.example", body=os.urandom(40000))
                assert c.read_response().status == 200
    finally:
        for c in conns:
            c.close()
