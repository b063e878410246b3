/* metrics.c - the Prometheus exposition of SPEC §3 [admin]: counters and histograms
 * in open-addressing tables keyed by interned names, so that a request whose label
 * set was seen before costs a few hash probes and allocates nothing. */
#include "metrics.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "snapshot.h"
#include "tls.h"
#include "tls_cert.h"
#include "upstream.h"
#include "utf8.h"

/* ---- interned names -------------------------------------------------------------
 * Entry point, router and service names are copied once: the configuration that
 * lent them may be freed by a reload while its counters live on. The copy's address
 * is the name's identity in series keys. */

struct name_slot {
	uint64_t hash;
	char *s; /* owner: the table; NULL = free slot */
};

static struct {
	struct name_slot *slots; /* owner: this table */
	size_t cap, n;
} names;

static const char overflow_name[] = "overflow";

/* FNV-1a */
static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static bool names_grow(void)
{
	size_t cap = names.cap ? names.cap * 2 : 64;
	struct name_slot *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return false;
	for (size_t i = 0; i < names.cap; i++) {
		if (!names.slots[i].s)
			continue;
		size_t j = names.slots[i].hash & (cap - 1);
		while (slots[j].s)
			j = (j + 1) & (cap - 1);
		slots[j] = names.slots[i];
	}
	free(names.slots);
	names.slots = slots;
	names.cap = cap;
	return true;
}

/* The interned copy of s with hash h, or NULL. */
static const char *name_find(const char *s, uint64_t h)
{
	if (!names.cap)
		return NULL;
	for (size_t i = h & (names.cap - 1); names.slots[i].s; i = (i + 1) & (names.cap - 1))
		if (names.slots[i].hash == h && strcmp(names.slots[i].s, s) == 0)
			return names.slots[i].s;
	return NULL;
}

/* The interned copy of s (NULL counts as ""); "overflow" past the limit or when
 * memory runs out. */
static const char *intern(const char *s)
{
	if (!s)
		s = "";
	uint64_t h = hash_str(s);
	const char *found = name_find(s, h);
	if (found)
		return found;
	if (names.n >= METRICS_MAX_NAMES)
		return overflow_name;
	if ((names.n + 1) * 2 > names.cap && !names_grow())
		return overflow_name;
	char *copy = strdup(s);
	if (!copy)
		return overflow_name;
	size_t i = h & (names.cap - 1);
	while (names.slots[i].s)
		i = (i + 1) & (names.cap - 1);
	names.slots[i] = (struct name_slot){ h, copy };
	names.n++;
	return copy;
}

/* ---- series tables ------------------------------------------------------------- */

/* Methods of RFC 9110 §9 and RFC 5789; anything else is one label value. */
static const char *const methods[] = { "GET",     "HEAD",    "POST",  "PUT",  "DELETE",
				       "PATCH",   "OPTIONS", "CONNECT", "TRACE", "OTHER" };
#define METHOD_OTHER 9

/* Prometheus client defaults (DefBuckets). */
static const double bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
static const char *const bound_text[] = { "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
					  "0.5",   "1",    "2.5",   "5",    "10",  "+Inf" };
#define N_BOUNDS (sizeof(bounds) / sizeof(bounds[0]))

enum { KEY_OVERFLOW = 1, KEY_TLS = 2 };

struct series_key {
	const char *l[2]; /* interned names: [entrypoint] or [router, service] or [service] */
	uint16_t code;    /* 100..599; 0 = other */
	uint8_t method;   /* index into methods[] */
	uint8_t flags;    /* KEY_* */
};

struct histo {
	uint64_t buckets[N_BOUNDS + 1]; /* not cumulative: bucket i holds bounds[i-1] < v <= bounds[i] */
	uint64_t count;
	uint64_t errors; /* 5xx answers (the service family: /api/services error rates) */
	double sum;
};

struct series {
	struct series_key key; /* key.l[0] == NULL: free slot */
	union {
		uint64_t count;
		int64_t gauge;
		struct histo *h; /* owner: the series */
	} v;
};

struct family {
	struct series *slots; /* owner: the family */
	size_t cap, n;
	bool histogram;
};

