/* watch.c - configuration file watching with inotify (see watch.h). */
#include "watch.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "log.h"
#include "server.h"

#define DEBOUNCE_SECONDS 0.1 /* editors write, truncate, rename... in a burst */

static int inotify_fd = -1;
static ev_io watch_io;
static ev_timer debounce;
static char file_name[NAME_MAX + 1];
static void (*change_cb)(void);

static void on_debounced(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	change_cb();
}

static void on_inotify(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)w;
	(void)revents;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool ours = false;
	for (;;) {
		ssize_t n = read(inotify_fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
			if (ev->len && strcmp(ev->name, file_name) == 0)
				ours = true;
			p += sizeof(*ev) + ev->len;
		}
	}
	if (!ours)
		return;
	ev_timer_stop(loop, &debounce);
	ev_timer_set(&debounce, DEBOUNCE_SECONDS, 0.);
	ev_timer_start(loop, &debounce);
}

int watch_start(const char *path, void (*on_change)(void))
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t dl = slash ? (size_t)(slash - path) : 1;
	if (dl >= sizeof(dir) || strlen(slash ? slash + 1 : path) > NAME_MAX)
		return -1;
	if (slash) {
		memcpy(dir, path, dl);
		dir[dl] = '\0';
		if (dl == 0)
			strcpy(dir, "/");
	} else {
		strcpy(dir, ".");
	}
	strcpy(file_name, slash ? slash + 1 : path);
	inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (inotify_fd < 0)
		return -1;
	if (inotify_add_watch(inotify_fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_MODIFY) < 0) {
		log_warn("watch: cannot watch %s: %s (SIGHUP still reloads)", dir, strerror(errno));
		close(inotify_fd);
		inotify_fd = -1;
		return -1;
	}
	change_cb = on_change;
	ev_io_init(&watch_io, on_inotify, inotify_fd, EV_READ);
	ev_io_start(server.loop, &watch_io);
	ev_init(&debounce, on_debounced);
	return 0;
}

void watch_forget(void)
{
	inotify_fd = -1; /* the descriptor itself goes with the worker's inherited ones */
}

void watch_stop(void)
{
	if (inotify_fd < 0)
		return;
	ev_io_stop(server.loop, &watch_io);
	ev_timer_stop(server.loop, &debounce);
	close(inotify_fd);
	inotify_fd = -1;
}
