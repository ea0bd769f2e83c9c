#include "client/ctl.h"
#include "client/store.h"
#include "rpc/frame.h"
#include "rpc/wire.h"
#include "util/err.h"
#include "util/fileio.h"
#include "util/owner.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

extern char **environ;

/* ---------------- async request ---------------- */

struct req {
	uv_loop_t *loop;
	uv_pipe_t pipe;
	uv_timer_t timer;
	uv_connect_t conn;
	uv_write_t wr;
	struct frame fr;
	char path[WIRE_SUN_PATH_MAX];
	char member[FB_NAME_MAX + 1];
	char *line;
	size_t len;
	uint64_t dial_deadline;
	unsigned read_ms;
	bool pipe_open, done;
	int open_handles;
	int status;
	char *reply;
	struct err e;
	ctl_cb cb;
	void *data;
};

static void req_free_cb(uv_handle_t *h)
{
	struct req *r = h->data;
	if (--r->open_handles > 0)
		return;
	r->cb(r->data, r->status, r->status == 0 ? r->reply : NULL, r->status == 0 ? NULL : &r->e);
	frame_fini(&r->fr);
	free(r->line);
	free(r->reply);
	free(r);
}

static void req_finish(struct req *r, int status)
{
	if (r->done)
		return;
	r->done = true;
	r->status = status;
	uv_timer_stop(&r->timer);
	uv_close((uv_handle_t *)&r->timer, req_free_cb);
	/* Callers (pipe and read-timer callbacks, ctl_request_cancel) only finish
	 * while the pipe is open and not closing for a dial retry. */
	uv_close((uv_handle_t *)&r->pipe, req_free_cb);
}

static void req_dial(struct req *r);

static void on_retry_timer(uv_timer_t *t)
{
	struct req *r = t->data;
	req_dial(r);
}

static void on_pipe_closed_for_retry(uv_handle_t *h)
{
	struct req *r = h->data;
	r->pipe_open = false;
	if (r->done) { /* cancelled while the pipe was closing */
		req_free_cb(h);
		return;
	}
	uv_timer_start(&r->timer, on_retry_timer, 50, 0);
}

static void on_read_timeout(uv_timer_t *t)
{
	struct req *r = t->data;
	err_set(&r->e, -ETIMEDOUT, "no reply from %s's holder within %u ms", r->member, r->read_ms);
	req_finish(r, -ETIMEDOUT);
}

static void req_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
	(void)h;
	b->base = malloc(s);
	b->len = b->base ? s : 0;
}

static void on_reply(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct req *r = st->data;
	if (n > 0 && !r->done) {
		int fr = frame_feed(&r->fr, b->base, (size_t)n);
		char *line;
		size_t len;
		if (fr < 0) {
			err_set(&r->e, fr, "reply from %s's holder is too long", r->member);
			req_finish(r, fr);
		} else if (frame_next(&r->fr, &line, &len) == 1) {
			r->reply = strndup(line, len);
			if (!r->reply)
				err_set(&r->e, -ENOMEM, "out of memory");
			req_finish(r, r->reply ? 0 : -ENOMEM);
		}
	} else if (n < 0 && !r->done) {
		if (n == UV_EOF)
			err_set(&r->e, -ECONNRESET, "%s's holder closed the connection without a reply",
				r->member);
		else
			err_set(&r->e, (int)n, "read from %s's holder: %s", r->member, uv_strerror((int)n));
		req_finish(r, n == UV_EOF ? -ECONNRESET : (int)n);
	}
	free(b->base);
}

static void on_written(uv_write_t *w, int status)
{
	struct req *r = w->data;
	if (status < 0 && !r->done) {
		err_set(&r->e, status, "write to %s's holder: %s", r->member, uv_strerror(status));
		req_finish(r, status);
	}
}

