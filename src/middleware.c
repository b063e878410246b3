/* middleware.c - [middleware NAME] sections (SPEC §3): each type's keys validated
 * and compiled once per configuration, then run in chain order on a request. The
 * request path only writes into the caller's struct mw_state: no allocation, every
 * write bounds-checked, and a full state answers 500 rather than drop an edit. */
#include "middleware.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "breaker.h"
#include "cidr.h"
#include "confval.h"
#include "htpasswd.h"
#include "rand.h"
#include "regexp.h"
#include "siphash.h"
#include "source_table.h"

/* Groups a redirect_regex replacement can name: $0 (the match) to $9. */
#define REGEX_GROUPS 10

/* Sources tracked per ratelimit / inflight middleware. An inflight table holds at
 * least every source with a request in flight, so it is larger. */
#define RATELIMIT_SOURCES 4096
#define INFLIGHT_SOURCES 8192
/* Basic credentials decoded from at most this many bytes. */
#define AUTH_MAX 768
/* Recently verified (user, password) pairs, so a client sending the same
 * credentials on every request costs one bcrypt, not one per request. */
#define AUTH_CACHE 64

enum mw_type {
	T_HEADERS,
	T_RATELIMIT,
	T_INFLIGHT,
	T_REDIRECT_SCHEME,
	T_REDIRECT_REGEX,
	T_STRIP_PREFIX,
	T_ADD_PREFIX,
	T_BASIC_AUTH,
	T_IP_ALLOWLIST,
	T_REQUEST_ID,
	T_RETRY,
	T_CIRCUIT_BREAKER,
	T_COUNT
};

static const char *const type_names[T_COUNT] = {
	[T_HEADERS] = "headers",
	[T_RATELIMIT] = "ratelimit",
	[T_INFLIGHT] = "inflight",
	[T_REDIRECT_SCHEME] = "redirect_scheme",
	[T_REDIRECT_REGEX] = "redirect_regex",
	[T_STRIP_PREFIX] = "strip_prefix",
	[T_ADD_PREFIX] = "add_prefix",
	[T_BASIC_AUTH] = "basic_auth",
	[T_IP_ALLOWLIST] = "ip_allowlist",
	[T_REQUEST_ID] = "request_id",
	[T_RETRY] = "retry",
	[T_CIRCUIT_BREAKER] = "circuit_breaker",
};

#define B(t) (1u << (t))

/* Which keys each type takes; repeatable ones may appear on several lines. */
static const struct key_def {
	const char *name;
	unsigned types;
	unsigned repeatable; /* types for which the key is repeatable */
} key_defs[] = {
	{ "sts_seconds", B(T_HEADERS), 0 },
	{ "sts_include_subdomains", B(T_HEADERS), 0 },
	{ "sts_preload", B(T_HEADERS), 0 },
	{ "frame_deny", B(T_HEADERS), 0 },
	{ "content_type_nosniff", B(T_HEADERS), 0 },
	{ "referrer_policy", B(T_HEADERS), 0 },
	{ "content_security_policy", B(T_HEADERS), 0 },
	{ "request_header", B(T_HEADERS), B(T_HEADERS) },
	{ "response_header", B(T_HEADERS), B(T_HEADERS) },
	{ "average", B(T_RATELIMIT), 0 },
	{ "period", B(T_RATELIMIT), 0 },
	{ "burst", B(T_RATELIMIT), 0 },
	{ "source", B(T_RATELIMIT) | B(T_INFLIGHT), 0 },
	{ "max", B(T_INFLIGHT), 0 },
	{ "scheme", B(T_REDIRECT_SCHEME), 0 },
	{ "port", B(T_REDIRECT_SCHEME), 0 },
	{ "permanent", B(T_REDIRECT_SCHEME) | B(T_REDIRECT_REGEX), 0 },
	{ "regex", B(T_REDIRECT_REGEX), 0 },
	{ "replacement", B(T_REDIRECT_REGEX), 0 },
	{ "prefix", B(T_STRIP_PREFIX) | B(T_ADD_PREFIX), B(T_STRIP_PREFIX) },
	{ "user", B(T_BASIC_AUTH), B(T_BASIC_AUTH) },
	{ "users_file", B(T_BASIC_AUTH), 0 },
	{ "realm", B(T_BASIC_AUTH), 0 },
	{ "remove_header", B(T_BASIC_AUTH), 0 },
	{ "source_range", B(T_IP_ALLOWLIST), 0 },
	{ "attempts", B(T_RETRY), 0 },
	{ "initial_interval", B(T_RETRY), 0 },
	{ "expression", B(T_CIRCUIT_BREAKER), 0 },
	{ "check_period", B(T_CIRCUIT_BREAKER), 0 },
	{ "fallback_duration", B(T_CIRCUIT_BREAKER), 0 },
	{ "recovery_duration", B(T_CIRCUIT_BREAKER), 0 },
};
#define N_KEY_DEFS (sizeof(key_defs) / sizeof(key_defs[0]))

struct header_edit {
	struct slice name, value; /* value empty: remove the field */
	bool tls_only;            /* HSTS: only for requests that came over TLS */
};

/* Where a ratelimit or inflight counts requests from. */
struct source_def {
	struct slice header; /* .p NULL: the client address */
	struct source_table *table; /* owner: the middleware */
};

struct auth_user {
	struct slice name;
	struct htpasswd_hash hash;
	int line;
};

struct auth_cached {
	unsigned char tag[16]; /* keyed digest of user and password */
	uint32_t user;         /* index + 1; 0 = empty */
};

struct middleware {
	enum mw_type type;
	unsigned char hash_key[32]; /* random per middleware: source and credential digests */
	char **owned;               /* strings the slices below point into; owner: this */
	size_t n_owned;
	union {
		struct {
			struct header_edit req[MW_MAX_EDITS], resp[MW_MAX_EDITS];
			size_t n_req, n_resp;
		} headers;
		struct {
			int64_t average, period_ms, burst;
			int64_t capacity; /* burst * period_ms: tokens are counted in 1/period_ms */
			struct source_def src;
		} ratelimit;
		struct {
			int64_t max;
			struct source_def src;
		} inflight;
		struct {
			struct slice scheme, port; /* port .len 0: none */
			bool permanent;
		} redirect_scheme;
		struct {
			struct regexp *re; /* owner: this */
			struct slice replacement;
			bool permanent;
		} redirect_regex;
		struct {
			struct slice *prefixes; /* owner: this */
			size_t n;
		} strip;
		struct slice add_prefix;
		struct {
			struct auth_user *users; /* owner: this */
			size_t n;
			struct slice challenge; /* Basic realm="..." */
			bool remove_header;
			struct auth_cached cache[AUTH_CACHE];
		} auth;
		struct cidr_list allow;
		struct {
			int attempts;
			int64_t initial_ms;
		} retry;
		struct breaker *breaker;
	} u;
};

/* ---- compiling -------------------------------------------------------------- */

struct compile {
	struct middleware *m;
	const struct conf_middleware *c;
	const char *file;
	struct conf_errors *errs;
};

#define ERR(cx, line, ...) conf_error((cx)->errs, (cx)->file, (line), __VA_ARGS__)

