/* orch/rollback.c - undoing a failed or interrupted `up`: exactly what the
 * plan's record says this call did, nothing else. Members it booted or had
 * registered are stopped again (all at once, bounded; a second interrupt
 * ends the wait and kills the holder this call spawned); members it created
 * are deleted unless a disk it did not create was found there; running
 * members are never touched. The error then says what was undone. */
#include "client/orch/plan.h"
#include "client/orch/orch.h"
#include "client/store.h"
#include "util/err.h"
#include "util/fileio.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct rollback {
	char deleted[256], stopped[256], kept[256], failed[256];
	bool escalated;
	pid_t killed;
};

static void name_append(char *list, size_t len, const char *name)
{
	size_t n = strlen(list);
	if (n + 2 < len)
		snprintf(list + n, len - n, "%s%s", n ? ", " : "", name);
}

/* Members this call had a holder boot or register: stopped again, all at
 * once. A second interrupt ends the wait early (see rollback_escalate). */
static void rollback_stop(struct up_plan *u, struct rollback *rb)
{
	const char **names = calloc(u->n, sizeof(char *));
	size_t k = 0;
	for (size_t i = 0; names && i < u->n; i++) {
		struct up_member *m = &u->m[i];
		if ((m->kind == MEMBER_STOPPED || m->kind == MEMBER_NEW) && (m->boot_sent || m->spawned_for))
			names[k++] = m->name;
	}
	struct err e = { 0 };
	if (k && orch_stop_members(u->root, names, k, orch_stop_wait_ms(), u->o->cancel, &e) == -ECANCELED)
		rb->escalated = true;
	free(names);
}

/* Second interrupt: no more waiting for graceful stops. The holder this call
 * spawned is killed (its VMMs die with it, PDEATHSIG); host network state
 * it made stays recorded and the next holder start or `prune` reclaims it. */
static void rollback_escalate(struct up_plan *u, struct rollback *rb)
{
	if (!rb->escalated || !u->spawned.pid)
		return;
	kill(u->spawned.pid, SIGKILL);
	waitpid(u->spawned.pid, NULL, 0);
	rb->killed = u->spawned.pid;
	if (u->spawned.ctl_fd >= 0)
		close(u->spawned.ctl_fd);
	memset(&u->spawned, 0, sizeof(u->spawned));
	u->spawned.ctl_fd = -1;
}

static void rolled_back(struct up_plan *u, struct up_member *m, char *list, size_t len,
			const char *what)
{
	name_append(list, len, m->name);
	up_set_phase(u, m, FB_UP_ROLLED_BACK, what);
}

/* A new member: its directory goes, unless a disk this call did not create
 * was found there (never deleted) or a holder still holds it. */
static void rollback_new(struct up_plan *u, struct up_member *m, struct rollback *rb)
{
	char dir[PATH_MAX], disk[PATH_MAX];
	store_member_dir(u->root, m->name, dir, sizeof(dir));
	store_member_file(u->root, m->name, "disk", disk, sizeof(disk));
	struct err e = { 0 };
	if (store_member_running(u->root, m->name, NULL))
		rolled_back(u, m, rb->failed, sizeof(rb->failed), "still held by its holder");
	else if (!path_exists(dir) && m->disk_created) /* its holder deleted it (ephemeral) */
		rolled_back(u, m, rb->deleted, sizeof(rb->deleted), "deleted");
	else if (!path_exists(dir))
		up_set_phase(u, m, FB_UP_ROLLED_BACK, "nothing was created");
	else if (!m->disk_created && path_exists(disk))
		rolled_back(u, m, rb->kept, sizeof(rb->kept), "kept the disk found in place");
	else if (store_member_delete(u->root, m->name, &e) == 0)
		rolled_back(u, m, rb->deleted, sizeof(rb->deleted), "deleted");
	else
		rolled_back(u, m, rb->failed, sizeof(rb->failed), e.msg);
}

static void rollback_member(struct up_plan *u, struct up_member *m, struct rollback *rb)
{
	if (m->kind == MEMBER_NEW)
		rollback_new(u, m, rb);
	else if (m->kind == MEMBER_STOPPED && (m->boot_sent || m->spawned_for))
		rolled_back(u, m, rb->stopped, sizeof(rb->stopped), "stopped again");
	else if (m->kind == MEMBER_STOPPED)
		up_set_phase(u, m, FB_UP_ROLLED_BACK, "left stopped");
}

static void rollback_run(struct up_plan *u, struct rollback *rb)
{
	orch_test_stop_at("rollback");
	rollback_stop(u, rb);
	rollback_escalate(u, rb);
	struct err e = { 0 };
	ctl_holder_release(&u->spawned, orch_stop_wait_ms(), &e);
	for (size_t i = 0; i < u->n; i++)
		rollback_member(u, &u->m[i], rb);
}

static void part(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void part(char *out, size_t len, const char *fmt, ...)
{
	size_t n = strlen(out);
	if (n && n + 2 < len)
		n += (size_t)snprintf(out + n, len - n, "; ");
	va_list ap;
	va_start(ap, fmt);
	if (n < len)
		vsnprintf(out + n, len - n, fmt, ap);
	va_end(ap);
}

/* "deleted a, b; stopped c again; ..." or "" when nothing was undone. */
static void rollback_summary(const struct rollback *rb, char *out, size_t len)
{
	out[0] = '\0';
	if (rb->deleted[0])
		part(out, len, "deleted %s", rb->deleted);
	if (rb->stopped[0])
		part(out, len, "stopped %s again", rb->stopped);
	if (rb->kept[0])
		part(out, len, "kept the disk found in place for %s", rb->kept);
	if (rb->killed)
		part(out, len, "second interrupt: killed holder %d", (int)rb->killed);
	if (rb->failed[0])
		part(out, len, "could not remove %s (still held by a holder)", rb->failed);
}

/* The error the caller sees: what went wrong (or that it was interrupted,
 * and where), and what was rolled back. */
static void up_fail_message(struct up_plan *u, int r, const struct rollback *rb)
{
	char done[800];
	rollback_summary(rb, done, sizeof(done));
	struct err e = u->e;
	if (r == -ECANCELED)
		err_set(&u->e, r, "interrupted during %s; %s%s", u->phase ? u->phase : "up",
			done[0] ? "rolled back: " : "nothing to roll back", done);
	else if (done[0])
		err_set(&u->e, r, "%s (rolled back: %s)", e.msg, done);
}

void up_rollback(struct up_plan *u, int r)
{
	struct rollback rb = { 0 };
	rollback_run(u, &rb);
	up_fail_message(u, r, &rb);
}
