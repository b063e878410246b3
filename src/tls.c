/* tls.c - TLS termination on BearSSL. Each connection gets a server engine with a
 * full 16,709-byte input buffer (the client decides record sizes) and a smaller
 * output buffer (we decide ours). A policy of our own picks the certificate by
 * SNI and the suite by our preference (AES-GCM first, unless the client lists
 * ChaCha20 first: a sign that it has no AES hardware), then hands the private-key
 * operations to BearSSL's single-certificate handlers. */
#include "tls.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bearssl.h>

#include "acme.h"
#include "ec_impl.h"
#include "ecdsa.h"
#include "log.h"
#include "rand.h"
#include "tls_ca.h"
#include "tls_cert.h"
#include "tls_impl.h"

#define TLS_OUT_BUF (8192 + 85) /* record payload up to 8 KiB + header and MAC/tag */

/* ---- record buffers, lent only while a connection has records in flight ----------
 * BearSSL's input buffer must hold a whole 16 KiB record and is most of what a TLS
 * connection costs. An engine that waits for the next record header with nothing
 * received, and has no output accumulated or queued, needs neither buffer's
 * contents: it gives both back ("parks") and takes a pair again before the next
 * read or write. Its pointers then aim at `parking`, which is never read or
 * written (every engine call that touches a buffer is preceded by tls_unpark);
 * state queries only compare those pointers. An idle keep-alive TLS connection
 * thus holds the engine context alone. */
struct tls_bufs {
	unsigned char in[BR_SSL_BUFSIZE_INPUT];
	unsigned char out[TLS_OUT_BUF];
	struct tls_bufs *next; /* in the free list */
};

#define FREE_BUFS_MAX 32 /* pairs kept for reuse; more go back to the system */

/* The engine's iomode for "records in both directions" (BearSSL's inner.h, which
 * the public header does not export). */
#define ENGINE_IO_INOUT 3

static struct tls_bufs *free_bufs;
static size_t n_free_bufs;
static struct tls_bufs parking;

static struct tls_bufs *bufs_get(void)
{
	struct tls_bufs *b = free_bufs;
	if (b) {
		free_bufs = b->next;
		n_free_bufs--;
		return b;
	}
	/* MAP_ANONYMOUS takes fd -1, as portable code passes it (Linux ignores it);
	 * cppcheck's posix.cfg allows only fd >= 0: a false positive. */
	/* cppcheck-suppress invalidFunctionArg */
	void *m = mmap(NULL, sizeof(*b), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) /* not a ?: in the return: cppcheck then calls m leaked */
		return NULL;
	return m;
}

static void bufs_put(struct tls_bufs *b)
{
	if (n_free_bufs < FREE_BUFS_MAX) {
		b->next = free_bufs;
		free_bufs = b;
		n_free_bufs++;
		return;
	}
	explicit_bzero(b, sizeof(*b)); /* record plaintext: not left in memory given back */
	munmap(b, sizeof(*b));
}

void tls_buffers_drain(void)
{
	while (free_bufs) {
		struct tls_bufs *b = free_bufs;
		free_bufs = b->next;
		explicit_bzero(b, sizeof(*b));
		munmap(b, sizeof(*b));
	}
	n_free_bufs = 0;
}

struct tls_conn {
	br_ssl_server_context sc;
	const br_ssl_server_policy_class *policy; /* our policy's vtable; sc points here */
	const struct tls_store *store;
	struct tls_bufs *bufs; /* &parking while parked */
	br_x509_minimal_context *xc; /* verifies client certificates (mTLS); owner: this */
};

/* Moves the engine's buffer pointers (and the handshake code's pointers into them,
 * stale but compared) from one pair to another; the indexes stay. */
static void rebase(br_ssl_engine_context *eng, struct tls_bufs *from, struct tls_bufs *to)
{
	unsigned char *lo = (unsigned char *)from, *hi = lo + sizeof(*from);
	unsigned char **ptrs[] = { &eng->hbuf_in, &eng->hbuf_out, &eng->saved_hbuf_out };
	for (size_t i = 0; i < sizeof(ptrs) / sizeof(ptrs[0]); i++)
		if (*ptrs[i] >= lo && *ptrs[i] < hi)
			*ptrs[i] = (unsigned char *)to + (*ptrs[i] - lo);
	eng->ibuf = to->in;
	eng->obuf = to->out;
}

