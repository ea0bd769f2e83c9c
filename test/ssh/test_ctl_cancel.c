/* test_ctl_cancel.c - ctl_request_cancel in every state of a request, on a
 * loop holding only the request and our own handles (a unix-socket "holder"
 * in a scratch store, a check handle, accepted connections).
 *
 * Which state a request is in is read from the loop itself (uv_walk): its pipe
 * and timer are the handles that are not ours. A check handle (it runs after
 * pending callbacks and I/O, before close callbacks) cancels when the wanted
 * state is seen:
 *   dialing          cancel right after ctl_request_start (listener or none)
 *   closing to retry pipe closing, timer idle (the dial failed, retry window open)
 *   between retries  no pipe, retry timer armed
 *   waiting          the holder has read the request and sits on it
 *   finished         both handles closing (reply or dial failure already in):
 *                    cancel is a no-op, the original outcome is reported
 * Each time: the callback runs exactly once, only after every handle of the
 * request is gone, in the same loop iteration as the cancel (immediate), and
 * the loop closes cleanly at the end (ASan builds also catch double closes and
 * leaks). */
#include "client/ctl.h"
#include "rpc/wire.h"
#include "util/err.h"
#include "util/fileio.h"
#include "t.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define LINE "{\"cmd\":\"status\"}"
#define REPLY "{\"ok\":true}\n"

static uv_loop_t loop;
static char root[PATH_MAX];
static uv_pipe_t server;
static uv_check_t check;

/* ---- the fake holder ---- */

enum hmode { H_REPLY, H_HOLD };
static enum hmode hmode;

struct conn {
	uv_pipe_t pipe;
	uv_write_t wr;
	char in[256];
	size_t in_len;
	bool eof;
};
#define MAX_CONNS 16
static struct conn *conns[MAX_CONNS]; /* open (not yet closed) connections */
static int requests, eofs;
static struct conn *held;

static void conn_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	for (int i = 0; i < MAX_CONNS; i++)
		if (conns[i] == c)
			conns[i] = NULL;
	free(c);
}

static int open_conns(void)
{
	int n = 0;
	for (int i = 0; i < MAX_CONNS; i++)
		n += conns[i] != NULL;
	return n;
}

static void replied(uv_write_t *w, int status)
{
	struct conn *c = w->data;
	CHECK(status == 0);
	uv_close((uv_handle_t *)&c->pipe, conn_closed);
}

static void c_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
	struct conn *c = h->data;
	(void)s;
	*b = uv_buf_init(c->in + c->in_len, (unsigned)(sizeof(c->in) - c->in_len - 1));
}

static void c_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	(void)b;
	struct conn *c = st->data;
	if (n < 0) {
		c->eof = true;
		eofs++;
		if (held == c)
			held = NULL;
		uv_close((uv_handle_t *)&c->pipe, conn_closed);
		return;
	}
	c->in_len += (size_t)n;
	c->in[c->in_len] = '\0';
	if (!strchr(c->in, '\n'))
		return;
	CHECK_STREQ(c->in, LINE "\n");
	requests++;
	if (hmode == H_HOLD) {
		held = c; /* keep reading: the client's hang-up shows as EOF */
		return;
	}
	uv_read_stop(st);
	uv_buf_t rb = uv_buf_init((char *)REPLY, (unsigned)strlen(REPLY));
	c->wr.data = c;
	CHECK(uv_write(&c->wr, st, &rb, 1, replied) == 0);
}

static void on_conn(uv_stream_t *s, int status)
{
	CHECK(status == 0);
	struct conn *c = calloc(1, sizeof(*c));
	CHECK(c);
	int slot = -1;
	for (int i = 0; i < MAX_CONNS && slot < 0; i++)
		if (!conns[i])
			slot = i;
	CHECK(slot >= 0);
	conns[slot] = c;
	CHECK(uv_pipe_init(&loop, &c->pipe, 0) == 0);
	c->pipe.data = c;
	CHECK(uv_accept(s, (uv_stream_t *)&c->pipe) == 0);
	CHECK(uv_read_start((uv_stream_t *)&c->pipe, c_alloc, c_read) == 0);
}

/* ---- what the loop holds of the request ---- */

static bool ours(uv_handle_t *h)
{
	if (h == (uv_handle_t *)&server || h == (uv_handle_t *)&check)
		return true;
	for (int i = 0; i < MAX_CONNS; i++)
		if (conns[i] && h == (uv_handle_t *)&conns[i]->pipe)
			return true;
	return false;
}

