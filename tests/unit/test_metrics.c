/* test_metrics.c - the Prometheus exposition: series and labels after requests,
 * cumulative histograms, label escaping, bounded cardinality (methods, codes,
 * overflow series), connection gauges, reload metrics, process_* from /proc, server
 * and certificate gauges of a real snapshot, no allocation for a known label set,
 * and `promtool check metrics` when promtool is installed. Run from the repo root. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "metrics.h"
#include "snap_fixture.h"
#include "strbuf.h"
#include "test.h"
#include "upstream.h"

#ifdef __SANITIZE_ADDRESS__
/* AddressSanitizer's allocator hooks (sanitizer/allocator_interface.h, which gcc's
 * packages do not always install). */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
					      void (*free_hook)(const volatile void *));
#define HAVE_MALLOC_HOOKS 1
#endif

#define GET SLICE_LIT("GET")
#define POST SLICE_LIT("POST")

static char *render(const struct snapshot *snap)
{
	struct strbuf b = { 0 };
	metrics_render(snap, &b);
	CHECK(!b.failed);
	size_t n;
	return strbuf_take(&b, &n);
}

/* The whole line is in text. */
static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; (p = strstr(p, line)); p++)
		if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
			return true;
	return false;
}

/* Lines starting with prefix. */
static size_t count_lines(const char *text, const char *prefix)
{
	size_t n = 0, pl = strlen(prefix);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, prefix, pl) == 0)
			n++;
	return n;
}

/* The sample value on the line that starts with series (name and labels). */
static double value_of(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *p = text; (p = strstr(p, series)); p++)
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return -1;
}

static void test_request_series(void)
{
	metrics_reset();
	metrics_request("web", "r1", "app", GET, 200, 0.003, false);
	metrics_request("web", "r1", "app", GET, 200, 0.004, false);
	metrics_request("web", "r1", "app", POST, 404, 0.2, true);
	metrics_request("web", NULL, NULL, GET, 404, 0.001, false); /* no router matched */
	char *t = render(NULL);
	CHECK(has_line(t, "# TYPE edgeproxy_entrypoint_requests_total counter"));
	CHECK(has_line(t, "edgeproxy_entrypoint_requests_total{entrypoint=\"web\",code=\"200\",method=\"GET\",protocol=\"http\"} 2"));
	CHECK(has_line(t, "edgeproxy_entrypoint_requests_total{entrypoint=\"web\",code=\"404\",method=\"POST\",protocol=\"https\"} 1"));
	CHECK(has_line(t, "edgeproxy_entrypoint_requests_total{entrypoint=\"web\",code=\"404\",method=\"GET\",protocol=\"http\"} 1"));
	CHECK(has_line(t, "edgeproxy_router_requests_total{router=\"r1\",service=\"app\",code=\"200\",method=\"GET\"} 2"));
	CHECK(has_line(t, "edgeproxy_router_requests_total{router=\"r1\",service=\"app\",code=\"404\",method=\"POST\"} 1"));
	CHECK(count_lines(t, "edgeproxy_router_requests_total{") == 2);
	CHECK(has_line(t, "edgeproxy_service_requests_total{service=\"app\",code=\"200\",method=\"GET\"} 2"));
	CHECK(has_line(t, "edgeproxy_service_requests_total{service=\"app\",code=\"404\",method=\"POST\"} 1"));
	CHECK(count_lines(t, "edgeproxy_service_requests_total{") == 2); /* the unrouted one is not a service's */
	CHECK(has_line(t, "edgeproxy_entrypoint_request_duration_seconds_count{entrypoint=\"web\"} 4"));
	CHECK(has_line(t, "edgeproxy_service_request_duration_seconds_count{service=\"app\"} 3"));
	CHECK(has_line(t, "# TYPE edgeproxy_service_request_duration_seconds histogram"));
	free(t);

	uint64_t req, err;
	metrics_request("web", "r1", "app", GET, 502, 0.01, false);
	metrics_request("web", "r1", "app", GET, 503, 0.01, false);
	metrics_service_totals("app", &req, &err);
	CHECK(req == 5 && err == 2);
	metrics_service_totals("nope", &req, &err);
	CHECK(req == 0 && err == 0);
}

