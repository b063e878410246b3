/* conn.c - the downstream connection state machine. The data path reads top to
 * bottom: conn_accept -> on_io -> conn_read -> conn_process (parse -> route ->
 * handler -> respond) -> conn_flush -> access log; then the next request. */
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "accesslog.h"
#include "acme.h"
#include "admin.h"
#include "buf.h"
#include "cidr.h"
#include "hello.h"
#include "http_write.h"
#include "log.h"
#include "metrics.h"
#include "middleware.h"
#include "proxy.h"
#include "static.h"
#include "tls.h"

/* A new request is only taken while this much output space is free, so that any
 * built-in response fits; pipelined requests wait for the output to drain. */
#define OUT_RESERVE 8192

/* The middleware state of a request comes from the buffer pool. */
#define MW_STATE_BUF 8192
_Static_assert(sizeof(struct mw_state) <= MW_STATE_BUF, "mw_state outgrew its pool buffer");

#define REQ_BUF 4096
_Static_assert(sizeof(struct conn_req) <= REQ_BUF, "conn_req outgrew its pool buffer");

enum timer_kind { T_NONE, T_HEADER, T_IDLE, T_BODY, T_SEND, T_LINGER };

/* How long a closing connection drains the client's leftover bytes. */
#define LINGER_SECONDS 2.0
#define LINGER_MAX_BYTES (256 * 1024)

static struct conn *all_conns;

static void on_io(struct ev_loop *loop, ev_io *w, int revents);
static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents);
static void conn_process(struct conn *c);
static void conn_update_timer(struct conn *c, bool progress);

/* A response body sent from memory or a file, after the head in c->out. */
static bool body_pending(const struct conn *c)
{
	return c->rq && (c->rq->body_mem || c->rq->body_fd >= 0);
}

static void conn_drop_body(struct conn *c)
{
	if (!c->rq)
		return;
	free(c->rq->body_mem);
	c->rq->body_mem = NULL;
	if (c->rq->body_fd >= 0)
		close(c->rq->body_fd);
	c->rq->body_fd = -1;
}

static void conn_release_mw(struct conn *c)
{
	if (!c->rq || !c->rq->mw)
		return;
	middleware_done(c->rq->mw);
	buf_put((char *)c->rq->mw, MW_STATE_BUF);
	c->rq->mw = NULL;
}

static void conn_close(struct conn *c)
{
	if (c->exchange)
		proxy_abort(c->exchange);
	if (c->tls) {
		if (c->phase != CONN_LINGER)
			tls_close_notify(c->tls, c->fd);
		tls_conn_free(c->tls);
	}
	conn_release_mw(c);
	conn_drop_body(c);
	buf_put((char *)c->rq, REQ_BUF);
	ev_io_stop(server.loop, &c->io);
	ev_timer_stop(server.loop, &c->timer);
	close(c->fd);
	buf_put(c->in, c->in_cap);
	buf_put(c->out, OUT_CAP);
	/* c->ep lives in the snapshot: after a reload this connection may hold the
	 * last reference, so everything that reads it comes before the unref. */
	metrics_connection_close(c->ep->conf->name);
	snapshot_unref(c->snap);
	if (c->prev)
		c->prev->next = c->next;
	else
		all_conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
	server.n_conns--;
	server_conn_closed();
}

/* The request state, from the pool; NULL (connection marked for closing) when
 * memory runs out. */
static struct conn_req *conn_get_rq(struct conn *c)
{
	if (c->rq)
		return c->rq;
	struct conn_req *rq = (struct conn_req *)(void *)buf_get(REQ_BUF);
	if (!rq) {
		c->keep_alive = false;
		c->phase = CONN_DONE;
		return NULL;
	}
	memset(rq, 0, sizeof(*rq));
	rq->body_fd = -1;
	c->rq = rq;
	cidr_addr_text(&c->peer.sa, rq->peer_text); /* IPv4-mapped clients as IPv4 */
	return rq;
}

