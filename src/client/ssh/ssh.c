/* ssh.c - connections, command runs and channels on libssh2 (see ssh.h).
 *
 * Design: one resumable state machine (run_step) drives dial -> handshake ->
 * host key check -> auth -> channel open -> [pty] -> exec/shell -> I/O -> close.
 * Each step returns -EAGAIN with the socket directions it waits for; a blocking
 * driver waits with poll(), the async driver with uv_poll. The socket is ours
 * (non-blocking) and libssh2 reaches it through our send/recv callbacks, which
 * fail with -ECONNRESET once the connection is marked dead: freeing a session or
 * channel of a dead connection then never blocks or waits (libssh2 tries to send
 * a CLOSE and ignores the failure).
 * Invariants: the fd is closed only after libssh2 is freed (and, async, after the
 * uv_poll handle is closed); the op's memory is freed in the last close callback. */
#include "client/ssh/ssh.h"
#include "client/ssh/ssh_int.h"
#include "util/err.h"
#include "util/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <libssh2.h>
#include <openssl/evp.h>

/* ---------- pure helpers ---------- */

char *ssh_quote(const char *w)
{
	size_t n = 3;
	for (const char *p = w; *p; p++)
		n += *p == '\'' ? 4 : 1;
	char *out = malloc(n), *o = out;
	if (!out)
		return NULL;
	*o++ = '\'';
	for (const char *p = w; *p; p++) {
		if (*p == '\'') {
			memcpy(o, "'\\''", 4);
			o += 4;
		} else {
			*o++ = *p;
		}
	}
	*o++ = '\'';
	*o = '\0';
	return out;
}

char *ssh_command_join(int n, char *const *words)
{
	if (n <= 0)
		return NULL;
	if (n == 1)
		return strdup(words[0]);
	size_t cap = 1, len = 0;
	char *out = NULL;
	for (int i = 0; i < n; i++) {
		char *q = ssh_quote(words[i]);
		if (!q) {
			free(out);
			return NULL;
		}
		size_t ql = strlen(q);
		char *no = realloc(out, cap + ql + 1);
		if (!no) {
			free(q);
			free(out);
			return NULL;
		}
		out = no;
		cap += ql + 1;
		if (i > 0)
			out[len++] = ' ';
		memcpy(out + len, q, ql);
		len += ql;
		out[len] = '\0';
		free(q);
	}
	return out;
}

int ssh_pubkey_decode(const char *line, unsigned char **blob, size_t *len)
{
	static const char type[] = "ssh-ed25519";
	*blob = NULL;
	*len = 0;
	while (*line == ' ' || *line == '\t')
		line++;
	if (strncmp(line, type, strlen(type)) != 0 || (line[11] != ' ' && line[11] != '\t'))
		return -EINVAL;
	const char *b = line + 11;
	while (*b == ' ' || *b == '\t')
		b++;
	size_t bl = strcspn(b, " \t\r\n");
	if (bl == 0 || bl % 4 != 0 || bl > 1024)
		return -EINVAL;
	unsigned char *out = malloc(bl);
	if (!out)
		return -ENOMEM;
	int n = EVP_DecodeBlock(out, (const unsigned char *)b, (int)bl);
	if (n < 0) {
		free(out);
		return -EINVAL;
	}
	n -= (b[bl - 1] == '=') + (b[bl - 2] == '=');
	/* string "ssh-ed25519" + string(32-byte key) */
	static const unsigned char hdr[] = { 0, 0, 0, 11, 's', 's', 'h', '-', 'e', 'd',
					     '2', '5', '5', '1', '9', 0, 0, 0, 32 };
	if (n != (int)sizeof(hdr) + 32 || memcmp(out, hdr, sizeof(hdr)) != 0) {
		free(out);
		return -EINVAL;
	}
	*blob = out;
	*len = (size_t)n;
	return 0;
}

void ssh_fingerprint(const unsigned char *blob, size_t len, char *out, size_t outlen)
{
	uint8_t d[32];
	char b[48];
	sha256(blob, len, d);
	EVP_EncodeBlock((unsigned char *)b, d, 32);
	b[strcspn(b, "=")] = '\0';
	snprintf(out, outlen, "SHA256:%s", b);
}

static const struct {
	const char *name;
	int num;
} signames[] = {
	{ "HUP", SIGHUP },   { "INT", SIGINT },   { "QUIT", SIGQUIT }, { "ILL", SIGILL },
	{ "TRAP", SIGTRAP }, { "ABRT", SIGABRT }, { "BUS", SIGBUS },   { "FPE", SIGFPE },
	{ "KILL", SIGKILL }, { "USR1", SIGUSR1 }, { "SEGV", SIGSEGV }, { "USR2", SIGUSR2 },
	{ "PIPE", SIGPIPE }, { "ALRM", SIGALRM }, { "TERM", SIGTERM }, { "XCPU", SIGXCPU },
	{ "XFSZ", SIGXFSZ }, { "SYS", SIGSYS },
};

static int signal_number(const char *name)
{
	if (!strncmp(name, "SIG", 3))
		name += 3;
	for (size_t i = 0; i < sizeof(signames) / sizeof(signames[0]); i++)
		if (!strcmp(signames[i].name, name))
			return signames[i].num;
	return 255;
}

void ssh_result_fini(struct ssh_result *r)
{
	if (!r)
		return;
	free(r->out);
	free(r->err);
	free(r->combined);
	memset(r, 0, sizeof(*r));
}

/* ---------- growable output buffers ---------- */

