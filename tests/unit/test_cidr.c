/* test_cidr.c - address range parsing and membership: IPv4, IPv6, IPv4-mapped peers,
 * prefix edge cases and lists; addresses as text, against glibc's inet_ntop. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "cidr.h"
#include "test.h"

/* Fills ss with the address text (v4 or v6) as an accepted socket would report it. */
static const struct sockaddr *addr(struct sockaddr_storage *ss, const char *text)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(40000);
		if (inet_pton(AF_INET6, text, &s6->sin6_addr) != 1)
			return NULL;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(40000);
		if (inet_pton(AF_INET, text, &s4->sin_addr) != 1)
			return NULL;
	}
	return (const struct sockaddr *)ss;
}

static void test_parse_good(void)
{
	static const struct {
		const char *text;
		sa_family_t family;
		unsigned prefix;
		const char *net; /* the network address after masking */
	} cases[] = {
		{ "10.0.0.0/8", AF_INET, 8, "10.0.0.0" },
		{ "192.168.1.7", AF_INET, 32, "192.168.1.7" },
		{ "192.168.1.7/24", AF_INET, 24, "192.168.1.0" }, /* host bits masked */
		{ "10.255.255.255/9", AF_INET, 9, "10.128.0.0" },
		{ "0.0.0.0/0", AF_INET, 0, "0.0.0.0" },
		{ "1.2.3.4/0", AF_INET, 0, "0.0.0.0" },
		{ "255.255.255.255/32", AF_INET, 32, "255.255.255.255" },
		{ "::1", AF_INET6, 128, "::1" },
		{ "::/0", AF_INET6, 0, "::" },
		{ "2001:db8::/32", AF_INET6, 32, "2001:db8::" },
		{ "2001:db8:ffff::1/33", AF_INET6, 33, "2001:db8:8000::" },
		{ "fe80::1/128", AF_INET6, 128, "fe80::1" },
		{ "2001:db8::1/127", AF_INET6, 127, "2001:db8::" },
		/* an IPv4-mapped range is the IPv4 range it denotes (Go's net.IPNet) */
		{ "::ffff:10.1.2.3/104", AF_INET, 8, "10.0.0.0" },
		{ "::ffff:192.0.2.1", AF_INET, 32, "192.0.2.1" },
		/* below /96 it is an IPv6 range like any other */
		{ "::ffff:0:0/80", AF_INET6, 80, "::" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cidr c;
		unsigned char want[16] = { 0 };
		int rc = cidr_parse(slice_cstr(cases[i].text), &c);
		CHECKF(rc == 0, "%s", cases[i].text);
		if (rc != 0)
			continue;
		CHECKF(c.family == cases[i].family, "%s family %d", cases[i].text, c.family);
		CHECKF(c.prefix == cases[i].prefix, "%s prefix %u", cases[i].text, c.prefix);
		inet_pton(cases[i].family, cases[i].net, want);
		CHECKF(memcmp(c.addr, want, sizeof(want)) == 0, "%s network", cases[i].text);
	}
}

static void test_parse_bad(void)
{
	static const char *const bad[] = {
		"", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/+8",
		"10.0.0.0/08", "10.0.0.0/8x", "10.0.0.0/8/8", "10.0.0.0/1000", "999.1.1.1",
		"1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.4x", " 1.2.3.4", "1.2.3.4 ",
		"::1/129", "2001:db8::/200", "::1x", "2001:db8:::1", "fe80::1%eth0",
		"example.com", "10.0.0.0/ 8", "1.2.3.4/32 junk",
		"0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000/128",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cidr c;
		CHECKF(cidr_parse(slice_cstr(bad[i]), &c) == -1, "'%s' accepted", bad[i]);
	}
}

/* The parser must stop at the slice's end, not at a NUL further on. */
static void test_parse_slice_bounds(void)
{
	struct cidr c;
	const char buf[] = "10.0.0.0/8junk";
	const char nul[] = "1.2.3.4\0/8";

	CHECK(cidr_parse(slice_make(buf, 10), &c) == 0);
	CHECK(c.prefix == 8);
	CHECK(cidr_parse(slice_make(buf, 9), &c) == -1); /* "10.0.0.0/" */
	CHECK(cidr_parse(slice_make(nul, sizeof(nul) - 1), &c) == -1);
	CHECK(cidr_parse(slice_make(NULL, 0), &c) == -1);
}

static void test_contains(void)
{
	static const struct {
		const char *cidr, *ip;
		bool want;
	} cases[] = {
		{ "10.0.0.0/8", "10.1.2.3", true },
		{ "10.0.0.0/8", "11.0.0.0", false },
		{ "10.0.0.0/8", "9.255.255.255", false },
		{ "192.168.1.7", "192.168.1.7", true },
		{ "192.168.1.7", "192.168.1.8", false },
		{ "192.168.1.7/24", "192.168.1.200", true },
		{ "10.128.0.0/9", "10.127.255.255", false },
		{ "10.128.0.0/9", "10.128.0.0", true },
		{ "0.0.0.0/0", "203.0.113.9", true },
		{ "0.0.0.0/0", "2001:db8::1", false },
		{ "::/0", "2001:db8::1", true },
		{ "::/0", "203.0.113.9", false },
		{ "2001:db8::/32", "2001:db8:1::1", true },
		{ "2001:db8::/32", "2001:db9::1", false },
		{ "2001:db8::/33", "2001:db8:7fff::1", true },
		{ "2001:db8::/33", "2001:db8:8000::1", false },
		{ "::1", "::1", true },
		{ "::1", "::2", false },
		/* a dual-stack socket reports IPv4 peers as IPv4-mapped IPv6 */
		{ "10.0.0.0/8", "::ffff:10.9.8.7", true },
		{ "10.0.0.0/8", "::ffff:11.9.8.7", false },
		{ "127.0.0.1", "::ffff:127.0.0.1", true },
		{ "0.0.0.0/0", "::ffff:1.2.3.4", true },
		{ "0.0.0.0/0", "::1", false },
		{ "10.0.0.0/8", "::10.9.8.7", false }, /* IPv4-compatible is not mapped */
		{ "::ffff:10.0.0.0/104", "10.1.1.1", true },
		{ "::ffff:10.0.0.0/104", "::ffff:10.1.1.1", true },
		{ "::ffff:10.0.0.0/104", "11.1.1.1", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cidr c;
		struct sockaddr_storage ss;
		const struct sockaddr *sa = addr(&ss, cases[i].ip);
		CHECKF(sa != NULL, "test address %s", cases[i].ip);
		CHECKF(cidr_parse(slice_cstr(cases[i].cidr), &c) == 0, "%s", cases[i].cidr);
		CHECKF(cidr_contains(&c, sa) == cases[i].want, "%s in %s", cases[i].ip,
		       cases[i].cidr);
	}
}

static void test_contains_odd_input(void)
{
	struct cidr c;
	struct sockaddr_storage ss;
	struct sockaddr unix_sa = { .sa_family = AF_UNIX };

	CHECK(cidr_parse(SLICE_LIT("0.0.0.0/0"), &c) == 0);
	CHECK(!cidr_contains(&c, NULL));
	CHECK(!cidr_contains(NULL, addr(&ss, "1.2.3.4")));
	CHECK(!cidr_contains(&c, &unix_sa));
}

static void test_list(void)
{
	struct cidr_list l;
	struct sockaddr_storage ss;

	CHECK(cidr_list_parse(SLICE_LIT("10.0.0.0/8, 192.168.0.0/16,::1  2001:db8::/32"), &l) == 0);
	CHECK(l.n == 4);
	CHECK(cidr_list_contains(&l, addr(&ss, "10.2.3.4")));
	CHECK(cidr_list_contains(&l, addr(&ss, "192.168.9.9")));
	CHECK(cidr_list_contains(&l, addr(&ss, "::1")));
	CHECK(cidr_list_contains(&l, addr(&ss, "2001:db8::5")));
	CHECK(cidr_list_contains(&l, addr(&ss, "::ffff:10.0.0.1")));
	CHECK(!cidr_list_contains(&l, addr(&ss, "172.16.0.1")));
	CHECK(!cidr_list_contains(&l, addr(&ss, "::2")));
	cidr_list_free(&l);
	CHECK(l.items == NULL && l.n == 0);
	cidr_list_free(&l); /* twice is harmless */

	/* empty entries are skipped; an empty list is valid and matches nobody */
	CHECK(cidr_list_parse(SLICE_LIT(" ,, 127.0.0.1 ,"), &l) == 0);
	CHECK(l.n == 1);
	cidr_list_free(&l);
	CHECK(cidr_list_parse(SLICE_LIT(""), &l) == 0);
	CHECK(l.n == 0 && !cidr_list_contains(&l, addr(&ss, "127.0.0.1")));
	cidr_list_free(&l);

	/* one bad entry spoils the list and leaves nothing to free */
	CHECK(cidr_list_parse(SLICE_LIT("10.0.0.0/8, 10.0.0.0/33"), &l) == -1);
	CHECK(l.items == NULL && l.n == 0);
	CHECK(cidr_list_parse(SLICE_LIT("10.0.0.0/8;192.168.0.0/16"), &l) == -1);
	CHECK(!cidr_list_contains(NULL, addr(&ss, "10.0.0.1")));
}

static const char *text_of(const char *in)
{
	static char out[CIDR_ADDR_TEXT_MAX];
	struct sockaddr_storage ss;
	size_t n = cidr_addr_text(addr(&ss, in), out);
	return n == strlen(out) ? out : "(length)";
}

static void test_addr_text(void)
{
	static const char *const same[] = {
		"0.0.0.0", "127.0.0.1", "10.20.30.40", "255.255.255.255", "1.0.10.100",
		"::", "::1", "1::", "2001:db8::1", "2001:db8:0:1:1:1:1:1", /* one zero group stays */
		"2001:0:0:1::1", /* the longer run wins */ "1:0:0:2:0:0:3:4", /* the first of two */
		"fe80::1:2", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::ffff:0:1:2",
	};
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		/* inet_pton's view of the RFC 5952 form */
		char want[64];
		struct in6_addr a6;
		struct in_addr a4;
		if (strchr(same[i], ':')) {
			inet_pton(AF_INET6, same[i], &a6);
			inet_ntop(AF_INET6, &a6, want, sizeof(want));
		} else {
			inet_pton(AF_INET, same[i], &a4);
			inet_ntop(AF_INET, &a4, want, sizeof(want));
		}
		CHECKF(strcmp(text_of(same[i]), want) == 0, "%s: %s, want %s", same[i], text_of(same[i]), want);
	}
	CHECK(strcmp(text_of("2001:DB8:0:0:0:0:0:AB"), "2001:db8::ab") == 0);
	/* a dual-stack listener's IPv4 client */
	CHECK(strcmp(text_of("::ffff:192.0.2.7"), "192.0.2.7") == 0);
	CHECK(strcmp(text_of("::ffff:0:1"), "0.0.0.1") == 0);
	/* the deprecated IPv4-compatible form in hex (RFC 5952 dots only the mapped
	 * one; glibc dots both, musl does as here) */
	CHECK(strcmp(text_of("::1.2.3.4"), "::102:304") == 0);
	char out[CIDR_ADDR_TEXT_MAX];
	struct sockaddr unix_sa = { .sa_family = AF_UNIX };
	CHECK(cidr_addr_text(&unix_sa, out) == 1 && strcmp(out, "-") == 0);
	CHECK(cidr_addr_text(NULL, out) == 1 && strcmp(out, "-") == 0);

	/* random addresses, many zero groups among them, as glibc writes them */
	uint64_t x = 0x9e3779b97f4a7c15u;
	int bad = 0;
	for (int i = 0; i < 100000 && !bad; i++) {
		struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
		for (int k = 0; k < 8; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			unsigned v = (x & 3) ? 0 : (unsigned)(x >> 20) & ((x & 4) ? 0xff : 0xffff);
			s6.sin6_addr.s6_addr[2 * k] = (unsigned char)(v >> 8);
			s6.sin6_addr.s6_addr[2 * k + 1] = (unsigned char)v;
		}
		char want[64];
		inet_ntop(AF_INET6, &s6.sin6_addr, want, sizeof(want));
		cidr_addr_text((const struct sockaddr *)&s6, out);
		bool mapped = strncmp(want, "::ffff:", 7) == 0 && strchr(want, '.');
		if (!mapped && strchr(want, '.'))
			continue; /* IPv4-compatible: see above */
		if (strcmp(out, mapped ? want + 7 : want) != 0) {
			fprintf(stderr, "%s: ours %s\n", want, out);
			bad = 1;
		}
		struct sockaddr_in s4 = { .sin_family = AF_INET };
		memcpy(&s4.sin_addr, &x, 4);
		inet_ntop(AF_INET, &s4.sin_addr, want, sizeof(want));
		cidr_addr_text((const struct sockaddr *)&s4, out);
		if (strcmp(out, want) != 0) {
			fprintf(stderr, "%s: ours %s\n", want, out);
			bad = 1;
		}
	}
	CHECK(!bad);
}

TEST_MAIN("cidr", TEST(test_parse_good), TEST(test_parse_bad), TEST(test_parse_slice_bounds),
	  TEST(test_contains), TEST(test_contains_odd_input), TEST(test_list), TEST(test_addr_text))
