/* test_json.c - the strict JSON parser: what RFC 8259 allows and refuses, escapes and
 * UTF-8, numbers, duplicate keys, depth and size limits, and the accessors the ACME
 * client uses on real server documents. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "test.h"

static int parse(struct json_doc *d, const char *s)
{
	char err[128];
	return json_parse(d, s, strlen(s), err, sizeof(err));
}

static bool valid(const char *s)
{
	struct json_doc d;
	if (parse(&d, s) < 0)
		return false;
	json_free(&d);
	return true;
}

static void test_valid_documents(void)
{
	static const char *const ok[] = {
		"0", "-0", "1", "-1", "12345678901234567890", "1.5", "-0.25", "1e3", "1E+3",
		"1e-3", "2.5E10", "true", "false", "null", "\"\"", "\"abc\"", "[]", "{}",
		" [ 1 , 2 ] ", "\t\r\n{\"a\" : [true, false, null]}\n", "[[[]]]",
		"{\"a\":{\"b\":{\"c\":[1,{\"d\":\"e\"}]}}}", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
		"\"\\u0041\\u00e9\\u20ac\\ud83d\\ude00\"", "\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"",
		"{\"a\":1,\"b\":2}", "[\"a\",\"a\"]", "{\"a\":{\"a\":1}}",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		CHECKF(valid(ok[i]), "%s", ok[i]);
}

static void test_invalid_documents(void)
{
	static const char *const bad[] = {
		"", " ", "[", "]", "{", "}", "[1,]", "[,1]", "{\"a\":1,}", "{,}", "[1 2]",
		"{\"a\" 1}", "{\"a\":}", "{1:2}", "{\"a\"}", "{'a':1}", "01", "-", "-01", "1.",
		".5", "1e", "1e+", "+1", "0x10", "NaN", "Infinity", "-Infinity", "tru", "nul",
		"fals", "truex", "[]]", "{}}", "[] []", "\"abc", "\"\\x\"", "\"\\u12\"",
		"\"\\u12g4\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"",
		"\"\\ud800x\"", "\"\x01\"", "\"a\tb\"", "\"\xc0\x80\"", "\"\xc1\xbf\"",
		"\"\xe0\x80\x80\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xf5\x80\x80\x80\"",
		"\"\x80\"", "\"\xc3\"", "\"\xe2\x82\"", "\xef\xbb\xbf{}", "[1]/* c */", "// c\n1",
		"{\"a\":1,\"a\":2}", "{\"a\":1,\"\\u0061\":2}", "{\"k\":{},\"x\":0,\"k\":[]}",
		"[1,\n2,\n]", "\"\\\"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECKF(!valid(bad[i]), "accepted %s", bad[i]);
	/* a NUL byte is not whitespace, inside or after the value */
	struct json_doc d;
	char err[64];
	CHECK(json_parse(&d, "[1]\0", 4, err, sizeof(err)) < 0);
	CHECK(json_parse(&d, "\"a\0b\"", 5, err, sizeof(err)) < 0);
	CHECK(strstr(err, "offset 2") != NULL);
}

static void test_error_messages(void)
{
	struct json_doc d;
	char err[128];
	CHECK(json_parse(&d, "[1,]", 4, err, sizeof(err)) < 0);
	CHECKF(strcmp(err, "offset 3: unexpected character") == 0, "%s", err);
	CHECK(json_parse(&d, "{\"a\":1,\"a\":2}", 13, err, sizeof(err)) < 0);
	CHECKF(strstr(err, "duplicate key") != NULL, "%s", err);
	CHECK(d.toks == NULL && d.n == 0);
	/* a tiny buffer is still NUL-terminated */
	char small[8];
	CHECK(json_parse(&d, "[", 1, small, sizeof(small)) < 0);
	CHECK(strlen(small) < sizeof(small));
}

static void test_depth_limit(void)
{
	char buf[2 * 200 + 1];
	for (int depth = 1; depth <= 200; depth++) {
		memset(buf, '[', (size_t)depth);
		memset(buf + depth, ']', (size_t)depth);
		buf[2 * depth] = '\0';
		bool ok = valid(buf);
		CHECKF(ok == (depth <= JSON_MAX_DEPTH), "depth %d", depth);
	}
	/* deep unclosed input fails fast without recursion */
	size_t n = 1000000;
	char *deep = malloc(n);
	memset(deep, '[', n);
	struct json_doc d;
	char err[64];
	CHECK(json_parse(&d, deep, n, err, sizeof(err)) < 0);
	CHECKF(strstr(err, "nested deeper") != NULL, "%s", err);
	memset(deep, '{', n);
	CHECK(json_parse(&d, deep, n, err, sizeof(err)) < 0);
	free(deep);
}

