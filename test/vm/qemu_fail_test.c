/* qemu_fail_test.c - boot failures turn into clear errors (suite "vm").
 *
 * 1. A kernel QEMU cannot load: QEMU exits at once; ready() fails with the
 *    exit status and QEMU's own message, then exited(unexpected=false).
 * 2. A kernel that panics (no usable initramfs, no root disk): the watchdog
 *    sees the panic on the serial console and fails the boot with its tail
 *    long before the SSH deadline, and the VM is killed.
 * 3. stop() while booting: ready(-ECANCELED), exited(expected), fast.
 * Both in a private network namespace; ends with uv_loop_close() == 0. */
#include "vmtest.h"

#include "util/err.h"
#include "util/fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct run {
	bool ready_called, exited_called, unexpected;
	int status;
	char ready_msg[2048], exit_msg[2048];
};

static void on_ready(void *data, int status, const char *msg)
{
	struct run *r = data;
	VT_CHECK(!r->ready_called && !r->exited_called, "ready twice or after exited");
	r->ready_called = true;
	r->status = status;
	snprintf(r->ready_msg, sizeof(r->ready_msg), "%s", msg ? msg : "");
}

static void on_exited(void *data, bool unexpected, const char *msg)
{
	struct run *r = data;
	VT_CHECK(!r->exited_called, "exited twice");
	r->exited_called = true;
	r->unexpected = unexpected;
	snprintf(r->exit_msg, sizeof(r->exit_msg), "%s", msg ? msg : "");
}

static void boot_expect_failure(uv_loop_t *loop, struct vmm_boot_spec *spec, struct run *r,
				double max_s)
{
	static const struct vmm_callbacks cbs = {on_ready, on_exited};
	memset(r, 0, sizeof(*r));
	struct vmm_vm *vm = NULL;
	struct err e = {0};
	double t0 = vt_now();
	VT_CHECK(vmm_qemu_driver.boot(loop, spec, &cbs, r, &vm, &e) == 0, "boot: %s", e.msg);
	while (!r->exited_called && vt_now() < t0 + max_s)
		uv_run(loop, UV_RUN_ONCE);
	VT_CHECK(r->exited_called, "no exit within %.0f s", max_s);
	VT_CHECK(r->ready_called && r->status < 0, "ready did not report the failure");
	VT_CHECK(!r->unexpected, "a failed boot is not an unexpected exit");
	fprintf(stderr, "  failed after %.1f s: %s\n", vt_now() - t0, r->ready_msg);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--fleetbox-pdeath-exec") == 0)
		return vmm_pdeath_exec_main(argc, argv);
	if (geteuid() != 0) {
		fprintf(stderr, "needs root (network namespace, tap)\n");
		return 77;
	}
	struct vt_env env;
	vt_env_init(&env);
	vt_netns_setup();
	vt_tap_add("fbt3");
	struct vt_member m;
	vt_member_init(&env, &m, "vmfail-1", 3, NULL, NULL, 0);
	uv_loop_t loop;
	VT_CHECK(uv_loop_init(&loop) == 0, "loop");
	struct vmm_boot_spec spec;
	struct run r;

	/* 1. Garbage kernel. */
	char bad[PATH_MAX];
	snprintf(bad, sizeof(bad), "%s/garbage-kernel", m.dir);
	static char zeros[8192];
	VT_CHECK(file_write_atomic(bad, zeros, sizeof(zeros), 0644) == 0, "write");
	vt_spec(&env, &m, &spec);
	spec.kernel_path = bad;
	boot_expect_failure(&loop, &spec, &r, 60);
	VT_CHECK(strstr(r.ready_msg, "exited with status") && strstr(r.ready_msg, "qemu: "),
		 "message lacks status or QEMU's reason: %s", r.ready_msg);

	/* 2. Kernel panic: the seed ISO is no initramfs and there is no root. */
	vt_spec(&env, &m, &spec);
	spec.initrd_path = m.seed;
	spec.cmdline = "console=ttyS0 panic=-1 root=/dev/nonexistent rdinit=/init";
	setenv("FLEETBOX_IP_WAIT_TIMEOUT", "240", 1);
	boot_expect_failure(&loop, &spec, &r, 200);
	VT_CHECK(strstr(r.ready_msg, "panicked") && strstr(r.ready_msg, "serial: "),
		 "message lacks the panic or the serial tail: %s", r.ready_msg);

	/* 3. stop() during boot: no ACPI handler yet, so SIGTERM at once. */
	unsetenv("FLEETBOX_IP_WAIT_TIMEOUT");
	vt_spec(&env, &m, &spec);
	{
		static const struct vmm_callbacks cbs = {on_ready, on_exited};
		memset(&r, 0, sizeof(r));
		struct vmm_vm *vm = NULL;
		struct err e = {0};
		VT_CHECK(vmm_qemu_driver.boot(&loop, &spec, &cbs, &r, &vm, &e) == 0, "boot: %s", e.msg);
		double t0 = vt_now();
		vmm_qemu_driver.stop(vm, TO_GRACE_MINI_MS);
		while (!r.exited_called && vt_now() < t0 + 30)
			uv_run(&loop, UV_RUN_ONCE);
		VT_CHECK(r.exited_called && !r.unexpected, "stop during boot: %s", r.exit_msg);
		VT_CHECK(r.ready_called && r.status == -ECANCELED, "ready status %d", r.status);
		VT_CHECK(vt_now() - t0 < 4.0, "stop during boot took %.1f s", vt_now() - t0);
		fprintf(stderr, "  stopped during boot in %.2f s: %s\n", vt_now() - t0, r.ready_msg);
	}

	VT_CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0, "loop busy");
	VT_CHECK(uv_loop_close(&loop) == 0, "handles leaked");
	vt_env_fini(&env);
	fprintf(stderr, "ok\n");
	return 0;
}
