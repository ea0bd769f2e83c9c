/* orch/down.c - `down` and `rm`: name patterns expanded against the store
 * (under the cluster locks), members stopped, and (rm) deleted with their
 * disks; rm also reclaims incomplete creations its patterns name (store.h).
 * rm reports success only for what it really deleted. */
#include "client/orch/orch.h"
#include "client/ctl.h"
#include "client/store.h"
#include "util/err.h"
#include "util/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct down {
	char root[PATH_MAX];
	const char *const *patterns;
	size_t np;
	bool all, remove;
	struct store_locks locks;
	char **names;      /* members to stop (and delete) */
	size_t n, cap;
	char **stale;      /* rm: incomplete creations to reclaim */
	size_t ns;
	struct err e;
};

static int down_validate(struct down *d, const char *rootopt)
{
	int r = orch_root(rootopt, d->root, sizeof(d->root), &d->e);
	if (r < 0)
		return r;
	if (!d->all && d->np && !d->patterns)
		return err_set(&d->e, -EINVAL, "patterns is NULL");
	for (size_t i = 0; !d->all && i < d->np; i++)
		if (!d->patterns[i] || !wire_name_valid(d->patterns[i]))
			return err_set(&d->e, -EINVAL, "invalid name \"%s\"",
				       d->patterns[i] ? d->patterns[i] : "(null)");
	return 0;
}

/* Every cluster directory in the store (for --all). */
static int all_clusters(const char *root, char ***v, size_t *n)
{
	char cdir[PATH_MAX];
	size_t cap = 0;
	snprintf(cdir, sizeof(cdir), "%s/clusters", root);
	DIR *dd = opendir(cdir);
	if (!dd)
		return errno == ENOENT ? 0 : -errno;
	struct dirent *de;
	int r = 0;
	while (r == 0 && (de = readdir(dd)))
		if (de->d_name[0] != '.' && wire_name_valid(de->d_name))
			r = store_names_add(v, n, &cap, de->d_name, true);
	closedir(dd);
	return r;
}

/* The clusters the patterns can touch: each pattern's cluster and the
 * cluster named by the pattern itself; or every cluster. */
static int down_lock(struct down *d)
{
	char **cl = NULL;
	size_t n = 0, cap = 0;
	int r = d->all ? all_clusters(d->root, &cl, &n) : 0;
	for (size_t i = 0; r == 0 && !d->all && i < d->np; i++) {
		char c[FB_NAME_MAX + 1];
		wire_cluster_name(d->patterns[i], c);
		if ((r = store_names_add(&cl, &n, &cap, c, true)) == 0)
			r = store_names_add(&cl, &n, &cap, d->patterns[i], true);
	}
	if (r == 0)
		r = store_lock(d->root, (const char *const *)cl, n, &d->locks, &d->e);
	else
		err_set(&d->e, r, "cannot list the store at %s: %s", d->root, strerror(-r));
	store_names_free(cl, n);
	return r;
}

static int expand_pattern(struct down *d, const char *pattern)
{
	char **m;
	size_t nm;
	int r = store_match(d->root, pattern, &m, &nm);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return err_set(&d->e, r, "cannot read the store at %s: %s", d->root, strerror(-r));
	for (size_t j = 0; r == 0 && j < nm; j++)
		r = store_names_add(&d->names, &d->n, &d->cap, m[j], true);
	store_names_free(m, nm);
	return r < 0 ? err_set(&d->e, r, "out of memory") : 0;
}

/* rm: the incomplete creations a pattern names are deleted too. */
static int expand_stale(struct down *d, const char *pattern)
{
	char **s;
	size_t ns, cap = d->ns;
	if (store_list_incomplete(d->root, pattern, &s, &ns) < 0)
		return 0;
	int r = 0;
	for (size_t i = 0; r == 0 && i < ns; i++)
		r = store_names_add(&d->stale, &d->ns, &cap, s[i], true);
	store_names_free(s, ns);
	return r < 0 ? err_set(&d->e, r, "out of memory") : 0;
}

static int down_expand(struct down *d)
{
	int r = 0;
	if (d->all) {
		if (store_list_members(d->root, &d->names, &d->n) < 0)
			return err_set(&d->e, -EIO, "cannot list the store at %s", d->root);
		d->cap = d->n;
		return d->remove ? expand_stale(d, NULL) : 0;
	}
	for (size_t i = 0; r == 0 && i < d->np; i++) {
		size_t before = d->n, sbefore = d->ns;
		r = expand_pattern(d, d->patterns[i]);
		if (r == 0 && d->remove)
			r = expand_stale(d, d->patterns[i]);
		if (r == 0 && !d->remove && d->n == before && d->ns == sbefore)
			r = err_set(&d->e, -ENOENT, "no such member: %s", d->patterns[i]);
	}
	return r;
}

/* All at once: N members stop in the time of the slowest, each with its
 * guest's power-off grace (docs/timeouts.md). */
static int down_stop(struct down *d)
{
	return orch_stop_members(d->root, (const char *const *)d->names, d->n,
				 orch_stop_wait_ms(), NULL, &d->e);
}

/* Only what is really gone counts as deleted. */
static int delete_one(struct down *d, const char *name)
{
	char dir[PATH_MAX];
	store_member_dir(d->root, name, dir, sizeof(dir));
	int r = store_member_delete(d->root, name, &d->e);
	if (r == 0 && path_exists(dir))
		r = err_set(&d->e, -EIO, "delete %s: still there", dir);
	return r;
}

static int down_delete(struct down *d)
{
	for (size_t i = 0; d->remove && i < d->n; i++) {
		int r = delete_one(d, d->names[i]);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < d->ns; i++) {
		int r = store_member_reclaim(d->root, d->stale[i], &d->e);
		if (r < 0)
			return r;
	}
	/* Holder logs of members that are gone now (their holders exited, or
	 * exited earlier while another member still kept the log). */
	if (d->remove)
		orch_tidy_runner_logs(d->root);
	return 0;
}

static int do_down(const char *rootopt, const char *const *patterns, size_t n, bool all,
		   bool remove, fb_error *ferr)
{
	struct down d = { .patterns = patterns, .np = n, .all = all, .remove = remove };
	store_locks_init(&d.locks);
	int r = down_validate(&d, rootopt);
	if (r == 0)
		r = down_lock(&d);
	if (r == 0)
		r = down_expand(&d);
	if (r == 0)
		r = down_stop(&d);
	if (r == 0)
		r = down_delete(&d);
	store_unlock(d.root, &d.locks);
	store_names_free(d.names, d.n);
	store_names_free(d.stale, d.ns);
	orch_err_export(&d.e, ferr);
	return r;
}

int fb_down(const char *root, const char *const *patterns, size_t n, fb_error *err)
{
	return do_down(root, patterns, n, false, false, err);
}

int fb_down_all(const char *root, fb_error *err)
{
	return do_down(root, NULL, 0, true, false, err);
}

int fb_rm(const char *root, const char *const *patterns, size_t n, fb_error *err)
{
	return do_down(root, patterns, n, false, true, err);
}

int fb_rm_all(const char *root, fb_error *err)
{
	return do_down(root, NULL, 0, true, true, err);
}
