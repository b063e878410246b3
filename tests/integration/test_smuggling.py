"""Request smuggling and malformed messages (issue 10, SPEC §4 strict parsing).

A table of ambiguous or malformed requests, each sent in one write through
edgeproxy to an upstream that records the raw bytes it receives. For every case the
test checks the client's answer (status; errors close the connection) AND the
upstream's bytes: a rejected request sends nothing upstream at all; an accepted one
arrives exactly once, re-serialised (CRLF, origin-form, one Host, one framing:
canonical Content-Length or "chunked", bare hex chunk sizes, no extensions, no
trailers) with the body the client meant. Every case runs against two upstreams:
"capture" (wire.CaptureUpstream, every byte each connection got) and "logging"
(upstream.py, the requests it parsed, head and raw body as received).

The response side: an upstream that answers with ambiguous or broken framing gives
the client a 502 (or, once the head went out, a connection closed before the body's
end), never its bytes, and a connection left with stray bytes is not reused."""
import shutil
import socket
import time

import pytest

from harness import EdgeProxy, HttpConn, free_port
from upstream import Upstream
from wire import CaptureUpstream, parse_stream

H = b"Host: a.example\r\n"
HELLO_CHUNKED = b"5\r\nhello\r\n0\r\n\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a.example\r\n\r\n"


def config(port, upstream_url, ep=""):
    return f"""
[global]
state_dir = {{dir}}/state

[entrypoint web]
listen = 127.0.0.1:{port}
header_timeout = 2s
{ep}

[router r]
rule = PathPrefix(`/`)
service = app

[service app]
server = {upstream_url}
response_timeout = 5s
health_interval = 1s
"""


def req(fields=b"", body=b"", method=b"POST", target=b"/echo", version=b"HTTP/1.1", host=H):
    """A request from raw pieces: fields are whole lines with their CRLFs."""
    return method + b" " + target + b" " + version + b"\r\n" + host + fields + b"\r\n" + body


GOOD_GET = b"GET /echo?first HTTP/1.1\r\n" + H + b"\r\n"
GOOD_LAST = b"GET /echo?last HTTP/1.1\r\n" + H + b"\r\n"


# ---- expectations --------------------------------------------------------------

class Want:
    """One request the upstream must receive."""

    def __init__(self, method=b"POST", target=b"/echo", body=b"", framing="any", host=b"a.example",
                 fields=()):
        self.method, self.target, self.body = method, target, body
        self.framing = framing  # "any", None (no body), "length" or "chunked"
        self.host = host
        self.fields = fields    # (name, value) pairs that must be there exactly once


class Reject:
    """The client gets `pre` upstream answers, then one error in statuses from edgeproxy
    itself, then the connection closes; the upstream gets the `pre` requests and not
    one byte more."""

    def __init__(self, *statuses, pre=(), partial_ok=False):
        self.statuses = statuses or (400,)
        self.pre = list(pre)
        # A body found bad only after more than one buffer of it (16 KiB) was
        # relayed: the upstream may hold the start of a well-formed request that
        # never completes, on a connection edgeproxy then closed.
        self.partial_ok = partial_ok


class Accept:
    def __init__(self, *wants):
        self.wants = list(wants) or [Want()]


class Either:
    """Where RFC 9112 lets a recipient either refuse or repair: both are safe, and
    whichever happens must be complete."""

    def __init__(self, reject, accept):
        self.reject, self.accept = reject, accept


POST_HELLO = Want(body=b"hello")
CHUNKED_HELLO = Want(body=b"hello", framing="chunked")

