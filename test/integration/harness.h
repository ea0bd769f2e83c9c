/* harness.h - helpers for integration tests: a private FLEETBOX_HOME under
 * /tmp, running the real fleetbox binary, raw socket requests, and bounded
 * waits on real conditions (never bare sleeps). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "../unit/check.h"
#include "fleetbox.h"

extern char h_root[256];
extern const char *h_bin;

/* mkdtemp a store, export FLEETBOX_HOME, FLEETBOX_VMM=fake; make a tiny image. */
void h_setup(const char *name);
void h_teardown(void);
/* Path of a tiny local raw image (with the .vmlinuz the resolver wants). */
const char *h_image(void);

/* Runs `fleetbox args...` (NULL-terminated), returns exit status; output
 * (stdout+stderr) in *out if non-NULL (caller frees). */
int h_run(char **out, const char *arg, ...) __attribute__((sentinel));
/* Same with stdin fed from a string. */
int h_run_input(const char *input, char **out, const char *arg, ...) __attribute__((sentinel));

/* Runs `fleetbox args...` on a pseudo-terminal (its stdin, stdout and
 * stderr), types input once prompt appears in its output (at once when
 * prompt is NULL; nothing when input is NULL), and returns the exit status;
 * what the terminal showed in *out (caller frees). Bounded: 120 s. */
int h_run_pty(const char *prompt, const char *input, char **out, const char *arg, ...)
	__attribute__((sentinel));

/* Runs `fleetbox args...` as uid/gid (no supplementary groups, HOME=h_root,
 * stdin /dev/null, this process's other environment); like h_run. */
int h_run_as(uid_t uid, gid_t gid, char **out, const char *arg, ...) __attribute__((sentinel));

/* One raw request on a member socket; returns the reply line (caller frees) or NULL. */
char *h_request(const char *member, const char *bytes, size_t len, int timeout_ms);
#define h_req(member, str, timeout_ms) h_request((member), (str), strlen(str), (timeout_ms))
/* Connects to a member socket; -1 on failure. */
int h_connect_member(const char *member);
int h_connect_path(const char *path);
/* h_connect_path, retried every 5 ms for up to timeout_ms; -1 on timeout. */
int h_dial(const char *path, int timeout_ms);

bool h_pid_alive(pid_t pid);
/* Waits until pid is gone (pidfd); returns ms waited or -1 on timeout. */
long h_wait_pid_gone(pid_t pid, int timeout_ms);
/* Holder pid from the member's pidfile (0 if none). */
pid_t h_pidfile(const char *member);
bool h_sock_exists(const char *member);
/* Waits until cond() is true, polling every 5 ms, at most timeout_ms. */
bool h_wait_until(bool (*cond)(void *), void *arg, int timeout_ms);
/* A live process whose space-joined argv contains every needle (and, if
 * parent != 0, whose parent is parent); 0 if none. */
pid_t h_find_process(const char *const *needles, pid_t parent);
/* The VMM process (any driver) of a member of this store: the one whose
 * environment carries its FLEETBOX_VMM_OF mark; 0 if none. */
pid_t h_vmm_pid(const char *member);
/* PIDs of fake VM processes for a member (scans /proc cmdlines). */
pid_t h_fake_vm_pid(const char *member);
long h_now_ms(void);
char *h_read_file(const char *path);

/* Moves this process into a fresh network namespace (lo up) and refuses to
 * go on unless it really is a new one; sets FLEETBOX_NET=bridge. Exits 77
 * when not root. */
void h_enter_netns(void);
/* Links (via netlink) whose names start with prefix. */
int h_count_links(const char *prefix);
/* Runs a tool (argv, no shell), CHECKs it exited 0, returns its output. */
char *h_tool(const char *prog, const char *a1, const char *a2, const char *a3);
/* Crash records in <root>/networks. */
int h_count_records(void);
/* Forks a process that brings names up bound to itself (optionally runs
 * exec_check in the first member, which must exit 0), reports its holder's
 * pid and then waits to be killed. Returns the child's pid. */
pid_t h_bound_child(const char *const *names, size_t n, const char *image, const char *exec_check,
		    pid_t *holder);
/* The same with every knob: o (names, image, ephemeral, ...; bound is
 * forced), the child leading its own process group as a test runner starts
 * it, and an alarm bounding its life (0: none). */
struct h_bound {
	fb_up_options o;
	const char *exec_check;
	bool own_group;
	unsigned alarm_s;
};
pid_t h_bound_start(const struct h_bound *b, pid_t *holder);

/* What a store and its network namespace hold after a teardown: processes
 * in this network namespace but us (holders, VMMs, clients; zombies do not
 * count), .sock/.ctl sockets, pidfiles, links named fb*, nftables tables
 * fb*, crash records, temporaries (*.tmp*). Needs h_enter_netns(). */
struct h_leftovers {
	int procs, socks, pidfiles, links, tables, records, tmps;
};
struct h_leftovers h_leftovers(void);
int h_count_procs(void);
bool h_no_procs(void *arg); /* for h_wait_until */
/* Lists leftover processes and temporaries on stderr. */
void h_show_leftovers(void);

/* A test program's cases: main() is `return h_run_cases(argc, argv, cases, n)`,
 * which runs the one named by argv[1] (SIGPIPE ignored) and prints "<case>: ok". */
struct h_case {
	const char *name;
	void (*fn)(void);
};
int h_run_cases(int argc, char **argv, const struct h_case *cases, size_t n);
