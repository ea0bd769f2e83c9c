/* async.c - the async exec driver on a caller's uv loop (see ssh.h).
 *
 * Handles: `timer` kicks the op off, serves continuations and the redial
 * backoff; `tick` (every TICK_MS) enforces the connect deadline, the call's
 * timeout and keepalive silence; `poll` watches the socket (re-created for
 * each dial: a redial closes it first, then the fd). A wrapped command that is
 * cancelled, times out or is aborted with kill gets its process group killed
 * by a second op (`killer`) before the callback runs; the killer counts as one
 * more open handle. The op's memory is freed after the last of them closes. */
#include "client/ssh/ssh.h"
#include "client/ssh/ssh_int.h"
#include "util/err.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TICK_MS 250
#define KILL_WAIT_MS 5000
#define HS_SLOTS 4         /* concurrent handshakes per server from this process */
#define HS_WAIT_MS 25      /* re-check for a free slot */

struct ssh_exec_op {
	uv_loop_t *loop;
	uv_poll_t poll;
	uv_timer_t timer, tick;
	int open_handles;
	bool polling, started, finished, ka_on;
	struct ssh_conn conn;
	struct run run;
	char *cmd;
	struct collect col;
	struct ssh_exec_opts o;   /* cmd/env/cwd/in not kept: see the fields below */
	char *in;
	size_t in_len, in_off;
	int64_t connect_deadline, drop_deadline, call_deadline, t0;
	struct ssh_exec_op *killer;
	/* A kill asked for before the command's process group is known (the
	 * exec request may be running in the guest): the op keeps reading until
	 * the wrapper's first line arrives, for up to KILL_WAIT_MS. */
	bool has_slot;            /* holds one of the server's handshake slots */
	bool cancelling;
	int cancel_status;
	int64_t cancel_deadline;
	struct err cancel_err;
	ssh_exec_cb cb;
	void *data;
	int status;
	struct err err;
};

static void op_on_poll(uv_poll_t *h, int status, int events);
static void op_on_timer(uv_timer_t *t);

/* ---------- handshake slots ----------
 * Servers limit unauthenticated connections per source (dropbear: 5, sshd
 * MaxStartups 10:30:100 drops at random from 10). Twenty execs started at
 * once would mostly be dropped and retried, each retry slowing the others'
 * handshakes on a small guest; instead ops of this process take turns, at
 * most HS_SLOTS in the handshake per server (across threads and loops). A
 * waiting op re-checks every HS_WAIT_MS; its connect timeout starts when it
 * gets a slot. Other processes are still handled by the redial. */

static pthread_mutex_t hs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char host[64];
	int port, used;
} hs[32];

static bool hs_acquire(const struct ssh_target *t)
{
	bool ok = true;
	pthread_mutex_lock(&hs_lock);
	int free_i = -1, i;
	for (i = 0; i < 32; i++) {
		if (hs[i].used && hs[i].port == t->port && !strcmp(hs[i].host, t->host))
			break;
		if (!hs[i].used && free_i < 0)
			free_i = i;
	}
	if (i < 32 && hs[i].used >= HS_SLOTS) {
		ok = false;
	} else if (i < 32) {
		hs[i].used++;
	} else if (free_i >= 0) {
		snprintf(hs[free_i].host, sizeof(hs[free_i].host), "%s", t->host);
		hs[free_i].port = t->port;
		hs[free_i].used = 1;
	} /* a full table: no limit rather than no connection */
	pthread_mutex_unlock(&hs_lock);
	return ok;
}

static void hs_release(struct ssh_exec_op *op)
{
	const struct ssh_target *t = &op->conn.t;
	if (!op->has_slot)
		return;
	op->has_slot = false;
	pthread_mutex_lock(&hs_lock);
	for (int i = 0; i < 32; i++)
		if (hs[i].used && hs[i].port == t->port && !strcmp(hs[i].host, t->host)) {
			hs[i].used--;
			break;
		}
	pthread_mutex_unlock(&hs_lock);
}

/* Before dialling: false (and a re-check scheduled) while the server's slots
 * are taken. */
