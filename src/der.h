/* der.h - writing DER (X.509 structures the ACME client makes: CSRs, the TLS-ALPN-01
 * challenge certificate) and PEM framing of DER objects, in both directions. */
#ifndef EDGEPROXY_DER_H
#define EDGEPROXY_DER_H

#include <stdbool.h>
#include <stddef.h>

enum {
	DER_BOOLEAN = 0x01,
	DER_INTEGER = 0x02,
	DER_BIT_STRING = 0x03,
	DER_OCTET_STRING = 0x04,
	DER_NULL = 0x05,
	DER_OID = 0x06,
	DER_UTF8STRING = 0x0c,
	DER_PRINTABLESTRING = 0x13,
	DER_T61STRING = 0x14,
	DER_IA5STRING = 0x16,
	DER_UTCTIME = 0x17,
	DER_GENERALIZEDTIME = 0x18,
	DER_SEQUENCE = 0x30,
	DER_SET = 0x31,
	DER_CTX0 = 0xa0, /* [0] constructed */
	DER_CTX3 = 0xa3, /* [3] constructed */
	DER_DNSNAME = 0x82, /* GeneralName dNSName: [2] IMPLICIT IA5String */
};

/* A writer into a fixed buffer. A constructed value is opened with a one-byte length
 * and closed once its contents are written, moving them when the length needs more
 * bytes. Any write that does not fit sets overflow and later writes do nothing, so
 * callers check once at the end. */
struct der_w {
	unsigned char *buf; /* not owned */
	size_t cap, len;
	bool overflow;
};

void der_w_init(struct der_w *w, unsigned char *buf, size_t cap);
void der_raw(struct der_w *w, const void *p, size_t n);
/* Returns where the contents start, for der_close. */
size_t der_open(struct der_w *w, unsigned char tag);
void der_close(struct der_w *w, size_t start);
void der_tlv(struct der_w *w, unsigned char tag, const void *p, size_t n);
/* An INTEGER from an unsigned big-endian number: leading zeros dropped, a 0x00
 * added when the top bit is set (X.690 §8.3.2). */
void der_uint(struct der_w *w, const unsigned char *p, size_t n);
void der_small_uint(struct der_w *w, unsigned long v);
/* A UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5). */
void der_time(struct der_w *w, long long t);

/* PEM text of der under "-----BEGIN banner-----", 64-column lines, NUL-terminated
 * (owner: the caller; wipe it when it holds a key). NULL when out of memory. */
char *der_to_pem(const void *der, size_t len, const char *banner, size_t *out_len);

/* ---- reading ---------------------------------------------------------------------- */

struct der_r {
	const unsigned char *p;
	size_t len;
};

/* Takes one TLV off the front of in (single-byte tags, definite lengths of up to
 * four bytes, all inside in). Returns 0 or -1. */
int der_get(struct der_r *in, unsigned *tag, struct der_r *val);
/* The issuer Name of a DER certificate (RFC 5280 §4.1). */
int der_cert_issuer(const unsigned char *cert, size_t len, struct der_r *issuer);
/* The last commonName of a Name as printable text ('?' for other bytes); -1 when
 * there is none or the Name is malformed. */
int der_name_cn(struct der_r name, char *out, size_t cap);

#define DER_PEM_MAX_OBJECT (64 * 1024)

/* Called for each PEM object with its label (such as "CERTIFICATE") and its bytes.
 * Return 0 to go on, -1 to stop (der_pem_each then returns -1 too). */
typedef int (*der_pem_fn)(void *ctx, const char *label, const unsigned char *der, size_t len);

/* Decodes every PEM object of text[0..len), text between them ignored (RFC 7468
 * §2). Returns the number of objects, or -1 on bad encoding, an object larger than
 * DER_PEM_MAX_OBJECT, out of memory, or fn's -1. */
int der_pem_each(const char *text, size_t len, der_pem_fn fn, void *ctx);

#endif
