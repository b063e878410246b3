/* middleware.c - placeholder until the middleware types land: every
 * [middleware] section is reported as unsupported, so nothing is silently
 * ignored. */
#include "middleware.h"

struct middleware *middleware_compile(const struct conf_middleware *m, const char *file, struct conf_errors *errs)
{
	conf_error(errs, file, m->line, "[middleware %s]: middlewares are not implemented in this build", m->name);
	return NULL;
}

void middleware_free(struct middleware *m)
{
	(void)m;
}

int middleware_run(struct middleware *const *chain, size_t n, const struct mw_request *r, struct mw_state *st)
{
	(void)chain;
	(void)n;
	(void)r;
	return st->status;
}

void middleware_done(struct mw_state *st)
{
	(void)st;
}

void middleware_observe(struct middleware *const *chain, size_t n, int status, bool network_error, int64_t now_ms)
{
	(void)chain;
	(void)n;
	(void)status;
	(void)network_error;
	(void)now_ms;
}

bool middleware_drops_response_field(const struct mw_state *st, struct slice name)
{
	(void)st;
	(void)name;
	return false;
}
