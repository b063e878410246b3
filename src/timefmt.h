/* timefmt.h - UTC time stamps in the fixed formats edgeproxy writes and reads
 * (RFC 3339 in logs and JSON, IMF-fixdate in HTTP fields, the access log's common
 * format), and the proleptic Gregorian calendar arithmetic under them and under
 * X.509 validity times. No time zones, no locale: all of it is UTC. */
#ifndef EDGEPROXY_TIMEFMT_H
#define EDGEPROXY_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#include "slice.h"

/* Days from 1970-01-01 to y-m-d (m 1..12, d 1..31), and back. */
int64_t timefmt_days_from_civil(int64_t y, unsigned m, unsigned d);
void timefmt_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);
/* Days in month m (1..12) of year y. */
unsigned timefmt_month_days(int64_t y, unsigned m);

/* A time split into calendar fields (UTC). wday: 0 = Sunday. */
struct timefmt_tm {
	int64_t year;
	unsigned mon, mday, hour, min, sec, wday;
};
void timefmt_split(int64_t t, struct timefmt_tm *tm);

/* The formatters write a NUL-terminated string of exactly the _LEN length and
 * return that length. Times outside the years 0000..9999 are clamped to them
 * (only a broken clock or certificate gets there). */
#define TIMEFMT_RFC3339_LEN 20 /* 2026-11-27T19:02:54Z */
#define TIMEFMT_IMF_LEN 29     /* Fri, 27 Nov 2026 19:02:54 GMT (RFC 9110 §5.6.7) */
#define TIMEFMT_CLF_LEN 26     /* 27/Nov/2026:19:02:54 +0000 (common log format) */
size_t timefmt_rfc3339(int64_t t, char out[TIMEFMT_RFC3339_LEN + 1]);
size_t timefmt_imf(int64_t t, char out[TIMEFMT_IMF_LEN + 1]);
size_t timefmt_clf(int64_t t, char out[TIMEFMT_CLF_LEN + 1]);

/* Parses an IMF-fixdate, the HTTP-date form every current sender uses; day and
 * month names in any case. Returns 0 with *t set, or -1 when s is anything else
 * (including the obsolete rfc850 and asctime forms, and impossible dates). */
int timefmt_parse_imf(struct slice s, int64_t *t);

#endif