void conn_accept(struct listener *l, int fd, const struct sockaddr_storage *peer)
{
	const struct entrypoint_rt *ep = snapshot_entrypoint(server.snap, l->name);
	struct conn *c = calloc(1, sizeof(*c));
	if (!c || !ep) {
		free(c);
		close(fd);
		return;
	}
	c->fd = fd;
	c->snap = snapshot_ref(server.snap);
	c->ep = ep;
	memcpy(&c->peer, peer, peer->ss_family == AF_INET6 ? sizeof(c->peer.v6) : sizeof(c->peer.v4));
	c->in_cap = ep->conf->max_header_size;
	c->phase = CONN_HEAD;
	if (ep->conf->tls && !(c->tls = tls_conn_new(c->snap->tls))) {
		snapshot_unref(c->snap);
		free(c);
		close(fd);
		return;
	}
	c->next = all_conns;
	if (all_conns)
		all_conns->prev = c;
	all_conns = c;
	server.n_conns++;
	metrics_connection_open(l->name);
	ev_io_init(&c->io, on_io, fd, EV_READ);
	c->io.data = c;
	ev_init(&c->timer, on_timeout);
	c->timer.data = c;
	ev_io_start(server.loop, &c->io);
	/* The header timeout runs from the accept: a client that never sends a
	 * byte is closed like one that stalls half-way. */
	c->timer_kind = T_NONE;
	conn_update_timer(c, false);
}

/* Bytes waiting to go to the client: the output buffer, then any body source. */
static size_t out_pending(const struct conn *c)
{
	size_t n = c->out_len - c->out_sent;
	if (!c->rq)
		return n;
	if (c->rq->body_mem)
		n += c->rq->body_mem_len - c->rq->body_mem_off;
	if (c->rq->body_fd >= 0)
		n += (size_t)(c->rq->body_end - c->rq->body_off);
	return n;
}

/* Bytes in the output buffer alone. */
static size_t buf_pending(const struct conn *c)
{
	return c->out_len - c->out_sent;
}

static double timer_seconds(const struct conn *c, int kind)
{
	const struct conf_entrypoint *ep = c->ep->conf;
	switch (kind) {
	case T_HEADER: return (double)ep->header_timeout_ms / 1000.0;
	case T_IDLE: return (double)ep->idle_timeout_ms / 1000.0;
	case T_BODY: return (double)ep->body_timeout_ms / 1000.0;
	case T_SEND: return (double)ep->idle_timeout_ms / 1000.0;
	case T_LINGER: return LINGER_SECONDS;
	default: return 0;
	}
}

/* Picks the timeout that applies now. The header timeout runs from the first byte
 * of a head and is not extended by progress (slow-header clients); body and send
 * timeouts measure the longest gap, so progress restarts them. */
static void conn_update_timer(struct conn *c, bool progress)
{
	int kind;
	if (c->phase == CONN_PROXY)
		kind = T_NONE; /* the exchange runs its own timers */
	else if (c->phase == CONN_LINGER)
		kind = T_LINGER;
	else if (out_pending(c) && c->phase != CONN_BODY)
		kind = T_SEND;
	else if (c->phase == CONN_BODY)
		kind = T_BODY;
	else if (c->in_len > c->in_off || c->requests == 0)
		kind = T_HEADER;
	else
		kind = T_IDLE;
	if (kind == c->timer_kind && !(progress && (kind == T_BODY || kind == T_SEND)))
		return;
	c->timer_kind = kind;
	double secs = timer_seconds(c, kind);
	ev_timer_stop(server.loop, &c->timer);
	if (secs > 0) {
		ev_timer_set(&c->timer, secs, 0.);
		ev_timer_start(server.loop, &c->timer);
	}
}

static void conn_set_events(struct conn *c)
{
	int want = 0;
	if (c->phase == CONN_PROXY) {
		/* Read while the buffer has room (what comes after the body waits there
		 * for its turn); a full buffer must not be asked for more, as epoll is
		 * level-triggered. Not toggling interest per request saves epoll_ctl calls. */
		if (!c->peer_eof && (c->in_len - c->in_off) < c->in_cap)
			want |= EV_READ;
	} else if (c->phase == CONN_LINGER ||
		   (c->phase != CONN_DONE && !c->peer_eof && !body_pending(c) && buf_pending(c) < OUT_CAP - OUT_RESERVE)) {
		want |= EV_READ;
	}
	if (out_pending(c) || (c->tls && tls_wants_write(c->tls)))
		want |= EV_WRITE;
	/* Plaintext already decrypted inside the engine raises no socket event. */
	if ((want & EV_READ) && c->tls && tls_has_pending_input(c->tls))
		ev_feed_event(server.loop, &c->io, EV_READ);
	if (want == (c->io.events & (EV_READ | EV_WRITE)) && ev_is_active(&c->io))
		return;
	ev_io_stop(server.loop, &c->io);
	io_watch(&c->io, want); /* same fd: no re-registration with epoll */
	if (want)
		ev_io_start(server.loop, &c->io);
}

static ssize_t sock_write(struct conn *c, const char *p, size_t n)
{
	return c->tls ? tls_send(c->tls, c->fd, p, n) : write(c->fd, p, n);
}

