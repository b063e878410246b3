/* cidr.h - IPv4/IPv6 address ranges ("10.0.0.0/8", "2001:db8::/32", bare addresses)
 * for ClientIP() rules and trusted_proxies, and peer addresses as text. */
#ifndef EDGEPROXY_CIDR_H
#define EDGEPROXY_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "slice.h"

struct cidr {
	sa_family_t family;       /* AF_INET or AF_INET6 */
	unsigned char addr[16];   /* network address, host bits zero; IPv4 uses addr[0..3] */
	unsigned prefix;          /* 0..32 for AF_INET, 0..128 for AF_INET6 */
};

/* Parses "10.0.0.0/8", "192.168.1.7" (= /32), "::1" (= /128), "2001:db8::/32".
 * Host bits beyond the prefix are masked off, as Traefik accepts them. An IPv4-mapped
 * IPv6 range with prefix >= 96 ("::ffff:10.0.0.0/104") becomes the IPv4 range it
 * denotes, as Go's net.IPNet treats it. Returns 0, or -1 on bad input. */
int cidr_parse(struct slice text, struct cidr *out);

/* True when sa (AF_INET or AF_INET6; IPv4-mapped IPv6 peers match IPv4 ranges) lies in c.
 * NULL or any other family never matches. */
bool cidr_contains(const struct cidr *c, const struct sockaddr *sa);

struct cidr_list {
	struct cidr *items;   /* owner: whoever called cidr_list_parse; free with cidr_list_free */
	size_t n;
};

/* Parses a comma and/or whitespace separated list; empty entries are skipped.
 * Returns 0, or -1 if any entry is bad (out is then empty and owns nothing). */
int cidr_list_parse(struct slice comma_list, struct cidr_list *out);
bool cidr_list_contains(const struct cidr_list *l, const struct sockaddr *sa);
void cidr_list_free(struct cidr_list *l);

/* Room for the longest cidr_addr_text, with its NUL. */
#define CIDR_ADDR_TEXT_MAX 40

/* The address of sa as text for logs and forwarded fields: dotted decimal, or RFC 5952
 * IPv6 (lowercase, the longest run of two or more zero groups as "::"); an
 * IPv4-mapped IPv6 address, a dual-stack listener's IPv4 client, as IPv4. "-" for
 * any other family. out must hold CIDR_ADDR_TEXT_MAX bytes; returns the length.
 * Per request, so without snprintf (inet_ntop formats through it). */
size_t cidr_addr_text(const struct sockaddr *sa, char out[CIDR_ADDR_TEXT_MAX]);

#endif
