/* main.c - the command line (SPEC §2): run, check, version, healthcheck, help. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "config.h"
#include "server.h"

#ifndef EDGEPROXY_VERSION
#define EDGEPROXY_VERSION "dev"
#endif
#ifndef EDGEPROXY_TRIPLE
#define EDGEPROXY_TRIPLE "unknown"
#endif
#ifndef EDGEPROXY_LIBS
#define EDGEPROXY_LIBS "unknown"
#endif

#define DEFAULT_CONFIG "/etc/edgeproxy/edgeproxy.ini"

static const char usage[] =
	"usage:\n"
	"  edgeproxy [run] [-c FILE]          run in the foreground (logs to stderr)\n"
	"  edgeproxy check [-c FILE]          validate FILE; print every error as FILE:LINE: message\n"
	"  edgeproxy version                  name, version, target, library versions\n"
	"  edgeproxy healthcheck [-c FILE]    probe the running instance; exit 0 healthy, 1 not\n"
	"  edgeproxy help                     this text\n"
	"The config file is -c FILE, else $EDGEPROXY_CONFIG, else " DEFAULT_CONFIG ".\n";

static int cmd_check(const char *path)
{
	struct conf_errors errs = { 0 };
	struct config *cfg = config_load(path, &errs);
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msgs[i]);
	conf_errors_free(&errs);
	if (!cfg)
		return 1;
	printf("%s: configuration OK (%zu entry points, %zu routers, %zu services)\n", path, cfg->n_entrypoints,
	       cfg->n_routers, cfg->n_services);
	config_free(cfg);
	return 0;
}

/* Connects to a listen address, turning wildcard addresses into loopback. */
static int connect_local(const struct sockaddr_storage *addr, socklen_t len)
{
	struct sockaddr_storage a = *addr;
	if (a.ss_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&a;
		if (s4->sin_addr.s_addr == htonl(INADDR_ANY))
			s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a;
		if (IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
			s6->sin6_addr = in6addr_loopback;
	}
	int fd = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct timeval tv = { 2, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, len) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* For Docker HEALTHCHECK in a scratch image: GET /ping on the first plain entry
 * point; any HTTP answer below 500 means the process is serving. */
static int cmd_healthcheck(const char *path)
{
	struct conf_errors errs = { 0 };
	struct config *cfg = config_load(path, &errs);
	conf_errors_free(&errs);
	if (!cfg) {
		fprintf(stderr, "healthcheck: %s is not a valid configuration\n", path);
		return 1;
	}
	const struct conf_entrypoint *ep = NULL;
	for (size_t i = 0; i < cfg->n_entrypoints && !ep; i++)
		if (!cfg->entrypoints[i].tls)
			ep = &cfg->entrypoints[i];
	int rc = 1;
	int fd = ep ? connect_local(&ep->addr, ep->addrlen) : -1;
	if (fd >= 0) {
		static const char req[] = "GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
		char resp[64] = { 0 };
		if (write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1) && read(fd, resp, sizeof(resp) - 1) >= 12 &&
		    strncmp(resp, "HTTP/1.", 7) == 0) {
			int status = atoi(resp + 9);
			rc = status >= 100 && status < 500 ? 0 : 1;
		}
		close(fd);
	}
	if (rc)
		fprintf(stderr, "healthcheck: %s not answering\n", ep ? ep->listen : "no plain entry point");
	config_free(cfg);
	return rc;
}

int main(int argc, char **argv)
{
	const char *cmd = "run";
	const char *path = NULL;
	int i = 1;
	if (i < argc && argv[i][0] != '-')
		cmd = argv[i++];
	for (; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			path = argv[++i];
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			cmd = "help";
		} else {
			fprintf(stderr, "edgeproxy: unexpected argument '%s'\n%s", argv[i], usage);
			return 2;
		}
	}
	if (!path)
		path = getenv("EDGEPROXY_CONFIG");
	if (!path || !*path)
		path = DEFAULT_CONFIG;

	if (strcmp(cmd, "run") == 0)
		return server_run(path);
	if (strcmp(cmd, "check") == 0)
		return cmd_check(path);
	if (strcmp(cmd, "healthcheck") == 0)
		return cmd_healthcheck(path);
	if (strcmp(cmd, "version") == 0) {
		printf("edgeproxy %s (%s)\n%s\n", EDGEPROXY_VERSION, EDGEPROXY_TRIPLE, EDGEPROXY_LIBS);
		return 0;
	}
	if (strcmp(cmd, "help") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	fprintf(stderr, "edgeproxy: unknown command '%s'\n%s", cmd, usage);
	return 2;
}
