/* net.c - one cluster network: create, reserve, taps, destroy (see net.h).
 *
 * Order is the whole point: the crash record is written before each piece of
 * host state exists (bridge, address, table, forwarding, tap) and updated before
 * every tap is created, so whatever a crash leaves behind is named in a record
 * that reconcile can act on. Failures roll back what was created so far. */
#include "net/net.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/addr.h"
#include "net/netint.h"
#include "net/nl.h"
#include "net/record.h"
#include "net/ruleset.h"
#include "util/err.h"

#define DEFAULT_RANGE "192.168.0.0/16"

void (*net_create_hook)(const char *stage);

static void stage(const char *s)
{
	if (net_create_hook)
		net_create_hook(s);
}

void name_bridge(uint32_t net, char out[IF_NAMESIZE])
{
	snprintf(out, IF_NAMESIZE, "fb%08x", net);
}

void name_tap(uint32_t ip, char out[IF_NAMESIZE])
{
	snprintf(out, IF_NAMESIZE, "fbt%08x", ip);
}

/* Host addresses + subnets of every remaining record are off limits. */
static int busy_prefixes(const char *root, struct addr_prefix **out, size_t *n,
			 struct err *e)
{
	struct nl_addr *a = NULL;
	size_t na = 0;
	int r = nl_addr_list(&a, &na);
	if (r < 0)
		return err_set(e, r, "cannot list host addresses: %s", strerror(-r));
	char **paths = NULL;
	size_t np = 0;
	r = record_list(root, &paths, &np);
	if (r < 0) {
		free(a);
		return err_set(e, r, "cannot list network records: %s", strerror(-r));
	}
	struct addr_prefix *b = calloc(na + np + 1, sizeof(*b));
	if (!b) {
		free(a);
		record_list_free(paths, np);
		return err_set(e, -ENOMEM, "out of memory");
	}
	size_t k = 0;
	for (size_t i = 0; i < na; i++)
		b[k++] = (struct addr_prefix){a[i].addr, a[i].len};
	for (size_t i = 0; i < np; i++) {
		struct net_record rec;
		if (record_load(paths[i], &rec, NULL) < 0)
			continue;
		if (addr_parse_cidr(rec.subnet, &b[k].addr, &b[k].len) == 0)
			k++;
		record_fini(&rec);
	}
	free(a);
	record_list_free(paths, np);
	*out = b;
	*n = k;
	return 0;
}

static int pick_subnet(const char *root, const char *range, uint32_t *net, struct err *e)
{
	uint32_t rnet;
	int rlen;
	if (addr_parse_cidr(range, &rnet, &rlen) < 0 || rlen > 24)
		return err_set(e, -EINVAL,
			       "invalid subnet range '%s' (want a.b.c.d/len with len <= 24)", range);
	struct addr_prefix *busy = NULL;
	size_t nb = 0;
	int r = busy_prefixes(root, &busy, &nb, e);
	if (r < 0)
		return r;
	uint32_t from = rnet;
	for (;;) {
		r = addr_subnet_next(rnet, rlen, busy, nb, from, net);
		if (r < 0)
			break;
		/* A link already named like our bridge (not ours, or unrecorded) is taken. */
		char br[IF_NAMESIZE];
		struct nl_link l;
		name_bridge(*net, br);
		if (nl_link_get(br, &l) == -ENODEV)
			break;
		if (*net + 256 < *net)
			break;
		from = *net + 256;
	}
	free(busy);
	if (r < 0)
		return err_set(e, -ENOSPC, "no free /24 in %s (every one overlaps a host address "
			       "or another fleetbox network)", range);
	return 0;
}

/* Uplinks (default-route interfaces) whose forwarding we will switch on. The
 * original value comes from an existing record sharing the uplink, if any, so the
 * last network to go restores the true original. */
static int plan_forwarding(struct net *n, struct err *e)
{
	int idx[REC_FWD_MAX];
	size_t ni = 0;
	int r = nl_default_route_ifs(idx, REC_FWD_MAX, &ni);
	if (r < 0)
		return err_set(e, r, "cannot read the default routes: %s", strerror(-r));
	for (size_t i = 0; i < ni; i++) {
		struct rec_fwd *f = &n->rec.fwd[n->rec.nfwd];
		if (!if_indextoname((unsigned)idx[i], f->ifname))
			continue;
		if (!fwd_shared(n->root, n->rec.bridge, f->ifname, &f->original) &&
		    (r = fwd_read(f->ifname, &f->original)) < 0)
			return err_set(e, r, "cannot read forwarding of %s: %s", f->ifname,
				       strerror(-r));
		n->rec.nfwd++;
	}
	return 0;
}

