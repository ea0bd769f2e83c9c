/* image/mini.c - builds the embedded default image "mini" from Debian packages.
 *
 * Kernel: the Debian cloud kernel package, fetched with `apt-get download`
 * and unpacked with `dpkg-deb -x` into a scratch directory (never installed
 * on the host); fallback: the host's /boot/vmlinuz-$(uname -r) and its
 * /lib/modules. Userland: the host's busybox-static, dropbear, mke2fs (and
 * their libraries), bash as the login shell, openssh's sftp-server from its
 * package when apt can get it, and our init (src/client/image/mini/init.sh, embedded at build time).
 *
 * Result (in a scratch directory the cache then publishes, minicache.c):
 * vmlinux (uncompressed ELF, PVH-bootable) and initrd (cpio). */
#include "client/image/image.h"
#include "client/image/int.h"

#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"
#include "util/hash.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define KERNEL_META "linux-image-cloud-amd64"
#define SFTP_PKG "openssh-sftp-server"

static void say(image_progress_fn progress, void *data, const char *line)
{
	if (progress)
		progress(data, line);
}

/* Runs `env -C dir apt-get download pkg` (apt downloads into the cwd, and
 * cmd_run has no chdir) then unpacks the .deb it produced into out. */
static int deb_fetch(const char *dir, const char *pkg, const char *out, struct err *e)
{
	char dl[PATH_MAX];
	snprintf(dl, sizeof(dl), "%s/deb-%s", dir, pkg);
	int r = mkdir_p(dl, 0755);
	if (r < 0)
		return err_set(e, r, "mkdir %s: %s", dl, strerror(-r));
	struct cmd c;
	cmd_init(&c, "env");
	cmd_add(&c, "-C");
	cmd_add(&c, dl);
	cmd_add(&c, "apt-get");
	cmd_add(&c, "-q");
	cmd_add(&c, "download");
	cmd_add(&c, pkg);
	r = cmd_run(&c, NULL, e);
	cmd_fini(&c);
	if (r < 0)
		return r;
	DIR *d = opendir(dl);
	if (!d)
		return err_set(e, -errno, "opendir %s: %s", dl, strerror(errno));
	char deb[PATH_MAX] = "";
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l > 4 && strcmp(de->d_name + l - 4, ".deb") == 0) {
			snprintf(deb, sizeof(deb), "%s/%s", dl, de->d_name);
			break;
		}
	}
	closedir(d);
	if (!deb[0])
		return err_set(e, -ENOENT, "apt-get download %s produced no .deb", pkg);
	cmd_init(&c, "dpkg-deb");
	cmd_add(&c, "-x");
	cmd_add(&c, deb);
	cmd_add(&c, out);
	r = cmd_run(&c, NULL, e);
	cmd_fini(&c);
	return r;
}

