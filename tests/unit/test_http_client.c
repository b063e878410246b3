/* test_http_client.c - the ACME client's transport on a real event loop against a
 * forked loopback server that answers canned responses, split into small writes:
 * Content-Length, chunked and close-delimited bodies, HEAD, an interim 1xx, the
 * headers ACME needs (Location, Replay-Nonce, Retry-After), and the failures a CA
 * or network can produce (refused, early close, oversized or malformed answers,
 * timeouts, an untrusted TLS certificate). Also Retry-After parsing and trust
 * anchors from PEM. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http_client.h"
#include "test.h"

static struct ev_loop *loop;

/* ---- the canned server ------------------------------------------------------------ */

struct canned {
	const char *path;
	const char *response; /* sent in pieces of `piece` bytes */
	size_t piece;
	bool hang; /* never answer */
};

static const struct canned answers[] = {
	{ "/length", "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 13\r\n"
		     "Location: https://ca.test/order/1\r\nReplay-Nonce: nonce-ABC_123\r\n"
		     "Retry-After: 7\r\n\r\n{\"status\":1}\n", 5, false },
	{ "/chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;ext=1\r\npedia\r\n"
		      "E\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\n", 3, false },
	{ "/eof", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", 4, false },
	{ "/interim", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nReplay-Nonce: n2\r\n\r\n", 7, false },
	{ "/head", "HTTP/1.1 200 OK\r\nReplay-Nonce: head-nonce\r\nContent-Length: 99\r\n\r\n", 100, false },
	{ "/problem", "HTTP/1.1 400 Bad Request\r\nContent-Type: application/problem+json\r\n"
		      "Content-Length: 45\r\n\r\n{\"type\":\"urn:ietf:params:acme:error:badNonce\"}", 1000, false },
	{ "/date", "HTTP/1.1 503 Service Unavailable\r\nRetry-After: Wed, 21 Oct 2099 07:28:00 GMT\r\n"
		   "Content-Length: 0\r\n\r\n", 1000, false },
	{ "/short", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", 1000, false },
	{ "/huge", "HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", 1000, false },
	{ "/garbage", "HTTP/1.1 2OO OK\r\n\r\n", 1000, false },
	{ "/smuggle", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 1000, false },
	{ "/hang", NULL, 0, true },
};

static void serve_one(int fd)
{
	char req[8192];
	size_t len = 0;
	while (len < sizeof(req) - 1) {
		ssize_t n = read(fd, req + len, sizeof(req) - 1 - len);
		if (n <= 0)
			return;
		len += (size_t)n;
		req[len] = '\0';
		char *end = strstr(req, "\r\n\r\n");
		if (!end)
			continue;
		const char *cl = strstr(req, "Content-Length: ");
		size_t body = cl ? (size_t)atoi(cl + 16) : 0;
		if (len >= (size_t)(end + 4 - req) + body)
			break;
	}
	/* echo what arrived, for the request-side checks */
	if (strncmp(req, "POST /echo ", 11) == 0) {
		char resp[9000];
		int n = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", len);
		memcpy(resp + n, req, len);
		ssize_t w = write(fd, resp, (size_t)n + len);
		(void)w;
		return;
	}
	for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
		size_t pl = strlen(answers[i].path);
		if (strncmp(req + 4, answers[i].path, pl) != 0 && strncmp(req + 5, answers[i].path, pl) != 0)
			continue;
		if (answers[i].hang) {
			sleep(10);
			return;
		}
		const char *r = answers[i].response;
		size_t rl = strlen(r);
		for (size_t off = 0; off < rl; off += answers[i].piece) {
			size_t n = rl - off < answers[i].piece ? rl - off : answers[i].piece;
			ssize_t w = write(fd, r + off, n);
			(void)w;
			usleep(2000);
		}
		return;
	}
}

static pid_t start_server(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 16) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &al) < 0)
		return -1;
	*port = ntohs(a.sin_port);
	pid_t pid = fork();
	if (pid == 0) {
		for (;;) {
			int fd = accept(lfd, NULL, NULL);
			if (fd < 0)
				continue;
			if (fork() == 0) {
				serve_one(fd);
				_exit(0);
			}
			close(fd);
			while (waitpid(-1, NULL, WNOHANG) > 0)
				;
		}
	}
	close(lfd);
	return pid;
}

