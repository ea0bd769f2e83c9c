/* ctl.h - the control client: spawning holders (bound or detached), the .ctl
 * bind handshake, and one-request-per-connection commands with the dial-retry
 * window of protocol.md. The async calls run on a caller's loop and call back
 * exactly once, after their own handles are closed; the blocking calls run
 * the same code on a private loop. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <uv.h>

#include "rpc/msg.h"

struct err;

#define CTL_DIAL_MS 10000
#define CTL_BIND_DIAL_MS 5000
#define CTL_STATUS_MS 2000
#define CTL_BOOT_MS (30 * 60 * 1000)

/* reply_line is NUL-terminated without '\n', NULL on failure. */
typedef void (*ctl_cb)(void *data, int status, const char *reply_line, const struct err *e);
int ctl_request_async(uv_loop_t *loop, const char *root, const char *member, const char *line,
		      unsigned dial_ms, unsigned read_ms, ctl_cb cb, void *data);
/* The same, with a handle for ctl_request_cancel (valid until cb has run). */
struct ctl_req;
int ctl_request_start(uv_loop_t *loop, const char *root, const char *member, const char *line,
		      unsigned dial_ms, unsigned read_ms, ctl_cb cb, void *data,
		      struct ctl_req **out);
/* Ends the request now: cb runs (from the loop, after the handles are closed)
 * with -ECANCELED. No-op once the request has finished. */
void ctl_request_cancel(struct ctl_req *r);
/* uv_run for the library's private loops, with SIGPIPE blocked in this thread
 * meanwhile (a peer closing early must not kill the caller). */
int ctl_run_loop(uv_loop_t *loop);
/* Blocking; the reply's "error" becomes a -EIO failure with that message. */
int ctl_request(const char *root, const char *member, const struct rpc_request *req,
		unsigned dial_ms, unsigned read_ms, struct rpc_reply *rep, struct err *e);
int ctl_request_line(const char *root, const char *member, const char *line, unsigned dial_ms,
		     unsigned read_ms, char **reply, struct err *e);

struct ctl_holder {
	pid_t pid;
	int ctl_fd;   /* bound: the acknowledged .ctl connection, else -1 */
	bool bound;
};

/* A blocking, close-on-exec connection to a unix socket: fd or -errno. */
int ctl_connect_unix(const char *path);

/* The binary used as holder: FLEETBOX_HELPER, else the path given here (the
 * CLI passes its own executable), else the installed fleetbox, else PATH. */
void ctl_set_helper(const char *path);
int ctl_spawn(const char *root, const char *const *names, size_t n, bool bound,
	      struct ctl_holder *out, struct err *e);
/* Bound: closes .ctl and waits for the holder to exit (SIGKILL after
 * timeout_ms). Detached: forgets it. */
int ctl_holder_release(struct ctl_holder *h, int timeout_ms, struct err *e);

int ctl_status(const char *root, const char *member, struct rpc_status **st, struct err *e);
/* Waits until the member is no longer running (pidfile/lock). */
int ctl_wait_gone(const char *root, const char *member, int timeout_ms);