static void test_size_limits(void)
{
	size_t n = JSON_MAX_TOKENS - 1; /* the array itself is one token */
	char *s = malloc(2 * n + 4);
	size_t len = 0;
	s[len++] = '[';
	for (size_t i = 0; i < n; i++) {
		s[len++] = '0';
		s[len++] = ',';
	}
	s[len - 1] = ']';
	struct json_doc d;
	char err[64];
	CHECK(json_parse(&d, s, len, err, sizeof(err)) == 0);
	CHECK(json_count(&d, 0) == n);
	CHECK(json_at(&d, 0, n - 1) == (int)n);
	json_free(&d);
	/* one more element is over the limit */
	s[len - 1] = ',';
	s[len++] = '0';
	s[len++] = ']';
	CHECK(json_parse(&d, s, len, err, sizeof(err)) < 0);
	CHECKF(strstr(err, "more than") != NULL, "%s", err);
	free(s);
	/* a document past JSON_MAX_TEXT is refused before parsing */
	size_t big = JSON_MAX_TEXT + 1;
	char *t = malloc(big);
	memset(t, ' ', big);
	t[0] = '0';
	CHECK(json_parse(&d, t, big, err, sizeof(err)) < 0);
	CHECK(json_parse(&d, t, big - 1, err, sizeof(err)) == 0);
	json_free(&d);
	free(t);
}

