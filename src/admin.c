/* admin.c - the admin listener's answers (SPEC §3 [admin]): liveness and readiness,
 * the health document of draft-inadarei-api-health-check, the Prometheus
 * exposition, the JSON API the dashboard reads, and the dashboard itself. */
#include "admin.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "dashboard.h"
#include "metrics.h"
#include "server.h"
#include "snapshot.h"
#include "strbuf.h"
#include "timefmt.h"
#include "tls.h"
#include "tls_cert.h"
#include "upstream.h"
#include "utf8.h"

#ifndef EDGEPROXY_VERSION
#define EDGEPROXY_VERSION "dev"
#endif

#define TEXT_PLAIN "text/plain; charset=utf-8"
#define JSON "application/json"

/* A certificate closer than this to its expiry makes the health check warn. */
#define CERT_WARN_SECONDS (14 * 86400)

/* draft-inadarei-api-health-check §3.1: pass, warn, fail, in growing severity. */
enum health { HEALTH_PASS, HEALTH_WARN, HEALTH_FAIL };
static const char *const health_names[] = { "pass", "warn", "fail" };

/* ---- JSON helpers -------------------------------------------------------------- */

/* The inside of a JSON string (RFC 8259 §7). Bytes that are not well-formed UTF-8
 * become U+FFFD: one stray byte in a configuration value must not make the whole
 * document unparseable. */