ssize_t conn_send_direct(struct conn *c, const char *p, size_t n)
{
	size_t queued = buf_pending(c);
	if (body_pending(c) || (queued && c->tls)) {
		errno = EAGAIN;
		return -1;
	}
	if (!queued) {
		ssize_t w = sock_write(c, p, n);
		if (w > 0)
			c->direct_sent = true;
		return w;
	}
	/* A response head still queued goes out in the same call, ahead of the body. */
	struct iovec iov[2] = { { c->out + c->out_sent, queued }, { (void *)p, n } };
	ssize_t w = writev(c->fd, iov, 2);
	if (w <= 0)
		return w;
	c->direct_sent = true;
	if ((size_t)w < queued) {
		c->out_sent += (size_t)w;
		return 0;
	}
	c->out_len = c->out_sent = 0;
	return w - (ssize_t)queued;
}

/* Moves the next piece of a file body: straight to the socket with sendfile, or
 * (TLS, which must encrypt it) into the output buffer. Returns bytes moved to
 * the socket, 0 when it would block, -1 on failure. */
static ssize_t flush_file(struct conn *c)
{
	size_t left = (size_t)(c->rq->body_end - c->rq->body_off);
	if (c->tls) {
		size_t n = left < OUT_CAP ? left : OUT_CAP;
		ssize_t r = pread(c->rq->body_fd, c->out, n, c->rq->body_off);
		if (r <= 0)
			return -1; /* the file shrank or failed: the length promised is void */
		c->out_len = (size_t)r;
		c->out_sent = 0;
		c->rq->body_off += r;
		return 0;
	}
	ssize_t r = sendfile(c->fd, c->rq->body_fd, &c->rq->body_off, left < (1u << 20) ? left : (1u << 20));
	if (r > 0)
		return r;
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	return -1;
}