struct view {
	int pipes, timers, other;
	bool pipe_closing, timer_closing, timer_active;
};

static void walk_cb(uv_handle_t *h, void *arg)
{
	struct view *v = arg;
	if (ours(h))
		return;
	if (h->type == UV_NAMED_PIPE) {
		v->pipes++;
		v->pipe_closing = uv_is_closing(h);
	} else if (h->type == UV_TIMER) {
		v->timers++;
		v->timer_closing = uv_is_closing(h);
		v->timer_active = uv_is_active(h);
	} else {
		v->other++;
	}
}

static struct view look(void)
{
	struct view v = { 0 };
	uv_walk(&loop, walk_cb, &v);
	CHECK(v.other == 0 && v.pipes <= 1 && v.timers <= 1);
	return v;
}

/* ---- the request under test ---- */

struct res {
	int calls;
	int status;
	char reply[256];
	char msg[ERR_MSG_MAX];
};

static void on_done(void *data, int status, const char *reply, const struct err *e)
{
	struct res *r = data;
	r->calls++;
	r->status = status;
	snprintf(r->reply, sizeof(r->reply), "%s", reply ? reply : "");
	snprintf(r->msg, sizeof(r->msg), "%s", e ? e->msg : "");
	CHECK(status == 0 ? reply && !e : !reply && e && e->code == status);
	/* every handle of the request is closed before its callback */
	struct view v = look();
	CHECK(v.pipes == 0 && v.timers == 0);
}

enum state { S_NONE, S_CLOSING_RETRY, S_BETWEEN, S_WAITING, S_FINISHED };
static enum state want;
static struct ctl_req *target;
static struct res *target_res;
static bool fired;

static bool in_state(enum state s)
{
	struct view v = look();
	switch (s) {
	case S_CLOSING_RETRY:
		return v.pipes == 1 && v.pipe_closing && v.timers == 1 && !v.timer_closing &&
		       !v.timer_active;
	case S_BETWEEN:
		return v.pipes == 0 && v.timers == 1 && v.timer_active && !v.timer_closing;
	case S_WAITING:
		return held != NULL && v.pipes == 1 && !v.pipe_closing && v.timer_active;
	case S_FINISHED:
		return v.timers == 1 && v.timer_closing && v.pipes == 1 && v.pipe_closing;
	case S_NONE:
		break;
	}
	return false;
}

static void on_check(uv_check_t *h)
{
	(void)h;
	if (fired || want == S_NONE || !in_state(want))
		return;
	CHECK(target_res->calls == 0);
	ctl_request_cancel(target);
	ctl_request_cancel(target); /* idempotent */
	CHECK(target_res->calls == 0); /* never synchronous */
	fired = true;
}

static struct ctl_req *start(const char *member, unsigned dial_ms, unsigned read_ms,
			     struct res *r)
{
	memset(r, 0, sizeof(*r));
	struct ctl_req *cr = NULL;
	CHECK(ctl_request_start(&loop, root, member, LINE, dial_ms, read_ms, on_done, r, &cr) == 0);
	CHECK(cr != NULL && r->calls == 0);
	return cr;
}

/* Runs the loop until the request called back; bounded (every request here
 * ends within its dial/read window, 5 s at most). Returns the iteration in
 * which the callback came, counting from 1. */
static int run_until_done(struct res *r)
{
	for (int i = 1; i <= 2000; i++) {
		uv_run(&loop, UV_RUN_ONCE);
		if (r->calls)
			return i;
	}
	CHECK(!"request did not call back");
	return 0;
}

/* The request is gone for good: nothing of it left, no second callback, and
 * the holder side has seen every connection end. */
static void settle(struct res *r)
{
	for (int i = 0; i < 500 && open_conns() > 0; i++)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK(open_conns() == 0);
	uv_run(&loop, UV_RUN_NOWAIT);
	struct view v = look();
	CHECK(v.pipes == 0 && v.timers == 0);
	CHECK(r->calls == 1);
}

/* Cancels in state s (seen by the check handle); returns the request's result. */
static void cancel_in(enum state s, const char *member, unsigned dial_ms, struct res *r)
{
	want = s;
	fired = false;
	target_res = r;
	target = start(member, dial_ms, 5000, r);
	uint64_t t0 = uv_now(&loop);
	for (int i = 0; i < 2000 && !fired && !r->calls; i++)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK(fired);
	/* the callback came in the iteration that cancelled (close callbacks run
	 * after check handles) */
	CHECK(r->calls == 1);
	uv_update_time(&loop);
	CHECK(uv_now(&loop) - t0 < 1000);
	want = S_NONE;
	settle(r);
}

