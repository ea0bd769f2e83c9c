/* Chaos: bounded kill and concurrency storms against the real binary, the
 * fake VMM over real bridges, taps and nftables, each case in its own
 * network namespace and store. After every round the leftovers are counted
 * (processes, sockets, pidfiles, links, nftables tables, crash records,
 * temporaries) and any leftover fails the case. Usage: chaos <case>.
 * CHAOS_SEED fixes the random timings (printed at the start); CHAOS_ROUNDS
 * scales the round counts (default 1 = 100/50/20). */
#include "../integration/harness.h"
#include "fleetbox.h"
#include "rpc/wire.h"
#include "util/fileio.h"
#include "util/proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct h_leftovers total;
static int rounds_done;

static void account(const char *what, int round, struct h_leftovers c)
{
	int any = c.procs + c.socks + c.pidfiles + c.links + c.tables + c.records + c.tmps;
	total.procs += c.procs;
	total.socks += c.socks;
	total.pidfiles += c.pidfiles;
	total.links += c.links;
	total.tables += c.tables;
	total.records += c.records;
	total.tmps += c.tmps;
	rounds_done++;
	if (any) {
		fprintf(stderr, "%s round %d leftovers: processes %d, sockets %d, pidfiles %d, "
			"links %d, tables %d, records %d, temporaries %d\n", what, round, c.procs,
			c.socks, c.pidfiles, c.links, c.tables, c.records, c.tmps);
		h_show_leftovers();
		char *out = NULL;
		h_run(&out, "ls", NULL);
		free(out);
		CHECK(0);
	}
}

static void summary(const char *what, long t0, const char *extra)
{
	printf("chaos %s: %d rounds in %.1f s, leftovers: processes %d, sockets %d, pidfiles %d, "
	       "links %d, tables %d, records %d, temporaries %d%s%s\n", what, rounds_done,
	       (double)(h_now_ms() - t0) / 1000.0, total.procs, total.socks, total.pidfiles,
	       total.links, total.tables, total.records, total.tmps, extra[0] ? "; " : "", extra);
}

static unsigned seed;

static int rnd(int n)
{
	return n > 0 ? rand_r(&seed) % n : 0;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int scale(int n)
{
	const char *s = getenv("CHAOS_ROUNDS");
	double f = s && *s ? atof(s) : 1.0;
	int r = (int)(n * f);
	return r > 0 ? r : 1;
}

static void chaos_setup(const char *name)
{
	h_setup(name);
	h_enter_netns();
	const char *s = getenv("CHAOS_SEED");
	seed = s && *s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)time(NULL) ^ (unsigned)getpid();
	printf("chaos %s: CHAOS_SEED=%u\n", name, seed);
	setenv("FLEETBOX_HELPER", h_bin, 1);
}

static int prune(int *tmps)
{
	char *out = NULL;
	int rc = h_run(&out, "prune", NULL);
	int a, b, c, d = 0;
	if (out && sscanf(strstr(out, "pruned:") ? strstr(out, "pruned:") : "",
			  "pruned: %d network(s), %d tap(s), %d orphaned VMM process(es), %d stale",
			  &a, &b, &c, &d) == 4 && tmps)
		*tmps += d;
	free(out);
	return rc;
}

static void rm_cluster(const char *cluster)
{
	char p[400];
	snprintf(p, sizeof(p), "%s/clusters/%s", h_root, cluster);
	rm_rf(p);
}

