/* member.c - registration, boot, stop and removal of one member.
 *
 * Liveness guard (protocol.md: "guard against PID reuse"): while a member is
 * registered, the holder holds an exclusive OFD lock on <member>/.lock. A client
 * treats a pidfile as live only if the PID exists AND the lock is held, so a
 * recycled PID of an unrelated process never looks like a holder. */
#include "loop/holder.h"
#include "net/net.h"
#include "util/beneath.h"
#include "util/err.h"
#include "util/fileio.h"
#include "util/log.h"
#include "util/timeouts.h"
#include "vmm/vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

struct member *member_find(struct holder *h, const char *name)
{
	for (struct member *m = h->members; m; m = m->next)
		if (!m->removed && !strcmp(m->name, name))
			return m;
	return NULL;
}

struct reservation *reservation_find(struct holder *h, const char *name)
{
	for (struct reservation *r = h->reservations; r; r = r->next)
		if (!strcmp(r->name, name))
			return r;
	return NULL;
}

void member_set_state(struct member *m, enum wire_state s, const char *error)
{
	if (m->state != s)
		log_info("%s: %s -> %s%s%s", m->name, wire_state_name(m->state), wire_state_name(s),
			 error && *error ? ": " : "", error ? error : "");
	m->state = s;
	snprintf(m->error, sizeof(m->error), "%s", error ? error : "");
}

/* <root>/clusters/<cluster>/<name>, created and opened beneath the root. */
static int open_member_dir(struct member *m, char *errbuf, size_t errlen)
{
	char cluster[FB_NAME_MAX + 1], rel[2 * FB_NAME_MAX + 16];
	wire_cluster_name(m->name, cluster);
	snprintf(rel, sizeof(rel), "clusters/%s/%s", cluster, m->name);
	m->dir_fd = beneath_mkdir_p(m->h->root_fd, rel, 0700);
	if (m->dir_fd == -ELOOP)
		snprintf(errbuf, errlen, "create %s: a symlink on its way; refused", m->dir);
	else if (m->dir_fd < 0)
		snprintf(errbuf, errlen, "create %s: %s", m->dir, strerror(-m->dir_fd));
	return m->dir_fd < 0 ? m->dir_fd : 0;
}

/* The liveness guard and the pidfile, inside the member dir's fd. */
static int claim(struct member *m, char *errbuf, size_t errlen)
{
	m->lock_fd = openat(m->dir_fd, ".lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	/* An OFD write lock: clients test it with F_OFD_GETLK, which never takes
	 * it, so a concurrent `ls` cannot make this registration fail. */
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	if (m->lock_fd < 0 || fcntl(m->lock_fd, F_OFD_SETLK, &fl) < 0) {
		int r = -errno;
		snprintf(errbuf, errlen, "member %s is already held by another holder", m->name);
		return r == -EAGAIN || r == -EACCES ? -EBUSY : r;
	}
	holder_fchown_invoker(m->lock_fd, ".lock");
	char pid[24];
	int n = snprintf(pid, sizeof(pid), "%d", (int)getpid());
	int r = file_write_atomic_at(m->dir_fd, "pid", pid, (size_t)n, 0600);
	if (r < 0)
		snprintf(errbuf, errlen, "write %s: %s", m->pidfile, strerror(-r));
	return r;
}

static void member_unclaim(struct member *m)
{
	if (m->lock_fd >= 0)
		close(m->lock_fd);
	if (m->dir_fd >= 0)
		close(m->dir_fd);
	m->lock_fd = m->dir_fd = -1;
}

int member_register(struct holder *h, const char *name, struct member **out, char *errbuf,
		    size_t errlen)
{
	struct member *m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(errbuf, errlen, "out of memory");
		return -ENOMEM;
	}
	m->h = h;
	m->lock_fd = m->dir_fd = -1;
	/* Served but not booted yet: "starting" (protocol.md, status row) until
	 * boot-member arrives and the VM is up. */
	m->state = FB_STATE_STARTING;
	snprintf(m->name, sizeof(m->name), "%s", name);
	char hash[17];
	wire_name_hash(name, hash);
	snprintf(m->sock_name, sizeof(m->sock_name), "%s.sock", hash);
	int r;
	if ((r = wire_sock_path(h->root, name, m->sock_path, sizeof(m->sock_path))) < 0 ||
	    (r = wire_pidfile_path(h->root, name, m->pidfile, sizeof(m->pidfile))) < 0 ||
	    (r = wire_member_dir(h->root, name, m->dir, sizeof(m->dir))) < 0) {
		snprintf(errbuf, errlen, "store path too long for %s", name);
		free(m);
		return r;
	}
	if ((r = open_member_dir(m, errbuf, errlen)) < 0 || (r = claim(m, errbuf, errlen)) < 0) {
		member_unclaim(m);
		free(m);
		return r;
	}
	m->next = h->members;
	h->members = m;
	h->n_members++;
	if ((r = server_listen(m)) < 0) {
		snprintf(errbuf, errlen, "listen on %s: %s", m->sock_path, uv_strerror(r));
		member_remove(m);
		return r;
	}
	log_info("%s: registered (socket %s)", name, m->sock_path);
	*out = m;
	return 0;
}

