/* netint.h - internals shared by the files of src/net (not for other modules). */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "net/addr.h"
#include "net/net.h"
#include "net/record.h"

struct err;

struct net {
	char *root;
	struct net_record rec;
	struct addr_pool pool;
	int bridge_index;
	int lock_fd;  /* -1 outside net_create */
};

/* Test hook: called with a stage name at each step of net_create ("record",
 * "bridge", "address", "table", "ready"), so a test can crash a child exactly
 * there. NULL in production. */
extern void (*net_create_hook)(const char *stage);

/* Forwarding switch of one interface (never the global ones: "all", "default"
 * are refused). Values are 0/1. */
int fwd_read(const char *ifname, int *val);
int fwd_write(const char *ifname, int val);
/* Another record than `self` (bridge name) lists ifname in its forwarding set;
 * *original receives that record's original value. */
bool fwd_shared(const char *root, const char *self, const char *ifname, int *original);

struct teardown_counts {
	int killed, taps, bridges, tables;
};
/* Removes everything r describes (VMMs first when kill_vmms), verifies it is
 * gone, restores forwarding. Does not touch the record file. Best effort: keeps
 * going after a failure and returns the first error. */
int net_teardown(const char *root, struct net_record *r, bool kill_vmms,
		 struct teardown_counts *c, struct err *e);
/* net_reconcile with networks/.lock already held. */
int reconcile_locked(const char *root, struct net_reconcile_report *rep, struct err *e);

/* Deterministic names: bridge/table "fb" + hex(network), tap "fbt" + hex(ip). */
void name_bridge(uint32_t net, char out[IF_NAMESIZE]);
void name_tap(uint32_t ip, char out[IF_NAMESIZE]);
