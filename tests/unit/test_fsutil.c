/* test_fsutil.c - state_dir files: mkdir -p with a private mode, atomic replacement
 * with the asked-for mode whatever the umask and no temp file left behind, sets of
 * files replaced all or none, and bounded reads that tell a missing file from a bad one. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "test.h"

static char tmp[] = "/tmp/test_fsutil.XXXXXX";

static void test_mkdir_p(void)
{
	char path[256], err[256];
	struct stat st;
	snprintf(path, sizeof(path), "%s/a/b/c", tmp);
	CHECK(fs_mkdir_p(path, 0700, err, sizeof(err)) == 0);
	CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
	CHECK(fs_mkdir_p(path, 0700, err, sizeof(err)) == 0); /* exists already */
	snprintf(path, sizeof(path), "%s/file", tmp);
	FILE *f = fopen(path, "w");
	fclose(f);
	snprintf(path, sizeof(path), "%s/file/sub", tmp);
	CHECK(fs_mkdir_p(path, 0700, err, sizeof(err)) == -1);
	CHECKF(strstr(err, "/file/sub: mkdir: Not a directory") != NULL, "%s", err);
}

static void test_write_atomic(void)
{
	char path[256], err[256], *data;
	size_t len;
	struct stat st;

	mode_t old = umask(0077);
	CHECK(fs_write_atomic(tmp, "cert.crt", "one\n", 4, 0644, err, sizeof(err)) == 0);
	umask(old);
	snprintf(path, sizeof(path), "%s/cert.crt", tmp);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644);
	CHECK(fs_write_atomic(tmp, "key.key", "secret", 6, 0600, err, sizeof(err)) == 0);
	snprintf(path, sizeof(path), "%s/key.key", tmp);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	/* a reader that opened the old file keeps reading it whole */
	snprintf(path, sizeof(path), "%s/cert.crt", tmp);
	FILE *reader = fopen(path, "r");
	CHECK(fs_write_atomic(tmp, "cert.crt", "two two\n", 8, 0644, err, sizeof(err)) == 0);
	char buf[16] = "";
	CHECK(reader && fgets(buf, sizeof(buf), reader) && strcmp(buf, "one\n") == 0);
	if (reader)
		fclose(reader);
	CHECK(fs_read_file(path, 100, &data, &len, err, sizeof(err)) == 0);
	CHECK(len == 8 && strcmp(data, "two two\n") == 0);
	free(data);
	/* no temp files left */
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "ls -a %s | grep -q tmp", tmp);
	CHECK(system(cmd) != 0);
	/* a directory that does not exist */
	CHECK(fs_write_atomic("/nonexistent/dir", "x", "y", 1, 0600, err, sizeof(err)) == -1);
	CHECKF(strstr(err, "/nonexistent/dir") != NULL, "%s", err);
}

static bool file_is(const char *name, const char *want)
{
	char path[256], err[256], *data;
	size_t len;
	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	if (fs_read_file(path, 100000, &data, &len, err, sizeof(err)) < 0)
		return false;
	bool same = len == strlen(want) && memcmp(data, want, len) == 0;
	free(data);
	return same;
}

static void test_write_atomic_set(void)
{
	char err[256], big[8192];
	struct fs_file pair[] = { { "pair.key", "key-1", 5, 0600 }, { "pair.crt", "crt-1", 5, 0644 } };
	CHECK(fs_write_atomic_set(tmp, pair, 2, err, sizeof(err)) == 0);
	CHECK(file_is("pair.key", "key-1") && file_is("pair.crt", "crt-1"));

	/* the second file cannot be written (here: over the file size limit, as on a
	 * full disk): the first, which could, has not replaced its old one */
	memset(big, 'c', sizeof(big));
	pair[0].data = "key-2";
	pair[1].data = big;
	pair[1].len = sizeof(big);
	struct rlimit old, small = { 4096, 4096 };
	getrlimit(RLIMIT_FSIZE, &old);
	small.rlim_max = old.rlim_max;
	void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
	CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
	int rc = fs_write_atomic_set(tmp, pair, 2, err, sizeof(err));
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, was);
	CHECK(rc == -1 && errno == EFBIG);
	CHECKF(strstr(err, "pair.crt: write: ") != NULL, "%s", err);
	CHECK(file_is("pair.key", "key-1") && file_is("pair.crt", "crt-1"));
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "ls -a %s | grep -q tmp", tmp);
	CHECK(system(cmd) != 0);

	/* too many at once */
	struct fs_file five[5] = { { "a", "", 0, 0600 } };
	CHECK(fs_write_atomic_set(tmp, five, 5, err, sizeof(err)) == -1 && errno == EINVAL);
}

static void test_read_file(void)
{
	char path[256], err[256], *data = NULL;
	size_t len = 99;
	snprintf(path, sizeof(path), "%s/missing", tmp);
	CHECK(fs_read_file(path, 100, &data, &len, err, sizeof(err)) == -1);
	CHECK(errno == ENOENT && data == NULL && len == 0);
	CHECK(fs_read_file(tmp, 100, &data, &len, err, sizeof(err)) == -1);
	CHECK(strstr(err, "not a regular file") != NULL);
	/* exactly max bytes is fine, one more is not */
	char big[10000];
	memset(big, 'z', sizeof(big));
	CHECK(fs_write_atomic(tmp, "big", big, sizeof(big), 0600, err, sizeof(err)) == 0);
	snprintf(path, sizeof(path), "%s/big", tmp);
	CHECK(fs_read_file(path, sizeof(big), &data, &len, err, sizeof(err)) == 0 && len == sizeof(big));
	CHECK(data[len] == '\0');
	free(data);
	CHECK(fs_read_file(path, sizeof(big) - 1, &data, &len, err, sizeof(err)) == -1);
	CHECK(errno == EFBIG && data == NULL);
	/* empty file */
	CHECK(fs_write_atomic(tmp, "empty", "", 0, 0600, err, sizeof(err)) == 0);
	snprintf(path, sizeof(path), "%s/empty", tmp);
	CHECK(fs_read_file(path, 10, &data, &len, err, sizeof(err)) == 0 && len == 0 && data[0] == '\0');
	free(data);
}

int main(void)
{
	static const struct test_case cases[] = {
		TEST(test_mkdir_p), TEST(test_write_atomic), TEST(test_write_atomic_set),
		TEST(test_read_file),
	};
	if (!mkdtemp(tmp))
		return 1;
	int rc = test_run_all("fsutil", cases, (int)(sizeof(cases) / sizeof(cases[0])));
	char rm[300];
	snprintf(rm, sizeof(rm), "rm -rf %s", tmp);
	return system(rm) == 0 ? rc : 1;
}
