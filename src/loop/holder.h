/* holder.h - the holder daemon: one single-threaded uv loop per cluster.
 *
 * Invariants:
 *  - Every uv handle lives inside a struct below and is freed only from its
 *    uv_close callback (two-phase teardown: *_lost() unlinks and starts
 *    closing, the last close callback frees).
 *  - A member is registered (socket bound + pidfile written + .lock held) from
 *    launch or its first boot-member until it is stopped; then its socket and
 *    pidfile are removed. The holder exits when no member is left.
 *  - Member state changes only through member_set_state(), which logs old -> new.
 *  - Shutdown (signal, parent gone, .ctl EOF, last member gone) stops every VM,
 *    waits for all VMM exits, tears the network down, removes files, closes all
 *    handles, and returns from uv_run with uv_loop_close() == 0. */
#pragma once
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "loop/peer.h"
#include "loop/policy.h"
#include "rpc/frame.h"
#include "rpc/msg.h"
#include "rpc/wire.h"

struct vmm_driver;
struct vmm_vm;
struct net;
struct conn;

struct reservation {
	char name[FB_NAME_MAX + 1];
	char ip[FB_IP_STRLEN];
	char mac[FB_MAC_STRLEN];
	struct reservation *next;
};

struct member {
	struct holder *h;
	char name[FB_NAME_MAX + 1];
	char sock_path[WIRE_SUN_PATH_MAX];
	char sock_name[32];        /* <hash>.sock in run/ */
	char pidfile[PATH_MAX];
	char dir[PATH_MAX];
	int dir_fd;                /* the member dir, reached beneath the store root */
	uv_pipe_t server;
	bool server_open;
	int lock_fd;
	bool ephemeral;            /* spec.ephemeral: delete dir once the VM is gone */
	struct boot_files files;   /* open while a VMM may use them */
	enum wire_state state;
	char error[512];
	char ip[FB_IP_STRLEN];
	char mac[FB_MAC_STRLEN];
	char tap[16];
	char serial_shown[PATH_MAX]; /* default console log path, for messages */
	struct vmm_vm *vm;         /* non-NULL while a VMM process exists */
	struct conn *boot_conn;    /* boot-member request awaiting the VM's ready */
	bool stop_requested;       /* `stop` received: remove once the VM is gone */
	uint64_t stop_grace_ms;    /* graceful power-off before SIGTERM (util/timeouts.h) */
	bool removed;              /* socket/pidfile gone, waiting to be freed */
	struct member *next;
};

struct ctl_conn {
	struct holder *h;
	uv_pipe_t pipe;
	uv_timer_t timer;          /* no ack within the connection timeout: dropped */
	int open_handles;
	struct peer_ref peer;
	char buf[16];
	size_t len;
	bool bound, acked, dropping;
	struct ctl_conn *next;
};

struct holder {
	uv_loop_t *loop;
	char root[PATH_MAX];
	char root_real[PATH_MAX];  /* realpath of root ("" if none): paths may use either */
	int root_fd;               /* every file op in the store is relative to it */
	int run_fd;                /* <root>/run */
	const struct vmm_driver *drv;
	bool use_net;
	bool net_created;
	struct net *net;
	char subnet[32];
	int fake_next_ip;
	struct reservation *reservations;
	struct member *members;
	int n_members;
	int n_conns;
	struct conn *conns;
	unsigned conn_timeout_ms;
	struct peer_rule conn_rule, ctl_rule;
	struct peer_table conn_peers, ctl_peers;

	/* bound mode */
	pid_t parent_pid;
	bool parent_is_ppid;
	int pidfd;
	uv_poll_t parent_poll;
	uv_timer_t parent_timer;
	bool parent_poll_open, parent_timer_open;
	uv_pipe_t ctl_server;
	bool ctl_open;
	char ctl_path[WIRE_SUN_PATH_MAX];
	char ctl_name[32];         /* <hash>.ctl in run/ */
	struct ctl_conn *ctls;

	uv_signal_t sig_term, sig_int;
	uv_timer_t shutdown_timer;
	bool shutting_down;
	bool shutdown_hard;     /* halting: nobody waits for a clean power-off */
	uint64_t shutdown_kill_ms;
	bool finished;          /* final teardown ran (network, parent watch, signals) */
	int vms_running;
	int exit_code;
};

/* holder.c */
/* Stops every member and exits once all are gone. hard: nobody waits for a
 * clean power-off (the bound client died), so VMs are halted at once. */
void holder_shutdown(struct holder *h, const char *why, bool hard);
void holder_maybe_finish(struct holder *h);

/* member.c */
struct member *member_find(struct holder *h, const char *name);
int member_register(struct holder *h, const char *name, struct member **out, char *errbuf,
		    size_t errlen);
void member_set_state(struct member *m, enum wire_state s, const char *error);
/* Stop the member's VM (if any) and remove it once the VM is gone. grace_ms:
 * the graceful phase, 0 = the member's own (spec, FLEETBOX_STOP_TIMEOUT, the
 * image's default). */
void member_stop(struct member *m, uint64_t grace_ms);
/* Stop it with no graceful phase (bound holder whose client is gone). */
void member_halt(struct member *m);
/* Unlink socket + pidfile, release the lock, close the server; frees later. */
void member_remove(struct member *m);
int member_boot(struct member *m, const struct rpc_spec *spec, char *errbuf, size_t errlen);
struct reservation *reservation_find(struct holder *h, const char *name);

/* server.c */
int server_listen(struct member *m);
/* Binds and listens on run/<name> (through run/'s fd, 0600, the invoker's). */
int run_listen(struct holder *h, uv_pipe_t *srv, bool *open_flag, const char *name,
	       int backlog, uv_connection_cb cb);
void conn_reply(struct conn *c, const struct rpc_reply *rep);
void conn_reply_error(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A member is going: connections that it accepted forget it. */
void server_detach_member(struct member *m);

/* parent.c */
int parent_watch_start(struct holder *h);
int ctl_listen(struct holder *h, const char *first_member);
void parent_close(struct holder *h);

/* sweep.c: temporaries of dead writers in the store; returns how many went. */
int store_sweep_tmp(const char *root);
/* Pidfiles of members whose .lock no holder holds; returns how many went. */
int store_sweep_pidfiles(const char *root);

/* Store ownership: under sudo, what the holder creates belongs to
 * SUDO_UID/SUDO_GID (never following a symlink: fds or AT_SYMLINK_NOFOLLOW). */
void holder_fchown_invoker(int fd, const char *what);
void holder_fchownat_invoker(int dirfd, const char *name, const char *what);
/* "/proc/self/fd/<dirfd>/<name>": a path that stays in that directory. */
int holder_fd_path(int dirfd, const char *name, char *out, size_t len);
