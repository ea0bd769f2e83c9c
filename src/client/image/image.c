/* image/image.c - resolving an image name to bootable files, and member disks.
 *
 * "" and "mini" resolve to the embedded image (built on first use into
 * <root>/images/mini/). A local path is accepted when it is a qcow2 or raw
 * disk and a kernel (and optionally an initrd) sits next to it, as
 * <path>.vmlinuz / <path>.initrd or vmlinuz / initrd.img in its directory.
 * When no kernel sits next to it, the kernel and initrd are read out of the
 * image's own root filesystem (boot.c, no mount). Catalog aliases and
 * URLs are downloaded once and verified (remote.c), then treated like a
 * local path.
 *
 * Member disks are qcow2 overlays on the cached base (O(1), thin); an existing
 * disk is never touched. */
#include "client/image/image.h"
#include "client/image/remote.h"

#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"
#include "util/owner.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Kernel command line for the mini image (see the QEMU driver's notes for the
 * measurements behind each flag): serial console, quiet boot (every console
 * byte is an emulated UART write under TCG), no reboot loop on panic, skip
 * the legacy keyboard/mouse probe, trust the (virtual) CPU RNG. */
#define MINI_CMDLINE "console=ttyS0 quiet panic=-1 i8042.noaux i8042.nokbd i8042.nopnp " \
	"8250.nr_uarts=1 random.trust_cpu=on rdinit=/init"

static int fill(struct image_info *out, const char *name, const char *kernel, const char *initrd,
		const char *cmdline, const char *base, const char *fmt, struct err *e)
{
	memset(out, 0, sizeof(*out));
	if (snprintf(out->name, sizeof(out->name), "%s", name) >= (int)sizeof(out->name) ||
	    snprintf(out->kernel, sizeof(out->kernel), "%s", kernel) >= (int)sizeof(out->kernel) ||
	    snprintf(out->initrd, sizeof(out->initrd), "%s", initrd) >= (int)sizeof(out->initrd) ||
	    snprintf(out->cmdline, sizeof(out->cmdline), "%s", cmdline) >= (int)sizeof(out->cmdline) ||
	    snprintf(out->base, sizeof(out->base), "%s", base) >= (int)sizeof(out->base) ||
	    snprintf(out->base_format, sizeof(out->base_format), "%s", fmt) >= (int)sizeof(out->base_format))
		return err_set(e, -ENAMETOOLONG, "image %s: path too long", name);
	return 0;
}

static int resolve_mini(const char *root, image_progress_fn progress, void *data,
			struct image_info *out, struct err *e)
{
	int r = image_mini_build(root, false, progress, data, e);
	if (r < 0)
		return r;
	/* Absolute paths: qemu-img resolves a relative backing file against the
	 * overlay's directory, and the holder may run from another cwd. */
	char abs[PATH_MAX];
	if (!realpath(root, abs))
		return err_set(e, -errno, "store %s: %s", root, strerror(errno));
	root = abs;
	char k[PATH_MAX], i[PATH_MAX], b[PATH_MAX];
	if (snprintf(k, sizeof(k), "%s/images/mini/vmlinux", root) >= (int)sizeof(k) ||
	    snprintf(i, sizeof(i), "%s/images/mini/initrd", root) >= (int)sizeof(i) ||
	    snprintf(b, sizeof(b), "%s/images/mini/base.raw", root) >= (int)sizeof(b))
		return err_set(e, -ENAMETOOLONG, "store path too long: %s", root);
	return fill(out, "mini", k, i, MINI_CMDLINE, b, "raw", e);
}

static int sniff_format(const char *path, char fmt[8], struct err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, -errno, "image %s: %s", path, strerror(errno));
	unsigned char m[4] = {0};
	ssize_t n = read(fd, m, sizeof(m));
	close(fd);
	if (n == 4 && memcmp(m, "QFI\xfb", 4) == 0)
		strcpy(fmt, "qcow2");
	else
		strcpy(fmt, "raw");
	return 0;
}

