/* proxy.c - the reverse proxy. An exchange carries one request to one upstream
 * server: it writes a re-serialised request head (hop-by-hop fields dropped,
 * forwarded fields set), pumps the request body, parses the response head,
 * rewrites it for the client and pumps the response body, each direction
 * through one fixed buffer so memory stays bounded whatever the body size.
 * Failures before any response byte may be retried; after that the client
 * connection is closed (the only honest signal left). */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "accesslog.h"
#include "body.h"
#include "buf.h"
#include "http_write.h"
#include "log.h"
#include "metrics.h"
#include "middleware.h"
#include "upstream.h"

/* Each direction's buffer, lent from the pool for the exchange: the request head
 * (at most this) and body; the response head (at most this) and body. */
#define PROXY_BUF 16384
#define RESPONSE_HEAD_MAX PROXY_BUF
/* A response whose raw body is longer than PROXY_BUF moves to a buffer this large
 * once its head is in: a 64 KiB body then takes one read and one write instead of
 * four of each. Small responses, the common case, never hold more than 16 KiB. */
#define PROXY_WIDE_BUF 65536
#define LOG_TEXT 768

/* Which deadline runs: connecting; the client's request body arriving (longest
 * gap, body_timeout); the response head after the request went out
 * (response_timeout); a stall while streaming either way (idle_timeout). */
enum proxy_timer { PT_CONNECT, PT_BODY, PT_RESPONSE, PT_STREAM };

struct proxy_exchange {
	struct conn *c;
	const struct service_rt *svc;
	struct upstream_server *server;
	struct upstream_conn *uc; /* owner: the exchange, until released */
	ev_timer timer;
	int timer_kind;
	bool connecting;
	bool reused;      /* uc came from the keep-alive pool */
	bool retryable;   /* idempotent and without a body: safe to send twice */
	unsigned attempts; /* servers tried */
	bool pool_retry_done;  /* from then on only new connections */

	char *up_out; /* to the upstream: request head, then body; owner: buf pool */
	size_t up_out_len, up_out_sent;
	size_t host_off, host_len; /* the Host line within up_out, rewritten on retry */
	char *up_in;  /* from the upstream; owner: buf pool */
	size_t up_in_cap, up_in_off, up_in_len;

	struct body_pump req;  /* client -> upstream */
	struct body_pump resp; /* upstream -> client */
	bool head_received;    /* the final response head has been parsed */
	bool got_bytes;        /* this upstream connection sent something */
	bool upstream_eof;
	bool upstream_error;
	int upstream_errno;    /* what the failing read or send said */
	bool upgrade_requested;
	bool tunnel;
	bool upstream_keep_alive;
	bool half_closed;      /* tunnel: the client's EOF was passed on */
	int status;
	char sticky[17];       /* the client's sticky cookie value, if any */
	bool set_sticky;

	struct access_record log;
	char log_text[LOG_TEXT];
};

static void on_upstream_io(struct ev_loop *loop, ev_io *w, int revents);
static void on_timer(struct ev_loop *loop, ev_timer *w, int revents);
static bool proxy_connect(struct proxy_exchange *x);

/* RFC 9110 §7.6.1: fields that describe one connection, never forwarded. */
static bool is_hop_by_hop(struct slice name)
{
	static const struct slice hop[] = {
		SLICE_LIT("Connection"), SLICE_LIT("Keep-Alive"), SLICE_LIT("Proxy-Connection"),
		SLICE_LIT("TE"), SLICE_LIT("Trailer"), SLICE_LIT("Transfer-Encoding"), SLICE_LIT("Upgrade"),
	};
	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (slice_case_eq(name, hop[i]))
			return true;
	return false;
}

/* A field the sender listed in Connection is hop-by-hop too. */
static bool named_in_connection(const struct http_field *fields, size_t n, struct slice name)
{
	for (size_t i = 0; i < n; i++)
		if (slice_case_eq(fields[i].name, SLICE_LIT("Connection")) && http_token_list_has(fields[i].value, name))
			return true;
	return false;
}

static bool is_forwarded_field(struct slice name)
{
	static const struct slice fwd[] = {
		SLICE_LIT("X-Forwarded-For"), SLICE_LIT("X-Forwarded-Proto"), SLICE_LIT("X-Forwarded-Host"),
		SLICE_LIT("X-Forwarded-Port"), SLICE_LIT("X-Real-Ip"), SLICE_LIT("Forwarded"),
	};
	for (size_t i = 0; i < sizeof(fwd) / sizeof(fwd[0]); i++)
		if (slice_case_eq(name, fwd[i]))
			return true;
	return false;
}

static bool is_idempotent(struct slice m)
{
	static const struct slice idem[] = { SLICE_LIT("GET"), SLICE_LIT("HEAD"), SLICE_LIT("OPTIONS"),
					     SLICE_LIT("TRACE"), SLICE_LIT("PUT"), SLICE_LIT("DELETE") };
	for (size_t i = 0; i < sizeof(idem) / sizeof(idem[0]); i++)
		if (slice_eq(m, idem[i]))
			return true;
	return false;
}

