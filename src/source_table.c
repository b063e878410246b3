/* source_table.c - the fixed-size per-source table: sets of SOURCE_WAYS entries,
 * two candidate sets per key chosen by SipHash under a per-table random key,
 * least-recently-used eviction among them. One allocation at creation; lookups never allocate. */
#include "source_table.h"

#include <stdlib.h>
#include <string.h>

#include "rand.h"
#include "siphash.h"

struct source_table {
	unsigned char hash_key[16];
	uint64_t clock; /* counts lookups: the entries' stamps */
	size_t nsets;   /* a power of two */
	struct source_entry *entries; /* nsets * SOURCE_WAYS; owner: the table */
};

struct source_table *source_table_new(size_t capacity)
{
	size_t nsets = 1;
	while (nsets * SOURCE_WAYS < capacity && nsets < ((size_t)1 << 24))
		nsets <<= 1;
	struct source_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->nsets = nsets;
	t->entries = calloc(nsets * SOURCE_WAYS, sizeof(*t->entries));
	if (!t->entries || rand_bytes(t->hash_key, sizeof(t->hash_key)) < 0) {
		source_table_free(t);
		return NULL;
	}
	return t;
}

void source_table_free(struct source_table *t)
{
	if (!t)
		return;
	free(t->entries);
	free(t);
}

/* The way of one set holding key, or NULL; also the set's best victim so far
 * (an empty way, else the least recently used one that may be taken) and how many
 * ways are empty. */
static struct source_entry *scan_set(struct source_entry *ways, const unsigned char key[SOURCE_KEY_BYTES],
				     bool keep_busy, struct source_entry **victim, size_t *empty)
{
	*victim = NULL;
	*empty = 0;
	for (size_t i = 0; i < SOURCE_WAYS; i++) {
		struct source_entry *e = &ways[i];
		if (!e->used) {
			if (!*victim || (*victim)->used)
				*victim = e;
			++*empty;
		} else if (memcmp(e->key, key, SOURCE_KEY_BYTES) == 0) {
			return e;
		} else if (!(keep_busy && e->value != 0) &&
			   (!*victim || ((*victim)->used && e->stamp < (*victim)->stamp))) {
			*victim = e;
		}
	}
	return NULL;
}

struct source_entry *source_table_get(struct source_table *t, const unsigned char key[SOURCE_KEY_BYTES],
				      int64_t now_ms, bool keep_busy, bool *fresh)
{
	/* Two candidate sets from the two halves of one keyed hash: a newcomer goes to
	 * the emptier one ("power of two choices"), so sets fill evenly and a set full
	 * of busy entries stays improbable until the table itself is nearly full. */
	uint64_t h = siphash24(t->hash_key, key, SOURCE_KEY_BYTES);
	size_t s1 = (size_t)(h & (t->nsets - 1)), s2 = (size_t)((h >> 32) & (t->nsets - 1));
	struct source_entry *v1, *v2, *victim;
	size_t empty1, empty2 = 0;

	*fresh = false;
	struct source_entry *e = scan_set(&t->entries[s1 * SOURCE_WAYS], key, keep_busy, &v1, &empty1);
	if (!e && s2 != s1)
		e = scan_set(&t->entries[s2 * SOURCE_WAYS], key, keep_busy, &v2, &empty2);
	else
		v2 = NULL;
	if (e) {
		e->stamp = ++t->clock;
		return e;
	}
	if (!v1 || !v2)
		victim = v1 ? v1 : v2;
	else if (empty1 != empty2)
		victim = empty1 > empty2 ? v1 : v2;
	else
		victim = v1->stamp <= v2->stamp ? v1 : v2; /* both full: the least recent */
	if (!victim)
		return NULL;
	memcpy(victim->key, key, SOURCE_KEY_BYTES);
	victim->value = 0;
	victim->last_ms = now_ms;
	victim->stamp = ++t->clock;
	victim->used = true;
	*fresh = true;
	return victim;
}

uint32_t source_table_index(const struct source_table *t, const struct source_entry *e)
{
	return (uint32_t)(e - t->entries);
}

struct source_entry *source_table_at(struct source_table *t, uint32_t index)
{
	return index < t->nsets * SOURCE_WAYS ? &t->entries[index] : NULL;
}

size_t source_table_capacity(const struct source_table *t)
{
	return t->nsets * SOURCE_WAYS;
}

size_t source_table_used(const struct source_table *t)
{
	size_t n = 0;
	for (size_t i = 0; i < t->nsets * SOURCE_WAYS; i++)
		n += t->entries[i].used;
	return n;
}
