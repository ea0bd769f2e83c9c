/* wait.c - what a harness author reaches for after fb_up: unique names, the
 * member's serial console, and waits for a port, a console line or a command,
 * each bounded by a timeout and failing early when the member is not running. */
#include "fleetbox.h"
#include "client/ctl.h"
#include "client/orch/orch.h"
#include "client/store.h"
#include "rpc/msg.h"
#include "rpc/wire.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define UNIQUE_MAX (FB_NAME_MAX - 4) /* room for "-253" after it */
#define UNIQUE_TAIL 5                /* random letters */
#define WAIT_POLL_MS 50
#define PORT_RETRY_MS 100
#define EXEC_RETRY_MS 250
#define CONSOLE_CHUNK 65536

static long mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* --- unique names --- */

static unsigned long unique_counter;

/* Letters only: a name ending in digits after a '-' reads as member N of a
 * cluster, and this one must be a cluster of its own. */
static void random_letters(char *out, size_t n)
{
	unsigned char r[16];
	if (getrandom(r, n, GRND_NONBLOCK) != (ssize_t)n) {
		unsigned long x = (unsigned long)mono_ms() ^ ((unsigned long)getpid() << 16);
		for (size_t i = 0; i < n; i++, x = x * 6364136223846793005UL + 1)
			r[i] = (unsigned char)(x >> 33);
	}
	for (size_t i = 0; i < n; i++)
		out[i] = (char)('a' + r[i] % 26);
	out[n] = '\0';
}

static bool prefix_valid(const char *p)
{
	char probe[FB_NAME_MAX + 2];
	return strlen(p) <= FB_NAME_MAX && snprintf(probe, sizeof(probe), "%sa", p) > 0 &&
	       wire_name_valid(probe);
}

int fb_unique_name(const char *prefix, char *buf, size_t len)
{
	if (!buf || !len)
		return -EINVAL;
	buf[0] = '\0';
	const char *p = prefix && *prefix ? prefix : "fb";
	if (!prefix_valid(p))
		return -EINVAL;
	char tail[64], letters[UNIQUE_TAIL + 1];
	random_letters(letters, UNIQUE_TAIL);
	unsigned long n = __atomic_fetch_add(&unique_counter, 1, __ATOMIC_RELAXED);
	int tl = snprintf(tail, sizeof(tail), "-%d-%lu%s", (int)getpid(), n, letters);
	size_t room = (len - 1 < UNIQUE_MAX ? len - 1 : UNIQUE_MAX);
	size_t plen = strlen(p);
	if ((size_t)tl + 1 > room)
		return -ENOSPC;
	if (plen > room - (size_t)tl)
		plen = room - (size_t)tl; /* a long prefix is cut, never the unique part */
	while (plen > 1 && p[plen - 1] == '-')
		plen--;
	snprintf(buf, len, "%.*s%s", (int)plen, p, tail);
	return 0;
}

/* --- the serial console --- */

static int console_file(const char *rootopt, const char *name, char *buf, size_t len,
			struct err *e)
{
	char root[PATH_MAX];
	int r = orch_root(rootopt, root, sizeof(root), e);
	if (r < 0)
		return r;
	if (!wire_name_valid(name))
		return err_set(e, -EINVAL, "invalid member name \"%s\"", name ? name : "(null)");
	if (!store_member_exists(root, name))
		return err_set(e, -ENOENT, "no such member: %s", name);
	if (store_member_file(root, name, "serial.log", buf, len) < 0)
		return err_set(e, -ENAMETOOLONG, "console path of %s too long", name);
	return 0;
}

int fb_console_path(const char *root, const char *name, char *buf, size_t len, fb_error *ferr)
{
	struct err e = { 0 };
	char path[PATH_MAX];
	int r = buf ? console_file(root, name, path, sizeof(path), &e)
		    : err_set(&e, -EINVAL, "fb_console_path: buf is NULL");
	if (r == 0 && (size_t)snprintf(buf, len, "%s", path) >= len)
		r = err_set(&e, -ENAMETOOLONG, "console path of %s needs %zu bytes", name,
			    strlen(path) + 1);
	return orch_err_result(r, &e, ferr);
}

/* Reads [off, off + n) of fd into a new NUL-terminated buffer. */
static int read_range(int fd, off_t off, size_t n, char **out, size_t *got)
{
	char *b = malloc(n + 1);
	if (!b)
		return -ENOMEM;
	size_t k = 0;
	while (k < n) {
		ssize_t r = pread(fd, b + k, n - k, off + (off_t)k);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		k += (size_t)r;
	}
	b[k] = '\0';
	*out = b;
	*got = k;
	return 0;
}