/* ---- the client side ------------------------------------------------------------------ */

struct outcome {
	bool done, ok;
	int status;
	char body[512], location[256], nonce[128], ctype[128], error[300];
	size_t body_len;
	long retry_after;
};

static void on_done(void *ctx, const struct http_client_result *r, const char *error)
{
	struct outcome *o = ctx;
	o->done = true;
	if (!r) {
		snprintf(o->error, sizeof(o->error), "%s", error);
	} else {
		o->ok = true;
		o->status = r->status;
		o->body_len = r->body_len < sizeof(o->body) - 1 ? r->body_len : sizeof(o->body) - 1;
		memcpy(o->body, r->body, o->body_len);
		o->body[o->body_len] = '\0';
		CHECK(r->body[r->body_len] == '\0');
		snprintf(o->location, sizeof(o->location), "%s", r->location);
		snprintf(o->nonce, sizeof(o->nonce), "%s", r->replay_nonce);
		snprintf(o->ctype, sizeof(o->ctype), "%s", r->content_type);
		o->retry_after = r->retry_after;
	}
	ev_break(loop, EVBREAK_ALL);
}

static struct outcome call(const char *method, const char *url, const char *body, double timeout,
			   const struct http_trust *trust)
{
	struct outcome o;
	memset(&o, 0, sizeof(o));
	struct http_client_request req = { .method = method, .url = url,
					   .content_type = body ? "application/jose+json" : NULL,
					   .body = body, .body_len = body ? strlen(body) : 0,
					   .accept = "application/json" };
	struct http_call *c = http_call_start(loop, trust, &req, timeout, on_done, &o);
	CHECK(c != NULL);
	if (c)
		ev_run(loop, 0);
	CHECK(o.done);
	return o;
}

static int port;

static const char *url(const char *path)
{
	static char buf[128];
	snprintf(buf, sizeof(buf), "http://127.0.0.1:%d%s", port, path);
	return buf;
}

static void test_framing(void)
{
	struct outcome o = call("POST", url("/length"), "{}", 5, NULL);
	CHECKF(o.ok && o.status == 201, "%s", o.error);
	CHECK(strcmp(o.body, "{\"status\":1}\n") == 0 && o.body_len == 13);
	CHECK(strcmp(o.location, "https://ca.test/order/1") == 0);
	CHECK(strcmp(o.nonce, "nonce-ABC_123") == 0);
	CHECK(strcmp(o.ctype, "application/json") == 0);
	CHECK(o.retry_after == 7);

	o = call("GET", url("/chunked"), NULL, 5, NULL);
	CHECKF(o.ok && o.status == 200, "%s", o.error);
	CHECKF(strcmp(o.body, "Wikipedia in\r\n\r\nchunks.") == 0, "%s", o.body);
	CHECK(o.nonce[0] == '\0' && o.location[0] == '\0' && o.retry_after == -1);

	o = call("GET", url("/eof"), NULL, 5, NULL);
	CHECKF(o.ok && strcmp(o.body, "until the end") == 0, "%s %s", o.error, o.body);

	o = call("GET", url("/interim"), NULL, 5, NULL);
	CHECKF(o.ok && o.status == 204 && strcmp(o.nonce, "n2") == 0, "%s", o.error);

	/* HEAD: Content-Length describes a body that is not sent (RFC 9110 §9.3.2) */
	o = call("HEAD", url("/head"), NULL, 5, NULL);
	CHECKF(o.ok && o.status == 200 && o.body_len == 0, "%s", o.error);
	CHECK(strcmp(o.nonce, "head-nonce") == 0);

	o = call("POST", url("/problem"), "{}", 5, NULL);
	CHECK(o.ok && o.status == 400 && strstr(o.body, "badNonce"));
	CHECK(strcmp(o.ctype, "application/problem+json") == 0);

	/* an HTTP-date Retry-After becomes seconds from now */
	o = call("GET", url("/date"), NULL, 5, NULL);
	CHECK(o.ok && o.status == 503 && o.retry_after > 86400L * 365 * 50);
}