void obuf_add(struct obuf *b, const char *data, size_t n)
{
	if (b->error)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (!np) {
			b->error = -ENOMEM;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Moves the buffer into (*p, *len), always NUL-terminated. */
static int obuf_take(struct obuf *b, char **p, size_t *len)
{
	if (!b->error && !b->p)
		obuf_add(b, "", 0);
	if (b->error) {
		free(b->p);
		memset(b, 0, sizeof(*b));
		return -ENOMEM;
	}
	*p = b->p;
	*len = b->len;
	memset(b, 0, sizeof(*b));
	return 0;
}

void collect_out(void *data, const char *buf, size_t len)
{
	struct collect *c = data;
	obuf_add(&c->out, buf, len);
	obuf_add(&c->all, buf, len);
}

void collect_err(void *data, const char *buf, size_t len)
{
	struct collect *c = data;
	obuf_add(&c->err, buf, len);
	obuf_add(&c->all, buf, len);
}

int collect_take(struct collect *c, struct ssh_result *res)
{
	int r = 0;
	r |= obuf_take(&c->out, &res->out, &res->out_len);
	r |= obuf_take(&c->err, &res->err, &res->err_len);
	r |= obuf_take(&c->all, &res->combined, &res->combined_len);
	return r ? -ENOMEM : 0;
}

void collect_free(struct collect *c)
{
	free(c->out.p);
	free(c->err.p);
	free(c->all.p);
	memset(c, 0, sizeof(*c));
}

/* ---------- connection ---------- */


static pthread_once_t ssh2_once = PTHREAD_ONCE_INIT;
static int ssh2_init_rc;

static void ssh2_init(void)
{
	ssh2_init_rc = libssh2_init(0);
}

static LIBSSH2_SEND_FUNC(conn_send)
{
	struct ssh_conn *c = *abstract;
	if (c->dead)
		return -ECONNRESET;
	ssize_t n = send(socket, buffer, length, flags | MSG_NOSIGNAL);
	if (n < 0 && errno == EWOULDBLOCK)
		return -EAGAIN;
	if (n < 0)
		c->io_errno = errno;
	return n < 0 ? -c->io_errno : n;
}

static LIBSSH2_RECV_FUNC(conn_recv)
{
	struct ssh_conn *c = *abstract;
	if (c->dead)
		return -ECONNRESET;
	ssize_t n = recv(socket, buffer, length, flags);
	if (n < 0 && errno == EWOULDBLOCK)
		return -EAGAIN;
	if (n < 0) {
		c->io_errno = errno;
		return -c->io_errno;
	}
	if (n == 0)
		c->rx_eof = true;
	else
		c->last_rx_ms = now_ms();
	return n;
}

const char *ssh2_msg(LIBSSH2_SESSION *s)
{
	char *msg = NULL;
	if (!s || libssh2_session_last_error(s, &msg, NULL, 0) == 0 || !msg || !*msg)
		return "unknown libssh2 error";
	return msg;
}

int conn_init(struct ssh_conn *c, const struct ssh_target *t, struct err *e)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->t = *t;
	if (c->t.port <= 0)
		c->t.port = 22;
	if (c->t.connect_timeout_ms <= 0)
		c->t.connect_timeout_ms = SSH_DEFAULT_CONNECT_TIMEOUT_MS;
	if (!c->t.hostkey_pub[0])
		return err_set(e, -EINVAL, "no pinned host key for %s: refusing to connect",
			       c->t.name);
	pthread_once(&ssh2_once, ssh2_init);
	if (ssh2_init_rc != 0)
		return err_set(e, -EIO, "libssh2 initialisation failed");
	return 0;
}

/* Releases libssh2 state and the socket. Never blocks: a live session gets one
 * non-blocking disconnect attempt, then the transport is cut. */
void conn_release(struct ssh_conn *c, bool close_fd)
{
	if (c->s) {
		if (!c->dead && c->phase == C_READY)
			(void)libssh2_session_disconnect(c->s, "bye");
		c->dead = true;
		libssh2_session_free(c->s);
		c->s = NULL;
	}
	c->dead = true;
	if (close_fd && c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

short ssh2_want(LIBSSH2_SESSION *s)
{
	int d = libssh2_session_block_directions(s);
	short w = 0;
	if (d & LIBSSH2_SESSION_BLOCK_INBOUND)
		w |= POLLIN;
	if (d & LIBSSH2_SESSION_BLOCK_OUTBOUND)
		w |= POLLOUT;
	return w ? w : POLLIN;
}

/* True when libssh2 holds state that lets the channel progress without new
 * socket input. Any libssh2 call may drain the socket into libssh2's packet
 * queue (data for either stream, window adjusts), so "the last call said
 * EAGAIN" does not mean "wait for the socket": check the queue and, with input
 * pending, the send window (unless sending itself is what blocks). */
static bool chan_ready(LIBSSH2_SESSION *s, LIBSSH2_CHANNEL *ch, bool have_input)
{
	if (libssh2_poll_channel_read(ch, 1) > 0)
		return true;
	return have_input && libssh2_channel_window_write_ex(ch, NULL) > 0 &&
	       !(libssh2_session_block_directions(s) & LIBSSH2_SESSION_BLOCK_OUTBOUND);
}

static int check_hostkey(struct ssh_conn *c, struct err *e)
{
	size_t got_len = 0;
	int type = 0;
	const char *got = libssh2_session_hostkey(c->s, &got_len, &type);
	unsigned char *want = NULL;
	size_t want_len = 0;
	if (ssh_pubkey_decode(c->t.hostkey_pub, &want, &want_len) < 0)
		return err_set(e, -EINVAL, "pinned host key for %s is not a valid ssh-ed25519 key",
			       c->t.name);
	char fw[64], fg[64] = "none";
	ssh_fingerprint(want, want_len, fw, sizeof(fw));
	if (got)
		ssh_fingerprint((const unsigned char *)got, got_len, fg, sizeof(fg));
	bool ok = got && got_len == want_len && memcmp(got, want, want_len) == 0;
	free(want);
	if (!ok)
		return err_set(e, -EPERM,
			       "host key mismatch for %s: expected ed25519 %s, server presented %s; "
			       "connection dropped", c->t.name, fw, fg);
	return 0;
}

static int conn_dial(struct ssh_conn *c, struct err *e)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)c->t.port) };
	if (inet_pton(AF_INET, c->t.host, &sa.sin_addr) != 1)
		return err_set(e, -EINVAL, "%s: bad IPv4 address '%s'", c->t.name, c->t.host);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return err_set(e, -errno, "socket: %s", strerror(errno));
	int one = 1;
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		c->phase = C_HANDSHAKE;
		return 0;
	}
	if (errno != EINPROGRESS)
		return err_set(e, -errno, "connect to %s (%s:%d): %s", c->t.name, c->t.host,
			       c->t.port, strerror(errno));
	c->phase = C_DIALING;
	c->want = POLLOUT;
	return -EAGAIN;
}

