/* tlsspeed.c - BearSSL speed on this target, with the library exactly as edgeproxy
 * links it (same compiler, flags, config macros; built by tools/cross.mk).
 *
 *   tlsspeed [-t SECONDS] [-q]
 *
 * 1. Record layer: a server and a client engine set up like src/tls.c
 *    (br_ssl_engine_set_default_aes_gcm / _chapol, ec_impl) finish a
 *    handshake in memory, then the server sends full 16 KiB records that the client
 *    decrypts. Reported per suite: seal MiB/s (server encrypt), open MiB/s (client
 *    decrypt), each timed on its own; copying records between them is not counted.
 * 2. Full handshakes, ECDHE P-256 + ECDSA P-256, no resumption: handshakes/s for the
 *    pair, and the server side alone (what edgeproxy spends per new connection).
 * 3. Primitives: every AES-CTR, GHASH, ChaCha20 and Poly1305 implementation this
 *    build has, as AES-128-GCM and ChaCha20-Poly1305 over 16 KiB buffers, and
 *    every EC implementation for P-256 / X25519 point multiplication and ECDSA.
 *    '*' marks what the engine's default selection picked on this CPU.
 *
 * All rates are per CPU-second of this process (CLOCK_PROCESS_CPUTIME_ID).
 * Entropy comes from getrandom() (BearSSL is built without a seeder, as for
 * edgeproxy). Under qemu-user the numbers are only relative to each other. */
#include <bearssl.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ec_impl.h"
#include "ecdsa.h"

#define RECORD (16 * 1024)

static double min_seconds = 0.5;
static int quick;

/* CPU time of this process, not wall time: other load on the machine does not
 * count, and the SPEC judges throughput per CPU-second anyway. */
static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *msg)
{
	fprintf(stderr, "tlsspeed: %s\n", msg);
	exit(1);
}

static void entropy(void *buf, size_t len)
{
	unsigned char *p = buf;
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("getrandom failed");
		}
		p += n;
		len -= (size_t)n;
	}
}

/* ---- a P-256 key and a self-signed certificate (minimal DER writer) ------------- */

static br_hmac_drbg_context rng;
static unsigned char sk_buf[BR_EC_KBUF_PRIV_MAX_SIZE], pk_buf[BR_EC_KBUF_PUB_MAX_SIZE];
static br_ec_private_key sk;
static br_ec_public_key pk;
static unsigned char cert_der[1024];
static size_t cert_len;
static unsigned char dn_der[64];
static size_t dn_len;

/* Appends tag, length and content; returns the new end. */
static unsigned char *der(unsigned char *out, unsigned tag, const void *content, size_t len)
{
	*out++ = (unsigned char)tag;
	if (len < 128) {
		*out++ = (unsigned char)len;
	} else if (len < 256) {
		*out++ = 0x81;
		*out++ = (unsigned char)len;
	} else {
		*out++ = 0x82;
		*out++ = (unsigned char)(len >> 8);
		*out++ = (unsigned char)len;
	}
	memmove(out, content, len);
	return out + len;
}