/* A copy of s[0..n) that lives as long as the middleware; NULL if out of memory. */
static char *keep(struct middleware *m, const char *s, size_t n)
{
	char **grown = realloc(m->owned, (m->n_owned + 1) * sizeof(*grown));
	if (!grown)
		return NULL;
	m->owned = grown;
	char *copy = malloc(n + 1);
	if (!copy)
		return NULL;
	memcpy(copy, s, n);
	copy[n] = '\0';
	m->owned[m->n_owned++] = copy;
	return copy;
}

static struct slice keep_slice(struct compile *cx, const char *s, size_t n, int line)
{
	char *copy = keep(cx->m, s, n);
	if (!copy) {
		ERR(cx, line, "out of memory");
		return (struct slice){ "", 0 };
	}
	return (struct slice){ copy, n };
}

static const struct conf_kv *find_kv(const struct conf_middleware *c, const char *key)
{
	for (size_t i = 0; i < c->n_kv; i++)
		if (strcmp(c->kv[i].key, key) == 0)
			return &c->kv[i];
	return NULL;
}

static bool get_bool(struct compile *cx, const char *key, bool def)
{
	const struct conf_kv *kv = find_kv(cx->c, key);
	bool v = def;
	if (kv && confval_bool(kv->value, &v) < 0)
		ERR(cx, kv->line, "%s: expected on/off, true/false, yes/no or 1/0: '%s'", key, kv->value);
	return v;
}

static int64_t get_int(struct compile *cx, const char *key, int64_t min, int64_t max, int64_t def)
{
	const struct conf_kv *kv = find_kv(cx->c, key);
	int64_t v = def;
	if (kv && confval_int(kv->value, min, max, &v) < 0)
		ERR(cx, kv->line, "%s: expected a whole number from %lld to %lld: '%s'", key, (long long)min,
		    (long long)max, kv->value);
	return v;
}

static int64_t get_duration(struct compile *cx, const char *key, int64_t min_ms, int64_t max_ms, int64_t def)
{
	const struct conf_kv *kv = find_kv(cx->c, key);
	int64_t v = def;
	if (!kv)
		return v;
	if (confval_duration(kv->value, &v) < 0)
		ERR(cx, kv->line, "%s: expected a duration like 500ms, 10s, 5m: '%s'", key, kv->value);
	else if (v < min_ms || v > max_ms)
		ERR(cx, kv->line, "%s: must be from %lldms to %lldms: '%s'", key, (long long)min_ms, (long long)max_ms,
		    kv->value);
	return v;
}

