/* der.c - a bounds-checked DER writer and PEM framing over BearSSL's PEM codec. */
#include "der.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bearssl.h>

#include "timefmt.h"

static void wipe(void *p, size_t len)
{
	volatile unsigned char *v = p;
	while (len--)
		*v++ = 0;
}

void der_w_init(struct der_w *w, unsigned char *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->overflow = false;
}

void der_raw(struct der_w *w, const void *p, size_t n)
{
	if (n == 0 || w->overflow)
		return;
	if (n > w->cap - w->len) {
		w->overflow = true;
		return;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

size_t der_open(struct der_w *w, unsigned char tag)
{
	unsigned char hdr[2] = { tag, 0 };
	der_raw(w, hdr, 2);
	return w->len;
}

void der_close(struct der_w *w, size_t start)
{
	if (w->overflow)
		return;
	size_t n = w->len - start;
	size_t extra = n < 0x80 ? 0 : n < 0x100 ? 1 : n < 0x10000 ? 2 : 3;
	if (n >= 0x1000000 || extra > w->cap - w->len) {
		w->overflow = true;
		return;
	}
	memmove(w->buf + start + extra, w->buf + start, n);
	if (extra == 0) {
		w->buf[start - 1] = (unsigned char)n;
	} else {
		w->buf[start - 1] = (unsigned char)(0x80 | extra);
		for (size_t i = 0; i < extra; i++)
			w->buf[start + i] = (unsigned char)(n >> (8 * (extra - 1 - i)));
	}
	w->len += extra;
}

void der_tlv(struct der_w *w, unsigned char tag, const void *p, size_t n)
{
	size_t s = der_open(w, tag);
	der_raw(w, p, n);
	der_close(w, s);
}

void der_uint(struct der_w *w, const unsigned char *p, size_t n)
{
	while (n > 1 && p[0] == 0) {
		p++;
		n--;
	}
	size_t s = der_open(w, DER_INTEGER);
	if (n == 0 || (p[0] & 0x80))
		der_raw(w, "", 1);
	der_raw(w, p, n);
	der_close(w, s);
}

void der_small_uint(struct der_w *w, unsigned long v)
{
	unsigned char b[sizeof(v)];
	for (size_t i = 0; i < sizeof(v); i++)
		b[i] = (unsigned char)(v >> (8 * (sizeof(v) - 1 - i)));
	der_uint(w, b, sizeof(b));
}

void der_time(struct der_w *w, long long t)
{
	struct timefmt_tm tm;
	char s[32];
	int n;

	timefmt_split(t, &tm);
	bool utc = tm.year >= 1950 && tm.year < 2050;
	if (tm.year < 0 || tm.year > 9999) {
		w->overflow = true;
		return;
	}
	if (utc)
		n = snprintf(s, sizeof(s), "%02u%02u%02u%02u%02u%02uZ", (unsigned)(tm.year % 100),
			     tm.mon, tm.mday, tm.hour, tm.min, tm.sec);
	else
		n = snprintf(s, sizeof(s), "%04u%02u%02u%02u%02u%02uZ", (unsigned)tm.year, tm.mon,
			     tm.mday, tm.hour, tm.min, tm.sec);
	der_tlv(w, utc ? DER_UTCTIME : DER_GENERALIZEDTIME, s, (size_t)n);
}

char *der_to_pem(const void *der, size_t len, const char *banner, size_t *out_len)
{
	size_t n = br_pem_encode(NULL, der, len, banner, BR_PEM_LINE64);
	char *s = malloc(n + 1);
	if (s)
		*out_len = br_pem_encode(s, der, len, banner, BR_PEM_LINE64);
	return s;
}

/* ---- reading ------------------------------------------------------------------------- */

int der_get(struct der_r *in, unsigned *tag, struct der_r *val)
{
	size_t len, hdr = 2;

	if (in->len < 2 || (in->p[0] & 0x1f) == 0x1f)
		return -1;
	*tag = in->p[0];
	len = in->p[1];
	if (len & 0x80) {
		size_t k = len & 0x7f;
		if (k == 0 || k > 4 || k > in->len - 2)
			return -1;
		len = 0;
		for (size_t i = 0; i < k; i++)
			len = (len << 8) | in->p[2 + i];
		hdr += k;
	}
	if (len > in->len - hdr)
		return -1;
	val->p = in->p + hdr;
	val->len = len;
	in->p += hdr + len;
	in->len -= hdr + len;
	return 0;
}

int der_cert_issuer(const unsigned char *cert, size_t len, struct der_r *issuer)
{
	struct der_r in = { cert, len }, c, tbs, v;
	unsigned tag;

	if (der_get(&in, &tag, &c) < 0 || tag != DER_SEQUENCE || der_get(&c, &tag, &tbs) < 0 ||
	    tag != DER_SEQUENCE)
		return -1;
	if (tbs.len > 0 && tbs.p[0] == DER_CTX0 && der_get(&tbs, &tag, &v) < 0)
		return -1; /* version */
	if (der_get(&tbs, &tag, &v) < 0 || der_get(&tbs, &tag, &v) < 0) /* serial, signature */
		return -1;
	if (der_get(&tbs, &tag, issuer) < 0 || tag != DER_SEQUENCE)
		return -1;
	return 0;
}

int der_name_cn(struct der_r name, char *out, size_t cap)
{
	static const unsigned char cn_oid[] = { 0x55, 0x04, 0x03 };
	struct der_r rdn, atv, oid, val, found = { NULL, 0 };
	unsigned tag;

	while (name.len > 0) {
		if (der_get(&name, &tag, &rdn) < 0 || tag != DER_SET)
			return -1;
		while (rdn.len > 0) {
			if (der_get(&rdn, &tag, &atv) < 0 || tag != DER_SEQUENCE ||
			    der_get(&atv, &tag, &oid) < 0 || tag != DER_OID ||
			    der_get(&atv, &tag, &val) < 0)
				return -1;
			if (oid.len == sizeof(cn_oid) && memcmp(oid.p, cn_oid, sizeof(cn_oid)) == 0)
				found = val;
		}
	}
	if (!found.p || cap == 0)
		return -1;
	size_t n = 0;
	for (size_t i = 0; i < found.len && n + 1 < cap; i++)
		out[n++] = found.p[i] >= 0x20 && found.p[i] < 0x7f ? (char)found.p[i] : '?';
	out[n] = '\0';
	return 0;
}

/* ---- PEM decoding ------------------------------------------------------------ */

struct obj {
	unsigned char *p; /* owner: this struct; wiped (it may be a key) */
	size_t len;
	bool bad;
};

static void obj_append(void *ctx, const void *src, size_t n)
{
	struct obj *o = ctx;

	if (o->bad)
		return;
	if (n > DER_PEM_MAX_OBJECT - o->len) {
		o->bad = true;
		return;
	}
	memcpy(o->p + o->len, src, n);
	o->len += n;
}

int der_pem_each(const char *text, size_t len, der_pem_fn fn, void *ctx)
{
	br_pem_decoder_context pc;
	struct obj o = { 0 };
	char label[sizeof(pc.name)];
	size_t off = 0;
	bool inside = false, flushed = false;
	int count = 0, rc = 0;

	if (!(o.p = malloc(DER_PEM_MAX_OBJECT)))
		return -1;
	br_pem_decoder_init(&pc);
	for (;;) {
		size_t n;
		/* BearSSL sees an END line only with its newline: push one more at the end. */
		if (off < len) {
			n = br_pem_decoder_push(&pc, text + off, len - off);
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
			while (nl > 0 && (name[nl - 1] == '-' || (unsigned char)name[nl - 1] <= ' '))
				nl--; /* CRLF files keep the dashes in BearSSL 0.6 */
			memcpy(label, name, nl);
			label[nl] = '\0';
			o.len = 0;
			o.bad = false;
			br_pem_decoder_setdest(&pc, obj_append, &o);
			inside = true;
		} else if (ev == BR_PEM_END_OBJ) {
			br_pem_decoder_setdest(&pc, NULL, NULL);
			inside = false;
			if (o.bad || fn(ctx, label, o.p, o.len) < 0) {
				rc = -1;
				break;
			}
			count++;
		} else if (ev == BR_PEM_ERROR || n == 0) {
			rc = -1;
			break;
		}
	}
	if (inside)
		rc = -1;
	wipe(o.p, DER_PEM_MAX_OBJECT);
	free(o.p);
	return rc < 0 ? -1 : count;
}
