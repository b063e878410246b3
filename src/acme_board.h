/* acme_board.h - the answers to pending ACME challenges, shared with worker
 * processes. With workers the supervisor runs the orders (once, not per worker)
 * while the workers serve the CA's validation requests: the supervisor posts each
 * answer on a board in a shared mapping made before the fork, and the workers look
 * answers up there. Without workers the board is never opened and every call is a
 * no-op (lookups answer NULL). */
#ifndef EDGEPROXY_ACME_BOARD_H
#define EDGEPROXY_ACME_BOARD_H

#include <stddef.h>

#include "slice.h"

struct tls_cert;

/* Maps the board (the supervisor, before forking workers). 0, or -1. */
int acme_board_open(void);

/* The supervisor posts and withdraws answers. name: the http-01 token, or the
 * tls-alpn-01 domain. A name posted again replaces its answer. */
void acme_board_post_http01(const char *token, const char *keyauth);
void acme_board_post_alpn(const char *domain, const char *cert_pem, size_t cert_len, const char *key_pem,
			  size_t key_len);
void acme_board_withdraw(const char *name);

/* A worker's lookups. The key authorization stays valid until the next call; the
 * certificate for at least 60 seconds after its challenge is withdrawn. */
const char *acme_board_http01(struct slice token);
const struct tls_cert *acme_board_alpn(const char *sni);

#endif