CASES = [
    # -- Content-Length together with Transfer-Encoding, every spelling ----------
    ("clte", req(b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % (len(HELLO_CHUNKED) + len(SMUGGLED)),
                 HELLO_CHUNKED + SMUGGLED), Reject(400)),
    ("tecl", req(b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", b"0\r\n\r\n" + SMUGGLED), Reject(400)),
    ("clte-cl-zero", req(b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", HELLO_CHUNKED), Reject(400)),
    ("clte-two-spaces", req(b"Content-Length: 5\r\nTransfer-Encoding:  chunked\r\n", HELLO_CHUNKED), Reject(400)),
    ("clte-tab", req(b"Content-Length: 5\r\nTransfer-Encoding:\tchunked\r\n", HELLO_CHUNKED), Reject(400)),
    ("clte-capital", req(b"Content-Length: 5\r\nTransfer-Encoding: Chunked\r\n", HELLO_CHUNKED), Reject(400)),
    ("clte-chunked-identity", req(b"Content-Length: 5\r\nTransfer-Encoding: chunked, identity\r\n", HELLO_CHUNKED),
     Reject(400)),
    ("clte-identity-chunked", req(b"Content-Length: 5\r\nTransfer-Encoding: identity, chunked\r\n", HELLO_CHUNKED),
     Reject(400)),
    ("clte-obs-fold", req(b"Content-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n", HELLO_CHUNKED), Reject(400)),
    ("clte-xchunked", req(b"Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n", b"hello"), Reject(400)),
    ("clte-te-twice", req(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                          HELLO_CHUNKED), Reject(400)),
    ("clte-tab-before-colon", req(b"Content-Length: 5\r\nTransfer-Encoding\t: chunked\r\n", HELLO_CHUNKED),
     Reject(400)),
    ("clte-space-before-colon", req(b"Content-Length: 5\r\nTransfer-Encoding : chunked\r\n", HELLO_CHUNKED),
     Reject(400)),
    ("clte-trailing-comma", req(b"Content-Length: 5\r\nTransfer-Encoding: chunked,\r\n", HELLO_CHUNKED),
     Reject(400)),
    ("clte-vtab", req(b"Content-Length: 5\r\nTransfer-Encoding: \x0bchunked\r\n", HELLO_CHUNKED), Reject(400)),
    ("clte-http10", req(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", HELLO_CHUNKED, version=b"HTTP/1.0"),
     Reject(400)),

    # -- Transfer-Encoding alone ------------------------------------------------
    ("te-two-spaces", req(b"Transfer-Encoding:  chunked\r\n", HELLO_CHUNKED), Accept(CHUNKED_HELLO)),
    ("te-tab-and-trailing-ws", req(b"Transfer-Encoding:\tchunked \t\r\n", HELLO_CHUNKED), Accept(CHUNKED_HELLO)),
    ("te-capital", req(b"Transfer-Encoding: CHUNKED\r\n", HELLO_CHUNKED), Accept(CHUNKED_HELLO)),
    ("te-chunked-identity", req(b"Transfer-Encoding: chunked, identity\r\n", HELLO_CHUNKED), Reject(400, 501)),
    ("te-identity-chunked", req(b"Transfer-Encoding: identity, chunked\r\n", HELLO_CHUNKED), Reject(400, 501)),
    ("te-xchunked", req(b"Transfer-Encoding: xchunked\r\n", HELLO_CHUNKED), Reject(400, 501)),
    ("te-gzip-then-chunked-lines", req(b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", HELLO_CHUNKED),
     Reject(400, 501)),
    ("te-chunked-twice", req(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", HELLO_CHUNKED),
     Reject(400)),
    ("te-chunked-chunked", req(b"Transfer-Encoding: chunked, chunked\r\n", HELLO_CHUNKED), Reject(400)),
    ("te-quoted", req(b"Transfer-Encoding: \"chunked\"\r\n", HELLO_CHUNKED), Reject(400, 501)),
    ("te-obs-fold", req(b"Transfer-Encoding:\r\n chunked\r\n", HELLO_CHUNKED), Reject(400)),
    ("te-http10", req(b"Transfer-Encoding: chunked\r\n", HELLO_CHUNKED, version=b"HTTP/1.0"), Reject(400)),
    ("te-empty-list-elements", req(b"Transfer-Encoding: , chunked\r\n", HELLO_CHUNKED),
     Either(Reject(400, 501), Accept(CHUNKED_HELLO))),

    # -- Content-Length -----------------------------------------------------------
    ("cl-duplicate-equal", req(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
     Either(Reject(400), Accept(Want(body=b"hello", framing="length")))),
    ("cl-duplicate-differ", req(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"), Reject(400)),
    ("cl-duplicate-case", req(b"content-length: 6\r\nCONTENT-LENGTH: 5\r\n", b"hello!"), Reject(400)),
    ("cl-list-equal", req(b"Content-Length: 5, 5\r\n", b"hello"),
     Either(Reject(400), Accept(Want(body=b"hello", framing="length")))),
    ("cl-list-differ", req(b"Content-Length: 5,6\r\n", b"hello!"), Reject(400)),
    ("cl-negative", req(b"Content-Length: -1\r\n", b"hello"), Reject(400)),
    ("cl-plus", req(b"Content-Length: +5\r\n", b"hello"), Reject(400)),
    ("cl-hex", req(b"Content-Length: 0x5\r\n", b"hello"), Reject(400)),
    ("cl-decimal-point", req(b"Content-Length: 5.0\r\n", b"hello"), Reject(400)),
    ("cl-inner-space", req(b"Content-Length: 1 0\r\n", b"helloworld"), Reject(400)),
    ("cl-empty", req(b"Content-Length: \r\n", b"hello"), Reject(400)),
    ("cl-overflow-2^64+5", req(b"Content-Length: 18446744073709551621\r\n", b"hello"), Reject(400)),
    ("cl-huge", req(b"Content-Length: 99999999999999999999999999999\r\n", b"hello"), Reject(400)),
    ("cl-space-before-colon", req(b"Content-Length : 5\r\n", b"hello"), Reject(400)),
    ("cl-leading-zeros", req(b"Content-Length: 005\r\n", b"hello"), Accept(Want(body=b"hello", framing="length"))),
    ("cl-trailing-ws", req(b"Content-Length: 5 \t\r\n", b"hello"), Accept(Want(body=b"hello", framing="length"))),
    ("cl-body-holds-a-request", req(b"Content-Length: %d\r\n" % len(SMUGGLED), SMUGGLED),
     Accept(Want(body=SMUGGLED, framing="length"))),
    ("cl-on-get", req(b"Content-Length: 5\r\n", b"hello", method=b"GET"),
     Accept(Want(method=b"GET", body=b"hello", framing="length"))),

    # -- chunk sizes and framing ----------------------------------------------------
    ("chunk-0x", req(b"Transfer-Encoding: chunked\r\n", b"0x5\r\nhello\r\n0\r\n\r\n"), Reject(400)),
    ("chunk-leading-space", req(b"Transfer-Encoding: chunked\r\n", b" 5\r\nhello\r\n0\r\n\r\n"), Reject(400)),
    ("chunk-trailing-space", req(b"Transfer-Encoding: chunked\r\n", b"5 \r\nhello\r\n0\r\n\r\n"), Reject(400)),
    ("chunk-negative", req(b"Transfer-Encoding: chunked\r\n", b"-1\r\nhello\r\n0\r\n\r\n"), Reject(400)),
    ("chunk-plus", req(b"Transfer-Encoding: chunked\r\n", b"+5\r\nhello\r\n0\r\n\r\n"), Reject(400)),
    ("chunk-empty-size", req(b"Transfer-Encoding: chunked\r\n", b"\r\nhello\r\n0\r\n\r\n"), Reject(400)),
    ("chunk-huge", req(b"Transfer-Encoding: chunked\r\n", b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
     Reject(400)),
    ("chunk-2^64+5", req(b"Transfer-Encoding: chunked\r\n", b"10000000000000005\r\nhello\r\n0\r\n\r\n"),
     Reject(400)),
    ("chunk-data-longer", req(b"Transfer-Encoding: chunked\r\n", b"5\r\nhelloXX\r\n0\r\n\r\n"), Reject(400)),
    ("chunk-data-no-crlf", req(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello0\r\n\r\n" + SMUGGLED),
     Reject(400)),
    ("chunk-lf-only", req(b"Transfer-Encoding: chunked\r\n", b"5\nhello\n0\n\n"), Reject(400)),
    ("chunk-bare-cr", req(b"Transfer-Encoding: chunked\r\n", b"5\rhello\r\n0\r\n\r\n"), Reject(400)),
    ("chunk-ext-valid", req(b"Transfer-Encoding: chunked\r\n", b"5;a=b;c=\"d e\" ;f\r\nhello\r\n0;z=1\r\n\r\n"),
     Accept(CHUNKED_HELLO)),
    ("chunk-ext-empty-name", req(b"Transfer-Encoding: chunked\r\n", b"5;\r\nhello\r\n0\r\n\r\n"), Reject(400)),
    ("chunk-ext-empty-value", req(b"Transfer-Encoding: chunked\r\n", b"5;a=\r\nhello\r\n0\r\n\r\n"), Reject(400)),
    ("chunk-ext-bad-char", req(b"Transfer-Encoding: chunked\r\n", b"5;a=b@c\r\nhello\r\n0\r\n\r\n"), Reject(400)),
    ("chunk-ext-open-quote", req(b"Transfer-Encoding: chunked\r\n", b"5;a=\"b\r\nhello\r\n0\r\n\r\n"), Reject(400)),
    ("chunk-ext-nul", req(b"Transfer-Encoding: chunked\r\n", b"5;a\x00\r\nhello\r\n0\r\n\r\n"), Reject(400)),
    ("chunk-ext-lf", req(b"Transfer-Encoding: chunked\r\n", b"5;a=b\nhello\r\n0\r\n\r\n"), Reject(400)),
    ("chunk-ext-oversized", req(b"Transfer-Encoding: chunked\r\n", b"5;a=" + b"b" * 5000 + b"\r\nhello\r\n0\r\n\r\n"),
     Reject(400)),
    ("chunk-trailer-dropped", req(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
     Accept(CHUNKED_HELLO)),
    ("chunk-trailer-framing-fields", req(b"Transfer-Encoding: chunked\r\n",
                                         b"5\r\nhello\r\n0\r\nContent-Length: 50\r\nTransfer-Encoding: x\r\n\r\n"),
     Accept(CHUNKED_HELLO)),
    ("chunk-trailer-obs-fold", req(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\nX-T: 1\r\n 2\r\n\r\n"),
     Reject(400)),
    ("chunk-trailer-oversized", req(b"Transfer-Encoding: chunked\r\n",
                                    b"5\r\nhello\r\n0\r\nX-T: " + b"t" * 20000 + b"\r\n\r\n"),
     Reject(400, 431, partial_ok=True)),
    ("chunked-then-pipelined", req(b"Transfer-Encoding: chunked\r\n", b"0\r\n\r\n" + SMUGGLED),
     Accept(Want(framing="any"), Want(method=b"GET", target=b"/smuggled", framing=None))),

    # -- line endings and field syntax ---------------------------------------------
    ("lf-only-head", b"GET /echo HTTP/1.1\nHost: a.example\n\n", Reject(400)),
    ("lf-in-one-line", b"GET /echo HTTP/1.1\r\nHost: a.example\nX-A: b\r\n\r\n", Reject(400)),
    ("lf-after-request-line", b"GET /echo HTTP/1.1\nHost: a.example\r\n\r\n", Reject(400)),
    ("bare-cr-between-fields", b"GET /echo HTTP/1.1\r\nHost: a.example\rX-A: b\r\n\r\n", Reject(400)),
    ("cr-in-value", req(b"X-A: a\rTransfer-Encoding: chunked\r\n", method=b"GET"), Reject(400)),
    ("nul-in-value", req(b"X-A: a\x00b\r\n", method=b"GET"), Reject(400)),
    ("nul-in-name", req(b"X-\x00A: b\r\n", method=b"GET"), Reject(400)),
    ("nul-in-target", b"GET /ec\x00ho HTTP/1.1\r\n" + H + b"\r\n", Reject(400)),
    ("del-in-value", req(b"X-A: a\x7fb\r\n", method=b"GET"), Reject(400)),
    ("obs-fold", req(b"X-A: a\r\n b\r\n", method=b"GET"), Reject(400)),
    ("obs-fold-tab", req(b"X-A: a\r\n\tContent-Length: 5\r\n", b"hello"), Reject(400)),
    ("ws-before-first-field", b"GET /echo HTTP/1.1\r\n Host: a.example\r\n\r\n", Reject(400)),
    ("space-before-colon", b"GET /echo HTTP/1.1\r\nHost : a.example\r\n\r\n", Reject(400)),
    ("tab-before-colon", req(b"X-A\t: b\r\n", method=b"GET"), Reject(400)),
    ("empty-field-name", req(b": b\r\n", method=b"GET"), Reject(400)),
    ("field-without-colon", req(b"X-A b\r\n", method=b"GET"), Reject(400)),
    ("space-in-field-name", req(b"X A: b\r\n", method=b"GET"), Reject(400)),
    ("bad-char-in-field-name", req(b"X(A): b\r\n", method=b"GET"), Reject(400)),
    ("obs-text-value-kept", req(b"X-A: caf\xe9 \xff\r\n", method=b"GET"),
     Accept(Want(method=b"GET", framing=None, fields=[(b"X-A", b"caf\xe9 \xff")]))),

    # -- Host -----------------------------------------------------------------------
    ("host-missing", b"GET /echo HTTP/1.1\r\nX-A: b\r\n\r\n", Reject(400)),
    ("host-twice", req(b"Host: b.example\r\n", method=b"GET"), Reject(400)),
    ("host-space", b"GET /echo HTTP/1.1\r\nHost: a.example b.example\r\n\r\n", Reject(400)),
    ("host-userinfo", b"GET /echo HTTP/1.1\r\nHost: evil@a.example\r\n\r\n", Reject(400)),
    ("host-slash", b"GET /echo HTTP/1.1\r\nHost: a.example/x\r\n\r\n", Reject(400)),

    # -- request targets --------------------------------------------------------------
    ("absolute-form-host-disagrees", b"GET http://evil.example/echo HTTP/1.1\r\n" + H + b"\r\n",
     Either(Reject(400), Accept(Want(method=b"GET", host=b"evil.example", framing=None)))),
    ("absolute-form-host-agrees", b"GET http://a.example/echo?x=1 HTTP/1.1\r\n" + H + b"\r\n",
     Accept(Want(method=b"GET", target=b"/echo?x=1", framing=None))),
    ("absolute-form-empty-path", b"GET http://a.example HTTP/1.1\r\n" + H + b"\r\n",
     Accept(Want(method=b"GET", target=b"/", framing=None))),
    ("absolute-form-no-host", b"GET http://a.example/echo HTTP/1.1\r\n\r\n", Reject(400)),
    ("absolute-form-userinfo", b"GET http://u:p@a.example/echo HTTP/1.1\r\n" + H + b"\r\n", Reject(400)),
    ("absolute-form-other-scheme", b"GET ftp://a.example/echo HTTP/1.1\r\n" + H + b"\r\n", Reject(400)),
    ("authority-form-connect", b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
     Reject(400, 405, 501)),
    ("authority-form-get", b"GET a.example:80 HTTP/1.1\r\n" + H + b"\r\n", Reject(400)),
    ("asterisk-form-get", b"GET * HTTP/1.1\r\n" + H + b"\r\n", Reject(400)),
    ("space-in-target", b"GET /ec ho HTTP/1.1\r\n" + H + b"\r\n", Reject(400)),
    ("obs-text-in-target", b"GET /caf\xe9 HTTP/1.1\r\n" + H + b"\r\n", Reject(400)),

    # -- sizes ------------------------------------------------------------------------
    ("field-over-max-header-size", req(b"X-Big: " + b"b" * 20000 + b"\r\n", method=b"GET"), Reject(431)),
    ("too-many-fields", req(b"".join(b"X-F%d: v\r\n" % i for i in range(150)), method=b"GET"), Reject(431)),
    ("target-over-max-header-size", b"GET /" + b"t" * 20000 + b" HTTP/1.1\r\n" + H + b"\r\n", Reject(414, 431)),
    ("leading-empty-lines-ok", b"\r\n\r\n" + GOOD_GET, Accept(Want(method=b"GET", target=b"/echo?first",
                                                                     framing=None))),
    ("leading-empty-lines-flood", b"\r\n" * 40 + GOOD_GET, Reject(400)),

    # -- versions and methods -----------------------------------------------------------
    ("http09", b"GET /\r\n", Reject(400, 408)),
    ("http09-blank-line", b"GET /echo\r\n\r\n", Reject(400)),
    ("version-1.2", b"GET /echo HTTP/1.2\r\n" + H + b"\r\n",
     Either(Reject(505, 400), Accept(Want(method=b"GET", framing=None)))),
    ("version-2.0", b"GET /echo HTTP/2.0\r\n" + H + b"\r\n", Reject(505, 400)),
    ("version-0.9", b"GET /echo HTTP/0.9\r\n" + H + b"\r\n", Reject(505, 400)),
    ("version-lowercase", b"GET /echo http/1.1\r\n" + H + b"\r\n", Reject(400)),
    ("version-1.10", b"GET /echo HTTP/1.10\r\n" + H + b"\r\n", Reject(400)),
    ("version-leading-zero", b"GET /echo HTTP/01.1\r\n" + H + b"\r\n", Reject(400)),
    ("version-trailing-space", b"GET /echo HTTP/1.1 \r\n" + H + b"\r\n", Reject(400)),
    ("method-empty", b" /echo HTTP/1.1\r\n" + H + b"\r\n", Reject(400)),
    ("method-bad-char", b"GE(T /echo HTTP/1.1\r\n" + H + b"\r\n", Reject(400)),
    ("method-high-bit", b"G\xc9T /echo HTTP/1.1\r\n" + H + b"\r\n", Reject(400)),
    ("double-space", b"GET  /echo HTTP/1.1\r\n" + H + b"\r\n", Reject(400)),
    ("tab-separators", b"GET\t/echo\tHTTP/1.1\r\n" + H + b"\r\n", Reject(400)),
    ("method-lowercase-forwarded", b"get /echo HTTP/1.1\r\n" + H + b"\r\n",
     Accept(Want(method=b"get", framing=None))),

    # -- pipelining past an error -----------------------------------------------------------
    ("pipeline-good-clte-good", GOOD_GET + req(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", HELLO_CHUNKED)
     + GOOD_LAST, Reject(400, pre=[Want(method=b"GET", target=b"/echo?first", framing=None)])),
    ("pipeline-good-lf-good", GOOD_GET + b"GET /echo HTTP/1.1\nHost: a.example\n\n" + GOOD_LAST,
     Reject(400, pre=[Want(method=b"GET", target=b"/echo?first", framing=None)])),
    ("pipeline-good-badchunk-good", GOOD_GET + req(b"Transfer-Encoding: chunked\r\n", b"5x\r\nhello\r\n0\r\n\r\n")
     + GOOD_LAST, Reject(400, pre=[Want(method=b"GET", target=b"/echo?first", framing=None)])),
    ("pipeline-chunked-badchunk", req(b"Transfer-Encoding: chunked\r\n", HELLO_CHUNKED)
     + req(b"Transfer-Encoding: chunked\r\n", b"-5\r\nhello\r\n0\r\n\r\n") + GOOD_LAST,
     Reject(400, pre=[CHUNKED_HELLO])),
    ("pipeline-bad-version-then-smuggle", b"GET /echo HTTP/1.1 \r\n" + H + b"\r\n" + SMUGGLED, Reject(400)),
    ("pipeline-two-good", GOOD_GET + req(b"Content-Length: 5\r\n", b"hello") + GOOD_LAST,
     Accept(Want(method=b"GET", target=b"/echo?first", framing=None), POST_HELLO,
            Want(method=b"GET", target=b"/echo?last", framing=None))),
]


# ---- the two upstreams ------------------------------------------------------------------

class Capture:
    name = "capture"

    def __init__(self):
        self.up = CaptureUpstream()
        self.url = self.up.url

    def streams(self, n_expected):
        self.up.settle(quiet=0.25 if n_expected else 0.4)
        return self.up.streams()

    def closed(self):
        return self.up.closed()

    def stop(self):
        self.up.stop()


class Logging:
    """upstream.py: what it logs is head + raw body of each request it parsed."""
    name = "logging"

    def __init__(self):
        self.up = Upstream("log")
        self.url = self.up.url

    def streams(self, n_expected):
        if n_expected:
            self.up.wait_requests(n_expected, timeout=3)
        time.sleep(0.3)
        by_conn = {}
        for r in self.up.requests():
            by_conn.setdefault(r.conn, []).append(r.head + (r.raw_body or b""))
        return [b"".join(v) for _, v in sorted(by_conn.items())]

    def closed(self):
        return None

    def stop(self):
        self.up.stop()
        shutil.rmtree(self.up.dir, ignore_errors=True)


@pytest.fixture(params=[Capture, Logging], ids=["capture", "logging"])
def proxied(request):
    """(edgeproxy, upstream) with a fresh pair for every case."""
    up = request.param()
    port = free_port()
    try:
        p = EdgeProxy(config(port, up.url), port)
    except Exception:
        up.stop()
        raise
    yield p, up
    p.stop()
    up.stop()


# ---- checks --------------------------------------------------------------------------------

def read_responses(c, n):
    """Up to n responses; an exception in place of the one that did not come."""
    out = []
    for _ in range(n):
        try:
            out.append(c.read_response())
        except (EOFError, ConnectionResetError, socket.timeout, ValueError) as e:
            out.append(e)
            break
    return out


def upstream_requests(streams, closed=None):
    """closed: for each stream, whether that connection has ended; where it has,
    an unfinished request at its end is allowed (given a well-formed head)."""
    reqs, problems = [], []
    for i, s in enumerate(streams):
        r, p, consumed = parse_stream(s)
        reqs += r
        problems += [f"upstream connection {i}: {x}" for x in p]
        if consumed == len(s):
            continue
        rest = s[consumed:]
        if closed and closed[i] and b"\r\n\r\n" in rest:
            _, p2, _ = parse_stream(rest.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
            if not p2:
                continue
        problems.append(f"upstream connection {i}: {len(s) - consumed} bytes that are no complete "
                        f"request: {rest[:200]!r}")
    return reqs, problems


def check_want(w, r, where):
    assert r.method == w.method and r.target == w.target, f"{where}: got {r.line!r}"
    assert r.all(b"host") == [w.host], f"{where}: Host {r.all(b'host')}"
    if w.framing != "any":
        assert r.framing == w.framing, f"{where}: framing {r.framing}, want {w.framing}: {r.raw_head!r}"
    assert r.body == w.body, f"{where}: body {r.body[:100]!r}, want {w.body[:100]!r}"
    for name, value in w.fields:
        assert r.all(name) == [value], f"{where}: {name!r} is {r.all(name)}"


def from_upstream(resp):
    return not isinstance(resp, Exception) and resp.get("x-upstream") is not None


def check_upstream(up, wants, partial_ok=False):
    streams = up.streams(len(wants))
    closed = up.closed() if partial_ok else None
    reqs, problems = upstream_requests(streams, closed)
    assert not problems, f"the upstream received ambiguous bytes: {problems}"
    assert len(reqs) == len(wants), (f"the upstream received {len(reqs)} requests, want {len(wants)}: "
                                     f"{[r.raw[:300] for r in reqs]}")
    for i, (w, r) in enumerate(zip(wants, reqs)):
        check_want(w, r, f"upstream request {i}")
    if up.name == "capture" and not partial_ok:
        total = sum(len(s) for s in streams)
        assert total == sum(len(r.raw) for r in reqs), "the upstream received bytes beyond the requests"


def run_reject(c, up, exp, first=None):
    resps = ([first] if first is not None else []) + read_responses(c, len(exp.pre) + 1 - (first is not None))
    for i in range(len(exp.pre)):
        assert from_upstream(resps[i]), f"response {i} should be the upstream's: {resps[i]!r}"
    last = resps[len(exp.pre)] if len(resps) > len(exp.pre) else None
    assert not isinstance(last, Exception) and last is not None, f"no error response: {last!r}"
    assert last.status in exp.statuses and not from_upstream(last), (
        f"want {exp.statuses} from edgeproxy, got {last.status_line!r} {last.headers} {last.body[:200]!r}")
    assert c.at_eof(timeout=3), "the connection stayed open after the error"
    check_upstream(up, exp.pre, exp.partial_ok)


def run_accept(c, up, exp, first=None):
    resps = ([first] if first is not None else []) + read_responses(c, len(exp.wants) - (first is not None))
    for i, r in enumerate(resps):
        assert from_upstream(r), f"response {i} should be the upstream's: {r!r}"
    assert len(resps) == len(exp.wants)
    check_upstream(up, exp.wants)


@pytest.mark.parametrize("name,data,exp", CASES, ids=[c[0] for c in CASES])
def test_smuggling_table(proxied, name, data, exp):
    p, up = proxied
    with HttpConn(p.port, timeout=5) as c:
        c.send(data)
        if isinstance(exp, Reject):
            run_reject(c, up, exp)
        elif isinstance(exp, Accept):
            run_accept(c, up, exp)
        else:
            first = read_responses(c, 1)[0]
            if from_upstream(first):
                run_accept(c, up, exp.accept, first)
            else:
                run_reject(c, up, exp.reject, first)


def test_table_is_big_enough():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


# ---- the same request arriving in pieces --------------------------------------------------------

TRICKLED = ["clte", "tecl", "chunk-0x", "chunk-data-no-crlf", "chunk-ext-valid", "chunk-trailer-framing-fields",
            "pipeline-chunked-badchunk", "obs-fold-tab", "chunked-then-pipelined", "pipeline-two-good"]


@pytest.mark.parametrize("name,data,exp", [c for c in CASES if c[0] in TRICKLED], ids=[c[0] for c in CASES if c[0] in TRICKLED])
def test_smuggling_trickled(name, data, exp):
    """The same requests in 3-byte pieces end the same way (a parser resuming
    mid-token must not lose state). A streaming proxy relays a head before its body
    is known to be bad, so here the upstream may hold the start of a well-formed
    request that never completes, on a connection that edgeproxy closed."""
    up = Capture()
    try:
        port = free_port()
        with EdgeProxy(config(port, up.url), port) as p, HttpConn(p.port, timeout=5) as c:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(0, len(data), 3):
                c.send(data[i:i + 3])
                time.sleep(0.002)
            if isinstance(exp, Reject):
                run_reject(c, up, Reject(*exp.statuses, pre=exp.pre, partial_ok=True))
            else:
                run_accept(c, up, exp)
    finally:
        up.stop()


# ---- the response side ------------------------------------------------------------------------

OK_FOLLOWUP = b"HTTP/1.1 200 OK\r\nX-Upstream: capture\r\nContent-Length: 4\r\n\r\nfine"
MARK = b"SMUGGLED"

RESPONSE_CASES = [
    # (name, what the upstream answers to GET /bad, then closes?, expectation)
    ("clte", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
     + MARK, True, "502"),
    ("tecl", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n0\r\n\r\n" + MARK,
     True, "502"),
    ("clte-capital", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: Chunked\r\n\r\nhello", True, "502"),
    ("cl-duplicate-differ", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 8\r\n\r\nok" + MARK[:6],
     True, "502"),
    ("cl-duplicate-equal", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", True,
     "502-or-ok"),
    ("cl-list", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 8\r\n\r\nok" + MARK[:6], True, "502"),
    ("cl-negative", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n" + MARK, True, "502"),
    ("cl-plus", b"HTTP/1.1 200 OK\r\nContent-Length: +8\r\n\r\n" + MARK, True, "502"),
    ("cl-hex", b"HTTP/1.1 200 OK\r\nContent-Length: 0x8\r\n\r\n" + MARK, True, "502"),
    ("cl-overflow", b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551624\r\n\r\n" + MARK, True, "502"),
    ("cl-space-before-colon", b"HTTP/1.1 200 OK\r\nContent-Length : 8\r\n\r\n" + MARK, True, "502"),
    ("te-twice", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"8\r\n" + MARK + b"\r\n0\r\n\r\n", True, "502"),
    ("te-http10", b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n" + MARK + b"\r\n0\r\n\r\n",
     True, "502"),
    ("obs-fold", b"HTTP/1.1 200 OK\r\nX-A: a\r\n Content-Length: 8\r\nContent-Length: 2\r\n\r\nok", True, "502"),
    ("lf-only-head", b"HTTP/1.1 200 OK\nContent-Length: 8\n\n" + MARK, True, "502"),
    ("nul-in-field", b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 8\r\n\r\n" + MARK, True, "502"),
    ("bad-status-code", b"HTTP/1.1 20 OK\r\nContent-Length: 8\r\n\r\n" + MARK, True, "502"),
    ("status-999", b"HTTP/1.1 999 Odd\r\nContent-Length: 8\r\n\r\n" + MARK, True, "502"),
    ("garbage", MARK + b" / HTTP/1.1\r\n\r\n", True, "502"),
    ("http09-style-body", MARK + b"\r\n", True, "502"),
    ("nothing", b"", True, "502"),
    ("head-too-large", b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 40000 + b"\r\nContent-Length: 8\r\n\r\n" + MARK,
     True, "502"),
    # a valid head, then broken chunked framing: too late for a 502
    ("chunk-0x", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x8\r\n" + MARK + b"\r\n0\r\n\r\n",
     True, "502-or-truncated"),
    ("chunk-leading-space", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n 8\r\n" + MARK
     + b"\r\n0\r\n\r\n", True, "502-or-truncated"),
    ("chunk-negative", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-8\r\n" + MARK + b"\r\n0\r\n\r\n",
     True, "502-or-truncated"),
    ("chunk-huge", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n" + MARK
     + b"\r\n0\r\n\r\n", True, "502-or-truncated"),
    ("chunk-lf-only", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\n" + MARK + b"\n0\n\n",
     True, "502-or-truncated"),
    ("chunk-data-longer", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok" + MARK
     + b"\r\n0\r\n\r\n", True, "502-or-truncated"),
    ("chunk-bad-after-good", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n" + MARK
     + b"\r\n0\r\n\r\n", True, "502-or-truncated"),
    ("cl-body-cut-short", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nok", True, "502-or-truncated"),
    # codings edgeproxy does not decode must not be stripped from a body that still has them
    ("te-gzip-chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n8\r\n" + MARK
     + b"\r\n0\r\n\r\n", True, "502-or-coding-kept"),
    ("te-xchunked-close-delimited", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n" + MARK,
     True, "502-or-coding-kept"),
    # stray bytes after a complete response: the client must never see them, and the
    # upstream connection must not be reused with them still unread
    ("bytes-after-cl-body", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
     b"HTTP/1.1 200 OK\r\nX-Upstream: capture\r\nContent-Length: 8\r\n\r\n" + MARK, False, "ok-stray"),
    ("body-on-204", b"HTTP/1.1 204 No Content\r\nContent-Length: 8\r\n\r\n" + MARK, False, "ok-stray"),
    ("body-on-304", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 8\r\n\r\n" + MARK, False, "ok-stray"),
    ("bytes-after-last-chunk", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
     b"HTTP/1.1 200 OK\r\nX-Upstream: capture\r\nContent-Length: 8\r\n\r\n" + MARK, False, "ok-stray"),
    ("trailer-with-framing-fields", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
     b"Content-Length: 8\r\nX-T: 1\r\n\r\n", False, "ok"),
]


def response_upstream(reply, close):
    def answer(r, index):
        if r.target == b"/bad":
            return reply, close
        return OK_FOLLOWUP, False
    return CaptureUpstream(answer)


def all_bytes(c):
    try:
        return c.read_all()
    except socket.timeout:
        return c.buf


@pytest.mark.parametrize("name,reply,close,expect", RESPONSE_CASES, ids=[c[0] for c in RESPONSE_CASES])
def test_bad_upstream_response(name, reply, close, expect):
    with response_upstream(reply, close) as cap:
        port = free_port()
        with EdgeProxy(config(port, cap.url), port) as p, HttpConn(p.port, timeout=5) as c:
            c.send(b"GET /bad HTTP/1.1\r\n" + H + b"\r\n")
            resp = c.read_head()
            seen = resp.head
            if resp.status == 502:
                assert expect.startswith("502"), f"{expect}: got 502"
                body = b"".join(c.iter_body(resp))
                seen += body
                assert resp.get("x-upstream") is None and len(body) < 100
            elif expect == "502-or-truncated":
                assert resp.status == 200, resp
                got = b""
                with pytest.raises((EOFError, ValueError, ConnectionResetError)):
                    for piece in c.iter_body(resp):
                        got += piece  # the client must learn the body is incomplete
                seen += got + all_bytes(c)
            elif expect == "502-or-coding-kept":
                codings = [t for t in resp.tokens("transfer-encoding") if t != "chunked"]
                assert codings, ("the upstream's transfer coding was dropped from a body that still "
                                 f"has it: {resp.status_line!r} {resp.headers}")
                return
            elif expect == "502-or-ok":
                assert resp.status == 200 and resp.all("content-length") == ["2"], resp.headers
                assert b"".join(c.iter_body(resp)) == b"ok"
            else:  # "ok" or "ok-stray": a valid response, maybe with stray bytes after it
                assert resp.status in (200, 204, 304), resp
                if resp.status == 204:  # RFC 9110 §8.6: MUST NOT send Content-Length in a 204
                    assert resp.get("content-length") is None, resp.headers
                body = b"".join(c.iter_body(resp))
                assert body in (b"ok", b""), body
                seen += body
                assert resp.trailers == [] and resp.get("content-length") in (None, "2", "8")
            assert MARK not in seen, f"upstream bytes reached the client: {seen[:300]!r}"
            if expect == "502-or-truncated":
                return
            if c.at_eof(timeout=0.3):
                return  # closed after the error: nothing more to check on this connection
            # still open: the next request gets a clean answer, on a fresh upstream connection
            before = cap.connections()
            c.send(b"GET /next HTTP/1.1\r\n" + H + b"\r\n")
            r2 = c.read_response()
            assert MARK not in r2.head + r2.body
            if r2.status == 503 and r2.get("x-upstream") is None:
                return  # SPEC §3: a server that failed is out of rotation for a while
            assert (r2.status, r2.body) == (200, b"fine"), (r2, r2.body)
            if expect == "ok-stray":
                assert cap.connections() == before + 1, "an upstream connection with stray bytes was reused"


def test_broken_upstream_never_takes_the_proxy_down():
    """Every bad response in turn, on one edgeproxy: it keeps answering."""
    replies = {b"/bad%d" % i: c[1] for i, c in enumerate(RESPONSE_CASES)}

    def answer(r, index):
        return (replies[r.target], True) if r.target in replies else (OK_FOLLOWUP, False)

    with CaptureUpstream(answer) as cap:
        port = free_port()
        with EdgeProxy(config(port, cap.url), port) as p:
            for target in replies:
                with HttpConn(p.port, timeout=5) as c:
                    c.send(b"GET " + target + b" HTTP/1.1\r\n" + H + b"\r\n")
                    try:
                        c.read_response()
                    except (EOFError, ValueError, ConnectionResetError):
                        pass
            deadline, body = time.time() + 5, None
            while time.time() < deadline and body != b"fine":  # a passive mark-down expires
                with HttpConn(p.port, timeout=5) as c:
                    c.send(b"GET /ok HTTP/1.1\r\n" + H + b"\r\n")
                    body = c.read_response().body
                time.sleep(0.2)
            assert body == b"fine"
            assert p.proc.poll() is None