static void test_request_sent(void)
{
	struct outcome o = call("POST", url("/echo"), "{\"a\":1}", 5, NULL);
	CHECKF(o.ok, "%s", o.error);
	char host[64];
	snprintf(host, sizeof(host), "Host: 127.0.0.1:%d\r\n", port);
	CHECK(strncmp(o.body, "POST /echo HTTP/1.1\r\n", 21) == 0);
	CHECK(strstr(o.body, host) != NULL);
	CHECK(strstr(o.body, "User-Agent: edgeproxy/") != NULL); /* RFC 8555 §6.1 */
	CHECK(strstr(o.body, "Content-Type: application/jose+json\r\n") != NULL);
	CHECK(strstr(o.body, "Content-Length: 7\r\n") != NULL);
	CHECK(strstr(o.body, "Accept: application/json\r\n") != NULL);
	CHECK(strstr(o.body, "Connection: close\r\n") != NULL);
	CHECK(strstr(o.body, "\r\n\r\n{\"a\":1}") != NULL);
	/* POST-as-GET has an empty body with Content-Length: 0 */
	struct http_client_request req = { .method = "POST", .url = url("/echo") };
	struct outcome p;
	memset(&p, 0, sizeof(p));
	CHECK(http_call_start(loop, NULL, &req, 5, on_done, &p) != NULL);
	ev_run(loop, 0);
	CHECK(p.ok && strstr(p.body, "Content-Length: 0\r\n\r\n") != NULL);
}

static void test_error_cases(void)
{
	struct outcome o = call("GET", url("/short"), NULL, 5, NULL);
	CHECKF(!o.ok && strstr(o.error, "connection closed before the whole response"), "%s", o.error);
	o = call("GET", url("/huge"), NULL, 5, NULL);
	CHECKF(!o.ok && strstr(o.error, "malformed or oversized"), "%s", o.error);
	o = call("GET", url("/garbage"), NULL, 5, NULL);
	CHECKF(!o.ok && strstr(o.error, "malformed"), "%s", o.error);
	o = call("GET", url("/smuggle"), NULL, 5, NULL);
	CHECKF(!o.ok && strstr(o.error, "malformed"), "%s", o.error);
	o = call("GET", url("/hang"), NULL, 0.3, NULL);
	CHECKF(!o.ok && strstr(o.error, "timed out"), "%s", o.error);

	/* nothing listens: refused, reported through the callback, never inside start */
	int closed;
	{
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t al = sizeof(a);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		bind(fd, (struct sockaddr *)&a, sizeof(a));
		getsockname(fd, (struct sockaddr *)&a, &al);
		closed = ntohs(a.sin_port);
		close(fd);
	}
	char u[64];
	snprintf(u, sizeof(u), "http://localhost:%d/", closed);
	o = call("GET", u, NULL, 5, NULL);
	CHECKF(!o.ok && strstr(o.error, ": connect: Connection refused"), "%s", o.error);

	/* malformed URLs are refused at once */
	static const char *const bad[] = { "ftp://x/", "https://", "https://:443/", "http://a:0/",
					   "http://a:65536/", "http://a:8x/", "http://u@a/",
					   "http://[::1/", "http://[::1]x/" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct http_client_request req = { .method = "GET", .url = bad[i] };
		struct outcome p;
		CHECKF(http_call_start(loop, NULL, &req, 1, on_done, &p) == NULL, "%s", bad[i]);
	}
	/* a call given up on never calls back */
	struct http_client_request req = { .method = "GET", .url = url("/hang") };
	struct outcome p;
	memset(&p, 0, sizeof(p));
	struct http_call *c = http_call_start(loop, NULL, &req, 5, on_done, &p);
	CHECK(c != NULL);
	http_call_cancel(c);
	ev_run(loop, EVRUN_NOWAIT);
	CHECK(!p.done);
}

/* An HTTPS server whose certificate does not check out: the handshake fails with a
 * message naming the cause. */
