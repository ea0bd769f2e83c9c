/* api_ssh.c - the public copy API (include/fleetbox.h) over copy.c: resolve
 * the member (running, IP, pinned host key), copy. Exec is in api_exec.c. */
#include "fleetbox/uv.h"
#include "client/ssh/copy.h"
#include "client/ctl.h"
#include "client/orch/orch.h"
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

int fb_copy_to(const char *root, const char *name, const char *host_src, const char *guest_dst,
	       fb_error *ferr)
{
	struct err e = { 0 };
	struct ssh_target t;
	int rc = !host_src || !guest_dst ? err_set(&e, -EINVAL, "source and destination are required")
					 : resolve(root, name, &t, &e);
	if (rc == 0)
		rc = copy_to_guest(&t, host_src, guest_dst, NULL, &e);
	return orch_err_result(rc, &e, ferr);
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
	return orch_err_result(rc, &e, ferr);
}
