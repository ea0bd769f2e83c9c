/* api_exec.c - fb_exec, fb_exec_ex and their async twins (fleetbox.h,
 * fleetbox/uv.h) over the SSH layer's async driver (ssh/async.c).
 *
 * One op runs in two phases on the caller's loop: the holder's status request
 * (ctl_request_start: IP and state), then the SSH command. During phase two a
 * watch timer looks at the member every WATCH_MS: its holder still alive (the
 * pidfile lock, no RPC), then a status request; a member that is no longer
 * running ends the command at once with its state and error. Blocking calls run
 * the same op on a private loop.
 *
 * Handles: the fb_exec_op pointer a caller gets is a token (an id in a
 * registry), never the op's address, so fb_exec_cancel on a finished op is a
 * harmless no-op, not a use-after-free. The op leaves the registry just before
 * the user callback runs. */
#include "fleetbox/uv.h"
#include "client/ctl.h"
#include "client/orch/orch.h"
#include "client/ssh/ssh.h"
#include "client/ssh/target.h"
#include "rpc/msg.h"
#include "rpc/wire.h"
#include "util/err.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WATCH_MS 1000
#define PROBE_DIAL_MS 500
#define PROBE_READ_MS 2000

struct exec_op {
	uintptr_t id;
	uv_loop_t *loop;
	struct ctl_req *ctl;          /* phase one */
	struct ssh_exec_op *ssh;      /* phase two */
	uv_timer_t watch;             /* phase two: the member watch */
	struct ctl_req *probe;        /* a watch status request in flight */
	bool cancelled, watching, ssh_done;
	int pending;                  /* watch timer + probe still to close */
	char root[PATH_MAX];
	char name[FB_NAME_MAX + 1];
	struct ssh_exec_opts so;      /* cmd, cwd, env, in point into the copies below */
	char *cmd, *cwd, **env, *in;
	fb_exec_cb cb;
	void *data;
	int status;
	struct ssh_result res;
	struct err err;
};

/* ---------- the registry of live ops ---------- */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct exec_op **reg;
static size_t reg_n, reg_cap;
static uintptr_t reg_next = 1;

static int reg_add(struct exec_op *w)
{
	int r = 0;
	pthread_mutex_lock(&reg_lock);
	if (reg_n == reg_cap) {
		size_t cap = reg_cap ? reg_cap * 2 : 16;
		struct exec_op **n = realloc(reg, cap * sizeof(*n));
		if (n) {
			reg = n;
			reg_cap = cap;
		}
	}
	if (reg_n < reg_cap) {
		w->id = reg_next++;
		reg[reg_n++] = w;
	} else {
		r = -ENOMEM;
	}
	pthread_mutex_unlock(&reg_lock);
	return r;
}

static void reg_del(struct exec_op *w)
{
	pthread_mutex_lock(&reg_lock);
	for (size_t i = 0; i < reg_n; i++)
		if (reg[i] == w) {
			reg[i] = reg[--reg_n];
			break;
		}
	pthread_mutex_unlock(&reg_lock);
}

/* The live op behind a token, or NULL. Only the loop's thread frees ops, and
 * cancel runs on that thread, so the op stays valid after the lock. */
static struct exec_op *reg_find(fb_exec_op *token)
{
	struct exec_op *w = NULL;
	pthread_mutex_lock(&reg_lock);
	for (size_t i = 0; i < reg_n; i++)
		if (reg[i]->id == (uintptr_t)token)
			w = reg[i];
	pthread_mutex_unlock(&reg_lock);
	return w;
}

/* ---------- options ---------- */

static void op_free(struct exec_op *w)
{
	for (size_t i = 0; w->env && w->env[i]; i++)
		free(w->env[i]);
	free(w->env);
	free(w->cmd);
	free(w->cwd);
	free(w->in);
	ssh_result_fini(&w->res);
	free(w);
}

static int copy_env(struct exec_op *w, const char *const *env, struct err *e)
{
	size_t n = 0;
	while (env && env[n])
		n++;
	if (!n)
		return 0;
	if (!(w->env = calloc(n + 1, sizeof(char *))))
		return err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		if (!ssh_env_name_valid(env[i]))
			return err_set(e, -EINVAL, "bad environment entry \"%s\": want NAME=value "
						   "with a shell variable name", env[i]);
		if (!(w->env[i] = strdup(env[i])))
			return err_set(e, -ENOMEM, "out of memory");
	}
	w->so.env = (const char *const *)w->env;
	return 0;
}

