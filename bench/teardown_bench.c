/* teardown_bench.c - time from SIGKILL of a test harness to nothing left of
 * its bound cluster, with the real QEMU mini VM against the fake VMM.
 *
 * Each round forks a harness that makes its own process group (as a test
 * runner's child does), runs fb_up of one bound, ephemeral member (the
 * testcontainers default) and sleeps. The bench then sends SIGKILL to that
 * whole group (`timeout -s KILL`, a CI cancel) and polls every millisecond
 * until each part of the cluster is gone, recording when it went:
 *   holder  the holder process (a zombie waiting for PID 1 counts as gone)
 *   vmm     every child process of the holder (QEMU, or the fake VMM)
 *   net     every link but lo in the bench's private namespace (bridge, tap)
 *   nft     every nftables table in it
 *   files   the member's sockets (run/), crash records (networks/) and,
 *           ephemeral, its directory with the disk
 * total is when the last of them went. A round that is not clean in time
 * (10 s) is reported as such and fails the run.
 *
 * Usage (root; it enters a private network namespace itself):
 *   teardown_bench FLEETBOX [ROUNDS] [fake|qemu|both] [group|pid]
 * ROUNDS defaults to 5 per VMM. "pid" sends the SIGKILL to the harness alone
 * instead of its whole process group (a holder that shares the group dies
 * with it and tears nothing down: those rounds are not clean; after one, the
 * bench runs `fleetbox prune` so the next round starts empty). The mini image is prepared (with the host's
 * network, for apt) before entering the namespace, in $FLEETBOX_CACHE.
 * Output: JSON lines, one per round, one summary (median/p90 of each part) per
 * VMM and, with both, the QEMU-vs-fake comparison of the same run. */
#include <fleetbox.h>

#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <net/if.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUNDS 200
#define MAX_VMM 8
#define DEADLINE_MS 10000.0

enum part { P_HOLDER, P_VMM, P_NET, P_NFT, P_FILES, P_TOTAL, N_PARTS };
static const char *const part_name[N_PARTS] = { "holder", "vmm", "net", "nft", "files", "total" };

struct round {
	pid_t harness, holder;
	pid_t vmm[MAX_VMM];
	int n_vmm;
	char cluster[16], member[32];
	double t[N_PARTS]; /* ms after the SIGKILL; < 0 while still there */
};

static char root[256];
static const char *fleetbox_bin;
static int kill_group = 1;
static struct nft_ctx *nft;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "teardown_bench: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

/* Reads field 3 (state) and field 4 (ppid) of /proc/PID/stat. */
static int proc_stat(pid_t pid, char *state, pid_t *ppid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* comm may hold spaces and parens */
	int pp;
	if (!p || sscanf(p + 1, " %c %d", state, &pp) != 2)
		return -EINVAL;
	*ppid = pp;
	return 0;
}

static int proc_gone(pid_t pid)
{
	char st;
	pid_t pp;
	return proc_stat(pid, &st, &pp) < 0 || st == 'Z' || st == 'X';
}

/* The holder's children: the VMM processes. */
static void find_vmms(struct round *r)
{
	DIR *d = opendir("/proc");
	if (!d)
		die("opendir /proc: %s", strerror(errno));
	for (struct dirent *de; (de = readdir(d)) && r->n_vmm < MAX_VMM;) {
		pid_t pid = (pid_t)atoi(de->d_name);
		char st;
		pid_t pp;
		if (pid > 0 && proc_stat(pid, &st, &pp) == 0 && pp == r->holder)
			r->vmm[r->n_vmm++] = pid;
	}
	closedir(d);
}

static int links_gone(void)
{
	struct if_nameindex *ifs = if_nameindex();
	if (!ifs)
		return 0;
	int others = 0;
	for (struct if_nameindex *i = ifs; i->if_index; i++)
		others += strcmp(i->if_name, "lo") != 0;
	if_freenameindex(ifs);
	return others == 0;
}

static int tables_gone(void)
{
	if (nft_run_cmd_from_buffer(nft, "list tables") != 0)
		return 0;
	const char *out = nft_ctx_get_output_buffer(nft);
	return !out || !*out;
}

/* No entry of dir (under the store) whose name ends in one of suffixes. */
static int dir_clean(const char *sub, const char *const *suffixes)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", root, sub);
	DIR *d = opendir(path);
	if (!d)
		return errno == ENOENT;
	int clean = 1;
	for (struct dirent *de; clean && (de = readdir(d));) {
		size_t n = strlen(de->d_name);
		for (const char *const *s = suffixes; *s; s++) {
			size_t k = strlen(*s);
			if (n >= k && strcmp(de->d_name + n - k, *s) == 0)
				clean = 0;
		}
	}
	closedir(d);
	return clean;
}

static int files_gone(const struct round *r)
{
	char dir[512];
	struct fb_member_info info;
	snprintf(dir, sizeof(dir), "clusters/%s/%s", r->cluster, r->member);
	return dir_clean("run", (const char *const[]){ ".sock", ".ctl", ".pid", NULL }) &&
	       dir_clean("networks", (const char *const[]){ ".json", NULL }) &&
	       dir_clean(dir, (const char *const[]){ "", NULL }) &&
	       fb_status(root, r->member, &info, NULL) == -ENOENT;
}

