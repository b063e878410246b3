/* test_admin.c - the admin listener's answers: /ping, /healthz, /readyz, the
 * health document (status logic, 503 on fail, valid JSON), /metrics and its switch,
 * the JSON API (valid, with the configuration's and servers' state), the embedded
 * dashboard (and that it matches src/dashboard.html), 404 and 405. Run from the
 * repository root. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "dashboard.h"
#include "json_check.h"
#include "metrics.h"
#include "snap_fixture.h"
#include "test.h"
#include "tls.h"
#include "tls_cert.h"
#include "upstream.h"

/* A NUL-terminated copy of the body, for strstr. */
struct answer {
	int status;
	const char *type, *allow;
	char *body;
	size_t len;
};

static struct answer ask(const struct snapshot *snap, const char *method, const char *path, bool ready)
{
	struct admin_response r;
	admin_handle(snap, slice_cstr(method), slice_cstr(path), ready, &r);
	struct answer a = { r.status, r.content_type, r.allow, malloc(r.body_len + 1), r.body_len };
	if (a.body) {
		if (r.body_len)
			memcpy(a.body, r.body, r.body_len);
		a.body[r.body_len] = '\0';
	}
	free(r.body);
	return a;
}

static bool has(const struct answer *a, const char *needle)
{
	return a->body && strstr(a->body, needle) != NULL;
}

static bool type_is(const struct answer *a, const char *prefix)
{
	return a->type && strncmp(a->type, prefix, strlen(prefix)) == 0;
}

/* Two entry points (one TLS), two [cert]s of which one has expired, a proxy service
 * with health checks, a hello service, and two routers. */
static const char main_ini[] =
	"[global]\n"
	"state_dir = {tmp}/state\n"
	"[entrypoint web]\n"
	"listen = 127.0.0.1:18080\n"
	"[entrypoint websecure]\n"
	"listen = 127.0.0.1:18443\n"
	"tls = on\n"
	"[tls]\n"
	"default_cert = site\n"
	"[cert site]\n"
	"cert_file = {fix}/chain.pem\n"
	"key_file = {fix}/ec.key\n"
	"[cert old]\n"
	"cert_file = {fix}/expired.crt\n"
	"key_file = {fix}/expired.key\n"
	"[router api]\n"
	"rule = Host(`a.example.com`) && Header(`X-Q`, `a\"b\\c`)\n"
	"service = app\n"
	"entrypoints = web\n"
	"[router rest]\n"
	"rule = PathPrefix(`/`)\n"
	"service = hi\n"
	"priority = 1\n"
	"[service app]\n"
	"server = http://127.0.0.1:18001\n"
	"server = http://127.0.0.1:18002 weight=3 backup\n"
	"health_path = /health\n"
	"[service hi]\n"
	"type = hello\n";

/* No TLS; load_off() switches [admin] metrics and dashboard off. */
static const char off_ini[] = "[global]\n"
			      "state_dir = {tmp}/state\n"
			      "[entrypoint web]\n"
			      "listen = 127.0.0.1:18080\n"
			      "[router r]\n"
			      "rule = PathPrefix(`/`)\n"
			      "service = app\n"
			      "[service app]\n"
			      "server = http://127.0.0.1:18001\n";

static struct snapshot *load(const char *ini)
{
	struct snapshot *s = fixture_snapshot(ini);
	CHECK(s != NULL);
	if (!s)
		exit(1); /* every test below needs its snapshot */
	return s;
}

/* As if the file said [admin] listen = ..., metrics = off, dashboard = off. (The
 * section is set here rather than parsed so that these tests do not depend on the
 * listener's own configuration checks.) */
static struct snapshot *load_off(void)
{
	struct snapshot *s = load(off_ini);
	s->cfg->admin.enabled = true;
	s->cfg->admin.metrics = false;
	s->cfg->admin.dashboard = false;
	return s;
}

