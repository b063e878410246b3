/* acme_roots.h - built-in trust anchors for the ACME CA's HTTPS (PEM text). */
#ifndef EDGEPROXY_ACME_ROOTS_H
#define EDGEPROXY_ACME_ROOTS_H

#include <stddef.h>

extern const char acme_roots_pem[];
extern const size_t acme_roots_pem_len;

#endif
