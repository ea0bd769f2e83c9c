/* api.c - the public query side of libfleetbox: list, status, raw requests. */
#include "fleetbox/uv.h"
#include "client/ctl.h"
#include "client/orch/orch.h"
#include "client/store.h"
#include "rpc/msg.h"
#include "util/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *fb_version(void)
{
	return FLEETBOX_VERSION;
}

int fb_store_root(char *buf, size_t len)
{
	return buf && len ? store_root_resolve(buf, len) : -EINVAL;
}

/* Fills the stored half of info; live fields default to stopped. */
static void info_from_config(const struct member_config *c, fb_member_info *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", c->name);
	snprintf(out->ip, sizeof(out->ip), "%s", c->ip);
	snprintf(out->state, sizeof(out->state), "stopped");
	out->cpus = c->cpus;
	out->memory_mb = c->memory_mb;
	out->disk_mb = c->disk_mb;
	snprintf(out->image, sizeof(out->image), "%s", c->image);
	snprintf(out->created_at, sizeof(out->created_at), "%s", c->created_at);
}

static void info_apply_status(const struct rpc_status *st, fb_member_info *out)
{
	if (st->ip && *st->ip)
		snprintf(out->ip, sizeof(out->ip), "%s", st->ip);
	snprintf(out->state, sizeof(out->state), "%s", wire_state_name(st->state));
	out->running = st->running;
	out->holder_pid = st->pid;
	snprintf(out->error, sizeof(out->error), "%s", st->error ? st->error : "");
}

static int member_info(const char *root, const char *name, fb_member_info *out, struct err *e)
{
	struct member_config c;
	int r = store_config_read(root, name, &c, e);
	bool running = store_member_running(root, name, NULL);
	if (r < 0 && !(r == -ENOENT && running))
		return r;
	if (r == 0) {
		info_from_config(&c, out);
		store_config_fini(&c);
	} else {
		memset(out, 0, sizeof(*out));
		snprintf(out->name, sizeof(out->name), "%s", name);
	}
	if (!running)
		return 0;
	struct rpc_status *st;
	struct err se = { 0 };
	if (ctl_status(root, name, &st, &se) < 0) {
		/* Alive per pidfile and lock but not answering: say so, don't fail. */
		snprintf(out->state, sizeof(out->state), "error");
		snprintf(out->error, sizeof(out->error), "%s", se.msg);
		return 0;
	}
	info_apply_status(st, out);
	rpc_status_free(st);
	return 0;
}

int fb_status(const char *rootopt, const char *name, fb_member_info *out, fb_error *ferr)
{
	struct err e = { 0 };
	char root[PATH_MAX];
	int r = out ? orch_root(rootopt, root, sizeof(root), &e)
		    : err_set(&e, -EINVAL, "fb_status: out is NULL");
	if (r == 0 && !wire_name_valid(name))
		r = err_set(&e, -EINVAL, "fb_status: invalid name \"%s\"", name ? name : "(null)");
	if (r == 0)
		r = member_info(root, name, out, &e);
	return orch_err_result(r, &e, ferr);
}

