/* snap_fixture.h - configuration snapshots for unit tests: an INI text written to a
 * temporary file, loaded with config_load and compiled with snapshot_build, as the
 * server does. "{fix}" in the text stands for the fixtures directory (run the tests
 * from the repository root) and "{tmp}" for a fresh temporary directory (state_dir). */
#ifndef EDGEPROXY_SNAP_FIXTURE_H
#define EDGEPROXY_SNAP_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "server.h"
#include "snapshot.h"
#include "strbuf.h"

/* upstream_is_up reads the loop's time through the server's global. */
struct server server;

static char fixture_tmp[64];

static void fixture_cleanup(void)
{
	if (fixture_tmp[0]) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fixture_tmp);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", fixture_tmp);
	}
}

static void fixture_init(void)
{
	if (!server.loop)
		server.loop = ev_default_loop(0);
	if (!fixture_tmp[0]) {
		strcpy(fixture_tmp, "/tmp/edgeproxy-unit-XXXXXX");
		if (!mkdtemp(fixture_tmp)) {
			perror("mkdtemp");
			exit(2);
		}
		atexit(fixture_cleanup);
	}
}

static void replace_all(struct strbuf *out, const char *text, const char *from, const char *to)
{
	size_t fl = strlen(from);
	for (const char *p = text, *q; *p; p = q + fl) {
		q = strstr(p, from);
		if (!q) {
			strbuf_str(out, p);
			break;
		}
		strbuf_put(out, p, (size_t)(q - p));
		strbuf_str(out, to);
	}
}

/* The snapshot of ini, or NULL after printing the configuration's errors. */
static struct snapshot *fixture_snapshot(const char *ini)
{
	fixture_init();
	char fix[4096];
	if (!getcwd(fix, sizeof(fix) - 32))
		return NULL;
	strcat(fix, "/tests/unit/fixtures");
	struct strbuf a = { 0 }, b = { 0 };
	replace_all(&a, ini, "{fix}", fix);
	strbuf_put(&a, "", 0);
	replace_all(&b, a.p, "{tmp}", fixture_tmp);
	strbuf_put(&b, "", 0);
	char path[128];
	snprintf(path, sizeof(path), "%s/edgeproxy.ini", fixture_tmp);
	FILE *f = fopen(path, "w");
	if (!f || fwrite(b.p, 1, b.len, f) != b.len) {
		perror(path);
		exit(2);
	}
	fclose(f);
	strbuf_free(&a);
	strbuf_free(&b);

	struct conf_errors errs = { 0 };
	struct config *cfg = config_load(path, &errs);
	struct snapshot *snap = cfg ? snapshot_build(cfg, 1, &errs) : NULL;
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "fixture config: %s\n", errs.msgs[i]);
	conf_errors_free(&errs);
	return snap;
}

#endif