static void test_probes(void)
{
	struct snapshot *snap = load(main_ini);
	struct answer a = ask(snap, "GET", "/ping", true);
	CHECK(a.status == 200 && a.len == 2 && strcmp(a.body, "OK") == 0 && type_is(&a, "text/plain"));
	free(a.body);
	a = ask(snap, "HEAD", "/ping", true); /* the length of the GET body; the caller sends none */
	CHECK(a.status == 200 && a.len == 2);
	free(a.body);
	a = ask(snap, "GET", "/healthz", false); /* liveness does not wait for readiness */
	CHECK(a.status == 200 && strcmp(a.body, "OK") == 0);
	free(a.body);
	a = ask(snap, "GET", "/readyz", true);
	CHECK(a.status == 200 && strcmp(a.body, "OK") == 0);
	free(a.body);
	a = ask(snap, "GET", "/readyz", false);
	CHECK(a.status == 503);
	free(a.body);
	a = ask(NULL, "GET", "/readyz", true); /* no configuration */
	CHECK(a.status == 503);
	free(a.body);
	a = ask(snap, "GET", "/ping?probe=1", true); /* the query is not part of the path */
	CHECK(a.status == 200);
	free(a.body);
	snapshot_unref(snap);
}

static void test_not_found_and_methods(void)
{
	struct snapshot *snap = load(main_ini);
	static const char *const missing[] = { "/nope", "/pingx", "/api/routers/", "/api", "/API/routers",
					       "//ping", "/index.html", "", "/metrics/" };
	for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
		struct answer a = ask(snap, "GET", missing[i], true);
		CHECKF(a.status == 404 && strcmp(a.body, "404 page not found\n") == 0 && type_is(&a, "text/plain"),
		       "%s -> %d", missing[i], a.status);
		free(a.body);
	}
	static const char *const methods[] = { "POST", "PUT", "DELETE", "OPTIONS", "get", "PATCH" };
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		struct answer a = ask(snap, methods[i], "/api/services", true);
		CHECKF(a.status == 405 && a.allow && strcmp(a.allow, "GET, HEAD") == 0, "%s -> %d", methods[i],
		       a.status);
		free(a.body);
	}
	struct answer a = ask(snap, "POST", "/nope", true); /* nothing there to allow anything */
	CHECK(a.status == 404 && !a.allow);
	free(a.body);
	a = ask(snap, "GET", "/ping", true);
	CHECK(!a.allow);
	free(a.body);
	snapshot_unref(snap);
}

static void test_api_routers(void)
{
	struct snapshot *snap = load(main_ini);
	/* the middleware list as written (its sections are compiled elsewhere) */
	snap->cfg->routers[0].middlewares = strdup("secure, limit");
	struct answer a = ask(snap, "GET", "/api/routers", true);
	CHECK(a.status == 200 && type_is(&a, "application/json"));
	CHECKF(json_valid(a.body, a.len), "%s", a.body);
	CHECK(a.body[0] == '[');
	CHECK(has(&a, "{\"name\":\"api\",\"rule\":\"Host(`a.example.com`) && Header(`X-Q`, `a\\\"b\\\\c`)\""));
	CHECK(has(&a, "\"entrypoints\":[\"web\"],\"service\":\"app\""));
	CHECK(has(&a, "\"middlewares\":[\"secure\",\"limit\"]"));
	/* SPEC: the default priority is the rule's length */
	size_t rule_len = strlen("Host(`a.example.com`) && Header(`X-Q`, `a\"b\\c`)");
	char want[64];
	snprintf(want, sizeof(want), "\"priority\":%zu,", rule_len);
	CHECKF(has(&a, want), "%s in %s", want, a.body);
	/* no entrypoints key: all of them */
	CHECK(has(&a, "{\"name\":\"rest\",\"rule\":\"PathPrefix(`/`)\",\"entrypoints\":[\"web\",\"websecure\"],"
		      "\"service\":\"hi\",\"priority\":1,\"middlewares\":[]"));
	free(a.body);

	/* a byte that is not UTF-8 and a control character still give valid JSON */
	char *rule = snap->cfg->routers[1].rule; /* PathPrefix(`/`) */
	rule[12] = (char)0xff;
	rule[11] = '\x01';
	a = ask(snap, "GET", "/api/routers", true);
	CHECKF(json_valid(a.body, a.len), "%s", a.body);
	CHECK(has(&a, "\"rule\":\"PathPrefix(\\u0001\\ufffd`)\""));
	free(a.body);

	a = ask(NULL, "GET", "/api/routers", true);
	CHECK(a.status == 200 && strcmp(a.body, "[]") == 0);
	free(a.body);
	snapshot_unref(snap);
}

