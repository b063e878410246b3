/* acme.c - automatic certificates from an RFC 8555 CA, as non-blocking state
 * machines on the event loop.
 *
 * Why on the loop and not in a helper process (as OpenBSD's acme-client separates its
 * work): every ACME step is a short HTTPS request or a timer, which the loop already
 * does well without blocking, and a router with 64 MiB cannot spare a second
 * resident process for something that runs a few minutes every two months. The only
 * operations that would block - getaddrinfo of the CA's host name, RSA key
 * generation, the dns_hook program - run in short-lived child processes (child.h),
 * so request handling never waits for ACME. Memory: an account per [acme] section and
 * an order per certificate (a few hundred bytes each while idle) plus about 40 KiB
 * per HTTPS request in flight.
 *
 * One order goes: account (directory, key, newAccount) -> newOrder -> for each
 * authorization: fetch, answer one challenge, poll until valid -> order ready ->
 * finalize with a CSR for a fresh key -> poll -> download the chain -> write key and
 * chain atomically -> acme_on_certificate() -> a timer for the renewal. Any failure
 * logs the CA's problem document and retries with exponential backoff (honouring
 * Retry-After); files that work are never removed. */
#include "acme.h"
#include "acme_board.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "acme_roots.h"
#include "child.h"
#include "config.h"
#include "confval.h"
#include "csr.h"
#include "der.h"
#include "fsutil.h"
#include "http_client.h"
#include "json.h"
#include "jws.h"
#include "log.h"
#include "rand.h"
#include "server.h"
#include "strbuf.h"
#include "timefmt.h"
#include "tls_cert.h"

#define HTTP_TIMEOUT 30.0      /* one ACME request */
#define HOOK_TIMEOUT 300.0     /* the dns_hook, which may wait for propagation */
#define KEYGEN_TIMEOUT 120.0   /* RSA-4096 on a slow router */
#define MAX_BAD_NONCE 10       /* badNonce retries of one request (RFC 8555 §6.5) */
#define RETRY_BASE 10.0        /* first backoff after a failed order, doubling */
#define RETRY_CAP (6 * 3600.0) /* longest backoff */
#define POLL_LIMIT 600.0       /* give up polling an authorization or order */
#define MAX_NONCES 8
#define NONCE_MAX 160
#define RETIRE_GRACE 60.0      /* TLS-ALPN-01 certificates outlive their challenge */

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static void wipe(void *p, size_t len)
{
	volatile unsigned char *v = p;
	while (len--)
		*v++ = 0;
}

/* Text from the CA goes into log lines: no control characters (a "\n" in a problem
 * detail must not forge a log line). */
static void log_safe(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

/* json_string for text that may reach the log. */
static long json_text(const struct json_doc *d, int i, char *buf, size_t cap)
{
	long n = json_string(d, i, buf, cap);
	log_safe(buf);
	return n;
}

/* ---- runtime state ------------------------------------------------------------------ */

struct acme_order;
typedef void (*step_fn)(struct acme_order *o, const struct http_client_result *r);

/* One [acme NAME] at run time; outlives reloads while its settings stay the same. */
struct acme_account {
	struct acme_account *next;
	struct acme_resolver *cfg; /* a private copy; owner: the account */
	char *state_dir;
	char dir[PATH_MAX];        /* state_dir/acme/NAME */
	struct http_trust trust;
	char *new_nonce, *new_account, *new_order; /* from the directory */
	bool have_directory, eab_required;
	struct jws_key key;
	bool have_key;
	char *kid;                 /* the account URL */
	char thumbprint[44];
	char nonces[MAX_NONCES][NONCE_MAX];
	size_t n_nonces;
	struct acme_order *setup_owner; /* the order doing directory/key/account steps */
	bool used;
};

/* The challenge an order is answering right now. */
struct acme_chal {
	int type;      /* enum acme_challenge, -1 when none */
	char *url, *token, *keyauth, *domain, *txt;
	struct tls_cert *alpn; /* tls-alpn-01; owner: this struct until retired */
	bool hook_added;
	bool wildcard;  /* the authorization is for "*." + domain */
	bool responded; /* the CA is validating already */
};

/* One certificate: the files, the order that keeps them current. */
struct acme_order {
	struct acme_order *next;
	struct acme_account *acc;
	char *router;   /* the (first) router asking, for the log */
	char **domains; /* owner: the order */
	size_t n_domains;
	char base[300]; /* file name without extension */
	bool used, waiting_account, account_retried;

	/* exactly one of these is in flight while running */
	struct http_call *call;
	struct child *child;
	ev_timer timer;
	void (*timer_fn)(struct acme_order *o);

	/* the signed request being sent (kept for badNonce retries) */
	const char *what;
	char *req_url, *req_payload; /* payload NULL: POST-as-GET */
	bool req_jwk;
	const char *req_accept;
	step_fn req_next;
	int bad_nonces;

	char *order_url, *finalize_url, *cert_url;
	char **authz;
	size_t n_authz, authz_i;
	double poll_started;
	int polls;
	struct acme_chal ch;
	struct jws_key cert_key;
	bool have_cert_key;
	enum jws_key_type keygen_type;
	void (*keygen_next)(struct acme_order *o, struct jws_key *k, const char *err);
	int failures;
};

static struct acme_account *accounts;
static struct acme_order *orders;
static bool forgotten; /* a worker: see acme_forget() */

/* TLS-ALPN-01 certificates whose challenge ended, freed once no handshake can use them. */
struct retired {
	struct retired *next;
	struct tls_cert *cert;
	double at;
};
static struct retired *retired_certs;

static struct ev_loop *loop(void)
{
	return server.loop;
}

__attribute__((weak)) void acme_on_certificate(void)
{
}

/* acme_on_certificate runs from a timer of its own, never from inside an order's
 * callbacks: it may then rebuild the configuration and call acme_sync freely.
 * Certificates finished in the same loop iteration make one call. */
static ev_timer notify_timer;

static void on_notify(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
	acme_on_certificate();
}

static void notify_new_certificate(void)
{
	if (!ev_is_active(&notify_timer)) {
		ev_timer_init(&notify_timer, on_notify, 0, 0);
		ev_timer_start(loop(), &notify_timer);
	}
}

static void names_text(const struct acme_order *o, char *buf, size_t cap)
{
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < o->n_domains && n + 1 < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? "," : "", o->domains[i]);
	if (n >= cap && cap > 4)
		memcpy(buf + cap - 4, "...", 4);
}

