/* http_client.c - the ACME client's transport: a non-blocking connect, BearSSL's
 * client engine in half-duplex mode (a request, then its response: one 16 KiB
 * buffer), and the project's strict response parser (http_parse.h) for the head and
 * chunked bodies. Names are resolved in a child process (child.h) because
 * getaddrinfo blocks; IP literals and "localhost" need no lookup. */
#include "http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "analyzer.h"
#include "child.h"
#include "der.h"
#include "ec_impl.h"
#include "http_parse.h"
#include "rand.h"
#include "timefmt.h"
#include "tls_impl.h"

#ifndef EDGEPROXY_VERSION
#define EDGEPROXY_VERSION "dev"
#endif

#define MAX_ADDRS 4
#define RESOLVE_TTL 300.0  /* seconds a lookup is reused */
#define RESOLVE_TIMEOUT 20.0

/* ---- trust anchors --------------------------------------------------------------- */

struct dn_buf {
	unsigned char *p;
	size_t len, cap;
	bool bad;
};

static void dn_append(void *ctx, const void *data, size_t n)
{
	struct dn_buf *b = ctx;
	if (b->bad)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		while (cap < b->len + n)
			cap *= 2;
		unsigned char *p = realloc(b->p, cap);
		if (!p) {
			b->bad = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static unsigned char *dup_bytes(const unsigned char *p, size_t n)
{
	unsigned char *d = malloc(n ? n : 1);
	if (d)
		memcpy(d, p, n);
	return d;
}

static void anchor_free(br_x509_trust_anchor *ta)
{
	free(ta->dn.data);
	if (ta->pkey.key_type == BR_KEYTYPE_RSA) {
		free(ta->pkey.key.rsa.n);
		free(ta->pkey.key.rsa.e);
	} else {
		free(ta->pkey.key.ec.q);
	}
}

struct trust_acc {
	struct http_trust *t;
	char *err;
	size_t errlen;
	int added;
};

static int trust_object(void *ctx, const char *label, const unsigned char *der, size_t len)
{
	struct trust_acc *a = ctx;
	br_x509_decoder_context dc;
	struct dn_buf dn = { 0 };
	br_x509_trust_anchor ta;

	if (strcmp(label, "CERTIFICATE") != 0 && strcmp(label, "X509 CERTIFICATE") != 0)
		return 0;
	br_x509_decoder_init(&dc, dn_append, &dn);
	br_x509_decoder_push(&dc, der, len);
	const br_x509_pkey *pk = br_x509_decoder_get_pkey(&dc);
	if (!pk || dn.bad) {
		snprintf(a->err, a->errlen, "certificate %d: cannot decode (BearSSL error %d)",
			 a->added + 1, br_x509_decoder_last_error(&dc));
		free(dn.p);
		return -1;
	}
	memset(&ta, 0, sizeof(ta));
	ta.dn.data = dn.p;
	ta.dn.len = dn.len;
	ta.flags = br_x509_decoder_isCA(&dc) ? BR_X509_TA_CA : 0;
	ta.pkey.key_type = pk->key_type;
	bool ok;
	if (pk->key_type == BR_KEYTYPE_RSA) {
		ta.pkey.key.rsa.n = dup_bytes(pk->key.rsa.n, pk->key.rsa.nlen);
		ta.pkey.key.rsa.nlen = pk->key.rsa.nlen;
		ta.pkey.key.rsa.e = dup_bytes(pk->key.rsa.e, pk->key.rsa.elen);
		ta.pkey.key.rsa.elen = pk->key.rsa.elen;
		ok = ta.pkey.key.rsa.n && ta.pkey.key.rsa.e;
	} else {
		ta.pkey.key.ec.curve = pk->key.ec.curve;
		ta.pkey.key.ec.q = dup_bytes(pk->key.ec.q, pk->key.ec.qlen);
		ta.pkey.key.ec.qlen = pk->key.ec.qlen;
		ok = ta.pkey.key.ec.q != NULL;
	}
	br_x509_trust_anchor *v = ok ? realloc(a->t->anchors, (a->t->n + 1) * sizeof(*v)) : NULL;
	if (!v) {
		anchor_free(&ta);
		snprintf(a->err, a->errlen, "out of memory");
		return -1;
	}
	a->t->anchors = v;
	v[a->t->n++] = ta;
	a->added++;
	return 0;
}

int http_trust_add_pem(struct http_trust *t, const char *pem, size_t len, char *err, size_t errlen)
{
	char msg[160] = "bad PEM";
	struct trust_acc a = { t, msg, sizeof(msg), 0 };

	if (der_pem_each(pem, len, trust_object, &a) < 0) {
		snprintf(err, errlen, "%s", msg);
		return -1;
	}
	if (a.added == 0) {
		snprintf(err, errlen, "no CERTIFICATE block");
		return -1;
	}
	return a.added;
}

void http_trust_free(struct http_trust *t)
{
	for (size_t i = 0; i < t->n; i++)
		anchor_free(&t->anchors[i]);
	free(t->anchors);
	t->anchors = NULL;
	t->n = 0;
}

/* ---- name resolution ------------------------------------------------------------- */

struct addr_list {
	struct sockaddr_storage a[MAX_ADDRS];
	socklen_t len[MAX_ADDRS];
	size_t n;
};

/* A few recent lookups, so an ACME order does not fork once per request. */
static struct {
	char host[256];
	struct addr_list addrs;
	ev_tstamp expires;
} resolve_cache[4];

static const struct addr_list *cache_find(struct ev_loop *loop, const char *host)
{
	for (size_t i = 0; i < sizeof(resolve_cache) / sizeof(resolve_cache[0]); i++)
		if (resolve_cache[i].expires > ev_now(loop) && strcmp(resolve_cache[i].host, host) == 0)
			return &resolve_cache[i].addrs;
	return NULL;
}

static void cache_put(struct ev_loop *loop, const char *host, const struct addr_list *l)
{
	size_t oldest = 0;
	for (size_t i = 1; i < sizeof(resolve_cache) / sizeof(resolve_cache[0]); i++)
		if (resolve_cache[i].expires < resolve_cache[oldest].expires)
			oldest = i;
	snprintf(resolve_cache[oldest].host, sizeof(resolve_cache[oldest].host), "%s", host);
	resolve_cache[oldest].addrs = *l;
	resolve_cache[oldest].expires = ev_now(loop) + RESOLVE_TTL;
}

/* Literals and localhost, answered without a lookup. */
static bool resolve_now(const char *host, struct addr_list *l)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)&l->a[0];
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&l->a[0];

	memset(l, 0, sizeof(*l));
	if (strcmp(host, "localhost") == 0) {
		v4->sin_family = AF_INET;
		v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		l->len[0] = sizeof(*v4);
		v6 = (struct sockaddr_in6 *)&l->a[1];
		v6->sin6_family = AF_INET6;
		v6->sin6_addr = in6addr_loopback;
		l->len[1] = sizeof(*v6);
		l->n = 2;
		return true;
	}
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		l->len[0] = sizeof(*v4);
		l->n = 1;
		return true;
	}
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		l->len[0] = sizeof(*v6);
		l->n = 1;
		return true;
	}
	return false;
}

