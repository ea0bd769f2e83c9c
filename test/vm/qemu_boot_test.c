/* qemu_boot_test.c - the QEMU driver with a real VM (suite "vm").
 *
 * In a private network namespace: build the mini image, create a member
 * (qcow2 overlay, seed with a fixture whose guest path has a space, a quote
 * and non-ASCII), boot it through vmm_qemu_driver, and over SSH (host key
 * pinned) check the user, sudo, hostname, address, fixture and a write.
 * stop() powers it off gracefully (exited, not unexpected); a second boot of
 * the same disk must still have the files (persistence); then the QEMU
 * process is SIGKILLed from outside and the driver must report an unexpected
 * exit with the exit reason. Ends with uv_loop_close() == 0. */
#include "vmtest.h"

#include "client/fixture.h"
#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct run {
	bool ready_called, exited_called, unexpected;
	int ready_status;
	char msg[2048];
};

static void on_ready(void *data, int status, const char *msg)
{
	struct run *r = data;
	VT_CHECK(!r->ready_called, "ready called twice");
	VT_CHECK(!r->exited_called, "ready after exited");
	r->ready_called = true;
	r->ready_status = status;
	if (msg)
		snprintf(r->msg, sizeof(r->msg), "%s", msg);
}

static void on_exited(void *data, bool unexpected, const char *msg)
{
	struct run *r = data;
	VT_CHECK(!r->exited_called, "exited called twice");
	r->exited_called = true;
	r->unexpected = unexpected;
	snprintf(r->msg, sizeof(r->msg), "%s", msg ? msg : "");
}

static const struct vmm_callbacks cbs = {on_ready, on_exited};

static struct vmm_vm *boot(uv_loop_t *loop, const struct vt_env *env, const struct vt_member *m,
			   struct run *r)
{
	memset(r, 0, sizeof(*r));
	struct vmm_boot_spec spec;
	vt_spec(env, m, &spec);
	struct vmm_vm *vm = NULL;
	struct err e = {0};
	double t0 = vt_now();
	VT_CHECK(vmm_qemu_driver.boot(loop, &spec, &cbs, r, &vm, &e) == 0, "boot: %s", e.msg);
	VT_CHECK(vmm_qemu_driver.pid(vm) > 0, "no pid");
	vt_run_until(loop, &r->ready_called, 300);
	VT_CHECK(r->ready_status == 0, "boot failed: %s", r->msg);
	fprintf(stderr, "  %s ready (port 22 accepts) after %.2f s\n", m->name, vt_now() - t0);
	return vm;
}

