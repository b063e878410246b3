/* acme_config.c - [acme NAME] sections: every key checked and compiled into a
 * struct acme_resolver (SPEC §3), the names a router may ask for, and the copy and
 * comparison acme_sync uses to tell a changed section from an unchanged one. */
#include "acme.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "confval.h"
#include "fsutil.h"
#include "http_client.h"
#include "jws.h"

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void wipe(void *p, size_t len)
{
	volatile unsigned char *v = p;
	while (len--)
		*v++ = 0;
}

void acme_resolver_free(struct acme_resolver *r)
{
	if (!r)
		return;
	free(r->name);
	free(r->email);
	free(r->ca);
	free(r->ca_root);
	free(r->ca_root_pem);
	free(r->entrypoint);
	free(r->dns_hook);
	free(r->eab_kid);
	if (r->eab_hmac) {
		wipe(r->eab_hmac, r->eab_hmac_len);
		free(r->eab_hmac);
	}
	free(r);
}

static const char *const challenge_names[] = { "http-01", "tls-alpn-01", "dns-01" };

const char *acme_challenge_name(int challenge)
{
	return challenge >= 0 && challenge < 3 ? challenge_names[challenge] : "authorization";
}

/* An e-mail address good enough for a mailto: URL (RFC 8555 §7.3): one '@', no
 * spaces, commas or characters that would need escaping in JSON or the URL. */
static bool email_ok(const char *s)
{
	const char *at = strchr(s, '@');
	if (!at || at == s || !at[1] || strchr(at + 1, '@') || strlen(s) > 254)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || strchr("\",;<>()[]\\%?#", *p))
			return false;
	return true;
}

struct acme_resolver *acme_resolver_compile(const struct conf_kv *kv, size_t n, const char *name,
					    int line, const char *file, struct conf_errors *errs)
{
	static const char *const keys[] = { "email", "ca", "ca_root", "challenge", "entrypoint",
					     "dns_hook", "key_type", "renew_before", "eab_kid",
					     "eab_hmac" };
	enum { K_EMAIL, K_CA, K_CA_ROOT, K_CHALLENGE, K_ENTRYPOINT, K_DNS_HOOK, K_KEY_TYPE,
	       K_RENEW_BEFORE, K_EAB_KID, K_EAB_HMAC, NKEYS };
	const struct conf_kv *seen[NKEYS] = { 0 };
	struct acme_resolver *r = calloc(1, sizeof(*r));
	size_t before = errs->n;

	if (!r || !(r->name = strdup(name))) {
		conf_error(errs, file, line, "[acme %s]: out of memory", name);
		acme_resolver_free(r);
		return NULL;
	}
	r->line = line;
	r->challenge = ACME_HTTP01;
	r->key_type = JWS_KEY_EC256;
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;
		while (k < NKEYS && strcmp(kv[i].key, keys[k]) != 0)
			k++;
		if (k == NKEYS) {
			conf_error(errs, file, kv[i].line, "[acme %s]: unknown key '%s'", name, kv[i].key);
			continue;
		}
		if (seen[k]) {
			conf_error(errs, file, kv[i].line, "%s: set twice (first on line %d)", kv[i].key,
				   seen[k]->line);
			continue;
		}
		seen[k] = &kv[i];
	}
	const struct conf_kv *v;
	if ((v = seen[K_EMAIL])) {
		if (!email_ok(v->value))
			conf_error(errs, file, v->line, "email: '%s' is not an e-mail address", v->value);
		r->email = strdup(v->value);
	}
	r->ca = strdup(seen[K_CA] ? seen[K_CA]->value : ACME_DEFAULT_CA);
	if ((v = seen[K_CA]) && (strncmp(v->value, "https://", 8) != 0 || strlen(v->value) <= 8 ||
				 strpbrk(v->value, " \t\"\\")))
		conf_error(errs, file, v->line,
			   "ca: '%s' is not an https:// URL of an ACME directory (RFC 8555 needs HTTPS)",
			   v->value);
	if ((v = seen[K_CA_ROOT])) {
		char err[300];
		struct http_trust t = { 0 };
		r->ca_root = strdup(v->value);
		if (fs_read_file(v->value, 1024 * 1024, &r->ca_root_pem, &r->ca_root_len, err,
				 sizeof(err)) < 0)
			conf_error(errs, file, v->line, "ca_root: %s", err);
		else if (http_trust_add_pem(&t, r->ca_root_pem, r->ca_root_len, err, sizeof(err)) < 0)
			conf_error(errs, file, v->line, "ca_root: %s: %s", v->value, err);
		http_trust_free(&t);
	}
	if ((v = seen[K_CHALLENGE])) {
		int c = -1;
		for (int i = 0; i < 3; i++)
			if (strcmp(v->value, challenge_names[i]) == 0)
				c = i;
		if (c < 0)
			conf_error(errs, file, v->line,
				   "challenge: '%s' is not http-01, tls-alpn-01 or dns-01", v->value);
		else
			r->challenge = c;
	}
	if ((v = seen[K_ENTRYPOINT])) {
		r->entrypoint = strdup(v->value);
		r->entrypoint_line = v->line;
		if (r->challenge == ACME_DNS01)
			conf_error(errs, file, v->line, "entrypoint: not used by challenge = dns-01");
	}
	if ((v = seen[K_DNS_HOOK])) {
		r->dns_hook = strdup(v->value);
		if (r->challenge != ACME_DNS01)
			conf_error(errs, file, v->line, "dns_hook: only used with challenge = dns-01");
		else if (v->value[0] == '\0')
			conf_error(errs, file, v->line, "dns_hook: empty");
	} else if (r->challenge == ACME_DNS01) {
		conf_error(errs, file, seen[K_CHALLENGE]->line,
			   "challenge = dns-01 needs dns_hook = PROGRAM (run as PROGRAM add|del DOMAIN VALUE)");
	}
	if ((v = seen[K_KEY_TYPE])) {
		int t = jws_key_type_parse(v->value);
		if (t < 0)
			conf_error(errs, file, v->line,
				   "key_type: '%s' is not ec256, ec384, rsa2048 or rsa4096", v->value);
		else
			r->key_type = t;
	}
	if ((v = seen[K_RENEW_BEFORE]) &&
	    (confval_duration(v->value, &r->renew_before_ms) < 0 || r->renew_before_ms <= 0))
		conf_error(errs, file, v->line, "renew_before: '%s' is not a duration such as 720h or 30d",
			   v->value);
	if ((v = seen[K_EAB_KID]))
		r->eab_kid = strdup(v->value);
	if ((v = seen[K_EAB_HMAC])) {
		size_t len = strlen(v->value);
		r->eab_hmac = malloc(len + 1);
		long m = r->eab_hmac ? b64url_decode(v->value, len, r->eab_hmac, len + 1) : -1;
		if (m <= 0)
			conf_error(errs, file, v->line, "eab_hmac: not base64url (the key as the CA gave it)");
		else
			r->eab_hmac_len = (size_t)m;
	}
	if (!!seen[K_EAB_KID] != !!seen[K_EAB_HMAC])
		conf_error(errs, file, (seen[K_EAB_KID] ? seen[K_EAB_KID] : seen[K_EAB_HMAC])->line,
			   "eab_kid and eab_hmac go together (external account binding)");
	if (errs->n != before || !r->ca || (seen[K_EMAIL] && !r->email)) {
		if (errs->n == before)
			conf_error(errs, file, line, "[acme %s]: out of memory", name);
		acme_resolver_free(r);
		return NULL;
	}
	return r;
}

