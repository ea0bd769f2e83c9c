/* test_exec_async.c - fb_exec_async end to end without a VM, and proof that it
 * never blocks on the holder: the fake holder (a unix-socket server answering
 * the status request) runs on the SAME loop as the op, so a synchronous status
 * RPC inside fb_exec_async could never be answered.
 *
 * Setup (root only, else skip): a private network namespace with lo up, so a
 * private dropbear can listen on 127.0.0.1:22 (the port target_from_status
 * uses) as user "fleetbox" (tdb_start_as); a fake store with one "running"
 * member (config.json, pidfile naming us, .lock write-locked by us, the pinned
 * host key). Covered: concurrent runs, status errors (not running, holder error),
 * cancellation before the loop runs, during the status request (the holder
 * answers anyway / sits on it: the op ends at once), while the status dial
 * retries against a stale socket (a second "running" member, web-3, whose
 * socket nobody listens on: the op ends at once, not after the 2 s dial
 * window), and during the SSH command: each callback runs exactly once, and
 * the loop closes cleanly.
 * Issue 8 (exec options and bounds): argv quoting, stdin (small and several
 * windows), env, cwd (and exit 126), root via sudo -n, streaming callbacks in
 * arrival order, no_capture; timeout_ms and fb_exec_cancel kill the remote
 * process (dropbear runs here: /proc shows the guest side); tokens are safe
 * after and inside the callback; 20 concurrent execs through dropbear's limit
 * of 5 unauthenticated connections; the blocking calls (in a child, so this
 * loop keeps serving the fake holder); and each way of dying: the member
 * reported stopped, the holder's lock released, the server frozen (keepalive
 * silence), the server killed. */
#include "fleetbox/uv.h"
#include "rpc/msg.h"
#include "rpc/wire.h"
#include "util/fileio.h"
#include "dropbear.h"
#include "t.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define MEMBER "web-1"
#define STALE "web-3" /* "running", but nobody listens on its socket */

static struct tdb db;
static uv_loop_t loop;

/* ---- fake holder ---- */

enum mode { M_RUNNING, M_STARTING, M_ERROR, M_CANCEL_THEN_REPLY, M_HOLD, M_STOPPED };
static enum mode mode;
static int requests;            /* status requests received */
static int hangups;             /* connections closed by the client side */
static fb_exec_op *cancel_on_request;
static uv_pipe_t server;

struct hconn {
	uv_pipe_t pipe;
	uv_write_t wr;
	char *reply;
	char in[512];
	size_t in_len;
};
static struct hconn *held;

static void hconn_closed(uv_handle_t *h)
{
	struct hconn *c = h->data;
	free(c->reply);
	free(c);
}

static void replied(uv_write_t *w, int status)
{
	(void)status;
	struct hconn *c = w->data;
	uv_close((uv_handle_t *)&c->pipe, hconn_closed);
}

static void reply(struct hconn *c)
{
	struct rpc_status st = { .name = (char *)MEMBER, .pid = getpid(), .running = true };
	struct rpc_reply rep = { 0 };
	if (mode == M_ERROR) {
		rep.error = (char *)"holder exploded";
	} else {
		st.state = mode == M_STARTING ? FB_STATE_STARTING
			   : mode == M_STOPPED	? FB_STATE_STOPPED
						: FB_STATE_RUNNING;
		st.ip = mode == M_STARTING ? NULL : (char *)"127.0.0.1";
		if (mode == M_STOPPED)
			st.error = (char *)"qemu exited: killed by signal 9";
		rep.status = &st;
	}
	size_t len;
	CHECK(rpc_reply_encode(&rep, &c->reply, &len) == 0);
	uv_buf_t b = uv_buf_init(c->reply, (unsigned)len);
	c->wr.data = c;
	CHECK(uv_write(&c->wr, (uv_stream_t *)&c->pipe, &b, 1, replied) == 0);
}

static void h_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
	struct hconn *c = h->data;
	(void)s;
	*b = uv_buf_init(c->in + c->in_len, (unsigned)(sizeof(c->in) - c->in_len - 1));
}

static void h_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	(void)b;
	struct hconn *c = st->data;
	if (n < 0) {
		hangups++;
		if (held == c)
			held = NULL;
		uv_close((uv_handle_t *)&c->pipe, hconn_closed);
		return;
	}
	c->in_len += (size_t)n;
	c->in[c->in_len] = '\0';
	if (!strchr(c->in, '\n'))
		return;
	CHECK_STREQ(c->in, "{\"cmd\":\"status\"}\n");
	requests++;
	if (mode == M_HOLD) {
		held = c; /* keep reading: the client's hang-up shows as EOF */
		return;
	}
	uv_read_stop(st);
	if (mode == M_CANCEL_THEN_REPLY) {
		/* the op is mid-request: cancel it, then answer "running" anyway */
		fb_exec_cancel(cancel_on_request);
		mode = M_RUNNING;
	}
	reply(c);
}