static int entrypoint_port(const struct conn *c)
{
	const struct sockaddr_storage *a = &c->ep->conf->addr;
	return a->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)a)->sin_port)
				       : ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
}

/* Finds NAME=value among the Cookie fields; the value is copied when it has the
 * shape of ours (16 hex digits). */
static void find_sticky(struct proxy_exchange *x, const char *name)
{
	const struct http_request *r = &x->c->rq->req;
	size_t nl = strlen(name);
	for (size_t i = 0; i < r->nfields; i++) {
		if (!slice_case_eq(r->fields[i].name, SLICE_LIT("Cookie")))
			continue;
		struct slice v = r->fields[i].value;
		for (size_t p = 0; p < v.len;) {
			while (p < v.len && (v.p[p] == ' ' || v.p[p] == ';'))
				p++;
			size_t end = p;
			while (end < v.len && v.p[end] != ';')
				end++;
			if (end - p == nl + 1 + 16 && memcmp(v.p + p, name, nl) == 0 && v.p[p + nl] == '=') {
				memcpy(x->sticky, v.p + p + nl + 1, 16);
				x->sticky[16] = '\0';
				return;
			}
			p = end;
		}
	}
}

/* Copies what the access log needs: the head's bytes do not outlive the request. */
static void capture_log(struct proxy_exchange *x)
{
	const struct http_request *r = &x->c->rq->req;
	const struct http_field *ref = http_find_field(r->fields, r->nfields, SLICE_LIT("Referer"));
	const struct http_field *ua = http_find_field(r->fields, r->nfields, SLICE_LIT("User-Agent"));
	struct slice parts[4] = { r->method, r->target, ref ? ref->value : SLICE_LIT("-"),
				  ua ? ua->value : SLICE_LIT("-") };
	struct slice *dst[4] = { &x->log.method, &x->log.target, &x->log.referer, &x->log.user_agent };
	size_t used = 0;
	for (int i = 0; i < 4; i++) {
		size_t n = parts[i].len;
		size_t room = (LOG_TEXT - used) / (size_t)(4 - i);
		if (n > room)
			n = room;
		memcpy(x->log_text + used, parts[i].p, n);
		*dst[i] = slice_make(x->log_text + used, n);
		used += n;
	}
	x->log.minor = r->minor;
	x->log.client = x->c->rq->peer_text;
	x->log.user = x->c->rq->mw ? x->c->rq->mw->user : (struct slice){ 0 };
	x->log.entrypoint = x->c->ep->conf->name;
	x->log.router = x->c->rq->router;
}

static bool put_field(struct http_out *o, struct slice name, struct slice value)
{
	return http_out_slice(o, name) && http_out_str(o, ": ") && http_out_slice(o, value) && http_out_str(o, "\r\n");
}

/* A middleware replaces or removes this request field. */
static bool mw_replaces(const struct mw_header *set, size_t n_set, const struct slice *remove, size_t n_remove,
			struct slice name)
{
	for (size_t i = 0; i < n_set; i++)
		if (slice_case_eq(set[i].name, name))
			return true;
	for (size_t i = 0; i < n_remove; i++)
		if (slice_case_eq(remove[i], name))
			return true;
	return false;
}

/* Writes the Host line for the chosen server at o's end, remembering where it is. */
static bool put_host(struct proxy_exchange *x, struct http_out *o)
{
	x->host_off = o->len;
	bool ok = x->svc->conf->pass_host_header && x->c->rq->req.host.len
			  ? put_field(o, SLICE_LIT("Host"), x->c->rq->req.host)
			  : put_field(o, SLICE_LIT("Host"), slice_cstr(x->server->conf->authority));
	x->host_len = o->len - x->host_off;
	return ok;
}

/* The request head the upstream sees: rebuilt from the parsed request, never
 * copied, so nothing ambiguous the client sent can reach the server. */
