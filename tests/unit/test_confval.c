/* Unit tests for the INI value syntaxes (durations, sizes, booleans, listen). */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "confval.h"
#include "test.h"

static void test_durations(void)
{
	static const struct {
		const char *text;
		int ok;
		int64_t ms;
	} cases[] = {
		{ "500ms", 1, 500 }, { "10s", 1, 10000 }, { "5m", 1, 300000 }, { "72h", 1, 259200000 },
		{ "30d", 1, 2592000000LL }, { "1m30s", 1, 90000 }, { "0", 1, 0 }, { "15", 1, 15000 },
		{ "", 0, 0 }, { "s", 0, 0 }, { "10x", 0, 0 }, { "-1s", 0, 0 }, { "1.5s", 0, 0 },
		{ "10 s", 0, 0 }, { "1m30", 0, 0 }, { "99999999999999999999s", 0, 0 }, { "9999999999999d", 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ms = -1;
		int rc = confval_duration(cases[i].text, &ms);
		CHECKF((rc == 0) == cases[i].ok, "'%s' rc=%d", cases[i].text, rc);
		if (cases[i].ok)
			CHECKF(ms == cases[i].ms, "'%s' -> %lld", cases[i].text, (long long)ms);
	}
}

static void test_sizes(void)
{
	uint64_t v;
	CHECK(confval_size("512", &v) == 0 && v == 512);
	CHECK(confval_size("16k", &v) == 0 && v == 16384);
	CHECK(confval_size("4m", &v) == 0 && v == 4194304);
	CHECK(confval_size("1g", &v) == 0 && v == 1073741824);
	CHECK(confval_size("0", &v) == 0 && v == 0);
	CHECK(confval_size("", &v) < 0);
	CHECK(confval_size("16kb", &v) < 0);
	CHECK(confval_size("k", &v) < 0);
	CHECK(confval_size("-1", &v) < 0);
	CHECK(confval_size("99999999999999999999", &v) < 0);
	CHECK(confval_size("99999999999999g", &v) < 0);
}

static void test_bools_and_ints(void)
{
	bool b;
	const char *yes[] = { "on", "true", "yes", "1" }, *no[] = { "off", "false", "no", "0" };
	for (int i = 0; i < 4; i++) {
		CHECK(confval_bool(yes[i], &b) == 0 && b);
		CHECK(confval_bool(no[i], &b) == 0 && !b);
	}
	CHECK(confval_bool("On", &b) < 0);
	CHECK(confval_bool("", &b) < 0);
	int64_t v;
	CHECK(confval_int("42", 0, 100, &v) == 0 && v == 42);
	CHECK(confval_int("-5", -10, 10, &v) == 0 && v == -5);
	CHECK(confval_int("101", 0, 100, &v) < 0);
	CHECK(confval_int("4x", 0, 100, &v) < 0);
	CHECK(confval_int("", 0, 100, &v) < 0);
}

static void test_listen(void)
{
	struct sockaddr_storage ss;
	socklen_t len;
	CHECK(confval_listen(":80", &ss, &len) == 0 && ss.ss_family == AF_INET6 &&
	      ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) == 80);
	CHECK(confval_listen("0.0.0.0:8080", &ss, &len) == 0 && ss.ss_family == AF_INET && len == sizeof(struct sockaddr_in));
	CHECK(confval_listen("127.0.0.1:8443", &ss, &len) == 0 &&
	      ((struct sockaddr_in *)&ss)->sin_addr.s_addr == htonl(INADDR_LOOPBACK));
	CHECK(confval_listen("[::]:443", &ss, &len) == 0 && ss.ss_family == AF_INET6);
	CHECK(confval_listen("[::1]:9090", &ss, &len) == 0 && ss.ss_family == AF_INET6);
	CHECK(confval_listen("localhost:8080", &ss, &len) == 0 && ss.ss_family == AF_INET);
	CHECK(confval_listen("127.0.0.1", &ss, &len) < 0);
	CHECK(confval_listen("127.0.0.1:99999", &ss, &len) < 0);
	CHECK(confval_listen("127.0.0.1:", &ss, &len) < 0);
	CHECK(confval_listen("example.com:80", &ss, &len) < 0);
	CHECK(confval_listen("[::1:80", &ss, &len) < 0);
	CHECK(confval_listen("[::1]80", &ss, &len) < 0);
	CHECK(confval_listen("", &ss, &len) < 0);
}

static void test_status_lists(void)
{
	CHECK(confval_status_list("200-399") == 0);
	CHECK(confval_status_list("200,204, 300-399") == 0);
	CHECK(confval_status_list("") < 0);
	CHECK(confval_status_list("99") < 0);
	CHECK(confval_status_list("200-100") < 0);
	CHECK(confval_status_list("200-") < 0);
	CHECK(confval_status_list("200,") < 0);
	CHECK(confval_status_list("2xx") < 0);
	CHECK(confval_status_in("200-399", 204));
	CHECK(confval_status_in("200-399", 399));
	CHECK(!confval_status_in("200-399", 404));
	CHECK(confval_status_in("200,204,500-503", 502));
	CHECK(!confval_status_in("200,204,500-503", 201));
}

TEST_MAIN("confval", TEST(test_status_lists), TEST(test_durations), TEST(test_sizes), TEST(test_bools_and_ints), TEST(test_listen))
