#!/usr/bin/env python3
"""bench.py - edgeproxy side by side with nginx and HAProxy, in the same run (SPEC §5).

    tools/bench.sh [BIN]          (= python3 tools/bench.py [BIN])
    BIN defaults to build/x86_64/edgeproxy
    env: ROUNDS=3 DURATION=4 CONNS=50 IDLE_CONNS=1000 WARMUP=1
         SCENARIOS=hello,plain,64k,idle,tls   (any subset, in this order; tls =
                   tls-keepalive,tls-handshake,tls-idle, which may be named alone)
         TLS_GROUPS=X25519:P-256  ECDHE groups the handshake client offers (or P-256)
         TLS_CIPHER=ECDHE-ECDSA-AES128-GCM-SHA256  suite the handshake and idle clients offer
         KEEP=1  keep the temp dir (configs, logs) and print its path

Every server under test runs ONE worker (edgeproxy: one process; nginx:
worker_processes 1, counted as master + worker; HAProxy: nbthread 1, one process),
pinned to CPU 0 with taskset. wrk (-t1) and the upstream (one nginx, one worker,
fixed responses) share CPU 1; this driver also moves itself to CPU 1, so CPU 0 only
runs the server being measured. Each figure is the median of ROUNDS rounds of
DURATION seconds (the servers take turns within a round, the order rotating per
round), after a WARMUP-second run per server. Besides raw rates, each row gives
requests (or MiB) per CPU-second that the server process itself used: utime+stime
from /proc/PID/stat read before and after the wrk run. On a 2-core machine the load
side saturates first, so the per-CPU-second figure is the one to judge by.

Scenarios:
  hello  built-in hello backend vs nginx `return 200` vs HAProxy `http-request return`
  plain  proxied keep-alive requests, 100-byte body, wrk -cCONNS
  64k    proxied 65536-byte responses: MiB/s and MiB per CPU-second (body bytes)
  idle   fresh instances; IDLE_CONNS keep-alive client connections, one request
         each, then held idle: (RSS after - RSS before) / IDLE_CONNS
  tls    the same three proxies terminating TLS 1.2 with one ECDSA P-256 certificate
         (generated with openssl for the run), in three parts:
    tls-keepalive  proxied keep-alive requests over TLS, 100-byte body, wrk -cCONNS
                   https:// (each wrk run opens CONNS connections, so CONNS full
                   handshakes are inside every run: ~1-3% of a 4 s run's CPU)
    tls-handshake  new full handshakes, one proxied request per connection
                   (`Connection: close`, the server closes), CONNS in flight, by
                   tools/tls_handshake.c (built here with cc against Debian's
                   libssl-dev). It cannot resume: no client session cache, no
                   tickets, a fresh SSL per connection, never SSL_set_session; and
                   it counts every handshake as new or reused (SSL_session_reused),
                   a reused one is an error. wrk and h2load resume silently, so
                   neither is used here. The client's own CPU is reported next to
                   the server's: OpenSSL 3.0's client side costs ~1 ms per
                   handshake, so the load CPU can saturate before the server's does
                   (server CPU below ~90% of a core is flagged in the notes).
    tls-idle       fresh instances; IDLE_CONNS TLS connections (Python ssl), one
                   request each, then held idle: (RSS after - RSS before) / IDLE_CONNS
         TLS settings, the same in all three parts: TLS 1.2 only; suites
         ECDHE-ECDSA with AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305 in server
         preference (AES-128-GCM first); ECDHE groups X25519 then P-256; no session
         cache and no tickets anywhere. edgeproxy: [entrypoint] tls = on, [cert],
         [tls] default_cert, session_cache = 0 (BearSSL has no tickets), ciphers =
         modern. nginx: listen ssl, ssl_protocols TLSv1.2, ssl_ciphers as above,
         ssl_prefer_server_ciphers on, ssl_ecdh_curve X25519:prime256v1,
         ssl_session_cache off, ssl_session_tickets off. HAProxy: bind ssl crt
         (cert+key in one PEM), ssl-min-ver/ssl-max-ver TLSv1.2, ciphers as above,
         curves X25519:P-256, no-tls-tickets, tune.ssl.cachesize 0. What each
         server negotiates is checked with `openssl s_client -tls1_2` (OpenSSL's
         default offer, as wrk and Python send) and by the handshake client, and
         printed under the table.
A server that does not start (or does not answer a probe request correctly) is shown
as "n/a (did not start: <first log line>)" and the other rows still run.

Configs are generated into a temp dir. nginx as proxy: upstream keepalive 32,
proxy_http_version 1.1, Connection "", proxy_buffers 8 16k and no temp files (so a
64 KiB response stays in memory), keepalive_requests 1000000 towards clients and
upstream (nginx's default of 1000 would close connections mid-run). HAProxy: mode
http, option http-keep-alive, http-reuse always, nbthread 1. edgeproxy: one
[service] with `server = http://127.0.0.1:PORT` (max_idle_per_server 32 by default).
No access logs anywhere.

Caveats: the idle delta does not see memory a server reserves up front (nginx
allocates and touches its connection/event arrays for worker_connections at start;
worker_connections is sized max(4096, 2*(IDLE_CONNS+CONNS)+100) here), only the
per-connection growth. Anything else running on the machine shows up as spread
between rounds (printed per server), as steal time, and as the share of CPU 0 that
other processes took during the measured runs (both in the table header; per run,
"CPU 0 to others" and "CPU 1 busy" are printed beside each server's figures). Other
jobs also fill CPU 0 when a server leaves it idle, so that share is high whenever
the load side, not the server, is the limit.
"""
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_idle  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")
SERVER_CPU = "0"
LOAD_CPU = "1"
SMALL_BODY = b"a" * 99 + b"\n"  # 100 bytes
BIG_SIZE = 65536
NAMES = ("edgeproxy", "nginx", "haproxy")