static int session_new(struct ssh_conn *c, struct err *e)
{
	c->s = libssh2_session_init_ex(NULL, NULL, NULL, c);
	if (!c->s)
		return err_set(e, -ENOMEM, "libssh2 session allocation failed");
	libssh2_session_callback_set(c->s, LIBSSH2_CALLBACK_SEND, (void *)conn_send);
	libssh2_session_callback_set(c->s, LIBSSH2_CALLBACK_RECV, (void *)conn_recv);
	libssh2_session_set_blocking(c->s, 0);
	/* The pinned key is ed25519: don't let the server pick another type. */
	if (libssh2_session_method_pref(c->s, LIBSSH2_METHOD_HOSTKEY, "ssh-ed25519") != 0)
		return err_set(e, -EIO, "libssh2 lacks ssh-ed25519 host keys: %s", ssh2_msg(c->s));
	return 0;
}

/* What really happened to a failed handshake: the peer's close or socket
 * error when we saw one (libssh2 reports those as banner or "bad file
 * descriptor" failures), else libssh2's own message. */
static int handshake_fail(struct ssh_conn *c, struct err *e)
{
	if (c->rx_eof)
		return err_set(e, -ECONNRESET, "connection closed by %s (%s:%d) during SSH handshake",
			       c->t.name, c->t.host, c->t.port);
	if (c->io_errno)
		return err_set(e, -c->io_errno, "SSH handshake with %s (%s:%d): %s", c->t.name,
			       c->t.host, c->t.port, strerror(c->io_errno));
	return err_set(e, -ECONNABORTED, "SSH handshake with %s (%s:%d) failed: %s", c->t.name,
		       c->t.host, c->t.port, ssh2_msg(c->s));
}

bool conn_dropped(const struct ssh_conn *c, int rc)
{
	return c->phase == C_HANDSHAKE && (rc == -ECONNRESET || rc == -EPIPE);
}

void conn_reset(struct ssh_conn *c, bool close_fd)
{
	c->dead = true;
	if (c->s)
		libssh2_session_free(c->s);
	c->s = NULL;
	if (close_fd && c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	c->dead = c->rx_eof = false;
	c->io_errno = 0;
	c->phase = C_DIAL;
	c->dropped++;
}

int conn_backoff_ms(int n)
{
	static __thread unsigned seed;
	if (!seed)
		seed = (unsigned)getpid() ^ (unsigned)now_ms();
	seed = seed * 1103515245u + 12345u;
	int base = 20 << (n < 5 ? n : 5); /* 40, 80, ... 640 ms */
	return base / 2 + (int)((seed >> 16) % (unsigned)base);
}

/* Advances the connection; 0 when authenticated, -EAGAIN to wait for c->want. */
int conn_step(struct ssh_conn *c, struct err *e)
{
	int r;
	for (;;) {
		switch (c->phase) {
		case C_DIAL:
			r = conn_dial(c, e);
			if (r < 0)
				return r;
			break;
		case C_DIALING: {
			int so = 0;
			socklen_t sl = sizeof(so);
			if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &so, &sl) < 0)
				so = errno;
			if (so == EINPROGRESS || so == EALREADY)
				return -EAGAIN;
			if (so != 0)
				return err_set(e, -so, "connect to %s (%s:%d): %s", c->t.name,
					       c->t.host, c->t.port, strerror(so));
			c->phase = C_HANDSHAKE;
			break;
		}
		case C_HANDSHAKE:
			if (!c->s && (r = session_new(c, e)) < 0)
				return r;
			r = libssh2_session_handshake(c->s, c->fd);
			if (r == LIBSSH2_ERROR_EAGAIN) {
				c->want = ssh2_want(c->s);
				return -EAGAIN;
			}
			if (r != 0)
				return handshake_fail(c, e);
			if ((r = check_hostkey(c, e)) < 0)
				return r;
			c->phase = C_AUTH;
			break;
		case C_AUTH:
			r = libssh2_userauth_publickey_fromfile_ex(
				c->s, c->t.user, (unsigned)strlen(c->t.user), NULL, c->t.key_path, NULL);
			if (r == LIBSSH2_ERROR_EAGAIN) {
				c->want = ssh2_want(c->s);
				return -EAGAIN;
			}
			if (r == LIBSSH2_ERROR_FILE)
				return err_set(e, -ENOKEY, "cannot use key %s: %s", c->t.key_path,
					       ssh2_msg(c->s));
			if (r != 0)
				return err_set(e, -EACCES, "authentication as %s on %s failed: %s",
					       c->t.user, c->t.name, ssh2_msg(c->s));
			c->phase = C_READY;
			break;
		case C_READY:
			return 0;
		}
	}
}

/* ---------- the run state machine ---------- */

void run_init(struct run *r, struct ssh_conn *c, const char *cmd)
{
	memset(r, 0, offsetof(struct run, rbuf));
	r->c = c;
	r->cmd = cmd;
	r->phase = R_OPEN;
	r->in_eof = true; /* drivers that forward stdin clear it */
}

static int chan_fail(struct run *r, const char *what, int rc, struct err *e)
{
	struct ssh_conn *c = r->c;
	if (c->rx_eof || c->io_errno)
		return err_set(e, c->io_errno ? -c->io_errno : -ECONNRESET,
			       "%s on %s: connection %s by %s", what, c->t.name,
			       c->rx_eof ? "closed" : strerror(c->io_errno), c->t.host);
	return err_set(e, rc == LIBSSH2_ERROR_SOCKET_RECV || rc == LIBSSH2_ERROR_SOCKET_SEND ||
				  rc == LIBSSH2_ERROR_SOCKET_DISCONNECT
			       ? -ECONNRESET : -EIO,
		       "%s on %s: %s", what, c->t.name, ssh2_msg(c->s));
}

