/* static.c - the built-in static-file backend (service type=static): files under
 * root, index files for directories, validators (ETag, Last-Modified) with 304s,
 * single byte ranges, sendfile for the body. The request path is decoded and
 * checked segment by segment, so no "..", NUL or encoded slash trick leaves root. */
#include "static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http_write.h"
#include "middleware.h"
#include "static_path.h"
#include "timefmt.h"

static const struct {
	const char *ext;
	const char *type;
} mime_types[] = {
	{ "html", "text/html; charset=utf-8" }, { "htm", "text/html; charset=utf-8" },
	{ "css", "text/css; charset=utf-8" }, { "js", "text/javascript; charset=utf-8" },
	{ "mjs", "text/javascript; charset=utf-8" }, { "json", "application/json" },
	{ "txt", "text/plain; charset=utf-8" }, { "xml", "application/xml" }, { "svg", "image/svg+xml" },
	{ "png", "image/png" }, { "jpg", "image/jpeg" }, { "jpeg", "image/jpeg" }, { "gif", "image/gif" },
	{ "webp", "image/webp" }, { "avif", "image/avif" }, { "ico", "image/x-icon" },
	{ "woff", "font/woff" }, { "woff2", "font/woff2" }, { "ttf", "font/ttf" }, { "pdf", "application/pdf" },
	{ "wasm", "application/wasm" }, { "map", "application/json" }, { "mp4", "video/mp4" },
	{ "webm", "video/webm" }, { "mp3", "audio/mpeg" }, { "md", "text/markdown; charset=utf-8" },
};

static const char *mime_type(const char *path)
{
	const char *dot = strrchr(path, '.');
	const char *slash = strrchr(path, '/');
	if (!dot || (slash && dot < slash))
		return "application/octet-stream";
	for (size_t i = 0; i < sizeof(mime_types) / sizeof(mime_types[0]); i++)
		if (strcasecmp(dot + 1, mime_types[i].ext) == 0)
			return mime_types[i].type;
	return "application/octet-stream";
}

static void respond_text(struct conn *c, int status, const char *extra)
{
	char text[64];
	snprintf(text, sizeof(text), "%d %s\n", status, http_reason(status));
	conn_respond(c, status, "text/plain; charset=utf-8", slice_cstr(text), extra);
}

/* Parses an IMF-fixdate (RFC 9110 §5.6.7); -1 if it is not one. */
static time_t parse_http_date(struct slice s)
{
	int64_t t;
	return timefmt_parse_imf(s, &t) < 0 ? -1 : (time_t)t;
}

/* The single range of a "bytes=" Range field (RFC 9110 §14.1.2). Returns 1 with
 * [*from, *to] set, 0 when the field is to be ignored (several ranges, other
 * units: the whole file is sent), -1 when unsatisfiable. */
static int parse_range(struct slice v, off_t size, off_t *from, off_t *to)
{
	if (!slice_has_prefix(v, SLICE_LIT("bytes=")))
		return 0;
	const char *p = v.p + 6, *end = v.p + v.len;
	if (memchr(p, ',', (size_t)(end - p)))
		return 0;
	long long a = -1, b = -1;
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		if (a > (LLONG_MAX - 9) / 10)
			return 0;
		a = (a < 0 ? 0 : a * 10) + (*p - '0');
	}
	if (p == end || *p != '-')
		return 0;
	for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
		if (b > (LLONG_MAX - 9) / 10)
			return 0;
		b = (b < 0 ? 0 : b * 10) + (*p - '0');
	}
	if (p != end || (a < 0 && b < 0))
		return 0;
	if (a < 0) { /* suffix: the last b bytes */
		if (b == 0 || size == 0)
			return -1;
		*from = b >= size ? 0 : size - b;
		*to = size - 1;
		return 1;
	}
	if (a >= size)
		return -1;
	*from = a;
	*to = (b < 0 || b >= size) ? size - 1 : b;
	return *to >= *from ? 1 : 0;
}

