/* distro_bench.c - the Debian image (debian-12-local, `fleetbox image build
 * debian-12`) under QEMU TCG: boot to SSH and `down` through fleetbox, vs
 * raw QEMU booting the same image with the same kernel, initrd, command
 * line and seed renderer, in the same run and the same private network
 * namespace; the host RSS of each VM; and the mini image through fleetbox
 * beside it.
 *
 * Each round boots a fresh disk (a first boot: cloud-init, host keys).
 *   raw        qemu-system-x86_64 with the driver's own argv (qemu_argv_build),
 *              timed until port 22 answers with an SSH banner; down = QMP
 *              system_powerdown until QEMU exits.
 *   fleetbox   `fleetbox up NAME --image IMAGE --cpus 1 --mem 1` until it
 *              returns plus the first `fleetbox ssh NAME -- true` (up waits
 *              for what the product promises: SSH with the pinned key, and
 *              cloud-init done where the seed waits for it); down = `fleetbox
 *              down NAME`.
 * RSS: VmRSS of the qemu process right after boot.
 *
 * Usage (root): distro_bench FLEETBOX [ROUNDS=3]
 *   The image cache is FLEETBOX_CACHE, else the user's (where the distro
 *   suite keeps debian-12-local). Output: one JSON object per run, then
 *   one summary object per image. */
#include "../test/vm/vmtest.h"

#include "rpc/wire.h"
#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"
#include "util/accel.h"
#include "vmm/qemu_argv.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define IMAGE "debian-12-local"
#define BOOT_LIMIT_S 900.0
#define DOWN_LIMIT_S 120.0
#define GUEST_MIB 1024

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

/* VmRSS of pid in kB (0 if unreadable). */
static long rss_kb(pid_t pid)
{
	char p[64], *s = NULL;
	snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
	if (file_read_all(p, 1 << 16, &s, NULL) < 0)
		return 0;
	char *r = strstr(s, "VmRSS:");
	long kb = r ? strtol(r + 6, NULL, 10) : 0;
	free(s);
	return kb;
}

/* ---- raw QEMU ---- */

/* One try: connect to ip:22 (2 s) and read a line starting "SSH-". The
 * banner may take seconds under TCG (OpenSSH re-executes sshd for every
 * connection): wait up to 20 s for it once connected. */
static bool banner_once(const char *ip)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(22) };
	inet_pton(AF_INET, ip, &sa.sin_addr);
	bool ok = false;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EINPROGRESS) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int err = -1;
		socklen_t len = sizeof(err);
		if (poll(&p, 1, 2000) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
		    err == 0) {
			char buf[64];
			p.events = POLLIN;
			if (poll(&p, 1, 20000) == 1 && (p.revents & POLLIN)) {
				ssize_t n = read(fd, buf, sizeof(buf));
				ok = n >= 4 && !memcmp(buf, "SSH-", 4);
			}
		}
	}
	close(fd);
	return ok;
}

static bool banner_until(const char *ip, double deadline, pid_t qemu)
{
	while (vt_now() < deadline) {
		if (banner_once(ip))
			return true;
		if (waitpid(qemu, NULL, WNOHANG) == qemu)
			return false;
		usleep(200 * 1000);
	}
	return false;
}

/* QMP: capabilities, then an ACPI power button press. */
static bool qmp_powerdown(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	static const char caps[] = "{\"execute\":\"qmp_capabilities\"}\n";
	static const char pd[] = "{\"execute\":\"system_powerdown\"}\n";
	char buf[4096];
	bool ok = read(fd, buf, sizeof(buf)) > 0 &&
		  write(fd, caps, sizeof(caps) - 1) == (ssize_t)sizeof(caps) - 1 &&
		  read(fd, buf, sizeof(buf)) > 0 &&
		  write(fd, pd, sizeof(pd) - 1) == (ssize_t)sizeof(pd) - 1;
	close(fd);
	return ok;
}