/* In the child: getaddrinfo, then the addresses as raw records on fd. */
static int resolve_in_child(void *arg, int fd)
{
	const char *host = arg;
	struct addrinfo hints, *res = NULL;
	struct addr_list l;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0) {
		const char *msg = gai_strerror(rc);
		ssize_t ignored = write(fd, msg, strlen(msg));
		(void)ignored;
		return 2;
	}
	memset(&l, 0, sizeof(l));
	for (struct addrinfo *ai = res; ai && l.n < MAX_ADDRS; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(l.a[0]))
			continue;
		memcpy(&l.a[l.n], ai->ai_addr, ai->ai_addrlen);
		l.len[l.n++] = ai->ai_addrlen;
	}
	freeaddrinfo(res);
	const char *p = (const char *)&l;
	for (size_t off = 0; off < sizeof(l);) {
		ssize_t n = write(fd, p + off, sizeof(l) - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 1;
		off += (size_t)n;
	}
	return 0;
}

/* ---- the call ----------------------------------------------------------------------- */

struct http_call {
	struct ev_loop *loop;
	const struct http_trust *trust;
	http_done_fn done;
	void *ctx;
	char host[256];
	char port_text[8];
	uint16_t port;
	bool tls;
	char method[8];

	struct child *resolver;
	struct addr_list addrs;
	size_t next_addr;
	int fd;
	ev_io io;
	ev_timer timer; /* the deadline of the whole call */
	ev_timer kick;  /* starts the work from the loop, so done never runs inside start */
	bool connecting;
	char last_error[400];

