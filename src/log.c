/* log.c - operator log lines: "TIMESTAMP LEVEL message" on stderr, one write(2)
 * per line so that lines from several workers never interleave. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "timefmt.h"

static enum log_level current_level = LOG_INFO;
static const char *const level_names[] = { "error", "warn", "info", "debug" };
static char origin[32];

void log_set_origin(const char *o)
{
	snprintf(origin, sizeof(origin), "%s", o ? o : "");
}

void log_set_level(enum log_level level)
{
	current_level = level;
}

enum log_level log_get_level(void)
{
	return current_level;
}

int log_level_parse(const char *name)
{
	for (int i = 0; i <= LOG_DEBUG; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (level > current_level)
		return;
	char line[1024];
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	size_t n = timefmt_rfc3339(now.tv_sec, line);
	line[n++] = ' ';
	n += (size_t)snprintf(line + n, sizeof(line) - n, "%-5s %s%s", level_names[level], origin,
			      origin[0] ? ": " : "");
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += (size_t)m;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w; /* nowhere left to report a failing stderr */
}
