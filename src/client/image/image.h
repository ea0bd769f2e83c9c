/* image.h - base images and per-member disks.
 *
 * "mini" is the embedded default image: built locally from Debian packages
 * (kernel from the Debian cloud kernel package or the host kernel, an initramfs
 * with busybox, dropbear, an sftp server and our init) and cached in
 * <root>/images/mini/. Other images are aliases, URLs or local paths. */
#pragma once
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

struct err;

struct image_info {
	char name[64];            /* "mini", alias, or file name */
	char kernel[PATH_MAX];    /* direct-boot kernel */
	char initrd[PATH_MAX];    /* may be "" */
	char cmdline[512];        /* extra kernel command line for this image */
	char base[PATH_MAX];      /* base disk image (never modified) */
	char base_format[8];      /* "qcow2" or "raw" */
};

typedef void (*image_progress_fn)(void *data, const char *line);

/* Resolves (building or downloading on first use) image "" / "mini" / alias /
 * URL / local path. */
int image_resolve(const char *root, const char *image, image_progress_fn progress,
		  void *data, struct image_info *out, struct err *e);
/* (Re)builds the mini image; force rebuilds even when cached. */
int image_mini_build(const char *root, bool force, image_progress_fn progress, void *data,
		     struct err *e);
/* Creates disk_path as a qcow2 overlay on img->base sized size_mb (O(1)). Fails
 * with -EEXIST if disk_path exists: an existing disk is never touched. */
int disk_create(const struct image_info *img, const char *disk_path, uint64_t size_mb,
		struct err *e);
