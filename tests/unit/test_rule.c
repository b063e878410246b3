/* test_rule.c - the Traefik v3 rule language: every matcher matching and not matching,
 * host canonicalisation, precedence, quoting, query decoding, and compile errors with
 * their columns. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "rule.h"
#include "test.h"

#define MAX_FIELDS 8

/* A request built from short strings, owning the bytes its slices point to. */
struct request {
	char line[512];
	char heads[512];
	struct http_field fields[MAX_FIELDS];
	struct sockaddr_storage peer;
	struct rule_subject s;
};

/* req: "METHOD|host|target" ("/path?query"); heads: "Name: value\n..." or NULL;
 * client: an IP address, NULL for the default 192.0.2.10, "-" for no address. */
static void request_init(struct request *r, const char *req, const char *heads,
			 const char *client)
{
	char *method, *host, *target, *q, *line;

	memset(r, 0, sizeof(*r));
	snprintf(r->line, sizeof(r->line), "%s", req);
	method = r->line;
	host = strchr(method, '|');
	*host++ = '\0';
	target = strchr(host, '|');
	*target++ = '\0';
	r->s.method = slice_cstr(method);
	r->s.host = slice_cstr(host);
	q = strchr(target, '?');
	if (q) {
		*q++ = '\0';
		r->s.query = slice_cstr(q);
	}
	r->s.path = slice_cstr(target);

	snprintf(r->heads, sizeof(r->heads), "%s", heads ? heads : "");
	for (line = r->heads; *line && r->s.nfields < MAX_FIELDS;) {
		char *end = strchr(line, '\n'), *colon;
		if (end)
			*end = '\0';
		colon = strchr(line, ':');
		if (colon) {
			struct http_field *f = &r->fields[r->s.nfields++];
			*colon = '\0';
			f->name = slice_cstr(line);
			colon++;
			while (*colon == ' ')
				colon++;
			f->value = slice_cstr(colon);
		}
		if (!end)
			break;
		line = end + 1;
	}
	r->s.fields = r->fields;

	if (!client)
		client = "192.0.2.10";
	if (strcmp(client, "-") == 0)
		return;
	if (strchr(client, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&r->peer;
		s6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, client, &s6->sin6_addr);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&r->peer;
		s4->sin_family = AF_INET;
		inet_pton(AF_INET, client, &s4->sin_addr);
	}
	r->s.client = (const struct sockaddr *)&r->peer;
}

struct match_case {
	const char *rule;
	const char *req;     /* "METHOD|host|target" */
	const char *heads;   /* NULL: none */
	const char *client;  /* NULL: 192.0.2.10 */
	bool want;
};

