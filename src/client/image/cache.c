/* image/cache.c - the per-user image cache: its root and owner, locks,
 * temporaries, published image directories and refs (layout in int.h).
 *
 * Ownership: under sudo the cache is the invoking user's. Directories we
 * create on the way to it are handed to SUDO_UID:SUDO_GID, and everything
 * created inside it to the owner of its root, so the user can read, list and
 * remove it without root.
 *
 * Crash safety: an image directory is built in tmp/ and renamed into
 * images/ complete; refs are written atomically after it. A tmp/ entry is
 * named after the lock its writer held, so whoever takes that lock next (or
 * prune, which tries every lock) removes a dead writer's leftovers. */
#include "client/image/int.h"

#include "rpc/wire.h"
#include "util/err.h"
#include "util/fileio.h"
#include "util/owner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const subdirs[] = { "images", "refs", "locks", "tmp" };

void image_say(image_progress_fn fn, void *data, const char *fmt, ...)
{
	if (!fn)
		return;
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fn(data, line);
}

/* mkdir -p that hands each directory it creates to the sudo user. */
static int mkdir_owned(char *path, mode_t mode)
{
	for (char *p = path + 1;; p++) {
		if (*p && *p != '/')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(path, mode) == 0) {
			int r = owner_claim(path);
			if (r < 0) {
				*p = c;
				return r;
			}
		} else if (errno != EEXIST) {
			*p = c;
			return -errno;
		}
		*p = c;
		if (!c)
			return 0;
	}
}

void cache_own(const struct cache *c, const char *path)
{
	if (c->chown && lchown(path, c->uid, c->gid) < 0)
		return; /* best effort: the file stays usable by root */
}

void cache_own_fd(const struct cache *c, int fd)
{
	if (c->chown && fchown(fd, c->uid, c->gid) < 0)
		return;
}

static void own_at(const struct cache *c, int dfd)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fchownat(dirfd(d), de->d_name, c->uid, c->gid, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0)
			own_at(c, sub);
	}
	closedir(d);
}

void cache_own_tree(const struct cache *c, const char *path)
{
	if (!c->chown)
		return;
	cache_own(c, path);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0)
		own_at(c, fd);
}

int cache_path(const struct cache *c, char *out, size_t len, const char *fmt, ...)
{
	int n = snprintf(out, len, "%s/", c->root);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(out + n, len - (size_t)n, fmt, ap);
	va_end(ap);
	return m < 0 || (size_t)m >= len - (size_t)n ? -ENAMETOOLONG : 0;
}

static int ensure_subdirs(struct cache *c, struct err *e)
{
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		char p[PATH_MAX];
		if (cache_path(c, p, sizeof(p), "%s", subdirs[i]) < 0)
			return err_set(e, -ENAMETOOLONG, "cache path too long: %s", c->root);
		if (mkdir(p, 0755) == 0)
			cache_own(c, p);
		else if (errno != EEXIST)
			return err_set(e, -errno, "mkdir %s: %s", p, strerror(errno));
	}
	return 0;
}