static struct family ep_requests, router_requests, svc_requests, open_conns;
static struct family ep_duration = { .histogram = true }, svc_duration = { .histogram = true };

static uint64_t key_hash(const struct series_key *k)
{
	uint64_t h = (uint64_t)(uintptr_t)k->l[0] * 0x9e3779b97f4a7c15ull;
	h ^= (uint64_t)(uintptr_t)k->l[1] + 0x632be59bd9b4e019ull + (h << 6) + (h >> 2);
	h ^= ((uint64_t)k->code << 16 | (uint64_t)k->method << 8 | k->flags) * 0xbf58476d1ce4e5b9ull;
	/* splitmix64's finalizer spreads pointer bits into the low bits used as index */
	h ^= h >> 31;
	h *= 0x94d049bb133111ebull;
	return h ^ (h >> 29);
}

static bool key_eq(const struct series_key *a, const struct series_key *b)
{
	return a->l[0] == b->l[0] && a->l[1] == b->l[1] && a->code == b->code &&
	       a->method == b->method && a->flags == b->flags;
}

static struct series *series_find(const struct family *f, const struct series_key *k)
{
	if (!f->cap)
		return NULL;
	for (size_t i = key_hash(k) & (f->cap - 1); f->slots[i].key.l[0]; i = (i + 1) & (f->cap - 1))
		if (key_eq(&f->slots[i].key, k))
			return &f->slots[i];
	return NULL;
}

static bool family_grow(struct family *f)
{
	size_t cap = f->cap ? f->cap * 2 : 16;
	struct series *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return false;
	for (size_t i = 0; i < f->cap; i++) {
		if (!f->slots[i].key.l[0])
			continue;
		size_t j = key_hash(&f->slots[i].key) & (cap - 1);
		while (slots[j].key.l[0])
			j = (j + 1) & (cap - 1);
		slots[j] = f->slots[i];
	}
	free(f->slots);
	f->slots = slots;
	f->cap = cap;
	return true;
}

static struct series *series_insert(struct family *f, const struct series_key *k)
{
	if ((f->n + 1) * 2 > f->cap && !family_grow(f))
		return NULL;
	struct histo *h = NULL;
	if (f->histogram && !(h = calloc(1, sizeof(*h))))
		return NULL;
	size_t i = key_hash(k) & (f->cap - 1);
	while (f->slots[i].key.l[0])
		i = (i + 1) & (f->cap - 1);
	f->slots[i].key = *k;
	f->slots[i].v.count = 0;
	if (h)
		f->slots[i].v.h = h;
	f->n++;
	return &f->slots[i];
}

/* The series for k, added when new; past METRICS_MAX_SERIES the overflow series.
 * NULL only when memory runs out (the sample is dropped). */
static struct series *series_get(struct family *f, struct series_key k)
{
	struct series *s = series_find(f, &k);
	if (s)
		return s;
	if (f->n >= METRICS_MAX_SERIES) {
		k = (struct series_key){ { overflow_name, overflow_name }, 0, 0, KEY_OVERFLOW };
		if ((s = series_find(f, &k)))
			return s;
	}
	return series_insert(f, &k);
}

static void family_free(struct family *f)
{
	if (f->histogram)
		for (size_t i = 0; i < f->cap; i++)
			if (f->slots[i].key.l[0])
				free(f->slots[i].v.h);
	free(f->slots);
	f->slots = NULL;
	f->cap = f->n = 0;
}

static unsigned method_index(struct slice m)
{
	for (unsigned i = 0; i < METHOD_OTHER; i++)
		if (slice_eq(m, slice_cstr(methods[i])))
			return i;
	return METHOD_OTHER;
}

static void observe(struct series *s, double seconds, int code)
{
	if (!s)
		return;
	struct histo *h = s->v.h;
	size_t i = 0;
	while (i < N_BOUNDS && seconds > bounds[i])
		i++;
	h->buckets[i]++;
	h->count++;
	h->sum += seconds;
	if (code >= 500 && code <= 599)
		h->errors++;
}

static void count(struct series *s)
{
	if (s)
		s->v.count++;
}

