/* static_path.h - turning a request path into a safe path relative to a root:
 * percent-decoded, segments checked, never able to climb out. */
#ifndef EDGEPROXY_STATIC_PATH_H
#define EDGEPROXY_STATIC_PATH_H

#include <stddef.h>

#include "slice.h"

/* Decodes path ("/a/b%20c/") into out as "a/b c" (no leading or trailing slash,
 * "" for the root). Returns -1 for anything that could escape or confuse: "."
 * or ".." segments, encoded '/' or '\0', bad %-escapes, control bytes, or a
 * result longer than cap - 1. Empty segments ("//") are skipped. */
int static_path_clean(struct slice path, char *out, size_t cap);

#endif
