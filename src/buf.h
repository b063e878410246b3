/* buf.h - a recycling pool of I/O buffers, so the request hot path never calls
 * malloc and idle connections can hand their buffers back. */
#ifndef EDGEPROXY_BUF_H
#define EDGEPROXY_BUF_H

#include <stddef.h>

/* Returns a buffer of exactly size bytes (from the pool when one is free), or NULL. */
char *buf_get(size_t size);
/* Returns a buffer obtained from buf_get(size). NULL is ignored. */
void buf_put(char *p, size_t size);
/* Frees every pooled buffer (at exit, for leak checkers). */
void buf_pool_drain(void);

#endif