static void test_strings(void)
{
	struct json_doc d;
	char buf[64];
	CHECK(parse(&d, "[\"\\u0041\\u00e9\\u20ac\\ud83d\\ude00\", \"a\\nb\\\"c\\\\d\\/e\", \"x\\u0000y\", \"\"]") == 0);
	CHECK(json_string(&d, json_at(&d, 0, 0), buf, sizeof(buf)) == 10);
	CHECK(strcmp(buf, "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80") == 0);
	CHECK(json_str_eq(&d, json_at(&d, 0, 0), "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
	CHECK(!json_str_eq(&d, json_at(&d, 0, 0), "A\xc3\xa9"));
	CHECK(json_string(&d, json_at(&d, 0, 1), buf, sizeof(buf)) == 9);
	CHECK(strcmp(buf, "a\nb\"c\\d/e") == 0);
	/* an embedded NUL cannot become a C string */
	CHECK(json_string(&d, json_at(&d, 0, 2), buf, sizeof(buf)) == -1);
	CHECK(json_strdup(&d, json_at(&d, 0, 2)) == NULL);
	CHECK(json_string(&d, json_at(&d, 0, 3), buf, sizeof(buf)) == 0 && buf[0] == '\0');
	CHECK(json_str_eq(&d, json_at(&d, 0, 3), ""));
	/* the result must fit, NUL included; a failure leaves "" (never a cut string) */
	CHECK(json_string(&d, json_at(&d, 0, 1), buf, 9) == -1 && buf[0] == '\0');
	CHECK(json_string(&d, json_at(&d, 0, 1), buf, 10) == 9);
	char *dup = json_strdup(&d, json_at(&d, 0, 1));
	CHECK(dup && strcmp(dup, "a\nb\"c\\d/e") == 0);
	free(dup);
	/* not a string */
	buf[0] = 'x';
	CHECK(json_string(&d, 0, buf, sizeof(buf)) == -1 && buf[0] == '\0');
	CHECK(!json_str_eq(&d, 0, ""));
	json_free(&d);
}

static void test_numbers(void)
{
	struct json_doc d;
	int64_t v = 0;
	CHECK(parse(&d, "[0, -0, 42, -17, 9223372036854775807, -9223372036854775808, "
			"9223372036854775808, -9223372036854775809, 1.0, 1e2, 99999999999999999999]") == 0);
	CHECK(json_int64(&d, json_at(&d, 0, 0), &v) == 0 && v == 0);
	CHECK(json_int64(&d, json_at(&d, 0, 1), &v) == 0 && v == 0);
	CHECK(json_int64(&d, json_at(&d, 0, 2), &v) == 0 && v == 42);
	CHECK(json_int64(&d, json_at(&d, 0, 3), &v) == 0 && v == -17);
	CHECK(json_int64(&d, json_at(&d, 0, 4), &v) == 0 && v == INT64_MAX);
	CHECK(json_int64(&d, json_at(&d, 0, 5), &v) == 0 && v == INT64_MIN);
	CHECK(json_int64(&d, json_at(&d, 0, 6), &v) == -1);
	CHECK(json_int64(&d, json_at(&d, 0, 7), &v) == -1);
	CHECK(json_int64(&d, json_at(&d, 0, 8), &v) == -1);
	CHECK(json_int64(&d, json_at(&d, 0, 9), &v) == -1);
	CHECK(json_int64(&d, json_at(&d, 0, 10), &v) == -1);
	CHECK(json_type(&d, json_at(&d, 0, 8)) == JSON_NUMBER);
	CHECK(json_int64(&d, 0, &v) == -1); /* the array */
	json_free(&d);
}

/* An ACME order as Pebble sends it: the accessors the client relies on. */
static void test_acme_order(void)
{
	static const char order[] =
		"{\n   \"status\": \"pending\",\n   \"expires\": \"2025-01-01T00:00:00Z\",\n"
		"   \"identifiers\": [\n      {\n         \"type\": \"dns\",\n"
		"         \"value\": \"test.example\"\n      },\n      {\"type\": \"dns\", \"value\": \"www.test.example\"}\n   ],\n"
		"   \"finalize\": \"https://localhost:14000/finalize-order/abc\",\n"
		"   \"authorizations\": [\n      \"https://localhost:14000/authZ/1\",\n"
		"      \"https://localhost:14000/authZ/2\"\n   ],\n   \"retry\": {\"after\": 3}\n}";
	struct json_doc d;
	char buf[128];

	CHECK(parse(&d, order) == 0);
	CHECK(json_type(&d, 0) == JSON_OBJECT);
	CHECK(json_count(&d, 0) == 6);
	CHECK(json_str_eq(&d, json_get(&d, 0, "status"), "pending"));
	int auths = json_get(&d, 0, "authorizations");
	CHECK(json_type(&d, auths) == JSON_ARRAY && json_count(&d, auths) == 2);
	CHECK(json_string(&d, json_at(&d, auths, 1), buf, sizeof(buf)) > 0);
	CHECK(strcmp(buf, "https://localhost:14000/authZ/2") == 0);
	CHECK(json_at(&d, auths, 2) == -1);
	int ids = json_get(&d, 0, "identifiers");
	CHECK(json_str_eq(&d, json_get(&d, json_at(&d, ids, 1), "value"), "www.test.example"));
	int64_t after = 0;
	CHECK(json_int64(&d, json_get(&d, json_get(&d, 0, "retry"), "after"), &after) == 0 && after == 3);
	/* chained lookups through missing or mistyped members end in -1 */
	CHECK(json_get(&d, 0, "missing") == -1);
	CHECK(json_get(&d, json_get(&d, 0, "missing"), "x") == -1);
	CHECK(json_get(&d, auths, "x") == -1);
	CHECK(json_at(&d, 0, 0) == -1);
	CHECK(json_type(&d, -1) == -1 && json_type(&d, 100000) == -1);
	/* members in order, keys then values */
	int k = json_member_key(&d, 0, 3);
	CHECK(json_str_eq(&d, k, "finalize"));
	CHECK(json_type(&d, k + 1) == JSON_STRING);
	CHECK(json_member_key(&d, 0, 6) == -1);
	json_free(&d);
}

static void test_escaped_keys(void)
{
	struct json_doc d;
	CHECK(parse(&d, "{\"st\\u0061tus\":\"valid\",\"\\u00e9\":1}") == 0);
	CHECK(json_str_eq(&d, json_get(&d, 0, "status"), "valid"));
	CHECK(json_get(&d, 0, "\xc3\xa9") == 4);
	CHECK(json_get(&d, 0, "stat") == -1);
	json_free(&d);
}

TEST_MAIN("json", TEST(test_valid_documents), TEST(test_invalid_documents),
	  TEST(test_error_messages), TEST(test_depth_limit), TEST(test_size_limits),
	  TEST(test_strings), TEST(test_numbers), TEST(test_acme_order), TEST(test_escaped_keys))
