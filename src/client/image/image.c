/* image/image.c - resolving an image name to bootable files in the cache,
 * and member disks.
 *
 * "" and "mini" resolve to the embedded image (minicache.c); catalog aliases
 * and URLs are downloaded once (remote.c); a local path is copied in once
 * (import.c); any other name must be an image built into the cache
 * (build.c). Each resolves to a directory of the cache holding the base
 * disk, the kernel, the initrd and the command line recorded when the image
 * was validated, so the boot probe's result (root partition) is used on
 * every boot, not only the first.
 *
 * Member disks are qcow2 overlays on the cached base (O(1), thin); an
 * existing disk is never touched. Each is recorded in the base's disks/ under
 * a shared lock of the image before it is created, so prune (which takes
 * the lock exclusively) never removes a base a disk is being made on or
 * still backs onto. */
#include "client/image/image.h"
#include "client/image/int.h"
#include "client/image/remote.h"

#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"
#include "util/hash.h"
#include "util/owner.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static bool name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' ||
		      *s == '.' || *s == '_'))
			return false;
	return true;
}

bool image_name_valid(const char *name)
{
	return name && name_valid(name);
}

static int resolve_name(const struct cache *c, const char *root, const char *image,
			image_progress_fn progress, void *data, struct image_info *out,
			struct err *e)
{
	char key[REF_KEY_MAX];
	if (!name_valid(image))
		return -ENOENT;
	snprintf(key, sizeof(key), "name-%s", image);
	if (cache_ref_load(c, key, out, e) == 0 && !build_outdated(c, image))
		return 0;
	return build_on_demand(c, root, image, progress, data, out, e);
}

int image_resolve(const char *root, const char *image, image_progress_fn progress,
		  void *data, struct image_info *out, struct err *e)
{
	struct cache c;
	int r = cache_open(&c, e);
	if (r < 0)
		return r;
	if (!image || !*image || strcmp(image, "mini") == 0)
		return mini_resolve(&c, root, progress, data, out, e);
	if (image_is_remote(image))
		return remote_resolve(&c, root, image, progress, data, out, e);
	if (strchr(image, '/') || path_exists(image) > 0)
		return import_local(&c, image, progress, data, out, e);
	r = resolve_name(&c, root, image, progress, data, out, e);
	if (r != -ENOENT)
		return r;
	return err_set(e, -ENOENT, "image %s: not \"mini\", a catalog alias, a URL, an existing "
		       "file or an image in the cache (fleetbox image ls)", image);
}