static void test_histogram(void)
{
	metrics_reset();
	const double obs[] = { 0.003, 0.005, 0.007, 0.3, 20, -1 };
	for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
		metrics_request("web", "r", "svc", GET, 200, obs[i], false);
	char *t = render(NULL);
	static const struct {
		const char *le;
		int count;
	} want[] = { { "0.005", 3 }, { "0.01", 4 }, { "0.025", 4 }, { "0.05", 4 }, { "0.1", 4 },
		     { "0.25", 4 },  { "0.5", 5 },  { "1", 5 },      { "2.5", 5 },  { "5", 5 },
		     { "10", 5 },    { "+Inf", 6 } };
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		char series[160];
		snprintf(series, sizeof(series), "edgeproxy_service_request_duration_seconds_bucket{service=\"svc\",le=\"%s\"}",
			 want[i].le);
		CHECKF(value_of(t, series) == want[i].count, "%s = %g", series, value_of(t, series));
	}
	double sum = value_of(t, "edgeproxy_service_request_duration_seconds_sum{service=\"svc\"}");
	CHECKF(sum > 20.3149 && sum < 20.3151, "sum %g", sum); /* the negative one counts as 0 */
	CHECK(value_of(t, "edgeproxy_service_request_duration_seconds_count{service=\"svc\"}") == 6);
	CHECK(value_of(t, "edgeproxy_entrypoint_request_duration_seconds_bucket{entrypoint=\"web\",le=\"+Inf\"}") == 6);
	CHECK(count_lines(t, "edgeproxy_entrypoint_request_duration_seconds_bucket{") == 12);
	free(t);
}

static void test_bounded_values(void)
{
	metrics_reset();
	metrics_request("web", "r", "s", SLICE_LIT("FOO"), 200, 0, false);
	metrics_request("web", "r", "s", SLICE_LIT("get"), 200, 0, false); /* methods are case-sensitive */
	metrics_request("web", "r", "s", SLICE_LIT("GETX"), 0, 0, false);
	metrics_request("web", "r", "s", SLICE_LIT(""), 600, 0, false);
	metrics_request("web", "r", "s", SLICE_LIT("PATCH"), 99, 0, false);
	metrics_request("web", "r", "s", SLICE_LIT("OPTIONS"), 599, 0, false);
	metrics_request("web", "r", "s", SLICE_LIT("TRACE"), 100, 0, false);
	char *t = render(NULL);
	CHECK(has_line(t, "edgeproxy_service_requests_total{service=\"s\",code=\"200\",method=\"OTHER\"} 2"));
	CHECK(has_line(t, "edgeproxy_service_requests_total{service=\"s\",code=\"other\",method=\"OTHER\"} 2"));
	CHECK(has_line(t, "edgeproxy_service_requests_total{service=\"s\",code=\"other\",method=\"PATCH\"} 1"));
	CHECK(has_line(t, "edgeproxy_service_requests_total{service=\"s\",code=\"599\",method=\"OPTIONS\"} 1"));
	CHECK(has_line(t, "edgeproxy_service_requests_total{service=\"s\",code=\"100\",method=\"TRACE\"} 1"));
	CHECK(!strstr(t, "method=\"get\"") && !strstr(t, "FOO") && !strstr(t, "code=\"600\""));
	free(t);
}

static void test_escaping(void)
{
	metrics_reset();
	metrics_request("we\"b\\x\ny", "r", "s", GET, 200, 0, false);
	char *t = render(NULL);
	CHECKF(has_line(t, "edgeproxy_entrypoint_requests_total{entrypoint=\"we\\\"b\\\\x\\ny\",code=\"200\",method=\"GET\",protocol=\"http\"} 1"),
	       "%s", t);
	free(t);
	/* UTF-8 passes; bytes that are not UTF-8 would fail the scrape: U+FFFD */
	metrics_reset();
	metrics_request("caf\xc3\xa9", "r", "s", GET, 200, 0, false);
	metrics_request("a\xff" "b\xc3", "r", "s", GET, 200, 0, false);
	metrics_request("\xed\xa0\x80", "r", "s", GET, 200, 0, false); /* a surrogate */
	t = render(NULL);
	CHECK(has_line(t, "edgeproxy_entrypoint_requests_total{entrypoint=\"caf\xc3\xa9\",code=\"200\",method=\"GET\",protocol=\"http\"} 1"));
	CHECK(has_line(t, "edgeproxy_entrypoint_requests_total{entrypoint=\"a\xef\xbf\xbd" "b\xef\xbf\xbd\",code=\"200\",method=\"GET\",protocol=\"http\"} 1"));
	CHECK(has_line(t, "edgeproxy_entrypoint_requests_total{entrypoint=\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\",code=\"200\",method=\"GET\",protocol=\"http\"} 1"));
	free(t);
}

