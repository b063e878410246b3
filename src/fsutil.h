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

/* Reads a regular file of at most max bytes into a malloc'd, NUL-terminated buffer
 * (*out, owner: the caller; wipe it if it holds a key). Returns 0, or -1 with err
 * (errno is ENOENT when the file does not exist). */
int fs_read_file(const char *path, size_t max, char **out, size_t *len, char *err,
		 size_t errlen);

#endif