/* Second phase of removal: unlink from the list, free, maybe finish. */
static void member_free(struct member *m)
{
	struct holder *h = m->h;
	struct member **pp = &h->members;
	while (*pp && *pp != m)
		pp = &(*pp)->next;
	if (*pp)
		*pp = m->next;
	free(m);
	holder_maybe_finish(h);
}

static void member_close_cb(uv_handle_t *hd)
{
	member_free(hd->data);
}

/* An ephemeral member's directory goes once its VM is gone; then the
 * cluster directory if that left it empty. Only beneath the store root. */
static void delete_ephemeral(struct member *m)
{
	char cluster[FB_NAME_MAX + 1], rel[FB_NAME_MAX + 16];
	wire_cluster_name(m->name, cluster);
	snprintf(rel, sizeof(rel), "clusters/%s", cluster);
	int cfd = beneath_open(m->h->root_fd, rel, O_RDONLY | O_DIRECTORY, 0);
	int r = cfd < 0 ? cfd : rm_rf_at(cfd, m->name);
	if (r < 0) {
		log_errno(LOG_WARN, r, "%s: delete ephemeral %s", m->name, m->dir);
	} else {
		log_info("%s: ephemeral: deleted %s", m->name, m->dir);
		int clusters = beneath_open(m->h->root_fd, "clusters", O_RDONLY | O_DIRECTORY, 0);
		if (clusters >= 0 && unlinkat(clusters, cluster, AT_REMOVEDIR) < 0 &&
		    errno != ENOTEMPTY && errno != EEXIST && errno != ENOENT)
			log_errno(LOG_WARN, -errno, "%s: remove %s/%s", m->name, m->h->root, rel);
		if (clusters >= 0)
			close(clusters);
	}
	if (cfd >= 0)
		close(cfd);
}

void member_remove(struct member *m)
{
	if (m->removed)
		return;
	m->removed = true;
	m->h->n_members--;
	if (m->boot_conn) {
		conn_reply_error(m->boot_conn, "member %s was stopped during boot", m->name);
		m->boot_conn = NULL;
	}
	server_detach_member(m);
	/* Files first, lock last: a client that sees the lock free must also see
	 * the pidfile gone (or stale). An ephemeral member's directory goes
	 * first of all, so once its socket is gone, so is the directory. */
	boot_files_close(&m->files);
	if (m->ephemeral && !m->vm && m->dir_fd >= 0)
		delete_ephemeral(m);
	if (m->dir_fd >= 0)
		unlinkat(m->dir_fd, "pid", 0);
	unlinkat(m->h->run_fd, m->sock_name, 0);
	member_unclaim(m);
	log_info("%s: removed", m->name);
	if (m->server_open)
		uv_close((uv_handle_t *)&m->server, member_close_cb);
	else
		member_free(m);
}

