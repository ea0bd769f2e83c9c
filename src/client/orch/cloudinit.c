/* orch/cloudinit.c - `up` waits for the guest's cloud-init before a member
 * is ready, on images that run it.
 *
 * SSH answers early in a cloud-init boot: cloud-config and cloud-final still
 * run after it (mounts, write_files of later stages, the user's own
 * runcmd), and a test that starts then races them. The generator writes
 * /run/cloud-init/enabled when cloud-init runs this boot, and cloud-final
 * links /run/cloud-init/result.json when it is done; both live in /run, so a
 * file from an earlier boot never counts (boot-finished in /var/lib does).
 * The mini image has neither: one short probe (retried while the guest is
 * too busy to accept) and no wait. The wait is one
 * SSH session polling in the guest (a new session every 100 ms would take
 * CPU from the very boot it waits for under TCG). */
#include "client/orch/plan.h"
#include "client/ssh/ssh.h"
#include "client/ssh/target.h"
#include "util/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PROBE_CONNECT_MS 10000
#define PROBE_RETRY_MS 500

static const char PROBE_CMD[] =
	"if test -e /run/cloud-init/enabled && ! test -e /run/cloud-init/result.json; "
	"then echo running; fi";

/* A connection that fails now, right after SSH answered, is a guest too
 * busy to accept in time (TCG, its own boot going on): try again. */
static bool transient(int r)
{
	return r == -ETIMEDOUT || r == -ECONNREFUSED || r == -ECONNRESET || r == -EHOSTUNREACH ||
	       r == -EAGAIN || r == -EPIPE || r == -ECONNABORTED;
}

static int probe_once(const struct ssh_target *t, bool *running, struct err *e)
{
	struct ssh_result res = { 0 };
	int r = ssh_exec(t, PROBE_CMD, &res, e);
	*running = r == 0 && res.st.exit_status == 0 && strncmp(res.out, "running", 7) == 0;
	if (r == 0 && res.st.exit_status != 0)
		r = err_set(e, -EIO, "cloud-init probe exited with status %d", res.st.exit_status);
	ssh_result_fini(&res);
	return r;
}

/* Whether the guest's cloud-init is still running this boot; transient
 * connection failures are retried until timeout_ms or an interrupt. */
static int cloudinit_running(struct up_plan *u, struct up_member *m, int timeout_ms,
			     bool *running, struct err *e)
{
	struct ssh_target t;
	int r = target_resolve(u->root, m->name, &t, e);
	if (r < 0)
		return r;
	t.connect_timeout_ms = PROBE_CONNECT_MS;
	uint64_t deadline = uv_hrtime() / 1000000 + (uint64_t)timeout_ms;
	for (;;) {
		err_clear(e);
		r = probe_once(&t, running, e);
		if (!transient(r) || uv_hrtime() / 1000000 >= deadline)
			return r;
		if (up_cancelled(u))
			return err_set(e, -ECANCELED, "interrupted");
		usleep(PROBE_RETRY_MS * 1000);
	}
}

int up_cloudinit_wait(struct up_plan *u, struct up_member *m, int timeout_ms, struct err *e)
{
	bool running = false;
	int r = cloudinit_running(u, m, timeout_ms, &running, e);
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
