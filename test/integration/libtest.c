/* libtest.c - libfleetbox as a test suite uses it: a runner killing the
 * harness's whole process group, argument hygiene of every public call,
 * unique names, waits (port, console, command), the console log, fb_up_async.
 * Usage: libtest <case>. */
#include "harness.h"
#include "fleetbox/uv.h"

#include <errno.h>
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
	int pfd[2];
	CHECK(pipe(pfd) == 0);
	pid_t child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		close(pfd[0]);
		setpgid(0, 0);
		alarm(60); /* bounded even if the test dies */
		char n1[64], n2[64];
		snprintf(n1, sizeof(n1), "%s-1", cluster);
		snprintf(n2, sizeof(n2), "%s-2", cluster);
		const char *names[] = { n1, n2 };
		fb_up_options o = { .names = names, .n_names = 2, .bound = 1, .image = h_image() };
		fb_cluster *c;
		fb_error e;
		if (fb_up(&o, &c, &e) < 0) {
			fprintf(stderr, "fb_up: %s\n", e.message);
			_exit(3);
		}
		pid_t hp = fb_cluster_holder_pid(c);
		if (write(pfd[1], &hp, sizeof(hp)) != sizeof(hp))
			_exit(5);
		for (;;)
			pause();
	}
	close(pfd[1]);
	*holder = 0;
	CHECK_INT(read(pfd[0], holder, sizeof(*holder)), sizeof(*holder));
	close(pfd[0]);
	CHECK(*holder > 0);
	return child;
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

static const struct h_case cases[] = {
	{ "lib-pgkill", t_pgkill },
	{ "lib-args", t_args },
};

int main(int argc, char **argv)
{
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
