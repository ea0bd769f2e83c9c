/* image/minicache.c - the mini image in the cache.
 *
 * It is looked up by its recipe (ref "mini-<recipe>", the hash of our init
 * and sudo scripts and the builder's version): a fleetbox with another recipe
 * builds its own instead of booting a stale init, and the old image stays,
 * for the member disks made from it, until pruned. One builder at a time
 * (lock "mini"); concurrent `up`s wait for it and reuse the result. The
 * digest covers kernel and initrd (the cpio is reproducible: a rebuild from
 * the same packages lands on the same image); the disk is 1 MiB of zeros,
 * the member disk's backing file (init formats the member's own overlay on
 * first boot).
 *
 * A store from an older fleetbox with a current <store>/images/mini/ is
 * imported from there instead of built, so it needs no network. */
#include "client/image/int.h"

#include "util/err.h"
#include "util/fileio.h"
#include "util/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Kernel command line for the mini image (see the QEMU driver's notes for the
 * measurements behind each flag): serial console, quiet boot (every console
 * byte is an emulated UART write under TCG), no reboot loop on panic, skip
 * the legacy keyboard/mouse probe, trust the (virtual) CPU RNG. */
#define MINI_CMDLINE "console=ttyS0 quiet panic=-1 i8042.noaux i8042.nokbd i8042.nopnp " \
	"8250.nr_uarts=1 random.trust_cpu=on rdinit=/init"
/* Bump on every change to the image builder (mini.c) that the init and sudo
 * hashes do not cover: a cached mini of the old recipe is then rebuilt. */
#define MINI_RECIPE_VERSION "3"
#define MINI_DISK_LEN (1 << 20)

void mini_recipe_id(char out[65])
{
	char h1[65], h2[65], all[200];
	sha256_hex_prefix(mini_init_sh, mini_init_sh_len, 32, h1);
	sha256_hex_prefix(mini_sudo_sh, mini_sudo_sh_len, 32, h2);
	int n = snprintf(all, sizeof(all), "%s:%s:%s", MINI_RECIPE_VERSION, h1, h2);
	sha256_hex_prefix(all, (size_t)n, 32, out);
}

static void mini_key(char key[REF_KEY_MAX])
{
	char recipe[65];
	mini_recipe_id(recipe);
	snprintf(key, REF_KEY_MAX, "mini-%.16s", recipe);
}

/* Copies src to dst; sha receives its sha256. */
static int copy_file(const char *src, const char *dst, char sha[65], struct err *e)
{
	int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		return err_set(e, -errno, "%s: %s", src, strerror(errno));
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	int r = out < 0 ? err_set(e, -errno, "create %s: %s", dst, strerror(errno))
			: hash_copy(in, out, sha, NULL, NULL, NULL, e);
	close(in);
	if (out >= 0)
		close(out);
	return r;
}

/* A current images/mini/ of an older store (its manifest names our recipe). */
static int legacy_mini(const char *store, const char *tmp, struct mini_meta *m, struct err *e)
{
	char dir[PATH_MAX], p[PATH_MAX + 16], q[PATH_MAX + 16], want[65], sha[65];
	if (!store || snprintf(dir, sizeof(dir), "%s/images/mini", store) >= (int)sizeof(dir))
		return -ENOENT;
	snprintf(p, sizeof(p), "%s/manifest.json", dir);
	json_t *j = json_load_file(p, 0, NULL);
	const char *have = json_string_value(json_object_get(j, "recipe"));
	mini_recipe_id(want);
	int r = have && !strcmp(have, want) ? 0 : -ENOENT;
	snprintf(m->origin, sizeof(m->origin), "%s",
		 r == 0 ? json_string_value(json_object_get(j, "kernel_origin")) ?: "" : "");
	snprintf(m->kver, sizeof(m->kver), "%s",
		 r == 0 ? json_string_value(json_object_get(j, "kernel_release")) ?: "" : "");
	json_decref(j);
	static const char *const files[] = { "vmlinux", "initrd" };
	for (size_t i = 0; r == 0 && i < 2; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
		snprintf(q, sizeof(q), "%s/%s", tmp, files[i]);
		r = copy_file(p, q, sha, e);
	}
	for (size_t i = 0; r < 0 && i < 2; i++) {
		snprintf(q, sizeof(q), "%s/%s", tmp, files[i]);
		unlink(q);
	}
	return r;
}

static int hash_file(const char *dir, const char *name, char sha[65], struct err *e)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return err_set(e, -errno, "%s: %s", p, strerror(errno));
	int r = hash_copy(fd, -1, sha, NULL, NULL, NULL, e);
	close(fd);
	return r;
}

