/* fleetbox.h - the public client API of libfleetbox.
 *
 * Real Linux VMs as test fixtures. A test harness calls fb_up() with
 * bound = 1 and gets a cluster whose holder process (and therefore every VM)
 * dies with the calling process, even on kill -9. The fleetbox CLI is built on
 * exactly this API.
 *
 * Conventions: functions return 0 on success or a negative errno; when an
 * fb_error is passed it receives the same code and a human message. `root` is
 * the store root; NULL means the default ($FLEETBOX_HOME, else ~/.fleetbox,
 * under sudo the invoking user's). Blocking calls run a private uv loop; the
 * library never prints and never changes signal dispositions: blocking calls
 * block SIGPIPE in the calling thread while they run.
 *
 * This header is the blocking API only and needs nothing but ISO C: it
 * compiles with -std=c11 -pedantic and no feature macros, and pulls in
 * neither <uv.h> nor pthread types. The asynchronous calls, which run on the
 * caller's libuv loop, are in <fleetbox/uv.h> (which includes this one). */
#ifndef FLEETBOX_H
#define FLEETBOX_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FB_PROTOCOL "2"

typedef struct fb_error {
	int code;           /* negative errno, 0 when no error */
	char message[512];  /* human sentence, "" when no error */
} fb_error;

const char *fb_version(void);

/* Resolves the default store root into buf. */
int fb_store_root(char *buf, size_t len);

/* --- members --- */

typedef struct fb_member_info {
	char name[64];
	char ip[16];          /* "" when not known */
	char state[16];       /* downloading|starting|running|stopped|error */
	int running;          /* holder alive and state is downloading/starting/running */
	long holder_pid;      /* 0 when no holder */
	int cpus;
	int memory_mb;
	int disk_mb;
	char image[256];
	char created_at[32];  /* RFC 3339 */
	char error[512];      /* the holder's error for this member, if any */
} fb_member_info;

/* Every member in the store, sorted by name, with live state. */
int fb_list(const char *root, fb_member_info **out, size_t *n, fb_error *err);
void fb_list_free(fb_member_info *list);
/* Live status of one member (stored config + the holder's status). */
int fb_status(const char *root, const char *name, fb_member_info *out, fb_error *err);

/* Waits until every named member's state is "running" (e.g. members of a
 * detached holder started elsewhere). Fails at once if one is in "error" or
 * not running at all, and with -ETIMEDOUT after timeout_ms. */
int fb_wait_running(const char *root, const char *const *names, size_t n, int timeout_ms,
		    fb_error *err);

/* --- up / down / rm --- */

typedef struct fb_fixture_spec {
	const char *host_path;   /* an existing directory */
	const char *guest_path;  /* absolute path in the guest, mounted read-only */
} fb_fixture_spec;

typedef void (*fb_progress_fn)(void *data, const char *line);

/* Where one member of an fb_up stands. A member that fails is FAILED; when
 * the call fails or is interrupted, every member it touched is reported
 * ROLLED_BACK with what was done to it. */
typedef enum fb_up_phase {
	FB_UP_WAITING,      /* queued behind the holder, network or image */
	FB_UP_CREATING,     /* creating its disk, keys and config */
	FB_UP_BOOTING,      /* its holder is starting the VM */
	FB_UP_WAITING_SSH,  /* the VM is up; waiting for an authenticated SSH session */
	FB_UP_READY,        /* running and answering SSH (or it was running already) */
	FB_UP_FAILED,
	FB_UP_ROLLED_BACK,
	FB_UP_WAITING_CLOUD_INIT, /* SSH answers; the guest's cloud-init is still
				   * configuring it (images that run cloud-init) */
} fb_up_phase;

typedef struct fb_member_progress {
	const char *name;
	fb_up_phase phase;
	const char *phase_name; /* "waiting", "creating disk", "booting", "waiting for SSH",
				 * "ready", "failed", "rolled back", "waiting for cloud-init" */
	double elapsed;         /* seconds since fb_up was called */
	const char *ip;         /* "" until known */
	const char *detail;     /* "" or one line without control characters: while
				 * booting or waiting for SSH the last line of the guest's
				 * serial console; the error when FAILED; what was done
				 * when ROLLED_BACK ("deleted", "stopped again", ...) */
} fb_member_progress;

/* Called on the calling thread, inside fb_up: at every phase change of a
 * member, and about once a second for members booting or waiting for SSH
 * (elapsed and detail updated; the phase is the same). Pointers are valid
 * during the call only. */
