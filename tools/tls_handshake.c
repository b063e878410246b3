/* tls_handshake.c - load client for full TLS 1.2 handshakes, one request per connection,
 * never resuming a session (used by tools/bench.py, scenario "tls"; SPEC §5).
 *
 *   cc -O2 -o tls_handshake tools/tls_handshake.c -lssl -lcrypto   (Debian: libssl-dev)
 *   tls_handshake PORT CONNS SECONDS [PATH [GROUPS [CIPHERS [SNI]]]]
 *
 * Keeps CONNS connections to 127.0.0.1:PORT in flight (one thread, epoll, non-blocking).
 * Each one: TCP connect, full TLS 1.2 handshake, `GET PATH` with `Connection: close`,
 * the whole response read, then read on until the server closes (so the TIME_WAIT
 * stays on the server side). After SECONDS no new connection starts and the ones in
 * flight finish (up to 5 s); the elapsed time includes that drain.
 *
 * Why it cannot resume: one SSL_CTX with SSL_SESS_CACHE_OFF and SSL_OP_NO_TICKET, a
 * fresh SSL per connection, and SSL_set_session is never called, so every ClientHello
 * carries an empty session id and no ticket. It still checks: every completed
 * handshake is counted as new or reused by SSL_session_reused(), and reused must be 0.
 *
 * Prints key=value lines: ok (connections with a complete 200 response), new, reused,
 * failed, first_error, secs, client_cpu (utime+stime seconds of this process), version,
 * cipher, group (of the first connection) and mixed=1 if any later one differed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { S_FREE, S_CONNECTING, S_HANDSHAKE, S_WRITE, S_READ };

struct conn {
	enum state st;
	int fd;
	SSL *ssl;
	double started;
	size_t sent, got;
	long need; /* head + Content-Length once the head is in, else -1 */
	int complete;
	char buf[8192];
};

static SSL_CTX *ctx;
static int ep, port;
static const char *sni;
static char req[1024];
static size_t req_len;
static long n_ok, n_new, n_reused, n_failed;
static char first_error[256];
static char version[32], cipher[64], group[32];
static int mixed;

/* Accepts the chain without building or checking it: this replaces X509_verify_cert,
 * which OpenSSL otherwise runs even under SSL_VERIFY_NONE. */
static int accept_chain(X509_STORE_CTX *x, void *arg)
{
	(void)x;
	(void)arg;
	return 1;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fail(struct conn *c, const char *what)
{
	n_failed++;
	if (!first_error[0]) {
		unsigned long e = ERR_peek_error();
		char es[160] = "";
		if (e)
			ERR_error_string_n(e, es, sizeof(es));
		snprintf(first_error, sizeof(first_error), "%s%s%s (errno %d)", what, es[0] ? ": " : "", es,
			 errno);
	}
	ERR_clear_error();
	(void)c;
}

static void finish(struct conn *c)
{
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd); /* epoll forgets a closed fd by itself */
	c->ssl = NULL;
	c->fd = -1;
	c->st = S_FREE;
}

static void want(struct conn *c, unsigned events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };
	if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static int start(struct conn *c)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fail(c, "socket");
		return -1;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->ssl = NULL;
	c->sent = c->got = 0;
	c->need = -1;
	c->complete = 0;
	c->started = now();
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		fail(c, "connect");
		finish(c);
		return -1;
	}
	c->st = S_CONNECTING;
	want(c, EPOLLOUT);
	return 0;
}

/* After the handshake: record what was negotiated, count new vs reused. */
static void negotiated(struct conn *c)
{
	char v[32], ci[64], g[32];
	snprintf(v, sizeof(v), "%s", SSL_get_version(c->ssl));
	snprintf(ci, sizeof(ci), "%s", SSL_get_cipher_name(c->ssl));
	const char *gn = SSL_group_to_name(c->ssl, SSL_get_negotiated_group(c->ssl));
	snprintf(g, sizeof(g), "%s", gn ? gn : "?");
	if (!version[0]) {
		memcpy(version, v, sizeof(v));
		memcpy(cipher, ci, sizeof(ci));
		memcpy(group, g, sizeof(g));
	} else if (strcmp(v, version) || strcmp(ci, cipher) || strcmp(g, group)) {
		mixed = 1;
	}
	if (SSL_session_reused(c->ssl))
		n_reused++;
	else
		n_new++;
}

/* Parses the response head once it is complete: status must be 200, and the length
 * of the whole response comes from Content-Length. Returns -1 on a bad response. */
static int parse_head(struct conn *c)
{
	char *end = memmem(c->buf, c->got, "\r\n\r\n", 4);
	if (!end)
		return c->got < sizeof(c->buf) ? 0 : -1;
	if (c->got < 12 || memcmp(c->buf, "HTTP/1.", 7) || memcmp(c->buf + 8, " 200", 4))
		return -1;
	long cl = -1;
	for (char *p = c->buf; p < end; p++) {
		if ((p == c->buf || p[-1] == '\n') && !strncasecmp(p, "content-length:", 15)) {
			cl = strtol(p + 15, NULL, 10);
			break;
		}
	}
	if (cl < 0)
		return -1; /* the bench's upstreams always send one */
	c->need = (end + 4 - c->buf) + cl;
	return 0;
}