	char *req; /* the whole request; owner: the call */
	size_t req_len, req_off;

	br_ssl_client_context *cc; /* https only; owner: the call */
	br_x509_minimal_context *xc;
	unsigned char *iobuf;

	char head[HTTP_CLIENT_MAX_HEAD];
	size_t head_len, scan;
	bool head_done, complete;
	struct http_response resp;
	struct http_chunked chunked;
	uint64_t remaining;
	char *body; /* owner: the call */
	size_t body_len, body_cap;
	char location[1024], nonce[256], ctype[128];
	long retry_after;
};

static void call_free(struct http_call *c)
{
	if (c->resolver)
		child_cancel(c->resolver);
	ev_io_stop(c->loop, &c->io);
	ev_timer_stop(c->loop, &c->timer);
	ev_timer_stop(c->loop, &c->kick);
	if (c->fd >= 0)
		close(c->fd);
	free(c->req);
	free(c->cc);
	free(c->xc);
	free(c->iobuf);
	free(c->body);
	free(c);
}

__attribute__((format(printf, 2, 3))) static void call_fail(struct http_call *c, const char *fmt, ...)
{
	char msg[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->done(c->ctx, NULL, msg);
	call_free(c);
}

static void call_finish(struct http_call *c)
{
	struct http_client_result r;

	/* c->body is freed by call_free. GCC 12's analyzer, after the BearSSL calls
	 * it cannot see, no longer counts what is stored into *c as reachable and
	 * reports a leak: a false positive. */
	ANALYZER_IGNORE("-Wanalyzer-malloc-leak")
	if (!c->body && !(c->body = malloc(1))) {
		call_fail(c, "out of memory");
		return;
	}
	ANALYZER_END
	c->body[c->body_len] = '\0';
	r.status = c->resp.status;
	r.body = c->body;
	r.body_len = c->body_len;
	r.location = c->location;
	r.replay_nonce = c->nonce;
	r.content_type = c->ctype;
	r.retry_after = c->retry_after;
	c->done(c->ctx, &r, NULL);
	call_free(c);
}

static int body_append(struct http_call *c, const char *p, size_t n)
{
	if (n > HTTP_CLIENT_MAX_BODY - c->body_len)
		return -1;
	if (c->body_len + n + 1 > c->body_cap) {
		size_t cap = c->body_cap ? c->body_cap : 4096;
		while (cap < c->body_len + n + 1)
			cap *= 2;
		char *b = realloc(c->body, cap);
		if (!b)
			return -1;
		c->body = b;
		c->body_cap = cap;
	}
	memcpy(c->body + c->body_len, p, n);
	c->body_len += n;
	return 0;
}

static int body_feed(struct http_call *c, const char *p, size_t n)
{
	switch (c->resp.body) {
	case HTTP_BODY_NONE:
		c->complete = true;
		return 0;
	case HTTP_BODY_LENGTH: {
		size_t take = n < c->remaining ? n : (size_t)c->remaining;
		if (body_append(c, p, take) < 0)
			return -1;
		c->remaining -= take;
		c->complete = c->remaining == 0;
		return 0;
	}
	case HTTP_BODY_CHUNKED:
		while (n > 0 && !c->complete) {
			size_t off = 0, dlen = 0;
			ssize_t used = http_chunked_feed(&c->chunked, p, n, &off, &dlen);
			if (used < 0)
				return -1;
			if (dlen && body_append(c, p + off, dlen) < 0)
				return -1;
			p += used;
			n -= (size_t)used;
			c->complete = c->chunked.state == CHUNK_DONE;
			if (used == 0)
				break;
		}
		return 0;
	case HTTP_BODY_EOF:
		return body_append(c, p, n);
	}
	return -1;
}

static void copy_field(const struct http_response *r, const char *name, char *dst, size_t cap)
{
	const struct http_field *f = http_find_field(r->fields, r->nfields, slice_cstr(name));
	if (!f || !slice_to_cstr(f->value, dst, cap))
		dst[0] = '\0';
}

long http_parse_retry_after(const char *v, long long now)
{
	if (*v >= '0' && *v <= '9') {
		long n = 0;
		for (; *v >= '0' && *v <= '9'; v++) {
			if (n > 100000000)
				return -1;
			n = n * 10 + (*v - '0');
		}
		return *v == '\0' ? n : -1;
	}
	int64_t t;
	if (timefmt_parse_imf(slice_cstr(v), &t) < 0)
		return -1;
	/* capped where long has 32 bits (a date after 2038 would wrap) */
	return t <= now ? 0 : t - now > LONG_MAX ? LONG_MAX : (long)(t - now);
}

/* Bytes of the response as they arrive, in order. */
static int feed(struct http_call *c, const char *p, size_t n)
{
	while (n > 0 && !c->complete) {
		if (c->head_done)
			return body_feed(c, p, n);
		size_t take = n < HTTP_CLIENT_MAX_HEAD - c->head_len ? n : HTTP_CLIENT_MAX_HEAD - c->head_len;
		if (take == 0)
			return -1;
		memcpy(c->head + c->head_len, p, take);
		c->head_len += take;
		p += take;
		n -= take;
		int r = http_parse_response_resume(c->head, c->head_len, HTTP_CLIENT_MAX_HEAD, &c->scan,
						   slice_cstr(c->method), &c->resp);
		if (r < 0)
			return -1;
		if (r == 0)
			continue;
		if (c->resp.status < 200) { /* an interim response: the real one follows */
			memmove(c->head, c->head + r, c->head_len - (size_t)r);
			c->head_len -= (size_t)r;
			c->scan = 0;
			continue;
		}
		c->head_done = true;
		copy_field(&c->resp, "Location", c->location, sizeof(c->location));
		copy_field(&c->resp, "Replay-Nonce", c->nonce, sizeof(c->nonce));
		copy_field(&c->resp, "Content-Type", c->ctype, sizeof(c->ctype));
		char ra[64];
		copy_field(&c->resp, "Retry-After", ra, sizeof(ra));
		c->retry_after = ra[0] ? http_parse_retry_after(ra, (long long)time(NULL)) : -1;
		c->remaining = c->resp.content_length;
		http_chunked_init(&c->chunked);
		if (c->resp.body == HTTP_BODY_LENGTH && c->resp.content_length > HTTP_CLIENT_MAX_BODY)
			return -1;
		if (c->resp.body == HTTP_BODY_NONE ||
		    (c->resp.body == HTTP_BODY_LENGTH && c->remaining == 0))
			c->complete = true;
		if (body_feed(c, c->head + r, c->head_len - (size_t)r) < 0)
			return -1;
	}
	return 0;
}

/* The server closed: fine when the response is framed by the close. */
static void on_eof(struct http_call *c)
{
	if (c->complete || (c->head_done && c->resp.body == HTTP_BODY_EOF)) {
		call_finish(c);
		return;
	}
	call_fail(c, "%s:%s: connection closed before the whole response", c->host, c->port_text);
}

static const char *tls_error_text(int err)
{
	switch (err) {
	case BR_ERR_X509_NOT_TRUSTED: return "certificate not trusted (ca_root?)";
	case BR_ERR_X509_BAD_SERVER_NAME: return "certificate does not match the host name";
	case BR_ERR_X509_EXPIRED: return "certificate expired or not yet valid";
	case BR_ERR_X509_NOT_CA: return "issuer is not a CA";
	case BR_ERR_X509_CRITICAL_EXTENSION: return "unsupported critical extension";
	case BR_ERR_BAD_HANDSHAKE: return "handshake failed";
	case BR_ERR_BAD_CIPHER_SUITE: return "no common cipher suite";
	case BR_ERR_UNSUPPORTED_VERSION: return "no common protocol version";
	case BR_ERR_IO: return "I/O error";
	default: return err >= BR_ERR_SEND_FATAL_ALERT ? "sent a fatal alert"
		      : err >= BR_ERR_RECV_FATAL_ALERT ? "received a fatal alert" : "protocol error";
	}
}

static void want(struct http_call *c, int events)
{
	ev_io_stop(c->loop, &c->io);
	ev_io_set(&c->io, c->fd, events);
	ev_io_start(c->loop, &c->io);
}

static void tls_pump(struct http_call *c)
{
	br_ssl_engine_context *eng = &c->cc->eng;

	for (;;) {
		unsigned st = br_ssl_engine_current_state(eng);
		size_t len;
		if (st & BR_SSL_CLOSED) {
			int err = br_ssl_engine_last_error(eng);
			if (err != BR_ERR_OK) {
				call_fail(c, "%s:%s: TLS: %s (BearSSL error %d)", c->host, c->port_text,
					  tls_error_text(err), err);
				return;
			}
			on_eof(c);
			return;
		}
		if (st & BR_SSL_SENDREC) {
			unsigned char *buf = br_ssl_engine_sendrec_buf(eng, &len);
			ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				want(c, EV_WRITE);
				return;
			}
			if (n < 0) {
				call_fail(c, "%s:%s: send: %s", c->host, c->port_text, strerror(errno));
				return;
			}
			br_ssl_engine_sendrec_ack(eng, (size_t)n);
			continue;
		}
		if (st & BR_SSL_RECVAPP) {
			unsigned char *buf = br_ssl_engine_recvapp_buf(eng, &len);
			if (feed(c, (const char *)buf, len) < 0) {
				call_fail(c, "%s:%s: malformed or oversized response", c->host, c->port_text);
				return;
			}
			br_ssl_engine_recvapp_ack(eng, len);
			if (c->complete) {
				call_finish(c);
				return;
			}
			continue;
		}
		if ((st & BR_SSL_SENDAPP) && c->req_off < c->req_len) {
			unsigned char *buf = br_ssl_engine_sendapp_buf(eng, &len);
			size_t take = c->req_len - c->req_off < len ? c->req_len - c->req_off : len;
			memcpy(buf, c->req + c->req_off, take);
			br_ssl_engine_sendapp_ack(eng, take);
			c->req_off += take;
			if (c->req_off == c->req_len)
				br_ssl_engine_flush(eng, 0);
			continue;
		}
		if (st & BR_SSL_RECVREC) {
			unsigned char *buf = br_ssl_engine_recvrec_buf(eng, &len);
			ssize_t n = recv(c->fd, buf, len, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				want(c, EV_READ);
				return;
			}
			if (n < 0) {
				call_fail(c, "%s:%s: recv: %s", c->host, c->port_text, strerror(errno));
				return;
			}
			if (n == 0) {
				on_eof(c);
				return;
			}
			br_ssl_engine_recvrec_ack(eng, (size_t)n);
			continue;
		}
		want(c, EV_READ);
		return;
	}
}