static const struct match_case match_cases[] = {
	/* Host: case-insensitive, port and one trailing dot ignored */
	{ "Host(`example.com`)", "GET|example.com|/", NULL, NULL, true },
	{ "Host(`example.com`)", "GET|EXAMPLE.Com|/", NULL, NULL, true },
	{ "Host(`Example.COM`)", "GET|example.com|/", NULL, NULL, true },
	{ "Host(`example.com`)", "GET|example.com:8080|/", NULL, NULL, true },
	{ "Host(`example.com`)", "GET|example.com.|/", NULL, NULL, true },
	{ "Host(`example.com`)", "GET|example.com.:443|/", NULL, NULL, true },
	{ "Host(`example.com.`)", "GET|example.com|/", NULL, NULL, true },
	{ "Host(`example.com`)", "GET|www.example.com|/", NULL, NULL, false },
	{ "Host(`example.com`)", "GET|example.co|/", NULL, NULL, false },
	{ "Host(`example.com`)", "GET|example.com.evil|/", NULL, NULL, false },
	{ "Host(`example.com`)", "GET|example.com..|/", NULL, NULL, false },
	{ "Host(`example.com`)", "GET||/", NULL, NULL, false },
	{ "Host(`example.com:8080`)", "GET|example.com:8080|/", NULL, NULL, false },
	{ "Host(`127.0.0.1`)", "GET|127.0.0.1:80|/", NULL, NULL, true },
	/* IPv6 literal hosts: brackets and port removed, either spelling in the rule */
	{ "Host(`[::1]`)", "GET|[::1]:8080|/", NULL, NULL, true },
	{ "Host(`::1`)", "GET|[::1]:8080|/", NULL, NULL, true },
	{ "Host(`[::1]`)", "GET|[::1]|/", NULL, NULL, true },
	{ "Host(`::1`)", "GET|::1|/", NULL, NULL, true },
	{ "Host(`[2001:DB8::1]`)", "GET|[2001:db8::1]:443|/", NULL, NULL, true },
	{ "Host(`[::1]`)", "GET|[::2]:8080|/", NULL, NULL, false },
	{ "Host(`[::1]`)", "GET|[::1]x|/", NULL, NULL, false },
	/* several names mean any of them */
	{ "Host(`a.com`, `b.com`)", "GET|b.com|/", NULL, NULL, true },
	{ "Host(`a.com`, `b.com`)", "GET|a.com|/", NULL, NULL, true },
	{ "Host(`a.com`, `b.com`)", "GET|c.com|/", NULL, NULL, false },

	/* HostRegexp: against the lowercase host without port; a search, anchors as written */
	{ "HostRegexp(`^[a-z]+\\.example\\.com$`)", "GET|api.example.com|/", NULL, NULL, true },
	{ "HostRegexp(`^[a-z]+\\.example\\.com$`)", "GET|API.Example.COM:443|/", NULL, NULL, true },
	{ "HostRegexp(`^[a-z]+\\.example\\.com$`)", "GET|example.com|/", NULL, NULL, false },
	{ "HostRegexp(`^[a-z]+\\.example\\.com$`)", "GET|a.b.example.com|/", NULL, NULL, false },
	{ "HostRegexp(`example`)", "GET|www.example.org|/", NULL, NULL, true },
	{ "HostRegexp(`^api\\d+\\.`)", "GET|api42.example.com|/", NULL, NULL, true },
	{ "HostRegexp(`^api\\d+\\.`)", "GET|apix.example.com|/", NULL, NULL, false },
	{ "HostRegexp(`^::1$`)", "GET|[::1]:80|/", NULL, NULL, true },
	{ "HostRegexp(`^a\\.`, `^b\\.`)", "GET|b.example|/", NULL, NULL, true },
	{ "HostRegexp(`^a\\.`, `^b\\.`)", "GET|c.example|/", NULL, NULL, false },

	/* Path: exact, case-sensitive, no query */
	{ "Path(`/api`)", "GET|h|/api", NULL, NULL, true },
	{ "Path(`/api`)", "GET|h|/api?x=1", NULL, NULL, true },
	{ "Path(`/api`)", "GET|h|/api/", NULL, NULL, false },
	{ "Path(`/api`)", "GET|h|/API", NULL, NULL, false },
	{ "Path(`/api`)", "GET|h|/ap", NULL, NULL, false },
	{ "Path(`/a`, `/b`)", "GET|h|/b", NULL, NULL, true },
	/* PathPrefix: a string prefix, as in Traefik v3 */
	{ "PathPrefix(`/api`)", "GET|h|/api/v1", NULL, NULL, true },
	{ "PathPrefix(`/api`)", "GET|h|/api", NULL, NULL, true },
	{ "PathPrefix(`/api`)", "GET|h|/apiv", NULL, NULL, true },
	{ "PathPrefix(`/api`)", "GET|h|/ap", NULL, NULL, false },
	{ "PathPrefix(`/api`)", "GET|h|/", NULL, NULL, false },
	{ "PathPrefix(`/api`)", "GET|h|/v1/api", NULL, NULL, false },
	{ "PathPrefix(`/`)", "GET|h|/anything", NULL, NULL, true },
	/* PathRegexp: search on the path, Perl shorthands work on every libc */
	{ "PathRegexp(`^/v[0-9]+/`)", "GET|h|/v2/users", NULL, NULL, true },
	{ "PathRegexp(`^/v[0-9]+/`)", "GET|h|/v/users", NULL, NULL, false },
	{ "PathRegexp(`\\.php$`)", "GET|h|/index.php?x=.html", NULL, NULL, true },
	{ "PathRegexp(`\\.php$`)", "GET|h|/index.phps", NULL, NULL, false },
	{ "PathRegexp(`^/u/\\w+$`)", "GET|h|/u/bob_1", NULL, NULL, true },
	{ "PathRegexp(`^/u/\\w+$`)", "GET|h|/u/bob-1", NULL, NULL, false },
	{ "PathRegexp(`^/[\\d]+$`)", "GET|h|/123", NULL, NULL, true },
	{ "PathRegexp(`^/[\\d]+$`)", "GET|h|/12a", NULL, NULL, false },
	{ "PathRegexp(`^/\\D+$`)", "GET|h|/abc", NULL, NULL, true },
	{ "PathRegexp(`^/\\D+$`)", "GET|h|/ab1", NULL, NULL, false },
	{ "PathRegexp(`^/a\\Sb$`)", "GET|h|/a-b", NULL, NULL, true },
	{ "PathRegexp(`^/[]x]$`)", "GET|h|/]", NULL, NULL, true },
	{ "PathRegexp(`^/[[:digit:]\\w]+$`)", "GET|h|/a1_", NULL, NULL, true },
	/* realistic repetition stays within the size bound */
	{ "HostRegexp(`^([a-z0-9-]{1,63}\\.){1,10}example\\.com$`)", "GET|a.b-c.example.com|/", NULL,
	  NULL, true },
	{ "HostRegexp(`^\\w{1,253}$`)", "GET|localhost|/", NULL, NULL, true },
	{ "PathRegexp(`^/a{2}$`)", "GET|h|/aa", NULL, NULL, true },
	{ "PathRegexp(`^/a{2}$`)", "GET|h|/aaa", NULL, NULL, false },
	{ "PathRegexp(`((a{16}){16}){16}`)", "GET|h|/a", NULL, NULL, false }, /* 4096: allowed */
	{ "PathRegexp(`^/a{255}`)", "GET|h|/aa", NULL, NULL, false },
	{ "PathRegexp(`^/a*?b+?c??$`)", "GET|h|/aabbb", NULL, NULL, true }, /* RE2 non-greedy */
	{ "PathRegexp(`^/(a*)*$`)", "GET|h|/aaa", NULL, NULL, true },
	{ "PathRegexp(`^/a\\*+$`)", "GET|h|/a**", NULL, NULL, true },
	{ "PathRegexp(`^/[*+]+$`)", "GET|h|/*+*", NULL, NULL, true },
	{ "PathRegexp(`^/[\\D]+$`)", "GET|h|/ab", NULL, NULL, true },
	{ "PathRegexp(`^/[\\D]+$`)", "GET|h|/a1", NULL, NULL, false },
	/* nested repetition costs the engine nothing (other engines copy x for x+) */
	{ "PathRegexp(`^/(((((((((((a+)+)+)+)+)+)+)+)+)+)+)+$`)", "GET|h|/aaa", NULL, NULL, true },
	{ "PathRegexp(`^/(?:v1|v2)/`)", "GET|h|/v2/x", NULL, NULL, true },
	/* leftmost-first or longest makes no difference to whether a rule matches */
	{ "PathRegexp(`^/(a|ab)c$`)", "GET|h|/abc", NULL, NULL, true },

	/* Method: the rule's method uppercased, compared case-sensitively */
	{ "Method(`GET`)", "GET|h|/", NULL, NULL, true },
	{ "Method(`GET`)", "POST|h|/", NULL, NULL, false },
	{ "Method(`GET`)", "get|h|/", NULL, NULL, false },
	{ "Method(`post`)", "POST|h|/", NULL, NULL, true },
	{ "Method(`GET`, `HEAD`)", "HEAD|h|/", NULL, NULL, true },
	{ "Method(`GET`, `HEAD`)", "PUT|h|/", NULL, NULL, false },

	/* Header: name case-insensitive, value exact, any of several fields */
	{ "Header(`X-Env`, `prod`)", "GET|h|/", "X-Env: prod", NULL, true },
	{ "Header(`X-Env`, `prod`)", "GET|h|/", "x-env: prod", NULL, true },
	{ "Header(`x-env`, `prod`)", "GET|h|/", "X-ENV: prod", NULL, true },
	{ "Header(`X-Env`, `prod`)", "GET|h|/", "X-Env: Prod", NULL, false },
	{ "Header(`X-Env`, `prod`)", "GET|h|/", "X-Env: prod2", NULL, false },
	{ "Header(`X-Env`, `prod`)", "GET|h|/", "X-Other: prod", NULL, false },
	{ "Header(`X-Env`, `prod`)", "GET|h|/", NULL, NULL, false },
	{ "Header(`X-Env`, `prod`)", "GET|h|/", "X-Env: dev\nX-Env: prod", NULL, true },
	{ "Header(`X-Env`, `a, b`)", "GET|h|/", "X-Env: a, b", NULL, true },
	{ "Header(`X-Empty`, ``)", "GET|h|/", "X-Empty: ", NULL, true },
	{ "Header(`X-Empty`, ``)", "GET|h|/", NULL, NULL, false },
	/* HeaderRegexp: any field's value matches */
	{ "HeaderRegexp(`User-Agent`, `^curl/`)", "GET|h|/", "User-Agent: curl/8.5", NULL, true },
	{ "HeaderRegexp(`User-Agent`, `^curl/`)", "GET|h|/", "user-agent: curl/7", NULL, true },
	{ "HeaderRegexp(`User-Agent`, `^curl/`)", "GET|h|/", "User-Agent: Mozilla curl/8", NULL,
	  false },
	{ "HeaderRegexp(`User-Agent`, `^curl/`)", "GET|h|/", "Accept: curl/8", NULL, false },
	{ "HeaderRegexp(`X-A`, `^b$`)", "GET|h|/", "X-A: a\nX-A: b", NULL, true },
	{ "HeaderRegexp(`X-A`, `b`)", "GET|h|/", NULL, NULL, false },

	/* Query(k, v): pairs split on '&', first '=', both sides percent-decoded, '+' = space */
	{ "Query(`mobile`, `true`)", "GET|h|/?mobile=true", NULL, NULL, true },
	{ "Query(`mobile`, `true`)", "GET|h|/?a=1&mobile=true&b", NULL, NULL, true },
	{ "Query(`mobile`, `true`)", "GET|h|/?mobile=false", NULL, NULL, false },
	{ "Query(`mobile`, `true`)", "GET|h|/?Mobile=true", NULL, NULL, false },
	{ "Query(`mobile`, `true`)", "GET|h|/?mobile=true2", NULL, NULL, false },
	{ "Query(`mobile`, `true`)", "GET|h|/", NULL, NULL, false },
	{ "Query(`mobile`, `true`)", "GET|h|/?mobile=true;x=1", NULL, NULL, false },
	{ "Query(`mobile`, `true`)", "GET|h|/?mobile=false&mobile=true", NULL, NULL, true },
	{ "Query(`q`, `a b`)", "GET|h|/?q=a+b", NULL, NULL, true },
	{ "Query(`q`, `a b`)", "GET|h|/?q=a%20b", NULL, NULL, true },
	{ "Query(`q`, `a b`)", "GET|h|/?q=a%2Bb", NULL, NULL, false },
	{ "Query(`q`, `a+b`)", "GET|h|/?q=a%2bb", NULL, NULL, true },
	{ "Query(`q`, `a+b`)", "GET|h|/?q=a+b", NULL, NULL, false },
	{ "Query(`a b`, `1`)", "GET|h|/?a+b=1", NULL, NULL, true },
	{ "Query(`a b`, `1`)", "GET|h|/?a%20b=1", NULL, NULL, true },
	{ "Query(`q`, `x=y`)", "GET|h|/?q=x=y", NULL, NULL, true },
	{ "Query(`q`, `A`)", "GET|h|/?q=%41", NULL, NULL, true },
	{ "Query(`q`, `x`)", "GET|h|/?q=%zz&q=x", NULL, NULL, true },
	{ "Query(`q`, `x`)", "GET|h|/?q=%7", NULL, NULL, false },
	{ "Query(`q`, `x`)", "GET|h|/?q=x%", NULL, NULL, false },
	{ "Query(`q`, `1`)", "GET|h|/?&&q=1&", NULL, NULL, true },
	{ "Query(`q`, ``)", "GET|h|/?q", NULL, NULL, true },
	{ "Query(`q`, ``)", "GET|h|/?q=", NULL, NULL, true },
	{ "Query(`q`, ``)", "GET|h|/?q=1", NULL, NULL, false },
	/* Query(k): the key is present, whatever its value */
	{ "Query(`debug`)", "GET|h|/?debug", NULL, NULL, true },
	{ "Query(`debug`)", "GET|h|/?debug=1", NULL, NULL, true },
	{ "Query(`debug`)", "GET|h|/?x=1&debug=", NULL, NULL, true },
	{ "Query(`debug`)", "GET|h|/?x=1", NULL, NULL, false },
	{ "Query(`debug`)", "GET|h|/?debugx=1", NULL, NULL, false },
	{ "Query(`debug`)", "GET|h|/", NULL, NULL, false },
	{ "Query(`debug`)", "GET|h|/?debug=%zz", NULL, NULL, false }, /* Go drops the pair */
	{ "Query(`debug`)", "GET|h|/?debu%67", NULL, NULL, true },
	{ "Query(`debug`)", "GET|h|/?debug=1;x=2", NULL, NULL, false }, /* Go drops ';' pairs */
	{ "Query(`debug`)", "GET|h|/?debug=1;x=2&debug", NULL, NULL, true },
	/* QueryRegexp: any value of the key matches */
	{ "QueryRegexp(`id`, `^[0-9]+$`)", "GET|h|/?id=42", NULL, NULL, true },
	{ "QueryRegexp(`id`, `^[0-9]+$`)", "GET|h|/?id=4a", NULL, NULL, false },
	{ "QueryRegexp(`id`, `^[0-9]+$`)", "GET|h|/?id=x&id=7", NULL, NULL, true },
	{ "QueryRegexp(`id`, `^[0-9]+$`)", "GET|h|/?idx=1", NULL, NULL, false },
	{ "QueryRegexp(`id`, `^[0-9]+$`)", "GET|h|/?id=%34%32", NULL, NULL, true },
	{ "QueryRegexp(`id`, `^[0-9]+$`)", "GET|h|/", NULL, NULL, false },
	{ "QueryRegexp(`q`, `^a b$`)", "GET|h|/?q=a+b", NULL, NULL, true },
	{ "QueryRegexp(`q`, `^a$`)", "GET|h|/?q=a%00b", NULL, NULL, false },
	{ "!QueryRegexp(`q`, `^a$`)", "GET|h|/?q=a%00b", NULL, NULL, true },

	/* ClientIP: the peer address, IPv4-mapped peers match IPv4 ranges */
	{ "ClientIP(`192.0.2.0/24`)", "GET|h|/", NULL, "192.0.2.10", true },
	{ "ClientIP(`192.0.2.0/24`)", "GET|h|/", NULL, "198.51.100.1", false },
	{ "ClientIP(`192.0.2.0/24`)", "GET|h|/", NULL, "::ffff:192.0.2.5", true },
	{ "ClientIP(`192.0.2.10`)", "GET|h|/", NULL, "192.0.2.10", true },
	{ "ClientIP(`192.0.2.10`)", "GET|h|/", NULL, "192.0.2.11", false },
	{ "ClientIP(`2001:db8::/32`)", "GET|h|/", NULL, "2001:db8::1", true },
	{ "ClientIP(`2001:db8::/32`)", "GET|h|/", NULL, "192.0.2.10", false },
	{ "ClientIP(`10.0.0.0/8`, `192.0.2.10`)", "GET|h|/", NULL, "192.0.2.10", true },
	{ "ClientIP(`10.0.0.0/8`, `192.0.2.10`)", "GET|h|/", NULL, "192.0.2.9", false },
	{ "ClientIP(`0.0.0.0/0`)", "GET|h|/", NULL, "-", false },

	/* precedence: '!' over '&&' over '||' */
	{ "Host(`a.com`) || Host(`b.com`) && Path(`/nope`)", "GET|a.com|/x", NULL, NULL, true },
	{ "Host(`b.com`) && Path(`/nope`) || Host(`a.com`)", "GET|a.com|/x", NULL, NULL, true },
	{ "Host(`a.com`) && Path(`/x`) || Host(`b.com`) && Path(`/y`)", "GET|b.com|/y", NULL,
	  NULL, true },
	{ "Host(`a.com`) && Path(`/x`) || Host(`b.com`) && Path(`/y`)", "GET|b.com|/x", NULL,
	  NULL, false },
	{ "(Host(`a.com`) || Host(`b.com`)) && Path(`/nope`)", "GET|a.com|/x", NULL, NULL, false },
	{ "!Host(`a.com`) && Path(`/x`)", "GET|b.com|/y", NULL, NULL, false },
	{ "!Host(`a.com`) && Path(`/x`)", "GET|b.com|/x", NULL, NULL, true },
	{ "!Host(`a.com`) || Path(`/x`)", "GET|a.com|/x", NULL, NULL, true },
	{ "!Host(`a.com`) || Path(`/x`)", "GET|a.com|/y", NULL, NULL, false },
	{ "!(Host(`a.com`) || Host(`b.com`))", "GET|a.com|/", NULL, NULL, false },
	{ "!(Host(`a.com`) || Host(`b.com`))", "GET|c.com|/", NULL, NULL, true },
	{ "!!Host(`a.com`)", "GET|a.com|/", NULL, NULL, true },
	{ "!(!Host(`a.com`))", "GET|b.com|/", NULL, NULL, false },
	{ "Host(`a.com`) && Path(`/x`) && Method(`GET`)", "GET|a.com|/x", NULL, NULL, true },
	{ "Host(`a.com`) && Path(`/x`) && Method(`GET`)", "POST|a.com|/x", NULL, NULL, false },
	{ "((((Host(`a.com`)))))", "GET|a.com|/", NULL, NULL, true },
	{ "Host(`a.com`) && (Path(`/x`) || (Method(`POST`) && !PathPrefix(`/x`)))", "POST|a.com|/y",
	  NULL, NULL, true },

	/* whitespace anywhere between tokens, none at all */
	{ "  Host( `a.com` )&&Path(`/x`)  ", "GET|a.com|/x", NULL, NULL, true },
	{ "\tHost(\n`a.com`\n,\r\n`b.com`)\t", "GET|b.com|/", NULL, NULL, true },
	{ "Host (`a.com`)", "GET|a.com|/", NULL, NULL, true },
	{ "! Host(`b.com`)", "GET|a.com|/", NULL, NULL, true },
	{ "Host(`a.com`)||Host(`b.com`)", "GET|b.com|/", NULL, NULL, true },
	{ "!(Host(`b.com`))&&(Path(`/x`))", "GET|a.com|/x", NULL, NULL, true },

	/* quoting: double quotes with \" and \\, backticks raw */
	{ "Path(\"/x\")", "GET|h|/x", NULL, NULL, true },
	{ "Host(\"a.com\", `b.com`)", "GET|b.com|/", NULL, NULL, true },
	{ "Header(\"X-Q\", \"say \\\"hi\\\"\")", "GET|h|/", "X-Q: say \"hi\"", NULL, true },
	{ "Path(\"/a\\\\b\")", "GET|h|/a\\b", NULL, NULL, true },
	{ "Path(`/a\\b`)", "GET|h|/a\\b", NULL, NULL, true },
	{ "Path(`/a\"b`)", "GET|h|/a\"b", NULL, NULL, true },
	{ "Path(\"/a`b\")", "GET|h|/a`b", NULL, NULL, true },
	{ "Path(`/a\\\"b`)", "GET|h|/a\\\"b", NULL, NULL, true },
	{ "PathRegexp(\"^/a\\\\.b$\")", "GET|h|/a.b", NULL, NULL, true },
	{ "PathRegexp(\"^/a\\\\.b$\")", "GET|h|/axb", NULL, NULL, false },
};