__attribute__((format(printf, 3, 4))) static void olog(const struct acme_order *o, int level,
							 const char *fmt, ...)
{
	char msg[700], names[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	names_text(o, names, sizeof(names));
	log_msg(level, "acme %s: %s: %s", o->acc->cfg->name, names, msg);
}

/* ---- challenges ---------------------------------------------------------------------- */

static void retire_sweep(void)
{
	double now = ev_now(loop());
	struct retired **pp = &retired_certs;
	while (*pp) {
		struct retired *r = *pp;
		if (now - r->at >= RETIRE_GRACE) {
			*pp = r->next;
			tls_cert_free(r->cert);
			free(r->cert);
			free(r);
		} else {
			pp = &r->next;
		}
	}
}

static void retire_cert(struct tls_cert *c)
{
	retire_sweep();
	struct retired *r = malloc(sizeof(*r));
	if (!r) { /* better a leak than a certificate freed under a handshake */
		return;
	}
	r->cert = c;
	r->at = ev_now(loop());
	r->next = retired_certs;
	retired_certs = r;
}

static void hook_del_done(void *ctx, int code, const char *out, size_t len)
{
	char *what = ctx;
	(void)len;
	if (code != 0)
		log_warn("acme: dns_hook del %s failed (exit %d): %s", what, code, out);
	free(what);
}

/* Runs `dns_hook del DOMAIN VALUE` without waiting (failure paths). */
static void hook_del_detached(struct acme_order *o)
{
	char *argv[] = { o->acc->cfg->dns_hook, "del", o->ch.domain, o->ch.txt, NULL };
	size_t n = strlen(o->ch.domain) + strlen(o->ch.txt) + 2;
	char *what = malloc(n);
	if (!what)
		return;
	snprintf(what, n, "%s %s", o->ch.domain, o->ch.txt);
	if (!child_run_exec(loop(), argv, HOOK_TIMEOUT, 2048, hook_del_done, what))
		free(what);
}

/* Forgets the current challenge; a dns-01 record is removed in the background. */
static void chal_clear(struct acme_order *o, bool remove_record)
{
	struct acme_chal *c = &o->ch;
	if (remove_record && c->hook_added && c->domain && c->txt)
		hook_del_detached(o);
	if (c->alpn)
		retire_cert(c->alpn);
	if (c->type == ACME_HTTP01 && c->keyauth)
		acme_board_withdraw(c->token);
	else if (c->type == ACME_TLSALPN01 && c->alpn)
		acme_board_withdraw(c->domain);
	free(c->url);
	free(c->token);
	free(c->keyauth);
	free(c->domain);
	free(c->txt);
	memset(c, 0, sizeof(*c));
	c->type = -1;
}

const char *acme_http01_key_authorization(struct slice token)
{
	for (struct acme_order *o = forgotten ? NULL : orders; o; o = o->next)
		if (o->ch.type == ACME_HTTP01 && o->ch.keyauth &&
		    slice_eq(token, slice_cstr(o->ch.token)))
			return o->ch.keyauth;
	return acme_board_http01(token); /* a worker: the supervisor runs the orders */
}

const struct tls_cert *acme_tls_alpn_cert(const char *sni)
{
	if (!sni)
		return NULL;
	for (struct acme_order *o = forgotten ? NULL : orders; o; o = o->next)
		if (o->ch.type == ACME_TLSALPN01 && o->ch.alpn && o->ch.domain &&
		    strcasecmp(o->ch.domain, sni) == 0)
			return o->ch.alpn;
	return acme_board_alpn(sni);
}

/* ---- order plumbing ------------------------------------------------------------------ */

static void order_start(struct acme_order *o);
static void order_fail(struct acme_order *o, long retry_after, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void account_setup(struct acme_order *o);
static void new_order(struct acme_order *o);

static void on_timer(struct ev_loop *l, ev_timer *w, int revents)
{
	struct acme_order *o = w->data;
	void (*fn)(struct acme_order *) = o->timer_fn;
	(void)l;
	(void)revents;
	o->timer_fn = NULL;
	if (fn)
		fn(o);
}

static void order_after(struct acme_order *o, double delay, void (*fn)(struct acme_order *))
{
	ev_timer_stop(loop(), &o->timer);
	ev_timer_set(&o->timer, delay < 0 ? 0 : delay, 0);
	o->timer_fn = fn;
	ev_timer_start(loop(), &o->timer);
}

/* Stops whatever is in flight and forgets the progress of the current attempt. */
static void order_reset(struct acme_order *o, bool remove_record)
{
	if (o->call) {
		http_call_cancel(o->call);
		o->call = NULL;
	}
	if (o->child) {
		child_cancel(o->child);
		o->child = NULL;
	}
	ev_timer_stop(loop(), &o->timer);
	o->timer_fn = NULL;
	if (o->acc->setup_owner == o)
		o->acc->setup_owner = NULL;
	chal_clear(o, remove_record);
	free(o->req_url);
	free(o->req_payload);
	o->req_url = o->req_payload = NULL;
	free(o->order_url);
	free(o->finalize_url);
	free(o->cert_url);
	o->order_url = o->finalize_url = o->cert_url = NULL;
	for (size_t i = 0; i < o->n_authz; i++)
		free(o->authz[i]);
	free(o->authz);
	o->authz = NULL;
	o->n_authz = o->authz_i = 0;
	if (o->have_cert_key)
		jws_key_free(&o->cert_key);
	o->have_cert_key = false;
	o->waiting_account = false;
}

static void order_free(struct acme_order *o)
{
	order_reset(o, true);
	for (size_t i = 0; i < o->n_domains; i++)
		free(o->domains[i]);
	free(o->domains);
	free(o->router);
	free(o);
}

static void order_fail(struct acme_order *o, long retry_after, const char *fmt, ...)
{
	char msg[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct acme_account *acc = o->acc;
	bool owned_setup = acc->setup_owner == o;
	order_reset(o, true);
	o->failures++;
	double delay = RETRY_BASE;
	for (int i = 1; i < o->failures && delay < RETRY_CAP; i++)
		delay *= 2;
	if (delay > RETRY_CAP)
		delay = RETRY_CAP;
	uint32_t r = 0;
	rand_bytes(&r, sizeof(r));
	delay += delay * 0.1 * (double)(r % 1000) / 1000.0; /* spread the herd */
	if (retry_after > delay)
		delay = (double)retry_after;
	olog(o, LOG_ERROR, "%s; retrying in %.0fs (attempt %d)", msg, delay, o->failures);
	order_after(o, delay, order_start);
	/* orders waiting for the account this one was setting up fail with it */
	if (owned_setup)
		for (struct acme_order *w = orders; w; w = w->next)
			if (w->acc == acc && w->waiting_account)
				order_fail(w, retry_after, "account setup failed");
}

/* ---- nonces and signed requests ------------------------------------------------------ */

static void nonce_put(struct acme_account *acc, const char *nonce)
{
	size_t len = strlen(nonce);
	if (len == 0 || len >= NONCE_MAX)
		return;
	if (acc->n_nonces == MAX_NONCES) { /* keep the newest */
		memmove(acc->nonces[0], acc->nonces[1], (MAX_NONCES - 1) * NONCE_MAX);
		acc->n_nonces--;
	}
	memcpy(acc->nonces[acc->n_nonces++], nonce, len + 1);
}

static bool nonce_take(struct acme_account *acc, char *out)
{
	if (acc->n_nonces == 0)
		return false;
	memcpy(out, acc->nonces[--acc->n_nonces], NONCE_MAX);
	return true;
}

/* Logs and fails on a problem document (RFC 7807, RFC 8555 §6.7). */
struct problem {
	char type[128], detail[400];
};

static void problem_parse(const struct http_client_result *r, struct problem *p)
{
	struct json_doc d;
	char err[64];

	/* cppcheck's whole-program check takes snprintf's destination for a read of
	 * the caller's uninitialized struct: a false positive, it is only written. */
	/* cppcheck-suppress ctuuninitvar */
	snprintf(p->type, sizeof(p->type), "HTTP %d", r->status);
	p->detail[0] = '\0';
	if (json_parse(&d, r->body, r->body_len, err, sizeof(err)) < 0)
		return;
	json_text(&d, json_get(&d, 0, "type"), p->type, sizeof(p->type));
	json_text(&d, json_get(&d, 0, "detail"), p->detail, sizeof(p->detail));
	/* subproblems name the identifier that failed (RFC 8555 §6.7.1) */
	int subs = json_get(&d, 0, "subproblems");
	for (size_t i = 0; i < json_count(&d, subs) && i < 3; i++) {
		char v[128], det[200];
		int s = json_at(&d, subs, i);
		if (json_text(&d, json_get(&d, json_get(&d, s, "identifier"), "value"), v, sizeof(v)) < 0)
			v[0] = '\0';
		if (json_text(&d, json_get(&d, s, "detail"), det, sizeof(det)) < 0)
			det[0] = '\0';
		size_t n = strlen(p->detail);
		snprintf(p->detail + n, sizeof(p->detail) - n, "; %s: %s", v, det);
	}
	json_free(&d);
	if (p->type[0] == '\0')
		snprintf(p->type, sizeof(p->type), "HTTP %d", r->status);
}

static bool problem_is(const struct problem *p, const char *name)
{
	static const char prefix[] = "urn:ietf:params:acme:error:";
	return strncmp(p->type, prefix, sizeof(prefix) - 1) == 0 &&
	       strcmp(p->type + sizeof(prefix) - 1, name) == 0;
}

static void send_signed(struct acme_order *o);

static void on_nonce(void *ctx, const struct http_client_result *r, const char *error)
{
	struct acme_order *o = ctx;
	o->call = NULL;
	if (!r) {
		order_fail(o, -1, "newNonce: %s", error);
		return;
	}
	if (r->replay_nonce[0] == '\0') {
		order_fail(o, r->retry_after, "newNonce: HTTP %d without a Replay-Nonce", r->status);
		return;
	}
	nonce_put(o->acc, r->replay_nonce);
	send_signed(o);
}

static void on_signed_response(void *ctx, const struct http_client_result *r, const char *error)
{
	struct acme_order *o = ctx;
	o->call = NULL;
	if (!r) {
		order_fail(o, -1, "%s: %s", o->what, error);
		return;
	}
	if (r->replay_nonce[0])
		nonce_put(o->acc, r->replay_nonce);
	if (r->status >= 400) {
		struct problem p;
		problem_parse(r, &p);
		if (problem_is(&p, "badNonce") && o->bad_nonces < MAX_BAD_NONCE) {
			/* RFC 8555 §6.5: retry with the nonce this error carried */
			o->bad_nonces++;
			log_debug("acme %s: %s: badNonce, retrying", o->acc->cfg->name, o->what);
			send_signed(o);
			return;
		}
		if ((problem_is(&p, "accountDoesNotExist") || problem_is(&p, "unauthorized")) &&
		    !o->req_jwk && o->acc->kid && !o->account_retried) {
			/* the CA forgot the account (or it was deactivated): register again */
			olog(o, LOG_WARN, "%s: %s: %s; registering the account again", o->what, p.type,
			     p.detail);
			struct acme_account *acc = o->acc;
			free(acc->kid);
			acc->kid = NULL;
			char path[PATH_MAX + 16];
			snprintf(path, sizeof(path), "%s/account.json", acc->dir);
			unlink(path);
			o->account_retried = true;
			order_reset(o, true);
			order_start(o);
			return;
		}
		order_fail(o, r->retry_after, "%s: %s: %s (HTTP %d)", o->what, p.type,
			   p.detail[0] ? p.detail : "no detail", r->status);
		return;
	}
	step_fn next = o->req_next;
	next(o, r);
}

/* Signs the pending request with a fresh nonce and sends it. */
static void send_signed(struct acme_order *o)
{
	struct acme_account *acc = o->acc;
	char nonce[NONCE_MAX];
	struct strbuf body = { 0 };

	if (!nonce_take(acc, nonce)) {
		/* RFC 8555 §7.2: HEAD newNonce */
		struct http_client_request req = { .method = "HEAD", .url = acc->new_nonce };
		o->call = http_call_start(loop(), &acc->trust, &req, HTTP_TIMEOUT, on_nonce, o);
		if (!o->call)
			order_fail(o, -1, "newNonce: bad URL '%s'", acc->new_nonce);
		return;
	}
	const char *payload = o->req_payload ? o->req_payload : "";
	if (jws_sign(&acc->key, o->req_jwk ? NULL : acc->kid, nonce, o->req_url, payload,
		     strlen(payload), &body) < 0) {
		strbuf_free(&body);
		order_fail(o, -1, "%s: cannot sign the request", o->what);
		return;
	}
	struct http_client_request req = { .method = "POST", .url = o->req_url,
					   .content_type = "application/jose+json",
					   .body = body.p, .body_len = body.len,
					   .accept = o->req_accept };
	o->call = http_call_start(loop(), &acc->trust, &req, HTTP_TIMEOUT, on_signed_response, o);
	strbuf_free(&body);
	if (!o->call)
		order_fail(o, -1, "%s: bad URL '%s'", o->what, o->req_url);
}

/* A JWS-signed POST (RFC 8555 §6.2); payload NULL is POST-as-GET (§6.3). */
static void acme_post(struct acme_order *o, const char *what, const char *url, const char *payload,
		      bool use_jwk, const char *accept, step_fn next)
{
	char *u = strdup(url), *p = payload ? strdup(payload) : NULL;
	free(o->req_url);
	free(o->req_payload);
	o->req_url = u;
	o->req_payload = p;
	if (!u || (payload && !p)) {
		order_fail(o, -1, "%s: out of memory", what);
		return;
	}
	o->what = what;
	o->req_jwk = use_jwk;
	o->req_accept = accept;
	o->req_next = next;
	o->bad_nonces = 0;
	send_signed(o);
}

/* Parses a JSON response body; fails the order when it is not JSON. */
static int parse_body(struct acme_order *o, const struct http_client_result *r, struct json_doc *d)
{
	char err[128];
	if (json_parse(d, r->body, r->body_len, err, sizeof(err)) < 0 || json_type(d, 0) != JSON_OBJECT) {
		order_fail(o, -1, "%s: bad JSON from the CA (%s)", o->what,
			   err[0] ? err : "not an object");
		return -1;
	}
	return 0;
}

/* The poll delay: the CA's Retry-After, else 1s growing to 5s. */
static double poll_delay(struct acme_order *o, const struct http_client_result *r)
{
	o->polls++;
	if (r->retry_after >= 0)
		return r->retry_after > 3600 ? 3600 : (double)r->retry_after;
	return o->polls < 3 ? 1.0 : o->polls < 10 ? 2.0 : 5.0;
}

static bool poll_expired(struct acme_order *o)
{
	return ev_now(loop()) - o->poll_started > POLL_LIMIT;
}

/* ---- account: directory, key, registration --------------------------------------------- */

static void account_setup_done(struct acme_order *o)
{
	struct acme_account *acc = o->acc;
	acc->setup_owner = NULL;
	for (struct acme_order *w = orders; w; w = w->next)
		if (w != o && w->acc == acc && w->waiting_account) {
			w->waiting_account = false;
			new_order(w);
		}
	new_order(o);
}

static int save_account_json(struct acme_account *acc, char *err, size_t errlen)
{
	struct strbuf s = { 0 };
	strbuf_str(&s, "{\"ca\":\"");
	strbuf_json(&s, acc->cfg->ca);
	strbuf_str(&s, "\",\"url\":\"");
	strbuf_json(&s, acc->kid);
	strbuf_str(&s, "\",\"key\":\"");
	strbuf_str(&s, acc->thumbprint);
	strbuf_str(&s, "\"}\n");
	int rc = s.failed ? -1 : fs_write_atomic(acc->dir, "account.json", s.p, s.len, 0600, err, errlen);
	strbuf_free(&s);
	return rc;
}

/* account.json from an earlier run, when it is for this CA and key. */
static void load_account_json(struct acme_account *acc)
{
	char path[PATH_MAX + 16], err[200];
	char *text;
	size_t len;
	struct json_doc d;

	snprintf(path, sizeof(path), "%s/account.json", acc->dir);
	if (fs_read_file(path, 65536, &text, &len, err, sizeof(err)) < 0) {
		if (errno != ENOENT)
			log_warn("acme %s: %s; registering again", acc->cfg->name, err);
		return;
	}
	if (json_parse(&d, text, len, err, sizeof(err)) < 0) {
		log_warn("acme %s: %s: %s; registering again", acc->cfg->name, path, err);
	} else {
		/* the URL belongs to this CA and to this key (the key may have been replaced) */
		if (json_str_eq(&d, json_get(&d, 0, "ca"), acc->cfg->ca) &&
		    json_str_eq(&d, json_get(&d, 0, "key"), acc->thumbprint))
			acc->kid = json_strdup(&d, json_get(&d, 0, "url"));
		json_free(&d);
	}
	free(text);
}

static void on_new_account(struct acme_order *o, const struct http_client_result *r)
{
	struct acme_account *acc = o->acc;
	char err[300];

	if (r->location[0] == '\0') {
		order_fail(o, -1, "newAccount: no Location in the answer (HTTP %d)", r->status);
		return;
	}
	free(acc->kid);
	if (!(acc->kid = strdup(r->location))) {
		order_fail(o, -1, "out of memory");
		return;
	}
	log_info("acme %s: account %s %s", acc->cfg->name, acc->kid,
		 r->status == 201 ? "created" : "found");
	if (save_account_json(acc, err, sizeof(err)) < 0)
		log_warn("acme %s: cannot save the account URL: %s", acc->cfg->name, err);
	account_setup_done(o);
}

/* RFC 8555 §7.3: newAccount with the JWK; an existing account for the key is returned
 * as is (200). */
static void register_account(struct acme_order *o)
{
	struct acme_account *acc = o->acc;
	struct strbuf p = { 0 };

	if (acc->eab_required && !acc->cfg->eab_kid) {
		order_fail(o, -1, "the CA requires external account binding: set eab_kid and eab_hmac");
		return;
	}
	strbuf_str(&p, "{\"termsOfServiceAgreed\":true");
	if (acc->cfg->email) {
		strbuf_str(&p, ",\"contact\":[\"mailto:");
		strbuf_json(&p, acc->cfg->email);
		strbuf_str(&p, "\"]");
	}
	if (acc->cfg->eab_kid) {
		strbuf_str(&p, ",\"externalAccountBinding\":");
		if (jws_eab(&acc->key, acc->cfg->eab_kid, acc->cfg->eab_hmac, acc->cfg->eab_hmac_len,
			    acc->new_account, &p) < 0)
			p.failed = true;
	}
	strbuf_str(&p, "}");
	if (p.failed) {
		strbuf_free(&p);
		order_fail(o, -1, "newAccount: out of memory");
		return;
	}
	acme_post(o, "newAccount", acc->new_account, p.p, true, NULL, on_new_account);
	strbuf_free(&p);
}

static void account_key_ready(struct acme_order *o)
{
	struct acme_account *acc = o->acc;
	if (jws_thumbprint(&acc->key, acc->thumbprint) < 0) {
		order_fail(o, -1, "account key: thumbprint failed");
		return;
	}
	if (!acc->kid)
		load_account_json(acc);
	if (acc->kid)
		account_setup_done(o);
	else
		register_account(o);
}

/* Key generation: EC at once, RSA in a child process (seconds for 4096 bits). */
typedef void (*key_fn)(struct acme_order *o, struct jws_key *k, const char *err);

static int keygen_in_child(void *arg, int fd)
{
	const struct acme_order *o = arg;
	struct jws_key k;
	size_t len;
	if (jws_key_generate(&k, o->keygen_type) < 0)
		return 1;
	char *pem = jws_key_to_pem(&k, &len);
	if (!pem)
		return 1;
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, pem + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 1;
		off += (size_t)n;
	}
	return 0;
}

static void on_keygen(void *ctx, int code, const char *out, size_t len)
{
	struct acme_order *o = ctx;
	key_fn next = o->keygen_next;
	struct jws_key k;
	char err[128];

	o->child = NULL;
	if (code != 0) {
		next(o, NULL, code == CHILD_TIMEOUT ? "key generation timed out" : "key generation failed");
		return;
	}
	if (jws_key_from_pem(&k, out, len, err, sizeof(err)) < 0) {
		next(o, NULL, err);
		return;
	}
	next(o, &k, NULL);
}

static void keygen(struct acme_order *o, enum jws_key_type type, key_fn next)
{
	if (type == JWS_KEY_EC256 || type == JWS_KEY_EC384) {
		struct jws_key k;
		if (jws_key_generate(&k, type) < 0)
			next(o, NULL, "key generation failed");
		else
			next(o, &k, NULL);
		return;
	}
	o->keygen_type = type;
	o->keygen_next = next;
	o->child = child_run_fn(loop(), keygen_in_child, o, KEYGEN_TIMEOUT, 16384, on_keygen, o);
	if (!o->child)
		next(o, NULL, "fork failed");
}

static void on_account_key(struct acme_order *o, struct jws_key *k, const char *why)
{
	struct acme_account *acc = o->acc;
	char err[300];

	if (!k) {
		order_fail(o, -1, "account key: %s", why);
		return;
	}
	size_t len;
	char *pem = jws_key_to_pem(k, &len);
	int rc = pem ? fs_write_atomic(acc->dir, "account.key", pem, len, 0600, err, sizeof(err)) : -1;
	if (pem) {
		wipe(pem, len);
		free(pem);
	} else {
		snprintf(err, sizeof(err), "cannot encode the key");
	}
	if (rc < 0) {
		jws_key_free(k);
		order_fail(o, -1, "account key: %s", err);
		return;
	}
	acc->key = *k; /* the struct moves; its buffer comes along */
	acc->have_key = true;
	log_info("acme %s: new %s account key in %s/account.key", acc->cfg->name,
		 jws_key_type_name(k->type), acc->dir);
	free(acc->kid); /* a new key is a new account */
	acc->kid = NULL;
	account_key_ready(o);
}

static void load_account_key(struct acme_order *o)
{
	struct acme_account *acc = o->acc;
	char path[PATH_MAX + 16], err[300];
	char *pem;
	size_t len;

	snprintf(path, sizeof(path), "%s/account.key", acc->dir);
	if (fs_read_file(path, 65536, &pem, &len, err, sizeof(err)) < 0) {
		if (errno != ENOENT) {
			order_fail(o, -1, "%s", err);
			return;
		}
		keygen(o, acc->cfg->key_type, on_account_key);
		return;
	}
	int rc = jws_key_from_pem(&acc->key, pem, len, err, sizeof(err));
	wipe(pem, len);
	free(pem);
	if (rc < 0) {
		/* keep the broken file for the operator, start a new account */
		char aside[PATH_MAX + 48];
		snprintf(aside, sizeof(aside), "%s.broken-%lld", path, (long long)time(NULL));
		log_error("acme %s: %s: %s; moved to %s, creating a new account key", acc->cfg->name,
			  path, err, aside);
		if (rename(path, aside) < 0) {
			order_fail(o, -1, "%s: rename: %s", path, strerror(errno));
			return;
		}
		keygen(o, acc->cfg->key_type, on_account_key);
		return;
	}
	acc->have_key = true;
	account_key_ready(o);
}

static void on_directory(void *ctx, const struct http_client_result *r, const char *error)
{
	struct acme_order *o = ctx;
	struct acme_account *acc = o->acc;
	struct json_doc d;

	o->call = NULL;
	if (!r) {
		order_fail(o, -1, "directory %s: %s", acc->cfg->ca, error);
		return;
	}
	if (r->status != 200) {
		order_fail(o, r->retry_after, "directory %s: HTTP %d", acc->cfg->ca, r->status);
		return;
	}
	o->what = "directory";
	if (parse_body(o, r, &d) < 0)
		return;
	free(acc->new_nonce);
	free(acc->new_account);
	free(acc->new_order);
	acc->new_nonce = json_strdup(&d, json_get(&d, 0, "newNonce"));
	acc->new_account = json_strdup(&d, json_get(&d, 0, "newAccount"));
	acc->new_order = json_strdup(&d, json_get(&d, 0, "newOrder"));
	int meta = json_get(&d, 0, "meta");
	acc->eab_required = json_type(&d, json_get(&d, meta, "externalAccountRequired")) == JSON_TRUE;
	char tos[300];
	if (json_text(&d, json_get(&d, meta, "termsOfService"), tos, sizeof(tos)) > 0)
		log_info("acme %s: agreeing to the CA's terms of service: %s", acc->cfg->name, tos);
	json_free(&d);
	if (!acc->new_nonce || !acc->new_account || !acc->new_order) {
		order_fail(o, -1, "directory %s: newNonce, newAccount or newOrder missing", acc->cfg->ca);
		return;
	}
	acc->have_directory = true;
	if (acc->have_key)
		account_key_ready(o);
	else
		load_account_key(o);
}

static void account_setup(struct acme_order *o)
{
	struct acme_account *acc = o->acc;
	char err[300];

	acc->setup_owner = o;
	if (fs_mkdir_p(acc->dir, 0700, err, sizeof(err)) < 0) {
		order_fail(o, -1, "%s", err);
		return;
	}
	if (acc->have_directory) {
		if (acc->have_key)
			account_key_ready(o);
		else
			load_account_key(o);
		return;
	}
	struct http_client_request req = { .method = "GET", .url = acc->cfg->ca,
					   .accept = "application/json" };
	o->call = http_call_start(loop(), &acc->trust, &req, HTTP_TIMEOUT, on_directory, o);
	if (!o->call)
		order_fail(o, -1, "directory: bad URL '%s'", acc->cfg->ca);
}

/* ---- the order ------------------------------------------------------------------------ */

static void next_authz(struct acme_order *o);
static void check_order(struct acme_order *o);

static void on_new_order(struct acme_order *o, const struct http_client_result *r)
{
	struct json_doc d;

	if (r->location[0] == '\0') {
		order_fail(o, -1, "newOrder: no Location in the answer");
		return;
	}
	if (parse_body(o, r, &d) < 0)
		return;
	o->order_url = strdup(r->location);
	o->finalize_url = json_strdup(&d, json_get(&d, 0, "finalize"));
	int az = json_get(&d, 0, "authorizations");
	o->n_authz = json_count(&d, az);
	o->authz = o->n_authz ? calloc(o->n_authz, sizeof(*o->authz)) : NULL;
	bool ok = o->order_url && o->finalize_url && json_type(&d, az) == JSON_ARRAY &&
		  (o->n_authz == 0 || o->authz);
	for (size_t i = 0; ok && i < o->n_authz; i++)
		ok = (o->authz[i] = json_strdup(&d, json_at(&d, az, i))) != NULL;
	char status[32] = "";
	json_text(&d, json_get(&d, 0, "status"), status, sizeof(status));
	json_free(&d);
	if (!ok) {
		order_fail(o, -1, "newOrder: the order lacks finalize or authorizations");
		return;
	}
	olog(o, LOG_INFO, "order %s (%s, %zu authorizations)", o->order_url, status, o->n_authz);
	o->authz_i = 0;
	next_authz(o);
}

static void new_order(struct acme_order *o)
{
	struct acme_account *acc = o->acc;
	struct strbuf p = { 0 };

	/* RFC 8555 §7.4: identifiers of type dns; wildcards as "*.example.com" */
	strbuf_str(&p, "{\"identifiers\":[");
	for (size_t i = 0; i < o->n_domains; i++) {
		strbuf_str(&p, i ? ",{\"type\":\"dns\",\"value\":\"" : "{\"type\":\"dns\",\"value\":\"");
		strbuf_json(&p, o->domains[i]);
		strbuf_str(&p, "\"}");
	}
	strbuf_str(&p, "]}");
	if (p.failed) {
		strbuf_free(&p);
		order_fail(o, -1, "newOrder: out of memory");
		return;
	}
	acme_post(o, "newOrder", acc->new_order, p.p, false, NULL, on_new_order);
	strbuf_free(&p);
}

static void poll_authz(struct acme_order *o);

static void on_hook_del(void *ctx, int code, const char *out, size_t len)
{
	struct acme_order *o = ctx;
	(void)len;
	o->child = NULL;
	if (code != 0)
		olog(o, LOG_WARN, "dns_hook del %s failed (%s %d): %s", o->ch.domain,
		     code >= 0 ? "exit" : "status", code, out);
	chal_clear(o, false);
	o->authz_i++;
	next_authz(o);
}

static void on_authz_poll(struct acme_order *o, const struct http_client_result *r)
{
	struct json_doc d;
	char status[32] = "";

	if (parse_body(o, r, &d) < 0)
		return;
	json_text(&d, json_get(&d, 0, "status"), status, sizeof(status));
	if (strcmp(status, "valid") == 0) {
		json_free(&d);
		olog(o, LOG_INFO, "%s validated %s%s", acme_challenge_name(o->ch.type),
		     o->ch.wildcard ? "*." : "", o->ch.domain);
		if (o->ch.type == ACME_DNS01 && o->ch.hook_added) {
			/* wait for the record's removal: the next name may use the same record */
			char *argv[] = { o->acc->cfg->dns_hook, "del", o->ch.domain, o->ch.txt, NULL };
			o->ch.hook_added = false;
			o->child = child_run_exec(loop(), argv, HOOK_TIMEOUT, 2048, on_hook_del, o);
			if (o->child)
				return;
			olog(o, LOG_WARN, "dns_hook: cannot start %s: %s", argv[0], strerror(errno));
		}
		chal_clear(o, false);
		o->authz_i++;
		next_authz(o);
		return;
	}
	if (strcmp(status, "pending") == 0 || strcmp(status, "processing") == 0) {
		json_free(&d);
		if (poll_expired(o)) {
			order_fail(o, -1, "authorization for %s still %s after %.0fs", o->ch.domain,
				   status, POLL_LIMIT);
			return;
		}
		order_after(o, poll_delay(o, r), poll_authz);
		return;
	}
	/* invalid (or expired, deactivated, revoked): the challenge says why */
	char why[400] = "", type[128] = "";
	int chs = json_get(&d, 0, "challenges");
	for (size_t i = 0; i < json_count(&d, chs); i++) {
		int c = json_at(&d, chs, i);
		int e = json_get(&d, c, "error");
		if (e >= 0) {
			json_text(&d, json_get(&d, e, "type"), type, sizeof(type));
			json_text(&d, json_get(&d, e, "detail"), why, sizeof(why));
		}
	}
	json_free(&d);
	order_fail(o, -1, "%s for %s is %s: %s: %s", o->ch.type >= 0 ? acme_challenge_name(o->ch.type) : "authorization",
		   o->ch.domain ? o->ch.domain : "?", status, type[0] ? type : "no error given", why);
}

static void poll_authz(struct acme_order *o)
{
	acme_post(o, "authorization", o->authz[o->authz_i], NULL, false, NULL, on_authz_poll);
}

static void on_challenge_posted(struct acme_order *o, const struct http_client_result *r)
{
	o->poll_started = ev_now(loop());
	o->polls = 0;
	order_after(o, poll_delay(o, r), poll_authz);
}

/* The answer is in place: tell the CA to validate (RFC 8555 §7.5.1: POST {}). */
static void respond_challenge(struct acme_order *o)
{
	if (o->ch.responded) {
		o->poll_started = ev_now(loop());
		o->polls = 0;
		order_after(o, 1.0, poll_authz);
		return;
	}
	acme_post(o, "challenge", o->ch.url, "{}", false, NULL, on_challenge_posted);
}

static void on_hook_add(void *ctx, int code, const char *out, size_t len)
{
	struct acme_order *o = ctx;
	(void)len;
	o->child = NULL;
	if (code != 0) {
		order_fail(o, -1, "dns_hook add %s failed (%s %d): %s", o->ch.domain,
			   code >= 0 ? "exit" : "status", code, out);
		return;
	}
	o->ch.hook_added = true;
	respond_challenge(o);
}

/* TLS-ALPN-01: a self-signed certificate for the name with the key authorization's
 * digest (RFC 8737 §3). */
static int make_alpn_cert(struct acme_order *o, const unsigned char digest[32])
{
	struct jws_key k;
	size_t der_len = 0, cert_len = 0, key_len = 0;
	char *cert_pem = NULL, *key_pem = NULL, err[200];
	int rc = -1;

	if (jws_key_generate(&k, JWS_KEY_EC256) < 0)
		return -1;
	unsigned char *der = csr_alpn_cert(&k, o->ch.domain, digest, time(NULL), &der_len);
	if (der)
		cert_pem = der_to_pem(der, der_len, "CERTIFICATE", &cert_len);
	key_pem = jws_key_to_pem(&k, &key_len);
	struct tls_cert *c = calloc(1, sizeof(*c));
	if (c && cert_pem && key_pem &&
	    tls_cert_parse_pem(cert_pem, cert_len, "tls-alpn-01", key_pem, key_len, "tls-alpn-01", c,
			       err, sizeof(err)) == 0) {
		o->ch.alpn = c;
		c = NULL;
		rc = 0;
		acme_board_post_alpn(o->ch.domain, cert_pem, cert_len, key_pem, key_len);
	}
	free(c);
	free(der);
	free(cert_pem);
	if (key_pem) {
		wipe(key_pem, key_len);
		free(key_pem);
	}
	jws_key_free(&k);
	return rc;
}

/* Sets up the answer to the chosen challenge, then responds. */
static void answer_challenge(struct acme_order *o)
{
	struct acme_account *acc = o->acc;
	size_t tl = strlen(o->ch.token), n = tl + 1 + 43 + 1;
	unsigned char digest[32];
	br_sha256_context sha;

	/* RFC 8555 §8.1: keyAuthorization = token || '.' || base64url(Thumbprint(accountKey)) */
	if (!(o->ch.keyauth = malloc(n))) {
		order_fail(o, -1, "out of memory");
		return;
	}
	snprintf(o->ch.keyauth, n, "%s.%s", o->ch.token, acc->thumbprint);
	br_sha256_init(&sha);
	br_sha256_update(&sha, o->ch.keyauth, strlen(o->ch.keyauth));
	br_sha256_out(&sha, digest);

	switch (o->ch.type) {
	case ACME_HTTP01:
		acme_board_post_http01(o->ch.token, o->ch.keyauth);
		respond_challenge(o);
		return;
	case ACME_TLSALPN01:
		if (make_alpn_cert(o, digest) < 0) {
			order_fail(o, -1, "tls-alpn-01: cannot make the challenge certificate");
			return;
		}
		respond_challenge(o);
		return;
	case ACME_DNS01: {
		/* RFC 8555 §8.4: the TXT record at _acme-challenge.DOMAIN holds
		 * base64url(SHA-256(keyAuthorization)) */
		if (!(o->ch.txt = malloc(44))) {
			order_fail(o, -1, "out of memory");
			return;
		}
		b64url_encode(digest, sizeof(digest), o->ch.txt);
		char *argv[] = { acc->cfg->dns_hook, "add", o->ch.domain, o->ch.txt, NULL };
		o->child = child_run_exec(loop(), argv, HOOK_TIMEOUT, 2048, on_hook_add, o);
		if (!o->child)
			order_fail(o, -1, "dns_hook: cannot start %s: %s", acc->cfg->dns_hook,
				   strerror(errno));
		return;
	}
	}
}

static void on_authz(struct acme_order *o, const struct http_client_result *r)
{
	struct json_doc d;
	char status[32] = "", domain[260] = "";
	const char *want = acme_challenge_name(o->acc->cfg->challenge);

	if (parse_body(o, r, &d) < 0)
		return;
	json_text(&d, json_get(&d, 0, "status"), status, sizeof(status));
	json_text(&d, json_get(&d, json_get(&d, 0, "identifier"), "value"), domain, sizeof(domain));
	if (strcmp(status, "valid") == 0) { /* reused from an earlier order */
		json_free(&d);
		o->authz_i++;
		next_authz(o);
		return;
	}
	if (strcmp(status, "pending") != 0) {
		json_free(&d);
		order_fail(o, -1, "authorization for %s is %s", domain[0] ? domain : "?", status);
		return;
	}
	int chs = json_get(&d, 0, "challenges"), found = -1;
	for (size_t i = 0; i < json_count(&d, chs) && found < 0; i++)
		if (json_str_eq(&d, json_get(&d, json_at(&d, chs, i), "type"), want))
			found = json_at(&d, chs, i);
	if (found < 0) {
		json_free(&d);
		order_fail(o, -1, "the CA offers no %s challenge for %s", want, domain);
		return;
	}
	chal_clear(o, true);
	o->ch.type = o->acc->cfg->challenge;
	o->ch.url = json_strdup(&d, json_get(&d, found, "url"));
	o->ch.token = json_strdup(&d, json_get(&d, found, "token"));
	o->ch.domain = strdup(domain);
	o->ch.wildcard = json_type(&d, json_get(&d, 0, "wildcard")) == JSON_TRUE;
	char cstatus[32] = "";
	json_text(&d, json_get(&d, found, "status"), cstatus, sizeof(cstatus));
	json_free(&d);
	if (!o->ch.url || !o->ch.token || !domain[0] || !o->ch.domain) {
		order_fail(o, -1, "authorization for %s: challenge without url or token", domain);
		return;
	}
	/* RFC 8555 §8.1: the token is base64url, at least 128 bits; it becomes a URL path
	 * and a file-free answer, so anything else is refused */
	for (const char *t = o->ch.token; *t; t++)
		if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *t)) {
			order_fail(o, -1, "authorization for %s: token is not base64url", domain);
			return;
		}
	/* already responded to (by an attempt that was cut short): put the answer in
	 * place again, but do not ask for validation twice */
	o->ch.responded = strcmp(cstatus, "processing") == 0;
	answer_challenge(o);
}