def env_num(name, default, kind=int):
    try:
        return kind(os.environ.get(name, default))
    except ValueError:
        sys.exit(f"bench: {name} must be a number")


ROUNDS = env_num("ROUNDS", 3)
DURATION = env_num("DURATION", 4)
CONNS = env_num("CONNS", 50)
IDLE_CONNS = env_num("IDLE_CONNS", 1000)
WARMUP = env_num("WARMUP", 1)
KEEP = os.environ.get("KEEP", "") not in ("", "0")
TLS_GROUPS = os.environ.get("TLS_GROUPS", "X25519:P-256")
TLS_CIPHER = os.environ.get("TLS_CIPHER", "ECDHE-ECDSA-AES128-GCM-SHA256")
TLS_SERVER_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                      "ECDHE-ECDSA-CHACHA20-POLY1305")
TLS_PARTS = ("tls-keepalive", "tls-handshake", "tls-idle")
HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = [p for s in os.environ.get("SCENARIOS", "hello,plain,64k,idle,tls").split(",") if s
             for p in (TLS_PARTS if s == "tls" else (s,))]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid):
    """Direct children of pid (nginx workers), from /proc/*/stat."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            out.append(int(d))
    return out


def steal_ticks():
    """{cpu: (steal, total)} jiffies from /proc/stat, for the noise note."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                v = [int(x) for x in line.split()[1:]]
                out[line.split()[0]] = (v[7] if len(v) > 7 else 0, sum(v[:8]))
    return out


def cpu_jiffies():
    """{cpuN: (busy, total)} jiffies from /proc/stat; busy leaves out idle, iowait and
    steal."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                v = [int(x) for x in line.split()[1:9]] + [0] * 8
                out[line.split()[0]] = (v[0] + v[1] + v[2] + v[5] + v[6], sum(v[:8]))
    return out


# CPU-0 jiffies that processes other than the measured server used during the
# measured runs (other jobs on a shared machine), and all CPU-0 jiffies of those runs.
NOISE = {"foreign": 0, "total": 0}


class RunMeter:
    """Brackets one measured run: the server's own CPU seconds, the share of CPU 0
    that went to anything else (noise), and how busy CPU 1 (the load side) was."""

    def __init__(self, pids):
        self.pids = pids
        self.t0, self.s0 = cpu_ticks(pids), cpu_jiffies()

    def stop(self):
        ticks, s1 = cpu_ticks(self.pids) - self.t0, cpu_jiffies()
        out = {"cpu_s": ticks / HZ}
        c0, c1 = f"cpu{SERVER_CPU}", f"cpu{LOAD_CPU}"
        if c0 in self.s0 and c0 in s1 and c0 != c1:
            busy, total = s1[c0][0] - self.s0[c0][0], s1[c0][1] - self.s0[c0][1]
            foreign = max(0, busy - ticks)
            NOISE["foreign"] += foreign
            NOISE["total"] += total
            out["foreign"] = foreign / total if total else 0.0
        if c1 in self.s0 and c1 in s1:
            busy, total = s1[c1][0] - self.s0[c1][0], s1[c1][1] - self.s0[c1][1]
            out["load_busy"] = busy / total if total else 0.0
        return out


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total


class Server:
    """One server process we started, pinned with taskset (which execs, so the PID
    is the server's own). stop() signals only that PID (and, if it must be killed,
    the worker PIDs it forked)."""

    def __init__(self, name, argv, port, workdir, cpu=SERVER_CPU, tls=False):
        self.name, self.argv, self.port, self.cpu, self.tls = name, argv, port, cpu, tls
        self.logpath = os.path.join(workdir, f"{name}.{port}.log")
        self.proc = None
        self.error = None  # why it is n/a
        self.start_ms = None

    def url(self, path):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    def pids(self):
        return [self.proc.pid] + children(self.proc.pid)

    def log_lines(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return [ln.strip() for ln in f if ln.strip()]
        except OSError:
            return []

    def first_log_line(self):
        lines = self.log_lines()
        for ln in lines:  # prefer the first error/alert line over info banners
            if re.search(r"\b(error|emerg|alert|crit|fatal)\b", ln, re.I) or ln.startswith("[ALERT]"):
                return ln
        return lines[0] if lines else ""

    def start(self, timeout=3.0):
        log = open(self.logpath, "w")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(["taskset", "-c", self.cpu] + self.argv, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    self.start_ms = (time.monotonic() - t0) * 1000
                    time.sleep(0.2)  # let nginx fork its worker
                    if self.proc.poll() is None:
                        return True
                    break
            except OSError:
                time.sleep(0.001)
        if self.proc.poll() is None:
            why = f"not listening on 127.0.0.1:{self.port} after {timeout:.0f}s"
            self.stop()
        else:
            why = f"exit status {self.proc.returncode}"
        self.error = f"did not start: {self.first_log_line() or why}"
        return False

    def probe(self, path, size):
        """One GET over a fresh connection; sets self.error unless 200 + size bytes."""
        import http.client
        try:
            if self.tls:
                c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=5,
                                                context=tls_client_context())
            else:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            c.request("GET", path, headers={"Host": "bench.local"})
            r = c.getresponse()
            body = r.read()
            c.close()
        except (OSError, http.client.HTTPException) as e:
            self.error = f"probe GET {path} failed: {e}"
            return False
        if r.status != 200 or len(body) != size:
            self.error = (f"probe GET {path}: status {r.status}, {len(body)} bytes "
                          f"(want 200, {size}): {body[:80]!r}")
            return False
        return True

    def ok(self):
        return self.error is None and self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        workers = children(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for w in workers:  # only if the master left them behind
            try:
                os.kill(w, signal.SIGKILL)
            except OSError:
                pass


# ---- configurations ----------------------------------------------------------------

def nginx_conf(d, port, body):
    """nginx.conf for one instance; body is the http{} server/upstream part."""
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(f"""worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log stderr warn;
worker_rlimit_nofile 65536;
events {{ worker_connections {max(4096, 2 * (IDLE_CONNS + CONNS) + 100)}; }}
http {{
	access_log off;
	default_type application/octet-stream;
	sendfile on;
	keepalive_timeout 75s;
	keepalive_requests 1000000;
	client_body_temp_path {d}/client_body; proxy_temp_path {d}/proxy;
	fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
{body}
}}
""")
    return ["nginx", "-e", "stderr", "-c", path]


def haproxy_conf(d, port, frontend_extra, backend="", bind_extra="", global_extra=""):
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(f"""global
	nbthread 1
	maxconn {max(4096, IDLE_CONNS + CONNS + 100)}
{global_extra}
defaults
	mode http
	option http-keep-alive
	http-reuse always
	timeout connect 5s
	timeout client 60s
	timeout server 60s
	timeout http-request 10s
	timeout http-keep-alive 60s