/* A required key: reported at the section line when missing. */
static const struct conf_kv *need_kv(struct compile *cx, const char *key, const char *what)
{
	const struct conf_kv *kv = find_kv(cx->c, key);
	if (!kv)
		ERR(cx, cx->c->line, "[middleware %s] type=%s needs %s = %s", cx->c->name, type_names[cx->m->type], key,
		    what);
	return kv;
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* RFC 9110 §5.6.2 token characters, for field names. */
static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_token(struct slice s)
{
	if (s.len == 0)
		return false;
	for (size_t i = 0; i < s.len; i++)
		if (!is_tchar(s.p[i]))
			return false;
	return true;
}

/* A field value: visible characters, spaces and tabs (RFC 9110 §5.5). */
static bool is_field_value(const char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return false;
	return true;
}

static struct slice trim(struct slice s)
{
	while (s.len && (s.p[0] == ' ' || s.p[0] == '\t')) {
		s.p++;
		s.len--;
	}
	while (s.len && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
		s.len--;
	return s;
}

static bool edits_name(const struct header_edit *e, size_t n, struct slice name)
{
	for (size_t i = 0; i < n; i++)
		if (slice_case_eq(e[i].name, name))
			return true;
	return false;
}

/* Adds one header edit to list (capacity MW_MAX_EDITS); name and value are copied. */
static void add_edit(struct compile *cx, const struct conf_kv *kv, struct header_edit *list, size_t *n,
		     struct slice name, struct slice value, bool tls_only)
{
	if (edits_name(list, *n, name)) {
		ERR(cx, kv->line, "%s: %.*s is already set in this middleware", kv->key, (int)name.len, name.p);
		return;
	}
	if (*n == MW_MAX_EDITS) {
		ERR(cx, kv->line, "%s: more than %d fields in one middleware", kv->key, MW_MAX_EDITS);
		return;
	}
	list[(*n)++] = (struct header_edit){ keep_slice(cx, name.p, name.len, kv->line),
					     keep_slice(cx, value.p, value.len, kv->line), tls_only };
}

/* Fields that frame the message or belong to one connection (RFC 9110 §7.6.1):
 * the proxy writes them itself, and a second copy would let the two ends disagree
 * on where a message ends. The request's Host comes from pass_host_header. */
static bool is_reserved_field(struct slice name, bool request)
{
	static const struct slice reserved[] = {
		SLICE_LIT("Content-Length"), SLICE_LIT("Transfer-Encoding"), SLICE_LIT("Connection"),
		SLICE_LIT("Keep-Alive"),     SLICE_LIT("Proxy-Connection"),  SLICE_LIT("TE"),
		SLICE_LIT("Trailer"),        SLICE_LIT("Upgrade"),
	};
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (slice_case_eq(name, reserved[i]))
			return true;
	return request && slice_case_eq(name, SLICE_LIT("Host"));
}

/* "Name: value" (an empty value removes the field). */
static void add_custom_header(struct compile *cx, const struct conf_kv *kv, struct header_edit *list, size_t *n)
{
	const char *colon = strchr(kv->value, ':');
	if (!colon) {
		ERR(cx, kv->line, "%s: expected 'Name: value' (an empty value removes the field): '%s'", kv->key,
		    kv->value);
		return;
	}
	struct slice name = trim(slice_make(kv->value, (size_t)(colon - kv->value)));
	struct slice value = trim(slice_cstr(colon + 1));
	if (!is_token(name)) {
		ERR(cx, kv->line, "%s: bad field name '%.*s'", kv->key, (int)name.len, name.p);
		return;
	}
	if (!is_field_value(colon + 1)) {
		ERR(cx, kv->line, "%s: control characters in the value", kv->key);
		return;
	}
	if (is_reserved_field(name, strcmp(kv->key, "request_header") == 0)) {
		ERR(cx, kv->line, "%s: %.*s is managed by the proxy and cannot be set or removed here", kv->key,
		    (int)name.len, name.p);
		return;
	}
	add_edit(cx, kv, list, n, name, value, false);
}

static void compile_headers(struct compile *cx)
{
	struct middleware *m = cx->m;
	const struct conf_kv *kv;

	for (size_t i = 0; i < cx->c->n_kv; i++) {
		kv = &cx->c->kv[i];
		if (strcmp(kv->key, "request_header") == 0)
			add_custom_header(cx, kv, m->u.headers.req, &m->u.headers.n_req);
		else if (strcmp(kv->key, "response_header") == 0)
			add_custom_header(cx, kv, m->u.headers.resp, &m->u.headers.n_resp);
	}
	int64_t sts = get_int(cx, "sts_seconds", 0, 1000000000, 0);
	bool subdomains = get_bool(cx, "sts_include_subdomains", false);
	bool preload = get_bool(cx, "sts_preload", false);
	if ((kv = find_kv(cx->c, "sts_seconds")) != NULL && sts > 0) {
		char hsts[80];
		int len = snprintf(hsts, sizeof(hsts), "max-age=%lld%s%s", (long long)sts,
				   subdomains ? "; includeSubDomains" : "", preload ? "; preload" : "");
		add_edit(cx, kv, m->u.headers.resp, &m->u.headers.n_resp, SLICE_LIT("Strict-Transport-Security"),
			 slice_make(hsts, (size_t)len), true);
	} else if (subdomains || preload) {
		kv = find_kv(cx->c, subdomains ? "sts_include_subdomains" : "sts_preload");
		ERR(cx, kv->line, "%s: needs sts_seconds above 0", kv->key);
	}
	if (get_bool(cx, "frame_deny", false))
		add_edit(cx, find_kv(cx->c, "frame_deny"), m->u.headers.resp, &m->u.headers.n_resp,
			 SLICE_LIT("X-Frame-Options"), SLICE_LIT("DENY"), false);
	if (get_bool(cx, "content_type_nosniff", false))
		add_edit(cx, find_kv(cx->c, "content_type_nosniff"), m->u.headers.resp, &m->u.headers.n_resp,
			 SLICE_LIT("X-Content-Type-Options"), SLICE_LIT("nosniff"), false);
	static const struct {
		const char *key;
		struct slice field;
	} texts[] = {
		{ "referrer_policy", SLICE_LIT("Referrer-Policy") },
		{ "content_security_policy", SLICE_LIT("Content-Security-Policy") },
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		if (!(kv = find_kv(cx->c, texts[i].key)))
			continue;
		if (kv->value[0] == '\0' || !is_field_value(kv->value))
			ERR(cx, kv->line, "%s: needs a value without control characters", kv->key);
		else
			add_edit(cx, kv, m->u.headers.resp, &m->u.headers.n_resp, texts[i].field,
				 slice_cstr(kv->value), false);
	}
}

static void compile_source(struct compile *cx, struct source_def *src, size_t capacity)
{
	const struct conf_kv *kv = find_kv(cx->c, "source");
	if (kv && strcmp(kv->value, "client_ip") != 0) {
		struct slice name = slice_cstr(kv->value);
		if (!slice_has_prefix(name, SLICE_LIT("header:")) ||
		    !is_token(slice_make(name.p + 7, name.len - 7)))
			ERR(cx, kv->line, "source: expected client_ip or header:NAME: '%s'", kv->value);
		else
			src->header = keep_slice(cx, name.p + 7, name.len - 7, kv->line);
	}
	if (!(src->table = source_table_new(capacity)))
		ERR(cx, cx->c->line, "[middleware %s]: cannot allocate its source table", cx->c->name);
}

static void compile_ratelimit(struct compile *cx)
{
	struct middleware *m = cx->m;
	/* average 0 means no limit, as in Traefik */
	if (need_kv(cx, "average", "REQUESTS (per period)"))
		m->u.ratelimit.average = get_int(cx, "average", 0, 1000000000, 0);
	m->u.ratelimit.period_ms = get_duration(cx, "period", 1, 30LL * 86400 * 1000, 1000);
	int64_t def_burst = m->u.ratelimit.average > 0 ? m->u.ratelimit.average : 1;
	m->u.ratelimit.burst = get_int(cx, "burst", 1, 1000000000, def_burst);
	/* at most 1e9 * 2.6e9: fits an int64_t */
	m->u.ratelimit.capacity = m->u.ratelimit.burst * m->u.ratelimit.period_ms;
	compile_source(cx, &m->u.ratelimit.src, RATELIMIT_SOURCES);
}

static void compile_inflight(struct compile *cx)
{
	struct middleware *m = cx->m;
	if (need_kv(cx, "max", "REQUESTS"))
		m->u.inflight.max = get_int(cx, "max", 1, 1000000000, 1);
	compile_source(cx, &m->u.inflight.src, INFLIGHT_SOURCES);
}

static void compile_redirect_scheme(struct compile *cx)
{
	struct middleware *m = cx->m;
	const struct conf_kv *kv = find_kv(cx->c, "scheme");
	const char *scheme = kv ? kv->value : "https";
	/* RFC 3986 §3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
	bool ok = is_alpha(scheme[0]);
	for (const char *p = scheme; *p && ok; p++)
		ok = is_alpha(*p) || (*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.';
	if (!ok) {
		ERR(cx, kv ? kv->line : cx->c->line, "scheme: expected a URL scheme like https: '%s'", scheme);
	} else {
		struct slice kept = keep_slice(cx, scheme, strlen(scheme), kv ? kv->line : cx->c->line);
		for (size_t i = 0; i < kept.len; i++)
			((char *)kept.p)[i] = ascii_lower(kept.p[i]);
		m->u.redirect_scheme.scheme = kept;
	}
	if ((kv = find_kv(cx->c, "port")) != NULL) {
		int64_t port = get_int(cx, "port", 1, 65535, 0);
		char text[8];
		int n = snprintf(text, sizeof(text), "%lld", (long long)port);
		if (port > 0)
			m->u.redirect_scheme.port = keep_slice(cx, text, (size_t)n, kv->line);
	}
	m->u.redirect_scheme.permanent = get_bool(cx, "permanent", false);
}

static void compile_redirect_regex(struct compile *cx)
{
	struct middleware *m = cx->m;
	const struct conf_kv *re = need_kv(cx, "regex", "regular expression (Go syntax)");
	const struct conf_kv *rep = need_kv(cx, "replacement", "URL (with $1..$9)");
	if (re) {
		char msg[128];
		m->u.redirect_regex.re = regexp_compile(re->value, strlen(re->value), REGEX_GROUPS, msg,
							sizeof(msg));
		if (!m->u.redirect_regex.re)
			ERR(cx, re->line, "regex: %s: '%s'", msg, re->value);
	}
	if (rep) {
		if (rep->value[0] == '\0' || !is_field_value(rep->value))
			ERR(cx, rep->line, "replacement: needs a URL without control characters");
		else
			m->u.redirect_regex.replacement = keep_slice(cx, rep->value, strlen(rep->value), rep->line);
	}
	m->u.redirect_regex.permanent = get_bool(cx, "permanent", false);
}

/* A path prefix: starts with '/', no control characters, blanks, '?' or '#'. */
static bool is_path_prefix(const char *s)
{
	if (s[0] != '/')
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f || *s == '?' || *s == '#')
			return false;
	return true;
}

static void compile_strip_prefix(struct compile *cx)
{
	struct middleware *m = cx->m;
	size_t n = 0;
	for (size_t i = 0; i < cx->c->n_kv; i++)
		n += strcmp(cx->c->kv[i].key, "prefix") == 0;
	if (!need_kv(cx, "prefix", "/PATH (repeatable)"))
		return;
	if (!(m->u.strip.prefixes = calloc(n, sizeof(*m->u.strip.prefixes)))) {
		ERR(cx, cx->c->line, "out of memory");
		return;
	}
	for (size_t i = 0; i < cx->c->n_kv; i++) {
		const struct conf_kv *kv = &cx->c->kv[i];
		if (strcmp(kv->key, "prefix") != 0)
			continue;
		if (!is_path_prefix(kv->value))
			ERR(cx, kv->line, "prefix: expected a path starting with '/': '%s'", kv->value);
		else
			m->u.strip.prefixes[m->u.strip.n++] = keep_slice(cx, kv->value, strlen(kv->value), kv->line);
	}
}

static void compile_add_prefix(struct compile *cx)
{
	const struct conf_kv *kv = need_kv(cx, "prefix", "/PATH");
	if (!kv)
		return;
	size_t len = strlen(kv->value);
	while (len > 1 && kv->value[len - 1] == '/')
		len--; /* "/api/" + "/x" would make "//" */
	if (!is_path_prefix(kv->value) || len < 2)
		ERR(cx, kv->line, "prefix: expected a path like /api: '%s'", kv->value);
	else
		cx->m->u.add_prefix = keep_slice(cx, kv->value, len, kv->line);
}

static void add_user(struct compile *cx, struct slice line, const char *file, int lineno,
		     struct auth_user **users, size_t *n, size_t *cap)
{
	struct auth_user u = { .line = lineno };
	const char *why;
	if (htpasswd_parse_line(line, &u.name, &u.hash, &why) < 0) {
		conf_error(cx->errs, file, lineno, "%s", why);
		return;
	}
	for (size_t i = 0; i < *n; i++)
		if (slice_eq((*users)[i].name, u.name)) {
			conf_error(cx->errs, file, lineno, "user '%.*s' is defined twice", (int)u.name.len, u.name.p);
			return;
		}
	if (*n == *cap) {
		size_t grown_cap = *cap ? *cap * 2 : 8;
		struct auth_user *grown = realloc(*users, grown_cap * sizeof(*grown));
		if (!grown) {
			conf_error(cx->errs, file, lineno, "out of memory");
			return;
		}
		*users = grown;
		*cap = grown_cap;
	}
	u.name = keep_slice(cx, u.name.p, u.name.len, lineno);
	(*users)[(*n)++] = u;
}

/* htpasswd file: one user:hash per line; blank lines and '#' comments skipped.
 * Problems are reported at the file's own lines. */
static void read_users_file(struct compile *cx, const struct conf_kv *kv, struct auth_user **users, size_t *n,
			    size_t *cap)
{
	FILE *f = fopen(kv->value, "r");
	if (!f) {
		ERR(cx, kv->line, "users_file: cannot open '%s'", kv->value);
		return;
	}
	char *line = NULL;
	size_t linecap = 0;
	ssize_t len;
	int lineno = 0;
	while ((len = getline(&line, &linecap, f)) >= 0) {
		lineno++;
		if (lineno > 1000000) {
			conf_error(cx->errs, kv->value, lineno, "too many lines");
			break;
		}
		struct slice s = trim(slice_make(line, (size_t)len));
		while (s.len && (s.p[s.len - 1] == '\n' || s.p[s.len - 1] == '\r'))
			s.len--;
		s = trim(s);
		if (s.len == 0 || s.p[0] == '#')
			continue;
		add_user(cx, s, kv->value, lineno, users, n, cap);
	}
	if (ferror(f))
		ERR(cx, kv->line, "users_file: error reading '%s'", kv->value);
	free(line);
	fclose(f);
}

static void compile_basic_auth(struct compile *cx)
{
	struct middleware *m = cx->m;
	size_t cap = 0, errors_before = cx->errs->n;
	for (size_t i = 0; i < cx->c->n_kv; i++) {
		const struct conf_kv *kv = &cx->c->kv[i];
		if (strcmp(kv->key, "user") == 0)
			add_user(cx, slice_cstr(kv->value), cx->file, kv->line, &m->u.auth.users, &m->u.auth.n, &cap);
		else if (strcmp(kv->key, "users_file") == 0)
			read_users_file(cx, kv, &m->u.auth.users, &m->u.auth.n, &cap);
	}
	if (!find_kv(cx->c, "user") && !find_kv(cx->c, "users_file"))
		ERR(cx, cx->c->line, "[middleware %s] type=basic_auth needs user = NAME:HASH or users_file = FILE",
		    cx->c->name);
	else if (m->u.auth.n == 0 && cx->errs->n == errors_before)
		ERR(cx, cx->c->line, "[middleware %s]: no users (the users_file is empty)", cx->c->name);
	const struct conf_kv *kv = find_kv(cx->c, "realm");
	const char *realm = kv ? kv->value : "edgeproxy";
	if (!is_field_value(realm) || strpbrk(realm, "\"\\") || strlen(realm) > 200) {
		ERR(cx, kv ? kv->line : cx->c->line,
		    "realm: no quotes, backslashes or control characters, at most 200: '%s'", realm);
	} else {
		char challenge[256];
		int len = snprintf(challenge, sizeof(challenge), "Basic realm=\"%s\"", realm);
		m->u.auth.challenge = keep_slice(cx, challenge, (size_t)len, kv ? kv->line : cx->c->line);
	}
	m->u.auth.remove_header = get_bool(cx, "remove_header", false);
}

static void compile_ip_allowlist(struct compile *cx)
{
	const struct conf_kv *kv = need_kv(cx, "source_range", "CIDR, CIDR, ...");
	if (!kv)
		return;
	if (cidr_list_parse(slice_cstr(kv->value), &cx->m->u.allow) < 0)
		ERR(cx, kv->line, "source_range: expected addresses or ranges like 10.0.0.0/8, ::1: '%s'", kv->value);
	else if (cx->m->u.allow.n == 0)
		ERR(cx, kv->line, "source_range: empty");
}

static void compile_retry(struct compile *cx)
{
	if (need_kv(cx, "attempts", "N"))
		cx->m->u.retry.attempts = (int)get_int(cx, "attempts", 1, 100, 1);
	cx->m->u.retry.initial_ms = get_duration(cx, "initial_interval", 0, 3600 * 1000, 100);
}

static void compile_circuit_breaker(struct compile *cx)
{
	const struct conf_kv *kv = need_kv(cx, "expression", "CONDITION, like NetworkErrorRatio() > 0.30");
	int64_t check = get_duration(cx, "check_period", 1, 3600 * 1000, 100);
	int64_t fallback = get_duration(cx, "fallback_duration", 0, 86400 * 1000, 10000);
	int64_t recovery = get_duration(cx, "recovery_duration", 0, 86400 * 1000, 10000);
	if (!kv)
		return;
	char err[160];
	int col = 0;
	cx->m->u.breaker = breaker_new(kv->value, check, fallback, recovery, err, sizeof(err), &col);
	if (!cx->m->u.breaker)
		ERR(cx, kv->line, "expression: %s at column %d", err, col);
}

static void (*const compilers[T_COUNT])(struct compile *) = {
	[T_HEADERS] = compile_headers,
	[T_RATELIMIT] = compile_ratelimit,
	[T_INFLIGHT] = compile_inflight,
	[T_REDIRECT_SCHEME] = compile_redirect_scheme,
	[T_REDIRECT_REGEX] = compile_redirect_regex,
	[T_STRIP_PREFIX] = compile_strip_prefix,
	[T_ADD_PREFIX] = compile_add_prefix,
	[T_BASIC_AUTH] = compile_basic_auth,
	[T_IP_ALLOWLIST] = compile_ip_allowlist,
	[T_REQUEST_ID] = NULL,
	[T_RETRY] = compile_retry,
	[T_CIRCUIT_BREAKER] = compile_circuit_breaker,
};

/* The type line: returns the type, or -1 (reported). */
static int find_type(const struct conf_middleware *c, const char *file, struct conf_errors *errs)
{
	const struct conf_kv *type = NULL;
	for (size_t i = 0; i < c->n_kv; i++) {
		if (strcmp(c->kv[i].key, "type") != 0)
			continue;
		if (type) {
			conf_error(errs, file, c->kv[i].line, "duplicate key 'type' (first at line %d)", type->line);
			return -1;
		}
		type = &c->kv[i];
	}
	if (!type) {
		conf_error(errs, file, c->line,
			   "[middleware %s] needs type = headers, ratelimit, inflight, redirect_scheme, "
			   "redirect_regex, strip_prefix, add_prefix, basic_auth, ip_allowlist, request_id, retry "
			   "or circuit_breaker",
			   c->name);
		return -1;
	}
	for (int t = 0; t < T_COUNT; t++)
		if (strcmp(type->value, type_names[t]) == 0)
			return t;
	if (strcmp(type->value, "compress") == 0)
		conf_error(errs, file, type->line, "type: compress is not implemented in this build");
	else
		conf_error(errs, file, type->line, "type: unknown middleware type '%s'", type->value);
	return -1;
}

/* Every key is one this type takes, and only repeatable ones appear twice. */
static void check_keys(const struct conf_middleware *c, int type, const char *file, struct conf_errors *errs)
{
	int first[N_KEY_DEFS] = { 0 };
	for (size_t i = 0; i < c->n_kv; i++) {
		const struct conf_kv *kv = &c->kv[i];
		if (strcmp(kv->key, "type") == 0)
			continue;
		size_t k = 0;
		while (k < N_KEY_DEFS && strcmp(key_defs[k].name, kv->key) != 0)
			k++;
		if (k == N_KEY_DEFS || !(key_defs[k].types & B(type))) {
			conf_error(errs, file, kv->line, "unknown key '%s' for type=%s in [middleware %s]", kv->key,
				   type_names[type], c->name);
			continue;
		}
		if (first[k] && !(key_defs[k].repeatable & B(type)))
			conf_error(errs, file, kv->line, "duplicate key '%s' (first at line %d)", kv->key, first[k]);
		else if (!first[k])
			first[k] = kv->line;
	}
}

struct middleware *middleware_compile(const struct conf_middleware *m, const char *file, struct conf_errors *errs)
{
	size_t errors_before = errs->n;
	int type = find_type(m, file, errs);
	if (type < 0)
		return NULL;
	check_keys(m, type, file, errs); /* then the values too: every problem in one pass */
	struct middleware *mw = calloc(1, sizeof(*mw));
	if (!mw) {
		conf_error(errs, file, m->line, "out of memory");
		return NULL;
	}
	mw->type = (enum mw_type)type;
	if (rand_bytes(mw->hash_key, sizeof(mw->hash_key)) < 0)
		conf_error(errs, file, m->line, "[middleware %s]: no random bytes from the kernel", m->name);
	struct compile cx = { mw, m, file, errs };
	if (compilers[type])
		compilers[type](&cx);
	if (errs->n != errors_before) {
		middleware_free(mw);
		return NULL;
	}
	return mw;
}

void middleware_free(struct middleware *m)
{
	if (!m)
		return;
	switch (m->type) {
	case T_RATELIMIT:
		source_table_free(m->u.ratelimit.src.table);
		break;
	case T_INFLIGHT:
		source_table_free(m->u.inflight.src.table);
		break;
	case T_REDIRECT_REGEX:
		regexp_free(m->u.redirect_regex.re);
		break;
	case T_STRIP_PREFIX:
		free(m->u.strip.prefixes);
		break;
	case T_BASIC_AUTH:
		free(m->u.auth.users);
		break;
	case T_IP_ALLOWLIST:
		cidr_list_free(&m->u.allow);
		break;
	case T_CIRCUIT_BREAKER:
		breaker_free(m->u.breaker);
		break;
	default:
		break;
	}
	for (size_t i = 0; i < m->n_owned; i++)
		free(m->owned[i]);
	free(m->owned);
	memset(m, 0, sizeof(*m)); /* the credential cache and hash keys */
	free(m);
}

/* ---- running ---------------------------------------------------------------- */

/* One request going through a chain: the request as edited so far. */
struct run {
	const struct mw_request *r;
	struct mw_state *st;
	struct slice path; /* the current path (edits by earlier middlewares applied) */
};

/* The capacity of st ran out: the caller answers 500. */
#define FULL (-1)

static int answer(struct run *run, int status, struct slice body)
{
	run->st->status = status;
	run->st->body = body;
	return status;
}

/* The request field as earlier middlewares left it. */
static bool view_header(const struct run *run, struct slice name, struct slice *value)
{
	const struct mw_state *st = run->st;
	for (size_t i = 0; i < st->n_req_set; i++)
		if (slice_case_eq(st->req_set[i].name, name)) {
			*value = st->req_set[i].value;
			return value->len > 0;
		}
	for (size_t i = 0; i < st->n_req_remove; i++)
		if (slice_case_eq(st->req_remove[i], name))
			return false;
	const struct http_field *f = http_find_field(run->r->req->fields, run->r->req->nfields, name);
	if (!f)
		return false;
	*value = f->value;
	return true;
}

/* Request edits: the later middleware wins (it is closer to the service). */
static int req_set(struct run *run, struct slice name, struct slice value)
{
	struct mw_state *st = run->st;
	for (size_t i = 0; i < st->n_req_set; i++)
		if (slice_case_eq(st->req_set[i].name, name)) {
			st->req_set[i].value = value;
			return 0;
		}
	if (st->n_req_set == MW_MAX_EDITS)
		return FULL;
	st->req_set[st->n_req_set++] = (struct mw_header){ name, value };
	return 0;
}

static int req_remove(struct run *run, struct slice name)
{
	struct mw_state *st = run->st;
	for (size_t i = 0; i < st->n_req_set; i++)
		if (slice_case_eq(st->req_set[i].name, name)) {
			st->req_set[i].value = (struct slice){ "", 0 }; /* set, but to nothing */
			return 0;
		}
	for (size_t i = 0; i < st->n_req_remove; i++)
		if (slice_case_eq(st->req_remove[i], name))
			return 0;
	if (st->n_req_remove == MW_MAX_EDITS)
		return FULL;
	st->req_remove[st->n_req_remove++] = name;
	return 0;
}

/* Response edits apply in reverse chain order, so the earlier middleware has the
 * last word: a field it already set or removed is left as it is. */
static int resp_set(struct run *run, struct slice name, struct slice value)
{
	struct mw_state *st = run->st;
	if (middleware_drops_response_field(st, name))
		return 0;
	if (st->n_resp_set == MW_MAX_EDITS)
		return FULL;
	st->resp_set[st->n_resp_set++] = (struct mw_header){ name, value };
	return 0;
}

static int resp_remove(struct run *run, struct slice name)
{
	struct mw_state *st = run->st;
	if (middleware_drops_response_field(st, name))
		return 0;
	if (st->n_resp_remove == MW_MAX_EDITS)
		return FULL;
	st->resp_remove[st->n_resp_remove++] = name;
	return 0;
}

/* Builds a string at the end of st->scratch; committed only when it all fit. */
struct sbuild {
	struct mw_state *st;
	size_t len;
	bool ok;
};

static struct sbuild sb_start(struct mw_state *st)
{
	return (struct sbuild){ st, 0, st->scratch_len <= MW_SCRATCH }; /* a caller's st could be anything */
}

static void sb_put(struct sbuild *b, struct slice s)
{
	if (!b->ok || s.len > MW_SCRATCH - b->st->scratch_len - b->len) {
		b->ok = false;
		return;
	}
	if (s.len)
		memcpy(b->st->scratch + b->st->scratch_len + b->len, s.p, s.len);
	b->len += s.len;
}

/* The built string, now owned by st->scratch; .p NULL when it did not fit. */
static struct slice sb_commit(struct sbuild *b)
{
	if (!b->ok)
		return (struct slice){ NULL, 0 };
	struct slice s = { b->st->scratch + b->st->scratch_len, b->len };
	b->st->scratch_len += b->len;
	return s;
}

static struct slice scratch_copy(struct mw_state *st, struct slice s)
{
	struct sbuild b = sb_start(st);
	sb_put(&b, s);
	return sb_commit(&b);
}

static int run_headers(const struct middleware *m, struct run *run)
{
	for (size_t i = 0; i < m->u.headers.n_req; i++) {
		const struct header_edit *e = &m->u.headers.req[i];
		if ((e->value.len ? req_set(run, e->name, e->value) : req_remove(run, e->name)) < 0)
			return FULL;
	}
	for (size_t i = 0; i < m->u.headers.n_resp; i++) {
		const struct header_edit *e = &m->u.headers.resp[i];
		if (e->tls_only && !run->r->tls)
			continue;
		if ((e->value.len ? resp_set(run, e->name, e->value) : resp_remove(run, e->name)) < 0)
			return FULL;
	}
	return 0;
}

/* The source of a request as a table key: the client address (IPv4 as an
 * IPv4-mapped IPv6 address, so both forms of one client agree) or a keyed digest
 * of the header's value (absent = empty: one shared source, as in Traefik). */
static void source_key(const struct middleware *m, const struct source_def *src, const struct run *run,
		       unsigned char key[SOURCE_KEY_BYTES])
{
	memset(key, 0, SOURCE_KEY_BYTES);
	if (src->header.p) {
		struct slice v = { "", 0 };
		view_header(run, src->header, &v);
		uint64_t a = siphash24(m->hash_key, v.p, v.len), b = siphash24(m->hash_key + 16, v.p, v.len);
		memcpy(key, &a, 8);
		memcpy(key + 8, &b, 8);
		return;
	}
	const struct sockaddr *sa = run->r->client;
	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &s4->sin_addr, 4);
	} else if (sa && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		memcpy(key, &s6->sin6_addr, 16);
	}
}