static void next_authz(struct acme_order *o)
{
	if (o->authz_i < o->n_authz) {
		acme_post(o, "authorization", o->authz[o->authz_i], NULL, false, NULL, on_authz);
		return;
	}
	o->poll_started = ev_now(loop());
	o->polls = 0;
	check_order(o);
}

static void write_certificate(struct acme_order *o, const struct http_client_result *r);

static void download(struct acme_order *o)
{
	/* RFC 8555 §7.4.2: POST-as-GET, PEM chain leaf first */
	acme_post(o, "certificate", o->cert_url, NULL, false, "application/pem-certificate-chain",
		  write_certificate);
}

static void finalize(struct acme_order *o);

static void on_order_status(struct acme_order *o, const struct http_client_result *r)
{
	struct json_doc d;
	char status[32] = "";

	if (parse_body(o, r, &d) < 0)
		return;
	json_text(&d, json_get(&d, 0, "status"), status, sizeof(status));
	if (strcmp(status, "valid") == 0 && !o->have_cert_key) {
		/* finalized by an attempt whose key is gone: only a new order helps */
		json_free(&d);
		order_fail(o, -1, "order %s is already finalized with a key this attempt does not have",
			   o->order_url);
		return;
	}
	if (strcmp(status, "valid") == 0) {
		free(o->cert_url);
		o->cert_url = json_strdup(&d, json_get(&d, 0, "certificate"));
		json_free(&d);
		if (!o->cert_url) {
			order_fail(o, -1, "order is valid but has no certificate URL");
			return;
		}
		download(o);
		return;
	}
	if (strcmp(status, "ready") == 0 && !o->have_cert_key) {
		json_free(&d);
		finalize(o);
		return;
	}
	if (strcmp(status, "processing") == 0 || strcmp(status, "pending") == 0 ||
	    strcmp(status, "ready") == 0) {
		json_free(&d);
		if (poll_expired(o)) {
			order_fail(o, -1, "order still %s after %.0fs", status, POLL_LIMIT);
			return;
		}
		order_after(o, poll_delay(o, r), check_order);
		return;
	}
	struct problem p = { "", "" };
	int e = json_get(&d, 0, "error");
	json_text(&d, json_get(&d, e, "type"), p.type, sizeof(p.type));
	json_text(&d, json_get(&d, e, "detail"), p.detail, sizeof(p.detail));
	json_free(&d);
	order_fail(o, -1, "order is %s: %s %s", status, p.type, p.detail);
}

