/* buf.c - size-classed free lists of I/O buffers. Buffers of common sizes are kept
 * for reuse up to a bound; odd sizes go straight back to the allocator. */
#include "buf.h"

#include <stdlib.h>

#define BUF_CLASSES 5
/* Kept per class: enough for bursts, small enough to give memory back (64 buffers,
 * and at most 2 MiB: 32 of the proxy's 64 KiB buffers for large bodies). */
#define BUF_KEEP 64
#define BUF_KEEP_BYTES (2u << 20)

struct free_buf {
	struct free_buf *next;
};

static const size_t class_size[BUF_CLASSES] = { 4096, 8192, 16384, 32768, 65536 };
static struct free_buf *free_list[BUF_CLASSES];
static unsigned free_count[BUF_CLASSES];

static int class_of(size_t size)
{
	for (int i = 0; i < BUF_CLASSES; i++)
		if (class_size[i] == size)
			return i;
	return -1;
}

char *buf_get(size_t size)
{
	int c = class_of(size);
	if (c >= 0 && free_list[c]) {
		struct free_buf *b = free_list[c];
		free_list[c] = b->next;
		free_count[c]--;
		return (char *)b;
	}
	return malloc(size);
}

void buf_put(char *p, size_t size)
{
	if (!p)
		return;
	int c = class_of(size);
	if (c < 0 || free_count[c] >= BUF_KEEP || (free_count[c] + 1) * class_size[c] > BUF_KEEP_BYTES) {
		free(p);
		return;
	}
	struct free_buf *b = (struct free_buf *)(void *)p;
	b->next = free_list[c];
	free_list[c] = b;
	free_count[c]++;
}

void buf_pool_drain(void)
{
	for (int c = 0; c < BUF_CLASSES; c++) {
		while (free_list[c]) {
			struct free_buf *b = free_list[c];
			free_list[c] = b->next;
			free(b);
		}
		free_count[c] = 0;
	}
}
