/* image/build.c - images built on this machine: `fleetbox image build`
 * dispatch, and the cache side of builders (image_import).
 *
 * A built image is published like any other (hashed, validated, its kernel
 * read out) and named by a ref "name-<name>", so `--image <name>` resolves
 * to it from every store. "debian-<N>-local" is built on first use, like
 * mini: the Debian archive is all it needs. One build per name at a time
 * (lock "name-<name>"); a concurrent `up` waits and reuses it. */
#include "client/image/int.h"
#include "client/image/remote.h"

#include "util/err.h"
#include "util/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

/* Bumped when image/debian.c changes what it builds: an on-demand
 * "debian-N-local" of an older recipe is rebuilt (its member disks keep
 * booting the base they were made on). 2: locales + en_US.UTF-8. */
#define DEBIAN_RECIPE 2

static const struct {
	const char *what, *release;
} debian_releases[] = {
	{ "debian-11", "bullseye" },
	{ "debian-12", "bookworm" },
	{ "debian-13", "trixie" },
};

static const char *debian_release(const char *what)
{
	for (size_t i = 0; i < sizeof(debian_releases) / sizeof(debian_releases[0]); i++)
		if (!strcmp(what, debian_releases[i].what))
			return debian_releases[i].release;
	return NULL;
}

static int check_name(const char *name, struct err *e)
{
	if (!image_name_valid(name))
		return err_set(e, -EINVAL, "image name \"%s\": want [a-z0-9][a-z0-9._-]* (at most 63)",
			       name ? name : "");
	if (!strcmp(name, "mini") || image_alias_find(name))
		return err_set(e, -EEXIST, "image name \"%s\" is taken by a built-in image", name);
	return 0;
}