static void test_api_services(void)
{
	metrics_reset();
	struct snapshot *snap = load(main_ini);
	metrics_request("web", "api", "app", SLICE_LIT("GET"), 200, 0.01, false);
	metrics_request("web", "api", "app", SLICE_LIT("GET"), 200, 0.01, false);
	metrics_request("web", "api", "app", SLICE_LIT("POST"), 502, 0.01, false);
	struct upstream_group *g = snap->services[0].group;
	g->servers[0].last_check_status = 200;
	g->servers[0].active = 2;

	struct answer a = ask(snap, "GET", "/api/services", true);
	CHECK(a.status == 200 && type_is(&a, "application/json"));
	CHECKF(json_valid(a.body, a.len), "%s", a.body);
	CHECKF(has(&a, "{\"name\":\"app\",\"type\":\"proxy\",\"balance\":\"round_robin\",\"health_path\":\"/health\","
		       "\"status\":\"pass\",\"servers_up\":2,\"requests\":3,\"errors\":1,\"servers\":["),
	       "%s", a.body);
	CHECK(has(&a, "{\"url\":\"http://127.0.0.1:18001\",\"weight\":1,\"backup\":false,\"up\":true,\"state\":\"up\","
		      "\"down_reason\":null,\"check_status\":200,\"active\":2,\"idle\":0}"));
	CHECK(has(&a, "\"url\":\"http://127.0.0.1:18002\",\"weight\":3,\"backup\":true,\"up\":true"));
	CHECK(has(&a, "{\"name\":\"hi\",\"type\":\"hello\",\"balance\":null,\"health_path\":null,\"status\":\"pass\","
		      "\"servers_up\":0,\"requests\":0,\"errors\":0,\"servers\":[]}"));
	free(a.body);

	/* an active check takes one server down, a connection failure the other */
	g->servers[0].check_down = true;
	g->servers[0].last_check_status = 500;
	g->servers[1].down_until = ev_now(server.loop) + 10;
	a = ask(snap, "GET", "/api/services", true);
	CHECK(json_valid(a.body, a.len));
	CHECK(has(&a, "\"status\":\"fail\",\"servers_up\":0"));
	CHECK(has(&a, "\"up\":false,\"state\":\"down\",\"down_reason\":\"health check failed\",\"check_status\":500"));
	CHECK(has(&a, "\"up\":false,\"state\":\"down\",\"down_reason\":\"connection failed\""));
	free(a.body);
	snapshot_unref(snap);
	metrics_reset();
}

static void test_api_certs(void)
{
	struct snapshot *snap = load(main_ini);
	struct answer a = ask(snap, "GET", "/api/certs", true);
	CHECK(a.status == 200 && type_is(&a, "application/json"));
	CHECKF(json_valid(a.body, a.len), "%s", a.body);
	long long days = (4949406174LL - (long long)time(NULL)) / 86400;
	char want[512];
	snprintf(want, sizeof(want),
		 "{\"name\":\"site\",\"names\":[\"a.example.com\",\"*.wild.example\"],\"not_before\":\"2026-11-27T19:02:54Z\","
		 "\"not_after\":\"2126-11-03T19:02:54Z\",\"days_left\":%lld,\"status\":\"pass\",\"source\":\"cert\","
		 "\"default\":true}",
		 days);
	CHECKF(has(&a, want), "%s in %s", want, a.body);
	CHECK(has(&a, "{\"name\":\"old\",\"names\":[\"localhost\"],\"not_before\":\"2020-01-01T00:00:00Z\","
		      "\"not_after\":\"2021-01-01T00:00:00Z\",\"days_left\":-"));
	CHECK(has(&a, "\"status\":\"fail\",\"source\":\"cert\",\"default\":false}"));
	free(a.body);

	/* without a TLS entry point there is no certificate store */
	struct snapshot *plain = load_off();
	a = ask(plain, "GET", "/api/certs", true);
	CHECK(a.status == 200 && strcmp(a.body, "[]") == 0);
	free(a.body);
	snapshot_unref(plain);
	snapshot_unref(snap);
}

static void test_api_certs_generated_default(void)
{
	struct snapshot *snap = load("[global]\nstate_dir = {tmp}/state2\n[entrypoint s]\nlisten = 127.0.0.1:18443\n"
				     "tls = on\n[router r]\nrule = PathPrefix(`/`)\nservice = hi\n"
				     "[service hi]\ntype = hello\n");
	struct answer a = ask(snap, "GET", "/api/certs", true);
	CHECK(json_valid(a.body, a.len));
	CHECKF(has(&a, "{\"name\":\"default\",\"names\":[\"localhost\"]") && has(&a, "\"source\":\"default\",\"default\":true}"),
	       "%s", a.body);
	free(a.body);
	a = ask(snap, "GET", "/.well-known/health", true);
	CHECK(a.status == 200 && has(&a, "\"certificate:default\":[{\"componentId\":\"default\""));
	free(a.body);
	snapshot_unref(snap);
}

