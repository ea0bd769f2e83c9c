/* reconcile.c - teardown of everything a record names, and reclaiming the
 * records of dead owners.
 *
 * Invariants: a process is only killed when its pid AND start time match the
 * record (a reused pid is left alone); a record is removed only after every
 * piece it names was verified gone; anything that could not be removed keeps its
 * record so a later prune can retry. Running reconcile twice is a no-op. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "net/net.h"
#include "net/netint.h"
#include "net/nl.h"
#include "net/record.h"
#include "net/ruleset.h"
#include "util/err.h"
#include "util/fileio.h"

#define KILL_WAIT_MS 3000

/* Without pidfds (old kernels, valgrind): signal by pid, then watch /proc. The
 * window between the start-time check and kill() is the classic race pidfds
 * close; it is only taken when they are unavailable. */
static int kill_vmm_legacy(pid_t pid, unsigned long long start)
{
	if (!proc_same(pid, start))
		return 0;
	if (kill(pid, SIGKILL) < 0)
		return errno == ESRCH ? 0 : -errno;
	for (int i = 0; i < KILL_WAIT_MS / 10; i++) {
		unsigned long long now;
		if (proc_start_time(pid, &now) == -ESRCH || now != start)
			return 1;
		nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
	}
	return -ETIMEDOUT;
}

/* The recorded VMM pid is that member's VMM: same process (start time), and
 * its environment carries the member's mark. Records live in a directory the
 * store's user may write; without the mark a forged record could make a root
 * prune kill any process. */
static bool is_vmm_of(const char *root, const char *member, pid_t pid, unsigned long long start)
{
	char dir[PATH_MAX], mark[PATH_MAX + 32];
	if (!proc_same(pid, start) || wire_member_dir(root, member, dir, sizeof(dir)) < 0)
		return false;
	snprintf(mark, sizeof(mark), PROC_VMM_MARK "=%s", dir);
	return proc_env_has(pid, mark);
}

/* 1 = killed, 0 = nothing (gone, or the pid now belongs to someone else), <0 error. */
static int kill_vmm(const char *root, const char *member, pid_t pid, unsigned long long start)
{
	if (pid <= 0 || !is_vmm_of(root, member, pid, start))
		return 0;
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0 && errno == ENOSYS)
		return kill_vmm_legacy(pid, start);
	if (fd < 0)
		return errno == ESRCH ? 0 : -errno;
	/* Checked after pidfd_open, so the fd refers to the process we verified. */
	if (!proc_same(pid, start)) {
		close(fd);
		return 0;
	}
	int r = 1;
	if (syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0) < 0)
		r = errno == ESRCH ? 0 : -errno;
	if (r == 1) {
		/* Readable once the process has exited (zombie or reaped). */
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int pr;
		do
			pr = poll(&p, 1, KILL_WAIT_MS);
		while (pr < 0 && errno == EINTR);
		if (pr == 0)
			r = -ETIMEDOUT;
		else if (pr < 0)
			r = -errno;
	}
	close(fd);
	return r;
}

static int keep_first(int *first, int r)
{
	if (r < 0 && *first == 0)
		*first = r;
	return r;
}

/* Deletes link `name` when it exists and is of `kind`, and verifies it is
 * gone. 1 = deleted, 0 = was not there, < 0 = it (or something under its name)
 * may still exist: the caller keeps the record. Every lookup error counts as
 * "may exist", never as "gone". */
static int link_remove(const char *name, const char *kind, struct err *e)
{
	struct nl_link l;
	int r = nl_link_get(name, &l);
	if (r == -ENODEV)
		return 0;
	if (r < 0)
		return err_set(e, r, "cannot look up %s: %s", name, strerror(-r));
	if (strcmp(l.kind, kind) != 0)
		return err_set(e, -EEXIST, "%s is not a %s (kind '%s'); left alone", name,
			       !strcmp(kind, "tun") ? "tap" : kind, l.kind);
	r = nl_link_del(name);
	if (r < 0 && r != -ENODEV)
		return err_set(e, r, "cannot delete %s: %s", name, strerror(-r));
	r = nl_link_get(name, &l);
	if (r == -ENODEV)
		return 1;
	return err_set(e, r < 0 ? r : -EBUSY, "%s still exists after delete%s%s", name,
		       r < 0 ? ": " : "", r < 0 ? strerror(-r) : "");
}

static void teardown_taps(const char *root, struct net_record *r, bool kill_vmms,
			  struct teardown_counts *c, struct err *e, int *first)
{
	struct nl_link br;
	bool have_br = nl_link_get(r->bridge, &br) == 0;
	for (size_t i = 0; i < r->ntaps; i++) {
		struct rec_tap *t = &r->taps[i];
		int k;
		if (kill_vmms && (k = kill_vmm(root, t->member, t->vmm_pid, t->vmm_start_time)) != 0) {
			if (k > 0)
				c->killed++;
			else if (keep_first(first, k) < 0)
				err_set(e, k, "cannot kill VMM %d of %s: %s", (int)t->vmm_pid,
					t->member, strerror(-k));
		}
		uint32_t ip;
		if (have_br && addr_parse(t->ip, &ip) == 0)
			nl_neigh_del(br.index, ip);  /* goes with the bridge anyway */
		int d = link_remove(t->name, "tun", e);
		if (d > 0)
			c->taps++;
		keep_first(first, d);
	}
}