/* ---- the update side --------------------------------------------------------- */

static uint64_t reloads, reload_failures;
static bool last_reload_failed;
static time_t last_reload_success; /* 0: none since start (the start time is reported) */

void metrics_request(const char *entrypoint, const char *router, const char *service, struct slice method,
		     int code, double seconds, bool tls)
{
	if (!(seconds >= 0)) /* negative or NaN: a clock step, not a duration */
		seconds = 0;
	uint16_t c = code >= 100 && code <= 599 ? (uint16_t)code : 0;
	uint8_t m = (uint8_t)method_index(method);
	const char *ep = intern(entrypoint);

	count(series_get(&ep_requests, (struct series_key){ { ep, NULL }, c, m, tls ? KEY_TLS : 0 }));
	observe(series_get(&ep_duration, (struct series_key){ { ep, NULL }, 0, 0, 0 }), seconds, code);
	if (!service)
		return;
	const char *svc = intern(service);
	if (router)
		count(series_get(&router_requests, (struct series_key){ { intern(router), svc }, c, m, 0 }));
	count(series_get(&svc_requests, (struct series_key){ { svc, NULL }, c, m, 0 }));
	observe(series_get(&svc_duration, (struct series_key){ { svc, NULL }, 0, 0, 0 }), seconds, code);
}

void metrics_connection_open(const char *entrypoint)
{
	struct series *s = series_get(&open_conns, (struct series_key){ { intern(entrypoint), NULL }, 0, 0, 0 });
	if (s)
		s->v.gauge++;
}

void metrics_connection_close(const char *entrypoint)
{
	struct series *s = series_get(&open_conns, (struct series_key){ { intern(entrypoint), NULL }, 0, 0, 0 });
	if (s && s->v.gauge > 0)
		s->v.gauge--;
}

void metrics_config_reload(bool success)
{
	reloads++;
	last_reload_failed = !success;
	if (success)
		last_reload_success = time(NULL);
	else
		reload_failures++;
}

void metrics_service_totals(const char *service, uint64_t *requests, uint64_t *errors)
{
	*requests = *errors = 0;
	const char *svc = service ? name_find(service, hash_str(service)) : NULL;
	if (!svc)
		return;
	const struct series *s = series_find(&svc_duration, &(struct series_key){ { svc, NULL }, 0, 0, 0 });
	if (s) {
		*requests = s->v.h->count;
		*errors = s->v.h->errors;
	}
}

void metrics_reset(void)
{
	family_free(&ep_requests);
	family_free(&ep_duration);
	family_free(&router_requests);
	family_free(&svc_requests);
	family_free(&svc_duration);
	family_free(&open_conns);
	for (size_t i = 0; i < names.cap; i++)
		free(names.slots[i].s);
	free(names.slots);
	names.slots = NULL;
	names.cap = names.n = 0;
	reloads = reload_failures = 0;
	last_reload_failed = false;
	last_reload_success = 0;
}

/* ---- rendering ----------------------------------------------------------------- */

/* A label value per the exposition format: backslash, double quote and line feed
 * escaped; bytes that are not well-formed UTF-8 (which would fail the whole
 * scrape) become U+FFFD. */
static void put_value(struct strbuf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		const unsigned char *run = p;
		while (*p && *p < 0x80 && *p != '\\' && *p != '"' && *p != '\n')
			p++;
		strbuf_put(b, (const char *)run, (size_t)(p - run));
		if (!*p)
			break;
		if (*p < 0x80) {
			strbuf_str(b, *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : "\\n");
			p++;
			continue;
		}
		size_t n = utf8_seq_len(p, strnlen((const char *)p, 4));
		if (n) {
			strbuf_put(b, (const char *)p, n);
			p += n;
		} else {
			strbuf_str(b, "\xef\xbf\xbd");
			p++;
		}
	}
}

/* {k1="v1",k2="v2"}; n may be 0 (nothing is written). */
static void put_labels(struct strbuf *b, const char *const *keys, const char *const *vals, size_t n)
{
	if (!n)
		return;
	strbuf_put(b, "{", 1);
	for (size_t i = 0; i < n; i++) {
		if (i)
			strbuf_put(b, ",", 1);
		strbuf_str(b, keys[i]);
		strbuf_put(b, "=\"", 2);
		put_value(b, vals[i]);
		strbuf_put(b, "\"", 1);
	}
	strbuf_put(b, "}", 1);
}

