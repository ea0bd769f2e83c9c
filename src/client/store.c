#include "client/store.h"
#include "util/err.h"
#include "util/fileio.h"
#include "util/owner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int store_root_resolve(char *buf, size_t len)
{
	return wire_store_root(buf, len);
}

int store_init(const char *root, struct err *e)
{
	char run[PATH_MAX];
	int r = mkdir_p(root, 0700);
	if (r < 0)
		return err_set(e, r, "create store %s: %s", root, strerror(-r));
	snprintf(run, sizeof(run), "%s/run", root);
	if ((r = mkdir_p(run, 0700)) < 0)
		return err_set(e, r, "create %s: %s", run, strerror(-r));
	return 0;
}

int store_member_dir(const char *root, const char *name, char *out, size_t len)
{
	return wire_member_dir(root, name, out, len);
}

int store_member_file(const char *root, const char *name, const char *file, char *out,
		      size_t len)
{
	char dir[PATH_MAX];
	int r = wire_member_dir(root, name, dir, sizeof(dir));
	if (r < 0)
		return r;
	int n = snprintf(out, len, "%s/%s", dir, file);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

bool store_member_exists(const char *root, const char *name)
{
	char p[PATH_MAX];
	if (store_member_file(root, name, "config.json", p, sizeof(p)) < 0)
		return false;
	return access(p, F_OK) == 0;
}

void store_config_fini(struct member_config *c)
{
	free(c->fixtures);
	c->fixtures = NULL;
	c->n_fixtures = 0;
}

static void copy_str(char *dst, size_t len, json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	snprintf(dst, len, "%s", json_is_string(v) ? json_string_value(v) : "");
}

int store_config_read(const char *root, const char *name, struct member_config *c,
		      struct err *e)
{
	memset(c, 0, sizeof(*c));
	char p[PATH_MAX];
	if (store_member_file(root, name, "config.json", p, sizeof(p)) < 0)
		return err_set(e, -ENAMETOOLONG, "store path too long");
	json_error_t je;
	json_t *o = json_load_file(p, 0, &je);
	if (!o) {
		if (access(p, F_OK) < 0)
			return err_set(e, -ENOENT, "no such member: %s", name);
		return err_set(e, -EINVAL, "%s: %s (line %d)", p, je.text, je.line);
	}
	if (!json_is_object(o)) {
		json_decref(o);
		return err_set(e, -EINVAL, "%s: not a JSON object", p);
	}
	copy_str(c->name, sizeof(c->name), o, "name");
	copy_str(c->mac, sizeof(c->mac), o, "mac");
	copy_str(c->image, sizeof(c->image), o, "image");
	copy_str(c->created_at, sizeof(c->created_at), o, "created_at");
	copy_str(c->ip, sizeof(c->ip), o, "ip");
	c->cpus = (int)json_integer_value(json_object_get(o, "cpus"));
	c->memory_mb = (int)json_integer_value(json_object_get(o, "memory_mb"));
	c->disk_mb = (int)json_integer_value(json_object_get(o, "disk_mb"));
	json_t *fx = json_object_get(o, "fixtures");
	if (json_is_array(fx) && json_array_size(fx) > 0) {
		size_t n = json_array_size(fx);
		c->fixtures = calloc(n, sizeof(*c->fixtures));
		if (!c->fixtures) {
			json_decref(o);
			return err_set(e, -ENOMEM, "out of memory");
		}
		for (size_t i = 0; i < n; i++) {
			json_t *f = json_array_get(fx, i);
			copy_str(c->fixtures[i].host_path, sizeof(c->fixtures[i].host_path), f, "host_path");
			copy_str(c->fixtures[i].guest_path, sizeof(c->fixtures[i].guest_path), f, "guest_path");
			copy_str(c->fixtures[i].label, sizeof(c->fixtures[i].label), f, "label");
		}
		c->n_fixtures = n;
	}
	json_decref(o);
	if (strcmp(c->name, name) != 0) {
		store_config_fini(c);
		return err_set(e, -EINVAL, "%s: name \"%s\" does not match its directory", p, c->name);
	}
	return 0;
}

char *store_config_render(const struct member_config *c)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "name", json_string(c->name));
	json_object_set_new(o, "mac", json_string(c->mac));
	json_object_set_new(o, "cpus", json_integer(c->cpus));
	json_object_set_new(o, "memory_mb", json_integer(c->memory_mb));
	json_object_set_new(o, "disk_mb", json_integer(c->disk_mb));
	json_object_set_new(o, "image", json_string(c->image));
	json_object_set_new(o, "created_at", json_string(c->created_at));
	if (c->n_fixtures) {
		json_t *a = json_array();
		for (size_t i = 0; i < c->n_fixtures; i++)
			json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "host_path",
							   c->fixtures[i].host_path, "guest_path",
							   c->fixtures[i].guest_path, "label",
							   c->fixtures[i].label));
		json_object_set_new(o, "fixtures", a);
	}
	if (c->ip[0])
		json_object_set_new(o, "ip", json_string(c->ip));
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}