static void on_holder_conn(uv_stream_t *s, int status)
{
	CHECK(status == 0);
	struct hconn *c = calloc(1, sizeof(*c));
	CHECK(c);
	uv_pipe_init(&loop, &c->pipe, 0);
	c->pipe.data = c;
	CHECK(uv_accept(s, (uv_stream_t *)&c->pipe) == 0);
	CHECK(uv_read_start((uv_stream_t *)&c->pipe, h_alloc, h_read) == 0);
}

/* ---- fake store ---- */

static int lock_fd[2] = { -1, -1 };

/* A member that looks running: config, pinned key, pidfile naming us, lock. */
static void make_member(const char *name, int *lock)
{
	const char *root = db.store;
	char dir[PATH_MAX], p[PATH_MAX], run[PATH_MAX];
	CHECK(wire_member_dir(root, name, dir, sizeof(dir)) == 0);
	CHECK(mkdir_p(dir, 0700) == 0);
	FMT(run, "%s/run", root);
	CHECK(mkdir_p(run, 0700) == 0);
	FMT(p, "%s/config.json", dir);
	CHECK(file_write_atomic(p, "{}\n", 3, 0600) == 0);
	char *key = NULL;
	size_t n;
	FMT(p, "%s/ssh_host_ed25519_key.pub", db.hostdir);
	CHECK(file_read_all(p, 4096, &key, &n) == 0);
	FMT(p, "%s/ssh_host_ed25519_key.pub", dir);
	CHECK(file_write_atomic(p, key, n, 0644) == 0);
	free(key);
	FMT(p, "%s/.lock", dir);
	/* held like a holder holds it (src/loop/member.c): an OFD write lock */
	*lock = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	CHECK(*lock >= 0 && fcntl(*lock, F_OFD_SETLK, &fl) == 0);
	char pid[32];
	FMT(pid, "%d\n", (int)getpid());
	CHECK(wire_pidfile_path(root, name, p, sizeof(p)) == 0);
	CHECK(file_write_atomic(p, pid, strlen(pid), 0600) == 0);
}

static void make_store(void)
{
	char p[PATH_MAX];
	make_member(MEMBER, &lock_fd[0]);
	CHECK(wire_sock_path(db.store, MEMBER, p, sizeof(p)) == 0);
	CHECK(uv_pipe_init(&loop, &server, 0) == 0);
	CHECK(uv_pipe_bind(&server, p) == 0);
	CHECK(uv_listen((uv_stream_t *)&server, 16, on_holder_conn) == 0);

	/* STALE: its socket file is there (bound, never listened on, closed), as
	 * a crashed holder leaves it: every dial is refused */
	make_member(STALE, &lock_fd[1]);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	CHECK(wire_sock_path(db.store, STALE, a.sun_path, sizeof(a.sun_path)) == 0);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	close(fd);
}

/* ---- ops ---- */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct call {
	int calls;
	int status;
	double at; /* when the callback ran */
	int exit_status;
	char out[256];
	char msg[512];
	bool res_empty;
};

static void on_done(void *data, int status, fb_exec_result *res, const fb_error *err)
{
	struct call *c = data;
	c->calls++;
	c->status = status;
	c->at = now_s();
	c->exit_status = res->exit_status;
	c->res_empty = !res->out || res->out_len == 0;
	snprintf(c->out, sizeof(c->out), "%s", res->out ? res->out : "");
	snprintf(c->msg, sizeof(c->msg), "%s", err ? err->message : "");
	CHECK(status < 0 ? err && err->code == status : err == NULL);
}

static fb_exec_op *start_on(const char *name, const char *cmd, struct call *c)
{
	fb_exec_op *op = NULL;
	fb_error err;
	memset(c, 0, sizeof(*c));
	int r = fb_exec_async(&loop, db.store, name, cmd, on_done, c, &op, &err);
	if (r < 0)
		fprintf(stderr, "fb_exec_async: %d %s\n", r, err.message);
	CHECK(r == 0 && op != NULL);
	return op;
}

static fb_exec_op *start(const char *cmd, struct call *c)
{
	return start_on(MEMBER, cmd, c);
}

/* Runs the loop until every call in cs has been called back. Bounded: the
 * ops' own timeouts end them; 2000 iterations of the loop is a backstop. */
