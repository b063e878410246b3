/* config.c - reads the INI file with inih into struct config. Each section kind has
 * a table of keys (type, default, where it goes); values are parsed as they are
 * read, and section-level and cross-section checks run after. Every problem is
 * collected as FILE:LINE: message; nothing stops at the first one. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "acme.h"
#include "analyzer.h"
#include "confval.h"
#include "ini.h"
#include "log.h"
#include "middleware.h"
#include "rule.h"

enum key_type { K_STR, K_BOOL, K_DURATION, K_SIZE, K_INT, K_ENUM, K_SERVER };

struct key_def {
	const char *name;
	enum key_type type;
	size_t off;          /* where the parsed value goes in the section struct */
	const char *def;     /* default, parsed like a value; NULL = none */
	const char *const *choices; /* K_ENUM: names, index = value */
	int64_t min, max;    /* K_INT */
};

enum section_kind {
	SEC_NONE, SEC_GLOBAL, SEC_ADMIN, SEC_TLS, SEC_CERT, SEC_ENTRYPOINT, SEC_ROUTER, SEC_SERVICE, SEC_MIDDLEWARE,
	SEC_ACME,
};

#define MAX_KEYS 32

struct section_def {
	const char *word; /* "entrypoint" in "[entrypoint web]" */
	enum section_kind kind;
	bool named;
	const struct key_def *keys;
	size_t nkeys;
};

static const char *const log_levels[] = { "error", "warn", "info", "debug", NULL };
static const char *const access_formats[] = { "common", "json", NULL };
static const char *const service_types[] = { "proxy", "static", "hello", NULL };
static const char *const balances[] = { "round_robin", "least_conn", "ip_hash", NULL };
static const char *const tls_versions[] = { "1.0", "1.1", "1.2", NULL };
static const char *const tls_ciphers[] = { "modern", "compatible", NULL };

#define G(f) offsetof(struct conf_global, f)
static const struct key_def global_keys[] = {
	{ "state_dir", K_STR, G(state_dir), "/var/lib/edgeproxy", NULL, 0, 0 },
	{ "user", K_STR, G(user), NULL, NULL, 0, 0 },
	{ "group", K_STR, G(group), NULL, NULL, 0, 0 },
	{ "log_level", K_ENUM, G(log_level), "info", log_levels, 0, 0 },
	{ "access_log", K_STR, G(access_log), "off", NULL, 0, 0 },
	{ "access_log_format", K_ENUM, G(access_log_format), "common", access_formats, 0, 0 },
	{ "access_log_internal", K_BOOL, G(access_log_internal), "off", NULL, 0, 0 },
	{ "grace_period", K_DURATION, G(grace_period_ms), "10s", NULL, 0, 0 },
	{ "watch", K_BOOL, G(watch), "on", NULL, 0, 0 },
	{ "workers", K_INT, G(workers), "1", NULL, 0, 256 },
	{ "max_connections", K_INT, G(max_connections), "10000", NULL, 1, 10000000 },
};
#undef G

#define A(f) offsetof(struct conf_admin, f)
static const struct key_def admin_keys[] = {
	{ "listen", K_STR, A(listen), NULL, NULL, 0, 0 },
	{ "metrics", K_BOOL, A(metrics), "on", NULL, 0, 0 },
	{ "dashboard", K_BOOL, A(dashboard), "on", NULL, 0, 0 },
};
#undef A

#define T(f) offsetof(struct conf_tls, f)
static const struct key_def tls_keys[] = {
	{ "min_version", K_ENUM, T(min_version), "1.2", tls_versions, 0, 0 },
	{ "ciphers", K_ENUM, T(ciphers), "modern", tls_ciphers, 0, 0 },
	{ "default_cert", K_STR, T(default_cert), NULL, NULL, 0, 0 },
	{ "session_cache", K_INT, T(session_cache), "4096", NULL, 0, 1000000 },
	{ "client_ca", K_STR, T(client_ca), NULL, NULL, 0, 0 },
};
#undef T

#define C(f) offsetof(struct conf_cert, f)
static const struct key_def cert_keys[] = {
	{ "cert_file", K_STR, C(cert_file), NULL, NULL, 0, 0 },
	{ "key_file", K_STR, C(key_file), NULL, NULL, 0, 0 },
};
#undef C

#define E(f) offsetof(struct conf_entrypoint, f)
static const struct key_def entrypoint_keys[] = {
	{ "listen", K_STR, E(listen), NULL, NULL, 0, 0 },
	{ "tls", K_BOOL, E(tls), "off", NULL, 0, 0 },
	{ "redirect_to", K_STR, E(redirect_to), NULL, NULL, 0, 0 },
	{ "header_timeout", K_DURATION, E(header_timeout_ms), "5s", NULL, 0, 0 },
	{ "idle_timeout", K_DURATION, E(idle_timeout_ms), "60s", NULL, 0, 0 },
	{ "body_timeout", K_DURATION, E(body_timeout_ms), "30s", NULL, 0, 0 },
	{ "max_header_size", K_SIZE, E(max_header_size), "16k", NULL, 0, 0 },
	{ "max_body_size", K_SIZE, E(max_body_size), "0", NULL, 0, 0 },
	{ "trusted_proxies", K_STR, E(trusted_proxies_text), NULL, NULL, 0, 0 },
	{ "proxy_protocol", K_BOOL, E(proxy_protocol), "off", NULL, 0, 0 },
};
#undef E