static void make_cert(void)
{
	static const unsigned char v3[] = { 0xA0, 0x03, 0x02, 0x01, 0x02 };
	static const unsigned char serial[] = { 0x02, 0x01, 0x01 };
	static const unsigned char sigalg[] = { 0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02 };
	static const unsigned char cn_oid[] = { 0x06, 0x03, 0x55, 0x04, 0x03 };
	static const unsigned char ec_algs[] = { 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01,
						 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07 };
	unsigned char tmp[512], tmp2[512], tbs[768], *p;

	unsigned char seed[32];
	entropy(seed, sizeof(seed));
	br_hmac_drbg_init(&rng, &br_sha256_vtable, seed, sizeof(seed));
	const br_ec_impl *ec = ec_impl();
	if (!br_ec_keygen(&rng.vtable, ec, &sk, sk_buf, BR_EC_secp256r1) || !br_ec_compute_pub(ec, &pk, pk_buf, &sk))
		die("P-256 key generation failed");

	/* Name: SEQUENCE { SET { SEQUENCE { CN, UTF8String "tlsspeed" } } } */
	memcpy(tmp, cn_oid, sizeof(cn_oid));
	p = der(tmp + sizeof(cn_oid), 0x0C, "tlsspeed", 8);
	p = der(tmp2, 0x30, tmp, (size_t)(p - tmp));
	p = der(tmp, 0x31, tmp2, (size_t)(p - tmp2));
	dn_len = (size_t)(der(dn_der, 0x30, tmp, (size_t)(p - tmp)) - dn_der);

	p = tmp;
	memcpy(p, v3, sizeof(v3)), p += sizeof(v3);
	memcpy(p, serial, sizeof(serial)), p += sizeof(serial);
	memcpy(p, sigalg, sizeof(sigalg)), p += sizeof(sigalg);
	memcpy(p, dn_der, dn_len), p += dn_len;
	unsigned char validity[34], *v = validity;
	v = der(v, 0x17, "200101000000Z", 13);
	v = der(v, 0x17, "491231235959Z", 13);
	p = der(p, 0x30, validity, (size_t)(v - validity));
	memcpy(p, dn_der, dn_len), p += dn_len;
	unsigned char spki[128], bits[80];
	bits[0] = 0;
	memcpy(bits + 1, pk.q, pk.qlen);
	unsigned char *s = spki;
	memcpy(s, ec_algs, sizeof(ec_algs)), s += sizeof(ec_algs);
	s = der(s, 0x03, bits, pk.qlen + 1);
	p = der(p, 0x30, spki, (size_t)(s - spki));
	size_t tbs_len = (size_t)(der(tbs, 0x30, tmp, (size_t)(p - tmp)) - tbs);

	unsigned char hash[32], sig[80];
	br_sha256_context h;
	br_sha256_init(&h);
	br_sha256_update(&h, tbs, tbs_len);
	br_sha256_out(&h, hash);
	size_t sig_len = ecdsa_sign_asn1(ec, &br_sha256_vtable, hash, &sk, sig + 1);
	if (sig_len == 0)
		die("certificate signature failed");
	sig[0] = 0;

	p = tmp2;
	memcpy(p, tbs, tbs_len), p += tbs_len;
	memcpy(p, sigalg, sizeof(sigalg)), p += sizeof(sigalg);
	p = der(p, 0x03, sig, sig_len + 1);
	cert_len = (size_t)(der(cert_der, 0x30, tmp2, (size_t)(p - tmp2)) - cert_der);
}

/* ---- server and client engines, records pumped in memory ------------------------- */

static br_ssl_server_context sc;
static br_ssl_client_context cc;
static br_x509_minimal_context xc;
/* Full-size input buffers: a client with less advertises a smaller maximum
 * fragment length (RFC 6066), and records would not be 16 KiB. */
static unsigned char s_in[BR_SSL_BUFSIZE_INPUT], s_out[BR_SSL_BUFSIZE_OUTPUT];
static unsigned char c_in[BR_SSL_BUFSIZE_INPUT], c_out[BR_SSL_BUFSIZE_OUTPUT];
static br_x509_certificate chain[1];
static br_x509_trust_anchor ta;
static double t_server, t_client; /* time spent inside each engine */

