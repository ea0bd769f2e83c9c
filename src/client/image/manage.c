/* image/manage.c - listing, removing and pruning cached images.
 *
 * "In use" is decided from the member disks themselves: every disk made on
 * a cached base is recorded in the base's disks/ (disk_create), and a record
 * counts only while that file still is a qcow2 overlay whose backing file is
 * this base; records of deleted or rebased disks are dropped by prune. A base
 * is removed only under its image lock taken exclusively, which disk_create
 * holds shared while it records and creates a disk, so a disk can never end
 * up on a removed base. Removal renames the directory into tmp/ first: a
 * crash mid-way leaves debris prune sweeps, never half an image. */
#include "client/image/int.h"

#include "util/err.h"
#include "util/fileio.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct cached {
	char digest[DIGEST_MAX];
	char dir[PATH_MAX];
};

static int scan_images(const struct cache *c, struct cached **out, size_t *n)
{
	char dir[PATH_MAX];
	*out = NULL;
	*n = 0;
	if (cache_path(c, dir, sizeof(dir), "images") < 0)
		return -ENAMETOOLONG;
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	size_t cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		char digest[DIGEST_MAX];
		if (strncmp(de->d_name, "sha256-", 7) != 0 ||
		    snprintf(digest, sizeof(digest), "sha256:%s", de->d_name + 7) >= (int)sizeof(digest) ||
		    !digest_valid(digest))
			continue;
		if (*n == cap) {
			struct cached *nv = realloc(*out, (cap = cap ? cap * 2 : 16) * sizeof(**out));
			if (!nv)
				break;
			*out = nv;
		}
		snprintf((*out)[*n].digest, DIGEST_MAX, "%s", digest);
		cache_image_dir(c, digest, (*out)[*n].dir, PATH_MAX);
		(*n)++;
	}
	closedir(d);
	return 0;
}

static uint64_t dir_usage(const char *dir)
{
	DIR *d = opendir(dir);
	uint64_t sum = 0;
	struct dirent *de;
	while (d && (de = readdir(d))) {
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
			sum += (uint64_t)st.st_blocks * 512;
	}
	if (d)
		closedir(d);
	return sum;
}

static time_t last_use(const char *dir)
{
	char p[PATH_MAX];
	struct stat st;
	snprintf(p, sizeof(p), "%s/used", dir);
	if (stat(p, &st) == 0 || stat(dir, &st) == 0)
		return st.st_mtime;
	return 0;
}

/* True when disk is (still) a qcow2 overlay whose backing file is base. */
static bool backs_onto(const char *disk, const char *base)
{
	int fd = open(disk, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	struct qcow2_info q;
	int r = qcow2_inspect(fd, &q);
	close(fd);
	if (r < 0 || !q.backing_len)
		return false;
	if (!strcmp(q.backing, base))
		return true;
	struct stat a, b;
	return stat(q.backing, &a) == 0 && stat(base, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

/* A record's disk path: one absolute path and a newline. */
static bool read_record(int dfd, const char *name, char *path, size_t len)
{
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, path, len - 1);
	close(fd);
	if (n <= 1 || path[0] != '/' || path[n - 1] != '\n')
		return false;
	path[n - 1] = '\0';
	return strlen(path) == (size_t)n - 1;
}

/* Member disks backed by the image in dir; stale records dropped when asked.
 * The first live disk's path goes to first (for messages). */
static int live_disks(const char *dir, bool drop_stale, char *first, size_t flen, int *stale)
{
	char p[PATH_MAX], base[PATH_MAX];
	snprintf(p, sizeof(p), "%s/disks", dir);
	snprintf(base, sizeof(base), "%s/disk", dir);
	DIR *d = opendir(p);
	int live = 0;
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char disk[PATH_MAX];
		if (de->d_name[0] == '.')
			continue;
		if (read_record(dirfd(d), de->d_name, disk, sizeof(disk)) && backs_onto(disk, base)) {
			if (live++ == 0 && first)
				snprintf(first, flen, "%s", disk);
		} else if (drop_stale && unlinkat(dirfd(d), de->d_name, 0) == 0 && stale) {
			(*stale)++;
		}
	}
	if (d)
		closedir(d);
	return live;
}

/* ---- list ---- */

static void add_name(char *names, size_t len, const char *name)
{
	size_t n = strlen(names), k = strlen(name);
	for (const char *p = names; (p = strstr(p, name)); p += k)
		if ((p == names || p[-1] == ',') && (p[k] == ',' || p[k] == '\0'))
			return; /* already listed */
	if (n + k + 2 <= len)
		snprintf(names + n, len - n, "%s%s", n ? "," : "", name);
}

static void fill_entry(const struct cached *ci, const struct image_ref *refs, size_t nr,
		       struct image_entry *en)
{
	memset(en, 0, sizeof(*en));
	snprintf(en->digest, sizeof(en->digest), "%s", ci->digest);
	for (size_t i = 0; i < nr; i++) {
		if (strcmp(refs[i].digest, ci->digest) != 0)
			continue;
		add_name(en->names, sizeof(en->names), refs[i].name);
		if (!en->source[0] || strcmp(refs[i].kind, "path") != 0)
			snprintf(en->source, sizeof(en->source), "%s", refs[i].source);
	}
	if (!en->names[0])
		snprintf(en->names, sizeof(en->names), "-");
	if (!en->source[0])
		snprintf(en->source, sizeof(en->source), "-");
	en->size = dir_usage(ci->dir);
	en->last_use = last_use(ci->dir);
	en->disks = live_disks(ci->dir, false, NULL, 0, NULL);
}

static int by_use(const void *a, const void *b)
{
	const struct image_entry *x = a, *y = b;
	return x->last_use < y->last_use ? 1 : x->last_use > y->last_use ? -1 : 0;
}

int image_list(struct image_entry **out, size_t *n, struct err *e)
{
	struct cache c;
	struct cached *imgs = NULL;
	struct image_ref *refs = NULL;
	size_t ni = 0, nr = 0;
	*out = NULL;
	*n = 0;
	int r = cache_open(&c, e);
	if (r == 0 && ((r = scan_images(&c, &imgs, &ni)) < 0 || (r = cache_ref_list(&c, &refs, &nr)) < 0))
		err_set(e, r, "image cache %s: %s", c.root, strerror(-r));
	if (r == 0 && ni && !(*out = calloc(ni, sizeof(**out))))
		r = err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; r == 0 && i < ni; i++)
		fill_entry(&imgs[i], refs, nr, &(*out)[i]);
	if (r == 0 && ni) {
		*n = ni;
		qsort(*out, ni, sizeof(**out), by_use);
	}
	free(imgs);
	free(refs);
	return r;
}

