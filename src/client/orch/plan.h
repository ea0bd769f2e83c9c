/* orch/plan.h - the state of one `up`: the plan struct every phase of
 * orch/up.c works on, and the cancellable waits of orch/wait.c that run on a
 * private loop. Internal to the orchestration files.
 *
 * The record: each member says what this call did to it (created its
 * directory, wrote its creation marker, created its disk, asked a holder to
 * boot it), the plan says which holder this call spawned. Rollback undoes
 * exactly that record and nothing else. */
#pragma once
#include "fleetbox.h"
#include "client/ctl.h"
#include "client/image/image.h"
#include "client/store.h"
#include "util/err.h"

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <uv.h>

struct fixture;
struct ssh_exec_op;

/* UNCLASSIFIED until classify ran: rollback leaves such a member alone. */
enum member_kind { MEMBER_UNCLASSIFIED, MEMBER_RUNNING, MEMBER_STOPPED, MEMBER_NEW };

struct up_member {
	struct up_plan *u;
	char name[FB_NAME_MAX + 1];
	enum member_kind kind;
	struct member_config cfg;
	struct image_info img;   /* what it boots (stopped and new members) */
	char mac[FB_MAC_STRLEN];
	char ip[FB_IP_STRLEN];
	/* the record */
	bool disk_created;       /* this call created the disk */
	bool boot_sent;          /* a holder was asked to boot it */
	bool spawned_for;        /* the holder this call spawned was launched with it */
	bool ephemeral;          /* created by this call with o->ephemeral */
	/* boot */
	char *boot_line;         /* the boot-member request */
	struct ctl_req *req;     /* in flight on the boot loop */
	int boot_status;
	struct err boot_err;
	bool booted;
	bool maybe_booting;      /* its holder said starting/downloading at classify */
	bool awaiting;           /* booting already: the boot phase polls its status */
	uint64_t next_poll;      /* loop ms */
	/* progress */
	fb_up_phase phase;
	char detail[256];
};

struct up_plan {
	const fb_up_options *o;
	char root[PATH_MAX];
	struct up_member *m;     /* the members (names expanded), n of them */
	size_t n;
	struct fixture *fx;      /* validated create fixtures (o->n_fixtures) */
	struct store_locks locks;
	size_t to_boot;          /* stopped + new members */
	char via[FB_NAME_MAX + 1]; /* a member whose socket reaches the holder; "" none */
	pid_t holder_pid;
	struct ctl_holder spawned; /* .pid != 0: this call spawned the holder */
	char gateway[FB_IP_STRLEN];
	int prefix;
	const char *phase;       /* the phase running (for messages) */
	struct up_wait *wait;    /* the private loop of the phase waiting now */
	size_t pending;          /* its requests in flight */
	fb_cluster *cl;          /* the result (commit) */
	fb_cluster *into;        /* fb_cluster_add: the live cluster to grow */
	uint64_t t0_ms;          /* when fb_up started (uv_hrtime / 1e6) */
	struct err e;
};

/* What fb_up returns: the members and their IPs, the holder (for a bound
 * holder this call spawned, the acknowledged .ctl connection), which
 * members are ephemeral, and the create options, so fb_cluster_add boots
 * more members like them. */
struct fb_cluster {
	size_t n, cap;
	char (*names)[FB_NAME_MAX + 1];
	char (*ips)[FB_IP_STRLEN];
	bool *ephemeral;         /* created as ephemeral: deleted at close */
	struct ctl_holder holder;
	char via[FB_NAME_MAX + 1]; /* a member whose socket reaches the holder */
	char root[PATH_MAX];
	int cpus, memory_mb, disk_mb, bound, ephemeral_new;
	char *image;
	fb_fixture_spec *fixtures; /* owned copies */
	size_t n_fixtures;
};

/* orch/cluster.c: the plan's result as a new cluster (u->cl), or appended
 * to u->into (fb_cluster_add). */
int orch_cluster_commit(struct up_plan *u);

/* fb_up, or with into set, fb_cluster_add: boot o's members into into's
 * holder and add them to it (*out = into on success). */
int orch_up(const fb_up_options *o, fb_cluster *into, fb_cluster **out, fb_error *ferr);

/* Shared by the phases: the caller's line progress callback, whether SSH is
 * confirmed (not with the fake VMM), the boot phase (orch/boot.c) and the rollback with
 * its message (orch/rollback.c; r is the failure). */
void up_line(const struct up_plan *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool up_confirms_ssh(void);
int up_boot(struct up_plan *u);
/* orch/up.c: confirm_ssh for one member, as soon as its boot is done (the boot
 * phase calls it); 0, -ECANCELED, or the error in m->boot_err. */
int up_confirm_member(struct up_plan *u, struct up_member *m);
void up_rollback(struct up_plan *u, int r);

/* *o->cancel is non-zero. */
bool up_cancelled(const struct up_plan *u);

/* A private loop with a 50 ms timer that watches the cancel flag: when it is
 * set, on_cancel ends the work in flight (its callbacks then run with
 * -ECANCELED) and up_wait_run reports -ECANCELED. The work calls
 * up_wait_done when it has nothing left in flight. */
struct up_wait {
	struct up_plan *u;
	uv_loop_t loop;
	uv_timer_t timer;
	void (*on_tick)(struct up_wait *w);   /* optional, every tick */
	void (*on_cancel)(struct up_wait *w);
	void *data;
	unsigned ticks;
	bool cancelled, done;
};
int up_wait_init(struct up_wait *w, struct up_plan *u, struct err *e);
void up_wait_done(struct up_wait *w);
/* Runs the loop until done, closes it. 0, -ECANCELED, or a loop error. */
int up_wait_run(struct up_wait *w, struct err *e);

/* Runs cmd in the member over SSH (pinned host key) until it exits 0:
 * connection failures that mean "still booting" and non-zero exits are
 * retried until timeout_ms; a host key or authentication failure is final.
 * Cancellable through the plan's flag. */
int up_ssh_wait(struct up_plan *u, struct up_member *m, const char *cmd, int timeout_ms,
		struct err *e);

/* orch/cloudinit.c: after SSH answers, waits (bounded by timeout_ms, one
 * session, cancellable) until the guest's cloud-init has finished this boot;
 * returns at once on images without it. Reported as WAITING_CLOUD_INIT. */
int up_cloudinit_wait(struct up_plan *u, struct up_member *m, int timeout_ms, struct err *e);

/* orch/hosts.c: the cluster's /etc/hosts. collect: every member of the plan
 * with an address plus the running members of the same holder (its
 * network) that the plan does not name. sync (commit phase): the members
 * this call did not seed afresh get the current list over SSH. */
struct seed_host;
struct up_hosts {
	struct seed_host *v;
	size_t n;
	char (*names)[FB_NAME_MAX + 1];
	char (*ips)[FB_IP_STRLEN];
};
int up_hosts_collect(struct up_plan *u, struct up_hosts *h);
void up_hosts_fini(struct up_hosts *h);
void up_hosts_sync(struct up_plan *u);
/* Replaces the marked cluster block of t's /etc/hosts with block (the rest
 * of the file kept; appended when it has none). */
struct ssh_target;
int orch_hosts_push(const struct ssh_target *t, const char *block, struct err *e);

/* Per-member progress (orch/progress.c): sets the phase (and detail, NULL
 * keeps it) and reports it. up_progress_tick refreshes the members booting
 * or waiting for SSH (elapsed, the serial console's last line). */
void up_set_phase(struct up_plan *u, struct up_member *m, fb_up_phase phase, const char *detail);
void up_progress_tick(struct up_plan *u);
