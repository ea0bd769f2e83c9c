/* orch/up.c - `up`: the client prepares everything (store, keys, image, disk,
 * seed, fixtures) and the holder boots what it is told.
 *
 * fb_up is a sequence of named phases over one plan (orch/plan.h): validate,
 * lock, classify (names expanded as down/rm expand them, isolation checked),
 * find or spawn the holder, network, image, prepare members (crash-safe
 * creation), reserve + seed, boot (orch/boot.c; each member's SSH is
 * confirmed as soon as its own boot is done), commit (orch/cluster.c). Each phase records what it created; an interrupt is
 * checked between phases and inside the long waits; one rollback
 * (orch/rollback.c) undoes exactly the record:
 *   - a member created by this call is stopped and its directory deleted,
 *     unless a disk it did not create was found there (never deleted);
 *   - a member that existed but was stopped is only stopped again: its disk
 *     and config are never touched;
 *   - a member that was already running is never touched. */
#include "client/orch/orch.h"
#include "client/orch/plan.h"
#include "client/ctl.h"
#include "client/fixture.h"
#include "client/image/image.h"
#include "client/ssh/keys.h"
#include "client/seed.h"
#include "client/store.h"
#include "rpc/msg.h"
#include "util/timeouts.h"
#include "util/err.h"
#include "util/fileio.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_CPUS 2
#define DEFAULT_MEM_MB 4096
#define DEFAULT_MINI_MEM_MB 1024
#define DEFAULT_DISK_MB 20480
#define UP_MAX_MEMBERS 253 /* .2 .. .254 of the cluster's /24 */

void orch_err_export(const struct err *e, fb_error *out)
{
	if (!out)
		return;
	out->code = e ? e->code : 0;
	snprintf(out->message, sizeof(out->message), "%s", e ? e->msg : "");
}

int orch_err_result(int r, const struct err *e, fb_error *out)
{
	if (r < 0)
		orch_err_export(e, out);
	else if (out)
		memset(out, 0, sizeof(*out));
	return r;
}

int orch_root(const char *root, char *buf, size_t len, struct err *e)
{
	if (root && *root) {
		if ((size_t)snprintf(buf, len, "%s", root) >= len)
			return err_set(e, -ENAMETOOLONG, "store root too long");
		return 0;
	}
	if (store_root_resolve(buf, len) < 0)
		return err_set(e, -ENOENT, "cannot determine the store root (set FLEETBOX_HOME)");
	return 0;
}

void up_line(const struct up_plan *u, const char *fmt, ...)
{
	if (!u->o->progress)
		return;
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	u->o->progress(u->o->progress_data, line);
}

static void image_progress(void *data, const char *line)
{
	const struct up_plan *u = data;
	if (u->o->progress)
		u->o->progress(u->o->progress_data, line);
}

/* The fake VMM boots nothing that answers SSH; FLEETBOX_TEST_FAKE_SSH=1
 * (tests) makes up wait for SSH anyway, to exercise that wait. */
bool up_confirms_ssh(void)
{
	const char *v = getenv("FLEETBOX_VMM"), *t = getenv("FLEETBOX_TEST_FAKE_SSH");
	return !(v && !strcmp(v, "fake")) || (t && !strcmp(t, "1"));
}

static bool has_create_options(const fb_up_options *o)
{
	return o->cpus || o->memory_mb || o->disk_mb || (o->image && *o->image) || o->n_fixtures;
}