static bool build_request_head(struct proxy_exchange *x)
{
	struct conn *c = x->c;
	const struct http_request *r = &c->rq->req;
	const struct conf_entrypoint *ep = c->ep->conf;
	bool trusted = cidr_list_contains(&ep->trusted_proxies, &c->peer.sa);
	struct http_out o = { x->up_out, 0, PROXY_BUF };
	const struct mw_state *mw = c->rq->mw;
	bool ok = http_out_slice(&o, r->method) && http_out_str(&o, " ");
	/* origin-form even when the client used absolute-form (RFC 9112 §3.2.1) */
	ok = ok && http_out_slice(&o, mw && mw->path.p ? mw->path : r->path);
	if (ok && r->query.len)
		ok = http_out_str(&o, "?") && http_out_slice(&o, r->query);
	ok = ok && http_out_str(&o, " HTTP/1.1\r\n") && put_host(x, &o);

	for (size_t i = 0; ok && i < r->nfields; i++) {
		struct slice name = r->fields[i].name;
		if (slice_case_eq(name, SLICE_LIT("Host")) || slice_case_eq(name, SLICE_LIT("Content-Length")) ||
		    is_hop_by_hop(name) || named_in_connection(r->fields, r->nfields, name) ||
		    (mw && mw_replaces(mw->req_set, mw->n_req_set, mw->req_remove, mw->n_req_remove, name)))
			continue;
		if (is_forwarded_field(name)) {
			/* From a trusted proxy X-Forwarded-For grows; from anyone else it is replaced. */
			if (!trusted || slice_case_eq(name, SLICE_LIT("X-Forwarded-For")))
				continue; /* X-Forwarded-For is written below */
		}
		ok = put_field(&o, name, r->fields[i].value);
	}
	for (size_t i = 0; ok && mw && i < mw->n_req_set; i++)
		if (mw->req_set[i].value.len)
			ok = put_field(&o, mw->req_set[i].name, mw->req_set[i].value);
	/* One X-Forwarded-For: the trusted chain so far (every such field, in
	 * order, RFC 9110 §5.3), then this client. */
	ok = ok && http_out_str(&o, "X-Forwarded-For: ");
	for (size_t i = 0; ok && trusted && i < r->nfields; i++)
		if (slice_case_eq(r->fields[i].name, SLICE_LIT("X-Forwarded-For")) && r->fields[i].value.len)
			ok = http_out_slice(&o, r->fields[i].value) && http_out_str(&o, ", ");
	ok = ok && http_out_str(&o, c->rq->peer_text) && http_out_str(&o, "\r\n");
	if (ok && !(trusted && http_find_field(r->fields, r->nfields, SLICE_LIT("X-Forwarded-Proto"))))
		ok = http_out_str(&o, "X-Forwarded-Proto: ") && http_out_str(&o, ep->tls ? "https" : "http") &&
		     http_out_str(&o, "\r\n");
	if (ok && !(trusted && http_find_field(r->fields, r->nfields, SLICE_LIT("X-Forwarded-Host"))))
		ok = put_field(&o, SLICE_LIT("X-Forwarded-Host"), r->host);
	if (ok && !(trusted && http_find_field(r->fields, r->nfields, SLICE_LIT("X-Forwarded-Port"))))
		ok = http_out_str(&o, "X-Forwarded-Port: ") && http_out_uint(&o, (unsigned)entrypoint_port(c)) &&
		     http_out_str(&o, "\r\n");
	if (ok && !(trusted && http_find_field(r->fields, r->nfields, SLICE_LIT("X-Real-Ip"))))
		ok = http_out_str(&o, "X-Real-Ip: ") && http_out_str(&o, c->rq->peer_text) && http_out_str(&o, "\r\n");
	if (ok && r->body == HTTP_BODY_LENGTH)
		ok = http_out_str(&o, "Content-Length: ") && http_out_uint(&o, r->content_length) &&
		     http_out_str(&o, "\r\n");
	else if (ok && r->body == HTTP_BODY_CHUNKED)
		ok = http_out_str(&o, "Transfer-Encoding: chunked\r\n");
	if (ok && x->upgrade_requested) {
		const struct http_field *up = http_find_field(r->fields, r->nfields, SLICE_LIT("Upgrade"));
		ok = http_out_str(&o, "Connection: Upgrade\r\n") && put_field(&o, SLICE_LIT("Upgrade"), up->value);
	}
	ok = ok && http_out_str(&o, "\r\n");
	x->up_out_len = o.len;
	return ok;
}

/* A retry on another server with pass_host_header = off needs that server's Host. */
static bool rewrite_host(struct proxy_exchange *x)
{
	char line[300];
	int n = snprintf(line, sizeof(line), "Host: %s\r\n", x->server->conf->authority);
	if (n < 0 || (size_t)n >= sizeof(line))
		return false;
	size_t tail = x->up_out_len - x->host_off - x->host_len;
	if (x->host_off + (size_t)n + tail > PROXY_BUF)
		return false;
	memmove(x->up_out + x->host_off + n, x->up_out + x->host_off + x->host_len, tail);
	memcpy(x->up_out + x->host_off, line, (size_t)n);
	x->up_out_len = x->host_off + (size_t)n + tail;
	x->host_len = (size_t)n;
	return true;
}

static void set_timer(struct proxy_exchange *x, int kind)
{
	const struct conf_service *s = x->svc->conf;
	int64_t ms = kind == PT_CONNECT ? s->connect_timeout_ms
		     : kind == PT_BODY	   ? x->c->ep->conf->body_timeout_ms
		     : kind == PT_RESPONSE ? s->response_timeout_ms
					   : x->c->ep->conf->idle_timeout_ms;
	x->timer_kind = kind;
	ev_timer_stop(server.loop, &x->timer);
	if (ms > 0) {
		ev_timer_set(&x->timer, (double)ms / 1000.0, 0.);
		ev_timer_start(server.loop, &x->timer);
	}
}

/* Exchanges are recycled: one per proxied request would otherwise be a malloc
 * and free on the hot path (and musl gives such memory back to the kernel). */