/* Moves path to <tmp>/disk (or copies it across filesystems); hashes it. */
static int take_disk(const char *path, const char *tmp, char sha[65], struct err *e)
{
	char disk[PATH_MAX];
	snprintf(disk, sizeof(disk), "%s/disk", tmp);
	int in = -1, out = -1, r = 0;
	if (rename(path, disk) == 0) {
		in = open(disk, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	} else if (errno == EXDEV) {
		in = open(path, O_RDONLY | O_CLOEXEC);
		out = open(disk, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (out < 0)
			r = err_set(e, -errno, "create %s: %s", disk, strerror(errno));
	} else {
		return err_set(e, -errno, "%s: %s", path, strerror(errno));
	}
	if (r == 0 && in < 0)
		r = err_set(e, -errno, "%s: %s", path, strerror(errno));
	if (r == 0)
		r = hash_copy(in, out, sha, NULL, NULL, NULL, e);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return r;
}

/* With the name's lock held: tmp holds the image at path (or path is
 * elsewhere); the result is published as name. */
static int import_named(const struct cache *c, const char *key, const char *name,
			const char *source, const char *path, const char *tmp,
			image_progress_fn progress, void *data, struct image_info *out,
			struct err *e)
{
	struct import im = { .key = key, .name = name, .kind = "built", .source = source,
			     .progress = progress, .data = data };
	int r = take_disk(path, tmp, im.disk_sha, e);
	if (r < 0) {
		rm_rf(tmp);
		return err_prefix(e, "import %s: ", name);
	}
	return import_finish(c, tmp, &im, out, e);
}

int image_import(const char *name, const char *source, const char *path,
		 image_progress_fn progress, void *data, struct image_info *out, struct err *e)
{
	struct cache c;
	char key[REF_KEY_MAX], tmp[PATH_MAX];
	int r = check_name(name, e);
	if (r == 0)
		r = cache_open(&c, e);
	if (r < 0)
		return r;
	snprintf(key, sizeof(key), "name-%s", name);
	int fd = cache_lock(&c, key, LOCK_EX, progress, data, name, e);
	if (fd < 0)
		return fd;
	r = cache_tmpdir(&c, key, tmp, sizeof(tmp), e);
	if (r == 0)
		r = import_named(&c, key, name, source && *source ? source : path, path, tmp,
				 progress, data, out, e);
	close(fd);
	return r;
}

static int debian_locked(const struct cache *c, const char *key, const char *release,
			 const char *name, image_progress_fn progress, void *data,
			 struct image_info *out, struct err *e)
{
	char tmp[PATH_MAX], raw[PATH_MAX + 16], source[160], day[16];
	int r = cache_tmpdir(c, key, tmp, sizeof(tmp), e);
	if (r < 0)
		return r;
	snprintf(raw, sizeof(raw), "%s/build.raw", tmp);
	image_say(progress, data, "building %s from the Debian archive (%s)", name, release);
	time_t t0 = time(NULL);
	r = image_debian_build(release, raw, progress, data, e);
	if (r < 0) {
		rm_rf(tmp);
		return err_prefix(e, "build %s: ", name);
	}
	time_t now = time(NULL);
	struct tm tm;
	strftime(day, sizeof(day), "%Y-%m-%d", gmtime_r(&now, &tm));
	snprintf(source, sizeof(source), "built from the Debian archive %s on %s (recipe %d)",
		 release, day, DEBIAN_RECIPE);
	image_say(progress, data, "[%6.0fs] import     hash, validate, read the kernel out, publish",
		  difftime(now, t0));
	r = import_named(c, key, name, source, raw, tmp, progress, data, out, e);
	if (r == 0)
		image_say(progress, data, "[%6.0fs] done       %s is %s", difftime(time(NULL), t0),
			  name, out->digest);
	return r;
}

/* Whether the ref key (refs/<key>.json, whose source names the recipe)
 * was built by this DEBIAN_RECIPE. */
static bool recipe_current(const struct cache *c, const char *key)
{
	char ref[PATH_MAX], want[32];
	snprintf(want, sizeof(want), "(recipe %d)", DEBIAN_RECIPE);
	if (cache_path(c, ref, sizeof(ref), "refs/%s.json", key) < 0)
		return false;
	json_t *j = json_load_file(ref, 0, NULL);
	const char *src = json_string_value(json_object_get(j, "source"));
	bool ok = src && strstr(src, want);
	json_decref(j);
	return ok;
}

/* Builds name from Debian release (again, when force or of an older recipe). */
static int build_debian(const struct cache *c, const char *release, const char *name, bool force,
			image_progress_fn progress, void *data, struct image_info *out,
			struct err *e)
{
	char key[REF_KEY_MAX];
	snprintf(key, sizeof(key), "name-%s", name);
	int fd = cache_lock(c, key, LOCK_EX, progress, data, name, e);
	if (fd < 0)
		return fd;
	int r = 0;
	bool build = force || cache_ref_load(c, key, out, e) < 0; /* else: another process built it */
	if (!build && !recipe_current(c, key)) {
		image_say(progress, data, "%s was built by an older recipe: building it again", name);
		build = true;
	}
	if (build)
		r = debian_locked(c, key, release, name, progress, data, out, e);
	close(fd);
	return r;
}

/* "debian-12-local" -> "bookworm"; NULL for any other name. */
static const char *local_release(const char *name)
{
	size_t n = strlen(name);
	char what[64];
	if (n <= 6 || n - 6 >= sizeof(what) || strcmp(name + n - 6, "-local") != 0)
		return NULL;
	memcpy(what, name, n - 6);
	what[n - 6] = '\0';
	return debian_release(what);
}

bool build_outdated(const struct cache *c, const char *name)
{
	char key[REF_KEY_MAX];
	snprintf(key, sizeof(key), "name-%s", name);
	return local_release(name) && !recipe_current(c, key);
}

int build_on_demand(const struct cache *c, const char *root, const char *name,
		    image_progress_fn progress, void *data, struct image_info *out,
		    struct err *e)
{
	(void)root;
	const char *release = local_release(name);
	if (!release)
		return -ENOENT;
	return build_debian(c, release, name, false, progress, data, out, e);
}

int image_build(const char *root, const char *what, const char *name,
		image_progress_fn progress, void *data, struct image_info *out, struct err *e)
{
	struct cache c;
	char def[80];
	if (!strcmp(what, "mini")) {
		if (name && strcmp(name, "mini") != 0)
			return err_set(e, -EINVAL, "the mini image is always called mini");
		int r = image_mini_build(root, true, progress, data, e);
		return r < 0 ? r : image_resolve(root, "mini", NULL, NULL, out, e);
	}
	const char *release = debian_release(what);
	if (!release)
		return err_set(e, -EINVAL, "cannot build \"%s\": want mini, debian-11, debian-12 or "
			       "debian-13", what);
	snprintf(def, sizeof(def), "%s-local", what);
	int r = check_name(name ? name : def, e);
	if (r == 0)
		r = cache_open(&c, e);
	return r < 0 ? r : build_debian(&c, release, name ? name : def, true, progress, data, out, e);
}