static struct slice decimal(struct mw_state *st, uint64_t v)
{
	char text[24];
	int n = snprintf(text, sizeof(text), "%llu", (unsigned long long)v);
	return scratch_copy(st, slice_make(text, (size_t)n));
}

static const struct slice body_429 = SLICE_LIT("429 Too Many Requests\n");

/* Token bucket. Tokens are kept in units of 1/period_ms of a request, so one
 * millisecond adds exactly `average` units and all arithmetic is integral. */
static int run_ratelimit(const struct middleware *m, struct run *run)
{
	int64_t average = m->u.ratelimit.average, cost = m->u.ratelimit.period_ms, cap = m->u.ratelimit.capacity;
	int64_t now = run->r->now_ms;
	unsigned char key[SOURCE_KEY_BYTES];
	bool fresh;

	if (average == 0)
		return 0;
	source_key(m, &m->u.ratelimit.src, run, key);
	struct source_entry *e = source_table_get(m->u.ratelimit.src.table, key, now, false, &fresh);
	if (fresh) {
		e->value = cap;
	} else {
		int64_t elapsed = now > e->last_ms ? now - e->last_ms : 0;
		int64_t missing = cap - e->value;
		if (missing > 0)
			e->value = elapsed > missing / average ? cap : e->value + elapsed * average;
		if (e->value > cap)
			e->value = cap;
	}
	e->last_ms = now;
	if (e->value >= cost) {
		e->value -= cost;
		return 0;
	}
	/* Retry-After: whole seconds until the next token (RFC 9110 §10.2.3). */
	int64_t wait_units = cost - e->value;
	int64_t per_second = average * 1000;
	struct slice secs = decimal(run->st, (uint64_t)((wait_units + per_second - 1) / per_second));
	if (!secs.p || resp_set(run, SLICE_LIT("Retry-After"), secs) < 0)
		return FULL;
	return answer(run, 429, body_429);
}

