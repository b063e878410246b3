/* metrics.c - the Prometheus exposition of SPEC §3 [admin]: counters and histograms
 * in open-addressing tables keyed by interned names, so that a request whose label
 * set was seen before costs a few hash probes and allocates nothing.
 *
 * With workers (metrics_share), every process writes its own store inside a shared
 * mapping made before the fork, so the mapping, and every pointer inside it, has the
 * same address in all of them; /metrics, served by any one worker, merges the stores
 * of all. A store has one writer and is read without locks: memory in a shared
 * arena is never freed, a slot's first name and a family's table are published last
 * (release), and a table that grows is copied, so a reader sees complete entries of
 * the old table or the new one. A counter read while it is incremented may be one
 * behind; on 32-bit targets a 64-bit counter read exactly as it carries into its
 * upper half can be torn, once per 2^32 increments. */
#include "metrics.h"

#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "snapshot.h"
#include "tls.h"
#include "tls_cert.h"
#include "upstream.h"
#include "utf8.h"

/* Methods of RFC 9110 §9 and RFC 5789; anything else is one label value. */
static const char *const methods[] = { "GET",     "HEAD",    "POST",  "PUT",  "DELETE",
				       "PATCH",   "OPTIONS", "CONNECT", "TRACE", "OTHER" };
#define METHOD_OTHER 9

/* Prometheus client defaults (DefBuckets). */
static const double bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
static const char *const bound_text[] = { "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
					  "0.5",   "1",    "2.5",   "5",    "10",  "+Inf" };
#define N_BOUNDS (sizeof(bounds) / sizeof(bounds[0]))

static const char overflow_name[] = "overflow";

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
		struct histo *h; /* owner: the store */
	} v;
};

/* A family's slots and their number in one block: a reader loads one pointer. */
struct table {
	size_t cap;
	struct series slots[];
};

enum family_id { FAM_EP_REQUESTS, FAM_EP_DURATION, FAM_ROUTER_REQUESTS, FAM_SVC_REQUESTS,
		 FAM_SVC_DURATION, FAM_OPEN_CONNS, N_FAMILIES };

static bool family_is_histogram(enum family_id id)
{
	return id == FAM_EP_DURATION || id == FAM_SVC_DURATION;
}

struct family {
	struct table *t; /* owner: the store; NULL until the first series */
	size_t n;
};

struct name_slot {
	uint64_t hash;
	char *s; /* owner: the store; NULL = free slot */
};

/* Bump allocation inside a shared mapping: nothing is freed until the store is reset. */
struct arena {
	size_t size, used; /* bytes of the whole arena, this header included */
};

/* Everything one process counts. */
struct store {
	struct arena *arena; /* NULL: the process heap */
	pid_t pid;           /* the writer (shared stores); 0 = none */
	struct {
		struct name_slot *slots;
		size_t cap, n;
	} names;
	struct family fam[N_FAMILIES];
};

struct reload_stats {
	uint64_t reloads, failures;
	bool last_failed;
	time_t last_success; /* 0: none since start (the start time is reported) */
};

/* The shared mapping: this header, then n arenas of arena_size bytes, each
 * starting with its struct arena and its struct store. */
struct shared {
	pid_t supervisor;
	size_t n, arena_size;
	struct reload_stats reloads; /* written by the supervisor only */
};

static struct store local;                 /* without workers, and until attached */
static struct store *self = &local;        /* where this process counts */
static struct reload_stats local_reloads;
static struct reload_stats *reload_stats = &local_reloads;
static struct shared *shared;              /* NULL without workers */

#define ARENA_ALIGN 16

static struct store *arena_store(size_t i)
{
	struct arena *a = (struct arena *)((char *)(shared + 1) + i * shared->arena_size);
	return (struct store *)(a + 1);
}

