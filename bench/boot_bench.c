/* boot_bench.c - boot to the first successful SSH command: the fleetbox QEMU
 * driver vs raw QEMU started with the very same argv (same kernel, initramfs,
 * seed, flags), alternating, several rounds, in one private network
 * namespace. Each round starts from a fresh disk overlay (the `up` case, so
 * the first-boot mke2fs is included).
 *
 * With a fleetbox binary (argv[2] or $FLEETBOX_BIN) it also times the whole
 * product path in the same run: `fleetbox up` of a new member (cold: disk,
 * seed, holder, network) to the first successful `fleetbox ssh -- true`, and
 * `fleetbox up x -n 3` to all three answering.
 *
 * Usage (root): boot_bench [ROUNDS=5] [FLEETBOX]
 *   FLEETBOX_CACHE=<dir> (or FLEETBOX_TEST_IMAGE_DIR) is the image cache to use.
 *   FLEETBOX_QEMU_MACHINE / FLEETBOX_QEMU_TB_MB select the variant to time.
 * Output: one JSON object per run on stdout, then a summary object
 *   {"summary":true,"driver_median_s":..,"raw_median_s":..,"ratio":..}. */
#include "../test/vm/vmtest.h"

#include "client/ssh/ssh.h"
#include "util/cmd.h"
#include "util/err.h"
#include "util/accel.h"
#include "vmm/qemu_argv.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static bool ready_flag, exited_flag;

/* The driver's default choice (qemu.c), so both sides run the same argv. */
static const char *machine(const struct image_info *img)
{
	const char *m = getenv("FLEETBOX_QEMU_MACHINE");
	if (m && *m)
		return m;
	return qemu_kernel_is_elf(img->kernel) ? "microvm" : "pc";
}
static int ready_status;

static void on_ready(void *d, int st, const char *msg)
{
	ready_flag = true;
	ready_status = st;
	if (st)
		fprintf(stderr, "boot failed: %s\n", msg);
}

static void on_exited(void *d, bool unexpected, const char *msg)
{
	exited_flag = true;
}

/* Retries `true` over SSH until it succeeds (bounded); returns success. */
static bool ssh_until_ok(const struct ssh_target *t, double deadline)
{
	while (vt_now() < deadline) {
		struct ssh_result res = {0};
		struct err e = {0};
		int r = ssh_exec(t, "true", &res, &e);
		int st = res.st.exit_status;
		ssh_result_fini(&res);
		if (r == 0 && st == 0)
			return true;
		usleep(100 * 1000);
	}
	return false;
}

static void fresh_disk(struct vt_env *env, struct vt_member *m)
{
	unlink(m->disk); /* the bench's own scratch disk */
	struct err e = {0};
	VT_CHECK(disk_create(&env->img, m->disk, 2048, &e) == 0, "%s", e.msg);
}

static double run_driver(uv_loop_t *loop, struct vt_env *env, struct vt_member *m,
			 const struct ssh_target *t)
{
	static const struct vmm_callbacks cbs = {on_ready, on_exited};
	struct vmm_boot_spec spec;
	vt_spec(env, m, &spec);
	ready_flag = exited_flag = false;
	struct vmm_vm *vm = NULL;
	struct err e = {0};
	double t0 = vt_now();
	VT_CHECK(vmm_qemu_driver.boot(loop, &spec, &cbs, NULL, &vm, &e) == 0, "%s", e.msg);
	while (!ready_flag && vt_now() < t0 + 300)
		uv_run(loop, UV_RUN_ONCE);
	VT_CHECK(ready_flag && ready_status == 0, "driver boot did not become ready");
	VT_CHECK(ssh_until_ok(t, t0 + 300), "ssh failed after ready");
	double dt = vt_now() - t0;
	vmm_qemu_driver.stop(vm, TO_GRACE_MINI_MS);
	while (!exited_flag && vt_now() < t0 + 400)
		uv_run(loop, UV_RUN_ONCE);
	VT_CHECK(exited_flag, "driver vm did not exit");
	return dt;
}

static double run_raw(struct vt_env *env, struct vt_member *m, const struct ssh_target *t)
{
	struct vmm_boot_spec spec;
	vt_spec(env, m, &spec);
	char qmp[PATH_MAX];
	snprintf(qmp, sizeof(qmp), "%s/raw-qmp.sock", m->dir);
	unlink(qmp);
	enum vmm_accel accel;
	struct err e = {0};
	VT_CHECK(accel_select(&accel, &e) == 0, "%s", e.msg);
	const char *tb = getenv("FLEETBOX_QEMU_TB_MB");
	struct qemu_opts o = {.binary = "qemu-system-x86_64", .accel = accel,
			      .machine = machine(&env->img),
			      .tb_size_mb = tb && *tb ? (unsigned)atoi(tb) : 64,
			      .qmp_path = qmp, .disk_format = "qcow2",
			      .tsc_khz = qemu_host_tsc_khz()};
	struct cmd c = {0};
	VT_CHECK(qemu_argv_build(&o, &spec, &c, &e) == 0, "%s", e.msg);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	double t0 = vt_now();
	int r = posix_spawnp(&pid, cmd_argv(&c)[0], &fa, NULL, cmd_argv(&c), environ);
	posix_spawn_file_actions_destroy(&fa);
	cmd_fini(&c);
	VT_CHECK(r == 0, "spawn qemu: %s", strerror(r));
	bool ok = ssh_until_ok(t, t0 + 300);
	double dt = vt_now() - t0;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	VT_CHECK(ok, "raw qemu: ssh never succeeded");
	return dt;
}