static int copy_cmd(struct exec_op *w, const fb_exec_opts *o, struct err *e)
{
	if (!o->command == !o->argv)
		return err_set(e, -EINVAL, "exactly one of command and argv is required");
	if (o->argv && !o->argv[0])
		return err_set(e, -EINVAL, "argv is empty");
	if (o->command && !*o->command)
		return err_set(e, -EINVAL, "command is empty");
	w->cmd = o->command ? strdup(o->command) : ssh_argv_join(o->argv);
	return w->cmd ? 0 : err_set(e, -ENOMEM, "out of memory");
}

/* Deep copies: an async caller's options may go away after the call. */
static int opts_copy(struct exec_op *w, const fb_exec_opts *o, struct err *e)
{
	if (o->timeout_ms < 0 || (o->stdin_len && !o->stdin_data))
		return err_set(e, -EINVAL, "timeout_ms must be >= 0 and stdin_data set with stdin_len");
	int r = copy_cmd(w, o, e);
	if (r == 0)
		r = copy_env(w, o->env, e);
	if (r == 0 && o->cwd && !*o->cwd)
		r = err_set(e, -EINVAL, "cwd is empty");
	if (r == 0 && o->cwd && !(w->cwd = strdup(o->cwd)))
		r = err_set(e, -ENOMEM, "out of memory");
	if (r == 0 && o->stdin_len && !(w->in = malloc(o->stdin_len)))
		r = err_set(e, -ENOMEM, "out of memory");
	if (r < 0)
		return r;
	if (o->stdin_len)
		memcpy(w->in, o->stdin_data, o->stdin_len);
	w->so.cmd = w->cmd;
	w->so.cwd = w->cwd;
	w->so.in = w->in;
	w->so.in_len = o->stdin_len;
	w->so.wrap = true;
	w->so.root = o->root != 0;
	w->so.timeout_ms = o->timeout_ms;
	w->so.on_stdout = o->on_stdout;
	w->so.on_stderr = o->on_stderr;
	w->so.io_data = o->stream_data;
	w->so.no_collect = o->no_capture != 0;
	return 0;
}

/* ---------- the end ---------- */

/* Moves the buffers of an ssh_result into an fb_exec_result. */
static void result_export(struct ssh_result *in, fb_exec_result *out)
{
	memset(out, 0, sizeof(*out));
	out->exit_signal = in->st.exit_signal;
	out->exit_status = in->st.exit_signal ? -1 : in->st.exit_status;
	out->out = in->out;
	out->out_len = in->out_len;
	out->err = in->err;
	out->err_len = in->err_len;
	out->combined = in->combined;
	out->combined_len = in->combined_len;
	in->out = in->err = in->combined = NULL;
}

static void deliver(struct exec_op *w)
{
	fb_exec_result out;
	fb_error fe = { 0 };
	reg_del(w); /* from here on fb_exec_cancel(token) is a no-op */
	result_export(&w->res, &out);
	if (w->status < 0)
		orch_err_export(&w->err, &fe);
	w->cb(w->data, w->status, &out, w->status < 0 ? &fe : NULL);
	fb_exec_result_free(&out); /* whatever the callback did not take */
	op_free(w);
}

static void watch_closed(uv_handle_t *h)
{
	struct exec_op *w = h->data;
	if (--w->pending == 0)
		deliver(w);
}

/* The SSH op ended: keep its result, stop the watch, deliver once closed. */
static void exec_done(void *data, int status, struct ssh_result *res, const struct err *e)
{
	struct exec_op *w = data;
	w->ssh = NULL;
	w->ssh_done = true;
	w->status = status;
	w->res = *res;
	memset(res, 0, sizeof(*res));
	if (status < 0 && e)
		w->err = *e;
	if (!w->watching) {
		deliver(w);
		return;
	}
	w->pending = 1 + (w->probe != NULL);
	uv_close((uv_handle_t *)&w->watch, watch_closed);
	if (w->probe)
		ctl_request_cancel(w->probe); /* on_probe counts it down */
}

/* Phase one failed or was cancelled: report with an empty result. */
static void exec_fail(struct exec_op *w, int status, const struct err *e)
{
	struct ssh_result empty = { 0 };
	w->watching = false;
	exec_done(w, status, &empty, e);
}

/* ---------- the member watch ---------- */

