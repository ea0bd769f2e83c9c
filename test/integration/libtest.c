/* libtest.c - libfleetbox as a test suite uses it: a runner killing the
 * harness's whole process group, argument hygiene of every public call,
 * unique names, waits (port, console, command), the console log, fb_up_async.
 * Usage: libtest <case>. */
#include "harness.h"
#include "fleetbox/uv.h"
#include "rpc/wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* --- kill -9 of the harness's process group --- */

#define PGKILL_ROUNDS 100 /* LIBTEST_ROUNDS=N for fewer, when bisecting */

/* A harness the way a runner starts it: the leader of its own process group,
 * a bound cluster of two, then waiting to be killed. Returns its pid and
 * reports its holder's. */
static pid_t group_harness(const char *cluster, pid_t *holder)
{
	char n1[64], n2[64];
	snprintf(n1, sizeof(n1), "%s-1", cluster);
	snprintf(n2, sizeof(n2), "%s-2", cluster);
	const char *names[] = { n1, n2 };
	struct h_bound b = { .o = { .names = names, .n_names = 2, .image = h_image() },
			     .own_group = true, .alarm_s = 60 };
	return h_bound_start(&b, holder);
}

static int leftover_sum(const struct h_leftovers *c)
{
	return c->procs + c->socks + c->pidfiles + c->links + c->tables + c->records;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

/* One round: up, kill -9 -PGID, wait (bounded) until nothing is left.
 * Returns ms from the kill to no process left. */
static long pgkill_round(int i, struct h_leftovers *total)
{
	char cluster[32];
	snprintf(cluster, sizeof(cluster), "pg%d", i);
	pid_t holder;
	pid_t child = group_harness(cluster, &holder);
	CHECK_INT(getpgid(child), child);
	CHECK(getpgid(holder) != child); /* the holder left the harness's group */
	long t0 = h_now_ms();
	CHECK_INT(kill(-child, SIGKILL), 0);
	int st;
	CHECK_INT(waitpid(child, &st, 0), child);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	CHECK(h_wait_until(h_no_procs, NULL, 20000));
	long ms = h_now_ms() - t0;
	struct h_leftovers c = h_leftovers();
	total->procs += c.procs;
	total->socks += c.socks;
	total->pidfiles += c.pidfiles;
	total->links += c.links;
	total->tables += c.tables;
	total->records += c.records;
	if (leftover_sum(&c)) {
		fprintf(stderr, "round %d: processes %d, sockets %d, pidfiles %d, links %d, "
			"tables %d, records %d\n", i, c.procs, c.socks, c.pidfiles, c.links,
			c.tables, c.records);
		h_show_leftovers();
	}
	const char *pat[] = { cluster };
	fb_error e;
	CHECK_INT(fb_rm(NULL, pat, 1, &e), 0);
	return ms;
}

static void t_pgkill(void)
{
	h_setup("pgkill");
	h_enter_netns();
	setenv("FLEETBOX_HELPER", h_bin, 1);
	struct h_leftovers total = { 0 };
	const char *env = getenv("LIBTEST_ROUNDS");
	int n = env && atoi(env) > 0 && atoi(env) < PGKILL_ROUNDS ? atoi(env) : PGKILL_ROUNDS;
	long ms[PGKILL_ROUNDS], t0 = h_now_ms();
	for (int i = 0; i < n; i++)
		ms[i] = pgkill_round(i, &total);
	qsort(ms, (size_t)n, sizeof(ms[0]), cmp_long);
	printf("pgkill: %d rounds in %.1f s; kill -9 -PGID to nothing left: median %ld ms, "
	       "p90 %ld ms, max %ld ms; leftovers: processes %d, sockets %d, pidfiles %d, "
	       "links %d, tables %d, records %d\n", n, (double)(h_now_ms() - t0) / 1000.0,
	       ms[n / 2], ms[n * 9 / 10], ms[n - 1], total.procs, total.socks,
	       total.pidfiles, total.links, total.tables, total.records);
	CHECK_INT(leftover_sum(&total), 0);
	h_teardown();
}

/* --- argument hygiene: every public call, NULL and invalid arguments --- */

static fb_cluster *live; /* a cluster for the calls that take one */
static uv_loop_t *loop;

static void nop_status(void *d, int st, const fb_member_info *i, const fb_error *e)
{
	(void)d, (void)st, (void)i, (void)e;
}
static void nop_request(void *d, int st, const char *r, const fb_error *e)
{
	(void)d, (void)st, (void)r, (void)e;
}
static void nop_exec(void *d, int st, fb_exec_result *r, const fb_error *e)
{
	(void)d, (void)st, (void)r, (void)e;
}

static int a_up_null_opt(fb_error *e) { fb_cluster *c; return fb_up(NULL, &c, e); }
static int a_up_null_out(fb_error *e)
{
	const char *n[] = { "hy-1" };
	fb_up_options o = { .names = n, .n_names = 1, .bound = 1, .image = h_image() };
	return fb_up(&o, NULL, e);
}
static int a_up_size(fb_error *e, int cpus, int mem, int disk)
{
	const char *n[] = { "hy-1" };
	fb_up_options o = { .names = n, .n_names = 1, .bound = 1, .image = h_image(),
			    .cpus = cpus, .memory_mb = mem, .disk_mb = disk };
	fb_cluster *c;
	return fb_up(&o, &c, e);
}
static int a_up_cpus(fb_error *e) { return a_up_size(e, -2, 0, 0); }
static int a_up_mem(fb_error *e) { return a_up_size(e, 0, -1, 0); }
static int a_up_disk(fb_error *e) { return a_up_size(e, 0, 0, -20480); }
static int a_up_names(fb_error *e)
{
	fb_up_options o = { .names = NULL, .n_names = 2, .bound = 1 };
	fb_cluster *c;
	return fb_up(&o, &c, e);
}
static int a_up_badname(fb_error *e)
{
	const char *n[] = { "Bad_Name" };
	fb_up_options o = { .names = n, .n_names = 1, .bound = 1 };
	fb_cluster *c;
	return fb_up(&o, &c, e);
}
static int a_add_null_c(fb_error *e) { return fb_cluster_add(NULL, "hy-2", e); }
static int a_add_null_name(fb_error *e) { return fb_cluster_add(live, NULL, e); }
static int a_status_name(fb_error *e) { fb_member_info i; return fb_status(NULL, NULL, &i, e); }
static int a_status_out(fb_error *e) { return fb_status(NULL, "hy-0", NULL, e); }
static int a_list_out(fb_error *e) { size_t n; return fb_list(NULL, NULL, &n, e); }
static int a_list_n(fb_error *e) { fb_member_info *m; return fb_list(NULL, &m, NULL, e); }
static int a_wait_names(fb_error *e) { return fb_wait_running(NULL, NULL, 1, 100, e); }
static int a_wait_name(fb_error *e)
{
	const char *n[] = { NULL };
	return fb_wait_running(NULL, n, 1, 100, e);
}
static int a_wait_timeout(fb_error *e)
{
	const char *n[] = { "hy-0" };
	return fb_wait_running(NULL, n, 1, -1, e);
}
static int a_down(fb_error *e) { return fb_down(NULL, NULL, 1, e); }
static int a_rm(fb_error *e) { const char *n[] = { "../x" }; return fb_rm(NULL, n, 1, e); }
static int a_req_member(fb_error *e)
{
	char *r;
	return fb_request(NULL, NULL, "{\"cmd\":\"status\"}", 100, 100, &r, e);
}
static int a_req_line(fb_error *e) { char *r; return fb_request(NULL, "hy-0", NULL, 100, 100, &r, e); }
static int a_req_reply(fb_error *e) { return fb_request(NULL, "hy-0", "{}", 100, 100, NULL, e); }
static int a_req_timeout(fb_error *e)
{
	char *r;
	return fb_request(NULL, "hy-0", "{}", -1, 100, &r, e);
}
static int a_exec_name(fb_error *e) { fb_exec_result r; return fb_exec(NULL, NULL, "true", &r, e); }
static int a_exec_cmd(fb_error *e) { fb_exec_result r; return fb_exec(NULL, "hy-0", NULL, &r, e); }
static int a_exec_res(fb_error *e) { return fb_exec(NULL, "hy-0", "true", NULL, e); }
static int a_exec_stopped(fb_error *e) { fb_exec_result r; return fb_exec(NULL, "hy-0", "true", &r, e); }
static int a_copy_to(fb_error *e) { return fb_copy_to(NULL, "hy-0", NULL, "/tmp", e); }
static int a_copy_from(fb_error *e) { return fb_copy_from(NULL, "hy-0", "/etc", NULL, e); }
static int a_exec_async_loop(fb_error *e)
{
	return fb_exec_async(NULL, NULL, "hy-0", "true", nop_exec, NULL, NULL, e);
}
static int a_exec_async_name(fb_error *e)
{
	return fb_exec_async(loop, NULL, NULL, "true", nop_exec, NULL, NULL, e);
}
/* Calls without an fb_error: the return code is all there is. */
static int a_status_async(fb_error *e) { (void)e; return fb_status_async(NULL, NULL, "hy-0", nop_status, NULL); }
static int a_status_async_cb(fb_error *e) { (void)e; return fb_status_async(loop, NULL, "hy-0", NULL, NULL); }
static int a_status_async_name(fb_error *e) { (void)e; return fb_status_async(loop, NULL, NULL, nop_status, NULL); }
static int a_req_async(fb_error *e) { (void)e; return fb_request_async(loop, NULL, "hy-0", NULL, 1, 1, nop_request, NULL); }
static int a_req_async_cb(fb_error *e) { (void)e; return fb_request_async(loop, NULL, "hy-0", "{}", 1, 1, NULL, NULL); }
static int a_store_root(fb_error *e) { (void)e; return fb_store_root(NULL, 10); }

static const struct arg_case {
	const char *what;
	int (*call)(fb_error *e);
	int rc;
	const char *msg; /* fragment of the message; NULL: the call takes no fb_error */
} arg_cases[] = {
	{ "fb_up(NULL options)", a_up_null_opt, -EINVAL, "options is NULL" },
	{ "fb_up(NULL out)", a_up_null_out, -EINVAL, "out is NULL" },
	{ "fb_up(cpus -2)", a_up_cpus, -EINVAL, "cpus is -2: want a positive value, or 0 for the default" },
	{ "fb_up(memory_mb -1)", a_up_mem, -EINVAL, "memory_mb is -1" },
	{ "fb_up(disk_mb -20480)", a_up_disk, -EINVAL, "disk_mb is -20480" },
	{ "fb_up(NULL names)", a_up_names, -EINVAL, "names is NULL (n_names 2)" },
	{ "fb_up(bad name)", a_up_badname, -EINVAL, "invalid name \"Bad_Name\"" },
	{ "fb_cluster_add(NULL cluster)", a_add_null_c, -EINVAL, "cluster is NULL" },
	{ "fb_cluster_add(NULL name)", a_add_null_name, -EINVAL, "name is NULL" },
	{ "fb_status(NULL name)", a_status_name, -EINVAL, "fb_status: invalid name \"(null)\"" },
	{ "fb_status(NULL out)", a_status_out, -EINVAL, "fb_status: out is NULL" },
	{ "fb_list(NULL out)", a_list_out, -EINVAL, "fb_list: out is NULL" },
	{ "fb_list(NULL n)", a_list_n, -EINVAL, "fb_list: n is NULL" },
	{ "fb_wait_running(NULL names)", a_wait_names, -EINVAL, "names is NULL (n 1)" },
	{ "fb_wait_running(NULL name)", a_wait_name, -EINVAL, "invalid name \"(null)\"" },
	{ "fb_wait_running(timeout -1)", a_wait_timeout, -EINVAL, "timeout_ms is -1" },
	{ "fb_down(NULL patterns)", a_down, -EINVAL, "patterns is NULL" },
	{ "fb_rm(../x)", a_rm, -EINVAL, "invalid name \"../x\"" },
	{ "fb_request(NULL member)", a_req_member, -EINVAL, "invalid member name \"(null)\"" },
	{ "fb_request(NULL request)", a_req_line, -EINVAL, "request is NULL" },
	{ "fb_request(NULL reply)", a_req_reply, -EINVAL, "reply is NULL" },
	{ "fb_request(dial -1)", a_req_timeout, -EINVAL, "negative timeout (dial -1 ms" },
	{ "fb_exec(NULL name)", a_exec_name, -EINVAL, "member name is required" },
	{ "fb_exec(NULL command)", a_exec_cmd, -EINVAL, "command and result are required" },
	{ "fb_exec(NULL result)", a_exec_res, -EINVAL, "command and result are required" },
	{ "fb_exec(stopped member)", a_exec_stopped, -ENOTCONN, "hy-0 is not running" },
	{ "fb_copy_to(NULL source)", a_copy_to, -EINVAL, "source and destination are required" },
	{ "fb_copy_from(NULL destination)", a_copy_from, -EINVAL, "source and destination are required" },
	{ "fb_exec_async(NULL loop)", a_exec_async_loop, -EINVAL, "callback are required" },
	{ "fb_exec_async(NULL name)", a_exec_async_name, -EINVAL, "member name is required" },
	{ "fb_status_async(NULL loop)", a_status_async, -EINVAL, NULL },
	{ "fb_status_async(NULL cb)", a_status_async_cb, -EINVAL, NULL },
	{ "fb_status_async(NULL name)", a_status_async_name, -EINVAL, NULL },
	{ "fb_request_async(NULL request)", a_req_async, -EINVAL, NULL },
	{ "fb_request_async(NULL cb)", a_req_async_cb, -EINVAL, NULL },
	{ "fb_store_root(NULL buf)", a_store_root, -EINVAL, NULL },
};

static void stale(fb_error *e)
{
	e->code = -EIO;
	snprintf(e->message, sizeof(e->message), "stale message");
}

static void check_clear(const char *what, const fb_error *e)
{
	if (e->code != 0 || e->message[0]) {
		fprintf(stderr, "%s: success left fb_error %d \"%s\"\n", what, e->code, e->message);
		CHECK(0);
	}
}

/* Each call: the code, a message containing the fragment, none of the
 * CLI's advice, and NULL for the fb_error pointer is fine too. */
static void run_arg_case(const struct arg_case *c)
{
	fb_error e;
	stale(&e);
	int rc = c->call(&e);
	if (rc != c->rc || (c->msg && (e.code != rc || !strstr(e.message, c->msg)))) {
		fprintf(stderr, "%s: rc %d (want %d), message \"%s\" (want \"%s\")\n", c->what, rc,
			c->rc, e.message, c->msg ? c->msg : "");
		CHECK(0);
	}
	CHECK(!strstr(e.message, "start it with") && !strstr(e.message, "fleetbox up "));
	if (c->msg)
		CHECK_INT(c->call(NULL), c->rc);
}

/* Every call that succeeds clears a stale fb_error (after a failure). */
static void check_success_clears(void)
{
	fb_error e;
	fb_member_info info, *list;
	size_t n;
	const char *names[] = { "hy-1" };
	char *reply;
	stale(&e);
	CHECK_INT(fb_status(NULL, "hy-0", &info, &e), 0);
	check_clear("fb_status", &e);
	stale(&e);
	CHECK_INT(fb_list(NULL, &list, &n, &e), 0);
	check_clear("fb_list", &e);
	fb_list_free(list);
	stale(&e);
	CHECK_INT(fb_wait_running(NULL, names, 1, 5000, &e), 0);
	check_clear("fb_wait_running", &e);
	stale(&e);
	CHECK_INT(fb_request(NULL, "hy-1", "{\"cmd\":\"status\"}", 2000, 2000, &reply, &e), 0);
	check_clear("fb_request", &e);
	free(reply);
	stale(&e);
	CHECK_INT(fb_cluster_close(NULL, &e), 0);
	check_clear("fb_cluster_close(NULL)", &e);
}

static void t_args(void)
{
	h_setup("libargs");
	setenv("FLEETBOX_HELPER", h_bin, 1);
	uv_loop_t l;
	CHECK_INT(uv_loop_init(&l), 0);
	loop = &l;
	char *out;
	CHECK_INT(h_run(&out, "up", "hy-0", "--image", h_image(), NULL), 0); /* a stopped member */
	free(out);
	CHECK_INT(h_run(NULL, "down", "hy-0", NULL), 0);
	const char *names[] = { "hy-1" };
	fb_up_options o = { .names = names, .n_names = 1, .bound = 1, .image = h_image() };
	fb_error e;
	CHECK_INT(fb_up(&o, &live, &e), 0);
	for (size_t i = 0; i < sizeof(arg_cases) / sizeof(arg_cases[0]); i++) {
		run_arg_case(&arg_cases[i]);
		/* a failure then a success: the success clears it */
		if (i % 8 == 0)
			check_success_clears();
	}
	check_success_clears();
	printf("lib-args: %zu NULL/invalid calls, each the expected code and message\n",
	       sizeof(arg_cases) / sizeof(arg_cases[0]));
	CHECK_INT(fb_cluster_close(live, &e), 0);
	CHECK_INT(uv_run(&l, UV_RUN_DEFAULT), 0);
	CHECK_INT(uv_loop_close(&l), 0);
	h_teardown();
}

/* --- unique names --- */

static bool unique_ok(const char *n)
{
	char cl[FB_NAME_MAX + 1];
	wire_cluster_name(n, cl);
	size_t l = strlen(n);
	/* a hostname, its own cluster, room for "-253" */
	return wire_name_valid(n) && n[l - 1] != '-' && !strcmp(cl, n) && l <= FB_NAME_MAX - 4;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

#define UNIQ_PROCS 8
#define UNIQ_EACH 1000

/* UNIQ_PROCS processes make UNIQ_EACH names each into one pipe. */
static char **names_from_processes(void)
{
	int pfd[2];
	CHECK(pipe(pfd) == 0);
	for (int p = 0; p < UNIQ_PROCS; p++) {
		pid_t c = fork();
		CHECK(c >= 0);
		if (c)
			continue;
		close(pfd[0]);
		for (int i = 0; i < UNIQ_EACH; i++) {
			char b[64];
			if (fb_unique_name("t", b, sizeof(b)) < 0 || write(pfd[1], b, sizeof(b)) != sizeof(b))
				_exit(1);
		}
		_exit(0);
	}
	close(pfd[1]);
	char **v = calloc(UNIQ_PROCS * UNIQ_EACH, sizeof(char *));
	CHECK(v != NULL);
	for (int i = 0; i < UNIQ_PROCS * UNIQ_EACH; i++) {
		v[i] = malloc(64);
		CHECK(v[i] && read(pfd[0], v[i], 64) == 64);
	}
	close(pfd[0]);
	for (int p = 0; p < UNIQ_PROCS; p++) {
		int st;
		CHECK(wait(&st) > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	return v;
}

static void t_unique(void)
{
	h_setup("libuniq");
	setenv("FLEETBOX_HELPER", h_bin, 1);
	char b[64];
	CHECK_INT(fb_unique_name(NULL, b, sizeof(b)), 0);
	CHECK(!strncmp(b, "fb-", 3) && unique_ok(b));
	CHECK_INT(fb_unique_name("db", b, sizeof(b)), 0);
	char want[32];
	snprintf(want, sizeof(want), "db-%d-", (int)getpid());
	CHECK(!strncmp(b, want, strlen(want)) && unique_ok(b));
	/* a long prefix is cut (no trailing '-'), the unique part kept */
	CHECK_INT(fb_unique_name("a-very-long-prefix-for-a-test-of-some-subsystem-with-words", b,
				 sizeof(b)), 0);
	CHECK(unique_ok(b) && strstr(b, want + 2) != NULL);
	CHECK_INT(fb_unique_name("Bad_Prefix", b, sizeof(b)), -EINVAL);
	CHECK_INT(fb_unique_name("-x", b, sizeof(b)), -EINVAL);
	CHECK_INT(fb_unique_name("db", NULL, 10), -EINVAL);
	CHECK_INT(fb_unique_name("db", b, 0), -EINVAL);
	CHECK_INT(fb_unique_name("db", b, 6), -ENOSPC);
	/* no two alike across processes */
	char **v = names_from_processes();
	qsort(v, UNIQ_PROCS * UNIQ_EACH, sizeof(char *), cmp_str);
	for (int i = 0; i < UNIQ_PROCS * UNIQ_EACH; i++) {
		CHECK(unique_ok(v[i]));
		CHECK(i == 0 || strcmp(v[i - 1], v[i]) != 0);
	}
	for (int i = 0; i < UNIQ_PROCS * UNIQ_EACH; i++)
		free(v[i]);
	free(v);
	/* usable as a cluster name: NAME-1, NAME-2 come up together */
	char cl[64], n1[80], n2[80];
	CHECK_INT(fb_unique_name("it", cl, sizeof(cl)), 0);
	snprintf(n1, sizeof(n1), "%s-1", cl);
	snprintf(n2, sizeof(n2), "%s-2", cl);
	const char *names[] = { n1, n2 };
	fb_up_options o = { .names = names, .n_names = 2, .bound = 1, .image = h_image() };
	fb_cluster *c;
	fb_error e;
	CHECK_INT(fb_up(&o, &c, &e), 0);
	CHECK_INT(fb_cluster_size(c), 2);
	CHECK_INT(fb_cluster_close(c, &e), 0);
	printf("lib-unique: %d names from %d processes, all distinct and valid\n",
	       UNIQ_PROCS * UNIQ_EACH, UNIQ_PROCS);
	h_teardown();
}

/* --- the console and waits --- */

static fb_cluster *up_one(const char *name)
{
	const char *names[] = { name };
	fb_up_options o = { .names = names, .n_names = 1, .bound = 1, .image = h_image() };
	fb_cluster *c;
	fb_error e;
	if (fb_up(&o, &c, &e) < 0) {
		fprintf(stderr, "fb_up %s: %s\n", name, e.message);
		CHECK(0);
	}
	return c;
}

/* Appends line to path after ms, from a child process. */
static pid_t append_later(const char *path, const char *line, int ms)
{
	pid_t c = fork();
	CHECK(c >= 0);
	if (c)
		return c;
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
	FILE *f = fopen(path, "a");
	if (!f || fprintf(f, "%s\n", line) < 0 || fclose(f) != 0)
		_exit(1);
	_exit(0);
}

static void reap_ok(pid_t c)
{
	int st;
	CHECK_INT(waitpid(c, &st, 0), c);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void t_console(void)
{
	h_setup("libcons");
	setenv("FLEETBOX_HELPER", h_bin, 1);
	fb_cluster *c = up_one("co-1");
	char path[512], want[512];
	fb_error e;
	CHECK_INT(fb_console_path(NULL, "co-1", path, sizeof(path), &e), 0);
	snprintf(want, sizeof(want), "%s/clusters/co/co-1/serial.log", h_root);
	CHECK_STR(path, want);
	char small[8];
	CHECK_INT(fb_console_path(NULL, "co-1", small, sizeof(small), &e), -ENAMETOOLONG);
	CHECK_INT(fb_console_path(NULL, "nosuch", path, sizeof(path), &e), -ENOENT);
	/* the fake VM's banner, through the tail and the wait */
	CHECK_INT(fb_wait_console(NULL, "co-1", "fake vm co-1: booting", 5000, &e), 0);
	char *t;
	CHECK_INT(fb_console_tail(NULL, "co-1", 1 << 20, &t, &e), 0);
	CHECK(strstr(t, "fleetbox fake vm co-1: booting\n") != NULL);
	free(t);
	/* a line that comes later: the wait sees it when it comes */
	pid_t w = append_later(path, "app: listening on :8080", 300);
	long t0 = h_now_ms();
	CHECK_INT(fb_wait_console(NULL, "co-1", "listening on :8080", 5000, &e), 0);
	long waited = h_now_ms() - t0;
	CHECK(waited >= 250 && waited < 3000);
	reap_ok(w);
	/* a cut tail starts at a line */
	CHECK_INT(fb_console_tail(NULL, "co-1", 30, &t, &e), 0);
	CHECK_STR(t, "app: listening on :8080\n");
	free(t);
	/* what never comes: -ETIMEDOUT in time, with the path and last line */
	t0 = h_now_ms();
	CHECK_INT(fb_wait_console(NULL, "co-1", "never printed", 300, &e), -ETIMEDOUT);
	CHECK(h_now_ms() - t0 < 2000);
	CHECK(strstr(e.message, "\"never printed\" did not appear on co-1's console within 300 ms"));
	CHECK(strstr(e.message, path) && strstr(e.message, "last line: \"app: listening on :8080\""));
	CHECK_INT(fb_wait_console(NULL, "co-1", "", 300, &e), -EINVAL);
	/* a stopped member fails at once, not at the deadline; the log stays */
	const char *pat[] = { "co-1" };
	CHECK_INT(fb_down(NULL, pat, 1, &e), 0);
	t0 = h_now_ms();
	CHECK(fb_wait_console(NULL, "co-1", "never printed", 10000, &e) < 0);
	CHECK(h_now_ms() - t0 < 2000 && strstr(e.message, "not running"));
	CHECK_INT(fb_console_tail(NULL, "co-1", 4096, &t, &e), 0);
	CHECK(strstr(t, "listening on :8080") != NULL);
	free(t);
	CHECK_INT(fb_cluster_close(c, &e), 0);
	h_teardown();
}

static void ip_on_lo(const char *ip)
{
	char addr[32];
	snprintf(addr, sizeof(addr), "%s/32", ip);
	pid_t c = fork();
	CHECK(c >= 0);
	if (c == 0) {
		execlp("ip", "ip", "addr", "add", addr, "dev", "lo", (char *)NULL);
		_exit(127);
	}
	reap_ok(c);
}

/* A listener on ip:port, opened after ms by a child that accepts one
 * connection (bounded: 10 s). */
static pid_t listen_later(const char *ip, int port, int ms)
{
	pid_t c = fork();
	CHECK(c >= 0);
	if (c)
		return c;
	alarm(10);
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	if (fd < 0 || inet_pton(AF_INET, ip, &sa.sin_addr) != 1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)
		_exit(1);
	int a = accept(fd, NULL, NULL);
	_exit(a >= 0 ? 0 : 2);
}

static void t_wait_port(void)
{
	h_setup("libport");
	h_enter_netns();
	setenv("FLEETBOX_HELPER", h_bin, 1);
	fb_cluster *c = up_one("wp-1");
	const char *ip = fb_cluster_ip(c, 0);
	CHECK(ip && *ip);
	ip_on_lo(ip); /* the fake VM has no network: we play the guest's service */
	fb_error e;
	long t0 = h_now_ms();
	CHECK_INT(fb_wait_port(NULL, "wp-1", 8080, 300, &e), -ETIMEDOUT);
	CHECK(h_now_ms() - t0 < 2000);
	char want[160];
	snprintf(want, sizeof(want), "port 8080 on wp-1 (%s) did not accept a connection within 300 ms", ip);
	CHECK(strstr(e.message, want) && strstr(e.message, "Connection refused"));
	pid_t l = listen_later(ip, 8080, 400);
	t0 = h_now_ms();
	CHECK_INT(fb_wait_port(NULL, "wp-1", 8080, 5000, &e), 0);
	long waited = h_now_ms() - t0;
	CHECK(waited >= 350 && waited < 4000);
	reap_ok(l);
	CHECK_INT(fb_wait_port(NULL, "wp-1", 0, 100, &e), -EINVAL);
	CHECK_INT(fb_wait_port(NULL, "wp-1", 70000, 100, &e), -EINVAL);
	const char *pat[] = { "wp-1" };
	CHECK_INT(fb_down(NULL, pat, 1, &e), 0);
	t0 = h_now_ms();
	CHECK(fb_wait_port(NULL, "wp-1", 8080, 10000, &e) < 0);
	CHECK(h_now_ms() - t0 < 2000 && strstr(e.message, "not running"));
	printf("lib-wait-port: refused -> -ETIMEDOUT at 300 ms; listener after 400 ms seen after %ld ms\n",
	       waited);
	CHECK_INT(fb_cluster_close(c, &e), 0);
	h_teardown();
}

/* The fake VM answers no SSH: every try fails; the wait ends at its
 * deadline (each try bounded by it) saying what the last try said. */
static void t_wait_exec(void)
{
	h_setup("libexec");
	h_enter_netns();
	setenv("FLEETBOX_HELPER", h_bin, 1);
	fb_cluster *c = up_one("we-1");
	fb_error e;
	long t0 = h_now_ms();
	CHECK_INT(fb_wait_exec(NULL, "we-1", "true", 1500, &e), -ETIMEDOUT);
	long took = h_now_ms() - t0;
	CHECK(took >= 1400 && took < 4000);
	CHECK(strstr(e.message, "`true` did not succeed on we-1 within 1500 ms (") &&
	      strstr(e.message, "tries; last: "));
	char said[512];
	snprintf(said, sizeof(said), "%s", e.message);
	CHECK_INT(fb_wait_exec(NULL, "we-1", NULL, 100, &e), -EINVAL);
	CHECK_INT(fb_wait_exec(NULL, "we-1", "true", -5, &e), -EINVAL);
	const char *pat[] = { "we-1" };
	CHECK_INT(fb_down(NULL, pat, 1, &e), 0);
	t0 = h_now_ms();
	CHECK(fb_wait_exec(NULL, "we-1", "true", 10000, &e) < 0);
	CHECK(h_now_ms() - t0 < 2000 && strstr(e.message, "not running"));
	printf("lib-wait-exec: no SSH -> -ETIMEDOUT after %ld ms of a 1500 ms timeout: %s\n", took,
	       said);
	CHECK_INT(fb_cluster_close(c, &e), 0);
	h_teardown();
}

/* --- fb_up_async --- */

struct up_seen {
	int calls, status, ticks_before;
	fb_cluster *c;
	char msg[512];
	int *ticks;
};

static void on_up(void *data, int status, fb_cluster *c, const fb_error *err)
{
	struct up_seen *s = data;
	s->calls++;
	s->status = status;
	s->c = c;
	s->ticks_before = *s->ticks;
	snprintf(s->msg, sizeof(s->msg), "%s", err ? err->message : "");
}

static int ticks;
static volatile sig_atomic_t up_cancel;
static uv_timer_t tick_timer;

static void on_tick(uv_timer_t *t)
{
	ticks++;
	if (ticks == 4 && t->data)
		up_cancel = 1; /* cancel from the loop, 200 ms in */
}

/* Runs one fb_up_async to its callback with a 50 ms timer ticking. */
static void run_up_async(uv_loop_t *l, const fb_up_options *o, struct up_seen *s, bool cancel)
{
	memset(s, 0, sizeof(*s));
	s->ticks = &ticks;
	ticks = 0;
	CHECK_INT(uv_timer_init(l, &tick_timer), 0);
	tick_timer.data = cancel ? &tick_timer : NULL;
	CHECK_INT(uv_timer_start(&tick_timer, on_tick, 50, 50), 0);
	CHECK_INT(fb_up_async(l, o, on_up, s), 0);
	while (s->calls == 0)
		uv_run(l, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&tick_timer, NULL);
	CHECK_INT(uv_run(l, UV_RUN_DEFAULT), 0);
	CHECK_INT(s->calls, 1);
}

static void t_up_async(void)
{
	h_setup("libupasync");
	setenv("FLEETBOX_HELPER", h_bin, 1);
	setenv("FLEETBOX_FAKE_BOOT_MS", "600", 1);
	uv_loop_t l;
	CHECK_INT(uv_loop_init(&l), 0);
	/* options copied: names freed at once */
	char *n1 = strdup("ua-1"), *n2 = strdup("ua-2");
	const char **names = calloc(2, sizeof(char *));
	CHECK(n1 && n2 && names);
	names[0] = n1;
	names[1] = n2;
	fb_up_options o = { .names = names, .n_names = 2, .bound = 1, .image = h_image() };
	struct up_seen s;
	memset(&s, 0, sizeof(s));
	s.ticks = &ticks;
	ticks = 0;
	CHECK_INT(uv_timer_init(&l, &tick_timer), 0);
	tick_timer.data = NULL;
	CHECK_INT(uv_timer_start(&tick_timer, on_tick, 50, 50), 0);
	CHECK_INT(fb_up_async(&l, &o, on_up, &s), 0);
	free(n1);
	free(n2);
	free(names);
	while (s.calls == 0)
		uv_run(&l, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&tick_timer, NULL);
	CHECK_INT(uv_run(&l, UV_RUN_DEFAULT), 0);
	CHECK_INT(s.status, 0);
	CHECK(s.ticks_before >= 8); /* the loop ran on while the VMs booted (600 ms) */
	CHECK_INT(fb_cluster_size(s.c), 2);
	CHECK_STR(fb_cluster_name(s.c, 1), "ua-2");
	fb_error e;
	CHECK_INT(fb_cluster_close(s.c, &e), 0);
	int before = s.ticks_before;
	/* cancel from the loop while it boots: -ECANCELED, rolled back */
	setenv("FLEETBOX_FAKE_BOOT_MS", "5000", 1);
	const char *cn[] = { "uc-1" };
	fb_up_options oc = { .names = cn, .n_names = 1, .bound = 1, .image = h_image(),
			     .cancel = &up_cancel };
	run_up_async(&l, &oc, &s, true);
	CHECK_INT(s.status, -ECANCELED);
	CHECK(s.c == NULL && s.msg[0]);
	char cancelled[512];
	snprintf(cancelled, sizeof(cancelled), "%s", s.msg);
	char dir[400];
	struct stat st;
	snprintf(dir, sizeof(dir), "%s/clusters/uc/uc-1", h_root);
	CHECK(stat(dir, &st) < 0 && errno == ENOENT);
	/* failures reach the callback; NULLs are refused up front */
	unsetenv("FLEETBOX_FAKE_BOOT_MS");
	fb_up_options bad = { .names = cn, .n_names = 1, .bound = 1, .cpus = -1 };
	run_up_async(&l, &bad, &s, false);
	CHECK_INT(s.status, -EINVAL);
	CHECK(strstr(s.msg, "cpus is -1") != NULL);
	CHECK_INT(fb_up_async(NULL, &o, on_up, &s), -EINVAL);
	CHECK_INT(fb_up_async(&l, NULL, on_up, &s), -EINVAL);
	CHECK_INT(fb_up_async(&l, &o, NULL, &s), -EINVAL);
	CHECK_INT(uv_loop_close(&l), 0);
	printf("lib-up-async: 2 members up with %d loop ticks (50 ms) meanwhile; cancel: %s\n",
	       before, cancelled);
	h_teardown();
}

static const struct h_case cases[] = {
	{ "lib-pgkill", t_pgkill },
	{ "lib-args", t_args },
	{ "lib-unique", t_unique },
	{ "lib-console", t_console },
	{ "lib-wait-port", t_wait_port },
	{ "lib-wait-exec", t_wait_exec },
	{ "lib-up-async", t_up_async },
};

int main(int argc, char **argv)
{
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