/* Gives the buffers back when the engine is between records (see above). */
static void park(struct tls_conn *t)
{
	br_ssl_engine_context *eng = &t->sc.eng;
	if (t->bufs == &parking || eng->iomode != ENGINE_IO_INOUT)
		return;
	bool in_idle = eng->ixa == 0 && eng->ixb == 0 && eng->ixc == 5;
	bool out_idle = eng->oxa == eng->oxc && eng->oxa < eng->oxb;
	if (!in_idle || !out_idle || !(br_ssl_engine_current_state(eng) & BR_SSL_SENDAPP))
		return; /* mid-record, output queued, or still handshaking */
	struct tls_bufs *b = t->bufs;
	rebase(eng, b, &parking);
	t->bufs = &parking;
	bufs_put(b);
}

/* Takes buffers before the engine reads or writes; -1 (ENOMEM) without. */
static int unpark(struct tls_conn *t)
{
	if (t->bufs != &parking)
		return 0;
	struct tls_bufs *b = bufs_get();
	if (!b) {
		errno = ENOMEM;
		return -1;
	}
	rebase(&t->sc.eng, &parking, b);
	t->bufs = b;
	return 0;
}

static br_ssl_session_cache_lru session_cache;
static unsigned char *session_store; /* owner: this module, for the process lifetime */

/* http/1.1 first: BearSSL picks by our order. acme-tls/1 only for TLS-ALPN-01. */
static const char *alpn_names[] = { "http/1.1", "acme-tls/1" };

/* The hash for our signature, from the client's list (bit n = hash id n):
 * SHA-256 first, then the larger ones, SHA-1 last. 0 when none is shared. */
static unsigned pick_hash(unsigned client_mask)
{
	static const unsigned order[] = { br_sha256_ID, br_sha384_ID, br_sha512_ID, br_sha224_ID, br_sha1_ID };
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (client_mask & (1u << order[i]))
			return order[i];
	return 0;
}

/* Our preference, strongest and cheapest first. ChaCha20 moves to the front for
 * clients that put it first. */
static const uint16_t modern_suites[] = {
	BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
};
static const uint16_t compatible_suites[] = {
	BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	BR_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, BR_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	BR_TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384, BR_TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384,
	BR_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, BR_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	BR_TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, BR_TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
};

static bool is_chacha(uint16_t suite)
{
	return suite == BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 ||
	       suite == BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256;
}

/* Which of our suites the client offered, with its key exchange. */
static const br_suite_translated *client_has(const br_suite_translated *st, size_t n, uint16_t suite)
{
	for (size_t i = 0; i < n; i++)
		if (st[i][0] == suite)
			return &st[i];
	return NULL;
}