/* Runs fleetbox with the bench's store; returns its exit status. */
static int fleetbox(const char *bin, const char *root, const char *const *args)
{
	char *argv[16];
	int n = 0;
	argv[n++] = (char *)bin;
	for (; *args && n < 15; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	setenv("FLEETBOX_HOME", root, 1);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int r = posix_spawn(&pid, bin, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	VT_CHECK(r == 0, "spawn %s: %s", bin, strerror(r));
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* `fleetbox up` of n new members to each answering `fleetbox ssh -- true`. */
static double run_cli(const char *bin, const char *root, const char *base, int n)
{
	char count[8];
	snprintf(count, sizeof(count), "%d", n);
	double t0 = vt_now();
	const char *up1[] = { "up", base, "--cpus", "1", "--mem", "1", NULL };
	const char *upn[] = { "up", base, "-n", count, "--cpus", "1", "--mem", "1", NULL };
	VT_CHECK(fleetbox(bin, root, n == 1 ? up1 : upn) == 0, "fleetbox up %s failed", base);
	for (int i = 1; i <= n; i++) {
		char name[64];
		if (n == 1)
			snprintf(name, sizeof(name), "%s", base);
		else
			snprintf(name, sizeof(name), "%s-%d", base, i);
		const char *ssh[] = { "ssh", name, "--", "true", NULL };
		VT_CHECK(fleetbox(bin, root, ssh) == 0, "fleetbox ssh %s failed", name);
	}
	double dt = vt_now() - t0;
	const char *rm[] = { "rm", "-f", base, NULL };
	VT_CHECK(fleetbox(bin, root, rm) == 0, "fleetbox rm %s failed", base);
	return dt;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--fleetbox-pdeath-exec") == 0)
		return vmm_pdeath_exec_main(argc, argv);
	int rounds = argc > 1 ? atoi(argv[1]) : 5;
	if (rounds < 1 || rounds > 50)
		rounds = 5;
	if (geteuid() != 0) {
		fprintf(stderr, "boot_bench needs root (network namespace, tap)\n");
		return 77;
	}
	struct vt_env env;
	vt_env_init(&env);
	vt_netns_setup();
	vt_tap_add("fbt2");
	struct vt_member m;
	vt_member_init(&env, &m, "bench-1", 2, NULL, NULL, 0);
	struct ssh_target t;
	vt_target(&env, &m, &t);
	t.connect_timeout_ms = 2000;
	uv_loop_t loop;
	VT_CHECK(uv_loop_init(&loop) == 0, "loop");
	double drv[50], raw[50];
	const char *mach = machine(&env.img);
	for (int i = 0; i < rounds; i++) {
		fresh_disk(&env, &m);
		drv[i] = run_driver(&loop, &env, &m, &t);
		printf("{\"round\":%d,\"mode\":\"driver\",\"machine\":\"%s\",\"boot_to_ssh_s\":%.3f}\n", i,
		       mach, drv[i]);
		fresh_disk(&env, &m);
		raw[i] = run_raw(&env, &m, &t);
		printf("{\"round\":%d,\"mode\":\"raw\",\"machine\":\"%s\",\"boot_to_ssh_s\":%.3f}\n", i,
		       mach, raw[i]);
		fflush(stdout);
	}
	double md = median(drv, rounds), mr = median(raw, rounds);
	printf("{\"summary\":true,\"rounds\":%d,\"machine\":\"%s\",\"driver_median_s\":%.3f,"
	       "\"raw_median_s\":%.3f,\"ratio\":%.3f}\n", rounds, mach, md, mr, md / mr);
	const char *bin = argc > 2 ? argv[2] : getenv("FLEETBOX_BIN");
	if (bin && *bin) {
		double cli[50], tri[50];
		for (int i = 0; i < rounds; i++) {
			char base[32];
			snprintf(base, sizeof(base), "cli%d", i);
			cli[i] = run_cli(bin, env.root, base, 1);
			printf("{\"round\":%d,\"mode\":\"fleetbox-up\",\"members\":1,\"up_to_ssh_s\":%.3f}\n",
			       i, cli[i]);
			fflush(stdout);
		}
		int tri_rounds = rounds < 3 ? rounds : 3;
		for (int i = 0; i < tri_rounds; i++) {
			char base[32];
			snprintf(base, sizeof(base), "tri%d", i);
			tri[i] = run_cli(bin, env.root, base, 3);
			printf("{\"round\":%d,\"mode\":\"fleetbox-up\",\"members\":3,\"up_to_ssh_s\":%.3f}\n",
			       i, tri[i]);
			fflush(stdout);
		}
		double mc = median(cli, rounds), mt = median(tri, tri_rounds);
		printf("{\"summary\":true,\"mode\":\"fleetbox-up\",\"up_median_s\":%.3f,"
		       "\"raw_median_s\":%.3f,\"ratio\":%.3f,\"up_3_members_median_s\":%.3f,"
		       "\"ratio_3_members_vs_raw_1\":%.3f}\n", mc, mr, mc / mr, mt, mt / mr);
	}
	VT_CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0, "loop busy");
	VT_CHECK(uv_loop_close(&loop) == 0, "handles leaked");
	vt_env_fini(&env);
	return 0;
}