static void test_overflow(void)
{
	metrics_reset();
	char name[32];
	int extra = 37;
	for (int i = 0; i < METRICS_MAX_SERIES + extra; i++) {
		snprintf(name, sizeof(name), "svc%05d", i);
		metrics_request("web", "r", name, GET, 200, 0.1, false);
	}
	metrics_request("web", "r", "svc00000", GET, 200, 0.1, false); /* known: still its own */
	char *t = render(NULL);
	CHECK(count_lines(t, "edgeproxy_service_requests_total{") == METRICS_MAX_SERIES + 1);
	CHECKF(has_line(t, "edgeproxy_service_requests_total{service=\"overflow\",code=\"overflow\",method=\"overflow\"} 37"),
	       "overflow line missing");
	CHECK(has_line(t, "edgeproxy_service_requests_total{service=\"svc00000\",code=\"200\",method=\"GET\"} 2"));
	CHECK(value_of(t, "edgeproxy_service_request_duration_seconds_count{service=\"overflow\"}") == extra);
	CHECK(count_lines(t, "edgeproxy_service_request_duration_seconds_count{") == METRICS_MAX_SERIES + 1);
	CHECK(count_lines(t, "edgeproxy_router_requests_total{") == METRICS_MAX_SERIES + 1);
	CHECK(value_of(t, "edgeproxy_entrypoint_requests_total{entrypoint=\"web\",code=\"200\",method=\"GET\",protocol=\"http\"}") ==
	      METRICS_MAX_SERIES + extra + 1);
	/* the overflow series is last in its family */
	const char *last = strstr(t, "edgeproxy_service_requests_total{service=\"overflow\"");
	CHECK(last && !strstr(last + 1, "edgeproxy_service_requests_total{service=\"svc"));
	free(t);

	/* names themselves are bounded: later new names all read "overflow" */
	metrics_reset();
	for (int i = 0; i < METRICS_MAX_NAMES + 10; i++) {
		snprintf(name, sizeof(name), "ep%05d", i);
		metrics_connection_open(name);
	}
	t = render(NULL);
	CHECK(count_lines(t, "edgeproxy_open_connections{") == METRICS_MAX_SERIES + 1);
	CHECK(has_line(t, "edgeproxy_open_connections{entrypoint=\"overflow\"} " "2058")); /* 4106 - 2048 */
	free(t);
}

static void test_connections(void)
{
	metrics_reset();
	metrics_connection_open("web");
	metrics_connection_open("web");
	metrics_connection_open("web");
	metrics_connection_close("web");
	metrics_connection_open("websecure");
	metrics_connection_close("websecure");
	metrics_connection_close("websecure"); /* never below zero */
	char *t = render(NULL);
	CHECK(has_line(t, "# TYPE edgeproxy_open_connections gauge"));
	CHECK(has_line(t, "edgeproxy_open_connections{entrypoint=\"web\"} 2"));
	CHECK(has_line(t, "edgeproxy_open_connections{entrypoint=\"websecure\"} 0"));
	free(t);
}

static void test_reloads(void)
{
	metrics_reset();
	char *t = render(NULL);
	CHECK(has_line(t, "edgeproxy_config_reloads_total 0"));
	CHECK(has_line(t, "edgeproxy_config_last_reload_success 1"));
	double started = value_of(t, "process_start_time_seconds");
	CHECK(value_of(t, "edgeproxy_config_last_reload_success_timestamp_seconds") >= started - 1);
	free(t);

	metrics_config_reload(false);
	t = render(NULL);
	CHECK(has_line(t, "edgeproxy_config_reloads_total 1"));
	CHECK(has_line(t, "edgeproxy_config_reloads_failure_total 1"));
	CHECK(has_line(t, "edgeproxy_config_last_reload_success 0"));
	free(t);

	metrics_config_reload(true);
	t = render(NULL);
	CHECK(has_line(t, "edgeproxy_config_reloads_total 2"));
	CHECK(has_line(t, "edgeproxy_config_reloads_failure_total 1"));
	CHECK(has_line(t, "edgeproxy_config_last_reload_success 1"));
	double ts = value_of(t, "edgeproxy_config_last_reload_success_timestamp_seconds");
	CHECK(ts >= (double)time(NULL) - 5 && ts <= (double)time(NULL));
	CHECK(has_line(t, "# TYPE edgeproxy_config_reloads_total counter"));
	free(t);
}

static void test_process(void)
{
	metrics_reset();
	char *t = render(NULL);
	double now = (double)time(NULL);
	double start = value_of(t, "process_start_time_seconds");
	CHECKF(start > now - 3600 && start <= now + 1, "start %f now %f", start, now);
	CHECK(value_of(t, "process_resident_memory_bytes") > 1024 * 1024); /* ASan's shadow alone is more */
	CHECK(value_of(t, "process_virtual_memory_bytes") > 0);
	CHECK(value_of(t, "process_open_fds") >= 3);
	CHECK(value_of(t, "process_cpu_seconds_total") >= 0);
	CHECK(has_line(t, "# TYPE process_cpu_seconds_total counter"));
	CHECK(has_line(t, "# TYPE process_resident_memory_bytes gauge"));
	free(t);
}