#define R(f) offsetof(struct conf_router, f)
static const struct key_def router_keys[] = {
	{ "rule", K_STR, R(rule), NULL, NULL, 0, 0 },
	{ "service", K_STR, R(service), NULL, NULL, 0, 0 },
	{ "entrypoints", K_STR, R(entrypoints), NULL, NULL, 0, 0 },
	{ "priority", K_INT, R(priority), NULL, NULL, -1000000, 1000000 },
	{ "middlewares", K_STR, R(middlewares), NULL, NULL, 0, 0 },
	{ "tls_resolver", K_STR, R(tls_resolver), NULL, NULL, 0, 0 },
	{ "tls_domains", K_STR, R(tls_domains), NULL, NULL, 0, 0 },
};
#undef R

#define S(f) offsetof(struct conf_service, f)
static const struct key_def service_keys[] = {
	{ "type", K_ENUM, S(type), "proxy", service_types, 0, 0 },
	{ "server", K_SERVER, 0, NULL, NULL, 0, 0 },
	{ "balance", K_ENUM, S(balance), "round_robin", balances, 0, 0 },
	{ "sticky_cookie", K_STR, S(sticky_cookie), NULL, NULL, 0, 0 },
	{ "pass_host_header", K_BOOL, S(pass_host_header), "on", NULL, 0, 0 },
	{ "connect_timeout", K_DURATION, S(connect_timeout_ms), "5s", NULL, 0, 0 },
	{ "response_timeout", K_DURATION, S(response_timeout_ms), "30s", NULL, 0, 0 },
	{ "max_idle_per_server", K_INT, S(max_idle_per_server), "32", NULL, 0, 100000 },
	{ "retries", K_INT, S(retries), "0", NULL, 0, 100 },
	{ "health_path", K_STR, S(health_path), NULL, NULL, 0, 0 },
	{ "health_interval", K_DURATION, S(health_interval_ms), "10s", NULL, 0, 0 },
	{ "health_timeout", K_DURATION, S(health_timeout_ms), "2s", NULL, 0, 0 },
	{ "health_status", K_STR, S(health_status), "200-399", NULL, 0, 0 },
	{ "health_host", K_STR, S(health_host), NULL, NULL, 0, 0 },
	{ "health_rise", K_INT, S(health_rise), "2", NULL, 1, 1000 },
	{ "health_fall", K_INT, S(health_fall), "3", NULL, 1, 1000 },
	{ "slow_start", K_DURATION, S(slow_start_ms), "0", NULL, 0, 0 },
	{ "root", K_STR, S(root), NULL, NULL, 0, 0 },
	{ "index", K_STR, S(index), "index.html", NULL, 0, 0 },
	{ "message", K_STR, S(message), "Hello from edgeproxy", NULL, 0, 0 },
};
#undef S

#define NKEYS(a) (sizeof(a) / sizeof((a)[0]))
static const struct section_def sections[] = {
	{ "global", SEC_GLOBAL, false, global_keys, NKEYS(global_keys) },
	{ "admin", SEC_ADMIN, false, admin_keys, NKEYS(admin_keys) },
	{ "tls", SEC_TLS, false, tls_keys, NKEYS(tls_keys) },
	{ "cert", SEC_CERT, true, cert_keys, NKEYS(cert_keys) },
	{ "entrypoint", SEC_ENTRYPOINT, true, entrypoint_keys, NKEYS(entrypoint_keys) },
	{ "router", SEC_ROUTER, true, router_keys, NKEYS(router_keys) },
	{ "service", SEC_SERVICE, true, service_keys, NKEYS(service_keys) },
	/* keys depend on the type: middleware.c validates them */
	{ "middleware", SEC_MIDDLEWARE, true, NULL, 0 },
	/* keys validated by acme_config.c */
	{ "acme", SEC_ACME, true, NULL, 0 },
};

/* Sections the SPEC names that this build does not implement yet: a clear error
 * beats silently ignoring a user's TLS or middleware settings. */
static const char *const unimplemented_sections[] = { NULL };

struct parse_state {
	struct config *cfg;
	struct conf_errors *errs;
	const char *file;
	const struct section_def *sec; /* NULL: outside any valid section */
	size_t index;                  /* which entry of the named-section array */
	int section_line;
	int key_lines[MAX_KEYS]; /* line each key was set on, 0 = not set */
	bool seen_global, seen_admin, seen_tls;
	int global_line, admin_line, tls_line;
};

void conf_error(struct conf_errors *errs, const char *file, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	char *full;
	if (asprintf(&full, "%s:%d: %s", file, line, msg) < 0)
		return;
	char **grown = realloc(errs->msgs, (errs->n + 1) * sizeof(*grown));
	if (!grown) {
		free(full);
		return;
	}
	errs->msgs = grown;
	errs->msgs[errs->n++] = full;
}

void conf_errors_free(struct conf_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		free(errs->msgs[i]);
	free(errs->msgs);
	errs->msgs = NULL;
	errs->n = 0;
}

static void *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d) {
		log_error("out of memory");
		abort();
	}
	return d;
}

static void *grow_array(void *arr, size_t n, size_t size)
{
	void *p = realloc(arr, (n + 1) * size);
	if (!p) {
		log_error("out of memory");
		abort();
	}
	memset((char *)p + n * size, 0, size);
	return p;
}