#define EXCHANGE_KEEP 64
static struct proxy_exchange *free_exchanges[EXCHANGE_KEEP];
static unsigned n_free_exchanges;

static struct proxy_exchange *exchange_new(void)
{
	struct proxy_exchange *x;
	if (n_free_exchanges) {
		x = free_exchanges[--n_free_exchanges];
		memset(x, 0, sizeof(*x));
		return x;
	}
	return calloc(1, sizeof(*x));
}

static void exchange_free(struct proxy_exchange *x)
{
	ev_timer_stop(server.loop, &x->timer);
	buf_put(x->up_out, PROXY_BUF);
	buf_put(x->up_in, x->up_in_cap);
	if (n_free_exchanges < EXCHANGE_KEEP)
		free_exchanges[n_free_exchanges++] = x;
	else
		free(x);
}

/* Gives the upstream connection back (to the pool when it can carry another request). */
static void release_upstream(struct proxy_exchange *x, bool reusable)
{
	if (!x->uc)
		return;
	x->server->active--;
	upstream_release(x->uc, reusable);
	x->uc = NULL;
}

/* How the upstream connection ended, for the log. */
static const char *upstream_end(const struct proxy_exchange *x)
{
	return x->upstream_error ? strerror(x->upstream_errno) : "connection closed";
}

/* The exchange is over: log it and hand the connection back to conn.c. */
static void finish(struct proxy_exchange *x)
{
	struct conn *c = x->c;
	double seconds = ev_time() - c->rq->started;
	metrics_request(c->ep->conf->name, x->log.router, x->svc->conf->name, x->log.method, x->status, seconds,
			c->tls != NULL);
	server.requests_total++;
	if (accesslog_enabled()) {
		x->log.status = x->status;
		x->log.size = x->resp.moved;
		x->log.count = server.requests_total;
		x->log.service_url = x->server ? x->server->conf->url : NULL;
		x->log.duration_ms = seconds * 1000.0;
		accesslog_write(&x->log);
	}
	if (!x->req.done) {
		/* the client's body was not all read: its framing is lost */
		c->keep_alive = false;
		c->unread_input = true;
	}
	c->exchange = NULL;
	exchange_free(x);
	conn_request_done(c);
}

/* Answers the client with an error page, if nothing of a response went out yet. */
static void fail(struct proxy_exchange *x, int status)
{
	release_upstream(x, false);
	struct conn *c = x->c;
	if (x->head_received) {
		/* mid-body: the client can only learn it from the connection closing */
		c->keep_alive = false;
		x->status = x->status ? x->status : status;
		finish(x);
		return;
	}
	if (!x->req.done)
		c->keep_alive = false;
	char text[48];
	snprintf(text, sizeof(text), "%d %s\n", status, http_reason(status));
	conn_respond(c, status, "text/plain; charset=utf-8", slice_cstr(text), NULL);
	x->status = status;
	x->resp.moved = c->rq->resp_size; /* the error page is what the client got */
	finish(x);
}

/* Connecting failed or a fresh connection died before answering: the server is
 * taken out of rotation, and an idempotent bodiless request tries another. */
static void connection_failed(struct proxy_exchange *x, bool timed_out)
{
	struct upstream_group *g = x->svc->group;
	if (!x->reused) /* a pooled connection's death says nothing of the server */
		upstream_mark_down(g, x->server);
	release_upstream(x, false);
	if (x->retryable && x->attempts <= (unsigned)x->svc->conf->retries) {
		struct upstream_server *next = upstream_pick(g, &x->c->peer.sa, slice_cstr(""),
							     x->server);
		if (next && next != x->server) {
			x->server = next;
			if (!x->svc->conf->pass_host_header && !rewrite_host(x)) {
				fail(x, 502);
				return;
			}
			/* When it fails, proxy_connect has answered and finished the
			 * exchange itself: x must not be touched again. */
			proxy_connect(x);
			return;
		}
	}
	fail(x, timed_out ? 504 : 502);
}

/* Lends a connection to the exchange and arms the right watcher and timer.
 * Returns false when it already failed (and the exchange was finished). */
static bool proxy_connect(struct proxy_exchange *x)
{
	for (;;) {
		x->attempts++;
		x->uc = upstream_acquire(x->server, x->pool_retry_done, &x->reused);
		if (x->uc)
			break;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* out of descriptors or memory here: not the server's fault, and
			 * another server would fare no better */
			log_warn("connect to %s: %s", x->server->conf->url, strerror(errno));
			fail(x, 502);
			return false;
		}
		log_debug("connect to %s: %s", x->server->conf->url, strerror(errno));
		struct upstream_group *g = x->svc->group;
		upstream_mark_down(g, x->server);
		struct upstream_server *next = NULL;
		if (x->retryable && x->attempts <= (unsigned)x->svc->conf->retries)
			next = upstream_pick(g, &x->c->peer.sa, slice_cstr(""), x->server);
		if (!next || next == x->server) {
			fail(x, 502);
			return false;
		}
		x->server = next;
		if (!x->svc->conf->pass_host_header && !rewrite_host(x)) {
			fail(x, 502);
			return false;
		}
	}
	x->server->active++;
	x->connecting = !x->reused;
	x->up_out_sent = 0;
	x->up_in_off = x->up_in_len = 0;
	x->got_bytes = x->upstream_eof = x->upstream_error = false;
	/* The connection's one watcher now reports to this exchange. */
	ev_io *io = &x->uc->io;
	ev_io_stop(server.loop, io);
	ev_set_cb(io, on_upstream_io);
	io->data = x;
	io_watch(io, EV_WRITE);
	ev_io_start(server.loop, io);
	set_timer(x, x->connecting ? PT_CONNECT : x->req.done ? PT_RESPONSE : PT_BODY);
	return true;
}