static void test_health(void)
{
	struct snapshot *snap = load(main_ini);
	/* the expired [cert old] fails the whole document */
	struct answer a = ask(snap, "GET", "/.well-known/health", true);
	CHECK(a.status == 503 && a.type && strcmp(a.type, "application/health+json") == 0);
	CHECKF(json_valid(a.body, a.len), "%s", a.body);
	CHECK(strncmp(a.body, "{\"status\":\"fail\",\"version\":\"", 28) == 0);
	CHECK(has(&a, "\"checks\":{\"service:app\":[{\"componentId\":\"app\",\"componentType\":\"service\",\"status\":\"pass\","
		      "\"observedValue\":2,\"observedUnit\":\"servers up\",\"time\":\""));
	CHECK(has(&a, "\"service:hi\":[{\"componentId\":\"hi\",\"componentType\":\"service\",\"status\":\"pass\",\"time\""));
	CHECK(has(&a, "\"certificate:site\":[{\"componentId\":\"site\",\"componentType\":\"certificate\",\"status\":\"pass\","
		      "\"observedValue\":"));
	CHECK(has(&a, "\"certificate:old\":[{\"componentId\":\"old\",\"componentType\":\"certificate\",\"status\":\"fail\","
		      "\"observedValue\":-"));
	CHECK(has(&a, "\"output\":\"expired on 2021-01-01T00:00:00Z\",\"notAfter\":\"2021-01-01T00:00:00Z\""));
	free(a.body);

	/* HEAD answers alike */
	a = ask(snap, "HEAD", "/.well-known/health", true);
	CHECK(a.status == 503 && a.len > 0);
	free(a.body);

	/* a certificate 10 days from expiry warns, one 20 days away passes */
	struct tls_cert *old = snap->tls->certs[1];
	time_t saved = old->not_after;
	old->not_after = time(NULL) + 10 * 86400 + 60;
	a = ask(snap, "GET", "/.well-known/health", true);
	CHECKF(a.status == 200 && strncmp(a.body, "{\"status\":\"warn\"", 16) == 0, "%d %s", a.status, a.body);
	CHECK(has(&a, "\"certificate:old\":[{\"componentId\":\"old\",\"componentType\":\"certificate\",\"status\":\"warn\","
		      "\"observedValue\":10,\"observedUnit\":\"days\",\"output\":\"expires on "));
	free(a.body);
	old->not_after = time(NULL) + 20 * 86400;
	a = ask(snap, "GET", "/.well-known/health", true);
	CHECK(a.status == 200 && strncmp(a.body, "{\"status\":\"pass\"", 16) == 0);
	CHECK(!has(&a, "\"output\""));
	free(a.body);

	/* one of two servers down: the service warns; both down: it fails */
	struct upstream_group *g = snap->services[0].group;
	g->servers[0].check_down = true;
	a = ask(snap, "GET", "/.well-known/health", true);
	CHECK(a.status == 200 && strncmp(a.body, "{\"status\":\"warn\"", 16) == 0);
	CHECKF(has(&a, "\"status\":\"warn\",\"observedValue\":1,\"observedUnit\":\"servers up\","
		       "\"output\":\"1 of 2 servers up; down: http://127.0.0.1:18001 (health check failed)\""),
	       "%s", a.body);
	CHECK(json_valid(a.body, a.len));
	free(a.body);
	g->servers[1].down_until = ev_now(server.loop) + 10;
	a = ask(snap, "GET", "/.well-known/health", true);
	CHECK(a.status == 503 && strncmp(a.body, "{\"status\":\"fail\"", 16) == 0);
	CHECK(has(&a, "\"status\":\"fail\",\"observedValue\":0,"));
	free(a.body);
	g->servers[0].check_down = false;
	g->servers[1].down_until = 0;

	/* not ready yet: fail */
	a = ask(snap, "GET", "/.well-known/health", false);
	CHECK(a.status == 503 && has(&a, "\"output\":\"not ready: still starting\""));
	CHECK(json_valid(a.body, a.len));
	free(a.body);
	old->not_after = saved;

	a = ask(NULL, "GET", "/.well-known/health", true);
	CHECK(a.status == 503 && json_valid(a.body, a.len) && has(&a, "\"checks\":{}"));
	free(a.body);
	snapshot_unref(snap);
}

