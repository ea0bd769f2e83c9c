/* image/debian.c - a Debian cloud-style disk image built from the Debian
 * archive alone: `fleetbox image build debian-<N>`.
 *
 * Shaped like Debian's genericcloud images, as far as a direct kernel boot
 * needs: GPT, one ext4 root partition, linux-image-cloud-amd64, systemd,
 * cloud-init (NoCloud first), openssh-server, sudo, ifupdown; no root
 * password, no ssh host keys (cloud-init makes them on first boot), an empty
 * machine-id. No loop mount and no shell: mmdebstrap fills a directory,
 * `mke2fs -d` turns it into an ext4 filesystem written straight into the disk
 * file at the partition's offset, sfdisk writes the GPT around it. Every
 * tool is spawned with an argv array; its output goes to a log in the build
 * directory whose tail becomes the error message. Needs root: mke2fs -d
 * copies owners as it finds them, and only a root mmdebstrap leaves the
 * right ones. */
#include "client/image/int.h"

#include "util/err.h"
#include "util/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MIB ((uint64_t)1024 * 1024)
#define PART_START MIB           /* first partition at 1 MiB, as sfdisk aligns */
#define GPT_TAIL MIB             /* room for the backup GPT (33 sectors), aligned */
#define LOG_TAIL 3               /* lines of a failed tool's output in the error */

/* What the official cloud images have that a direct-boot guest needs. */
static const char packages[] =
	"systemd-sysv,dbus,linux-image-cloud-amd64,initramfs-tools,cloud-init,"
	"cloud-guest-utils,openssh-server,sudo,ifupdown,isc-dhcp-client,iproute2,"
	"iputils-ping,netbase,e2fsprogs,ca-certificates,procps,less,locales";

struct dbuild {
	const char *release;
	const char *raw;         /* the disk image being made */
	char root[PATH_MAX];     /* the bootstrapped tree */
	char log[PATH_MAX];      /* output of the running tool */
	char uuid[40];           /* of the root filesystem, for fstab */
	uint64_t fs_bytes;
	struct timespec t0;
	image_progress_fn progress;
	void *data;
};

static double elapsed(const struct dbuild *b)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - b->t0.tv_sec) + (now.tv_nsec - b->t0.tv_nsec) / 1e9;
}

static void phase(const struct dbuild *b, const char *name, const char *what)
{
	image_say(b->progress, b->data, "[%6.1fs] %-10s %s", elapsed(b), name, what);
}

/* ---- running tools ---- */

/* The last LOG_TAIL non-empty lines of the log, joined by " | ". */
static void log_tail(const char *log, char *out, size_t len)
{
	char *text = NULL;
	size_t n = 0;
	out[0] = '\0';
	if (file_read_all(log, 1u << 24, &text, &n) < 0)
		return;
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
		text[--n] = '\0';
	char *p = text + n;
	for (int lines = 0; p > text && lines < LOG_TAIL; p--)
		if (p[-1] == '\n' && ++lines == LOG_TAIL)
			break;
	size_t k = 0;
	for (; *p && k + 4 < len; p++) {
		if (*p == '\n') {
			k += (size_t)snprintf(out + k, len - k, " | ");
		} else if ((unsigned char)*p >= 0x20 && *p != 0x7f) {
			out[k++] = *p;
		}
	}
	out[k < len ? k : len - 1] = '\0';
	free(text);
}