frontend fe
	bind 127.0.0.1:{port}{bind_extra}
{frontend_extra}
{backend}""")
    return ["haproxy", "-db", "-f", path]


def edgeproxy_conf(binary, d, port, service, tls=None):
    """tls: None, or the dict from tls_material() (then the entry point is TLS)."""
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "edgeproxy.ini")
    entry = f"[entrypoint web]\nlisten = 127.0.0.1:{port}\n"
    if tls:
        entry = (f"[entrypoint websecure]\nlisten = 127.0.0.1:{port}\ntls = on\n\n"
                 f"[cert c]\ncert_file = {tls['cert']}\nkey_file = {tls['key']}\n\n"
                 "[tls]\ndefault_cert = c\nsession_cache = 0\nciphers = modern\n")
    with open(path, "w") as f:
        f.write(f"""[global]
state_dir = {d}/state

{entry}
[router all]
rule = PathPrefix(`/`)
service = up

[service up]
{service}
""")
    return [binary, "run", "-c", path]


def hello_servers(binary, work):
    p = {n: free_port() for n in NAMES}
    return [
        Server("edgeproxy", edgeproxy_conf(binary, f"{work}/hello-edgeproxy", p["edgeproxy"],
                                           "type = hello"), p["edgeproxy"], work),
        Server("nginx", nginx_conf(f"{work}/hello-nginx", p["nginx"],
                                   f'\tserver {{ listen 127.0.0.1:{p["nginx"]}; location / '
                                   '{ default_type text/plain; return 200 "Hello from nginx"; } }'),
               p["nginx"], work),
        Server("haproxy", haproxy_conf(f"{work}/hello-haproxy", p["haproxy"],
                                       '\thttp-request return status 200 content-type text/plain '
                                       'string "Hello from haproxy"'), p["haproxy"], work),
    ]


def upstream_server(work):
    d = f"{work}/upstream"
    os.makedirs(f"{d}/www", exist_ok=True)
    with open(f"{d}/www/64k", "wb") as f:
        f.write(bytes(range(256)) * (BIG_SIZE // 256))
    os.chmod(f"{d}/www/64k", 0o644)
    port = free_port()
    body = f"""	server {{
		listen 127.0.0.1:{port} backlog=4096;
		location / {{ default_type text/plain; return 200 "{SMALL_BODY.decode().strip()}\\n"; }}
		location = /64k {{ root {d}/www; etag off; }}
	}}"""
    return Server("upstream-nginx", nginx_conf(d, port, body), port, work, cpu=LOAD_CPU)


def proxy_servers(binary, work, up_port, tag, tls=None):
    """The three proxies; tls (from tls_material()) makes them terminate TLS, with the
    settings listed in the module docstring."""
    p = {n: free_port() for n in NAMES}
    ng_tls = hap_bind = hap_global = ""
    if tls:
        ng_tls = f"""
		ssl_certificate {tls['cert']};
		ssl_certificate_key {tls['key']};
		ssl_protocols TLSv1.2;
		ssl_ciphers {TLS_SERVER_CIPHERS};
		ssl_prefer_server_ciphers on;
		ssl_ecdh_curve X25519:prime256v1;
		ssl_session_cache off;
		ssl_session_tickets off;"""
        hap_bind = (f" ssl crt {tls['combined']} ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.2 "
                    f"ciphers {TLS_SERVER_CIPHERS} curves X25519:P-256 no-tls-tickets")
        hap_global = "\ttune.ssl.cachesize 0\n"
    ng = f"""	upstream up {{ server 127.0.0.1:{up_port}; keepalive 32; keepalive_requests 1000000; }}
	server {{
		listen 127.0.0.1:{p["nginx"]}{" ssl" if tls else ""} backlog=4096;{ng_tls}
		location / {{
			proxy_pass http://up;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_buffer_size 16k;
			proxy_buffers 8 16k;
			proxy_max_temp_file_size 0;
		}}
	}}"""
    return [
        Server("edgeproxy", edgeproxy_conf(binary, f"{work}/{tag}-edgeproxy", p["edgeproxy"],
                                           f"server = http://127.0.0.1:{up_port}", tls),
               p["edgeproxy"], work, tls=bool(tls)),
        Server("nginx", nginx_conf(f"{work}/{tag}-nginx", p["nginx"], ng), p["nginx"], work,
               tls=bool(tls)),
        Server("haproxy", haproxy_conf(f"{work}/{tag}-haproxy", p["haproxy"],
                                       "\tdefault_backend be",
                                       f"backend be\n\tserver up 127.0.0.1:{up_port}\n",
                                       hap_bind, hap_global),
               p["haproxy"], work, tls=bool(tls)),
    ]


def tls_client_context():
    """Python client side (probes, tls-idle): TLS 1.2, TLS_CIPHER, no verification
    (our own self-signed certificate), no tickets; Python never resumes by itself."""
    import ssl
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    c.minimum_version = c.maximum_version = ssl.TLSVersion.TLSv1_2
    c.set_ciphers(TLS_CIPHER)
    c.options |= ssl.OP_NO_TICKET
    return c


def tls_material(work):
    """One self-signed ECDSA P-256 certificate for bench.local, shared by all three
    servers; returns dict(cert, key, combined) or raises RuntimeError."""
    d = f"{work}/tls"
    os.makedirs(d, exist_ok=True)
    m = {"cert": f"{d}/cert.pem", "key": f"{d}/key.pem", "combined": f"{d}/combined.pem"}
    out = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                          "ec_paramgen_curve:P-256", "-nodes", "-keyout", m["key"], "-out",
                          m["cert"], "-days", "7", "-subj", "/CN=bench.local", "-addext",
                          "subjectAltName=DNS:bench.local"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("openssl req failed: " + (out.stderr.strip().splitlines() or ["?"])[-1])
    with open(m["combined"], "w") as f:
        for part in (m["cert"], m["key"]):
            with open(part) as g:
                f.write(g.read())
    return m


def build_handshake_client(work):
    """Compiles tools/tls_handshake.c; returns (path, None) or (None, why)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None, "no C compiler to build tools/tls_handshake.c"
    out_path = f"{work}/tls_handshake"
    out = subprocess.run([cc, "-O2", "-o", out_path, os.path.join(HERE, "tls_handshake.c"),
                          "-lssl", "-lcrypto"], capture_output=True, text=True)
    if out.returncode != 0:
        first = next((ln for ln in out.stderr.splitlines() if "error" in ln), out.stderr.strip())
        return None, f"cannot build tools/tls_handshake.c (needs libssl-dev): {first[:160]}"
    return out_path, None