static bool op_slot(struct ssh_exec_op *op)
{
	if (op->has_slot || op->conn.phase != C_DIAL)
		return true;
	if (!hs_acquire(&op->conn.t)) {
		uv_timer_start(&op->timer, op_on_timer, HS_WAIT_MS, 0);
		return false;
	}
	op->has_slot = true;
	op->connect_deadline = now_ms() + op->conn.t.connect_timeout_ms;
	return true;
}
static void op_on_tick(uv_timer_t *t);
static void op_advance(struct ssh_exec_op *op);

/* ---------- the end: closes, the kill, the callback ---------- */

static void op_final(struct ssh_exec_op *op)
{
	if (op->conn.fd >= 0) {
		close(op->conn.fd);
		op->conn.fd = -1;
	}
	struct ssh_result res = { 0 };
	res.st = op->run.st;
	if (collect_take(&op->col, &res) < 0 && op->status == 0)
		op->status = err_set(&op->err, -ENOMEM, "out of memory collecting output");
	op->cb(op->data, op->status, &res, &op->err);
	ssh_result_fini(&res);
	collect_free(&op->col);
	free(op->cmd);
	free(op->in);
	free(op);
}

static void op_release_one(struct ssh_exec_op *op)
{
	if (--op->open_handles == 0)
		op_final(op);
}

static void op_on_close(uv_handle_t *h)
{
	struct ssh_exec_op *op = h->data;
	if (h == (uv_handle_t *)&op->poll && !op->finished) {
		/* a redial: the old socket goes, the next dial starts after a pause */
		close(op->conn.fd);
		op->conn.fd = -1;
		op->open_handles--;
		uv_timer_start(&op->timer, op_on_timer,
			       (uint64_t)conn_backoff_ms(op->conn.dropped), 0);
		return;
	}
	op_release_one(op);
}

__attribute__((format(printf, 2, 3)))
static void err_append(struct err *e, const char *fmt, ...)
{
	size_t n = strlen(e->msg);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg + n, sizeof(e->msg) - n, fmt, ap);
	va_end(ap);
}

static void kill_failed(struct ssh_exec_op *op, const char *why)
{
	size_t n = strcspn(why, "\n");
	err_append(&op->err, "; killing its process group in the guest (%ld) failed: %.*s",
		   op->run.rpid, (int)n, why);
}

static void op_killed(void *data, int status, struct ssh_result *res, const struct err *e)
{
	struct ssh_exec_op *op = data;
	op->killer = NULL;
	if (status < 0)
		kill_failed(op, e->msg);
	else if (res->st.exit_status != 0)
		kill_failed(op, res->err && *res->err ? res->err : "kill failed");
	else
		err_append(&op->err, "; its process group in the guest (%ld) was killed",
			   op->run.rpid);
	op_release_one(op);
}

/* Kills the wrapped command's process group over a new connection. */
static void op_kill_remote(struct ssh_exec_op *op)
{
	char *cmd = NULL;
	struct err ke = { 0 };
	if (ssh_kill_script(op->run.rpid, &cmd, &ke) < 0)
		return;
	struct ssh_exec_opts ko = { .cmd = cmd, .keepalive_s = -1,
				    .timeout_ms = op->conn.t.connect_timeout_ms + 2000 };
	if (ssh_exec_start_ex(op->loop, &op->conn.t, &ko, op_killed, op, &op->killer, &ke) == 0)
		op->open_handles++;
	else
		kill_failed(op, ke.msg);
	free(cmd);
}

static void op_finish(struct ssh_exec_op *op, int status, bool kill)
{
	if (op->finished)
		return;
	if (op->cancelling) {
		status = op->cancel_status;
		op->err = op->cancel_err;
		kill = true;
		if (op->run.rpid <= 1 && op->run.phase < R_DONE)
			err_append(&op->err, "; the command's process group was not known yet: it "
					     "may still run in the guest");
	}
	op->finished = true;
	op->status = status;
	if (status == 0)
		err_clear(&op->err);
	bool running = op->run.phase >= R_IO && op->run.phase < R_DONE;
	hs_release(op);
	run_release(&op->run);
	conn_release(&op->conn, false); /* the fd is closed after the poll handle */
	if (kill && running && op->o.wrap && op->run.rpid > 1)
		op_kill_remote(op);
	uv_close((uv_handle_t *)&op->timer, op_on_close);
	uv_close((uv_handle_t *)&op->tick, op_on_close);
	if (op->polling)
		uv_close((uv_handle_t *)&op->poll, op_on_close);
}

/* ---------- running ---------- */