static int wait_exit(pid_t pid)
{
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* --- 1. a bound client SIGKILLed at a random moment of its up --- */

static pid_t bound_up(const char *cluster)
{
	pid_t c = fork();
	CHECK(c >= 0);
	if (c)
		return c;
	alarm(60);
	int nul = open("/dev/null", O_WRONLY);
	dup2(nul, 1);
	dup2(nul, 2);
	char n1[64], n2[64];
	snprintf(n1, sizeof(n1), "%s-1", cluster);
	snprintf(n2, sizeof(n2), "%s-2", cluster);
	const char *names[] = { n1, n2 };
	fb_up_options o = { .names = names, .n_names = 2, .bound = 1, .image = h_image() };
	fb_cluster *cl;
	fb_error e;
	if (fb_up(&o, &cl, &e) < 0)
		_exit(3);
	pause();
	_exit(0);
}

/* Round i's cluster name, and a random fake boot time for it. */
static void round_start(const char *prefix, int i, char *cluster, size_t len)
{
	char boot[16];
	snprintf(cluster, len, "%s%d", prefix, i);
	snprintf(boot, sizeof(boot), "%d", rnd(100));
	setenv("FLEETBOX_FAKE_BOOT_MS", boot, 1);
}

static void t_client_kill(void)
{
	chaos_setup("client-kill");
	long t0 = h_now_ms();
	int n = scale(100), swept = 0;
	for (int i = 0; i < n; i++) {
		char cluster[32];
		round_start("k", i, cluster, sizeof(cluster));
		pid_t c = bound_up(cluster);
		sleep_ms(rnd(600));
		CHECK_INT(kill(c, SIGKILL), 0);
		wait_exit(c);
		/* the holder notices its client is gone and cleans up by itself */
		CHECK(h_wait_until(h_no_procs, NULL, 20000));
		struct h_leftovers lo = h_leftovers();
		lo.tmps = 0; /* a killed client's temporaries are prune's (next) */
		account("client-kill", i, lo);
		CHECK_INT(prune(&swept), 0);
		account("client-kill (after prune)", i, h_leftovers());
		rounds_done--; /* one round, two checks */
		rm_cluster(cluster);
	}
	unsetenv("FLEETBOX_FAKE_BOOT_MS");
	char extra[96];
	snprintf(extra, sizeof(extra), "prune swept %d stale file(s) of killed clients", swept);
	summary("client-kill", t0, extra);
	h_teardown();
}

/* --- 2. the holder SIGKILLed at a random moment, then prune --- */

/* fleetbox argv... in the background, output discarded. */
static pid_t cli_bg(const char *const *argv)
{
	pid_t c = fork();
	CHECK(c >= 0);
	if (c)
		return c;
	int nul = open("/dev/null", O_WRONLY);
	dup2(nul, 1);
	dup2(nul, 2);
	const char *a[16] = { h_bin };
	for (int i = 0; argv[i] && i < 14; i++)
		a[i + 1] = argv[i];
	execv(h_bin, (char *const *)a);
	_exit(127);
}

static pid_t detached_up(const char *cluster)
{
	const char *argv[] = { "up", cluster, "-n", "2", "--image", h_image(), NULL };
	return cli_bg(argv);
}

static pid_t holder_of(const char *cluster)
{
	char who[80];
	snprintf(who, sizeof(who), " --fleetbox-runner %s-1,", cluster);
	const char *needles[] = { who, NULL };
	return h_find_process(needles, 0);
}

static void t_holder_kill(void)
{
	chaos_setup("holder-kill");
	long t0 = h_now_ms();
	int n = scale(50), swept = 0, killed = 0, slow_ups = 0;
	for (int i = 0; i < n; i++) {
		char cluster[32];
		round_start("h", i, cluster, sizeof(cluster));
		pid_t up = detached_up(cluster);
		sleep_ms(rnd(600));
		pid_t holder = 0;
		for (long d = h_now_ms() + 10000; !(holder = holder_of(cluster)) && h_now_ms() < d;)
			sleep_ms(2);
		CHECK(holder > 0);
		if (kill(holder, SIGKILL) == 0)
			killed++;
		long tk = h_now_ms();
		/* The up's own failure path is not under test here (it can take its
		 * dial timeout to notice): give it a moment, then kill it too. */
		int st;
		for (long d = h_now_ms() + 500; waitpid(up, &st, WNOHANG) == 0;) {
			if (h_now_ms() > d) {
				kill(up, SIGKILL);
				waitpid(up, &st, 0);
				slow_ups++;
				break;
			}
			sleep_ms(5);
		}
		long tu = h_now_ms();
		/* its VMMs die with it (PDEATHSIG); its network is prune's */
		CHECK(h_wait_until(h_no_procs, NULL, 20000));
		long tw = h_now_ms();
		CHECK_INT(prune(&swept), 0);
		if (getenv("CHAOS_VERBOSE"))
			printf("round %d: up exit %ld ms after kill, procs gone +%ld ms, prune %ld ms\n", i,
			       tu - tk, tw - tu, h_now_ms() - tw);
		account("holder-kill", i, h_leftovers());
		rm_cluster(cluster); /* nothing runs: the files are all that is left */
	}
	unsetenv("FLEETBOX_FAKE_BOOT_MS");
	char extra[160];
	snprintf(extra, sizeof(extra), "%d holders killed, prune swept %d stale file(s), %d ups "
		 "still failing after 500 ms killed too", killed, swept, slow_ups);
	summary("holder-kill", t0, extra);
	h_teardown();
}

/* --- 3. 8 concurrent ups of 8 clusters, then 8 concurrent rms --- */

static void t_concurrent(void)
{
	chaos_setup("concurrent");
	long t0 = h_now_ms();
	int n = scale(20), ups = 0;
	enum { K = 8 };
	for (int i = 0; i < n; i++) {
		pid_t p[K];
		char names[K][32];
		for (int k = 0; k < K; k++) {
			snprintf(names[k], sizeof(names[k]), "q%d", k);
			const char *argv[] = { "up", names[k], "--image", h_image(), NULL };
			p[k] = cli_bg(argv);
		}
		for (int k = 0; k < K; k++) {
			int rc = wait_exit(p[k]);
			if (rc != 0) {
				fprintf(stderr, "round %d: up %s failed (%d)\n", i, names[k], rc);
				CHECK(0);
			}
			ups++;
		}
		for (int k = 0; k < K; k++) {
			const char *argv[] = { "rm", "-f", names[k], NULL };
			p[k] = cli_bg(argv);
		}
		for (int k = 0; k < K; k++)
			CHECK_INT(wait_exit(p[k]), 0);
		/* rm waits for each holder; the teardown must leave nothing, no prune */
		CHECK(h_wait_until(h_no_procs, NULL, 20000));
		account("concurrent", i, h_leftovers());
	}
	char extra[64];
	snprintf(extra, sizeof(extra), "%d ups, 0 failed", ups);
	summary("concurrent", t0, extra);
	h_teardown();
}

static const struct h_case cases[] = {
	{ "chaos-client-kill", t_client_kill },
	{ "chaos-holder-kill", t_holder_kill },
	{ "chaos-concurrent", t_concurrent },
};

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
