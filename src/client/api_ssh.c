/* api_ssh.c - the public exec/copy API (include/fleetbox.h) over ssh.c and
 * copy.c: resolve the member (running, IP, pinned host key), run, convert.
 * An async op owns its result until the user callback returns; fb_exec_async
 * never blocks on the holder (its status request runs on the caller's loop). */
#include "fleetbox/uv.h"
#include "client/ssh/copy.h"
#include "client/ctl.h"
#include "client/orch.h"
#include "client/ssh/ssh.h"
#include "client/ssh/target.h"
#include "rpc/msg.h"
#include "util/err.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int resolve(const char *rootopt, const char *name, struct ssh_target *t, struct err *e)
{
	char root[PATH_MAX];
	int r = orch_root(rootopt, root, sizeof(root), e);
	if (r < 0)
		return r;
	if (!name)
		return err_set(e, -EINVAL, "member name is required");
	return target_resolve(root, name, t, e);
}

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

int fb_exec(const char *root, const char *name, const char *command, fb_exec_result *res,
	    fb_error *ferr)
{
	struct err e = { 0 };
	struct ssh_target t;
	struct ssh_result r = { 0 };
	if (res)
		memset(res, 0, sizeof(*res));
	int rc = !res || !command ? err_set(&e, -EINVAL, "command and result are required")
				  : resolve(root, name, &t, &e);
	if (rc == 0)
		rc = ssh_exec(&t, command, &r, &e);
	if (res)
		result_export(&r, res);
	ssh_result_fini(&r);
	if (rc < 0)
		orch_err_export(&e, ferr);
	else if (ferr)
		memset(ferr, 0, sizeof(*ferr));
	return rc;
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

/* fb_exec_async runs in two phases, both on the caller's loop: the holder's
 * status request (ctl_request_start), then the SSH command (ssh_exec_start).
 * At most one of ctl/ssh is non-NULL: `ctl` from the start until on_status
 * runs (the request is freed right after), `ssh` in phase two. Cancelling in
 * phase one marks the op and ends the request at once (ctl_request_cancel); its
 * callback, after its handles are closed, reports -ECANCELED instead of
 * starting SSH, so the user callback still follows every close. */
struct fb_exec_op {
	uv_loop_t *loop;
	struct ctl_req *ctl;
	struct ssh_exec_op *ssh;
	bool cancelled;
	char root[PATH_MAX];
	char name[FB_NAME_MAX + 1];
	char *command;
	fb_exec_cb cb;
	void *data;
};

static void op_free(struct fb_exec_op *w)
{
	free(w->command);
	free(w);
}

static void exec_done(void *data, int status, struct ssh_result *res, const struct err *e)
{
	struct fb_exec_op *w = data;
	fb_exec_result out;
	fb_error fe = { 0 };
	result_export(res, &out);
	if (status < 0)
		orch_err_export(e, &fe);
	w->cb(w->data, status, &out, status < 0 ? &fe : NULL);
	fb_exec_result_free(&out); /* whatever the callback did not take */
	op_free(w);
}

/* Phase one failed or was cancelled: report with an empty result. */
static void exec_fail(struct fb_exec_op *w, int status, const struct err *e)
{
	struct ssh_result empty = { 0 };
	exec_done(w, status, &empty, e);
}

static int status_target(struct fb_exec_op *w, const char *reply, struct ssh_target *t,
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

static void on_status(void *data, int status, const char *reply, const struct err *ce)
{
	struct fb_exec_op *w = data;
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
		r = ssh_exec_start(w->loop, &t, w->command, exec_done, w, &w->ssh, &e);
	if (r < 0)
		exec_fail(w, r, &e);
}

int fb_exec_async(uv_loop_t *loop, const char *rootopt, const char *name, const char *command,
		  fb_exec_cb cb, void *data, fb_exec_op **op, fb_error *ferr)
{
	struct err e = { 0 };
	struct fb_exec_op *w = NULL;
	char root[PATH_MAX];
	if (op)
		*op = NULL;
	int rc = !loop || !cb || !command
			 ? err_set(&e, -EINVAL, "loop, command and callback are required")
			 : orch_root(rootopt, root, sizeof(root), &e);
	if (rc == 0 && !name)
		rc = err_set(&e, -EINVAL, "member name is required");
	if (rc == 0)
		rc = target_check_running(root, name, &e);
	if (rc == 0 && (!(w = calloc(1, sizeof(*w))) || !(w->command = strdup(command))))
		rc = err_set(&e, -ENOMEM, "out of memory");
	if (rc == 0) {
		w->loop = loop;
		w->cb = cb;
		w->data = data;
		snprintf(w->root, sizeof(w->root), "%s", root);
		snprintf(w->name, sizeof(w->name), "%s", name);
		rc = ctl_request_start(loop, root, name, "{\"cmd\":\"status\"}\n", CTL_STATUS_MS,
				       CTL_STATUS_MS, on_status, w, &w->ctl);
		if (rc < 0)
			err_set(&e, rc, "status request to %s: %s", name, strerror(-rc));
	}
	if (rc < 0) {
		if (w)
			op_free(w);
		orch_err_export(&e, ferr);
		return rc;
	}
	if (op)
		*op = w;
	if (ferr)
		memset(ferr, 0, sizeof(*ferr));
	return 0;
}

void fb_exec_cancel(fb_exec_op *op)
{
	if (!op)
		return;
	if (op->ssh) {
		ssh_exec_cancel(op->ssh);
	} else {
		op->cancelled = true;
		ctl_request_cancel(op->ctl); /* NULL (no-op) inside on_status */
	}
}

int fb_copy_to(const char *root, const char *name, const char *host_src, const char *guest_dst,
	       fb_error *ferr)
{
	struct err e = { 0 };
	struct ssh_target t;
	int rc = !host_src || !guest_dst ? err_set(&e, -EINVAL, "source and destination are required")
					 : resolve(root, name, &t, &e);
	if (rc == 0)
		rc = copy_to_guest(&t, host_src, guest_dst, NULL, &e);
	if (rc < 0)
		orch_err_export(&e, ferr);
	return rc;
}

int fb_copy_from(const char *root, const char *name, const char *guest_src, const char *host_dst,
		 fb_error *ferr)
{
	struct err e = { 0 };
	struct ssh_target t;
	int rc = !guest_src || !host_dst ? err_set(&e, -EINVAL, "source and destination are required")
					 : resolve(root, name, &t, &e);
	if (rc == 0)
		rc = copy_from_guest(&t, guest_src, host_dst, NULL, &e);
	if (rc < 0)
		orch_err_export(&e, ferr);
	return rc;
}
