/* workers.c - the supervisor of worker processes (see workers.h). */
#include "workers.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acme_board.h"
#include "log.h"
#include "metrics.h"
#include "server.h"

/* A worker that dies sooner than this after its start is restarted after a pause,
 * so that a worker that cannot live does not turn into a fork loop. */
#define QUICK_DEATH_SECONDS 2.0
#define RESTART_PAUSE_SECONDS 1.0
/* How long past grace_period a stopping worker may take before it is killed. */
#define STOP_MARGIN_SECONDS 5.0

/* A worker process. Entry i counts its metrics in shared store i, so at most
 * n_procs workers run at once: the N serving ones and, after a change of entry
 * points, the previous ones finishing their requests. */
struct worker {
	pid_t pid;      /* 0: a free entry */
	unsigned index; /* its number among the N */
	bool retiring;  /* asked to stop: its exit is not a crash */
	ev_tstamp started;
	ev_child watch;
};

static struct worker *procs; /* owner: this module, for the process's life */
static size_t n_procs;
static unsigned n_wanted;
static ev_timer restart_timer;
static ev_timer kill_timer;

unsigned workers_wanted(const struct conf_global *g)
{
	if (g->workers > 0)
		return (unsigned)g->workers;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	return cpus > 0 ? (unsigned)(cpus > 256 ? 256 : cpus) : 1;
}

static size_t n_running(void)
{
	size_t n = 0;
	for (size_t i = 0; i < n_procs; i++)
		n += procs[i].pid != 0;
	return n;
}

static bool index_served(unsigned index)
{
	for (size_t i = 0; i < n_procs; i++)
		if (procs[i].pid && !procs[i].retiring && procs[i].index == index)
			return true;
	return false;
}

static void on_worker_exit(struct ev_loop *loop, ev_child *w, int revents);

/* Forks worker `index`; -1 when it could not (logged). */
static int spawn(unsigned index)
{
	struct worker *p = NULL;
	for (size_t i = 0; i < n_procs && !p; i++)
		if (!procs[i].pid)
			p = &procs[i];
	if (!p) {
		log_error("workers: %zu processes still running; worker %u waits for one to finish", n_procs, index);
		return -1;
	}
	size_t store = (size_t)(p - procs);
	pid_t pid = fork();
	if (pid < 0) {
		log_error("workers: fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0)
		server_worker_main(index, store);
	*p = (struct worker){ .pid = pid, .index = index, .started = ev_now(server.loop) };
	ev_child_init(&p->watch, on_worker_exit, pid, 0);
	ev_child_start(server.loop, &p->watch);
	log_info("workers: worker %u started (pid %d)", index, (int)pid);
	return 0;
}

/* Starts every worker number that has no serving process; true when all run. */
static bool spawn_missing(void)
{
	bool all = true;
	for (unsigned i = 0; i < n_wanted; i++)
		if (!index_served(i) && spawn(i) < 0)
			all = false;
	return all;
}

static void on_restart_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	if (server.stopping || spawn_missing())
		ev_timer_stop(server.loop, &restart_timer); /* else it fires again in a second */
}

static void describe_exit(int status, char *buf, size_t cap)
{
	if (WIFEXITED(status))
		snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, cap, "was killed by signal %d", WTERMSIG(status));
	else
		snprintf(buf, cap, "ended (status 0x%x)", (unsigned)status);
}

static void on_worker_exit(struct ev_loop *loop, ev_child *w, int revents)
{
	(void)revents;
	struct worker *p = (struct worker *)((char *)w - offsetof(struct worker, watch));
	char how[64];
	describe_exit(w->rstatus, how, sizeof(how));
	ev_child_stop(loop, w);
	metrics_release((size_t)(p - procs));
	bool expected = p->retiring || server.stopping;
	bool quick = ev_now(loop) - p->started < QUICK_DEATH_SECONDS;
	unsigned index = p->index;
	p->pid = 0;
	if (expected) {
		if (!(WIFEXITED(w->rstatus) && WEXITSTATUS(w->rstatus) == 0))
			log_warn("workers: worker %u (pid %d) %s while stopping", index, w->rpid, how);
		else
			log_info("workers: worker %u (pid %d) finished", index, w->rpid);
		if (server.stopping && n_running() == 0) {
			ev_timer_stop(loop, &kill_timer);
			ev_timer_stop(loop, &restart_timer);
			server_supervisor_done();
		}
		return;
	}
	log_error("workers: worker %u (pid %d) %s; %s", index, w->rpid, how,
		  quick ? "restarting it in 1s" : "restarting it");
	if (quick || !spawn_missing())
		ev_timer_again(loop, &restart_timer);
}

static void on_kill_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	for (size_t i = 0; i < n_procs; i++)
		if (procs[i].pid) {
			log_warn("workers: worker %u (pid %d) still running after the grace period; killing it",
				 procs[i].index, (int)procs[i].pid);
			kill(procs[i].pid, SIGKILL);
		}
}

int workers_start(unsigned n)
{
	n_wanted = n;
	n_procs = (size_t)n * 2 + 2;
	procs = calloc(n_procs, sizeof(*procs));
	if (!procs)
		return -1;
	/* Shared before the first fork: the same addresses in every process. */
	if (metrics_share(n_procs) < 0)
		log_warn("workers: no shared memory for metrics; /metrics shows the answering worker only");
	if (acme_board_open() < 0)
		log_warn("workers: no shared memory for ACME challenges; workers cannot answer them");
	ev_timer_init(&restart_timer, on_restart_timer, 0., RESTART_PAUSE_SECONDS);
	ev_init(&kill_timer, on_kill_timer);
	if (!spawn_missing()) {
		if (n_running() == 0)
			return -1;
		ev_timer_again(server.loop, &restart_timer);
	}
	log_info("workers: supervising %u workers (pid %d)", n, (int)getpid());
	return 0;
}

void workers_signal(int sig)
{
	for (size_t i = 0; i < n_procs; i++)
		if (procs[i].pid && (!procs[i].retiring || sig != SIGHUP))
			kill(procs[i].pid, sig);
}

void workers_reloaded(bool listeners_changed)
{
	if (!listeners_changed) {
		workers_signal(SIGHUP);
		return;
	}
	log_info("workers: entry points changed; starting new workers, the old ones finish their requests");
	for (size_t i = 0; i < n_procs; i++)
		if (procs[i].pid && !procs[i].retiring) {
			procs[i].retiring = true;
			kill(procs[i].pid, SIGTERM);
		}
	if (!spawn_missing())
		ev_timer_again(server.loop, &restart_timer);
}

void workers_stop(double grace_seconds)
{
	ev_timer_stop(server.loop, &restart_timer);
	for (size_t i = 0; i < n_procs; i++)
		if (procs[i].pid) {
			procs[i].retiring = true;
			kill(procs[i].pid, SIGTERM);
		}
	if (n_running() == 0) {
		server_supervisor_done();
		return;
	}
	ev_timer_set(&kill_timer, grace_seconds + STOP_MARGIN_SECONDS, 0.);
	ev_timer_start(server.loop, &kill_timer);
}

void workers_forget(void)
{
	for (size_t i = 0; i < n_procs; i++)
		if (procs[i].pid)
			ev_child_stop(server.loop, &procs[i].watch);
	ev_timer_stop(server.loop, &restart_timer);
	ev_timer_stop(server.loop, &kill_timer);
	free(procs);
	procs = NULL;
	n_procs = 0;
}