/* The server set up like src/tls.c's tls_conn_new() and policy_choose(). */
static void server_init(uint16_t suite)
{
	br_ssl_engine_context *eng = &sc.eng;
	br_ssl_server_zero(&sc);
	br_ssl_engine_set_versions(eng, BR_TLS12, BR_TLS12);
	br_ssl_engine_set_suites(eng, &suite, 1);
	br_ssl_engine_set_ec(eng, ec_impl());
	br_ssl_engine_set_hash(eng, br_sha256_ID, &br_sha256_vtable);
	br_ssl_engine_set_hash(eng, br_sha384_ID, &br_sha384_vtable);
	br_ssl_engine_set_hash(eng, br_sha512_ID, &br_sha512_vtable);
	br_ssl_engine_set_hash(eng, br_sha224_ID, &br_sha224_vtable);
	br_ssl_engine_set_hash(eng, br_sha1_ID, &br_sha1_vtable);
	br_ssl_engine_set_prf_sha256(eng, &br_tls12_sha256_prf);
	br_ssl_engine_set_prf_sha384(eng, &br_tls12_sha384_prf);
	br_ssl_engine_set_default_aes_gcm(eng);
	br_ssl_engine_set_default_chapol(eng);
	br_ssl_engine_set_buffers_bidi(eng, s_in, sizeof(s_in), s_out, sizeof(s_out));
	br_ssl_engine_add_flags(eng, BR_OPT_NO_RENEGOTIATION);
	br_ssl_server_set_single_ec(&sc, chain, 1, &sk, BR_KEYTYPE_SIGN, BR_KEYTYPE_EC, ec_impl(),
				    ecdsa_sign_asn1);
}

/* A client offering only this suite and only P-256 for ECDHE. */
static void client_init(uint16_t suite)
{
	br_ssl_client_init_full(&cc, &xc, &ta, 1);
	br_ssl_engine_set_versions(&cc.eng, BR_TLS12, BR_TLS12);
	br_ssl_engine_set_suites(&cc.eng, &suite, 1);
	br_ssl_engine_set_ec(&cc.eng, &br_ec_p256_m31);
	br_ssl_engine_set_buffers_bidi(&cc.eng, c_in, sizeof(c_in), c_out, sizeof(c_out));
}

static void reset_both(void)
{
	unsigned char seed[32];
	double t0 = now();
	entropy(seed, sizeof(seed)); /* per connection, as edgeproxy does */
	br_ssl_engine_inject_entropy(&sc.eng, seed, sizeof(seed));
	if (!br_ssl_server_reset(&sc))
		die("server reset failed");
	double t1 = now();
	entropy(seed, sizeof(seed));
	br_ssl_engine_inject_entropy(&cc.eng, seed, sizeof(seed));
	if (!br_ssl_client_reset(&cc, NULL, 0))
		die("client reset failed");
	t_server += t1 - t0;
	t_client += now() - t1;
}

/* Moves records from one engine to the other; returns 1 if anything moved. */
static int move(br_ssl_engine_context *from, br_ssl_engine_context *to, double *t_from, double *t_to)
{
	if (!(br_ssl_engine_current_state(from) & BR_SSL_SENDREC) || !(br_ssl_engine_current_state(to) & BR_SSL_RECVREC))
		return 0;
	size_t n, room;
	unsigned char *src = br_ssl_engine_sendrec_buf(from, &n);
	unsigned char *dst = br_ssl_engine_recvrec_buf(to, &room);
	if (n > room)
		n = room;
	memcpy(dst, src, n);
	double t0 = now();
	br_ssl_engine_sendrec_ack(from, n);
	double t1 = now();
	br_ssl_engine_recvrec_ack(to, n);
	*t_from += t1 - t0;
	*t_to += now() - t1;
	return 1;
}

static void handshake(void)
{
	for (;;) {
		unsigned s = br_ssl_engine_current_state(&sc.eng), c = br_ssl_engine_current_state(&cc.eng);
		if ((s & BR_SSL_CLOSED) || (c & BR_SSL_CLOSED)) {
			fprintf(stderr, "tlsspeed: handshake failed: server error %d, client error %d\n",
				br_ssl_engine_last_error(&sc.eng), br_ssl_engine_last_error(&cc.eng));
			exit(1);
		}
		if ((s & BR_SSL_SENDAPP) && (c & BR_SSL_SENDAPP) && !(s & BR_SSL_SENDREC) && !(c & BR_SSL_SENDREC))
			return;
		int moved = move(&cc.eng, &sc.eng, &t_client, &t_server);
		moved |= move(&sc.eng, &cc.eng, &t_server, &t_client);
		if (!moved)
			die("handshake stalled");
	}
}