static const char snapshot_ini[] = "[global]\n"
				   "state_dir = {tmp}/state\n"
				   "[entrypoint web]\n"
				   "listen = 127.0.0.1:18080\n"
				   "[entrypoint websecure]\n"
				   "listen = 127.0.0.1:18443\n"
				   "tls = on\n"
				   "[cert ec]\n"
				   "cert_file = {fix}/chain.pem\n"
				   "key_file = {fix}/ec.key\n"
				   "[cert rsa]\n"
				   "cert_file = {fix}/rsa.crt\n"
				   "key_file = {fix}/rsa.key\n"
				   "[router r]\n"
				   "rule = PathPrefix(`/`)\n"
				   "service = app\n"
				   "[service app]\n"
				   "server = http://127.0.0.1:18001\n"
				   "server = http://127.0.0.1:18002 weight=2\n"
				   "server = http://127.0.0.1:18003 backup\n"
				   "[service hi]\n"
				   "type = hello\n";

static void test_snapshot_gauges(void)
{
	metrics_reset();
	struct snapshot *snap = fixture_snapshot(snapshot_ini);
	CHECK(snap != NULL);
	if (!snap)
		return;
	struct upstream_group *g = snap->services[0].group;
	g->servers[1].check_down = true;
	g->servers[2].down_until = ev_now(server.loop) + 30;
	char *t = render(snap);
	CHECK(has_line(t, "# TYPE edgeproxy_service_server_up gauge"));
	CHECK(has_line(t, "edgeproxy_service_server_up{service=\"app\",url=\"http://127.0.0.1:18001\"} 1"));
	CHECK(has_line(t, "edgeproxy_service_server_up{service=\"app\",url=\"http://127.0.0.1:18002\"} 0"));
	CHECK(has_line(t, "edgeproxy_service_server_up{service=\"app\",url=\"http://127.0.0.1:18003\"} 0"));
	CHECK(count_lines(t, "edgeproxy_service_server_up{") == 3); /* hello has no servers */

	/* the fixtures' dates (openssl x509 -enddate; see test_tls_cert.c) */
	CHECKF(has_line(t, "edgeproxy_tls_certs_not_after{cn=\"ec.example.test\",sans=\"a.example.com,*.wild.example\",resolver=\"\"} 4949406174"),
	       "%s", t);
	CHECK(has_line(t, "edgeproxy_tls_certs_not_after{cn=\"RSA.Example.com\",sans=\"rsa.example.com\",resolver=\"\"} 4949406175"));
	/* the generated default certificate (state_dir) */
	CHECK(strstr(t, "edgeproxy_tls_certs_not_after{cn=\"edgeproxy default\",sans=\"localhost\",resolver=\"\"} ") != NULL);
	CHECK(count_lines(t, "edgeproxy_tls_certs_not_after{") == 3);
	free(t);
	snapshot_unref(snap);
}

#ifdef HAVE_MALLOC_HOOKS
static volatile bool counting; /* volatile: gcc assumes malloc touches no globals */
static volatile int allocations;

static void on_malloc(const volatile void *ptr, size_t size)
{
	(void)ptr;
	(void)size;
	if (counting)
		allocations++;
}

static void on_free(const volatile void *ptr)
{
	(void)ptr;
}
#endif

/* CONVENTIONS: the request hot path does not call malloc once its label set exists. */
static void test_no_allocation_for_known_series(void)
{
#ifdef HAVE_MALLOC_HOOKS
	static bool installed;
	if (!installed)
		installed = __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free) != 0;
	CHECK(installed);
	metrics_reset();
	metrics_request("web", "r1", "app", GET, 200, 0.01, true);
	metrics_connection_open("web");
	counting = true;
	allocations = 0;
	void *volatile probe = malloc(16); /* the hook sees allocations: a zero below means something */
	free(probe);
	CHECK(allocations == 1);
	allocations = 0;
	for (int i = 0; i < 1000; i++) {
		metrics_connection_open("web");
		metrics_request("web", "r1", "app", GET, 200, 0.01 * (i % 50), true);
		metrics_connection_close("web");
	}
	counting = false;
	CHECKF(allocations == 0, "%d allocations for known label sets", allocations);
#else
	fprintf(stderr, "test_no_allocation_for_known_series: no sanitizer malloc hooks, skipped\n");
#endif
}

