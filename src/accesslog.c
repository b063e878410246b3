/* accesslog.c - the access log. Lines collect in a buffer that is written when it
 * fills and before the loop sleeps, so a busy proxy makes one write per turn, not
 * one per request. Client-controlled text is escaped (no forged log lines). */
#include "accesslog.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http_write.h"
#include "log.h"
#include "timefmt.h"

#define LOG_BUF 65536
#define LINE_MAX_LEN 8192

static int log_fd = -1;
static bool own_fd; /* a file we opened (not stdout/stderr) */
static char *path; /* owner: this module */
static int format;
static char buffer[LOG_BUF];
static size_t buffered;
static ev_prepare flush_watcher;
static struct ev_loop *log_loop;

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	accesslog_flush();
}

static int open_file(void)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		log_error("access_log: cannot open %s: %s", path, strerror(errno));
	return fd;
}

int accesslog_open(struct ev_loop *loop, const struct conf_global *g)
{
	accesslog_close();
	format = g->access_log_format;
	if (strcmp(g->access_log, "off") == 0)
		return 0;
	if (strcmp(g->access_log, "stdout") == 0) {
		log_fd = STDOUT_FILENO;
	} else if (strcmp(g->access_log, "stderr") == 0) {
		log_fd = STDERR_FILENO;
	} else {
		path = strdup(g->access_log);
		if (!path || (log_fd = open_file()) < 0) {
			free(path);
			path = NULL;
			return -1;
		}
		own_fd = true;
	}
	log_loop = loop;
	ev_prepare_init(&flush_watcher, on_prepare);
	ev_prepare_start(loop, &flush_watcher);
	ev_unref(loop); /* the flusher alone must not keep the loop running */
	return 0;
}

void accesslog_reopen(void)
{
	if (!own_fd)
		return;
	accesslog_flush();
	int fd = open_file();
	if (fd < 0)
		return; /* keep writing to the old file rather than lose lines */
	close(log_fd);
	log_fd = fd;
}

void accesslog_detach_loop(void)
{
	if (log_loop) {
		ev_ref(log_loop);
		ev_prepare_stop(log_loop, &flush_watcher);
		log_loop = NULL;
	}
}

void accesslog_attach_loop(struct ev_loop *loop)
{
	if (log_fd < 0)
		return;
	log_loop = loop;
	ev_prepare_init(&flush_watcher, on_prepare);
	ev_prepare_start(loop, &flush_watcher);
	ev_unref(loop);
}

int accesslog_fd(void)
{
	return log_fd;
}

bool accesslog_enabled(void)
{
	return log_fd >= 0;
}

void accesslog_flush(void)
{
	size_t off = 0;
	while (off < buffered) {
		ssize_t n = write(log_fd, buffer + off, buffered - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* a full disk loses log lines, never requests */
		off += (size_t)n;
	}
	buffered = 0;
}

void accesslog_close(void)
{
	if (log_fd < 0)
		return;
	accesslog_flush();
	if (own_fd)
		close(log_fd);
	if (log_loop) {
		ev_ref(log_loop);
		ev_prepare_stop(log_loop, &flush_watcher);
	}
	log_fd = -1;
	own_fd = false;
	free(path);
	path = NULL;
}

/* Appends s with '"', '\' and control bytes escaped; stops at the line's end. */
static void put_escaped(char *line, size_t *n, struct slice s)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < s.len && *n + 4 < LINE_MAX_LEN; i++) {
		unsigned char ch = (unsigned char)s.p[i];
		if (ch == '"' || ch == '\\') {
			line[(*n)++] = '\\';
			line[(*n)++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f) {
			line[(*n)++] = '\\';
			line[(*n)++] = 'x';
			line[(*n)++] = hex[ch >> 4];
			line[(*n)++] = hex[ch & 15];
		} else {
			line[(*n)++] = (char)ch;
		}
	}
}

static void put_raw(char *line, size_t *n, const char *s)
{
	size_t l = strlen(s);
	if (l > LINE_MAX_LEN - 64 - *n)
		l = LINE_MAX_LEN - 64 - *n;
	memcpy(line + *n, s, l);
	*n += l;
}

static void put_fmt(char *line, size_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put_fmt(char *line, size_t *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + *n, LINE_MAX_LEN - *n, fmt, ap);
	va_end(ap);
	if (m > 0)
		*n += (size_t)m < LINE_MAX_LEN - *n ? (size_t)m : LINE_MAX_LEN - *n - 1;
}

void accesslog_write(const struct access_record *r)
{
	if (log_fd < 0)
		return;
	char line[LINE_MAX_LEN];
	size_t n = 0;
	time_t now = time(NULL);
	const char *proto = r->minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
	if (format == ACCESS_LOG_JSON) {
		char ts[TIMEFMT_RFC3339_LEN + 1];
		timefmt_rfc3339(now, ts);
		put_fmt(line, &n, "{\"ClientHost\":\"%s\",\"ClientUsername\":\"", r->client);
		if (r->user.len)
			put_escaped(line, &n, r->user);
		else
			put_raw(line, &n, "-");
		put_fmt(line, &n, "\",\"StartUTC\":\"%s\",\"entryPointName\":\"", ts);
		put_raw(line, &n, r->entrypoint);
		put_raw(line, &n, "\",\"RequestMethod\":\"");
		put_escaped(line, &n, r->method);
		put_raw(line, &n, "\",\"RequestPath\":\"");
		put_escaped(line, &n, r->target);
		put_fmt(line, &n, "\",\"RequestProtocol\":\"%s\",\"DownstreamStatus\":%d,\"DownstreamContentSize\":%llu,",
			proto, r->status, (unsigned long long)r->size);
		put_raw(line, &n, "\"request_Referer\":\"");
		put_escaped(line, &n, r->referer);
		put_raw(line, &n, "\",\"request_User-Agent\":\"");
		put_escaped(line, &n, r->user_agent);
		put_fmt(line, &n, "\",\"RequestCount\":%llu,\"RouterName\":\"", (unsigned long long)r->count);
		put_raw(line, &n, r->router ? r->router : "");
		put_raw(line, &n, "\",\"ServiceURL\":\"");
		put_raw(line, &n, r->service_url ? r->service_url : "");
		put_fmt(line, &n, "\",\"Duration\":%lld}\n", (long long)(r->duration_ms * 1e6));
	} else {
		char ts[TIMEFMT_CLF_LEN + 1];
		timefmt_clf(now, ts);
		put_fmt(line, &n, "%s - ", r->client);
		if (r->user.len)
			put_escaped(line, &n, r->user);
		else
			put_raw(line, &n, "-");
		put_fmt(line, &n, " [%s] \"", ts);
		put_escaped(line, &n, r->method);
		put_raw(line, &n, " ");
		put_escaped(line, &n, r->target);
		put_fmt(line, &n, " %s\" %d %llu \"", proto, r->status, (unsigned long long)r->size);
		put_escaped(line, &n, r->referer);
		put_raw(line, &n, "\" \"");
		put_escaped(line, &n, r->user_agent);
		put_fmt(line, &n, "\" %llu \"", (unsigned long long)r->count);
		put_raw(line, &n, r->router ? r->router : "-");
		put_raw(line, &n, "\" \"");
		put_raw(line, &n, r->service_url ? r->service_url : "-");
		put_fmt(line, &n, "\" %lldms\n", (long long)(r->duration_ms + 0.5));
	}
	if (line[n - 1] != '\n')
		line[n - 1] = '\n'; /* truncated: still one line */
	if (buffered + n > sizeof(buffer))
		accesslog_flush();
	memcpy(buffer + buffered, line, n);
	buffered += n;
}
