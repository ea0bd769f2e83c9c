/* image/remote.h - catalog aliases, downloaded images, and boot files read
 * from a disk image's own filesystem.
 *
 * Downloads land in <root>/images/<key>-<basename>, where key is a prefix of
 * the SHA-256 of the canonical source ("<url>" or "<url>#<algo>=<hex>" when a
 * digest is pinned), so a file under its final name was always completely
 * written and, when pinned, verified. Extracted boot files sit next to the
 * image they came from: <image>.vmlinuz, <image>.initrd, and <image>.bootinfo,
 * which is written last and marks the set complete. */
#pragma once
#include "client/image/image.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;

struct image_alias {
	const char *name;    /* "debian-12" */
	const char *url;     /* dated snapshot */
	const char *digest;  /* "sha256:<hex>" / "sha512:<hex>", or "" = not pinned yet */
};

/* The catalog, terminated by an entry with name == NULL. */
extern const struct image_alias image_aliases[];

/* Catalog entry for name, or NULL. */
const struct image_alias *image_alias_find(const char *name);
/* True for a catalog alias or an http://, https:// or file:// URL. */
bool image_is_remote(const char *image);

/* A parsed source: URL without fragment, optional pinned digest, the label
 * used in progress lines, and the cache file name under images/. */
struct image_source {
	char url[2048];
	char algo[8];        /* "sha256", "sha512" or "" */
	char digest[129];    /* lowercase hex or "" */
	char label[64];      /* alias name or URL basename */
	char file[160];      /* "<16 hex>-<basename>" */
};
/* Parses an alias or a URL, optionally pinned with a "#sha256=<hex>" or
 * "#sha512=<hex>" fragment (never sent to the server). An alias without a
 * pinned digest is refused (-ENOKEY). */
int image_source_parse(const char *image, struct image_source *out, struct err *e);
/* The same for one catalog entry (exposed so the refusal is testable). */
int image_source_from_alias(const struct image_alias *a, struct image_source *out,
			    struct err *e);

/* Resolves an alias or URL to a verified local file path (downloading once).
 * Two processes fetching the same image serialise on <file>.lock. */
int image_fetch(const char *root, const char *image, image_progress_fn progress, void *data,
		char *path_out, size_t len, struct err *e);

/* A partition worth inspecting (Linux data types; ESP, BIOS boot, swap and
 * extended partitions are left out). num 0 = no table, whole disk. */
struct image_part {
	int num;          /* 1-based as the kernel numbers it (vdaN) */
	uint64_t start;   /* bytes */
	uint64_t size;    /* bytes; 0 = to the end of the disk */
};
/* Parses the MBR/GPT in the first len bytes of a disk (len >= 2048; GPT
 * entries must lie within). Returns the count, or -EINVAL / -ERANGE / -E2BIG. */
int image_part_table_parse(const void *head, size_t len, struct image_part *out, size_t max);

/* Extracts kernel/initrd from a local disk image (raw or qcow2) into
 * <path>.vmlinuz / <path>.initrd if missing; fills the root partition number
 * (0 = the whole disk is one filesystem). */
int image_extract_boot(const char *path, int *root_part, struct err *e);
/* "console=ttyS0 root=/dev/vda<N> rw" for a root partition from above. */
int image_boot_cmdline(int root_part, char *buf, size_t len);