/* Zeroed memory for st, or NULL. */
static void *st_alloc(struct store *st, size_t n)
{
	if (!st->arena)
		return calloc(1, n);
	struct arena *a = st->arena;
	size_t at = (a->used + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (n > a->size || at > a->size - n)
		return NULL;
	a->used = at + n;
	return (char *)a + at; /* fresh shared pages are zero, and arena memory is never reused */
}

static void st_free(struct store *st, void *p)
{
	if (!st->arena)
		free(p);
}

/* ---- interned names -------------------------------------------------------------
 * Entry point, router and service names are copied once: the configuration that
 * lent them may be freed by a reload while its counters live on. The copy's address
 * is the name's identity in series keys. */

/* FNV-1a */
static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static bool names_grow(struct store *st)
{
	size_t cap = st->names.cap ? st->names.cap * 2 : 64;
	struct name_slot *slots = st_alloc(st, cap * sizeof(*slots));
	if (!slots)
		return false;
	for (size_t i = 0; i < st->names.cap; i++) {
		if (!st->names.slots[i].s)
			continue;
		size_t j = st->names.slots[i].hash & (cap - 1);
		while (slots[j].s)
			j = (j + 1) & (cap - 1);
		slots[j] = st->names.slots[i];
	}
	st_free(st, st->names.slots);
	st->names.slots = slots;
	st->names.cap = cap;
	return true;
}

/* The interned copy of s with hash h, or NULL. */
static const char *name_find(const struct store *st, const char *s, uint64_t h)
{
	if (!st->names.cap)
		return NULL;
	for (size_t i = h & (st->names.cap - 1); st->names.slots[i].s; i = (i + 1) & (st->names.cap - 1))
		if (st->names.slots[i].hash == h && strcmp(st->names.slots[i].s, s) == 0)
			return st->names.slots[i].s;
	return NULL;
}

/* The interned copy of s (NULL counts as ""); "overflow" past the limit or when
 * memory runs out. */
static const char *intern(struct store *st, const char *s)
{
	if (!s)
		s = "";
	if (s == overflow_name)
		return s;
	uint64_t h = hash_str(s);
	const char *found = name_find(st, s, h);
	if (found)
		return found;
	if (st->names.n >= METRICS_MAX_NAMES)
		return overflow_name;
	if ((st->names.n + 1) * 2 > st->names.cap && !names_grow(st))
		return overflow_name;
	size_t len = strlen(s) + 1;
	char *copy = st_alloc(st, len);
	if (!copy)
		return overflow_name;
	memcpy(copy, s, len);
	size_t i = h & (st->names.cap - 1);
	while (st->names.slots[i].s)
		i = (i + 1) & (st->names.cap - 1);
	st->names.slots[i] = (struct name_slot){ h, copy };
	st->names.n++;
	return copy;
}

/* ---- series tables ------------------------------------------------------------- */

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
	const struct table *t = f->t;
	if (!t)
		return NULL;
	for (size_t i = key_hash(k) & (t->cap - 1); t->slots[i].key.l[0]; i = (i + 1) & (t->cap - 1))
		if (key_eq(&t->slots[i].key, k))
			return (struct series *)&t->slots[i];
	return NULL;
}

static bool family_grow(struct store *st, struct family *f)
{
	size_t cap = f->t ? f->t->cap * 2 : 16;
	struct table *t = st_alloc(st, sizeof(*t) + cap * sizeof(t->slots[0]));
	if (!t)
		return false;
	t->cap = cap;
	for (size_t i = 0; f->t && i < f->t->cap; i++) {
		if (!f->t->slots[i].key.l[0])
			continue;
		size_t j = key_hash(&f->t->slots[i].key) & (cap - 1);
		while (t->slots[j].key.l[0])
			j = (j + 1) & (cap - 1);
		t->slots[j] = f->t->slots[i];
	}
	struct table *old = f->t;
	__atomic_store_n(&f->t, t, __ATOMIC_RELEASE);
	st_free(st, old);
	return true;
}