typedef void (*fb_member_progress_fn)(void *data, const fb_member_progress *p);

typedef struct fb_up_options {
	const char *root;                 /* NULL: default store root */
	const char *const *names;         /* member names or cluster names, see fb_up */
	size_t n_names;
	int cpus;                         /* 0: 2 */
	int memory_mb;                    /* 0: 4096 (1024 for the mini image) */
	int disk_mb;                      /* 0: 20480 */
	const char *image;                /* NULL/"": the embedded default "mini" image */
	const fb_fixture_spec *fixtures;  /* read-only host directories */
	size_t n_fixtures;
	int bound;                        /* 1: VMs die with this process (tests) */
	fb_progress_fn progress;          /* optional progress lines (image, notes) */
	void *progress_data;              /* passed to both progress callbacks */
	fb_member_progress_fn member_progress; /* optional per-member progress */
	/* Optional interrupt flag (a signal handler may set it; nothing else
	 * is safe there). fb_up checks it between its phases and, while it
	 * waits for VMs to boot or to answer SSH, every 50 ms. Once it is
	 * non-zero, fb_up stops, rolls back as after a failure (members it
	 * created are destroyed, pre-existing ones stopped again, VMs still
	 * booting are stopped in their holder) and returns -ECANCELED with a
	 * message saying what it rolled back. Rollback waits (bounded) for
	 * graceful VM stops; a value of 2 or more (a second interrupt) ends
	 * that wait: a holder fb_up spawned is killed at once, taking its VMs
	 * along, and the host network state it made is reclaimed by the next
	 * holder start or `fleetbox prune`. Image preparation (a build or a
	 * download) is not interrupted; the flag is seen when it finishes. */
	const volatile sig_atomic_t *cancel;
	/* Isolation. fb_up never silently hands back or joins VMs another
	 * process owns. A bound call (bound = 1) uses only holders bound to
	 * this process; a detached call uses detached holders (shared by
	 * design) and holders bound to this process. Anything else, a named
	 * member held there or a cluster member it would join (a detached
	 * cluster for a bound call, another harness's bound cluster with the
	 * same names, a harness's cluster for `fleetbox up web-3`), fails with
	 * -EBUSY and a message naming the owner: the holder's pid, detached or
	 * bound, and the pid (and name) of the process it is bound to.
	 * join = 1 opts in: the members are used or booted there and live as
	 * long as that holder, not as long as this process. */
	int join;
	/* 1: members this call creates are ephemeral, the testcontainers
	 * default: deleted, disk and all, when the cluster is closed
	 * (fb_cluster_close stops them if their holder outlives the cluster),
	 * when their holder stops serving them, or when this process dies
	 * (a bound holder tears down and deletes them). Members that existed
	 * before the call are never deleted. */
	int ephemeral;
} fb_up_options;

/* A started set of members. For a bound cluster it holds the control
 * connection: fb_cluster_close() (or the death of this process) stops the
 * holder and every VM in it. For a detached cluster it is only a result. */
typedef struct fb_cluster fb_cluster;

/* Creates missing members, boots stopped ones, returns running ones; all on
 * one network in one holder (joining a live holder of the same cluster).
 *
 * Names are resolved as fb_down and fb_rm resolve patterns: an existing
 * member of that name; else every member of the cluster of that name (after
 * fb_down of "web", fb_up of "web" boots web-1, web-2, ... again, and the
 * cluster lists them); else a new member of that name. A name that is both
 * a member and a cluster (a solo "web" beside web-1) means the member. A
 * name given twice (or "web" and "web-2") counts once. At most 253 members
 * (one /24 network).
 *
 * All-or-nothing: on failure (or interrupt, see cancel), members created by
 * this call are destroyed, pre-existing ones only stopped, running ones left
 * alone. fb_error is cleared on success. */
int fb_up(const fb_up_options *opt, fb_cluster **out, fb_error *err);
/* Boots one more member (a new or stopped one; name is resolved as in
 * fb_up) into the live cluster's holder and network, with the create
 * options of the fb_up that made c (image, cpus, memory, disk, fixtures,
 * ephemeral), and appends it to c. All-or-nothing like fb_up; c is
 * unchanged on failure. Fails with -EBUSY if name runs in another holder
 * and -ESRCH if the cluster's holder serves none of its members any more.
 * The Go library's Cluster.Add. */
