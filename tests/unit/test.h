/* test.h - the minimal unit-test harness: CHECK records a failure and goes on;
 * TEST_MAIN runs the listed tests and prints "N passed, N failed". */
#ifndef EDGEPROXY_TEST_H
#define EDGEPROXY_TEST_H

#include <stdio.h>

static int test_failures;
static int test_checks;

#define CHECK(cond)                                                                   \
	do {                                                                          \
		test_checks++;                                                        \
		if (!(cond)) {                                                        \
			test_failures++;                                              \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
				#cond);                                               \
		}                                                                     \
	} while (0)

#define CHECKF(cond, ...)                                                             \
	do {                                                                          \
		test_checks++;                                                        \
		if (!(cond)) {                                                        \
			test_failures++;                                              \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, \
				#cond);                                               \
			fprintf(stderr, __VA_ARGS__);                                 \
			fputc('\n', stderr);                                          \
		}                                                                     \
	} while (0)

typedef void (*test_fn)(void);

struct test_case {
	const char *name;
	test_fn fn;
};

#define TEST(fn) { #fn, fn }

/* Each test function counts as passed when it added no failure. */
static inline int test_run_all(const char *suite, const struct test_case *cases, int n)
{
	int passed = 0, failed = 0;
	for (int i = 0; i < n; i++) {
		int before = test_failures;
		cases[i].fn();
		if (test_failures == before) {
			passed++;
		} else {
			failed++;
			fprintf(stderr, "FAIL %s/%s\n", suite, cases[i].name);
		}
	}
	printf("%s: %d passed, %d failed (%d checks)\n", suite, passed, failed, test_checks);
	return failed ? 1 : 0;
}

#define TEST_MAIN(suite, ...)                                                         \
	int main(void)                                                                \
	{                                                                             \
		static const struct test_case cases[] = { __VA_ARGS__ };              \
		return test_run_all(suite, cases, (int)(sizeof(cases) / sizeof(cases[0]))); \
	}

#endif