static void expect_cancelled(const struct res *r, const char *member)
{
	char want_msg[128];
	FMT(want_msg, "request to %s's holder cancelled", member);
	CHECK(r->calls == 1 && r->status == -ECANCELED);
	CHECK_STREQ(r->msg, want_msg);
}

static void test_dialing(void)
{
	struct res r;
	/* a holder listens: connect is under way, its callback not yet run */
	requests = eofs = 0;
	hmode = H_REPLY;
	struct ctl_req *cr = start("web-1", 5000, 5000, &r);
	ctl_request_cancel(cr);
	ctl_request_cancel(cr);
	CHECK(r.calls == 0);
	CHECK(run_until_done(&r) == 1);
	expect_cancelled(&r, "web-1");
	settle(&r);
	CHECK(requests == 0); /* the request line was never sent */

	/* nobody listens: the failed dial's callback is pending */
	cr = start("ghost-1", 5000, 5000, &r);
	ctl_request_cancel(cr);
	CHECK(r.calls == 0);
	CHECK(run_until_done(&r) == 1);
	expect_cancelled(&r, "ghost-1");
	settle(&r);
}

static void test_retry_states(void)
{
	struct res r;
	cancel_in(S_CLOSING_RETRY, "ghost-1", 5000, &r);
	expect_cancelled(&r, "ghost-1");
	cancel_in(S_BETWEEN, "ghost-1", 5000, &r);
	expect_cancelled(&r, "ghost-1");
}

static void test_waiting(void)
{
	struct res r;
	hmode = H_HOLD;
	requests = eofs = 0;
	held = NULL;
	cancel_in(S_WAITING, "web-1", 5000, &r);
	expect_cancelled(&r, "web-1");
	/* the holder got the request and then saw the client hang up */
	CHECK(requests == 1 && eofs == 1 && held == NULL);
}

static void test_finished(void)
{
	struct res r;
	/* the reply is in: cancel changes nothing */
	hmode = H_REPLY;
	requests = 0;
	cancel_in(S_FINISHED, "web-1", 5000, &r);
	CHECK(requests == 1 && r.status == 0);
	CHECK_STREQ(r.reply, "{\"ok\":true}");

	/* a dial that failed for good (window 0): cancel changes nothing */
	cancel_in(S_FINISHED, "ghost-1", 0, &r);
	CHECK(r.status == -ECONNREFUSED);
	CHECK(strstr(r.msg, "ghost-1 is not running") != NULL);

	/* uncancelled requests still work as before */
	start("web-1", 5000, 5000, &r);
	run_until_done(&r);
	settle(&r);
	CHECK(r.status == 0);
	CHECK_STREQ(r.reply, "{\"ok\":true}");
	ctl_request_cancel(NULL); /* allowed: no-op */
}

int main(void)
{
	/* the holder side may write to a client that already went away */
	signal(SIGPIPE, SIG_IGN);
	char tmpl[] = "/tmp/fbctl-cancel-XXXXXX";
	CHECK(mkdtemp(tmpl) != NULL);
	FMT(root, "%s", tmpl);
	char run[PATH_MAX], sock[PATH_MAX];
	FMT(run, "%s/run", root);
	CHECK(mkdir_p(run, 0700) == 0);
	CHECK(uv_loop_init(&loop) == 0);
	CHECK(wire_sock_path(root, "web-1", sock, sizeof(sock)) == 0);
	CHECK(uv_pipe_init(&loop, &server, 0) == 0);
	CHECK(uv_pipe_bind(&server, sock) == 0);
	CHECK(uv_listen((uv_stream_t *)&server, 16, on_conn) == 0);
	CHECK(uv_check_init(&loop, &check) == 0);
	CHECK(uv_check_start(&check, on_check) == 0);

	test_dialing();
	test_retry_states();
	test_waiting();
	test_finished();

	uv_close((uv_handle_t *)&server, NULL);
	uv_close((uv_handle_t *)&check, NULL);
	CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
	CHECK(uv_loop_close(&loop) == 0);
	CHECK(rm_rf(root) == 0);
	printf("ok\n");
	return 0;
}