static int build(struct net *n, struct err *e)
{
	struct net_record *rec = &n->rec;
	uint8_t mac[6];
	char macs[FB_MAC_STRLEN], seed[IF_NAMESIZE + 8];
	int r;

	/* Bridge MAC fixed and distinct from every member MAC ('/' is not a name char). */
	snprintf(seed, sizeof(seed), "bridge/%s", rec->bridge);
	wire_mac(seed, macs);
	nl_mac_parse(macs, mac);
	if ((r = nl_bridge_add(rec->bridge, mac)) < 0)
		return err_set(e, r, "cannot create bridge %s: %s", rec->bridge, strerror(-r));
	stage("bridge");
	struct nl_link l;
	if ((r = nl_link_get(rec->bridge, &l)) < 0)
		return err_set(e, r, "bridge %s vanished: %s", rec->bridge, strerror(-r));
	n->bridge_index = l.index;
	uint32_t gw;
	addr_parse(rec->gateway, &gw);
	if ((r = nl_addr_add(l.index, gw, n->pool.len)) < 0)
		return err_set(e, r, "cannot add %s/%d to %s: %s", rec->gateway, n->pool.len,
			       rec->bridge, strerror(-r));
	if ((r = nl_link_up(l.index, 0)) < 0)
		return err_set(e, r, "cannot bring %s up: %s", rec->bridge, strerror(-r));
	/* The bridge's own switch dies with the bridge, so it needs no original. */
	if ((r = fwd_write(rec->bridge, 1)) < 0)
		return err_set(e, r, "cannot enable forwarding on %s: %s", rec->bridge,
			       strerror(-r));
	stage("address");
	if ((r = ruleset_install(rec->table, rec->bridge, rec->subnet, e)) < 0)
		return r;
	stage("table");
	for (size_t i = 0; i < rec->nfwd; i++)
		if ((r = fwd_write(rec->fwd[i].ifname, 1)) < 0)
			return err_set(e, r, "cannot enable forwarding on %s: %s",
				       rec->fwd[i].ifname, strerror(-r));
	snprintf(rec->state, sizeof(rec->state), "ready");
	if ((r = record_save(n->root, rec)) < 0)
		return err_set(e, r, "cannot write the network record: %s", strerror(-r));
	stage("ready");
	return 0;
}

static void net_free(struct net *n)
{
	if (!n)
		return;
	record_fini(&n->rec);
	addr_pool_fini(&n->pool);
	free(n->root);
	free(n);
}

static int create_locked(struct net *n, const struct net_config *cfg, struct err *e)
{
	struct net_record *rec = &n->rec;
	const char *range = cfg->range ? cfg->range : getenv("FLEETBOX_SUBNET_RANGE");
	if (!range || !*range)
		range = DEFAULT_RANGE;
	/* Dead owners' leftovers first: they may free a subnet. A record that cannot be
	 * reclaimed stays and keeps its subnet busy; prune reports it. */
	struct net_reconcile_report rep;
	reconcile_locked(n->root, &rep, NULL);

	uint32_t net;
	int r = pick_subnet(n->root, range, &net, e);
	if (r < 0)
		return r;
	name_bridge(net, rec->bridge);
	snprintf(rec->table, sizeof(rec->table), "%s", rec->bridge);
	addr_format_cidr(net, 24, rec->subnet);
	addr_format(net + 1, rec->gateway);
	snprintf(rec->cluster, sizeof(rec->cluster), "%s", cfg->cluster ? cfg->cluster : "");
	snprintf(rec->state, sizeof(rec->state), "creating");
	rec->owner_pid = getpid();
	if ((r = proc_start_time(rec->owner_pid, &rec->owner_start_time)) < 0)
		return err_set(e, r, "cannot read our own start time: %s", strerror(-r));
	if ((r = addr_pool_init(&n->pool, rec->subnet, e)) < 0)
		return r;
	if ((r = plan_forwarding(n, e)) < 0)
		return r;
	if ((r = record_save(n->root, rec)) < 0)
		return err_set(e, r, "cannot write the network record: %s", strerror(-r));
	stage("record");
	r = build(n, e);
	if (r < 0) {
		struct teardown_counts c = {0};
		struct err te = {0};
		if (net_teardown(n->root, rec, false, &c, &te) == 0) {
			record_remove(n->root, rec->bridge);
		} else if (e) {
			char msg[ERR_MSG_MAX];
			snprintf(msg, sizeof(msg), "%.240s (rollback incomplete, record kept: %.220s)",
				 e->msg, te.msg);
			memcpy(e->msg, msg, sizeof(msg));
		}
	}
	return r;
}