int fb_cluster_add(fb_cluster *c, const char *name, fb_error *err);
size_t fb_cluster_size(const fb_cluster *c);
const char *fb_cluster_name(const fb_cluster *c, size_t i);
const char *fb_cluster_ip(const fb_cluster *c, size_t i);
pid_t fb_cluster_holder_pid(const fb_cluster *c);
/* Bound (a holder this call's fb_up spawned): closes the control connection
 * and waits (up to 30 s) for the holder to stop every VM and exit. Detached
 * or joined: leaves the holder alone. Then ephemeral members are stopped (if
 * still running) and deleted. Frees c. Accepts NULL. */
int fb_cluster_close(fb_cluster *c, fb_error *err);

/* Name patterns: an exact member name, else every member of that cluster
 * ("web" matches web-1 and web-2, never web-prod). */
int fb_down(const char *root, const char *const *patterns, size_t n, fb_error *err);
int fb_down_all(const char *root, fb_error *err);
/* Stops (if running) and deletes members and their disks. Idempotent. */
int fb_rm(const char *root, const char *const *patterns, size_t n, fb_error *err);
int fb_rm_all(const char *root, fb_error *err);

/* --- raw protocol access --- */

/* Sends one NDJSON request line to a member's socket (dial retry up to
 * dial_ms) and returns the reply line (without '\n', caller frees). */
int fb_request(const char *root, const char *member, const char *request_json,
	       int dial_ms, int read_ms, char **reply, fb_error *err);

/* --- working inside VMs (SSH with the VM's pinned host key) --- */

typedef struct fb_exec_result {
	int exit_status;     /* the command's exit status; -1 if killed by a signal */
	int exit_signal;     /* signal number when killed, else 0 */
	char *out;           /* stdout, NUL-terminated */
	size_t out_len;
	char *err;           /* stderr, NUL-terminated */
	size_t err_len;
	char *combined;      /* both, in arrival order */
	size_t combined_len;
} fb_exec_result;

/* Runs `command` (a shell command line, for the guest user's login shell) in
 * the VM: fb_exec_ex with only .command set. Returns 0 when the command ran
 * (whatever its exit status) and fills res. */
int fb_exec(const char *root, const char *name, const char *command, fb_exec_result *res,
	    fb_error *err);
void fb_exec_result_free(fb_exec_result *res);

/* Output as it arrives: buf holds len bytes (not NUL-terminated), valid during
 * the call only. Called on the thread running the exec (the caller's for the
 * blocking call, the loop's for the async one). */
typedef void (*fb_output_fn)(void *data, const char *buf, size_t len);

/* Options of fb_exec_ex / fb_exec_ex_async; zero-initialise, set what you
 * need. Everything is copied at the call: the caller may free it at once.
 *
 * Bounds: nothing waits forever. Connecting (dial, SSH handshake, auth) takes
 * at most 10 s; a server that drops the handshake (sshd MaxStartups, dropbear's
 * limit of five unauthenticated connections per source, hit by parallel tests)
 * is dialled again with backoff, each attempt within 10 s, for up to 60 s in
 * all (timeout_ms bounds that too). While the command runs:
 *  - the member is watched every second (its holder's lock, then a status
 *    request): when its VM dies (QEMU killed, guest powered off) or its holder
 *    goes away, the call fails within 2 s of the holder seeing it (3 s of the
 *    holder's death) with -EHOSTDOWN, the member's state and error in the
 *    message ("web-1 became stopped (...) while the command ran");
 *  - SSH keepalives go out every 2 s; 10 s without a byte from the guest fails
 *    the call with -ETIMEDOUT (a hung guest, a cut network);
 *  - the server closing the connection fails it with -ECONNRESET
 *    ("connection closed by <ip>");
 *  - timeout_ms, when set, bounds the whole call: -ETIMEDOUT, and the
 *    command's process group in the guest is killed before the call returns.
 * The remote command: the guest user's login shell runs a small wrapper that
 * reports its pid (the SSH server makes it a process group leader), changes
 * to cwd, exports env, and runs the command; with root the command runs under
 * `sudo -n sh -c` (the guest user has passwordless sudo). Killing (timeout,
 * fb_exec_cancel) sends SIGKILL to that process group over a second SSH
 * connection (as root when sudo allows); processes that left the group
 * (setsid, double-forked daemons) are not followed. */