int cache_open(struct cache *c, struct err *e)
{
	memset(c, 0, sizeof(*c));
	char raw[PATH_MAX];
	int r = wire_cache_root(raw, sizeof(raw));
	if (r < 0)
		return err_set(e, r, "cannot determine the image cache (set FLEETBOX_CACHE)");
	if ((r = mkdir_owned(raw, 0755)) < 0)
		return err_set(e, r, "image cache %s: %s", raw, strerror(-r));
	/* Absolute: paths in image.json, overlays and boot requests must not
	 * depend on the cwd. */
	struct stat st;
	if (!realpath(raw, c->root) || stat(c->root, &st) < 0)
		return err_set(e, -errno, "image cache %s: %s", raw, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return err_set(e, -ENOTDIR, "image cache %s is not a directory", c->root);
	c->uid = st.st_uid;
	c->gid = st.st_gid;
	c->chown = geteuid() == 0 && st.st_uid != 0;
	return ensure_subdirs(c, e);
}

int cache_lock(const struct cache *c, const char *name, int how, image_progress_fn progress,
	       void *data, const char *what, struct err *e)
{
	char p[PATH_MAX];
	if (cache_path(c, p, sizeof(p), "locks/%s.lock", name) < 0)
		return err_set(e, -ENAMETOOLONG, "lock name too long");
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return err_set(e, -errno, "open %s: %s", p, strerror(errno));
	cache_own_fd(c, fd);
	int op = how & ~LOCK_NB;
	if (flock(fd, op | LOCK_NB) == 0)
		return fd;
	int r = -errno;
	if (r == -EWOULDBLOCK && !(how & LOCK_NB)) {
		image_say(progress, data, "waiting for another fleetbox preparing %s", what);
		/* Blocking on purpose: the other build or download may take
		 * minutes; a crashed holder releases the lock with its last fd. */
		while ((r = flock(fd, op) < 0 ? -errno : 0) == -EINTR)
			;
		if (r == 0)
			return fd;
	}
	close(fd);
	if (r == -EWOULDBLOCK)
		return r;
	return err_set(e, r, "lock %s: %s", p, strerror(-r));
}

/* Removes tmp/<lock>.* (the caller holds <lock>, so they are debris). */
static void reclaim_tmp(const struct cache *c, const char *lock)
{
	char dir[PATH_MAX];
	if (cache_path(c, dir, sizeof(dir), "tmp") < 0)
		return;
	DIR *d = opendir(dir);
	size_t n = strlen(lock);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (strncmp(de->d_name, lock, n) != 0 || de->d_name[n] != '.')
			continue;
		char p[PATH_MAX];
		if (snprintf(p, sizeof(p), "%s/%s", dir, de->d_name) < (int)sizeof(p))
			rm_rf(p);
	}
	if (d)
		closedir(d);
}

int cache_tmpdir(const struct cache *c, const char *lock, char *out, size_t len,
		 struct err *e)
{
	static unsigned seq;
	reclaim_tmp(c, lock);
	if (cache_path(c, out, len, "tmp/%s.%d.%u", lock, (int)getpid(), seq++) < 0)
		return err_set(e, -ENAMETOOLONG, "cache path too long");
	if (mkdir(out, 0755) < 0)
		return err_set(e, -errno, "mkdir %s: %s", out, strerror(errno));
	cache_own(c, out);
	return 0;
}

int cache_write(const struct cache *c, const char *path, const char *text, struct err *e)
{
	int r = file_write_atomic(path, text, strlen(text), 0644);
	if (r < 0)
		return err_set(e, r, "write %s: %s", path, strerror(-r));
	cache_own(c, path);
	return 0;
}

bool digest_valid(const char *d)
{
	if (!d || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 7 + 64)
		return false;
	for (const char *p = d + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

int cache_image_dir(const struct cache *c, const char *digest, char *out, size_t len)
{
	if (!digest_valid(digest))
		return -EINVAL;
	/* '-', not ':': QEMU would read "sha256:" in a backing path as a protocol. */
	return cache_path(c, out, len, "images/sha256-%s", digest + 7);
}

int cache_publish(const struct cache *c, const char *tmp, const char *digest, struct err *e)
{
	char dst[PATH_MAX];
	if (cache_image_dir(c, digest, dst, sizeof(dst)) < 0)
		return err_set(e, -EINVAL, "bad digest %s", digest);
	cache_own_tree(c, tmp);
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE) == 0) {
		fsync_parent(dst);
		return 0;
	}
	int r = -errno;
	if (r == -EINVAL && path_exists(dst) <= 0 && rename(tmp, dst) == 0)
		return fsync_parent(dst), 0; /* no RENAME_NOREPLACE on this filesystem */
	if (r == -EEXIST || r == -ENOTEMPTY || path_exists(dst) > 0) {
		rm_rf(tmp); /* the same content is already there: keep that */
		return 0;
	}
	return err_set(e, r, "rename %s: %s", tmp, strerror(-r));
}

void cache_image_touch(const struct cache *c, const char *dir)
{
	char p[PATH_MAX];
	if (snprintf(p, sizeof(p), "%s/used", dir) >= (int)sizeof(p))
		return;
	if (utimensat(AT_FDCWD, p, NULL, 0) == 0 || errno != ENOENT)
		return;
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd >= 0) {
		cache_own_fd(c, fd);
		close(fd);
	}
}