static void test_metrics_endpoint(void)
{
	metrics_reset();
	struct snapshot *snap = load(main_ini);
	metrics_request("web", "api", "app", SLICE_LIT("GET"), 200, 0.01, false);
	struct answer a = ask(snap, "GET", "/metrics", true);
	CHECK(a.status == 200 && a.type && strcmp(a.type, "text/plain; version=0.0.4; charset=utf-8") == 0);
	CHECK(has(&a, "\nedgeproxy_service_server_up{service=\"app\",url=\"http://127.0.0.1:18001\"} 1\n"));
	CHECK(has(&a, "\nedgeproxy_router_requests_total{router=\"api\",service=\"app\",code=\"200\",method=\"GET\"} 1\n"));
	CHECK(has(&a, "\nedgeproxy_tls_certs_not_after{cn=\"ec.example.test\""));
	free(a.body);
	snapshot_unref(snap);

	struct snapshot *off = load_off();
	a = ask(off, "GET", "/metrics", true);
	CHECK(a.status == 404);
	free(a.body);
	snapshot_unref(off);
	metrics_reset();
}

/* The page as the generator embeds it: every line without its leading blanks. */
static char *expected_dashboard(size_t *len)
{
	FILE *f = fopen("src/dashboard.html", "r");
	CHECK(f != NULL);
	if (!f)
		return NULL;
	struct strbuf b = { 0 };
	char line[8192];
	while (fgets(line, sizeof(line), f))
		strbuf_str(&b, line + strspn(line, " \t"));
	fclose(f);
	return strbuf_take(&b, len);
}

static void test_dashboard(void)
{
	struct snapshot *snap = load(main_ini);
	struct answer a = ask(snap, "GET", "/", true);
	CHECK(a.status == 200 && type_is(&a, "text/html"));
	CHECK(a.len == dashboard_html_len && memcmp(a.body, dashboard_html, a.len) == 0);
	CHECK(strncmp(a.body, "<!doctype html>", 15) == 0 && has(&a, "</html>"));
	CHECK(has(&a, "<meta name=\"viewport\"") && has(&a, "<style>") && has(&a, "<script>"));
	/* self-contained: it reads the JSON API by relative paths and loads nothing else */
	CHECK(has(&a, "api/services") && has(&a, "api/routers") && has(&a, "api/certs"));
	CHECK(!has(&a, "http://") && !has(&a, "https://") && !has(&a, "src=") && !has(&a, "<link"));
	CHECK(a.len < 16 * 1024);
	free(a.body);

	a = ask(snap, "GET", "/?refresh=1", true);
	CHECK(a.status == 200);
	free(a.body);

	/* src/dashboard.c was regenerated after the last edit of src/dashboard.html */
	size_t n = 0;
	char *want = expected_dashboard(&n);
	CHECKF(want && n == dashboard_html_len && memcmp(want, dashboard_html, n) == 0,
	       "src/dashboard.c is stale: run tools/embed-dashboard.sh");
	free(want);
	snapshot_unref(snap);

	struct snapshot *off = load_off();
	a = ask(off, "GET", "/", true);
	CHECK(a.status == 404);
	free(a.body);
	a = ask(off, "GET", "/api/routers", true); /* the API stays */
	CHECK(a.status == 200);
	free(a.body);
	snapshot_unref(off);
}

static void test_json_checker(void)
{
	/* the validator the tests above rely on must reject what is not JSON */
	static const char *const good[] = { "[]", "{}", "{\"a\":[1,-2.5e3,true,false,null,\"\\u00e9\\n\"]}", " 0 ",
					    "\"\xc3\xa9\"" };
	static const char *const bad[] = { "",        "[",       "[1,]",     "{\"a\":1,}", "{a:1}", "\"\x01\"",
					   "01",      "1.",      "[1] [2]",  "\"\\x\"",    "nul",   "\"\xc3\"",
					   "{\"a\" 1}", "\"abc",   "-",        "[\"a\"\"b\"]" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECKF(json_valid(good[i], strlen(good[i])), "%s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECKF(!json_valid(bad[i], strlen(bad[i])), "%s", bad[i]);
}

TEST_MAIN("admin", TEST(test_json_checker), TEST(test_probes), TEST(test_not_found_and_methods),
	  TEST(test_api_routers), TEST(test_api_services), TEST(test_api_certs),
	  TEST(test_api_certs_generated_default), TEST(test_health), TEST(test_metrics_endpoint),
	  TEST(test_dashboard))