typedef struct fb_exec_opts {
	const char *command;          /* a shell command line, or NULL and ... */
	const char *const *argv;      /* ... a NULL-terminated argv: each word is quoted
				       * so the guest runs exactly these words */
	const void *stdin_data;       /* fed to the command's stdin, then EOF; */
	size_t stdin_len;             /* NULL/0: EOF at once */
	const char *const *env;       /* NULL-terminated "NAME=value" (NAME a shell
				       * variable name), exported for the command */
	const char *cwd;              /* NULL: the user's home; cd failure: exit 126 */
	int root;                     /* 1: run as root (sudo -n sh -c) */
	int timeout_ms;               /* whole call, connect included; 0: none */
	fb_output_fn on_stdout;       /* optional streaming callbacks */
	fb_output_fn on_stderr;
	void *stream_data;
	int no_capture;               /* 1: streamed output is not also kept in res
				       * (res->out etc. are then "") */
} fb_exec_opts;

/* Runs a command with options; 0 when it ran (exit status in res), < 0 when
 * it could not run, was killed by timeout_ms, or the member or connection
 * died (see the bounds above). res is filled with what arrived either way. */
int fb_exec_ex(const char *root, const char *name, const fb_exec_opts *opts,
	       fb_exec_result *res, fb_error *err);


/* Copies a file or directory tree (modes and symlinks kept) into / out of a
 * VM. Guest paths are absolute. */
int fb_copy_to(const char *root, const char *name, const char *host_src, const char *guest_dst,
	       fb_error *err);
int fb_copy_from(const char *root, const char *name, const char *guest_src,
		 const char *host_dst, fb_error *err);

/* --- helpers for test harnesses --- */

/* Writes a name no other process (and no other call in this one) makes:
 * prefix, '-', this process's pid, '-', a per-process counter and random
 * letters, e.g. "db-4242-0kqzmf". It is a valid hostname and ends in a
 * letter, so it is never read as member N of a cluster: use it as a member
 * name, or as a cluster name by appending "-1", "-2", ... (it is at most 59
 * characters, leaving room for "-253"; a long prefix is cut, never the
 * unique part). prefix is [a-z0-9][a-z0-9-]*; NULL or "" means "fb".
 * Thread-safe. Returns 0, -EINVAL (bad prefix, NULL buf, len 0) or -ENOSPC
 * (len too small even for a one-letter prefix). */
int fb_unique_name(const char *prefix, char *buf, size_t len);

/* The member's serial console log: <root>/clusters/<cluster>/<name>/serial.log,
 * everything the guest printed on its console since its last boot (the
 * holder truncates it at each boot; it stays after the member stops, until
 * fb_rm). -ENOENT for an unknown member, -ENAMETOOLONG when len is short. */
int fb_console_path(const char *root, const char *name, char *buf, size_t len, fb_error *err);
/* The last max_bytes of that log at most (from a line start when cut),
 * NUL-terminated, caller frees; "" when the member has not booted yet.
 * What a failing test prints. */
int fb_console_tail(const char *root, const char *name, size_t max_bytes, char **out,
		    fb_error *err);

/* Waits. Each polls until its condition holds and returns 0; fails at once
 * when the member is not running (stopped, error, its holder gone: the
 * message has its state and error), and with -ETIMEDOUT after timeout_ms
 * (0: one look) with what it saw last. */

/* Until a TCP connection from this host to the member's IP:port is accepted
 * (the host is on the cluster's private network). Retried every 100 ms; the
 * timeout message has the last connect error (e.g. connection refused). */
int fb_wait_port(const char *root, const char *name, int port, int timeout_ms, fb_error *err);
/* Until text (a substring, e.g. a line's words) appears in the member's
 * console log since its last boot; looked at every 50 ms. The timeout
 * message has the log's path and its last line. */
int fb_wait_console(const char *root, const char *name, const char *text, int timeout_ms,
		    fb_error *err);
/* Until the shell command line `command` (run as fb_exec_ex runs it, as the
 * guest user) exits 0; tried again 250 ms after each failure. Each try gets
 * the time left as its timeout_ms, so a try that hangs ends at the deadline
 * (with timeout_ms 0, the one try has fb_exec_ex's own bounds).
 * The timeout message has the tries and the last exit status (or error) and
 * stderr line. */
int fb_wait_exec(const char *root, const char *name, const char *command, int timeout_ms,
		 fb_error *err);

#ifdef __cplusplus
}
#endif
#endif