void static_handle(struct conn *c, const struct service_rt *svc)
{
	const struct http_request *r = &c->rq->req;
	c->rq->service_url = "static";
	if (!slice_eq(r->method, SLICE_LIT("GET")) && !slice_eq(r->method, SLICE_LIT("HEAD"))) {
		respond_text(c, 405, "Allow: GET, HEAD\r\n");
		return;
	}
	struct slice path = c->rq->mw && c->rq->mw->path.p ? c->rq->mw->path : r->path;
	char rel[PATH_MAX];
	if (static_path_clean(path, rel, sizeof(rel)) < 0) {
		respond_text(c, 404, NULL);
		return;
	}
	const struct conf_service *conf = svc->conf;
	char full[PATH_MAX + 256];
	int n = snprintf(full, sizeof(full), "%s/%s", conf->root, rel);
	if (n < 0 || (size_t)n >= sizeof(full)) {
		respond_text(c, 404, NULL);
		return;
	}
	int fd = open(full, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		respond_text(c, errno == EACCES ? 403 : 404, NULL);
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		if (path.len == 0 || path.p[path.len - 1] != '/') {
			/* a directory is addressed with its slash, so relative links resolve */
			char loc[PATH_MAX + 64];
			int m = snprintf(loc, sizeof(loc), "Location: %.*s/%s%.*s\r\n", (int)path.len, path.p,
					 r->query.len ? "?" : "", (int)r->query.len, r->query.p);
			if (m < 0 || (size_t)m >= sizeof(loc)) {
				respond_text(c, 414, NULL);
				return;
			}
			respond_text(c, 301, loc);
			return;
		}
		n = snprintf(full, sizeof(full), "%s/%s%s%s", conf->root, rel, rel[0] ? "/" : "", conf->index);
		if (n < 0 || (size_t)n >= sizeof(full) || (fd = open(full, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0 ||
		    fstat(fd, &st) < 0) {
			if (fd >= 0)
				close(fd);
			respond_text(c, 404, NULL);
			return;
		}
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		respond_text(c, 404, NULL);
		return;
	}

	char etag[64], modified[TIMEFMT_IMF_LEN + 1], headers[512];
	snprintf(etag, sizeof(etag), "\"%llx-%llx\"", (unsigned long long)st.st_size,
		 (unsigned long long)st.st_mtime);
	timefmt_imf(st.st_mtime, modified);
	/* RFC 9110 §13.2.2: If-None-Match takes precedence over If-Modified-Since. */
	const struct http_field *inm = http_find_field(r->fields, r->nfields, SLICE_LIT("If-None-Match"));
	const struct http_field *ims = http_find_field(r->fields, r->nfields, SLICE_LIT("If-Modified-Since"));
	bool not_modified = inm ? (slice_eq(inm->value, slice_cstr(etag)) || slice_eq(inm->value, SLICE_LIT("*")))
				: (ims && parse_http_date(ims->value) >= st.st_mtime);
	snprintf(headers, sizeof(headers), "ETag: %s\r\nLast-Modified: %s\r\nAccept-Ranges: bytes\r\n", etag,
		 modified);
	if (not_modified) {
		close(fd);
		conn_respond(c, 304, NULL, SLICE_LIT(""), headers);
		return;
	}
	const char *type = mime_type(full);
	const struct http_field *range = http_find_field(r->fields, r->nfields, SLICE_LIT("Range"));
	off_t from = 0, to = st.st_size - 1;
	int rr = range ? parse_range(range->value, st.st_size, &from, &to) : 0;
	if (rr < 0) {
		close(fd);
		char cr[96];
		snprintf(cr, sizeof(cr), "Content-Range: bytes */%llu\r\n", (unsigned long long)st.st_size);
		respond_text(c, 416, cr);
		return;
	}
	if (rr > 0) {
		size_t len = strlen(headers);
		snprintf(headers + len, sizeof(headers) - len, "Content-Range: bytes %llu-%llu/%llu\r\n",
			 (unsigned long long)from, (unsigned long long)to, (unsigned long long)st.st_size);
		conn_respond_file(c, 206, type, fd, from, to - from + 1, headers);
		return;
	}
	conn_respond_file(c, 200, type, fd, 0, st.st_size, headers);
}