static void plain_pump(struct http_call *c)
{
	while (c->req_off < c->req_len) {
		ssize_t n = send(c->fd, c->req + c->req_off, c->req_len - c->req_off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			want(c, EV_WRITE);
			return;
		}
		if (n < 0) {
			call_fail(c, "%s:%s: send: %s", c->host, c->port_text, strerror(errno));
			return;
		}
		c->req_off += (size_t)n;
	}
	for (;;) {
		char buf[8192];
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			want(c, EV_READ);
			return;
		}
		if (n < 0) {
			call_fail(c, "%s:%s: recv: %s", c->host, c->port_text, strerror(errno));
			return;
		}
		if (n == 0) {
			on_eof(c);
			return;
		}
		if (feed(c, buf, (size_t)n) < 0) {
			call_fail(c, "%s:%s: malformed or oversized response", c->host, c->port_text);
			return;
		}
		if (c->complete) {
			call_finish(c);
			return;
		}
	}
}

static void try_connect(struct http_call *c);

/* TLS 1.2 with ECDHE and AEAD suites only, the ones the server side links anyway
 * (br_ssl_client_init_full would add RSA key exchange, CBC, CCM and 3DES: tens of
 * KiB of code no ACME CA needs). */
static const uint16_t client_suites[] = {
	BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
};