/* ---- remove ---- */

/* Removes one image directory and its refs, unless a member disk backs onto it. */
static int remove_image(const struct cache *c, const char *digest, const char *what,
			uint64_t *freed, struct err *e)
{
	char lock[80], dir[PATH_MAX], tmp[PATH_MAX], disk[PATH_MAX] = "";
	snprintf(lock, sizeof(lock), "img-%s", digest + 7);
	cache_image_dir(c, digest, dir, sizeof(dir));
	int fd = cache_lock(c, lock, LOCK_EX | LOCK_NB, NULL, NULL, what, e);
	if (fd == -EWOULDBLOCK)
		return err_set(e, -EBUSY, "image %s: a member disk is being created on it", what);
	if (fd < 0)
		return fd;
	int live = live_disks(dir, true, disk, sizeof(disk), NULL), r = 0;
	if (live > 0)
		r = err_set(e, -EBUSY, "image %s is the base of %d member disk(s), e.g. %s; remove "
			    "those members first", what, live, disk);
	uint64_t size = r == 0 ? dir_usage(dir) : 0;
	if (r == 0 && (r = cache_tmpdir(c, lock, tmp, sizeof(tmp), e)) == 0 &&
	    rename(dir, tmp) < 0 && errno != ENOENT)
		r = err_set(e, -errno, "remove %s: %s", dir, strerror(errno));
	close(fd);
	if (r < 0)
		return r;
	rm_rf(tmp);
	struct image_ref *refs;
	size_t n;
	if (cache_ref_list(c, &refs, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			if (!strcmp(refs[i].digest, digest))
				cache_ref_remove(c, refs[i].key);
		free(refs);
	}
	if (freed)
		*freed += size;
	return 0;
}

static bool hex_prefix(const char *s)
{
	size_t n = strlen(s);
	if (n < 8 || n > 64)
		return false;
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s) || isupper((unsigned char)*s))
			return false;
	return true;
}

/* The one image whose digest starts with what ("sha256:" optional). */
static int match_digest(const struct cache *c, const char *what, char digest[DIGEST_MAX],
			struct err *e)
{
	const char *hex = strncmp(what, "sha256:", 7) == 0 ? what + 7 : what;
	if (!hex_prefix(hex))
		return -ENOENT;
	struct cached *imgs;
	size_t n, hits = 0;
	if (scan_images(c, &imgs, &n) < 0)
		return -ENOENT;
	for (size_t i = 0; i < n; i++)
		if (!strncmp(imgs[i].digest + 7, hex, strlen(hex)) && hits++ == 0)
			snprintf(digest, DIGEST_MAX, "%s", imgs[i].digest);
	free(imgs);
	if (hits > 1)
		return err_set(e, -EINVAL, "digest prefix %s matches %zu images; give more of it",
			       hex, hits);
	return hits ? 0 : -ENOENT;
}

/* By name (or source): the refs named so; their images go when no other
 * name keeps them. */
