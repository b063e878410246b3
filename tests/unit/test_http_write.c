/* Unit tests for the response-head helpers: bounded appends (empty and NULL
 * slices included), decimal numbers, reason phrases and the Date value. */
#include <string.h>

#include "http_write.h"
#include "test.h"

static void test_put_is_bounded(void)
{
	char buf[8];
	struct http_out o = { buf, 0, sizeof(buf) };
	CHECK(http_out_str(&o, "abcde") && o.len == 5);
	CHECK(!http_out_str(&o, "fghi") && o.len == 5); /* does not fit: left as it was */
	CHECK(http_out_str(&o, "fgh") && o.len == 8 && memcmp(buf, "abcdefgh", 8) == 0);
	CHECK(!http_out_put(&o, "x", 1) && o.len == 8);
	CHECK(http_out_put(&o, "", 0) && o.len == 8); /* nothing still fits in a full buffer */
}

static void test_empty_slices(void)
{
	/* A header absent from the request is an empty slice with a NULL pointer
	 * (the hello service echoes the Host of an HTTP/1.0 request that has none):
	 * appending it is a no-op, not a memcpy from NULL (UBSan aborts here). */
	char buf[4];
	struct http_out o = { buf, 0, sizeof(buf) };
	CHECK(http_out_slice(&o, slice_make(NULL, 0)) && o.len == 0);
	CHECK(http_out_put(&o, NULL, 0) && o.len == 0);
	CHECK(http_out_str(&o, "ab") && http_out_slice(&o, slice_make(NULL, 0)) && o.len == 2);
	struct http_out none = { NULL, 0, 0 };
	CHECK(http_out_slice(&none, slice_make(NULL, 0)) && none.len == 0);
	CHECK(!http_out_str(&none, "a"));
}

static void test_uint(void)
{
	char buf[32];
	struct http_out o = { buf, 0, sizeof(buf) };
	CHECK(http_out_uint(&o, 0) && o.len == 1 && buf[0] == '0');
	o.len = 0;
	CHECK(http_out_uint(&o, 18446744073709551615ULL) && o.len == 20 && memcmp(buf, "18446744073709551615", 20) == 0);
	struct http_out small = { buf, 0, 2 };
	CHECK(!http_out_uint(&small, 123) && small.len == 0);
	CHECK(http_out_uint(&small, 12) && small.len == 2);
}

static void test_reason_and_date(void)
{
	CHECK(strcmp(http_reason(200), "OK") == 0);
	CHECK(strcmp(http_reason(431), "Request Header Fields Too Large") == 0);
	CHECK(strcmp(http_reason(299), "Unknown") == 0);
	struct slice d = http_date_now();
	/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 §5.6.7) */
	CHECKF(d.len == 29 && d.p[3] == ',' && memcmp(d.p + 25, " GMT", 4) == 0, "'%.*s'", (int)d.len, d.p);
}

TEST_MAIN("http_write", TEST(test_put_is_bounded), TEST(test_empty_slices), TEST(test_uint), TEST(test_reason_and_date))