static int resolve_path(const char *path, struct image_info *out, struct err *e)
{
	char abs[PATH_MAX];
	if (!realpath(path, abs))
		return err_set(e, -errno, "image %s: %s", path, strerror(errno));
	struct stat st;
	if (stat(abs, &st) < 0 || !S_ISREG(st.st_mode))
		return err_set(e, -EINVAL, "image %s: not a regular file", path);
	char fmt[8];
	int r = sniff_format(abs, fmt, e);
	if (r < 0)
		return r;
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", abs);
	dirname(dir);
	char k1[PATH_MAX + 16], k2[PATH_MAX + 16], i1[PATH_MAX + 16], i2[PATH_MAX + 16];
	snprintf(k1, sizeof(k1), "%s.vmlinuz", abs);
	snprintf(i1, sizeof(i1), "%s.initrd", abs);
	snprintf(k2, sizeof(k2), "%s/vmlinuz", dir);
	snprintf(i2, sizeof(i2), "%s/initrd.img", dir);
	const char *kernel = access(k1, R_OK) == 0 ? k1 : access(k2, R_OK) == 0 ? k2 : NULL;
	char cmdline[128] = "console=ttyS0 root=/dev/vda1 rw";
	if (!kernel) {
		/* Read them out of the image's root filesystem into <path>.vmlinuz. */
		int part = 1;
		if ((r = image_extract_boot(abs, &part, e)) < 0)
			return r;
		image_boot_cmdline(part, cmdline, sizeof(cmdline));
		if (access(k1, R_OK) != 0)
			return err_set(e, -ENOENT, "image %s: no kernel found in its root filesystem", path);
		kernel = k1;
	}
	const char *initrd = kernel == k1 ? (access(i1, R_OK) == 0 ? i1 : "")
					  : (access(i2, R_OK) == 0 ? i2 : "");
	const char *base = strrchr(abs, '/');
	return fill(out, base ? base + 1 : abs, kernel, initrd, cmdline, abs, fmt, e);
}

int image_resolve(const char *root, const char *image, image_progress_fn progress,
		  void *data, struct image_info *out, struct err *e)
{
	if (!image || !*image || strcmp(image, "mini") == 0)
		return resolve_mini(root, progress, data, out, e);
	if (image_is_remote(image)) {
		char path[PATH_MAX];
		int r = image_fetch(root, image, progress, data, path, sizeof(path), e);
		if (r < 0)
			return r;
		r = resolve_path(path, out, e);
		/* keep the name the user gave (alias or URL basename) */
		if (r == 0 && !strchr(image, '/'))
			snprintf(out->name, sizeof(out->name), "%s", image);
		return r;
	}
	if (strchr(image, '/') || path_exists(image) > 0)
		return resolve_path(image, out, e);
	return err_set(e, -ENOENT, "image %s: not \"mini\", a catalog alias, a URL or an existing "
		       "file", image);
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
	if (r < 0) {
		unlink(disk_path);
		return err_set(e, r, "chown %s: %s", disk_path, strerror(-r));
	}
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", disk_path) >= (int)sizeof(tmp)) {
		unlink(disk_path);
		return err_set(e, -ENAMETOOLONG, "disk path too long");
	}
	unlink(tmp);
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
	r = cmd_run(&c, NULL, e);
	cmd_fini(&c);
	if (r == 0) {
		int tfd = open(tmp, O_RDONLY | O_CLOEXEC);
		if (tfd < 0 || fsync(tfd) < 0)
			r = err_set(e, -errno, "fsync %s: %s", tmp, strerror(errno));
		else if ((r = owner_claim_fd(tfd)) < 0) /* qemu-img created it */
			err_set(e, r, "chown %s: %s", tmp, strerror(-r));
		if (tfd >= 0)
			close(tfd);
	}
	if (r == 0 && rename(tmp, disk_path) < 0)
		r = err_set(e, -errno, "rename %s: %s", tmp, strerror(errno));
	if (r < 0) {
		unlink(tmp);
		unlink(disk_path); /* our own empty placeholder */
		return err_prefix(e, "create disk %s: ", disk_path);
	}
	fsync_parent(disk_path);
	return 0;
}