static void collect_status(LIBSSH2_SESSION *s, LIBSSH2_CHANNEL *ch, struct ssh_status *st)
{
	char *sig = NULL;
	size_t siglen = 0;
	memset(st, 0, sizeof(*st));
	st->exit_status = libssh2_channel_get_exit_status(ch);
	if (libssh2_channel_get_exit_signal(ch, &sig, &siglen, NULL, NULL, NULL, NULL) == 0 && sig) {
		snprintf(st->signame, sizeof(st->signame), "%.*s", (int)(siglen < 15 ? siglen : 15),
			 sig);
		st->exit_signal = signal_number(st->signame);
		st->exit_status = 128 + (st->exit_signal & 127);
		libssh2_free(s, sig);
	}
}

static void deliver(void (*cb)(void *, const char *, size_t), void *data, const char *buf,
		    size_t len)
{
	if (cb && len > 0)
		cb(data, buf, len);
}

/* The first line of a wrapped command's stdout is its pid: strip it. A line
 * that is not one (a profile script printing, say) is passed on unharmed. */
static void out_filter(struct run *r, const char *buf, size_t len)
{
	while (r->want_pid && len > 0) {
		char ch = *buf++;
		len--;
		if (ch == '\n' && r->pidlen > 0) {
			r->pidbuf[r->pidlen] = '\0';
			r->rpid = strtol(r->pidbuf, NULL, 10);
			r->want_pid = false;
		} else if (ch >= '0' && ch <= '9' && r->pidlen < 18) {
			r->pidbuf[r->pidlen++] = ch;
		} else {
			r->want_pid = false;
			deliver(r->on_out, r->data, r->pidbuf, r->pidlen);
			deliver(r->on_out, r->data, buf - 1, 1);
		}
	}
	deliver(r->on_out, r->data, buf, len);
}

/* Moves data both ways until nothing progresses; 1 when the remote side is at EOF. */
static int run_pump(struct run *r, struct err *e)
{
	for (int rounds = 0; rounds < 64; rounds++) {
		bool progress = false;
		if (r->winch) {
			int rc = libssh2_channel_request_pty_size(r->ch, r->cols, r->rows);
			if (rc == 0)
				r->winch = false;
			else if (rc != LIBSSH2_ERROR_EAGAIN)
				r->winch = false; /* a lost resize is not worth failing a session */
		}
		if (r->in_len == 0 && !r->in_eof && r->refill)
			r->refill(r);
		if (r->in_off < r->in_len) {
			ssize_t w = libssh2_channel_write(r->ch, r->inbuf + r->in_off,
							  r->in_len - r->in_off);
			if (w > 0) {
				r->in_off += (size_t)w;
				if (r->in_off == r->in_len)
					r->in_off = r->in_len = 0;
				progress = true;
			} else if (w != LIBSSH2_ERROR_EAGAIN && w != 0) {
				/* The remote closed its stdin: drop what is left. */
				r->in_off = r->in_len = 0;
				r->in_eof = r->eof_sent = true;
			}
		} else if (r->in_eof && !r->eof_sent) {
			int rc = libssh2_channel_send_eof(r->ch);
			if (rc != LIBSSH2_ERROR_EAGAIN)
				r->eof_sent = true;
		}
		for (int stream = 0; stream < 2; stream++) {
			ssize_t n = libssh2_channel_read_ex(
				r->ch, stream ? SSH_EXTENDED_DATA_STDERR : 0, r->rbuf, sizeof(r->rbuf));
			if (n > 0) {
				if (stream)
					deliver(r->on_err, r->data, r->rbuf, (size_t)n);
				else
					out_filter(r, r->rbuf, (size_t)n);
				progress = true;
			} else if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) {
				return chan_fail(r, "reading output", (int)n, e);
			}
		}
		if (libssh2_channel_eof(r->ch) == 1)
			return 1;
		if (!progress && !chan_ready(r->c->s, r->ch, r->in_off < r->in_len)) {
			r->c->want = ssh2_want(r->c->s);
			return -EAGAIN;
		}
	}
	/* Still progressing: libssh2 drains the socket into its own packet queue,
	 * so the socket may be empty while data waits in there. Ask to be called
	 * again without waiting (the bound only keeps an async loop fair). */
	r->c->want = 0;
	return -EAGAIN;
}

/* Advances conn + channel; 0 when done (r->st valid), -EAGAIN to wait for c->want. */
int run_step(struct run *r, struct err *e)
{
	int rc;
	if (r->c->phase != C_READY && (rc = conn_step(r->c, e)) != 0)
		return rc;
	LIBSSH2_SESSION *s = r->c->s;
	for (;;) {
		switch (r->phase) {
		case R_OPEN:
			r->ch = libssh2_channel_open_ex(s, "session", 7, CHAN_WINDOW, CHAN_PACKET,
							NULL, 0);
			if (!r->ch) {
				rc = libssh2_session_last_errno(s);
				if (rc == LIBSSH2_ERROR_EAGAIN)
					goto again;
				return chan_fail(r, "opening a session channel", rc, e);
			}
			r->phase = r->pty ? R_PTY : R_START;
			break;
		case R_PTY:
			rc = libssh2_channel_request_pty_ex(r->ch, r->term, (unsigned)strlen(r->term),
							    NULL, 0, r->cols, r->rows, 0, 0);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				goto again;
			if (rc != 0)
				return chan_fail(r, "requesting a terminal", rc, e);
			r->phase = R_START;
			break;
		case R_START:
			if (r->cmd)
				rc = libssh2_channel_process_startup(r->ch, "exec", 4, r->cmd,
								     (unsigned)strlen(r->cmd));
			else
				rc = libssh2_channel_process_startup(r->ch, "shell", 5, NULL, 0);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				goto again;
			if (rc != 0)
				return chan_fail(r, r->cmd ? "starting the command" : "starting a shell",
						 rc, e);
			r->phase = R_IO;
			break;
		case R_IO:
			rc = run_pump(r, e);
			if (rc < 0)
				return rc;
			r->phase = R_CLOSE;
			break;
		case R_CLOSE:
			rc = libssh2_channel_close(r->ch);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				goto again;
			if (rc != 0)
				return chan_fail(r, "closing the channel", rc, e);
			r->phase = R_WAIT;
			break;
		case R_WAIT:
			rc = libssh2_channel_wait_closed(r->ch);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				goto again;
			if (rc != 0)
				return chan_fail(r, "waiting for the channel to close", rc, e);
			collect_status(s, r->ch, &r->st);
			libssh2_channel_free(r->ch);
			r->ch = NULL;
			r->phase = R_DONE;
			break;
		case R_DONE:
			return 0;
		}
	}
again:
	r->c->want = ssh2_want(s);
	return -EAGAIN;
}