/* --- VM callbacks --- */

static void vm_ready(void *data, int status, const char *msg)
{
	struct member *m = data;
	/* Booted just as a stop arrived: the VM is going away, not running. */
	if (status == 0 && (m->stop_requested || m->h->shutting_down))
		status = -ECANCELED;
	if (status < 0) {
		char err[600];
		if (m->stop_requested || m->h->shutting_down)
			snprintf(err, sizeof(err), "member %s was stopped during boot", m->name);
		else
			snprintf(err, sizeof(err), "start %s: %s", m->name, msg ? msg : strerror(-status));
		member_set_state(m, FB_STATE_ERROR, err);
		if (m->boot_conn) {
			conn_reply_error(m->boot_conn, "%s", err);
			m->boot_conn = NULL;
		}
		return;
	}
	member_set_state(m, FB_STATE_RUNNING, NULL);
	if (m->boot_conn) {
		struct rpc_reply rep = { 0 };
		conn_reply(m->boot_conn, &rep);
		m->boot_conn = NULL;
	}
}

static void vm_exited(void *data, bool unexpected, const char *msg)
{
	struct member *m = data;
	struct holder *h = m->h;
	m->vm = NULL;
	h->vms_running--;
	boot_files_close(&m->files);
	if (h->net && m->tap[0]) {
		struct err e = { 0 };
		if (net_tap_remove(h->net, m->name, &e) < 0)
			log_warn("%s: remove tap %s: %s", m->name, m->tap, e.msg);
		m->tap[0] = '\0';
	}
	if (unexpected && !m->stop_requested && !h->shutting_down) {
		char err[600];
		snprintf(err, sizeof(err), "vm exited unexpectedly: %s", msg ? msg : "unknown reason");
		member_set_state(m, FB_STATE_ERROR, err);
		log_error("%s: %s", m->name, err);
	} else if (m->state != FB_STATE_ERROR) {
		/* A stop, or the guest's own power-off (msg says so): stopped. */
		if (msg && !m->stop_requested && !h->shutting_down)
			log_info("%s: %s", m->name, msg);
		member_set_state(m, FB_STATE_STOPPED, NULL);
	}
	if (m->stop_requested || h->shutting_down)
		member_remove(m);
	else
		holder_maybe_finish(h);
}

static void boot_spec_fill(struct member *m, const struct rpc_spec *s, struct vmm_boot_spec *bs)
{
	struct holder *h = m->h;
	*bs = (struct vmm_boot_spec){
		.name = m->name,
		.member_dir = m->dir,
		.cmdline = s->cmdline,
		.cpus = s->cpus > 0 ? s->cpus : 1,
		.memory_bytes = s->memory_bytes ? s->memory_bytes : 512ull << 20,
		.mac = m->mac,
		.ip = m->ip,
		.gateway = h->net ? net_gateway(h->net) : NULL,
		.prefix_len = h->net ? net_prefix_len(h->net) : 24,
		.tap = m->tap[0] ? m->tap : NULL,
	};
	boot_files_apply(&m->files, m->dir_fd, bs);
}

static int boot_fail(struct member *m, char *errbuf, size_t errlen, const char *msg)
{
	snprintf(errbuf, errlen, "create %s: %s", m->name, msg);
	member_set_state(m, FB_STATE_ERROR, errbuf);
	if (m->h->net && m->tap[0]) {
		struct err e2 = { 0 };
		net_tap_remove(m->h->net, m->name, &e2);
		m->tap[0] = '\0';
	}
	boot_files_close(&m->files);
	return -EIO;
}

/* The spec's, else FLEETBOX_STOP_TIMEOUT, else by image: the mini image's
 * init powers off at once; a systemd guest needs seconds (minutes on TCG). */