static struct series *series_insert(struct store *st, enum family_id id, const struct series_key *k)
{
	struct family *f = &st->fam[id];
	if ((!f->t || (f->n + 1) * 2 > f->t->cap) && !family_grow(st, f))
		return NULL;
	struct histo *h = NULL;
	if (family_is_histogram(id) && !(h = st_alloc(st, sizeof(*h))))
		return NULL;
	struct table *t = f->t;
	size_t i = key_hash(k) & (t->cap - 1);
	while (t->slots[i].key.l[0])
		i = (i + 1) & (t->cap - 1);
	struct series *s = &t->slots[i];
	s->key.l[1] = k->l[1];
	s->key.code = k->code;
	s->key.method = k->method;
	s->key.flags = k->flags;
	s->v.count = 0;
	if (h)
		s->v.h = h;
	__atomic_store_n(&s->key.l[0], k->l[0], __ATOMIC_RELEASE); /* the slot is taken: publish */
	f->n++;
	return s;
}

/* The series for k, added when new; past METRICS_MAX_SERIES the overflow series.
 * NULL only when memory runs out (the sample is dropped). */
static struct series *series_get(struct store *st, enum family_id id, struct series_key k)
{
	struct family *f = &st->fam[id];
	struct series *s = series_find(f, &k);
	if (s)
		return s;
	if (f->n >= METRICS_MAX_SERIES) {
		k = (struct series_key){ { overflow_name, overflow_name }, 0, 0, KEY_OVERFLOW };
		if ((s = series_find(f, &k)))
			return s;
	}
	return series_insert(st, id, &k);
}

