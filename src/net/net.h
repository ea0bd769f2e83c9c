/* net.h - per-cluster host networking, owned by one holder (Linux only).
 *
 * One network = one bridge (gateway .1 of a free /24), one nftables table for
 * that bridge, one tap per running member, per-interface forwarding, and a
 * write-ahead crash record <root>/networks/<bridge>.json that is written before
 * any of that state is created and removed only after teardown is verified.
 * Everything goes through netlink (libmnl) and libnftables; nothing is spawned.
 * All functions are synchronous and quick (create ~10-35 ms, tap add ~2-9 ms); the
 * holder calls them from its loop thread. Deleting a link costs the kernel
 * ~20-40 ms (netdev unregistration), so tap_remove/destroy take that per link. Errors: negative errno plus a message in *e. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "rpc/wire.h"

struct err;
struct net;

struct net_config {
	const char *store_root;  /* records live in <store_root>/networks/ */
	const char *range;       /* e.g. "192.168.0.0/16"; NULL = $FLEETBOX_SUBNET_RANGE or that default */
	const char *cluster;     /* cluster name, used only for the record/debugging */
};

/* Fails fast with "... needs root ..." (no CAP_NET_ADMIN) or "... nf_tables ..." */
int net_preflight(struct err *e);

/* Reconciles dead owners' records first, then picks the first free /24 in range
 * (skipping host addresses and live fleetbox networks), writes the record,
 * creates the bridge + address + ruleset, verifies the ruleset by reading it back. */
int net_create(const struct net_config *cfg, struct net **out, struct err *e);
const char *net_subnet(const struct net *n);     /* "192.168.3.0/24" */
const char *net_gateway(const struct net *n);    /* "192.168.3.1" */
const char *net_bridge(const struct net *n);
int net_prefix_len(const struct net *n);

/* Static address for a member: hint if in subnet, not network/gateway/broadcast
 * and free, else the lowest free from .2. Idempotent per name. */
int net_reserve(struct net *n, const char *name, const char *ip_hint,
		char ip[FB_IP_STRLEN], char mac[FB_MAC_STRLEN], struct err *e);
/* Creates the member's tap (persistent, enslaved, up), a permanent neighbour
 * entry ip->mac on the bridge, updates the record. tap receives the ifname. */
int net_tap_add(struct net *n, const char *member, char tap[16], struct err *e);
/* The same, the tap owned by owner/group ((uid_t)-1 = nobody): a VMM that
 * runs as that user attaches to it by name without CAP_NET_ADMIN. */
int net_tap_add_owned(struct net *n, const char *member, uid_t owner, gid_t group,
		      char tap[16], struct err *e);
/* An open fd of the member's tap for its VMM (see nl_tap_attach), or -errno. */
int net_tap_open(struct net *n, const char *member, struct err *e);
/* Records the VMM pid using the tap so reconcile can kill orphans. */
int net_tap_set_pid(struct net *n, const char *member, pid_t pid);
int net_tap_remove(struct net *n, const char *member, struct err *e);
/* Full teardown (taps, table, bridge, forwarding restore), verified; record
 * removed; n freed even on error (the record then stays for prune). */
int net_destroy(struct net *n, struct err *e);

struct net_reconcile_report {
	int records_seen, records_reclaimed, records_kept;
	int processes_killed, taps_removed, bridges_removed, tables_removed;
	int temporaries_removed; /* networks/ records half-written by a dead holder */
};
/* For every record whose owner is dead: kill its VMM processes (PID-reuse
 * guarded), delete taps, table and bridge, restore forwarding, remove the
 * record. Temporaries of dead writers in networks/ are removed too. A record that cannot be fully reclaimed stays; e says why. */
int net_reconcile(const char *store_root, struct net_reconcile_report *rep, struct err *e);