static const char *name_of(const void *p, const void *const *ptrs, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ptrs[i] == p)
			return names[i];
	return "?";
}

static void records(const char *label, uint16_t suite)
{
	server_init(suite);
	client_init(suite);
	reset_both();
	handshake();
	if (br_ssl_engine_get_version(&sc.eng) != BR_TLS12)
		die("not TLS 1.2");
	br_ssl_session_parameters sp;
	br_ssl_engine_get_session_parameters(&sc.eng, &sp);
	if (sp.cipher_suite != suite)
		die("unexpected suite");

	double t_seal = 0, t_open = 0, t_move = 0;
	size_t bytes = 0;
	double start = now();
	while (now() - start < min_seconds || bytes < 4 * RECORD) {
		size_t len;
		unsigned char *app = br_ssl_engine_sendapp_buf(&sc.eng, &len);
		if (!app || len < RECORD)
			die("no room for a full record");
		double t0 = now();
		br_ssl_engine_sendapp_ack(&sc.eng, RECORD);
		br_ssl_engine_flush(&sc.eng, 0);
		double t1 = now();
		t_seal += t1 - t0;
		while (br_ssl_engine_current_state(&sc.eng) & BR_SSL_SENDREC) {
			double dummy = 0;
			if (!move(&sc.eng, &cc.eng, &dummy, &t_open))
				die("record stalled");
			t_move += dummy;
		}
		unsigned char *got = br_ssl_engine_recvapp_buf(&cc.eng, &len);
		if (!got || len != RECORD)
			die("client did not get the record");
		br_ssl_engine_recvapp_ack(&cc.eng, len);
		bytes += RECORD;
	}
	double mib = (double)bytes / (1024.0 * 1024.0);
	printf("  %-30s seal %8.1f MiB/s   open %8.1f MiB/s\n", label, mib / t_seal, mib / t_open);
}

static void handshakes(void)
{
	uint16_t suite = BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256;
	server_init(suite);
	client_init(suite);
	t_server = t_client = 0;
	unsigned n = 0;
	double start = now();
	while (now() - start < min_seconds * 2 || n < 3) {
		reset_both();
		handshake();
		n++;
	}
	double wall = now() - start;
	printf("  ECDHE-ECDSA P-256, full       %8.1f handshakes/s for the pair\n", n / wall);
	printf("                                %8.1f handshakes/s server side alone (%.2f ms each)\n",
	       n / t_server, 1000 * t_server / n);
	printf("                                %8.1f handshakes/s client side alone (%.2f ms each)\n",
	       n / t_client, 1000 * t_client / n);
}

/* ---- primitives ---------------------------------------------------------------------- */

static unsigned char data[RECORD];

/* Runs fn(arg) until min_seconds have passed; returns calls per second. */
static double rate(void (*fn)(const void *), const void *arg, double secs)
{
	unsigned n = 0;
	double start = now(), el;
	do {
		fn(arg);
		n++;
	} while ((el = now() - start) < secs);
	return n / el;
}

struct gcm_arg {
	const br_block_ctr_class *ctr;
	br_ghash gh;
};

static void run_gcm(const void *p)
{
	const struct gcm_arg *a = p;
	br_aes_gen_ctr_keys keys;
	br_gcm_context gc;
	unsigned char key[16] = { 1 }, iv[12] = { 2 }, tag[16];
	a->ctr->init(&keys.vtable, key, sizeof(key));
	br_gcm_init(&gc, &keys.vtable, a->gh);
	br_gcm_reset(&gc, iv, sizeof(iv));
	br_gcm_flip(&gc);
	br_gcm_run(&gc, 1, data, sizeof(data));
	br_gcm_get_tag(&gc, tag);
}

struct chapol_arg {
	br_chacha20_run ch;
	br_poly1305_run po;
};