int store_config_write(const char *root, const struct member_config *c, struct err *e)
{
	char dir[PATH_MAX], p[PATH_MAX];
	if (store_member_dir(root, c->name, dir, sizeof(dir)) < 0 ||
	    store_member_file(root, c->name, "config.json", p, sizeof(p)) < 0)
		return err_set(e, -ENAMETOOLONG, "store path too long");
	int r = mkdir_p(dir, 0700);
	if (r < 0)
		return err_set(e, r, "create %s: %s", dir, strerror(-r));
	char *s = store_config_render(c);
	if (!s)
		return err_set(e, -ENOMEM, "out of memory");
	size_t n = strlen(s);
	char *t = realloc(s, n + 2);
	if (!t) {
		free(s);
		return err_set(e, -ENOMEM, "out of memory");
	}
	t[n] = '\n';
	r = file_write_atomic(p, t, n + 1, 0600);
	free(t);
	if (r < 0)
		return err_set(e, r, "write %s: %s", p, strerror(-r));
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void store_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int store_names_add(char ***v, size_t *n, size_t *cap, const char *s, bool unique)
{
	for (size_t k = 0; unique && k < *n; k++)
		if (!strcmp((*v)[k], s))
			return 0;
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		char **nv = realloc(*v, nc * sizeof(char *));
		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = nc;
	}
	if (!((*v)[*n] = strdup(s)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

int store_list_members(const char *root, char ***names, size_t *n)
{
	*names = NULL;
	*n = 0;
	size_t cap = 0;
	char cdir[PATH_MAX];
	snprintf(cdir, sizeof(cdir), "%s/clusters", root);
	DIR *d = opendir(cdir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	struct dirent *ce;
	int r = 0;
	while (r == 0 && (ce = readdir(d))) {
		if (ce->d_name[0] == '.')
			continue;
		char mdir[PATH_MAX];
		if (snprintf(mdir, sizeof(mdir), "%s/%s", cdir, ce->d_name) >= (int)sizeof(mdir))
			continue;
		DIR *md = opendir(mdir);
		if (!md)
			continue;
		struct dirent *me;
		while (r == 0 && (me = readdir(md))) {
			if (me->d_name[0] == '.' || !wire_name_valid(me->d_name))
				continue;
			char cl[FB_NAME_MAX + 1];
			wire_cluster_name(me->d_name, cl);
			if (strcmp(cl, ce->d_name) != 0)
				continue; /* not where this name belongs: not ours */
			/* A member a live holder serves counts even before its
			 * config exists (an interrupted up). */
			if (store_member_exists(root, me->d_name) ||
			    store_member_running(root, me->d_name, NULL))
				r = store_names_add(names, n, &cap, me->d_name, false);
		}
		closedir(md);
	}
	closedir(d);
	if (r < 0) {
		store_names_free(*names, *n);
		*names = NULL;
		*n = 0;
		return r;
	}
	if (*n)
		qsort(*names, *n, sizeof(char *), cmp_str);
	return 0;
}

int store_match(const char *root, const char *pattern, char ***names, size_t *n)
{
	*names = NULL;
	*n = 0;
	if (!wire_name_valid(pattern))
		return -EINVAL;
	char **all;
	size_t na;
	int r = store_list_members(root, &all, &na);
	if (r < 0)
		return r;
	size_t cap = 0;
	for (size_t i = 0; i < na && r == 0; i++)
		if (!strcmp(all[i], pattern))
			r = store_names_add(names, n, &cap, all[i], false);
	bool exact = *n > 0;
	for (size_t i = 0; i < na && r == 0 && !exact; i++) {
		char cl[FB_NAME_MAX + 1];
		wire_cluster_name(all[i], cl);
		if (!strcmp(cl, pattern) && strcmp(all[i], pattern) != 0)
			r = store_names_add(names, n, &cap, all[i], false);
	}
	store_names_free(all, na);
	if (r < 0) {
		store_names_free(*names, *n);
		*names = NULL;
		*n = 0;
		return r;
	}
	return *n ? 0 : -ENOENT;
}

void store_locks_init(struct store_locks *l)
{
	memset(l, 0, sizeof(*l));
}

/* Adds cluster c to the sorted, de-duplicated set (a fixed order cannot
 * deadlock). */
static int locks_add(struct store_locks *l, size_t *cap, const char *c)
{
	size_t j = 0;
	while (j < l->n && strcmp(l->names[j], c) < 0)
		j++;
	if (j < l->n && !strcmp(l->names[j], c))
		return 0;
	if (l->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		char(*nn)[FB_NAME_MAX + 1] = realloc(l->names, nc * sizeof(*nn));
		if (!nn)
			return -ENOMEM;
		l->names = nn;
		*cap = nc;
	}
	memmove(l->names[j + 1], l->names[j], (l->n - j) * sizeof(*l->names));
	snprintf(l->names[j], sizeof(l->names[j]), "%s", c);
	l->n++;
	return 0;
}

/* flock, then make sure the path still names the file we locked: whoever
 * held it before may have unlinked it (store_unlock of a cluster that is
 * gone), and a lock on an unlinked file excludes nobody. */
static int lock_one(const char *path, struct err *e)
{
	for (;;) {
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd >= 0 && owner_claim_fd(fd) < 0) { /* under sudo: the invoking user's */
			close(fd);
			fd = -1;
		}
		if (fd < 0)
			return err_set(e, -errno, "lock %s: %s", path, strerror(errno));
		int r;
		while ((r = flock(fd, LOCK_EX)) < 0 && errno == EINTR)
			;
		struct stat a, b;
		if (r < 0 || fstat(fd, &a) < 0) {
			r = err_set(e, -errno, "lock %s: %s", path, strerror(errno));
			close(fd);
			return r;
		}
		if (stat(path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
			return fd;
		close(fd); /* unlinked under us: take the new one */
	}
}

int store_lock(const char *root, const char *const *clusters, size_t n, struct store_locks *l,
	       struct err *e)
{
	store_locks_init(l);
	size_t cap = 0;
	for (size_t i = 0; i < n; i++)
		if (locks_add(l, &cap, clusters[i]) < 0) {
			store_unlock(root, l);
			return err_set(e, -ENOMEM, "out of memory");
		}
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/clusters", root);
	int r = mkdir_p(dir, 0700);
	l->fds = calloc(l->n ? l->n : 1, sizeof(int));
	if (r < 0 || !l->fds) {
		store_unlock(root, l);
		return r < 0 ? err_set(e, r, "create %s: %s", dir, strerror(-r))
			     : err_set(e, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < l->n; i++) {
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/.%s.lock", dir, l->names[i]);
		if ((r = lock_one(p, e)) < 0) {
			store_unlock(root, l);
			return r;
		}
		l->fds[l->nfds++] = r;
	}
	return 0;
}

int store_lock_members(const char *root, const char *const *names, size_t n,
		       struct store_locks *l, struct err *e)
{
	char(*cl)[FB_NAME_MAX + 1] = calloc(n ? n : 1, sizeof(*cl));
	const char **p = calloc(n ? n : 1, sizeof(char *));
	int r = cl && p ? 0 : err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; r == 0 && i < n; i++) {
		wire_cluster_name(names[i], cl[i]);
		p[i] = cl[i];
	}
	if (r == 0)
		r = store_lock(root, p, n, l, e);
	else
		store_locks_init(l);
	free(cl);
	free(p);
	return r;
}

/* Lock files of clusters that no longer have a directory go while we still
 * hold them (lock_one makes a waiter take the next file). */
void store_unlock(const char *root, struct store_locks *l)
{
	for (size_t i = 0; i < l->nfds; i++) {
		char d[PATH_MAX], p[PATH_MAX];
		snprintf(d, sizeof(d), "%s/clusters/%s", root, l->names[i]);
		snprintf(p, sizeof(p), "%s/clusters/.%s.lock", root, l->names[i]);
		if (!path_exists(d))
			unlink(p);
		close(l->fds[i]);
	}
	free(l->fds);
	free(l->names);
	store_locks_init(l);
}

int store_name_check(const char *name, struct err *e)
{
	size_t n = name ? strlen(name) : 0;
	if (!name || !wire_name_valid(name))
		return err_set(e, -EINVAL, "invalid name \"%s\": use [a-z0-9][a-z0-9-]{0,62}",
			       name ? name : "");
	if (name[n - 1] == '-')
		return err_set(e, -EINVAL, "invalid name \"%s\": a member name is its hostname and "
			       "cannot end in '-'", name);
	return 0;
}

/* Reports path when it exists but opening it as wanted fails. */
static void probe_entry(const char *path, int flags, store_problem_fn cb, void *data)
{
	int fd = open(path, flags | O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0)
		close(fd);
	else if (errno != ENOENT && errno != ELOOP)
		cb(data, path, -errno);
}

static void scan_cluster(const char *cdir, store_problem_fn cb, void *data)
{
	DIR *d = opendir(cdir);
	if (!d) {
		if (errno != ENOENT)
			cb(data, cdir, -errno);
		return;
	}
	struct dirent *me;
	while ((me = readdir(d))) {
		if (me->d_name[0] == '.')
			continue;
		char mdir[PATH_MAX], cfg[PATH_MAX + 16];
		if (snprintf(mdir, sizeof(mdir), "%s/%s", cdir, me->d_name) >= (int)sizeof(mdir))
			continue;
		snprintf(cfg, sizeof(cfg), "%s/config.json", mdir);
		probe_entry(mdir, O_DIRECTORY, cb, data);
		if (access(mdir, X_OK) == 0)
			probe_entry(cfg, 0, cb, data);
	}
	closedir(d);
}

void store_scan_unreadable(const char *root, store_problem_fn cb, void *data)
{
	char top[PATH_MAX];
	snprintf(top, sizeof(top), "%s/clusters", root);
	DIR *d = opendir(top);
	if (!d) {
		if (errno != ENOENT)
			cb(data, top, -errno);
		return;
	}
	struct dirent *ce;
	while ((ce = readdir(d))) {
		if (ce->d_name[0] == '.')
			continue;
		char cdir[PATH_MAX];
		if (snprintf(cdir, sizeof(cdir), "%s/%s", top, ce->d_name) < (int)sizeof(cdir))
			scan_cluster(cdir, cb, data);
	}
	closedir(d);
}

int store_member_delete(const char *root, const char *name, struct err *e)
{
	char dir[PATH_MAX];
	if (store_member_dir(root, name, dir, sizeof(dir)) < 0)
		return err_set(e, -ENAMETOOLONG, "store path too long");
	int r = rm_rf(dir);
	if (r < 0)
		return err_set(e, r, "delete %s: %s", dir, strerror(-r));
	char *slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		rmdir(dir); /* only succeeds when the cluster dir is empty */
	}
	return 0;
}

bool store_member_running(const char *root, const char *name, pid_t *pid_out)
{
	if (pid_out)
		*pid_out = 0;
	char p[PATH_MAX], lock[PATH_MAX];
	if (wire_pidfile_path(root, name, p, sizeof(p)) < 0 ||
	    store_member_file(root, name, ".lock", lock, sizeof(lock)) < 0)
		return false;
	char *s;
	if (file_read_all(p, 64, &s, NULL) < 0)
		return false;
	char *end;
	long pid = strtol(s, &end, 10);
	bool ok = end != s && pid > 1;
	free(s);
	if (!ok)
		return false;
	if (kill((pid_t)pid, 0) < 0 && errno != EPERM)
		return false;
	/* PID-reuse guard: a live holder keeps an OFD write lock on .lock.
	 * F_OFD_GETLK only asks; it never takes the lock. */
	int fd = open(lock, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	bool held = fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
	close(fd);
	if (held && pid_out)
		*pid_out = (pid_t)pid;
	return held;
}

void store_now_rfc3339(char out[32])
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* --- incomplete creations (crash-safe create) --- */

static bool is_housekeeping(const char *f)
{
	return !strcmp(f, ".lock") || !strcmp(f, "pid");
}

int store_creating_mark(const char *root, const char *name, struct err *e)
{
	char p[PATH_MAX], pid[24];
	if (store_member_file(root, name, STORE_CREATING, p, sizeof(p)) < 0)
		return err_set(e, -ENAMETOOLONG, "store path too long");
	int n = snprintf(pid, sizeof(pid), "%d", (int)getpid());
	int r = file_write_atomic(p, pid, (size_t)n, 0600);
	return r < 0 ? err_set(e, r, "write %s: %s", p, strerror(-r)) : 0;
}

int store_creating_done(const char *root, const char *name, struct err *e)
{
	char p[PATH_MAX];
	if (store_member_file(root, name, STORE_CREATING, p, sizeof(p)) < 0)
		return err_set(e, -ENAMETOOLONG, "store path too long");
	if (unlink(p) < 0)
		return errno == ENOENT ? 0 : err_set(e, -errno, "remove %s: %s", p, strerror(errno));
	return fsync_parent(p) < 0 ? err_set(e, -EIO, "fsync %s", p) : 0;
}

/* Marker present, or nothing but a holder's housekeeping (or nothing). */
static bool dir_incomplete(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return false;
	bool marker = false, other = false, cfg = false;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!strcmp(de->d_name, STORE_CREATING))
			marker = true;
		else if (!strcmp(de->d_name, "config.json"))
			cfg = true;
		else if (!is_housekeeping(de->d_name))
			other = true;
	}
	closedir(d);
	return !cfg && (marker || !other);
}

bool store_member_incomplete(const char *root, const char *name)
{
	char dir[PATH_MAX];
	if (!wire_name_valid(name) || store_member_dir(root, name, dir, sizeof(dir)) < 0)
		return false;
	return path_exists(dir) && dir_incomplete(dir);
}

/* Everything in dir except the housekeeping files (a live holder's). */
static int empty_but_registration(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	struct dirent *de;
	int r = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || is_housekeeping(de->d_name))
			continue;
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		int rr = rm_rf(p);
		if (rr < 0 && r == 0)
			r = rr;
	}
	closedir(d);
	return r;
}

int store_member_reclaim(const char *root, const char *name, struct err *e)
{
	if (!store_member_incomplete(root, name))
		return 0;
	if (!store_member_running(root, name, NULL))
		return store_member_delete(root, name, e);
	char dir[PATH_MAX];
	store_member_dir(root, name, dir, sizeof(dir));
	int r = empty_but_registration(dir);
	return r < 0 ? err_set(e, r, "clean %s: %s", dir, strerror(-r)) : 0;
}

static void list_incomplete_in(const char *root, const char *cluster, const char *pattern,
			       char ***v, size_t *n, size_t *cap)
{
	char cdir[PATH_MAX];
	snprintf(cdir, sizeof(cdir), "%s/clusters/%s", root, cluster);
	DIR *d = opendir(cdir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		char cl[FB_NAME_MAX + 1];
		if (de->d_name[0] == '.' || !wire_name_valid(de->d_name))
			continue;
		wire_cluster_name(de->d_name, cl);
		bool match = !pattern || !strcmp(de->d_name, pattern) || !strcmp(cl, pattern);
		if (match && !strcmp(cl, cluster) && !store_member_running(root, de->d_name, NULL) &&
		    store_member_incomplete(root, de->d_name))
			store_names_add(v, n, cap, de->d_name, false);
	}
	closedir(d);
}

int store_list_incomplete(const char *root, const char *pattern, char ***names, size_t *n)
{
	*names = NULL;
	*n = 0;
	size_t cap = 0;
	if (pattern) {
		char cl[FB_NAME_MAX + 1];
		wire_cluster_name(pattern, cl);
		list_incomplete_in(root, cl, pattern, names, n, &cap);
		if (strcmp(cl, pattern) != 0)
			list_incomplete_in(root, pattern, pattern, names, n, &cap);
		return 0;
	}
	char cdir[PATH_MAX];
	snprintf(cdir, sizeof(cdir), "%s/clusters", root);
	DIR *d = opendir(cdir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && wire_name_valid(de->d_name))
			list_incomplete_in(root, de->d_name, NULL, names, n, &cap);
	closedir(d);
	return 0;
}
