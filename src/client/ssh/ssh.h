/* ssh.h - SSH to a member on libssh2: command execution (blocking, streaming,
 * async on a caller's uv loop), interactive shells, and raw channels for copy.
 *
 * Every connection pins the member's host key: target->hostkey_pub is the only
 * key accepted ("" refuses), ssh-ed25519 is the only host key algorithm offered.
 * Sockets are always non-blocking; blocking calls wait with poll() and the async
 * call with uv_poll, so both share one resumable state machine. The dial +
 * handshake + auth phase is bounded by target->connect_timeout_ms; a server
 * that drops the connection during the handshake (sshd's MaxStartups,
 * dropbear's five unauthenticated connections per source) is dialled again
 * with exponential backoff, each attempt bounded by connect_timeout_ms, for
 * up to SSH_DROPPED_RETRY_MS (a busy server's slots free up slowly). Running a command is bounded by
 * the async options (timeout, keepalive); the blocking ssh_exec is not.
 *
 * Exit reporting: a command that ran to completion returns 0 whatever its exit
 * status; the status (and signal) is in the result. Errors (< 0) are transport,
 * host key, authentication or local failures. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <uv.h>

#include "client/ssh/target.h"

struct err;

#define SSH_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define SSH_DROPPED_RETRY_MS 60000

struct ssh_status {
	int exit_status;  /* remote exit status; 128+signal when killed by a signal */
	int exit_signal;  /* signal number (0 = none; 255 = a signal we cannot name) */
	char signame[16]; /* "KILL", "" when none */
};

struct ssh_result {
	struct ssh_status st;
	char *out, *err, *combined; /* NUL-terminated (also when empty) */
	size_t out_len, err_len, combined_len;
};
void ssh_result_fini(struct ssh_result *r);

/* --- pure helpers --- */

/* The remote script of a wrapped command: it prints its shell's process group
 * as the first line of stdout (the SSH server made a group for the session:
 * OpenSSH with the shell as leader, dropbear with its connection process),
 * then runs cmd in the login shell, after `cd cwd` (exit 126
 * when that fails) and `export NAME=value` for each env entry; with root, the
 * whole body runs under `sudo -n sh -c`. Env names must be shell names. */
struct ssh_script {
	const char *cmd;
	const char *cwd;               /* NULL: the login directory */
	const char *const *env;        /* NULL-terminated "NAME=value", or NULL */
	bool root;
};
int ssh_exec_script(const struct ssh_script *s, char **out, struct err *e);
/* Kills process group pgid (sudo -n when it may, else as the user). */
int ssh_kill_script(long pgid, char **out, struct err *e);
/* Each word quoted and joined with spaces (also a single word); NULL when
 * argv is empty or out of memory. */
char *ssh_argv_join(const char *const *argv);
bool ssh_env_name_valid(const char *kv);

/* 'word' with ' written as '\'' ; caller frees. */
char *ssh_quote(const char *word);
/* The CLI rule for words after `--`: one word is sent verbatim as a shell command
 * line; several are each quoted and joined with spaces so the remote sees exactly
 * that argv. NULL when n == 0 or out of memory. Caller frees. */
char *ssh_command_join(int n, char *const *words);
/* Decodes "ssh-ed25519 <base64> [comment]" into its wire blob; caller frees. */
int ssh_pubkey_decode(const char *line, unsigned char **blob, size_t *len);
/* "SHA256:<base64 without padding>" like OpenSSH prints. out: at least 52 bytes. */
void ssh_fingerprint(const unsigned char *blob, size_t len, char *out, size_t outlen);

/* --- blocking API --- */

/* Runs cmd and collects stdout, stderr and both combined in arrival order. */
int ssh_exec(const struct ssh_target *t, const char *cmd, struct ssh_result *res,
	     struct err *e);

struct ssh_io {
	/* Called as output arrives (may be NULL to drop it). */
	void (*on_stdout)(void *data, const char *buf, size_t len);
	void (*on_stderr)(void *data, const char *buf, size_t len);
	void *data;
	int stdin_fd; /* forwarded to the command until EOF; -1 = none (EOF at once) */
};
/* Runs cmd streaming its output to callbacks (cmd NULL = a login shell without PTY). */
int ssh_exec_stream(const struct ssh_target *t, const char *cmd, const struct ssh_io *io,
		    struct ssh_status *st, struct err *e);

#define SSH_KEEPALIVE_S 3     /* interactive sessions: keepalive interval */
#define SSH_DEAD_AFTER_S 15   /* ... and silence after which the peer is gone */

/* An interactive session (`fleetbox ssh`): a command or login shell, with or
 * without a remote terminal, stdin forwarded until EOF.
 * With pty: TERM from the environment, the window size of in_fd (or out_fd)
 * following SIGWINCH; when in_fd is a terminal it is put in raw mode (restored
 * on return and on SIGTERM/SIGHUP/SIGQUIT), so Ctrl-C reaches the remote
 * command. The remote terminal merges stderr into out_fd.
 * Liveness: keepalives every keepalive_s; nothing received for dead_after_s
 * ends the session with -ETIMEDOUT; gone(data), asked about once a second,
 * ends it with -ESHUTDOWN ("<name> <gone_why>: session closed"). */
