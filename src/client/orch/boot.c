/* orch/boot.c - the boot phase of `up`: every boot-member request at once on
 * a private loop (through the holder-wide socket we know answers), then, as
 * soon as a member's own reply arrives, its status and its SSH confirmation
 * (confirm_ssh), so a fast member is ready before a slow one has booted.
 * Interrupted, it ends the requests in flight; the rollback then stops those
 * VMs in their holder. */
#include "client/orch/plan.h"
#include "client/orch/orch.h"
#include "rpc/msg.h"
#include "util/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define ADOPT 1        /* boot_reply: the holder is booting it already */
#define STILL_BOOTING 1 /* booted_status: starting/downloading, ask again */
#define POLL_MS 200

/* "member <m> is already running" for a member that was starting at classify:
 * a boot in progress (its client died) that we wait for. */
static bool boot_in_progress(const struct up_member *m, const char *error)
{
	char want[FB_NAME_MAX + 40];
	snprintf(want, sizeof(want), "member %s is already running", m->name);
	return m->maybe_booting && !strcmp(error, want);
}

/* A request's outcome: its failure (e says why, kept in m->boot_err), or
 * its reply decoded into rep (rpc_reply_fini it either way). */
static int reply_of(struct up_member *m, int status, const char *reply, const struct err *e,
		    struct rpc_reply *rep)
{
	memset(rep, 0, sizeof(*rep));
	if (status < 0) {
		if (e)
			m->boot_err = *e;
		return status;
	}
	return rpc_reply_decode(reply, strlen(reply), rep, &m->boot_err);
}

/* The holder's answer to boot-member: {} once the VM is started and its
 * IP is known, else an error. */
static int boot_reply(struct up_member *m, int status, const char *reply, const struct err *e)
{
	struct rpc_reply rep;
	int r = reply_of(m, status, reply, e, &rep);
	if (r == 0 && rep.error && boot_in_progress(m, rep.error))
		r = ADOPT;
	else if (r == 0 && rep.error && *rep.error)
		r = err_set(&m->boot_err, -EIO, "%s", rep.error);
	rpc_reply_fini(&rep);
	return r;
}

/* A booted member must be running per its holder; its IP is the
 * reservation's (bridge), else the holder's status (fake VMM). */
static int booted_status(struct up_member *m, int status, const char *reply, const struct err *e)
{
	struct rpc_reply rep;
	int r = reply_of(m, status, reply, e, &rep);
	const struct rpc_status *st = rep.status;
	if (r == 0 && !st)
		r = err_set(&m->boot_err, -EPROTO, "status reply from %s has no status", m->name);
	else if (r == 0 && m->awaiting &&
		 (st->state == FB_STATE_STARTING || st->state == FB_STATE_DOWNLOADING))
		r = STILL_BOOTING;
	else if (r == 0 && st->state != FB_STATE_RUNNING)
		r = err_set(&m->boot_err, -EIO, "%s is %s%s%s", m->name, wire_state_name(st->state),
			    st->error && *st->error ? ": " : "", st->error ? st->error : "");
	if (r == 0 && st->ip && *st->ip)
		snprintf(m->ip, sizeof(m->ip), "%s", st->ip);
	if (r >= 0 && !m->u->holder_pid)
		m->u->holder_pid = (pid_t)st->pid;
	rpc_reply_fini(&rep);
	return r;
}

static void boot_end(struct up_member *m, int status)
{
	struct up_plan *u = m->u;
	m->boot_status = status;
	if (status == 0) {
		m->booted = true;
		up_set_phase(u, m, FB_UP_READY, "");
	} else if (status != -ECANCELED) {
		up_set_phase(u, m, FB_UP_FAILED, m->boot_err.msg);
	}
	if (--u->pending == 0)
		up_wait_done(u->wait);
}