static int spawn_logged(char **argv, const char *in, const char *log, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	int r = posix_spawn_file_actions_init(&fa);
	if (r != 0)
		return -r;
	r = posix_spawn_file_actions_addopen(&fa, 0, in ? in : "/dev/null", O_RDONLY, 0);
	if (r == 0)
		r = posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (r == 0)
		r = posix_spawn_file_actions_adddup2(&fa, 1, 2);
	if (r == 0)
		r = posix_spawnp(pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	return -r;
}

/* Runs argv (stdin from in, else /dev/null; output to b->log); 0 when it exited 0. */
static int run_tool(const struct dbuild *b, char **argv, const char *in, struct err *e)
{
	pid_t pid;
	int r = spawn_logged(argv, in, b->log, &pid);
	if (r < 0)
		return err_set(e, r, "cannot run %s: %s%s", argv[0], strerror(-r),
			       r == -ENOENT ? " (bash test/deps.sh, or apt-get install it)" : "");
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return err_set(e, -errno, "waitpid %s: %s", argv[0], strerror(errno));
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	char tail[512];
	log_tail(b->log, tail, sizeof(tail));
	if (WIFSIGNALED(st))
		return err_set(e, -EIO, "%s killed by signal %d: %s", argv[0], WTERMSIG(st), tail);
	return err_set(e, -EIO, "%s failed (exit %d): %s", argv[0], WEXITSTATUS(st), tail);
}

/* ---- bootstrap: mmdebstrap into a directory ---- */

static int bootstrap(struct dbuild *b, struct err *e)
{
	char include[sizeof(packages) + 16];
	snprintf(include, sizeof(include), "--include=%s", packages);
	char *argv[] = {
		"mmdebstrap", "--mode=root", "--variant=apt", "--format=directory",
		"--components=main", include,
		"--aptopt=Acquire::Retries \"3\"",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-include=/usr/share/doc/*/copyright",
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		(char *)b->release, b->root, NULL,
	};
	phase(b, "bootstrap", "mmdebstrap (systemd, cloud-init, openssh-server, sudo, cloud kernel)");
	return run_tool(b, argv, NULL, e);
}

/* ---- customize: what a cloud image has and a fresh chroot does not ---- */

/* Writes text to root-relative path rel (replacing a file or symlink). */
static int put_file(const struct dbuild *b, const char *rel, const char *text, mode_t mode,
		    struct err *e)
{
	char path[PATH_MAX * 2];
	snprintf(path, sizeof(path), "%s/%s", b->root, rel);
	if (unlink(path) < 0 && errno != ENOENT)
		return err_set(e, -errno, "unlink %s: %s", path, strerror(errno));
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return err_set(e, -errno, "create %s: %s", path, strerror(errno));
	size_t len = strlen(text);
	ssize_t w = write(fd, text, len);
	int r = w == (ssize_t)len ? 0 : err_set(e, w < 0 ? -errno : -EIO, "write %s: %s", path,
						 w < 0 ? strerror(errno) : "short write");
	if (r == 0 && fchmod(fd, mode) < 0)
		r = err_set(e, -errno, "chmod %s: %s", path, strerror(errno));
	if (close(fd) < 0 && r == 0)
		r = err_set(e, -errno, "close %s: %s", path, strerror(errno));
	return r;
}

static int remove_rel(const struct dbuild *b, const char *rel, struct err *e)
{
	char path[PATH_MAX * 2];
	snprintf(path, sizeof(path), "%s/%s", b->root, rel);
	if (unlink(path) < 0 && errno != ENOENT)
		return err_set(e, -errno, "unlink %s: %s", path, strerror(errno));
	return 0;
}

/* Host keys made by openssh-server's postinst would be shared by every
 * guest of the image: cloud-init makes fresh ones on first boot. */
static int drop_host_keys(const struct dbuild *b, struct err *e)
{
	static const char *const kinds[] = { "rsa", "ecdsa", "ed25519", "dsa" };
	char rel[64];
	int r = 0;
	for (size_t i = 0; r == 0 && i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		snprintf(rel, sizeof(rel), "etc/ssh/ssh_host_%s_key", kinds[i]);
		r = remove_rel(b, rel, e);
		snprintf(rel, sizeof(rel), "etc/ssh/ssh_host_%s_key.pub", kinds[i]);
		if (r == 0)
			r = remove_rel(b, rel, e);
	}
	return r;
}

static int make_uuid(struct dbuild *b, struct err *e)
{
	unsigned char u[16];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, -errno, "/dev/urandom: %s", strerror(errno));
	ssize_t n = read(fd, u, sizeof(u));
	close(fd);
	if (n != (ssize_t)sizeof(u))
		return err_set(e, -EIO, "/dev/urandom: short read");
	u[6] = (u[6] & 0x0f) | 0x40; /* version 4 */
	u[8] = (u[8] & 0x3f) | 0x80; /* RFC 4122 variant */
	snprintf(b->uuid, sizeof(b->uuid),
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
		 u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
		 u[15]);
	return 0;
}

static const char datasource_cfg[] =
	"# fleetbox: a NoCloud seed (cidata) is how this image is configured.\n"
	"datasource_list: [ NoCloud, None ]\n";

static const char interfaces[] =
	"# The loopback network interface; cloud-init writes the rest.\n"
	"source /etc/network/interfaces.d/*\n"
	"\n"
	"auto lo\n"
	"iface lo inet loopback\n";

static const char hosts[] =
	"127.0.0.1\tlocalhost\n"
	"::1\t\tlocalhost ip6-localhost ip6-loopback\n"
	"ff02::1\t\tip6-allnodes\n"
	"ff02::2\t\tip6-allrouters\n";

/* cloud-init's locale module sets LANG=en_US.UTF-8 (update-locale, from
 * `locales`); without that package and locale generated it fails and
 * `cloud-init status` says error, which breaks every test that runs
 * `cloud-init status --wait`. Generated at build time, as the official
 * images ship it, so first boot has nothing to do. */
static int set_locale(struct dbuild *b, struct err *e)
{
	int r = put_file(b, "etc/locale.gen", "en_US.UTF-8 UTF-8\n", 0644, e);
	if (r == 0)
		r = put_file(b, "etc/default/locale", "LANG=en_US.UTF-8\n", 0644, e);
	char *argv[] = { "chroot", b->root, "locale-gen", NULL };
	return r == 0 ? run_tool(b, argv, NULL, e) : r;
}

static int customize(struct dbuild *b, struct err *e)
{
	char fstab[256];
	phase(b, "customize", "fstab, NoCloud datasource, ifupdown, en_US.UTF-8; no host keys, empty machine-id");
	int r = make_uuid(b, e);
	snprintf(fstab, sizeof(fstab), "UUID=%s / ext4 rw,discard,errors=remount-ro 0 1\n", b->uuid);
	if (r == 0)
		r = put_file(b, "etc/fstab", fstab, 0644, e);
	if (r == 0)
		r = put_file(b, "etc/cloud/cloud.cfg.d/01_fleetbox_datasource.cfg", datasource_cfg,
			     0644, e);
	if (r == 0)
		r = put_file(b, "etc/network/interfaces", interfaces, 0644, e);
	if (r == 0)
		r = put_file(b, "etc/hostname", "localhost\n", 0644, e);
	if (r == 0)
		r = put_file(b, "etc/hosts", hosts, 0644, e);
	if (r == 0) /* the build host's resolvers are no business of the image */
		r = put_file(b, "etc/resolv.conf", "", 0644, e);
	if (r == 0) /* empty: systemd makes one on first boot */
		r = put_file(b, "etc/machine-id", "", 0444, e);
	if (r == 0)
		r = remove_rel(b, "var/lib/dbus/machine-id", e);
	if (r == 0)
		r = set_locale(b, e);
	return r == 0 ? drop_host_keys(b, e) : r;
}

/* ---- filesystem: mke2fs -d straight into the disk file ---- */

static uint64_t tree_bytes;

static int add_usage(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path, (void)flag, (void)ftw;
	tree_bytes += (uint64_t)st->st_blocks * 512 + 256; /* + an inode's share */
	return 0;
}

/* The tree's size on disk, plus a quarter and 256 MiB of room, in whole MiB. */
static int size_fs(struct dbuild *b, struct err *e)
{
	tree_bytes = 0;
	if (nftw(b->root, add_usage, 64, FTW_PHYS | FTW_MOUNT) != 0)
		return err_set(e, -errno, "walk %s: %s", b->root, strerror(errno));
	uint64_t want = tree_bytes + tree_bytes / 4 + 256 * MIB;
	b->fs_bytes = (want + MIB - 1) / MIB * MIB;
	return 0;
}

static int make_fs(struct dbuild *b, struct err *e)
{
	int r = size_fs(b, e);
	if (r < 0)
		return r;
	char what[96], size[32], uuid[48];
	snprintf(what, sizeof(what), "ext4 root, %" PRIu64 " MiB (mke2fs -d)", b->fs_bytes / MIB);
	phase(b, "filesystem", what);
	int fd = open(b->raw, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return err_set(e, -errno, "create %s: %s", b->raw, strerror(errno));
	r = ftruncate(fd, (off_t)(PART_START + b->fs_bytes + GPT_TAIL)) < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		return err_set(e, r, "size %s: %s", b->raw, strerror(-r));
	snprintf(size, sizeof(size), "%" PRIu64 "k", b->fs_bytes / 1024);
	snprintf(uuid, sizeof(uuid), "%s", b->uuid);
	char *argv[] = {
		"mke2fs", "-q", "-F", "-t", "ext4", "-L", "root", "-U", uuid, "-m", "1",
		"-E", "offset=1048576,nodiscard", "-d", b->root, (char *)b->raw, size, NULL,
	};
	return run_tool(b, argv, NULL, e);
}

/* ---- disk: a GPT around the filesystem ---- */

static int partition(struct dbuild *b, const char *dir, struct err *e)
{
	char script[PATH_MAX], text[256];
	phase(b, "disk", "GPT, partition 1 = the root filesystem (sfdisk)");
	snprintf(script, sizeof(script), "%s/sfdisk.in", dir);
	/* Linux root (x86-64) type: what systemd's gpt-auto and our probe expect. */
	snprintf(text, sizeof(text),
		 "label: gpt\nfirst-lba: 2048\n"
		 "start=2048, size=%" PRIu64 ", type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709, "
		 "name=root\n", b->fs_bytes / 512);
	int r = file_write_atomic(script, text, strlen(text), 0600);
	if (r < 0)
		return err_set(e, r, "write %s: %s", script, strerror(-r));
	char *argv[] = {
		"sfdisk", "--no-reread", "--no-tell-kernel", "--wipe", "never",
		"--wipe-partitions", "never", (char *)b->raw, NULL,
	};
	r = run_tool(b, argv, script, e);
	unlink(script);
	return r;
}

/* ---- the build ---- */

static int check_root(struct err *e)
{
	if (geteuid() != 0)
		return err_set(e, -EPERM, "building a Debian image needs root (mmdebstrap "
			       "--mode=root; mke2fs -d copies file owners as they are)");
	return 0;
}

static int build_phases(struct dbuild *b, const char *dir, struct err *e)
{
	int r = bootstrap(b, e);
	if (r == 0)
		r = customize(b, e);
	if (r == 0)
		r = make_fs(b, e);
	if (r == 0)
		r = partition(b, dir, e);
	return r;
}

int image_debian_build(const char *release, const char *out_raw, image_progress_fn progress,
		       void *data, struct err *e)
{
	struct dbuild b = { .release = release, .raw = out_raw, .progress = progress,
			    .data = data };
	char dir[PATH_MAX];
	clock_gettime(CLOCK_MONOTONIC, &b.t0);
	int r = check_root(e);
	if (r < 0)
		return r;
	const char *slash = strrchr(out_raw, '/');
	if (!slash || (size_t)(slash - out_raw) >= sizeof(dir))
		return err_set(e, -EINVAL, "build path %s: want an absolute path", out_raw);
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - out_raw), out_raw);
	snprintf(b.root, sizeof(b.root), "%s/rootfs", dir);
	snprintf(b.log, sizeof(b.log), "%s/build.log", dir);
	r = build_phases(&b, dir, e);
	/* The tree and the log are scaffolding; only the disk is imported. */
	int rr = rm_rf(b.root);
	unlink(b.log);
	if (r == 0 && rr < 0 && rr != -ENOENT)
		r = err_set(e, rr, "remove %s: %s", b.root, strerror(-rr));
	if (r == 0)
		phase(&b, "built", "disk image ready; importing into the cache");
	else
		unlink(out_raw);
	return r;
}