static void on_connect(uv_connect_t *c, int status)
{
	struct req *r = c->data;
	if (r->done)
		return;
	if (status < 0) {
		bool transient = status == UV_ENOENT || status == UV_ECONNREFUSED || status == UV_EAGAIN;
		if (transient && uv_now(r->loop) < r->dial_deadline) {
			uv_close((uv_handle_t *)&r->pipe, on_pipe_closed_for_retry);
			return;
		}
		if (transient)
			err_set(&r->e, -ECONNREFUSED, "member %s is not running (no holder answers on %s)",
				r->member, r->path);
		else
			err_set(&r->e, status, "connect %s: %s", r->path, uv_strerror(status));
		req_finish(r, transient ? -ECONNREFUSED : status);
		return;
	}
	uv_buf_t b = uv_buf_init(r->line, (unsigned)r->len);
	r->wr.data = r;
	int e;
	if ((e = uv_write(&r->wr, (uv_stream_t *)&r->pipe, &b, 1, on_written)) < 0 ||
	    (e = uv_read_start((uv_stream_t *)&r->pipe, req_alloc, on_reply)) < 0) {
		err_set(&r->e, e, "talk to %s's holder: %s", r->member, uv_strerror(e));
		req_finish(r, e);
		return;
	}
	uv_timer_start(&r->timer, on_read_timeout, r->read_ms, 0);
}

static void req_dial(struct req *r)
{
	uv_pipe_init(r->loop, &r->pipe, 0);
	r->pipe.data = r;
	r->pipe_open = true;
	r->conn.data = r;
	uv_pipe_connect(&r->conn, &r->pipe, r->path, on_connect);
}

int ctl_request_async(uv_loop_t *loop, const char *root, const char *member, const char *line,
		      unsigned dial_ms, unsigned read_ms, ctl_cb cb, void *data)
{
	return ctl_request_start(loop, root, member, line, dial_ms, read_ms, cb, data, NULL);
}

void ctl_request_cancel(struct ctl_req *cr)
{
	struct req *r = (struct req *)cr;
	if (!r || r->done)
		return;
	err_set(&r->e, -ECANCELED, "request to %s's holder cancelled", r->member);
	if (r->pipe_open && !uv_is_closing((uv_handle_t *)&r->pipe)) {
		req_finish(r, -ECANCELED);
		return;
	}
	/* Between dials: the pipe is closed (count it as such now) or closing
	 * (on_pipe_closed_for_retry counts it); the retry timer must not fire. */
	r->done = true;
	r->status = -ECANCELED;
	if (!r->pipe_open)
		r->open_handles--;
	uv_timer_stop(&r->timer);
	uv_close((uv_handle_t *)&r->timer, req_free_cb);
}

int ctl_request_start(uv_loop_t *loop, const char *root, const char *member, const char *line,
		      unsigned dial_ms, unsigned read_ms, ctl_cb cb, void *data,
		      struct ctl_req **out)
{
	if (out)
		*out = NULL;
	if (!wire_name_valid(member))
		return -EINVAL;
	struct req *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	int rc = wire_sock_path(root, member, r->path, sizeof(r->path));
	size_t len = strlen(line);
	r->line = malloc(len + 2);
	if (rc < 0 || !r->line) {
		free(r->line);
		free(r);
		return rc < 0 ? rc : -ENOMEM;
	}
	memcpy(r->line, line, len);
	if (len == 0 || line[len - 1] != '\n')
		r->line[len++] = '\n';
	r->line[len] = '\0';
	r->len = len;
	snprintf(r->member, sizeof(r->member), "%s", member);
	r->loop = loop;
	r->cb = cb;
	r->data = data;
	r->read_ms = read_ms;
	frame_init(&r->fr, FB_LINE_MAX);
	uv_update_time(loop);
	r->dial_deadline = uv_now(loop) + dial_ms;
	uv_timer_init(loop, &r->timer);
	r->timer.data = r;
	r->open_handles = 2;
	req_dial(r);
	if (out)
		*out = (struct ctl_req *)r;
	return 0;
}

/* ---------------- blocking wrappers ---------------- */

