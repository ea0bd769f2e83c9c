/* orch/stop.c - stopping members concurrently on one private loop.
 *
 * Every `stop` request goes out at once; a 20 ms timer then watches the
 * store until each member is released by its holder (pidfile + lock, as
 * ctl_wait_gone) and each holder left serving nothing has exited, so when
 * this returns the network and processes of those holders are gone too. The
 * whole wait is bounded by one deadline: N members stop in the time of the
 * slowest, not the sum. That deadline exceeds the holder's whole escalation
 * (grace + SIGTERM phase, util/timeouts.h) by a margin, so a guest that takes
 * its time to power off is waited for, never reported as a failure. With
 * FLEETBOX_STOP_TIMEOUT set, each stop carries it ("stop_timeout_ms"). */
#include "client/orch/orch.h"
#include "client/ctl.h"
#include "client/store.h"
#include "rpc/msg.h"
#include "util/err.h"
#include "util/timeouts.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#define STOP_POLL_MS 20

struct stop_job {
	struct stop_run *s;
	char name[FB_NAME_MAX + 1];
	pid_t holder;          /* before the stop: the stop releases it */
	struct ctl_req *req;   /* in flight */
	bool answered, released;
	int status;
	struct err e;
};

struct stop_run {
	const char *root;
	uv_loop_t loop;
	uv_timer_t timer;
	struct stop_job *jobs;
	size_t n;
	pid_t *holders;        /* holders to see exit (serve nothing any more) */
	size_t nh;
	bool holders_known, hooked, timer_closed;
	uint64_t deadline;
	int timeout_ms;
	char line[80];         /* the stop request */
	const volatile sig_atomic_t *abort;
	bool aborted, timed_out;
};

bool orch_pid_exited(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return errno == ESRCH;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	bool gone = poll(&p, 1, 0) > 0; /* readable once it exited (zombies too) */
	close(fd);
	return gone;
}

static void stop_reply_cb(void *data, int status, const char *reply, const struct err *e)
{
	struct stop_job *j = data;
	j->req = NULL;
	j->answered = true;
	if (status < 0) {
		j->status = status;
		if (e)
			j->e = *e;
		return;
	}
	struct rpc_reply rep;
	struct err de = { 0 };
	if (rpc_reply_decode(reply, strlen(reply), &rep, &de) < 0) {
		j->status = de.code;
		j->e = de;
	} else if (rep.error && *rep.error) {
		j->status = err_set(&j->e, -EIO, "stop %s: %s", j->name, rep.error);
	}
	rpc_reply_fini(&rep);
}

static bool holder_serves_any(const char *root, pid_t holder)
{
	char **names;
	size_t n;
	bool any = false;
	if (store_list_members(root, &names, &n) < 0)
		return false; /* cannot tell: do not wait for it */
	for (size_t i = 0; i < n && !any; i++) {
		pid_t p;
		any = store_member_running(root, names[i], &p) && p == holder;
	}
	store_names_free(names, n);
	return any;
}

/* Once every member is released: the holders that serve nothing more. */
static void collect_holders(struct stop_run *s)
{
	s->holders_known = true;
	for (size_t i = 0; i < s->n; i++) {
		pid_t h = s->jobs[i].holder;
		bool seen = false;
		for (size_t k = 0; k < s->nh; k++)
			seen |= s->holders[k] == h;
		if (h > 0 && !seen && !holder_serves_any(s->root, h))
			s->holders[s->nh++] = h;
	}
}

/* Released: the stop was answered (or failed) and the holder no longer
 * holds the member. A failed request with the member still held stays
 * pending until the deadline (the holder may be slow, not gone). */
static bool all_released(struct stop_run *s)
{
	bool all = true;
	for (size_t i = 0; i < s->n; i++) {
		struct stop_job *j = &s->jobs[i];
		if (!j->released && j->answered && !store_member_running(s->root, j->name, NULL))
			j->released = true;
		all &= j->released;
	}
	return all;
}

static bool all_answered(const struct stop_run *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (!s->jobs[i].answered)
			return false;
	return true;
}

static bool holders_gone(struct stop_run *s)
{
	if (!s->holders_known)
		collect_holders(s);
	for (size_t k = 0; k < s->nh; k++)
		if (!orch_pid_exited(s->holders[k]))
			return false;
	return true;
}

static void stop_finish(struct stop_run *s)
{
	for (size_t i = 0; i < s->n; i++)
		ctl_request_cancel(s->jobs[i].req);
	uv_timer_stop(&s->timer);
	if (!s->timer_closed) {
		s->timer_closed = true;
		uv_close((uv_handle_t *)&s->timer, NULL);
	}
}

