/* acme_driver.c - runs the ACME client (src/acme.c) on its own event loop, without
 * the rest of edgeproxy, so that it can be proven against Pebble before the proxy
 * wires it in: it compiles an [acme] section from its arguments, calls acme_sync
 * for the domains given, answers HTTP-01 on --http-port and TLS-ALPN-01 on
 * --tls-port itself, and prints "CERTIFICATE READY <path>" when acme.c reports a
 * certificate. SIGHUP runs acme_sync again (a reload); SIGTERM stops.
 *
 *   acme_driver --state DIR --name NAME [--KEY VALUE ...] [--http-port N]
 *               [--tls-port N] [--exit-after N] DOMAIN...
 * where KEY is any [acme] key (email, ca, ca_root, challenge, dns_hook, key_type,
 * renew_before, eab_kid, eab_hmac). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <bearssl.h>

#include "acme.h"
#include "config.h"
#include "log.h"
#include "rand.h"
#include "server.h"
#include "tls_cert.h"

struct server server;

static const struct acme_resolver *resolver;
static const char *const *domains;
static size_t n_domains;
static const char *state_dir;
static int exit_after, certificates;

/* config.c's error collector, for acme_resolver_compile */
void conf_error(struct conf_errors *errs, const char *file, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s:%d: %s\n", file, line, msg);
	errs->n++;
}

void acme_on_certificate(void)
{
	certificates++;
	printf("CERTIFICATE READY %d\n", certificates);
	fflush(stdout);
	if (exit_after && certificates >= exit_after)
		ev_break(server.loop, EVBREAK_ALL);
}

static void sync_jobs(void)
{
	struct acme_job job = { resolver, "driver", domains, n_domains };
	acme_sync(&job, 1, state_dir);
}

/* ---- HTTP-01 answers: GET /.well-known/acme-challenge/TOKEN ----------------------- */

struct http_conn {
	ev_io io;
	char buf[4096];
	size_t len;
};

static void http_conn_close(struct ev_loop *loop, struct http_conn *c)
{
	ev_io_stop(loop, &c->io);
	close(c->io.fd);
	free(c);
}

static void on_http_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_conn *c = (struct http_conn *)w;
	(void)revents;
	ssize_t n = read(w->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
	if (n <= 0) {
		if (n < 0 && errno == EAGAIN)
			return;
		http_conn_close(loop, c);
		return;
	}
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	if (!strstr(c->buf, "\r\n\r\n")) {
		if (c->len == sizeof(c->buf) - 1)
			http_conn_close(loop, c);
		return;
	}
	static const char prefix[] = "GET /.well-known/acme-challenge/";
	const char *ka = NULL;
	if (strncmp(c->buf, prefix, sizeof(prefix) - 1) == 0) {
		const char *t = c->buf + sizeof(prefix) - 1;
		size_t tl = strcspn(t, " ?");
		ka = acme_http01_key_authorization(slice_make(t, tl));
	}
	char resp[1024];
	int rl;
	if (ka)
		rl = snprintf(resp, sizeof(resp),
			      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
			      "Connection: close\r\n\r\n%s", strlen(ka), ka);
	else
		rl = snprintf(resp, sizeof(resp),
			      "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
	fprintf(stderr, "driver: http-01 request %.*s -> %s\n", (int)strcspn(c->buf, "\r"), c->buf,
		ka ? "200" : "404");
	ssize_t wr = write(w->fd, resp, (size_t)rl); /* small: fits the socket buffer */
	(void)wr;
	http_conn_close(loop, c);
}

static void on_http_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)revents;
	int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	struct http_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	ev_io_init(&c->io, on_http_read, fd, EV_READ);
	ev_io_start(loop, &c->io);
}

/* ---- TLS-ALPN-01 answers: a handshake with ALPN acme-tls/1 ------------------------- */

/* A server policy that takes the certificate from acme_tls_alpn_cert(SNI), as the
 * proxy's TLS policy does for clients offering acme-tls/1. */