/* Waits for pid to exit (bounded); SIGKILL after limit. Returns seconds or -1. */
static double wait_exit(pid_t pid, double t0, double limit)
{
	while (vt_now() < t0 + limit) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return vt_now() - t0;
		usleep(50 * 1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static pid_t spawn_raw(const struct vt_env *env, const struct vt_member *m, const char *qmp)
{
	struct vmm_boot_spec spec;
	vt_spec(env, m, &spec);
	spec.memory_bytes = (uint64_t)GUEST_MIB << 20;
	enum vmm_accel accel;
	struct err e = { 0 };
	VT_CHECK(accel_select(&accel, &e) == 0, "%s", e.msg);
	struct qemu_opts o = { .binary = "qemu-system-x86_64", .accel = accel,
			       .machine = qemu_kernel_is_elf(env->img.kernel) ? "microvm" : "pc",
			       .tb_size_mb = 64, .qmp_path = qmp, .disk_format = "qcow2",
			       .tsc_khz = qemu_host_tsc_khz() };
	struct cmd c = { 0 };
	VT_CHECK(qemu_argv_build(&o, &spec, &c, &e) == 0, "%s", e.msg);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int r = posix_spawnp(&pid, cmd_argv(&c)[0], &fa, NULL, cmd_argv(&c), environ);
	posix_spawn_file_actions_destroy(&fa);
	cmd_fini(&c);
	VT_CHECK(r == 0, "spawn qemu: %s", strerror(r));
	return pid;
}

struct run {
	double boot_s, down_s;
	long rss_kb;
};

static struct run run_raw(struct vt_env *env, int round)
{
	struct vt_member m;
	char name[32], qmp[PATH_MAX + 16];
	snprintf(name, sizeof(name), "raw-%d", round);
	vt_member_init(env, &m, name, 2 + round, NULL, NULL, 0); /* fresh IP, MAC, tap */
	snprintf(qmp, sizeof(qmp), "%s/raw-qmp.sock", m.dir);
	unlink(qmp);
	struct run r = { 0 };
	double t0 = vt_now();
	pid_t pid = spawn_raw(env, &m, qmp);
	bool ok = banner_until(m.ip, t0 + BOOT_LIMIT_S, pid);
	r.boot_s = vt_now() - t0;
	r.rss_kb = rss_kb(pid);
	if (!ok) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		VT_CHECK(ok, "raw qemu: no SSH banner from %s within %.0f s (serial: %s)", m.ip,
			 BOOT_LIMIT_S, m.serial);
	}
	double d0 = vt_now();
	r.down_s = qmp_powerdown(qmp) ? wait_exit(pid, d0, DOWN_LIMIT_S) : wait_exit(pid, d0, 0);
	return r;
}

/* ---- fleetbox ---- */

static int fleetbox(const char *bin, const char *const *args)
{
	char *argv[16];
	int n = 0;
	argv[n++] = (char *)bin;
	for (; *args && n < 15; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int r = posix_spawn(&pid, bin, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	VT_CHECK(r == 0, "spawn %s: %s", bin, strerror(r));
	int st;
	while (waitpid(pid, &st, 0) < 0)
		VT_CHECK(errno == EINTR, "waitpid: %s", strerror(errno));
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The qemu process whose command line names needle (a member's disk). */
static pid_t qemu_of(const char *needle)
{
	DIR *d = opendir("/proc");
	pid_t found = 0;
	for (struct dirent *de; d && !found && (de = readdir(d));) {
		char p[300], *s = NULL;
		size_t n = 0;
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(p, sizeof(p), "/proc/%s/cmdline", de->d_name);
		if (file_read_all(p, 1 << 16, &s, &n) < 0)
			continue;
		for (size_t i = 0; i + 1 < n; i++)
			if (!s[i])
				s[i] = ' ';
		if (strstr(s, "qemu-system") && strstr(s, needle))
			found = (pid_t)atoi(de->d_name);
		free(s);
	}
	if (d)
		closedir(d);
	return found;
}

static struct run run_cli(const char *bin, const char *root, const char *image, int round)
{
	char name[32], dir[PATH_MAX];
	snprintf(name, sizeof(name), "%s-%d", strcmp(image, "mini") ? "deb" : "mini", round);
	struct run r = { 0 };
	double t0 = vt_now();
	const char *up[] = { "up", name, "--image", image, "--cpus", "1", "--mem", "1", NULL };
	VT_CHECK(fleetbox(bin, up) == 0, "fleetbox up %s failed", name);
	const char *ssh[] = { "ssh", name, "--", "true", NULL };
	VT_CHECK(fleetbox(bin, ssh) == 0, "fleetbox ssh %s failed", name);
	r.boot_s = vt_now() - t0;
	VT_CHECK(wire_member_dir(root, name, dir, sizeof(dir)) == 0, "member dir");
	r.rss_kb = rss_kb(qemu_of(dir));
	double d0 = vt_now();
	const char *down[] = { "down", name, NULL };
	VT_CHECK(fleetbox(bin, down) == 0, "fleetbox down %s failed", name);
	r.down_s = vt_now() - d0;
	const char *rm[] = { "rm", "-f", name, NULL };
	VT_CHECK(fleetbox(bin, rm) == 0, "fleetbox rm %s failed", name);
	return r;
}

/* ---- output ---- */

static void print_run(const char *image, const char *mode, int round, const struct run *r)
{
	printf("{\"image\":\"%s\",\"mode\":\"%s\",\"round\":%d,\"boot_to_ssh_s\":%.3f,"
	       "\"down_s\":%.3f,\"rss_kb\":%ld}\n", image, mode, round, r->boot_s, r->down_s,
	       r->rss_kb);
	fflush(stdout);
}

struct medians {
	double boot, down, rss_mb;
};

static struct medians summarize(const struct run *v, int n)
{
	double b[16], d[16], m[16];
	for (int i = 0; i < n; i++) {
		b[i] = v[i].boot_s;
		d[i] = v[i].down_s;
		m[i] = v[i].rss_kb / 1024.0;
	}
	return (struct medians){ median(b, n), median(d, n), median(m, n) };
}

static void print_summary(const char *image, const char *mode, int n, struct medians s,
			  const struct medians *base)
{
	printf("{\"summary\":true,\"image\":\"%s\",\"mode\":\"%s\",\"rounds\":%d,"
	       "\"boot_median_s\":%.3f,\"down_median_s\":%.3f,\"rss_median_mb\":%.1f", image, mode,
	       n, s.boot, s.down, s.rss_mb);
	if (base)
		printf(",\"boot_ratio_vs_raw\":%.3f,\"down_ratio_vs_raw\":%.3f", s.boot / base->boot,
		       base->down > 0 ? s.down / base->down : 0.0);
	printf("}\n");
	fflush(stdout);
}

static void use_user_cache(void)
{
	if (getenv("FLEETBOX_CACHE"))
		return;
	char dir[PATH_MAX];
	VT_CHECK(wire_cache_root(dir, sizeof(dir)) == 0, "no cache dir");
	setenv("FLEETBOX_CACHE", dir, 1);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--fleetbox-pdeath-exec") == 0)
		return vmm_pdeath_exec_main(argc, argv);
	if (argc < 2) {
		fprintf(stderr, "usage: distro_bench FLEETBOX [ROUNDS]\n");
		return 2;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "distro_bench needs root (network namespace, tap)\n");
		return 77;
	}
	const char *bin = argv[1];
	int rounds = argc > 2 ? atoi(argv[2]) : 3;
	if (rounds < 1 || rounds > 16)
		rounds = 3;
	use_user_cache();
	/* A benchmark times boots; it does not test the default boot timeout. */
	setenv("FLEETBOX_IP_WAIT_TIMEOUT", "15m", 0);
	struct vt_env env;
	vt_env_init(&env);
	struct image_info mini = env.img;
	struct err e = { 0 };
	double t0 = vt_now();
	VT_CHECK(image_resolve(env.root, IMAGE, NULL, NULL, &env.img, &e) == 0, "%s", e.msg);
	fprintf(stderr, "%s ready in %.1f s\n", IMAGE, vt_now() - t0);
	vt_netns_setup();
	for (int i = 0; i < rounds; i++) {
		char tap[16];
		snprintf(tap, sizeof(tap), "fbt%d", 2 + i);
		vt_tap_add(tap);
	}
	struct run raw[16], cli[16], mcli[16];
	for (int i = 0; i < rounds; i++) {
		raw[i] = run_raw(&env, i);
		print_run(IMAGE, "raw-qemu", i, &raw[i]);
		cli[i] = run_cli(bin, env.root, IMAGE, i);
		print_run(IMAGE, "fleetbox", i, &cli[i]);
	}
	for (int i = 0; i < rounds; i++) {
		mcli[i] = run_cli(bin, env.root, "mini", i);
		print_run("mini", "fleetbox", i, &mcli[i]);
	}
	struct medians sr = summarize(raw, rounds);
	print_summary(IMAGE, "raw-qemu", rounds, sr, NULL);
	print_summary(IMAGE, "fleetbox", rounds, summarize(cli, rounds), &sr);
	print_summary("mini", "fleetbox", rounds, summarize(mcli, rounds), NULL);
	env.img = mini;
	vt_env_fini(&env);
	return 0;
}
