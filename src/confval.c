/* confval.c - value syntaxes of the INI file (SPEC §3 preamble). Strict: no
 * leading or trailing junk, no overflow. */
#include "confval.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* Parses decimal digits at *p into *v; advances *p. -1 on no digits or overflow. */
static int parse_digits(const char **p, uint64_t *v)
{
	const char *s = *p;
	uint64_t n = 0;
	if (*s < '0' || *s > '9')
		return -1;
	while (*s >= '0' && *s <= '9') {
		unsigned d = (unsigned)(*s - '0');
		if (n > (UINT64_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
		s++;
	}
	*p = s;
	*v = n;
	return 0;
}

int confval_duration(const char *text, int64_t *ms)
{
	static const struct {
		const char *suffix;
		uint64_t ms;
	} units[] = { { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 } };
	const char *p = text;
	uint64_t total = 0;
	if (*p == '\0')
		return -1;
	while (*p) {
		uint64_t n;
		if (parse_digits(&p, &n) < 0)
			return -1;
		uint64_t mult = 0;
		if (*p == '\0' && p != text && total == 0) {
			mult = 1000; /* a bare number is seconds, as in Traefik */
		} else {
			for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
				size_t l = strlen(units[i].suffix);
				if (strncmp(p, units[i].suffix, l) == 0) {
					/* "m" must not swallow the "m" of "ms" */
					if (l == 1 && units[i].suffix[0] == 'm' && p[1] == 's')
						continue;
					mult = units[i].ms;
					p += l;
					break;
				}
			}
		}
		if (mult == 0)
			return -1;
		if (n > (uint64_t)INT64_MAX / mult || total > (uint64_t)INT64_MAX - n * mult)
			return -1;
		total += n * mult;
	}
	*ms = (int64_t)total;
	return 0;
}

int confval_size(const char *text, uint64_t *bytes)
{
	const char *p = text;
	uint64_t n, mult = 1;
	if (parse_digits(&p, &n) < 0)
		return -1;
	switch (*p) {
	case '\0': break;
	case 'k': case 'K': mult = 1024; p++; break;
	case 'm': case 'M': mult = 1024 * 1024; p++; break;
	case 'g': case 'G': mult = 1024 * 1024 * 1024; p++; break;
	default: return -1;
	}
	if (*p != '\0' || n > UINT64_MAX / mult)
		return -1;
	*bytes = n * mult;
	return 0;
}

int confval_bool(const char *text, bool *value)
{
	static const char *const yes[] = { "on", "true", "yes", "1" };
	static const char *const no[] = { "off", "false", "no", "0" };
	for (size_t i = 0; i < 4; i++) {
		if (strcmp(text, yes[i]) == 0) {
			*value = true;
			return 0;
		}
		if (strcmp(text, no[i]) == 0) {
			*value = false;
			return 0;
		}
	}
	return -1;
}

int confval_int(const char *text, int64_t min, int64_t max, int64_t *value)
{
	const char *p = text;
	bool neg = false;
	uint64_t n;
	if (*p == '-') {
		neg = true;
		p++;
	}
	if (parse_digits(&p, &n) < 0 || *p != '\0' || n > (uint64_t)INT64_MAX)
		return -1;
	int64_t v = neg ? -(int64_t)n : (int64_t)n;
	if (v < min || v > max)
		return -1;
	*value = v;
	return 0;
}

static int parse_port(const char *s, in_port_t *port)
{
	uint64_t n;
	const char *p = s;
	if (parse_digits(&p, &n) < 0 || *p != '\0' || n > 65535)
		return -1;
	*port = htons((uint16_t)n);
	return 0;
}

int confval_listen(const char *text, struct sockaddr_storage *addr, socklen_t *len)
{
	char host[64];
	const char *port;
	memset(addr, 0, sizeof(*addr));
	if (text[0] == '[') {
		const char *end = strchr(text, ']');
		if (!end || end[1] != ':' || (size_t)(end - text - 1) >= sizeof(host))
			return -1;
		memcpy(host, text + 1, (size_t)(end - text - 1));
		host[end - text - 1] = '\0';
		port = end + 2;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)addr;
		s6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1 || parse_port(port, &s6->sin6_port) < 0)
			return -1;
		*len = sizeof(*s6);
		return 0;
	}
	const char *colon = strrchr(text, ':');
	if (!colon || (size_t)(colon - text) >= sizeof(host))
		return -1;
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = '\0';
	port = colon + 1;
	if (host[0] == '\0') {
		/* ":80" listens on every address; the listener sets IPV6_V6ONLY off and
		 * falls back to IPv4 when the kernel has no IPv6. */
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)addr;
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_any;
		*len = sizeof(*s6);
		return parse_port(port, &s6->sin6_port);
	}
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	struct sockaddr_in *s4 = (struct sockaddr_in *)addr;
	s4->sin_family = AF_INET;
	if (inet_pton(AF_INET, host, &s4->sin_addr) != 1 || parse_port(port, &s4->sin_port) < 0)
		return -1;
	*len = sizeof(*s4);
	return 0;
}

/* Walks "a-b,c,..." calling back each range; -1 on bad syntax. */
static int status_ranges(const char *text, int status, bool *hit)
{
	const char *p = text;
	if (*p == '\0')
		return -1;
	while (*p) {
		uint64_t lo, hi;
		if (parse_digits(&p, &lo) < 0 || lo < 100 || lo > 599)
			return -1;
		hi = lo;
		if (*p == '-') {
			p++;
			if (parse_digits(&p, &hi) < 0 || hi < lo || hi > 599)
				return -1;
		}
		if (hit && (uint64_t)status >= lo && (uint64_t)status <= hi)
			*hit = true;
		if (*p == ',') {
			p++;
			while (*p == ' ')
				p++;
			if (*p == '\0')
				return -1;
		} else if (*p) {
			return -1;
		}
	}
	return 0;
}

int confval_status_list(const char *text)
{
	return status_ranges(text, 0, NULL);
}

bool confval_status_in(const char *list, int status)
{
	bool hit = false;
	return status_ranges(list, status, &hit) == 0 && hit;
}