void proxy_start(struct conn *c, const struct service_rt *svc)
{
	const struct http_request *r = &c->rq->req;
	struct proxy_exchange *x = exchange_new();
	if (!x || !(x->up_out = buf_get(PROXY_BUF)) || !(x->up_in = buf_get(PROXY_BUF))) {
		if (x) {
			buf_put(x->up_out, PROXY_BUF);
			free(x);
		}
		c->keep_alive = false;
		conn_respond(c, 503, "text/plain; charset=utf-8", SLICE_LIT("503 Service Unavailable\n"), NULL);
		return;
	}
	x->up_in_cap = PROXY_BUF;
	x->c = c;
	x->svc = svc;
	c->exchange = x;
	ev_init(&x->timer, on_timer);
	x->timer.data = x;
	capture_log(x);
	x->upgrade_requested = r->upgrade && r->body == HTTP_BODY_NONE;
	x->retryable = is_idempotent(r->method) && r->body == HTTP_BODY_NONE && !x->upgrade_requested;
	body_pump_init(&x->req, r->body, r->content_length, r->body == HTTP_BODY_CHUNKED);
	c->phase = CONN_PROXY;

	if (svc->conf->sticky_cookie)
		find_sticky(x, svc->conf->sticky_cookie);
	x->server = upstream_pick(svc->group, &c->peer.sa, slice_cstr(x->sticky), NULL);
	if (!x->server) {
		fail(x, 503);
		return;
	}
	x->set_sticky = svc->conf->sticky_cookie && strcmp(x->sticky, x->server->cookie) != 0;
	if (!build_request_head(x)) {
		c->keep_alive = false;
		fail(x, 431);
		return;
	}
	c->rq->service_url = x->server->conf->url;
	proxy_connect(x);
}

/* The response head the client sees: the upstream's fields minus hop-by-hop ones,
 * with framing that fits this client. Returns false if it does not fit. */
static bool build_response_head(struct proxy_exchange *x, const struct http_response *resp)
{
	struct conn *c = x->c;
	bool client11 = c->rq->minor == 1;
	enum http_body_kind kind = resp->body;
	bool out_chunked = false;
	if (kind == HTTP_BODY_CHUNKED || kind == HTTP_BODY_EOF) {
		/* HTTP/1.1 clients keep their connection: the body is sent chunked. An
		 * HTTP/1.0 client gets it close-delimited. */
		out_chunked = client11;
		if (!client11)
			c->keep_alive = false;
	}
	if (!resp->keep_alive)
		x->upstream_keep_alive = false;
	struct http_out o = { c->out, c->out_len, OUT_CAP };
	bool ok = http_out_str(&o, "HTTP/1.1 ") && http_out_uint(&o, (unsigned)resp->status) && http_out_str(&o, " ") &&
		  http_out_slice(&o, resp->reason.len ? resp->reason : slice_cstr(http_reason(resp->status))) &&
		  http_out_str(&o, "\r\n");
	for (size_t i = 0; ok && i < resp->nfields; i++) {
		struct slice name = resp->fields[i].name;
		if (is_hop_by_hop(name) || named_in_connection(resp->fields, resp->nfields, name))
			continue;
		/* Without a body of ours, Content-Length still describes the resource
		 * (HEAD, 304); 1xx and 204 must not carry one at all (RFC 9110 §8.6). */
		if (slice_case_eq(name, SLICE_LIT("Content-Length")) &&
		    (kind != HTTP_BODY_NONE || resp->status == 204 || resp->status < 200))
			continue;
		if (c->rq->mw && middleware_drops_response_field(c->rq->mw, name))
			continue;
		ok = put_field(&o, name, resp->fields[i].value);
	}
	for (size_t i = 0; ok && c->rq->mw && i < c->rq->mw->n_resp_set; i++)
		if (c->rq->mw->resp_set[i].value.len)
			ok = put_field(&o, c->rq->mw->resp_set[i].name, c->rq->mw->resp_set[i].value);
	if (ok && kind == HTTP_BODY_LENGTH)
		ok = http_out_str(&o, "Content-Length: ") && http_out_uint(&o, resp->content_length) &&
		     http_out_str(&o, "\r\n");
	if (ok && out_chunked)
		ok = http_out_str(&o, "Transfer-Encoding: chunked\r\n");
	if (ok && x->set_sticky)
		ok = http_out_str(&o, "Set-Cookie: ") && http_out_str(&o, x->svc->conf->sticky_cookie) &&
		     http_out_str(&o, "=") && http_out_str(&o, x->server->cookie) &&
		     http_out_str(&o, "; Path=/; HttpOnly\r\n");
	if (ok && !c->keep_alive)
		ok = http_out_str(&o, "Connection: close\r\n");
	else if (ok && !client11)
		ok = http_out_str(&o, "Connection: keep-alive\r\n");
	ok = ok && http_out_str(&o, "\r\n");
	if (!ok)
		return false;
	c->out_len = o.len;
	body_pump_init(&x->resp, kind, resp->content_length, out_chunked);
	return true;
}