struct ssh_session_opts {
	const char *cmd;     /* NULL: the user's login shell */
	bool pty;
	int in_fd;           /* -1: none (EOF at once) */
	int out_fd, err_fd;
	int keepalive_s, dead_after_s; /* 0: the defaults above */
	bool (*gone)(void *data);      /* NULL: not asked */
	void *data;
	const char *gone_why;          /* e.g. "was stopped" */
};
int ssh_session(const struct ssh_target *t, const struct ssh_session_opts *o,
		struct ssh_status *st, struct err *e);
/* A login shell on a PTY: ssh_session with pty; in_fd must be a terminal. */
int ssh_shell(const struct ssh_target *t, int in_fd, int out_fd, struct ssh_status *st,
	      struct err *e);

/* A connection and channels for streaming protocols (copy). */
struct ssh_conn;
struct ssh_chan;
int ssh_conn_open(const struct ssh_target *t, struct ssh_conn **out, struct err *e);
void ssh_conn_free(struct ssh_conn *c);
int ssh_chan_exec(struct ssh_conn *c, const char *cmd, struct ssh_chan **out, struct err *e);
/* Reads the command's stdout: > 0 bytes, 0 at EOF, < 0 error. Its stderr is
 * collected meanwhile (see ssh_chan_stderr). */
ssize_t ssh_chan_read(struct ssh_chan *ch, void *buf, size_t len, struct err *e);
/* Writes all of buf to the command's stdin; -EPIPE if the command has gone away.
 * Meanwhile stderr is collected and stdout arriving is discarded (for commands
 * that consume input, like tar -x). */
int ssh_chan_write(struct ssh_chan *ch, const void *buf, size_t len, struct err *e);
int ssh_chan_send_eof(struct ssh_chan *ch, struct err *e);
/* Discards remaining stdout, waits for the channel to close, fills st. */
int ssh_chan_finish(struct ssh_chan *ch, struct ssh_status *st, struct err *e);
/* The command's stderr so far (last 16 KiB), trailing whitespace trimmed. */
const char *ssh_chan_stderr(struct ssh_chan *ch);
void ssh_chan_free(struct ssh_chan *ch);

/* --- async API on a caller's loop --- */

struct ssh_exec_op;
/* status 0: the command ran (see res->st); < 0: failure (e says why), -ECANCELED
 * after ssh_exec_cancel. res is owned by the op and freed after the callback
 * returns; take buffers by setting the pointers to NULL. */
typedef void (*ssh_exec_cb)(void *data, int status, struct ssh_result *res,
			    const struct err *e);
/* Starts cmd; returns < 0 (and never calls cb) only if it could not start. The
 * callback always runs from the loop, after every handle of the op is closed. */
int ssh_exec_start(uv_loop_t *loop, const struct ssh_target *t, const char *cmd,
		   ssh_exec_cb cb, void *data, struct ssh_exec_op **out, struct err *e);

#define SSH_EXEC_KEEPALIVE_S 2  /* async exec: keepalive interval */
#define SSH_EXEC_DEAD_AFTER_S 10 /* ... and silence after which the peer is gone */

struct ssh_exec_opts {
	const char *cmd;               /* a shell command line */
	/* Wrap cmd (ssh_exec_script): the remote pid is known, and cancel,
	 * timeout and ssh_exec_abort(kill) kill its process group over a second
	 * connection before the callback runs. cwd/env/root need it. */
	bool wrap;
	const char *cwd;
	const char *const *env;
	bool root;
	const void *in;                /* stdin (copied), then EOF; NULL: EOF at once */
	size_t in_len;
	int timeout_ms;                /* whole call, connect included; 0: none */
	int keepalive_s, dead_after_s; /* 0: the defaults above; < 0: no keepalive */
	/* Streamed output (from the loop, as it arrives); the result still
	 * collects it unless no_collect. */
	void (*on_stdout)(void *data, const char *buf, size_t len);
	void (*on_stderr)(void *data, const char *buf, size_t len);
	void *io_data;
	bool no_collect;
};
int ssh_exec_start_ex(uv_loop_t *loop, const struct ssh_target *t, const struct ssh_exec_opts *o,
		      ssh_exec_cb cb, void *data, struct ssh_exec_op **out, struct err *e);
/* Aborts a running op; its callback then fires with -ECANCELED (a wrapped
 * command's process group killed first; when the exec request may already
 * run in the guest but its group is not known yet, the op first reads on for
 * up to 5 s until the wrapper's line arrives). Only valid before the callback
 * ran (a no-op from inside it). */
void ssh_exec_cancel(struct ssh_exec_op *op);
/* Ends the op with code and message (e.g. "the VM died"); kill: also kill a
 * wrapped command's process group first (pointless when the guest is gone). */
__attribute__((format(printf, 4, 5)))
void ssh_exec_abort(struct ssh_exec_op *op, int code, bool kill, const char *fmt, ...);
/* The remote process group of a wrapped command, 0 until its first line arrived. */
long ssh_exec_pid(const struct ssh_exec_op *op);