static void run_until(struct call *cs, int n)
{
	for (int i = 0; i < 2000; i++) {
		int done = 0;
		for (int k = 0; k < n; k++)
			done += cs[k].calls > 0;
		if (done == n)
			return;
		uv_run(&loop, UV_RUN_ONCE);
	}
	CHECK(!"ops did not finish");
}

static void test_run_concurrent(void)
{
	mode = M_RUNNING;
	requests = 0;
	struct call cs[3];
	char cmd[3][64];
	for (int i = 0; i < 3; i++) {
		FMT(cmd[i], "echo hi-%d; echo \"$USER\"; exit %d", i, 3 + i);
		start(cmd[i], &cs[i]);
	}
	run_until(cs, 3);
	for (int i = 0; i < 3; i++) {
		char want[64];
		FMT(want, "hi-%d\nfleetbox\n", i);
		if (cs[i].status != 0)
			fprintf(stderr, "op %d: %d %s\n", i, cs[i].status, cs[i].msg);
		CHECK(cs[i].calls == 1 && cs[i].status == 0);
		CHECK_STREQ(cs[i].out, want);
		CHECK(cs[i].exit_status == 3 + i);
	}
	CHECK(requests == 3);
}

static void test_status_errors(void)
{
	struct call c;
	mode = M_STARTING;
	start("true", &c);
	run_until(&c, 1);
	CHECK(c.calls == 1 && c.status == -ENOTCONN && c.res_empty);
	CHECK_STREQ(c.msg, MEMBER " is starting");

	mode = M_ERROR;
	start("true", &c);
	run_until(&c, 1);
	CHECK(c.calls == 1 && c.status == -EIO);
	CHECK_STREQ(c.msg, "holder exploded");

	/* local checks still fail at once, without a callback */
	fb_error err;
	fb_exec_op *op = (fb_exec_op *)&loop;
	CHECK(fb_exec_async(&loop, db.store, "web-2", "true", on_done, &c, &op, &err) == -ENOENT);
	CHECK(op == NULL && strstr(err.message, "no such member: web-2"));
}

static void test_cancel_before_run(void)
{
	char flag[PATH_MAX], cmd[PATH_MAX + 16];
	FMT(flag, "%s/ran0", db.dir);
	FMT(cmd, "touch '%s'", flag);
	mode = M_RUNNING;
	requests = 0;
	struct call c;
	fb_exec_op *op = start(cmd, &c);
	fb_exec_cancel(op);
	run_until(&c, 1);
	CHECK(c.calls == 1 && c.status == -ECANCELED && c.res_empty);
	CHECK_STREQ(c.msg, "command on " MEMBER " cancelled");
	/* the status request ended before it was sent; no command followed */
	CHECK(requests == 0);
	CHECK(access(flag, F_OK) != 0);
}

static void test_cancel_during_status(void)
{
	/* cancelled while the holder holds the request; the holder then answers
	 * "running": the op must still report -ECANCELED and not run the command */
	char flag[PATH_MAX], cmd[PATH_MAX + 16];
	FMT(flag, "%s/ran", db.dir);
	FMT(cmd, "touch '%s'", flag);
	mode = M_CANCEL_THEN_REPLY;
	requests = 0;
	struct call c;
	cancel_on_request = start(cmd, &c);
	run_until(&c, 1);
	CHECK(requests == 1);
	CHECK(c.calls == 1 && c.status == -ECANCELED);
	CHECK(access(flag, F_OK) != 0);

	/* the holder sits on the request: the cancel alone ends the op, in the
	 * next loop iteration, without waiting for the 2 s read timeout */
	mode = M_HOLD;
	held = NULL;
	hangups = 0;
	fb_exec_op *op = start("true", &c);
	for (int i = 0; i < 500 && !held; i++)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK(held && c.calls == 0);
	double t0 = now_s();
	fb_exec_cancel(op);
	fb_exec_cancel(op); /* idempotent before the callback */
	CHECK(c.calls == 0); /* never from inside fb_exec_cancel */
	uv_run(&loop, UV_RUN_NOWAIT);
	CHECK(c.calls == 1 && c.status == -ECANCELED && c.res_empty);
	CHECK_STREQ(c.msg, "command on " MEMBER " cancelled");
	CHECK(c.at - t0 < 0.5);
	/* and the holder, still holding the request, sees the client hang up */
	for (int i = 0; i < 500 && held; i++)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK(!held && hangups == 1);
	uv_run(&loop, UV_RUN_NOWAIT);
	CHECK(c.calls == 1);
}

static struct {
	fb_exec_op *op;
	double at;
} stale;

