/* orch/cluster.c - fb_cluster: what fb_up returns, growing it with
 * fb_cluster_add, and closing it (a bound holder this process spawned is
 * released: it stops every VM and exits; ephemeral members are deleted). */
#include "client/orch/orch.h"
#include "client/orch/plan.h"
#include "client/store.h"
#include "util/err.h"
#include "util/fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void cluster_free(fb_cluster *c)
{
	if (!c)
		return;
	free(c->names);
	free(c->ips);
	free(c->ephemeral);
	for (size_t i = 0; i < c->n_fixtures; i++) {
		free((char *)c->fixtures[i].host_path);
		free((char *)c->fixtures[i].guest_path);
	}
	free(c->fixtures);
	free(c->image);
	free(c);
}

static int cluster_grow(fb_cluster *c, size_t want)
{
	if (want <= c->cap)
		return 0;
	size_t cap = c->cap ? c->cap : 4;
	while (cap < want)
		cap *= 2;
	char(*names)[FB_NAME_MAX + 1] = realloc(c->names, cap * sizeof(*names));
	if (names)
		c->names = names;
	char(*ips)[FB_IP_STRLEN] = realloc(c->ips, cap * sizeof(*ips));
	if (ips)
		c->ips = ips;
	bool *eph = realloc(c->ephemeral, cap * sizeof(*eph));
	if (eph)
		c->ephemeral = eph;
	if (!names || !ips || !eph)
		return -ENOMEM;
	c->cap = cap;
	return 0;
}

/* Adds (or refreshes) one member. */
static int cluster_put(fb_cluster *c, const struct up_member *m)
{
	size_t i = 0;
	while (i < c->n && strcmp(c->names[i], m->name) != 0)
		i++;
	if (i == c->n) {
		if (cluster_grow(c, c->n + 1) < 0)
			return -ENOMEM;
		c->n++;
		snprintf(c->names[i], sizeof(c->names[i]), "%s", m->name);
		c->ephemeral[i] = false;
	}
	snprintf(c->ips[i], sizeof(c->ips[i]), "%s", m->ip);
	c->ephemeral[i] |= m->ephemeral;
	return 0;
}

/* The create options, kept for fb_cluster_add. */
static int cluster_keep_options(fb_cluster *c, const fb_up_options *o)
{
	c->cpus = o->cpus;
	c->memory_mb = o->memory_mb;
	c->disk_mb = o->disk_mb;
	c->bound = o->bound;
	c->ephemeral_new = o->ephemeral;
	if (o->image && !(c->image = strdup(o->image)))
		return -ENOMEM;
	if (!o->n_fixtures)
		return 0;
	if (!(c->fixtures = calloc(o->n_fixtures, sizeof(*c->fixtures))))
		return -ENOMEM;
	for (size_t i = 0; i < o->n_fixtures; i++, c->n_fixtures++) {
		c->fixtures[i].host_path = strdup(o->fixtures[i].host_path);
		c->fixtures[i].guest_path = strdup(o->fixtures[i].guest_path);
		if (!c->fixtures[i].host_path || !c->fixtures[i].guest_path) {
			c->n_fixtures++;
			return -ENOMEM;
		}
	}
	return 0;
}

static fb_cluster *cluster_new(const struct up_plan *u)
{
	fb_cluster *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->holder.ctl_fd = -1;
	snprintf(c->root, sizeof(c->root), "%s", u->root);
	if (cluster_keep_options(c, u->o) < 0) {
		cluster_free(c);
		return NULL;
	}
	return c;
}

int orch_cluster_commit(struct up_plan *u)
{
	fb_cluster *c = u->into ? u->into : cluster_new(u);
	int r = c ? cluster_grow(c, c->n + u->n) : -ENOMEM;
	for (size_t i = 0; r == 0 && i < u->n; i++)
		r = cluster_put(c, &u->m[i]);
	if (r < 0) {
		if (!u->into)
			cluster_free(c);
		return err_set(&u->e, -ENOMEM, "out of memory");
	}
	if (!u->into) {
		/* The bound connection now belongs to the cluster. */
		c->holder = u->spawned;
		if (!c->holder.pid)
			c->holder.pid = u->holder_pid;
		memset(&u->spawned, 0, sizeof(u->spawned));
		u->spawned.ctl_fd = -1;
	}
	u->cl = c;
	return 0;
}