/* 101 Switching Protocols: the head goes out as it came (Upgrade and Connection
 * included), then bytes are copied both ways until either side closes. */
static bool start_tunnel(struct proxy_exchange *x, const struct http_response *resp)
{
	struct conn *c = x->c;
	struct http_out o = { c->out, c->out_len, OUT_CAP };
	bool ok = http_out_str(&o, "HTTP/1.1 101 ") && http_out_slice(&o, resp->reason) && http_out_str(&o, "\r\n");
	for (size_t i = 0; ok && i < resp->nfields; i++)
		ok = put_field(&o, resp->fields[i].name, resp->fields[i].value);
	ok = ok && http_out_str(&o, "\r\n");
	if (!ok)
		return false;
	c->out_len = o.len;
	c->keep_alive = false;
	x->tunnel = true;
	x->upstream_keep_alive = false;
	body_pump_init(&x->req, HTTP_BODY_EOF, 0, false);
	body_pump_init(&x->resp, HTTP_BODY_EOF, 0, false);
	return true;
}

/* True when a Transfer-Encoding value is just "chunked" (any case, OWS). */
static bool only_chunked(struct slice v)
{
	size_t a = 0, b = v.len;
	while (a < b && (v.p[a] == ' ' || v.p[a] == '\t'))
		a++;
	while (b > a && (v.p[b - 1] == ' ' || v.p[b - 1] == '\t'))
		b--;
	return slice_case_eq(slice_make(v.p + a, b - a), SLICE_LIT("chunked"));
}

/* Moves a large raw response body to the wide buffer (what is already read goes
 * along); without one to spare, the body streams through the 16 KiB buffer. */
static void widen_up_in(struct proxy_exchange *x)
{
	const struct body_pump *p = &x->resp;
	bool large = !p->out_chunked && !p->done &&
		     ((p->in_kind == HTTP_BODY_LENGTH && p->left > PROXY_BUF) || p->in_kind == HTTP_BODY_EOF);
	if (!large || x->up_in_cap >= PROXY_WIDE_BUF)
		return;
	char *wide = buf_get(PROXY_WIDE_BUF);
	if (!wide)
		return;
	size_t n = x->up_in_len - x->up_in_off;
	memcpy(wide, x->up_in + x->up_in_off, n);
	buf_put(x->up_in, x->up_in_cap);
	x->up_in = wide;
	x->up_in_cap = PROXY_WIDE_BUF;
	x->up_in_off = 0;
	x->up_in_len = n;
}

/* Parses what the upstream sent as a response head. Returns -1 after failing
 * the exchange, 0 to wait for more, 1 when the final head was handled. */
static int handle_response_head(struct proxy_exchange *x)
{
	struct conn *c = x->c;
	for (;;) {
		struct http_response resp;
		int rc = http_parse_response(x->up_in + x->up_in_off, x->up_in_len - x->up_in_off,
					     RESPONSE_HEAD_MAX, x->log.method, &resp);
		if (rc == HTTP_INCOMPLETE) {
			if (x->upstream_eof || x->upstream_error) {
				log_warn("%s: %s in the middle of the response head", x->server->conf->url,
					 upstream_end(x));
				fail(x, 502);
				return -1;
			}
			if (x->up_in_len - x->up_in_off >= RESPONSE_HEAD_MAX) {
				log_warn("response head from %s is longer than %d bytes", x->server->conf->url,
					 RESPONSE_HEAD_MAX);
				fail(x, 502);
				return -1;
			}
			return 0;
		}
		if (rc < 0) {
			log_warn("malformed response from %s", x->server->conf->url);
			fail(x, 502);
			return -1;
		}
		if (resp.status == 101 && x->upgrade_requested) {
			if (OUT_CAP - c->out_len < (size_t)rc + 64 || !start_tunnel(x, &resp)) {
				fail(x, 502);
				return -1;
			}
			x->status = 101;
		} else if (resp.status >= 100 && resp.status < 200) {
			/* Interim responses (100 Continue, 103) are relayed to HTTP/1.1 clients. */
			if (c->rq->minor == 1) {
				struct http_out o = { c->out, c->out_len, OUT_CAP };
				if (!(http_out_str(&o, "HTTP/1.1 ") && http_out_uint(&o, (unsigned)resp.status) &&
				      http_out_str(&o, " ") && http_out_str(&o, http_reason(resp.status)) &&
				      http_out_str(&o, "\r\n\r\n")))
					return 0; /* wait for the client to drain */
				c->out_len = o.len;
			}
			x->up_in_off += (size_t)rc;
			continue;
		} else {
			/* A coding we would not decode (gzip, ...) cannot be re-framed
			 * without changing the body's meaning: refuse it. */
			const struct http_field *te = http_find_field(resp.fields, resp.nfields, SLICE_LIT("Transfer-Encoding"));
			if (te && !only_chunked(te->value)) {
				log_warn("response from %s with a transfer coding other than chunked", x->server->conf->url);
				fail(x, 502);
				return -1;
			}
			x->upstream_keep_alive = resp.keep_alive;
			x->status = resp.status;
			if (!build_response_head(x, &resp)) {
				if (c->out_len > 0)
					return 0; /* room comes back once the client drains */
				fail(x, 502);
				return -1;
			}
		}
		x->up_in_off += (size_t)rc;
		x->head_received = true;
		widen_up_in(x);
		c->rq->status = x->status;
		set_timer(x, PT_STREAM);
		return 1;
	}
}

