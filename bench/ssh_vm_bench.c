/* ssh_vm_bench.c - SSH costs against one real VM booted by the fleetbox CLI
 * (issue 5): fleetbox vs OpenSSH on the same warm VM, in the same run.
 *
 *   ssh_vm_bench FLEETBOX [ROUNDS=20] [MIB=64] [COPY_ROUNDS=2]   (0: exec only)
 *
 * Needs root. Works in a private store /tmp/fbvmbench-XXXXXX (FLEETBOX_HOME)
 * and, for everything that touches the VM, a private network namespace it
 * creates itself (lo up); nothing is sent to the host's interfaces. The mini
 * image is built before entering the namespace (building it downloads the
 * kernel package with apt). FLEETBOX_IMAGE_CACHE=<dir>: the image cache to
 * use (FLEETBOX_CACHE), so repeated runs skip the build; else the user's.
 *
 * Measures, after one warm-up command:
 *  - exec_rt: `true` round trips, ROUNDS each: fb_exec (holder status RPC + new
 *    SSH connection + the exec wrapper; no session reuse), ssh_exec on an
 *    already resolved target (the SSH part alone), and `ssh -F <fleetbox
 *    ssh-config> bench true`; as root: fb_exec_ex .root vs `ssh ... sudo -n true`;
 *  - exec_async: 20 concurrent fb_exec_async `true` (through the guest sshd's
 *    limit on unauthenticated connections), and a cancel;
 *  - copy_in / copy_out of a MIB MiB pseudo-random file: fb_copy_to/fb_copy_from
 *    vs scp -F <config> (-O, the classic protocol, when the guest has scp; else
 *    scp's SFTP mode, the mini image ships sftp-server), with OpenSSH's default
 *    ciphers and with the ones libssh2 1.10 gets (aes128-ctr + hmac-sha2-256),
 *    every copy checked by sha256 on both ends;
 *  - copy_contract: a tree with a >100-char path, non-ASCII and quoted names,
 *    symlinks (relative, dangling, loops), an empty dir, a 0700 dir and a fifo
 *    goes in and back out; the guest's own listing (busybox find/stat) and the
 *    round trip are compared with the source.
 * Output: one JSON object per line on stdout; a human table on stderr.
 * Teardown: `fleetbox rm -f bench` and the private store are removed at exit,
 * also after a failed check. */
#include "fleetbox/uv.h"
#include "client/ssh/ssh.h"
#include "client/ssh/target.h"
#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"
#include "dropbear.h"
#include "t.h"
#include "tree.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MEMBER "bench"

static const char *fleetbox;
static char home[PATH_MAX];
static char cfg[PATH_MAX];
static pid_t owner;
static bool vm_up;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Runs argv (NULL-terminated); 0 or the failure with its output on stderr. */
static int run(char **out, const char *const *argv)
{
	struct cmd c;
	struct err e = { 0 };
	cmd_init(&c, argv[0]);
	for (int i = 1; argv[i]; i++)
		cmd_add(&c, argv[i]);
	int r = cmd_run(&c, out, &e);
	if (r < 0)
		fprintf(stderr, "%s: %s\n", argv[0], e.msg);
	cmd_fini(&c);
	return r;
}

#define RUN(out, ...) run((out), (const char *const[]){ __VA_ARGS__, NULL })

static void teardown(void)
{
	if (getpid() != owner)
		return;
	if (vm_up && RUN(NULL, fleetbox, "rm", "-f", MEMBER) < 0)
		fprintf(stderr, "teardown: fleetbox rm -f %s failed\n", MEMBER);
	vm_up = false;
	if (home[0])
		rm_rf(home);
	home[0] = '\0';
}

/* The mini image in the image cache (FLEETBOX_IMAGE_CACHE=<dir> names one,
 * so repeated runs share it; else the user's), prepared in the host
 * namespace: building it downloads the kernel package with apt. A fresh
 * store then uses it from the cache. */
static void prepare_image(void)
{
	const char *cache = getenv("FLEETBOX_IMAGE_CACHE");
	if (cache && *cache)
		setenv("FLEETBOX_CACHE", cache, 1);
	double t0 = now_ms();
	CHECK(RUN(NULL, fleetbox, "image", "prepare", "mini") == 0);
	printf("{\"bench\":\"ssh_vm\",\"op\":\"image_prepare\",\"ms\":%.0f}\n", now_ms() - t0);
}