static void step(struct conn *c)
{
	int r, err;
	for (;;) {
		switch (c->st) {
		case S_CONNECTING: {
			int e = 0;
			socklen_t l = sizeof(e);
			getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &l);
			if (e) {
				errno = e;
				fail(c, "connect");
				finish(c);
				return;
			}
			c->ssl = SSL_new(ctx);
			SSL_set_fd(c->ssl, c->fd);
			SSL_set_tlsext_host_name(c->ssl, sni);
			SSL_set_connect_state(c->ssl);
			c->st = S_HANDSHAKE;
			continue;
		}
		case S_HANDSHAKE:
			r = SSL_do_handshake(c->ssl);
			if (r == 1) {
				negotiated(c);
				c->st = S_WRITE;
				continue;
			}
			err = SSL_get_error(c->ssl, r);
			if (err == SSL_ERROR_WANT_READ) {
				want(c, EPOLLIN);
				return;
			}
			if (err == SSL_ERROR_WANT_WRITE) {
				want(c, EPOLLOUT);
				return;
			}
			fail(c, "handshake");
			finish(c);
			return;
		case S_WRITE:
			r = SSL_write(c->ssl, req + c->sent, (int)(req_len - c->sent));
			if (r > 0) {
				c->sent += (size_t)r;
				if (c->sent == req_len)
					c->st = S_READ;
				continue;
			}
			err = SSL_get_error(c->ssl, r);
			if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
				want(c, err == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
				return;
			}
			fail(c, "write");
			finish(c);
			return;
		case S_READ: {
			char sink[16384];
			char *dst = c->got < sizeof(c->buf) ? c->buf + c->got : sink;
			int room = c->got < sizeof(c->buf) ? (int)(sizeof(c->buf) - c->got) : (int)sizeof(sink);
			r = SSL_read(c->ssl, dst, room);
			if (r > 0) {
				c->got += (size_t)r;
				if (c->need < 0 && parse_head(c) < 0) {
					fail(c, "bad response (want 200 with Content-Length)");
					finish(c);
					return;
				}
				if (c->need >= 0 && (long)c->got >= c->need && !c->complete) {
					c->complete = 1;
					n_ok++;
				}
				continue;
			}
			err = SSL_get_error(c->ssl, r);
			if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
				want(c, err == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
				return;
			}
			/* close_notify or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF): the server closed */
			if (!c->complete)
				fail(c, "closed before the whole response");
			finish(c);
			return;
		}
		case S_FREE:
			return;
		}
	}
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s PORT CONNS SECONDS [PATH [GROUPS [CIPHERS [SNI]]]]\n", argv[0]);
		return 2;
	}
	port = atoi(argv[1]);
	int nconns = atoi(argv[2]);
	double seconds = atof(argv[3]);
	const char *path = argc > 4 ? argv[4] : "/";
	const char *groups = argc > 5 ? argv[5] : "X25519:P-256";
	const char *ciphers = argc > 6 ? argv[6] : "ECDHE-ECDSA-AES128-GCM-SHA256";
	sni = argc > 7 ? argv[7] : "bench.local";
	if (port <= 0 || nconns <= 0 || seconds <= 0)
		return 2;
	req_len = (size_t)snprintf(req, sizeof(req),
				   "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tls_handshake\r\n"
				   "Connection: close\r\n\r\n",
				   path, sni);

	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION) || !SSL_CTX_set_cipher_list(ctx, ciphers) ||
	    !SSL_CTX_set1_groups_list(ctx, groups)) {
		ERR_print_errors_fp(stderr);
		return 2;
	}
	/* No resumption, by construction: no client session cache, no tickets, and
	 * SSL_set_session is never called. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* The server's ECDHE signature is still verified (the TLS 1.2 client always does
	 * that); the chain is not, as it is our own self-signed certificate. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, accept_chain, NULL);

	ep = epoll_create1(EPOLL_CLOEXEC);
	struct conn *cs = calloc((size_t)nconns, sizeof(*cs));
	struct epoll_event *evs = calloc((size_t)nconns, sizeof(*evs));
	if (ep < 0 || !cs || !evs)
		return 2;
	double t0 = now(), stop = t0 + seconds, hard = stop + 5.0, t = t0;
	for (int i = 0; i < nconns; i++) {
		cs[i].fd = -1;
		start(&cs[i]);
	}
	long stuck = 0;
	for (;;) {
		int n = epoll_wait(ep, evs, nconns, 100);
		for (int i = 0; i < n; i++)
			step(evs[i].data.ptr);
		t = now();
		int busy = 0;
		for (int i = 0; i < nconns; i++) {
			struct conn *c = &cs[i];
			if (c->st == S_FREE) {
				if (t < stop)
					start(c), busy++;
			} else if (t > hard || t - c->started > 10.0) {
				stuck++;
				if (!first_error[0])
					snprintf(first_error, sizeof(first_error),
						 "connection still open %.1f s after it started (%s)", t - c->started,
						 c->complete ? "server did not close after Connection: close"
							     : "no complete response");
				n_failed++;
				finish(c);
			} else {
				busy++;
			}
		}
		if (!busy && t >= stop)
			break;
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("ok=%ld\nnew=%ld\nreused=%ld\nfailed=%ld\nstuck=%ld\nsecs=%.4f\nclient_cpu=%.4f\n"
	       "version=%s\ncipher=%s\ngroup=%s\nmixed=%d\nfirst_error=%s\n",
	       n_ok, n_new, n_reused, n_failed, stuck, t - t0,
	       ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
	       version, cipher, group, mixed, first_error);
	return 0;
}