int net_teardown(const char *root, struct net_record *r, bool kill_vmms,
		 struct teardown_counts *c, struct err *e)
{
	int first = 0, x;
	struct err le = {0};
	teardown_taps(root, r, kill_vmms, c, &le, &first);

	bool had_table = false;
	if ((x = ruleset_exists(r->table, &had_table, &le)) == 0 && had_table) {
		if (keep_first(&first, ruleset_delete(r->table, &le)) == 0)
			c->tables++;
	} else {
		keep_first(&first, x);
	}

	x = link_remove(r->bridge, "bridge", &le);
	if (x > 0)
		c->bridges++;
	keep_first(&first, x);

	/* Uplink forwarding: the last of our networks using it restores the original. */
	for (size_t i = 0; i < r->nfwd; i++) {
		struct rec_fwd *f = &r->fwd[i];
		int cur;
		if (fwd_shared(root, r->bridge, f->ifname, NULL) || fwd_read(f->ifname, &cur) < 0)
			continue;  /* still needed by a sibling, or the interface is gone */
		if (cur != f->original && (x = fwd_write(f->ifname, f->original)) < 0)
			err_set(&le, keep_first(&first, x), "cannot restore forwarding on %s: %s",
				f->ifname, strerror(-x));
		else if (fwd_read(f->ifname, &cur) < 0 || cur != f->original)
			err_set(&le, keep_first(&first, -EIO), "forwarding on %s was not restored",
				f->ifname);
	}
	if (first < 0) {
		if (le.code == 0)
			err_set(&le, first, "%s", strerror(-first));
		err_set(e, first, "teardown of %s: %s", r->bridge, le.msg);
	}
	return first;
}

static bool owner_alive(const struct net_record *r)
{
	return proc_same(r->owner_pid, r->owner_start_time);
}

int reconcile_locked(const char *root, struct net_reconcile_report *rep, struct err *e)
{
	memset(rep, 0, sizeof(*rep));
	char dir[PATH_MAX];
	if (record_dir(root, dir, sizeof(dir)) == 0) {
		int t = file_tmp_sweep(dir, NULL);
		rep->temporaries_removed = t > 0 ? t : 0;
	}
	char **paths;
	size_t n;
	int r = record_list(root, &paths, &n);
	if (r < 0)
		return err_set(e, r, "cannot list %s/networks: %s", root, strerror(-r));
	int first = 0;
	for (size_t i = 0; i < n; i++) {
		struct net_record rec;
		struct err le = {0};
		rep->records_seen++;
		if ((r = record_load(paths[i], &rec, &le)) < 0) {
			rep->records_kept++;
			if (first == 0)
				first = err_set(e, r, "%s", le.msg);
			continue;
		}
		if (owner_alive(&rec)) {
			record_fini(&rec);
			continue;
		}
		struct teardown_counts c = {0};
		r = net_teardown(root, &rec, true, &c, &le);
		rep->processes_killed += c.killed;
		rep->taps_removed += c.taps;
		rep->bridges_removed += c.bridges;
		rep->tables_removed += c.tables;
		if (r == 0 && (r = record_remove(root, rec.bridge)) < 0)
			err_set(&le, r, "cannot remove %s: %s", paths[i], strerror(-r));
		if (r == 0) {
			rep->records_reclaimed++;
		} else {
			rep->records_kept++;
			if (first == 0)
				first = err_set(e, r, "record %s kept: %s", paths[i], le.msg);
		}
		record_fini(&rec);
	}
	record_list_free(paths, n);
	return first;
}

int net_reconcile(const char *store_root, struct net_reconcile_report *rep, struct err *e)
{
	struct net_reconcile_report dummy;
	if (!rep)
		rep = &dummy;
	memset(rep, 0, sizeof(*rep));
	if (!store_root || !*store_root)
		return err_set(e, -EINVAL, "missing store root");
	char dir[4096];
	if (record_dir(store_root, dir, sizeof(dir)) < 0)
		return err_set(e, -ENAMETOOLONG, "store path too long");
	if (access(dir, F_OK) < 0)
		return 0;  /* no records, nothing to do (and nothing to create) */
	int fd = record_lock(store_root);
	if (fd < 0)
		return err_set(e, fd, "cannot lock %s: %s", dir, strerror(-fd));
	int r = reconcile_locked(store_root, rep, e);
	record_unlock(fd);
	return r;
}
