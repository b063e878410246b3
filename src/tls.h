/* tls.h - TLS termination with BearSSL's server engine: the certificate store of a
 * configuration snapshot, and per-connection engines driven by the event loop
 * through read/write-like calls. */
#ifndef EDGEPROXY_TLS_H
#define EDGEPROXY_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"

struct tls_cert;

/* The certificates of one snapshot ([cert] sections, the default). */
struct tls_store {
	struct tls_cert **certs; /* owner: the store */
	size_t n;
	struct tls_cert *fallback; /* [tls] default_cert, or the generated self-signed one */
	bool fallback_owned;       /* generated: not one of certs[] */
	unsigned min_version;      /* BR_TLS10 .. BR_TLS12 */
	struct tls_ca *client_ca;  /* mTLS: client certificates must chain to these */
	bool compatible;           /* ciphers = compatible: CBC suites too */
};

/* Loads every [cert] and the default certificate (generated into state_dir when
 * [tls] default_cert is unset and generate_default is set; `check` does not
 * write files). Errors are reported as FILE:LINE into errs. NULL on failure. */
struct tls_store *tls_store_load(const struct config *cfg, bool generate_default, struct conf_errors *errs);
void tls_store_free(struct tls_store *s);

/* The process-wide server-side session cache (resumption), sized once. */
int tls_cache_init(size_t entries);

struct tls_conn;

/* A server engine for one connection, ready for its ClientHello. The store must
 * outlive it (the connection holds its snapshot). NULL on failure. */
struct tls_conn *tls_conn_new(const struct tls_store *store);
/* Frees the engine; its buffers are zeroed (session keys). */
void tls_conn_free(struct tls_conn *t);

/* Like read(2) on the decrypted stream: > 0 bytes, 0 at the peer's close, -1 with
 * errno EAGAIN (socket not ready) or EPROTO (handshake or record failure). */
ssize_t tls_recv(struct tls_conn *t, int fd, char *buf, size_t len);
/* Like write(2): takes up to len plaintext bytes; -1 with EAGAIN or EPROTO. */
ssize_t tls_send(struct tls_conn *t, int fd, const char *buf, size_t len);
/* Pushes records the socket did not take yet; -1 on a dead socket. */
int tls_flush(struct tls_conn *t, int fd);
/* Decrypted bytes wait in the engine (no socket event will announce them). */
bool tls_has_pending_input(const struct tls_conn *t);
/* Records are waiting for the socket to become writable. */
bool tls_wants_write(const struct tls_conn *t);
/* Sends close_notify, best effort (never blocks). */
void tls_close_notify(struct tls_conn *t, int fd);
/* Returns the spare record buffers to the system (at exit, for leak checkers). */
void tls_buffers_drain(void);
/* The handshake finished (for logs and tests). */
bool tls_handshake_done(const struct tls_conn *t);

#endif