struct alpn_policy {
	const br_ssl_server_policy_class *vtable;
	const struct tls_cert *cert;
};

static int alpn_choose(const br_ssl_server_policy_class **pctx, const br_ssl_server_context *cc,
		       br_ssl_server_choices *choices)
{
	struct alpn_policy *p = (struct alpn_policy *)pctx;
	size_t n;
	const br_suite_translated *st = br_ssl_server_get_client_suites(cc, &n);
	const char *sni = br_ssl_engine_get_server_name(&cc->eng);

	p->cert = acme_tls_alpn_cert(sni);
	fprintf(stderr, "driver: tls-alpn-01 handshake for '%s': %s\n", sni, p->cert ? "answered" : "no challenge");
	if (!p->cert || p->cert->key_type != BR_KEYTYPE_EC)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if ((st[i][1] >> 12) == BR_SSLKEYX_ECDHE_ECDSA) {
			choices->cipher_suite = st[i][0];
			choices->algo_id = br_sha256_ID | 0xff00; /* ECDSA over SHA-256 */
			choices->chain = p->cert->chain;
			choices->chain_len = p->cert->chain_len;
			return 1;
		}
	}
	return 0;
}

static size_t alpn_do_sign(const br_ssl_server_policy_class **pctx, unsigned algo_id,
			   unsigned char *data, size_t hv_len, size_t len)
{
	struct alpn_policy *p = (struct alpn_policy *)pctx;
	unsigned char hv[64], sig[160];
	(void)algo_id;
	if (hv_len > sizeof(hv))
		return 0;
	memcpy(hv, data, hv_len);
	size_t n = br_ecdsa_sign_asn1_get_default()(br_ec_get_default(), &br_sha256_vtable, hv,
						     &p->cert->ec, sig);
	if (n == 0 || n > len)
		return 0;
	memcpy(data, sig, n);
	return n;
}

static const br_ssl_server_policy_class alpn_policy_vtable = {
	sizeof(struct alpn_policy), alpn_choose, NULL, alpn_do_sign,
};

/* One validation handshake, done blocking (with a timeout): the VA is a separate
 * process, and the driver has nothing else urgent to do. */