/* The last max bytes of path, from a line start when cut; "" if missing. */
static int tail_of(const char *path, size_t max, char **out, struct err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 && errno == ENOENT)
		return (*out = strdup("")) ? 0 : err_set(e, -ENOMEM, "out of memory");
	if (fd < 0 || fstat(fd, &st) < 0) {
		int r = -errno;
		if (fd >= 0)
			close(fd);
		return err_set(e, r, "read %s: %s", path, strerror(-r));
	}
	size_t size = st.st_size > 0 ? (size_t)st.st_size : 0, n = size < max ? size : max;
	size_t got;
	int r = read_range(fd, (off_t)(size - n), n, out, &got);
	close(fd);
	if (r < 0)
		return err_set(e, r, "out of memory");
	char *nl = n < size ? memchr(*out, '\n', got) : NULL;
	if (nl)
		memmove(*out, nl + 1, got - (size_t)(nl + 1 - *out) + 1);
	return 0;
}

int fb_console_tail(const char *root, const char *name, size_t max_bytes, char **out,
		    fb_error *ferr)
{
	struct err e = { 0 };
	char path[PATH_MAX];
	if (out)
		*out = NULL;
	int r = out ? console_file(root, name, path, sizeof(path), &e)
		    : err_set(&e, -EINVAL, "fb_console_tail: out is NULL");
	if (r == 0)
		r = tail_of(path, max_bytes, out, &e);
	return orch_err_result(r, &e, ferr);
}

/* --- waits --- */

struct waiter {
	char root[PATH_MAX];
	const char *name;
	long deadline;
	char ip[FB_IP_STRLEN];
	struct err e;
};

static int waiter_init(struct waiter *w, const char *fn, const char *rootopt, const char *name,
		       int timeout_ms)
{
	memset(w, 0, sizeof(*w));
	w->name = name;
	int r = orch_root(rootopt, w->root, sizeof(w->root), &w->e);
	if (r == 0 && !wire_name_valid(name))
		r = err_set(&w->e, -EINVAL, "%s: invalid member name \"%s\"", fn, name ? name : "(null)");
	if (r == 0 && timeout_ms < 0)
		r = err_set(&w->e, -EINVAL, "%s: timeout_ms is %d", fn, timeout_ms);
	w->deadline = mono_ms() + timeout_ms;
	return r;
}

/* 0 while the member is running (its IP noted), else an error saying how it is. */
static int member_up(struct waiter *w)
{
	struct rpc_status *st = NULL;
	/* No holder at all: say so now (a status dial would retry for 2 s). */
	if (!store_member_running(w->root, w->name, NULL))
		return store_member_exists(w->root, w->name)
			       ? err_set(&w->e, -ENOTCONN, "%s is not running (no holder)", w->name)
			       : err_set(&w->e, -ENOENT, "no such member: %s", w->name);
	int r = ctl_status(w->root, w->name, &st, &w->e);
	if (r < 0)
		return r;
	if (st->state == FB_STATE_ERROR || st->state == FB_STATE_STOPPED)
		r = err_set(&w->e, -ENOTCONN, "%s is %s%s%s", w->name, wire_state_name(st->state),
			    st->error && *st->error ? ": " : "", st->error ? st->error : "");
	snprintf(w->ip, sizeof(w->ip), "%s", st->ip ? st->ip : "");
	rpc_status_free(st);
	return r;
}

static long remaining_ms(const struct waiter *w)
{
	long left = w->deadline - mono_ms();
	return left > 0 ? left : 0;
}

/* One connect to ip:port within ms: 0, or the -errno that stopped it. */
static int try_connect(const char *ip, int port, long ms)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		return -EADDRNOTAVAIL;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : -errno;
	if (r == -EINPROGRESS) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int so = 0;
		socklen_t sl = sizeof(so);
		int n = poll(&p, 1, (int)(ms > 0 ? ms : 1));
		if (n == 0)
			r = -ETIMEDOUT;
		else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) < 0)
			r = -errno;
		else
			r = -so;
	}
	close(fd);
	return r;
}

int fb_wait_port(const char *root, const char *name, int port, int timeout_ms, fb_error *ferr)
{
	struct waiter w;
	int r = waiter_init(&w, "fb_wait_port", root, name, timeout_ms), last = 0, tries = 0;
	if (r == 0 && (port <= 0 || port > 65535))
		r = err_set(&w.e, -EINVAL, "fb_wait_port: port %d is not a TCP port", port);
	while (r == 0 && (r = member_up(&w)) == 0) {
		long left = remaining_ms(&w);
		tries++;
		if (*w.ip && (last = try_connect(w.ip, port, left < 1000 ? left : 1000)) == 0)
			break;
		if ((left = remaining_ms(&w)) == 0) {
			r = err_set(&w.e, -ETIMEDOUT, "port %d on %s (%s) did not accept a connection "
				    "within %d ms (%d tries; last: %s)", port, name,
				    *w.ip ? w.ip : "no IP yet", timeout_ms, tries,
				    last ? strerror(-last) : "no IP");
			break;
		}
		nap_ms(left < PORT_RETRY_MS ? left : PORT_RETRY_MS);
	}
	return orch_err_result(r, &w.e, ferr);
}

/* Console scanning: new bytes since *off (plus an overlap of len-1, so a
 * match across two reads is seen); a shorter file means a new boot. */