static void stop_tick(uv_timer_t *t)
{
	struct stop_run *s = t->data;
	if (s->abort && *s->abort >= ORCH_ESCALATE) {
		s->aborted = true;
		stop_finish(s);
		return;
	}
	if (!s->hooked && all_answered(s)) {
		s->hooked = true; /* every stop is in flight in its holder now */
		orch_test_stop_at("stop-wait");
	}
	if (all_released(s) && holders_gone(s)) {
		stop_finish(s);
	} else if (uv_now(&s->loop) >= s->deadline) {
		s->timed_out = true;
		stop_finish(s);
	}
}

int orch_stop_wait_ms(void)
{
	return (int)timeouts_stop_wait_ms(timeouts_stop_grace_ms(false));
}

/* {"cmd":"stop"}, with the user's grace when FLEETBOX_STOP_TIMEOUT says one. */
static void stop_line(struct stop_run *s)
{
	uint64_t g;
	if (timeouts_stop_env(&g))
		snprintf(s->line, sizeof(s->line), "{\"cmd\":\"stop\",\"stop_timeout_ms\":%llu}\n",
			 (unsigned long long)g);
	else
		snprintf(s->line, sizeof(s->line), "{\"cmd\":\"stop\"}\n");
}

static void stop_start(struct stop_run *s, struct stop_job *j)
{
	j->s = s;
	store_member_running(s->root, j->name, &j->holder);
	int r = ctl_request_start(&s->loop, s->root, j->name, s->line, CTL_STATUS_MS, CTL_STATUS_MS,
				  stop_reply_cb, j, &j->req);
	if (r < 0) {
		j->answered = true;
		j->status = err_set(&j->e, r, "stop %s: %s", j->name, strerror(-r));
	}
}

/* The first member that is still held, with the best reason we have. */
static int stop_result(const struct stop_run *s, struct err *e)
{
	if (s->aborted)
		return err_set(e, -ECANCELED, "stop interrupted");
	for (size_t i = 0; i < s->n; i++) {
		const struct stop_job *j = &s->jobs[i];
		if (j->released)
			continue;
		if (j->status < 0) {
			if (e)
				*e = j->e;
			return j->status;
		}
		return err_set(e, -ETIMEDOUT, "%s: holder did not release the member within %d s "
			       "(FLEETBOX_STOP_TIMEOUT sets the guest's power-off grace)",
			       j->name, s->timeout_ms / 1000);
	}
	if (s->timed_out)
		return err_set(e, -ETIMEDOUT, "a holder did not exit within %d s after its last member stopped",
			       s->timeout_ms / 1000);
	return 0;
}

static int stop_run_init(struct stop_run *s, const char *root, size_t n, int timeout_ms,
			 struct err *e)
{
	memset(s, 0, sizeof(*s));
	s->root = root;
	s->n = n;
	s->jobs = calloc(n ? n : 1, sizeof(*s->jobs));
	s->holders = calloc(n ? n : 1, sizeof(*s->holders));
	int r = s->jobs && s->holders ? uv_loop_init(&s->loop) : -ENOMEM;
	if (r < 0) {
		free(s->jobs);
		free(s->holders);
		return err_set(e, r, "stop: %s", r == -ENOMEM ? "out of memory" : uv_strerror(r));
	}
	uv_timer_init(&s->loop, &s->timer);
	s->timer.data = s;
	/* Never shorter than the holder's escalation: a slow power-off is fine. */
	if (timeout_ms < orch_stop_wait_ms())
		timeout_ms = orch_stop_wait_ms();
	s->timeout_ms = timeout_ms;
	s->deadline = uv_now(&s->loop) + (uint64_t)timeout_ms;
	stop_line(s);
	return 0;
}

int orch_stop_members(const char *root, const char *const *names, size_t n, int timeout_ms,
		      const volatile sig_atomic_t *abort, struct err *e)
{
	if (abort && *abort >= ORCH_ESCALATE)
		return err_set(e, -ECANCELED, "stop interrupted");
	struct stop_run s;
	int r = stop_run_init(&s, root, n, timeout_ms, e);
	if (r < 0)
		return r;
	s.abort = abort;
	for (size_t i = 0; i < n; i++) {
		snprintf(s.jobs[i].name, sizeof(s.jobs[i].name), "%s", names[i]);
		if (store_member_running(root, names[i], NULL))
			stop_start(&s, &s.jobs[i]);
		else
			s.jobs[i].answered = s.jobs[i].released = true; /* nothing to stop */
	}
	uv_timer_start(&s.timer, stop_tick, 0, STOP_POLL_MS);
	ctl_run_loop(&s.loop);
	r = uv_loop_close(&s.loop) != 0 ? err_set(e, -EBUSY, "internal error: stop loop left handles open")
					: stop_result(&s, e);
	free(s.jobs);
	free(s.holders);
	return r;
}