/* ---- statistics ---- */

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct stats {
	double median, p90, mean, min;
};

static struct stats stats_of(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	struct stats s = { 0 };
	for (int i = 0; i < n; i++)
		s.mean += v[i] / n;
	s.min = v[0];
	s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	int k = (9 * n + 9) / 10 - 1; /* nearest rank */
	s.p90 = v[k < 0 ? 0 : k];
	return s;
}

static void print_rt(const char *impl, int n, struct stats s)
{
	printf("{\"bench\":\"ssh_vm\",\"op\":\"exec_rt\",\"impl\":\"%s\",\"rounds\":%d,"
	       "\"median_ms\":%.2f,\"p90_ms\":%.2f,\"mean_ms\":%.2f,\"min_ms\":%.2f}\n",
	       impl, n, s.median, s.p90, s.mean, s.min);
	fprintf(stderr, "  exec_rt %-22s median %8.1f ms  p90 %8.1f ms\n", impl, s.median, s.p90);
}

/* ---- the three kinds of round trip ---- */

static void rt_fb(void)
{
	fb_exec_result res;
	fb_error fe;
	int r = fb_exec(NULL, MEMBER, "true", &res, &fe);
	if (r < 0)
		fprintf(stderr, "fb_exec: %s\n", fe.message);
	CHECK(r == 0 && res.exit_status == 0);
	fb_exec_result_free(&res);
}

static struct ssh_target resolved;

static void rt_ssh_exec(void)
{
	struct ssh_result res;
	struct err e = { 0 };
	CHECK_OK(ssh_exec(&resolved, "true", &res, &e), &e);
	CHECK(res.st.exit_status == 0);
	ssh_result_fini(&res);
}

static void rt_openssh(void)
{
	CHECK(RUN(NULL, "ssh", "-F", cfg, "-o", "BatchMode=yes", MEMBER, "true") == 0);
}

/* as root: fb_exec_ex's sudo -n sh -c wrapper vs OpenSSH running sudo itself */
static void rt_fb_root(void)
{
	fb_exec_result res;
	fb_error fe;
	int r = fb_exec_ex(NULL, MEMBER, &(fb_exec_opts){ .command = "true", .root = 1 }, &res, &fe);
	if (r < 0)
		fprintf(stderr, "fb_exec_ex: %s\n", fe.message);
	CHECK(r == 0 && res.exit_status == 0);
	fb_exec_result_free(&res);
}

static void rt_openssh_root(void)
{
	CHECK(RUN(NULL, "ssh", "-F", cfg, "-o", "BatchMode=yes", MEMBER, "sudo -n true") == 0);
}

/* Interleaved (one of each per round) so load from neighbours hits all alike. */
static void measure_rt(int rounds)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} impls[] = {
		{ "fleetbox-fb_exec", rt_fb },
		{ "fleetbox-ssh_exec", rt_ssh_exec },
		{ "openssh-ssh", rt_openssh },
		{ "fleetbox-fb_exec_ex-root", rt_fb_root },
		{ "openssh-ssh-sudo", rt_openssh_root },
	};
	enum { N = sizeof(impls) / sizeof(impls[0]) };
	double *v[N];
	for (int k = 0; k < N; k++) {
		v[k] = calloc((size_t)rounds, sizeof(double));
		CHECK(v[k]);
	}
	for (int i = 0; i < rounds; i++)
		for (int k = 0; k < N; k++) {
			double t0 = now_ms();
			impls[k].fn();
			v[k][i] = now_ms() - t0;
		}
	for (int k = 0; k < N; k++) {
		print_rt(impls[k].name, rounds, stats_of(v[k], rounds));
		free(v[k]);
	}
}

/* ---- async: concurrent commands on one loop, and a cancel ---- */

struct acall {
	int calls, status, exit_status;
	double done_ms;
};

static void on_async(void *data, int status, fb_exec_result *res, const fb_error *err)
{
	struct acall *a = data;
	a->calls++;
	a->status = status;
	a->exit_status = res->exit_status;
	a->done_ms = now_ms();
	if (status < 0 && status != -ECANCELED)
		fprintf(stderr, "fb_exec_async: %s\n", err ? err->message : "?");
}

