/* snapshot.c - compiles a validated config into per-entry-point router tables.
 * Rules were compiled during validation; the snapshot only orders and links them. */
#include "snapshot.h"

#include "acme.h"
#include "tls.h"
#include "upstream.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

static bool router_on_entrypoint(const struct conf_router *r, const struct conf_entrypoint *conf)
{
	const char *ep = conf->name;
	if (conf->is_admin)
		return false;
	if (!r->entrypoints)
		return true; /* SPEC: default is every entry point */
	size_t el = strlen(ep);
	for (const char *p = r->entrypoints; *p;) {
		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		size_t n = strcspn(p, ", \t");
		if (n == el && memcmp(p, ep, el) == 0)
			return true;
		p += n;
	}
	return false;
}

/* SPEC §3: higher priority wins; ties go to the longer rule, then the name. */
static int route_order(const void *a, const void *b)
{
	const struct route *x = a, *y = b;
	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	if (x->rule_len != y->rule_len)
		return x->rule_len > y->rule_len ? -1 : 1;
	return strcmp(x->name, y->name);
}

static const struct service_rt *find_service(const struct snapshot *s, const char *name)
{
	for (size_t i = 0; i < s->n_services; i++)
		if (strcmp(s->services[i].conf->name, name) == 0)
			return &s->services[i];
	return NULL;
}

static int addr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

struct snapshot *snapshot_build(struct config *cfg, uint64_t generation, struct conf_errors *errs)
{
	struct snapshot *s = calloc(1, sizeof(*s));
	if (!s) {
		config_free(cfg);
		return NULL;
	}
	s->refs = 1;
	s->generation = generation;
	s->cfg = cfg;
	s->services = calloc(cfg->n_services ? cfg->n_services : 1, sizeof(*s->services));
	s->entrypoints = calloc(cfg->n_entrypoints ? cfg->n_entrypoints : 1, sizeof(*s->entrypoints));
	if (!s->services || !s->entrypoints)
		goto fail;
	s->n_services = cfg->n_services;
	for (size_t i = 0; i < cfg->n_services; i++) {
		s->services[i].conf = &cfg->services[i];
		s->services[i].message = slice_cstr(cfg->services[i].message);
		if (cfg->services[i].type == SERVICE_PROXY &&
		    !(s->services[i].group = upstream_group_new(&cfg->services[i])))
			goto fail;
	}
	/* ACME jobs point into the config, which the snapshot owns. */
	s->acme_jobs = calloc(cfg->n_routers ? cfg->n_routers : 1, sizeof(*s->acme_jobs));
	if (!s->acme_jobs)
		goto fail;
	for (size_t i = 0; i < cfg->n_routers; i++) {
		const struct conf_router *r = &cfg->routers[i];
		if (!r->acme || r->n_acme_domains == 0)
			continue;
		s->acme_jobs[s->n_acme_jobs++] = (struct acme_job){
			.resolver = r->acme,
			.router = r->name,
			.domains = (const char *const *)r->acme_domains,
			.n_domains = r->n_acme_domains,
		};
	}
	bool any_tls = false;
	for (size_t i = 0; i < cfg->n_entrypoints; i++)
		any_tls = any_tls || cfg->entrypoints[i].tls;
	if (any_tls && !(s->tls = tls_store_load(cfg, true, errs)))
		goto fail;
	s->n_entrypoints = cfg->n_entrypoints;
	for (size_t i = 0; i < cfg->n_entrypoints; i++) {
		struct entrypoint_rt *ep = &s->entrypoints[i];
		ep->conf = &cfg->entrypoints[i];
		if (ep->conf->redirect_to) {
			const struct conf_entrypoint *to = config_find_entrypoint(cfg, ep->conf->redirect_to);
			ep->redirect_port = to ? addr_port(&to->addr) : 0;
		}
		ep->routes = calloc(cfg->n_routers ? cfg->n_routers : 1, sizeof(*ep->routes));
		if (!ep->routes)
			goto fail;
		for (size_t j = 0; j < cfg->n_routers; j++) {
			const struct conf_router *r = &cfg->routers[j];
			if (!router_on_entrypoint(r, ep->conf))
				continue;
			struct route *rt = &ep->routes[ep->n_routes++];
			rt->name = r->name;
			rt->rule = r->compiled;
			rt->rule_len = strlen(r->rule);
			rt->priority = r->priority_set ? r->priority : (int64_t)rt->rule_len;
			rt->service = find_service(s, r->service);
			rt->chain = r->chain;
			rt->chain_len = r->chain_len;
		}
		qsort(ep->routes, ep->n_routes, sizeof(*ep->routes), route_order);
	}
	return s;
fail:
	snapshot_unref(s);
	return NULL;
}

struct snapshot *snapshot_ref(struct snapshot *s)
{
	s->refs++;
	return s;
}

void snapshot_unref(struct snapshot *s)
{
	if (!s || --s->refs > 0)
		return;
	for (size_t i = 0; i < s->n_entrypoints; i++)
		free(s->entrypoints[i].routes);
	free(s->entrypoints);
	for (size_t i = 0; i < s->n_services; i++)
		upstream_group_free(s->services[i].group);
	free(s->services);
	tls_store_free(s->tls);
	free(s->acme_jobs);
	config_free(s->cfg);
	free(s);
}

const struct entrypoint_rt *snapshot_entrypoint(const struct snapshot *s, const char *name)
{
	for (size_t i = 0; i < s->n_entrypoints; i++)
		if (strcmp(s->entrypoints[i].conf->name, name) == 0)
			return &s->entrypoints[i];
	return NULL;
}

const struct route *snapshot_route(const struct entrypoint_rt *ep, const struct rule_subject *subject)
{
	for (size_t i = 0; i < ep->n_routes; i++)
		if (rule_match(ep->routes[i].rule, subject))
			return &ep->routes[i];
	return NULL;
}
