/* snapshot.h - the immutable runtime form of one configuration: router tables per
 * entry point (sorted by priority) and services. Built once per load or reload;
 * each connection holds a reference to the snapshot it started with. */
#ifndef EDGEPROXY_SNAPSHOT_H
#define EDGEPROXY_SNAPSHOT_H

#include <stdint.h>

#include "config.h"
#include "rule.h"

struct upstream_group;
struct tls_store;
struct acme_job;

struct service_rt {
	const struct conf_service *conf;
	struct slice message;         /* type=hello */
	struct upstream_group *group; /* type=proxy; owner: the snapshot */
};

struct route {
	const char *name;
	const struct rule *rule;
	int64_t priority;
	size_t rule_len;
	const struct service_rt *service;
	struct middleware *const *chain; /* the router's middlewares, in order */
	size_t chain_len;
};

struct entrypoint_rt {
	const struct conf_entrypoint *conf;
	struct route *routes; /* highest priority first; owner: the snapshot */
	size_t n_routes;
	int redirect_port;    /* redirect_to target's port, 0 = no redirect */
};

struct snapshot {
	unsigned refs;
	uint64_t generation;
	struct config *cfg; /* owner: the snapshot */
	struct entrypoint_rt *entrypoints;
	size_t n_entrypoints;
	struct service_rt *services;
	size_t n_services;
	struct tls_store *tls; /* when an entry point terminates TLS; owner: the snapshot */
	struct acme_job *acme_jobs; /* routers with tls_resolver; owner: the snapshot */
	size_t n_acme_jobs;
};

/* Compiles cfg into a snapshot that takes ownership of it (also on failure);
 * loads certificates, reporting their errors into errs. refs starts at 1. */
struct snapshot *snapshot_build(struct config *cfg, uint64_t generation, struct conf_errors *errs);
struct snapshot *snapshot_ref(struct snapshot *s);
void snapshot_unref(struct snapshot *s);

const struct entrypoint_rt *snapshot_entrypoint(const struct snapshot *s, const char *name);
/* The first route of ep whose rule matches, or NULL (404). */
const struct route *snapshot_route(const struct entrypoint_rt *ep, const struct rule_subject *subject);

#endif
