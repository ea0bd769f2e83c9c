/* orch_cloudinit.c - `up` waits for the guest's cloud-init before a member
 * is ready, on images that run it.
 *
 * SSH answers early in a cloud-init boot: cloud-config and cloud-final still
 * run after it (mounts, write_files of later stages, the user's own
 * runcmd), and a test that starts then races them. The generator writes
 * /run/cloud-init/enabled when cloud-init runs this boot, and cloud-final
 * links /run/cloud-init/result.json when it is done; both live in /run, so a
 * file from an earlier boot never counts (boot-finished in /var/lib does).
 * The mini image has neither: one short probe and no wait. The wait is one
 * SSH session polling in the guest (a new session every 100 ms would take
 * CPU from the very boot it waits for under TCG). */
#include "client/orch_plan.h"
#include "client/ssh/ssh.h"
#include "client/ssh/target.h"
#include "util/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define PROBE_CONNECT_MS 5000

static const char PROBE_CMD[] =
	"if test -e /run/cloud-init/enabled && ! test -e /run/cloud-init/result.json; "
	"then echo running; fi";

/* Whether the guest's cloud-init is still running this boot. */
static int cloudinit_running(struct up_plan *u, struct up_member *m, bool *running,
			     struct err *e)
{
	struct ssh_target t;
	int r = target_resolve(u->root, m->name, &t, e);
	if (r < 0)
		return r;
	t.connect_timeout_ms = PROBE_CONNECT_MS;
	struct ssh_result res = { 0 };
	r = ssh_exec(&t, PROBE_CMD, &res, e);
	*running = r == 0 && res.st.exit_status == 0 && strncmp(res.out, "running", 7) == 0;
	if (r == 0 && res.st.exit_status != 0)
		r = err_set(e, -EIO, "cloud-init probe exited with status %d", res.st.exit_status);
	ssh_result_fini(&res);
	return r;
}

int up_cloudinit_wait(struct up_plan *u, struct up_member *m, int timeout_ms, struct err *e)
{
	bool running = false;
	int r = cloudinit_running(u, m, &running, e);
	if (r < 0 || !running)
		return r;
	up_set_phase(u, m, FB_UP_WAITING_CLOUD_INIT, "");
	char cmd[256];
	int secs = timeout_ms / 1000 > 1 ? timeout_ms / 1000 : 1;
	snprintf(cmd, sizeof(cmd), "timeout %d sh -c 'until test -e /run/cloud-init/result.json; "
		 "do sleep 0.5; done'", secs);
	r = up_ssh_wait(u, m, cmd, timeout_ms, e);
	if (r < 0 && r != -ECANCELED)
		err_prefix(e, "cloud-init did not finish within %d s: ", secs);
	return r;
}
