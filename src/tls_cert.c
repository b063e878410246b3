/* tls_cert.c - server certificates: PEM chain and key loading with BearSSL's decoders
 * plus a small DER walk for what they do not expose (validity, DNS names), the
 * self-signed default certificate in state_dir, and SNI matching. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* flock, strnlen */
#endif
#include "tls_cert.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analyzer.h"
#include "der.h"
#include "ec_impl.h"
#include "rand.h"
#include "slice.h"
#include "timefmt.h"

#define SELF_CN "edgeproxy default"
#define SELF_SAN "localhost"
#define SELF_CRT "default.crt"
#define SELF_KEY "default.key"
#define SELF_YEARS 10

/* ---- small helpers ----------------------------------------------------------- */

/* Overwrites secrets so the compiler cannot drop the stores as dead. */
static void wipe(void *p, size_t len)
{
	volatile unsigned char *v = p;
	while (len--)
		*v++ = 0;
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
						       ...)
{
	va_list ap;

	if (err && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* ASCII case-insensitive comparison of n bytes (DNS names, RFC 4343). */
static bool eq_nocase(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ascii_lower(a[i]) != ascii_lower(b[i]))
			return false;
	return true;
}

/* A growable byte buffer for decoded PEM objects. It may hold key material, so
 * growing copies and wipes instead of realloc (which could leave a stale copy). */
struct bytes {
	unsigned char *p; /* owner: this struct; wiped by bytes_free */
	size_t len, cap;
	bool too_big, no_mem;
};

static void bytes_free(struct bytes *b)
{
	if (b->p) {
		wipe(b->p, b->cap);
		free(b->p);
	}
	memset(b, 0, sizeof(*b));
}

/* br_pem_decoder destination callback. */
static void bytes_append(void *ctx, const void *src, size_t n)
{
	struct bytes *b = ctx;

	if (b->too_big || b->no_mem)
		return;
	if (n > TLS_CERT_MAX_DER - b->len) {
		b->too_big = true;
		return;
	}
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 2048;
		while (cap < b->len + n)
			cap *= 2;
		unsigned char *p = malloc(cap);
		if (!p) {
			b->no_mem = true;
			return;
		}
		if (b->p) {
			memcpy(p, b->p, b->len);
			wipe(b->p, b->cap);
			free(b->p);
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, src, n);
	b->len += n;
}

/* Reads a whole regular file of at most TLS_CERT_MAX_FILE bytes into *out (owner:
 * the caller, to be released with bytes_free since it may be a key). */
static int read_file(const char *path, struct bytes *out, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	memset(out, 0, sizeof(*out));
	if (fd < 0)
		return fail(err, errlen, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return fail(err, errlen, "%s: %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return fail(err, errlen, "%s: not a regular file", path);
	}
	for (;;) {
		unsigned char chunk[4096];
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			wipe(chunk, sizeof(chunk));
			close(fd);
			bytes_free(out);
			return fail(err, errlen, "%s: %s", path, strerror(e));
		}
		if (n == 0)
			break;
		if ((size_t)n > TLS_CERT_MAX_FILE - out->len) {
			wipe(chunk, sizeof(chunk));
			close(fd);
			bytes_free(out);
			return fail(err, errlen, "%s: larger than %d bytes", path, TLS_CERT_MAX_FILE);
		}
		/* bytes_append caps at TLS_CERT_MAX_DER; files may be bigger, so grow here. */
		if (out->len + (size_t)n > out->cap) {
			size_t cap = out->cap ? out->cap * 2 : 8192;
			unsigned char *p = malloc(cap);
			if (!p) {
				wipe(chunk, sizeof(chunk));
				close(fd);
				bytes_free(out);
				return fail(err, errlen, "%s: out of memory", path);
			}
			if (out->p) {
				memcpy(p, out->p, out->len);
				wipe(out->p, out->cap);
				free(out->p);
			}
			out->p = p;
			out->cap = cap;
		}
		/* out->p is set here: the first chunk (len 0, cap 0, n > 0) always
		 * grows the buffer. GCC 12's analyzer follows a path that skips the
		 * growth on the first chunk and passes NULL: a false positive. */
		ANALYZER_IGNORE("-Wanalyzer-null-argument")
		memcpy(out->p + out->len, chunk, (size_t)n);
		ANALYZER_END
		out->len += (size_t)n;
		wipe(chunk, (size_t)n);
	}
	close(fd);
	return 0;
}

/* ---- PEM --------------------------------------------------------------------- */

/* Called for each complete PEM object with its (uppercased) label and decoded bytes.
 * Returns 0 to go on, -1 (err set) to stop. */
typedef int (*pem_object_fn)(void *ctx, const char *label, const struct bytes *der,
			     char *err, size_t errlen);

/* Runs br_pem_decoder over data[0..len) and hands each object to fn. Text outside
 * objects is ignored (RFC 7468 §2 explanatory text). */
static int pem_each(const char *data, size_t len, const char *src, pem_object_fn fn, void *ctx,
		    char *err, size_t errlen)
{
	br_pem_decoder_context pc;
	struct bytes obj = { 0 };
	char label[sizeof(pc.name)];
	bool inside = false, flushed = false;
	size_t off = 0;
	int rc = 0;

	br_pem_decoder_init(&pc);
	label[0] = '\0';
	for (;;) {
		size_t n;
		/* The decoder only sees an END line once its newline arrives; a file may
		 * lack the final one, so one extra "\n" is pushed after the data. */
		if (off < len) {
			n = br_pem_decoder_push(&pc, data + off, len - off);
			off += n;
		} else if (!flushed) {
			n = br_pem_decoder_push(&pc, "\n", 1);
			flushed = n == 1;
		} else {
			break;
		}
		int ev = br_pem_decoder_event(&pc);
		if (ev == BR_PEM_BEGIN_OBJ) {
			const char *name = br_pem_decoder_name(&pc);
			size_t nl = strnlen(name, sizeof(label) - 1);
			/* BearSSL 0.6 strips the trailing dashes only when the line ends in
			 * "-----\n"; with CRLF endings the name keeps them. */
			while (nl > 0 && (name[nl - 1] == '-' || (unsigned char)name[nl - 1] <= ' '))
				nl--;
			memcpy(label, name, nl);
			label[nl] = '\0';
			obj.len = 0;
			obj.too_big = obj.no_mem = false;
			br_pem_decoder_setdest(&pc, bytes_append, &obj);
			inside = true;
		} else if (ev == BR_PEM_END_OBJ) {
			br_pem_decoder_setdest(&pc, NULL, NULL);
			inside = false;
			if (obj.too_big) {
				rc = fail(err, errlen, "%s: %s block larger than %d bytes", src, label,
					  TLS_CERT_MAX_DER);
				break;
			}
			if (obj.no_mem) {
				rc = fail(err, errlen, "%s: out of memory", src);
				break;
			}
			if (fn(ctx, label, &obj, err, errlen) < 0) {
				rc = -1;
				break;
			}
		} else if (ev == BR_PEM_ERROR) {
			rc = fail(err, errlen, "%s: bad PEM encoding%s%s%s", src,
				  inside ? " in " : "", inside ? label : "", inside ? " block" : "");
			break;
		} else if (n == 0) {
			rc = fail(err, errlen, "%s: PEM decoder stalled", src); /* cannot happen */
			break;
		}
	}
	if (rc == 0 && inside)
		rc = fail(err, errlen, "%s: %s block has no END line", src, label);
	bytes_free(&obj);
	return rc;
}

/* ---- DER reading (der.c; only what X.509 certificates need) ------------------ */

static const unsigned char oid_common_name[] = { 0x55, 0x04, 0x03 };      /* 2.5.4.3 */
static const unsigned char oid_subject_alt_name[] = { 0x55, 0x1d, 0x11 }; /* 2.5.29.17 */

static int der_expect(struct der_r *in, unsigned tag, struct der_r *val)
{
	unsigned t;
	return der_get(in, &t, val) < 0 || t != tag ? -1 : 0;
}

static bool der_is(struct der_r v, const unsigned char *bytes, size_t n)
{
	return v.len == n && memcmp(v.p, bytes, n) == 0;
}

/* Parses n decimal digits. */
static int digits(const unsigned char *p, size_t n, unsigned *out)
{
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	*out = v;
	return 0;
}

/* RFC 5280 §4.1.2.5: UTCTime YYMMDDHHMMSSZ (YY < 50 is 20YY) or GeneralizedTime
 * YYYYMMDDHHMMSSZ, always UTC, no fractions. */
static int x509_time(unsigned tag, struct der_r v, time_t *out)
{
	unsigned y, mo, d, h, mi, s;
	size_t yl;

	if (tag == DER_UTCTIME && v.len == 13)
		yl = 2;
	else if (tag == DER_GENERALIZEDTIME && v.len == 15)
		yl = 4;
	else
		return -1;
	if (v.p[v.len - 1] != 'Z' || digits(v.p, yl, &y) < 0 || digits(v.p + yl, 2, &mo) < 0 ||
	    digits(v.p + yl + 2, 2, &d) < 0 || digits(v.p + yl + 4, 2, &h) < 0 ||
	    digits(v.p + yl + 6, 2, &mi) < 0 || digits(v.p + yl + 8, 2, &s) < 0)
		return -1;
	if (yl == 2)
		y += y < 50 ? 2000 : 1900;
	if (mo < 1 || mo > 12 || d < 1 || d > timefmt_month_days(y, mo) || h > 23 || mi > 59 ||
	    s > 60)
		return -1;
	*out = (time_t)(timefmt_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s);
	return 0;
}

/* ---- names ------------------------------------------------------------------- */

struct names {
	char **v; /* owner: this struct until handed to a tls_cert */
	size_t n, cap;
};

static void names_free(struct names *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* A DNS name we can match SNI against: LDH labels (plus '_', seen in the wild) of 1..63
 * bytes, 253 bytes at most, no empty label, and an optional leading "*." wildcard
 * label followed by at least one more label. Anything else (spaces, IDN in UTF-8,
 * partial wildcards such as "w*.example.com") is not a host name we serve. */
static bool dns_name_ok(const unsigned char *p, size_t len)
{
	size_t label = 0;

	if (len >= 2 && p[0] == '*' && p[1] == '.') {
		p += 2;
		len -= 2;
	}
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

/* Appends a lowercased copy of p[0..len) if it is a usable DNS name; others are
 * skipped. Returns -1 only when out of memory. */
static int names_add(struct names *l, const unsigned char *p, size_t len)
{
	char *s;

	if (!dns_name_ok(p, len))
		return 0; /* duplicates are kept: harmless, and checking would be quadratic */
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 4;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	if (!(s = malloc(len + 1)))
		return -1;
	for (size_t i = 0; i < len; i++)
		s[i] = ascii_lower((char)p[i]);
	s[len] = '\0';
	l->v[l->n++] = s;
	return 0;
}

/* subjectAltName (RFC 5280 §4.2.1.6): SEQUENCE OF GeneralName; dNSName is [2]. */
static int walk_san(struct der_r ext_value, struct names *l, bool *saw_dns)
{
	struct der_r gns, gn;
	unsigned tag;

	if (der_expect(&ext_value, DER_SEQUENCE, &gns) < 0 || ext_value.len != 0)
		return -1;
	while (gns.len > 0) {
		if (der_get(&gns, &tag, &gn) < 0)
			return -1;
		if (tag != DER_DNSNAME)
			continue;
		*saw_dns = true;
		if (names_add(l, gn.p, gn.len) < 0)
			return -1;
	}
	return 0;
}

/* Finds the last commonName in a Name (the most specific one, RFC 6125 §2.3.1). */
static int walk_subject_cn(struct der_r name, struct der_r *cn, bool *found)
{
	struct der_r rdn, atv, oid, val;
	unsigned tag;

	while (name.len > 0) {
		if (der_expect(&name, DER_SET, &rdn) < 0)
			return -1;
		while (rdn.len > 0) {
			if (der_expect(&rdn, DER_SEQUENCE, &atv) < 0 ||
			    der_expect(&atv, DER_OID, &oid) < 0 || der_get(&atv, &tag, &val) < 0)
				return -1;
			if (!der_is(oid, oid_common_name, sizeof(oid_common_name)))
				continue;
			if (tag == DER_UTF8STRING || tag == DER_PRINTABLESTRING ||
			    tag == DER_IA5STRING || tag == DER_T61STRING) {
				*cn = val;
				*found = true;
			}
		}
	}
	return 0;
}

/* What BearSSL's decoder does not give us from the leaf: validity and DNS names.
 * RFC 5280 §4.1: Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm,
 * signatureValue }. Returns -1 with *why set on malformed DER or out of memory. */
static int walk_leaf(const unsigned char *p, size_t len, struct tls_cert *c, struct names *l,
		     const char **why)
{
	struct der_r in = { p, len }, cert, tbs, v, validity, subject, exts, ext, oid, val, cn;
	unsigned tag;
	bool saw_dns = false, have_cn = false;

	*why = "malformed certificate";
	if (der_expect(&in, DER_SEQUENCE, &cert) < 0 || in.len != 0 ||
	    der_expect(&cert, DER_SEQUENCE, &tbs) < 0)
		return -1;
	if (tbs.len > 0 && tbs.p[0] == DER_CTX0 && der_get(&tbs, &tag, &v) < 0)
		return -1;
	if (der_expect(&tbs, DER_INTEGER, &v) < 0 ||     /* serialNumber */
	    der_expect(&tbs, DER_SEQUENCE, &v) < 0 ||    /* signature */
	    der_expect(&tbs, DER_SEQUENCE, &v) < 0 ||    /* issuer */
	    der_expect(&tbs, DER_SEQUENCE, &validity) < 0 ||
	    der_expect(&tbs, DER_SEQUENCE, &subject) < 0 ||
	    der_expect(&tbs, DER_SEQUENCE, &v) < 0)      /* subjectPublicKeyInfo */
		return -1;
	*why = "bad validity dates";
	if (der_get(&validity, &tag, &v) < 0 || x509_time(tag, v, &c->not_before) < 0 ||
	    der_get(&validity, &tag, &v) < 0 || x509_time(tag, v, &c->not_after) < 0 ||
	    validity.len != 0)
		return -1;
	*why = "malformed extensions";
	/* issuerUniqueID [1] and subjectUniqueID [2] may precede extensions [3]. */
	while (tbs.len > 0) {
		if (der_get(&tbs, &tag, &v) < 0)
			return -1;
		if (tag != DER_CTX3)
			continue;
		if (der_expect(&v, DER_SEQUENCE, &exts) < 0 || v.len != 0)
			return -1;
		while (exts.len > 0) {
			if (der_expect(&exts, DER_SEQUENCE, &ext) < 0 ||
			    der_expect(&ext, DER_OID, &oid) < 0)
				return -1;
			if (ext.len > 0 && ext.p[0] == DER_BOOLEAN && der_get(&ext, &tag, &v) < 0)
				return -1; /* critical */
			if (der_expect(&ext, DER_OCTET_STRING, &val) < 0)
				return -1;
			if (der_is(oid, oid_subject_alt_name, sizeof(oid_subject_alt_name)) &&
			    walk_san(val, l, &saw_dns) < 0)
				return -1;
		}
	}
	if (saw_dns)
		return 0;
	*why = "malformed subject";
	if (walk_subject_cn(subject, &cn, &have_cn) < 0)
		return -1;
	*why = "out of memory";
	return have_cn ? names_add(l, cn.p, cn.len) : 0;
}

/* ---- loading ----------------------------------------------------------------- */

struct chain_acc {
	br_x509_certificate certs[TLS_CERT_MAX_CHAIN]; /* .data owner: this struct until moved */
	size_t n;
	const char *src;
};

static int chain_object(void *ctx, const char *label, const struct bytes *der, char *err,
			size_t errlen)
{
	struct chain_acc *a = ctx;
	unsigned char *copy;

	if (strcmp(label, "CERTIFICATE") != 0 && strcmp(label, "X509 CERTIFICATE") != 0)
		return 0;
	if (a->n == TLS_CERT_MAX_CHAIN)
		return fail(err, errlen, "%s: more than %d certificates", a->src,
			    TLS_CERT_MAX_CHAIN);
	if (der->len == 0)
		return fail(err, errlen, "%s: certificate %zu is empty", a->src, a->n + 1);
	if (!(copy = malloc(der->len)))
		return fail(err, errlen, "%s: out of memory", a->src);
	memcpy(copy, der->p, der->len);
	a->certs[a->n].data = copy;
	a->certs[a->n].data_len = der->len;
	a->n++;
	return 0;
}

struct key_acc {
	br_skey_decoder_context dc; /* holds a copy of the key: wiped after use */
	bool found;
	const char *src;
};

static int key_object(void *ctx, const char *label, const struct bytes *der, char *err,
		      size_t errlen)
{
	struct key_acc *a = ctx;

	if (strcmp(label, "ENCRYPTED PRIVATE KEY") == 0)
		return fail(err, errlen,
			    "%s: encrypted private keys are not supported (decrypt with: "
			    "openssl pkey -in FILE -out FILE.plain)",
			    a->src);
	if (strcmp(label, "EC PRIVATE KEY") != 0 && strcmp(label, "RSA PRIVATE KEY") != 0 &&
	    strcmp(label, "PRIVATE KEY") != 0)
		return 0; /* EC PARAMETERS, CERTIFICATE, ... */
	if (a->found)
		return fail(err, errlen, "%s: more than one private key", a->src);
	a->found = true;
	br_skey_decoder_push(&a->dc, der->p, der->len);
	return 0;
}

/* Big-endian unsigned integers compared by value (leading zero bytes ignored). */
static bool uint_eq(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
	while (alen > 0 && *a == 0) {
		a++;
		alen--;
	}
	while (blen > 0 && *b == 0) {
		b++;
		blen--;
	}
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* Does the private key belong to the certificate's public key? EC: recompute the
 * public point. RSA: recompute the modulus from p and q, then sign and verify. */
static int key_matches(const br_x509_pkey *pub, int key_type, const br_ec_private_key *ec,
		       const br_rsa_private_key *rsa, const char **why)
{
	*why = "key does not match certificate";
	if (pub->key_type != key_type) {
		*why = pub->key_type == BR_KEYTYPE_EC ? "key does not match certificate "
							"(an RSA key for an EC certificate)"
						      : "key does not match certificate "
							"(an EC key for an RSA certificate)";
		return -1;
	}
	if (key_type == BR_KEYTYPE_EC) {
		unsigned char q[BR_EC_KBUF_PUB_MAX_SIZE];
		br_ec_public_key pk;
		if (ec->curve != pub->key.ec.curve)
			return -1;
		if (br_ec_compute_pub(ec_impl(), &pk, q, ec) == 0) {
			*why = "unsupported EC curve";
			return -1;
		}
		return pk.qlen == pub->key.ec.qlen && memcmp(pk.q, pub->key.ec.q, pk.qlen) == 0
			       ? 0 : -1;
	}
	/* The modulus says whose key it is; a signature checked with the certificate's
	 * key then proves the rest (e, and the CRT values TLS will use). BearSSL's
	 * compute_pubexp cannot be used: it only handles primes that are 3 mod 4. */
	static const unsigned char probe[32] = "edgeproxy key/certificate check";
	br_rsa_compute_modulus modulus = br_rsa_compute_modulus_get_default();
	unsigned char n[512], sig[512], back[32]; /* BearSSL handles RSA up to 4096 bits */
	size_t nlen = modulus(NULL, rsa), siglen = (rsa->n_bitlen + 7) / 8;
	if (siglen > sizeof(sig) || nlen > sizeof(n)) {
		*why = "unsupported or malformed RSA key";
		return -1;
	}
	/* BearSSL 0.6 computes no modulus for 4096-bit keys (nlen 0): the
	 * signature check below still proves the pair on its own. */
	if (nlen && (modulus(n, rsa) != nlen || !uint_eq(n, nlen, pub->key.rsa.n, pub->key.rsa.nlen)))
		return -1;
	if ((nlen && siglen != nlen) ||
	    !br_rsa_pkcs1_sign_get_default()(BR_HASH_OID_SHA256, probe, sizeof(probe), rsa, sig) ||
	    !br_rsa_pkcs1_vrfy_get_default()(sig, siglen, BR_HASH_OID_SHA256, sizeof(back),
					     &pub->key.rsa, back) ||
	    memcmp(back, probe, sizeof(back)) != 0) {
		*why = "RSA key is inconsistent or does not match certificate";
		return -1;
	}
	return 0;
}

/* Copies one key integer to dst, points the key's field at it; returns the next free byte. */
static unsigned char *put_int(unsigned char *dst, unsigned char **field, size_t *flen,
			      const unsigned char *src, size_t n)
{
	memcpy(dst, src, n);
	*field = dst;
	*flen = n;
	return dst + n;
}

/* Copies the decoded key into one owned buffer that c->ec / c->rsa point into. */
static int key_copy(const br_skey_decoder_context *dc, struct tls_cert *c)
{
	const br_ec_private_key *ec = br_skey_decoder_get_ec(dc);
	const br_rsa_private_key *rsa = br_skey_decoder_get_rsa(dc);

	if (ec) {
		if (!(c->key_buf = malloc(ec->xlen ? ec->xlen : 1)))
			return -1;
		c->key_buf_len = ec->xlen;
		memcpy(c->key_buf, ec->x, ec->xlen);
		c->ec.curve = ec->curve;
		c->ec.x = c->key_buf;
		c->ec.xlen = ec->xlen;
		c->key_type = BR_KEYTYPE_EC;
		return 0;
	}
	size_t total = rsa->plen + rsa->qlen + rsa->dplen + rsa->dqlen + rsa->iqlen;
	unsigned char *p = malloc(total ? total : 1);
	if (!p)
		return -1;
	c->key_buf = p;
	c->key_buf_len = total;
	c->rsa.n_bitlen = rsa->n_bitlen;
	p = put_int(p, &c->rsa.p, &c->rsa.plen, rsa->p, rsa->plen);
	p = put_int(p, &c->rsa.q, &c->rsa.qlen, rsa->q, rsa->qlen);
	p = put_int(p, &c->rsa.dp, &c->rsa.dplen, rsa->dp, rsa->dplen);
	p = put_int(p, &c->rsa.dq, &c->rsa.dqlen, rsa->dq, rsa->dqlen);
	put_int(p, &c->rsa.iq, &c->rsa.iqlen, rsa->iq, rsa->iqlen);
	c->key_type = BR_KEYTYPE_RSA;
	return 0;
}

/* Checks that an intermediate is one DER SEQUENCE and nothing more; clients judge
 * the rest, and BearSSL's decoder would refuse key types it does not know. */
static bool der_single_sequence(const br_x509_certificate *x)
{
	struct der_r in = { x->data, x->data_len }, v;
	return der_expect(&in, DER_SEQUENCE, &v) == 0 && in.len == 0;
}

int tls_cert_parse_pem(const char *cert_pem, size_t cert_len, const char *cert_label,
		       const char *key_pem, size_t key_len, const char *key_label,
		       struct tls_cert *out, char *err, size_t errlen)
{
	struct chain_acc chain = { .src = cert_label };
	struct key_acc *key = NULL;
	br_x509_decoder_context *xd = NULL;
	struct names names = { 0 };
	struct tls_cert c;
	const char *why;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	if (pem_each(cert_pem, cert_len, cert_label, chain_object, &chain, err, errlen) < 0)
		goto done;
	if (chain.n == 0) {
		fail(err, errlen, "%s: no CERTIFICATE block", cert_label);
		goto done;
	}

	/* The decoder contexts are a few KiB each: keep them off the stack. */
	if (!(key = calloc(1, sizeof(*key))) || !(xd = calloc(1, sizeof(*xd)))) {
		fail(err, errlen, "%s: out of memory", cert_label);
		goto done;
	}
	key->src = key_label;
	br_skey_decoder_init(&key->dc);
	if (pem_each(key_pem, key_len, key_label, key_object, key, err, errlen) < 0)
		goto done;
	if (!key->found) {
		fail(err, errlen,
		     "%s: no private key (expected a PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE "
		     "KEY block)", key_label);
		goto done;
	}
	if (br_skey_decoder_last_error(&key->dc) != 0) {
		fail(err, errlen, "%s: cannot decode the private key (BearSSL error %d)", key_label,
		     br_skey_decoder_last_error(&key->dc));
		goto done;
	}

	br_x509_decoder_init(xd, NULL, NULL);
	br_x509_decoder_push(xd, chain.certs[0].data, chain.certs[0].data_len);
	const br_x509_pkey *pub = br_x509_decoder_get_pkey(xd);
	if (!pub) {
		int e = br_x509_decoder_last_error(xd);
		fail(err, errlen, "%s: cannot decode the first certificate (%s, BearSSL error %d)",
		     cert_label,
		     e == BR_ERR_X509_UNSUPPORTED ? "unsupported key type or size" : "bad DER",
		     e);
		goto done;
	}
	for (size_t i = 1; i < chain.n; i++) {
		if (!der_single_sequence(&chain.certs[i])) {
			fail(err, errlen, "%s: certificate %zu is not DER", cert_label, i + 1);
			goto done;
		}
	}
	if (walk_leaf(chain.certs[0].data, chain.certs[0].data_len, &c, &names, &why) < 0) {
		fail(err, errlen, "%s: first certificate: %s", cert_label, why);
		goto done;
	}
	int kt = br_skey_decoder_key_type(&key->dc);
	if (key_matches(pub, kt, br_skey_decoder_get_ec(&key->dc),
			br_skey_decoder_get_rsa(&key->dc), &why) < 0) {
		fail(err, errlen, "%s: %s %s%s", key_label, why, cert_label,
		     chain.n > 1 && br_x509_decoder_isCA(xd) ? " (the leaf must come first)" : "");
		goto done;
	}
	if (key_copy(&key->dc, &c) < 0) {
		fail(err, errlen, "%s: out of memory", key_label);
		goto done;
	}
	c.issuer_key_type = br_x509_decoder_get_signer_key_type(xd);
	if (c.issuer_key_type != BR_KEYTYPE_EC && c.issuer_key_type != BR_KEYTYPE_RSA)
		c.issuer_key_type = c.key_type;
	if (!(c.chain = malloc(chain.n * sizeof(*c.chain)))) {
		fail(err, errlen, "%s: out of memory", cert_label);
		goto done;
	}
	memcpy(c.chain, chain.certs, chain.n * sizeof(*c.chain));
	c.chain_len = chain.n;
	chain.n = 0;
	c.names = names.v;
	c.n_names = names.n;
	memset(&names, 0, sizeof(names));
	*out = c;
	memset(&c, 0, sizeof(c));
	rc = 0;
done:
	for (size_t i = 0; i < chain.n; i++)
		free(chain.certs[i].data);
	names_free(&names);
	tls_cert_free(&c);
	if (key) {
		wipe(key, sizeof(*key));
		free(key);
	}
	free(xd);
	return rc;
}

int tls_cert_load(const char *name, const char *cert_file, const char *key_file,
		  struct tls_cert *out, char *err, size_t errlen)
{
	struct bytes cert = { 0 }, key = { 0 };
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (read_file(cert_file, &cert, err, errlen) < 0)
		return -1;
	if (read_file(key_file, &key, err, errlen) < 0)
		goto done;
	if (tls_cert_parse_pem((const char *)cert.p, cert.len, cert_file, (const char *)key.p,
			       key.len, key_file, out, err, errlen) < 0)
		goto done;
	if (name && !(out->name = strdup(name))) {
		tls_cert_free(out);
		fail(err, errlen, "%s: out of memory", cert_file);
		goto done;
	}
	rc = 0;
done:
	bytes_free(&cert);
	bytes_free(&key);
	return rc;
}

void tls_cert_free(struct tls_cert *c)
{
	if (c->key_buf) {
		wipe(c->key_buf, c->key_buf_len);
		free(c->key_buf);
	}
	for (size_t i = 0; i < c->chain_len; i++)
		free(c->chain[i].data);
	free(c->chain);
	for (size_t i = 0; i < c->n_names; i++)
		free(c->names[i]);
	free(c->names);
	free(c->name);
	wipe(c, sizeof(*c)); /* ec/rsa hold pointers and lengths of the key: clear those too */
}

/* ---- SNI matching ------------------------------------------------------------ */

enum match { MATCH_NONE, MATCH_WILDCARD, MATCH_EXACT };

/* RFC 6125 §6.4.3: the wildcard stands for the whole leftmost label, and one label
 * only. */
static enum match match_name(const char *name, const char *sni, size_t sni_len)
{
	size_t nl = strlen(name);

	if (nl >= 2 && name[0] == '*' && name[1] == '.') {
		const char *dot = memchr(sni, '.', sni_len);
		if (!dot || dot == sni)
			return MATCH_NONE;
		size_t rest = sni_len - (size_t)(dot - sni); /* ".example.com" */
		return rest == nl - 1 && eq_nocase(dot, name + 1, rest) ? MATCH_WILDCARD
									 : MATCH_NONE;
	}
	return nl == sni_len && eq_nocase(name, sni, nl) ? MATCH_EXACT : MATCH_NONE;
}

static enum match cert_match(const struct tls_cert *c, const char *sni)
{
	enum match best = MATCH_NONE;
	size_t len;

	if (!sni || !(len = strnlen(sni, 256)) || len > 255)
		return MATCH_NONE;
	if (sni[len - 1] == '.' && --len == 0)
		return MATCH_NONE;
	for (size_t i = 0; i < c->n_names && best != MATCH_EXACT; i++) {
		enum match m = match_name(c->names[i], sni, len);
		if (m > best)
			best = m;
	}
	return best;
}

bool tls_cert_matches(const struct tls_cert *c, const char *sni)
{
	return cert_match(c, sni) != MATCH_NONE;
}

const struct tls_cert *tls_cert_pick(struct tls_cert *const *certs, size_t n, const char *sni,
				     unsigned client_key_types)
{
	const struct tls_cert *best = NULL;
	int best_score = 0;

	if (client_key_types == 0)
		client_key_types = 1u << BR_KEYTYPE_EC | 1u << BR_KEYTYPE_RSA;
	for (size_t i = 0; i < n; i++) {
		const struct tls_cert *c = certs[i];
		if (!c)
			continue;
		enum match m = cert_match(c, sni);
		if (m == MATCH_NONE)
			continue;
		bool usable = c->key_type > 0 && c->key_type < 32 &&
			      (client_key_types & (1u << c->key_type)) != 0;
		/* usable first, then exact over wildcard, then EC (smaller, faster) */
		int score = (usable ? 8 : 0) + (int)m * 2 +
			    (usable && c->key_type == BR_KEYTYPE_EC ? 1 : 0);
		if (score > best_score) {
			best = c;
			best_score = score;
		}
	}
	return best;
}

/* ---- the self-signed default certificate ------------------------------------- */

static const unsigned char oid_ecdsa_sha256[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02 };
static const unsigned char oid_ec_public_key[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 };
static const unsigned char oid_prime256v1[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
static const unsigned char oid_basic_constraints[] = { 0x55, 0x1d, 0x13 };
static const unsigned char oid_key_usage[] = { 0x55, 0x1d, 0x0f };
static const unsigned char oid_ext_key_usage[] = { 0x55, 0x1d, 0x25 };
static const unsigned char oid_server_auth[] = { 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01 };

/* AlgorithmIdentifier for ecdsa-with-SHA256: no parameters (RFC 5758 §3.2). */
static void w_sig_alg(struct der_w *w)
{
	size_t s = der_open(w, DER_SEQUENCE);
	der_tlv(w, DER_OID, oid_ecdsa_sha256, sizeof(oid_ecdsa_sha256));
	der_close(w, s);
}

/* Name with a single CN (UTF8String, RFC 5280 §4.1.2.6). */
static void w_name(struct der_w *w, const char *cn)
{
	size_t name = der_open(w, DER_SEQUENCE), rdn = der_open(w, DER_SET);
	size_t atv = der_open(w, DER_SEQUENCE);
	der_tlv(w, DER_OID, oid_common_name, sizeof(oid_common_name));
	der_tlv(w, DER_UTF8STRING, cn, strlen(cn));
	der_close(w, atv);
	der_close(w, rdn);
	der_close(w, name);
}

/* One Extension { extnID, critical, extnValue OCTET STRING { value } }. */
static size_t w_ext_open(struct der_w *w, const unsigned char *oid, size_t oidlen, bool critical,
			 size_t *octets)
{
	static const unsigned char true_[] = { 0xff };
	size_t ext = der_open(w, DER_SEQUENCE);
	der_tlv(w, DER_OID, oid, oidlen);
	if (critical)
		der_tlv(w, DER_BOOLEAN, true_, 1);
	*octets = der_open(w, DER_OCTET_STRING);
	return ext;
}

static void w_ext_close(struct der_w *w, size_t ext, size_t octets)
{
	der_close(w, octets);
	der_close(w, ext);
}

/* TBSCertificate (RFC 5280 §4.1) of the default certificate. */
static void w_tbs(struct der_w *w, const unsigned char serial[16], time_t nb, time_t na,
		  const br_ec_public_key *pk)
{
	static const unsigned char v3[] = { 0x02, 0x01, 0x02 }; /* INTEGER 2 */
	static const unsigned char digital_signature[] = { 0x07, 0x80 }; /* 7 unused bits */
	size_t tbs = der_open(w, DER_SEQUENCE), s, o, e, exts, seq;

	s = der_open(w, DER_CTX0);
	der_raw(w, v3, sizeof(v3));
	der_close(w, s);
	der_tlv(w, DER_INTEGER, serial, 16);
	w_sig_alg(w);
	w_name(w, SELF_CN);
	s = der_open(w, DER_SEQUENCE);
	der_time(w, (long long)nb);
	der_time(w, (long long)na);
	der_close(w, s);
	w_name(w, SELF_CN);

	s = der_open(w, DER_SEQUENCE); /* SubjectPublicKeyInfo, RFC 5480 §2 */
	o = der_open(w, DER_SEQUENCE);
	der_tlv(w, DER_OID, oid_ec_public_key, sizeof(oid_ec_public_key));
	der_tlv(w, DER_OID, oid_prime256v1, sizeof(oid_prime256v1));
	der_close(w, o);
	o = der_open(w, DER_BIT_STRING);
	der_raw(w, "", 1); /* no unused bits */
	der_raw(w, pk->q, pk->qlen);
	der_close(w, o);
	der_close(w, s);

	exts = der_open(w, DER_CTX3);
	seq = der_open(w, DER_SEQUENCE);
	e = w_ext_open(w, oid_subject_alt_name, sizeof(oid_subject_alt_name), false, &o);
	s = der_open(w, DER_SEQUENCE);
	der_tlv(w, DER_DNSNAME, SELF_SAN, strlen(SELF_SAN));
	der_close(w, s);
	w_ext_close(w, e, o);
	e = w_ext_open(w, oid_basic_constraints, sizeof(oid_basic_constraints), true, &o);
	der_tlv(w, DER_SEQUENCE, NULL, 0); /* cA FALSE is the DEFAULT, so omitted */
	w_ext_close(w, e, o);
	e = w_ext_open(w, oid_key_usage, sizeof(oid_key_usage), true, &o);
	der_tlv(w, DER_BIT_STRING, digital_signature, sizeof(digital_signature));
	w_ext_close(w, e, o);
	e = w_ext_open(w, oid_ext_key_usage, sizeof(oid_ext_key_usage), false, &o);
	s = der_open(w, DER_SEQUENCE);
	der_tlv(w, DER_OID, oid_server_auth, sizeof(oid_server_auth));
	der_close(w, s);
	w_ext_close(w, e, o);
	der_close(w, seq);
	der_close(w, exts);
	der_close(w, tbs);
}

/* Writes dir/name atomically: a temp file in the same directory, fsync, rename over
 * name, fsync of the directory so the rename itself survives a crash. */
static int write_atomic(int dirfd, const char *dir, const char *name, const char *data,
			size_t len, mode_t mode, char *err, size_t errlen)
{
	unsigned char r[8];
	char tmp[64];
	int fd, e;

	if (rand_bytes(r, sizeof(r)) < 0)
		return fail(err, errlen, "getrandom: %s", strerror(errno));
	snprintf(tmp, sizeof(tmp), ".%s.%02x%02x%02x%02x%02x%02x%02x%02x.tmp", name, r[0], r[1],
		 r[2], r[3], r[4], r[5], r[6], r[7]);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return fail(err, errlen, "%s/%s: %s", dir, tmp, strerror(errno));
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			errno = EIO;
		if (n <= 0)
			goto fail_fd;
		off += (size_t)n;
	}
	if (fsync(fd) < 0)
		goto fail_fd;
	if (close(fd) < 0) {
		fd = -1;
		goto fail_fd;
	}
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		e = errno;
		unlinkat(dirfd, tmp, 0);
		return fail(err, errlen, "%s/%s: rename: %s", dir, name, strerror(e));
	}
	if (fsync(dirfd) < 0)
		return fail(err, errlen, "%s: fsync: %s", dir, strerror(errno));
	return 0;
fail_fd:
	e = errno;
	if (fd >= 0)
		close(fd);
	unlinkat(dirfd, tmp, 0);
	return fail(err, errlen, "%s/%s: write: %s", dir, tmp, strerror(e));
}

/* Creates a P-256 key and a self-signed certificate for it and writes both. */
static int self_signed_generate(int dirfd, const char *dir, char *err, size_t errlen)
{
	const br_ec_impl *ec = ec_impl();
	br_hmac_drbg_context rng;
	unsigned char skbuf[BR_EC_KBUF_PRIV_MAX_SIZE], pubbuf[BR_EC_KBUF_PUB_MAX_SIZE];
	unsigned char serial[16], tbsbuf[1024], certbuf[1200], hash[32], sig[80], keyder[256];
	br_ec_private_key sk;
	br_ec_public_key pk;
	struct der_w tbs = { tbsbuf, sizeof(tbsbuf), 0, false };
	struct der_w cert = { certbuf, sizeof(certbuf), 0, false };
	char *key_pem = NULL, *cert_pem = NULL;
	size_t key_pem_len = 0, cert_pem_len = 0, keylen, siglen;
	br_sha256_context sha;
	time_t now = time(NULL);
	int64_t y, days = (int64_t)now / 86400;
	unsigned m, d;
	int rc = -1;

	if (rand_seed_hmac_drbg(&rng) < 0 || rand_bytes(serial, sizeof(serial)) < 0) {
		fail(err, errlen, "getrandom: %s", strerror(errno));
		goto done;
	}
	if (br_ec_keygen(&rng.vtable, ec, &sk, skbuf, BR_EC_secp256r1) == 0 ||
	    br_ec_compute_pub(ec, &pk, pubbuf, &sk) == 0) {
		fail(err, errlen, "P-256 key generation failed");
		goto done;
	}
	/* A positive INTEGER of 16 bytes whose first byte is not zero: minimal DER and
	 * within RFC 5280's 20 octets. */
	serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40);

	timefmt_civil_from_days(days, &y, &m, &d);
	if (m == 2 && d == 29)
		d = 28; /* ten years on there may be no February 29th */
	time_t not_after = (time_t)((timefmt_days_from_civil(y + SELF_YEARS, m, d)) * 86400 +
				    (int64_t)now % 86400);
	w_tbs(&tbs, serial, now - 86400, not_after, &pk);

	br_sha256_init(&sha);
	br_sha256_update(&sha, tbsbuf, tbs.len);
	br_sha256_out(&sha, hash);
	siglen = br_ecdsa_i31_sign_asn1(ec, &br_sha256_vtable, hash, &sk, sig);
	if (tbs.overflow || siglen == 0) {
		fail(err, errlen, "self-signed certificate: signing failed");
		goto done;
	}
	size_t s = der_open(&cert, DER_SEQUENCE);
	der_raw(&cert, tbsbuf, tbs.len);
	w_sig_alg(&cert);
	size_t b = der_open(&cert, DER_BIT_STRING);
	der_raw(&cert, "", 1);
	der_raw(&cert, sig, siglen);
	der_close(&cert, b);
	der_close(&cert, s);
	if (cert.overflow) {
		fail(err, errlen, "self-signed certificate: encoding failed");
		goto done;
	}

	keylen = br_encode_ec_raw_der(NULL, &sk, &pk);
	if (keylen == 0 || keylen > sizeof(keyder) || br_encode_ec_raw_der(keyder, &sk, &pk) != keylen) {
		fail(err, errlen, "self-signed certificate: key encoding failed");
		goto done;
	}
	key_pem = der_to_pem(keyder, keylen, BR_ENCODE_PEM_EC_RAW, &key_pem_len);
	cert_pem = der_to_pem(certbuf, cert.len, "CERTIFICATE", &cert_pem_len);
	if (!key_pem || !cert_pem) {
		fail(err, errlen, "out of memory");
		goto done;
	}
	/* Key first: a certificate on disk means its key is there too. */
	if (write_atomic(dirfd, dir, SELF_KEY, key_pem, key_pem_len, 0600, err, errlen) < 0 ||
	    write_atomic(dirfd, dir, SELF_CRT, cert_pem, cert_pem_len, 0644, err, errlen) < 0)
		goto done;
	rc = 0;
done:
	if (key_pem) {
		wipe(key_pem, key_pem_len);
		free(key_pem);
	}
	free(cert_pem);
	wipe(&rng, sizeof(rng));
	wipe(skbuf, sizeof(skbuf));
	wipe(keyder, sizeof(keyder));
	wipe(&sk, sizeof(sk));
	return rc;
}

/* mkdir -p with mode 0700 for what it creates; returns an O_DIRECTORY fd. */
static int open_state_dir(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	size_t len = strnlen(dir, sizeof(path));
	int fd;

	if (len == 0 || len >= sizeof(path))
		return fail(err, errlen, "state_dir: bad path");
	memcpy(path, dir, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		char c = path[i];
		path[i] = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return fail(err, errlen, "%s: mkdir: %s", path, strerror(errno));
		path[i] = c;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, "%s: %s", dir, strerror(errno));
	return fd;
}

int tls_cert_self_signed(const char *state_dir, struct tls_cert *out, char *err, size_t errlen)
{
	char crt[PATH_MAX], key[PATH_MAX];
	struct stat st;
	int dirfd, rc = -1;

	memset(out, 0, sizeof(*out));
	if ((size_t)snprintf(crt, sizeof(crt), "%s/%s", state_dir, SELF_CRT) >= sizeof(crt) ||
	    (size_t)snprintf(key, sizeof(key), "%s/%s", state_dir, SELF_KEY) >= sizeof(key))
		return fail(err, errlen, "state_dir: path too long");
	if ((dirfd = open_state_dir(state_dir, err, errlen)) < 0)
		return -1;
	/* Workers starting together must not each write a key: the second one to take
	 * the lock finds the first one's files. */
	while (flock(dirfd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			fail(err, errlen, "%s: flock: %s", state_dir, strerror(errno));
			goto done;
		}
	}
	bool have_crt = fstatat(dirfd, SELF_CRT, &st, 0) == 0;
	bool have_key = fstatat(dirfd, SELF_KEY, &st, 0) == 0;
	if (have_crt && have_key) {
		if (tls_cert_load("default", crt, key, out, err, errlen) < 0) {
			size_t n = err ? strlen(err) : 0;
			if (err && n < errlen)
				snprintf(err + n, errlen - n,
					 " (delete both default.crt and default.key to generate a "
					 "new pair)");
			goto done;
		}
		if (out->not_after > time(NULL)) {
			rc = 0;
			goto done;
		}
		tls_cert_free(out); /* expired: make a new one */
	}
	if (self_signed_generate(dirfd, state_dir, err, errlen) < 0)
		goto done;
	rc = tls_cert_load("default", crt, key, out, err, errlen);
done:
	close(dirfd); /* releases the lock */
	return rc;
}