static void put_header(struct strbuf *b, const char *name, const char *type, const char *help)
{
	strbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Which key field each label of a family shows. */
enum field { F_L0, F_L1, F_CODE, F_METHOD, F_PROTO };

struct family_desc {
	const char *name, *type, *help;
	struct family *f;
	size_t n_labels;
	const char *labels[4];
	enum field fields[4];
};

static const char *field_value(const struct series_key *k, enum field f, char codebuf[8])
{
	if (k->flags & KEY_OVERFLOW)
		return overflow_name;
	switch (f) {
	case F_L0: return k->l[0];
	case F_L1: return k->l[1] ? k->l[1] : "";
	case F_CODE:
		if (!k->code)
			return "other";
		snprintf(codebuf, 8, "%u", (unsigned)k->code);
		return codebuf;
	case F_METHOD: return methods[k->method];
	case F_PROTO: return k->flags & KEY_TLS ? "https" : "http";
	}
	return "";
}

static int cmp_str(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

/* Label order, the overflow series last: stable output for people and tests. */
static int series_order(const void *pa, const void *pb)
{
	const struct series_key *a = &(*(const struct series *const *)pa)->key;
	const struct series_key *b = &(*(const struct series *const *)pb)->key;
	int d;
	if ((a->flags & KEY_OVERFLOW) != (b->flags & KEY_OVERFLOW))
		return (a->flags & KEY_OVERFLOW) ? 1 : -1;
	if ((d = cmp_str(a->l[0], b->l[0])) || (d = cmp_str(a->l[1], b->l[1])))
		return d;
	if (a->code != b->code)
		return a->code < b->code ? -1 : 1;
	if (a->method != b->method)
		return a->method < b->method ? -1 : 1;
	return (int)a->flags - (int)b->flags;
}

static void render_family(struct strbuf *b, const struct family_desc *d)
{
	put_header(b, d->name, d->type, d->help);
	const struct family *f = d->f;
	if (!f->n)
		return;
	const struct series **sorted = malloc(f->n * sizeof(*sorted));
	if (!sorted) {
		b->failed = true;
		return;
	}
	size_t n = 0;
	for (size_t i = 0; i < f->cap; i++)
		if (f->slots[i].key.l[0])
			sorted[n++] = &f->slots[i];
	qsort(sorted, n, sizeof(*sorted), series_order);

	for (size_t i = 0; i < n; i++) {
		const struct series *s = sorted[i];
		const char *vals[5];
		const char *keys[5];
		char codebuf[8];
		for (size_t j = 0; j < d->n_labels; j++) {
			keys[j] = d->labels[j];
			vals[j] = field_value(&s->key, d->fields[j], codebuf);
		}
		if (!f->histogram) {
			strbuf_str(b, d->name);
			put_labels(b, keys, vals, d->n_labels);
			if (f == &open_conns)
				strbuf_printf(b, " %lld\n", (long long)s->v.gauge);
			else
				strbuf_printf(b, " %llu\n", (unsigned long long)s->v.count);
			continue;
		}
		/* the exposition format: cumulative buckets, the +Inf one equal to _count */
		const struct histo *h = s->v.h;
		uint64_t cum = 0;
		keys[d->n_labels] = "le";
		for (size_t j = 0; j <= N_BOUNDS; j++) {
			cum += h->buckets[j];
			vals[d->n_labels] = bound_text[j];
			strbuf_printf(b, "%s_bucket", d->name);
			put_labels(b, keys, vals, d->n_labels + 1);
			strbuf_printf(b, " %llu\n", (unsigned long long)cum);
		}
		strbuf_printf(b, "%s_sum", d->name);
		put_labels(b, keys, vals, d->n_labels);
		strbuf_printf(b, " %.9g\n", h->sum);
		strbuf_printf(b, "%s_count", d->name);
		put_labels(b, keys, vals, d->n_labels);
		strbuf_printf(b, " %llu\n", (unsigned long long)h->count);
	}
	free(sorted);
}

static const struct family_desc request_families[] = {
	{ "edgeproxy_entrypoint_requests_total", "counter",
	  "Requests answered on an entry point, by status code, method and protocol.",
	  &ep_requests, 4, { "entrypoint", "code", "method", "protocol" }, { F_L0, F_CODE, F_METHOD, F_PROTO } },
	{ "edgeproxy_entrypoint_request_duration_seconds", "histogram",
	  "Time from a request's first byte to the end of its response, per entry point.",
	  &ep_duration, 1, { "entrypoint" }, { F_L0 } },
	{ "edgeproxy_router_requests_total", "counter",
	  "Requests a router matched, by service, status code and method.",
	  &router_requests, 4, { "router", "service", "code", "method" }, { F_L0, F_L1, F_CODE, F_METHOD } },
	{ "edgeproxy_service_requests_total", "counter",
	  "Requests a service answered, by status code and method.",
	  &svc_requests, 3, { "service", "code", "method" }, { F_L0, F_CODE, F_METHOD } },
	{ "edgeproxy_service_request_duration_seconds", "histogram",
	  "Time from a request's first byte to the end of its response, per service.",
	  &svc_duration, 1, { "service" }, { F_L0 } },
};

static void render_servers(const struct snapshot *snap, struct strbuf *b)
{
	put_header(b, "edgeproxy_service_server_up", "gauge",
		   "Whether a server of a proxy service is taking requests (1) or marked down (0).");
	for (size_t i = 0; snap && i < snap->n_services; i++) {
		const struct service_rt *svc = &snap->services[i];
		if (!svc->group)
			continue;
		for (size_t j = 0; j < svc->group->n; j++) {
			const struct upstream_server *s = &svc->group->servers[j];
			static const char *const keys[] = { "service", "url" };
			const char *vals[] = { svc->conf->name, s->conf->url };
			strbuf_str(b, "edgeproxy_service_server_up");
			put_labels(b, keys, vals, 2);
			strbuf_str(b, upstream_is_up(s) ? " 1\n" : " 0\n");
		}
	}
}

/* Reads a DER tag and length; *v and *vlen give the contents. -1 on malformed input. */
static int der_next(const unsigned char **p, const unsigned char *end, unsigned *tag,
		    const unsigned char **v, size_t *vlen)
{
	const unsigned char *q = *p;
	if (end - q < 2)
		return -1;
	*tag = *q++;
	size_t len = *q++;
	if (len & 0x80) {
		size_t nb = len & 0x7f;
		if (nb == 0 || nb > 3 || (size_t)(end - q) < nb)
			return -1;
		for (len = 0; nb; nb--)
			len = len << 8 | *q++;
	}
	if ((size_t)(end - q) < len)
		return -1;
	*v = q;
	*vlen = len;
	*p = q + len;
	return 0;
}

struct dn_buf {
	unsigned char b[1024];
	size_t len;
	bool truncated;
};

static void dn_append(void *ctx, const void *buf, size_t len)
{
	struct dn_buf *d = ctx;
	if (len > sizeof(d->b) - d->len) {
		d->truncated = true;
		return;
	}
	memcpy(d->b + d->len, buf, len);
	d->len += len;
}

/* The leaf's subject commonName (the first one), printable ASCII only; "" when
 * there is none. */
static void cert_cn(const struct tls_cert *c, char *out, size_t cap)
{
	static const unsigned char oid_cn[] = { 0x55, 0x04, 0x03 }; /* 2.5.4.3 */
	out[0] = '\0';
	if (!c->chain_len)
		return;
	struct dn_buf dn = { .len = 0 };
	br_x509_decoder_context xd;
	br_x509_decoder_init(&xd, dn_append, &dn);
	br_x509_decoder_push(&xd, c->chain[0].data, c->chain[0].data_len);
	if (dn.truncated || !dn.len)
		return;
	const unsigned char *p = dn.b, *end = dn.b + dn.len, *name, *rdn, *atv, *oid, *val;
	size_t name_len, rdn_len, atv_len, oid_len, val_len;
	unsigned tag;
	if (der_next(&p, end, &tag, &name, &name_len) < 0 || tag != 0x30) /* Name: SEQUENCE OF RDN */
		return;
	for (const unsigned char *r = name; r < name + name_len;) {
		if (der_next(&r, name + name_len, &tag, &rdn, &rdn_len) < 0 || tag != 0x31)
			return;
		for (const unsigned char *a = rdn; a < rdn + rdn_len;) {
			if (der_next(&a, rdn + rdn_len, &tag, &atv, &atv_len) < 0 || tag != 0x30)
				return;
			const unsigned char *q = atv;
			if (der_next(&q, atv + atv_len, &tag, &oid, &oid_len) < 0 || tag != 0x06 ||
			    der_next(&q, atv + atv_len, &tag, &val, &val_len) < 0)
				return;
			if (oid_len != sizeof(oid_cn) || memcmp(oid, oid_cn, oid_len) != 0)
				continue;
			size_t n = val_len < cap - 1 ? val_len : cap - 1;
			for (size_t i = 0; i < n; i++)
				out[i] = val[i] >= 0x20 && val[i] < 0x7f ? (char)val[i] : '?';
			out[n] = '\0';
			return;
		}
	}
}

static void cert_sans(const struct tls_cert *c, struct strbuf *sans)
{
	for (size_t i = 0; i < c->n_names; i++) {
		if (i)
			strbuf_put(sans, ",", 1);
		strbuf_str(sans, c->names[i]);
	}
}

static void render_certs(const struct snapshot *snap, struct strbuf *b)
{
	put_header(b, "edgeproxy_tls_certs_not_after", "gauge",
		   "When a certificate expires, in seconds since the epoch.");
	if (!snap || !snap->tls)
		return;
	const struct tls_store *st = snap->tls;
	size_t n = st->n + (st->fallback_owned ? 1 : 0);
	struct cert_row {
		char cn[256];
		struct strbuf sans;
		time_t not_after;
		bool dup;
	} *rows = calloc(n ? n : 1, sizeof(*rows));
	if (!rows) {
		b->failed = true;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct tls_cert *c = i < st->n ? st->certs[i] : st->fallback;
		cert_cn(c, rows[i].cn, sizeof(rows[i].cn));
		cert_sans(c, &rows[i].sans);
		strbuf_put(&rows[i].sans, "", 0); /* a NUL even when empty */
		rows[i].not_after = c->not_after;
	}
	/* The same certificate loaded twice is one series; the earliest expiry wins. */
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n && !rows[i].dup; j++)
			if (!rows[j].dup && strcmp(rows[i].cn, rows[j].cn) == 0 &&
			    cmp_str(rows[i].sans.p, rows[j].sans.p) == 0) {
				rows[j].dup = true;
				if (rows[j].not_after < rows[i].not_after)
					rows[i].not_after = rows[j].not_after;
			}
	for (size_t i = 0; i < n; i++) {
		if (!rows[i].dup) {
			static const char *const keys[] = { "cn", "sans", "resolver" };
			/* resolver: the [acme] name for issued certificates; [cert] and the default have none */
			const char *vals[] = { rows[i].cn, rows[i].sans.p ? rows[i].sans.p : "", "" };
			strbuf_str(b, "edgeproxy_tls_certs_not_after");
			put_labels(b, keys, vals, 3);
			strbuf_printf(b, " %lld\n", (long long)rows[i].not_after);
		}
		strbuf_free(&rows[i].sans);
	}
	free(rows);
}

/* ---- process_* (what the Prometheus client libraries export) ---------------------- */

struct proc_stat {
	double cpu_seconds, start_time;
	unsigned long long vsize, rss_bytes;
};

static int read_file(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[n] = '\0';
	return n ? 0 : -1;
}

/* proc(5): /proc/self/stat fields after the parenthesised comm, which may itself
 * hold spaces and parentheses. */
static int proc_self_stat(struct proc_stat *ps)
{
	char buf[1024], sbuf[4096];
	if (read_file("/proc/self/stat", buf, sizeof(buf)) < 0)
		return -1;
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	unsigned long long v[22] = { 0 }; /* v[0] is field 3 (state), v[i] field i + 3 */
	p++;
	for (size_t i = 0; i < 22; i++) {
		while (*p == ' ')
			p++;
		if (!*p)
			return -1;
		if (i > 0)
			v[i] = strtoull(p, NULL, 10);
		p += strcspn(p, " ");
	}
	long tck = sysconf(_SC_CLK_TCK);
	long page = sysconf(_SC_PAGESIZE);
	if (tck <= 0 || page <= 0)
		return -1;
	ps->cpu_seconds = (double)(v[11] + v[12]) / (double)tck; /* utime + stime */
	ps->vsize = v[20];
	ps->rss_bytes = v[21] * (unsigned long long)page;
	ps->start_time = 0;
	if (read_file("/proc/stat", sbuf, sizeof(sbuf)) == 0) {
		const char *bt = strstr(sbuf, "\nbtime ");
		if (bt)
			ps->start_time = (double)strtoull(bt + 7, NULL, 10) + (double)v[19] / (double)tck;
	}
	return 0;
}

static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	long n = 0;
	for (struct dirent *e; (e = readdir(d));)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* not the directory's own descriptor */
}