static void op_out(void *data, const char *buf, size_t len)
{
	struct ssh_exec_op *op = data;
	if (op->cancelling)
		return;
	if (!op->o.no_collect)
		collect_out(&op->col, buf, len);
	if (op->o.on_stdout)
		op->o.on_stdout(op->o.io_data, buf, len);
}

static void op_err(void *data, const char *buf, size_t len)
{
	struct ssh_exec_op *op = data;
	if (op->cancelling)
		return;
	if (!op->o.no_collect)
		collect_err(&op->col, buf, len);
	if (op->o.on_stderr)
		op->o.on_stderr(op->o.io_data, buf, len);
}

static void op_refill(struct run *r)
{
	struct ssh_exec_op *op = r->refill_data;
	size_t n = op->in_len - op->in_off;
	if (n > sizeof(r->inbuf))
		n = sizeof(r->inbuf);
	memcpy(r->inbuf, op->in + op->in_off, n);
	op->in_off += n;
	r->in_len = n;
	r->in_off = 0;
	r->in_eof = op->in_off == op->in_len;
}

/* A dropped handshake: close the poll handle (its close callback closes the
 * fd and arms the backoff timer), or, with none yet, do that now. */
static void op_redial(struct ssh_exec_op *op)
{
	hs_release(op);
	conn_reset(&op->conn, false);
	/* waiting for a free slot on the server is not a slow connect: each
	 * attempt gets the connect timeout anew, within SSH_DROPPED_RETRY_MS */
	op->connect_deadline = now_ms() + conn_backoff_ms(op->conn.dropped) +
			       op->conn.t.connect_timeout_ms;
	if (op->polling) {
		op->polling = false;
		uv_close((uv_handle_t *)&op->poll, op_on_close);
		return;
	}
	close(op->conn.fd);
	op->conn.fd = -1;
	uv_timer_start(&op->timer, op_on_timer, (uint64_t)conn_backoff_ms(op->conn.dropped), 0);
}

static int op_watch(struct ssh_exec_op *op)
{
	if (!op->polling) {
		int r = uv_poll_init_socket(op->loop, &op->poll, op->conn.fd);
		if (r < 0)
			return err_set(&op->err, r, "uv_poll_init_socket: %s", uv_strerror(r));
		op->poll.data = op;
		op->polling = true;
		op->open_handles++;
	}
	int ev = ((op->conn.want & POLLIN) ? UV_READABLE : 0) |
		 ((op->conn.want & POLLOUT) ? UV_WRITABLE : 0);
	int r = uv_poll_start(&op->poll, ev, op_on_poll);
	return r < 0 ? err_set(&op->err, r, "uv_poll_start: %s", uv_strerror(r)) : 0;
}

static void op_advance(struct ssh_exec_op *op)
{
	if (!op_slot(op))
		return;
	int rc = run_step(&op->run, &op->err);
	if (op->conn.phase == C_READY || rc != -EAGAIN)
		hs_release(op);
	if (op->cancelling && (rc != -EAGAIN || op->run.rpid > 1)) {
		op_finish(op, rc, true); /* the group is known (or the command ended) */
		return;
	}
	if (rc != -EAGAIN && conn_dropped(&op->conn, rc) &&
	    now_ms() + conn_backoff_ms(op->conn.dropped + 1) < op->drop_deadline) {
		op_redial(op);
		return;
	}
	if (rc != -EAGAIN) {
		op_finish(op, rc, false);
		return;
	}
	if (op->conn.want == 0) {
		/* runnable now (see run_pump): continue from the loop's next turn */
		uv_timer_start(&op->timer, op_on_timer, 0, 0);
		return;
	}
	if ((rc = op_watch(op)) < 0)
		op_finish(op, rc, false);
}

/* libuv reports POLLERR as UV_EBADF: the real cause is the socket's
 * SO_ERROR (a reset, a refused or unreachable connect). A handshake the
 * server reset is dialled again like one it closed. */
