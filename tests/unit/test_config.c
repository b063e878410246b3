/* Unit tests for config validation: each error path names the right line, and a
 * valid file yields the values and defaults the SPEC gives. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "server.h"
#include "rule.h"
#include "test.h"

/* acme.c (linked through config.c's [acme] validation) refers to the server. */
struct server server;

static char path[64];

static struct config *load(const char *text, struct conf_errors *errs)
{
	strcpy(path, "/tmp/edgeproxy-test-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0)
		abort();
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	close(fd);
	struct config *cfg = config_load(path, errs);
	unlink(path);
	return cfg;
}

/* True if some error is on line `line` and contains `text`. */
static bool has_error(const struct conf_errors *errs, int line, const char *text)
{
	char prefix[96];
	snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
	for (size_t i = 0; i < errs->n; i++)
		if (strncmp(errs->msgs[i], prefix, strlen(prefix)) == 0 && strstr(errs->msgs[i], text))
			return true;
	return false;
}

/* Shows what was reported, when a check of this test failed. */
static void dump(const struct conf_errors *errs)
{
	static int shown_failures;
	if (test_failures == shown_failures)
		return;
	shown_failures = test_failures;
	for (size_t i = 0; i < errs->n; i++)
		fprintf(stderr, "  got: %s\n", errs->msgs[i]);
}

static void test_valid_config_and_defaults(void)
{
	struct conf_errors errs = { 0 };
	struct config *cfg = load("; comment\n"
				  "[global]\nmax_connections = 50\nworkers = 1\n"
				  "[entrypoint web]\nlisten = 127.0.0.1:8080\nheader_timeout = 2s\n"
				  "trusted_proxies = 10.0.0.0/8, ::1\n"
				  "[router r]\nrule = Host(`a`) || Path(`/x`)\nservice = s\npriority = 7\n"
				  "[service s]\ntype = hello\n",
				  &errs);
	CHECK(cfg != NULL);
	dump(&errs);
	if (!cfg)
		return;
	CHECK(cfg->global.max_connections == 50);
	CHECK(cfg->global.workers == 1);
	CHECK(cfg->global.grace_period_ms == 10000);
	CHECK(strcmp(cfg->global.state_dir, "/var/lib/edgeproxy") == 0);
	CHECK(cfg->n_entrypoints == 1 && cfg->entrypoints[0].header_timeout_ms == 2000);
	CHECK(cfg->entrypoints[0].idle_timeout_ms == 60000 && cfg->entrypoints[0].max_header_size == 16384);
	CHECK(cfg->entrypoints[0].trusted_proxies.n == 2);
	CHECK(cfg->n_routers == 1 && cfg->routers[0].priority_set && cfg->routers[0].priority == 7);
	CHECK(cfg->routers[0].compiled != NULL);
	CHECK(cfg->n_services == 1 && cfg->services[0].type == SERVICE_HELLO);
	CHECK(strcmp(cfg->services[0].message, "Hello from edgeproxy") == 0);
	config_free(cfg);
	conf_errors_free(&errs);
}

static void test_every_error_has_its_line(void)
{
	struct conf_errors errs = { 0 };
	struct config *cfg = load("[global]\n"                          /* 1 */
				  "log_level = loud\n"                  /* 2 */
				  "watch = maybe\n"                     /* 3 */
				  "max_connections = 0\n"               /* 4 */
				  "[entrypoint web]\n"                  /* 5 */
				  "listen = 1.2.3.4\n"                  /* 6 */
				  "max_body_size = 1q\n"                /* 7 */
				  "trusted_proxies = 10.0.0.0/33\n"     /* 8 */
				  "[router r]\n"                        /* 9 */
				  "rule = Host(`a`) &&\n"               /* 10 */
				  "service = nope\n"                    /* 11 */
				  "rule = Path(`/`)\n"                  /* 12 */
				  "[service s]\n"                       /* 13 */
				  "type = banana\n"                     /* 14 */
				  "[router bad name!]\n"                /* 15 */
				  "[entrypoint web]\n"                  /* 16 */
				  "stray line without equals\n"         /* 17 */
				  "[entrypoint other]\n"                /* 18 */
				  "redirect_to = ghost\n"               /* 19 */
				  "listen = :9\n"                       /* 20 */
				  "[router r2]\n"                       /* 21 */
				  "rule = Path(`/`)\n"                  /* 22 */
				  "service = s\n"                       /* 23 */
				  "entrypoints = web, ghost\n",         /* 24 */
				  &errs);
	CHECK(cfg == NULL);
	CHECK(has_error(&errs, 2, "log_level"));
	CHECK(has_error(&errs, 3, "watch"));
	CHECK(has_error(&errs, 4, "max_connections"));
	CHECK(has_error(&errs, 6, "listen"));
	CHECK(has_error(&errs, 7, "max_body_size"));
	CHECK(has_error(&errs, 8, "trusted_proxies"));
	CHECK(has_error(&errs, 10, "rule"));
	CHECK(has_error(&errs, 11, "no [service nope]"));
	CHECK(has_error(&errs, 12, "duplicate key 'rule' (first at line 10)"));
	CHECK(has_error(&errs, 14, "type"));
	CHECK(has_error(&errs, 15, "name"));
	CHECK(has_error(&errs, 16, "duplicate [entrypoint web] (first defined at line 5)"));
	CHECK(has_error(&errs, 17, "syntax"));
	CHECK(has_error(&errs, 18, "redirect_to: no [entrypoint ghost]"));
	CHECK(has_error(&errs, 24, "no [entrypoint ghost]"));
	dump(&errs);
	conf_errors_free(&errs);
}

static void test_workers(void)
{
	struct conf_errors errs = { 0 };
	struct config *cfg = load("[global]\nworkers = auto\n[entrypoint web]\nlisten = :80\n", &errs);
	CHECK(cfg && cfg->global.workers == 0); /* auto: one per CPU */
	config_free(cfg);
	cfg = load("[global]\nworkers = 4\n[entrypoint web]\nlisten = :80\n", &errs);
	CHECK(cfg && cfg->global.workers == 4);
	config_free(cfg);
	CHECK(errs.n == 0);
	cfg = load("[global]\nworkers = 257\n[entrypoint web]\nlisten = :80\n", &errs);
	CHECK(cfg == NULL);
	CHECK(has_error(&errs, 2, "workers"));
	dump(&errs);
	conf_errors_free(&errs);
}

static void test_missing_required_keys(void)
{
	struct conf_errors errs = { 0 };
	struct config *cfg = load("[entrypoint web]\n"
				  "[router r]\n"
				  "service = s\n"
				  "[service s]\n"
				  "type = hello\n"
				  "[router q]\n"
				  "rule = Path(`/`)\n"
				  "orphan = 1\n",
				  &errs);
	CHECK(cfg == NULL);
	CHECK(has_error(&errs, 1, "needs listen"));
	CHECK(has_error(&errs, 2, "needs rule"));
	CHECK(has_error(&errs, 6, "needs service"));
	CHECK(has_error(&errs, 8, "unknown key 'orphan' in [router q]"));
	conf_errors_free(&errs);
}

static void test_rule_error_column(void)
{
	struct conf_errors errs = { 0 };
	struct config *cfg = load("[entrypoint web]\nlisten = :80\n"
				  "[router r]\nrule = Host(`a`) && Bogus(`x`)\nservice = s\n"
				  "[service s]\ntype = hello\n",
				  &errs);
	CHECK(cfg == NULL);
	CHECK(has_error(&errs, 4, "column 14"));
	dump(&errs);
	conf_errors_free(&errs);
}

static void test_no_entrypoint_and_outside_section(void)
{
	struct conf_errors errs = { 0 };
	struct config *cfg = load("key = value\n[service s]\ntype = hello\n", &errs);
	CHECK(cfg == NULL);
	CHECK(has_error(&errs, 1, "outside any section"));
	CHECK(has_error(&errs, 1, "no [entrypoint NAME]"));
	conf_errors_free(&errs);
}

static void test_server_lines(void)
{
	struct conf_errors errs = { 0 };
	struct config *cfg = load("[entrypoint web]\nlisten = :80\n"
				  "[service s]\n"
				  "server = http://10.0.0.1:8080 weight=3\n"
				  "server = http://[::1]:9000 backup\n"
				  "server = https://x:1\n"
				  "server = http://x\n"
				  "server = http://x:1 speed=9\n",
				  &errs);
	CHECK(cfg == NULL);
	CHECK(!has_error(&errs, 4, "server"));
	CHECK(!has_error(&errs, 5, "server"));
	CHECK(has_error(&errs, 6, "server"));
	CHECK(has_error(&errs, 7, "port"));
	CHECK(has_error(&errs, 8, "option"));
	conf_errors_free(&errs);
}

TEST_MAIN("config", TEST(test_valid_config_and_defaults), TEST(test_workers), TEST(test_every_error_has_its_line),
	  TEST(test_missing_required_keys), TEST(test_rule_error_column), TEST(test_no_entrypoint_and_outside_section),
	  TEST(test_server_lines))