/* Writes queued output. Returns the bytes written, or -1 when the connection is gone. */
static ssize_t conn_flush(struct conn *c)
{
	ssize_t total = 0;
	if (c->tls && tls_flush(c->tls, c->fd) < 0)
		return -1;
	for (;;) {
		while (buf_pending(c)) {
			ssize_t n = sock_write(c, c->out + c->out_sent, buf_pending(c));
			if (n > 0) {
				c->out_sent += (size_t)n;
				total += n;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return total;
			return -1;
		}
		c->out_len = c->out_sent = 0;
		if (!c->rq)
			return total;
		if (c->rq->body_mem) {
			if (c->rq->body_mem_off == c->rq->body_mem_len) {
				conn_drop_body(c);
				continue;
			}
			ssize_t n = sock_write(c, c->rq->body_mem + c->rq->body_mem_off, c->rq->body_mem_len - c->rq->body_mem_off);
			if (n > 0) {
				c->rq->body_mem_off += (size_t)n;
				total += n;
				continue;
			}
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
				return total;
			return -1;
		}
		if (c->rq->body_fd >= 0) {
			if (c->rq->body_off >= c->rq->body_end) {
				conn_drop_body(c);
				continue;
			}
			if (!c->out && !(c->out = buf_get(OUT_CAP)))
				return -1;
			ssize_t n = flush_file(c);
			if (n < 0)
				return -1;
			total += n;
			if (n == 0 && !buf_pending(c))
				return total; /* sendfile would block */
			continue;
		}
		return total;
	}
}

/* Writes a response head into the output buffer. Returns false (and marks the
 * connection for closing) when it does not fit. *send_body tells whether a body
 * follows (not for HEAD, 1xx, 204, 304). */
static bool conn_put_head(struct conn *c, int status, const char *content_type, uint64_t length,
			  const char *extra_headers, bool *send_body)
{
	if (!c->out && !(c->out = buf_get(OUT_CAP))) {
		c->keep_alive = false;
		c->phase = CONN_DONE;
		return false;
	}
	bool head = c->rq->head_req;
	/* 1xx, 204 and 304 carry no body and no Content-Length (RFC 9110 §8.6). */
	bool bodiless = status < 200 || status == 204 || status == 304;
	struct http_out o = { c->out, c->out_len, OUT_CAP };
	bool ok = http_out_str(&o, "HTTP/1.1 ") && http_out_uint(&o, (unsigned)status) &&
		  http_out_str(&o, " ") && http_out_str(&o, http_reason(status)) &&
		  http_out_str(&o, "\r\nDate: ") && http_out_slice(&o, http_date_now()) && http_out_str(&o, "\r\n");
	if (ok && content_type && !bodiless)
		ok = http_out_str(&o, "Content-Type: ") && http_out_str(&o, content_type) && http_out_str(&o, "\r\n");
	if (ok && !bodiless)
		ok = http_out_str(&o, "Content-Length: ") && http_out_uint(&o, length) && http_out_str(&o, "\r\n");
	if (ok && extra_headers)
		ok = http_out_str(&o, extra_headers);
	for (size_t i = 0; ok && c->rq->mw && i < c->rq->mw->n_resp_set; i++)
		if (c->rq->mw->resp_set[i].value.len)
			ok = http_out_slice(&o, c->rq->mw->resp_set[i].name) && http_out_str(&o, ": ") &&
			     http_out_slice(&o, c->rq->mw->resp_set[i].value) && http_out_str(&o, "\r\n");
	if (ok && !c->keep_alive)
		ok = http_out_str(&o, "Connection: close\r\n");
	else if (ok && c->rq->minor == 0)
		ok = http_out_str(&o, "Connection: keep-alive\r\n");
	ok = ok && http_out_str(&o, "\r\n");
	if (!ok) {
		log_warn("response head of status %d too large for the output buffer", status);
		c->keep_alive = false;
		c->phase = CONN_DONE;
		return false;
	}
	if (!c->keep_alive && status >= 400)
		c->unread_input = true;
	c->rq->status = status;
	c->out_len = o.len;
	*send_body = !head && !bodiless;
	c->rq->resp_size = *send_body ? length : 0;
	return true;
}

void conn_respond(struct conn *c, int status, const char *content_type, struct slice body,
		  const char *extra_headers)
{
	bool send_body;
	if (!conn_put_head(c, status, content_type, body.len, extra_headers, &send_body) || !send_body)
		return;
	struct http_out o = { c->out, c->out_len, OUT_CAP };
	if (http_out_slice(&o, body)) {
		c->out_len = o.len;
		return;
	}
	/* Larger than what is left of the buffer: send it from a copy. */
	char *copy = malloc(body.len);
	if (!copy) {
		c->keep_alive = false;
		c->phase = CONN_DONE;
		return;
	}
	memcpy(copy, body.p, body.len);
	c->rq->body_mem = copy;
	c->rq->body_mem_len = body.len;
	c->rq->body_mem_off = 0;
}

void conn_respond_owned(struct conn *c, int status, const char *content_type, char *body, size_t len,
			const char *extra_headers)
{
	bool send_body;
	if (!conn_put_head(c, status, content_type, len, extra_headers, &send_body) || !send_body) {
		free(body);
		return;
	}
	c->rq->body_mem = body;
	c->rq->body_mem_len = len;
	c->rq->body_mem_off = 0;
}

void conn_respond_file(struct conn *c, int status, const char *content_type, int fd, off_t off, off_t len,
		       const char *extra_headers)
{
	bool send_body;
	if (!conn_put_head(c, status, content_type, (uint64_t)len, extra_headers, &send_body) || !send_body) {
		close(fd);
		return;
	}
	c->rq->body_fd = fd;
	c->rq->body_off = off;
	c->rq->body_end = off + len;
}

static void conn_respond_text(struct conn *c, int status, const char *text)
{
	conn_respond(c, status, "text/plain; charset=utf-8", slice_cstr(text), NULL);
}

static void conn_log_request(struct conn *c)
{
	bool internal = c->ep->conf->is_admin;
	if (!internal) {
		const struct route *rt = c->rq->route;
		metrics_request(c->ep->conf->name, rt ? rt->name : NULL, rt ? rt->service->conf->name : NULL,
				c->rq->req.method, c->rq->status, ev_time() - c->rq->started, c->tls != NULL);
	}
	server.requests_total++;
	/* health probes of the admin listener stay out of the access log by default */
	if (!accesslog_enabled() || (internal && !c->snap->cfg->global.access_log_internal))
		return;
	const struct http_request *r = &c->rq->req;
	const struct http_field *referer = http_find_field(r->fields, r->nfields, SLICE_LIT("Referer"));
	const struct http_field *ua = http_find_field(r->fields, r->nfields, SLICE_LIT("User-Agent"));
	struct access_record rec = {
		.client = c->rq->peer_text,
		.user = c->rq->mw ? c->rq->mw->user : (struct slice){ 0 },
		.method = r->method,
		.target = r->target,
		.minor = r->minor,
		.status = c->rq->status,
		.size = c->rq->resp_size,
		.referer = referer ? referer->value : SLICE_LIT("-"),
		.user_agent = ua ? ua->value : SLICE_LIT("-"),
		.count = server.requests_total,
		.router = c->rq->router,
		.service_url = c->rq->service_url,
		.entrypoint = c->ep->conf->name,
		.duration_ms = (ev_time() - c->rq->started) * 1000.0,
	};
	accesslog_write(&rec);
}

/* RFC 9110 §15.4.9: the redirect keeps host (without its port), path and query. */
static void respond_redirect(struct conn *c)
{
	const struct conf_entrypoint *to = config_find_entrypoint(c->snap->cfg, c->ep->conf->redirect_to);
	struct slice host = c->rq->req.host;
	for (size_t i = host.len; i > 0; i--) {
		if (host.p[i - 1] == ']')
			break;
		if (host.p[i - 1] == ':') {
			host.len = i - 1;
			break;
		}
	}
	char loc[OUT_RESERVE - 1024];
	struct http_out o = { loc, 0, sizeof(loc) };
	bool tls = to && to->tls;
	int port = c->ep->redirect_port;
	bool ok = http_out_str(&o, "Location: ") && http_out_str(&o, tls ? "https://" : "http://") &&
		  http_out_slice(&o, host);
	if (ok && port != (tls ? 443 : 80))
		ok = http_out_str(&o, ":") && http_out_uint(&o, (unsigned)port);
	ok = ok && http_out_slice(&o, c->rq->req.target.p[0] == '/' ? c->rq->req.target : c->rq->req.path);
	if (ok && c->rq->req.target.p[0] != '/' && c->rq->req.query.len)
		ok = http_out_str(&o, "?") && http_out_slice(&o, c->rq->req.query);
	ok = ok && http_out_str(&o, "\r\n") && o.len < sizeof(loc);
	if (!ok) {
		conn_respond_text(c, 414, "414 URI Too Long\n");
		return;
	}
	loc[o.len] = '\0';
	c->rq->router = "redirect";
	conn_respond(c, 308, "text/plain; charset=utf-8", SLICE_LIT("308 Permanent Redirect\n"), loc);
}

/* The admin listener: its endpoints instead of routers. */
static void conn_serve_admin(struct conn *c)
{
	struct admin_response ar = { 0 };
	admin_handle(c->snap, c->rq->req.method, c->rq->req.path, !server.stopping, &ar);
	char allow[64] = "";
	if (ar.allow)
		snprintf(allow, sizeof(allow), "Allow: %s\r\n", ar.allow);
	c->rq->router = "admin";
	if (!ar.body && ar.body_len == 0)
		conn_respond(c, ar.status, ar.content_type, SLICE_LIT(""), ar.allow ? allow : NULL);
	else
		conn_respond_owned(c, ar.status, ar.content_type, ar.body, ar.body_len, ar.allow ? allow : NULL);
}

/* Runs the route's middlewares; returns the status of an early answer, or 0. */
static int conn_run_middlewares(struct conn *c, const struct route *route)
{
	if (!(c->rq->mw = (struct mw_state *)(void *)buf_get(MW_STATE_BUF))) {
		c->keep_alive = false;
		return 503;
	}
	memset(c->rq->mw, 0, sizeof(*c->rq->mw));
	struct mw_request mr = {
		.req = &c->rq->req,
		.client = &c->peer.sa,
		.client_text = c->rq->peer_text,
		.tls = c->ep->conf->tls,
		.now_ms = (int64_t)(ev_now(server.loop) * 1000.0),
	};
	return middleware_run(route->chain, route->chain_len, &mr, c->rq->mw);
}

/* A request head is complete: route it and run its handler. Returns true when
 * the proxy took the request over, false when the response is queued here. */
static bool conn_dispatch(struct conn *c)
{
	struct http_request *r = &c->rq->req;
	c->rq->router = NULL;
	c->rq->route = NULL;
	c->rq->service_url = NULL;
	c->keep_alive = r->keep_alive && !server.stopping && !c->peer_eof;

	if (slice_eq(r->method, SLICE_LIT("CONNECT"))) {
		c->keep_alive = false;
		conn_respond_text(c, 501, "501 Not Implemented\n");
		return false;
	}
	uint64_t max_body = c->ep->conf->max_body_size;
	if (max_body && r->body == HTTP_BODY_LENGTH && r->content_length > max_body) {
		c->keep_alive = false;
		conn_respond_text(c, 413, "413 Content Too Large\n");
		return false;
	}
	if (c->ep->conf->is_admin) {
		conn_serve_admin(c);
		return false;
	}
	static const struct slice challenge = SLICE_LIT("/.well-known/acme-challenge/");
	if (!c->tls && slice_has_prefix(r->path, challenge)) {
		/* HTTP-01 (RFC 8555 §8.3) is answered here, before redirects and routers */
		struct slice token = slice_make(r->path.p + challenge.len, r->path.len - challenge.len);
		const char *ka = acme_http01_key_authorization(token);
		if (ka) {
			c->rq->router = "acme";
			conn_respond(c, 200, "text/plain", slice_cstr(ka), NULL);
			return false;
		}
	}
	if (c->ep->redirect_port && !slice_has_prefix(r->path, challenge)) {
		respond_redirect(c);
		return false;
	}
	struct rule_subject subject = {
		.method = r->method,
		.host = r->host,
		.path = r->path,
		.query = r->query,
		.fields = r->fields,
		.nfields = r->nfields,
		.client = &c->peer.sa,
	};
	const struct route *route = snapshot_route(c->ep, &subject);
	if (!route) {
		conn_respond_text(c, 404, "404 page not found\n");
		return false;
	}
	c->rq->router = route->name;
	c->rq->route = route;
	if (route->chain_len && conn_run_middlewares(c, route) > 0) {
		conn_respond(c, c->rq->mw->status, "text/plain; charset=utf-8", c->rq->mw->body, NULL);
		return false;
	}
	if (route->service->conf->type == SERVICE_PROXY) {
		proxy_start(c, route->service);
		return true;
	}
	/* A built-in handler answers without asking for the body: after a final
	 * answer to "Expect: 100-continue" the client may send it or not (RFC 9110
	 * §10.1.1), so the framing is lost and the connection closes after. */
	if (r->expect_continue && r->body != HTTP_BODY_NONE)
		c->keep_alive = false;
	switch (route->service->conf->type) {
	case SERVICE_HELLO:
		hello_handle(c, route->service);
		break;
	case SERVICE_STATIC:
		static_handle(c, route->service);
		break;
	default:
		conn_respond_text(c, 501, "501 Not Implemented\n");
		break;
	}
	return false;
}

/* Between requests a connection moves to the newest configuration (SPEC §4:
 * requests in flight finish on the one they started with). */
static void conn_refresh_snapshot(struct conn *c)
{
	if (c->snap == server.snap)
		return;
	const struct entrypoint_rt *ep = snapshot_entrypoint(server.snap, c->ep->conf->name);
	if (!ep)
		return; /* entry point removed: finish on the old one */
	snapshot_unref(c->snap);
	c->snap = snapshot_ref(server.snap);
	c->ep = ep;
}

static int parse_error_status(int rc)
{
	switch (rc) {
	case HTTP_ERR_HEAD_TOO_LARGE:
	case HTTP_ERR_TOO_MANY_FIELDS: return 431;
	case HTTP_ERR_VERSION: return 505;
	case HTTP_ERR_TE: return 501;
	default: return 400;
	}
}

/* Starts discarding the body of a request whose handler did not need it. */
static void conn_begin_body(struct conn *c)
{
	if (c->rq->req.body == HTTP_BODY_LENGTH && c->rq->req.content_length > 0) {
		c->phase = CONN_BODY;
		c->rq->body_is_chunked = false;
		c->rq->body_left = c->rq->req.content_length;
	} else if (c->rq->req.body == HTTP_BODY_CHUNKED) {
		c->phase = CONN_BODY;
		c->rq->body_is_chunked = true;
		http_chunked_init(&c->rq->chunked);
	}
}

/* Consumes buffered body bytes. Returns 1 when the body is complete, 0 when more
 * is needed, -1 on a malformed or oversized body. */
static int conn_skip_body(struct conn *c)
{
	const char *p = c->in + c->in_off;
	size_t avail = c->in_len - c->in_off;
	if (!c->rq->body_is_chunked) {
		size_t take = avail < c->rq->body_left ? avail : (size_t)c->rq->body_left;
		c->in_off += take;
		c->rq->body_left -= take;
		return c->rq->body_left == 0;
	}
	uint64_t max_body = c->ep->conf->max_body_size;
	while (avail > 0 && c->rq->chunked.state != CHUNK_DONE) {
		size_t off, len = 0;
		ssize_t used = http_chunked_feed(&c->rq->chunked, p, avail, &off, &len);
		if (used < 0)
			return -1;
		c->rq->body_left += len; /* counts bytes received, against max_body_size */
		if (max_body && c->rq->body_left > max_body)
			return -1;
		p += used;
		avail -= (size_t)used;
		c->in_off += (size_t)used;
	}
	return c->rq->chunked.state == CHUNK_DONE;
}

/* The response is queued and the body consumed: get ready for the next request.
 * (The access log was written when the response was queued: the head's bytes
 * may be gone by now.) */
void conn_request_done(struct conn *c)
{
	if (c->rq->mw)
		middleware_observe_request(c->rq->mw, c->rq->status, c->rq->status == 502 || c->rq->status == 504,
					   (int64_t)(ev_now(server.loop) * 1000.0));
	conn_release_mw(c);
	c->requests++;
	c->phase = c->keep_alive ? CONN_HEAD : CONN_DONE;
	c->rq->body_left = 0;
}

/* Answers a request that could not be read (bad head, timeout) and closes: there
 * is no parsed request, so the log shows "-". */
static void conn_respond_error(struct conn *c, int status)
{
	char text[64];
	snprintf(text, sizeof(text), "%d %s\n", status, http_reason(status));
	if (!conn_get_rq(c))
		return;
	memset(&c->rq->req, 0, sizeof(c->rq->req));
	c->rq->req.method = SLICE_LIT("-");
	c->rq->req.target = SLICE_LIT("-");
	c->rq->req.minor = 1;
	c->rq->minor = 1;
	c->rq->head_req = false;
	c->keep_alive = false;
	c->rq->started = ev_time();
	conn_respond_text(c, status, text);
	conn_log_request(c);
	conn_request_done(c);
}

static void conn_process(struct conn *c)
{
	for (;;) {
		if (c->phase == CONN_HEAD) {
			if (c->in_len == c->in_off || OUT_CAP - c->out_len < OUT_RESERVE || body_pending(c))
				break;
			conn_refresh_snapshot(c);
			if (!conn_get_rq(c))
				break;
			/* head_scan remembers how far the head was already checked, so a
			 * head arriving in many pieces is scanned once in total. */
			int rc = http_parse_request_resume(c->in + c->in_off, c->in_len - c->in_off,
							   c->ep->conf->max_header_size, &c->rq->head_scan, &c->rq->req);
			if (rc == HTTP_INCOMPLETE)
				break;
			c->rq->head_scan = 0;
			c->rq->started = ev_time();
			if (rc < 0) {
				conn_respond_error(c, parse_error_status(rc));
				break;
			}
			c->rq->minor = c->rq->req.minor;
			c->rq->head_req = slice_eq(c->rq->req.method, SLICE_LIT("HEAD"));
			if (conn_dispatch(c)) {
				/* The proxy took the request (it logs and ends it itself). */
				c->in_off += (size_t)rc;
				continue;
			}
			conn_log_request(c);
			conn_begin_body(c);
			c->in_off += (size_t)rc;
			if (c->phase == CONN_BODY) {
				if (!c->keep_alive) {
					c->unread_input = true;
					conn_request_done(c); /* closing: no need to read the body */
					break;
				}
				continue;
			}
			conn_request_done(c);
			continue;
		}
		if (c->phase == CONN_BODY) {
			int done = conn_skip_body(c);
			if (done < 0) {
				c->keep_alive = false;
				c->unread_input = true;
				conn_request_done(c);
				break;
			}
			if (!done)
				break;
			conn_request_done(c);
			continue;
		}
		if (c->phase == CONN_PROXY) {
			if (!proxy_progress(c->exchange))
				break;
			continue; /* exchange over: on to the next pipelined request */
		}
		break; /* CONN_DONE */
	}
	if (c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
}

/* Reads what the socket has. Returns -1 on a reset connection. */
static int conn_read(struct conn *c)
{
	if (!c->in && !(c->in = buf_get(c->in_cap)))
		return -1;
	if (c->in_len == c->in_cap && c->in_off > 0) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	if (c->in_len == c->in_cap)
		return 0; /* the parser reports the oversized head */
	ssize_t n;
	if (c->tls) {
		/* Drain the engine while there is room: a record may hold more than one
		 * read takes, and the socket will not signal what is already here. */
		size_t got = 0;
		while ((n = tls_recv(c->tls, c->fd, c->in + c->in_len, c->in_cap - c->in_len)) > 0) {
			c->in_len += (size_t)n;
			got += (size_t)n;
			if (c->in_len == c->in_cap)
				return 0;
		}
		if (got > 0 && n < 0 && errno == EAGAIN)
			return 0;
	} else {
		n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
	}
	if (n > 0) {
		c->in_len += (size_t)n;
		return 0;
	}
	if (n == 0) {
		c->peer_eof = true;
		return 0;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	return -1;
}

/* Idle connections give their buffers back: an idle keep-alive connection costs
 * only its struct (SPEC §5 memory per idle connection). */
static void conn_release_buffers(struct conn *c)
{
	if (c->rq && c->in_len == 0 && !c->exchange && !c->rq->mw && !body_pending(c) &&
	    (c->phase == CONN_HEAD || c->phase == CONN_DONE || c->phase == CONN_LINGER)) {
		buf_put((char *)c->rq, REQ_BUF);
		c->rq = NULL;
	}
	if (c->in && c->in_len == 0) {
		buf_put(c->in, c->in_cap);
		c->in = NULL;
	}
	if (c->out && out_pending(c) == 0) {
		/* (a body source still pending keeps the buffer: TLS files pass through it) */
		buf_put(c->out, OUT_CAP);
		c->out = NULL;
		c->out_len = c->out_sent = 0;
	}
}

/* Reads and drops what the client still sends; closes at its EOF or the limit. */
static void conn_linger(struct conn *c)
{
	char sink[4096];
	for (;;) {
		ssize_t n = read(c->fd, sink, sizeof(sink));
		if (n > 0) {
			c->linger_bytes += (size_t)n;
			if (c->linger_bytes > LINGER_MAX_BYTES)
				break;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		break;
	}
	conn_close(c);
}

static void conn_step(struct conn *c, bool readable)
{
	if (c->phase == CONN_LINGER) {
		conn_linger(c);
		return;
	}
	size_t before = c->in_len - c->in_off;
	if (readable && conn_read(c) < 0) {
		conn_close(c);
		return;
	}
	bool progress = c->in_len - c->in_off != before;
	/* Bounded, so that one fast stream cannot starve the loop. */
	for (int round = 0;; round++) {
		conn_process(c);
		ssize_t written = conn_flush(c);
		if (written < 0) {
			conn_close(c);
			return;
		}
		if (c->direct_sent) {
			written += 1; /* the exchange wrote too: there may be room for more */
			c->direct_sent = false;
		}
		progress = progress || written > 0;
		/* Go again when writing may have unblocked work: the proxy refills the
		 * buffer; a pipelined request waits behind a finished body. */
		if (written == 0 || (c->phase != CONN_PROXY && c->in_len == c->in_off))
			break;
		if (round == 32) {
			ev_feed_event(server.loop, &c->io, EV_WRITE); /* more next turn */
			break;
		}
	}
	bool flushed = out_pending(c) == 0;
	if (flushed && c->phase == CONN_DONE && c->unread_input && !c->peer_eof) {
		if (c->tls)
			tls_close_notify(c->tls, c->fd);
		shutdown(c->fd, SHUT_WR);
		c->phase = CONN_LINGER;
		c->linger_bytes = 0;
		conn_release_buffers(c);
		conn_set_events(c);
		conn_update_timer(c, false);
		return;
	}
	if (flushed && (c->phase == CONN_DONE ||
			(c->peer_eof && c->phase != CONN_PROXY && (c->phase == CONN_BODY || c->in_len == c->in_off)))) {
		/* Done, or the client has gone and nothing it sent is left to answer. */
		conn_close(c);
		return;
	}
	if (c->peer_eof && c->phase == CONN_HEAD && c->in_len > c->in_off && flushed) {
		conn_close(c); /* half a head and no more to come */
		return;
	}
	if (server.stopping && c->phase == CONN_HEAD && c->in_len == c->in_off && flushed) {
		conn_close(c);
		return;
	}
	conn_release_buffers(c);
	conn_set_events(c);
	conn_update_timer(c, progress);
}

void conn_kick(struct conn *c)
{
	conn_step(c, false);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	conn_step(w->data, revents & EV_READ);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct conn *c = w->data;
	if (c->timer_kind == T_HEADER && c->in_len > c->in_off && out_pending(c) == 0) {
		/* A client that started a head and stalled learns why it is dropped. */
		conn_respond_error(c, 408);
		c->in_off = c->in_len = 0;
		conn_step(c, false); /* flush, then linger and close */
		return;
	}
	conn_close(c);
}

void conn_drain_all(void)
{
	for (struct conn *c = all_conns, *next; c; c = next) {
		next = c->next;
		/* Read what may already be waiting first: a request that arrived is
		 * answered (then the connection closes); a quiet one closes now, with
		 * nothing unread that would turn the close into a reset. */
		if (c->phase == CONN_HEAD && c->in_len == c->in_off && out_pending(c) == 0)
			conn_step(c, true);
	}
}

size_t conn_close_all(void)
{
	size_t n = 0;
	while (all_conns) {
		conn_close(all_conns);
		n++;
	}
	return n;
}
