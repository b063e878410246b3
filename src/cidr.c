/* cidr.c - parsing of address ranges and the membership test used by ClientIP()
 * and trusted_proxies, and addresses as text; no allocation except for cidr_list's
 * array. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* inet_pton under -std=c11 */
#endif
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* Longest textual address plus "/128": INET6_ADDRSTRLEN (46) covers
 * "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"; anything longer is bad anyway. */
#define CIDR_TEXT_MAX 64

static const unsigned char v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static void mask_host_bits(unsigned char *addr, size_t addrlen, unsigned prefix)
{
	for (size_t i = 0; i < addrlen; i++) {
		unsigned bit = (unsigned)i * 8;
		if (bit >= prefix)
			addr[i] = 0;
		else if (prefix - bit < 8)
			addr[i] &= (unsigned char)(0xff << (8 - (prefix - bit)));
	}
}

/* Decimal prefix length: digits only, no sign, no leading zero (Go's netip rejects "/08"). */
static int parse_prefix(const char *s, unsigned max, unsigned *out)
{
	unsigned v = 0;
	size_t n = 0;

	if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
		return -1;
	for (; s[n] != '\0'; n++) {
		if (s[n] < '0' || s[n] > '9' || n >= 3)
			return -1;
		v = v * 10 + (unsigned)(s[n] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

int cidr_parse(struct slice text, struct cidr *out)
{
	char buf[CIDR_TEXT_MAX];
	struct cidr c;
	char *slash;
	unsigned max;

	/* inet_pton needs a NUL-terminated string; copy, never scan past the slice. */
	if (text.len == 0 || !slice_to_cstr(text, buf, sizeof(buf)))
		return -1;
	if (memchr(buf, '\0', text.len))
		return -1;
	memset(&c, 0, sizeof(c));
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	if (strchr(buf, ':')) {
		if (inet_pton(AF_INET6, buf, c.addr) != 1)
			return -1;
		c.family = AF_INET6;
		max = 128;
	} else {
		if (inet_pton(AF_INET, buf, c.addr) != 1)
			return -1;
		c.family = AF_INET;
		max = 32;
	}
	c.prefix = max;
	if (slash && parse_prefix(slash + 1, max, &c.prefix) < 0)
		return -1;
	if (c.family == AF_INET6 && c.prefix >= 96 &&
	    memcmp(c.addr, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0) {
		memmove(c.addr, c.addr + 12, 4);
		memset(c.addr + 4, 0, 12);
		c.family = AF_INET;
		c.prefix -= 96;
	}
	mask_host_bits(c.addr, sizeof(c.addr), c.prefix);
	*out = c;
	return 0;
}

static bool prefix_equal(const unsigned char *a, const unsigned char *net, unsigned prefix)
{
	size_t whole = prefix / 8;
	unsigned rest = prefix % 8;

	if (memcmp(a, net, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[whole] & mask) == net[whole];
}

bool cidr_contains(const struct cidr *c, const struct sockaddr *sa)
{
	const unsigned char *a;

	if (!c || !sa)
		return false;
	if (sa->sa_family == AF_INET) {
		if (c->family != AF_INET)
			return false;
		a = (const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
		return prefix_equal(a, c->addr, c->prefix);
	}
	if (sa->sa_family != AF_INET6)
		return false;
	a = (const unsigned char *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (c->family == AF_INET6)
		return prefix_equal(a, c->addr, c->prefix);
	/* A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d. */
	if (c->family == AF_INET && memcmp(a, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0)
		return prefix_equal(a + 12, c->addr, c->prefix);
	return false;
}

static bool is_sep(char ch)
{
	return ch == ',' || ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Parses each entry of list, storing it in dst[] when dst is not NULL (the first pass
 * only counts); returns the number of entries or -1 on a bad one. */
static long for_each_entry(struct slice list, struct cidr *dst)
{
	size_t i = 0;
	long n = 0;

	while (i < list.len) {
		while (i < list.len && is_sep(list.p[i]))
			i++;
		if (i == list.len)
			break;
		size_t start = i;
		while (i < list.len && !is_sep(list.p[i]))
			i++;
		struct cidr tmp;
		if (cidr_parse(slice_make(list.p + start, i - start), &tmp) < 0)
			return -1;
		if (dst)
			dst[n] = tmp;
		n++;
	}
	return n;
}

int cidr_list_parse(struct slice comma_list, struct cidr_list *out)
{
	long n;

	out->items = NULL;
	out->n = 0;
	n = for_each_entry(comma_list, NULL);
	if (n < 0)
		return -1;
	if (n == 0)
		return 0;
	out->items = calloc((size_t)n, sizeof(*out->items));
	if (!out->items)
		return -1;
	if (for_each_entry(comma_list, out->items) != n) {
		cidr_list_free(out);
		return -1;
	}
	out->n = (size_t)n;
	return 0;
}

bool cidr_list_contains(const struct cidr_list *l, const struct sockaddr *sa)
{
	if (!l)
		return false;
	for (size_t i = 0; i < l->n; i++)
		if (cidr_contains(&l->items[i], sa))
			return true;
	return false;
}

void cidr_list_free(struct cidr_list *l)
{
	if (!l)
		return;
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

static char *put_dec(char *p, unsigned v)
{
	if (v >= 100)
		*p++ = (char)('0' + v / 100);
	if (v >= 10)
		*p++ = (char)('0' + v / 10 % 10);
	*p++ = (char)('0' + v % 10);
	return p;
}

static char *put_v4(char *p, const unsigned char *a)
{
	for (int i = 0; i < 4; i++) {
		if (i)
			*p++ = '.';
		p = put_dec(p, a[i]);
	}
	return p;
}

static char *put_hex(char *p, unsigned v)
{
	static const char digits[] = "0123456789abcdef";
	bool started = false;
	for (int shift = 12; shift >= 0; shift -= 4) {
		unsigned d = (v >> shift) & 0xf;
		if (d || started || shift == 0) {
			*p++ = digits[d];
			started = true;
		}
	}
	return p;
}

size_t cidr_addr_text(const struct sockaddr *sa, char out[CIDR_ADDR_TEXT_MAX])
{
	char *p = out;

	if (sa && sa->sa_family == AF_INET) {
		p = put_v4(p, (const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr);
	} else if (sa && sa->sa_family == AF_INET6) {
		const unsigned char *a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
		if (memcmp(a, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0) {
			p = put_v4(p, a + 12);
		} else {
			unsigned g[8];
			int best = -1, best_len = 1; /* a single zero group is not compressed */
			for (int i = 0; i < 8; i++)
				g[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
			for (int i = 0; i < 8;) {
				int j = i;
				while (j < 8 && g[j] == 0)
					j++;
				if (j - i > best_len) {
					best = i;
					best_len = j - i;
				}
				i = j > i ? j : i + 1;
			}
			for (int i = 0; i < 8; i++) {
				if (i == best) {
					*p++ = ':';
					*p++ = ':';
					i += best_len - 1;
					continue;
				}
				if (i > 0 && i != best + best_len)
					*p++ = ':';
				p = put_hex(p, g[i]);
			}
		}
	} else {
		*p++ = '-';
	}
	*p = '\0';
	return (size_t)(p - out);
}