def s_client_params(port):
    """What a server negotiates with `openssl s_client -tls1_2` (OpenSSL's default
    offer, which is what wrk and Python send): 'TLSv1.2 SUITE, ECDHE group, signature'."""
    try:
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                              "-servername", "bench.local", "-tls1_2", "-brief"],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return f"s_client failed: {e}"
    text = out.stdout + out.stderr
    get = {k: re.search(rf"^{k}: ?(.*)$", text, re.M) for k in
           ("Protocol version", "Ciphersuite", "Server Temp Key", "Signature type", "Hash used")}
    if not get["Ciphersuite"]:
        return "s_client: no handshake (" + (text.strip().splitlines() or ["?"])[-1] + ")"
    val = {k: (v.group(1).strip() if v else "?") for k, v in get.items()}
    return (f"{val['Protocol version']} {val['Ciphersuite']}, ECDHE {val['Server Temp Key']}, "
            f"{val['Signature type']}-{val['Hash used']}")


# ---- measuring ---------------------------------------------------------------------

TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def run_wrk(server, path, duration):
    """One wrk run against server; returns dict(requests, secs, cpu_s, errors)."""
    meter = RunMeter(server.pids())
    out = subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{CONNS}",
                          f"-d{duration}s", server.url(path)],
                         capture_output=True, text=True, timeout=duration + 60).stdout
    cpu = meter.stop()
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h),", out)
    if not m:
        return {"requests": 0, "secs": duration, **cpu,
                "errors": "wrk: " + (out.strip().splitlines() or ["no output"])[-1]}
    errors = []
    m2 = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m2:
        errors.append(f"{m2.group(1)} non-2xx")
    m3 = re.search(r"Socket errors: (.*)", out)
    if m3:
        errors.append("socket errors " + m3.group(1).strip())
    return {"requests": int(m.group(1)), "secs": float(m.group(2)) * TIME_UNITS[m.group(3)],
            **cpu, "errors": "; ".join(errors)}