static int run_inflight(struct middleware *m, struct run *run)
{
	struct mw_state *st = run->st;
	unsigned char key[SOURCE_KEY_BYTES];
	bool fresh;

	source_key(m, &m->u.inflight.src, run, key);
	struct source_entry *e = source_table_get(m->u.inflight.src.table, key, run->r->now_ms, true, &fresh);
	/* No entry: every source sharing this set has requests in flight. Refusing
	 * keeps the counts exact; it needs thousands of busy sources. */
	if (!e || e->value >= m->u.inflight.max)
		return answer(run, 429, body_429);
	if (st->n_inflight == sizeof(st->inflight) / sizeof(st->inflight[0]))
		return FULL;
	e->value++;
	e->last_ms = run->r->now_ms;
	st->inflight[st->n_inflight] = m;
	st->inflight_key[st->n_inflight] = source_table_index(m->u.inflight.src.table, e);
	st->n_inflight++;
	return 0;
}

/* The Host without its port ("[::1]:8080" -> "[::1]"). */
static struct slice host_name(struct slice host)
{
	if (host.len && host.p[0] == '[') {
		const char *end = memchr(host.p, ']', host.len);
		return end ? slice_make(host.p, (size_t)(end - host.p) + 1) : host;
	}
	for (size_t i = host.len; i-- > 0;)
		if (host.p[i] == ':')
			return slice_make(host.p, i);
	return host;
}