static uint64_t member_grace(const struct rpc_spec *s)
{
	if (s->stop_timeout_ms)
		return s->stop_timeout_ms;
	bool mini = s->cmdline && strstr(s->cmdline, "rdinit=/init");
	return timeouts_stop_grace_ms(mini);
}

/* The console log as the user names it (the VMM gets /proc/self/fd/N). */
static const char *serial_shown(struct member *m, const struct rpc_spec *s)
{
	if (s->serial_log_path && *s->serial_log_path)
		return s->serial_log_path;
	snprintf(m->serial_shown, sizeof(m->serial_shown), "%s/serial.log", m->dir);
	return m->serial_shown;
}

int member_boot(struct member *m, const struct rpc_spec *s, char *errbuf, size_t errlen)
{
	struct holder *h = m->h;
	struct reservation *res = reservation_find(h, m->name);
	snprintf(m->mac, sizeof(m->mac), "%s", res->mac);
	snprintf(m->ip, sizeof(m->ip), "%s", res->ip);
	/* Every path is checked and opened before anything is created. */
	int r = boot_files_open(m, s, &m->files, errbuf, errlen);
	if (r < 0) {
		member_set_state(m, FB_STATE_ERROR, errbuf);
		return r;
	}
	m->ephemeral = s->ephemeral;
	struct err e = { 0 };
	member_set_state(m, FB_STATE_STARTING, NULL);
	/* The tap belongs to the user the VMM runs as ((uid_t)-1: nobody). */
	uid_t tu = m->files.uid ? m->files.uid : (uid_t)-1;
	gid_t tg = m->files.uid ? m->files.gid : (gid_t)-1;
	if (h->net && net_tap_add_owned(h->net, m->name, tu, tg, m->tap, &e) < 0)
		return boot_fail(m, errbuf, errlen, e.msg);
	int tap_fd = h->net ? net_tap_open(h->net, m->name, &e) : -1;
	if (h->net && (tap_fd < 0 || boot_files_add(&m->files, tap_fd) < 0)) {
		if (tap_fd >= 0)
			close(tap_fd);
		return boot_fail(m, errbuf, errlen, tap_fd < 0 ? e.msg : "too many files");
	}
	struct vmm_boot_spec bs;
	boot_spec_fill(m, s, &bs);
	m->stop_grace_ms = member_grace(s);
	bs.serial_log_shown = serial_shown(m, s);
	bs.tap_fd = tap_fd;
	static const struct vmm_callbacks cbs = { .ready = vm_ready, .exited = vm_exited };
	m->stop_requested = false;
	if (h->drv->boot(h->loop, &bs, &cbs, m, &m->vm, &e) < 0) {
		m->vm = NULL;
		return boot_fail(m, errbuf, errlen, e.msg);
	}
	h->vms_running++;
	if (h->net)
		net_tap_set_pid(h->net, m->name, h->drv->pid(m->vm));
	return 0;
}

void member_stop(struct member *m, uint64_t grace_ms)
{
	bool again = m->stop_requested;
	m->stop_requested = true;
	if (!m->vm) {
		member_remove(m);
		return;
	}
	if (grace_ms) /* the stop request's: the grace under way (shutdown's backstop) */
		m->stop_grace_ms = grace_ms;
	if (!m->stop_grace_ms)
		m->stop_grace_ms = TO_GRACE_TCG_MS;
	if (!again)
		log_info("%s: stopping (graceful power-off, SIGTERM after %.1f s)", m->name,
			 (double)m->stop_grace_ms / 1000.0);
	m->h->drv->stop(m->vm, m->stop_grace_ms); /* vm_exited() removes the member */
}

void member_halt(struct member *m)
{
	m->stop_requested = true;
	if (!m->vm) {
		member_remove(m);
		return;
	}
	log_info("%s: halting (no graceful power-off)", m->name);
	m->h->drv->stop(m->vm, 0);
}
