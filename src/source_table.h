/* source_table.h - per-source state for ratelimit and inflight: a fixed-size,
 * set-associative table (two candidate sets per key) keyed by 16-byte source keys (a client address or a digest
 * of a header value). Its size never changes, so a sweep of addresses can only
 * evict idle entries; the set index is a keyed hash (SipHash, random key per
 * table), so nobody can aim many sources at one set. */
#ifndef EDGEPROXY_SOURCE_TABLE_H
#define EDGEPROXY_SOURCE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SOURCE_KEY_BYTES 16
#define SOURCE_WAYS 16 /* entries per set */

struct source_entry {
	unsigned char key[SOURCE_KEY_BYTES];
	int64_t value;   /* the owner's: scaled tokens (ratelimit), requests in flight (inflight) */
	int64_t last_ms; /* the owner's: when the source was last seen */
	uint64_t stamp;  /* table's use counter at the last lookup: the least recent is evicted */
	bool used;
};

struct source_table;

/* A table of capacity entries (rounded up to a power of two, at least SOURCE_WAYS).
 * NULL when memory or randomness is missing. Owner: the caller. */
struct source_table *source_table_new(size_t capacity);
void source_table_free(struct source_table *t);

/* key's entry, found or claimed; either way it becomes the most recently used. A
 * claimed entry (*fresh true) has value 0 and last_ms now_ms, and takes an empty
 * way of the emptier of key's two sets, else the least recently used way of both;
 * with keep_busy, entries whose value is not 0 are never taken, and NULL means
 * both sets are busy. A
 * found entry keeps its last_ms: the caller reads it (time since the last use) and
 * sets it. */
struct source_entry *source_table_get(struct source_table *t, const unsigned char key[SOURCE_KEY_BYTES],
				      int64_t now_ms, bool keep_busy, bool *fresh);

/* Stable position of an entry (entries never move), and the entry at a position;
 * NULL when out of range. */
uint32_t source_table_index(const struct source_table *t, const struct source_entry *e);
struct source_entry *source_table_at(struct source_table *t, uint32_t index);

size_t source_table_capacity(const struct source_table *t);
/* Entries in use (a scan: for tests and diagnostics, not the request path). */
size_t source_table_used(const struct source_table *t);

#endif