static void test_match_table(void)
{
	for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
		const struct match_case *c = &match_cases[i];
		char err[256];
		int col = -1;
		struct request req;
		struct rule *r = rule_compile(c->rule, err, sizeof(err), &col);

		CHECKF(r != NULL, "compile %s: col %d: %s", c->rule, col, err);
		if (!r)
			continue;
		CHECKF(col == 0, "%s: col %d on success", c->rule, col);
		request_init(&req, c->req, c->heads, c->client);
		CHECKF(rule_match(r, &req.s) == c->want, "%s against %s [%s] should %s", c->rule,
		       c->req, c->heads ? c->heads : "", c->want ? "match" : "not match");
		rule_free(r);
	}
}

struct bad_case {
	const char *rule;
	int col;
	const char *msg; /* substring of the message */
};

static const struct bad_case bad_cases[] = {
	{ "", 1, "empty rule" },
	{ "   ", 4, "empty rule" },
	{ "Hots(`a`)", 1, "unknown matcher 'Hots'" },
	{ "host(`a`)", 1, "unknown matcher 'host'" },
	{ "Host(`a`) && Pth(`/`)", 14, "unknown matcher 'Pth'" },
	{ "Host", 5, "expected '(' after 'Host'" },
	{ "Host `a`", 6, "expected '('" },
	{ "Host()", 1, "'Host' takes at least 1 argument, got 0" },
	{ "Header(`X`)", 1, "'Header' takes 2 arguments, got 1" },
	{ "Header(`a`, `b`, `c`)", 1, "takes 2 arguments, got 3" },
	{ "Query(`a`, `b`, `c`)", 1, "'Query' takes 1 or 2 arguments, got 3" },
	{ "QueryRegexp(`a`)", 1, "takes 2 arguments" },
	{ "HeaderRegexp(`a`)", 1, "takes 2 arguments" },
	{ "Host(`a`", 5, "unbalanced '('" },
	{ "Host(", 5, "unbalanced '('" },
	{ "Host(`a`,", 5, "unbalanced '('" },
	{ "Host(`a`,)", 10, "expected a quoted string" },
	{ "Host(`a` `b`)", 10, "expected ',' or ')'" },
	{ "Host(`a", 6, "unterminated string" },
	{ "Host(\"a", 6, "unterminated string" },
	{ "Host(\"a\\\")", 6, "unterminated string" },
	{ "Host(\"a\\", 6, "unterminated string" },
	{ "Host('a')", 6, "quoted with" },
	{ "Host(a)", 6, "expected a quoted string" },
	{ "Host(\"a\\nb\")", 8, "unknown escape '\\n'" },
	{ "Host(\"a\\.b\")", 8, "unknown escape" },
	{ "(Host(`a`)", 1, "unbalanced '('" },
	{ "((Host(`a`))", 1, "unbalanced '('" },
	{ "Host(`a`))", 10, "unbalanced ')'" },
	{ ")", 1, "expected a matcher" },
	{ "()", 2, "unexpected ')'" },
	{ "Host(`a`) Path(`/`)", 11, "expected '&&' or '||'" },
	{ "Host(`a`)Host(`b`)", 10, "expected '&&' or '||'" },
	{ "(Host(`a`) Path(`/`))", 12, "expected '&&', '||' or ')'" },
	{ "Host(`a`) & Path(`/`)", 11, "expected '&&'" },
	{ "Host(`a`) | Path(`/`)", 11, "expected '||'" },
	{ "Host(`a`) &&", 13, "unexpected end of rule" },
	{ "Host(`a`) && || Path(`/`)", 14, "expected a matcher" },
	{ "!", 2, "unexpected end of rule" },
	{ "1Host(`a`)", 1, "expected a matcher" },
	{ "Host(`a`) $", 11, "unexpected '$'" },
	{ "Host(`a`) \x01", 11, "byte 0x01" },
	{ "Host(`a`) && \xc3\xa9", 14, "byte 0xc3" },
	/* empty strings where a value is needed */
	{ "Host(``)", 6, "empty argument to 'Host'" },
	{ "Host(`a`, ``)", 11, "empty argument" },
	{ "PathPrefix(``)", 12, "empty argument" },
	{ "Method(``)", 8, "empty argument" },
	{ "Header(``, `v`)", 8, "empty argument" },
	{ "Query(``)", 7, "empty argument" },
	{ "Query(``, `v`)", 7, "empty argument" },
	{ "HostRegexp(``)", 12, "empty argument" },
	{ "QueryRegexp(`q`, ``)", 18, "empty argument" },
	{ "ClientIP(``)", 10, "empty argument" },
	/* values checked at compile time */
	{ "Path(`api`)", 6, "must start with '/'" },
	{ "PathPrefix(`api`)", 12, "must start with '/'" },
	{ "Host(`ex\xc3\xa4mple.com`)", 6, "non-ASCII" },
	{ "HostRegexp(`(`)", 12, "bad regexp in 'HostRegexp'" },
	{ "PathRegexp(`a{2,1}`)", 12, "bad regexp in 'PathRegexp'" },
	{ "PathRegexp(`^/(a)\\1`)", 12, "back-references" },
	{ "PathRegexp(`(?i)^/a`)", 12, "bad regexp" },
	/* found by fuzz_rule: glibc's regcomp doubles the tree per '+', memory exploded */
	{ "PathRegexp(`e++++++++++++++++++++++++++++++++++++++++++`)", 12, "stacked repetition" },
	/* found by fuzz_rule: glibc's regcomp spent 10 s on this */
	{ "PathRegexp(`$z******+*****+t+++!++++++++++`)", 12, "stacked repetition" },
	{ "PathRegexp(`a**`)", 12, "stacked repetition" },
	{ "PathRegexp(`a+*`)", 12, "stacked repetition" },
	{ "PathRegexp(`a{2}{3}`)", 12, "stacked repetition" },
	{ "PathRegexp(`a*??`)", 12, "stacked repetition" },
	{ "PathRegexp(`(((((((((((a+)+)+)+)+)+)+)+)+)+)+)+)+`)", 12, "unexpected ')'" },
	{ "PathRegexp(`(a{255}){255}`)", 12, "too large" },
	{ "PathRegexp(`((a{16}){16}){17}`)", 12, "too large" },
	{ "PathRegexp(`a{1000}`)", 12, "repetition count above 255" },
	{ "PathRegexp(`a{2,256}`)", 12, "repetition count above 255" },
	{ "PathRegexp(`(((((((((((((((((((((((((((((((((a)))))))))))))))))))))))))))))))))`)", 12,
	  "nested too deeply" },
	{ "HeaderRegexp(`X`, `[`)", 19, "bad regexp in 'HeaderRegexp'" },
	{ "QueryRegexp(`q`, `a{2,1}`)", 18, "bad regexp in 'QueryRegexp'" },
	{ "ClientIP(`10.0.0.0/33`)", 10, "bad IP or CIDR '10.0.0.0/33'" },
	{ "ClientIP(`999.1.1.1`)", 10, "bad IP or CIDR" },
	{ "ClientIP(`10.0.0.1`, `nope`)", 22, "bad IP or CIDR 'nope'" },
	{ "ClientIP(`10.0.0.0/8 `)", 10, "bad IP or CIDR" },
};

