/* orch_down.c - `down` and `rm`: name patterns expanded against the store,
 * members stopped, and (rm) deleted with their disks. */
#include "client/orch.h"
#include "client/ctl.h"
#include "client/store.h"
#include "util/err.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* --- down / rm --- */

static int expand(const char *root, const char *const *patterns, size_t n, bool all,
		  bool missing_ok, char ***names, size_t *count, struct err *e)
{
	*names = NULL;
	*count = 0;
	if (all)
		return store_list_members(root, names, count) < 0
			       ? err_set(e, -EIO, "cannot list the store at %s", root)
			       : 0;
	size_t cap = 0;
	for (size_t i = 0; i < n; i++) {
		char **m;
		size_t nm;
		int r = store_match(root, patterns[i], &m, &nm);
		if (r == -EINVAL) {
			store_names_free(*names, *count);
			return err_set(e, r, "invalid name \"%s\"", patterns[i]);
		}
		if (r == -ENOENT) {
			if (missing_ok)
				continue;
			store_names_free(*names, *count);
			return err_set(e, r, "no such member: %s", patterns[i]);
		}
		for (size_t j = 0; j < nm; j++) {
			bool dup = false;
			for (size_t k = 0; k < *count; k++)
				dup |= !strcmp((*names)[k], m[j]);
			if (dup)
				continue;
			if (*count == cap) {
				cap = cap ? cap * 2 : 8;
				char **nv = realloc(*names, cap * sizeof(char *));
				if (!nv) {
					store_names_free(m, nm);
					return err_set(e, -ENOMEM, "out of memory");
				}
				*names = nv;
			}
			if (!((*names)[*count] = strdup(m[j]))) {
				store_names_free(m, nm);
				return err_set(e, -ENOMEM, "out of memory");
			}
			(*count)++;
		}
		store_names_free(m, nm);
	}
	return 0;
}

static int do_down(const char *rootopt, const char *const *patterns, size_t n, bool all,
		   bool remove, fb_error *ferr)
{
	struct err e = { 0 };
	char root[PATH_MAX];
	char **names = NULL;
	size_t count = 0;
	struct store_locks locks;
	store_locks_init(&locks);
	int r = orch_root(rootopt, root, sizeof(root), &e);
	if (r == 0)
		r = expand(root, patterns, n, all, remove, &names, &count, &e);
	if (r == 0)
		r = store_lock_members(root, (const char *const *)names, count, &locks, &e);
	/* Stop everything first (members of one holder stop in any order). */
	for (size_t i = 0; r == 0 && i < count; i++)
		if (store_member_running(root, names[i], NULL) && ctl_stop(root, names[i], &e) < 0 &&
		    store_member_running(root, names[i], NULL))
			r = e.code;
	for (size_t i = 0; r == 0 && remove && i < count; i++)
		r = store_member_delete(root, names[i], &e);
	store_unlock(root, &locks);
	store_names_free(names, count);
	if (r < 0)
		orch_err_export(&e, ferr);
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