static void check_order(struct acme_order *o)
{
	acme_post(o, "order", o->order_url, NULL, false, NULL, on_order_status);
}

static void on_finalized(struct acme_order *o, const struct http_client_result *r)
{
	/* the answer is the order object: valid, or processing (poll) */
	on_order_status(o, r);
}

static void on_cert_key(struct acme_order *o, struct jws_key *k, const char *why)
{
	struct strbuf p = { 0 };
	size_t der_len = 0;

	if (!k) {
		order_fail(o, -1, "certificate key: %s", why);
		return;
	}
	o->cert_key = *k;
	o->have_cert_key = true;
	unsigned char *der = csr_build(&o->cert_key, (const char *const *)o->domains, o->n_domains,
				       &der_len);
	if (!der) {
		order_fail(o, -1, "cannot build the CSR");
		return;
	}
	/* RFC 8555 §7.4: {"csr": base64url(DER)} */
	strbuf_str(&p, "{\"csr\":\"");
	b64url_strbuf(&p, der, der_len);
	strbuf_str(&p, "\"}");
	free(der);
	if (p.failed) {
		strbuf_free(&p);
		order_fail(o, -1, "finalize: out of memory");
		return;
	}
	acme_post(o, "finalize", o->finalize_url, p.p, false, NULL, on_finalized);
	strbuf_free(&p);
}

