/* holder.c - `fleetbox --fleetbox-runner NAMES` and `--fleetbox-reconcile`:
 * process setup, the shutdown sequence, and the loop-close check. */
#include "loop/holder.h"
#include "loop/runner.h"
#include "net/net.h"
#include "util/beneath.h"
#include "util/err.h"
#include "util/fileio.h"
#include "util/log.h"
#include "util/owner.h"
#include "util/timeouts.h"
#include "vmm/fake.h"
#include "vmm/vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The backstop after each VM's own escalation had its chance. */
#define SHUTDOWN_SLACK_MS 10000

void holder_fchown_invoker(int fd, const char *what)
{
	int r = owner_claim_fd(fd);
	if (r < 0)
		log_errno(LOG_WARN, r, "chown %s", what);
}

void holder_fchownat_invoker(int dirfd, const char *name, const char *what)
{
	int r = owner_claim_at(dirfd, name);
	if (r < 0)
		log_errno(LOG_WARN, r, "chown %s", what);
}

int holder_fd_path(int dirfd, const char *name, char *out, size_t len)
{
	int n = snprintf(out, len, "/proc/self/fd/%d/%s", dirfd, name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void on_shutdown_timer(uv_timer_t *t)
{
	struct holder *h = t->data;
	for (struct member *m = h->members; m; m = m->next)
		if (m->vm) {
			log_warn("%s: VMM still running %.1f s after shutdown began; killing it",
				 m->name, (double)h->shutdown_kill_ms / 1000.0);
			h->drv->kill(m->vm);
		}
}

/* Longer than the slowest member's whole escalation. */
static uint64_t shutdown_kill_ms(const struct holder *h, bool hard)
{
	uint64_t worst = TO_HALT_MS;
	for (const struct member *m = h->members; m && !hard; m = m->next)
		if (m->vm && !m->ephemeral && timeouts_stop_escalation_ms(m->stop_grace_ms) > worst)
			worst = timeouts_stop_escalation_ms(m->stop_grace_ms);
	return worst + SHUTDOWN_SLACK_MS;
}

static void finish_close_cb(uv_handle_t *hd)
{
	(void)hd;
}

void holder_maybe_finish(struct holder *h)
{
	if (h->finished || h->n_members > 0 || h->members)
		return;
	if (!h->shutting_down) {
		holder_shutdown(h, "last member stopped", false);
		return;
	}
	h->finished = true;
	if (h->net) {
		struct err e = { 0 };
		if (net_destroy(h->net, &e) < 0) {
			log_error("network teardown incomplete: %s (its crash record stays; run `fleetbox prune`)", e.msg);
			h->exit_code = 1;
		} else {
			log_info("network torn down");
		}
		h->net = NULL;
	}
	if (h->drv == &vmm_fake_driver)
		vmm_fake_record_close();
	while (h->reservations) {
		struct reservation *r = h->reservations;
		h->reservations = r->next;
		free(r);
	}
	parent_close(h);
	close(h->run_fd);
	close(h->root_fd);
	h->run_fd = h->root_fd = -1;
	uv_close((uv_handle_t *)&h->sig_term, finish_close_cb);
	uv_close((uv_handle_t *)&h->sig_int, finish_close_cb);
	uv_close((uv_handle_t *)&h->shutdown_timer, finish_close_cb);
}

void holder_shutdown(struct holder *h, const char *why, bool hard)
{
	/* A hard shutdown overtakes a graceful one (the client died during it). */
	if (h->shutting_down && (!hard || h->shutdown_hard))
		return;
	bool again = h->shutting_down;
	h->shutting_down = true;
	h->shutdown_hard = hard;
	log_info("shutting down%s: %s", hard ? " at once (halting every VM)" : "", why);
	if (!again || hard) {
		h->shutdown_kill_ms = shutdown_kill_ms(h, hard);
		uv_timer_start(&h->shutdown_timer, on_shutdown_timer, h->shutdown_kill_ms, 0);
	}
	/* Members are freed from close callbacks, never inside member_stop(),
	 * but keep the next pointer anyway. */
	for (struct member *m = h->members, *next; m; m = next) {
		next = m->next;
		if (m->removed)
			continue;
		if (hard || m->ephemeral) /* an ephemeral disk is deleted: no clean power-off */
			member_halt(m);
		else
			member_stop(m, 0);
	}
	holder_maybe_finish(h);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct holder *h = s->data;
	holder_shutdown(h, signum == SIGTERM ? "SIGTERM" : "SIGINT", false);
}

/* The store root is the one path taken as named (it is what we serve);
 * everything below it is reached from its fd, never through a symlink. The
 * root itself is not chowned: under sudo it may be any directory. */
static int store_open(struct holder *h)
{
	int r = mkdir_p(h->root, 0700);
	if (r == 0 && (h->root_fd = open(h->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		r = -errno;
	if (r < 0)
		return log_errno(LOG_ERROR, r, "open the store %s", h->root);
	if (!realpath(h->root, h->root_real))
		h->root_real[0] = '\0';
	h->run_fd = beneath_mkdir_p(h->root_fd, "run", 0700);
	if (h->run_fd < 0)
		return log_errno(LOG_ERROR, h->run_fd, "create %s/run%s", h->root,
				 h->run_fd == -ELOOP ? " (it is a symlink)" : "");
	holder_fchown_invoker(h->run_fd, "run/");
	return 0;
}

static void walk_cb(uv_handle_t *hd, void *arg)
{
	(void)arg;
	log_error("leaked handle at exit: %s%s", uv_handle_type_name(hd->type),
		  uv_is_closing(hd) ? " (closing)" : "");
}

int runner_main(const char *names_csv)
{
	log_init("holder");
	struct holder hs, *h = &hs;
	memset(h, 0, sizeof(*h));
	h->pidfd = -1;
	h->root_fd = h->run_fd = -1;
	h->fake_next_ip = 2;
	h->conn_timeout_ms = 5000;
	const char *ct = getenv("FLEETBOX_CONN_TIMEOUT_MS");
	if (ct && *ct)
		h->conn_timeout_ms = (unsigned)strtoul(ct, NULL, 10);
	peer_rules_init(&h->conn_rule, &h->ctl_rule);

	if (!names_csv || !*names_csv) {
		log_error("--fleetbox-runner needs at least one member name");
		return 2;
	}
	if (wire_store_root(h->root, sizeof(h->root)) < 0) {
		log_error("cannot determine the store root (set FLEETBOX_HOME)");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	const char *ppid = getenv("FLEETBOX_PARENT_PID");
	if (ppid && *ppid) {
		h->parent_pid = (pid_t)strtol(ppid, NULL, 10);
		if (h->parent_pid <= 1) {
			log_error("invalid FLEETBOX_PARENT_PID \"%s\"", ppid);
			return 2;
		}
	}
	/* Bound holders too: test runners kill a test's whole process group
	 * (timeout -s KILL, ctest, CI cancel), and a holder in it would die
	 * before tearing down. The parent watch (pidfd, getppid) does not care
	 * about sessions. Our client may have made us a leader already (EPERM). */
	if (setsid() < 0 && errno != EPERM)
		log_errno(LOG_WARN, -errno, "setsid");

	struct err e = { 0 };
	if (vmm_driver_select(NULL, &h->drv, &e) < 0) {
		log_error("%s", e.msg);
		return 1;
	}
	const char *netmode = getenv("FLEETBOX_NET");
	if (netmode && !strcmp(netmode, "bridge"))
		h->use_net = true;
	else if (netmode && !strcmp(netmode, "none"))
		h->use_net = false;
	else if (netmode && *netmode) {
		log_error("unknown FLEETBOX_NET \"%s\" (want bridge or none)", netmode);
		return 2;
	} else
		h->use_net = h->drv->needs_network;
	if (!h->use_net && h->drv->needs_network) {
		log_error("the %s driver needs FLEETBOX_NET=bridge", h->drv->name);
		return 2;
	}
	if (h->use_net) {
		if (net_preflight(&e) < 0) {
			log_error("%s", e.msg);
			return 1;
		}
		struct net_reconcile_report rep = { 0 };
		if (net_reconcile(h->root, &rep, &e) < 0)
			log_warn("reconcile: %s", e.msg);
		else if (rep.records_reclaimed)
			log_info("reconcile: reclaimed %d orphaned network(s)", rep.records_reclaimed);
	}
	log_info("holder %d starting: driver %s, network %s, %s", (int)getpid(), h->drv->name,
		 h->use_net ? "bridge" : "none", h->parent_pid ? "bound" : "detached");

	if (store_open(h) < 0)
		return 1;
	int r;

	uv_loop_t loop;
	if ((r = uv_loop_init(&loop)) < 0) {
		log_error("uv_loop_init: %s", uv_strerror(r));
		return 1;
	}
	h->loop = &loop;
	/* These cannot fail on Linux short of memory exhaustion; still, a holder
	 * that cannot see SIGTERM must not start. */
	if ((r = uv_signal_init(&loop, &h->sig_term)) < 0 || (r = uv_signal_init(&loop, &h->sig_int)) < 0 ||
	    (r = uv_timer_init(&loop, &h->shutdown_timer)) < 0) {
		log_error("uv init: %s", uv_strerror(r));
		return 1;
	}
	h->sig_term.data = h->sig_int.data = h->shutdown_timer.data = h;
	if ((r = uv_signal_start(&h->sig_term, on_signal, SIGTERM)) < 0 ||
	    (r = uv_signal_start(&h->sig_int, on_signal, SIGINT)) < 0)
		log_error("uv_signal_start: %s", uv_strerror(r)); /* shutdown below closes them */

	char *names = strdup(names_csv), *save = NULL, *first = NULL;
	if (!names) {
		log_error("out of memory");
		return 1;
	}
	bool failed = false;
	for (char *tok = strtok_r(names, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!*tok)
			continue;
		if (!first)
			first = tok;
		char errbuf[512];
		struct member *m;
		if (!wire_name_valid(tok)) {
			log_error("invalid member name \"%s\"", tok);
			failed = true;
			break;
		}
		if (member_find(h, tok))
			continue;
		if (member_register(h, tok, &m, errbuf, sizeof(errbuf)) < 0) {
			log_error("%s", errbuf);
			failed = true;
			break;
		}
	}
	if (!failed && !first) {
		log_error("--fleetbox-runner needs at least one member name");
		failed = true;
	}
	if (!failed && h->parent_pid) {
		if ((r = ctl_listen(h, first)) < 0) {
			log_error("listen on %s: %s", h->ctl_path, uv_strerror(r));
			failed = true;
		} else {
			parent_watch_start(h);
		}
	}
	free(names);
	if (failed) {
		h->exit_code = 1;
		holder_shutdown(h, "startup failed", true);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	r = uv_loop_close(&loop);
	/* Every connection is closed now: nothing refers to the tables. */
	peer_table_fini(&h->conn_peers);
	peer_table_fini(&h->ctl_peers);
	if (r != 0) {
		uv_walk(&loop, walk_cb, NULL);
		log_error("uv_loop_close: %s", uv_strerror(r));
		return 1;
	}
	log_info("holder %d exiting (code %d)", (int)getpid(), h->exit_code);
	return h->exit_code;
}

int reconcile_main(void)
{
	log_init("reconcile");
	char root[PATH_MAX];
	if (wire_store_root(root, sizeof(root)) < 0) {
		log_error("cannot determine the store root (set FLEETBOX_HOME)");
		return 1;
	}
	struct net_reconcile_report rep = { 0 };
	struct err e = { 0 };
	int r = net_reconcile(root, &rep, &e);
	int swept = store_sweep_tmp(root), pids = store_sweep_pidfiles(root);
	rep.temporaries_removed += swept > 0 ? swept : 0;
	/* One machine-readable line on stdout for `fleetbox prune`. */
	json_t *o = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}", "records_seen",
			      rep.records_seen, "records_reclaimed", rep.records_reclaimed,
			      "records_kept", rep.records_kept, "processes_killed",
			      rep.processes_killed, "taps_removed", rep.taps_removed,
			      "bridges_removed", rep.bridges_removed, "tables_removed",
			      rep.tables_removed, "temporaries_removed", rep.temporaries_removed,
			      "pidfiles_removed", pids);
	if (o && r < 0)
		json_object_set_new(o, "error", json_string(e.msg));
	char *line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	printf("%s\n", line ? line : "{}");
	free(line);
	fflush(stdout);
	if (r < 0) {
		log_error("%s", e.msg);
		return 1;
	}
	return 0;
}
