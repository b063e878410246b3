/* acme.h - automatic certificates from an RFC 8555 CA ([acme NAME] sections, routers
 * with tls_resolver): configuration, the orders kept running on the event loop, and
 * the answers to the CA's challenges that the data path serves. */
#ifndef EDGEPROXY_ACME_H
#define EDGEPROXY_ACME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "slice.h"

struct conf_kv;
struct conf_errors;
struct tls_cert;

#define ACME_DEFAULT_CA "https://acme-v02.api.letsencrypt.org/directory"
#define ACME_MAX_DOMAINS 100

enum acme_challenge { ACME_HTTP01, ACME_TLSALPN01, ACME_DNS01 };

/* One compiled [acme NAME] section. Owner: whoever compiled it (the configuration);
 * acme_sync copies what it keeps, so a resolver may be freed after the call. */
struct acme_resolver {
	char *name;
	int line;
	char *email;        /* NULL: no contact */
	char *ca;           /* directory URL */
	char *ca_root;      /* PEM file trusted for the CA's HTTPS; NULL: built-in roots */
	char *ca_root_pem;  /* its contents, read when compiled */
	size_t ca_root_len;
	int challenge;      /* enum acme_challenge */
	char *entrypoint;   /* where http-01 is answered; NULL: the plain one on port 80 */
	int entrypoint_line;
	char *dns_hook;
	int key_type;       /* enum jws_key_type */
	int64_t renew_before_ms; /* 0: a third of the certificate's lifetime */
	char *eab_kid;
	unsigned char *eab_hmac; /* decoded from base64url */
	size_t eab_hmac_len;
};

/* Validates the keys of [acme name] (section at line of file): email, ca, ca_root,
 * challenge, entrypoint, dns_hook, key_type, renew_before, eab_kid, eab_hmac.
 * Every problem goes to errs as FILE:LINE: message. NULL when there was one.
 * The entrypoint name is not checked against the entry points: the caller does
 * that (resolver->entrypoint, ->entrypoint_line). */
struct acme_resolver *acme_resolver_compile(const struct conf_kv *kv, size_t n, const char *name,
					    int line, const char *file, struct conf_errors *errs);
void acme_resolver_free(struct acme_resolver *r);

/* "http-01", "tls-alpn-01", "dns-01". */
const char *acme_challenge_name(int challenge);

/* Whether two resolvers have the same settings, entrypoint aside (only the data
 * path uses it): acme_sync keeps an account and its orders across a reload then. */
bool acme_resolver_equal(const struct acme_resolver *a, const struct acme_resolver *b);
/* A deep copy (owner: the caller, acme_resolver_free), or NULL. */
struct acme_resolver *acme_resolver_copy(const struct acme_resolver *r);

/* Checks the names a router asks r to certify: DNS names (letters, digits, '-',
 * '_', dots; at most 253 bytes), "*.name" only with challenge = dns-01, at most
 * ACME_MAX_DOMAINS, at least one. Returns 0, or -1 with a message in err. */
int acme_check_domains(const struct acme_resolver *r, const char *const *domains, size_t n,
		       char *err, size_t errlen);

/* One certificate to keep: the names of a router (tls_domains, or its rule's Host()
 * names), lowercase, the first one naming the files. */
struct acme_job {
	const struct acme_resolver *resolver;
	const char *router;
	const char *const *domains;
	size_t n_domains;
};

/* Makes the running set of orders match jobs[0..n), after every (re)load. For each
 * job: when state_dir/acme/RESOLVER/<first-domain>.crt and .key load, cover the
 * names, and are not due for renewal, a renewal is scheduled; otherwise an order
 * starts on server.loop (or keeps running). A wildcard first name is written with
 * '_' for '*' ("_.example.com.crt"). Jobs of one resolver with the same first
 * domain are merged into one certificate. Orders no job asks for any more are
 * stopped; certificate files are never deleted. On success the key (0600) and the
 * chain (0644) are written atomically and acme_on_certificate() is called. */
void acme_sync(const struct acme_job *jobs, size_t n, const char *state_dir);

/* Stops every order and frees everything (at exit, for leak checkers). */
void acme_shutdown(void);

/* In a worker just forked: the accounts and orders are the supervisor's (copied
 * by fork; their watchers belong to its loop): from now on acme_sync and
 * acme_shutdown do nothing and the challenge lookups read acme_board.h. */
void acme_forget(void);

/* Provided by the program (server.c): a new certificate is in state_dir; load it.
 * Called from a timer of acme.c's own (never from inside acme_sync or an order's
 * callbacks), so it may rebuild the snapshot and call acme_sync. acme.c has a weak
 * empty default so that it links without one. */
void acme_on_certificate(void);

/* HTTP-01 (RFC 8555 §8.3): the key authorization to answer
 * GET /.well-known/acme-challenge/<token> with (200, text/plain), or NULL when no
 * pending challenge has that token (answer 404). Valid until control returns to
 * the event loop. */
const char *acme_http01_key_authorization(struct slice token);

/* TLS-ALPN-01 (RFC 8737): the certificate to present in a handshake whose client
 * offers only the ALPN protocol "acme-tls/1" for SNI name sni (ALPN acme-tls/1 must
 * then be selected); NULL when no challenge is pending for that name. Valid for at
 * least 60 seconds after the challenge ends. */
const struct tls_cert *acme_tls_alpn_cert(const char *sni);

#endif