static int part_gone(const struct round *r, enum part p)
{
	switch (p) {
	case P_HOLDER:
		return proc_gone(r->holder);
	case P_VMM:
		for (int i = 0; i < r->n_vmm; i++)
			if (!proc_gone(r->vmm[i]))
				return 0;
		return 1;
	case P_NET:
		return links_gone();
	case P_NFT:
		return tables_gone();
	case P_FILES:
		return files_gone(r);
	default:
		return 0;
	}
}

/* The harness: its own process group, one bound ephemeral member, then it
 * reports the holder's pid and waits to be killed. */
static void harness(const char *member, int fd)
{
	setpgid(0, 0);
	const char *names[] = { member };
	fb_up_options o = { .root = root, .names = names, .n_names = 1, .bound = 1,
			    .ephemeral = 1 };
	fb_cluster *c;
	fb_error err;
	pid_t holder = 0;
	if (fb_up(&o, &c, &err) < 0)
		fprintf(stderr, "harness: fb_up %s: %s\n", member, err.message);
	else
		holder = fb_cluster_holder_pid(c);
	if (write(fd, &holder, sizeof(holder)) != sizeof(holder))
		_exit(1);
	for (;;)
		pause();
}

static int start_round(struct round *r, const char *vmm, int i)
{
	int p[2];
	memset(r, 0, sizeof(*r));
	snprintf(r->cluster, sizeof(r->cluster), "td%s", vmm);
	snprintf(r->member, sizeof(r->member), "td%s-%d", vmm, i + 1);
	if (pipe(p) < 0)
		die("pipe: %s", strerror(errno));
	setenv("FLEETBOX_VMM", vmm, 1);
	r->harness = fork();
	if (r->harness < 0)
		die("fork: %s", strerror(errno));
	if (r->harness == 0) {
		close(p[0]);
		harness(r->member, p[1]);
	}
	close(p[1]);
	ssize_t n = read(p[0], &r->holder, sizeof(r->holder));
	close(p[0]);
	if (n != sizeof(r->holder) || r->holder <= 0) {
		kill(-r->harness, SIGKILL);
		waitpid(r->harness, NULL, 0);
		return -1;
	}
	find_vmms(r);
	return 0;
}

/* SIGKILL to the harness's group, then poll until everything is gone. */
static int measure_round(struct round *r)
{
	for (int p = 0; p < N_PARTS; p++)
		r->t[p] = -1;
	double t0 = now_ms();
	if (kill(kill_group ? -r->harness : r->harness, SIGKILL) < 0)
		die("kill: %s", strerror(errno));
	waitpid(r->harness, NULL, 0); /* the harness itself is not part of it */
	int left = P_TOTAL;
	double t;
	while (left > 0 && (t = now_ms() - t0) < DEADLINE_MS) {
		for (int p = 0; p < P_TOTAL; p++)
			if (r->t[p] < 0 && part_gone(r, p)) {
				r->t[p] = t;
				left--;
			}
		if (left > 0)
			usleep(1000);
	}
	if (left > 0)
		return -1;
	r->t[P_TOTAL] = 0;
	for (int p = 0; p < P_TOTAL; p++)
		if (r->t[p] > r->t[P_TOTAL])
			r->t[P_TOTAL] = r->t[p];
	return 0;
}

