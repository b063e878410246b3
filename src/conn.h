/* conn.h - one downstream connection and its state machine: read a request head,
 * route it, hand it to a handler, write the response, repeat (keep-alive and
 * pipelining in order). */
#ifndef EDGEPROXY_CONN_H
#define EDGEPROXY_CONN_H

#include <netinet/in.h>

#include "cidr.h"
#include "ev.h"
#include "http_parse.h"
#include "server.h"
#include "snapshot.h"

/* Size of the buffer that responses are written into for the client. */
#define OUT_CAP 16384

enum conn_phase {
	CONN_HEAD, /* waiting for (the rest of) a request head */
	CONN_BODY, /* reading a request body that the handler does not need */
	CONN_PROXY, /* an exchange with an upstream server runs (proxy.c) */
	CONN_DONE, /* flushing the last response, then closing */
	CONN_LINGER, /* response sent, our side shut down: draining what the client
		      * still sends, so that its unread bytes do not turn our
		      * close into a reset that destroys the response */
};

/* What one request needs while it is read and answered. From the buffer pool and
 * given back while the connection idles, so that an idle keep-alive connection
 * costs only struct conn. */
struct conn_req {
	struct http_request req;
	size_t head_scan; /* parser progress within the current head */
	int minor;        /* the request's HTTP/1.x minor version, for the response */
	bool head_req;    /* a HEAD request: the response has no body */
	char peer_text[CIDR_ADDR_TEXT_MAX]; /* the client, as text (logs, forwarded fields) */
	uint64_t body_left;          /* CONN_BODY with Content-Length */
	struct http_chunked chunked; /* CONN_BODY with chunked */
	bool body_is_chunked;
	/* a response body that follows the head in out: memory or a file */
	char *body_mem;  /* owner: this request (malloc) */
	size_t body_mem_len, body_mem_off;
	int body_fd;     /* owner: this request; -1 = none */
	off_t body_off, body_end;
	/* for the access log and metrics */
	ev_tstamp started;
	const struct route *route; /* NULL: no router matched */
	struct mw_state *mw;       /* the route's middleware decisions; owner: this request */
	const char *router;
	const char *service_url;
	int status;
	uint64_t resp_size;
};

struct conn {
	int fd;
	ev_io io;
	ev_timer timer;
	struct snapshot *snap; /* reference held; renewed between requests */
	const struct entrypoint_rt *ep; /* within snap */
	union {
		struct sockaddr sa;
		struct sockaddr_in v4;
		struct sockaddr_in6 v6;
	} peer; /* the client (sized for IP, not sockaddr_storage) */
	enum conn_phase phase;
	int timer_kind; /* which timeout the timer currently measures */

	char *in;        /* owner: the connection (buf pool); NULL while idle */
	size_t in_cap, in_off, in_len; /* unprocessed bytes are in[in_off..in_len) */
	char *out;       /* owner: the connection (buf pool); NULL while idle */
	size_t out_len, out_sent;
	struct conn_req *rq; /* owner: the connection (buf pool); NULL while idle */

	bool keep_alive;  /* after the current response */
	bool peer_eof;    /* the client shut down its side */
	bool unread_input; /* closing with request bytes possibly still in flight */
	bool direct_sent;  /* conn_send_direct wrote during this turn */
	unsigned requests;
	unsigned linger_bytes; /* CONN_LINGER: what was drained so far */

	struct proxy_exchange *exchange; /* CONN_PROXY; owner: the connection */
	struct tls_conn *tls; /* TLS entry points; owner: the connection */

	struct conn *prev, *next; /* every open connection, for graceful stop */
};

void conn_accept(struct listener *l, int fd, const struct sockaddr_storage *peer);

/* Queues a complete response with a body (handlers and errors use this).
 * extra_headers is zero or more "Name: value\r\n" lines, or NULL. */
void conn_respond(struct conn *c, int status, const char *content_type, struct slice body,
		  const char *extra_headers);

/* Like conn_respond, with a body of any size that the connection takes over
 * (freed once sent). */
void conn_respond_owned(struct conn *c, int status, const char *content_type, char *body, size_t len,
			const char *extra_headers);
/* Like conn_respond, with len bytes of the open file fd from off (sendfile on
 * plain connections). The connection takes fd over. */
void conn_respond_file(struct conn *c, int status, const char *content_type, int fd, off_t off, off_t len,
		       const char *extra_headers);

/* Writes straight to the client (the proxy relays large bodies without copying
 * them into the output buffer): on a plain connection what the output buffer
 * still holds (a response head) goes first in the same writev; with TLS, or a
 * body source queued, nothing is written. Like write(2): bytes of p taken (0 when
 * only queued bytes went), or -1 with errno (EAGAIN: wait for writability). */
ssize_t conn_send_direct(struct conn *c, const char *p, size_t n);

/* Something happened on the connection's behalf (an upstream became readable):
 * run the state machine as if the client socket had an event. The connection
 * may be closed and freed on return. */
void conn_kick(struct conn *c);

/* The current request is answered: on to the next one, or to closing. */
void conn_request_done(struct conn *c);

/* Graceful stop: closes idle connections now; busy ones close after their response. */
void conn_drain_all(void);
/* Closes every connection (grace period over); returns how many were open. */
size_t conn_close_all(void);

#endif