static bool valid_name(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-')
			return false;
	return true;
}

/* The struct that the current section's keys are written into. */
static char *section_base(struct parse_state *st)
{
	struct config *cfg = st->cfg;
	switch (st->sec->kind) {
	case SEC_GLOBAL: return (char *)&cfg->global;
	case SEC_ADMIN: return (char *)&cfg->admin;
	case SEC_TLS: return (char *)&cfg->tls;
	case SEC_CERT: return (char *)&cfg->certs[st->index];
	case SEC_MIDDLEWARE: return (char *)&cfg->middlewares[st->index];
	case SEC_ACME: return (char *)&cfg->acmes[st->index];
	case SEC_ENTRYPOINT: return (char *)&cfg->entrypoints[st->index];
	case SEC_ROUTER: return (char *)&cfg->routers[st->index];
	case SEC_SERVICE: return (char *)&cfg->services[st->index];
	case SEC_NONE: break;
	}
	abort();
}

/* Resolves a server's host once per load (musl's resolver; literals and
 * "localhost" need no /etc files, which a scratch container may lack). */
static int resolve_server(const char *host, uint16_t port, struct sockaddr_storage *addr, socklen_t *len)
{
	char lit[80];
	snprintf(lit, sizeof(lit), "%s:%u", strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, (unsigned)port);
	if (strchr(host, ':'))
		snprintf(lit, sizeof(lit), "[%s]:%u", host, (unsigned)port);
	if (confval_listen(lit, addr, len) == 0)
		return 0;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
	char service[8];
	snprintf(service, sizeof(service), "%u", (unsigned)port);
	if (getaddrinfo(host, service, &hints, &res) != 0)
		return -1;
	memcpy(addr, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* Parses `http://host:port [weight=N] [backup]`. Returns an error text or NULL. */
static const char *parse_server(const char *text, struct conf_server *out)
{
	char buf[512];
	if (strlen(text) >= sizeof(buf))
		return "server line too long";
	strcpy(buf, text);
	char *save = NULL;
	char *url = strtok_r(buf, " \t", &save);
	if (!url || strncmp(url, "http://", 7) != 0)
		return "server must be http://host:port";
	char *hostport = url + 7;
	size_t hl = strlen(hostport);
	if (hl > 0 && hostport[hl - 1] == '/')
		hostport[--hl] = '\0';
	char *host, *port;
	if (hostport[0] == '[') {
		char *end = strchr(hostport, ']');
		if (!end || end[1] != ':')
			return "server IPv6 address must be [addr]:port";
		*end = '\0';
		host = hostport + 1;
		port = end + 2;
	} else {
		char *colon = strrchr(hostport, ':');
		if (!colon)
			return "server needs a port (http://host:port)";
		*colon = '\0';
		host = hostport;
		port = colon + 1;
	}
	int64_t p;
	if (*host == '\0' || strchr(host, '/'))
		return "server host is empty or has a path";
	if (confval_int(port, 1, 65535, &p) < 0)
		return "server port must be 1-65535";
	out->weight = 1;
	out->backup = false;
	for (char *opt; (opt = strtok_r(NULL, " \t", &save));) {
		if (strncmp(opt, "weight=", 7) == 0) {
			if (confval_int(opt + 7, 0, 1000, &out->weight) < 0)
				return "weight must be 0-1000";
		} else if (strcmp(opt, "backup") == 0) {
			out->backup = true;
		} else {
			return "unknown server option (weight=N or backup)";
		}
	}
	if (resolve_server(host, (uint16_t)p, &out->addr, &out->addrlen) < 0)
		return "server host does not resolve";
	out->host = xstrdup(host);
	out->port = (uint16_t)p;
	char *a;
	if (strchr(host, ':') ? asprintf(&a, "[%s]:%u", host, (unsigned)p) < 0
			      : asprintf(&a, "%s:%u", host, (unsigned)p) < 0)
		abort();
	out->authority = a;
	if (asprintf(&out->url, "http://%s", a) < 0)
		abort();
	return NULL;
}

/* Parses one value into its field. Returns an error text or NULL. */
static const char *set_value(struct parse_state *st, const struct key_def *k, const char *value,
			     int line)
{
	char *field = section_base(st) + k->off;
	switch (k->type) {
	case K_STR: {
		char **p = (char **)field;
		free(*p);
		/* GCC 12's analyzer reports the copy as leaked right at this store
		 * (through the table's offset, k->off), though the field keeps it
		 * until config_free: a false positive. */
		ANALYZER_IGNORE("-Wanalyzer-malloc-leak")
		*p = xstrdup(value);
		ANALYZER_END
		return NULL;
	}
	case K_BOOL:
		return confval_bool(value, (bool *)field) < 0 ? "expected on/off, true/false, yes/no or 1/0" : NULL;
	case K_DURATION:
		return confval_duration(value, (int64_t *)field) < 0 ? "bad duration (like 500ms, 10s, 5m, 72h, 30d)" : NULL;
	case K_SIZE:
		return confval_size(value, (uint64_t *)field) < 0 ? "bad size (like 512, 16k, 4m)" : NULL;
	case K_INT: {
		if (k->off == offsetof(struct conf_global, workers) && st->sec->kind == SEC_GLOBAL &&
		    strcmp(value, "auto") == 0) {
			*(int64_t *)field = 0;
			return NULL;
		}
		static char msg[80];
		if (confval_int(value, k->min, k->max, (int64_t *)field) == 0)
			return NULL;
		snprintf(msg, sizeof(msg), "expected an integer from %lld to %lld", (long long)k->min,
			 (long long)k->max);
		return msg;
	}
	case K_ENUM:
		for (int i = 0; k->choices[i]; i++) {
			if (strcmp(value, k->choices[i]) == 0) {
				*(int *)field = i;
				return NULL;
			}
		}
		return "not one of the allowed values";
	case K_SERVER: {
		struct conf_service *svc = &st->cfg->services[st->index];
		struct conf_server srv = { 0 };
		const char *err = parse_server(value, &srv);
		if (err)
			return err;
		srv.line = line;
		svc->servers = grow_array(svc->servers, svc->n_servers, sizeof(*svc->servers));
		svc->servers[svc->n_servers++] = srv;
		return NULL;
	}
	}
	return "internal: unknown key type";
}

static void apply_defaults(struct parse_state *st)
{
	for (size_t i = 0; i < st->sec->nkeys; i++) {
		const struct key_def *k = &st->sec->keys[i];
		if (k->def && set_value(st, k, k->def, 0) != NULL)
			abort(); /* a default that does not parse is a bug in the tables */
	}
}

static int key_line(const struct parse_state *st, const char *name)
{
	for (size_t i = 0; i < st->sec->nkeys; i++)
		if (strcmp(st->sec->keys[i].name, name) == 0)
			return st->key_lines[i];
	return 0;
}

/* Checks that need the whole section: required keys, values that depend on others. */
static void finish_section(struct parse_state *st)
{
	if (!st->sec)
		return;
	const char *f = st->file;
	int sl = st->section_line;
	struct config *cfg = st->cfg;
	switch (st->sec->kind) {
	case SEC_ENTRYPOINT: {
		struct conf_entrypoint *ep = &cfg->entrypoints[st->index];
		int ll = key_line(st, "listen");
		if (!ep->listen)
			conf_error(st->errs, f, sl, "[entrypoint %s] needs listen = ADDRESS:PORT", ep->name);
		else if (confval_listen(ep->listen, &ep->addr, &ep->addrlen) < 0)
			conf_error(st->errs, f, ll, "listen: bad address '%s' (like :80, 127.0.0.1:8080, [::]:443)",
				   ep->listen);
		if (ep->trusted_proxies_text &&
		    cidr_list_parse(slice_cstr(ep->trusted_proxies_text), &ep->trusted_proxies) < 0)
			conf_error(st->errs, f, key_line(st, "trusted_proxies"),
				   "trusted_proxies: bad CIDR list '%s'", ep->trusted_proxies_text);
		if (ep->max_header_size < 1024 || ep->max_header_size > 1024 * 1024)
			conf_error(st->errs, f, key_line(st, "max_header_size"),
				   "max_header_size must be between 1k and 1m");
		if (ep->proxy_protocol)
			conf_error(st->errs, f, key_line(st, "proxy_protocol"),
				   "proxy_protocol: not implemented in this build");
		break;
	}
	case SEC_ROUTER: {
		struct conf_router *r = &cfg->routers[st->index];
		r->rule_line = key_line(st, "rule");
		r->service_line = key_line(st, "service");
		r->entrypoints_line = key_line(st, "entrypoints");
		r->priority_set = key_line(st, "priority") != 0;
		if (!r->rule) {
			conf_error(st->errs, f, sl, "[router %s] needs rule = ...", r->name);
		} else {
			char err[160];
			int col = 0;
			r->compiled = rule_compile(r->rule, err, sizeof(err), &col);
			if (!r->compiled)
				conf_error(st->errs, f, r->rule_line, "rule: %s at column %d", err, col);
		}
		if (!r->service)
			conf_error(st->errs, f, sl, "[router %s] needs service = NAME", r->name);
		r->middlewares_line = key_line(st, "middlewares");
		r->tls_resolver_line = key_line(st, "tls_resolver");
		if (r->tls_domains && !r->tls_resolver)
			conf_error(st->errs, f, key_line(st, "tls_domains"), "tls_domains: needs tls_resolver");
		break;
	}
	case SEC_SERVICE: {
		struct conf_service *s = &cfg->services[st->index];
		if (s->type == SERVICE_PROXY && s->n_servers == 0)
			conf_error(st->errs, f, sl, "[service %s] type=proxy needs at least one server = http://host:port",
				   s->name);
		if (s->type != SERVICE_PROXY && s->n_servers > 0)
			conf_error(st->errs, f, s->servers[0].line, "server: only type=proxy services have servers");
		if (s->type == SERVICE_STATIC && !s->root)
			conf_error(st->errs, f, sl, "[service %s] type=static needs root = DIRECTORY", s->name);
		if (s->type == SERVICE_STATIC && s->root) {
			struct stat sb;
			if (stat(s->root, &sb) < 0 || !S_ISDIR(sb.st_mode))
				conf_error(st->errs, f, key_line(st, "root"), "root: '%s' is not a directory", s->root);
		}
		if (s->health_path && (s->health_path[0] != '/' || strlen(s->health_path) > 256 ||
				       strpbrk(s->health_path, " \t\r\n")))
			conf_error(st->errs, f, key_line(st, "health_path"),
				   "health_path: an absolute path of at most 256 bytes, without spaces");
		if (confval_status_list(s->health_status) < 0)
			conf_error(st->errs, f, key_line(st, "health_status"),
				   "health_status: statuses or ranges like 200-399 or 200,204");
		if (s->health_host && strpbrk(s->health_host, " \t\r\n/"))
			conf_error(st->errs, f, key_line(st, "health_host"), "health_host: a host name");
		if (strlen(s->message) > 1024)
			conf_error(st->errs, f, key_line(st, "message"), "message: longer than 1024 bytes");
		if (strchr(s->index, '/'))
			conf_error(st->errs, f, key_line(st, "index"), "index: a file name, not a path");
		break;
	}
	case SEC_ADMIN: {
		struct conf_admin *a = &cfg->admin;
		if (!a->listen)
			break;
		if (confval_listen(a->listen, &a->addr, &a->addrlen) < 0) {
			conf_error(st->errs, f, key_line(st, "listen"), "listen: bad address '%s'", a->listen);
			break;
		}
		a->enabled = true;
		/* The admin listener is an entry point of its own, with the default
		 * timeouts and no routers: listeners, reloads and upgrades treat it alike. */
		struct conf_entrypoint *ep;
		cfg->entrypoints = grow_array(cfg->entrypoints, cfg->n_entrypoints, sizeof(*cfg->entrypoints));
		ep = &cfg->entrypoints[cfg->n_entrypoints++];
		ep->name = xstrdup(ADMIN_ENTRYPOINT);
		ep->line = sl;
		ep->listen = xstrdup(a->listen);
		ep->addr = a->addr;
		ep->addrlen = a->addrlen;
		ep->is_admin = true;
		ep->header_timeout_ms = 5000;
		ep->idle_timeout_ms = 60000;
		ep->body_timeout_ms = 30000;
		ep->max_header_size = 16384;
		break;
	}
	case SEC_TLS:
		cfg->tls.line = sl;
		break;
	case SEC_MIDDLEWARE: {
		struct conf_middleware *m = &cfg->middlewares[st->index];
		m->compiled = middleware_compile(m, f, st->errs);
		break;
	}
	case SEC_ACME: {
		struct conf_acme *a = &cfg->acmes[st->index];
		a->compiled = acme_resolver_compile(a->kv, a->n_kv, a->name, a->line, f, st->errs);
		break;
	}
	case SEC_CERT: {
		struct conf_cert *c = &cfg->certs[st->index];
		if (!c->cert_file)
			conf_error(st->errs, f, sl, "[cert %s] needs cert_file = PEM chain", c->name);
		if (!c->key_file)
			conf_error(st->errs, f, sl, "[cert %s] needs key_file = PEM key", c->name);
		break;
	}
	case SEC_GLOBAL:
		if (strcmp(cfg->global.access_log, "") == 0)
			conf_error(st->errs, f, key_line(st, "access_log"), "access_log: empty (use off)");
		break;
	case SEC_NONE:
		break;
	}
	st->sec = NULL;
}

static const char *section_name(const struct parse_state *st)
{
	switch (st->sec->kind) {
	case SEC_ENTRYPOINT: return st->cfg->entrypoints[st->index].name;
	case SEC_ROUTER: return st->cfg->routers[st->index].name;
	case SEC_SERVICE: return st->cfg->services[st->index].name;
	case SEC_CERT: return st->cfg->certs[st->index].name;
	case SEC_MIDDLEWARE: return st->cfg->middlewares[st->index].name;
	case SEC_ACME: return st->cfg->acmes[st->index].name;
	default: return NULL;
	}
}

/* Returns the line of an earlier named section of the same kind, or 0. */
static int find_named(struct parse_state *st, enum section_kind kind, const char *name)
{
	struct config *c = st->cfg;
	if (kind == SEC_CERT) {
		for (size_t i = 0; i < c->n_certs; i++)
			if (strcmp(c->certs[i].name, name) == 0)
				return c->certs[i].line;
		return 0;
	}
	if (kind == SEC_MIDDLEWARE) {
		for (size_t i = 0; i < c->n_middlewares; i++)
			if (strcmp(c->middlewares[i].name, name) == 0)
				return c->middlewares[i].line;
		return 0;
	}
	if (kind == SEC_ACME) {
		for (size_t i = 0; i < c->n_acmes; i++)
			if (strcmp(c->acmes[i].name, name) == 0)
				return c->acmes[i].line;
		return 0;
	}
	size_t n = kind == SEC_ENTRYPOINT ? c->n_entrypoints : kind == SEC_ROUTER ? c->n_routers : c->n_services;
	for (size_t i = 0; i < n; i++) {
		const char *other = kind == SEC_ENTRYPOINT ? c->entrypoints[i].name
				    : kind == SEC_ROUTER   ? c->routers[i].name
							   : c->services[i].name;
		if (strcmp(other, name) == 0)
			return kind == SEC_ENTRYPOINT ? c->entrypoints[i].line
			       : kind == SEC_ROUTER   ? c->routers[i].line
						      : c->services[i].line;
	}
	return 0;
}

static void begin_section(struct parse_state *st, const char *header, int line)
{
	finish_section(st);
	memset(st->key_lines, 0, sizeof(st->key_lines));
	st->section_line = line;
	char word[64];
	const char *space = strchr(header, ' ');
	size_t wl = space ? (size_t)(space - header) : strlen(header);
	const char *name = space ? space + 1 : NULL;
	while (name && *name == ' ')
		name++;
	if (wl >= sizeof(word)) {
		conf_error(st->errs, st->file, line, "unknown section [%s]", header);
		return;
	}
	memcpy(word, header, wl);
	word[wl] = '\0';
	const struct section_def *def = NULL;
	for (size_t i = 0; i < NKEYS(sections); i++)
		if (strcmp(sections[i].word, word) == 0)
			def = &sections[i];
	if (!def) {
		for (int i = 0; unimplemented_sections[i]; i++)
			if (strcmp(unimplemented_sections[i], word) == 0) {
				conf_error(st->errs, st->file, line, "[%s] sections are not implemented in this build",
					   word);
				return;
			}
		conf_error(st->errs, st->file, line, "unknown section [%s]", header);
		return;
	}
	if (def->kind == SEC_ENTRYPOINT && name && strcmp(name, ADMIN_ENTRYPOINT) == 0) {
		conf_error(st->errs, st->file, line, "[entrypoint %s]: the name is reserved for the [admin] listener",
			   name);
		return;
	}
	if (def->named && (!name || !valid_name(name))) {
		conf_error(st->errs, st->file, line, "[%s NAME] needs a name of letters, digits, '_', '.', '-'",
			   word);
		return;
	}
	if (!def->named && name) {
		conf_error(st->errs, st->file, line, "[%s] takes no name", word);
		return;
	}
	struct config *c = st->cfg;
	if (def->named) {
		int prev = find_named(st, def->kind, name);
		if (prev) {
			conf_error(st->errs, st->file, line, "duplicate [%s %s] (first defined at line %d)", word,
				   name, prev);
			return;
		}
	}
	switch (def->kind) {
	case SEC_GLOBAL:
	case SEC_ADMIN:
	case SEC_TLS: {
		bool *seen = def->kind == SEC_GLOBAL ? &st->seen_global
			     : def->kind == SEC_ADMIN ? &st->seen_admin
						      : &st->seen_tls;
		int *first = def->kind == SEC_GLOBAL ? &st->global_line
			     : def->kind == SEC_ADMIN ? &st->admin_line
						      : &st->tls_line;
		if (*seen) {
			conf_error(st->errs, st->file, line, "duplicate [%s] (first at line %d)", word, *first);
			return;
		}
		*seen = true;
		*first = line;
		break;
	}
	case SEC_ACME:
		c->acmes = grow_array(c->acmes, c->n_acmes, sizeof(*c->acmes));
		st->index = c->n_acmes++;
		c->acmes[st->index].name = xstrdup(name);
		c->acmes[st->index].line = line;
		break;
	case SEC_MIDDLEWARE:
		c->middlewares = grow_array(c->middlewares, c->n_middlewares, sizeof(*c->middlewares));
		st->index = c->n_middlewares++;
		c->middlewares[st->index].name = xstrdup(name);
		c->middlewares[st->index].line = line;
		break;
	case SEC_CERT:
		c->certs = grow_array(c->certs, c->n_certs, sizeof(*c->certs));
		st->index = c->n_certs++;
		c->certs[st->index].name = xstrdup(name);
		c->certs[st->index].line = line;
		break;
	case SEC_ENTRYPOINT:
		c->entrypoints = grow_array(c->entrypoints, c->n_entrypoints, sizeof(*c->entrypoints));
		st->index = c->n_entrypoints++;
		c->entrypoints[st->index].name = xstrdup(name);
		c->entrypoints[st->index].line = line;
		break;
	case SEC_ROUTER:
		c->routers = grow_array(c->routers, c->n_routers, sizeof(*c->routers));
		st->index = c->n_routers++;
		c->routers[st->index].name = xstrdup(name);
		c->routers[st->index].line = line;
		break;
	case SEC_SERVICE:
		c->services = grow_array(c->services, c->n_services, sizeof(*c->services));
		st->index = c->n_services++;
		c->services[st->index].name = xstrdup(name);
		c->services[st->index].line = line;
		break;
	case SEC_NONE:
		break;
	}
	st->sec = def;
	/* [global] and [tls] defaults were applied up front; not re-applied here. */
	if (def->kind != SEC_GLOBAL && def->kind != SEC_TLS)
		apply_defaults(st);
}

static int on_ini_entry(void *user, const char *section, const char *name, const char *value, int line)
{
	struct parse_state *st = user;
	if (!name) { /* INI_CALL_HANDLER_ON_NEW_SECTION: a section header */
		begin_section(st, section, line);
		return 1;
	}
	if (section[0] == '\0') {
		conf_error(st->errs, st->file, line, "'%s' is outside any section", name);
		return 1;
	}
	if (!st->sec)
		return 1; /* the section header was already reported */
	if (st->sec->kind == SEC_MIDDLEWARE || st->sec->kind == SEC_ACME) {
		struct conf_kv **kv = st->sec->kind == SEC_ACME ? &st->cfg->acmes[st->index].kv
								: &st->cfg->middlewares[st->index].kv;
		size_t *n = st->sec->kind == SEC_ACME ? &st->cfg->acmes[st->index].n_kv
						      : &st->cfg->middlewares[st->index].n_kv;
		*kv = grow_array(*kv, *n, sizeof(**kv));
		(*kv)[(*n)++] = (struct conf_kv){ xstrdup(name), xstrdup(value), line };
		return 1;
	}
	for (size_t i = 0; i < st->sec->nkeys; i++) {
		const struct key_def *k = &st->sec->keys[i];
		if (strcmp(k->name, name) != 0)
			continue;
		if (st->key_lines[i] && k->type != K_SERVER) {
			conf_error(st->errs, st->file, line, "duplicate key '%s' (first at line %d)", name,
				   st->key_lines[i]);
			return 1;
		}
		if (!st->key_lines[i])
			st->key_lines[i] = line;
		const char *err = set_value(st, k, value, line);
		if (err)
			conf_error(st->errs, st->file, line, "%s: %s: '%s'", name, err, value);
		return 1;
	}
	const char *sn = section_name(st);
	conf_error(st->errs, st->file, line, "unknown key '%s' in [%s%s%s]", name, st->sec->word, sn ? " " : "",
		   sn ? sn : "");
	return 1;
}

const struct conf_service *config_find_service(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_services; i++)
		if (strcmp(cfg->services[i].name, name) == 0)
			return &cfg->services[i];
	return NULL;
}

const struct conf_entrypoint *config_find_entrypoint(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_entrypoints; i++)
		if (strcmp(cfg->entrypoints[i].name, name) == 0)
			return &cfg->entrypoints[i];
	return NULL;
}