static int run_prog(const char *const *argv)
{
	pid_t pid = fork();
	if (pid == 0) {
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* After an unclean round: kill what is left of it and reclaim the network. */
static void reclaim(const struct round *r)
{
	kill(r->holder, SIGKILL);
	for (int i = 0; i < r->n_vmm; i++)
		kill(r->vmm[i], SIGKILL);
	usleep(100 * 1000);
	run_prog((const char *const[]){ fleetbox_bin, "prune", NULL });
	run_prog((const char *const[]){ fleetbox_bin, "rm", "-f", "--all", NULL });
}

static void print_round(const char *vmm, int i, const struct round *r, int clean)
{
	printf("{\"bench\":\"teardown\",\"vmm\":\"%s\",\"kill\":\"%s\",\"round\":%d,"
	       "\"clean\":%s,\"vmm_processes\":%d",
	       vmm, kill_group ? "group" : "pid", i + 1, clean ? "true" : "false", r->n_vmm);
	for (int p = 0; p < N_PARTS; p++)
		printf(",\"%s_ms\":%.1f", part_name[p], r->t[p]);
	printf("}\n");
	fflush(stdout);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of n sorted values. */
static double pct(const double *v, int n, double q)
{
	int k = (int)(q * n + 0.999999);
	return v[k < 1 ? 0 : k > n ? n - 1 : k - 1];
}

struct summary {
	double median[N_PARTS], p90[N_PARTS];
};

static void summarize(const char *vmm, const struct round *rs, int n, struct summary *s)
{
	printf("{\"bench\":\"teardown\",\"vmm\":\"%s\",\"summary\":true,\"rounds\":%d", vmm, n);
	for (int p = 0; p < N_PARTS; p++) {
		double v[MAX_ROUNDS];
		for (int i = 0; i < n; i++)
			v[i] = rs[i].t[p];
		qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
		s->median[p] = pct(v, n, 0.5);
		s->p90[p] = pct(v, n, 0.9);
		printf(",\"%s_median_ms\":%.1f,\"%s_p90_ms\":%.1f,\"%s_max_ms\":%.1f", part_name[p],
		       s->median[p], part_name[p], s->p90[p], part_name[p], v[n - 1]);
	}
	printf("}\n");
	fflush(stdout);
}

/* ROUNDS rounds on one VMM; 0 when every round booted and came out clean. */
static int run_vmm(const char *vmm, int rounds, struct summary *s)
{
	static struct round rs[MAX_ROUNDS];
	int done = 0, bad = 0;
	for (int i = 0; i < rounds; i++) {
		if (start_round(&rs[done], vmm, i) < 0) {
			fprintf(stderr, "teardown_bench: %s round %d: no cluster\n", vmm, i + 1);
			bad++;
			continue;
		}
		int clean = measure_round(&rs[done]) == 0;
		print_round(vmm, i, &rs[done], clean);
		if (clean) {
			done++;
		} else {
			reclaim(&rs[done]);
			bad++;
		}
	}
	if (done > 0)
		summarize(vmm, rs, done, s);
	return bad || done == 0 ? -1 : 0;
}

static void prepare_image(void)
{
	if (run_prog((const char *const[]){ fleetbox_bin, "image", "prepare", "mini", NULL }) != 0)
		die("%s image prepare mini failed", fleetbox_bin);
}

static void enter_netns(void)
{
	if (unshare(CLONE_NEWNET) < 0)
		die("unshare(CLONE_NEWNET): %s", strerror(errno));
	if (run_prog((const char *const[]){ "ip", "link", "set", "lo", "up", NULL }) != 0)
		die("%s", "ip link set lo up failed");
	nft = nft_ctx_new(NFT_CTX_DEFAULT); /* after unshare: its netlink socket is in here */
	if (!nft || nft_ctx_buffer_output(nft) != 0 || nft_ctx_buffer_error(nft) != 0)
		die("%s", "nft_ctx_new failed");
	if (!links_gone() || !tables_gone())
		die("%s", "the new namespace is not empty");
}

int main(int argc, char **argv)
{
	if (geteuid() != 0) {
		printf("skipped: needs root (a private network namespace, bridges, taps)\n");
		return 77;
	}
	if (argc < 2)
		die("%s", "usage: teardown_bench FLEETBOX [ROUNDS] [fake|qemu|both] [group|pid]");
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	const char *which = argc > 3 ? argv[3] : "both";
	if (rounds < 1 || rounds > MAX_ROUNDS)
		die("%s", "ROUNDS: 1..200");
	if (strcmp(which, "both") && strcmp(which, "fake") && strcmp(which, "qemu"))
		die("unknown VMM \"%s\" (want fake, qemu or both)", which);
	if (argc > 4 && strcmp(argv[4], "group") && strcmp(argv[4], "pid"))
		die("unknown kill mode \"%s\" (want group or pid)", argv[4]);
	kill_group = argc <= 4 || strcmp(argv[4], "pid") != 0;
	static char bin[4096];
	if (!realpath(argv[1], bin))
		die("%s: not found", argv[1]);
	fleetbox_bin = bin;
	snprintf(root, sizeof(root), "/tmp/fb-teardown-XXXXXX");
	if (!mkdtemp(root))
		die("mkdtemp: %s", strerror(errno));
	setenv("FLEETBOX_HOME", root, 1);
	setenv("FLEETBOX_HELPER", fleetbox_bin, 1);
	setenv("FLEETBOX_NET", "bridge", 1); /* the fake VMM too: the same teardown */
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(which, "fake"))
		prepare_image();
	enter_netns();

	struct summary fake, qemu;
	int rc = 0;
	if (strcmp(which, "qemu"))
		rc |= run_vmm("fake", rounds, &fake);
	if (strcmp(which, "fake"))
		rc |= run_vmm("qemu", rounds, &qemu);
	if (rc == 0 && !strcmp(which, "both"))
		printf("{\"bench\":\"teardown\",\"compare\":\"qemu_vs_fake\","
		       "\"total_median_ms\":[%.1f,%.1f],\"total_p90_ms\":[%.1f,%.1f],"
		       "\"median_ratio\":%.1f}\n",
		       qemu.median[P_TOTAL], fake.median[P_TOTAL], qemu.p90[P_TOTAL],
		       fake.p90[P_TOTAL],
		       fake.median[P_TOTAL] > 0 ? qemu.median[P_TOTAL] / fake.median[P_TOTAL] : 0);
	nft_ctx_free(nft);
	run_prog((const char *const[]){ "rm", "-rf", root, NULL });
	return rc ? 1 : 0;
}
