/* orch.h - orchestration shared by the public API and the CLI. */
#pragma once
#include "fleetbox.h"

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

struct err;

/* fb_error <-> struct err */
void orch_err_export(const struct err *e, fb_error *out);
/* How every public call ends: e exported on failure (r < 0), out cleared on
 * success. Returns r. */
int orch_err_result(int r, const struct err *e, fb_error *out);
/* Resolves opt root or the default into buf. */
int orch_root(const char *root, char *buf, size_t len, struct err *e);

/* A *cancel value at which rollback stops waiting for graceful stops (a
 * second interrupt). */
#define ORCH_ESCALATE 2

/* Stops members concurrently (one private loop) and waits until each is
 * released by its holder and every holder left serving nothing has exited;
 * bounded by timeout_ms. Members not running are skipped. With abort set,
 * returns -ECANCELED as soon as *abort >= ORCH_ESCALATE. */
/* How long a client waits for a stop: the holder's longest default grace
 * (or FLEETBOX_STOP_TIMEOUT) + its SIGTERM phase + a margin. */
int orch_stop_wait_ms(void);
int orch_stop_members(const char *root, const char *const *names, size_t n, int timeout_ms,
		      const volatile sig_atomic_t *abort, struct err *e);
/* The process has exited (a zombie counts) or never existed. */
bool orch_pid_exited(pid_t pid);
/* Test hook: FLEETBOX_TEST_STOP_AT=<step>[,<step>...] stops this process
 * (SIGSTOP) on reaching a named step, so a test can deliver a signal or a
 * SIGKILL exactly there. Steps: the up phases (validate, lock, classify,
 * holder, network, image, prepare, reserve, boot, commit), rollback (its
 * start), stop-wait (every stop request of orch_stop_members answered). */
void orch_test_stop_at(const char *step);

/* Who owns a live holder: a detached one (bound = false) is shared; a bound
 * one belongs to the process it is bound to. known = false when its
 * environment cannot be read (another user's holder). */
struct holder_owner {
	bool known, bound;
	pid_t parent;   /* bound: the owning process */
	char comm[32];  /* its name, "" if unknown */
};
void orch_holder_owner(pid_t holder, struct holder_owner *o);
/* "detached holder 12 (...)" / "holder 12, bound to process 34 (name)" */
void orch_owner_describe(pid_t holder, const struct holder_owner *o, char *out, size_t len);

/* <root>/runner-<name>.log goes when no member <name> exists any more and
 * no live holder of the store still writes it (a holder launched with name
 * first keeps its log while it serves others). */
void orch_tidy_runner_log(const char *root, const char *name);
/* The same for every runner-*.log of the store; returns how many went. */
int orch_tidy_runner_logs(const char *root);
/* The store half of `prune`: incomplete creations, runner logs of members
 * that do not exist, lock files of clusters that do not exist; clusters in
 * use by a running up/down/rm are skipped. Returns how many it removed. */
int orch_prune_store(const char *root, struct err *e);