static void test_bad_rules(void)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		char err[256] = "untouched";
		int col = -1;
		struct rule *r = rule_compile(c->rule, err, sizeof(err), &col);

		CHECKF(r == NULL, "'%s' compiled", c->rule);
		rule_free(r);
		CHECKF(col == c->col, "'%s': col %d, want %d (%s)", c->rule, col, c->col, err);
		CHECKF(strstr(err, c->msg) != NULL, "'%s': message '%s' lacks '%s'", c->rule, err,
		       c->msg);
	}
}

/* Error reporting must cope with a missing or tiny buffer. */
static void test_error_buffers(void)
{
	char tiny[8];
	int col = 0;

	CHECK(rule_compile("Hots(`a`)", NULL, 0, NULL) == NULL);
	CHECK(rule_compile("Hots(`a`)", NULL, 0, &col) == NULL && col == 1);
	CHECK(rule_compile("Hots(`a`)", tiny, sizeof(tiny), &col) == NULL);
	CHECK(strlen(tiny) == sizeof(tiny) - 1);
	CHECK(rule_compile(NULL, tiny, sizeof(tiny), &col) == NULL && col == 1);
}

static char *repeat(const char *s, int n)
{
	size_t len = strlen(s);
	char *out = malloc(len * (size_t)n + 1);

	for (int i = 0; i < n; i++)
		memcpy(out + len * (size_t)i, s, len);
	out[len * (size_t)n] = '\0';
	return out;
}