static void watch_gone(struct exec_op *w, const char *why)
{
	ssh_exec_abort(w->ssh, -EHOSTDOWN, false, "%s %s while the command ran", w->name, why);
}

static void on_probe(void *data, int status, const char *reply, const struct err *ce)
{
	struct exec_op *w = data;
	w->probe = NULL;
	if (w->ssh_done) {
		watch_closed((uv_handle_t *)&w->watch);
		return;
	}
	(void)ce;
	if (status == -ECONNREFUSED || status == -ENOENT) {
		watch_gone(w, "lost its holder (its socket refuses connections)");
		return;
	}
	struct rpc_reply rep;
	if (status < 0 || rpc_reply_decode(reply, strlen(reply), &rep, NULL) < 0)
		return; /* a slow or odd answer is no proof of death: keepalive decides */
	if (rep.status && rep.status->state != FB_STATE_RUNNING) {
		char why[400];
		snprintf(why, sizeof(why), "became %s%s%s", wire_state_name(rep.status->state),
			 rep.status->error && *rep.status->error ? " (" : "",
			 rep.status->error && *rep.status->error ? rep.status->error : "");
		if (rep.status->error && *rep.status->error)
			snprintf(why + strlen(why), sizeof(why) - strlen(why), ")");
		watch_gone(w, why);
	}
	rpc_reply_fini(&rep);
}

static void on_watch(uv_timer_t *t)
{
	struct exec_op *w = t->data;
	struct err e = { 0 };
	if (w->ssh_done || w->probe)
		return;
	if (target_check_running(w->root, w->name, &e) < 0) {
		watch_gone(w, "lost its holder (no live holder holds its lock)");
		return;
	}
	if (ctl_request_start(w->loop, w->root, w->name, "{\"cmd\":\"status\"}\n", PROBE_DIAL_MS,
			      PROBE_READ_MS, on_probe, w, &w->probe) < 0)
		w->probe = NULL;
}

/* ---------- phase one: the holder's status ---------- */

static int status_target(struct exec_op *w, const char *reply, struct ssh_target *t,
			 struct err *e)
{
	struct rpc_reply rep;
	int r = rpc_reply_decode(reply, strlen(reply), &rep, e);
	if (r == 0 && rep.error && *rep.error)
		r = err_set(e, -EIO, "%s", rep.error);
	else if (r == 0 && !rep.status)
		r = err_set(e, -EPROTO, "status reply from %s has no status", w->name);
	else if (r == 0)
		r = target_from_status(w->root, w->name, rep.status, t, e);
	rpc_reply_fini(&rep);
	return r;
}

static int ssh_phase(struct exec_op *w, const struct ssh_target *t, struct err *e)
{
	int r = ssh_exec_start_ex(w->loop, t, &w->so, exec_done, w, &w->ssh, e);
	if (r < 0)
		return r;
	uv_timer_init(w->loop, &w->watch);
	w->watch.data = w;
	w->watching = true;
	uv_timer_start(&w->watch, on_watch, WATCH_MS, WATCH_MS);
	return 0;
}

static void on_status(void *data, int status, const char *reply, const struct err *ce)
{
	struct exec_op *w = data;
	struct err e = { 0 };
	struct ssh_target t;
	int r = status;
	w->ctl = NULL; /* freed once we return */
	if (w->cancelled)
		r = err_set(&e, -ECANCELED, "command on %s cancelled", w->name);
	else if (r < 0 && ce)
		e = *ce;
	else if (r < 0)
		err_set(&e, r, "status of %s: %s", w->name, strerror(-r));
	else
		r = status_target(w, reply, &t, &e);
	if (r == 0)
		r = ssh_phase(w, &t, &e);
	if (r < 0)
		exec_fail(w, r, &e);
}

/* ---------- the API ---------- */

static int op_new(const char *rootopt, const char *name, const fb_exec_opts *o,
		  struct exec_op **out, struct err *e)
{
	char root[PATH_MAX];
	*out = NULL;
	int r = orch_root(rootopt, root, sizeof(root), e);
	if (r == 0 && !name)
		r = err_set(e, -EINVAL, "member name is required");
	if (r == 0)
		r = target_check_running(root, name, e);
	struct exec_op *w = r == 0 ? calloc(1, sizeof(*w)) : NULL;
	if (r == 0 && !w)
		r = err_set(e, -ENOMEM, "out of memory");
	if (r == 0)
		r = opts_copy(w, o, e);
	if (r < 0) {
		if (w)
			op_free(w);
		return r;
	}
	snprintf(w->root, sizeof(w->root), "%s", root);
	snprintf(w->name, sizeof(w->name), "%s", name);
	*out = w;
	return 0;
}