def run_handshakes(client, server, path, duration):
    """One tools/tls_handshake run against server (CONNS in flight, one request per
    connection); returns run_wrk's dict plus client_cpu, new, reused, params."""
    meter = RunMeter(server.pids())
    try:
        out = subprocess.run(["taskset", "-c", LOAD_CPU, client, str(server.port), str(CONNS),
                              str(duration), path, TLS_GROUPS, TLS_CIPHER, "bench.local"],
                             capture_output=True, text=True, timeout=duration + 60)
        text, err = out.stdout, out.stderr
    except subprocess.SubprocessError as e:
        text, err = "", str(e)
    cpu = meter.stop()
    kv = dict(ln.split("=", 1) for ln in text.splitlines() if "=" in ln)
    if "ok" not in kv:
        return {"requests": 0, "secs": duration, **cpu,
                "errors": "tls_handshake: " + (err.strip().splitlines() or ["no output"])[-1]}
    errors = []
    if int(kv["failed"]):
        errors.append(f"{kv['failed']} failed connections, first: {kv['first_error']}")
    if int(kv["reused"]):
        errors.append(f"{kv['reused']} RESUMED handshakes")
    if kv.get("mixed") == "1":
        errors.append("negotiated parameters differed between connections")
    return {"requests": int(kv["ok"]), "secs": float(kv["secs"]), **cpu,
            "errors": "; ".join(errors), "client_cpu": float(kv["client_cpu"]),
            "new": int(kv["new"]), "reused": int(kv["reused"]),
            "params": f"{kv['version']} {kv['cipher']}, ECDHE {kv['group']}"}


def throughput(title, servers, path, unit_bytes=None, runner=run_wrk, unit=None, tool=None):
    """ROUNDS rounds of runner (wrk by default) against each live server; returns
    {name: result}. unit_bytes=None: req/s and req/CPU-s; else MiB (of unit_bytes
    bodies)."""
    tool = tool or f"wrk -t1 -c{CONNS} -d{DURATION}s {path}"
    print(f"== {title}: {tool}, median of {ROUNDS}", flush=True)
    live = [s for s in servers if s.ok()]
    for s in live:
        if WARMUP > 0:
            runner(s, path, WARMUP)
    rounds = {s.name: [] for s in live}
    for i in range(ROUNDS):
        k = i % len(live) if live else 0
        for s in live[k:] + live[:k]:
            rounds[s.name].append(runner(s, path, DURATION))
    scale = (unit_bytes / 2**20) if unit_bytes else 1.0
    unit = unit or ("MiB" if unit_bytes else "req")
    results = {}
    for s in servers:
        if s.name not in rounds:
            print(f"{s.name}: n/a ({s.error})")
            results[s.name] = {"na": s.error}
            continue
        rs = rounds[s.name]
        rate = [r["requests"] / r["secs"] * scale for r in rs]
        per_cpu = [r["requests"] / r["cpu_s"] * scale if r["cpu_s"] > 0 else 0.0 for r in rs]
        errs = "; ".join(sorted({r["errors"] for r in rs if r["errors"]}))
        res = {"rate": statistics.median(rate), "per_cpu": statistics.median(per_cpu),
               "cpu_util": statistics.median(r["cpu_s"] / r["secs"] for r in rs),
               "errors": errs}
        extra = ""
        if all("foreign" in r and "load_busy" in r for r in rs):
            res["foreign"] = statistics.median(r["foreign"] for r in rs)
            res["load_busy"] = statistics.median(r["load_busy"] for r in rs)
            extra = (f"CPU {SERVER_CPU} to others {res['foreign'] * 100:.0f}%, CPU {LOAD_CPU} "
                     f"busy {res['load_busy'] * 100:.0f}%; ")
        if all("client_cpu" in r for r in rs):
            res["client_util"] = statistics.median(r["client_cpu"] / r["secs"] for r in rs)
            res["new"] = sum(r["new"] for r in rs)
            res["reused"] = sum(r["reused"] for r in rs)
            res["params"] = sorted({r["params"] for r in rs})
            extra += (f"client CPU {res['client_util'] * 100:.0f}%, {res['new']} new + "
                      f"{res['reused']} resumed handshakes; ")
        results[s.name] = res
        fmt = "{:.1f}" if unit_bytes else "{:.0f}"
        print(f"{s.name:<10} {fmt.format(res['rate']):>10} {unit}/s {fmt.format(res['per_cpu']):>10} "
              f"{unit}/CPU-s  (server CPU {res['cpu_util'] * 100:.0f}%; {extra}rounds "
              + " ".join(f"{fmt.format(a)}/{fmt.format(b)}" for a, b in zip(rate, per_cpu))
              + ")" + (f"  ERRORS: {errs}" if errs else ""), flush=True)
    print_ratios(results, "per_cpu", f"{unit}/CPU-s")
    return results


def ratio(results, key, a, b):
    ra, rb = results.get(a, {}), results.get(b, {})
    if key in ra and key in rb and rb[key]:
        return ra[key] / rb[key]
    return None


def print_ratios(results, key, what):
    parts = []
    for other in ("nginx", "haproxy"):
        r = ratio(results, key, "edgeproxy", other)
        parts.append(f"edgeproxy/{other} {r:.2f}" if r is not None else f"edgeproxy/{other} n/a")
    print(f"   ratio ({what}): " + ", ".join(parts), flush=True)


def start_all(servers, path, size):
    for s in servers:
        if s.start() and not s.probe(path, size):
            s.stop()


def stop_all(servers):
    for s in servers:
        s.stop()


# ---- scenarios ---------------------------------------------------------------------

