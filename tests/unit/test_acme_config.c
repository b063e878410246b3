/* test_acme_config.c - [acme NAME] sections: defaults, every key's validation with
 * FILE:LINE messages, the names a router may ask for, and the copy/compare that lets
 * a reload keep running orders. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acme.h"
#include "config.h"
#include "jws.h"
#include "test.h"

static char messages[32][300];
static size_t n_messages;

/* config.c's collector, kept here so the test needs nothing else from it */
void conf_error(struct conf_errors *errs, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	if (n_messages < 32) {
		int n = snprintf(messages[n_messages], sizeof(messages[0]), "%s:%d: ", file, line);
		va_start(ap, fmt);
		vsnprintf(messages[n_messages] + n, sizeof(messages[0]) - (size_t)n, fmt, ap);
		va_end(ap);
		n_messages++;
	}
	errs->n++;
}

static bool has_message(const char *text)
{
	for (size_t i = 0; i < n_messages; i++)
		if (strstr(messages[i], text))
			return true;
	return false;
}

static struct acme_resolver *compile(const char *const *pairs, size_t n, struct conf_errors *errs)
{
	struct conf_kv kv[16];
	for (size_t i = 0; i < n; i++)
		kv[i] = (struct conf_kv){ (char *)pairs[2 * i], (char *)pairs[2 * i + 1], (int)(10 + i) };
	n_messages = 0;
	errs->n = 0;
	return acme_resolver_compile(kv, n, "le", 9, "edge.ini", errs);
}

#define COMPILE(errs, ...)                                                               \
	compile((const char *const[]){ __VA_ARGS__ },                                    \
		sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(char *) / 2, errs)

static void test_defaults(void)
{
	struct conf_errors errs = { 0 };
	struct acme_resolver *r = compile(NULL, 0, &errs);
	CHECK(r != NULL && errs.n == 0);
	if (!r)
		return;
	CHECK(strcmp(r->name, "le") == 0 && r->line == 9);
	CHECK(strcmp(r->ca, ACME_DEFAULT_CA) == 0);
	CHECK(r->challenge == ACME_HTTP01 && r->key_type == JWS_KEY_EC256);
	CHECK(r->renew_before_ms == 0 && !r->email && !r->ca_root && !r->dns_hook && !r->eab_kid);
	CHECK(strcmp(acme_challenge_name(r->challenge), "http-01") == 0);
	acme_resolver_free(r);
}

static void test_all_keys(void)
{
	struct conf_errors errs = { 0 };
	struct acme_resolver *r = COMPILE(&errs, "email", "ops@example.com", "ca",
					  "https://acme-staging-v02.api.letsencrypt.org/directory",
					  "ca_root", "tests/unit/fixtures/root.crt", "challenge", "dns-01",
					  "dns_hook", "/usr/local/bin/hook", "key_type", "rsa4096",
					  "renew_before", "30d", "eab_kid", "kid-1", "eab_hmac",
					  "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W");
	CHECKF(r != NULL && errs.n == 0, "%s", n_messages ? messages[0] : "");
	if (!r)
		return;
	CHECK(strcmp(r->email, "ops@example.com") == 0);
	CHECK(strstr(r->ca, "staging") != NULL);
	CHECK(r->ca_root_pem && strstr(r->ca_root_pem, "BEGIN CERTIFICATE"));
	CHECK(r->challenge == ACME_DNS01 && strcmp(r->dns_hook, "/usr/local/bin/hook") == 0);
	CHECK(r->key_type == JWS_KEY_RSA4096);
	CHECK(r->renew_before_ms == 30LL * 86400 * 1000);
	CHECK(r->eab_hmac_len == 48 && strcmp(r->eab_kid, "kid-1") == 0);

	/* a copy is equal; any setting that matters makes it differ; entrypoint does not */
	struct acme_resolver *c = acme_resolver_copy(r);
	CHECK(c && acme_resolver_equal(r, c));
	if (c) {
		c->entrypoint = strdup("web");
		CHECK(acme_resolver_equal(r, c));
		c->key_type = JWS_KEY_EC256;
		CHECK(!acme_resolver_equal(r, c));
		c->key_type = r->key_type;
		c->eab_hmac[0] ^= 1;
		CHECK(!acme_resolver_equal(r, c));
		c->eab_hmac[0] ^= 1;
		free(c->email);
		c->email = NULL;
		CHECK(!acme_resolver_equal(r, c));
		acme_resolver_free(c);
	}
	acme_resolver_free(r);
}