static void add_acme_domain(void *ctx, const char *host)
{
	struct conf_router *r = ctx;
	for (size_t i = 0; i < r->n_acme_domains; i++)
		if (strcmp(r->acme_domains[i], host) == 0)
			return;
	r->acme_domains = grow_array(r->acme_domains, r->n_acme_domains, sizeof(*r->acme_domains));
	r->acme_domains[r->n_acme_domains++] = xstrdup(host);
}

/* A router with tls_resolver: its resolver, and the names to certify. */
static void resolve_acme_router(struct config *cfg, struct conf_router *r, struct conf_errors *errs, const char *file)
{
	for (size_t i = 0; i < cfg->n_acmes; i++)
		if (strcmp(cfg->acmes[i].name, r->tls_resolver) == 0)
			r->acme = cfg->acmes[i].compiled;
	if (!r->acme) {
		bool exists = false;
		for (size_t i = 0; i < cfg->n_acmes; i++)
			exists = exists || strcmp(cfg->acmes[i].name, r->tls_resolver) == 0;
		if (!exists)
			conf_error(errs, file, r->tls_resolver_line, "tls_resolver: no [acme %s]", r->tls_resolver);
		return;
	}
	if (r->tls_domains) {
		char *list = xstrdup(r->tls_domains), *save = NULL;
		for (char *tok = strtok_r(list, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
			for (char *p = tok; *p; p++)
				*p = ascii_lower(*p);
			add_acme_domain(r, tok);
		}
		free(list);
	} else if (r->compiled) {
		rule_hosts(r->compiled, add_acme_domain, r);
	}
	char err[200];
	if (r->n_acme_domains == 0)
		conf_error(errs, file, r->tls_resolver_line,
			   "tls_resolver: the rule names no Host() to certify; set tls_domains");
	else if (acme_check_domains(r->acme, (const char *const *)r->acme_domains, r->n_acme_domains, err,
				    sizeof(err)) < 0)
		conf_error(errs, file, r->tls_resolver_line, "tls_resolver: %s", err);
}

/* References between sections, checked once everything is read. */
static void check_references(struct config *cfg, struct conf_errors *errs, const char *file)
{
	size_t n_plain = 0;
	for (size_t i = 0; i < cfg->n_entrypoints; i++)
		n_plain += !cfg->entrypoints[i].is_admin;
	if (n_plain == 0)
		conf_error(errs, file, 1, "no [entrypoint NAME] section: nothing would listen");
	for (size_t i = 0; i < cfg->n_routers; i++) {
		struct conf_router *r = &cfg->routers[i];
		if (r->service && !config_find_service(cfg, r->service))
			conf_error(errs, file, r->service_line, "service: no [service %s]", r->service);
		if (r->middlewares) {
			char *list = xstrdup(r->middlewares), *save = NULL;
			for (char *tok = strtok_r(list, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
				struct conf_middleware *m = NULL;
				for (size_t j = 0; j < cfg->n_middlewares; j++)
					if (strcmp(cfg->middlewares[j].name, tok) == 0)
						m = &cfg->middlewares[j];
				if (!m) {
					conf_error(errs, file, r->middlewares_line, "middlewares: no [middleware %s]", tok);
					continue;
				}
				r->chain = grow_array(r->chain, r->chain_len, sizeof(*r->chain));
				r->chain[r->chain_len++] = m->compiled;
			}
			free(list);
		}
		if (r->tls_resolver)
			resolve_acme_router(cfg, r, errs, file);
		if (!r->entrypoints)
			continue;
		char *list = xstrdup(r->entrypoints), *save = NULL;
		for (char *tok = strtok_r(list, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
			const struct conf_entrypoint *ep = config_find_entrypoint(cfg, tok);
			if (!ep || ep->is_admin)
				conf_error(errs, file, r->entrypoints_line, "entrypoints: no [entrypoint %s]", tok);
		}
		free(list);
	}
	if (cfg->tls.default_cert) {
		bool found = false;
		for (size_t i = 0; i < cfg->n_certs; i++)
			found = found || strcmp(cfg->certs[i].name, cfg->tls.default_cert) == 0;
		if (!found)
			conf_error(errs, file, cfg->tls.line, "default_cert: no [cert %s]", cfg->tls.default_cert);
	}
	for (size_t i = 0; i < cfg->n_entrypoints; i++) {
		struct conf_entrypoint *ep = &cfg->entrypoints[i];
		if (!ep->redirect_to)
			continue;
		const struct conf_entrypoint *to = config_find_entrypoint(cfg, ep->redirect_to);
		if (!to || to->is_admin)
			conf_error(errs, file, ep->line, "redirect_to: no [entrypoint %s]", ep->redirect_to);
		else if (to == ep)
			conf_error(errs, file, ep->line, "redirect_to: an entry point cannot redirect to itself");
	}
	/* Two entry points on the same address would fail at bind; say where. */
	for (size_t i = 0; i < cfg->n_entrypoints; i++)
		for (size_t j = 0; j < i; j++)
			if (cfg->entrypoints[i].addrlen && cfg->entrypoints[i].addrlen == cfg->entrypoints[j].addrlen &&
			    memcmp(&cfg->entrypoints[i].addr, &cfg->entrypoints[j].addr, cfg->entrypoints[i].addrlen) == 0)
				conf_error(errs, file, cfg->entrypoints[i].line,
					   "listen: same address as [entrypoint %s] (line %d)", cfg->entrypoints[j].name,
					   cfg->entrypoints[j].line);
}

struct config *config_load(const char *path, struct conf_errors *errs)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		abort();
	cfg->path = xstrdup(path);
	struct parse_state st = { .cfg = cfg, .errs = errs, .file = path };
	size_t errors_before = errs->n;

	/* [global] and [tls] may be absent or anywhere: their defaults come first. */
	st.sec = &sections[0];
	apply_defaults(&st);
	st.sec = &sections[2];
	apply_defaults(&st);
	st.sec = NULL;

	FILE *fp = fopen(path, "r");
	if (!fp) {
		conf_error(errs, path, 0, "cannot open: %s", strerror(errno));
		config_free(cfg);
		return NULL;
	}
	int rc = ini_parse_file(fp, on_ini_entry, &st);
	fclose(fp);
	finish_section(&st);
	if (rc > 0)
		conf_error(errs, path, rc, "syntax error (expected [section], key = value, or a ; comment)");
	else if (rc < 0)
		conf_error(errs, path, 0, "cannot read the file");
	check_references(cfg, errs, path);
	if (errs->n > errors_before) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	struct conf_global *g = &cfg->global;
	free(g->state_dir);
	free(g->user);
	free(g->group);
	free(g->access_log);
	free(cfg->admin.listen);
	free(cfg->tls.default_cert);
	free(cfg->tls.client_ca);
	for (size_t i = 0; i < cfg->n_certs; i++) {
		free(cfg->certs[i].name);
		free(cfg->certs[i].cert_file);
		free(cfg->certs[i].key_file);
	}
	free(cfg->certs);
	for (size_t i = 0; i < cfg->n_middlewares; i++) {
		struct conf_middleware *m = &cfg->middlewares[i];
		free(m->name);
		for (size_t j = 0; j < m->n_kv; j++) {
			free(m->kv[j].key);
			free(m->kv[j].value);
		}
		free(m->kv);
		middleware_free(m->compiled);
	}
	free(cfg->middlewares);
	for (size_t i = 0; i < cfg->n_acmes; i++) {
		struct conf_acme *a = &cfg->acmes[i];
		free(a->name);
		for (size_t j = 0; j < a->n_kv; j++) {
			free(a->kv[j].key);
			free(a->kv[j].value);
		}
		free(a->kv);
		acme_resolver_free(a->compiled);
	}
	free(cfg->acmes);
	for (size_t i = 0; i < cfg->n_entrypoints; i++) {
		struct conf_entrypoint *e = &cfg->entrypoints[i];
		free(e->name);
		free(e->listen);
		free(e->redirect_to);
		free(e->trusted_proxies_text);
		cidr_list_free(&e->trusted_proxies);
	}
	free(cfg->entrypoints);
	for (size_t i = 0; i < cfg->n_routers; i++) {
		struct conf_router *r = &cfg->routers[i];
		free(r->name);
		free(r->rule);
		rule_free(r->compiled);
		free(r->service);
		free(r->entrypoints);
		free(r->middlewares);
		free(r->chain);
		free(r->tls_resolver);
		free(r->tls_domains);
		for (size_t j = 0; j < r->n_acme_domains; j++)
			free(r->acme_domains[j]);
		free(r->acme_domains);
	}
	free(cfg->routers);
	for (size_t i = 0; i < cfg->n_services; i++) {
		struct conf_service *s = &cfg->services[i];
		free(s->name);
		for (size_t j = 0; j < s->n_servers; j++) {
			free(s->servers[j].url);
			free(s->servers[j].host);
			free(s->servers[j].authority);
		}
		free(s->servers);
		free(s->sticky_cookie);
		free(s->health_path);
		free(s->health_status);
		free(s->health_host);
		free(s->root);
		free(s->index);
		free(s->message);
	}
	free(cfg->services);
	free(cfg);
}
