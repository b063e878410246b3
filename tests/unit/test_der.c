/* test_der.c - the DER writer (minimal INTEGERs, long-form lengths, times on both
 * sides of 2050, overflow), the TLV reader and Name walk used for log lines, and PEM
 * framing both ways. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "der.h"
#include "test.h"

static bool bytes_are(const struct der_w *w, const char *hex)
{
	char got[1024];
	size_t n = 0;
	for (size_t i = 0; i < w->len && n + 3 < sizeof(got); i++)
		n += (size_t)snprintf(got + n, sizeof(got) - n, "%02x", w->buf[i]);
	got[n] = '\0';
	if (strcmp(got, hex) != 0)
		fprintf(stderr, "  got %s\n want %s\n", got, hex);
	return strcmp(got, hex) == 0;
}

static void test_integers(void)
{
	unsigned char buf[64];
	struct der_w w;
	static const unsigned char zero[] = { 0, 0 }, high[] = { 0x80 }, lead[] = { 0, 0, 0x7f, 1 };
	der_w_init(&w, buf, sizeof(buf));
	der_uint(&w, zero, 2);
	der_uint(&w, high, 1);
	der_uint(&w, lead, 4);
	der_small_uint(&w, 0);
	der_small_uint(&w, 65537);
	CHECK(!w.overflow && bytes_are(&w, "020100" "02020080" "02027f01" "020100" "0203010001"));
}

static void test_lengths_and_overflow(void)
{
	unsigned char buf[400], data[300];
	struct der_w w;
	memset(data, 0xab, sizeof(data));
	der_w_init(&w, buf, sizeof(buf));
	size_t s = der_open(&w, DER_SEQUENCE);
	der_tlv(&w, DER_OCTET_STRING, data, 200); /* 81 c8 */
	der_close(&w, s);
	CHECK(!w.overflow && w.len == 3 + 3 + 200);
	CHECK(buf[0] == 0x30 && buf[1] == 0x81 && buf[2] == 0xcb && buf[3] == 0x04 && buf[4] == 0x81 &&
	      buf[5] == 0xc8);
	der_w_init(&w, buf, sizeof(buf));
	der_tlv(&w, DER_OCTET_STRING, data, 300); /* 82 01 2c */
	CHECK(!w.overflow && w.len == 304 && buf[1] == 0x82 && buf[2] == 0x01 && buf[3] == 0x2c);
	/* does not fit: flagged, nothing written past the end */
	der_w_init(&w, buf, 100);
	der_tlv(&w, DER_OCTET_STRING, data, 120);
	der_tlv(&w, DER_NULL, NULL, 0);
	CHECK(w.overflow && w.len <= 100);
	/* the length bytes themselves do not fit */
	der_w_init(&w, buf, 131);
	der_tlv(&w, DER_OCTET_STRING, data, 129);
	CHECK(w.overflow);
}

static void test_times(void)
{
	unsigned char buf[64];
	struct der_w w;
	der_w_init(&w, buf, sizeof(buf));
	der_time(&w, 0);            /* 1970-01-01 UTCTime */
	der_time(&w, 2524608000LL); /* 2050-01-01 GeneralizedTime */
	der_time(&w, 951782400LL);  /* 2000-02-29 */
	CHECK(!w.overflow);
	CHECK(memcmp(buf, "\x17\x0d" "700101000000Z", 15) == 0);
	CHECK(memcmp(buf + 15, "\x18\x0f" "20500101000000Z", 17) == 0);
	CHECK(memcmp(buf + 32, "\x17\x0d" "000229000000Z", 15) == 0);
}

static void test_reader_and_names(void)
{
	/* SEQUENCE { SET { SEQUENCE { OID CN, UTF8 "first" } } SET { SEQUENCE { OID CN, PrintableString "last\x01" } } } */
	static const unsigned char name[] = {
		0x30, 0x20, 0x31, 0x0e, 0x30, 0x0c, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x05, 'f', 'i',
		'r', 's', 't', 0x31, 0x0e, 0x30, 0x0c, 0x06, 0x03, 0x55, 0x04, 0x03, 0x13, 0x05, 'l',
		'a', 's', 't', 0x01,
	};
	struct der_r in = { name, sizeof(name) }, seq;
	unsigned tag;
	char cn[16];
	if (der_get(&in, &tag, &seq) < 0) {
		CHECK(!"the Name parses");
		return;
	}
	CHECK(tag == DER_SEQUENCE && in.len == 0);
	CHECK(der_name_cn(seq, cn, sizeof(cn)) == 0 && strcmp(cn, "last?") == 0);
	CHECK(der_name_cn(seq, cn, 3) == 0 && strcmp(cn, "la") == 0);
	/* truncated, indefinite, overlong and multi-byte tags are refused */
	static const unsigned char trunc[] = { 0x30, 0x05, 0x01 }, indef[] = { 0x30, 0x80, 0, 0 },
				   big[] = { 0x04, 0x85, 1, 0, 0, 0, 0 }, hightag[] = { 0x1f, 0x01, 0 };
	struct der_r t1 = { trunc, 3 }, t2 = { indef, 4 }, t3 = { big, 7 }, t4 = { hightag, 3 }, v;
	CHECK(der_get(&t1, &tag, &v) < 0 && der_get(&t2, &tag, &v) < 0);
	CHECK(der_get(&t3, &tag, &v) < 0 && der_get(&t4, &tag, &v) < 0);
	struct der_r empty = { name, 0 };
	CHECK(der_name_cn(empty, cn, sizeof(cn)) == -1);
	CHECK(der_cert_issuer(name, sizeof(name), &v) == -1);
}

static int count_objects(void *ctx, const char *label, const unsigned char *der, size_t len)
{
	int *n = ctx;
	(*n)++;
	if (*n == 1 && (strcmp(label, "CERTIFICATE") != 0 || len != 3 || memcmp(der, "abc", 3) != 0))
		return -1;
	return strcmp(label, "STOP") == 0 ? -1 : 0;
}

static void test_pem(void)
{
	size_t len = 0;
	char *pem = der_to_pem("abc", 3, "CERTIFICATE", &len);
	CHECK(pem && strcmp(pem, "-----BEGIN CERTIFICATE-----\nYWJj\n-----END CERTIFICATE-----\n") == 0);
	CHECK(len == strlen(pem));
	char text[512];
	/* explanatory text around objects, CRLF endings, no final newline */
	snprintf(text, sizeof(text), "intro\r\n%s\r\nbetween\n-----BEGIN X-----\r\nYWJj\r\n-----END X-----", pem);
	int n = 0;
	CHECK(der_pem_each(text, strlen(text), count_objects, &n) == 2 && n == 2);
	n = 0;
	CHECK(der_pem_each("-----BEGIN STOP-----\nYWJj\n-----END STOP-----\n", 44, count_objects, &n) == -1);
	n = 0;
	CHECK(der_pem_each("-----BEGIN X-----\nYWJj\n", 23, count_objects, &n) == -1); /* no END */
	n = 0;
	CHECK(der_pem_each("no objects at all", 17, count_objects, &n) == 0 && n == 0);
	free(pem);
}

TEST_MAIN("der", TEST(test_integers), TEST(test_lengths_and_overflow), TEST(test_times),
	  TEST(test_reader_and_names), TEST(test_pem))