static void test_bad_values(void)
{
	struct conf_errors errs = { 0 };
	struct acme_resolver *r = COMPILE(&errs, "email", "not an address", "ca", "http://x/dir",
					  "challenge", "http-02", "key_type", "ec521", "renew_before",
					  "soon", "eab_kid", "k", "colour", "blue", "email", "a@b.example");
	CHECK(r == NULL);
	CHECK(has_message("edge.ini:10: email: 'not an address' is not an e-mail address"));
	CHECK(has_message("edge.ini:11: ca: 'http://x/dir' is not an https:// URL"));
	CHECK(has_message("edge.ini:12: challenge: 'http-02' is not http-01, tls-alpn-01 or dns-01"));
	CHECK(has_message("edge.ini:13: key_type: 'ec521' is not ec256, ec384, rsa2048 or rsa4096"));
	CHECK(has_message("edge.ini:14: renew_before: 'soon' is not a duration"));
	CHECK(has_message("edge.ini:15: eab_kid and eab_hmac go together"));
	CHECK(has_message("edge.ini:16: [acme le]: unknown key 'colour'"));
	CHECK(has_message("edge.ini:17: email: set twice (first on line 10)"));

	r = COMPILE(&errs, "challenge", "dns-01");
	CHECK(r == NULL && has_message("edge.ini:10: challenge = dns-01 needs dns_hook"));
	r = COMPILE(&errs, "dns_hook", "/bin/true");
	CHECK(r == NULL && has_message("dns_hook: only used with challenge = dns-01"));
	r = COMPILE(&errs, "eab_kid", "k", "eab_hmac", "not base64!");
	CHECK(r == NULL && has_message("eab_hmac: not base64url"));
	r = COMPILE(&errs, "ca_root", "/nonexistent/ca.pem");
	CHECK(r == NULL && has_message("edge.ini:10: ca_root: /nonexistent/ca.pem: No such file"));
	r = COMPILE(&errs, "ca_root", "tests/unit/fixtures/garbage.pem");
	CHECK(r == NULL && has_message("ca_root: tests/unit/fixtures/garbage.pem:"));
	r = COMPILE(&errs, "renew_before", "0s");
	CHECK(r == NULL && has_message("renew_before: '0s'"));
	r = COMPILE(&errs, "email", "a@b@c");
	CHECK(r == NULL && has_message("is not an e-mail address"));
}

static void test_domains(void)
{
	struct conf_errors errs = { 0 };
	struct acme_resolver *http = compile(NULL, 0, &errs);
	struct acme_resolver *dns = COMPILE(&errs, "challenge", "dns-01", "dns_hook", "hook");
	char err[200];
	CHECK(http && dns);
	if (!http || !dns)
		return;
	const char *ok[] = { "example.com", "www.example.com", "a-b.c_d.example", "x1.example" };
	CHECK(acme_check_domains(http, ok, 4, err, sizeof(err)) == 0);
	const char *wild[] = { "example.com", "*.example.com" };
	CHECK(acme_check_domains(http, wild, 2, err, sizeof(err)) == -1);
	CHECKF(strstr(err, "'*.example.com': wildcard names need challenge = dns-01 in [acme le]"),
	       "%s", err);
	CHECK(acme_check_domains(dns, wild, 2, err, sizeof(err)) == 0);
	static const char *const bad[] = { "", "-", "a..b", ".a", "a.", "a b", "*", "*.", "a.*.b",
					   "w*.example", "exa$mple.com", "é.example", "-a.example",
					   "a-.example", "a.example-" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECKF(acme_check_domains(dns, &bad[i], 1, err, sizeof(err)) == -1, "%s", bad[i]);
	}
	char label[70], longname[300];
	memset(label, 'a', 64);
	label[64] = '\0';
	const char *one = label;
	CHECK(acme_check_domains(http, &one, 1, err, sizeof(err)) == -1); /* 64-byte label */
	label[63] = '\0';
	CHECK(acme_check_domains(http, &one, 1, err, sizeof(err)) == 0);
	snprintf(longname, sizeof(longname), "%s.%s.%s.%s", label, label, label, label); /* 255 */
	one = longname;
	CHECK(acme_check_domains(http, &one, 1, err, sizeof(err)) == -1);
	CHECK(acme_check_domains(http, NULL, 0, err, sizeof(err)) == -1);
	CHECK(strstr(err, "no names") != NULL);
	const char *many[ACME_MAX_DOMAINS + 1];
	for (size_t i = 0; i <= ACME_MAX_DOMAINS; i++)
		many[i] = "a.example";
	CHECK(acme_check_domains(http, many, ACME_MAX_DOMAINS, err, sizeof(err)) == 0);
	CHECK(acme_check_domains(http, many, ACME_MAX_DOMAINS + 1, err, sizeof(err)) == -1);
	acme_resolver_free(http);
	acme_resolver_free(dns);
}

TEST_MAIN("acme_config", TEST(test_defaults), TEST(test_all_keys), TEST(test_bad_values),
	  TEST(test_domains))