static void store_clear(struct store *st)
{
	if (!st->arena) {
		for (int id = 0; id < N_FAMILIES; id++) {
			struct table *t = st->fam[id].t;
			for (size_t i = 0; t && family_is_histogram(id) && i < t->cap; i++)
				if (t->slots[i].key.l[0])
					free(t->slots[i].v.h);
			free(t);
		}
		for (size_t i = 0; i < st->names.cap; i++)
			free(st->names.slots[i].s);
		free(st->names.slots);
	} else {
		st->arena->used = (size_t)((char *)(st + 1) - (char *)st->arena);
	}
	struct arena *a = st->arena;
	pid_t pid = st->pid;
	memset(st, 0, sizeof(*st));
	st->arena = a;
	st->pid = pid;
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

void metrics_request(const char *entrypoint, const char *router, const char *service, struct slice method,
		     int code, double seconds, bool tls)
{
	struct store *st = self;
	if (!(seconds >= 0)) /* negative or NaN: a clock step, not a duration */
		seconds = 0;
	uint16_t c = code >= 100 && code <= 599 ? (uint16_t)code : 0;
	uint8_t m = (uint8_t)method_index(method);
	const char *ep = intern(st, entrypoint);

	count(series_get(st, FAM_EP_REQUESTS, (struct series_key){ { ep, NULL }, c, m, tls ? KEY_TLS : 0 }));
	observe(series_get(st, FAM_EP_DURATION, (struct series_key){ { ep, NULL }, 0, 0, 0 }), seconds, code);
	if (!service)
		return;
	const char *svc = intern(st, service);
	if (router)
		count(series_get(st, FAM_ROUTER_REQUESTS,
				 (struct series_key){ { intern(st, router), svc }, c, m, 0 }));
	count(series_get(st, FAM_SVC_REQUESTS, (struct series_key){ { svc, NULL }, c, m, 0 }));
	observe(series_get(st, FAM_SVC_DURATION, (struct series_key){ { svc, NULL }, 0, 0, 0 }), seconds, code);
}

void metrics_connection_open(const char *entrypoint)
{
	struct series *s = series_get(self, FAM_OPEN_CONNS,
				      (struct series_key){ { intern(self, entrypoint), NULL }, 0, 0, 0 });
	if (s)
		s->v.gauge++;
}

void metrics_connection_close(const char *entrypoint)
{
	struct series *s = series_get(self, FAM_OPEN_CONNS,
				      (struct series_key){ { intern(self, entrypoint), NULL }, 0, 0, 0 });
	if (s && s->v.gauge > 0)
		s->v.gauge--;
}

void metrics_config_reload(bool success)
{
	reload_stats->reloads++;
	reload_stats->last_failed = !success;
	if (success)
		reload_stats->last_success = time(NULL);
	else
		reload_stats->failures++;
}

/* ---- workers: one store per process in a shared mapping ---------------------------- */

int metrics_share(size_t n_stores)
{
	size_t arena_size = METRICS_ARENA_SIZE;
	size_t len = sizeof(struct shared) + n_stores * arena_size;
	/* MAP_ANONYMOUS takes fd -1, as portable code passes it (Linux ignores it);
	 * cppcheck's posix.cfg allows only fd >= 0: a false positive. */
	/* cppcheck-suppress invalidFunctionArg */
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return -1;
	shared = m;
	shared->supervisor = getpid();
	shared->n = n_stores;
	shared->arena_size = arena_size;
	shared->reloads = *reload_stats;
	reload_stats = &shared->reloads;
	for (size_t i = 0; i < n_stores; i++) {
		struct store *st = arena_store(i);
		st->arena = (struct arena *)st - 1;
		st->arena->size = arena_size;
		st->arena->used = sizeof(struct arena) + sizeof(struct store);
	}
	return 0;
}

void metrics_attach(size_t i)
{
	if (!shared || i >= shared->n)
		return;
	struct store *st = arena_store(i);
	st->pid = getpid();
	self = st;
	/* Counters carry on from the store's previous writer; reload counts are the
	 * supervisor's alone. */
	reload_stats = &local_reloads;
}

void metrics_release(size_t i)
{
	if (!shared || i >= shared->n)
		return;
	struct store *st = arena_store(i);
	/* The writer is gone: its connections are closed. */
	struct table *t = st->fam[FAM_OPEN_CONNS].t;
	for (size_t j = 0; t && j < t->cap; j++)
		t->slots[j].v.gauge = 0;
	st->pid = 0;
}

/* Adds src's series to dst (a heap store), interning src's names into dst. */
static void store_add(struct store *dst, const struct store *src)
{
	for (int id = 0; id < N_FAMILIES; id++) {
		const struct table *t = __atomic_load_n(&src->fam[id].t, __ATOMIC_ACQUIRE);
		for (size_t i = 0; t && i < t->cap; i++) {
			const struct series *s = &t->slots[i];
			const char *l0 = __atomic_load_n(&s->key.l[0], __ATOMIC_ACQUIRE);
			if (!l0)
				continue;
			struct series_key k = s->key;
			k.l[0] = intern(dst, l0);
			k.l[1] = s->key.l[1] ? intern(dst, s->key.l[1]) : NULL;
			struct series *d = series_get(dst, (enum family_id)id, k);
			if (!d)
				continue;
			if (!family_is_histogram(id)) {
				d->v.count += s->v.count; /* a gauge adds the same way */
				continue;
			}
			const struct histo *h = s->v.h;
			if (!h)
				continue;
			for (size_t j = 0; j <= N_BOUNDS; j++)
				d->v.h->buckets[j] += h->buckets[j];
			d->v.h->count += h->count;
			d->v.h->errors += h->errors;
			d->v.h->sum += h->sum;
		}
	}
}

/* What /metrics shows: this process's store, or with workers the sum of all stores
 * (a heap store that *merged owns; store_clear it). */
static const struct store *view(struct store *merged)
{
	if (!shared)
		return self;
	memset(merged, 0, sizeof(*merged));
	for (size_t i = 0; i < shared->n; i++)
		store_add(merged, arena_store(i));
	return merged;
}

void metrics_service_totals(const char *service, uint64_t *requests, uint64_t *errors)
{
	*requests = *errors = 0;
	if (!service)
		return;
	struct store merged;
	const struct store *st = view(&merged);
	const char *svc = name_find(st, service, hash_str(service));
	const struct series *s =
		svc ? series_find(&st->fam[FAM_SVC_DURATION], &(struct series_key){ { svc, NULL }, 0, 0, 0 }) : NULL;
	if (s) {
		*requests = s->v.h->count;
		*errors = s->v.h->errors;
	}
	if (st == &merged)
		store_clear(&merged);
}

void metrics_reset(void)
{
	store_clear(self);
	*reload_stats = (struct reload_stats){ 0 };
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
	enum family_id id;
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

static void render_family(struct strbuf *b, const struct store *st, const struct family_desc *d)
{
	put_header(b, d->name, d->type, d->help);
	const struct family *f = &st->fam[d->id];
	const struct table *t = f->t;
	if (!f->n || !t)
		return;
	const struct series **sorted = malloc(f->n * sizeof(*sorted));
	if (!sorted) {
		b->failed = true;
		return;
	}
	size_t n = 0;
	for (size_t i = 0; i < t->cap && n < f->n; i++)
		if (t->slots[i].key.l[0])
			sorted[n++] = &t->slots[i];
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
		if (!family_is_histogram(d->id)) {
			strbuf_str(b, d->name);
			put_labels(b, keys, vals, d->n_labels);
			if (d->id == FAM_OPEN_CONNS)
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
	  FAM_EP_REQUESTS, 4, { "entrypoint", "code", "method", "protocol" }, { F_L0, F_CODE, F_METHOD, F_PROTO } },
	{ "edgeproxy_entrypoint_request_duration_seconds", "histogram",
	  "Time from a request's first byte to the end of its response, per entry point.",
	  FAM_EP_DURATION, 1, { "entrypoint" }, { F_L0 } },
	{ "edgeproxy_router_requests_total", "counter",
	  "Requests a router matched, by service, status code and method.",
	  FAM_ROUTER_REQUESTS, 4, { "router", "service", "code", "method" }, { F_L0, F_L1, F_CODE, F_METHOD } },
	{ "edgeproxy_service_requests_total", "counter",
	  "Requests a service answered, by status code and method.",
	  FAM_SVC_REQUESTS, 3, { "service", "code", "method" }, { F_L0, F_CODE, F_METHOD } },
	{ "edgeproxy_service_request_duration_seconds", "histogram",
	  "Time from a request's first byte to the end of its response, per service.",
	  FAM_SVC_DURATION, 1, { "service" }, { F_L0 } },
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

/* ---- process_* (what the Prometheus client libraries export) ----------------------
 * With workers, the figures of the supervisor and every worker added up (the start
 * time is the supervisor's): what the edge router as a whole costs. */

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

/* proc(5): /proc/PID/stat fields after the parenthesised comm, which may itself
 * hold spaces and parentheses. pid 0: this process. */
static int proc_stat(pid_t pid, struct proc_stat *ps)
{
	char path[64], buf[1024], sbuf[4096];
	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/stat");
	if (read_file(path, buf, sizeof(buf)) < 0)
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

static long open_fds(pid_t pid)
{
	char path[64];
	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/fd");
	DIR *d = opendir(path);
	if (!d)
		return -1;
	long n = 0;
	/* readdir is safe here: edgeproxy runs one thread, and the stream is ours
	 * (readdir_r, which cppcheck suggests, is deprecated by POSIX itself). */
	/* cppcheck-suppress readdirCalled */
	for (struct dirent *e; (e = readdir(d));)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return pid ? n : n - 1; /* not the directory's own descriptor */
}

/* The processes counted: this one alone, or the supervisor (first) and its workers. */
static size_t counted_pids(pid_t *pids, size_t cap)
{
	if (!shared) {
		pids[0] = 0;
		return 1;
	}
	size_t n = 0;
	pid_t me = getpid();
	pids[n++] = shared->supervisor == me ? 0 : shared->supervisor;
	for (size_t i = 0; i < shared->n && n < cap; i++) {
		pid_t p = arena_store(i)->pid;
		if (p && p != shared->supervisor)
			pids[n++] = p == me ? 0 : p;
	}
	return n;
}

static double process_start_time(void)
{
	pid_t pid[1];
	struct proc_stat ps;
	counted_pids(pid, 1);
	return proc_stat(pid[0], &ps) == 0 ? ps.start_time : 0;
}

static void render_process(struct strbuf *b)
{
	pid_t pids[METRICS_MAX_PROCESSES];
	size_t np = counted_pids(pids, METRICS_MAX_PROCESSES);
	struct proc_stat sum = { 0 };
	long fds = -1;
	bool any = false;
	for (size_t i = 0; i < np; i++) {
		struct proc_stat ps;
		if (proc_stat(pids[i], &ps) == 0) {
			if (!any)
				sum.start_time = ps.start_time;
			any = true;
			sum.cpu_seconds += ps.cpu_seconds;
			sum.rss_bytes += ps.rss_bytes;
			sum.vsize += ps.vsize;
		}
		long n = open_fds(pids[i]);
		if (n >= 0)
			fds = (fds < 0 ? 0 : fds) + n;
	}
	if (any) {
		put_header(b, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
		strbuf_printf(b, "process_cpu_seconds_total %.2f\n", sum.cpu_seconds);
		put_header(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
		strbuf_printf(b, "process_resident_memory_bytes %llu\n", sum.rss_bytes);
		put_header(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
		strbuf_printf(b, "process_virtual_memory_bytes %llu\n", sum.vsize);
		if (sum.start_time > 0) {
			put_header(b, "process_start_time_seconds", "gauge",
				   "Start time of the process since unix epoch in seconds.");
			strbuf_printf(b, "process_start_time_seconds %.2f\n", sum.start_time);
		}
	}
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
	const struct reload_stats *r = shared ? &shared->reloads : reload_stats;
	put_header(b, "edgeproxy_config_reloads_total", "counter",
		   "Configuration reloads attempted (SIGHUP or file change), successful or not.");
	strbuf_printf(b, "edgeproxy_config_reloads_total %llu\n", (unsigned long long)r->reloads);
	put_header(b, "edgeproxy_config_reloads_failure_total", "counter",
		   "Configuration reloads refused because the file had errors.");
	strbuf_printf(b, "edgeproxy_config_reloads_failure_total %llu\n", (unsigned long long)r->failures);
	put_header(b, "edgeproxy_config_last_reload_success", "gauge",
		   "Whether the last configuration reload succeeded (1; also before any reload) or failed (0).");
	strbuf_printf(b, "edgeproxy_config_last_reload_success %d\n", r->last_failed ? 0 : 1);
	put_header(b, "edgeproxy_config_last_reload_success_timestamp_seconds", "gauge",
		   "When the configuration in use was loaded, in seconds since the epoch.");
	double t = r->last_success ? (double)r->last_success : process_start_time();
	strbuf_printf(b, "edgeproxy_config_last_reload_success_timestamp_seconds %.0f\n", t);
}

void metrics_render(const struct snapshot *snap, struct strbuf *out)
{
	struct store merged;
	const struct store *st = view(&merged);
	size_t n = sizeof(request_families) / sizeof(request_families[0]);
	for (size_t i = 0; i < n; i++)
		render_family(out, st, &request_families[i]);
	render_servers(snap, out);
	render_family(out, st,
		      &(const struct family_desc){ "edgeproxy_open_connections", "gauge",
						   "Client connections open on an entry point.", FAM_OPEN_CONNS, 1,
						   { "entrypoint" }, { F_L0 } });
	render_certs(snap, out);
	render_reloads(out);
	render_process(out);
	if (st == &merged)
		store_clear(&merged);
}