static void finalize(struct acme_order *o)
{
	keygen(o, o->acc->cfg->key_type, on_cert_key);
}

/* ---- certificate files ------------------------------------------------------------------ */

static void file_paths(const struct acme_order *o, char *crt, char *key, size_t cap)
{
	snprintf(crt, cap, "%s/%s.crt", o->acc->dir, o->base);
	snprintf(key, cap, "%s/%s.key", o->acc->dir, o->base);
}

/* Whether c certifies every name of the order. */
static bool cert_covers(const struct tls_cert *c, const struct acme_order *o)
{
	for (size_t i = 0; i < o->n_domains; i++) {
		const char *d = o->domains[i];
		bool ok = false;
		if (d[0] == '*') { /* a wildcard is covered only by the same wildcard */
			for (size_t j = 0; j < c->n_names && !ok; j++)
				ok = strcasecmp(c->names[j], d) == 0;
		} else {
			ok = tls_cert_matches(c, d);
		}
		if (!ok)
			return false;
	}
	return true;
}

static void issuer_name(const struct tls_cert *c, char *out, size_t cap)
{
	struct der_r issuer;
	snprintf(out, cap, "?");
	if (c->chain_len > 0 &&
	    der_cert_issuer(c->chain[0].data, c->chain[0].data_len, &issuer) == 0)
		der_name_cn(issuer, out, cap);
}

