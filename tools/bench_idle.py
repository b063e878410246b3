#!/usr/bin/env python3
"""bench_idle.py - memory per idle keep-alive connection (SPEC §5).

Opens N keep-alive connections to 127.0.0.1:PORT one after the other, sends one
`GET PATH HTTP/1.1` on each and reads the whole response, then keeps them all open
(idle) and reports (RSS after - RSS before) / N, RSS summed over the given PIDs
(for nginx: master + workers).

    tools/bench_idle.py PORT N PID [PID...]

Used by tools/bench.py (scenarios "idle" and "tls": measure() takes a `wrap`
function that turns each connected socket into a TLS one); stdlib only.
"""
import select
import socket
import sys
import time


def rss_kib(pids):
    """Sum of VmRSS (KiB) over PIDs; a PID that is gone counts 0."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def read_response(sock):
    """Reads one HTTP/1.1 response (Content-Length or chunked); returns status."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, chunked = None, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while not body.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed inside a chunked body")
            body += chunk
    elif length is not None:
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed inside the body")
            body += chunk
    return status


def open_idle(port, n, path="/", host="bench.local", timeout=5.0, wrap=None):
    """Returns (sockets, failures): n connections, each after one full request.
    wrap(sock) -> sock, if given, runs on each connected socket first (a TLS
    handshake); a failure there counts like a failed connect."""
    req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bench_idle\r\n\r\n".encode()
    socks, failures = [], []
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        except OSError as e:
            failures.append(f"connect: {e}")
            continue
        if wrap is not None:
            try:
                s = wrap(s)
            except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
                s.close()
                failures.append(f"handshake: {e}")
                continue
        socks.append(s)
        try:
            s.sendall(req)
            status = read_response(s)
            if status != 200:
                failures.append(f"status {status}")
        except (OSError, ValueError, IndexError) as e:
            failures.append(f"request: {e}")
    return socks, failures


def still_open(s):
    """True unless the peer closed (or sent anything: an idle server has nothing to
    say). A plain socket peeks; a TLS one (no MSG_PEEK there) is polled, as a
    close_notify or FIN both make it readable."""
    if type(s) is not socket.socket:  # ssl.SSLSocket
        try:
            p = select.poll()
            p.register(s.fileno(), select.POLLIN | select.POLLRDHUP)
            return not p.poll(0)
        except (OSError, ValueError):
            return False
    try:
        s.setblocking(False)
        return bool(s.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return True
    except OSError:
        return False


def measure(port, n, pids, path="/", settle=0.5, wrap=None):
    """Returns dict(before, after, per_conn_kib, open, failures) and closes the
    connections again."""
    before = rss_kib(pids)
    socks, failures = open_idle(port, n, path, wrap=wrap)
    time.sleep(settle)
    after = rss_kib(pids)
    # still open at measurement time? (a peer close shows as readable EOF)
    alive = sum(1 for s in socks if still_open(s))
    for s in socks:
        s.close()
    return {"before": before, "after": after, "n": n, "open": alive,
            "per_conn_kib": (after - before) / n if n else 0.0,
            "failures": failures}


def main(argv):
    if len(argv) < 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    port, n, pids = int(argv[1]), int(argv[2]), [int(p) for p in argv[3:]]
    r = measure(port, n, pids)
    print(f"RSS before {r['before']} KiB, after {r['after']} KiB with {r['open']}/{n} "
          f"idle connections open: {r['per_conn_kib']:.2f} KiB per connection"
          + (f"; {len(r['failures'])} failures, first: {r['failures'][0]}"
             if r["failures"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