static char *nest(const char *open, int n, const char *inner, const char *close)
{
	char *o = repeat(open, n), *c = repeat(close, n);
	size_t len = strlen(o) + strlen(inner) + strlen(c) + 1;
	char *out = malloc(len);

	snprintf(out, len, "%s%s%s", o, inner, c);
	free(o);
	free(c);
	return out;
}

/* Nesting is bounded so a hostile rule cannot exhaust the stack; chains are not. */
static void test_depth(void)
{
	struct request req;
	char err[256];
	int col;
	char *text;
	struct rule *r;

	request_init(&req, "GET|a.com|/", NULL, NULL);

	text = nest("(", 64, "Host(`a.com`)", ")");
	r = rule_compile(text, err, sizeof(err), &col);
	CHECKF(r != NULL, "64 parens: %s", err);
	CHECK(r && rule_match(r, &req.s));
	rule_free(r);
	free(text);

	text = nest("(", 65, "Host(`a.com`)", ")");
	CHECK(rule_compile(text, err, sizeof(err), &col) == NULL);
	CHECK(col == 65 && strstr(err, "nested too deeply"));
	free(text);

	text = nest("!", 64, "Host(`a.com`)", "");
	r = rule_compile(text, err, sizeof(err), &col);
	CHECKF(r != NULL, "64 '!': %s", err);
	CHECK(r && rule_match(r, &req.s)); /* an even number of negations */
	rule_free(r);
	free(text);

	text = nest("!", 65, "Host(`a.com`)", "");
	CHECK(rule_compile(text, err, sizeof(err), &col) == NULL);
	CHECK(col == 65 && strstr(err, "nested too deeply"));
	free(text);

	text = nest("!(", 32, "Host(`a.com`)", ")");
	r = rule_compile(text, err, sizeof(err), &col);
	CHECKF(r != NULL, "32 '!(': %s", err);
	CHECK(r && rule_match(r, &req.s));
	rule_free(r);
	free(text);

	text = nest("(", 100000, "", "");
	CHECK(rule_compile(text, err, sizeof(err), &col) == NULL && col == 65);
	free(text);

	/* a long flat chain is fine: operands are lists, not a deep tree */
	text = repeat("Path(`/nope`) || ", 20000);
	{
		size_t len = strlen(text);
		char *full = malloc(len + 32);
		snprintf(full, len + 32, "%sHost(`a.com`)", text);
		r = rule_compile(full, err, sizeof(err), &col);
		CHECKF(r != NULL, "long chain: %s", err);
		CHECK(r && rule_match(r, &req.s));
		rule_free(r);
		free(full);
	}
	free(text);
}