static int redirect(struct run *run, struct slice location, bool permanent)
{
	if (resp_set(run, SLICE_LIT("Location"), location) < 0)
		return FULL;
	return permanent ? answer(run, 308, SLICE_LIT("308 Permanent Redirect\n"))
			 : answer(run, 307, SLICE_LIT("307 Temporary Redirect\n"));
}

static int run_redirect_scheme(const struct middleware *m, struct run *run)
{
	struct slice current = run->r->tls ? SLICE_LIT("https") : SLICE_LIT("http");
	if (slice_eq(current, m->u.redirect_scheme.scheme))
		return 0;
	struct slice host = host_name(run->r->req->host);
	if (host.len == 0)
		return answer(run, 400, SLICE_LIT("400 Bad Request\n"));
	struct sbuild b = sb_start(run->st);
	sb_put(&b, m->u.redirect_scheme.scheme);
	sb_put(&b, SLICE_LIT("://"));
	sb_put(&b, host);
	if (m->u.redirect_scheme.port.len) {
		sb_put(&b, SLICE_LIT(":"));
		sb_put(&b, m->u.redirect_scheme.port);
	}
	sb_put(&b, run->path);
	if (run->r->req->query.len) {
		sb_put(&b, SLICE_LIT("?"));
		sb_put(&b, run->r->req->query);
	}
	struct slice location = sb_commit(&b);
	if (!location.p)
		return FULL;
	return redirect(run, location, m->u.redirect_scheme.permanent);
}