def scenario_hello(ctx):
    servers = hello_servers(ctx["bin"], ctx["work"])
    ctx["servers"] += servers
    bodies = {"edgeproxy": len("Hello from edgeproxy @ bench.local"),
              "nginx": len("Hello from nginx"), "haproxy": len("Hello from haproxy")}
    for s in servers:
        if s.start() and not s.probe("/", bodies[s.name]):
            s.stop()
    rss0 = {s.name: bench_idle.rss_kib(s.pids()) for s in servers if s.ok()}
    res = throughput("hello: built-in backend vs nginx return 200 vs HAProxy http-request return",
                     servers, "/")
    for s in servers:
        if s.ok():
            res[s.name]["rss_start"] = rss0[s.name]
            res[s.name]["rss_after"] = bench_idle.rss_kib(s.pids())
            res[s.name]["start_ms"] = s.start_ms
            print(f"   {s.name}: RSS at start {rss0[s.name]} KiB, after load "
                  f"{res[s.name]['rss_after']} KiB; listening {s.start_ms:.1f} ms after exec")
    stop_all(servers)
    ctx["results"]["hello"] = res


def ensure_upstream(ctx):
    up = ctx.get("upstream")
    if up is None:
        up = upstream_server(ctx["work"])
        ctx["servers"].append(up)
        ctx["upstream"] = up
        if not (up.start() and up.probe("/", len(SMALL_BODY)) and up.probe("/64k", BIG_SIZE)):
            sys.exit(f"bench: upstream nginx failed: {up.error}\n" + "\n".join(up.log_lines()))
    return up


def proxies(ctx):
    """The three proxies in front of the upstream, shared by plain and 64k."""
    if "proxies" not in ctx:
        up = ensure_upstream(ctx)
        servers = proxy_servers(ctx["bin"], ctx["work"], up.port, "proxy")
        ctx["servers"] += servers
        start_all(servers, "/", len(SMALL_BODY))
        for s in servers:  # the 64 KiB path too, so a broken one is n/a, not a fast error
            if s.ok() and not s.probe("/64k", BIG_SIZE):
                s.stop()
        ctx["proxies"] = servers
    return ctx["proxies"]


def scenario_plain(ctx):
    ctx["results"]["plain"] = throughput("proxy, keep-alive, 100-byte body", proxies(ctx), "/")


def scenario_64k(ctx):
    ctx["results"]["64k"] = throughput("proxy, keep-alive, 64 KiB body", proxies(ctx), "/64k",
                                       unit_bytes=BIG_SIZE)


def idle_memory(ctx, servers, title, wrap=None):
    """Starts each server alone, holds IDLE_CONNS idle keep-alive connections through
    it (each after one request), stops it; returns {name: result}."""
    print(f"== {title}: {IDLE_CONNS} connections, one 100-byte request each, then held open",
          flush=True)
    res = {}
    for s in servers:  # one at a time
        if s.start() and s.probe("/", len(SMALL_BODY)):
            time.sleep(0.3)
            r = bench_idle.measure(s.port, IDLE_CONNS, s.pids(), wrap=wrap)
            fails = ""
            if r["failures"]:
                fails = f"{len(r['failures'])} failed, first: {r['failures'][0]}"
            if r["open"] < IDLE_CONNS:
                fails += f"{'; ' if fails else ''}only {r['open']} still open when measured"
            res[s.name] = {"per_conn": r["per_conn_kib"], "before": r["before"],
                           "after": r["after"], "errors": fails}
            print(f"{s.name:<10} {r['per_conn_kib']:8.2f} KiB/conn  (RSS {r['before']} -> "
                  f"{r['after']} KiB)" + (f"  ERRORS: {fails}" if fails else ""), flush=True)
        else:
            res[s.name] = {"na": s.error}
            print(f"{s.name}: n/a ({s.error})", flush=True)
        s.stop()
    print_ratios(res, "per_conn", "KiB/conn, lower is better")
    return res


def scenario_idle(ctx):
    stop_all(ctx.pop("proxies", []))  # fresh instances: no allocator state from the load runs
    up = ensure_upstream(ctx)
    servers = proxy_servers(ctx["bin"], ctx["work"], up.port, "idle")
    ctx["servers"] += servers
    ctx["results"]["idle"] = idle_memory(ctx, servers,
                                         "idle keep-alive connections through the proxy")


def tls_setup(ctx):
    """Certificate, handshake client and the three TLS proxies (shared by
    tls-keepalive and tls-handshake). Returns False if TLS cannot run at all."""
    if "tls" not in ctx:
        try:
            ctx["tls"] = tls_material(ctx["work"])
        except (OSError, RuntimeError) as e:
            ctx["tls"] = None
            ctx["results"]["tls"] = {"skipped": f"skipped: no certificate ({e})"}
            print(f"== TLS: skipped: no certificate ({e})", flush=True)
        ctx["hs_client"], ctx["hs_client_error"] = build_handshake_client(ctx["work"])
    return ctx["tls"] is not None


def tls_proxies(ctx):
    if "tls_proxies" not in ctx:
        stop_all(ctx.pop("proxies", []))  # the plain ones sit idle, but keep CPU 0 quiet
        up = ensure_upstream(ctx)
        servers = proxy_servers(ctx["bin"], ctx["work"], up.port, "tls", ctx["tls"])
        ctx["servers"] += servers
        start_all(servers, "/", len(SMALL_BODY))
        params = {}
        for s in servers:
            params[s.name] = s_client_params(s.port) if s.ok() else "n/a"
            print(f"   {s.name:<10} negotiates with openssl s_client -tls1_2: {params[s.name]}",
                  flush=True)
        ctx["tls_params"] = params
        ctx["tls_proxies"] = servers
    return ctx["tls_proxies"]