static void status_cb(void *data, int status, const char *reply, const struct err *e)
{
	struct up_member *m = data;
	m->req = NULL;
	int r = booted_status(m, status, reply, e);
	if (r == STILL_BOOTING && !m->u->wait->cancelled) {
		m->next_poll = uv_now(&m->u->wait->loop) + POLL_MS; /* boot_tick asks again */
		return;
	}
	if (r == 0 && !m->u->wait->cancelled && !up_cancelled(m->u))
		r = up_confirm_member(m->u, m);
	boot_end(m, r == STILL_BOOTING || (r == 0 && up_cancelled(m->u)) ? -ECANCELED : r);
}

static void ask_status(struct up_member *m)
{
	struct up_plan *u = m->u;
	int r = ctl_request_start(&u->wait->loop, u->root, m->name, "{\"cmd\":\"status\"}\n",
				  CTL_STATUS_MS, CTL_STATUS_MS, status_cb, m, &m->req);
	if (r < 0)
		boot_end(m, err_set(&m->boot_err, r, "status of %s: %s", m->name, strerror(-r)));
}

static void boot_cb(void *data, int status, const char *reply, const struct err *e)
{
	struct up_member *m = data;
	struct up_plan *u = m->u;
	m->req = NULL;
	int r = boot_reply(m, status, reply, e);
	if (r < 0 || u->wait->cancelled) {
		boot_end(m, r < 0 ? r : -ECANCELED);
		return;
	}
	m->awaiting = r == ADOPT;
	ask_status(m);
}

/* Members booting already (adopted): their status every POLL_MS. */
static void boot_tick(struct up_wait *w)
{
	struct up_plan *u = w->u;
	for (size_t i = 0; i < u->n; i++) {
		struct up_member *m = &u->m[i];
		if (m->awaiting && !m->req && m->next_poll && uv_now(&w->loop) >= m->next_poll) {
			m->next_poll = 0;
			ask_status(m);
		}
	}
}

/* Interrupted: end every request in flight (the rollback then stops those
 * VMs in their holder, booting or not). */
static void boot_cancel(struct up_wait *w)
{
	struct up_plan *u = w->u;
	for (size_t i = 0; i < u->n; i++) {
		struct up_member *m = &u->m[i];
		if (m->req)
			ctl_request_cancel(m->req);
		else if (m->awaiting && m->next_poll)
			boot_end(m, -ECANCELED); /* between two polls */
	}
	if (u->pending == 0)
		up_wait_done(w);
}

static void boot_start(struct up_plan *u, struct up_member *m)
{
	/* Boot through the holder-wide socket we know answers. */
	int r = ctl_request_start(&u->wait->loop, u->root, u->via, m->boot_line, CTL_DIAL_MS,
				  CTL_BOOT_MS, boot_cb, m, &m->req);
	if (r < 0) {
		m->boot_status = err_set(&m->boot_err, r, "boot %s: %s", m->name, strerror(-r));
		up_set_phase(u, m, FB_UP_FAILED, m->boot_err.msg);
		return;
	}
	m->boot_sent = true;
	u->pending++;
	up_set_phase(u, m, FB_UP_BOOTING, "");
}

static int boot_all(struct up_plan *u)
{
	struct up_wait w;
	int r = up_wait_init(&w, u, &u->e);
	if (r < 0)
		return r;
	w.on_cancel = boot_cancel;
	w.on_tick = boot_tick;
	u->wait = &w;
	for (size_t i = 0; i < u->n; i++)
		if (u->m[i].boot_line)
			boot_start(u, &u->m[i]);
	if (u->pending == 0)
		up_wait_done(&w);
	r = up_wait_run(&w, &u->e);
	u->wait = NULL;
	return r;
}

int up_boot(struct up_plan *u)
{
	if (u->to_boot == 0)
		return 0;
	up_line(u, "booting %zu member%s", u->to_boot, u->to_boot == 1 ? "" : "s");
	int r = boot_all(u);
	for (size_t i = 0; r == 0 && i < u->n; i++)
		if (u->m[i].boot_line && u->m[i].boot_status < 0) {
			u->e = u->m[i].boot_err;
			r = u->m[i].boot_status;
		}
	return r;
}