static void op_sock_error(struct ssh_exec_op *op, int status)
{
	struct ssh_conn *c = &op->conn;
	int so = 0;
	socklen_t sl = sizeof(so);
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &so, &sl) < 0 || so == 0) {
		op_finish(op, err_set(&op->err, status, "socket error on %s (%s): %s", c->t.name,
				      c->t.host, uv_strerror(status)), false);
		return;
	}
	c->io_errno = so;
	int rc = c->phase == C_HANDSHAKE && c->s && c->rx_eof == false
			 ? err_set(&op->err, -so, "connection to %s (%s:%d) %s during SSH handshake",
				   c->t.name, c->t.host, c->t.port,
				   so == ECONNRESET ? "reset" : strerror(so))
			 : err_set(&op->err, -so, "connection to %s (%s:%d): %s", c->t.name,
				   c->t.host, c->t.port, strerror(so));
	if (conn_dropped(c, rc) &&
	    now_ms() + conn_backoff_ms(c->dropped + 1) < op->drop_deadline) {
		op_redial(op);
		return;
	}
	op_finish(op, rc, false);
}

static void op_on_poll(uv_poll_t *h, int status, int events)
{
	struct ssh_exec_op *op = h->data;
	(void)events;
	if (op->finished)
		return;
	if (status < 0) {
		op_sock_error(op, status);
		return;
	}
	op_advance(op);
}

static void op_on_timer(uv_timer_t *t)
{
	struct ssh_exec_op *op = t->data;
	if (!op->finished)
		op_advance(op);
}

/* ---------- the clock: deadlines and keepalive ---------- */

static int keepalive(struct ssh_exec_op *op, int64_t now)
{
	struct ssh_conn *c = &op->conn;
	if (op->o.keepalive_s < 0 || c->phase != C_READY || op->run.phase != R_IO)
		return 0;
	if (!op->ka_on) {
		libssh2_keepalive_config(c->s, 1, (unsigned)op->o.keepalive_s);
		c->last_rx_ms = now;
		op->ka_on = true;
	}
	int next = 0;
	if (!(libssh2_session_block_directions(c->s) & LIBSSH2_SESSION_BLOCK_OUTBOUND))
		(void)libssh2_keepalive_send(c->s, &next); /* a lost send shows as silence */
	if (now - c->last_rx_ms <= op->o.dead_after_s * 1000)
		return 0;
	return err_set(&op->err, -ETIMEDOUT,
		       "connection to %s (%s) lost while the command ran: no answer for %d s",
		       c->t.name, c->t.host, op->o.dead_after_s);
}

static void op_on_tick(uv_timer_t *t)
{
	struct ssh_exec_op *op = t->data;
	int64_t now = now_ms();
	struct ssh_conn *c = &op->conn;
	if (op->finished)
		return;
	if (op->cancelling && now >= op->cancel_deadline) {
		op_finish(op, 0, true);
		return;
	}
	if (op->call_deadline && now >= op->call_deadline && !op->cancelling) {
		ssh_exec_abort(op, -ETIMEDOUT, true, "command on %s timed out after %d ms",
			       c->t.name, op->o.timeout_ms);
		return;
	}
	if (c->phase == C_DIAL && !op->has_slot && now >= op->drop_deadline) {
		op_finish(op, err_set(&op->err, -ETIMEDOUT,
				      "connecting to %s (%s:%d): no SSH handshake slot free for %d s",
				      c->t.name, c->t.host, c->t.port, SSH_DROPPED_RETRY_MS / 1000),
			  false);
		return;
	}
	if (c->phase != C_READY && op->has_slot && now >= op->connect_deadline) {
		op_finish(op, err_set(&op->err, -ETIMEDOUT,
				      "connecting to %s (%s:%d) timed out after %d ms%s", c->t.name,
				      c->t.host, c->t.port, c->t.connect_timeout_ms,
				      c->dropped ? " (the server kept closing the connection "
						   "during the SSH handshake)" : ""), false);
		return;
	}
	int rc = keepalive(op, now);
	if (rc < 0)
		op_finish(op, rc, false);
	else if (c->phase == C_READY)
		op_advance(op); /* a safety net: a missed libssh2 state change costs a tick */
}

/* ---------- starting, cancelling ---------- */