int net_create(const struct net_config *cfg, struct net **out, struct err *e)
{
	*out = NULL;
	if (!cfg || !cfg->store_root || !*cfg->store_root)
		return err_set(e, -EINVAL, "missing store root");
	int r = net_preflight(e);
	if (r < 0)
		return r;
	struct net *n = calloc(1, sizeof(*n));
	if (!n || !(n->root = strdup(cfg->store_root))) {
		free(n);
		return err_set(e, -ENOMEM, "out of memory");
	}
	n->lock_fd = record_lock(n->root);
	if (n->lock_fd < 0) {
		r = err_set(e, n->lock_fd, "cannot lock %s/networks: %s", n->root,
			    strerror(-n->lock_fd));
		net_free(n);
		return r;
	}
	r = create_locked(n, cfg, e);
	record_unlock(n->lock_fd);
	n->lock_fd = -1;
	if (r < 0) {
		net_free(n);
		return r;
	}
	*out = n;
	return 0;
}

const char *net_subnet(const struct net *n)
{
	return n->rec.subnet;
}

const char *net_gateway(const struct net *n)
{
	return n->rec.gateway;
}

const char *net_bridge(const struct net *n)
{
	return n->rec.bridge;
}

int net_prefix_len(const struct net *n)
{
	return n->pool.len;
}

int net_reserve(struct net *n, const char *name, const char *ip_hint, char ip[FB_IP_STRLEN],
		char mac[FB_MAC_STRLEN], struct err *e)
{
	if (!wire_name_valid(name))
		return err_set(e, -EINVAL, "invalid member name '%s'", name ? name : "");
	uint32_t a;
	int r = addr_pool_reserve(&n->pool, name, ip_hint, &a, e);
	if (r < 0)
		return r;
	addr_format(a, ip);
	wire_mac(name, mac);
	return 0;
}

static int save(struct net *n, struct err *e)
{
	int r = record_save(n->root, &n->rec);
	return r < 0 ? err_set(e, r, "cannot write the network record: %s", strerror(-r)) : 0;
}

static int tap_own(const char *name, uid_t owner, gid_t group, struct err *e)
{
	if (owner == (uid_t)-1 && group == (gid_t)-1)
		return 0;
	int r = nl_tap_own(name, owner, group);
	return r < 0 ? err_set(e, r, "cannot set the owner of tap %s: %s", name, strerror(-r)) : 0;
}

/* Tap up, enslaved and the neighbour entry in place; checked, not assumed. */
static int tap_plumb(struct net *n, const struct rec_tap *t, struct err *e)
{
	uint8_t mac[6];
	uint32_t ip;
	struct nl_link l;
	int r = nl_link_get(t->name, &l);
	if (r < 0)
		return err_set(e, r, "tap %s vanished: %s", t->name, strerror(-r));
	if ((r = nl_link_up(l.index, n->bridge_index)) < 0)
		return err_set(e, r, "cannot attach %s to %s: %s", t->name, n->rec.bridge,
			       strerror(-r));
	if (nl_mac_parse(t->mac, mac) < 0 || addr_parse(t->ip, &ip) < 0)
		return err_set(e, -EINVAL, "bad address %s / %s", t->ip, t->mac);
	if ((r = nl_neigh_set(n->bridge_index, ip, mac)) < 0)
		return err_set(e, r, "cannot add the neighbour entry %s on %s: %s", t->ip,
			       n->rec.bridge, strerror(-r));
	if ((r = nl_link_get(t->name, &l)) < 0 || l.master != n->bridge_index ||
	    !(l.flags & IFF_UP))
		return err_set(e, r < 0 ? r : -EIO, "tap %s is not up on %s", t->name,
			       n->rec.bridge);
	return 0;
}

int net_tap_add(struct net *n, const char *member, char tap[16], struct err *e)
{
	return net_tap_add_owned(n, member, (uid_t)-1, (gid_t)-1, tap, e);
}

