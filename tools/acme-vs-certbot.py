#!/usr/bin/python3
"""Time from start to first certificate: edgeproxy's ACME client (tests/acme_driver,
the same src/acme.c the proxy runs) beside certbot, for the same HTTP-01 order on the
same Pebble in the same run. Prints wall and CPU time of each.

    python3 tools/acme-vs-certbot.py [ROUNDS]

Needs pebble, pebble-challtestsrv, openssl and certbot (Debian packages); builds the
driver with tests/build-acme-driver.sh when it is missing. Pebble runs with
PEBBLE_VA_NOSLEEP=1 and PEBBLE_WFE_NONCEREJECT=0 so that both clients see the same
CA behaviour; loopback only."""
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests/integration"))
from test_acme import DRIVER, Pebble  # noqa: E402


def run_timed(args, env=None, cwd=None):
    """Runs args to completion; returns (seconds, cpu seconds, output)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if p.returncode != 0:
        raise RuntimeError(f"{args[0]} failed:\n{p.stdout}\n{p.stderr}")
    return wall, cpu, p.stdout + p.stderr


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    if not os.path.exists(DRIVER):
        subprocess.run(["bash", os.path.join(ROOT, "tests/build-acme-driver.sh")], check=True)
    if not shutil.which("certbot"):
        sys.exit("certbot is not installed (apt-get install certbot)")
    work = tempfile.mkdtemp(prefix="acme-vs-certbot-")
    pebble = Pebble(work, nonce_reject=0)
    rows = []
    try:
        for r in range(rounds):
            name = f"bench{r}.test.example"
            state = os.path.join(work, f"edgeproxy-{r}")
            wall, cpu, _ = run_timed(
                [DRIVER, "--state", state, "--ca", pebble.directory, "--ca_root", pebble.ca_root,
                 "--email", "ops@test.example", "--http-port", str(pebble.http_port),
                 "--exit-after", "1", name])
            rows.append(("edgeproxy acme.c", name, wall, cpu))
            cb = os.path.join(work, f"certbot-{r}")
            env = dict(os.environ, REQUESTS_CA_BUNDLE=pebble.ca_root)
            wall, cpu, _ = run_timed(
                ["certbot", "certonly", "--standalone", "--non-interactive", "--agree-tos",
                 "-m", "ops@test.example", "--server", pebble.directory,
                 "--http-01-address", "127.0.0.1", "--http-01-port", str(pebble.http_port),
                 "--config-dir", cb + "/etc", "--work-dir", cb + "/var", "--logs-dir", cb + "/log",
                 "--key-type", "ecdsa", "--elliptic-curve", "secp256r1", "-d", "c" + name],
                env=env)
            rows.append(("certbot " + subprocess.run(["certbot", "--version"], capture_output=True,
                                                     text=True).stdout.split()[-1], "c" + name,
                         wall, cpu))
    finally:
        pebble.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'client':<22} {'name':<26} {'wall s':>8} {'cpu s':>8}")
    for client, name, wall, cpu in rows:
        print(f"{client:<22} {name:<26} {wall:8.2f} {cpu:8.2f}")
    for client in sorted({r[0] for r in rows}):
        w = [r[2] for r in rows if r[0] == client]
        c = [r[3] for r in rows if r[0] == client]
        print(f"{client:<22} {'mean':<26} {sum(w) / len(w):8.2f} {sum(c) / len(c):8.2f}")


if __name__ == "__main__":
    main()
