/* test_exec.c - commands over SSH against a private dropbear: output separation,
 * exit statuses and signals, large output, stdin forwarding, host key pinning,
 * authentication and connect failures, and the async API on a uv loop
 * (concurrency, cancellation, timeouts; the loop closes cleanly). Successful runs
 * also prove libssh2 accepts our generated private key. */
#include "client/ssh/ssh.h"
#include "client/ssh/keys.h"
#include "util/err.h"
#include "dropbear.h"
#include "t.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static struct tdb db;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_basic(void)
{
	struct ssh_result r;
	struct err e = { 0 };
	CHECK_OK(ssh_exec(&db.target, "echo out1; echo err1 >&2; echo out2", &r, &e), &e);
	CHECK_STREQ(r.out, "out1\nout2\n");
	CHECK_STREQ(r.err, "err1\n");
	CHECK(r.combined_len == r.out_len + r.err_len);
	CHECK(strstr(r.combined, "out1\n") && strstr(r.combined, "err1\n") &&
	      strstr(r.combined, "out2\n"));
	CHECK(r.st.exit_status == 0 && r.st.exit_signal == 0);
	ssh_result_fini(&r);

	/* empty output is "" not NULL */
	CHECK_OK(ssh_exec(&db.target, "true", &r, &e), &e);
	CHECK(r.out && r.out_len == 0 && r.err && r.combined);
	ssh_result_fini(&r);

	/* several words: each quoted, the remote sees exactly that argv */
	char *argv1[] = { "sh", "-c", "exit 7" };
	char *cmd = ssh_command_join(3, argv1);
	CHECK_OK(ssh_exec(&db.target, cmd, &r, &e), &e);
	CHECK(r.st.exit_status == 7);
	free(cmd);
	ssh_result_fini(&r);

	char *argv2[] = { "printf", "%s|", "a b", "it's", "$HOME", "" };
	cmd = ssh_command_join(6, argv2);
	CHECK_OK(ssh_exec(&db.target, cmd, &r, &e), &e);
	CHECK_STREQ(r.out, "a b|it's|$HOME||");
	free(cmd);
	ssh_result_fini(&r);

	/* one word: a verbatim command line */
	char *argv3[] = { "echo a b c | wc -w" };
	cmd = ssh_command_join(1, argv3);
	CHECK_OK(ssh_exec(&db.target, cmd, &r, &e), &e);
	CHECK(atoi(r.out) == 3);
	free(cmd);
	ssh_result_fini(&r);

	/* non-zero exit keeps the output */
	CHECK_OK(ssh_exec(&db.target, "echo partial; echo oops >&2; exit 3", &r, &e), &e);
	CHECK(r.st.exit_status == 3);
	CHECK_STREQ(r.out, "partial\n");
	CHECK_STREQ(r.err, "oops\n");
	ssh_result_fini(&r);

	/* killed by a signal */
	CHECK_OK(ssh_exec(&db.target, "echo before; kill -KILL $$", &r, &e), &e);
	CHECK(r.st.exit_signal == SIGKILL);
	CHECK_STREQ(r.st.signame, "KILL");
	CHECK(r.st.exit_status == 128 + SIGKILL);
	CHECK_STREQ(r.out, "before\n");
	ssh_result_fini(&r);
}

static void test_large(void)
{
	struct ssh_result r;
	struct err e = { 0 };
	/* 6 MiB on stdout and 3 MiB on stderr, written concurrently by two processes */
	double t0 = now_s();
	CHECK_OK(ssh_exec(&db.target,
			  "head -c 3145728 /dev/zero | tr '\\0' e >&2 & "
			  "head -c 6291456 /dev/zero | tr '\\0' o; wait",
			  &r, &e), &e);
	double dt = now_s() - t0;
	CHECK(r.out_len == 6291456);
	CHECK(r.err_len == 3145728);
	CHECK(r.combined_len == 6291456 + 3145728);
	CHECK(strspn(r.out, "o") == r.out_len);
	CHECK(strspn(r.err, "e") == r.err_len);
	CHECK(r.st.exit_status == 0);
	printf("large output: 9 MiB in %.2f s\n", dt);
	ssh_result_fini(&r);
}

struct sink {
	char buf[256];
	size_t len;
	int calls;
};

static void sink_add(void *data, const char *b, size_t n)
{
	struct sink *s = data;
	s->calls++;
	if (s->len + n < sizeof(s->buf)) {
		memcpy(s->buf + s->len, b, n);
		s->len += n;
		s->buf[s->len] = '\0';
	}
}