static int op_setup(struct ssh_exec_op *op, const struct ssh_exec_opts *o, struct err *e)
{
	op->o = *o;
	op->o.cmd = NULL;
	op->o.cwd = NULL;
	op->o.env = NULL;
	op->o.in = NULL;
	if (op->o.keepalive_s == 0)
		op->o.keepalive_s = SSH_EXEC_KEEPALIVE_S;
	if (op->o.dead_after_s <= 0)
		op->o.dead_after_s = SSH_EXEC_DEAD_AFTER_S;
	if (!o->wrap && (o->cwd || o->env || o->root))
		return err_set(e, -EINVAL, "cwd, env and root need a wrapped command");
	struct ssh_script s = { .cmd = o->cmd, .cwd = o->cwd, .env = o->env, .root = o->root };
	int r = o->wrap ? ssh_exec_script(&s, &op->cmd, e) : 0;
	if (r == 0 && !o->wrap && !(op->cmd = strdup(o->cmd)))
		r = err_set(e, -ENOMEM, "out of memory");
	if (r == 0 && o->in_len && !(op->in = malloc(o->in_len)))
		r = err_set(e, -ENOMEM, "out of memory");
	if (r < 0)
		return r;
	if (o->in_len)
		memcpy(op->in, o->in, o->in_len);
	op->in_len = o->in_len;
	return 0;
}

static void op_run_init(struct ssh_exec_op *op)
{
	run_init(&op->run, &op->conn, op->cmd);
	op->run.on_out = op_out;
	op->run.on_err = op_err;
	op->run.data = op;
	op->run.want_pid = op->o.wrap;
	op->run.in_eof = op->in_len == 0;
	op->run.refill = op_refill;
	op->run.refill_data = op;
	op->t0 = now_ms();
	op->connect_deadline = op->t0 + op->conn.t.connect_timeout_ms;
	op->drop_deadline = op->t0 + SSH_DROPPED_RETRY_MS;
	if (op->o.timeout_ms > 0)
		op->call_deadline = op->t0 + op->o.timeout_ms;
}

int ssh_exec_start_ex(uv_loop_t *loop, const struct ssh_target *t, const struct ssh_exec_opts *o,
		      ssh_exec_cb cb, void *data, struct ssh_exec_op **out, struct err *e)
{
	if (out)
		*out = NULL;
	if (!loop || !cb || !o || !o->cmd || !t)
		return err_set(e, -EINVAL, "ssh_exec_start: loop, command and callback are required");
	struct ssh_exec_op *op = calloc(1, sizeof(*op));
	if (!op)
		return err_set(e, -ENOMEM, "out of memory");
	int r = conn_init(&op->conn, t, e);
	if (r == 0)
		r = op_setup(op, o, e);
	if (r < 0) {
		free(op->cmd);
		free(op->in);
		free(op);
		return r;
	}
	op->loop = loop;
	op->cb = cb;
	op->data = data;
	op_run_init(op);
	uv_timer_init(loop, &op->timer);
	uv_timer_init(loop, &op->tick);
	op->timer.data = op->tick.data = op;
	op->open_handles = 2;
	uv_timer_start(&op->timer, op_on_timer, 0, 0); /* dial from the loop */
	uv_timer_start(&op->tick, op_on_tick, TICK_MS, TICK_MS);
	if (out)
		*out = op;
	return 0;
}

int ssh_exec_start(uv_loop_t *loop, const struct ssh_target *t, const char *cmd,
		   ssh_exec_cb cb, void *data, struct ssh_exec_op **out, struct err *e)
{
	struct ssh_exec_opts o = { .cmd = cmd, .keepalive_s = -1 };
	return ssh_exec_start_ex(loop, t, &o, cb, data, out, e);
}

void ssh_exec_abort(struct ssh_exec_op *op, int code, bool kill, const char *fmt, ...)
{
	if (!op || op->finished)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(op->err.msg, sizeof(op->err.msg), fmt, ap);
	va_end(ap);
	op->err.code = code;
	/* the exec request may have reached the guest, the group is not known yet */
	bool unknown = op->run.phase == R_START || (op->run.phase == R_IO && op->run.rpid <= 1);
	if (kill && op->o.wrap && unknown && !op->cancelling) {
		op->cancelling = true;
		op->cancel_status = code;
		op->cancel_err = op->err;
		op->cancel_deadline = now_ms() + KILL_WAIT_MS;
		return;
	}
	if (!op->cancelling)
		op_finish(op, code, kill);
}

void ssh_exec_cancel(struct ssh_exec_op *op)
{
	if (op)
		ssh_exec_abort(op, -ECANCELED, true, "command on %s cancelled", op->conn.t.name);
}

long ssh_exec_pid(const struct ssh_exec_op *op)
{
	return op ? op->run.rpid : 0;
}