static int policy_choose(const br_ssl_server_policy_class **pctx, const br_ssl_server_context *cc,
			 br_ssl_server_choices *choices)
{
	struct tls_conn *t = (struct tls_conn *)((char *)pctx - offsetof(struct tls_conn, policy));
	br_ssl_server_context *sc = (br_ssl_server_context *)cc; /* the engine's own context */
	size_t n;
	const br_suite_translated *st = br_ssl_server_get_client_suites(cc, &n);
	unsigned client_types = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned kx = st[i][1] >> 12;
		if (kx == BR_SSLKEYX_ECDHE_ECDSA)
			client_types |= 1u << BR_KEYTYPE_EC;
		else if (kx == BR_SSLKEYX_ECDHE_RSA)
			client_types |= 1u << BR_KEYTYPE_RSA;
	}
	const char *sni = br_ssl_engine_get_server_name(&cc->eng);
	const char *alpn = br_ssl_engine_get_selected_protocol((br_ssl_engine_context *)&cc->eng);
	const struct tls_cert *cert;
	if (alpn && strcmp(alpn, "acme-tls/1") == 0) {
		/* RFC 8737: only the challenge certificate, only for a pending challenge */
		if (!(cert = acme_tls_alpn_cert(sni)))
			return 0;
	} else {
		cert = tls_cert_pick(t->store->certs, t->store->n, sni, client_types);
		if (!cert)
			cert = t->store->fallback;
	}
	if (!cert)
		return 0;

	bool tls12 = cc->eng.session.version >= BR_TLS12;
	unsigned hashes = br_ssl_server_get_client_hashes(cc);
	unsigned hash_id;
	unsigned want_kx;
	if (cert->key_type == BR_KEYTYPE_EC) {
		hash_id = tls12 ? pick_hash((hashes >> 8) & 0xFF) : br_sha1_ID;
		want_kx = BR_SSLKEYX_ECDHE_ECDSA;
		br_ssl_server_set_single_ec(sc, cert->chain, cert->chain_len, &cert->ec, BR_KEYTYPE_SIGN,
					    (unsigned)cert->issuer_key_type, ec_impl(),
					    ecdsa_sign_asn1);
	} else {
		hash_id = tls12 ? pick_hash(hashes & 0xFF) : 0;
		want_kx = BR_SSLKEYX_ECDHE_RSA;
		br_ssl_server_set_single_rsa(sc, cert->chain, cert->chain_len, &cert->rsa, BR_KEYTYPE_SIGN,
					     br_rsa_private_get_default(), br_rsa_pkcs1_sign_get_default());
	}
	if (tls12 && hash_id == 0)
		return 0;

	const uint16_t *ours = t->store->compatible ? compatible_suites : modern_suites;
	size_t n_ours = t->store->compatible ? sizeof(compatible_suites) / 2 : sizeof(modern_suites) / 2;
	bool chacha_first = n > 0 && is_chacha(st[0][0]);
	for (int pass = chacha_first ? 0 : 1; pass < 2; pass++) {
		for (size_t i = 0; i < n_ours; i++) {
			if (pass == 0 && !is_chacha(ours[i]))
				continue;
			const br_suite_translated *hit = client_has(st, n, ours[i]);
			if (!hit || ((*hit)[1] >> 12) != want_kx)
				continue;
			choices->cipher_suite = ours[i];
			choices->algo_id = hash_id + 0xFF00;
			choices->chain = cert->chain;
			choices->chain_len = cert->chain_len;
			return 1;
		}
	}
	return 0;
}

/* Only choose() is ours; the key operations go to the handler choose() installed. */
static const br_ssl_server_policy_class policy_vtable = {
	sizeof(const br_ssl_server_policy_class *), policy_choose, NULL, NULL,
};

int tls_cache_init(size_t entries)
{
	if (session_store || entries == 0)
		return 0;
	size_t bytes = entries * 100; /* BearSSL's LRU uses about 100 bytes per entry */
	session_store = malloc(bytes);
	if (!session_store)
		return -1;
	br_ssl_session_cache_lru_init(&session_cache, session_store, bytes);
	return 0;
}