static void test_stream_stdin(void)
{
	int p[2];
	CHECK(pipe(p) == 0);
	CHECK(write(p[1], "hello\nworld\n", 12) == 12);
	close(p[1]);
	struct sink out = { 0 }, er = { 0 };
	struct ssh_io io = { sink_add, sink_add, &out, p[0] };
	struct ssh_status st;
	struct err e = { 0 };
	CHECK_OK(ssh_exec_stream(&db.target, "tac; echo done", &io, &st, &e), &e);
	CHECK_STREQ(out.buf, "world\nhello\ndone\n");
	CHECK(st.exit_status == 0);
	close(p[0]);

	/* no stdin: the command sees EOF at once instead of hanging */
	memset(&out, 0, sizeof(out));
	struct ssh_io io2 = { sink_add, sink_add, &er, -1 };
	CHECK_OK(ssh_exec_stream(&db.target, "cat; echo eof >&2", &io2, &st, &e), &e);
	CHECK_STREQ(er.buf, "eof\n");

	/* a login shell without a PTY (`fleetbox ssh NAME < script`) */
	CHECK(pipe(p) == 0);
	CHECK(write(p[1], "echo via-shell; exit 4\n", 23) == 23);
	close(p[1]);
	memset(&out, 0, sizeof(out));
	struct ssh_io io3 = { sink_add, NULL, &out, p[0] };
	CHECK_OK(ssh_exec_stream(&db.target, NULL, &io3, &st, &e), &e);
	CHECK_STREQ(out.buf, "via-shell\n");
	CHECK(st.exit_status == 4);
	close(p[0]);
}

static void test_hostkey_and_auth(void)
{
	struct ssh_result r;
	struct err e = { 0 };
	struct ssh_target t = db.target;

	tdb_other_key(&db, t.hostkey_pub, sizeof(t.hostkey_pub));
	int rc = ssh_exec(&t, "true", &r, &e);
	CHECK(rc == -EPERM);
	CHECK(strstr(e.msg, "host key mismatch for dropbear: ") != NULL);
	CHECK(strstr(e.msg, "SHA256:") != NULL);
	printf("mismatch: %s\n", e.msg);
	ssh_result_fini(&r);

	/* one flipped character inside the pinned key */
	t = db.target;
	t.hostkey_pub[40] = t.hostkey_pub[40] == 'A' ? 'B' : 'A';
	rc = ssh_exec(&t, "true", &r, &e);
	CHECK(rc == -EPERM || rc == -EINVAL);
	ssh_result_fini(&r);

	t = db.target;
	t.hostkey_pub[0] = '\0';
	CHECK(ssh_exec(&t, "true", &r, &e) == -EINVAL);
	CHECK(strstr(e.msg, "no pinned host key") != NULL);
	ssh_result_fini(&r);

	t = db.target;
	snprintf(t.hostkey_pub, sizeof(t.hostkey_pub), "ssh-rsa AAAAB3NzaC1yc2E=");
	CHECK(ssh_exec(&t, "true", &r, &e) == -EINVAL);
	ssh_result_fini(&r);

	/* a key the server does not know */
	t = db.target;
	char *pem = NULL, *line = NULL;
	CHECK_OK(keys_generate("stranger", &pem, &line, &e), &e);
	FMT(t.key_path, "%s/stranger", db.dir);
	FILE *f = fopen(t.key_path, "w");
	CHECK(f && fputs(pem, f) >= 0 && fclose(f) == 0);
	free(pem);
	free(line);
	rc = ssh_exec(&t, "true", &r, &e);
	CHECK(rc == -EACCES);
	printf("auth: %s\n", e.msg);
	ssh_result_fini(&r);

	/* nothing listens */
	t = db.target;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
	t.port = ntohs(sa.sin_port);
	rc = ssh_exec(&t, "true", &r, &e);
	CHECK(rc == -ECONNREFUSED);
	ssh_result_fini(&r);

	/* a listener that never speaks: the connect timeout fires */
	CHECK(listen(fd, 4) == 0);
	t.connect_timeout_ms = 300;
	double t0 = now_s();
	rc = ssh_exec(&t, "true", &r, &e);
	double dt = now_s() - t0;
	CHECK(rc == -ETIMEDOUT);
	CHECK(dt >= 0.25 && dt < 3.0);
	ssh_result_fini(&r);
	close(fd);
}

/* ---- async ---- */

struct async_case {
	int done;
	int status;
	int exit_status;
	char out[128];
	char msg[512];
	size_t out_len;
};