static bool is_name_char(char c)
{
	return is_alpha(c) || (c >= '0' && c <= '9') || c == '_';
}

/* Appends the replacement with its references expanded as Go's Regexp.Expand
 * does (Traefik's semantics): $1 or ${1} is a group, $$ a '$'; a name that is
 * not a group number ($1x, $name) expands to nothing; a '$' not followed by a
 * name stays as it is. */
static void expand(struct sbuild *b, struct slice rep, const char *subject,
		   const struct regexp_span *groups)
{
	size_t i = 0;
	while (i < rep.len) {
		const char *dollar = memchr(rep.p + i, '$', rep.len - i);
		size_t upto = dollar ? (size_t)(dollar - rep.p) : rep.len;
		sb_put(b, slice_make(rep.p + i, upto - i));
		if (!dollar)
			return;
		i = upto + 1;
		if (i < rep.len && rep.p[i] == '$') {
			sb_put(b, SLICE_LIT("$"));
			i++;
			continue;
		}
		bool braced = i < rep.len && rep.p[i] == '{';
		size_t start = i + braced, end = start;
		while (end < rep.len && is_name_char(rep.p[end]))
			end++;
		if (end == start || (braced && (end >= rep.len || rep.p[end] != '}'))) {
			sb_put(b, SLICE_LIT("$")); /* not a reference */
			continue;
		}
		int num = 0;
		for (size_t k = start; k < end && num >= 0; k++)
			num = rep.p[k] >= '0' && rep.p[k] <= '9' && num < 1000 ? num * 10 + (rep.p[k] - '0') : -1;
		if (num >= 0 && num < REGEX_GROUPS && groups[num].so >= 0)
			sb_put(b, slice_make(subject + groups[num].so,
					     (size_t)(groups[num].eo - groups[num].so)));
		i = end + braced;
	}
}

/* Go's ReplaceAllString over the URL: every non-overlapping match replaced (an
 * empty match right after a match is skipped); each search continues in the whole
 * URL, so ^ still means its start. Returns whether anything matched. */
static bool replace_all(const struct regexp *re, struct slice rep, const char *url, size_t url_len,
			struct sbuild *b)
{
	size_t pos = 0, prev_end = (size_t)-1;
	bool matched = false;
	while (pos <= url_len) {
		struct regexp_span g[REGEX_GROUPS];
		if (!regexp_search(re, slice_make(url, url_len), pos, false, g))
			break;
		size_t so = (size_t)g[0].so, eo = (size_t)g[0].eo;
		if (so == eo && so == prev_end) {
			if (so >= url_len)
				break;
			sb_put(b, slice_make(url + pos, so + 1 - pos));
			pos = so + 1;
			continue;
		}
		matched = true;
		sb_put(b, slice_make(url + pos, so - pos));
		expand(b, rep, url, g);
		prev_end = eo;
		if (so == eo) {
			if (so >= url_len) {
				pos = url_len;
				break;
			}
			sb_put(b, slice_make(url + so, 1));
			pos = so + 1;
		} else {
			pos = eo;
		}
	}
	if (pos < url_len)
		sb_put(b, slice_make(url + pos, url_len - pos));
	return matched;
}

static int run_redirect_regex(const struct middleware *m, struct run *run)
{
	/* The URL as Traefik matches it: scheme://Host/path?query. */
	char url[MW_SCRATCH];
	const struct http_request *req = run->r->req;
	struct slice parts[] = {
		run->r->tls ? SLICE_LIT("https://") : SLICE_LIT("http://"),
		req->host,
		run->path,
		req->query.len ? SLICE_LIT("?") : SLICE_LIT(""),
		req->query,
	};
	size_t len = 0;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		if (parts[i].len >= sizeof(url) - len)
			return FULL;
		if (parts[i].len) /* an absent Host or query may have no bytes at all */
			memcpy(url + len, parts[i].p, parts[i].len);
		len += parts[i].len;
	}
	if (memchr(url, '\0', len))
		return 0; /* no URL holds a NUL byte: leave such a request alone */
	struct sbuild b = sb_start(run->st);
	if (!replace_all(m->u.redirect_regex.re, m->u.redirect_regex.replacement, url, len, &b))
		return 0;
	struct slice location = sb_commit(&b);
	if (!location.p)
		return FULL;
	if (slice_eq(location, slice_make(url, len))) {
		run->st->scratch_len -= location.len; /* same URL: go on, as Traefik does */
		return 0;
	}
	return redirect(run, location, m->u.redirect_regex.permanent);
}

static int set_path(struct run *run, struct slice a, struct slice b)
{
	struct sbuild sb = sb_start(run->st);
	sb_put(&sb, a);
	sb_put(&sb, b);
	struct slice path = sb_commit(&sb);
	if (!path.p)
		return FULL;
	run->path = run->st->path = path;
	return 0;
}

static int run_strip_prefix(const struct middleware *m, struct run *run)
{
	for (size_t i = 0; i < m->u.strip.n; i++) {
		struct slice prefix = m->u.strip.prefixes[i];
		if (!slice_has_prefix(run->path, prefix))
			continue;
		/* only at a segment boundary: /api strips /api and /api/x, not /apix */
		struct slice rest = slice_make(run->path.p + prefix.len, run->path.len - prefix.len);
		if (rest.len && rest.p[0] != '/' && prefix.p[prefix.len - 1] != '/')
			continue;
		int rc = rest.len == 0 ? set_path(run, SLICE_LIT("/"), SLICE_LIT(""))
		       : rest.p[0] == '/' ? set_path(run, rest, SLICE_LIT(""))
					  : set_path(run, SLICE_LIT("/"), rest);
		if (rc < 0 || req_set(run, SLICE_LIT("X-Forwarded-Prefix"), prefix) < 0)
			return FULL;
		return 0;
	}
	return 0;
}

static int run_add_prefix(const struct middleware *m, struct run *run)
{
	if (run->path.len == 0 || run->path.p[0] != '/')
		return 0; /* "OPTIONS *" has no path to prefix */
	return set_path(run, m->u.add_prefix, run->path);
}

static const struct slice body_401 = SLICE_LIT("401 Unauthorized\n");

static int unauthorized(const struct middleware *m, struct run *run)
{
	if (resp_set(run, SLICE_LIT("WWW-Authenticate"), m->u.auth.challenge) < 0)
		return FULL;
	return answer(run, 401, body_401);
}