struct tls_conn *tls_conn_new(const struct tls_store *store)
{
	struct tls_conn *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	if (!(t->bufs = bufs_get()) || (store->client_ca && !(t->xc = malloc(sizeof(*t->xc))))) {
		if (t->bufs)
			bufs_put(t->bufs);
		free(t);
		return NULL;
	}
	t->store = store;
	br_ssl_server_context *sc = &t->sc;
	br_ssl_engine_context *eng = &sc->eng;
	br_ssl_server_zero(sc);
	br_ssl_engine_set_versions(eng, store->min_version, BR_TLS12);
	if (store->compatible)
		br_ssl_engine_set_suites(eng, compatible_suites, sizeof(compatible_suites) / 2);
	else
		br_ssl_engine_set_suites(eng, modern_suites, sizeof(modern_suites) / 2);
	br_ssl_engine_set_ec(eng, ec_impl());
	br_ssl_engine_set_hash(eng, br_sha256_ID, &br_sha256_vtable);
	br_ssl_engine_set_hash(eng, br_sha384_ID, &br_sha384_vtable);
	br_ssl_engine_set_hash(eng, br_sha512_ID, &br_sha512_vtable);
	br_ssl_engine_set_hash(eng, br_sha224_ID, &br_sha224_vtable);
	br_ssl_engine_set_hash(eng, br_sha1_ID, &br_sha1_vtable);
	br_ssl_engine_set_prf_sha256(eng, &br_tls12_sha256_prf);
	br_ssl_engine_set_prf_sha384(eng, &br_tls12_sha384_prf);
	if (store->min_version < BR_TLS12) {
		br_ssl_engine_set_hash(eng, br_md5_ID, &br_md5_vtable);
		br_ssl_engine_set_prf10(eng, &br_tls10_prf);
	}
	br_ssl_engine_set_default_aes_gcm(eng);
	tls_impl_set_chapol(eng);
	if (store->compatible)
		br_ssl_engine_set_default_aes_cbc(eng);
	br_ssl_engine_set_buffers_bidi(eng, t->bufs->in, sizeof(t->bufs->in), t->bufs->out, sizeof(t->bufs->out));
	br_ssl_engine_set_protocol_names(eng, alpn_names, 2);
	br_ssl_engine_add_flags(eng, BR_OPT_NO_RENEGOTIATION);
	t->policy = &policy_vtable;
	br_ssl_server_set_policy(sc, &t->policy);
	if (session_store)
		br_ssl_server_set_cache(sc, &session_cache.vtable);
	if (store->client_ca) {
		/* mTLS: ask for a certificate and verify it against client_ca (chain,
		 * signatures, validity dates); no certificate or a bad one fails the
		 * handshake. */
		const struct tls_ca *ca = store->client_ca;
		br_x509_minimal_init(t->xc, &br_sha256_vtable, ca->anchors, ca->n);
		br_x509_minimal_set_hash(t->xc, br_sha1_ID, &br_sha1_vtable);
		br_x509_minimal_set_hash(t->xc, br_sha224_ID, &br_sha224_vtable);
		br_x509_minimal_set_hash(t->xc, br_sha256_ID, &br_sha256_vtable);
		br_x509_minimal_set_hash(t->xc, br_sha384_ID, &br_sha384_vtable);
		br_x509_minimal_set_hash(t->xc, br_sha512_ID, &br_sha512_vtable);
		br_x509_minimal_set_rsa(t->xc, br_rsa_pkcs1_vrfy_get_default());
		br_x509_minimal_set_ecdsa(t->xc, ec_impl(), br_ecdsa_vrfy_asn1_get_default());
		br_ssl_engine_set_x509(eng, &t->xc->vtable);
		br_ssl_server_set_trust_anchor_names_alt(sc, ca->anchors, ca->n);
		br_ssl_engine_set_default_rsavrfy(eng);
		br_ssl_engine_set_ecdsa(eng, br_ecdsa_vrfy_asn1_get_default());
	}
	if (rand_seed_ssl_engine(eng) < 0 || !br_ssl_server_reset(sc)) {
		log_error("TLS engine reset failed (error %d)", br_ssl_engine_last_error(eng));
		tls_conn_free(t);
		return NULL;
	}
	return t;
}

void tls_conn_free(struct tls_conn *t)
{
	if (!t)
		return;
	if (t->bufs != &parking)
		bufs_put(t->bufs);
	if (t->xc) {
		explicit_bzero(t->xc, sizeof(*t->xc));
		free(t->xc);
	}
	/* keys and session secrets live in here */
	explicit_bzero(t, sizeof(*t));
	free(t);
}

/* Writes queued records. Returns 0 when all went out, -1 with errno otherwise
 * (EAGAIN: try again when writable). */