/* The zero disk, and the digest over kernel and initrd. */
static int mini_finish_files(const char *tmp, char digest[DIGEST_MAX], struct err *e)
{
	char p[PATH_MAX], ks[65], is[65], all[200], h[65];
	snprintf(p, sizeof(p), "%s/disk", tmp);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0 || ftruncate(fd, MINI_DISK_LEN) < 0 || fsync(fd) < 0) {
		int r = err_set(e, -errno, "create %s: %s", p, strerror(errno));
		if (fd >= 0)
			close(fd);
		return r;
	}
	close(fd);
	int r = hash_file(tmp, "vmlinux", ks, e);
	if (r == 0)
		r = hash_file(tmp, "initrd", is, e);
	if (r < 0)
		return r;
	int n = snprintf(all, sizeof(all), "mini\nkernel %s\ninitrd %s\n", ks, is);
	sha256_hex_prefix(all, (size_t)n, 32, h);
	snprintf(digest, DIGEST_MAX, "sha256:%s", h);
	return 0;
}

static int mini_meta_write(const struct cache *c, const char *tmp, const char *digest,
			   const struct mini_meta *m, struct err *e)
{
	char recipe[65];
	mini_recipe_id(recipe);
	json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:I}",
			      "version", 1, "digest", digest, "kind", "mini", "disk", "disk",
			      "format", "raw", "virtual_size", (json_int_t)MINI_DISK_LEN,
			      "kernel", "vmlinux", "initrd", "initrd", "cmdline", MINI_CMDLINE,
			      "recipe", recipe, "kernel_origin", m->origin, "kernel_release", m->kver,
			      "created_at", (json_int_t)time(NULL));
	return cache_image_finish(c, tmp, j, e);
}

static int mini_publish(const struct cache *c, const char *tmp, const struct mini_meta *m,
			struct image_info *out, struct err *e)
{
	struct image_ref ref = { .created_at = time(NULL) };
	int r = mini_finish_files(tmp, ref.digest, e);
	if (r == 0)
		r = mini_meta_write(c, tmp, ref.digest, m, e);
	if (r == 0)
		r = cache_publish(c, tmp, ref.digest, e);
	if (r < 0)
		return r;
	mini_key(ref.key);
	snprintf(ref.name, sizeof(ref.name), "mini");
	snprintf(ref.kind, sizeof(ref.kind), "mini");
	snprintf(ref.source, sizeof(ref.source), "built from Debian packages (%s, kernel %s)",
		 m->origin, m->kver);
	if ((r = cache_ref_write(c, &ref, e)) < 0)
		return r;
	return cache_image_load(c, ref.digest, "mini", out, e);
}

/* Another recipe's mini in the cache: this one is a rebuild. */
static bool other_mini(const struct cache *c)
{
	struct image_ref *refs;
	size_t n;
	bool any = false;
	if (cache_ref_list(c, &refs, &n) < 0)
		return false;
	for (size_t i = 0; i < n; i++)
		any = any || !strcmp(refs[i].kind, "mini");
	free(refs);
	return any;
}

static int mini_fill(const struct cache *c, const char *store, bool force, const char *tmp,
		     image_progress_fn progress, void *data, struct mini_meta *m, struct err *e)
{
	struct err le = { 0 };
	if (!force && legacy_mini(store, tmp, m, &le) == 0) {
		image_say(progress, data, "mini image: imported from %s/images/mini", store);
		return 0;
	}
	image_say(progress, data, "%s", other_mini(c) && !force
		  ? "rebuilding the mini image (built by another fleetbox version)"
		  : "building the mini image (first use; takes a few seconds)");
	int r = mini_build_into(tmp, progress, data, m, e);
	return r < 0 ? err_prefix(e, "build mini image: ") : 0;
}

static int mini_make(const struct cache *c, const char *store, bool force,
		     image_progress_fn progress, void *data, struct image_info *out,
		     struct err *e)
{
	char key[REF_KEY_MAX], tmp[PATH_MAX];
	mini_key(key);
	int fd = cache_lock(c, "mini", LOCK_EX, progress, data, "the mini image", e);
	if (fd < 0)
		return fd;
	int r = 0;
	if (!force && cache_ref_load(c, key, out, e) == 0)
		goto out; /* another process just built it */
	if ((r = cache_tmpdir(c, "mini", tmp, sizeof(tmp), e)) < 0)
		goto out;
	struct mini_meta m = { "", "" };
	r = mini_fill(c, store, force, tmp, progress, data, &m, e);
	if (r == 0)
		r = mini_publish(c, tmp, &m, out, e);
	if (r < 0)
		rm_rf(tmp);
	else
		image_say(progress, data, "mini image ready");
out:
	close(fd);
	return r;
}

int mini_resolve(const struct cache *c, const char *store, image_progress_fn progress,
		 void *data, struct image_info *out, struct err *e)
{
	char key[REF_KEY_MAX];
	mini_key(key);
	if (cache_ref_load(c, key, out, e) == 0)
		return 0;
	return mini_make(c, store, false, progress, data, out, e);
}

int image_mini_build(const char *root, bool force, image_progress_fn progress, void *data,
		     struct err *e)
{
	struct cache c;
	struct image_info img;
	int r = cache_open(&c, e);
	if (r < 0)
		return r;
	return force ? mini_make(&c, root, true, progress, data, &img, e)
		     : mini_resolve(&c, root, progress, data, &img, e);
}