/* The engine matches slices of any length in one pass: no copy, no length limit. */
static void test_regex_long_subject(void)
{
	char err[256];
	int col;
	struct request req;
	struct rule *re = rule_compile("PathRegexp(`^/a+$`)", err, sizeof(err), &col);
	struct rule *nre = rule_compile("!PathRegexp(`^/a+$`)", err, sizeof(err), &col);
	struct rule *prefix = rule_compile("PathPrefix(`/aaa`)", err, sizeof(err), &col);
	static char path[20000];

	CHECK(re && nre && prefix);
	request_init(&req, "GET|h|/", NULL, NULL);
	path[0] = '/';
	memset(path + 1, 'a', sizeof(path) - 2);

	req.s.path = slice_make(path, 8192);
	CHECK(rule_match(re, &req.s));
	CHECK(!rule_match(nre, &req.s));
	req.s.path = slice_make(path, sizeof(path) - 1);
	CHECK(rule_match(re, &req.s));
	CHECK(rule_match(prefix, &req.s));
	path[sizeof(path) - 2] = 'b';
	CHECK(!rule_match(re, &req.s));
	CHECK(rule_match(nre, &req.s));
	rule_free(re);
	rule_free(nre);
	rule_free(prefix);
}

/* Slices are not NUL-terminated: matchers must not read past them. */
static void test_unterminated_subject(void)
{
	char err[256];
	int col;
	struct rule *r = rule_compile("Host(`a.com`) && PathRegexp(`^/x$`) && Method(`GET`)", err,
				      sizeof(err), &col);
	struct rule_subject s = { 0 };
	char *buf = malloc(12);

	CHECK(r != NULL);
	memcpy(buf, "a.com/xGETzz", 12);
	s.host = slice_make(buf, 5);
	s.path = slice_make(buf + 5, 2);
	s.method = slice_make(buf + 7, 3);
	CHECK(rule_match(r, &s));
	s.method = slice_make(buf + 7, 4);
	CHECK(!rule_match(r, &s));
	free(buf);
	rule_free(r);

	/* an all-empty subject matches nothing and crashes nothing */
	memset(&s, 0, sizeof(s));
	r = rule_compile("Host(`a`) || HostRegexp(`.`) || Path(`/`) || PathPrefix(`/`) || "
			 "PathRegexp(`.`) || Method(`GET`) || Header(`a`, ``) || "
			 "HeaderRegexp(`a`, `.`) || Query(`a`) || QueryRegexp(`a`, `.`) || "
			 "ClientIP(`::/0`)",
			 err, sizeof(err), &col);
	CHECKF(r != NULL, "%s", err);
	CHECK(r && !rule_match(r, &s));
	rule_free(r);
	CHECK(!rule_match(NULL, &s));
	rule_free(NULL);
}