/* The upstream closed or failed before a single response byte. */
static void upstream_died_early(struct proxy_exchange *x)
{
	/* A pooled connection the server closed just as we picked it: one more
	 * try on a new connection (not another pooled one, which the server may
	 * have closed the same way), and not the server's fault. */
	if (x->reused && x->retryable && !x->pool_retry_done) {
		x->pool_retry_done = true;
		release_upstream(x, false);
		x->attempts--;
		proxy_connect(x);
		return;
	}
	connection_failed(x, false);
}

static void flush_upstream(struct proxy_exchange *x)
{
	while (x->uc && !x->connecting && x->up_out_sent < x->up_out_len) {
		ssize_t n = send(x->uc->fd, x->up_out + x->up_out_sent, x->up_out_len - x->up_out_sent, MSG_NOSIGNAL);
		if (n > 0) {
			x->up_out_sent += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		x->upstream_error = true;
		x->upstream_errno = n < 0 ? errno : EIO;
		return;
	}
}

static void update_events(struct proxy_exchange *x)
{
	if (!x->uc)
		return;
	int want = 0;
	if (x->connecting || x->up_out_sent < x->up_out_len)
		want |= EV_WRITE;
	if (!x->connecting && !x->upstream_eof && !x->upstream_error && x->up_in_len < x->up_in_cap)
		want |= EV_READ;
	ev_io *io = &x->uc->io;
	if (want == (io->events & (EV_READ | EV_WRITE)) && ev_is_active(io))
		return;
	/* ev_io_modify, not ev_io_set: the fd is the same, and libev would
	 * otherwise re-register it with epoll (a failing EPOLL_CTL_ADD each time). */
	ev_io_stop(server.loop, io);
	io_watch(io, want);
	if (want)
		ev_io_start(server.loop, io);
}

bool proxy_progress(struct proxy_exchange *x)
{
	struct conn *c = x->c;
	if (!x->uc)
		return false; /* between a failure and a retry there is always a uc */
	if (x->connecting) {
		update_events(x);
		return false;
	}
	if (!c->out && !(c->out = buf_get(OUT_CAP))) {
		fail(x, 502);
		return true;
	}
	uint64_t moved_before = x->req.moved + x->resp.moved, req_before = x->req.moved;

	/* Request body: client buffer -> upstream buffer -> upstream, repeated while
	 * the upstream takes everything: an emptied buffer raises no event. Until
	 * the response starts, a retryable request keeps its head in up_out. */
	for (;;) {
		if (!x->req.done) {
			if (x->up_out_sent == x->up_out_len && !x->retryable)
				x->up_out_len = x->up_out_sent = 0;
			if (x->tunnel)
				x->req.eof = c->peer_eof;
			if (c->in) {
				if (body_pump_move(&x->req, c->in, &c->in_off, c->in_len, x->up_out, &x->up_out_len,
						   PROXY_BUF) < 0) {
					log_debug("malformed chunked request body from %s", c->rq->peer_text);
					c->keep_alive = false;
					fail(x, 400);
					return true;
				}
			} else if (x->req.in_kind == HTTP_BODY_EOF && x->req.eof) {
				size_t zero = 0;
				body_pump_move(&x->req, "", &zero, 0, x->up_out, &x->up_out_len, PROXY_BUF);
			}
			if (!x->req.done && c->peer_eof && c->in_off == c->in_len && !x->tunnel) {
				/* the client went away in the middle of its body */
				release_upstream(x, false);
				c->keep_alive = false;
				x->status = x->status ? x->status : 499;
				finish(x);
				return true;
			}
		}
		size_t sent_before = x->up_out_sent;
		flush_upstream(x);
		if (x->req.done || x->up_out_sent != x->up_out_len || x->up_out_sent == sent_before ||
		    c->in_off == c->in_len)
			break;
	}
	if (x->tunnel && x->req.done && !x->half_closed && x->up_out_sent == x->up_out_len) {
		shutdown(x->uc->fd, SHUT_WR);
		x->half_closed = true;
	}

	/* While the body comes in, each piece restarts body_timeout; once the whole
	 * request is out, the response deadline starts. */
	if (x->timer_kind == PT_BODY && x->req.done)
		set_timer(x, PT_RESPONSE);
	else if (x->timer_kind == PT_BODY && x->req.moved != req_before)
		set_timer(x, PT_BODY);

	if (!x->head_received) {
		if (!x->got_bytes && (x->upstream_eof || x->upstream_error)) {
			upstream_died_early(x);
			return c->exchange == NULL;
		}
		int h = handle_response_head(x);
		if (h < 0)
			return true;
		if (h == 0) {
			update_events(x);
			return false;
		}
	}

	/* Response body: upstream buffer -> client. A raw body goes straight to the
	 * socket when nothing is queued before it; otherwise through c->out. */
	/* Only a clean close ends a close-delimited body; after a reset or an error
	 * the client must not get a last chunk that says the body is whole. */
	x->resp.eof = x->upstream_eof;
	size_t span = body_pump_raw_span(&x->resp, x->up_in_len - x->up_in_off);
	if (span) {
		ssize_t w = conn_send_direct(c, x->up_in + x->up_in_off, span);
		if (w > 0) {
			x->up_in_off += (size_t)w;
			body_pump_consumed(&x->resp, (size_t)w);
		} else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			release_upstream(x, false); /* the client is gone */
			c->keep_alive = false;
			finish(x);
			return true;
		}
	}
	if (body_pump_move(&x->resp, x->up_in, &x->up_in_off, x->up_in_len, c->out, &c->out_len, OUT_CAP) < 0) {
		log_warn("malformed chunked response from %s", x->server->conf->url);
		release_upstream(x, false);
		c->keep_alive = false;
		finish(x);
		return true;
	}
	if (x->up_in_off == x->up_in_len)
		x->up_in_off = x->up_in_len = 0;
	if (!x->resp.done && (x->upstream_eof || x->upstream_error) && x->up_in_off == x->up_in_len) {
		/* truncated: the client sees the connection close before the body's end */
		log_warn("%s: %s in the middle of the response body, after %llu bytes; closing the client connection",
			 x->server->conf->url, upstream_end(x), (unsigned long long)x->resp.moved);
		release_upstream(x, false);
		c->keep_alive = false;
		finish(x);
		return true;
	}
	if (x->resp.done) {
		bool reusable = x->upstream_keep_alive && x->req.done && !x->tunnel && x->up_in_len == 0 &&
				!x->upstream_eof && !x->upstream_error && x->up_out_sent == x->up_out_len;
		release_upstream(x, reusable);
		finish(x);
		return true;
	}
	/* Progress either way restarts the stall timer; a stalled peer runs it out. */
	if (x->timer_kind == PT_STREAM && x->req.moved + x->resp.moved != moved_before)
		set_timer(x, PT_STREAM);
	update_events(x);
	return false;
}