/* Frees a channel left behind by a failed or cancelled run (never blocks). */
void run_release(struct run *r)
{
	if (r->ch) {
		r->c->dead = true;
		libssh2_channel_free(r->ch);
		r->ch = NULL;
	}
}

/* ---------- blocking driver ---------- */

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for the socket (c->want), until deadline (0 = none), while also watching
 * up to two extra fds; returns 0, or -ETIMEDOUT / -errno. */
static int wait_sock(struct ssh_conn *c, int64_t deadline, struct pollfd *extra, int nextra,
		     struct err *e)
{
	struct pollfd p[3] = { { .fd = c->fd, .events = c->want } };
	for (int i = 0; i < nextra; i++)
		p[1 + i] = extra[i];
	for (;;) {
		/* Without a deadline, wake up every second anyway: a safety net so a
		 * missed libssh2 state change costs a second, never a hang. */
		int tmo = 1000;
		if (deadline) {
			int64_t left = deadline - now_ms();
			if (left <= 0)
				return err_set(e, -ETIMEDOUT,
					       "connecting to %s (%s:%d) timed out after %d ms",
					       c->t.name, c->t.host, c->t.port, c->t.connect_timeout_ms);
			tmo = (int)left;
		}
		int n = poll(p, (nfds_t)(1 + nextra), tmo);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set(e, -errno, "poll: %s", strerror(errno));
		for (int i = 0; i < nextra; i++)
			extra[i].revents = p[1 + i].revents;
		if (n > 0 || !deadline)
			return 0;
	}
}

/* A dropped handshake is dialled again after a pause (each attempt bounded by
 * the connect timeout, the retries by SSH_DROPPED_RETRY_MS). */
static int conn_open_sync(struct ssh_conn *c, struct err *e)
{
	int64_t deadline = now_ms() + c->t.connect_timeout_ms;
	int64_t drop_deadline = now_ms() + SSH_DROPPED_RETRY_MS;
	for (;;) {
		int r = conn_step(c, e);
		if (r == 0)
			return 0;
		if (r != -EAGAIN && !conn_dropped(c, r))
			return r;
		if (r != -EAGAIN) {
			int pause = conn_backoff_ms(c->dropped + 1);
			if (now_ms() + pause >= drop_deadline)
				return r;
			conn_reset(c, true);
			poll(NULL, 0, pause);
			deadline = now_ms() + c->t.connect_timeout_ms; /* per attempt */
			continue;
		}
		if ((r = wait_sock(c, deadline, NULL, 0, e)) < 0)
			return r;
	}
}

/* Liveness of an interactive session: keepalives, a silence limit, and a
 * caller's check (e.g. "was the member stopped?"). */
struct keepalive {
	int interval_s;
	int dead_after_ms;   /* nothing received for this long: the peer is gone */
	bool (*gone)(void *data);
	void *data;
	const char *gone_why;
	bool configured;
	int64_t next_check_ms;
};

/* Extra fds the blocking driver watches besides the socket. */
struct drive_fds {
	int in_fd;    /* stdin to forward, -1 none */
	int winch_fd; /* self-pipe written on SIGWINCH, -1 none */
	int tty_fd;   /* where to read the window size from */
	struct keepalive *ka; /* NULL: none */
};

/* Called after every wait of a running session (at least once a second). */
static int keepalive_tick(struct run *r, struct keepalive *ka, struct err *e)
{
	struct ssh_conn *c = r->c;
	int64_t now = now_ms();
	if (c->phase != C_READY || r->phase != R_IO)
		return 0;
	if (!ka->configured) {
		libssh2_keepalive_config(c->s, 1, (unsigned)ka->interval_s);
		c->last_rx_ms = now;
		ka->configured = true;
	}
	int next = 0;
	(void)libssh2_keepalive_send(c->s, &next); /* a failed send shows as silence */
	if (now - c->last_rx_ms > ka->dead_after_ms)
		return err_set(e, -ETIMEDOUT, "connection to %s lost: no answer for %d s", c->t.name,
			       ka->dead_after_ms / 1000);
	if (ka->gone && now >= ka->next_check_ms) {
		ka->next_check_ms = now + 1000;
		if (ka->gone(ka->data))
			return err_set(e, -ESHUTDOWN, "%s %s: session closed", c->t.name,
				       ka->gone_why ? ka->gone_why : "went away");
	}
	return 0;
}

static void read_winsize(int fd, int *cols, int *rows)
{
	struct winsize ws;
	if (fd >= 0 && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
		*cols = ws.ws_col;
		*rows = ws.ws_row;
	}
}

