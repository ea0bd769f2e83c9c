/* tap_test.c - a test that speaks TAP ("1..N", "ok 1 - ...", "not ok 2 - ...")
 * so meson (protocol : 'tap'), ctest or prove can run it. One ephemeral VM
 * for the whole file, bound to this process: a crashed or killed test leaves
 * nothing behind.
 *   cc -o tap_test tap_test.c $(pkg-config --cflags --libs fleetbox)
 *   sudo ./tap_test   # or: meson test (see meson.build) */
#include <fleetbox.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLAN 9
#define MEMBER "tap-1"

static int n, failed;

static void ok(int cond, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("%sok %d - ", cond ? "" : "not ", ++n);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
	va_end(ap);
	failed += !cond;
}

/* Runs cmd in the VM; 0 when it ran (res filled), else prints why as a TAP
 * diagnostic. */
static int run(const char *cmd, fb_exec_result *res)
{
	fb_error err;
	int r = fb_exec(NULL, MEMBER, cmd, res, &err);
	if (r < 0)
		printf("# %s: %s\n", cmd, err.message);
	return r;
}

int main(void)
{
	printf("1..%d\n", PLAN);
	const char *names[] = { MEMBER };
	fb_up_options o = { .names = names, .n_names = 1, .bound = 1, .ephemeral = 1 };
	fb_cluster *c;
	fb_error err;
	if (fb_up(&o, &c, &err) < 0) {
		printf("Bail out! fb_up: %s\n", err.message);
		return 1;
	}
	ok(fb_cluster_size(c) == 1 && *fb_cluster_ip(c, 0), "fb_up gives one member with an IP (%s)",
	   fb_cluster_ip(c, 0));

	fb_exec_result r;
	ok(run("uname -s", &r) == 0 && r.exit_status == 0 && strcmp(r.out, "Linux\n") == 0,
	   "uname -s prints Linux");
	fb_exec_result_free(&r);

	ok(run("echo to-out; echo to-err >&2; exit 3", &r) == 0 && r.exit_status == 3 &&
		   strcmp(r.out, "to-out\n") == 0 && strcmp(r.err, "to-err\n") == 0,
	   "exit status and separate stdout/stderr come back");
	fb_exec_result_free(&r);

	int ran = run("id -u", &r) == 0 && r.exit_status == 0;
	ok(ran && strcmp(r.out, "0\n") != 0, "commands run as the guest's plain user (uid %.*s)",
	   ran ? (int)strcspn(r.out, "\n") : 0, ran ? r.out : "");
	fb_exec_result_free(&r);

	/* Fixture setup usually needs root; a hung command must not hang the test. */
	fb_exec_opts as_root = { .command = "id -u", .root = 1 };
	ok(fb_exec_ex(NULL, MEMBER, &as_root, &r, &err) == 0 && strcmp(r.out, "0\n") == 0,
	   "root = 1 runs the command as root");
	fb_exec_result_free(&r);
	fb_exec_opts bounded = { .command = "sleep 30", .timeout_ms = 3000 };
	int t = fb_exec_ex(NULL, MEMBER, &bounded, &r, &err);
	ok(t == -ETIMEDOUT, "timeout_ms ends a hung command with -ETIMEDOUT (%d)", t);
	fb_exec_result_free(&r);

	fb_member_info info;
	ok(fb_status(NULL, MEMBER, &info, &err) == 0 && strcmp(info.state, "running") == 0 &&
		   info.running,
	   "fb_status says running");

	ok(fb_cluster_close(c, &err) == 0, "fb_cluster_close");
	/* Ephemeral: closing the cluster deleted the member, disk and all. */
	int st = fb_status(NULL, MEMBER, &info, &err);
	ok(st == -ENOENT, "the ephemeral member is gone after close (%d)", st);
	return failed != 0;
}