static void cancel_cb(uv_timer_t *t)
{
	fb_exec_cancel(t->data);
}

static void measure_async(int n)
{
	uv_loop_t loop;
	CHECK(uv_loop_init(&loop) == 0);
	struct acall *a = calloc((size_t)n + 1, sizeof(*a));
	CHECK(a);
	fb_error fe;
	double t0 = now_ms();
	for (int i = 0; i < n; i++)
		CHECK(fb_exec_async(&loop, NULL, MEMBER, "true", on_async, &a[i], NULL, &fe) == 0);
	CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
	double total = now_ms() - t0;
	for (int i = 0; i < n; i++)
		CHECK(a[i].calls == 1 && a[i].status == 0 && a[i].exit_status == 0);
	printf("{\"bench\":\"ssh_vm\",\"op\":\"exec_async\",\"impl\":\"fleetbox-fb_exec_async\","
	       "\"concurrent\":%d,\"total_ms\":%.1f}\n", n, total);
	fprintf(stderr, "  exec_async %d concurrent `true`: %.1f ms in all\n", n, total);

	/* a long command cancelled 1 s in: -ECANCELED, at once */
	struct acall *c = &a[n];
	fb_exec_op *op = NULL;
	uv_timer_t timer;
	CHECK(fb_exec_async(&loop, NULL, MEMBER, "sleep 60", on_async, c, &op, &fe) == 0);
	CHECK(uv_timer_init(&loop, &timer) == 0);
	timer.data = op;
	CHECK(uv_timer_start(&timer, cancel_cb, 1000, 0) == 0);
	t0 = now_ms();
	while (c->calls == 0 && uv_run(&loop, UV_RUN_ONCE))
		;
	uv_close((uv_handle_t *)&timer, NULL);
	CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
	CHECK(uv_loop_close(&loop) == 0);
	CHECK(c->calls == 1 && c->status == -ECANCELED);
	printf("{\"bench\":\"ssh_vm\",\"op\":\"exec_async_cancel\",\"ok\":true,"
	       "\"cancel_to_callback_ms\":%.1f}\n", c->done_ms - t0 - 1000);
	free(a);
}

/* ---- copies ---- */

/* Guest-side command output (exit 0 required), trailing newline removed. */
static char *guest(const char *cmd)
{
	fb_exec_result res;
	fb_error fe;
	int r = fb_exec(NULL, MEMBER, cmd, &res, &fe);
	if (r < 0 || res.exit_status != 0)
		fprintf(stderr, "guest `%s`: %s%s\n", cmd, r < 0 ? fe.message : "",
			r < 0 ? "" : res.combined);
	CHECK(r == 0 && res.exit_status == 0);
	char *s = res.out;
	res.out = NULL;
	fb_exec_result_free(&res);
	size_t n = strlen(s);
	while (n && s[n - 1] == '\n')
		s[--n] = '\0';
	return s;
}

static void sha_host(const char *path, char out[65])
{
	char *o = NULL;
	CHECK(RUN(&o, "sha256sum", path) == 0);
	CHECK(o && strlen(o) >= 64);
	snprintf(out, 65, "%.64s", o);
	free(o);
}

static void sha_guest(const char *path, char out[65])
{
	char cmd[PATH_MAX + 32];
	FMT(cmd, "sha256sum '%s'", path);
	char *o = guest(cmd);
	CHECK(strlen(o) >= 64);
	snprintf(out, 65, "%.64s", o);
	free(o);
}

static void make_file(const char *path, int mib)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	uint8_t *buf = malloc(1 << 20);
	CHECK(buf);
	uint32_t x = 2463534242u;
	for (int m = 0; m < mib; m++) {
		for (int i = 0; i < (1 << 20); i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			buf[i] = (uint8_t)x;
		}
		CHECK(write(fd, buf, 1 << 20) == 1 << 20);
	}
	free(buf);
	CHECK(close(fd) == 0);
}

static void print_copy(const char *op, const char *impl, int mib, double *ms, int n)
{
	struct stats s = stats_of(ms, n);
	printf("{\"bench\":\"ssh_vm\",\"op\":\"%s\",\"impl\":\"%s\",\"mib\":%d,\"rounds\":%d,"
	       "\"median_s\":%.3f,\"min_s\":%.3f,\"mib_per_s\":%.2f}\n",
	       op, impl, mib, n, s.median / 1e3, s.min / 1e3, mib / (s.median / 1e3));
	fprintf(stderr, "  %-8s %-22s median %8.2f s   %7.2f MiB/s\n", op, impl, s.median / 1e3,
		mib / (s.median / 1e3));
}

