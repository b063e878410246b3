/* upgrade.c - SIGUSR2 binary upgrade with inherited listeners (see upgrade.h). */
#include "upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"
#include "server.h"

#define MAX_INHERITED 64

static char exe_path[PATH_MAX];
static char **saved_argv;

static struct inherited {
	char name[64];
	int fd;
} inherited[MAX_INHERITED];
static size_t n_inherited;

static int ready_fd = -1;       /* child: where to report readiness */
static int child_pipe = -1;     /* parent: readiness of the new process */
static pid_t child_pid;
static ev_io child_io;
static ev_child child_watch;
static void (*ready_cb)(void);

void upgrade_init(char **argv)
{
	saved_argv = argv;
	/* The path, not /proc/self/exe: an upgrade runs the file now at that path. */
	if (!realpath(argv[0], exe_path)) {
		ssize_t n = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1);
		exe_path[n > 0 ? n : 0] = '\0';
	}
	const char *fds = getenv("EDGEPROXY_LISTEN_FDS");
	for (const char *p = fds; p && *p && n_inherited < MAX_INHERITED;) {
		const char *eq = strchr(p, '=');
		if (!eq || (size_t)(eq - p) >= sizeof(inherited[0].name))
			break;
		struct inherited *in = &inherited[n_inherited];
		memcpy(in->name, p, (size_t)(eq - p));
		in->name[eq - p] = '\0';
		char *end;
		long fd = strtol(eq + 1, &end, 10);
		if (end == eq + 1 || fd < 3 || fd > 65535 || fcntl((int)fd, F_GETFD) < 0)
			break;
		in->fd = (int)fd;
		fcntl(in->fd, F_SETFD, FD_CLOEXEC);
		n_inherited++;
		p = *end == ',' ? end + 1 : end;
	}
	const char *rf = getenv("EDGEPROXY_READY_FD");
	if (rf) {
		ready_fd = atoi(rf);
		if (ready_fd < 3 || fcntl(ready_fd, F_GETFD) < 0)
			ready_fd = -1;
		else
			fcntl(ready_fd, F_SETFD, FD_CLOEXEC);
	}
	unsetenv("EDGEPROXY_LISTEN_FDS");
	unsetenv("EDGEPROXY_READY_FD");
}

int upgrade_take_listener(const char *name, const struct sockaddr_storage *addr, socklen_t len)
{
	for (size_t i = 0; i < n_inherited; i++) {
		struct inherited *in = &inherited[i];
		if (in->fd < 0 || strcmp(in->name, name) != 0)
			continue;
		struct sockaddr_storage got;
		socklen_t gl = sizeof(got);
		/* the same address, or the IPv4 fallback of an IPv6 wildcard (same port) */
		if (getsockname(in->fd, (struct sockaddr *)&got, &gl) < 0)
			return -1;
		bool same = gl == len && memcmp(&got, addr, len) == 0;
		bool port_only = got.ss_family != addr->ss_family &&
				 ((struct sockaddr_in *)&got)->sin_port == ((const struct sockaddr_in6 *)addr)->sin6_port;
		if (!same && !port_only)
			return -1;
		int fd = in->fd;
		in->fd = -1;
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		return fd;
	}
	return -1;
}

void upgrade_close_unused(void)
{
	for (size_t i = 0; i < n_inherited; i++)
		if (inherited[i].fd >= 0) {
			close(inherited[i].fd);
			inherited[i].fd = -1;
		}
}

void upgrade_report_ready(void)
{
	if (ready_fd < 0)
		return;
	ssize_t w = write(ready_fd, "R", 1);
	(void)w; /* the parent treats silence as failure */
	close(ready_fd);
	ready_fd = -1;
}

static void upgrade_done(void)
{
	ev_io_stop(server.loop, &child_io);
	ev_child_stop(server.loop, &child_watch);
	if (child_pipe >= 0)
		close(child_pipe);
	child_pipe = -1;
	child_pid = 0;
}

static void on_child_ready(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	char c;
	ssize_t n = read(child_pipe, &c, 1);
	if (n < 0 && errno == EAGAIN)
		return;
	pid_t pid = child_pid;
	upgrade_done();
	if (n == 1 && c == 'R') {
		log_info("upgrade: new process %d serves; draining this one", (int)pid);
		ready_cb();
	} else {
		log_error("upgrade: new process %d did not start; still serving", (int)pid);
	}
}

static void on_child_exit(struct ev_loop *loop, ev_child *w, int revents)
{
	(void)loop;
	(void)revents;
	if (child_pid && w->rpid == child_pid && child_pipe >= 0) {
		/* exited before reporting: the pipe's EOF says so too, but this is sooner */
		log_error("upgrade: new process %d exited with status %d; still serving", (int)w->rpid,
			  WIFEXITED(w->rstatus) ? WEXITSTATUS(w->rstatus) : -1);
		upgrade_done();
	}
}

void upgrade_forget(void)
{
	if (child_pid) {
		ev_io_stop(server.loop, &child_io);
		ev_child_stop(server.loop, &child_watch);
	}
	if (child_pipe >= 0)
		close(child_pipe);
	if (ready_fd >= 0)
		close(ready_fd);
	child_pipe = ready_fd = -1;
	child_pid = 0;
}

void upgrade_start(void (*on_ready)(void))
{
	if (child_pid) {
		log_warn("upgrade: already in progress (process %d)", (int)child_pid);
		return;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		log_error("upgrade: pipe: %s", strerror(errno));
		return;
	}
	/* Name every listening socket for the new process. */
	char fds[2048];
	size_t used = 0;
	fds[0] = '\0';
	for (struct listener *l = server.listeners; l; l = l->next) {
		int n = snprintf(fds + used, sizeof(fds) - used, "%s%s=%d", used ? "," : "", l->name, l->fd);
		if (n < 0 || (size_t)n >= sizeof(fds) - used)
			break;
		used += (size_t)n;
	}
	pid_t pid = fork();
	if (pid < 0) {
		log_error("upgrade: fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		/* The child keeps the listeners and the pipe across exec, nothing else. */
		for (struct listener *l = server.listeners; l; l = l->next)
			fcntl(l->fd, F_SETFD, 0);
		fcntl(p[1], F_SETFD, 0);
		char rf[16];
		snprintf(rf, sizeof(rf), "%d", p[1]);
		setenv("EDGEPROXY_LISTEN_FDS", fds, 1);
		setenv("EDGEPROXY_READY_FD", rf, 1);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL); /* libev's signalfd blocked them */
		execv(exe_path, saved_argv);
		_exit(127);
	}
	close(p[1]);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	child_pipe = p[0];
	child_pid = pid;
	ready_cb = on_ready;
	ev_io_init(&child_io, on_child_ready, child_pipe, EV_READ);
	ev_io_start(server.loop, &child_io);
	ev_child_init(&child_watch, on_child_exit, pid, 0);
	ev_child_start(server.loop, &child_watch);
	log_info("upgrade: started %s as process %d", exe_path, (int)pid);
}
