/* image/int.h - internals of the image module shared by the files in image/ (not a public
 * module API: only image.c's functions are called from elsewhere). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct err;
struct archive;

/* Embedded scripts (generated from src/client/mini/ by embedgen). */
extern const unsigned char mini_init_sh[];
extern const unsigned long mini_init_sh_len;
extern const unsigned char mini_sudo_sh[];
extern const unsigned long mini_sudo_sh_len;

/* kernel.c: writes the uncompressed ELF vmlinux held in a bzImage
 * (whatever compression the kernel used: libarchive's filters decode gzip, xz,
 * lzma, lz4, zstd, bzip2). The ELF keeps its PVH note, so QEMU can boot it
 * directly without the decompression stage. */
int image_kernel_extract(const char *bzimage, const char *vmlinux, struct err *e);

/* cpio.c: an initramfs writer (cpio newc) that remembers what it added,
 * so parents are created once and shared libraries are added once. */
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

/* modules.c: adds the wanted kernel modules and their dependencies
 * (from each module's .modinfo "depends=") under /lib/modules/<kver>/, plus
 * load.list naming them in load order. moddir is the directory holding
 * kernel/ and modules.builtin. */
int image_modules_add(struct cpio *c, const char *moddir, const char *kver, struct err *e);