static void expect_out(const struct ssh_target *t, const char *cmd, const char *want)
{
	int st = -1;
	char *out = vt_ssh(t, cmd, &st);
	out[strcspn(out, "\n")] = '\0';
	VT_CHECK(st == 0 && strcmp(out, want) == 0, "'%s' gave status %d output \"%s\", want \"%s\"",
		 cmd, st, out, want);
	free(out);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--fleetbox-pdeath-exec") == 0)
		return vmm_pdeath_exec_main(argc, argv);
	if (geteuid() != 0) {
		fprintf(stderr, "needs root (network namespace, tap)\n");
		return 77;
	}
	setenv("FLEETBOX_ACCEL", getenv("FLEETBOX_ACCEL") ? getenv("FLEETBOX_ACCEL") : "auto", 1);
	/* The image build needs apt (the host network): before the namespace. */
	struct vt_env env;
	vt_env_init(&env);
	vt_netns_setup();
	vt_tap_add("fbt2");

	/* A fixture directory with a file, as an ext4 image labelled FBFIX0. */
	char fixdir[PATH_MAX], fiximg[PATH_MAX];
	snprintf(fixdir, sizeof(fixdir), "%s/fixture-src", env.root);
	VT_CHECK(mkdir_p(fixdir, 0755) == 0, "mkdir");
	char hello[PATH_MAX + 16];
	snprintf(hello, sizeof(hello), "%s/hello.txt", fixdir);
	VT_CHECK(file_write_atomic(hello, "fixture-ok\n", 11, 0644) == 0, "write fixture file");
	snprintf(fiximg, sizeof(fiximg), "%s/fixture-0.img", env.root);
	struct cmd c;
	cmd_init(&c, "mke2fs");
	const char *mk[] = {"-q", "-t", "ext4", "-L", "FBFIX0", "-d", fixdir, fiximg, "16M", NULL};
	for (int i = 0; mk[i]; i++)
		cmd_add(&c, mk[i]);
	struct err e = {0};
	VT_CHECK(cmd_run(&c, NULL, &e) == 0, "%s", e.msg);
	cmd_fini(&c);
	const char *guest[] = {"/mnt/my \"fix\" dir \xc3\xbc"};
	const char *imgs[] = {fiximg};

	struct vt_member m;
	vt_member_init(&env, &m, "vmt-1", 2, guest, imgs, 1);
	struct ssh_target t;
	vt_target(&env, &m, &t);

	uv_loop_t loop;
	VT_CHECK(uv_loop_init(&loop) == 0, "loop");

	/* Boot 1: contract checks and writes. */
	struct run r1;
	struct vmm_vm *vm = boot(&loop, &env, &m, &r1);
	expect_out(&t, "id -u", "1000");
	expect_out(&t, "sudo id -u", "0");
	expect_out(&t, "sudo sh -c 'echo hi > /root/x' && sudo cat /root/x", "hi");
	expect_out(&t, "hostname", "vmt-1");
	expect_out(&t, "ip -4 -o addr show eth0 | awk '{print $4}'", "192.168.77.2/24");
	expect_out(&t, "ip route | awk '/^default/ {print $3}'", "192.168.77.1");
	expect_out(&t, "cat '/mnt/my \"fix\" dir \xc3\xbc/hello.txt'", "fixture-ok");
	expect_out(&t, "touch '/mnt/my \"fix\" dir \xc3\xbc/x' 2>/dev/null || echo read-only", "read-only");
	expect_out(&t, "echo persisted > /home/fleetbox/p.txt && sudo sh -c 'echo etc > /etc/fb-test' && sync && echo ok", "ok");
	double t0 = vt_now();
	vmm_qemu_driver.stop(vm, TO_GRACE_MINI_MS);
	vmm_qemu_driver.stop(vm, TO_GRACE_MINI_MS); /* idempotent */
	vt_run_until(&loop, &r1.exited_called, 60);
	VT_CHECK(!r1.unexpected, "graceful stop reported unexpected: %s", r1.msg);
	fprintf(stderr, "  stopped in %.2f s: %s\n", vt_now() - t0, r1.msg);
	/* Graceful means the guest powered off itself, before SIGTERM (5 s). */
	VT_CHECK(vt_now() - t0 < 5.0, "guest did not power off on ACPI (took %.1f s)", vt_now() - t0);
	char *serial = NULL;
	size_t sl = 0;
	VT_CHECK(file_read_all(m.serial, 1 << 20, &serial, &sl) == 0, "serial log");
	VT_CHECK(strstr(serial, "fleetbox-mini: powering off"), "no clean poweroff in serial log");
	free(serial);

	/* Boot 2: the disk kept what boot 1 wrote; then an unexpected death. */
	struct run r2;
	vm = boot(&loop, &env, &m, &r2);
	expect_out(&t, "cat /home/fleetbox/p.txt", "persisted");
	expect_out(&t, "cat /etc/fb-test", "etc");
	expect_out(&t, "sudo cat /root/x", "hi");
	pid_t pid = vmm_qemu_driver.pid(vm);
	VT_CHECK(kill(pid, SIGKILL) == 0, "kill: %s", strerror(errno));
	vt_run_until(&loop, &r2.exited_called, 30);
	VT_CHECK(r2.unexpected, "external SIGKILL not reported as unexpected");
	VT_CHECK(strstr(r2.msg, "signal 9"), "exit message lacks the reason: %s", r2.msg);
	fprintf(stderr, "  unexpected exit reported: %s\n", r2.msg);

	/* A disk that exists is never touched. */
	VT_CHECK(disk_create(&env.img, m.disk, 1024, &e) == -EEXIST, "disk_create over an existing disk");

	VT_CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0, "loop still busy");
	VT_CHECK(uv_loop_close(&loop) == 0, "uv_loop_close: handles leaked");
	vt_env_fini(&env);
	fprintf(stderr, "ok\n");
	return 0;
}
