/* source_table.c - the fixed-size per-source table: sets of SOURCE_WAYS entries,
 * chosen by SipHash under a per-table random key, least-recently-used eviction
 * inside a set. One allocation at creation; lookups never allocate. */
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

struct source_entry *source_table_get(struct source_table *t, const unsigned char key[SOURCE_KEY_BYTES],
				      int64_t now_ms, bool keep_busy, bool *fresh)
{
	size_t set = (size_t)(siphash24(t->hash_key, key, SOURCE_KEY_BYTES) & (t->nsets - 1));
	struct source_entry *ways = &t->entries[set * SOURCE_WAYS], *victim = NULL;

	*fresh = false;
	for (size_t i = 0; i < SOURCE_WAYS; i++) {
		struct source_entry *e = &ways[i];
		if (e->used && memcmp(e->key, key, SOURCE_KEY_BYTES) == 0) {
			e->stamp = ++t->clock;
			return e;
		}
		if (!e->used) {
			if (!victim || victim->used)
				victim = e;
		} else if (!(keep_busy && e->value != 0) && (!victim || (victim->used && e->stamp < victim->stamp))) {
			victim = e;
		}
	}
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
