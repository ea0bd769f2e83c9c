/* async.c - the async calls on the harness's own libuv loop: three commands
 * in one VM at once, a status query beside them, and a long command
 * cancelled by a timer. Every callback runs exactly once, after the call's own
 * handles are closed, so uv_loop_close() returns 0 at the end.
 *   cc -o async async.c $(pkg-config --cflags --libs fleetbox)
 *   sudo ./async */
#define _POSIX_C_SOURCE 200809L /* <uv.h> needs POSIX declarations under -std=c11 */
#include <fleetbox/uv.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

struct job {
	const char *cmd;
	int want_status;   /* the call's status: 0 (ran) or -ECANCELED */
	int want_exit;     /* the command's exit status when it ran */
	const char *want_out;
	int done;
	fb_exec_op *op;
};

static int failures;

static void check(int ok, const char *what, const char *detail)
{
	printf("%s: %s%s%.*s\n", ok ? "ok" : "FAIL", what, *detail ? ": " : "",
	       (int)strcspn(detail, "\n"), detail);
	failures += !ok;
}

static void on_exec(void *data, int status, fb_exec_result *res, const fb_error *err)
{
	struct job *j = data;
	j->done++;
	j->op = NULL; /* the op is gone once its callback runs */
	int ok = status == j->want_status;
	if (ok && status == 0)
		ok = res->exit_status == j->want_exit && strstr(res->out, j->want_out);
	check(ok, j->cmd, status < 0 ? err->message : res->out);
}

static void on_status(void *data, int status, const fb_member_info *info, const fb_error *err)
{
	int *done = data;
	(*done)++;
	check(status == 0 && strcmp(info->state, "running") == 0, "status",
	      status < 0 ? err->message : info->state);
}

static void on_timer(uv_timer_t *t)
{
	struct job *j = t->data;
	if (j->op)
		fb_exec_cancel(j->op); /* its callback runs with -ECANCELED */
	uv_close((uv_handle_t *)t, NULL);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* the header asks async users to */
	const char *names[] = { "async-1" };
	fb_up_options o = { .names = names, .n_names = 1, .bound = 1, .ephemeral = 1 };
	fb_cluster *c;
	fb_error err;
	if (fb_up(&o, &c, &err) < 0)
		return fprintf(stderr, "fb_up: %s\n", err.message), 1;

	struct job jobs[] = {
		{ "uname -s", 0, 0, "Linux", 0, NULL },
		{ "sleep 1; echo slow", 0, 0, "slow", 0, NULL },
		{ "echo out; exit 7", 0, 7, "out", 0, NULL },
		{ "sleep 30", -ECANCELED, 0, "", 0, NULL },
	};
	size_t n = sizeof jobs / sizeof jobs[0];
	uv_loop_t loop;
	uv_timer_t timer;
	int status_done = 0;
	if (uv_loop_init(&loop) < 0)
		return 1;
	for (size_t i = 0; i < n; i++)
		if (fb_exec_async(&loop, NULL, "async-1", jobs[i].cmd, on_exec, &jobs[i], &jobs[i].op,
				  &err) < 0)
			return fprintf(stderr, "fb_exec_async: %s\n", err.message), 1;
	if (fb_status_async(&loop, NULL, "async-1", on_status, &status_done) < 0)
		return 1;
	uv_timer_init(&loop, &timer);
	timer.data = &jobs[n - 1];
	uv_timer_start(&timer, on_timer, 1500, 0);
	uv_run(&loop, UV_RUN_DEFAULT);

	for (size_t i = 0; i < n; i++)
		check(jobs[i].done == 1, "one callback", jobs[i].cmd);
	check(status_done == 1, "one callback", "status");
	check(uv_loop_close(&loop) == 0, "uv_loop_close", "");
	if (fb_cluster_close(c, &err) < 0)
		check(0, "fb_cluster_close", err.message);
	return failures != 0;
}