static void on_tls_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	int fd = accept4(w->fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	struct timeval tv = { 5, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	static br_ssl_server_context sc;
	static struct alpn_policy pol;
	static unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
	static const char *protos[] = { "acme-tls/1" };
	br_ssl_server_init_full_ec(&sc, NULL, 0, BR_KEYTYPE_EC, NULL);
	/* init_full's list is longer than the 16 suites this build's BearSSL holds
	 * (vendor/versions.sh) */
	static const uint16_t suites[] = { BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
					   BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 };
	br_ssl_engine_set_suites(&sc.eng, suites, 2);
	pol.vtable = &alpn_policy_vtable;
	pol.cert = NULL;
	br_ssl_server_set_policy(&sc, &pol.vtable);
	br_ssl_engine_set_protocol_names(&sc.eng, protos, 1);
	br_ssl_engine_add_flags(&sc.eng, BR_OPT_FAIL_ON_ALPN_MISMATCH);
	br_ssl_engine_set_buffer(&sc.eng, iobuf, sizeof(iobuf), 1);
	rand_seed_ssl_engine(&sc.eng);
	br_ssl_server_reset(&sc);
	/* drive the handshake until the engine wants application data or closes */
	for (int rounds = 0; rounds < 1000; rounds++) {
		unsigned st = br_ssl_engine_current_state(&sc.eng);
		size_t len;
		if (st & BR_SSL_CLOSED)
			break;
		if (st & BR_SSL_SENDREC) {
			unsigned char *b = br_ssl_engine_sendrec_buf(&sc.eng, &len);
			ssize_t n = send(fd, b, len, MSG_NOSIGNAL);
			if (n <= 0)
				break;
			br_ssl_engine_sendrec_ack(&sc.eng, (size_t)n);
			continue;
		}
		if (st & BR_SSL_RECVAPP) {
			unsigned char *b = br_ssl_engine_recvapp_buf(&sc.eng, &len);
			br_ssl_engine_recvapp_ack(&sc.eng, len);
			(void)b;
			continue;
		}
		if (st & BR_SSL_RECVREC) {
			unsigned char *b = br_ssl_engine_recvrec_buf(&sc.eng, &len);
			ssize_t n = recv(fd, b, len, 0);
			if (n <= 0)
				break;
			br_ssl_engine_recvrec_ack(&sc.eng, (size_t)n);
			continue;
		}
		break;
	}
	int err = br_ssl_engine_last_error(&sc.eng);
	if (err)
		fprintf(stderr, "driver: tls-alpn-01 handshake ended with BearSSL error %d\n", err);
	close(fd);
}

static int listen_on(int port)
{
	struct sockaddr_in a = { 0 };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
		fprintf(stderr, "driver: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
		exit(1);
	}
	return fd;
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)revents;
	if (w->signum == SIGHUP) {
		fprintf(stderr, "driver: SIGHUP, acme_sync again\n");
		sync_jobs();
		return;
	}
	ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
	struct conf_kv kv[16];
	size_t nkv = 0;
	const char *name = "le";
	int http_port = 0, tls_port = 0;
	static ev_io http_w, tls_w;
	static ev_signal sig_term, sig_int, sig_hup;
	int i = 1;

	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		if (i + 1 >= argc) {
			fprintf(stderr, "driver: %s needs a value\n", argv[i]);
			return 2;
		}
		const char *k = argv[i] + 2, *v = argv[i + 1];
		if (strcmp(k, "state") == 0)
			state_dir = v;
		else if (strcmp(k, "name") == 0)
			name = v;
		else if (strcmp(k, "http-port") == 0)
			http_port = atoi(v);
		else if (strcmp(k, "tls-port") == 0)
			tls_port = atoi(v);
		else if (strcmp(k, "exit-after") == 0)
			exit_after = atoi(v);
		else if (nkv < sizeof(kv) / sizeof(kv[0]))
			kv[nkv++] = (struct conf_kv){ (char *)k, (char *)v, (int)nkv + 2 };
	}
	if (!state_dir || i >= argc) {
		fprintf(stderr, "usage: acme_driver --state DIR [--name N] [--KEY VALUE]... DOMAIN...\n");
		return 2;
	}
	domains = (const char *const *)&argv[i];
	n_domains = (size_t)(argc - i);
	log_set_level(getenv("DRIVER_DEBUG") ? LOG_DEBUG : LOG_INFO);

	struct conf_errors errs = { 0 };
	struct acme_resolver *r = acme_resolver_compile(kv, nkv, name, 1, "driver", &errs);
	if (!r)
		return 1;
	char err[256];
	if (acme_check_domains(r, domains, n_domains, err, sizeof(err)) < 0) {
		fprintf(stderr, "driver: %s\n", err);
		return 1;
	}
	resolver = r;

	server.loop = ev_default_loop(EVFLAG_AUTO);
	signal(SIGPIPE, SIG_IGN);
	if (http_port) {
		ev_io_init(&http_w, on_http_accept, listen_on(http_port), EV_READ);
		ev_io_start(server.loop, &http_w);
	}
	if (tls_port) {
		ev_io_init(&tls_w, on_tls_accept, listen_on(tls_port), EV_READ);
		ev_io_start(server.loop, &tls_w);
	}
	ev_signal_init(&sig_term, on_signal, SIGTERM);
	ev_signal_init(&sig_int, on_signal, SIGINT);
	ev_signal_init(&sig_hup, on_signal, SIGHUP);
	ev_signal_start(server.loop, &sig_term);
	ev_signal_start(server.loop, &sig_int);
	ev_signal_start(server.loop, &sig_hup);
	fprintf(stderr, "driver: started\n");
	sync_jobs();
	ev_run(server.loop, 0);
	acme_shutdown();
	acme_resolver_free(r);
	fprintf(stderr, "driver: stopped after %d certificate(s)\n", certificates);
	return 0;
}