def scenario_tls_keepalive(ctx):
    if not tls_setup(ctx):
        return
    ctx["results"]["tls-keepalive"] = throughput(
        "TLS 1.2 proxy, keep-alive, 100-byte body", tls_proxies(ctx), "/",
        tool=f"wrk -t1 -c{CONNS} -d{DURATION}s https://.../")


def scenario_tls_handshake(ctx):
    if not tls_setup(ctx):
        return
    servers = tls_proxies(ctx)
    title = "TLS 1.2 full handshakes (ECDSA P-256, no resumption), one proxied request each"
    if not ctx["hs_client"]:
        print(f"== {title}: n/a: {ctx['hs_client_error']}", flush=True)
        ctx["results"]["tls-handshake"] = {n: {"na": ctx["hs_client_error"]} for n in NAMES}
        return
    client = ctx["hs_client"]
    ctx["results"]["tls-handshake"] = throughput(
        title, servers, "/", unit="hs",
        runner=lambda s, path, secs: run_handshakes(client, s, path, secs),
        tool=(f"tls_handshake -c{CONNS} {DURATION}s, groups {TLS_GROUPS}, {TLS_CIPHER}, "
              "Connection: close"))


def scenario_tls_idle(ctx):
    if not tls_setup(ctx):
        return
    stop_all(ctx.pop("tls_proxies", []))
    stop_all(ctx.pop("proxies", []))
    up = ensure_upstream(ctx)
    servers = proxy_servers(ctx["bin"], ctx["work"], up.port, "tls-idle", ctx["tls"])
    ctx["servers"] += servers
    tctx = tls_client_context()
    ctx["results"]["tls-idle"] = idle_memory(
        ctx, servers, f"idle TLS keep-alive connections through the proxy (Python ssl, {TLS_CIPHER})",
        wrap=lambda sock: tctx.wrap_socket(sock, server_hostname="bench.local"))


SCENARIO_FUNCS = {"hello": scenario_hello, "plain": scenario_plain, "64k": scenario_64k,
                  "idle": scenario_idle, "tls-keepalive": scenario_tls_keepalive,
                  "tls-handshake": scenario_tls_handshake, "tls-idle": scenario_tls_idle}


# ---- report --------------------------------------------------------------------------

def fmt_cell(res, key, fmt):
    if res is None:
        return "–"
    if "na" in res:
        return "n/a"
    if key not in res or res[key] is None:
        return "–"
    return fmt.format(res[key]) + (" !" if res.get("errors") else "")