/* When the certificate should be renewed: renew_before ahead of its end, or a
 * third of its lifetime; spread by up to a tenth of that window (at most an hour)
 * so that many certificates do not renew in the same second. A certificate fresh
 * from the CA that is due at once (renew_before longer than the lifetime the CA
 * gives) uses a third of its lifetime instead, so that it is not ordered again in
 * a loop. */
static time_t renew_time(const struct acme_order *o, const struct tls_cert *c, bool fresh)
{
	int64_t lifetime = (int64_t)c->not_after - (int64_t)c->not_before;
	int64_t window = o->acc->cfg->renew_before_ms / 1000;
	if (window <= 0)
		window = lifetime / 3;
	if (fresh && window >= (int64_t)c->not_after - (int64_t)time(NULL)) {
		olog(o, LOG_WARN, "renew_before is longer than the %lld days the CA certifies for; "
			     "renewing this certificate after two thirds of its lifetime",
		     (long long)(lifetime / 86400));
		window = lifetime / 3;
	}
	uint32_t r = 0;
	rand_bytes(&r, sizeof(r));
	int64_t spread = window / 10 < 3600 ? window / 10 : 3600;
	int64_t jitter = spread > 0 ? (int64_t)(r % (uint32_t)spread) : 0;
	return (time_t)((int64_t)c->not_after - window + jitter);
}

