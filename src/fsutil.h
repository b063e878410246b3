/* fsutil.h - files that must survive a crash whole or not at all: atomic
 * replacement (temp file, fsync, rename, fsync of the directory), private
 * directories, bounded whole-file reads. */
#ifndef EDGEPROXY_FSUTIL_H
#define EDGEPROXY_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* mkdir -p; directories it creates get mode (0700 for state). Returns 0, or -1
 * with "PATH: reason" in err. */
int fs_mkdir_p(const char *path, mode_t mode, char *err, size_t errlen);

/* Replaces dir/name with data: a temp file in dir created with mode, written,
 * fsync'd, renamed over name, then dir fsync'd so the rename is durable. Readers
 * see the old file or the new one, never a mix. Returns 0 or -1 with err. */
int fs_write_atomic(const char *dir, const char *name, const void *data, size_t len,
		    mode_t mode, char *err, size_t errlen);

/* One file of a set replaced together. */
struct fs_file {
	const char *name;
	const void *data;
	size_t len;
	mode_t mode;
};

/* Replaces up to four files of dir together: each is written to a temp file and
 * fsync'd first, and only once all are written are they renamed into place, in
 * order, then dir fsync'd. A failure before the renames (a full or read-only file
 * system) leaves every old file as it was and no temp file behind; only a crash
 * (or a failing rename) between two renames can leave some replaced and some not.
 * Returns 0 or -1 with err. */
int fs_write_atomic_set(const char *dir, const struct fs_file *files, size_t n, char *err,
			size_t errlen);

/* Reads a regular file of at most max bytes into a malloc'd, NUL-terminated buffer
 * (*out, owner: the caller; wipe it if it holds a key). Returns 0, or -1 with err
 * (errno is ENOENT when the file does not exist). */
int fs_read_file(const char *path, size_t max, char **out, size_t *len, char *err,
		 size_t errlen);

#endif
