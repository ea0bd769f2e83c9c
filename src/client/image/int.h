/* image/int.h - internals of the image module shared by the files in image/ (not a public
 * module API: the rest of the client calls only what image/image.h declares). */
#pragma once
#include "util/qcow2.h"
#include "client/image/image.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct err;
struct archive;

/* Embedded scripts (generated from src/client/mini/ by embedgen). */
extern const unsigned char mini_init_sh[];
extern const unsigned long mini_init_sh_len;
extern const unsigned char mini_sudo_sh[];
extern const unsigned long mini_sudo_sh_len;

/* ---- cache.c: the per-user image cache ----
 *
 * <cache>/images/sha256-<hex>/  one published image: disk, vmlinuz|vmlinux,
 *                               initrd, image.json, used (mtime = last use),
 *                               disks/ (member disks backed by it)
 * <cache>/refs/<key>.json       a name or source -> digest
 * <cache>/locks/<name>.lock     flock()s: one writer per source, per image
 * <cache>/tmp/<lock>.<pid>.<n>/ work in progress, owned by <lock>'s holder
 * An image directory appears by one rename of a complete directory. */
struct cache {
	char root[PATH_MAX];
	uid_t uid;       /* owner of the cache root, and of all we create in it */
	gid_t gid;
	bool chown;      /* we are root working in another user's cache */
};

#define DIGEST_MAX 72    /* "sha256:" + 64 hex + NUL */
#define REF_KEY_MAX 96

