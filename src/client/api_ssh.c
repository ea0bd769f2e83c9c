/* api_ssh.c - the public exec/copy API (include/fleetbox.h) over ssh.c and
 * copy.c: resolve the member (running, IP, pinned host key), run, convert.
 * An async op owns its result until the user callback returns. */
#include "fleetbox.h"
#include "client/copy.h"
#include "client/orch.h"
#include "client/ssh.h"
#include "client/target.h"
#include "util/err.h"

#include <errno.h>
#include <limits.h>
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

struct fb_exec_op {
	struct ssh_exec_op *op;
	fb_exec_cb cb;
	void *data;
};

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
	free(w);
}

int fb_exec_async(uv_loop_t *loop, const char *root, const char *name, const char *command,
		  fb_exec_cb cb, void *data, fb_exec_op **op, fb_error *ferr)
{
	struct err e = { 0 };
	struct ssh_target t;
	if (op)
		*op = NULL;
	int rc = !loop || !cb || !command
			 ? err_set(&e, -EINVAL, "loop, command and callback are required")
			 : resolve(root, name, &t, &e);
	struct fb_exec_op *w = NULL;
	if (rc == 0 && !(w = calloc(1, sizeof(*w))))
		rc = err_set(&e, -ENOMEM, "out of memory");
	if (rc == 0) {
		w->cb = cb;
		w->data = data;
		rc = ssh_exec_start(loop, &t, command, exec_done, w, &w->op, &e);
		if (rc < 0)
			free(w);
	}
	if (rc < 0) {
		orch_err_export(&e, ferr);
		return rc;
	}
	if (op)
		*op = w;
	return 0;
}

void fb_exec_cancel(fb_exec_op *op)
{
	if (op)
		ssh_exec_cancel(op->op);
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
