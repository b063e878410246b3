/* timefmt.c - fixed-format UTC time stamps and calendar arithmetic. Written out by
 * hand instead of strftime/strptime/timegm: those drag in musl's time zone and
 * locale code (8 KiB of the binary) for formats that never change. */
#include "timefmt.h"

#include <stdbool.h>
#include <string.h>

static const char day_names[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char month_names[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z. */
#define TIME_MIN (-62167219200LL)
#define TIME_MAX 253402300799LL

/* Counts in 400-year eras that start on March 1st, so the leap day is the last day
 * of its year and every other month has a fixed offset. */
int64_t timefmt_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);                       /* 0..399 */
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* 0..365 */
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* 0..146096 */
	return era * 146097 + (int64_t)doe - 719468;
}

void timefmt_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

unsigned timefmt_month_days(int64_t y, unsigned m)
{
	static const unsigned char days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

void timefmt_split(int64_t t, struct timefmt_tm *tm)
{
	int64_t days = t / 86400, secs = t % 86400;
	if (secs < 0) {
		secs += 86400;
		days--;
	}
	timefmt_civil_from_days(days, &tm->year, &tm->mon, &tm->mday);
	tm->hour = (unsigned)(secs / 3600);
	tm->min = (unsigned)(secs / 60 % 60);
	tm->sec = (unsigned)(secs % 60);
	int64_t w = (days + 4) % 7; /* 1970-01-01 was a Thursday */
	tm->wday = (unsigned)(w < 0 ? w + 7 : w);
}

static void split_clamped(int64_t t, struct timefmt_tm *tm)
{
	timefmt_split(t < TIME_MIN ? TIME_MIN : t > TIME_MAX ? TIME_MAX : t, tm);
}

/* Writes v as n decimal digits, zero-padded. */
static char *put_num(char *p, unsigned v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
	return p + n;
}

static char *put_str(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

/* HH:MM:SS */
static char *put_clock(char *p, const struct timefmt_tm *tm)
{
	p = put_num(p, tm->hour, 2);
	*p++ = ':';
	p = put_num(p, tm->min, 2);
	*p++ = ':';
	return put_num(p, tm->sec, 2);
}

size_t timefmt_rfc3339(int64_t t, char out[TIMEFMT_RFC3339_LEN + 1])
{
	struct timefmt_tm tm;
	split_clamped(t, &tm);
	char *p = put_num(out, (unsigned)tm.year, 4);
	*p++ = '-';
	p = put_num(p, tm.mon, 2);
	*p++ = '-';
	p = put_num(p, tm.mday, 2);
	*p++ = 'T';
	p = put_clock(p, &tm);
	*p++ = 'Z';
	*p = '\0';
	return (size_t)(p - out);
}

size_t timefmt_imf(int64_t t, char out[TIMEFMT_IMF_LEN + 1])
{
	struct timefmt_tm tm;
	split_clamped(t, &tm);
	char *p = put_str(out, day_names[tm.wday], 3);
	p = put_str(p, ", ", 2);
	p = put_num(p, tm.mday, 2);
	*p++ = ' ';
	p = put_str(p, month_names[tm.mon - 1], 3);
	*p++ = ' ';
	p = put_num(p, (unsigned)tm.year, 4);
	*p++ = ' ';
	p = put_clock(p, &tm);
	p = put_str(p, " GMT", 4);
	*p = '\0';
	return (size_t)(p - out);
}

size_t timefmt_clf(int64_t t, char out[TIMEFMT_CLF_LEN + 1])
{
	struct timefmt_tm tm;
	split_clamped(t, &tm);
	char *p = put_num(out, tm.mday, 2);
	*p++ = '/';
	p = put_str(p, month_names[tm.mon - 1], 3);
	*p++ = '/';
	p = put_num(p, (unsigned)tm.year, 4);
	*p++ = ':';
	p = put_clock(p, &tm);
	p = put_str(p, " +0000", 6);
	*p = '\0';
	return (size_t)(p - out);
}

/* ---- parsing ------------------------------------------------------------------ */

/* Index of the three-letter name at p in names, any case; -1 if none. */
static int name_index(const char *p, const char (*names)[4], int n)
{
	for (int i = 0; i < n; i++)
		if (ascii_lower(p[0]) == ascii_lower(names[i][0]) &&
		    ascii_lower(p[1]) == ascii_lower(names[i][1]) &&
		    ascii_lower(p[2]) == ascii_lower(names[i][2]))
			return i;
	return -1;
}

static int get_num(const char *p, int n, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	*out = v;
	return 0;
}

/* IMF-fixdate = day-name "," SP 2DIGIT SP month SP 4DIGIT SP 2DIGIT ":" 2DIGIT ":"
 * 2DIGIT SP "GMT" (RFC 9110 §5.6.7), 29 bytes. The day name is not checked
 * against the date, as recipients do not need to. */
int timefmt_parse_imf(struct slice s, int64_t *t)
{
	const char *p = s.p;
	unsigned day, year, hour, min, sec;
	int mon;

	if (s.len != TIMEFMT_IMF_LEN || name_index(p, day_names, 7) < 0 || p[3] != ',' ||
	    p[4] != ' ' || get_num(p + 5, 2, &day) < 0 || p[7] != ' ' ||
	    (mon = name_index(p + 8, month_names, 12)) < 0 || p[11] != ' ' ||
	    get_num(p + 12, 4, &year) < 0 || p[16] != ' ' || get_num(p + 17, 2, &hour) < 0 ||
	    p[19] != ':' || get_num(p + 20, 2, &min) < 0 || p[22] != ':' ||
	    get_num(p + 23, 2, &sec) < 0 || memcmp(p + 25, " GMT", 4) != 0)
		return -1;
	/* sec 60: a leap second, counted as the next minute's first (as timegm does) */
	if (day < 1 || day > timefmt_month_days(year, (unsigned)mon + 1) || hour > 23 ||
	    min > 59 || sec > 60)
		return -1;
	int64_t v = timefmt_days_from_civil(year, (unsigned)mon + 1, day) * 86400 + hour * 3600 + min * 60 + sec;
	/* the leap second of 9999-12-31 23:59 would be a five-digit year */
	if (v > TIME_MAX)
		return -1;
	*t = v;
	return 0;
}
