/* test_timefmt.c - the fixed-format time stamps and calendar arithmetic, checked
 * against fixed examples and against the host libc's gmtime_r/strftime/timegm
 * over a spread of times from 1000 to 9999 (glibc pads no year below 1000). */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "test.h"
#include "timefmt.h"

static void test_examples(void)
{
	char b[64];
	CHECK(timefmt_rfc3339(0, b) == TIMEFMT_RFC3339_LEN && strcmp(b, "1970-01-01T00:00:00Z") == 0);
	CHECK(timefmt_imf(784111777, b) == TIMEFMT_IMF_LEN &&
	      strcmp(b, "Sun, 06 Nov 1994 08:49:37 GMT") == 0); /* RFC 9110's example */
	CHECK(timefmt_clf(971186136, b) == TIMEFMT_CLF_LEN &&
	      strcmp(b, "10/Oct/2000:13:55:36 +0000") == 0);
	CHECK(timefmt_rfc3339(951782400, b) && strcmp(b, "2000-02-29T00:00:00Z") == 0);
	CHECK(timefmt_rfc3339(-1, b) && strcmp(b, "1969-12-31T23:59:59Z") == 0);
	CHECK(timefmt_imf(-86400 * 4, b) && strcmp(b, "Sun, 28 Dec 1969 00:00:00 GMT") == 0);
	/* clamped to the four-digit years */
	CHECK(timefmt_rfc3339(INT64_MAX / 2, b) == TIMEFMT_RFC3339_LEN &&
	      strcmp(b, "9999-12-31T23:59:59Z") == 0);
	CHECK(timefmt_rfc3339(INT64_MIN / 2, b) == TIMEFMT_RFC3339_LEN &&
	      strcmp(b, "0000-01-01T00:00:00Z") == 0);
}

static void test_calendar(void)
{
	CHECK(timefmt_days_from_civil(1970, 1, 1) == 0);
	CHECK(timefmt_days_from_civil(2000, 3, 1) == 11017);
	CHECK(timefmt_days_from_civil(1969, 12, 31) == -1);
	CHECK(timefmt_month_days(2000, 2) == 29 && timefmt_month_days(1900, 2) == 28 &&
	      timefmt_month_days(2024, 2) == 29 && timefmt_month_days(2023, 2) == 28 &&
	      timefmt_month_days(2023, 12) == 31 && timefmt_month_days(2023, 4) == 30);
	/* every day from 1600 to 2400 survives the round trip */
	int64_t y;
	unsigned m, d;
	bool ok = true;
	for (int64_t z = timefmt_days_from_civil(1600, 1, 1); z < timefmt_days_from_civil(2400, 1, 1);
	     z++) {
		timefmt_civil_from_days(z, &y, &m, &d);
		ok = ok && m >= 1 && m <= 12 && d >= 1 && d <= timefmt_month_days(y, m) &&
		     timefmt_days_from_civil(y, m, d) == z;
	}
	CHECK(ok);
}

/* The same strings as the host's strftime, and parsing gives the time back. */
static void test_against_libc(void)
{
	uint64_t x = 0x9e3779b97f4a7c15u;
	int bad = 0;
	for (int i = 0; i < 200000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* years 1000..9999, and more of them near now */
		int64_t lo = -30610224000LL, hi = 253402300799LL;
		int64_t t = i % 2 ? lo + (int64_t)(x % (uint64_t)(hi - lo)) :
				    1600000000 + (int64_t)(x % 2000000000u);
		time_t tt = (time_t)t;
		struct tm tm;
		char want[64], got[64];
		if (!gmtime_r(&tt, &tm))
			continue;

		strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%SZ", &tm);
		timefmt_rfc3339(t, got);
		bad += strcmp(want, got) != 0;

		strftime(want, sizeof(want), "%d/%b/%Y:%H:%M:%S +0000", &tm);
		timefmt_clf(t, got);
		bad += strcmp(want, got) != 0;

		strftime(want, sizeof(want), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		size_t n = timefmt_imf(t, got);
		bad += strcmp(want, got) != 0;

		int64_t back = 0;
		bad += timefmt_parse_imf(slice_make(got, n), &back) != 0 || back != t;
		bad += (int64_t)timegm(&tm) != t;
		if (bad) {
			fprintf(stderr, "t=%lld: %s vs %s\n", (long long)t, want, got);
			break;
		}
	}
	CHECK(bad == 0);
}

static int parse(const char *s, int64_t *t)
{
	return timefmt_parse_imf(slice_cstr(s), t);
}

static void test_parse(void)
{
	int64_t t = 0;
	CHECK(parse("Sun, 06 Nov 1994 08:49:37 GMT", &t) == 0 && t == 784111777);
	CHECK(parse("sun, 06 NOV 1994 08:49:37 GMT", &t) == 0 && t == 784111777);
	/* a leap second counts as the next minute's first second */
	CHECK(parse("Sat, 31 Dec 2016 23:59:60 GMT", &t) == 0 && t == 1483228800);
	CHECK(parse("Tue, 29 Feb 2000 00:00:00 GMT", &t) == 0 && t == 951782400);

	const char *bad[] = {
		"",
		"Sun, 06 Nov 1994 08:49:37 GMT ",  /* trailing byte */
		"Sun, 06 Nov 1994 08:49:37 UTC",   /* only GMT */
		"Sun, 6 Nov 1994 08:49:37 GMT",    /* two-digit day */
		"Sunday, 06-Nov-94 08:49:37 GMT",  /* rfc850-date */
		"Sun Nov  6 08:49:37 1994",        /* asctime-date */
		"Xyz, 06 Nov 1994 08:49:37 GMT",   /* day name */
		"Sun, 06 Nox 1994 08:49:37 GMT",   /* month name */
		"Sun, 31 Nov 1994 08:49:37 GMT",   /* no such day */
		"Mon, 29 Feb 1900 08:49:37 GMT",   /* not a leap year */
		"Sun, 00 Nov 1994 08:49:37 GMT",
		"Sun, 06 Nov 1994 24:00:00 GMT",
		"Sun, 06 Nov 1994 08:60:37 GMT",
		"Sun, 06 Nov 1994 08:49:61 GMT",
		"Fri, 31 Dec 9999 23:59:60 GMT",   /* its leap second would be in 10000 (found by fuzz_timefmt) */
		"Sun, 06 Nov 1994 08-49-37 GMT",
		"Sun, 06 Nov 19x4 08:49:37 GMT",
		"Sun,06 Nov 1994 08:49:37 GMT  ",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECKF(parse(bad[i], &t) < 0, "accepted \"%s\"", bad[i]);
	/* a slice is bounded by its length, not by a NUL */
	const char *s = "Sun, 06 Nov 1994 08:49:37 GMTX";
	CHECK(timefmt_parse_imf(slice_make(s, TIMEFMT_IMF_LEN), &t) == 0 && t == 784111777);
	CHECK(timefmt_parse_imf(slice_make(s, TIMEFMT_IMF_LEN - 1), &t) < 0);
}

TEST_MAIN("timefmt", TEST(test_examples), TEST(test_calendar), TEST(test_against_libc),
	  TEST(test_parse))