static double process_start_time(void)
{
	struct proc_stat ps;
	return proc_self_stat(&ps) == 0 ? ps.start_time : 0;
}

static void render_process(struct strbuf *b)
{
	struct proc_stat ps;
	if (proc_self_stat(&ps) == 0) {
		put_header(b, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
		strbuf_printf(b, "process_cpu_seconds_total %.2f\n", ps.cpu_seconds);
		put_header(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
		strbuf_printf(b, "process_resident_memory_bytes %llu\n", ps.rss_bytes);
		put_header(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
		strbuf_printf(b, "process_virtual_memory_bytes %llu\n", ps.vsize);
		if (ps.start_time > 0) {
			put_header(b, "process_start_time_seconds", "gauge",
				   "Start time of the process since unix epoch in seconds.");
			strbuf_printf(b, "process_start_time_seconds %.2f\n", ps.start_time);
		}
	}
	long fds = open_fds();
	if (fds >= 0) {
		put_header(b, "process_open_fds", "gauge", "Number of open file descriptors.");
		strbuf_printf(b, "process_open_fds %ld\n", fds);
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		put_header(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
		strbuf_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
	}
}

static void render_reloads(struct strbuf *b)
{
	put_header(b, "edgeproxy_config_reloads_total", "counter",
		   "Configuration reloads attempted (SIGHUP or file change), successful or not.");
	strbuf_printf(b, "edgeproxy_config_reloads_total %llu\n", (unsigned long long)reloads);
	put_header(b, "edgeproxy_config_reloads_failure_total", "counter",
		   "Configuration reloads refused because the file had errors.");
	strbuf_printf(b, "edgeproxy_config_reloads_failure_total %llu\n", (unsigned long long)reload_failures);
	put_header(b, "edgeproxy_config_last_reload_success", "gauge",
		   "Whether the last configuration reload succeeded (1; also before any reload) or failed (0).");
	strbuf_printf(b, "edgeproxy_config_last_reload_success %d\n", last_reload_failed ? 0 : 1);
	put_header(b, "edgeproxy_config_last_reload_success_timestamp_seconds", "gauge",
		   "When the configuration in use was loaded, in seconds since the epoch.");
	double t = last_reload_success ? (double)last_reload_success : process_start_time();
	strbuf_printf(b, "edgeproxy_config_last_reload_success_timestamp_seconds %.0f\n", t);
}

void metrics_render(const struct snapshot *snap, struct strbuf *out)
{
	size_t n = sizeof(request_families) / sizeof(request_families[0]);
	for (size_t i = 0; i < n; i++)
		render_family(out, &request_families[i]);
	render_servers(snap, out);
	render_family(out, &(const struct family_desc){ "edgeproxy_open_connections", "gauge",
							"Client connections open on an entry point.",
							&open_conns, 1, { "entrypoint" }, { F_L0 } });
	render_certs(snap, out);
	render_reloads(out);
	render_process(out);
}