int fb_exec_ex_async(uv_loop_t *loop, const char *rootopt, const char *name,
		     const fb_exec_opts *o, fb_exec_cb cb, void *data, fb_exec_op **op,
		     fb_error *ferr)
{
	struct err e = { 0 };
	struct exec_op *w = NULL;
	if (op)
		*op = NULL;
	int rc = !loop || !cb || !o ? err_set(&e, -EINVAL, "loop, options and callback are required")
				    : op_new(rootopt, name, o, &w, &e);
	if (rc == 0 && reg_add(w) < 0)
		rc = err_set(&e, -ENOMEM, "out of memory");
	if (rc == 0) {
		w->loop = loop;
		w->cb = cb;
		w->data = data;
		rc = ctl_request_start(loop, w->root, w->name, "{\"cmd\":\"status\"}\n", CTL_STATUS_MS,
				       CTL_STATUS_MS, on_status, w, &w->ctl);
		if (rc < 0)
			err_set(&e, rc, "status request to %s: %s", name, strerror(-rc));
	}
	if (rc < 0) {
		if (w) {
			reg_del(w);
			op_free(w);
		}
		orch_err_export(&e, ferr);
		return rc;
	}
	if (op)
		*op = (fb_exec_op *)w->id;
	if (ferr)
		memset(ferr, 0, sizeof(*ferr));
	return 0;
}

int fb_exec_async(uv_loop_t *loop, const char *root, const char *name, const char *command,
		  fb_exec_cb cb, void *data, fb_exec_op **op, fb_error *ferr)
{
	fb_exec_opts o = { .command = command };
	return fb_exec_ex_async(loop, root, name, &o, cb, data, op, ferr);
}

void fb_exec_cancel(fb_exec_op *token)
{
	struct exec_op *w = token ? reg_find(token) : NULL;
	if (!w || w->ssh_done)
		return;
	if (w->ssh) {
		ssh_exec_cancel(w->ssh);
	} else {
		w->cancelled = true;
		ctl_request_cancel(w->ctl); /* NULL (no-op) inside on_status */
	}
}

/* ---------- blocking: the same op on a private loop ---------- */

struct sync_wait {
	int status;
	fb_exec_result *res;
	fb_error *err;
};

static void sync_done(void *data, int status, fb_exec_result *res, const fb_error *err)
{
	struct sync_wait *s = data;
	s->status = status;
	*s->res = *res;
	memset(res, 0, sizeof(*res));
	if (s->err)
		*s->err = status < 0 && err ? *err : (fb_error){ 0 };
}

int fb_exec_ex(const char *root, const char *name, const fb_exec_opts *o, fb_exec_result *res,
	       fb_error *ferr)
{
	uv_loop_t loop;
	fb_exec_result scratch;
	struct sync_wait s = { .status = -EINPROGRESS, .res = res ? res : &scratch, .err = ferr };
	memset(s.res, 0, sizeof(*s.res));
	int r = uv_loop_init(&loop);
	if (r < 0) {
		struct err e = { 0 };
		err_set(&e, r, "uv_loop_init: %s", uv_strerror(r));
		orch_err_export(&e, ferr);
		return r;
	}
	r = fb_exec_ex_async(&loop, root, name, o, sync_done, &s, NULL, ferr);
	(void)ctl_run_loop(&loop);
	int cr = uv_loop_close(&loop);
	if (r == 0)
		r = s.status;
	if (!res)
		fb_exec_result_free(&scratch);
	return cr < 0 && r == 0 ? -EBUSY : r;
}

int fb_exec(const char *root, const char *name, const char *command, fb_exec_result *res,
	    fb_error *ferr)
{
	if (res)
		memset(res, 0, sizeof(*res));
	if (!res || !command) {
		struct err e = { 0 };
		err_set(&e, -EINVAL, "command and result are required");
		orch_err_export(&e, ferr);
		return -EINVAL;
	}
	fb_exec_opts o = { .command = command };
	return fb_exec_ex(root, name, &o, res, ferr);
}

void fb_exec_result_free(fb_exec_result *res)
{
	if (!res)
		return;
	free(res->out);
	free(res->err);
	free(res->combined);
	memset(res, 0, sizeof(*res));
}