int ctl_run_loop(uv_loop_t *loop)
{
	/* A library must not change the process's signal dispositions, but a
	 * holder that closes on us must not kill the caller with SIGPIPE either:
	 * block it in this thread while our loop runs and drop what arrived. */
	sigset_t pipe_set, old;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	int r = uv_run(loop, UV_RUN_DEFAULT);
	if (!sigismember(&old, SIGPIPE)) {
		const struct timespec zero = { 0, 0 };
		while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
			;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	return r;
}

struct sync_result {
	int status;
	char *reply;
	struct err e;
};

static void sync_cb(void *data, int status, const char *reply, const struct err *e)
{
	struct sync_result *s = data;
	s->status = status;
	if (reply)
		s->reply = strdup(reply);
	if (e)
		s->e = *e;
}

int ctl_request_line(const char *root, const char *member, const char *line, unsigned dial_ms,
		     unsigned read_ms, char **reply, struct err *e)
{
	*reply = NULL;
	uv_loop_t loop;
	int r = uv_loop_init(&loop);
	if (r < 0)
		return err_set(e, r, "uv_loop_init: %s", uv_strerror(r));
	struct sync_result s = { 0 };
	r = ctl_request_async(&loop, root, member, line, dial_ms, read_ms, sync_cb, &s);
	if (r < 0) {
		uv_loop_close(&loop);
		return err_set(e, r, "request to %s: %s", member, strerror(-r));
	}
	ctl_run_loop(&loop);
	if (uv_loop_close(&loop) != 0)
		return err_set(e, -EBUSY, "internal error: request loop left handles open");
	if (s.status < 0) {
		if (e)
			*e = s.e;
		return s.status;
	}
	if (!s.reply)
		return err_set(e, -ENOMEM, "out of memory");
	*reply = s.reply;
	return 0;
}

int ctl_request(const char *root, const char *member, const struct rpc_request *req,
		unsigned dial_ms, unsigned read_ms, struct rpc_reply *rep, struct err *e)
{
	memset(rep, 0, sizeof(*rep));
	char *line, *reply;
	size_t len;
	if (rpc_request_encode(req, &line, &len) < 0)
		return err_set(e, -ENOMEM, "out of memory");
	int r = ctl_request_line(root, member, line, dial_ms, read_ms, &reply, e);
	free(line);
	if (r < 0)
		return r;
	r = rpc_reply_decode(reply, strlen(reply), rep, e);
	free(reply);
	if (r < 0)
		return r;
	if (rep->error && *rep->error)
		return err_set(e, -EIO, "%s", rep->error);
	return 0;
}

int ctl_status(const char *root, const char *member, struct rpc_status **st, struct err *e)
{
	*st = NULL;
	struct rpc_request req = { .cmd = (char *)"status" };
	struct rpc_reply rep;
	int r = ctl_request(root, member, &req, CTL_STATUS_MS, CTL_STATUS_MS, &rep, e);
	if (r < 0) {
		rpc_reply_fini(&rep);
		return r;
	}
	if (!rep.status) {
		rpc_reply_fini(&rep);
		return err_set(e, -EPROTO, "status reply from %s has no status", member);
	}
	*st = rep.status;
	rep.status = NULL;
	rpc_reply_fini(&rep);
	return 0;
}

static int wait_pid_exit(pid_t pid, int timeout_ms)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return errno == ESRCH ? 0 : -errno;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;
	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	close(fd);
	return r > 0 ? 0 : -ETIMEDOUT;
}

int ctl_wait_gone(const char *root, const char *member, int timeout_ms)
{
	pid_t pid;
	if (!store_member_running(root, member, &pid))
		return 0;
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		/* A holder releases members one by one while it keeps running, so
		 * the lock (not the process) is what tells "released". Poll it at a
		 * short interval, bounded by timeout. */
		if (!store_member_running(root, member, NULL))
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &t);
		long ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (ms >= timeout_ms)
			return -ETIMEDOUT;
		/* If the holder exits, the pidfd wakes us immediately. */
		wait_pid_exit(pid, 20);
	}
}

/* ---------------- spawning ---------------- */

static char helper_override[PATH_MAX];

void ctl_set_helper(const char *path)
{
	snprintf(helper_override, sizeof(helper_override), "%s", path ? path : "");
}

static const char *helper_path(void)
{
	const char *env = getenv("FLEETBOX_HELPER");
	if (env && *env)
		return env;
	if (helper_override[0])
		return helper_override;
#ifdef FLEETBOX_INSTALLED_HELPER
	if (access(FLEETBOX_INSTALLED_HELPER, X_OK) == 0)
		return FLEETBOX_INSTALLED_HELPER;
#endif
	return "fleetbox";
}