int cache_image_finish(const struct cache *c, const char *tmp, json_t *meta, struct err *e)
{
	char p[PATH_MAX];
	char *s = meta ? json_dumps(meta, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(meta);
	if (!s)
		return err_set(e, -ENOMEM, "out of memory");
	snprintf(p, sizeof(p), "%s/image.json", tmp);
	int r = cache_write(c, p, s, e);
	free(s);
	snprintf(p, sizeof(p), "%s/disks", tmp);
	if (r == 0 && mkdir(p, 0755) < 0)
		r = err_set(e, -errno, "mkdir %s: %s", p, strerror(errno));
	if (r == 0)
		cache_image_touch(c, tmp);
	return r;
}

/* A file name recorded in image.json: plain, inside the directory. */
static const char *plain_name(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	if (!s || strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, ".."))
		return NULL;
	return s;
}

static int dir_file(char *out, size_t len, const char *dir, const char *name)
{
	if (!name || !*name) {
		out[0] = '\0';
		return 0;
	}
	return snprintf(out, len, "%s/%s", dir, name) < (int)len ? 0 : -ENAMETOOLONG;
}

static int fill_from_json(json_t *j, const char *dir, struct image_info *out)
{
	const char *kernel = plain_name(j, "kernel"), *initrd = plain_name(j, "initrd");
	const char *disk = plain_name(j, "disk"), *fmt = json_string_value(json_object_get(j, "format"));
	const char *cmd = json_string_value(json_object_get(j, "cmdline"));
	if (!kernel || !*kernel || !disk || !*disk || !cmd || !fmt ||
	    (strcmp(fmt, "raw") != 0 && strcmp(fmt, "qcow2") != 0))
		return -EINVAL;
	if (json_object_get(j, "initrd") && !initrd)
		return -EINVAL;
	snprintf(out->base_format, sizeof(out->base_format), "%s", fmt);
	if (snprintf(out->cmdline, sizeof(out->cmdline), "%s", cmd) >= (int)sizeof(out->cmdline) ||
	    snprintf(out->dir, sizeof(out->dir), "%s", dir) >= (int)sizeof(out->dir) ||
	    dir_file(out->kernel, sizeof(out->kernel), dir, kernel) < 0 ||
	    dir_file(out->initrd, sizeof(out->initrd), dir, initrd) < 0 ||
	    dir_file(out->base, sizeof(out->base), dir, disk) < 0)
		return -ENAMETOOLONG;
	return 0;
}

int cache_image_load(const struct cache *c, const char *digest, const char *name,
		     struct image_info *out, struct err *e)
{
	char dir[PATH_MAX], meta[PATH_MAX];
	if (cache_image_dir(c, digest, dir, sizeof(dir)) < 0 ||
	    snprintf(meta, sizeof(meta), "%s/image.json", dir) >= (int)sizeof(meta))
		return err_set(e, -EINVAL, "bad digest %s", digest);
	json_t *j = json_load_file(meta, 0, NULL);
	if (!j)
		return path_exists(dir) > 0 ? err_set(e, -EINVAL, "%s: unreadable", meta) : -ENOENT;
	memset(out, 0, sizeof(*out));
	int r = fill_from_json(j, dir, out);
	json_decref(j);
	if (r < 0)
		return err_set(e, r, "%s: malformed", meta);
	if (access(out->kernel, R_OK) != 0 || access(out->base, R_OK) != 0 ||
	    (out->initrd[0] && access(out->initrd, R_OK) != 0))
		return -ENOENT;  /* being removed: treat as absent */
	snprintf(out->digest, sizeof(out->digest), "%s", digest);
	snprintf(out->name, sizeof(out->name), "%s", name);
	cache_image_touch(c, dir);
	return 0;
}

/* ---- refs ---- */

static bool key_valid(const char *k)
{
	size_t n = strlen(k);
	if (n == 0 || n >= REF_KEY_MAX || k[0] == '.')
		return false;
	for (; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '-' ||
		      *k == '.' || *k == '_'))
			return false;
	return true;
}

static int ref_path(const struct cache *c, const char *key, char *out, size_t len)
{
	if (!key_valid(key))
		return -EINVAL;
	return cache_path(c, out, len, "refs/%s.json", key);
}