/* The digest of the cached image a qcow2 overlay at disk_path backs onto. */
static int backing_digest(const struct cache *c, const char *disk_path, char digest[DIGEST_MAX])
{
	int fd = open(disk_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	struct qcow2_info q;
	int r = qcow2_inspect(fd, &q);
	close(fd);
	char prefix[PATH_MAX];
	if (r < 0 || !q.backing_len || cache_path(c, prefix, sizeof(prefix), "images/sha256-") < 0)
		return -ENOENT;
	size_t n = strlen(prefix);
	if (strncmp(q.backing, prefix, n) != 0 || strlen(q.backing) != n + 64 + 5 ||
	    strcmp(q.backing + n + 64, "/disk") != 0)
		return -ENOENT;
	snprintf(digest, DIGEST_MAX, "sha256:%.64s", q.backing + n);
	return digest_valid(digest) ? 0 : -ENOENT;
}

int image_resolve_member(const char *root, const char *image, const char *disk_path,
			 image_progress_fn progress, void *data, struct image_info *out,
			 struct err *e)
{
	struct cache c;
	char digest[DIGEST_MAX];
	if (disk_path && cache_open(&c, NULL) == 0 && backing_digest(&c, disk_path, digest) == 0) {
		const char *slash = image ? strrchr(image, '/') : NULL;
		const char *name = slash ? slash + 1 : image && *image ? image : "mini";
		struct err le = { 0 };
		if (cache_image_load(&c, digest, name, out, &le) == 0)
			return 0;
	}
	/* an older store's disk (backed by <store>/images/), or its base is gone */
	return image_resolve(root, image, progress, data, out, e);
}

/* ---- member disks ---- */

/* disks/<hash of the disk's path> in the image's directory. */
static int record_path(const struct image_info *img, const char *disk_abs, char *out, size_t len)
{
	char h[33];
	sha256_hex_prefix(disk_abs, strlen(disk_abs), 16, h);
	return snprintf(out, len, "%s/disks/%s", img->dir, h) < (int)len ? 0 : -ENAMETOOLONG;
}

/* Takes the image's lock shared and records the disk; returns the lock fd. */
static int disk_register(const struct image_info *img, const char *disk_abs, char *rec,
			 size_t len, struct err *e)
{
	struct cache c;
	char lock[80], meta[PATH_MAX], text[PATH_MAX + 2];
	int r = cache_open(&c, e);
	if (r < 0)
		return r;
	if (!digest_valid(img->digest) || record_path(img, disk_abs, rec, len) < 0)
		return err_set(e, -EINVAL, "image %s is not in the image cache", img->name);
	snprintf(lock, sizeof(lock), "img-%s", img->digest + 7);
	int fd = cache_lock(&c, lock, LOCK_SH, NULL, NULL, img->name, e);
	if (fd < 0)
		return fd;
	snprintf(meta, sizeof(meta), "%s/image.json", img->dir);
	snprintf(text, sizeof(text), "%s\n", disk_abs);
	if (path_exists(meta) <= 0)
		r = err_set(e, -ENOENT, "image %s was removed from the cache", img->name);
	else
		r = cache_write(&c, rec, text, e);
	if (r < 0) {
		close(fd);
		return r;
	}
	cache_image_touch(&c, img->dir);
	return fd;
}

static int overlay_create(const struct image_info *img, const char *disk_path, const char *tmp,
			  uint64_t size_mb, struct err *e)
{
	struct cmd c;
	cmd_init(&c, "qemu-img");
	cmd_add(&c, "create");
	cmd_add(&c, "-q");
	cmd_add(&c, "-f");
	cmd_add(&c, "qcow2");
	cmd_add(&c, "-F");
	cmd_add(&c, img->base_format);
	cmd_add(&c, "-b");
	cmd_add(&c, img->base);
	cmd_add(&c, tmp);
	cmd_addf(&c, "%lluM", (unsigned long long)size_mb);
	int r = cmd_run(&c, NULL, e);
	cmd_fini(&c);
	if (r == 0) {
		int tfd = open(tmp, O_RDONLY | O_CLOEXEC);
		if (tfd < 0 || fsync(tfd) < 0)
			r = err_set(e, -errno, "fsync %s: %s", tmp, strerror(errno));
		else if ((r = owner_claim_fd(tfd)) < 0) /* qemu-img created it: the store's user's */
			err_set(e, r, "chown %s: %s", tmp, strerror(-r));
		if (tfd >= 0)
			close(tfd);
	}
	if (r == 0 && rename(tmp, disk_path) < 0)
		r = err_set(e, -errno, "rename %s: %s", tmp, strerror(errno));
	return r;
}

int disk_create(const struct image_info *img, const char *disk_path, uint64_t size_mb,
		struct err *e)
{
	if (size_mb == 0)
		return err_set(e, -EINVAL, "disk size must be > 0");
	/* Reserve the name first: O_EXCL makes "never touch an existing disk"
	 * race-free; qemu-img then writes the overlay over our empty file. */
	int fd = open(disk_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		if (errno == EEXIST)
			return err_set(e, -EEXIST, "disk %s already exists", disk_path);
		return err_set(e, -errno, "create %s: %s", disk_path, strerror(errno));
	}
	int r = owner_claim_fd(fd);
	close(fd);
	char tmp[PATH_MAX] = "", abs[PATH_MAX], rec[PATH_MAX];
	int lock = -1;
	if (r < 0)
		err_set(e, r, "chown %s: %s", disk_path, strerror(-r));
	if (r == 0 && (file_tmp_name(disk_path, tmp, sizeof(tmp)) < 0 || !realpath(disk_path, abs)))
		r = err_set(e, -ENAMETOOLONG, "disk path %s: too long or unresolvable", disk_path);
	if (r == 0 && (lock = disk_register(img, abs, rec, sizeof(rec), e)) < 0)
		r = lock;
	if (r == 0) {
		unlink(tmp);
		r = overlay_create(img, disk_path, tmp, size_mb, e);
	}
	if (r < 0) {
		unlink(tmp);
		unlink(disk_path); /* our own empty placeholder */
		if (lock >= 0)
			unlink(rec);
	}
	if (lock >= 0)
		close(lock);
	if (r < 0)
		return err_prefix(e, "create disk %s: ", disk_path);
	fsync_parent(disk_path);
	return 0;
}
