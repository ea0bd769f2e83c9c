/* orch/wait.c - the long waits of `up` on a private loop, each cancellable
 * through the caller's flag: a 50 ms timer polls it and ends whatever is in
 * flight (ctl requests, SSH attempts), so an interrupt never waits for a boot
 * or an SSH timeout to run out. */
#include "client/orch/plan.h"
#include "client/orch/orch.h"
#include "client/ssh/ssh.h"
#include "client/ssh/target.h"
#include "client/store.h"
#include "util/err.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_TICK_MS 50
#define PROGRESS_TICKS 20 /* a progress refresh every second */
#define SSH_RETRY_MS 100
#define SSH_ATTEMPT_MS 5000

bool up_cancelled(const struct up_plan *u)
{
	return u->o->cancel && *u->o->cancel != 0;
}

static void wait_tick(uv_timer_t *t)
{
	struct up_wait *w = t->data;
	if (w->done)
		return;
	if (!w->cancelled && up_cancelled(w->u)) {
		w->cancelled = true;
		w->on_cancel(w);
		return;
	}
	if (w->on_tick)
		w->on_tick(w);
	if (++w->ticks % PROGRESS_TICKS == 0)
		up_progress_tick(w->u);
}

int up_wait_init(struct up_wait *w, struct up_plan *u, struct err *e)
{
	memset(w, 0, sizeof(*w));
	w->u = u;
	int r = uv_loop_init(&w->loop);
	if (r < 0)
		return err_set(e, r, "uv_loop_init: %s", uv_strerror(r));
	uv_timer_init(&w->loop, &w->timer);
	w->timer.data = w;
	return 0;
}

void up_wait_done(struct up_wait *w)
{
	if (w->done)
		return;
	w->done = true;
	uv_timer_stop(&w->timer);
	uv_close((uv_handle_t *)&w->timer, NULL);
}

int up_wait_run(struct up_wait *w, struct err *e)
{
	if (!w->done)
		uv_timer_start(&w->timer, wait_tick, WAIT_TICK_MS, WAIT_TICK_MS);
	ctl_run_loop(&w->loop);
	if (uv_loop_close(&w->loop) != 0)
		return err_set(e, -EBUSY, "internal error: wait loop left handles open");
	return w->cancelled ? -ECANCELED : 0;
}

/* --- SSH: retry a command until it exits 0 --- */

struct ssh_wait {
	struct up_wait w;
	struct ssh_target t;
	const char *cmd;
	struct ssh_exec_op *op;  /* the attempt in flight */
	uint64_t deadline, retry_at;
	int status;
	struct err e;
};

static bool retryable(int r)
{
	return r == -ECONNREFUSED || r == -ETIMEDOUT || r == -ECONNRESET || r == -EHOSTUNREACH ||
	       r == -ENETUNREACH || r == -EAGAIN || r == -EPIPE || r == -ECONNABORTED;
}

static void ssh_attempt(struct ssh_wait *s);

static void ssh_attempt_cb(void *data, int status, struct ssh_result *res, const struct err *e)
{
	struct ssh_wait *s = data;
	s->op = NULL;
	if (s->w.cancelled) {
		up_wait_done(&s->w);
		return;
	}
	if (status == 0 && res->st.exit_status == 0 && !res->st.exit_signal) {
		s->status = 0;
		up_wait_done(&s->w);
		return;
	}
	if (status == 0) {
		s->status = err_set(&s->e, -EIO, "`%s` exited with status %d", s->cmd, res->st.exit_status);
	} else {
		s->status = status;
		if (e)
			s->e = *e;
	}
	bool again = status == 0 || retryable(status);
	if (!again || uv_now(&s->w.loop) >= s->deadline)
		up_wait_done(&s->w);
	else
		s->retry_at = uv_now(&s->w.loop) + SSH_RETRY_MS;
}

static void ssh_attempt(struct ssh_wait *s)
{
	uint64_t now = uv_now(&s->w.loop);
	uint64_t left = s->deadline > now ? s->deadline - now : 0;
	s->t.connect_timeout_ms = left < SSH_ATTEMPT_MS ? (int)(left > 100 ? left : 100) : SSH_ATTEMPT_MS;
	s->retry_at = 0;
	struct err e = { 0 };
	int r = ssh_exec_start(&s->w.loop, &s->t, s->cmd, ssh_attempt_cb, s, &s->op, &e);
	if (r < 0) {
		s->status = r;
		s->e = e;
		up_wait_done(&s->w);
	}
}

static void ssh_tick(struct up_wait *w)
{
	struct ssh_wait *s = (struct ssh_wait *)w;
	if (!s->op && s->retry_at && uv_now(&w->loop) >= s->retry_at)
		ssh_attempt(s);
}

static void ssh_cancel(struct up_wait *w)
{
	struct ssh_wait *s = (struct ssh_wait *)w;
	if (s->op)
		ssh_exec_cancel(s->op); /* its callback ends the wait */
	else
		up_wait_done(w);
}

/* Every boot failure says where to look: the console log. */
static void logs_hint(const struct up_plan *u, const struct up_member *m, struct err *e)
{
	char path[PATH_MAX];
	if (store_member_file(u->root, m->name, "serial.log", path, sizeof(path)) < 0)
		return;
	size_t n = strlen(e->msg);
	snprintf(e->msg + n, sizeof(e->msg) - n, "; console log: %s (`fleetbox logs %s`)", path,
		 m->name);
}

int up_ssh_wait(struct up_plan *u, struct up_member *m, const char *cmd, int timeout_ms,
		struct err *e)
{
	struct ssh_wait s = { .cmd = cmd };
	int r = target_resolve(u->root, m->name, &s.t, e);
	if (r < 0 || (r = up_wait_init(&s.w, u, e)) < 0)
		return r;
	s.w.on_tick = ssh_tick;
	s.w.on_cancel = ssh_cancel;
	s.deadline = uv_now(&s.w.loop) + (uint64_t)timeout_ms;
	ssh_attempt(&s);
	r = up_wait_run(&s.w, e);
	if (r < 0)
		return r == -ECANCELED ? err_set(e, r, "interrupted") : r;
	if (s.status < 0 && e) {
		*e = s.e;
		logs_hint(u, m, e);
	}
	return s.status;
}