/* One way of copying a file in or out. scp variants: the default ciphers
 * (OpenSSH picks chacha20-poly1305 with dropbear), and the pair libssh2 1.10
 * negotiates (aes128-ctr + hmac-sha2-256), to tell protocol from crypto cost. */
struct copier {
	const char *name;
	const char *scp_flag;  /* NULL: fleetbox */
	const char *ciphers;   /* NULL: OpenSSH's default */
	bool cli;              /* fleetbox through the CLI (`fleetbox cp`) */
	double *in, *out;
};

static double copy_once(const struct copier *c, const char *from, const char *to, bool in)
{
	fb_error fe;
	double t0 = now_ms();
	if (c->cli) {
		char spec[PATH_MAX + 16];
		FMT(spec, "%s:%s", MEMBER, in ? to : from);
		CHECK(RUN(NULL, fleetbox, "cp", in ? from : spec, in ? spec : to) == 0);
	} else if (!c->scp_flag) {
		int r = in ? fb_copy_to(NULL, MEMBER, from, to, &fe)
			   : fb_copy_from(NULL, MEMBER, from, to, &fe);
		if (r < 0)
			fprintf(stderr, "fb_copy_%s: %s\n", in ? "to" : "from", fe.message);
		CHECK(r == 0);
	} else if (c->ciphers) {
		CHECK(RUN(NULL, "scp", c->scp_flag, "-q", "-F", cfg, "-o", "BatchMode=yes", "-o",
			  c->ciphers, "-o", "MACs=hmac-sha2-256", from, to) == 0);
	} else {
		CHECK(RUN(NULL, "scp", c->scp_flag, "-q", "-F", cfg, "-o", "BatchMode=yes", from,
			  to) == 0);
	}
	return now_ms() - t0;
}

/* scp_mode: "classic" (scp -O; the guest has scp), "sftp" (scp -s), or NULL
 * (neither: only fleetbox is measured). Rounds interleave the copiers so a
 * noisy neighbour hits all of them alike. */
static void measure_copies(int mib, int rounds, const char *scp_mode)
{
	char src[PATH_MAX], back[PATH_MAX], want[65], got[65];
	const char *gpath = "/tmp/fbbench.bin";
	char spec[64], n1[48], n2[48];
	FMT(src, "%s/big.bin", home);
	FMT(back, "%s/back.bin", home);
	FMT(spec, "%s:%s", MEMBER, gpath);
	make_file(src, mib);
	sha_host(src, want);
	const char *flag = scp_mode && !strcmp(scp_mode, "classic") ? "-O" : "-s";
	FMT(n1, "openssh-scp-%s", scp_mode ? scp_mode : "none");
	FMT(n2, "openssh-scp-%s-aes128ctr", scp_mode ? scp_mode : "none");
	struct copier cs[] = {
		{ "fleetbox", NULL, NULL, false, NULL, NULL },
		{ "fleetbox-cli", NULL, NULL, true, NULL, NULL },
		{ n1, flag, NULL, false, NULL, NULL },
		{ n2, flag, "Ciphers=aes128-ctr", false, NULL, NULL },
	};
	size_t nc = scp_mode ? 4 : 2;
	for (size_t k = 0; k < nc; k++) {
		cs[k].in = calloc((size_t)rounds, sizeof(double));
		cs[k].out = calloc((size_t)rounds, sizeof(double));
		CHECK(cs[k].in && cs[k].out);
	}
	for (int i = 0; i < rounds; i++) {
		for (size_t k = 0; k < nc; k++) {
			bool fb = !cs[k].scp_flag; /* fleetbox takes a guest path */
			free(guest("rm -f /tmp/fbbench.bin"));
			unlink(back);
			cs[k].in[i] = copy_once(&cs[k], src, fb ? gpath : spec, true);
			sha_guest(gpath, got);
			CHECK_STREQ(got, want);
			cs[k].out[i] = copy_once(&cs[k], fb ? gpath : spec, back, false);
			sha_host(back, got);
			CHECK_STREQ(got, want);
		}
	}
	free(guest("rm -f /tmp/fbbench.bin"));
	for (size_t k = 0; k < nc; k++)
		print_copy("copy_in", cs[k].name, mib, cs[k].in, rounds);
	for (size_t k = 0; k < nc; k++)
		print_copy("copy_out", cs[k].name, mib, cs[k].out, rounds);
	for (size_t k = 0; k < nc; k++) {
		free(cs[k].in);
		free(cs[k].out);
	}
	unlink(src);
	unlink(back);
}