static void client_init(br_ssl_client_context *cc, br_x509_minimal_context *xc,
			const br_x509_trust_anchor *anchors, size_t n)
{
	static const struct {
		int id;
		const br_hash_class *impl;
	} hashes[] = { { br_sha1_ID, &br_sha1_vtable }, { br_sha224_ID, &br_sha224_vtable },
		       { br_sha256_ID, &br_sha256_vtable }, { br_sha384_ID, &br_sha384_vtable },
		       { br_sha512_ID, &br_sha512_vtable } };
	br_ssl_engine_context *eng = &cc->eng;

	br_ssl_client_zero(cc);
	br_ssl_engine_set_versions(eng, BR_TLS12, BR_TLS12);
	br_ssl_engine_set_suites(eng, client_suites, sizeof(client_suites) / sizeof(client_suites[0]));
	br_x509_minimal_init(xc, &br_sha256_vtable, anchors, n);
	for (size_t i = 0; i < sizeof(hashes) / sizeof(hashes[0]); i++) {
		br_ssl_engine_set_hash(eng, hashes[i].id, hashes[i].impl);
		br_x509_minimal_set_hash(xc, hashes[i].id, hashes[i].impl);
	}
	br_x509_minimal_set_rsa(xc, br_rsa_pkcs1_vrfy_get_default());
	br_x509_minimal_set_ecdsa(xc, ec_impl(), br_ecdsa_vrfy_asn1_get_default());
	br_ssl_engine_set_x509(eng, &xc->vtable);
	br_ssl_engine_set_ec(eng, ec_impl());
	br_ssl_engine_set_rsavrfy(eng, br_rsa_pkcs1_vrfy_get_default());
	br_ssl_engine_set_ecdsa(eng, br_ecdsa_vrfy_asn1_get_default());
	br_ssl_engine_set_prf_sha256(eng, &br_tls12_sha256_prf);
	br_ssl_engine_set_prf_sha384(eng, &br_tls12_sha384_prf);
	br_ssl_engine_set_default_aes_gcm(eng);
	tls_impl_set_chapol(eng);
}