struct host_list {
	char names[8][64];
	int n;
};

static void collect_host(void *ctx, const char *host)
{
	struct host_list *l = ctx;

	if (l->n < 8)
		snprintf(l->names[l->n++], sizeof(l->names[0]), "%s", host);
}

static void test_hosts(void)
{
	char err[256];
	int col;
	struct host_list l = { 0 };
	struct rule *r = rule_compile("Host(`A.com`) || (Host(`b.com.`, `[::1]`) && "
				      "!Host(`c.com`) && Path(`/`)) || HostRegexp(`^x$`)",
				      err, sizeof(err), &col);

	CHECK(r != NULL);
	CHECK(rule_hosts(r, collect_host, &l) == 3);
	CHECK(l.n == 3);
	CHECK(strcmp(l.names[0], "a.com") == 0);
	CHECK(strcmp(l.names[1], "b.com") == 0);
	CHECK(strcmp(l.names[2], "::1") == 0);
	CHECK(rule_hosts(r, NULL, NULL) == 3);
	rule_free(r);

	r = rule_compile("!(Host(`a`) || Host(`b`)) && PathPrefix(`/`)", err, sizeof(err), &col);
	CHECK(r && rule_hosts(r, collect_host, &l) == 0);
	rule_free(r);
	r = rule_compile("!!Host(`a`)", err, sizeof(err), &col);
	CHECK(r && rule_hosts(r, NULL, NULL) == 0); /* conservative: any '!' hides names */
	rule_free(r);
	CHECK(rule_hosts(NULL, collect_host, &l) == 0);
}

TEST_MAIN("rule", TEST(test_match_table), TEST(test_bad_rules), TEST(test_error_buffers),
	  TEST(test_depth), TEST(test_regex_long_subject), TEST(test_unterminated_subject),
	  TEST(test_hosts))
