/* test_child.c - child processes on the event loop: a function's output and exit
 * status, an external program with stdout and stderr collected, output cut at the
 * limit, the deadline, cancellation, and the signal state a hook inherits. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "test.h"

static struct ev_loop *loop;

struct result {
	bool done;
	int code;
	char out[5000];
	size_t len;
};

static void on_done(void *ctx, int code, const char *out, size_t len)
{
	struct result *r = ctx;
	r->done = true;
	r->code = code;
	CHECK(out[len] == '\0');
	r->len = len < sizeof(r->out) - 1 ? len : sizeof(r->out) - 1;
	memcpy(r->out, out, r->len);
	r->out[r->len] = '\0';
	ev_break(loop, EVBREAK_ALL);
}

static int write_hello(void *arg, int fd)
{
	const char *s = arg;
	ssize_t n = write(fd, s, strlen(s));
	return n == (ssize_t)strlen(s) ? 3 : 1;
}

static int write_lots(void *arg, int fd)
{
	char buf[1000];
	(void)arg;
	memset(buf, 'x', sizeof(buf));
	for (int i = 0; i < 200; i++) /* 200 KB: more than a pipe holds */
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			return 1;
	return 0;
}

static void test_function(void)
{
	struct result r = { 0 };
	CHECK(child_run_fn(loop, write_hello, "hello from the child", 5, 100, on_done, &r) != NULL);
	ev_run(loop, 0);
	CHECK(r.done && r.code == 3 && strcmp(r.out, "hello from the child") == 0);

	/* output past the limit is drained and dropped, the child is not blocked */
	memset(&r, 0, sizeof(r));
	CHECK(child_run_fn(loop, write_lots, NULL, 5, 4096, on_done, &r) != NULL);
	ev_run(loop, 0);
	CHECK(r.done && r.code == 0 && r.len == 4096);
}

static void test_exec(void)
{
	struct result r = { 0 };
	char *argv[] = { "sh", "-c", "echo out; echo err >&2; exit 7", NULL };
	CHECK(child_run_exec(loop, argv, 5, 1000, on_done, &r) != NULL);
	ev_run(loop, 0);
	CHECK(r.done && r.code == 7);
	CHECK(strstr(r.out, "out\n") && strstr(r.out, "err\n"));

	/* no stdin, default SIGPIPE and an empty signal mask, whatever the parent had */
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, NULL);
	signal(SIGPIPE, SIG_IGN);
	memset(&r, 0, sizeof(r));
	char *argv2[] = { "sh", "-c", "read x && echo got-input; grep -E '^(SigBlk|SigIgn)' /proc/self/status",
			  NULL };
	CHECK(child_run_exec(loop, argv2, 5, 1000, on_done, &r) != NULL);
	ev_run(loop, 0);
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	CHECK(r.done && !strstr(r.out, "got-input"));
	CHECKF(strstr(r.out, "SigBlk:\t0000000000000000"), "%s", r.out);
	/* glibc (this test's libc) reserves signals 32 and 33 and refuses to change
	 * their disposition; whatever ignored them before us still does. */
	const char *ign = strstr(r.out, "SigIgn:\t");
	unsigned long long ign_mask = ign ? strtoull(ign + 8, NULL, 16) : ~0ULL;
	CHECKF((ign_mask & ~0x180000000ULL) == 0, "%s", r.out);

	/* a program that does not exist */
	memset(&r, 0, sizeof(r));
	char *argv3[] = { "/nonexistent/hook", "add", NULL };
	CHECK(child_run_exec(loop, argv3, 5, 1000, on_done, &r) != NULL);
	ev_run(loop, 0);
	CHECK(r.done && r.code == 127 && strstr(r.out, "cannot execute"));

	/* killed by a signal */
	memset(&r, 0, sizeof(r));
	char *argv4[] = { "sh", "-c", "kill -KILL $$", NULL };
	CHECK(child_run_exec(loop, argv4, 5, 1000, on_done, &r) != NULL);
	ev_run(loop, 0);
	CHECK(r.done && r.code == CHILD_SIGNALED);
}

static void break_loop(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(l, EVBREAK_ALL);
}

static void test_timeout_and_cancel(void)
{
	struct result r = { 0 };
	char *argv[] = { "sleep", "30", NULL };
	CHECK(child_run_exec(loop, argv, 0.2, 100, on_done, &r) != NULL);
	ev_run(loop, 0);
	CHECK(r.done && r.code == CHILD_TIMEOUT);

	/* cancelled: killed, reaped by the child watcher, never reported */
	memset(&r, 0, sizeof(r));
	struct child *c = child_run_exec(loop, argv, 5, 100, on_done, &r);
	CHECK(c != NULL);
	child_cancel(c);
	ev_timer t;
	ev_timer_init(&t, break_loop, 0.3, 0);
	ev_timer_start(loop, &t);
	ev_run(loop, 0);
	CHECK(!r.done);
	CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
}

int main(void)
{
	static const struct test_case cases[] = {
		TEST(test_function), TEST(test_exec), TEST(test_timeout_and_cancel),
	};
	loop = ev_default_loop(0);
	return test_run_all("child", cases, (int)(sizeof(cases) / sizeof(cases[0])));
}