static void run_chapol(const void *p)
{
	const struct chapol_arg *a = p;
	unsigned char key[32] = { 1 }, iv[12] = { 2 }, tag[16];
	a->po(key, iv, data, sizeof(data), NULL, 0, tag, a->ch, 1);
}

struct ec_arg {
	const br_ec_impl *impl;
	int curve;
	int op; /* 0 mul, 1 mulgen, 2 ecdsa sign, 3 ecdsa verify */
	unsigned char point[65];
	size_t plen;
	unsigned char sig[80];
	size_t slen;
};

static void run_ec(const void *p)
{
	const struct ec_arg *a = p;
	unsigned char pt[65], scalar[32], hash[32];
	memset(scalar, 0x5A, sizeof(scalar));
	scalar[0] = 0x3F;
	memset(hash, 0x11, sizeof(hash));
	switch (a->op) {
	case 0:
		memcpy(pt, a->point, a->plen);
		if (!a->impl->mul(pt, a->plen, scalar, sizeof(scalar), a->curve))
			die("EC mul failed");
		break;
	case 1:
		a->impl->mulgen(pt, scalar, sizeof(scalar), a->curve);
		break;
	case 2: {
		unsigned char sig[80];
		/* edgeproxy's rows sign as edgeproxy does (src/ecdsa.c) */
		br_ecdsa_sign sign = a->impl == ec_impl() ? ecdsa_sign_asn1 : br_ecdsa_i31_sign_asn1;
		if (!sign(a->impl, &br_sha256_vtable, hash, &sk, sig))
			die("ECDSA sign failed");
		break;
	}
	default:
		if (!br_ecdsa_i31_vrfy_asn1(a->impl, hash, sizeof(hash), &pk, a->sig, a->slen))
			die("ECDSA verify failed");
	}
}