static void test_tls_untrusted(void)
{
	int p;
	{
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t al = sizeof(a);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		bind(fd, (struct sockaddr *)&a, sizeof(a));
		getsockname(fd, (struct sockaddr *)&a, &al);
		p = ntohs(a.sin_port);
		close(fd);
	}
	pid_t pid = fork();
	if (pid == 0) {
		char accept_arg[32];
		snprintf(accept_arg, sizeof(accept_arg), "127.0.0.1:%d", p);
		int devnull = open("/dev/null", 1);
		dup2(devnull, 1);
		dup2(devnull, 2);
		execlp("openssl", "openssl", "s_server", "-quiet", "-accept", accept_arg, "-cert",
		       "tests/unit/fixtures/ec.crt", "-key", "tests/unit/fixtures/ec.key", "-www",
		       (char *)NULL);
		_exit(127);
	}
	usleep(500000);
	struct http_trust trust = { 0 };
	char err[128], u[64];
	CHECK(http_trust_add_pem(&trust, "-----BEGIN CERTIFICATE-----\n"
					 "MIIBdTCCARugAwIBAgIUUyL4s2g3bS4Q0JmR8QdJH0nXq5swCgYIKoZIzj0EAwIw\n"
					 "-----END CERTIFICATE-----\n", 150, err, sizeof(err)) == -1);
	snprintf(u, sizeof(u), "https://localhost:%d/", p);
	struct outcome o = call("GET", u, NULL, 5, &trust);
	/* BearSSL reports the first problem it meets: this certificate names
	 * a.example.com, not localhost, and chains to nothing we trust */
	CHECKF(!o.ok && (strstr(o.error, "TLS: certificate does not match the host name") ||
			 strstr(o.error, "TLS: certificate not trusted")),
	       "%s", o.error);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

static void test_trust_anchors(void)
{
	struct http_trust t = { 0 };
	char err[128];
	FILE *f = fopen("tests/unit/fixtures/chain.pem", "r");
	char pem[16384];
	size_t n = f ? fread(pem, 1, sizeof(pem), f) : 0;
	if (f)
		fclose(f);
	int added = http_trust_add_pem(&t, pem, n, err, sizeof(err));
	CHECKF(added >= 2, "%d %s", added, err);
	CHECK(t.n == (size_t)added);
	bool some_ca = false;
	for (size_t i = 0; i < t.n; i++)
		some_ca |= (t.anchors[i].flags & BR_X509_TA_CA) != 0;
	CHECK(some_ca);
	CHECK(http_trust_add_pem(&t, "nothing here", 12, err, sizeof(err)) == -1);
	CHECK(strcmp(err, "no CERTIFICATE block") == 0);
	CHECK(t.n == (size_t)added);
	http_trust_free(&t);
	CHECK(t.n == 0 && t.anchors == NULL);
}

static void test_retry_after(void)
{
	long long now = 1700000000; /* 2023-11-14T22:13:20Z */
	CHECK(http_parse_retry_after("0", now) == 0);
	CHECK(http_parse_retry_after("120", now) == 120);
	CHECK(http_parse_retry_after("12a", now) == -1);
	CHECK(http_parse_retry_after("-5", now) == -1);
	CHECK(http_parse_retry_after("", now) == -1);
	CHECK(http_parse_retry_after("999999999999", now) == -1);
	CHECK(http_parse_retry_after("Tue, 14 Nov 2023 22:14:00 GMT", now) == 40);
	CHECK(http_parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now) == 0); /* past */
	CHECK(http_parse_retry_after("Tue, 14 Nov 2023 22:14:00 UTC", now) == -1);
	CHECK(http_parse_retry_after("tomorrow", now) == -1);
}

int main(void)
{
	static const struct test_case cases[] = {
		TEST(test_retry_after), TEST(test_trust_anchors), TEST(test_framing),
		TEST(test_request_sent), TEST(test_error_cases), TEST(test_tls_untrusted),
	};
	signal(SIGPIPE, SIG_IGN);
	loop = ev_default_loop(0);
	pid_t server = start_server(&port);
	if (server < 0) {
		perror("server");
		return 1;
	}
	int rc = test_run_all("http_client", cases, (int)(sizeof(cases) / sizeof(cases[0])));
	kill(server, SIGKILL);
	waitpid(server, NULL, 0);
	return rc;
}