/* On failure the caller's call_fail frees whatever was allocated (call_free). */
static int tls_start(struct http_call *c)
{
	/* GCC 12's analyzer, after on_io's getsockopt (a call it cannot see), no
	 * longer counts what is stored into *c as reachable and reports each
	 * allocation as leaked: a false positive. */
	ANALYZER_IGNORE("-Wanalyzer-malloc-leak")
	if (!(c->cc = calloc(1, sizeof(*c->cc))) || !(c->xc = calloc(1, sizeof(*c->xc))) ||
	    !(c->iobuf = malloc(BR_SSL_BUFSIZE_MONO)))
		return -1;
	ANALYZER_END
	client_init(c->cc, c->xc, c->trust ? c->trust->anchors : NULL, c->trust ? c->trust->n : 0);
	br_ssl_engine_set_buffer(&c->cc->eng, c->iobuf, BR_SSL_BUFSIZE_MONO, 0);
	if (rand_seed_ssl_engine(&c->cc->eng) < 0 || !br_ssl_client_reset(c->cc, c->host, 0))
		return -1;
	return 0;
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_call *c = w->data;
	(void)loop;
	(void)revents;

	if (c->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err != 0) {
			snprintf(c->last_error, sizeof(c->last_error), "%s:%s: connect: %s", c->host,
				 c->port_text, strerror(err));
			ev_io_stop(c->loop, &c->io);
			close(c->fd);
			c->fd = -1;
			try_connect(c);
			return;
		}
		c->connecting = false;
		if (c->tls && tls_start(c) < 0) {
			call_fail(c, "%s:%s: TLS setup failed", c->host, c->port_text);
			return;
		}
	}
	if (c->tls)
		tls_pump(c);
	else
		plain_pump(c);
}

