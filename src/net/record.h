/* record.h - the write-ahead crash record <root>/networks/<bridge>.json and the
 * process identity helpers it relies on.
 *
 * Invariants: a record is written (atomically, dir 0700, file 0600) before the
 * host state it describes is created, rewritten on every tap change, and removed
 * only after teardown was verified. A process is identified by pid + start time
 * (/proc/<pid>/stat field 22) so a reused pid never counts as the same process.
 * All record-directory mutations happen under the flock of networks/.lock. */
#pragma once
#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "net/addr.h"
#include "rpc/wire.h"
#include "util/proc.h"

struct err;

struct rec_tap {
	char name[IF_NAMESIZE];
	char member[FB_NAME_MAX + 1];
	char ip[FB_IP_STRLEN];
	char mac[FB_MAC_STRLEN];
	pid_t vmm_pid;                     /* 0 = none recorded */
	unsigned long long vmm_start_time;
};

/* An interface whose forwarding switch we turned on, and its original value. */
struct rec_fwd {
	char ifname[IF_NAMESIZE];
	int original;  /* 0 or 1 */
};

#define REC_FWD_MAX 8

struct net_record {
	char bridge[IF_NAMESIZE];
	char table[IF_NAMESIZE];
	char subnet[ADDR_CIDR_STRLEN];
	char gateway[FB_IP_STRLEN];
	char cluster[FB_NAME_MAX + 1];
	char state[16];                    /* creating | ready | destroying */
	pid_t owner_pid;
	unsigned long long owner_start_time;
	struct rec_fwd fwd[REC_FWD_MAX];
	size_t nfwd;
	struct rec_tap *taps;
	size_t ntaps, cap;
};

void record_fini(struct net_record *r);
int record_dir(const char *root, char *out, size_t len);
int record_path(const char *root, const char *bridge, char *out, size_t len);
int record_save(const char *root, const struct net_record *r);
int record_load(const char *path, struct net_record *r, struct err *e);
/* Removes the record and fsyncs the directory; absent is success. */
int record_remove(const char *root, const char *bridge);
/* Paths of every <bridge>.json under networks/ (sorted). Caller frees each + array. */
int record_list(const char *root, char ***paths, size_t *n);
void record_list_free(char **paths, size_t n);
struct rec_tap *record_tap_find(struct net_record *r, const char *member);
struct rec_tap *record_tap_append(struct net_record *r);
void record_tap_drop(struct net_record *r, struct rec_tap *t);

/* Exclusive lock on networks/.lock (created 0600). Returns fd or -errno. */
int record_lock(const char *root);
void record_unlock(int fd);