static void wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;
	while (n--)
		*v++ = 0;
}

/* "Basic" SP token68 (RFC 7617 §2), decoded; -1 when anything is off. */
static int basic_credentials(struct slice value, unsigned char *out, size_t cap)
{
	if (value.len < 6 || !slice_case_eq(slice_make(value.p, 5), SLICE_LIT("Basic")) || value.p[5] != ' ')
		return -1;
	struct slice token = trim(slice_make(value.p + 6, value.len - 6));
	if (token.len > BASE64_LEN(cap))
		return -1;
	return base64_decode(token, out, cap);
}

static int run_basic_auth(struct middleware *m, struct run *run)
{
	unsigned char cred[AUTH_MAX];
	struct slice value;
	if (!view_header(run, SLICE_LIT("Authorization"), &value))
		return unauthorized(m, run);
	int n = basic_credentials(value, cred, sizeof(cred));
	const unsigned char *colon = n > 0 ? memchr(cred, ':', (size_t)n) : NULL;
	if (!colon) {
		wipe(cred, sizeof(cred));
		return unauthorized(m, run);
	}
	struct slice user = { (const char *)cred, (size_t)(colon - cred) };
	struct slice password = { (const char *)colon + 1, (size_t)n - user.len - 1 };
	size_t idx = 0;
	while (idx < m->u.auth.n && !slice_eq(m->u.auth.users[idx].name, user))
		idx++;
	bool known = idx < m->u.auth.n;

	/* the cache tag covers the user and the password, under this middleware's key */
	unsigned char tag[16];
	uint64_t t0 = siphash24(m->hash_key, cred, (size_t)n), t1 = siphash24(m->hash_key + 16, cred, (size_t)n);
	memcpy(tag, &t0, 8);
	memcpy(tag + 8, &t1, 8);
	struct auth_cached *slot = &m->u.auth.cache[t0 % AUTH_CACHE];
	bool ok;
	if (known && slot->user == idx + 1 && htpasswd_equal(slot->tag, tag, sizeof(tag))) {
		ok = true;
	} else {
		/* An unknown user costs a hash too, so timing does not tell which names exist. */
		ok = htpasswd_verify(&m->u.auth.users[known ? idx : 0].hash, password) && known;
		if (ok) {
			memcpy(slot->tag, tag, sizeof(tag));
			slot->user = (uint32_t)idx + 1;
		}
	}
	wipe(cred, sizeof(cred));
	wipe(tag, sizeof(tag));
	if (!ok)
		return unauthorized(m, run);
	run->st->user = m->u.auth.users[idx].name;
	if (m->u.auth.remove_header && req_remove(run, SLICE_LIT("Authorization")) < 0)
		return FULL;
	return 0;
}

/* Longest X-Request-Id passed on as it came; a longer one is replaced. */
#define REQUEST_ID_MAX 200

static int run_request_id(struct run *run)
{
	static const struct slice name = SLICE_LIT("X-Request-Id");
	struct slice id;
	if (view_header(run, name, &id) && id.len <= REQUEST_ID_MAX) {
		/* the request's bytes may be gone when the response head is written */
		id = scratch_copy(run->st, id);
		if (!id.p)
			return FULL;
		return resp_set(run, name, id);
	}
	unsigned char raw[16];
	char hex[32];
	if (rand_bytes(raw, sizeof(raw)) < 0)
		return FULL;
	for (size_t i = 0; i < sizeof(raw); i++) {
		hex[2 * i] = "0123456789abcdef"[raw[i] >> 4];
		hex[2 * i + 1] = "0123456789abcdef"[raw[i] & 15];
	}
	id = scratch_copy(run->st, slice_make(hex, sizeof(hex)));
	if (!id.p || req_set(run, name, id) < 0)
		return FULL;
	return resp_set(run, name, id);
}

static int run_circuit_breaker(struct middleware *m, struct run *run)
{
	struct mw_state *st = run->st;
	if (!breaker_allow(m->u.breaker, run->r->now_ms))
		return answer(run, 503, SLICE_LIT("503 Service Unavailable\n"));
	if (st->n_breakers == sizeof(st->breakers) / sizeof(st->breakers[0]))
		return FULL;
	st->breakers[st->n_breakers++] = m;
	return 0;
}

static int run_one(struct middleware *m, struct run *run)
{
	switch (m->type) {
	case T_HEADERS:
		return run_headers(m, run);
	case T_RATELIMIT:
		return run_ratelimit(m, run);
	case T_INFLIGHT:
		return run_inflight(m, run);
	case T_REDIRECT_SCHEME:
		return run_redirect_scheme(m, run);
	case T_REDIRECT_REGEX:
		return run_redirect_regex(m, run);
	case T_STRIP_PREFIX:
		return run_strip_prefix(m, run);
	case T_ADD_PREFIX:
		return run_add_prefix(m, run);
	case T_BASIC_AUTH:
		return run_basic_auth(m, run);
	case T_IP_ALLOWLIST:
		if (cidr_list_contains(&m->u.allow, run->r->client))
			return 0;
		return answer(run, 403, SLICE_LIT("403 Forbidden\n"));
	case T_REQUEST_ID:
		return run_request_id(run);
	case T_RETRY:
		run->st->retry_attempts = m->u.retry.attempts;
		run->st->retry_initial_ms = m->u.retry.initial_ms;
		return 0;
	case T_CIRCUIT_BREAKER:
		return run_circuit_breaker(m, run);
	case T_COUNT:
		break;
	}
	return 0;
}

int middleware_run(struct middleware *const *chain, size_t n, const struct mw_request *r, struct mw_state *st)
{
	struct run run = { r, st, r->req->path };
	for (size_t i = 0; i < n && st->status == 0; i++) {
		if (run_one(chain[i], &run) < 0) {
			/* fail safe: no edit is silently dropped */
			answer(&run, 500, SLICE_LIT("500 Internal Server Error\n"));
		}
	}
	return st->status;
}

void middleware_done(struct mw_state *st)
{
	for (size_t i = 0; i < st->n_inflight; i++) {
		struct middleware *m = st->inflight[i];
		struct source_entry *e = source_table_at(m->u.inflight.src.table, st->inflight_key[i]);
		if (e && e->value > 0)
			e->value--;
	}
	st->n_inflight = 0;
}

void middleware_observe_request(const struct mw_state *st, int status, bool network_error, int64_t now_ms)
{
	for (size_t i = 0; i < st->n_breakers; i++)
		breaker_observe(st->breakers[i]->u.breaker, status, network_error, now_ms);
}

void middleware_observe(struct middleware *const *chain, size_t n, int status, bool network_error, int64_t now_ms)
{
	for (size_t i = 0; i < n; i++)
		if (chain[i]->type == T_CIRCUIT_BREAKER)
			breaker_observe(chain[i]->u.breaker, status, network_error, now_ms);
}

bool middleware_drops_response_field(const struct mw_state *st, struct slice name)
{
	for (size_t i = 0; i < st->n_resp_set; i++)
		if (slice_case_eq(st->resp_set[i].name, name))
			return true;
	for (size_t i = 0; i < st->n_resp_remove; i++)
		if (slice_case_eq(st->resp_remove[i], name))
			return true;
	return false;
}