static void json_escape(struct strbuf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	while (p < end) {
		const unsigned char *run = p;
		while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
			p++;
		strbuf_put(b, (const char *)run, (size_t)(p - run));
		if (p == end)
			break;
		if (*p == '"' || *p == '\\') {
			char esc[2] = { '\\', (char)*p++ };
			strbuf_put(b, esc, 2);
		} else if (*p < 0x20) {
			char esc[6] = { '\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15] };
			strbuf_put(b, esc, 6);
			p++;
		} else {
			size_t n = utf8_seq_len(p, (size_t)(end - p));
			if (n) {
				strbuf_put(b, (const char *)p, n);
				p += n;
			} else {
				strbuf_str(b, "\\ufffd");
				p++;
			}
		}
	}
}

static void json_text(struct strbuf *b, const char *s)
{
	json_escape(b, s, strlen(s));
}

static void json_str(struct strbuf *b, const char *s)
{
	if (!s) {
		strbuf_str(b, "null");
		return;
	}
	strbuf_put(b, "\"", 1);
	json_text(b, s);
	strbuf_put(b, "\"", 1);
}

/* "key": with the separator before it unless first. */
static void json_key(struct strbuf *b, const char *key, bool *first)
{
	if (!*first)
		strbuf_put(b, ",", 1);
	*first = false;
	json_str(b, key);
	strbuf_put(b, ":", 1);
}

/* A comma list of the configuration as a JSON array of its items. */
static void json_list(struct strbuf *b, const char *list)
{
	strbuf_put(b, "[", 1);
	bool first = true;
	for (const char *p = list; p && *p;) {
		p += strspn(p, ", \t");
		size_t n = strcspn(p, ", \t");
		if (!n)
			break;
		if (!first)
			strbuf_put(b, ",", 1);
		first = false;
		strbuf_put(b, "\"", 1);
		json_escape(b, p, n);
		strbuf_put(b, "\"", 1);
		p += n;
	}
	strbuf_put(b, "]", 1);
}

/* ---- state of services and certificates ------------------------------------- */

struct service_state {
	size_t up, total;
	enum health health;
};

/* A proxy service passes with every server up, warns with some, fails with none;
 * the built-in backends (no servers) always pass. */
static struct service_state service_state(const struct service_rt *svc)
{
	struct service_state st = { 0, 0, HEALTH_PASS };
	if (!svc->group)
		return st;
	st.total = svc->group->n;
	for (size_t i = 0; i < st.total; i++)
		if (upstream_is_up(&svc->group->servers[i]))
			st.up++;
	st.health = st.up == st.total ? HEALTH_PASS : st.up ? HEALTH_WARN : HEALTH_FAIL;
	return st;
}

/* Why a server is not taking requests; NULL when it is up. */
static const char *down_reason(const struct upstream_server *s)
{
	if (upstream_is_up(s))
		return NULL;
	if (s->check_down)
		return "health check failed";
	if (s->weight <= 0)
		return "weight 0";
	return "connection failed";
}

static const char *const service_types[] = { "proxy", "static", "hello" };
static const char *const balance_names[] = { "round_robin", "least_conn", "ip_hash" };

static const char *service_type(const struct conf_service *c)
{
	return c->type >= 0 && c->type < 3 ? service_types[c->type] : "unknown";
}

static long long days_left(time_t not_after, time_t now)
{
	long long secs = (long long)not_after - (long long)now;
	return secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
}

static enum health cert_health(time_t not_after, time_t now)
{
	if (not_after <= now)
		return HEALTH_FAIL;
	return (long long)not_after - (long long)now < CERT_WARN_SECONDS ? HEALTH_WARN : HEALTH_PASS;
}

/* Every certificate of the snapshot once: the [cert] ones, then the generated default. */
static size_t cert_count(const struct snapshot *snap)
{
	if (!snap || !snap->tls)
		return 0;
	return snap->tls->n + (snap->tls->fallback_owned && snap->tls->fallback ? 1 : 0);
}

static const struct tls_cert *cert_at(const struct snapshot *snap, size_t i)
{
	return i < snap->tls->n ? snap->tls->certs[i] : snap->tls->fallback;
}

static const char *cert_name(const struct tls_cert *c)
{
	return c->name ? c->name : "default";
}

/* ---- /api/routers, /api/services, /api/certs --------------------------------- */

static void api_routers(const struct snapshot *snap, struct strbuf *b)
{
	strbuf_put(b, "[", 1);
	const struct config *cfg = snap ? snap->cfg : NULL;
	for (size_t i = 0; cfg && i < cfg->n_routers; i++) {
		const struct conf_router *r = &cfg->routers[i];
		bool first = true;
		strbuf_str(b, i ? ",{" : "{");
		json_key(b, "name", &first);
		json_str(b, r->name);
		json_key(b, "rule", &first);
		json_str(b, r->rule);
		json_key(b, "entrypoints", &first);
		if (r->entrypoints) {
			json_list(b, r->entrypoints);
		} else {
			strbuf_put(b, "[", 1);
			bool sep = false;
			for (size_t j = 0; j < cfg->n_entrypoints; j++) {
				if (cfg->entrypoints[j].is_admin)
					continue; /* routers never serve on the admin listener */
				if (sep)
					strbuf_put(b, ",", 1);
				json_str(b, cfg->entrypoints[j].name);
				sep = true;
			}
			strbuf_put(b, "]", 1);
		}
		json_key(b, "service", &first);
		json_str(b, r->service);
		json_key(b, "priority", &first);
		/* SPEC §3 [router]: the default priority is the rule's length */
		strbuf_printf(b, "%lld", (long long)(r->priority_set ? r->priority : (int64_t)strlen(r->rule)));
		json_key(b, "middlewares", &first);
		json_list(b, r->middlewares);
		json_key(b, "tls_resolver", &first);
		json_str(b, r->tls_resolver);
		strbuf_put(b, "}", 1);
	}
	strbuf_put(b, "]", 1);
}

static void api_server(struct strbuf *b, const struct conf_service *c, const struct upstream_server *s)
{
	bool first = true;
	bool up = upstream_is_up(s);
	strbuf_put(b, "{", 1);
	json_key(b, "url", &first);
	json_str(b, s->conf->url);
	json_key(b, "weight", &first);
	strbuf_printf(b, "%lld", (long long)s->weight);
	json_key(b, "backup", &first);
	strbuf_str(b, s->backup ? "true" : "false");
	json_key(b, "up", &first);
	strbuf_str(b, up ? "true" : "false");
	json_key(b, "state", &first);
	json_str(b, up ? "up" : "down");
	json_key(b, "down_reason", &first);
	json_str(b, down_reason(s));
	json_key(b, "check_status", &first);
	/* null: no active checks configured; 0: the last check got no answer */
	if (c->health_path)
		strbuf_printf(b, "%d", s->last_check_status);
	else
		strbuf_str(b, "null");
	json_key(b, "active", &first);
	strbuf_printf(b, "%u", s->active);
	json_key(b, "idle", &first);
	strbuf_printf(b, "%u", s->n_idle);
	strbuf_put(b, "}", 1);
}

static void api_services(const struct snapshot *snap, struct strbuf *b)
{
	strbuf_put(b, "[", 1);
	for (size_t i = 0; snap && i < snap->n_services; i++) {
		const struct service_rt *svc = &snap->services[i];
		const struct conf_service *c = svc->conf;
		struct service_state st = service_state(svc);
		uint64_t requests, errors;
		metrics_service_totals(c->name, &requests, &errors);
		bool first = true;
		strbuf_str(b, i ? ",{" : "{");
		json_key(b, "name", &first);
		json_str(b, c->name);
		json_key(b, "type", &first);
		json_str(b, service_type(c));
		json_key(b, "balance", &first);
		json_str(b, svc->group && c->balance >= 0 && c->balance < 3 ? balance_names[c->balance] : NULL);
		json_key(b, "health_path", &first);
		json_str(b, c->health_path);
		json_key(b, "status", &first);
		json_str(b, health_names[st.health]);
		json_key(b, "servers_up", &first);
		strbuf_printf(b, "%zu", st.up);
		json_key(b, "requests", &first);
		strbuf_printf(b, "%llu", (unsigned long long)requests);
		json_key(b, "errors", &first);
		strbuf_printf(b, "%llu", (unsigned long long)errors);
		json_key(b, "servers", &first);
		strbuf_put(b, "[", 1);
		for (size_t j = 0; svc->group && j < svc->group->n; j++) {
			if (j)
				strbuf_put(b, ",", 1);
			api_server(b, c, &svc->group->servers[j]);
		}
		strbuf_str(b, "]}");
	}
	strbuf_put(b, "]", 1);
}

static void api_certs(const struct snapshot *snap, struct strbuf *b, time_t now)
{
	strbuf_put(b, "[", 1);
	for (size_t i = 0; i < cert_count(snap); i++) {
		const struct tls_cert *c = cert_at(snap, i);
		char nb[TIMEFMT_RFC3339_LEN + 1], na[TIMEFMT_RFC3339_LEN + 1];
		timefmt_rfc3339(c->not_before, nb);
		timefmt_rfc3339(c->not_after, na);
		bool first = true;
		strbuf_str(b, i ? ",{" : "{");
		json_key(b, "name", &first);
		json_str(b, cert_name(c));
		json_key(b, "names", &first);
		strbuf_put(b, "[", 1);
		for (size_t j = 0; j < c->n_names; j++) {
			if (j)
				strbuf_put(b, ",", 1);
			json_str(b, c->names[j]);
		}
		strbuf_put(b, "]", 1);
		json_key(b, "not_before", &first);
		json_str(b, nb);
		json_key(b, "not_after", &first);
		json_str(b, na);
		json_key(b, "days_left", &first);
		strbuf_printf(b, "%lld", days_left(c->not_after, now));
		json_key(b, "status", &first);
		json_str(b, health_names[cert_health(c->not_after, now)]);
		json_key(b, "source", &first);
		json_str(b, i < snap->tls->n ? "cert" : "default");
		json_key(b, "default", &first);
		strbuf_str(b, c == snap->tls->fallback ? "true" : "false");
		strbuf_put(b, "}", 1);
	}
	strbuf_put(b, "]", 1);
}

/* ---- /.well-known/health --------------------------------------------------------- */

/* One entry of "checks" (draft-inadarei-api-health-check §4): the key, then an array
 * with one object. time is when the value was observed. */
static void check_begin(struct strbuf *b, bool *first, const char *kind, const char *name)
{
	if (!*first)
		strbuf_put(b, ",", 1);
	*first = false;
	strbuf_put(b, "\"", 1);
	json_text(b, kind);
	strbuf_put(b, ":", 1);
	json_text(b, name);
	strbuf_str(b, "\":[{\"componentId\":");
	json_str(b, name);
}

static enum health health_services(const struct snapshot *snap, struct strbuf *b, bool *first,
				   const char *now_iso)
{
	enum health worst = HEALTH_PASS;
	for (size_t i = 0; i < snap->n_services; i++) {
		const struct service_rt *svc = &snap->services[i];
		struct service_state st = service_state(svc);
		if (st.health > worst)
			worst = st.health;
		check_begin(b, first, "service", svc->conf->name);
		strbuf_str(b, ",\"componentType\":\"service\",\"status\":");
		json_str(b, health_names[st.health]);
		if (svc->group)
			strbuf_printf(b, ",\"observedValue\":%zu,\"observedUnit\":\"servers up\"", st.up);
		if (st.health != HEALTH_PASS) {
			/* §4.9 output: why it is not passing */
			strbuf_printf(b, ",\"output\":\"%zu of %zu servers up; down:", st.up, st.total);
			for (size_t j = 0; j < svc->group->n; j++) {
				const struct upstream_server *s = &svc->group->servers[j];
				const char *why = down_reason(s);
				if (!why)
					continue;
				strbuf_put(b, " ", 1);
				json_text(b, s->conf->url);
				strbuf_put(b, " (", 2);
				json_text(b, why);
				strbuf_put(b, ")", 1);
			}
			strbuf_put(b, "\"", 1);
		}
		strbuf_str(b, ",\"time\":");
		json_str(b, now_iso);
		strbuf_str(b, "}]");
	}
	return worst;
}

static enum health health_certs(const struct snapshot *snap, struct strbuf *b, bool *first, time_t now,
				const char *now_iso)
{
	enum health worst = HEALTH_PASS;
	for (size_t i = 0; i < cert_count(snap); i++) {
		const struct tls_cert *c = cert_at(snap, i);
		enum health h = cert_health(c->not_after, now);
		char na[TIMEFMT_RFC3339_LEN + 1];
		timefmt_rfc3339(c->not_after, na);
		if (h > worst)
			worst = h;
		check_begin(b, first, "certificate", cert_name(c));
		strbuf_str(b, ",\"componentType\":\"certificate\",\"status\":");
		json_str(b, health_names[h]);
		strbuf_printf(b, ",\"observedValue\":%lld,\"observedUnit\":\"days\"", days_left(c->not_after, now));
		if (h != HEALTH_PASS)
			strbuf_printf(b, ",\"output\":\"%s %s\"", h == HEALTH_FAIL ? "expired on" : "expires on", na);
		strbuf_str(b, ",\"notAfter\":");
		json_str(b, na);
		strbuf_str(b, ",\"time\":");
		json_str(b, now_iso);
		strbuf_str(b, "}]");
	}
	return worst;
}

/* The overall status is the worst of the checks; not being ready (or having no
 * configuration) fails. HTTP 503 for fail, else 200 (§3 recommends 2xx for warn). */
static int health_doc(const struct snapshot *snap, bool ready, struct strbuf *b)
{
	time_t now = time(NULL);
	char now_iso[TIMEFMT_RFC3339_LEN + 1];
	timefmt_rfc3339(now, now_iso);
	struct strbuf checks = { 0 };
	bool first = true;
	enum health worst = HEALTH_PASS;
	const char *output = NULL;
	if (snap) {
		enum health hs = health_services(snap, &checks, &first, now_iso);
		enum health hc = health_certs(snap, &checks, &first, now, now_iso);
		worst = hs > hc ? hs : hc;
	} else {
		output = "no configuration loaded";
		worst = HEALTH_FAIL;
	}
	if (!ready) {
		output = output ? output : "not ready: still starting";
		worst = HEALTH_FAIL;
	}
	strbuf_str(b, "{\"status\":");
	json_str(b, health_names[worst]);
	strbuf_str(b, ",\"version\":\"" EDGEPROXY_VERSION "\",\"serviceId\":\"edgeproxy\",\"description\":\"edgeproxy edge router\"");
	if (output) {
		strbuf_str(b, ",\"output\":");
		json_str(b, output);
	}
	strbuf_str(b, ",\"checks\":{");
	if (checks.len)
		strbuf_put(b, checks.p, checks.len);
	strbuf_str(b, "}}");
	if (checks.failed)
		b->failed = true;
	strbuf_free(&checks);
	return worst == HEALTH_FAIL ? 503 : 200;
}

/* ---- dispatch ----------------------------------------------------------------------- */

static void answer_text(struct admin_response *out, int status, const char *text)
{
	size_t n = strlen(text);
	out->status = status;
	out->content_type = TEXT_PLAIN;
	out->body = malloc(n ? n : 1);
	if (!out->body) {
		out->body_len = 0;
		out->status = 500;
		return;
	}
	memcpy(out->body, text, n);
	out->body_len = n;
}

static void answer_buf(struct admin_response *out, int status, const char *type, struct strbuf *b)
{
	if (b->failed) {
		strbuf_free(b);
		answer_text(out, 500, "500 internal server error\n");
		return;
	}
	out->status = status;
	out->content_type = type;
	out->body = strbuf_take(b, &out->body_len);
}

static bool path_is(struct slice path, const char *s)
{
	return slice_eq(path, slice_cstr(s));
}

void admin_handle(const struct snapshot *snap, struct slice method, struct slice path, bool ready,
		  struct admin_response *out)
{
	memset(out, 0, sizeof(*out));
	const char *q = path.len ? memchr(path.p, '?', path.len) : NULL;
	if (q)
		path.len = (size_t)(q - path.p);
	/* the switches of [admin]; without the section (tests, probes) their defaults */
	const struct conf_admin *conf = snap && snap->cfg->admin.enabled ? &snap->cfg->admin : NULL;
	bool metrics_on = !conf || conf->metrics;
	bool dashboard_on = !conf || conf->dashboard;

	static const char *const known[] = { "/ping",        "/healthz",      "/readyz",   "/.well-known/health",
					     "/api/routers", "/api/services", "/api/certs" };
	bool found = (path_is(path, "/metrics") && metrics_on) || (path_is(path, "/") && dashboard_on);
	for (size_t i = 0; !found && i < sizeof(known) / sizeof(known[0]); i++)
		found = path_is(path, known[i]);
	if (!found) {
		answer_text(out, 404, "404 page not found\n");
		return;
	}
	/* RFC 9110 §15.5.6: 405 names the methods the resource has in Allow */
	if (!slice_eq(method, SLICE_LIT("GET")) && !slice_eq(method, SLICE_LIT("HEAD"))) {
		answer_text(out, 405, "405 method not allowed\n");
		out->allow = "GET, HEAD";
		return;
	}

	struct strbuf b = { 0 };
	if (path_is(path, "/ping") || path_is(path, "/healthz")) {
		answer_text(out, 200, "OK");
	} else if (path_is(path, "/readyz")) {
		if (ready && snap)
			answer_text(out, 200, "OK");
		else
			answer_text(out, 503, "not ready\n");
	} else if (path_is(path, "/.well-known/health")) {
		int status = health_doc(snap, ready, &b);
		answer_buf(out, status, "application/health+json", &b);
	} else if (path_is(path, "/metrics")) {
		metrics_render(snap, &b);
		answer_buf(out, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
	} else if (path_is(path, "/api/routers")) {
		api_routers(snap, &b);
		answer_buf(out, 200, JSON, &b);
	} else if (path_is(path, "/api/services")) {
		api_services(snap, &b);
		answer_buf(out, 200, JSON, &b);
	} else if (path_is(path, "/api/certs")) {
		api_certs(snap, &b, time(NULL));
		answer_buf(out, 200, JSON, &b);
	} else {
		strbuf_put(&b, dashboard_html, dashboard_html_len);
		answer_buf(out, 200, "text/html; charset=utf-8", &b);
	}
}