static void schedule_renewal(struct acme_order *o, const struct tls_cert *c, bool fresh)
{
	time_t at = renew_time(o, c, fresh), now = time(NULL);
	char until[TIMEFMT_RFC3339_LEN + 1], when[TIMEFMT_RFC3339_LEN + 1], issuer[128];

	timefmt_rfc3339(c->not_after, until);
	timefmt_rfc3339(at, when);
	issuer_name(c, issuer, sizeof(issuer));
	if (at <= now) {
		olog(o, LOG_INFO, "certificate valid until %s, issuer \"%s\", due for renewal: ordering now",
		     until, issuer);
		order_start(o);
		return;
	}
	olog(o, LOG_INFO, "certificate valid until %s, issuer \"%s\", renewal from %s", until, issuer,
	     when);
	order_after(o, (double)(at - now), order_start);
}

static void write_certificate(struct acme_order *o, const struct http_client_result *r)
{
	struct acme_account *acc = o->acc;
	struct tls_cert c;
	char err[300], crt_name[320], key_name[320];
	size_t key_len = 0;

	char *key_pem = jws_key_to_pem(&o->cert_key, &key_len);
	if (!key_pem) {
		order_fail(o, -1, "cannot encode the certificate key");
		return;
	}
	/* the chain must parse, belong to our key and name every domain before it
	 * replaces anything on disk */
	if (tls_cert_parse_pem(r->body, r->body_len, "downloaded chain", key_pem, key_len,
			       "certificate key", &c, err, sizeof(err)) < 0) {
		wipe(key_pem, key_len);
		free(key_pem);
		order_fail(o, -1, "certificate: %s", err);
		return;
	}
	if (!cert_covers(&c, o)) {
		tls_cert_free(&c);
		wipe(key_pem, key_len);
		free(key_pem);
		order_fail(o, -1, "certificate: does not name every domain asked for");
		return;
	}
	snprintf(crt_name, sizeof(crt_name), "%s.crt", o->base);
	snprintf(key_name, sizeof(key_name), "%s.key", o->base);
	/* both written before either replaces anything: a full or read-only state_dir
	 * leaves the old pair as it was, never a new key beside the old chain. Key
	 * renamed first: a new chain on disk always has its key there already; a crash
	 * between the two renames leaves a pair that does not load, and the next start
	 * orders again */
	const struct fs_file pair[] = {
		{ key_name, key_pem, key_len, 0600 },
		{ crt_name, r->body, r->body_len, 0644 },
	};
	int rc = fs_write_atomic_set(acc->dir, pair, 2, err, sizeof(err));
	wipe(key_pem, key_len);
	free(key_pem);
	if (rc < 0) {
		tls_cert_free(&c);
		order_fail(o, -1, "cannot store the certificate: %s", err);
		return;
	}
	olog(o, LOG_INFO, "new certificate in %s/%s", acc->dir, crt_name);
	order_reset(o, false);
	o->failures = 0;
	o->account_retried = false;
	schedule_renewal(o, &c, true);
	tls_cert_free(&c);
	notify_new_certificate();
}

/* Starts an order now, or schedules one: the entry point of every attempt. */
static void order_start(struct acme_order *o)
{
	struct acme_account *acc = o->acc;

	order_reset(o, true);
	retire_sweep();
	if (acc->have_directory && acc->have_key && acc->kid) {
		new_order(o);
		return;
	}
	if (acc->setup_owner) {
		o->waiting_account = true;
		return;
	}
	account_setup(o);
}