static void on_stale_timer(uv_timer_t *t)
{
	fb_exec_cancel(stale.op);
	stale.at = now_s();
	uv_timer_stop(t);
}

static void test_cancel_during_dial_retry(void)
{
	/* control: left alone, the op retries the refused dial for the whole
	 * status dial window (CTL_STATUS_MS, 2 s) before it gives up */
	struct call c;
	double t0 = now_s();
	start_on(STALE, "true", &c);
	run_until(&c, 1);
	CHECK(c.calls == 1 && c.status == -ECONNREFUSED && c.res_empty);
	CHECK(strstr(c.msg, STALE " is not running") != NULL);
	CHECK(c.at - t0 >= 1.9);

	/* cancelled 150 ms in, i.e. in the middle of the retries: it ends at once */
	uv_timer_t timer;
	CHECK(uv_timer_init(&loop, &timer) == 0);
	t0 = now_s();
	stale.op = start_on(STALE, "true", &c);
	stale.at = 0;
	CHECK(uv_timer_start(&timer, on_stale_timer, 150, 0) == 0);
	run_until(&c, 1);
	CHECK(stale.at > 0);
	CHECK(c.calls == 1 && c.status == -ECANCELED && c.res_empty);
	CHECK_STREQ(c.msg, "command on " STALE " cancelled");
	CHECK(c.at - t0 < 0.5);
	CHECK(c.at - stale.at < 0.25);
	uv_close((uv_handle_t *)&timer, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	CHECK(c.calls == 1);
}

static struct {
	fb_exec_op *op;
	char flag[PATH_MAX];
	int ticks;
	bool cancelled;
} watch;

/* Cancels once the command proves it is running (it created the flag). */
static void on_watch(uv_timer_t *t)
{
	if (access(watch.flag, F_OK) == 0) {
		fb_exec_cancel(watch.op);
		watch.cancelled = true;
		uv_timer_stop(t);
	} else if (++watch.ticks > 500) {
		CHECK(!"command never started");
	}
}

static void test_cancel_during_ssh(void)
{
	mode = M_RUNNING;
	FMT(watch.flag, "%s/started", db.dir);
	char cmd[PATH_MAX + 32];
	FMT(cmd, "touch '%s'; sleep 30", watch.flag);
	struct call c;
	double t0 = now_s();
	watch.op = start(cmd, &c);
	uv_timer_t timer;
	CHECK(uv_timer_init(&loop, &timer) == 0);
	CHECK(uv_timer_start(&timer, on_watch, 20, 20) == 0);
	run_until(&c, 1);
	CHECK(watch.cancelled);
	CHECK(c.calls == 1 && c.status == -ECANCELED);
	CHECK(strstr(c.msg, "cancelled") != NULL);
	CHECK(now_s() - t0 < 15);
	uv_close((uv_handle_t *)&timer, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
}

/* ---- exec options, bounds and cancel (issue 8) ---- */

struct stream {
	int chunks;
	double first_at;
	char buf[256];
	size_t len;
};

static void on_chunk(void *data, const char *buf, size_t len)
{
	struct stream *s = data;
	if (s->chunks++ == 0)
		s->first_at = now_s();
	size_t room = sizeof(s->buf) - 1 - s->len;
	memcpy(s->buf + s->len, buf, len < room ? len : room);
	s->len += len < room ? len : room;
	s->buf[s->len] = '\0';
}

static fb_exec_op *start_ex(const fb_exec_opts *o, struct call *c)
{
	fb_exec_op *op = NULL;
	fb_error err;
	memset(c, 0, sizeof(*c));
	int r = fb_exec_ex_async(&loop, db.store, MEMBER, o, on_done, c, &op, &err);
	if (r < 0)
		fprintf(stderr, "fb_exec_ex_async: %d %s\n", r, err.message);
	CHECK(r == 0 && op != NULL);
	return op;
}

static void run_ex(const fb_exec_opts *o, struct call *c)
{
	start_ex(o, c);
	run_until(c, 1);
	if (c->status != 0)
		fprintf(stderr, "exec: %d %s\n", c->status, c->msg);
}

/* Live (not zombie: PID 1 reaps late) processes whose argv is exactly
 * "sleep <arg>": dropbear runs on this machine, so the guest side is here. */
static int live_sleeps(const char *arg)
{
	int n = 0;
	char want[64];
	size_t wl = (size_t)snprintf(want, sizeof(want), "sleep%c%s", '\0', arg) + 1;
	DIR *d = opendir("/proc");
	CHECK(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		char p[300], *buf = NULL, *st = NULL;
		size_t len = 0, sl = 0;
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		FMT(p, "/proc/%s/cmdline", de->d_name);
		if (file_read_all(p, 4096, &buf, &len) == 0 && len == wl && !memcmp(buf, want, wl)) {
			FMT(p, "/proc/%s/stat", de->d_name);
			if (file_read_all(p, 4096, &st, &sl) == 0 && strstr(st, ") Z ") == NULL) {
				n++;
				if (getenv("DEBUG_SLEEPS"))
					fprintf(stderr, "live: %s\n", st);
			}
			free(st);
		}
		free(buf);
	}
	closedir(d);
	return n;
}

static void test_exec_options(void)
{
	mode = M_RUNNING;
	struct call c;
	/* argv: every word arrives as it is, quotes, spaces and $ included */
	const char *argv[] = { "printf", "[%s]", "a b", "it's", "$HOME", "", NULL };
	run_ex(&(fb_exec_opts){ .argv = argv }, &c);
	CHECK(c.status == 0 && c.exit_status == 0);
	CHECK_STREQ(c.out, "[a b][it's][$HOME][]");
	/* stdin, env, cwd */
	const char *env[] = { "FOO=x y'z", "BAR_2=", NULL };
	run_ex(&(fb_exec_opts){ .command = "cat; echo \"|$FOO|$BAR_2|\"; pwd", .env = env,
				.cwd = "/tmp", .stdin_data = "in\n", .stdin_len = 3 }, &c);
	CHECK(c.status == 0);
	CHECK_STREQ(c.out, "in\n|x y'z||\n/tmp\n");
	/* a big stdin goes through whole (several channel windows of 32 KiB chunks) */
	size_t big = 300000;
	char *data = malloc(big);
	CHECK(data);
	for (size_t i = 0; i < big; i++)
		data[i] = (char)('a' + i % 26);
	run_ex(&(fb_exec_opts){ .command = "wc -c", .stdin_data = data, .stdin_len = big }, &c);
	free(data);
	CHECK(c.status == 0 && atol(c.out) == (long)big);
	/* cwd that does not exist: exit 126 with the shell's complaint */
	run_ex(&(fb_exec_opts){ .command = "pwd", .cwd = "/nonexistent/dir" }, &c);
	CHECK(c.status == 0 && c.exit_status == 126 && c.out[0] == '\0');
	/* root: sudo -n sh -c (the test's user is a uid-0 alias, sudo lets root) */
	run_ex(&(fb_exec_opts){ .command = "id -u; echo \"$FOO\"", .root = 1, .env = env + 1 }, &c);
	CHECK(c.status == 0 && c.exit_status == 0);
	CHECK_STREQ(c.out, "0\n\n");
	/* bad options are refused before anything starts */
	fb_error err;
	fb_exec_op *op;
	const char *badenv[] = { "1X=2", NULL };
	CHECK(fb_exec_ex_async(&loop, db.store, MEMBER, &(fb_exec_opts){ .command = "true",
			       .env = badenv }, on_done, &c, &op, &err) == -EINVAL);
	CHECK(op == NULL && strstr(err.message, "1X=2"));
	CHECK(fb_exec_ex_async(&loop, db.store, MEMBER, &(fb_exec_opts){ .command = "true",
			       .argv = argv }, on_done, &c, &op, &err) == -EINVAL);
	CHECK(fb_exec_ex_async(&loop, db.store, MEMBER, &(fb_exec_opts){ 0 }, on_done, &c, &op,
			       &err) == -EINVAL);
}

static void test_streaming(void)
{
	struct stream so = { 0 }, se = { 0 };
	struct call c;
	double t0 = now_s();
	run_ex(&(fb_exec_opts){ .command = "echo a; echo e >&2; sleep 1; echo b",
				.on_stdout = on_chunk, .on_stderr = on_chunk, .stream_data = &so },
	       &c);
	CHECK(c.status == 0);
	/* one stream struct for both: arrival order a, e, b */
	CHECK_STREQ(so.buf, "a\ne\nb\n");
	CHECK(so.first_at - t0 < c.at - t0 - 0.5); /* "a" arrived a second before the end */
	CHECK_STREQ(c.out, "a\nb\n");
	/* no_capture: streamed only */
	memset(&so, 0, sizeof(so));
	run_ex(&(fb_exec_opts){ .command = "echo only", .on_stdout = on_chunk, .stream_data = &so,
				.no_capture = 1 }, &c);
	CHECK(c.status == 0 && c.out[0] == '\0');
	CHECK_STREQ(so.buf, "only\n");
	(void)se;
}

static void test_timeout_kills(void)
{
	struct call c;
	CHECK(live_sleeps("313") == 0);
	double t0 = now_s();
	run_ex(&(fb_exec_opts){ .command = "sleep 313; echo never", .timeout_ms = 1000 }, &c);
	double took = now_s() - t0;
	CHECK(c.status == -ETIMEDOUT);
	CHECK(strstr(c.msg, "timed out after 1000 ms") && strstr(c.msg, "was killed"));
	CHECK(took >= 0.9 && took < 3);
	CHECK(live_sleeps("313") == 0);
	printf("bench exec_timeout_1000ms_returned_s=%.2f\n", took);
}

struct cancel_when {
	fb_exec_op *op;
	const char *arg;
	uv_timer_t t;
	int ticks;
};

static void on_cancel_tick(uv_timer_t *t)
{
	struct cancel_when *w = t->data;
	if (live_sleeps(w->arg) > 0 || ++w->ticks > 400) {
		fb_exec_cancel(w->op);
		uv_timer_stop(t);
	}
}

static void test_cancel_kills(void)
{
	struct call c;
	struct cancel_when w = { .arg = "314" };
	w.op = start_ex(&(fb_exec_opts){ .command = "sleep 314" }, &c);
	CHECK(uv_timer_init(&loop, &w.t) == 0);
	w.t.data = &w;
	CHECK(uv_timer_start(&w.t, on_cancel_tick, 20, 20) == 0);
	run_until(&c, 1);
	CHECK(w.ticks <= 400);
	CHECK(c.status == -ECANCELED);
	CHECK(strstr(c.msg, "cancelled; its process group in the guest"));
	CHECK(live_sleeps("314") == 0); /* gone before the callback ran */
	uv_close((uv_handle_t *)&w.t, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	/* the plain fb_exec_async is cancelled the same way */
	w = (struct cancel_when){ .arg = "315" };
	w.op = start("sleep 315", &c);
	CHECK(uv_timer_init(&loop, &w.t) == 0);
	w.t.data = &w;
	CHECK(uv_timer_start(&w.t, on_cancel_tick, 20, 20) == 0);
	run_until(&c, 1);
	CHECK(c.status == -ECANCELED && live_sleeps("315") == 0);
	uv_close((uv_handle_t *)&w.t, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
}

static fb_exec_op *self_op;

static void on_done_cancel_self(void *data, int status, fb_exec_result *res, const fb_error *err)
{
	fb_exec_cancel(self_op); /* inside the callback: a no-op */
	on_done(data, status, res, err);
}

static void test_token_after_callback(void)
{
	struct call c;
	fb_exec_op *op = start("echo x", &c);
	run_until(&c, 1);
	CHECK(c.status == 0);
	fb_exec_cancel(op); /* after the callback: a no-op, no use-after-free */
	fb_exec_cancel(op);
	fb_error err;
	memset(&c, 0, sizeof(c));
	CHECK(fb_exec_async(&loop, db.store, MEMBER, "echo y", on_done_cancel_self, &c, &self_op,
			    &err) == 0);
	CHECK(self_op != op); /* tokens are not reused */
	run_until(&c, 1);
	CHECK(c.status == 0 && c.calls == 1);
	CHECK_STREQ(c.out, "y\n");
	fb_exec_cancel(self_op);
	uv_run(&loop, UV_RUN_NOWAIT);
	CHECK(c.calls == 1);
}

static void test_concurrent_20(void)
{
	/* dropbear closes a sixth unauthenticated connection from one source:
	 * the handshake is retried, every op succeeds */
	struct call cs[20];
	char cmd[20][32];
	for (int i = 0; i < 20; i++) {
		FMT(cmd[i], "echo %d", i);
		start(cmd[i], &cs[i]);
	}
	run_until(cs, 20);
	for (int i = 0; i < 20; i++) {
		char want[16];
		FMT(want, "%d\n", i);
		if (cs[i].status != 0)
			fprintf(stderr, "op %d: %d %s\n", i, cs[i].status, cs[i].msg);
		CHECK(cs[i].status == 0);
		CHECK_STREQ(cs[i].out, want);
	}
}

/* The blocking calls run their own loop: run them in a child while this
 * process's loop serves the fake holder. Returns the child's exit status. */
static int in_child(void (*fn)(void))
{
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		fn();
		_exit(0);
	}
	int st = 0;
	for (int i = 0; i < 6000; i++) {
		uv_run(&loop, UV_RUN_NOWAIT);
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
		poll(NULL, 0, 5);
	}
	kill(pid, SIGKILL);
	CHECK(!"child did not finish");
	return -1;
}

static void blocking_cases(void)
{
	fb_exec_result res;
	fb_error err;
	CHECK(fb_exec(db.store, MEMBER, "echo hi; exit 3", &res, &err) == 0);
	CHECK(res.exit_status == 3 && err.code == 0);
	CHECK_STREQ(res.out, "hi\n");
	fb_exec_result_free(&res);
	const char *argv[] = { "sh", "-c", "cat; echo \"$0 $ZZ\"", "zero", NULL };
	const char *env[] = { "ZZ=zz", NULL };
	struct stream s = { 0 };
	CHECK(fb_exec_ex(db.store, MEMBER, &(fb_exec_opts){ .argv = argv, .env = env,
			 .stdin_data = "x", .stdin_len = 1, .on_stdout = on_chunk,
			 .stream_data = &s }, &res, &err) == 0);
	CHECK_STREQ(res.out, "xzero zz\n");
	CHECK_STREQ(s.buf, "xzero zz\n");
	fb_exec_result_free(&res);
	double t0 = now_s();
	CHECK(fb_exec_ex(db.store, MEMBER, &(fb_exec_opts){ .command = "sleep 316",
			 .timeout_ms = 800 }, &res, &err) == -ETIMEDOUT);
	CHECK(now_s() - t0 < 3 && strstr(err.message, "timed out"));
	CHECK(live_sleeps("316") == 0);
	fb_exec_result_free(&res);
}

static void test_blocking_in_child(void)
{
	mode = M_RUNNING;
	CHECK(in_child(blocking_cases) == 0);
}

/* The member's holder reports it stopped a second into `sleep 317`. */
static void on_stop_member(uv_timer_t *t)
{
	mode = M_STOPPED;
	uv_timer_stop(t);
}

static void test_member_stops(void)
{
	mode = M_RUNNING;
	struct call c;
	uv_timer_t t;
	CHECK(uv_timer_init(&loop, &t) == 0);
	start("sleep 317", &c);
	double t0 = now_s();
	CHECK(uv_timer_start(&t, on_stop_member, 1000, 0) == 0);
	run_until(&c, 1);
	double after = c.at - t0 - 1.0;
	CHECK(c.status == -EHOSTDOWN);
	CHECK(strstr(c.msg, MEMBER " became stopped (qemu exited: killed by signal 9) while the "
			    "command ran"));
	CHECK(after < 2.5);
	printf("bench exec_member_stopped_returned_after_s=%.2f\n", after);
	uv_close((uv_handle_t *)&t, NULL);
	mode = M_RUNNING;
	uv_run(&loop, UV_RUN_NOWAIT);
}

/* The holder dies: its lock is released (the fd closed) mid-command. */
static void on_drop_lock(uv_timer_t *t)
{
	close(lock_fd[0]);
	lock_fd[0] = -1;
	uv_timer_stop(t);
}

static void test_holder_gone(void)
{
	struct call c;
	uv_timer_t t;
	CHECK(uv_timer_init(&loop, &t) == 0);
	start("sleep 318", &c);
	double t0 = now_s();
	CHECK(uv_timer_start(&t, on_drop_lock, 1000, 0) == 0);
	run_until(&c, 1);
	double after = c.at - t0 - 1.0;
	CHECK(c.status == -EHOSTDOWN && strstr(c.msg, "lost its holder"));
	CHECK(after < 2.5);
	printf("bench exec_holder_gone_returned_after_s=%.2f\n", after);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	/* a new lock: the member looks held again */
	char p[PATH_MAX];
	CHECK(wire_member_dir(db.store, MEMBER, p, sizeof(p)) == 0);
	CHECK(strlen(p) + 8 < sizeof(p));
	strcat(p, "/.lock");
	lock_fd[0] = open(p, O_RDWR | O_CLOEXEC);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	CHECK(lock_fd[0] >= 0 && fcntl(lock_fd[0], F_OFD_SETLK, &fl) == 0);
}

/* Signals dropbear's per-connection children (the listener's children). */
static int signal_sessions(int sig)
{
	int n = 0;
	DIR *d = opendir("/proc");
	CHECK(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		char p[300], *st = NULL;
		size_t sl = 0;
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		FMT(p, "/proc/%s/stat", de->d_name);
		if (file_read_all(p, 4096, &st, &sl) == 0) {
			const char *rp = strrchr(st, ')');
			int ppid = 0;
			char state = 0;
			if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == db.pid &&
			    state != 'Z' && strstr(st, "(dropbear)")) {
				kill((pid_t)atoi(de->d_name), sig);
				n++;
			}
		}
		free(st);
	}
	closedir(d);
	return n;
}

/* Sends sig (0: none) to every `sleep <arg>`; returns how many there are. */
static int signal_sleeps(const char *arg, int sig)
{
	DIR *d = opendir("/proc");
	CHECK(d);
	struct dirent *de;
	char want[64];
	int n = 0;
	size_t wl = (size_t)snprintf(want, sizeof(want), "sleep%c%s", '\0', arg) + 1;
	while ((de = readdir(d))) {
		char p[300], *buf = NULL;
		size_t len = 0;
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		FMT(p, "/proc/%s/cmdline", de->d_name);
		if (file_read_all(p, 4096, &buf, &len) == 0 && len == wl && !memcmp(buf, want, wl)) {
			if (sig)
				kill((pid_t)atoi(de->d_name), sig);
			n++;
		}
		free(buf);
	}
	closedir(d);
	return n;
}

/* Kills stray `sleep <arg>` left by a server that died under them. */
static void kill_sleeps(const char *arg)
{
	signal_sleeps(arg, SIGKILL);
}

static struct {
	int sig;
	int hit;
	const char *arg;
	double at; /* when the server was signalled */
} sess;

/* Polls until the command really runs (under load the exec may take more
 * than the first second to start), then signals the server's session. */
static void on_signal_session(uv_timer_t *t)
{
	if (signal_sleeps(sess.arg, 0) == 0)
		return;
	sess.at = now_s();
	sess.hit = signal_sessions(sess.sig);
	if (sess.sig == SIGKILL)
		kill(db.pid, SIGKILL);
	uv_timer_stop(t);
}

/* Runs `sleep <arg>`, signals the server's session process once the command
 * runs (at least 1 s in); returns how long the call took after that. */
static double exec_then_signal(int sig, const char *arg, struct call *c)
{
	char cmd[64];
	uv_timer_t t;
	FMT(cmd, "sleep %s", arg);
	CHECK(uv_timer_init(&loop, &t) == 0);
	start(cmd, c);
	sess.sig = sig;
	sess.hit = 0;
	sess.arg = arg;
	CHECK(uv_timer_start(&t, on_signal_session, 1000, 100) == 0);
	run_until(c, 1);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	CHECK(sess.hit == 1);
	return c->at - sess.at;
}

static void test_server_silent(void)
{
	/* a frozen server (a hung guest): keepalives go unanswered */
	struct call c;
	double after = exec_then_signal(SIGSTOP, "319", &c);
	CHECK(c.status == -ETIMEDOUT && strstr(c.msg, "no answer for 10 s"));
	CHECK(after >= 7.5 && after < 12); /* 10 s from the last answer (a keepalive reply) */
	printf("bench exec_server_frozen_returned_after_s=%.2f\n", after);
	signal_sessions(SIGKILL);
	signal_sessions(SIGCONT);
	kill_sleeps("319");
}

static void test_server_dies(void)
{
	struct call c;
	double after = exec_then_signal(SIGKILL, "320", &c);
	if (c.status != -ECONNRESET)
		fprintf(stderr, "server died: %d %s\n", c.status, c.msg);
	CHECK(c.status == -ECONNRESET && strstr(c.msg, "connection closed by 127.0.0.1"));
	CHECK(after < 1);
	printf("bench exec_server_killed_returned_after_s=%.2f\n", after);
	kill_sleeps("320");
	int st;
	waitpid(db.pid, &st, 0);
	db.pid = 0;
}

int main(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "skip: needs root (private network namespace)\n");
		return TEST_SKIP;
	}
	if (tdb_private_netns() < 0) {
		fprintf(stderr, "skip: no private network namespace: %s\n", strerror(errno));
		return TEST_SKIP;
	}
	/* the fake holder may answer a request already cancelled (peer gone) */
	signal(SIGPIPE, SIG_IGN);
	int r = tdb_start_as(&db, 22, "fleetbox");
	if (r)
		return r;
	CHECK(uv_loop_init(&loop) == 0);
	make_store();

	test_run_concurrent();
	test_status_errors();
	test_cancel_before_run();
	test_cancel_during_status();
	test_cancel_during_dial_retry();
	test_cancel_during_ssh();
	test_exec_options();
	test_streaming();
	test_timeout_kills();
	test_cancel_kills();
	test_token_after_callback();
	test_concurrent_20();
	test_blocking_in_child();
	test_member_stops();
	test_holder_gone();
	test_server_silent();
	test_server_dies();

	uv_close((uv_handle_t *)&server, NULL);
	CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
	CHECK(uv_loop_close(&loop) == 0);
	close(lock_fd[0]);
	close(lock_fd[1]);
	tdb_stop(&db);
	printf("ok\n");
	return 0;
}