static int run_sync(struct run *r, const struct drive_fds *fds, struct err *e)
{
	int64_t deadline = now_ms() + r->c->t.connect_timeout_ms;
	for (;;) {
		int rc = run_step(r, e);
		if (rc != -EAGAIN)
			return rc;
		struct pollfd x[2] = { { .fd = -1 }, { .fd = -1 } };
		int nx = 0, in_i = -1, w_i = -1;
		/* stdin is read only once the command runs, and only into an empty buffer */
		if (fds && fds->in_fd >= 0 && !r->in_eof && r->in_len == 0 && r->phase == R_IO) {
			in_i = nx;
			x[nx++] = (struct pollfd){ .fd = fds->in_fd, .events = POLLIN };
		}
		if (fds && fds->winch_fd >= 0) {
			w_i = nx;
			x[nx++] = (struct pollfd){ .fd = fds->winch_fd, .events = POLLIN };
		}
		if (r->c->want == 0) {
			/* runnable now: only look at the extra fds, without blocking */
			if (nx > 0 && poll(x, (nfds_t)nx, 0) < 0 && errno != EINTR)
				return err_set(e, -errno, "poll: %s", strerror(errno));
		} else if ((rc = wait_sock(r->c, r->c->phase == C_READY ? 0 : deadline, x, nx, e)) < 0) {
			return rc;
		}
		if (fds && fds->ka && (rc = keepalive_tick(r, fds->ka, e)) < 0)
			return rc;
		if (in_i >= 0 && x[in_i].revents) {
			ssize_t n = read(fds->in_fd, r->inbuf, sizeof(r->inbuf));
			if (n > 0)
				r->in_len = (size_t)n, r->in_off = 0;
			else if (n == 0 || (errno != EINTR && errno != EAGAIN))
				r->in_eof = true;
		}
		/* Checked whatever poll said: a SIGWINCH handled as poll returned has
		 * written the pipe after revents were computed, and the resize must reach
		 * the remote before the input typed after it. */
		if (w_i >= 0) {
			char buf[64];
			bool got = false;
			while (read(fds->winch_fd, buf, sizeof(buf)) > 0)
				got = true;
			if (got) {
				read_winsize(fds->tty_fd, &r->cols, &r->rows);
				r->winch = true;
			}
		}
	}
}

int ssh_exec_stream(const struct ssh_target *t, const char *cmd, const struct ssh_io *io,
		    struct ssh_status *st, struct err *e)
{
	struct ssh_conn c;
	struct run *r = NULL;
	int rc = conn_init(&c, t, e);
	if (rc < 0)
		return rc;
	r = malloc(sizeof(*r));
	if (!r)
		return err_set(e, -ENOMEM, "out of memory");
	run_init(r, &c, cmd);
	struct drive_fds fds = { .in_fd = -1, .winch_fd = -1, .tty_fd = -1 };
	if (io) {
		r->on_out = io->on_stdout;
		r->on_err = io->on_stderr;
		r->data = io->data;
		fds.in_fd = io->stdin_fd;
		r->in_eof = io->stdin_fd < 0;
	}
	rc = run_sync(r, &fds, e);
	if (rc == 0 && st)
		*st = r->st;
	run_release(r);
	conn_release(&c, true);
	free(r);
	return rc;
}

int ssh_exec(const struct ssh_target *t, const char *cmd, struct ssh_result *res,
	     struct err *e)
{
	struct collect col = { 0 };
	struct ssh_io io = { collect_out, collect_err, &col, -1 };
	memset(res, 0, sizeof(*res));
	int rc = ssh_exec_stream(t, cmd, &io, &res->st, e);
	if (collect_take(&col, res) < 0 && rc == 0)
		rc = err_set(e, -ENOMEM, "out of memory collecting output of %s", t->name);
	collect_free(&col);
	return rc;
}

/* ---------- interactive shell ---------- */

static struct termios saved_tio;
static volatile sig_atomic_t tio_fd = -1;
static int winch_pipe[2] = { -1, -1 };

static void tty_restore(void)
{
	if (tio_fd >= 0) {
		tcsetattr(tio_fd, TCSADRAIN, &saved_tio);
		tio_fd = -1;
	}
}

static void on_fatal_signal(int sig)
{
	tty_restore(); /* tcsetattr is async-signal-safe */
	signal(sig, SIG_DFL);
	raise(sig);
}

static void on_winch(int sig)
{
	int saved = errno;
	(void)sig;
	if (winch_pipe[1] >= 0) {
		ssize_t n = write(winch_pipe[1], "w", 1);
		(void)n;
	}
	errno = saved;
}

static void out_write(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* the local terminal went away; keep draining the channel */
		buf += n;
		len -= (size_t)n;
	}
}

struct session_io {
	int out_fd, err_fd;
};

static void session_out(void *data, const char *buf, size_t len)
{
	out_write(((struct session_io *)data)->out_fd, buf, len);
}

static void session_err(void *data, const char *buf, size_t len)
{
	out_write(((struct session_io *)data)->err_fd, buf, len);
}

/* The remote terminal's type and size: TERM, and the size of whichever local
 * fd is a terminal (80x24 otherwise). */
static void pty_setup(struct run *r, const struct ssh_session_opts *o)
{
	const char *term = getenv("TERM");
	r->pty = true;
	snprintf(r->term, sizeof(r->term), "%s", term && *term ? term : "vt100");
	r->cols = 80;
	r->rows = 24;
	read_winsize(isatty(o->in_fd) ? o->in_fd : o->out_fd, &r->cols, &r->rows);
}

struct tty_state {
	bool raw;
	struct sigaction winch, term, hup, quit;
};

/* Raw mode on the local terminal, restored on return and on fatal signals;
 * SIGWINCH feeds winch_pipe. */