/* At (re)load: use the stored certificate while it is good, else order. */
static void order_check_files(struct acme_order *o)
{
	char crt[PATH_MAX + 320], key[PATH_MAX + 320], err[400];
	struct tls_cert c;
	struct stat st;

	file_paths(o, crt, key, sizeof(crt));
	if (stat(crt, &st) < 0 && errno == ENOENT) {
		olog(o, LOG_INFO, "no certificate yet for router %s, ordering one from %s",
		     o->router ? o->router : "?", o->acc->cfg->ca);
		order_start(o);
		return;
	}
	if (tls_cert_load(o->base, crt, key, &c, err, sizeof(err)) < 0) {
		olog(o, LOG_ERROR, "stored certificate unusable (%s); ordering a new one", err);
		order_start(o);
		return;
	}
	if (!cert_covers(&c, o)) {
		olog(o, LOG_INFO, "stored certificate does not name every domain; ordering a new one");
		tls_cert_free(&c);
		order_start(o);
		return;
	}
	if (c.not_after <= time(NULL)) {
		olog(o, LOG_WARN, "stored certificate has expired; ordering a new one");
		tls_cert_free(&c);
		order_start(o);
		return;
	}
	schedule_renewal(o, &c, false);
	tls_cert_free(&c);
}

/* ---- acme_sync ---------------------------------------------------------------------------- */

static void account_free(struct acme_account *acc)
{
	for (struct acme_order **pp = &orders; *pp;) {
		struct acme_order *o = *pp;
		if (o->acc == acc) {
			*pp = o->next;
			order_free(o);
		} else {
			pp = &o->next;
		}
	}
	http_trust_free(&acc->trust);
	if (acc->have_key)
		jws_key_free(&acc->key);
	free(acc->new_nonce);
	free(acc->new_account);
	free(acc->new_order);
	free(acc->kid);
	free(acc->state_dir);
	acme_resolver_free(acc->cfg);
	free(acc);
}

static struct acme_account *account_get(const struct acme_resolver *res, const char *state_dir)
{
	struct acme_account **pp = &accounts;
	for (; *pp; pp = &(*pp)->next) {
		struct acme_account *acc = *pp;
		if (strcmp(acc->cfg->name, res->name) != 0)
			continue;
		if (acme_resolver_equal(acc->cfg, res) && strcmp(acc->state_dir, state_dir) == 0) {
			acc->used = true;
			if (!str_eq(acc->cfg->entrypoint, res->entrypoint)) {
				free(acc->cfg->entrypoint);
				acc->cfg->entrypoint = xstrdup(res->entrypoint);
			}
			return acc;
		}
		/* the settings changed: start over with them */
		log_info("acme %s: settings changed, restarting its orders", res->name);
		*pp = acc->next;
		account_free(acc);
		break;
	}
	struct acme_account *acc = calloc(1, sizeof(*acc));
	if (!acc)
		return NULL;
	char err[300];
	if (!(acc->cfg = acme_resolver_copy(res)) || !(acc->state_dir = strdup(state_dir)) ||
	    (size_t)snprintf(acc->dir, sizeof(acc->dir), "%s/acme/%s", state_dir, res->name) >=
		    sizeof(acc->dir)) {
		log_error("acme %s: out of memory or state_dir path too long", res->name);
		acme_resolver_free(acc->cfg);
		free(acc->state_dir);
		free(acc);
		return NULL;
	}
	const char *pem = res->ca_root_pem ? res->ca_root_pem : acme_roots_pem;
	size_t pem_len = res->ca_root_pem ? res->ca_root_len : acme_roots_pem_len;
	if (http_trust_add_pem(&acc->trust, pem, pem_len, err, sizeof(err)) < 0)
		log_error("acme %s: trust anchors: %s", res->name, err);
	acc->used = true;
	acc->next = accounts;
	accounts = acc;
	return acc;
}

static bool domains_equal(const struct acme_order *o, const char *const *d, size_t n)
{
	if (o->n_domains != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(o->domains[i], d[i]) != 0)
			return false;
	return true;
}

static void file_base(const char *first, char *out, size_t cap)
{
	size_t i = 0;
	for (; first[i] && i + 1 < cap; i++)
		out[i] = first[i] == '*' ? '_' : ascii_lower(first[i]);
	out[i] = '\0';
}

/* The names of every job of acc with this file base, in first-seen order, no
 * repeats: one certificate for routers sharing a first name. */
static char **merged_domains(const struct acme_job *jobs, size_t n, const struct acme_resolver *res,
			     const char *base, size_t *count)
{
	char **v = NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		char b[300];
		if (jobs[i].resolver != res || jobs[i].n_domains == 0)
			continue;
		file_base(jobs[i].domains[0], b, sizeof(b));
		if (strcmp(b, base) != 0)
			continue;
		for (size_t j = 0; j < jobs[i].n_domains && k < ACME_MAX_DOMAINS; j++) {
			bool dup = false;
			for (size_t m = 0; m < k && !dup; m++)
				dup = strcasecmp(v[m], jobs[i].domains[j]) == 0;
			if (dup)
				continue;
			char **nv = realloc(v, (k + 1) * sizeof(*v));
			if (!nv)
				break;
			v = nv;
			if (!(v[k] = strdup(jobs[i].domains[j])))
				break;
			for (char *p = v[k]; *p; p++)
				*p = ascii_lower(*p);
			k++;
		}
	}
	*count = k;
	return v;
}

void acme_sync(const struct acme_job *jobs, size_t n, const char *state_dir)
{
	if (forgotten)
		return;
	for (struct acme_account *a = accounts; a; a = a->next)
		a->used = false;
	for (struct acme_order *o = orders; o; o = o->next)
		o->used = false;

	for (size_t i = 0; i < n; i++) {
		const struct acme_job *j = &jobs[i];
		if (!j->resolver || j->n_domains == 0)
			continue;
		struct acme_account *acc = account_get(j->resolver, state_dir);
		if (!acc)
			continue;
		char base[300];
		file_base(j->domains[0], base, sizeof(base));
		size_t nd = 0;
		char **d = merged_domains(jobs, n, j->resolver, base, &nd);
		struct acme_order *o = orders;
		for (; o; o = o->next)
			if (o->acc == acc && strcmp(o->base, base) == 0)
				break;
		if (o && o->used) { /* merged into an earlier job's order */
			for (size_t k = 0; k < nd; k++)
				free(d[k]);
			free(d);
			continue;
		}
		if (o && !domains_equal(o, (const char *const *)d, nd)) {
			/* the names changed: a new order for the new set */
			struct acme_order **pp = &orders;
			while (*pp != o)
				pp = &(*pp)->next;
			*pp = o->next;
			order_free(o);
			o = NULL;
		}
		if (o) {
			for (size_t k = 0; k < nd; k++)
				free(d[k]);
			free(d);
			o->used = true;
			free(o->router);
			o->router = xstrdup(j->router);
			continue;
		}
		if (!(o = calloc(1, sizeof(*o)))) {
			for (size_t k = 0; k < nd; k++)
				free(d[k]);
			free(d);
			continue;
		}
		o->acc = acc;
		o->router = xstrdup(j->router);
		o->domains = d;
		o->n_domains = nd;
		o->ch.type = -1;
		o->used = true;
		snprintf(o->base, sizeof(o->base), "%s", base);
		ev_init(&o->timer, on_timer);
		o->timer.data = o;
		o->next = orders;
		orders = o;
		order_check_files(o);
	}

	for (struct acme_order **pp = &orders; *pp;) {
		struct acme_order *o = *pp;
		if (!o->used || !o->acc->used) {
			*pp = o->next;
			order_free(o);
		} else {
			pp = &o->next;
		}
	}
	for (struct acme_account **pp = &accounts; *pp;) {
		struct acme_account *a = *pp;
		if (!a->used) {
			*pp = a->next;
			account_free(a);
		} else {
			pp = &a->next;
		}
	}
}

void acme_forget(void)
{
	forgotten = true; /* the copies stay reachable from the statics: no leak reports */
}

void acme_shutdown(void)
{
	if (forgotten)
		return;
	if (server.loop)
		ev_timer_stop(loop(), &notify_timer);
	while (accounts) {
		struct acme_account *a = accounts;
		accounts = a->next;
		account_free(a);
	}
	while (retired_certs) {
		struct retired *r = retired_certs;
		retired_certs = r->next;
		tls_cert_free(r->cert);
		free(r->cert);
		free(r);
	}
}