size_t fb_cluster_size(const fb_cluster *c)
{
	return c ? c->n : 0;
}

const char *fb_cluster_name(const fb_cluster *c, size_t i)
{
	return c && i < c->n ? c->names[i] : NULL;
}

const char *fb_cluster_ip(const fb_cluster *c, size_t i)
{
	return c && i < c->n ? c->ips[i] : NULL;
}

pid_t fb_cluster_holder_pid(const fb_cluster *c)
{
	return c ? c->holder.pid : 0;
}

/* --- add --- */

int fb_cluster_add(fb_cluster *c, const char *name, fb_error *ferr)
{
	if (!c || !name) {
		struct err e = { 0 };
		err_set(&e, -EINVAL, "fb_cluster_add: %s is NULL", c ? "name" : "cluster");
		orch_err_export(&e, ferr);
		return -EINVAL;
	}
	const char *names[] = { name };
	fb_up_options o = {
		.root = c->root,
		.names = names,
		.n_names = 1,
		.cpus = c->cpus,
		.memory_mb = c->memory_mb,
		.disk_mb = c->disk_mb,
		.image = c->image,
		.fixtures = c->fixtures,
		.n_fixtures = c->n_fixtures,
		.bound = c->bound,
		.ephemeral = c->ephemeral_new,
	};
	fb_cluster *out;
	return orch_up(&o, c, &out, ferr);
}

/* --- close --- */

/* Ephemeral members that are not running any more are deleted, under the
 * cluster locks (no up of the same names runs meanwhile). */
static int delete_ephemeral(fb_cluster *c, const char **names, size_t k, struct err *e)
{
	struct store_locks locks;
	int r = store_lock_members(c->root, names, k, &locks, e);
	for (size_t i = 0; r == 0 && i < k; i++) {
		if (store_member_running(c->root, names[i], NULL))
			r = err_set(e, -EBUSY, "ephemeral member %s is still running; not deleted", names[i]);
		else
			r = store_member_delete(c->root, names[i], e);
	}
	store_unlock(c->root, &locks);
	return r;
}

/* A bound holder this process spawned stops everything when released; in
 * any other holder (detached, joined) the ephemeral members are stopped here
 * first. Then their directories go (the holder deletes them too, when it
 * implements the spec's "ephemeral"; this makes close not depend on it). */
static int close_ephemeral(fb_cluster *c, bool released, struct err *e)
{
	const char **names = calloc(c->n ? c->n : 1, sizeof(char *));
	if (!names)
		return err_set(e, -ENOMEM, "out of memory");
	size_t k = 0;
	for (size_t i = 0; i < c->n; i++)
		if (c->ephemeral[i])
			names[k++] = c->names[i];
	int r = 0;
	if (k && !released)
		r = orch_stop_members(c->root, names, k, orch_stop_wait_ms(), NULL, e);
	if (k && r == 0)
		r = delete_ephemeral(c, names, k, e);
	free(names);
	return r;
}

int fb_cluster_close(fb_cluster *c, fb_error *ferr)
{
	struct err e = { 0 };
	if (!c) {
		orch_err_export(&e, ferr);
		return 0;
	}
	bool own = c->holder.bound && c->holder.pid;
	int r = ctl_holder_release(&c->holder, orch_stop_wait_ms(), &e);
	struct err e2 = { 0 };
	int r2 = close_ephemeral(c, own, &e2);
	if (r == 0 && r2 < 0) {
		r = r2;
		e = e2;
	}
	cluster_free(c);
	orch_err_export(&e, ferr);
	return r;
}
