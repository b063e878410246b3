/* server.c - process lifecycle: load the configuration, bind, serve, reload on
 * SIGHUP (keeping the old snapshot when the new file is bad), stop gracefully on
 * SIGTERM/SIGINT. With workers the same steps are split between the supervisor
 * (configuration, listeners, ACME, signals) and the workers it forks (serving);
 * workers.c keeps them running. */
#include "server.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "accesslog.h"
#include "acme.h"
#include "buf.h"
#include "conn.h"
#include "health.h"
#include "listener.h"
#include "upgrade.h"
#include "watch.h"
#include "tls.h"
#include "log.h"
#include "metrics.h"
#include "workers.h"

struct server server;

static void report_errors(struct conf_errors *errs, enum log_level level)
{
	for (size_t i = 0; i < errs->n; i++)
		log_msg(level, "%s", errs->msgs[i]);
}

/* Applies the parts of [global] that act process-wide. */
static void apply_global(const struct conf_global *g)
{
	log_set_level((enum log_level)g->log_level);
	server.max_conns = (size_t)g->max_connections;
}

static void server_reload(void)
{
	struct conf_errors errs = { 0 };
	struct config *cfg = config_load(server.config_path, &errs);
	if (!cfg) {
		report_errors(&errs, LOG_ERROR);
		log_error("reload failed (%zu error%s); still serving the previous configuration", errs.n,
			  errs.n == 1 ? "" : "s");
		metrics_config_reload(false);
		conf_errors_free(&errs);
		return;
	}
	struct snapshot *snap = snapshot_build(cfg, server.generation + 1, &errs);
	if (!snap) {
		report_errors(&errs, LOG_ERROR);
		conf_errors_free(&errs);
		log_error("reload failed; still serving the previous configuration");
		metrics_config_reload(false);
		return;
	}
	conf_errors_free(&errs);
	int listener_changes = listener_sync(snap);
	if (listener_changes < 0) {
		snapshot_unref(snap);
		log_error("reload failed: cannot bind a new entry point; still serving the previous configuration");
		metrics_config_reload(false);
		return;
	}
	const struct conf_global *og = &server.snap->cfg->global, *ng = &cfg->global;
	if (strcmp(og->access_log, ng->access_log) != 0 || og->access_log_format != ng->access_log_format)
		accesslog_open(server.loop, ng);
	apply_global(ng);
	server.generation++;
	health_stop(server.probes);
	snapshot_unref(server.snap);
	server.snap = snap;
	/* the supervisor serves nothing: no probes; workers leave ACME to it */
	server.probes = server.role == ROLE_SUPERVISOR ? NULL : health_start(snap);
	acme_sync(snap->acme_jobs, snap->n_acme_jobs, snap->cfg->global.state_dir);
	log_info("configuration reloaded (generation %llu)", (unsigned long long)server.generation);
	metrics_config_reload(true);
	if (server.role == ROLE_SUPERVISOR)
		workers_reloaded(listener_changes > 0);
	if (server.accept_paused && server.n_conns < server.max_conns && !ev_is_active(&server.accept_retry))
		listener_resume_all();
}

/* acme.c obtained or renewed a certificate: load it like any configuration change. */
void acme_on_certificate(void)
{
	log_info("acme: new certificate; reloading");
	server_reload();
}

static void on_grace_over(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	size_t n = conn_close_all();
	log_warn("grace period over: closed %zu connection%s still open", n, n == 1 ? "" : "s");
	ev_break(loop, EVBREAK_ALL);
}

void server_supervisor_done(void)
{
	ev_break(server.loop, EVBREAK_ALL);
}

static void server_stop(void)
{
	if (server.stopping)
		return;
	server.stopping = true;
	if (server.role == ROLE_SUPERVISOR) {
		log_info("stopping: the workers finish their requests (up to %.1fs)",
			 (double)server.snap->cfg->global.grace_period_ms / 1000.0);
		listener_close_all();
		watch_stop();
		workers_stop((double)server.snap->cfg->global.grace_period_ms / 1000.0);
		return;
	}
	log_info("stopping: no new connections; waiting up to %.1fs for %zu open connection%s",
		 (double)server.snap->cfg->global.grace_period_ms / 1000.0, server.n_conns,
		 server.n_conns == 1 ? "" : "s");
	listener_accept_pending();
	listener_close_all();
	watch_stop();
	ev_timer_stop(server.loop, &server.accept_retry);
	health_stop(server.probes);
	server.probes = NULL;
	conn_drain_all();
	if (server.n_conns == 0) {
		ev_break(server.loop, EVBREAK_ALL);
		return;
	}
	ev_timer_init(&server.grace, on_grace_over, (double)server.snap->cfg->global.grace_period_ms / 1000.0, 0.);
	ev_timer_start(server.loop, &server.grace);
}