/* The concrete package behind the metapackage: "Depends: linux-image-X". */
static int kernel_package(char *out, size_t len, struct err *e)
{
	struct cmd c;
	cmd_init(&c, "apt-cache");
	cmd_add(&c, "depends");
	cmd_add(&c, KERNEL_META);
	char *o = NULL;
	int r = cmd_run(&c, &o, e);
	cmd_fini(&c);
	if (r < 0) {
		free(o);
		return r;
	}
	r = err_set(e, -ENOENT, "apt-cache knows no package behind %s", KERNEL_META);
	for (char *save = NULL, *l = strtok_r(o, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char name[128];
		if (sscanf(l, " Depends: %127s", name) == 1 && strncmp(name, "linux-image-", 12) == 0 &&
		    strcmp(name, KERNEL_META) != 0) {
			snprintf(out, len, "%s", name);
			err_clear(e);
			r = 0;
			break;
		}
	}
	free(o);
	return r;
}

struct kernel_src {
	char bzimage[PATH_MAX];
	char moddir[PATH_MAX];
	char kver[128];
	char origin[160];
};

/* Finds boot/vmlinuz-<kver> under root and its modules directory. */
static int kernel_in_tree(const char *root, struct kernel_src *k, struct err *e)
{
	char boot[PATH_MAX];
	snprintf(boot, sizeof(boot), "%s/boot", root);
	DIR *d = opendir(boot);
	if (!d)
		return err_set(e, -errno, "no %s: %s", boot, strerror(errno));
	k->kver[0] = '\0';
	struct dirent *de;
	while ((de = readdir(d)))
		if (strncmp(de->d_name, "vmlinuz-", 8) == 0) {
			snprintf(k->kver, sizeof(k->kver), "%s", de->d_name + 8);
			break;
		}
	closedir(d);
	if (!k->kver[0])
		return err_set(e, -ENOENT, "no vmlinuz in %s", boot);
	snprintf(k->bzimage, sizeof(k->bzimage), "%s/vmlinuz-%s", boot, k->kver);
	const char *cands[] = {"lib/modules", "usr/lib/modules"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(k->moddir, sizeof(k->moddir), "%s/%s/%s", root, cands[i], k->kver);
		if (path_exists(k->moddir) > 0)
			return 0;
	}
	return err_set(e, -ENOENT, "no modules for kernel %s under %s", k->kver, root);
}

static int kernel_get(const char *tmp, image_progress_fn progress, void *data,
		      struct kernel_src *k, struct err *e)
{
	char pkg[128], line[256], kroot[PATH_MAX];
	struct err apt = {0};
	int r = kernel_package(pkg, sizeof(pkg), &apt);
	if (r == 0) {
		snprintf(line, sizeof(line), "mini image: fetching kernel package %s", pkg);
		say(progress, data, line);
		snprintf(kroot, sizeof(kroot), "%s/kernel-root", tmp);
		r = deb_fetch(tmp, pkg, kroot, &apt);
		if (r == 0)
			r = kernel_in_tree(kroot, k, &apt);
		if (r == 0) {
			snprintf(k->origin, sizeof(k->origin), "debian:%s", pkg);
			return 0;
		}
	}
	/* Fallback: the host's own kernel. */
	struct utsname u;
	if (uname(&u) < 0)
		return err_set(e, -errno, "uname: %s", strerror(errno));
	snprintf(k->kver, sizeof(k->kver), "%s", u.release);
	snprintf(k->bzimage, sizeof(k->bzimage), "/boot/vmlinuz-%s", u.release);
	snprintf(k->moddir, sizeof(k->moddir), "/lib/modules/%s", u.release);
	if (path_exists(k->bzimage) > 0 && path_exists(k->moddir) > 0 && access(k->bzimage, R_OK) == 0) {
		say(progress, data, "mini image: using the host kernel");
		snprintf(k->origin, sizeof(k->origin), "host:%s", u.release);
		return 0;
	}
	return err_set(e, apt.code ? apt.code : -ENOENT,
		       "mini image: no kernel: Debian package failed (%s) and host kernel %s is not readable",
		       apt.msg, k->bzimage);
}

/* First existing path among cands. */
static const char *first_existing(const char *const *cands)
{
	for (; *cands; cands++)
		if (access(*cands, X_OK) == 0)
			return *cands;
	return NULL;
}

/* Busybox's ping only opens raw ICMP sockets (no fallback to the ICMP
 * datagram sockets that ping_group_range allows), so for the plain user it
 * runs from the setuid copy, which keeps root for ping (BB_SUID_MAYBE) and
 * drops it for every applet marked so. */
#define SUID_BUSYBOX_LINK "../usr/lib/fleetbox/busybox-suid"

static bool is_suid_applet(const char *a)
{
	return !strcmp(a, "ping") || !strcmp(a, "ping6");
}

static int add_busybox(struct cpio *c, struct err *e)
{
	const char *bb = first_existing((const char *const[]){"/bin/busybox", "/usr/bin/busybox", NULL});
	if (!bb)
		return err_set(e, -ENOENT, "busybox not found (install busybox-static)");
	int r = cpio_add_program(c, "/bin/busybox", bb, e);
	if (r < 0)
		return r;
	/* The setuid copy behind sudo: root-owned, executable by group 1000 only. */
	char *buf = NULL;
	size_t len = 0;
	r = file_read_all(bb, 64u << 20, &buf, &len);
	if (r < 0)
		return err_set(e, r, "read %s: %s", bb, strerror(-r));
	r = cpio_add_data(c, "/usr/lib/fleetbox/busybox-suid", buf, len, 04750, 0, 1000, e);
	free(buf);
	if (r < 0)
		return r;
	struct cmd cmd;
	cmd_init(&cmd, bb);
	cmd_add(&cmd, "--list");
	char *list = NULL;
	r = cmd_run(&cmd, &list, e);
	cmd_fini(&cmd);
	for (char *save = NULL, *a = list ? strtok_r(list, "\n", &save) : NULL; r == 0 && a;
	     a = strtok_r(NULL, "\n", &save)) {
		if (!*a || strchr(a, '/') || strcmp(a, "busybox") == 0)
			continue;
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "/bin/%s", a);
		r = cpio_add_symlink(c, p, is_suid_applet(a) ? SUID_BUSYBOX_LINK : "busybox", e);
	}
	free(list);
	return r;
}

static int add_userland(struct cpio *c, const char *tmp, image_progress_fn progress, void *data,
			struct err *e)
{
	static const char *const dirs[] = {"/dev", "/etc", "/home", "/lib", "/lib64", "/mnt",
		"/opt", "/proc", "/root", "/run", "/srv", "/sys", "/tmp", "/usr/bin", "/usr/sbin",
		"/usr/lib", "/var/log", "/var/tmp"};
	int r = 0;
	for (size_t i = 0; r == 0 && i < sizeof(dirs) / sizeof(dirs[0]); i++)
		r = cpio_add_dir(c, dirs[i], strcmp(dirs[i], "/root") ? 0755 : 0700, e);
	if (r == 0)
		r = cpio_add_chardev(c, "/dev/console", 0600, 5, 1, e);
	if (r == 0)
		r = cpio_add_chardev(c, "/dev/null", 0666, 1, 3, e);
	if (r == 0)
		r = cpio_add_data(c, "/init", mini_init_sh, mini_init_sh_len, 0755, 0, 0, e);
	if (r == 0)
		r = add_busybox(c, e);
	if (r == 0)
		r = cpio_add_symlink(c, "/sbin", "bin", e);
	if (r == 0)
		r = cpio_add_data(c, "/usr/bin/sudo", mini_sudo_sh, mini_sudo_sh_len, 0755, 0, 0, e);
	if (r < 0)
		return r;