static void on_done(void *data, int status, struct ssh_result *res, const struct err *e)
{
	struct async_case *c = data;
	c->done++;
	c->status = status;
	c->exit_status = res->st.exit_status;
	c->out_len = res->out_len;
	snprintf(c->out, sizeof(c->out), "%s", res->out ? res->out : "");
	snprintf(c->msg, sizeof(c->msg), "%s", e ? e->msg : "");
}

struct canceller {
	uv_timer_t timer;
	struct ssh_exec_op *op;
	double fired_at;
};

static void cancel_cb(uv_timer_t *t)
{
	struct canceller *c = t->data;
	c->fired_at = now_s();
	ssh_exec_cancel(c->op);
	uv_close((uv_handle_t *)t, NULL);
}

static void test_async(void)
{
	uv_loop_t loop;
	struct err e = { 0 };
	CHECK(uv_loop_init(&loop) == 0);

	struct async_case c[4] = { 0 };
	const char *cmds[3] = { "echo one", "echo two; exit 5", "head -c 3000000 /dev/zero" };
	for (int i = 0; i < 3; i++)
		CHECK_OK(ssh_exec_start(&loop, &db.target, cmds[i], on_done, &c[i], NULL, &e), &e);

	/* a long command cancelled while it runs */
	struct canceller cn = { 0 };
	CHECK_OK(ssh_exec_start(&loop, &db.target, "sleep 30", on_done, &c[3], &cn.op, &e), &e);
	CHECK(uv_timer_init(&loop, &cn.timer) == 0);
	cn.timer.data = &cn;
	CHECK(uv_timer_start(&cn.timer, cancel_cb, 500, 0) == 0);

	double t0 = now_s();
	CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
	double dt = now_s() - t0;
	for (int i = 0; i < 4; i++)
		CHECK(c[i].done == 1);
	CHECK(c[0].status == 0 && c[0].exit_status == 0);
	CHECK_STREQ(c[0].out, "one\n");
	CHECK(c[1].status == 0 && c[1].exit_status == 5);
	CHECK_STREQ(c[1].out, "two\n");
	CHECK(c[2].status == 0 && c[2].out_len == 3000000);
	CHECK(c[3].status == -ECANCELED);
	CHECK(strstr(c[3].msg, "cancelled") != NULL);
	CHECK(dt < 10.0); /* the cancelled sleep 30 did not hold the loop */
	printf("async: 4 ops in %.2f s\n", dt);

	/* cancelled before it even dialled */
	struct async_case c5 = { 0 };
	struct ssh_exec_op *op = NULL;
	CHECK_OK(ssh_exec_start(&loop, &db.target, "true", on_done, &c5, &op, &e), &e);
	ssh_exec_cancel(op);
	CHECK(c5.done == 0); /* never synchronously */
	CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
	CHECK(c5.done == 1 && c5.status == -ECANCELED);

	/* async connect timeout and host key mismatch */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 4) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
	struct ssh_target t = db.target;
	t.port = ntohs(sa.sin_port);
	t.connect_timeout_ms = 300;
	struct async_case c6 = { 0 }, c7 = { 0 };
	CHECK_OK(ssh_exec_start(&loop, &t, "true", on_done, &c6, NULL, &e), &e);
	struct ssh_target t2 = db.target;
	tdb_other_key(&db, t2.hostkey_pub, sizeof(t2.hostkey_pub));
	CHECK_OK(ssh_exec_start(&loop, &t2, "true", on_done, &c7, NULL, &e), &e);
	t0 = now_s();
	CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
	dt = now_s() - t0;
	CHECK(c6.done == 1 && c6.status == -ETIMEDOUT);
	CHECK(c7.done == 1 && c7.status == -EPERM);
	CHECK(strstr(c7.msg, "host key mismatch for dropbear") != NULL);
	CHECK(dt < 3.0);
	close(fd);

	CHECK(uv_loop_close(&loop) == 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	int r = tdb_start(&db);
	if (r)
		return r;
	fprintf(stderr, "== test_basic\n");
	test_basic();
	fprintf(stderr, "== test_large\n");
	test_large();
	fprintf(stderr, "== test_stream_stdin\n");
	test_stream_stdin();
	fprintf(stderr, "== test_hostkey_and_auth\n");
	test_hostkey_and_auth();
	fprintf(stderr, "== test_async\n");
	test_async();
	tdb_stop(&db);
	printf("ok\n");
	return 0;
}