static void try_connect(struct http_call *c)
{
	while (c->next_addr < c->addrs.n) {
		struct sockaddr_storage *ss = &c->addrs.a[c->next_addr];
		socklen_t sl = c->addrs.len[c->next_addr];
		c->next_addr++;
		if (ss->ss_family == AF_INET)
			((struct sockaddr_in *)ss)->sin_port = htons(c->port);
		else if (ss->ss_family == AF_INET6)
			((struct sockaddr_in6 *)ss)->sin6_port = htons(c->port);
		else
			continue;
		c->fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->fd < 0) {
			snprintf(c->last_error, sizeof(c->last_error), "socket: %s", strerror(errno));
			continue;
		}
		int one = 1;
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(c->fd, (struct sockaddr *)ss, sl) < 0 && errno != EINPROGRESS) {
			snprintf(c->last_error, sizeof(c->last_error), "%s:%s: connect: %s", c->host,
				 c->port_text, strerror(errno));
			close(c->fd);
			c->fd = -1;
			continue;
		}
		c->connecting = true;
		ev_io_init(&c->io, on_io, c->fd, EV_WRITE);
		c->io.data = c;
		ev_io_start(c->loop, &c->io);
		return;
	}
	call_fail(c, "%s", c->last_error[0] ? c->last_error : "no address to connect to");
}

static void on_resolved(void *ctx, int code, const char *out, size_t len)
{
	struct http_call *c = ctx;

	c->resolver = NULL;
	if (code != 0 || len != sizeof(struct addr_list)) {
		call_fail(c, "%s: cannot resolve: %s", c->host,
			  code == CHILD_TIMEOUT ? "timed out" : code == 2 ? out : "lookup failed");
		return;
	}
	memcpy(&c->addrs, out, sizeof(c->addrs));
	if (c->addrs.n > MAX_ADDRS)
		c->addrs.n = MAX_ADDRS;
	cache_put(c->loop, c->host, &c->addrs);
	try_connect(c);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct http_call *c = w->data;
	(void)loop;
	(void)revents;
	call_fail(c, "%s:%s: timed out", c->host, c->port_text);
}

static void on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct http_call *c = w->data;
	const struct addr_list *cached;
	(void)revents;

	if (resolve_now(c->host, &c->addrs)) {
		try_connect(c);
	} else if ((cached = cache_find(loop, c->host))) {
		c->addrs = *cached;
		try_connect(c);
	} else {
		c->resolver = child_run_fn(loop, resolve_in_child, c->host, RESOLVE_TIMEOUT,
					   sizeof(struct addr_list), on_resolved, c);
		if (!c->resolver)
			call_fail(c, "%s: cannot resolve: fork: %s", c->host, strerror(errno));
	}
}

