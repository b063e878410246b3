/* config.h - the INI file as plain structs: parsed by inih, every section and key
 * checked, every error reported as FILE:LINE: message. The runtime never reads
 * these directly; snapshot.c compiles them into what the data path uses. */
#ifndef EDGEPROXY_CONFIG_H
#define EDGEPROXY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cidr.h"

struct rule;


enum conf_access_format { ACCESS_LOG_COMMON, ACCESS_LOG_JSON };

struct conf_global {
	char *state_dir;
	char *user, *group;
	int log_level;
	char *access_log; /* "off", "stdout", "stderr" or a path */
	int access_log_format;
	bool access_log_internal;
	int64_t grace_period_ms;
	bool watch;
	int64_t workers; /* 0 = auto */
	int64_t max_connections;
};

struct conf_entrypoint {
	char *name;
	int line;
	char *listen;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	bool tls;
	char *redirect_to;
	int64_t header_timeout_ms, idle_timeout_ms, body_timeout_ms;
	uint64_t max_header_size, max_body_size;
	char *trusted_proxies_text;
	struct cidr_list trusted_proxies;
	bool proxy_protocol;
	bool is_admin; /* the [admin] listener: no routers, admin endpoints only */
};

struct conf_router {
	char *name;
	int line;
	char *rule;
	int rule_line;
	struct rule *compiled; /* owner: the config */
	char *service;
	int service_line;
	char *entrypoints; /* comma list; NULL = all */
	int entrypoints_line;
	int64_t priority;
	bool priority_set;
	char *middlewares;
	struct middleware **chain; /* compiled from middlewares; the pointers are owned by
				    * conf_middleware, the array by the router */
	size_t chain_len;
	int middlewares_line;
	char *tls_resolver;
	char *tls_domains;
	int tls_resolver_line;
	/* ACME: the names to certify (tls_domains, or the rule's Host() names),
	 * lowercase, and the resolver; owner: the config */
	char **acme_domains;
	size_t n_acme_domains;
	const struct acme_resolver *acme;
};

/* One `server = http://host:port [weight=N] [backup]` line. */
struct conf_server {
	char *url;  /* "http://host:port" as written, for logs and metrics */
	char *host; /* name or literal, without brackets */
	char *authority; /* "host:port" ("[v6]:port"), the Host sent when pass_host_header = off */
	uint16_t port;
	struct sockaddr_storage addr; /* resolved when the configuration is loaded */
	socklen_t addrlen;
	int64_t weight;
	bool backup;
	int line;
};

enum conf_service_type { SERVICE_PROXY, SERVICE_STATIC, SERVICE_HELLO };
enum conf_balance { BALANCE_ROUND_ROBIN, BALANCE_LEAST_CONN, BALANCE_IP_HASH };

struct conf_service {
	char *name;
	int line;
	int type;
	struct conf_server *servers;
	size_t n_servers;
	int balance;
	char *sticky_cookie;
	bool pass_host_header;
	int64_t connect_timeout_ms, response_timeout_ms;
	int64_t max_idle_per_server, retries;
	char *health_path;
	int64_t health_interval_ms, health_timeout_ms;
	char *health_status;
	char *health_host;
	int64_t health_rise, health_fall;
	int64_t slow_start_ms;
	char *root;
	char *index;
	char *message;
};

/* The entry point that the [admin] listener becomes. */
#define ADMIN_ENTRYPOINT "admin"

enum conf_tls_ciphers { TLS_CIPHERS_MODERN, TLS_CIPHERS_COMPATIBLE };

struct conf_tls {
	int line;        /* of [tls], 0 when absent (defaults apply) */
	int min_version; /* index into "1.0", "1.1", "1.2" */
	int ciphers;
	char *default_cert;
	int64_t session_cache;
	char *client_ca;
};

struct conf_cert {
	char *name;
	int line;
	char *cert_file, *key_file;
};

/* One key = value line of a section whose keys depend on its type. */
struct conf_kv {
	char *key, *value;
	int line;
};

struct middleware;

struct conf_middleware {
	char *name;
	int line;
	struct conf_kv *kv; /* in file order; owner: the config */
	size_t n_kv;
	struct middleware *compiled; /* owner: the config */
};

struct acme_resolver;

struct conf_acme {
	char *name;
	int line;
	struct conf_kv *kv; /* in file order; owner: the config */
	size_t n_kv;
	struct acme_resolver *compiled; /* owner: the config */
};

struct conf_admin {
	bool enabled; /* the section exists and has listen */
	char *listen;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	bool metrics, dashboard;
};

struct config {
	char *path;
	struct conf_global global;
	struct conf_admin admin;
	struct conf_tls tls;
	struct conf_cert *certs;
	size_t n_certs;
	struct conf_middleware *middlewares;
	size_t n_middlewares;
	struct conf_acme *acmes;
	size_t n_acmes;
	struct conf_entrypoint *entrypoints;
	size_t n_entrypoints;
	struct conf_router *routers;
	size_t n_routers;
	struct conf_service *services;
	size_t n_services;
};

/* Collected errors, each "FILE:LINE: message". */
struct conf_errors {
	char **msgs;
	size_t n;
};

/* Parses and validates path. Returns the config, or NULL with every problem found
 * appended to errs (never stops at the first one). */
struct config *config_load(const char *path, struct conf_errors *errs);
void config_free(struct config *cfg);

/* Adds "FILE:LINE: message" to errs. */
void conf_error(struct conf_errors *errs, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void conf_errors_free(struct conf_errors *errs);

const struct conf_service *config_find_service(const struct config *cfg, const char *name);
const struct conf_entrypoint *config_find_entrypoint(const struct config *cfg, const char *name);

#endif
