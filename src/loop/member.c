/* member.c - registration, boot, stop and removal of one member.
 *
 * Liveness guard (protocol.md: "guard against PID reuse"): while a member is
 * registered, the holder holds an exclusive OFD lock on <member>/.lock. A client
 * treats a pidfile as live only if the PID exists AND the lock is held, so a
 * recycled PID of an unrelated process never looks like a holder. */
#include "loop/holder.h"
#include "net/net.h"
#include "util/err.h"
#include "util/fileio.h"
#include "util/log.h"
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

int member_register(struct holder *h, const char *name, struct member **out, char *errbuf,
		    size_t errlen)
{
	struct member *m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(errbuf, errlen, "out of memory");
		return -ENOMEM;
	}
	m->h = h;
	m->lock_fd = -1;
	/* Served but not booted yet: "starting" (protocol.md, status row) until
	 * boot-member arrives and the VM is up. */
	m->state = FB_STATE_STARTING;
	snprintf(m->name, sizeof(m->name), "%s", name);
	int r;
	if ((r = wire_sock_path(h->root, name, m->sock_path, sizeof(m->sock_path))) < 0 ||
	    (r = wire_pidfile_path(h->root, name, m->pidfile, sizeof(m->pidfile))) < 0 ||
	    (r = wire_member_dir(h->root, name, m->dir, sizeof(m->dir))) < 0) {
		snprintf(errbuf, errlen, "store path too long for %s", name);
		free(m);
		return r;
	}
	if ((r = mkdir_p(m->dir, 0700)) < 0) {
		snprintf(errbuf, errlen, "create %s: %s", m->dir, strerror(-r));
		free(m);
		return r;
	}
	char lock[PATH_MAX];
	snprintf(lock, sizeof(lock), "%s/.lock", m->dir);
	m->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	/* An OFD write lock: clients test it with F_OFD_GETLK, which never takes
	 * it, so a concurrent `ls` cannot make this registration fail. */
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	if (m->lock_fd < 0 || fcntl(m->lock_fd, F_OFD_SETLK, &fl) < 0) {
		r = -errno;
		snprintf(errbuf, errlen, "member %s is already held by another holder", name);
		if (m->lock_fd >= 0)
			close(m->lock_fd);
		free(m);
		return r == -EAGAIN || r == -EACCES ? -EBUSY : r;
	}
	holder_chown_invoker(lock);
	char pid[24];
	int n = snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if ((r = file_write_atomic(m->pidfile, pid, (size_t)n, 0600)) < 0) {
		snprintf(errbuf, errlen, "write %s: %s", m->pidfile, strerror(-r));
		close(m->lock_fd);
		free(m);
		return r;
	}
	holder_chown_invoker(m->pidfile);
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
	 * the pidfile gone (or stale). */
	unlink(m->sock_path);
	unlink(m->pidfile);
	if (m->lock_fd >= 0) {
		close(m->lock_fd);
		m->lock_fd = -1;
	}
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
		member_set_state(m, FB_STATE_STOPPED, NULL);
	}
	if (m->stop_requested || h->shutting_down)
		member_remove(m);
	else
		holder_maybe_finish(h);
}

int member_boot(struct member *m, const struct rpc_spec *s, char *errbuf, size_t errlen)
{
	struct holder *h = m->h;
	struct reservation *res = reservation_find(h, m->name);
	snprintf(m->mac, sizeof(m->mac), "%s", res->mac);
	snprintf(m->ip, sizeof(m->ip), "%s", res->ip);
	struct err e = { 0 };
	member_set_state(m, FB_STATE_STARTING, NULL);
	if (h->net) {
		if (net_tap_add(h->net, m->name, m->tap, &e) < 0) {
			snprintf(errbuf, errlen, "create %s: %s", m->name, e.msg);
			member_set_state(m, FB_STATE_ERROR, errbuf);
			return -EIO;
		}
	}
	char serial[PATH_MAX];
	if (s->serial_log_path && *s->serial_log_path)
		snprintf(serial, sizeof(serial), "%s", s->serial_log_path);
	else
		snprintf(serial, sizeof(serial), "%s/serial.log", m->dir);
	struct vmm_boot_spec bs = {
		.name = m->name,
		.member_dir = m->dir,
		.disk_path = s->disk_path,
		.seed_path = s->seed_path,
		.fixture_paths = (const char *const *)s->fixture_paths,
		.n_fixtures = s->n_fixtures,
		.efi_path = s->efi_path,
		.serial_log_path = serial,
		.kernel_path = s->kernel_path,
		.initrd_path = s->initrd_path,
		.cmdline = s->cmdline,
		.cpus = s->cpus > 0 ? s->cpus : 1,
		.memory_bytes = s->memory_bytes ? s->memory_bytes : 512ull << 20,
		.mac = m->mac,
		.ip = m->ip,
		.gateway = h->net ? net_gateway(h->net) : NULL,
		.prefix_len = h->net ? net_prefix_len(h->net) : 24,
		.tap = m->tap[0] ? m->tap : NULL,
	};
	static const struct vmm_callbacks cbs = { .ready = vm_ready, .exited = vm_exited };
	m->stop_requested = false;
	if (h->drv->boot(h->loop, &bs, &cbs, m, &m->vm, &e) < 0) {
		m->vm = NULL;
		snprintf(errbuf, errlen, "create %s: %s", m->name, e.msg);
		member_set_state(m, FB_STATE_ERROR, errbuf);
		if (h->net && m->tap[0]) {
			struct err e2 = { 0 };
			net_tap_remove(h->net, m->name, &e2);
			m->tap[0] = '\0';
		}
		return -EIO;
	}
	h->vms_running++;
	if (h->net)
		net_tap_set_pid(h->net, m->name, h->drv->pid(m->vm));
	return 0;
}

void member_stop(struct member *m)
{
	m->stop_requested = true;
	if (m->vm)
		m->h->drv->stop(m->vm); /* vm_exited() removes the member */
	else
		member_remove(m);
}