	const char *db = first_existing((const char *const[]){"/usr/sbin/dropbear", "/usr/bin/dropbear", NULL});
	const char *dbc = first_existing((const char *const[]){"/usr/bin/dropbearconvert", "/usr/lib/dropbear/dropbearconvert", NULL});
	const char *dbk = first_existing((const char *const[]){"/usr/bin/dropbearkey", NULL});
	if (!db || !dbc || !dbk)
		return err_set(e, -ENOENT, "dropbear, dropbearconvert or dropbearkey not found (install dropbear-bin)");
	r = cpio_add_program(c, "/usr/sbin/dropbear", db, e);
	if (r == 0)
		r = cpio_add_program(c, "/usr/bin/dropbearconvert", dbc, e);
	if (r == 0)
		r = cpio_add_program(c, "/usr/bin/dropbearkey", dbk, e);
	if (r < 0)
		return r;

	/* The users' login shell: busybox ash runs its own applets in-process
	 * (standalone shell), so `ping` typed there would never reach the
	 * setuid copy; bash (Essential on Debian, so on every host) finds
	 * /bin/ping on PATH like a Debian guest's shell does. Without it the
	 * init keeps ash. */
	const char *bash = first_existing((const char *const[]){"/bin/bash", "/usr/bin/bash", NULL});
	if (bash && (r = cpio_add_program(c, "/bin/bash", bash, e)) < 0)
		return r;

	const char *mk = first_existing((const char *const[]){"/usr/sbin/mke2fs", "/sbin/mke2fs", NULL});
	if (!mk)
		return err_set(e, -ENOENT, "mke2fs not found (install e2fsprogs)");
	r = cpio_add_program(c, "/usr/sbin/mke2fs", mk, e);
	if (r == 0 && access("/etc/mke2fs.conf", R_OK) == 0)
		r = cpio_add_file(c, "/etc/mke2fs.conf", "/etc/mke2fs.conf", 0644, e);
	if (r < 0)
		return r;

	/* sftp is optional: without it `fleetbox cp` still works (tar over SSH). */
	char sroot[PATH_MAX], sftp[PATH_MAX];
	snprintf(sroot, sizeof(sroot), "%s/sftp-root", tmp);
	snprintf(sftp, sizeof(sftp), "%s/usr/lib/openssh/sftp-server", sroot);
	struct err se = {0};
	say(progress, data, "mini image: fetching " SFTP_PKG);
	if (deb_fetch(tmp, SFTP_PKG, sroot, &se) == 0 && access(sftp, X_OK) == 0) {
		/* Debian's dropbear looks for /usr/lib/sftp-server. */
		r = cpio_add_program(c, "/usr/lib/sftp-server", sftp, e);
		if (r == 0)
			r = cpio_add_symlink(c, "/usr/lib/openssh/sftp-server", "../sftp-server", e);
	} else {
		say(progress, data, "mini image: no sftp server (apt-get download " SFTP_PKG " failed)");
	}
	return r;
}

int mini_build_into(const char *tmp, image_progress_fn progress, void *data, struct mini_meta *meta,
		    struct err *e)
{
	struct kernel_src k;
	int r = kernel_get(tmp, progress, data, &k, e);
	if (r < 0)
		return r;
	snprintf(meta->origin, sizeof(meta->origin), "%s", k.origin);
	snprintf(meta->kver, sizeof(meta->kver), "%s", k.kver);
	char p[PATH_MAX];
	say(progress, data, "mini image: extracting vmlinux");
	snprintf(p, sizeof(p), "%s/vmlinux", tmp);
	r = image_kernel_extract(k.bzimage, p, e);
	if (r < 0)
		return r;
	say(progress, data, "mini image: writing initramfs");
	snprintf(p, sizeof(p), "%s/initrd", tmp);
	struct cpio *c = NULL;
	r = cpio_open(p, &c, e);
	if (r < 0)
		return r;
	r = add_userland(c, tmp, progress, data, e);
	if (r == 0)
		r = image_modules_add(c, k.moddir, k.kver, e);
	if (r < 0) {
		cpio_abort(c);
		return r;
	}
	r = cpio_close(c, e);
	if (r < 0)
		return r;
	/* Drop the scratch trees before the directory becomes the cache. */
	DIR *d = opendir(tmp);
	if (!d)
		return err_set(e, -errno, "opendir %s: %s", tmp, strerror(errno));
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "deb-", 4) == 0 || strcmp(de->d_name, "kernel-root") == 0 ||
		    strcmp(de->d_name, "sftp-root") == 0) {
			snprintf(p, sizeof(p), "%s/%s", tmp, de->d_name);
			rm_rf(p);
		}
	}
	closedir(d);
	return 0;
}