static int remove_named(const struct cache *c, const char *what, struct err *e)
{
	struct image_ref *refs;
	size_t n, hits = 0;
	int r = cache_ref_list(c, &refs, &n);
	if (r < 0)
		return err_set(e, r, "image cache: %s", strerror(-r));
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (strcmp(refs[i].name, what) != 0 && strcmp(refs[i].source, what) != 0)
			continue;
		hits++;
		bool shared = false;
		for (size_t j = 0; j < n; j++)
			shared = shared || (j != i && !strcmp(refs[j].digest, refs[i].digest) &&
					    strcmp(refs[j].name, what) != 0 && strcmp(refs[j].source, what) != 0);
		r = shared ? cache_ref_remove(c, refs[i].key)
			   : remove_image(c, refs[i].digest, what, NULL, e);
		if (r == -ENOENT)
			r = 0;
	}
	free(refs);
	if (r == 0 && hits == 0)
		return err_set(e, -ENOENT, "no cached image %s (fleetbox image ls)", what);
	return r;
}

int image_remove(const char *what, struct err *e)
{
	struct cache c;
	char digest[DIGEST_MAX];
	int r = cache_open(&c, e);
	if (r < 0)
		return r;
	if (!what || !*what)
		return err_set(e, -EINVAL, "image rm: give a NAME or DIGEST");
	r = match_digest(&c, what, digest, e);
	if (r == 0)
		return remove_image(&c, digest, what, NULL, e);
	if (r != -ENOENT)
		return r;
	return remove_named(&c, what, e);
}

/* ---- prune ---- */

/* tmp/<lock>.<pid>.<n>: the lock name, or "" when it is not ours. */
static void tmp_lock_name(const char *entry, char *lock, size_t len)
{
	lock[0] = '\0';
	const char *b = strrchr(entry, '.');
	if (!b || b == entry)
		return;
	const char *a = b - 1;
	while (a > entry && *a != '.')
		a--;
	if (a == entry || (size_t)(a - entry) >= len)
		return;
	memcpy(lock, entry, (size_t)(a - entry));
	lock[a - entry] = '\0';
}

/* Temporaries whose writer is gone (its lock is free). */
static int sweep_tmp(const struct cache *c)
{
	char dir[PATH_MAX];
	if (cache_path(c, dir, sizeof(dir), "tmp") < 0)
		return 0;
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char lock[REF_KEY_MAX], p[PATH_MAX];
		tmp_lock_name(de->d_name, lock, sizeof(lock));
		if (!lock[0] || snprintf(p, sizeof(p), "%s/%s", dir, de->d_name) >= (int)sizeof(p))
			continue;
		int fd = cache_lock(c, lock, LOCK_EX | LOCK_NB, NULL, NULL, "", NULL);
		if (fd < 0)
			continue; /* its writer is alive */
		if (rm_rf(p) == 0)
			n++;
		close(fd);
	}
	if (d)
		closedir(d);
	return n;
}

/* Refs whose image is gone. */
static int sweep_refs(const struct cache *c)
{
	struct image_ref *refs;
	size_t n;
	int k = 0;
	if (cache_ref_list(c, &refs, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char dir[PATH_MAX];
		if (cache_image_dir(c, refs[i].digest, dir, sizeof(dir)) == 0 && path_exists(dir) <= 0 &&
		    cache_ref_remove(c, refs[i].key) == 0)
			k++;
	}
	free(refs);
	return k;
}

static void prune_one(const struct cache *c, const struct cached *ci, time_t cutoff,
		      struct image_prune_report *rep)
{
	char lock[80];
	snprintf(lock, sizeof(lock), "img-%s", ci->digest + 7);
	int fd = cache_lock(c, lock, LOCK_EX | LOCK_NB, NULL, NULL, "", NULL);
	if (fd < 0) {
		rep->kept_in_use++; /* a disk is being created on it right now */
		return;
	}
	int live = live_disks(ci->dir, true, NULL, 0, &rep->debris);
	bool recent = cutoff && last_use(ci->dir) > cutoff;
	close(fd);
	if (live > 0)
		rep->kept_in_use++;
	else if (recent)
		rep->kept_recent++;
	else if (remove_image(c, ci->digest, ci->digest, &rep->freed, NULL) == 0)
		rep->removed++;
	else
		rep->kept_in_use++; /* a disk appeared in between */
}

int image_prune(int older_than_days, struct image_prune_report *rep, struct err *e)
{
	struct cache c;
	memset(rep, 0, sizeof(*rep));
	if (older_than_days < 0)
		return err_set(e, -EINVAL, "--older-than must be >= 0 days");
	int r = cache_open(&c, e);
	if (r < 0)
		return r;
	rep->debris += sweep_tmp(&c);
	struct cached *imgs;
	size_t n;
	if ((r = scan_images(&c, &imgs, &n)) < 0)
		return err_set(e, r, "image cache %s: %s", c.root, strerror(-r));
	time_t cutoff = older_than_days ? time(NULL) - (time_t)older_than_days * 86400 : 0;
	for (size_t i = 0; i < n; i++)
		prune_one(&c, &imgs[i], cutoff, rep);
	free(imgs);
	rep->debris += sweep_refs(&c);
	return 0;
}