static int tty_enter(int fd, struct tty_state *ts, struct err *e)
{
	memset(ts, 0, sizeof(*ts));
	if (tcgetattr(fd, &saved_tio) < 0)
		return err_set(e, -errno, "tcgetattr: %s", strerror(errno));
	struct sigaction sa = { 0 };
	sa.sa_handler = on_winch;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGWINCH, &sa, &ts->winch);
	sa.sa_handler = on_fatal_signal;
	sa.sa_flags = SA_RESETHAND;
	sigaction(SIGTERM, &sa, &ts->term);
	sigaction(SIGHUP, &sa, &ts->hup);
	sigaction(SIGQUIT, &sa, &ts->quit);
	struct termios raw = saved_tio;
	cfmakeraw(&raw);
	tio_fd = fd;
	ts->raw = true;
	if (tcsetattr(fd, TCSADRAIN, &raw) < 0) {
		tio_fd = -1;
		return err_set(e, -errno, "cannot put the terminal in raw mode: %s", strerror(errno));
	}
	return 0;
}

static void tty_leave(struct tty_state *ts)
{
	if (!ts->raw)
		return;
	tty_restore();
	sigaction(SIGWINCH, &ts->winch, NULL);
	sigaction(SIGTERM, &ts->term, NULL);
	sigaction(SIGHUP, &ts->hup, NULL);
	sigaction(SIGQUIT, &ts->quit, NULL);
	ts->raw = false;
}