static void primitives(void)
{
	br_ssl_engine_context *eng = &sc.eng;
	server_init(BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
	double secs = min_seconds / 2;
	double mib_per_call = (double)sizeof(data) / (1024.0 * 1024.0);

	const br_block_ctr_class *ctrs[] = { &br_aes_ct_ctr_vtable, &br_aes_ct64_ctr_vtable, &br_aes_big_ctr_vtable,
					     &br_aes_small_ctr_vtable, br_aes_x86ni_ctr_get_vtable(),
					     br_aes_pwr8_ctr_get_vtable() };
	const char *ctr_names[] = { "aes_ct", "aes_ct64", "aes_big (table, not CT)", "aes_small (table, not CT)",
				    "aes_x86ni", "aes_pwr8" };
	br_ghash ghs[] = { br_ghash_ctmul, br_ghash_ctmul32, br_ghash_ctmul64, br_ghash_pclmul_get(), br_ghash_pwr8_get() };
	const char *gh_names[] = { "ghash_ctmul", "ghash_ctmul32", "ghash_ctmul64", "ghash_pclmul", "ghash_pwr8" };
	size_t nctr = sizeof(ctrs) / sizeof(ctrs[0]), ngh = sizeof(ghs) / sizeof(ghs[0]);

	printf("\nAES-128-GCM primitives, 16 KiB buffers (* = engine default here):\n");
	for (size_t i = 0; i < nctr; i++) {
		if (!ctrs[i] || (quick && ctrs[i] != eng->iaes_ctr))
			continue;
		for (size_t j = 0; j < ngh; j++) {
			if (!ghs[j] || (quick && ghs[j] != eng->ighash))
				continue;
			/* The table-based AES variants only with the default GHASH, to keep it short. */
			if ((i == 2 || i == 3) && ghs[j] != eng->ighash)
				continue;
			struct gcm_arg a = { ctrs[i], ghs[j] };
			int dflt = ctrs[i] == eng->iaes_ctr && ghs[j] == eng->ighash;
			char label[80];
			snprintf(label, sizeof(label), "%s + %s", ctr_names[i], gh_names[j]);
			printf(" %c %-44s %8.1f MiB/s\n", dflt ? '*' : ' ', label, rate(run_gcm, &a, secs) * mib_per_call);
		}
	}

	br_chacha20_run chs[] = { br_chacha20_ct_run, br_chacha20_sse2_get() };
	const char *ch_names[] = { "chacha20_ct", "chacha20_sse2" };
	br_poly1305_run pos[] = { br_poly1305_ctmul_run, br_poly1305_ctmul32_run, br_poly1305_i15_run,
				  br_poly1305_ctmulq_get() };
	const char *po_names[] = { "poly1305_ctmul", "poly1305_ctmul32", "poly1305_i15", "poly1305_ctmulq" };
	printf("\nChaCha20-Poly1305 primitives, 16 KiB buffers:\n");
	for (size_t i = 0; i < 2; i++) {
		if (!chs[i] || (quick && chs[i] != eng->ichacha))
			continue;
		for (size_t j = 0; j < 4; j++) {
			if (!pos[j] || (quick && pos[j] != eng->ipoly))
				continue;
			struct chapol_arg a = { chs[i], pos[j] };
			int dflt = chs[i] == eng->ichacha && pos[j] == eng->ipoly;
			char label[80];
			snprintf(label, sizeof(label), "%s + %s", ch_names[i], po_names[j]);
			printf(" %c %-44s %8.1f MiB/s\n", dflt ? '*' : ' ', label, rate(run_chapol, &a, secs) * mib_per_call);
		}
	}

	/* edgeproxy's own (src/ec_impl.c) where the target has it, then BearSSL's */
	const br_ec_impl *ecs[] = { ec_impl(), &br_ec_p256_m31, &br_ec_p256_m15, &br_ec_prime_i31, &br_ec_prime_i15,
				    ec_impl(), &br_ec_c25519_m31, &br_ec_c25519_m15, &br_ec_c25519_i31, &br_ec_c25519_i15 };
	const char *ec_names[] = { "edgeproxy p256", "p256_m31", "p256_m15", "prime_i31", "prime_i15",
				   "edgeproxy x25519", "c25519_m31", "c25519_m15", "c25519_i31", "c25519_i15" };
	const br_ec_impl *dflt_ec = br_ec_get_default();
	int own = ec_impl() != dflt_ec;
	/* br_ec_all_* dispatch P-256 to p256_m31/m15 and X25519 to c25519_m31/m15. */
	const br_ec_impl *dflt_p256 = own ? ec_impl() : dflt_ec == &br_ec_all_m15 ? &br_ec_p256_m15 : &br_ec_p256_m31;
	const br_ec_impl *dflt_x = own ? ec_impl() : dflt_ec == &br_ec_all_m15 ? &br_ec_c25519_m15 : &br_ec_c25519_m31;
	printf("\nEC operations per second (edgeproxy uses: %s):\n",
	       own ? "its own P-256 and X25519 (src/p256.c, src/x25519.c)"
		   : dflt_ec == &br_ec_all_m15 ? "ec_all_m15" : "ec_all_m31");
	printf("   %-16s %12s %12s %12s %12s\n", "impl", "ECDH mul", "keygen", "ECDSA sign", "ECDSA vrfy");
	for (size_t i = 0; i < sizeof(ecs) / sizeof(ecs[0]); i++) {
		int x = i >= 5;
		if ((i == 0 || i == 5) && !own)
			continue;
		int curve = x ? BR_EC_curve25519 : BR_EC_secp256r1;
		if (quick && ecs[i] != dflt_p256 && ecs[i] != dflt_x)
			continue;
		struct ec_arg a = { .impl = ecs[i], .curve = curve };
		if (x) {
			memset(a.point, 9, 1); /* the X25519 base point u = 9 */
			memset(a.point + 1, 0, 31);
			a.plen = 32;
		} else {
			memcpy(a.point, pk.q, pk.qlen);
			a.plen = pk.qlen;
		}
		double r[4] = { 0 };
		for (int op = 0; op < 4; op++) {
			if (x && op >= 2)
				break;
			a.op = op;
			if (op == 3) {
				unsigned char hash[32];
				memset(hash, 0x11, sizeof(hash));
				a.slen = br_ecdsa_i31_sign_asn1(ecs[i], &br_sha256_vtable, hash, &sk, a.sig);
			}
			r[op] = rate(run_ec, &a, secs / 2);
		}
		char c[4][16];
		for (int op = 0; op < 4; op++)
			snprintf(c[op], sizeof(c[op]), r[op] > 0 ? "%.1f" : "-", r[op]);
		int dflt = ecs[i] == (x ? dflt_x : dflt_p256);
		printf(" %c %-16s %12s %12s %12s %12s\n", dflt ? '*' : ' ', ec_names[i], c[0], c[1], c[2], c[3]);
	}
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "t:qh")) != -1) {
		if (opt == 't')
			min_seconds = atof(optarg);
		else if (opt == 'q')
			quick = 1;
		else {
			fprintf(stderr, "usage: %s [-t SECONDS per measurement] [-q only the defaults]\n", argv[0]);
			return opt == 'h' ? 0 : 2;
		}
	}
	if (min_seconds <= 0)
		min_seconds = 0.5;

	make_cert();
	chain[0].data = cert_der;
	chain[0].data_len = cert_len;
	ta.dn.data = dn_der;
	ta.dn.len = dn_len;
	ta.flags = BR_X509_TA_CA;
	ta.pkey.key_type = BR_KEYTYPE_EC;
	ta.pkey.key.ec = pk;

	server_init(BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
	br_ssl_engine_context *eng = &sc.eng;
	const void *ctr_ptrs[] = { &br_aes_ct_ctr_vtable, &br_aes_ct64_ctr_vtable, br_aes_x86ni_ctr_get_vtable(),
				   br_aes_pwr8_ctr_get_vtable() };
	const char *ctr_names[] = { "aes_ct", "aes_ct64", "aes_x86ni", "aes_pwr8" };
	const void *gh_ptrs[] = { (const void *)br_ghash_ctmul, (const void *)br_ghash_ctmul32,
				  (const void *)br_ghash_ctmul64, (const void *)br_ghash_pclmul_get(),
				  (const void *)br_ghash_pwr8_get() };
	const char *gh_names[] = { "ctmul", "ctmul32", "ctmul64", "pclmul", "pwr8" };
	const void *ch_ptrs[] = { (const void *)br_chacha20_ct_run, (const void *)br_chacha20_sse2_get() };
	const char *ch_names[] = { "ct", "sse2" };
	const void *po_ptrs[] = { (const void *)br_poly1305_ctmul_run, (const void *)br_poly1305_ctmul32_run,
				  (const void *)br_poly1305_i15_run, (const void *)br_poly1305_ctmulq_get() };
	const char *po_names[] = { "ctmul", "ctmul32", "i15", "ctmulq" };
	printf("tlsspeed: BearSSL 0.6, %zu-bit, %s\n", sizeof(void *) * 8,
#ifdef EDGEPROXY_TRIPLE
	       EDGEPROXY_TRIPLE
#else
	       "host"
#endif
	);
	printf("engine defaults: AES-CTR %s, GHASH %s, ChaCha20 %s, Poly1305 %s\n",
	       name_of(eng->iaes_ctr, ctr_ptrs, ctr_names, 4), name_of((const void *)eng->ighash, gh_ptrs, gh_names, 5),
	       name_of((const void *)eng->ichacha, ch_ptrs, ch_names, 2),
	       name_of((const void *)eng->ipoly, po_ptrs, po_names, 4));

	printf("\nTLS 1.2 record layer, 16 KiB records, engines as src/tls.c sets them up:\n");
	records("ECDHE-ECDSA-AES128-GCM", BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
	records("ECDHE-ECDSA-CHACHA20-POLY1305", BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256);
	if (!quick)
		records("ECDHE-ECDSA-AES256-GCM", BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384);
	printf("\nFull handshakes in memory (no resumption, certificate verified by the client):\n");
	handshakes();
	primitives();
	return 0;
}