/* Splits scheme://host[:port]/path. */
static int parse_url(struct http_call *c, const char *url, const char **path)
{
	const char *p;
	if (strncmp(url, "https://", 8) == 0) {
		c->tls = true;
		p = url + 8;
	} else if (strncmp(url, "http://", 7) == 0) {
		p = url + 7;
	} else {
		return -1;
	}
	size_t alen = strcspn(p, "/?#");
	const char *auth_end = p + alen, *host = p, *host_end, *port = NULL;
	if (memchr(p, '@', alen))
		return -1;
	if (*p == '[') {
		host = p + 1;
		host_end = memchr(p, ']', alen);
		if (!host_end)
			return -1;
		if (host_end + 1 < auth_end) {
			if (host_end[1] != ':')
				return -1;
			port = host_end + 2;
		}
	} else {
		host_end = memchr(p, ':', alen);
		if (host_end)
			port = host_end + 1;
		else
			host_end = auth_end;
	}
	size_t hl = (size_t)(host_end - host);
	if (hl == 0 || hl >= sizeof(c->host))
		return -1;
	memcpy(c->host, host, hl);
	c->host[hl] = '\0';
	unsigned long pn = c->tls ? 443 : 80;
	if (port) {
		if (port == auth_end)
			return -1;
		pn = 0;
		for (const char *q = port; q < auth_end; q++) {
			if (*q < '0' || *q > '9' || pn > 65535)
				return -1;
			pn = pn * 10 + (unsigned long)(*q - '0');
		}
		if (pn == 0 || pn > 65535)
			return -1;
	}
	c->port = (uint16_t)pn;
	snprintf(c->port_text, sizeof(c->port_text), "%lu", pn);
	*path = *auth_end == '/' ? auth_end : "/";
	return 0;
}

struct http_call *http_call_start(struct ev_loop *loop, const struct http_trust *trust,
				  const struct http_client_request *req, double timeout,
				  http_done_fn done, void *ctx)
{
	struct http_call *c = calloc(1, sizeof(*c));
	const char *path;
	char hosthdr[300];

	if (!c)
		return NULL;
	c->fd = -1;
	c->loop = loop;
	c->trust = trust;
	c->done = done;
	c->ctx = ctx;
	c->retry_after = -1;
	if (parse_url(c, req->url, &path) < 0 || strlen(req->method) >= sizeof(c->method)) {
		free(c);
		return NULL;
	}
	snprintf(c->method, sizeof(c->method), "%s", req->method);
	bool v6 = strchr(c->host, ':') != NULL;
	bool default_port = c->port == (c->tls ? 443 : 80);
	snprintf(hosthdr, sizeof(hosthdr), "%s%s%s%s%s", v6 ? "[" : "", c->host, v6 ? "]" : "",
		 default_port ? "" : ":", default_port ? "" : c->port_text);

	/* RFC 8555 §6.1: clients send a User-Agent */
	size_t cap = strlen(path) + strlen(hosthdr) + req->body_len + 512 +
		     (req->content_type ? strlen(req->content_type) : 0) +
		     (req->accept ? strlen(req->accept) : 0);
	if (!(c->req = malloc(cap))) {
		free(c);
		return NULL;
	}
	int n = snprintf(c->req, cap,
			 "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: edgeproxy/" EDGEPROXY_VERSION
			 " (ACME client)\r\nConnection: close\r\n",
			 req->method, path, hosthdr);
	if (req->accept)
		n += snprintf(c->req + n, cap - (size_t)n, "Accept: %s\r\n", req->accept);
	if (req->content_type)
		n += snprintf(c->req + n, cap - (size_t)n, "Content-Type: %s\r\n", req->content_type);
	if (req->body || strcmp(req->method, "POST") == 0)
		n += snprintf(c->req + n, cap - (size_t)n, "Content-Length: %zu\r\n", req->body_len);
	n += snprintf(c->req + n, cap - (size_t)n, "\r\n");
	if (req->body_len)
		memcpy(c->req + n, req->body, req->body_len);
	c->req_len = (size_t)n + req->body_len;

	ev_timer_init(&c->timer, on_timeout, timeout, 0);
	c->timer.data = c;
	ev_timer_start(loop, &c->timer);
	ev_init(&c->io, on_io);
	c->io.data = c;

	ev_timer_init(&c->kick, on_kick, 0, 0);
	c->kick.data = c;
	ev_timer_start(loop, &c->kick);
	return c;
}

void http_call_cancel(struct http_call *c)
{
	if (c)
		call_free(c);
}