/* ---- the guest copy contract ---- */

/* One line per entry, sorted bytewise: path|type|mode[|size|sha prefix] or
 * path|l|target. Directory sizes are left out (file-system specific). Runs
 * the same on the host (GNU tools) and the guest (busybox). */
static const char LISTING[] =
	"cd \"$1\" && find . | LC_ALL=C sort | while IFS= read -r f; do "
	"if [ -L \"$f\" ]; then printf '%s|l|%s\\n' \"$f\" \"$(readlink \"$f\")\"; "
	"elif [ -d \"$f\" ]; then printf '%s|d|%s\\n' \"$f\" \"$(stat -c %a \"$f\")\"; "
	"elif [ -p \"$f\" ]; then printf '%s|p|%s\\n' \"$f\" \"$(stat -c %a \"$f\")\"; "
	"else printf '%s|f|%s|%s|%s\\n' \"$f\" \"$(stat -c %a \"$f\")\" \"$(stat -c %s \"$f\")\" "
	"\"$(sha256sum < \"$f\" | cut -c1-16)\"; fi; done";

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void contract_result(const char *check, bool ok, const char *detail)
{
	printf("{\"bench\":\"ssh_vm\",\"op\":\"copy_contract\",\"check\":\"%s\",\"ok\":%s,"
	       "\"detail\":", check, ok ? "true" : "false");
	json_str(stdout, detail ? detail : "");
	printf("}\n");
	fflush(stdout);
	fprintf(stderr, "  contract %-28s %s%s%s\n", check, ok ? "ok" : "FAILED", detail && *detail ? ": " : "",
		detail ? detail : "");
}

/* Compares the guest's listing of gdir with the host's of hdir. */
static void compare_listing(const char *check, const char *hdir, const char *gdir)
{
	char *hl = NULL;
	CHECK(RUN(&hl, "env", "LC_ALL=C", "sh", "-c", LISTING, "sh", hdir) == 0);
	char *q1 = ssh_quote(LISTING), *q2 = ssh_quote(gdir);
	CHECK(q1 && q2);
	size_t n = strlen(q1) + strlen(q2) + 32;
	char *cmd = malloc(n);
	CHECK(cmd);
	CHECK(snprintf(cmd, n, "sh -c %s sh %s", q1, q2) < (int)n);
	fb_exec_result res;
	fb_error fe;
	int r = fb_exec(NULL, MEMBER, cmd, &res, &fe);
	free(cmd);
	free(q1);
	free(q2);
	if (r < 0) {
		contract_result(check, false, fe.message);
		free(hl);
		return;
	}
	if (res.exit_status != 0 || strcmp(res.out, hl) != 0) {
		char a[PATH_MAX], b[PATH_MAX];
		FMT(a, "%s/listing.host", home);
		FMT(b, "%s/listing.guest", home);
		CHECK(file_write_atomic(a, hl, strlen(hl), 0644) == 0);
		CHECK(file_write_atomic(b, res.out, res.out_len, 0644) == 0);
		char *d = NULL;
		RUN(&d, "diff", a, b); /* exit 1 when they differ: the output is what we want */
		char detail[4096];
		FMT(detail, "exit %d; diff host guest:\n%s%s", res.exit_status, d ? d : "", res.err);
		contract_result(check, false, detail);
		free(d);
	} else {
		contract_result(check, true, NULL);
	}
	fb_exec_result_free(&res);
	free(hl);
}

/* tree_compare exits the process on a mismatch: run it in a child. */
static void compare_roundtrip(const char *check, const char *a, const char *b)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		tree_compare(a, b);
		_exit(0);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	contract_result(check, ok, ok ? NULL : "tree_compare reported the difference above");
}

