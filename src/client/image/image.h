/* image.h - base images, the per-user image cache, and per-member disks.
 *
 * Every image lives in one cache per user (wire_cache_root(): $FLEETBOX_CACHE,
 * else $XDG_CACHE_HOME/fleetbox, else ~/.cache/fleetbox; under sudo the
 * invoking user's, with files owned by that user), shared by all of that
 * user's stores: downloads, local images (copied in once), built images and
 * the boot files read out of each, content-addressed by digest and written
 * under flock()s, so concurrent `up`s of many stores never build or download
 * twice. Everything the VMM opens for an image (base disk, kernel, initrd)
 * lies inside the cache.
 *
 * "mini" is the embedded default image: built locally from Debian packages
 * (kernel from the Debian cloud kernel package or the host kernel, an
 * initramfs with busybox, dropbear, an sftp server and our init). Other
 * images are catalog aliases, URLs, local paths, or names of images built
 * into the cache (`fleetbox image build`). */
#pragma once
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct err;

struct image_info {
	char name[64];            /* "mini", alias, name, or file name */
	char digest[72];          /* "sha256:<hex>": the cached image's identity */
	char dir[PATH_MAX];       /* its directory in the cache */
	char kernel[PATH_MAX];    /* direct-boot kernel */
	char initrd[PATH_MAX];    /* may be "" */
	char cmdline[512];        /* kernel command line for this image */
	char base[PATH_MAX];      /* base disk image (never modified) */
	char base_format[8];      /* "qcow2" or "raw" */
};

typedef void (*image_progress_fn)(void *data, const char *line);

/* Resolves (building, downloading or importing into the cache on first use)
 * "" / "mini" / catalog alias / URL / local path / cached name. root is the
 * store: images an older fleetbox kept in <root>/images/ are imported from
 * there instead of built or downloaded again. */
int image_resolve(const char *root, const char *image, image_progress_fn progress,
		  void *data, struct image_info *out, struct err *e);
/* For an existing member: the cached image its disk is an overlay of (so
 * the kernel always matches the disk's base, even after the image the
 * member was created from changed), else image_resolve(root, image). */
int image_resolve_member(const char *root, const char *image, const char *disk_path,
			 image_progress_fn progress, void *data, struct image_info *out,
			 struct err *e);
/* (Re)builds the mini image into the cache; force rebuilds even when current. */
int image_mini_build(const char *root, bool force, image_progress_fn progress, void *data,
		     struct err *e);
/* Creates disk_path as a qcow2 overlay on img->base sized size_mb (O(1)) and
 * records it in the cache, so the base is never pruned while the disk
 * exists. Fails with -EEXIST if disk_path exists: an existing disk is never
 * touched. */
int disk_create(const struct image_info *img, const char *disk_path, uint64_t size_mb,
		struct err *e);

/* ---- building into the cache ----
 * `fleetbox image build <what> [--name NAME]`: "mini", or "debian-<N>"
 * (N = 11, 12, 13; the Debian builder's image, cached as "debian-<N>-local"
 * unless name is given). */
int image_build(const char *root, const char *what, const char *name,
		image_progress_fn progress, void *data, struct image_info *out, struct err *e);
/* The Debian builder (image/debian.c): builds a GPT raw disk of a Debian
 * release (suite codename, e.g. "bookworm") from the Debian archive at
 * out_raw (a path in a build directory of its own, which it also uses for
 * scaffolding). Needs root, mmdebstrap, mke2fs and sfdisk; one progress
 * line per phase with the elapsed seconds. */
int image_debian_build(const char *release, const char *out_raw, image_progress_fn progress,
		       void *data, struct err *e);
/* Imports a built disk image (raw or qcow2) at path into the cache under
 * name ([a-z0-9][a-z0-9._-]*, resolvable as `--image NAME` afterwards), with
 * a human source line ("built from the Debian archive bookworm on
 * 2026-08-01"). The file is hashed (its digest is the image's), validated
 * (its kernel read out) and moved in when it lies on the cache's
 * filesystem, else copied; an invalid image is not kept. */
int image_import(const char *name, const char *source, const char *path,
		 image_progress_fn progress, void *data, struct image_info *out, struct err *e);

/* ---- managing the cache ---- */
struct image_entry {
	char names[256];          /* comma-separated names, "-" when none */
	char source[2048];
	char digest[72];
	uint64_t size;            /* bytes allocated on disk */
	time_t last_use;
	int disks;                /* member disks backed by it (existing ones) */
};
/* Every cached image, most recently used first. */
int image_list(struct image_entry **out, size_t *n, struct err *e);
/* Removes a cached image by name, digest ("sha256:<hex>") or digest prefix
 * (>= 8 hex). A name shared with nothing else takes the image with it.
 * Refuses (-EBUSY, naming them) while member disks are backed by it. */
int image_remove(const char *what, struct err *e);
struct image_prune_report {
	int removed, kept_in_use, kept_recent;
	uint64_t freed;           /* bytes */
	int debris;               /* temporaries of dead writers, stale records */
};
/* Removes images that no member disk is backed by and that were not used
 * for older_than_days (0: any unused image), plus debris. */
int image_prune(int older_than_days, struct image_prune_report *rep, struct err *e);
/* Removes dead writers' temporaries in the image cache (refs/, each
 * image's directory and disks/); returns how many. Never creates the cache. */
int image_cache_sweep(void);