int fb_list(const char *rootopt, fb_member_info **out, size_t *n, fb_error *ferr)
{
	struct err e = { 0 };
	char root[PATH_MAX];
	if (!out || !n) {
		err_set(&e, -EINVAL, "fb_list: %s is NULL", out ? "n" : "out");
		return orch_err_result(-EINVAL, &e, ferr);
	}
	*out = NULL;
	*n = 0;
	int r = orch_root(rootopt, root, sizeof(root), &e);
	char **names = NULL;
	size_t count = 0;
	if (r == 0 && (r = store_list_members(root, &names, &count)) < 0)
		err_set(&e, r, "cannot list %s: %s", root, strerror(-r));
	if (r == 0 && count) {
		*out = calloc(count, sizeof(fb_member_info));
		if (!*out)
			r = err_set(&e, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; r == 0 && i < count; i++) {
		struct err me = { 0 };
		if (member_info(root, names[i], &(*out)[*n], &me) == 0)
			(*n)++; /* a member deleted meanwhile just drops out */
	}
	store_names_free(names, count);
	if (r < 0) {
		free(*out);
		*out = NULL;
	}
	return orch_err_result(r, &e, ferr);
}

void fb_list_free(fb_member_info *list)
{
	free(list);
}

/* A member to ask, a request line and non-negative timeouts. */
static int request_args_check(const char *fn, const char *member, const char *line, int dial_ms,
			      int read_ms, struct err *e)
{
	if (!wire_name_valid(member))
		return err_set(e, -EINVAL, "%s: invalid member name \"%s\"", fn,
			       member ? member : "(null)");
	if (!line)
		return err_set(e, -EINVAL, "%s: request is NULL", fn);
	if (dial_ms < 0 || read_ms < 0)
		return err_set(e, -EINVAL, "%s: negative timeout (dial %d ms, read %d ms)", fn, dial_ms,
			       read_ms);
	return 0;
}

int fb_request(const char *rootopt, const char *member, const char *request_json, int dial_ms,
	       int read_ms, char **reply, fb_error *ferr)
{
	struct err e = { 0 };
	char root[PATH_MAX];
	if (reply)
		*reply = NULL;
	int r = request_args_check("fb_request", member, request_json, dial_ms, read_ms, &e);
	if (r == 0 && !reply)
		r = err_set(&e, -EINVAL, "fb_request: reply is NULL");
	if (r == 0)
		r = orch_root(rootopt, root, sizeof(root), &e);
	if (r == 0)
		r = ctl_request_line(root, member, request_json, (unsigned)dial_ms, (unsigned)read_ms,
				     reply, &e);
	return orch_err_result(r, &e, ferr);
}

struct async_req {
	fb_request_cb cb;
	fb_status_cb scb;
	void *data;
	char name[FB_NAME_MAX + 1];
};

static void async_req_cb(void *data, int status, const char *reply, const struct err *e)
{
	struct async_req *a = data;
	fb_error fe = { 0 };
	if (e)
		orch_err_export(e, &fe);
	a->cb(a->data, status, reply, status < 0 ? &fe : NULL);
	free(a);
}

/* Starts a request owning a (freed by the callback, or here on failure). */
static int start_async(uv_loop_t *loop, const char *rootopt, const char *member,
		       const char *line, int dial_ms, int read_ms, ctl_cb cb, struct async_req *a)
{
	char root[PATH_MAX];
	int r = orch_root(rootopt, root, sizeof(root), NULL);
	if (r == 0)
		r = ctl_request_async(loop, root, member, line, (unsigned)dial_ms, (unsigned)read_ms,
				      cb, a);
	if (r < 0)
		free(a);
	return r;
}

int fb_request_async(uv_loop_t *loop, const char *rootopt, const char *member,
		     const char *request_json, int dial_ms, int read_ms, fb_request_cb cb,
		     void *data)
{
	if (!loop || !cb || request_args_check("fb_request_async", member, request_json, dial_ms,
					       read_ms, NULL) < 0)
		return -EINVAL;
	struct async_req *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->cb = cb;
	a->data = data;
	return start_async(loop, rootopt, member, request_json, dial_ms, read_ms, async_req_cb, a);
}

static void async_status_cb(void *data, int status, const char *reply, const struct err *e)
{
	struct async_req *a = data;
	fb_error fe = { 0 };
	fb_member_info info;
	memset(&info, 0, sizeof(info));
	snprintf(info.name, sizeof(info.name), "%s", a->name);
	struct rpc_reply rep;
	struct err de = { 0 };
	if (status == 0 && rpc_reply_decode(reply, strlen(reply), &rep, &de) == 0) {
		if (rep.error && *rep.error) {
			status = err_set(&de, -EIO, "%s", rep.error);
		} else if (!rep.status) {
			status = err_set(&de, -EPROTO, "status reply has no status");
		} else {
			info_apply_status(rep.status, &info);
		}
		rpc_reply_fini(&rep);
		e = &de;
	} else if (status == 0) {
		status = de.code;
		e = &de;
	}
	if (status < 0)
		orch_err_export(e, &fe);
	a->scb(a->data, status, status == 0 ? &info : NULL, status < 0 ? &fe : NULL);
	free(a);
}

int fb_status_async(uv_loop_t *loop, const char *rootopt, const char *name, fb_status_cb cb,
		    void *data)
{
	if (!loop || !cb || !wire_name_valid(name))
		return -EINVAL;
	struct async_req *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->scb = cb;
	a->data = data;
	snprintf(a->name, sizeof(a->name), "%s", name);
	return start_async(loop, rootopt, name, "{\"cmd\":\"status\"}\n", CTL_STATUS_MS,
			   CTL_STATUS_MS, async_status_cb, a);
}

static int wait_args_check(const char *const *names, size_t n, int timeout_ms, struct err *e)
{
	if (n && !names)
		return err_set(e, -EINVAL, "fb_wait_running: names is NULL (n %zu)", n);
	for (size_t i = 0; i < n; i++)
		if (!wire_name_valid(names[i]))
			return err_set(e, -EINVAL, "fb_wait_running: invalid name \"%s\"",
				       names[i] ? names[i] : "(null)");
	if (timeout_ms < 0)
		return err_set(e, -EINVAL, "fb_wait_running: timeout_ms is %d", timeout_ms);
	return 0;
}

int fb_wait_running(const char *rootopt, const char *const *names, size_t n, int timeout_ms,
		    fb_error *ferr)
{
	struct err e = { 0 };
	char root[PATH_MAX];
	int r = wait_args_check(names, n, timeout_ms, &e);
	if (r == 0)
		r = orch_root(rootopt, root, sizeof(root), &e);
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	size_t done = 0;
	while (r == 0 && done < n) {
		struct rpc_status *st = NULL;
		if ((r = ctl_status(root, names[done], &st, &e)) < 0)
			break;
		enum wire_state s = st->state;
		if (s == FB_STATE_ERROR || s == FB_STATE_STOPPED)
			r = err_set(&e, -EIO, "%s is %s%s%s", names[done], wire_state_name(s),
				    st->error && *st->error ? ": " : "", st->error ? st->error : "");
		rpc_status_free(st);
		if (r < 0)
			break;
		if (s == FB_STATE_RUNNING) {
			done++;
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		long ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (ms >= timeout_ms) {
			r = err_set(&e, -ETIMEDOUT, "%s is still %s after %d ms", names[done],
				    wire_state_name(s), timeout_ms);
			break;
		}
		struct timespec ts = { 0, 50 * 1000000L };
		nanosleep(&ts, NULL); /* states change on the holder's side; ask again */
	}
	return orch_err_result(r, &e, ferr);
}