static void copy_contract(void)
{
	char src[PATH_MAX], back[PATH_MAX], backtree[PATH_MAX];
	FMT(src, "%s/ctree", home);
	FMT(back, "%s/cback", home);
	FMT(backtree, "%s/cback/fbct", home);
	tree_make(src);
	fb_error fe;
	free(guest("rm -rf /tmp/fbct"));
	int r = fb_copy_to(NULL, MEMBER, src, "/tmp/fbct", &fe);
	contract_result("cp_in", r == 0, r < 0 ? fe.message : NULL);
	if (r == 0)
		compare_listing("guest_listing_after_cp_in", src, "/tmp/fbct");
	CHECK(mkdir(back, 0755) == 0);
	r = r == 0 ? fb_copy_from(NULL, MEMBER, "/tmp/fbct", back, &fe) : r;
	contract_result("cp_out", r == 0, r < 0 ? fe.message : NULL);
	if (r == 0)
		compare_roundtrip("roundtrip_tree_compare", src, backtree);
	char *u = guest("id -un; umask");
	for (char *p = u; *p; p++)
		if (*p == '\n')
			*p = ' ';
	contract_result("guest_user_umask", true, u);
	free(u);
	free(guest("rm -rf /tmp/fbct"));
}

/* ---- main ---- */

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: ssh_vm_bench FLEETBOX [ROUNDS] [MIB] [COPY_ROUNDS]\n");
		return 2;
	}
	fleetbox = argv[1];
	int rounds = argc > 2 ? atoi(argv[2]) : 20;
	int mib = argc > 3 ? atoi(argv[3]) : 64;
	int copy_rounds = argc > 4 ? atoi(argv[4]) : 2;
	CHECK(rounds > 0 && mib > 0 && copy_rounds >= 0); /* 0 copy rounds: exec only */
	if (geteuid() != 0) {
		fprintf(stderr, "skip: needs root (network namespace, taps)\n");
		return TEST_SKIP;
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	owner = getpid();
	FMT(home, "/tmp/fbvmbench-XXXXXX");
	CHECK(mkdtemp(home) != NULL);
	atexit(teardown);
	setenv("FLEETBOX_HOME", home, 1);
	unsetenv("FLEETBOX_VMM"); /* auto: QEMU */
	unsetenv("FLEETBOX_NET"); /* QEMU implies the bridge network */
	prepare_image();

	if (tdb_private_netns() < 0) {
		fprintf(stderr, "skip: no private network namespace: %s\n", strerror(errno));
		return TEST_SKIP;
	}

	double t0 = now_ms();
	vm_up = true; /* from here on, teardown removes it (also a half-made one) */
	CHECK(RUN(NULL, fleetbox, "up", MEMBER) == 0);
	printf("{\"bench\":\"ssh_vm\",\"op\":\"up\",\"ms\":%.0f}\n", now_ms() - t0);

	char *conf = NULL;
	CHECK(RUN(&conf, fleetbox, "ssh-config") == 0 && conf);
	FMT(cfg, "%s/ssh_config", home);
	CHECK(file_write_atomic(cfg, conf, strlen(conf), 0600) == 0);
	free(conf);
	struct err e = { 0 };
	CHECK_OK(target_resolve(home, MEMBER, &resolved, &e), &e);

	char *uname = guest("uname -r; nproc");
	for (char *p = uname; *p; p++)
		if (*p == '\n')
			*p = ' ';
	printf("{\"bench\":\"ssh_vm\",\"op\":\"guest\",\"uname_r_nproc\":\"%s\",\"ip\":\"%s\"}\n",
	       uname, resolved.host);
	free(uname);

	/* warm-up: one of each, not measured */
	rt_fb();
	rt_ssh_exec();
	rt_openssh();
	fprintf(stderr, "ssh_vm_bench: %d round trips each, %d MiB x %d copies\n", rounds, mib,
		copy_rounds);
	measure_rt(rounds);

	measure_async(20); /* past dropbear's 5 unauthenticated connections per source */
	if (copy_rounds == 0) {
		teardown();
		return 0;
	}

	char *scp = guest("command -v scp || true");
	char *sftp = guest("ls /usr/lib/sftp-server 2>/dev/null || true");
	const char *mode = *scp ? "classic" : *sftp ? "sftp" : NULL;
	free(scp);
	free(sftp);
	measure_copies(mib, copy_rounds, mode);
	copy_contract();
	teardown();
	return 0;
}