def table(ctx):
    R = ctx["results"]
    rows = [  # (scenario, key, label, number format)
        ("hello", "rate", "hello: req/s", "{:.0f}"),
        ("hello", "per_cpu", "hello: req/CPU-s", "{:.0f}"),
        ("hello", "rss_start", "hello: RSS at start, KiB", "{:.0f}"),
        ("hello", "start_ms", "hello: taskset exec to first accept, ms", "{:.1f}"),
        ("plain", "rate", "proxy 100 B: req/s", "{:.0f}"),
        ("plain", "per_cpu", "proxy 100 B: req/CPU-s", "{:.0f}"),
        ("64k", "rate", "proxy 64 KiB: MiB/s", "{:.1f}"),
        ("64k", "per_cpu", "proxy 64 KiB: MiB/CPU-s", "{:.1f}"),
        ("idle", "per_conn", f"idle keep-alive: KiB/conn (N={IDLE_CONNS})", "{:.2f}"),
        ("tls-keepalive", "rate", "TLS proxy 100 B keep-alive: req/s", "{:.0f}"),
        ("tls-keepalive", "per_cpu", "TLS proxy 100 B keep-alive: req/CPU-s", "{:.0f}"),
        ("tls-handshake", "rate", "TLS full handshakes, 1 req/conn: hs/s", "{:.0f}"),
        ("tls-handshake", "per_cpu", "TLS full handshakes, 1 req/conn: hs/CPU-s", "{:.0f}"),
        ("tls-handshake", "cpu_util", "TLS handshakes: server CPU, % of a core", "{:.0%}"),
        ("tls-handshake", "client_util", "TLS handshakes: client CPU, % of a core", "{:.0%}"),
        ("tls-idle", "per_conn", f"idle TLS keep-alive: KiB/conn (N={IDLE_CONNS})", "{:.2f}"),
    ]
    lines = []
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines.append(f"edgeproxy bench ({ctx['version']}, {os.path.getsize(ctx['bin'])} bytes) — "
                 f"{time.strftime('%Y-%m-%d')}, {cpu} ×{os.cpu_count()}, Linux {platform.release()}")
    lines.append(f"{ctx['peers']}; ROUNDS={ROUNDS} DURATION={DURATION}s CONNS={CONNS} "
                 f"(medians); one worker each on CPU {SERVER_CPU}; wrk -t1 + upstream nginx on "
                 f"CPU {LOAD_CPU}; steal time during the run: {ctx.get('steal', '?')}; "
                 f"CPU {SERVER_CPU} time taken by other processes during the measured runs: "
                 f"{ctx.get('noise', '?')}")
    lines.append("")
    lines.append("| metric | edgeproxy | nginx | haproxy | ep/nginx | ep/haproxy |")
    lines.append("|---|---:|---:|---:|---:|---:|")
    notes = []
    for scen, key, label, fmt in rows:
        if scen not in R:
            continue
        res = R[scen]
        cells = [fmt_cell(res.get(n), key, fmt) for n in NAMES]
        ratios = []
        for other in ("nginx", "haproxy"):
            r = ratio(res, key, "edgeproxy", other) if key in ("rate", "per_cpu", "per_conn") else None
            ratios.append(f"{r:.2f}" if r is not None else "–")
        lines.append(f"| {label} | " + " | ".join(cells + ratios) + " |")
    na = {}  # server -> (first reason, scenarios)
    for scen in ("hello", "plain", "64k", "idle") + TLS_PARTS:
        for n in NAMES:
            res = R.get(scen, {}).get(n)
            if res and "na" in res:
                na.setdefault(n, (res["na"].replace(ctx["work"] + "/", ""), []))[1].append(scen)
            elif res and res.get("errors"):
                notes.append(f"! {scen} {n}: {res['errors']}")
    for n, (why, scens) in na.items():
        notes.append(f"{n}: n/a in {', '.join(scens)} ({why})")
    if "tls" in R:
        notes.append(f"TLS: {R['tls']['skipped']}")
    if ctx.get("tls_params"):
        notes.append("TLS negotiated (openssl s_client -tls1_2, OpenSSL's default offer like "
                     "wrk and Python): " + "; ".join(f"{n} {ctx['tls_params'].get(n, 'n/a')}"
                                                     for n in NAMES))
    hs = R.get("tls-handshake", {})
    if any("new" in hs.get(n, {}) for n in NAMES):
        notes.append(f"TLS handshake client (tools/tls_handshake.c, {ctx.get('openssl', '?')}, "
                     f"offers {TLS_GROUPS}, {TLS_CIPHER}): " + "; ".join(
                         f"{n} {hs[n]['new']} new / {hs[n]['reused']} resumed, "
                         f"{' | '.join(hs[n]['params'])}" for n in NAMES if "new" in hs.get(n, {})))
        low = [f"{n} {hs[n]['cpu_util'] * 100:.0f}% (CPU {SERVER_CPU} to others "
               f"{hs[n].get('foreign', 0) * 100:.0f}%; CPU {LOAD_CPU} busy "
               f"{hs[n].get('load_busy', 0) * 100:.0f}%, of it the client "
               f"{hs[n]['client_util'] * 100:.0f}%)" for n in NAMES
               if "client_util" in hs.get(n, {}) and hs[n]["cpu_util"] < 0.9]
        if low:
            notes.append("TLS handshakes below 90% server CPU, so per-CPU-second figures taken "
                         "below saturation: " + "; ".join(low) + ". Where CPU "
                         f"{LOAD_CPU} is ~100% busy the load side ran out (client, upstream "
                         "nginx and any other job there); where it is not, the scheduler "
                         "gave the time to other jobs")
    lines.append("")
    lines += notes
    return "\n".join(lines)


def version_of(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def main():
    binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/x86_64/edgeproxy")
    if not os.access(binary, os.X_OK):
        sys.exit(f"bench: {binary} is not an executable (make first)")
    for tool in ("wrk", "nginx", "haproxy", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} missing (make test-deps)")
    bad = [s for s in SCENARIOS if s not in SCENARIO_FUNCS]
    if bad:
        sys.exit(f"bench: unknown scenario {','.join(bad)} (have {','.join(SCENARIO_FUNCS)})")
    if os.cpu_count() < 2:
        print("bench: warning: one CPU; server and load share it", file=sys.stderr)
        global LOAD_CPU
        LOAD_CPU = "0"
    try:
        os.sched_setaffinity(0, {int(LOAD_CPU)})  # keep this driver off the server's CPU
    except OSError:
        pass
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, min(hard, IDLE_CONNS * 2 + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if IDLE_CONNS + 100 > want and "idle" in SCENARIOS:
        sys.exit(f"bench: IDLE_CONNS={IDLE_CONNS} needs more file descriptors than {want}")

    work = tempfile.mkdtemp(prefix="edgeproxy-bench.")
    os.chmod(work, 0o755)  # nginx workers run as nobody and read the 64k file
    ctx = {"bin": binary, "work": work, "servers": [], "results": {},
           "version": version_of([binary, "version"]),
           "peers": (version_of(["nginx", "-v"]).replace("nginx version: ", "") + ", "
                     + " ".join(version_of(["haproxy", "-v"]).split()[:3:2])),
           "openssl": " ".join(version_of(["openssl", "version"]).split()[:2])}
    t0 = time.monotonic()
    steal0 = steal_ticks()

    def on_term(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    try:
        for name in SCENARIOS:
            SCENARIO_FUNCS[name](ctx)
            print(flush=True)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        stop_all(ctx["servers"])
        if KEEP:
            print(f"bench: configs and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    steal1 = steal_ticks()
    ctx["steal"] = ", ".join(
        f"{c} {100 * (steal1[c][0] - steal0[c][0]) / max(1, steal1[c][1] - steal0[c][1]):.1f}%"
        for c in (f"cpu{SERVER_CPU}", f"cpu{LOAD_CPU}") if c in steal0 and c in steal1)
    if NOISE["total"]:
        ctx["noise"] = f"{100 * NOISE['foreign'] / NOISE['total']:.0f}%"
    print(table(ctx))
    print(f"\n(bench took {time.monotonic() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