void server_conn_closed(void)
{
	if (server.stopping) {
		if (server.n_conns == 0)
			ev_break(server.loop, EVBREAK_ALL);
		return;
	}
	if (server.accept_paused && server.n_conns < server.max_conns && !ev_is_active(&server.accept_retry))
		listener_resume_all();
}

static void on_accept_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	if (server.n_conns < server.max_conns)
		listener_resume_all();
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	switch (w->signum) {
	case SIGHUP:
		log_info("SIGHUP: reloading %s", server.config_path);
		server_reload();
		break;
	case SIGUSR1:
		accesslog_reopen();
		if (server.role == ROLE_SUPERVISOR)
			workers_signal(SIGUSR1);
		break;
	case SIGUSR2:
		if (server.role == ROLE_WORKER)
			log_warn("SIGUSR2: a worker does not upgrade; signal the supervisor (pid %d)", (int)getppid());
		else
			upgrade_start(server_stop);
		break;
	default:
		server_stop();
		break;
	}
}

/* Binding is done as root; serving is not (SPEC §3 [global] user, group). */
static int drop_privileges(const struct conf_global *g)
{
	if (!g->user && !g->group)
		return 0;
	uid_t uid = getuid();
	gid_t gid = getgid();
	/* getgrnam and getpwnam return static storage: safe in this single-threaded
	 * process, which reads the result before the next call. */
	if (g->group) {
		/* cppcheck-suppress getgrnamCalled */
		struct group *gr = getgrnam(g->group);
		if (!gr) {
			log_error("group '%s' not found", g->group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (g->user) {
		/* cppcheck-suppress getpwnamCalled */
		struct passwd *pw = getpwnam(g->user);
		if (!pw) {
			log_error("user '%s' not found", g->user);
			return -1;
		}
		uid = pw->pw_uid;
		if (!g->group)
			gid = pw->pw_gid;
	}
	if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
		log_error("cannot drop privileges to %s:%s: %s", g->user ? g->user : "-", g->group ? g->group : "-",
			  strerror(errno));
		return -1;
	}
	/* Check that it sticks: regaining root must fail. */
	if (uid != 0 && setuid(0) == 0) {
		log_error("privilege drop did not hold");
		return -1;
	}
	log_info("running as uid %u gid %u", (unsigned)uid, (unsigned)gid);
	return 0;
}

static void server_cleanup(void)
{
	watch_stop();
	acme_shutdown();
	health_stop(server.probes);
	server.probes = NULL;
	listener_close_all();
	conn_close_all();
	accesslog_close();
	snapshot_unref(server.snap);
	server.snap = NULL;
	buf_pool_drain();
	tls_buffers_drain();
}

static const int caught_signals[] = { SIGHUP, SIGTERM, SIGINT, SIGUSR1, SIGUSR2 };
#define N_CAUGHT (sizeof(caught_signals) / sizeof(caught_signals[0]))

static ev_signal *signal_watcher(size_t i)
{
	ev_signal *w[N_CAUGHT] = { &server.sig_hup, &server.sig_term, &server.sig_int, &server.sig_usr1,
				   &server.sig_usr2 };
	return w[i];
}

static void signals_start(void)
{
	for (size_t i = 0; i < N_CAUGHT; i++) {
		ev_signal_init(signal_watcher(i), on_signal, caught_signals[i]);
		ev_signal_start(server.loop, signal_watcher(i));
	}
}

/* Closes every descriptor a worker inherited but does not use: the supervisor's
 * ACME connections, its inotify and upgrade pipes. Kept: stdio, the listeners and
 * the access log. */
static void close_inherited_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	int own = dirfd(d), log = accesslog_fd();
	int close_list[256];
	size_t n = 0;
	/* readdir: one thread, and the stream is ours (see open_fds in metrics.c). */
	/* cppcheck-suppress readdirCalled */
	for (struct dirent *e; (e = readdir(d)) && n < sizeof(close_list) / sizeof(close_list[0]);) {
		if (e->d_name[0] == '.')
			continue;
		int fd = atoi(e->d_name);
		bool keep = fd <= 2 || fd == own || fd == log;
		for (const struct listener *l = server.listeners; l && !keep; l = l->next)
			keep = l->fd == fd;
		if (!keep)
			close_list[n++] = fd;
	}
	closedir(d);
	for (size_t i = 0; i < n; i++)
		close(close_list[i]);
}

void server_worker_main(unsigned worker, size_t store)
{
	pid_t supervisor = getppid();
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old); /* until this process's own handlers are in place */
	/* The supervisor's watchers are stopped on its loop (libev keeps signal and
	 * child watchers in process-wide tables), then that loop goes. */
	for (size_t i = 0; i < N_CAUGHT; i++)
		ev_signal_stop(server.loop, signal_watcher(i));
	workers_forget();
	upgrade_forget();
	watch_forget();
	acme_forget();
	accesslog_detach_loop();
	ev_loop_destroy(server.loop);
	close_inherited_fds();
	server.loop = ev_default_loop(EVFLAG_AUTO);
	if (!server.loop)
		_exit(1);
	server.role = ROLE_WORKER;
	server.worker = worker;
	char name[24];
	snprintf(name, sizeof(name), "worker %u", worker);
	log_set_origin(name);
	metrics_attach(store);
	/* A worker does not outlive its supervisor, even one killed with SIGKILL. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != supervisor)
		_exit(0);
	signals_start();
	accesslog_attach_loop(server.loop);
	listener_attach_loop();
	ev_init(&server.accept_retry, on_accept_retry);
	server.probes = health_start(server.snap);
	sigprocmask(SIG_SETMASK, &old, NULL);
	ev_run(server.loop, 0);
	server_cleanup();
	exit(0);
}

int server_run(const char *config_path)
{
	struct conf_errors errs = { 0 };
	struct config *cfg = config_load(config_path, &errs);
	if (!cfg) {
		report_errors(&errs, LOG_ERROR);
		conf_errors_free(&errs);
		return 1;
	}
	server.config_path = config_path;
	server.loop = ev_default_loop(EVFLAG_AUTO);
	if (!server.loop) {
		log_error("cannot start the event loop");
		config_free(cfg);
		return 1;
	}
	apply_global(&cfg->global);
	server.generation = 1;
	server.snap = snapshot_build(cfg, server.generation, &errs);
	report_errors(&errs, LOG_ERROR);
	conf_errors_free(&errs);
	if (!server.snap || tls_cache_init((size_t)server.snap->cfg->tls.session_cache) < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	/* Signals are caught before anything listens: a client or supervisor that
	 * sees the port open may signal at once. An ignored disposition inherited
	 * from the parent (a shell's background job ignores SIGINT) would discard
	 * them before libev sees them: back to defaults first. */
	for (size_t i = 0; i < N_CAUGHT; i++)
		signal(caught_signals[i], SIG_DFL);
	signals_start();
	unsigned workers = workers_wanted(&cfg->global);
	if (workers > 1)
		server.role = ROLE_SUPERVISOR; /* binds, never accepts */
	if (accesslog_open(server.loop, &cfg->global) < 0 || listener_sync(server.snap) < 0 ||
	    drop_privileges(&cfg->global) < 0) {
		server_cleanup();
		return 1;
	}
	ev_init(&server.accept_retry, on_accept_retry);
	upgrade_close_unused();
	if (workers > 1) {
		if (workers_start(workers) < 0) {
			server_cleanup();
			return 1;
		}
	} else {
		server.probes = health_start(server.snap);
	}
	acme_sync(server.snap->acme_jobs, server.snap->n_acme_jobs, server.snap->cfg->global.state_dir);
	if (cfg->global.watch && watch_start(config_path, server_reload) < 0)
		log_warn("watch: file watching unavailable; reload with SIGHUP");
	if (getuid() == 0 && !cfg->global.user)
		log_warn("running as root: set [global] user (ports are bound before the switch)");
	upgrade_report_ready();
	log_info("edgeproxy serving %s (%zu entry point%s, %zu router%s%s)", config_path, cfg->n_entrypoints,
		 cfg->n_entrypoints == 1 ? "" : "s", cfg->n_routers, cfg->n_routers == 1 ? "" : "s",
		 workers > 1 ? ", workers" : "");
	ev_run(server.loop, 0);
	server_cleanup();
	log_info("stopped");
	return 0;
}
