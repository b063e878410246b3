/* server.c - process lifecycle: load the configuration, bind, serve, reload on
 * SIGHUP (keeping the old snapshot when the new file is bad), stop gracefully on
 * SIGTERM/SIGINT. */
#include "server.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	if (listener_sync(snap) < 0) {
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
	server.probes = health_start(snap);
	acme_sync(snap->acme_jobs, snap->n_acme_jobs, snap->cfg->global.state_dir);
	log_info("configuration reloaded (generation %llu)", (unsigned long long)server.generation);
	metrics_config_reload(true);
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

static void server_stop(void)
{
	if (server.stopping)
		return;
	server.stopping = true;
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
		break;
	case SIGUSR2:
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
	if (g->group) {
		struct group *gr = getgrnam(g->group);
		if (!gr) {
			log_error("group '%s' not found", g->group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (g->user) {
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
	 * them before libev's signalfd sees them: back to defaults first. */
	static const int caught[] = { SIGHUP, SIGTERM, SIGINT, SIGUSR1, SIGUSR2 };
	for (size_t i = 0; i < sizeof(caught) / sizeof(caught[0]); i++)
		signal(caught[i], SIG_DFL);
	ev_signal_init(&server.sig_hup, on_signal, SIGHUP);
	ev_signal_init(&server.sig_term, on_signal, SIGTERM);
	ev_signal_init(&server.sig_int, on_signal, SIGINT);
	ev_signal_init(&server.sig_usr1, on_signal, SIGUSR1);
	ev_signal_init(&server.sig_usr2, on_signal, SIGUSR2);
	ev_signal_start(server.loop, &server.sig_usr2);
	ev_signal_start(server.loop, &server.sig_hup);
	ev_signal_start(server.loop, &server.sig_term);
	ev_signal_start(server.loop, &server.sig_int);
	ev_signal_start(server.loop, &server.sig_usr1);
	if (accesslog_open(server.loop, &cfg->global) < 0 || listener_sync(server.snap) < 0 ||
	    drop_privileges(&cfg->global) < 0) {
		server_cleanup();
		return 1;
	}
	ev_init(&server.accept_retry, on_accept_retry);
	upgrade_close_unused();
	server.probes = health_start(server.snap);
	acme_sync(server.snap->acme_jobs, server.snap->n_acme_jobs, server.snap->cfg->global.state_dir);
	if (cfg->global.watch && watch_start(config_path, server_reload) < 0)
		log_warn("watch: file watching unavailable; reload with SIGHUP");
	if (getuid() == 0 && !cfg->global.user)
		log_warn("running as root: set [global] user (ports are bound before the switch)");
	upgrade_report_ready();
	log_info("edgeproxy serving %s (%zu entry point%s, %zu router%s)", config_path, cfg->n_entrypoints,
		 cfg->n_entrypoints == 1 ? "" : "s", cfg->n_routers, cfg->n_routers == 1 ? "" : "s");
	ev_run(server.loop, 0);
	server_cleanup();
	log_info("stopped");
	return 0;
}