int cache_open(struct cache *c, struct err *e);
/* c->root + "/" + the formatted rest; -ENAMETOOLONG when it does not fit. */
int cache_path(const struct cache *c, char *out, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void cache_own(const struct cache *c, const char *path);
void cache_own_fd(const struct cache *c, int fd);
/* Every file and directory under path handed to the cache's owner. */
void cache_own_tree(const struct cache *c, const char *path);
/* flock on locks/<name>.lock (LOCK_SH or LOCK_EX, | LOCK_NB to try). When it
 * has to wait, says so through progress ("waiting for ... <what>"). Returns
 * the fd (close it to unlock), -EWOULDBLOCK with LOCK_NB. */
int cache_lock(const struct cache *c, const char *name, int how, image_progress_fn progress,
	       void *data, const char *what, struct err *e);
/* A fresh tmp/<lock>.<pid>.<n>/; leftovers of that lock's dead holders are
 * removed first (the caller holds the lock). */
int cache_tmpdir(const struct cache *c, const char *lock, char *out, size_t len,
		 struct err *e);
/* Atomic write, handed to the owner. */
int cache_write(const struct cache *c, const char *path, const char *text, struct err *e);

bool digest_valid(const char *digest);   /* "sha256:<64 lowercase hex>" */
/* images/sha256-<hex> for a digest. */
int cache_image_dir(const struct cache *c, const char *digest, char *out, size_t len);
/* Renames a complete tmp directory to the image's directory. When that
 * already exists (same content from another source or process), tmp is
 * removed and the existing one kept. */
int cache_publish(const struct cache *c, const char *tmp, const char *digest, struct err *e);
/* Fills out from a published image (its image.json) and records the use.
 * -ENOENT when it is not (or no longer) there. */
int cache_image_load(const struct cache *c, const char *digest, const char *name,
		     struct image_info *out, struct err *e);
/* Writes meta (consumed) as tmp/image.json, creates tmp/disks/ and the
 * last-use stamp: the last step before cache_publish. */
typedef struct json_t json_t;
int cache_image_finish(const struct cache *c, const char *tmp, json_t *meta, struct err *e);
/* Sets the last-use stamp of the image directory to now. */
void cache_image_touch(const struct cache *c, const char *dir);

struct image_ref {
	char key[REF_KEY_MAX];
	char name[64];
	char kind[8];          /* "mini", "alias", "url", "path", "built" */
	char source[2048];
	char digest[DIGEST_MAX];
	long long created_at;
};
/* refs/<key>.json; keys are [a-z0-9.-]. */
int cache_ref_read(const struct cache *c, const char *key, struct image_ref *out);
int cache_ref_write(const struct cache *c, const struct image_ref *r, struct err *e);
int cache_ref_remove(const struct cache *c, const char *key);
/* Every readable ref (caller frees *out). */
int cache_ref_list(const struct cache *c, struct image_ref **out, size_t *n);
/* Loads the image a ref points to (-ENOENT when either is missing). */
int cache_ref_load(const struct cache *c, const char *key, struct image_info *out,
		   struct err *e);

/* ---- import.c: validating and publishing an image ---- */

struct import {
	const char *key;         /* ref key (and the lock held while importing) */
	const char *name, *kind, *source;
	char disk_sha[65];       /* sha256 of <tmp>/disk */
	const char *kernel;      /* a kernel the user supplied, or NULL: read the image's */
	const char *initrd;      /* with kernel; NULL or "" = none */
	image_progress_fn progress;
	void *data;
};
/* <tmp>/disk is complete and hashed into im->disk_sha: validates it (qcow2
 * header, or the kernel read out of it), writes image.json, publishes the
 * directory, records the ref and fills out. On failure tmp is removed:
 * an image that fails validation is not kept. */
int import_finish(const struct cache *c, const char *tmp, struct import *im,
		  struct image_info *out, struct err *e);
/* Streaming digests: sha256 always (an image's address), and sha512 too when
 * algo2 is "sha512" (a pin); hex2 is left alone otherwise. */
struct evp_md_ctx_st;
struct hasher {
	struct evp_md_ctx_st *a, *b;
};
int hasher_init(struct hasher *h, const char *algo2);
int hasher_update(struct hasher *h, const void *p, size_t n);
int hasher_final(struct hasher *h, char sha256_hex[65], char hex2[129]);
void hasher_fini(struct hasher *h);
/* Copies src (holes stay holes) to dst_fd (-1: only hash), hashing sha256
 * and, when algo2 is "sha512", that too. */
int hash_copy(int src, int dst_fd, char sha256_hex[65], const char *algo2, char hex2[129],
	      uint64_t *size, struct err *e);
/* A local disk image (and a kernel beside it, if any) into the cache. */
int import_local(const struct cache *c, const char *path, image_progress_fn progress,
		 void *data, struct image_info *out, struct err *e);

/* ---- remote.c: catalog aliases and downloads (see remote.h) ---- */
int remote_resolve(const struct cache *c, const char *store, const char *image,
		   image_progress_fn progress, void *data, struct image_info *out,
		   struct err *e);

/* ---- mini.c: building the mini image ---- */
struct mini_meta {
	char origin[160];   /* "debian:linux-image-..." or "host:<release>" */
	char kver[128];
};
/* Writes vmlinux and initrd into the directory tmp. */
int mini_build_into(const char *tmp, image_progress_fn progress, void *data,
		    struct mini_meta *meta, struct err *e);
/* ---- minicache.c: the mini image in the cache ---- */
/* The mini image's recipe id (our init and sudo scripts, the builder version). */
void mini_recipe_id(char out[65]);
int mini_resolve(const struct cache *c, const char *store, image_progress_fn progress,
		 void *data, struct image_info *out, struct err *e);

/* ---- image.c / build.c ---- */
/* [a-z0-9][a-z0-9._-]*, at most 63: a name images are built or imported under. */
bool image_name_valid(const char *name);
/* Builds a missing "<what>-local" image (debian-N-local) on first use;
 * -ENOENT (no message) when name is not such a name. */
int build_on_demand(const struct cache *c, const char *root, const char *name,
		    image_progress_fn progress, void *data, struct image_info *out,
		    struct err *e);
/* Whether name is a debian-N-local that an older recipe of image/debian.c
 * built (resolving it then builds it again). */
bool build_outdated(const struct cache *c, const char *name);

/* ---- qcow2.c: the header fields we need (util/qcow2.h parses; fd helpers) ---- */
/* qcow2_parse on an open file, plus the backing file name. */
int qcow2_inspect(int fd, struct qcow2_info *out);
/* qcow2_inspect, and refuses what may not be a cached base (backing file,
 * external data file, encryption, corrupt flag) with a message about what. */
int qcow2_check_base(int fd, const char *what, struct qcow2_info *out, struct err *e);

/* ---- probe.c / extfs.c: the kernel inside a disk image ---- */
#define EXT_SB_LEN 1024
#define EXT_PATH_MAX 256
#define IMAGE_KERNEL_MAX (256ull << 20)
#define IMAGE_INITRD_MAX (1ull << 30)
struct probe_disk {
	const char *path;
	bool qcow2;
	uint64_t vsize;            /* qcow2: the virtual size from its header */
};
struct boot_probe {
	int root_part;             /* vdaN of the root; 0 = the whole disk */
	int kernel_part;           /* where the kernel was found */
	char root_uuid[40];        /* the root filesystem's UUID, "" if unknown */
	char kernel[EXT_PATH_MAX]; /* paths inside the image */
	char initrd[EXT_PATH_MAX]; /* "" = none */
	uint64_t kernel_size, initrd_size;
};
/* Finds the kernel (and initrd) and the root; with outdir, extracts them to
 * outdir/vmlinuz and outdir/initrd. In-process: use the isolated form for
 * anything that came from outside (the fuzzer calls this one). */
int probe_boot(const struct probe_disk *d, const char *outdir, struct boot_probe *out,
	       struct err *e);
/* probe_boot in a forked child running as uid:gid (when we are root), with a
 * time limit; a crash or hang of the child is an error, never ours. */
int probe_boot_isolated(const struct probe_disk *d, const char *outdir, uid_t uid, gid_t gid,
			struct boot_probe *out, struct err *e);

struct extfs;
/* Pre-checks an ext superblock (the 1024 bytes at offset 1024) against the
 * partition size before libext2fs allocates by it: 0, -EINVAL, -ERANGE. */
int ext_sb_check(const uint8_t sb[EXT_SB_LEN], uint64_t part_size);
bool ext_sb_magic(const uint8_t sb[EXT_SB_LEN]);
int extfs_open(const char *dev, uint64_t offset, struct extfs **out, struct err *e);
void extfs_close(struct extfs *x);
/* Fills kernel/initrd paths and sizes; false when there is no kernel. */
bool extfs_find_boot(struct extfs *x, struct boot_probe *b);
bool extfs_has_dir(struct extfs *x, const char *path);
/* Copies a regular file (symlinks followed) of 1..max bytes to a new file dst. */
int extfs_extract(struct extfs *x, const char *path, uint64_t max, const char *dst,
		  struct err *e);

/* ---- kernel.c: bzImage -> vmlinux ----
 * Writes the uncompressed ELF vmlinux held in a bzImage (whatever compression
 * the kernel used: libarchive's filters decode gzip, xz, lzma, lz4, zstd,
 * bzip2). The ELF keeps its PVH note, so QEMU can boot it directly without
 * the decompression stage. */
int image_kernel_extract(const char *bzimage, const char *vmlinux, struct err *e);

/* ---- cpio.c: an initramfs writer (cpio newc) that remembers what it added,
 * so parents are created once and shared libraries are added once. ---- */
struct cpio;
int cpio_open(const char *path, struct cpio **out, struct err *e);
int cpio_add_dir(struct cpio *c, const char *path, mode_t mode, struct err *e);
int cpio_add_symlink(struct cpio *c, const char *path, const char *target, struct err *e);
int cpio_add_chardev(struct cpio *c, const char *path, mode_t mode, int major, int minor,
		     struct err *e);
int cpio_add_data(struct cpio *c, const char *path, const void *data, size_t len,
		  mode_t mode, uid_t uid, gid_t gid, struct err *e);
/* Copies a host file (following symlinks) to path. */
int cpio_add_file(struct cpio *c, const char *path, const char *host, mode_t mode,
		  struct err *e);
/* Adds a host ELF program at path plus every shared library it needs (from
 * `ldd`), each at the library's own absolute path. */
int cpio_add_program(struct cpio *c, const char *path, const char *host, struct err *e);
bool cpio_has(const struct cpio *c, const char *path);
/* Finishes the archive (close + fsync); always frees c. */
int cpio_close(struct cpio *c, struct err *e);
void cpio_abort(struct cpio *c);

/* ---- modules.c: adds the wanted kernel modules and their dependencies
 * (from each module's .modinfo "depends=") under /lib/modules/<kver>/, plus
 * load.list naming them in load order. moddir is the directory holding
 * kernel/ and modules.builtin. ---- */
int image_modules_add(struct cpio *c, const char *moddir, const char *kver, struct err *e);

/* Progress helper: calls fn (if any) with a formatted line. */
void image_say(image_progress_fn fn, void *data, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