static void log_tail(const char *path, char *out, size_t len)
{
	char *s;
	out[0] = '\0';
	if (file_read_trimmed(path, 1 << 20, &s, NULL) < 0)
		return;
	/* The reason is the last error line, not the "exiting" line after it. */
	char *line = NULL;
	for (char *p = s; (p = strstr(p, " error: ")); p++)
		line = p;
	if (line) {
		while (line > s && line[-1] != '\n')
			line--;
		char *end = strchr(line, '\n');
		if (end)
			*end = '\0';
	} else {
		char *nl = strrchr(s, '\n');
		line = nl ? nl + 1 : s;
	}
	snprintf(out, len, "%s", line);
	free(s);
}

int ctl_connect_unix(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Did the child exit already? Fills e with the runner log's last line. */
static bool holder_died(pid_t pid, const char *logpath, struct err *e)
{
	int st;
	if (waitpid(pid, &st, WNOHANG) != pid)
		return false;
	char tail[400];
	log_tail(logpath, tail, sizeof(tail));
	err_set(e, -ECHILD, "holder exited during startup%s%s (log: %s)", tail[0] ? ": " : "", tail,
		logpath);
	return true;
}

static int bind_handshake(const char *ctl_path, pid_t pid, const char *logpath, int *fd_out,
			  struct err *e)
{
	long deadline = now_ms() + CTL_BIND_DIAL_MS;
	int fd;
	for (;;) {
		fd = ctl_connect_unix(ctl_path);
		if (fd >= 0)
			break;
		if (holder_died(pid, logpath, e))
			return -ECHILD;
		if (now_ms() >= deadline)
			return -ETIMEDOUT; /* caller goes on: the parent watch is the backstop */
		wait_pid_exit(pid, 10);
	}
	if (send(fd, "bind", 4, MSG_NOSIGNAL) != 4) {
		close(fd);
		return err_set(e, -EIO, "bind: write failed");
	}
	char buf[16];
	size_t got = 0;
	/* The version is the whole reply; it arrives in one segment in practice,
	 * but read until the holder pauses to be safe. */
	struct pollfd p = { .fd = fd, .events = POLLIN };
	while (got < sizeof(buf) - 1) {
		int pr = poll(&p, 1, got ? 20 : CTL_BIND_DIAL_MS);
		if (pr < 0 && errno == EINTR)
			continue; /* a signal (the caller's interrupt flag) is not an answer */
		if (pr <= 0)
			break;
		ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	if (strcmp(buf, FB_PROTOCOL_VERSION) != 0) {
		close(fd);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return err_set(e, -EPROTO, "fleetbox helper protocol \"%s\" does not match client \"%s\"",
			       buf, FB_PROTOCOL_VERSION);
	}
	if (send(fd, "ack", 3, MSG_NOSIGNAL) != 3) {
		close(fd);
		return err_set(e, -EIO, "bind: ack failed");
	}
	*fd_out = fd;
	return 0;
}

int ctl_spawn(const char *root, const char *const *names, size_t n, bool bound,
	      struct ctl_holder *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	out->ctl_fd = -1;
	if (n == 0)
		return err_set(e, -EINVAL, "no members to start");
	int r = store_init(root, e);
	if (r < 0)
		return r;
	size_t csv_len = 1;
	for (size_t i = 0; i < n; i++)
		csv_len += strlen(names[i]) + 1;
	char *csv = calloc(1, csv_len);
	if (!csv)
		return err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(csv, ",");
		strcat(csv, names[i]);
	}
	char logpath[PATH_MAX];
	snprintf(logpath, sizeof(logpath), "%s/runner-%s.log", root, names[0]);
	/* Created here rather than by the spawn so that, under sudo, it is the
	 * invoking user's (the spawn truncates it and keeps the owner). */
	int lfd = open(logpath, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (lfd >= 0) {
		(void)owner_claim_fd(lfd); /* a log: best effort */
		close(lfd);
	}

	/* Environment: ours, plus the store root and (bound) our PID. */
	size_t nenv = 0;
	while (environ[nenv])
		nenv++;
	char **env = calloc(nenv + 3, sizeof(char *));
	char home_var[PATH_MAX + 16], ppid_var[48];
	if (!env) {
		free(csv);
		return err_set(e, -ENOMEM, "out of memory");
	}
	size_t k = 0;
	for (size_t i = 0; i < nenv; i++)
		if (strncmp(environ[i], "FLEETBOX_PARENT_PID=", 20) != 0 &&
		    strncmp(environ[i], "FLEETBOX_HOME=", 14) != 0)
			env[k++] = environ[i];
	snprintf(home_var, sizeof(home_var), "FLEETBOX_HOME=%s", root);
	env[k++] = home_var;
	if (bound) {
		snprintf(ppid_var, sizeof(ppid_var), "FLEETBOX_PARENT_PID=%d", (int)getpid());
		env[k++] = ppid_var;
	}
	env[k] = NULL;

	const char *helper = helper_path();
	char *argv[] = { (char *)helper, (char *)"--fleetbox-runner", csv, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	posix_spawnattr_t attr;
	posix_spawnattr_init(&attr);
	sigset_t none;
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&attr, &none);
	/* Its own session from the first instruction (the holder calls setsid
	 * too, for other clients): a kill of our process group, as test
	 * runners do, must leave the holder alive to tear down. */
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSID);
	pid_t pid;
	r = posix_spawnp(&pid, helper, &fa, &attr, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	free(env);
	free(csv);
	if (r != 0)
		return err_set(e, -r, "cannot start holder %s: %s", helper, strerror(r));
	out->pid = pid;
	out->bound = bound;

	if (bound) {
		char ctl[WIRE_SUN_PATH_MAX];
		if ((r = wire_ctl_path(root, names[0], ctl, sizeof(ctl))) < 0)
			return err_set(e, r, "control socket path too long");
		r = bind_handshake(ctl, pid, logpath, &out->ctl_fd, e);
		if (r == -ETIMEDOUT)
			return 0; /* no .ctl: the parent watch still ties the holder to us */
		return r;
	}
	/* Detached: wait until the first member's socket answers. */
	char sock[WIRE_SUN_PATH_MAX];
	if ((r = wire_sock_path(root, names[0], sock, sizeof(sock))) < 0)
		return err_set(e, r, "socket path too long");
	long deadline = now_ms() + CTL_DIAL_MS;
	for (;;) {
		struct rpc_status *st = NULL;
		struct err se = { 0 };
		int probe = ctl_connect_unix(sock); /* cheap: is anybody listening yet? */
		if (probe >= 0)
			close(probe);
		if (probe >= 0 && ctl_status(root, names[0], &st, &se) == 0) {
			long served_by = st->pid;
			rpc_status_free(st);
			if (served_by == pid)
				return 0;
			/* Another holder serves this member: ours will give up. */
			kill(pid, SIGTERM);
			waitpid(pid, NULL, 0);
			return err_set(e, -EBUSY, "%s is already served by holder %ld", names[0], served_by);
		}
		if (holder_died(pid, logpath, e))
			return -ECHILD;
		if (now_ms() >= deadline)
			return err_set(e, -ETIMEDOUT, "holder did not open %s within %d s (log: %s)", sock,
				       CTL_DIAL_MS / 1000, logpath);
		wait_pid_exit(pid, 10);
	}
}

int ctl_holder_release(struct ctl_holder *h, int timeout_ms, struct err *e)
{
	if (!h->pid)
		return 0;
	if (!h->bound) {
		h->pid = 0;
		return 0;
	}
	if (h->ctl_fd >= 0) {
		close(h->ctl_fd);
		h->ctl_fd = -1;
	} else {
		kill(h->pid, SIGTERM); /* no .ctl: ask directly */
	}
	int r = wait_pid_exit(h->pid, timeout_ms);
	if (r < 0) {
		kill(h->pid, SIGKILL);
		waitpid(h->pid, NULL, 0);
		h->pid = 0;
		return err_set(e, -ETIMEDOUT, "holder did not exit within %d ms; killed", timeout_ms);
	}
	int st = 0;
	waitpid(h->pid, &st, 0);
	h->pid = 0;
	if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
		return err_set(e, -EIO, "holder exited with status %d", WEXITSTATUS(st));
	return 0;
}
