/* Unit tests for request path -> root-relative path: decoding and every escape. */
#include <string.h>

#include "static_path.h"
#include "test.h"

static void test_clean_paths(void)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
		{ "/", "" }, { "", "" }, { "/index.html", "index.html" }, { "/a/b/c.txt", "a/b/c.txt" },
		{ "//a///b/", "a/b" }, { "/a%20b", "a b" }, { "/%41%42", "AB" }, { "/.well-known/x", ".well-known/x" },
		{ "/a/..b/c", "a/..b/c" }, { "/a/b../c", "a/b../c" }, { "/...", "..." }, { "/caf%C3%A9", "caf\xc3\xa9" },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char out[64];
		int rc = static_path_clean(slice_cstr(ok[i].in), out, sizeof(out));
		CHECKF(rc == 0 && strcmp(out, ok[i].out) == 0, "'%s' -> rc %d '%s'", ok[i].in, rc, rc == 0 ? out : "");
	}
	static const char *const bad[] = {
		"/..", "/../etc/passwd", "/a/../../b", "/a/./b", "/.", "/%2e%2e/x", "/%2E%2E", "/a%2fb", "/a%2F..",
		"/a%00b", "/%", "/%4", "/%zz", "/a\x01", "/a%0a", "/a/%2e", "/a/.%2e/b",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char out[64];
		CHECKF(static_path_clean(slice_cstr(bad[i]), out, sizeof(out)) < 0, "'%s' accepted", bad[i]);
	}
}

static void test_bounds(void)
{
	char out[8];
	CHECK(static_path_clean(slice_cstr("/abcdefg"), out, sizeof(out)) == 0 && strcmp(out, "abcdefg") == 0);
	CHECK(static_path_clean(slice_cstr("/abcdefgh"), out, sizeof(out)) < 0);
	CHECK(static_path_clean(slice_cstr("/abc/defg"), out, sizeof(out)) < 0);
	CHECK(static_path_clean(slice_cstr("/a"), out, 0) < 0);
	/* a slice is not NUL-terminated: nothing past its length is read */
	const char buf[] = "/abc/../x";
	CHECK(static_path_clean(slice_make(buf, 4), out, sizeof(out)) == 0 && strcmp(out, "abc") == 0);
}

TEST_MAIN("static_path", TEST(test_clean_paths), TEST(test_bounds))