static int send_records(struct tls_conn *t, int fd)
{
	br_ssl_engine_context *eng = &t->sc.eng;
	while (br_ssl_engine_current_state(eng) & BR_SSL_SENDREC) {
		size_t len;
		unsigned char *p = br_ssl_engine_sendrec_buf(eng, &len);
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			br_ssl_engine_sendrec_ack(eng, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			errno = EPIPE;
		return -1;
	}
	return 0;
}

static ssize_t closed_result(const struct tls_conn *t)
{
	int err = br_ssl_engine_last_error(&t->sc.eng);
	if (err == BR_ERR_OK)
		return 0;
	log_debug("TLS failure: BearSSL error %d", err);
	errno = EPROTO;
	return -1;
}

ssize_t tls_recv(struct tls_conn *t, int fd, char *buf, size_t len)
{
	br_ssl_engine_context *eng = &t->sc.eng;
	if (unpark(t) < 0)
		return -1;
	for (;;) {
		unsigned st = br_ssl_engine_current_state(eng);
		if (st == BR_SSL_CLOSED)
			return closed_result(t);
		if (st & BR_SSL_RECVAPP) {
			size_t n;
			unsigned char *p = br_ssl_engine_recvapp_buf(eng, &n);
			if (n > len)
				n = len;
			memcpy(buf, p, n);
			br_ssl_engine_recvapp_ack(eng, n);
			return (ssize_t)n;
		}
		if (st & BR_SSL_SENDREC) {
			/* the handshake answers before it reads on */
			if (send_records(t, fd) < 0)
				return -1;
			continue;
		}
		if (st & BR_SSL_RECVREC) {
			size_t n;
			unsigned char *p = br_ssl_engine_recvrec_buf(eng, &n);
			ssize_t r = read(fd, p, n);
			if (r > 0) {
				br_ssl_engine_recvrec_ack(eng, (size_t)r);
				continue;
			}
			if (r == 0)
				return 0; /* EOF without close_notify: treated as a close */
			if (errno == EAGAIN)
				park(t);
			return -1;
		}
		errno = EAGAIN;
		return -1;
	}
}

ssize_t tls_send(struct tls_conn *t, int fd, const char *buf, size_t len)
{
	br_ssl_engine_context *eng = &t->sc.eng;
	if (unpark(t) < 0)
		return -1;
	for (;;) {
		unsigned st = br_ssl_engine_current_state(eng);
		if (st == BR_SSL_CLOSED) {
			errno = EPIPE;
			return -1;
		}
		if (st & BR_SSL_SENDREC) {
			if (send_records(t, fd) < 0)
				return -1;
			continue;
		}
		if (st & BR_SSL_SENDAPP) {
			size_t n;
			unsigned char *p = br_ssl_engine_sendapp_buf(eng, &n);
			if (n > len)
				n = len;
			memcpy(p, buf, n);
			br_ssl_engine_sendapp_ack(eng, n);
			br_ssl_engine_flush(eng, 0);
			if (send_records(t, fd) < 0) {
				if (errno != EAGAIN)
					return -1;
				/* EAGAIN: the records wait in the engine (tls_wants_write) */
			} else {
				park(t); /* a reply that went out whole often ends the exchange */
			}
			return (ssize_t)n;
		}
		errno = EAGAIN; /* still handshaking: the client must speak first */
		return -1;
	}
}

int tls_flush(struct tls_conn *t, int fd)
{
	if (unpark(t) < 0)
		return -1;
	if (send_records(t, fd) < 0)
		return errno == EAGAIN ? 0 : -1;
	park(t);
	return 0;
}

bool tls_wants_write(const struct tls_conn *t)
{
	return (br_ssl_engine_current_state(&t->sc.eng) & BR_SSL_SENDREC) != 0;
}

bool tls_has_pending_input(const struct tls_conn *t)
{
	return (br_ssl_engine_current_state(&t->sc.eng) & BR_SSL_RECVAPP) != 0;
}

bool tls_handshake_done(const struct tls_conn *t)
{
	return (br_ssl_engine_current_state(&t->sc.eng) & BR_SSL_SENDAPP) != 0;
}

void tls_close_notify(struct tls_conn *t, int fd)
{
	if (unpark(t) < 0)
		return;
	br_ssl_engine_close(&t->sc.eng);
	send_records(t, fd);
}

/* Certificates that ACME obtained (state_dir/acme/RESOLVER/<first-domain>.crt):
 * loaded when present; until then, and if one does not load, the default one
 * answers (ACME retries in the background, and never deletes a working one). */
static void load_acme_certs(const struct config *cfg, struct tls_store *s)
{
	for (size_t i = 0; i < cfg->n_routers; i++) {
		const struct conf_router *r = &cfg->routers[i];
		if (!r->acme || r->n_acme_domains == 0)
			continue;
		char base[300], crt[PATH_MAX], key[PATH_MAX], err[256];
		snprintf(base, sizeof(base), "%s", r->acme_domains[0]);
		if (base[0] == '*')
			base[0] = '_'; /* acme.c writes wildcard names so */
		snprintf(crt, sizeof(crt), "%s/acme/%s/%s.crt", cfg->global.state_dir, r->tls_resolver, base);
		snprintf(key, sizeof(key), "%s/acme/%s/%s.key", cfg->global.state_dir, r->tls_resolver, base);
		if (access(crt, R_OK) != 0)
			continue;
		struct tls_cert *c = calloc(1, sizeof(*c));
		struct tls_cert **grown = c ? realloc(s->certs, (s->n + 2) * sizeof(*grown)) : NULL;
		if (!grown) {
			free(c);
			return;
		}
		s->certs = grown;
		if (tls_cert_load(r->name, crt, key, c, err, sizeof(err)) < 0) {
			log_warn("acme certificate of router %s does not load: %s", r->name, err);
			free(c);
			continue;
		}
		s->certs[s->n++] = c;
	}
}

struct tls_store *tls_store_load(const struct config *cfg, bool generate_default, struct conf_errors *errs)
{
	struct tls_store *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	const struct conf_tls *ct = &cfg->tls;
	static const unsigned versions[] = { BR_TLS10, BR_TLS11, BR_TLS12 };
	s->min_version = versions[ct->min_version];
	s->compatible = ct->ciphers == TLS_CIPHERS_COMPATIBLE;
	s->certs = calloc(cfg->n_certs ? cfg->n_certs : 1, sizeof(*s->certs));
	if (!s->certs)
		goto fail;
	bool ok = true;
	for (size_t i = 0; i < cfg->n_certs; i++) {
		const struct conf_cert *cc = &cfg->certs[i];
		struct tls_cert *c = calloc(1, sizeof(*c));
		char err[256];
		if (!c)
			goto fail;
		if (tls_cert_load(cc->name, cc->cert_file, cc->key_file, c, err, sizeof(err)) < 0) {
			conf_error(errs, cfg->path, cc->line, "[cert %s]: %s", cc->name, err);
			free(c);
			ok = false;
			continue;
		}
		s->certs[s->n++] = c;
		if (ct->default_cert && strcmp(ct->default_cert, cc->name) == 0)
			s->fallback = c;
	}
	if (!ok)
		goto fail;
	load_acme_certs(cfg, s);
	if (ct->client_ca) {
		char err[256];
		s->client_ca = calloc(1, sizeof(*s->client_ca));
		if (!s->client_ca)
			goto fail;
		if (tls_ca_load(ct->client_ca, s->client_ca, err, sizeof(err)) < 0) {
			conf_error(errs, cfg->path, ct->line, "client_ca: %s", err);
			free(s->client_ca);
			s->client_ca = NULL;
			goto fail;
		}
	}
	if (!s->fallback && generate_default) {
		struct tls_cert *c = calloc(1, sizeof(*c));
		char err[256];
		if (!c)
			goto fail;
		if (tls_cert_self_signed(cfg->global.state_dir, c, err, sizeof(err)) < 0) {
			conf_error(errs, cfg->path, ct->line, "default certificate: %s", err);
			free(c);
			goto fail;
		}
		s->fallback = c;
		s->fallback_owned = true;
	}
	return s;
fail:
	tls_store_free(s);
	return NULL;
}

void tls_store_free(struct tls_store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		tls_cert_free(s->certs[i]);
		free(s->certs[i]);
	}
	if (s->fallback_owned) {
		tls_cert_free(s->fallback);
		free(s->fallback);
	}
	if (s->client_ca) {
		tls_ca_free(s->client_ca);
		free(s->client_ca);
	}
	free(s->certs);
	free(s);
}