int net_tap_add_owned(struct net *n, const char *member, uid_t owner, gid_t group,
		      char tap[16], struct err *e)
{
	uint32_t ip = member ? addr_pool_lookup(&n->pool, member) : 0;
	if (!ip)
		return err_set(e, -ENOENT, "member %s was not reserved", member ? member : "");
	struct rec_tap *t = record_tap_find(&n->rec, member);
	if (t) {
		/* Idempotent: re-plumb the recorded tap, recreating it if it went away. */
		int r = nl_tap_create(t->name);
		if (r < 0 && r != -EEXIST)
			return err_set(e, r, "cannot create tap %s: %s", t->name, strerror(-r));
		if ((r = tap_own(t->name, owner, group, e)) < 0 || (r = tap_plumb(n, t, e)) < 0)
			return r;
		snprintf(tap, 16, "%s", t->name);
		return 0;
	}
	if (!(t = record_tap_append(&n->rec)))
		return err_set(e, -ENOMEM, "out of memory");
	name_tap(ip, t->name);
	snprintf(t->member, sizeof(t->member), "%s", member);
	addr_format(ip, t->ip);
	wire_mac(member, t->mac);
	char name[IF_NAMESIZE];
	snprintf(name, sizeof(name), "%s", t->name);
	int r = save(n, e);  /* write-ahead: the record names the tap before it exists */
	if (r == 0 && (r = nl_tap_create(name)) < 0)
		err_set(e, r, "cannot create tap %s: %s", name,
			r == -EEXIST ? "an interface of that name exists" : strerror(-r));
	else if (r == 0 && (r = tap_own(name, owner, group, e)) == 0)
		r = tap_plumb(n, t, e);
	if (r < 0) {
		if (r != -EEXIST)
			nl_link_del(name);
		struct rec_tap *bad = record_tap_find(&n->rec, member);
		if (bad && nl_link_get(name, &(struct nl_link){0}) == -ENODEV) {
			record_tap_drop(&n->rec, bad);
			record_save(n->root, &n->rec);
		}
		return r;
	}
	snprintf(tap, 16, "%s", name);
	return 0;
}

int net_tap_open(struct net *n, const char *member, struct err *e)
{
	struct rec_tap *t = member ? record_tap_find(&n->rec, member) : NULL;
	if (!t)
		return err_set(e, -ENOENT, "member %s has no tap", member ? member : "");
	int fd = nl_tap_attach(t->name);
	return fd < 0 ? err_set(e, fd, "cannot open tap %s: %s", t->name, strerror(-fd)) : fd;
}

int net_tap_set_pid(struct net *n, const char *member, pid_t pid)
{
	struct rec_tap *t = member ? record_tap_find(&n->rec, member) : NULL;
	if (!t)
		return -ENOENT;
	unsigned long long st = 0;
	if (pid > 0) {
		int r = proc_start_time(pid, &st);
		if (r < 0)
			return r;
	}
	t->vmm_pid = pid > 0 ? pid : 0;
	t->vmm_start_time = st;
	return record_save(n->root, &n->rec);
}

int net_tap_remove(struct net *n, const char *member, struct err *e)
{
	struct rec_tap *t = member ? record_tap_find(&n->rec, member) : NULL;
	if (!t)
		return 0;
	uint32_t ip;
	if (addr_parse(t->ip, &ip) == 0) {
		int r = nl_neigh_del(n->bridge_index, ip);
		if (r < 0 && r != -ENOENT && r != -ENODEV)
			return err_set(e, r, "cannot delete the neighbour entry %s: %s", t->ip,
				       strerror(-r));
	}
	int r = nl_link_del(t->name);
	if (r < 0 && r != -ENODEV)
		return err_set(e, r, "cannot delete tap %s: %s", t->name, strerror(-r));
	struct nl_link l;
	if ((r = nl_link_get(t->name, &l)) != -ENODEV)
		return err_set(e, r < 0 ? r : -EBUSY, "tap %s still exists after delete", t->name);
	record_tap_drop(&n->rec, t);
	return save(n, e);
}

int net_destroy(struct net *n, struct err *e)
{
	if (!n)
		return 0;
	/* Locked: teardown decides about shared uplink forwarding from other records. */
	int lock = record_lock(n->root);
	snprintf(n->rec.state, sizeof(n->rec.state), "destroying");
	int r = save(n, e);
	struct teardown_counts c = {0};
	if (r == 0)
		r = net_teardown(n->root, &n->rec, false, &c, e);
	if (r == 0 && (r = record_remove(n->root, n->rec.bridge)) < 0)
		err_set(e, r, "cannot remove the network record: %s", strerror(-r));
	record_unlock(lock);
	net_free(n);
	return r;
}