/* The I/O phase: on a raw local terminal when there is a pty and stdin is one. */
static int session_drive(struct run *r, const struct ssh_session_opts *o, struct keepalive *ka,
			 struct err *e)
{
	struct drive_fds fds = { .in_fd = o->in_fd, .winch_fd = -1, .tty_fd = -1, .ka = ka };
	if (!r->pty || !isatty(o->in_fd))
		return run_sync(r, &fds, e);
	if (pipe2(winch_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return err_set(e, -errno, "pipe: %s", strerror(errno));
	struct tty_state ts;
	int rc = tty_enter(o->in_fd, &ts, e);
	if (rc == 0) {
		fds.winch_fd = winch_pipe[0];
		fds.tty_fd = o->in_fd;
		rc = run_sync(r, &fds, e);
	}
	tty_leave(&ts);
	close(winch_pipe[0]);
	close(winch_pipe[1]);
	winch_pipe[0] = winch_pipe[1] = -1;
	return rc;
}

int ssh_session(const struct ssh_target *t, const struct ssh_session_opts *o,
		struct ssh_status *st, struct err *e)
{
	struct ssh_conn c;
	int rc = conn_init(&c, t, e);
	if (rc < 0)
		return rc;
	/* Connect before touching the terminal so errors print in cooked mode. */
	struct run *r = NULL;
	if ((rc = conn_open_sync(&c, e)) < 0 || !(r = malloc(sizeof(*r)))) {
		conn_release(&c, true);
		return rc < 0 ? rc : err_set(e, -ENOMEM, "out of memory");
	}
	run_init(r, &c, o->cmd);
	if (o->pty)
		pty_setup(r, o);
	struct session_io io = { o->out_fd, o->pty ? o->out_fd : o->err_fd };
	r->on_out = session_out;
	r->on_err = session_err;
	r->data = &io;
	r->in_eof = o->in_fd < 0;
	struct keepalive ka = {
		.interval_s = o->keepalive_s > 0 ? o->keepalive_s : SSH_KEEPALIVE_S,
		.dead_after_ms = (o->dead_after_s > 0 ? o->dead_after_s : SSH_DEAD_AFTER_S) * 1000,
		.gone = o->gone, .data = o->data, .gone_why = o->gone_why,
	};
	rc = session_drive(r, o, &ka, e);
	if (rc == 0 && st)
		*st = r->st;
	run_release(r);
	conn_release(&c, true);
	free(r);
	return rc;
}

int ssh_shell(const struct ssh_target *t, int in_fd, int out_fd, struct ssh_status *st,
	      struct err *e)
{
	if (!isatty(in_fd))
		return err_set(e, -ENOTTY, "an interactive shell needs a terminal on stdin");
	struct ssh_session_opts o = { .pty = true, .in_fd = in_fd, .out_fd = out_fd, .err_fd = out_fd };
	return ssh_session(t, &o, st, e);
}

/* ---------- connections and channels for copy ---------- */

struct ssh_chan {
	struct ssh_conn *c;
	LIBSSH2_CHANNEL *ch;
	char errbuf[CHAN_STDERR_KEEP + 1];
	size_t errlen;
	bool closed;
	struct ssh_status st;
	char scratch[IO_CHUNK];
};

int ssh_conn_open(const struct ssh_target *t, struct ssh_conn **out, struct err *e)
{
	*out = NULL;
	struct ssh_conn *c = malloc(sizeof(*c));
	if (!c)
		return err_set(e, -ENOMEM, "out of memory");
	int r = conn_init(c, t, e);
	if (r == 0)
		r = conn_open_sync(c, e);
	if (r < 0) {
		conn_release(c, true);
		free(c);
		return r;
	}
	*out = c;
	return 0;
}

void ssh_conn_free(struct ssh_conn *c)
{
	if (!c)
		return;
	conn_release(c, true);
	free(c);
}

static int chan_wait(struct ssh_conn *c, struct err *e)
{
	c->want = ssh2_want(c->s);
	return wait_sock(c, 0, NULL, 0, e);
}

int ssh_chan_exec(struct ssh_conn *c, const char *cmd, struct ssh_chan **out, struct err *e)
{
	*out = NULL;
	struct ssh_chan *h = calloc(1, sizeof(*h));
	if (!h)
		return err_set(e, -ENOMEM, "out of memory");
	h->c = c;
	int rc;
	while (!(h->ch = libssh2_channel_open_ex(c->s, "session", 7, CHAN_WINDOW, CHAN_PACKET,
						  NULL, 0))) {
		rc = libssh2_session_last_errno(c->s);
		if (rc != LIBSSH2_ERROR_EAGAIN) {
			rc = err_set(e, -EIO, "opening a channel on %s: %s", c->t.name,
				     ssh2_msg(c->s));
			goto fail;
		}
		if ((rc = chan_wait(c, e)) < 0)
			goto fail;
	}
	while ((rc = libssh2_channel_process_startup(h->ch, "exec", 4, cmd,
						     (unsigned)strlen(cmd))) != 0) {
		if (rc != LIBSSH2_ERROR_EAGAIN) {
			rc = err_set(e, -EIO, "starting a command on %s: %s", c->t.name,
				     ssh2_msg(c->s));
			goto fail;
		}
		if ((rc = chan_wait(c, e)) < 0)
			goto fail;
	}
	*out = h;
	return 0;
fail:
	ssh_chan_free(h);
	return rc;
}

/* Reads whatever stderr is pending; keeps the last CHAN_STDERR_KEEP bytes. */
static int chan_drain_stderr(struct ssh_chan *h, bool *progress, struct err *e)
{
	for (;;) {
		ssize_t n = libssh2_channel_read_ex(h->ch, SSH_EXTENDED_DATA_STDERR, h->scratch,
						    sizeof(h->scratch));
		if (n == LIBSSH2_ERROR_EAGAIN || n == 0)
			return 0;
		if (n < 0)
			return err_set(e, -EIO, "reading from %s: %s", h->c->t.name,
				       ssh2_msg(h->c->s));
		*progress = true;
		size_t k = (size_t)n;
		const char *src = h->scratch;
		if (k >= CHAN_STDERR_KEEP) {
			src += k - CHAN_STDERR_KEEP;
			k = CHAN_STDERR_KEEP;
			h->errlen = 0;
		} else if (h->errlen + k > CHAN_STDERR_KEEP) {
			size_t drop = h->errlen + k - CHAN_STDERR_KEEP;
			memmove(h->errbuf, h->errbuf + drop, h->errlen - drop);
			h->errlen -= drop;
		}
		memcpy(h->errbuf + h->errlen, src, k);
		h->errlen += k;
		h->errbuf[h->errlen] = '\0';
	}
}

ssize_t ssh_chan_read(struct ssh_chan *h, void *buf, size_t len, struct err *e)
{
	for (;;) {
		bool progress = false;
		ssize_t n = libssh2_channel_read_ex(h->ch, 0, buf, len);
		if (n > 0)
			return n;
		if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
			return err_set(e, -EIO, "reading from %s: %s", h->c->t.name,
				       ssh2_msg(h->c->s));
		int rc = chan_drain_stderr(h, &progress, e);
		if (rc < 0)
			return rc;
		if (libssh2_channel_eof(h->ch) == 1)
			return 0;
		if (!progress && !chan_ready(h->c->s, h->ch, false) && (rc = chan_wait(h->c, e)) < 0)
			return rc;
	}
}

int ssh_chan_write(struct ssh_chan *h, const void *buf, size_t len, struct err *e)
{
	const char *p = buf;
	while (len > 0) {
		/* Keep stderr (and stray stdout) flowing so the remote never stalls on
		 * us; done before the write so the write's own EAGAIN is the last word. */
		bool progress = false;
		int rc = chan_drain_stderr(h, &progress, e);
		if (rc < 0)
			return rc;
		while (libssh2_channel_read_ex(h->ch, 0, h->scratch, sizeof(h->scratch)) > 0)
			;
		ssize_t n = libssh2_channel_write(h->ch, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
			return err_set(e, -EPIPE, "writing to %s: %s", h->c->t.name, ssh2_msg(h->c->s));
		/* The remote's stdout ended: the command exited and will not read more. */
		if (libssh2_channel_eof(h->ch) == 1)
			return err_set(e, -EPIPE, "the remote command on %s exited before reading "
						  "all input", h->c->t.name);
		if (!chan_ready(h->c->s, h->ch, true) && (rc = chan_wait(h->c, e)) < 0)
			return rc;
	}
	return 0;
}

int ssh_chan_send_eof(struct ssh_chan *h, struct err *e)
{
	int rc;
	while ((rc = libssh2_channel_send_eof(h->ch)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = chan_wait(h->c, e)) < 0)
			return rc;
	if (rc != 0)
		return err_set(e, -EPIPE, "sending EOF to %s: %s", h->c->t.name, ssh2_msg(h->c->s));
	return 0;
}

int ssh_chan_finish(struct ssh_chan *h, struct ssh_status *st, struct err *e)
{
	int rc;
	for (;;) {
		bool progress = false;
		ssize_t n = libssh2_channel_read_ex(h->ch, 0, h->scratch, sizeof(h->scratch));
		if (n > 0)
			progress = true;
		else if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
			return err_set(e, -EIO, "reading from %s: %s", h->c->t.name,
				       ssh2_msg(h->c->s));
		if ((rc = chan_drain_stderr(h, &progress, e)) < 0)
			return rc;
		if (libssh2_channel_eof(h->ch) == 1)
			break;
		if (!progress && !chan_ready(h->c->s, h->ch, false) && (rc = chan_wait(h->c, e)) < 0)
			return rc;
	}
	while ((rc = libssh2_channel_close(h->ch)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = chan_wait(h->c, e)) < 0)
			return rc;
	while (rc == 0 && (rc = libssh2_channel_wait_closed(h->ch)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = chan_wait(h->c, e)) < 0)
			return rc;
	if (rc != 0)
		return err_set(e, -EIO, "closing the channel on %s: %s", h->c->t.name,
			       ssh2_msg(h->c->s));
	collect_status(h->c->s, h->ch, &h->st);
	h->closed = true;
	if (st)
		*st = h->st;
	return 0;
}

const char *ssh_chan_stderr(struct ssh_chan *h)
{
	while (h->errlen > 0 && strchr(" \t\r\n", h->errbuf[h->errlen - 1]))
		h->errbuf[--h->errlen] = '\0';
	return h->errbuf;
}

void ssh_chan_free(struct ssh_chan *h)
{
	if (!h)
		return;
	if (h->ch) {
		/* An unfinished channel cannot be closed politely without blocking:
		 * cut the connection instead (it is single-use anyway). */
		if (!h->closed)
			h->c->dead = true;
		libssh2_channel_free(h->ch);
	}
	free(h);
}
