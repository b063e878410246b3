/* tls_ca.c - trust anchors from a PEM file ([tls] client_ca): each CERTIFICATE
 * becomes a BearSSL trust anchor (its subject DN and public key), used to verify
 * client certificates (mTLS). */
#include "tls_ca.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer.h"

#define CA_FILE_MAX (1024 * 1024)
#define CA_MAX 64

struct growbuf {
	unsigned char *p;
	size_t len, cap;
	bool failed;
};

static void grow_put(void *ctx, const void *data, size_t len)
{
	struct growbuf *g = ctx;
	if (g->failed)
		return;
	if (g->cap - g->len < len) {
		size_t cap = (g->cap ? g->cap * 2 : 256) + len;
		unsigned char *p = realloc(g->p, cap);
		if (!p) {
			g->failed = true;
			return;
		}
		g->p = p;
		g->cap = cap;
	}
	memcpy(g->p + g->len, data, len);
	g->len += len;
}

static unsigned char *dup_bytes(const unsigned char *p, size_t n)
{
	unsigned char *d = malloc(n ? n : 1);
	if (d)
		memcpy(d, p, n);
	return d;
}

/* Turns one DER certificate into a trust anchor. */
static int add_anchor(struct tls_ca *ca, const unsigned char *der, size_t len, char *err, size_t errlen)
{
	if (ca->n == CA_MAX) {
		snprintf(err, errlen, "more than %d certificates", CA_MAX);
		return -1;
	}
	struct growbuf dn = { 0 };
	br_x509_decoder_context xd;
	br_x509_decoder_init(&xd, grow_put, &dn);
	br_x509_decoder_push(&xd, der, len);
	const br_x509_pkey *pk = br_x509_decoder_get_pkey(&xd);
	if (!pk || dn.failed) {
		free(dn.p);
		snprintf(err, errlen, "a certificate does not decode (BearSSL error %d)", br_x509_decoder_last_error(&xd));
		return -1;
	}
	/* The key's bytes live in the decoder, which goes out of scope: copy them. A
	 * NULL copy would have BearSSL read through NULL at the first client
	 * certificate, so it fails the load here. */
	bool rsa = pk->key_type == BR_KEYTYPE_RSA;
	unsigned char *k1 = rsa ? dup_bytes(pk->key.rsa.n, pk->key.rsa.nlen)
				: dup_bytes(pk->key.ec.q, pk->key.ec.qlen);
	unsigned char *k2 = rsa ? dup_bytes(pk->key.rsa.e, pk->key.rsa.elen) : NULL;
	if (!k1 || (rsa && !k2)) {
		free(k1);
		free(k2);
		free(dn.p);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	br_x509_trust_anchor *ta = &ca->anchors[ca->n];
	/* ca->anchors (owner: ca) holds k1, k2 and dn.p from here until tls_ca_free.
	 * GCC 12's analyzer reports each copy as leaked at the next store into the
	 * anchor, a false positive (the same with a whole-struct assignment). */
	ANALYZER_IGNORE("-Wanalyzer-malloc-leak")
	memset(ta, 0, sizeof(*ta));
	ta->dn.data = dn.p;
	ta->dn.len = dn.len;
	ta->flags = br_x509_decoder_isCA(&xd) ? BR_X509_TA_CA : 0;
	ta->pkey.key_type = pk->key_type;
	if (rsa) {
		ta->pkey.key.rsa.n = k1;
		ta->pkey.key.rsa.nlen = pk->key.rsa.nlen;
		ta->pkey.key.rsa.e = k2;
		ta->pkey.key.rsa.elen = pk->key.rsa.elen;
	} else {
		ta->pkey.key.ec.curve = pk->key.ec.curve;
		ta->pkey.key.ec.q = k1;
		ta->pkey.key.ec.qlen = pk->key.ec.qlen;
	}
	ANALYZER_END
	ca->n++;
	return 0;
}

int tls_ca_load(const char *path, struct tls_ca *ca, char *err, size_t errlen)
{
	memset(ca, 0, sizeof(*ca));
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	char *text = malloc(CA_FILE_MAX);
	size_t len = text ? fread(text, 1, CA_FILE_MAX, fp) : 0;
	bool too_big = text && len == CA_FILE_MAX && fgetc(fp) != EOF;
	fclose(fp);
	if (!text || too_big) {
		free(text);
		snprintf(err, errlen, "%s: %s", path, text ? "larger than 1 MiB" : "out of memory");
		return -1;
	}
	ca->anchors = calloc(CA_MAX, sizeof(*ca->anchors));
	struct growbuf obj = { 0 };
	br_pem_decoder_context pd;
	br_pem_decoder_init(&pd);
	bool in_cert = false;
	int rc = ca->anchors ? 0 : -1;
	for (size_t off = 0; rc == 0 && off < len;) {
		size_t used = br_pem_decoder_push(&pd, text + off, len - off);
		off += used;
		switch (br_pem_decoder_event(&pd)) {
		case BR_PEM_BEGIN_OBJ:
			in_cert = strcmp(br_pem_decoder_name(&pd), "CERTIFICATE") == 0;
			obj.len = 0;
			br_pem_decoder_setdest(&pd, in_cert ? grow_put : NULL, in_cert ? &obj : NULL);
			break;
		case BR_PEM_END_OBJ:
			if (in_cert && (obj.failed || add_anchor(ca, obj.p, obj.len, err, errlen) < 0))
				rc = -1;
			in_cert = false;
			break;
		case BR_PEM_ERROR:
			snprintf(err, errlen, "%s: bad PEM", path);
			rc = -1;
			break;
		default:
			if (used == 0)
				off = len;
			break;
		}
	}
	free(obj.p);
	free(text);
	if (rc == 0 && ca->n == 0) {
		snprintf(err, errlen, "%s: no CERTIFICATE block", path);
		rc = -1;
	}
	if (rc < 0)
		tls_ca_free(ca);
	return rc;
}

void tls_ca_free(struct tls_ca *ca)
{
	for (size_t i = 0; ca->anchors && i < ca->n; i++) {
		br_x509_trust_anchor *ta = &ca->anchors[i];
		free(ta->dn.data);
		if (ta->pkey.key_type == BR_KEYTYPE_RSA) {
			free(ta->pkey.key.rsa.n);
			free(ta->pkey.key.rsa.e);
		} else {
			free(ta->pkey.key.ec.q);
		}
	}
	free(ca->anchors);
	memset(ca, 0, sizeof(*ca));
}