void orch_test_stop_at(const char *step)
{
	const char *want = getenv("FLEETBOX_TEST_STOP_AT");
	if (!want || !*want)
		return;
	size_t n = strlen(step);
	for (const char *p = want; (p = strstr(p, step)); p += n)
		if ((p == want || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
			raise(SIGSTOP);
}

/* --- phase: validate (nothing is touched yet) --- */

static int validate_names(struct up_plan *u)
{
	const fb_up_options *o = u->o;
	if (o->n_names == 0)
		return err_set(&u->e, -EINVAL, "no member names given");
	if (!o->names)
		return err_set(&u->e, -EINVAL, "names is NULL (n_names %zu)", o->n_names);
	if (o->n_names > UP_MAX_MEMBERS)
		return err_set(&u->e, -EINVAL, "%zu members: one network (a /24) holds at most %d",
			       o->n_names, UP_MAX_MEMBERS);
	for (size_t i = 0; i < o->n_names; i++) {
		if (!o->names[i])
			return err_set(&u->e, -EINVAL, "names[%zu] is NULL", i);
		/* New members need a hostname (no trailing '-'); older ones still boot. */
		bool known = wire_name_valid(o->names[i]) && store_member_exists(u->root, o->names[i]);
		int r = known ? 0 : store_name_check(o->names[i], &u->e);
		if (r < 0)
			return r;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(o->names[i], o->names[j]))
				return err_set(&u->e, -EINVAL, "duplicate name \"%s\"", o->names[i]);
	}
	return 0;
}

static int validate_fixtures(struct up_plan *u)
{
	const fb_up_options *o = u->o;
	if (!o->n_fixtures)
		return 0;
	if (!o->fixtures)
		return err_set(&u->e, -EINVAL, "fixtures is NULL (n_fixtures %zu)", o->n_fixtures);
	for (size_t i = 0; i < o->n_fixtures; i++)
		if (!o->fixtures[i].host_path || !o->fixtures[i].guest_path)
			return err_set(&u->e, -EINVAL, "fixtures[%zu] has a NULL path", i);
	u->fx = calloc(o->n_fixtures, sizeof(*u->fx));
	if (!u->fx)
		return err_set(&u->e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < o->n_fixtures; i++) {
		char arg[2 * PATH_MAX + 2];
		snprintf(arg, sizeof(arg), "%s:%s", o->fixtures[i].host_path, o->fixtures[i].guest_path);
		int r = fixture_parse(arg, &u->fx[i], &u->e);
		if (r < 0)
			return r;
	}
	return fixture_check_set(u->fx, o->n_fixtures, &u->e);
}

/* Negative sizes are mistakes, not "use the default" (that is 0). */
static int validate_sizes(struct up_plan *u)
{
	const fb_up_options *o = u->o;
	const struct {
		const char *name;
		int v;
	} sz[] = { { "cpus", o->cpus }, { "memory_mb", o->memory_mb }, { "disk_mb", o->disk_mb } };
	for (size_t i = 0; i < sizeof(sz) / sizeof(sz[0]); i++)
		if (sz[i].v < 0)
			return err_set(&u->e, -EINVAL, "%s is %d: want a positive value, or 0 for the default",
				       sz[i].name, sz[i].v);
	return 0;
}

static int up_validate(struct up_plan *u)
{
	int r = orch_root(u->o->root, u->root, sizeof(u->root), &u->e);
	if (r < 0 || (r = validate_names(u)) < 0 || (r = validate_sizes(u)) < 0 ||
	    (r = validate_fixtures(u)) < 0)
		return r;
	return 0;
}

/* --- phase: lock --- */

/* One up/down/rm per cluster at a time: expansion, classification, creation
 * and rollback must see a store nobody else is changing. A NAME may mean
 * the cluster of that name, so that cluster is locked too. */
static int up_lock(struct up_plan *u)
{
	int r = store_init(u->root, &u->e);
	if (r < 0)
		return r;
	size_t n = u->o->n_names;
	char(*cl)[FB_NAME_MAX + 1] = calloc(n, sizeof(*cl));
	const char **names = calloc(2 * n, sizeof(char *));
	if (!cl || !names) {
		free(cl);
		free(names);
		return err_set(&u->e, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		wire_cluster_name(u->o->names[i], cl[i]);
		names[2 * i] = cl[i];
		names[2 * i + 1] = u->o->names[i];
	}
	r = store_lock(u->root, names, 2 * n, &u->locks, &u->e);
	free(cl);
	free(names);
	return r;
}

/* --- phase: classify --- */

static int add_member(struct up_plan *u, size_t *cap, const char *name)
{
	for (size_t i = 0; i < u->n; i++)
		if (!strcmp(u->m[i].name, name))
			return 0; /* "web" and "web-2": web-2 once */
	if (u->n == UP_MAX_MEMBERS)
		return err_set(&u->e, -EINVAL, "more than %d members: one network (a /24) holds at most %d",
			       UP_MAX_MEMBERS, UP_MAX_MEMBERS);
	if (u->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		struct up_member *nm = realloc(u->m, nc * sizeof(*nm));
		if (!nm)
			return err_set(&u->e, -ENOMEM, "out of memory");
		u->m = nm;
		*cap = nc;
	}
	struct up_member *m = &u->m[u->n++];
	memset(m, 0, sizeof(*m));
	m->u = u;
	snprintf(m->name, sizeof(m->name), "%s", name);
	return 0;
}

/* One NAME, resolved as down and rm resolve it: an existing member of that
 * name; else every member of the cluster of that name; else a new member. */
static int expand_name(struct up_plan *u, size_t *cap, const char *name)
{
	char **found;
	size_t nf;
	int r = store_match(u->root, name, &found, &nf);
	if (r == -ENOENT)
		return add_member(u, cap, name);
	if (r < 0)
		return err_set(&u->e, r, "cannot read the store at %s: %s", u->root, strerror(-r));
	bool cluster = nf > 1 || strcmp(found[0], name) != 0;
	if (cluster) {
		char list[400] = "";
		for (size_t i = 0; i < nf; i++)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", found[i]);
		up_line(u, "%s: the members of cluster %s (%s)", name, name, list);
	}
	for (size_t i = 0; r == 0 && i < nf; i++)
		r = add_member(u, cap, found[i]);
	store_names_free(found, nf);
	return r < 0 ? r : 0;
}

static int expand_names(struct up_plan *u)
{
	size_t cap = 0;
	for (size_t i = 0; i < u->o->n_names; i++) {
		int r = expand_name(u, &cap, u->o->names[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

static void set_via(struct up_plan *u, const char *name, pid_t pid)
{
	snprintf(u->via, sizeof(u->via), "%s", name);
	u->holder_pid = pid;
}

/* Isolation: whose VMs may this call hand back or join? A detached caller
 * shares detached holders (that is what they are for); a bound caller only
 * its own. Anything else (a holder bound to another process, a detached one
 * for a bound caller, one whose owner cannot be read for a bound caller)
 * is refused unless the caller opted in with join. */
static int check_owner(struct up_plan *u, const char *member, pid_t holder, bool joining)
{
	struct holder_owner ow;
	orch_holder_owner(holder, &ow);
	bool mine = ow.bound && ow.parent == getpid();
	bool ok = u->o->bound ? mine : (!ow.known || !ow.bound || mine);
	if (ok || u->o->join)
		return 0;
	char who[160];
	orch_owner_describe(holder, &ow, who, sizeof(who));
	const char *verb = joining ? "would join" : "is held by";
	if (!u->o->bound)
		return err_set(&u->e, -EBUSY, "%s %s %s: members there die with that process (a test "
			       "harness owns that cluster); use other names", member, verb, who);
	return err_set(&u->e, -EBUSY, "%s %s %s, not by this process: a bound up does not take over "
		       "VMs it does not own; use other names, or set join = 1 to share them "
		       "(they keep that holder's lifetime)", member, verb, who);
}

static int use_holder(struct up_plan *u, const char *member, const char *via, pid_t pid,
		      bool joining)
{
	int r = check_owner(u, member, pid, joining);
	if (r == 0)
		set_via(u, via, pid);
	return r;
}

/* A member a live holder serves: running, or (VM died, interrupted up)
 * stopped/errored there and booted again through that holder. */
static int classify_served(struct up_plan *u, struct up_member *m, pid_t pid)
{
	if (u->into && pid != u->holder_pid)
		return err_set(&u->e, -EBUSY, "%s is running in holder %d, not in this cluster's holder %d",
			       m->name, (int)pid, (int)u->holder_pid);
	if (u->via[0] && pid != u->holder_pid)
		return err_set(&u->e, -EINVAL, "%s and %s are running in different holders", u->via,
			       m->name);
	int r = u->via[0] ? 0 : use_holder(u, m->name, m->name, pid, false);
	if (r < 0)
		return r;
	struct rpc_status *st = NULL;
	r = ctl_status(u->root, m->name, &st, &u->e);
	if (r < 0)
		return r;
	enum wire_state state = st->state;
	snprintf(m->ip, sizeof(m->ip), "%s", st->ip ? st->ip : "");
	rpc_status_free(st);
	if (state == FB_STATE_RUNNING) {
		m->kind = MEMBER_RUNNING;
		return 0;
	}
	/* Starting (or downloading) while we hold the cluster lock: either a
	 * boot whose client died goes on in the holder, or a member the holder
	 * was launched for was never booted. We ask for the boot; the holder
	 * says "already running" in the first case, and the boot phase then
	 * waits for that boot instead (orch/boot.c). */
	m->maybe_booting = state == FB_STATE_STARTING || state == FB_STATE_DOWNLOADING;
	m->kind = store_member_exists(u->root, m->name) ? MEMBER_STOPPED : MEMBER_NEW;
	return 0;
}

static int classify_member(struct up_plan *u, struct up_member *m)
{
	pid_t pid;
	if (store_member_running(u->root, m->name, &pid))
		return classify_served(u, m, pid);
	m->kind = store_member_exists(u->root, m->name) ? MEMBER_STOPPED : MEMBER_NEW;
	return 0;
}

static int read_stopped_config(struct up_plan *u, struct up_member *m)
{
	/* Killed between its config and the marker's removal: complete. */
	int r = store_creating_done(u->root, m->name, &u->e);
	if (r == 0)
		r = store_config_read(u->root, m->name, &m->cfg, &u->e);
	if (r == 0 && has_create_options(u->o))
		up_line(u, "note: %s exists; create options are ignored", m->name);
	return r;
}

/* fb_cluster_add: the cluster's own holder, reached through any of its
 * members it still serves. */
static int into_holder(struct up_plan *u)
{
	const fb_cluster *c = u->into;
	for (size_t i = 0; i < c->n; i++) {
		pid_t pid;
		if (store_member_running(u->root, c->names[i], &pid) && pid == c->holder.pid) {
			set_via(u, c->names[i], pid);
			return 0;
		}
	}
	return err_set(&u->e, -ESRCH, "the cluster's holder %d serves none of its members any more",
		       (int)c->holder.pid);
}

static int up_classify(struct up_plan *u)
{
	int r = u->into ? into_holder(u) : 0;
	if (r == 0)
		r = expand_names(u);
	if (r < 0)
		return r;
	for (size_t i = 0; i < u->n; i++) {
		struct up_member *m = &u->m[i];
		r = classify_member(u, m);
		if (r == 0 && m->kind == MEMBER_STOPPED)
			r = read_stopped_config(u, m);
		if (r < 0)
			return r;
		if (m->kind != MEMBER_RUNNING)
			u->to_boot++;
		else if (has_create_options(u->o))
			up_line(u, "note: %s is running; create options are ignored", m->name);
	}
	for (size_t i = 0; i < u->n; i++) {
		struct up_member *m = &u->m[i];
		static const char *const what[] = { [MEMBER_RUNNING] = "already running",
						    [MEMBER_STOPPED] = "stopped", [MEMBER_NEW] = "new" };
		up_set_phase(u, m, m->kind == MEMBER_RUNNING ? FB_UP_READY : FB_UP_WAITING, what[m->kind]);
	}
	return 0;
}

/* --- phase: find or spawn the holder --- */

/* No named member is served: join a live holder of a member of the same
 * cluster, if there is one. */
static int find_cluster_holder(struct up_plan *u)
{
	char **all;
	size_t na;
	int r = 0;
	if (store_list_members(u->root, &all, &na) < 0)
		return 0;
	for (size_t i = 0; i < na && !u->via[0] && r == 0; i++) {
		char c1[FB_NAME_MAX + 1], c2[FB_NAME_MAX + 1];
		wire_cluster_name(all[i], c1);
		for (size_t j = 0; j < u->n && !u->via[0] && r == 0; j++) {
			pid_t pid;
			wire_cluster_name(u->m[j].name, c2);
			if (!strcmp(c1, c2) && store_member_running(u->root, all[i], &pid))
				r = use_holder(u, u->m[j].name, all[i], pid, true);
		}
	}
	store_names_free(all, na);
	return r;
}

static int spawn_holder(struct up_plan *u)
{
	const char **bn = calloc(u->to_boot, sizeof(char *));
	if (!bn)
		return err_set(&u->e, -ENOMEM, "out of memory");
	size_t k = 0;
	for (size_t i = 0; i < u->n; i++)
		if (u->m[i].kind != MEMBER_RUNNING)
			bn[k++] = u->m[i].name;
	int r = ctl_spawn(u->root, bn, k, u->o->bound != 0, &u->spawned, &u->e);
	for (size_t i = 0; i < u->n && u->spawned.pid; i++)
		u->m[i].spawned_for = u->m[i].kind != MEMBER_RUNNING;
	if (r == 0)
		set_via(u, bn[0], u->spawned.pid);
	free(bn);
	return r;
}

static int up_holder(struct up_plan *u)
{
	if (u->to_boot == 0)
		return 0;
	int r = u->via[0] ? 0 : find_cluster_holder(u);
	if (r < 0)
		return r;
	return u->via[0] ? 0 : spawn_holder(u);
}

/* --- phase: network --- */

/* First of the holder-wide requests: it fails fast (no root, no nf_tables)
 * before any download or disk work. */
static int up_network(struct up_plan *u)
{
	if (u->to_boot == 0)
		return 0;
	struct rpc_request req = { .cmd = (char *)"createnetwork" };
	struct rpc_reply rep;
	int r = ctl_request(u->root, u->via, &req, CTL_DIAL_MS, 60000, &rep, &u->e);
	char subnet[32] = "";
	if (rep.subnet)
		snprintf(subnet, sizeof(subnet), "%s", rep.subnet);
	rpc_reply_fini(&rep);
	if (r < 0)
		return r;
	u->prefix = 24;
	unsigned a, b, c, d;
	if (subnet[0] && sscanf(subnet, "%u.%u.%u.%u/%d", &a, &b, &c, &d, &u->prefix) == 5)
		snprintf(u->gateway, sizeof(u->gateway), "%u.%u.%u.%u", a, b, c, d + 1);
	return 0;
}

/* --- phase: image --- */

static const char *wanted_image(const struct up_plan *u)
{
	return u->o->image && *u->o->image ? u->o->image : "mini";
}

/* A stopped member boots the image its disk is an overlay of, so kernel and
 * disk match. */
static int resolve_member_image(struct up_plan *u, struct up_member *m)
{
	char disk[PATH_MAX];
	store_member_file(u->root, m->name, "disk", disk, sizeof(disk));
	return image_resolve_member(u->root, m->cfg.image, disk, image_progress, u, &m->img, &u->e);
}

/* New members share the call's image (resolved once); stopped members boot
 * the one in their config. */
static int up_image(struct up_plan *u)
{
	if (u->to_boot == 0)
		return 0;
	int r = keys_ensure_installation(u->root, &u->e);
	struct image_info shared;
	bool have_shared = false;
	for (size_t i = 0; r == 0 && i < u->n; i++) {
		struct up_member *m = &u->m[i];
		if (m->kind == MEMBER_RUNNING)
			continue;
		if (m->kind == MEMBER_NEW && have_shared) {
			m->img = shared;
			continue;
		}
		r = m->kind == MEMBER_NEW
			    ? image_resolve(u->root, wanted_image(u), image_progress, u, &m->img, &u->e)
			    : resolve_member_image(u, m);
		if (r == 0 && m->kind == MEMBER_NEW) {
			shared = m->img;
			have_shared = true;
		}
	}
	return r;
}

/* --- phase: prepare members (keys, disk, config of new members) --- */

static void new_config(const struct up_plan *u, struct up_member *m)
{
	const fb_up_options *o = u->o;
	struct member_config *c = &m->cfg;
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", m->name);
	wire_mac(m->name, c->mac);
	c->cpus = o->cpus > 0 ? o->cpus : DEFAULT_CPUS;
	bool mini = !strcmp(wanted_image(u), "mini");
	c->memory_mb = o->memory_mb > 0 ? o->memory_mb : (mini ? DEFAULT_MINI_MEM_MB : DEFAULT_MEM_MB);
	c->disk_mb = o->disk_mb > 0 ? o->disk_mb : DEFAULT_DISK_MB;
	snprintf(c->image, sizeof(c->image), "%s", wanted_image(u));
	store_now_rfc3339(c->created_at);
}

/* The crash-safe order (store.h): marker, keys, disk, config, no marker.
 * Killed anywhere in between, the next command sees either an incomplete
 * member it reclaims or a complete stopped one. What an earlier, killed
 * creation left is reclaimed first (we hold the cluster lock). */
static int create_member(struct up_plan *u, struct up_member *m)
{
	char dir[PATH_MAX], disk[PATH_MAX];
	store_member_dir(u->root, m->name, dir, sizeof(dir));
	snprintf(disk, sizeof(disk), "%s/disk", dir);
	int r = store_member_reclaim(u->root, m->name, &u->e);
	if (r == 0 && (r = mkdir_p(dir, 0700)) < 0)
		err_set(&u->e, r, "create %s: %s", dir, strerror(-r));
	if (r == 0 && path_exists(disk))
		r = err_set(&u->e, -EEXIST, "disk %s already exists and is not a member's (no config.json): "
			    "it is never touched; move it away", disk);
	if (r == 0)
		orch_test_stop_at("create-dir");
	if (r == 0 && (r = store_creating_mark(u->root, m->name, &u->e)) == 0)
		orch_test_stop_at("create-marker");
	if (r == 0 && (r = keys_ensure_host(dir, m->name, &u->e)) == 0)
		orch_test_stop_at("create-keys");
	if (r == 0 && (r = disk_create(&m->img, disk, (uint64_t)m->cfg.disk_mb, &u->e)) == 0) {
		m->disk_created = true;
		m->ephemeral = u->o->ephemeral != 0;
		orch_test_stop_at("create-disk");
	}
	if (r == 0 && (r = store_config_write(u->root, &m->cfg, &u->e)) == 0)
		orch_test_stop_at("create-config");
	return r < 0 ? r : store_creating_done(u->root, m->name, &u->e);
}

static int prepare_new(struct up_plan *u, struct up_member *m)
{
	struct member_config *c = &m->cfg;
	new_config(u, m);
	size_t nfx = u->o->n_fixtures;
	if (nfx) {
		c->fixtures = calloc(nfx, sizeof(*c->fixtures));
		if (!c->fixtures)
			return err_set(&u->e, -ENOMEM, "out of memory");
		memcpy(c->fixtures, u->fx, nfx * sizeof(*u->fx));
		c->n_fixtures = nfx;
	}
	return create_member(u, m);
}

static int up_prepare(struct up_plan *u)
{
	for (size_t i = 0; i < u->n; i++) {
		if (u->m[i].kind != MEMBER_NEW)
			continue;
		up_set_phase(u, &u->m[i], FB_UP_CREATING, "");
		int r = prepare_new(u, &u->m[i]);
		if (r < 0) {
			err_prefix(&u->e, "create %s: ", u->m[i].name);
			return r;
		}
	}
	return 0;
}

/* --- phase: reserve + seed --- */

static void nameservers_from_host(char ns[][FB_IP_STRLEN], size_t *n)
{
	*n = 0;
	char *s;
	if (file_read_all("/etc/resolv.conf", 1 << 16, &s, NULL) < 0)
		return;
	char *save = NULL;
	for (char *l = strtok_r(s, "\n", &save); l && *n < 3; l = strtok_r(NULL, "\n", &save)) {
		char ip[64];
		if (sscanf(l, "nameserver %63s", ip) == 1 && strncmp(ip, "127.", 4) != 0 &&
		    strchr(ip, ':') == NULL && strlen(ip) < FB_IP_STRLEN)
			snprintf(ns[(*n)++], FB_IP_STRLEN, "%s", ip);
	}
	free(s);
}

/* The member's NoCloud seed: hostname, user and keys, its reserved address
 * on the cluster's network, the cluster's /etc/hosts, fixture mounts. */
static int write_seed(struct up_plan *u, struct up_member *m, const struct up_hosts *h,
		      struct err *e)
{
	const char *root = u->root;
	char dir[PATH_MAX], seed[PATH_MAX], key[PATH_MAX], pub[PATH_MAX], ipub[PATH_MAX];
	store_member_dir(root, m->name, dir, sizeof(dir));
	snprintf(seed, sizeof(seed), "%s/seed.iso", dir);
	snprintf(key, sizeof(key), "%s/ssh_host_ed25519_key", dir);
	snprintf(pub, sizeof(pub), "%s/ssh_host_ed25519_key.pub", dir);
	snprintf(ipub, sizeof(ipub), "%s/id_ed25519.pub", root);
	char *priv = NULL, *hpub = NULL, *auth = NULL;
	int r;
	if ((r = file_read_trimmed(key, 1 << 16, &priv, NULL)) < 0 ||
	    (r = file_read_trimmed(pub, 1 << 16, &hpub, NULL)) < 0 ||
	    (r = file_read_trimmed(ipub, 1 << 16, &auth, NULL)) < 0) {
		free(priv);
		free(hpub);
		free(auth);
		return err_set(e, r, "read keys for %s: %s", m->name, strerror(-r));
	}
	struct seed_mount mounts[64];
	size_t nm = 0;
	for (size_t i = 0; i < m->cfg.n_fixtures && nm < 64; i++, nm++) {
		mounts[nm].label = m->cfg.fixtures[i].label;
		mounts[nm].guest_path = m->cfg.fixtures[i].guest_path;
	}
	char ns[3][FB_IP_STRLEN];
	size_t nns;
	nameservers_from_host(ns, &nns);
	const char *nsp[3] = { ns[0], ns[1], ns[2] };
	char iid[128];
	snprintf(iid, sizeof(iid), "fleetbox-%s-%s", m->name, m->cfg.created_at);
	bool static_ip = m->ip[0] != '\0';
	struct seed_params sp = {
		.hostname = m->name,
		.instance_id = iid,
		.user = "fleetbox",
		.authorized_key = auth,
		.host_key_priv = priv,
		.host_key_pub = hpub,
		.mac = static_ip ? m->mac : NULL,
		.ip = static_ip ? m->ip : NULL,
		.prefix_len = u->prefix,
		.gateway = u->gateway[0] ? u->gateway : NULL,
		.nameservers = nsp,
		.n_nameservers = nns,
		.mounts = mounts,
		.n_mounts = nm,
		.hosts = h->v,
		.n_hosts = h->n,
	};
	r = seed_write(seed, &sp, e);
	free(priv);
	free(hpub);
	free(auth);
	return r;
}

static char *boot_request_line(const struct up_plan *u, const struct up_member *m)
{
	char dir[PATH_MAX];
	store_member_dir(u->root, m->name, dir, sizeof(dir));
	struct rpc_spec s = { 0 };
	char disk[PATH_MAX], seed[PATH_MAX], serial[PATH_MAX];
	snprintf(disk, sizeof(disk), "%s/disk", dir);
	snprintf(seed, sizeof(seed), "%s/seed.iso", dir);
	snprintf(serial, sizeof(serial), "%s/serial.log", dir);
	char *fx[64];
	char fxbuf[64][PATH_MAX];
	size_t nfx = m->cfg.n_fixtures < 64 ? m->cfg.n_fixtures : 64;
	for (size_t i = 0; i < nfx; i++) {
		snprintf(fxbuf[i], PATH_MAX, "%s/fixture-%zu.img", dir, i);
		fx[i] = fxbuf[i];
	}
	const struct image_info *img = &m->img;
	s.name = (char *)m->name;
	s.disk_path = disk;
	s.seed_path = seed;
	s.fixture_paths = fx;
	s.n_fixtures = nfx;
	s.cpus = m->cfg.cpus;
	s.memory_bytes = (uint64_t)m->cfg.memory_mb << 20;
	s.serial_log_path = serial;
	s.kernel_path = img->kernel[0] ? (char *)img->kernel : NULL;
	s.initrd_path = img->initrd[0] ? (char *)img->initrd : NULL;
	s.cmdline = img->cmdline[0] ? (char *)img->cmdline : NULL;
	s.ephemeral = m->ephemeral; /* the holder deletes it once it stops serving it */
	uint64_t grace;
	if (timeouts_stop_env(&grace))
		s.stop_timeout_ms = grace; /* else the holder's default for the image */
	struct rpc_request req = { .cmd = (char *)"boot-member", .spec = &s };
	char *line = NULL;
	size_t len;
	if (rpc_request_encode(&req, &line, &len) < 0)
		return NULL;
	return line;
}

/* The holder's reservation (stable IP hint from config.json). */
static int reserve(struct up_plan *u, struct up_member *m)
{
	struct rpc_request rq = { .cmd = (char *)"reserve", .name = m->name,
				  .ip_hint = m->cfg.ip[0] ? m->cfg.ip : NULL };
	struct rpc_reply rep;
	int r = ctl_request(u->root, u->via, &rq, CTL_DIAL_MS, 60000, &rep, &u->e);
	if (r == 0) {
		snprintf(m->mac, sizeof(m->mac), "%s", rep.res_mac[0] ? rep.res_mac : m->cfg.mac);
		snprintf(m->ip, sizeof(m->ip), "%s", rep.res_ip);
	}
	rpc_reply_fini(&rep);
	return r;
}

/* Fixture content refreshes at every boot; the set is frozen at create. */
static int build_fixtures(struct up_plan *u, struct up_member *m)
{
	char dir[PATH_MAX];
	store_member_dir(u->root, m->name, dir, sizeof(dir));
	for (size_t k = 0; k < m->cfg.n_fixtures; k++) {
		char imgp[PATH_MAX];
		snprintf(imgp, sizeof(imgp), "%s/fixture-%zu.img", dir, k);
		int r = fixture_build_image(&m->cfg.fixtures[k], imgp, &u->e);
		if (r < 0) {
			err_prefix(&u->e, "fixture %s: ", m->cfg.fixtures[k].host_path);
			return r;
		}
	}
	return 0;
}

/* Every address is reserved before the first seed is written: each seed's
 * /etc/hosts lists the whole cluster (orch/hosts.c). */
static int up_reserve_seed(struct up_plan *u)
{
	for (size_t i = 0; i < u->n; i++) {
		struct up_member *m = &u->m[i];
		int r = m->kind == MEMBER_RUNNING ? 0 : reserve(u, m);
		if (r == 0 && m->kind != MEMBER_RUNNING)
			r = build_fixtures(u, m);
		if (r < 0)
			return r;
	}
	struct up_hosts h;
	int r = up_hosts_collect(u, &h);
	for (size_t i = 0; r == 0 && i < u->n; i++) {
		struct up_member *m = &u->m[i];
		if (m->kind == MEMBER_RUNNING)
			continue;
		r = write_seed(u, m, &h, &u->e);
		if (r == 0 && !(m->boot_line = boot_request_line(u, m)))
			r = err_set(&u->e, -ENOMEM, "out of memory");
	}
	up_hosts_fini(&h);
	return r;
}

/* --- confirm SSH (per member, from the boot phase) --- */

/* Confirms a booted VM accepts an authenticated SSH session with its pinned
 * host key (the holder only saw port 22 open). up_ssh_wait retries while the
 * guest is still coming up and ends at once when the call is interrupted. */
static int confirm_ssh(struct up_plan *u, struct up_member *m, struct err *e)
{
	return up_ssh_wait(u, m, "true", (int)timeouts_ssh_ms(), e);
}

/* Called by the boot phase the moment this member's own boot is done, so a
 * member is ready (and its IP line printed) without waiting for slower
 * boots. The wait runs on its own private loop (nested: the boot loop's
 * other replies queue meanwhile; interrupts and progress ticks go on). */
int up_confirm_member(struct up_plan *u, struct up_member *m)
{
	if (!up_confirms_ssh())
		return 0;
	up_set_phase(u, m, FB_UP_WAITING_SSH, "");
	int r = confirm_ssh(u, m, &m->boot_err);
	if (r < 0) {
		err_prefix(&m->boot_err, "wait for ssh %s: ", m->name);
		return r;
	}
	/* cloud-init finishing is part of the boot: the same TCG-sized budget */
	r = up_cloudinit_wait(u, m, (int)timeouts_ssh_ms(), &m->boot_err);
	if (r < 0)
		err_prefix(&m->boot_err, "%s: ", m->name);
	return r;
}

/* --- phase: commit --- */

/* Running members reached by classify have their IP from its status. */
static int record_ip(struct up_plan *u, struct up_member *m)
{
	if (m->kind == MEMBER_RUNNING || !strcmp(m->cfg.ip, m->ip))
		return 0;
	snprintf(m->cfg.ip, sizeof(m->cfg.ip), "%s", m->ip);
	return store_config_write(u->root, &m->cfg, &u->e);
}

static int up_commit(struct up_plan *u)
{
	for (size_t i = 0; i < u->n; i++) {
		int r = record_ip(u, &u->m[i]);
		if (r < 0)
			return r;
	}
	up_hosts_sync(u);
	return orch_cluster_commit(u);
}

static void up_fini(struct up_plan *u)
{
	store_unlock(u->root, &u->locks);
	for (size_t i = 0; u->m && i < u->n; i++) {
		store_config_fini(&u->m[i].cfg);
		free(u->m[i].boot_line);
	}
	free(u->m);
	free(u->fx);
}

/* The phases in order; each makes one thing true and records what it made. */
static const struct {
	const char *name;
	int (*run)(struct up_plan *u);
} up_phases[] = {
	{ "validate", up_validate },	   { "lock", up_lock },
	{ "classify", up_classify },	   { "holder", up_holder },
	{ "network", up_network },	   { "image", up_image },
	{ "prepare", up_prepare },	   { "reserve", up_reserve_seed },
	{ "boot", up_boot },		   { "commit", up_commit },
};

/* Runs the phases, checking for an interrupt between them (a phase that
 * waits long checks inside too). */
static int up_run(struct up_plan *u)
{
	for (size_t i = 0; i < sizeof(up_phases) / sizeof(up_phases[0]); i++) {
		u->phase = up_phases[i].name;
		orch_test_stop_at(u->phase);
		int r = up_cancelled(u) ? -ECANCELED : up_phases[i].run(u);
		if (r < 0)
			return up_cancelled(u) ? -ECANCELED : r;
	}
	return 0;
}

int orch_up(const fb_up_options *o, fb_cluster *into, fb_cluster **out, fb_error *ferr)
{
	struct up_plan u = { .o = o, .into = into, .spawned = { .ctl_fd = -1 },
			     .t0_ms = uv_hrtime() / 1000000 };
	int r = up_run(&u);
	if (r < 0)
		up_rollback(&u, r);
	*out = u.cl;
	up_fini(&u);
	orch_err_export(&u.e, ferr);
	return r;
}

int fb_up(const fb_up_options *o, fb_cluster **out, fb_error *ferr)
{
	if (out)
		*out = NULL;
	if (!o || !out) {
		struct err e = { 0 };
		err_set(&e, -EINVAL, "fb_up: %s is NULL", o ? "out" : "options");
		orch_err_export(&e, ferr);
		return -EINVAL;
	}
	return orch_up(o, NULL, out, ferr);
}

