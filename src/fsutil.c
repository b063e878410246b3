/* fsutil.c - crash-safe file replacement and bounded reads for state_dir. */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rand.h"

static void wipe(void *p, size_t len)
{
	volatile unsigned char *v = p;
	while (len--)
		*v++ = 0;
}

static int fail(char *err, size_t errlen, const char *what, const char *path, int e)
{
	if (err && errlen)
		snprintf(err, errlen, "%s: %s%s%s", path, what, *what ? ": " : "", strerror(e));
	errno = e;
	return -1;
}

int fs_mkdir_p(const char *dir, mode_t mode, char *err, size_t errlen)
{
	char path[PATH_MAX];
	size_t len = strnlen(dir, sizeof(path));

	if (len == 0 || len >= sizeof(path))
		return fail(err, errlen, "bad path", "state", ENAMETOOLONG);
	memcpy(path, dir, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		char c = path[i];
		path[i] = '\0';
		if (mkdir(path, mode) < 0 && errno != EEXIST)
			return fail(err, errlen, "mkdir", path, errno);
		path[i] = c;
	}
	return 0;
}

#define SET_MAX 4 /* files replaced together; acme.c needs two */

/* Writes f to a new temp file in dirfd (its name in tmp), fsync'd and closed.
 * On failure nothing of it is left. */
static int write_temp(int dirfd, const char *dir, const struct fs_file *f, char *tmp, size_t tmplen,
		      char *err, size_t errlen)
{
	unsigned char r[8];
	const char *p = f->data;
	int fd, e;

	if (rand_bytes(r, sizeof(r)) < 0)
		return fail(err, errlen, "getrandom", f->name, errno);
	snprintf(tmp, tmplen, ".%s.%02x%02x%02x%02x%02x%02x%02x%02x.tmp", f->name, r[0], r[1], r[2], r[3],
		 r[4], r[5], r[6], r[7]);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, f->mode);
	if (fd < 0)
		return fail(err, errlen, "create", dir, errno);
	/* the umask must not widen nor narrow what was asked for */
	if (fchmod(fd, f->mode) < 0)
		goto fail_fd;
	for (size_t off = 0; off < f->len;) {
		ssize_t n = write(fd, p + off, f->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			errno = EIO;
		if (n <= 0)
			goto fail_fd;
		off += (size_t)n;
	}
	if (fsync(fd) < 0)
		goto fail_fd;
	e = close(fd);
	fd = -1;
	if (e < 0)
		goto fail_fd;
	return 0;
fail_fd:
	e = errno;
	if (fd >= 0)
		close(fd);
	unlinkat(dirfd, tmp, 0);
	return fail(err, errlen, "write", f->name, e);
}

int fs_write_atomic_set(const char *dir, const struct fs_file *files, size_t n, char *err,
			size_t errlen)
{
	char tmp[SET_MAX][NAME_MAX + 1];
	size_t written = 0, renamed = 0;
	int dirfd, e;

	if (n == 0 || n > SET_MAX)
		return fail(err, errlen, "too many files at once", dir, EINVAL);
	for (size_t i = 0; i < n; i++)
		if (strlen(files[i].name) > NAME_MAX - 24)
			return fail(err, errlen, "", files[i].name, ENAMETOOLONG);
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return fail(err, errlen, "", dir, errno);
	/* every file is on disk under its temp name before any old one is replaced:
	 * a full or read-only file system fails here, with all old files intact */
	for (; written < n; written++)
		if (write_temp(dirfd, dir, &files[written], tmp[written], sizeof(tmp[written]), err, errlen) < 0)
			goto fail;
	for (; renamed < n; renamed++)
		if (renameat(dirfd, tmp[renamed], dirfd, files[renamed].name) < 0) {
			e = errno;
			fail(err, errlen, "rename", files[renamed].name, e);
			goto fail;
		}
	if (fsync(dirfd) < 0) {
		e = errno;
		close(dirfd);
		return fail(err, errlen, "fsync", dir, e);
	}
	close(dirfd);
	return 0;
fail:
	e = errno;
	for (size_t i = renamed; i < written; i++)
		unlinkat(dirfd, tmp[i], 0);
	close(dirfd);
	errno = e;
	return -1;
}

int fs_write_atomic(const char *dir, const char *name, const void *data, size_t len,
		    mode_t mode, char *err, size_t errlen)
{
	const struct fs_file f = { name, data, len, mode };
	return fs_write_atomic_set(dir, &f, 1, err, errlen);
}

int fs_read_file(const char *path, size_t max, char **out, size_t *len, char *err,
		 size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t cap = 0, n = 0;
	int fd, e;

	*out = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, "", path, errno);
	if (fstat(fd, &st) < 0) {
		e = errno;
		close(fd);
		return fail(err, errlen, "", path, e);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return fail(err, errlen, "not a regular file", path, EINVAL);
	}
	for (;;) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			if (cap >= max + 1) {
				e = EFBIG;
				goto bad;
			}
			if (ncap > max + 1)
				ncap = max + 1;
			char *nb = malloc(ncap + 1);
			if (!nb) {
				e = ENOMEM;
				goto bad;
			}
			if (buf) { /* may be a key: copy and wipe rather than realloc */
				memcpy(nb, buf, n);
				wipe(buf, cap);
				free(buf);
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			e = errno;
			goto bad;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			e = EFBIG;
			goto bad;
		}
	}
	close(fd);
	if (!buf && !(buf = malloc(1))) {
		errno = ENOMEM;
		return fail(err, errlen, "", path, ENOMEM);
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
bad:
	close(fd);
	if (buf) {
		wipe(buf, cap);
		free(buf);
	}
	return fail(err, errlen, "read", path, e);
}
