/* http_client.h - one-shot HTTP/1.1 requests over HTTPS (BearSSL client engine,
 * trust anchors from PEM) or plain HTTP, driven by the event loop: for the ACME
 * client, never on the request path. Each call is its own connection
 * (Connection: close); responses are read by their framing, bounded in size. */
#ifndef EDGEPROXY_HTTP_CLIENT_H
#define EDGEPROXY_HTTP_CLIENT_H

#include <stddef.h>

#include <bearssl.h>

#include "ev.h"

#define HTTP_CLIENT_MAX_HEAD (16 * 1024)
#define HTTP_CLIENT_MAX_BODY (1024 * 1024)

/* Certificates trusted for the server's chain. */
struct http_trust {
	br_x509_trust_anchor *anchors; /* owner: this struct, with every buffer inside */
	size_t n;
};

/* Adds every CERTIFICATE of PEM text as a trust anchor (a CA when its basic
 * constraints say so, else trusted as that exact server certificate). Returns the
 * number added, or -1 with err. */
int http_trust_add_pem(struct http_trust *t, const char *pem, size_t len, char *err, size_t errlen);
void http_trust_free(struct http_trust *t);

struct http_client_request {
	const char *method; /* "GET", "HEAD", "POST" */
	const char *url;    /* http://host[:port]/path or https://... */
	const char *content_type; /* with a body; NULL otherwise */
	const char *body;
	size_t body_len;
	const char *accept; /* NULL: none sent */
};

/* What the ACME client needs from a response. Pointers are valid during the
 * callback only; strings are NUL-terminated, "" when the field was absent. */
struct http_client_result {
	int status;
	const char *body;
	size_t body_len;
	const char *location;
	const char *replay_nonce;
	const char *content_type;
	long retry_after; /* seconds from now (delta or HTTP-date), -1 when absent */
};

/* Called once: with the response, or with res NULL and a message such as
 * "localhost:14000: connect: Connection refused" or "TLS: certificate not trusted". */
typedef void (*http_done_fn)(void *ctx, const struct http_client_result *res, const char *error);

struct http_call;

/* Starts a request. trust is needed for https URLs and must outlive the call; the
 * request's strings are copied. Host names other than IP literals and "localhost"
 * are resolved with getaddrinfo in a child process (results kept five minutes), so
 * loop must be the default loop. Returns NULL only on a malformed URL or out of
 * memory (done is not called then); every later failure goes through done. */
struct http_call *http_call_start(struct ev_loop *loop, const struct http_trust *trust,
				  const struct http_client_request *req, double timeout,
				  http_done_fn done, void *ctx);
/* Abandons a call in flight; done is not called. */
void http_call_cancel(struct http_call *c);

/* "Retry-After" as delta-seconds or an IMF-fixdate (RFC 9110 §10.2.3), relative to
 * now; -1 when unparseable. Exposed for tests. */
long http_parse_retry_after(const char *value, long long now);

#endif
