/* child.c - fork/exec with a pipe for the output, an ev_child watcher for the
 * status and an ev_timer as the deadline. A cancelled child keeps its watchers
 * until it is reaped so that no zombie is left behind. */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct child {
	struct ev_loop *loop;
	pid_t pid;
	int fd; /* read end of the output pipe, -1 once at EOF */
	ev_io io;
	ev_child cw;
	ev_timer timer;
	char *out; /* owner: the child struct */
	size_t len, max;
	int code;
	bool exited, timed_out, cancelled;
	child_done_fn done;
	void *ctx;
};

static void wipe(void *p, size_t len)
{
	volatile unsigned char *v = p;
	while (len--)
		*v++ = 0;
}

static void finish(struct child *c)
{
	if (c->fd >= 0 || !c->exited)
		return;
	ev_timer_stop(c->loop, &c->timer);
	if (!c->cancelled)
		c->done(c->ctx, c->timed_out ? CHILD_TIMEOUT : c->code, c->out, c->len);
	wipe(c->out, c->len); /* the output may be a generated private key */
	free(c->out);
	free(c);
}

static void on_output(struct ev_loop *loop, ev_io *w, int revents)
{
	struct child *c = w->data;
	char buf[4096];
	(void)revents;

	for (;;) {
		ssize_t n = read(c->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0)
			break;
		size_t take = (size_t)n < c->max - c->len ? (size_t)n : c->max - c->len;
		memcpy(c->out + c->len, buf, take); /* the rest is drained and dropped */
		c->len += take;
		c->out[c->len] = '\0';
	}
	ev_io_stop(loop, &c->io);
	close(c->fd);
	c->fd = -1;
	finish(c);
}

static void on_exit_status(struct ev_loop *loop, ev_child *w, int revents)
{
	struct child *c = w->data;
	(void)revents;

	ev_child_stop(loop, &c->cw);
	c->exited = true;
	if (WIFEXITED(w->rstatus))
		c->code = WEXITSTATUS(w->rstatus);
	else
		c->code = CHILD_SIGNALED;
	finish(c);
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct child *c = w->data;
	(void)loop;
	(void)revents;

	c->timed_out = true;
	kill(c->pid, SIGKILL);
}

/* In the child: the parent's signal state must not leak into the work or the hook
 * (libev blocks the signals it reads through signalfd; the server ignores SIGPIPE). */
static void child_reset_signals(void)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Every disposition back to its default: what we (SIGPIPE) or whoever
	 * started us (a shell ignores SIGINT/SIGQUIT in background jobs) ignored
	 * would otherwise be inherited by the hook. */
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
}

/* In the child before exec: the hook must not inherit listening sockets or
 * connections (they would stay open as long as the hook runs). */
static void close_other_fds(void)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3u, ~0u, 0u) == 0)
		return;
#endif
	struct rlimit rl;
	int max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (int)rl.rlim_cur : 65536;
	for (int fd = 3; fd < max; fd++)
		close(fd);
}

static struct child *start(struct ev_loop *loop, int (*fn)(void *, int), void *arg,
			   char *const argv[], double timeout, size_t max_out, child_done_fn done,
			   void *ctx)
{
	int p[2];
	struct child *c = calloc(1, sizeof(*c));

	if (!c || !(c->out = malloc(max_out + 1))) {
		free(c);
		return NULL;
	}
	c->out[0] = '\0';
	if (pipe2(p, O_CLOEXEC) < 0) {
		free(c->out);
		free(c);
		return NULL;
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		free(c->out);
		free(c);
		return NULL;
	}
	if (pid == 0) {
		child_reset_signals();
		close(p[0]);
		if (fn)
			_exit(fn(arg, p[1]) & 0xff);
		int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (devnull >= 0)
			dup2(devnull, 0);
		else
			close(0);
		dup2(p[1], 1);
		dup2(p[1], 2);
		close_other_fds();
		if (strchr(argv[0], '/'))
			execv(argv[0], argv);
		else
			execvp(argv[0], argv);
		static const char msg[] = "cannot execute the program\n";
		ssize_t ignored = write(2, msg, sizeof(msg) - 1);
		(void)ignored;
		_exit(127);
	}
	close(p[1]);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	c->loop = loop;
	c->pid = pid;
	c->fd = p[0];
	c->max = max_out;
	c->done = done;
	c->ctx = ctx;
	ev_io_init(&c->io, on_output, c->fd, EV_READ);
	c->io.data = c;
	ev_io_start(loop, &c->io);
	/* started before the loop runs again, so the exit cannot be missed */
	ev_child_init(&c->cw, on_exit_status, pid, 0);
	c->cw.data = c;
	ev_child_start(loop, &c->cw);
	ev_timer_init(&c->timer, on_deadline, timeout, 0);
	c->timer.data = c;
	ev_timer_start(loop, &c->timer);
	return c;
}

struct child *child_run_fn(struct ev_loop *loop, int (*fn)(void *arg, int fd), void *arg,
			   double timeout, size_t max_out, child_done_fn done, void *ctx)
{
	/* start() tells the two kinds apart by fn: without one, the child would
	 * exec a NULL argv. */
	if (!fn) {
		errno = EINVAL;
		return NULL;
	}
	return start(loop, fn, arg, NULL, timeout, max_out, done, ctx);
}

struct child *child_run_exec(struct ev_loop *loop, char *const argv[], double timeout,
			     size_t max_out, child_done_fn done, void *ctx)
{
	if (!argv || !argv[0]) {
		errno = EINVAL;
		return NULL;
	}
	return start(loop, NULL, NULL, argv, timeout, max_out, done, ctx);
}

void child_cancel(struct child *c)
{
	if (!c)
		return;
	c->cancelled = true;
	if (!c->exited)
		kill(c->pid, SIGKILL);
}