static int copy_str(char *dst, size_t len, json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	if (!s || strlen(s) >= len)
		return -EINVAL;
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

int cache_ref_read(const struct cache *c, const char *key, struct image_ref *out)
{
	char p[PATH_MAX];
	if (ref_path(c, key, p, sizeof(p)) < 0)
		return -EINVAL;
	json_t *j = json_load_file(p, 0, NULL);
	if (!j)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	snprintf(out->key, sizeof(out->key), "%s", key);
	int r = copy_str(out->name, sizeof(out->name), j, "name") < 0 ||
			copy_str(out->kind, sizeof(out->kind), j, "kind") < 0 ||
			copy_str(out->source, sizeof(out->source), j, "source") < 0 ||
			copy_str(out->digest, sizeof(out->digest), j, "digest") < 0 ||
			!digest_valid(out->digest) ? -EINVAL : 0;
	out->created_at = json_integer_value(json_object_get(j, "created_at"));
	json_decref(j);
	return r;
}

int cache_ref_write(const struct cache *c, const struct image_ref *r, struct err *e)
{
	char p[PATH_MAX];
	if (ref_path(c, r->key, p, sizeof(p)) < 0)
		return err_set(e, -EINVAL, "bad image ref \"%s\"", r->key);
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:I}", "name", r->name, "kind", r->kind,
			      "source", r->source, "digest", r->digest, "created_at",
			      (json_int_t)r->created_at);
	char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	if (!s)
		return err_set(e, -ENOMEM, "out of memory");
	int rc = cache_write(c, p, s, e);
	free(s);
	return rc;
}

int cache_ref_remove(const struct cache *c, const char *key)
{
	char p[PATH_MAX];
	if (ref_path(c, key, p, sizeof(p)) < 0)
		return -EINVAL;
	return unlink(p) < 0 && errno != ENOENT ? -errno : 0;
}

static int push_ref(struct image_ref **v, size_t *n, size_t *cap, const struct image_ref *r)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct image_ref *nv = realloc(*v, nc * sizeof(**v));
		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = *r;
	return 0;
}

int cache_ref_list(const struct cache *c, struct image_ref **out, size_t *n)
{
	char dir[PATH_MAX];
	*out = NULL;
	*n = 0;
	if (cache_path(c, dir, sizeof(dir), "refs") < 0)
		return -ENAMETOOLONG;
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	size_t cap = 0;
	int r = 0;
	struct dirent *de;
	while (r == 0 && (de = readdir(d))) {
		size_t l = strlen(de->d_name);
		char key[REF_KEY_MAX];
		struct image_ref ref;
		if (l <= 5 || l - 5 >= sizeof(key) || strcmp(de->d_name + l - 5, ".json") != 0)
			continue;
		memcpy(key, de->d_name, l - 5);
		key[l - 5] = '\0';
		if (cache_ref_read(c, key, &ref) == 0)
			r = push_ref(out, n, &cap, &ref);
	}
	closedir(d);
	return r;
}

int cache_ref_load(const struct cache *c, const char *key, struct image_info *out,
		   struct err *e)
{
	struct image_ref ref;
	if (cache_ref_read(c, key, &ref) < 0)
		return -ENOENT;
	return cache_image_load(c, ref.digest, ref.name, out, e);
}

/* Removes the atomic-write temporaries of dead writers in refs/ and in
 * every image's directory and disks/ (a client killed while recording a
 * member disk leaves disks/<h>.tmp.<pid>.<start>.*). Live writers' are
 * kept: file_tmp_sweep checks the pid and start time in the name. */
static int sweep_image_dirs(const struct cache *c)
{
	char p[PATH_MAX];
	if (cache_path(c, p, sizeof(p), "images") < 0)
		return 0;
	DIR *d = opendir(p);
	if (!d)
		return 0;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "sha256-", 7) != 0)
			continue;
		char sub[PATH_MAX];
		if (cache_path(c, sub, sizeof(sub), "images/%s", de->d_name) < 0)
			continue;
		int r = file_tmp_sweep(sub, NULL);
		n += r > 0 ? r : 0;
		if (cache_path(c, sub, sizeof(sub), "images/%s/disks", de->d_name) < 0)
			continue;
		r = file_tmp_sweep(sub, NULL);
		n += r > 0 ? r : 0;
	}
	closedir(d);
	return n;
}

int image_cache_sweep(void)
{
	struct cache c;
	char refs[PATH_MAX], raw[PATH_MAX];
	struct stat st;
	/* no cache yet: nothing to sweep, and prune must not create one */
	if (wire_cache_root(raw, sizeof(raw)) < 0 || stat(raw, &st) < 0 || cache_open(&c, NULL) < 0)
		return 0;
	int n = sweep_image_dirs(&c);
	if (cache_path(&c, refs, sizeof(refs), "refs") == 0) {
		int r = file_tmp_sweep(refs, NULL);
		n += r > 0 ? r : 0;
	}
	return n;
}