static void on_upstream_io(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	struct proxy_exchange *x = w->data;
	if (x->connecting && (revents & EV_WRITE)) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(x->uc->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			log_debug("connect to %s: %s", x->server->conf->url, strerror(err));
			struct conn *c = x->c;
			connection_failed(x, false);
			conn_kick(c);
			return;
		}
		x->connecting = false;
		set_timer(x, x->req.done ? PT_RESPONSE : PT_BODY);
	}
	if (revents & EV_READ) {
		ssize_t n = read(x->uc->fd, x->up_in + x->up_in_len, x->up_in_cap - x->up_in_len);
		if (n > 0) {
			x->up_in_len += (size_t)n;
			x->got_bytes = true;
			if (x->timer_kind == PT_STREAM)
				set_timer(x, PT_STREAM);
		} else if (n == 0) {
			x->upstream_eof = true;
		} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			x->upstream_error = true;
			x->upstream_errno = errno;
		}
	}
	conn_kick(x->c);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct proxy_exchange *x = w->data;
	struct conn *c = x->c;
	switch (x->timer_kind) {
	case PT_CONNECT:
		log_debug("connect to %s timed out", x->server->conf->url);
		connection_failed(x, false);
		break;
	case PT_RESPONSE:
		log_warn("%s: no response within response_timeout", x->server->conf->url);
		fail(x, 504);
		break;
	case PT_BODY:
		/* the client stopped sending its body: 408 if nothing was answered yet */
		c->keep_alive = false;
		fail(x, 408);
		break;
	default:
		release_upstream(x, false);
		c->keep_alive = false;
		finish(x);
		break;
	}
	conn_kick(c);
}

void proxy_abort(struct proxy_exchange *x)
{
	release_upstream(x, false);
	x->c->exchange = NULL;
	exchange_free(x);
}
