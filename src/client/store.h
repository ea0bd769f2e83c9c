/* store.h - the on-disk store (behaviour.md "Store"): no database, the tree is
 * the state. Member dirs are 0700; config.json is written atomically. */
#pragma once
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "client/fixture.h"
#include "rpc/wire.h"

struct err;

struct member_config {
	char name[FB_NAME_MAX + 1];
	char mac[FB_MAC_STRLEN];
	int cpus;
	int memory_mb;
	int disk_mb;
	char image[256];
	char created_at[32];
	struct fixture *fixtures;
	size_t n_fixtures;
	char ip[FB_IP_STRLEN];
};

int store_root_resolve(char *buf, size_t len);
/* Creates <root> and <root>/run (0700) if missing. */
int store_init(const char *root, struct err *e);
int store_member_dir(const char *root, const char *name, char *out, size_t len);
/* <member_dir>/<file> */
int store_member_file(const char *root, const char *name, const char *file, char *out,
		      size_t len);

bool store_member_exists(const char *root, const char *name);
int store_config_read(const char *root, const char *name, struct member_config *c,
		      struct err *e);
int store_config_write(const char *root, const struct member_config *c, struct err *e);
/* Renders config.json text (2-space indent, fixed key order); caller frees. */
char *store_config_render(const struct member_config *c);
void store_config_fini(struct member_config *c);

/* Every member with a config.json or a live holder, sorted. Caller frees with store_names_free. */
int store_list_members(const char *root, char ***names, size_t *n);
void store_names_free(char **names, size_t n);
/* Appends a copy of s to the growing array v (n used, cap allocated); with
 * unique, only when it is not there yet. 0 or -ENOMEM. */
int store_names_add(char ***v, size_t *n, size_t *cap, const char *s, bool unique);
/* Exact member name, else every member of that cluster. Unknown: -ENOENT. */
int store_match(const char *root, const char *pattern, char ***names, size_t *n);

/* Serialises store changes per cluster (up, down, rm of the same cluster from
 * several processes): exclusive flocks on <root>/clusters/.<cluster>.lock,
 * taken in sorted order. store_unlock removes the lock files of clusters
 * that have no directory any more (safely: a waiter re-checks the file it
 * locked), so the store keeps no lock of a cluster that is gone. */
struct store_locks {
	char (*names)[FB_NAME_MAX + 1]; /* cluster names, sorted */
	size_t n;
	int *fds;
	size_t nfds;
};
void store_locks_init(struct store_locks *l);
int store_lock(const char *root, const char *const *clusters, size_t n, struct store_locks *l,
	       struct err *e);
/* The clusters of these member names. */
int store_lock_members(const char *root, const char *const *names, size_t n,
		       struct store_locks *l, struct err *e);
void store_unlock(const char *root, struct store_locks *l);

/* Names a new member may have: wire_name_valid() and no trailing '-' (a
 * member name is its hostname). The holder stays as permissive as the
 * protocol; clients refuse at creation. 0, or -EINVAL with a message. */
int store_name_check(const char *name, struct err *e);

/* Store entries that exist but cannot be read (for example left behind by a
 * root process): cb gets each path and its -errno. Missing entries are fine. */
typedef void (*store_problem_fn)(void *data, const char *path, int err);
void store_scan_unreadable(const char *root, store_problem_fn cb, void *data);


/* Deletes the member dir (and the cluster dir when it becomes empty). */
int store_member_delete(const char *root, const char *name, struct err *e);

/* A member is running when its pidfile names a live process that holds the
 * member's .lock (the PID-reuse guard). *pid gets the holder PID or 0. */
bool store_member_running(const char *root, const char *name, pid_t *pid);
/* RFC 3339 UTC timestamp of now. */
void store_now_rfc3339(char out[32]);

/* Crash-safe creation. A new member's directory gets the marker
 * <member>/.creating (written atomically) before anything else of the
 * member; config.json is written last, then the marker goes. So a directory
 * without config.json is either an unfinished creation (marker present) or
 * holds nothing but a holder's housekeeping (.lock, pid): "incomplete",
 * invisible to ls, and reclaimed (deleted) by the next up of that name, by
 * rm of a pattern matching it, and by prune. Anything else without a config
 * (a disk that was there before) is never touched. Callers hold the cluster
 * lock, which the creator held for its whole run: a marker seen under the
 * lock belongs to a writer that is gone. */
#define STORE_CREATING ".creating"
int store_creating_mark(const char *root, const char *name, struct err *e);
int store_creating_done(const char *root, const char *name, struct err *e);
bool store_member_incomplete(const char *root, const char *name);
/* Deletes an incomplete member (all of it; when a live holder serves it,
 * all but its .lock and pid). No-op for anything else. */
int store_member_reclaim(const char *root, const char *name, struct err *e);
/* Incomplete members matching pattern (exact name or cluster; NULL: all)
 * that no live holder serves. Caller frees with store_names_free. */
int store_list_incomplete(const char *root, const char *pattern, char ***names, size_t *n);