/* LDH labels (RFC 1123 §2.1: letters, digits, hyphens, no hyphen at either end) plus
 * '_', 1..63 bytes each, 253 in all, and an optional "*." first label. */
static bool dns_name_ok(const char *s, bool *wildcard)
{
	size_t label = 0, len = strlen(s);

	*wildcard = len > 2 && s[0] == '*' && s[1] == '.';
	if (*wildcard) {
		s += 2;
		len -= 2;
	}
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (c == '-' && label == 0)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_') || ++label > 63)
			return false;
	}
	return label > 0 && s[len - 1] != '-';
}

int acme_check_domains(const struct acme_resolver *r, const char *const *domains, size_t n,
		       char *err, size_t errlen)
{
	if (n == 0) {
		snprintf(err, errlen, "no names to certify (add Host() to the rule or set tls_domains)");
		return -1;
	}
	if (n > ACME_MAX_DOMAINS) {
		snprintf(err, errlen, "%zu names: a certificate holds at most %d", n, ACME_MAX_DOMAINS);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		bool wild;
		if (!dns_name_ok(domains[i], &wild)) {
			snprintf(err, errlen, "'%s' is not a DNS name", domains[i]);
			return -1;
		}
		if (wild && r->challenge != ACME_DNS01) {
			snprintf(err, errlen, "'%s': wildcard names need challenge = dns-01 in [acme %s]",
				 domains[i], r->name);
			return -1;
		}
	}
	return 0;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

bool acme_resolver_equal(const struct acme_resolver *a, const struct acme_resolver *b)
{
	return str_eq(a->email, b->email) && str_eq(a->ca, b->ca) && str_eq(a->ca_root, b->ca_root) &&
	       a->ca_root_len == b->ca_root_len &&
	       (a->ca_root_len == 0 || memcmp(a->ca_root_pem, b->ca_root_pem, a->ca_root_len) == 0) &&
	       a->challenge == b->challenge && str_eq(a->dns_hook, b->dns_hook) &&
	       a->key_type == b->key_type && a->renew_before_ms == b->renew_before_ms &&
	       str_eq(a->eab_kid, b->eab_kid) && a->eab_hmac_len == b->eab_hmac_len &&
	       (a->eab_hmac_len == 0 || memcmp(a->eab_hmac, b->eab_hmac, a->eab_hmac_len) == 0);
}

struct acme_resolver *acme_resolver_copy(const struct acme_resolver *s)
{
	struct acme_resolver *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	*r = *s;
	r->name = xstrdup(s->name);
	r->email = xstrdup(s->email);
	r->ca = xstrdup(s->ca);
	r->ca_root = xstrdup(s->ca_root);
	r->entrypoint = xstrdup(s->entrypoint);
	r->dns_hook = xstrdup(s->dns_hook);
	r->eab_kid = xstrdup(s->eab_kid);
	r->ca_root_pem = NULL;
	r->eab_hmac = NULL;
	if (s->ca_root_pem && (r->ca_root_pem = malloc(s->ca_root_len + 1))) {
		memcpy(r->ca_root_pem, s->ca_root_pem, s->ca_root_len);
		r->ca_root_pem[s->ca_root_len] = '\0';
	}
	if (s->eab_hmac && (r->eab_hmac = malloc(s->eab_hmac_len)))
		memcpy(r->eab_hmac, s->eab_hmac, s->eab_hmac_len);
	if (!r->name || !r->ca || (s->email && !r->email) || (s->ca_root && !r->ca_root) ||
	    (s->dns_hook && !r->dns_hook) || (s->eab_kid && !r->eab_kid) ||
	    (s->ca_root_pem && !r->ca_root_pem) || (s->eab_hmac && !r->eab_hmac) ||
	    (s->entrypoint && !r->entrypoint)) {
		acme_resolver_free(r);
		return NULL;
	}
	return r;
}