static int console_has(const char *path, const char *text, off_t *off, bool *found)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	*found = false;
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -errno;
	}
	size_t tl = strlen(text);
	if (st.st_size < *off)
		*off = 0; /* truncated at a reboot */
	int r = 0;
	while (r == 0 && !*found && *off < st.st_size) {
		off_t from = *off > (off_t)(tl - 1) ? *off - (off_t)(tl - 1) : 0;
		size_t n = (size_t)(st.st_size - from) < CONSOLE_CHUNK ? (size_t)(st.st_size - from)
									: CONSOLE_CHUNK;
		char *b;
		size_t got;
		if ((r = read_range(fd, from, n, &b, &got)) < 0 || got == 0)
			break;
		*found = memmem(b, got, text, tl) != NULL;
		*off = from + (off_t)got;
		free(b);
	}
	close(fd);
	return r;
}

/* The console's last line, for a timeout message. */
static void console_last_line(const char *path, char *out, size_t len)
{
	char *t = NULL;
	out[0] = '\0';
	if (tail_of(path, 4096, &t, NULL) < 0)
		return;
	size_t n = strlen(t);
	while (n && (t[n - 1] == '\n' || t[n - 1] == '\r'))
		t[--n] = '\0';
	char *nl = strrchr(t, '\n');
	snprintf(out, len, "%s", nl ? nl + 1 : t);
	free(t);
}

int fb_wait_console(const char *root, const char *name, const char *text, int timeout_ms,
		    fb_error *ferr)
{
	struct waiter w;
	char path[PATH_MAX], last[160];
	int r = waiter_init(&w, "fb_wait_console", root, name, timeout_ms);
	if (r == 0 && (!text || !*text))
		r = err_set(&w.e, -EINVAL, "fb_wait_console: text is %s", text ? "empty" : "NULL");
	if (r == 0)
		r = console_file(w.root, name, path, sizeof(path), &w.e);
	off_t off = 0;
	bool found = false;
	while (r == 0 && !found) {
		if ((r = console_has(path, text, &off, &found)) < 0) {
			err_set(&w.e, r, "read %s: %s", path, strerror(-r));
		} else if (!found && (r = member_up(&w)) == 0 && remaining_ms(&w) == 0) {
			console_last_line(path, last, sizeof(last));
			r = err_set(&w.e, -ETIMEDOUT, "\"%s\" did not appear on %s's console within %d ms "
				    "(%s; last line: \"%s\")", text, name, timeout_ms, path, last);
		} else if (!found && r == 0) {
			nap_ms(WAIT_POLL_MS);
		}
	}
	return orch_err_result(r, &w.e, ferr);
}

/* The last line of what a failed try printed (stderr, else stdout). */
static void exec_last_words(const fb_exec_result *res, char *out, size_t len)
{
	const char *s = res->err_len ? res->err : res->out ? res->out : "";
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	size_t b = n;
	while (b && s[b - 1] != '\n')
		b--;
	snprintf(out, len, "%.*s", (int)(n - b), s + b);
}

/* One try: 0 when the command exited 0; else what happened, in last. */
static int exec_try(struct waiter *w, const char *command, char *last, size_t len)
{
	fb_exec_result res;
	fb_error fe;
	long left = remaining_ms(w);
	/* Bounded by the deadline: a try that hangs ends with it. Only the one
	 * try of timeout_ms 0 runs on fb_exec_ex's own bounds. */
	fb_exec_opts o = { .command = command, .timeout_ms = (int)left };
	int r = fb_exec_ex(w->root, w->name, &o, &res, &fe);
	if (r < 0) {
		snprintf(last, len, "%s", fe.message);
		fb_exec_result_free(&res);
		return r;
	}
	char words[200];
	exec_last_words(&res, words, sizeof(words));
	if (res.exit_signal)
		snprintf(last, len, "killed by signal %d%s%s", res.exit_signal, *words ? ": " : "", words);
	else
		snprintf(last, len, "exit status %d%s%s", res.exit_status, *words ? ": " : "", words);
	r = res.exit_status == 0 && !res.exit_signal ? 0 : -EAGAIN;
	fb_exec_result_free(&res);
	return r;
}

int fb_wait_exec(const char *root, const char *name, const char *command, int timeout_ms,
		 fb_error *ferr)
{
	struct waiter w;
	char last[400] = "";
	int r = waiter_init(&w, "fb_wait_exec", root, name, timeout_ms), tries = 0;
	if (r == 0 && !command)
		r = err_set(&w.e, -EINVAL, "fb_wait_exec: command is NULL");
	while (r == 0 && (r = member_up(&w)) == 0) {
		tries++;
		if (exec_try(&w, command, last, sizeof(last)) == 0)
			break;
		long left = remaining_ms(&w);
		if (left == 0) {
			r = err_set(&w.e, -ETIMEDOUT, "`%s` did not succeed on %s within %d ms (%d tries; "
				    "last: %s)", command, name, timeout_ms, tries, last);
			break;
		}
		nap_ms(left < EXEC_RETRY_MS ? left : EXEC_RETRY_MS);
	}
	return orch_err_result(r, &w.e, ferr);
}