/* promtool lints and parses the exposition like the Prometheus server does. */
static void test_promtool(void)
{
	if (system("command -v promtool >/dev/null 2>&1") != 0) {
		fprintf(stderr, "test_promtool: promtool not installed (Debian package prometheus), skipped\n");
		return;
	}
	metrics_reset();
	struct snapshot *snap = fixture_snapshot(snapshot_ini);
	CHECK(snap != NULL);
	metrics_request("web", "r", "app", GET, 200, 0.02, false);
	metrics_request("websecure", "r", "app", POST, 502, 1.5, true);
	metrics_request("web", NULL, NULL, SLICE_LIT("BREW"), 404, 0.0001, false);
	metrics_request("we\"b\\x\ny", "r", "app", GET, 999, 0, false);
	metrics_connection_open("web");
	metrics_config_reload(false);
	char name[32];
	for (int i = 0; i < METRICS_MAX_SERIES + 5; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		metrics_request("web", name, "app", GET, 200, 0.1, false);
	}
	char *t = render(snap);
	char path[] = "/tmp/edgeproxy-metrics-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	if (fd >= 0) {
		size_t n = strlen(t);
		CHECK(write(fd, t, n) == (ssize_t)n);
		close(fd);
		char cmd[256];
		snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
		int rc = system(cmd);
		CHECKF(rc == 0, "promtool check metrics failed (rc %d) on %s", rc, path);
		if (rc == 0)
			unlink(path);
	}
	free(t);
	snapshot_unref(snap);
}

/* Counts requests in store `store` from a forked process (a worker), which then
 * exits with a connection still open. */
static void count_in_child(size_t store, int requests)
{
	pid_t pid = fork();
	if (pid == 0) {
		metrics_attach(store);
		for (int i = 0; i < requests; i++)
			metrics_request("web", "api", "app", GET, 200, 0.02, false);
		metrics_connection_open("web");
		_exit(0);
	}
	int status = 0;
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Workers: each process counts in its own shared store; /metrics in any of them
 * shows the sum; a replaced worker's store carries on; reload counts are the
 * supervisor's. Runs last: the mapping stays for the rest of the process. */
static void test_shared_stores(void)
{
	metrics_reset();
	metrics_config_reload(true); /* before sharing: carried into the shared figures */
	CHECK(metrics_share(3) == 0);
	count_in_child(0, 2);
	count_in_child(1, 3);
	/* a store with hundreds of names and series grows its tables in the arena */
	pid_t pid = fork();
	if (pid == 0) {
		metrics_attach(2);
		char name[32];
		for (int i = 0; i < 300; i++) {
			snprintf(name, sizeof(name), "svc%d", i);
			metrics_request("web", "r", name, GET, 200 + i % 3, 0.001, false);
		}
		metrics_config_reload(false); /* a worker's own reloads are not the supervisor's */
		_exit(0);
	}
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	char *t = render(NULL);
	CHECK(has_line(t, "edgeproxy_service_requests_total{service=\"app\",code=\"200\",method=\"GET\"} 5"));
	CHECK(has_line(t, "edgeproxy_entrypoint_request_duration_seconds_count{entrypoint=\"web\"} 305"));
	CHECK(has_line(t, "edgeproxy_service_requests_total{service=\"svc299\",code=\"202\",method=\"GET\"} 1"));
	CHECK(has_line(t, "edgeproxy_open_connections{entrypoint=\"web\"} 2"));
	CHECK(has_line(t, "edgeproxy_config_reloads_total 1"));
	CHECK(has_line(t, "edgeproxy_config_reloads_failure_total 0"));
	free(t);
	uint64_t req, err;
	metrics_service_totals("app", &req, &err);
	CHECK(req == 5 && err == 0);

	metrics_release(0); /* worker 0 exited: its connection is gone */
	count_in_child(0, 1); /* its replacement carries on and opens one */
	metrics_config_reload(true);
	t = render(NULL);
	CHECK(has_line(t, "edgeproxy_service_requests_total{service=\"app\",code=\"200\",method=\"GET\"} 6"));
	CHECK(has_line(t, "edgeproxy_open_connections{entrypoint=\"web\"} 2"));
	CHECK(has_line(t, "edgeproxy_config_reloads_total 2"));
	free(t);
}

TEST_MAIN("metrics", TEST(test_request_series), TEST(test_histogram), TEST(test_bounded_values),
	  TEST(test_escaping), TEST(test_overflow), TEST(test_connections), TEST(test_reloads),
	  TEST(test_process), TEST(test_snapshot_gauges), TEST(test_no_allocation_for_known_series),
	  TEST(test_promtool), TEST(test_shared_stores))
