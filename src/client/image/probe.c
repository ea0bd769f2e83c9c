/* image/probe.c - which partition of a disk image holds its kernel, and
 * which one is the root: util-linux's libblkid reads the partition table
 * (MBR with logical partitions, GPT with its CRCs) and names each
 * filesystem; extfs.c reads the files.
 *
 * Raw images are read in place. A qcow2 image is seen through a sparse
 * memfd "view" of its virtual disk: the first MiB and a window at the start
 * of each partition are copied in with `qemu-img convert` (QEMU's own qcow2
 * reader, the one that will boot it), enough for libblkid; the ext partition
 * being read is then copied out whole into a sparse scratch file. Partitions
 * are tried smallest first, so a separate /boot (Ubuntu: partition 16) is
 * read without copying the big root.
 *
 * Every start and size libblkid reports is checked against the disk before
 * use. The whole probe runs in a forked child (probe_boot_isolated) without
 * privileges, with a time limit: a filesystem crafted to crash or hang a
 * library costs an error message, never the caller. */
#include "client/image/int.h"

#include "util/cmd.h"
#include "util/err.h"

#include <blkid.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HEAD_LEN (1u << 20)       /* partition tables must lie in the first MiB (qcow2) */
#define WINDOW_LEN (128u << 10)   /* what blkid reads to name a filesystem */
#define MAX_PARTS 128
#define PROBE_TIMEOUT_MS (10 * 60 * 1000)

struct cand {
	int num;              /* vdaN; 0 = the whole disk */
	uint64_t start, size; /* bytes, within the disk */
	char uuid[40];        /* filesystem UUID */
};

struct view {
	const struct probe_disk *d;
	int fd;               /* the raw image, or the qcow2's memfd view */
	uint64_t size;
	const char *scratch;  /* qcow2: where copies land */
};

/* ---- qcow2 ranges through qemu-img ---- */

/* --image-opts values: a comma is written doubled. */
static void add_opts(struct cmd *c, const char *path, uint64_t off, uint64_t size)
{
	size_t n = strlen(path);
	char *esc = malloc(n * 2 + 1), *q = esc;
	for (const char *p = path; esc && *p; p++) {
		*q++ = *p;
		if (*p == ',')
			*q++ = ',';
	}
	if (esc)
		*q = '\0';
	cmd_addf(c, "driver=raw,offset=%" PRIu64 ",size=%" PRIu64
		 ",file.driver=qcow2,file.file.filename=%s", off, size, esc ? esc : "");
	if (!esc)
		c->error = -ENOMEM;
	free(esc);
}

/* Copies [off, off+size) of a qcow2's virtual disk into a sparse raw file. */
static int qcow2_copy_out(const char *path, uint64_t off, uint64_t size, const char *dst,
			  struct err *e)
{
	struct cmd c;
	cmd_init(&c, "qemu-img");
	cmd_add(&c, "convert");
	cmd_add(&c, "-q");
	cmd_add(&c, "--image-opts");
	add_opts(&c, path, off, size);
	cmd_add(&c, "-O");
	cmd_add(&c, "raw");
	cmd_add(&c, dst);
	unlink(dst);
	int r = cmd_run(&c, NULL, e);
	cmd_fini(&c);
	if (r < 0) {
		unlink(dst);
		return err_prefix(e, "reading the qcow2: ");
	}
	return 0;
}

static int copy_fd_range(int from, int to, uint64_t at, size_t len)
{
	char buf[64 << 10];
	for (size_t done = 0; done < len;) {
		size_t want = len - done < sizeof(buf) ? len - done : sizeof(buf);
		ssize_t n = pread(from, buf, want, (off_t)done);
		if (n <= 0)
			return n < 0 ? -errno : 0; /* shorter: the rest reads as zeros */
		if (pwrite(to, buf, (size_t)n, (off_t)(at + done)) != n)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

/* Fills [off, off+len) of the qcow2 view (a no-op for raw images). */
static int view_fill(struct view *v, uint64_t off, uint64_t len, struct err *e)
{
	if (!v->d->qcow2 || len == 0)
		return 0;
	int r = qcow2_copy_out(v->d->path, off, len, v->scratch, e);
	if (r < 0)
		return r;
	int fd = open(v->scratch, O_RDONLY | O_CLOEXEC);
	r = fd < 0 ? -errno : copy_fd_range(fd, v->fd, off, (size_t)len);
	if (fd >= 0)
		close(fd);
	unlink(v->scratch);
	return r < 0 ? err_set(e, r, "reading the qcow2: %s", strerror(-r)) : 0;
}

static int view_open(struct view *v, const struct probe_disk *d, const char *scratch,
		     struct err *e)
{
	*v = (struct view){ .d = d, .fd = -1, .scratch = scratch };
	if (!d->qcow2) {
		struct stat st;
		v->fd = open(d->path, O_RDONLY | O_CLOEXEC);
		if (v->fd < 0 || fstat(v->fd, &st) < 0)
			return err_set(e, -errno, "open: %s", strerror(errno));
		v->size = (uint64_t)st.st_size;
		return 0;
	}
	v->size = d->vsize;
	v->fd = memfd_create("fleetbox-image-view", MFD_CLOEXEC);
	if (v->fd < 0 || ftruncate(v->fd, (off_t)v->size) < 0)
		return err_set(e, -errno, "memfd: %s", strerror(errno));
	return view_fill(v, 0, v->size < HEAD_LEN ? v->size : HEAD_LEN, e);
}

/* ---- partitions ---- */

/* Partition types that never hold a root or /boot filesystem. */
static bool skipped_type(blkid_partition p)
{
	static const char *const gpt[] = {
		"c12a7328-f81f-11d2-ba4b-00a0c93ec93b", /* EFI system */
		"21686148-6449-6e6f-744e-656564454649", /* BIOS boot */
		"0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", /* Linux swap */
	};
	const char *t = blkid_partition_get_type_string(p);
	for (size_t i = 0; t && i < sizeof(gpt) / sizeof(gpt[0]); i++)
		if (!strcasecmp(t, gpt[i]))
			return true;
	if (t)
		return false;
	int mbr = blkid_partition_get_type(p);
	return mbr == 0 || mbr == 0x05 || mbr == 0x0f || mbr == 0x85 || mbr == 0x82 ||
	       mbr == 0xef || mbr == 0xee;
}

/* A partition as a candidate, if it lies wholly inside the disk. */
static bool part_cand(blkid_partition p, uint64_t disk, struct cand *c)
{
	blkid_loff_t s = blkid_partition_get_start(p), n = blkid_partition_get_size(p);
	int num = blkid_partition_get_partno(p);
	uint64_t sectors = disk / 512;
	if (s < 0 || n <= 0 || num <= 0 || num > 255 || (uint64_t)s > sectors ||
	    (uint64_t)n > sectors - (uint64_t)s)
		return false;
	*c = (struct cand){ .num = num, .start = (uint64_t)s * 512, .size = (uint64_t)n * 512 };
	return true;
}

/* Candidates from the partition table; the whole disk when there is none.
 * Returns the count; *outside counts partitions that left the disk. */
static int list_parts(struct view *v, struct cand *out, int max, int *outside, struct err *e)
{
	blkid_probe pr = blkid_new_probe();
	if (!pr || blkid_probe_set_device(pr, v->fd, 0, (blkid_loff_t)v->size) < 0) {
		blkid_free_probe(pr);
		return err_set(e, -ENOMEM, "blkid: cannot probe the disk");
	}
	blkid_probe_enable_superblocks(pr, 0);
	blkid_probe_enable_partitions(pr, 1);
	blkid_partlist ls = blkid_probe_get_partitions(pr);
	int total = ls ? blkid_partlist_numof_partitions(ls) : 0, k = 0;
	*outside = 0;
	for (int i = 0; i < total; i++) {
		blkid_partition p = blkid_partlist_get_partition(ls, i);
		if (!p || skipped_type(p))
			continue;
		if (k == max) {
			blkid_free_probe(pr);
			return err_set(e, -E2BIG, "more than %d partitions", max);
		}
		if (part_cand(p, v->size, &out[k]))
			k++;
		else
			(*outside)++;
	}
	blkid_free_probe(pr);
	if (total == 0 && max > 0)
		out[k++] = (struct cand){ .num = 0, .start = 0, .size = v->size };
	return k;
}

/* 1 when c holds an ext2/3/4 filesystem whose superblock fits it, 0 when
 * it holds something else, < 0 when its ext superblock is malformed. */
static int is_ext(struct view *v, struct cand *c)
{
	blkid_probe pr = blkid_new_probe();
	const char *type = NULL, *uuid = NULL;
	bool ok = pr && blkid_probe_set_device(pr, v->fd, (blkid_loff_t)c->start,
					       (blkid_loff_t)c->size) == 0;
	if (ok) {
		blkid_probe_enable_partitions(pr, 0);
		blkid_probe_enable_superblocks(pr, 1);
		blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID);
		ok = blkid_do_safeprobe(pr) == 0 &&
		     blkid_probe_lookup_value(pr, "TYPE", &type, NULL) == 0 && type &&
		     (!strcmp(type, "ext2") || !strcmp(type, "ext3") || !strcmp(type, "ext4"));
	}
	if (ok && blkid_probe_lookup_value(pr, "UUID", &uuid, NULL) == 0 && uuid)
		snprintf(c->uuid, sizeof(c->uuid), "%s", uuid);
	blkid_free_probe(pr);
	uint8_t sb[EXT_SB_LEN];
	bool magic = c->size >= 2048 &&
		     pread(v->fd, sb, sizeof(sb), (off_t)(c->start + 1024)) == (ssize_t)sizeof(sb) &&
		     ext_sb_magic(sb);
	if (!magic)
		return 0;
	int r = ext_sb_check(sb, c->size);
	return r < 0 ? r : ok;
}

static int cmp_size(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->size != y->size)
		return x->size < y->size ? -1 : 1;
	return x->num - y->num;
}

static int no_ext(struct view *v, int outside, int bad, int bad_num, struct err *e)
{
	if (bad)
		return bad_num ? err_set(e, -EINVAL, "the ext superblock of partition %d is malformed "
					 "or larger than its partition", bad_num)
			       : err_set(e, -EINVAL, "its ext superblock is malformed or larger than "
					 "the disk");
	if (outside)
		return err_set(e, -ERANGE, "%d partition(s) lie outside the disk, no ext2/3/4 "
			       "filesystem inside it", outside);
	return err_set(e, -ENOENT, "no ext2/3/4 filesystem found");
}

/* The ext candidates, smallest first. */
static int ext_cands(struct view *v, struct cand *c, int max, struct err *e)
{
	int outside = 0, n = list_parts(v, c, max, &outside, e), k = 0, bad = 0, bad_num = 0;
	for (int i = 0; i < n; i++) {
		int r = view_fill(v, c[i].start, c[i].size < WINDOW_LEN ? c[i].size : WINDOW_LEN, e);
		if (r < 0)
			return r;
		if ((r = is_ext(v, &c[i])) > 0)
			c[k++] = c[i];
		else if (r < 0 && !bad++)
			bad_num = c[i].num;
	}
	if (n < 0)
		return n;
	if (k == 0)
		return no_ext(v, outside, bad, bad_num, e);
	qsort(c, (size_t)k, sizeof(c[0]), cmp_size);
	return k;
}

/* ---- the driver ---- */

/* Opens candidate c with libext2fs (a qcow2 partition is copied out first). */
static int open_cand(struct view *v, const struct cand *c, struct extfs **fs, struct err *e)
{
	if (!v->d->qcow2)
		return extfs_open(v->d->path, c->start, fs, e);
	int r = qcow2_copy_out(v->d->path, c->start, c->size, v->scratch, e);
	if (r == 0)
		r = extfs_open(v->scratch, 0, fs, e);
	return r;
}

/* A separate /boot (no /etc beside the kernel): the root is the lowest
 * numbered other ext partition. */
static const struct cand *root_of(const struct cand *c, int n, int at, bool has_etc)
{
	const struct cand *best = NULL;
	for (int j = 0; !has_etc && j < n; j++)
		if (j != at && (!best || c[j].num < best->num))
			best = &c[j];
	return best ? best : &c[at];
}

static int extract(struct extfs *fs, const struct boot_probe *b, const char *outdir,
		   struct err *e)
{
	char k[EXT_PATH_MAX + 16], i[EXT_PATH_MAX + 16];
	snprintf(k, sizeof(k), "%s/vmlinuz", outdir);
	snprintf(i, sizeof(i), "%s/initrd", outdir);
	int r = extfs_extract(fs, b->kernel, IMAGE_KERNEL_MAX, k, e);
	if (r == 0 && b->initrd[0] && (r = extfs_extract(fs, b->initrd, IMAGE_INITRD_MAX, i, e)) < 0)
		unlink(k);
	return r;
}

/* Opens c and, when it holds the kernel, fills out (and extracts into
 * outdir). Returns 1 found, 0 not there, < 0 unreadable. */
static int try_cand(struct view *v, const struct cand *c, int n, int i, const char *outdir,
		    struct boot_probe *out, struct err *e)
{
	struct extfs *fs = NULL;
	int r = open_cand(v, &c[i], &fs, e);
	memset(out, 0, sizeof(*out));
	if (r == 0 && extfs_find_boot(fs, out)) {
		const struct cand *root = root_of(c, n, i, extfs_has_dir(fs, "/etc"));
		out->kernel_part = c[i].num;
		out->root_part = root->num;
		snprintf(out->root_uuid, sizeof(out->root_uuid), "%s", root->uuid);
		r = outdir ? extract(fs, out, outdir, e) : 0;
		r = r < 0 ? r : 1;
	}
	extfs_close(fs);
	if (v->d->qcow2)
		unlink(v->scratch);
	return r < 0 ? err_prefix(e, "partition %d: ", c[i].num) : r;
}

/* The first candidate with a kernel; an unreadable one is skipped, and its
 * error reported only when no other candidate has the kernel. */
static int try_cands(struct view *v, const struct cand *c, int n, const char *outdir,
		     struct boot_probe *out, struct err *e)
{
	struct err first = { 0 };
	for (int i = 0; i < n; i++) {
		struct err ce = { 0 };
		int r = try_cand(v, c, n, i, outdir, out, &ce);
		if (r > 0)
			return 0;
		if (r < 0 && !first.code)
			first = ce;
		if (r == -ENOSPC || r == -ENOMEM)
			break;
	}
	if (first.code)
		return err_set(e, first.code, "%s", first.msg);
	return err_set(e, -ENOENT, "no kernel (/vmlinuz, /boot/vmlinuz or /boot/vmlinuz-*) in any "
		       "ext partition");
}

int probe_boot(const struct probe_disk *d, const char *outdir, struct boot_probe *out,
	       struct err *e)
{
	char scratch[EXT_PATH_MAX + 32] = "";
	if (d->qcow2 && snprintf(scratch, sizeof(scratch), "%s/part.tmp",
				 outdir ? outdir : "/tmp") >= (int)sizeof(scratch))
		return err_set(e, -ENAMETOOLONG, "path too long");
	struct view v;
	struct cand c[MAX_PARTS];
	int r = view_open(&v, d, scratch, e);
	int n = r < 0 ? r : ext_cands(&v, c, MAX_PARTS, e);
	r = n < 0 ? n : try_cands(&v, c, n, outdir, out, e);
	if (v.fd >= 0)
		close(v.fd);
	return r;
}

/* ---- isolation ---- */

struct probe_msg {
	int code;
	struct boot_probe res;
	char msg[ERR_MSG_MAX];
};

static int drop_to(uid_t uid, gid_t gid)
{
	if (geteuid() != 0 || uid == 0)
		return 0;
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return -errno;
	return 0;
}

static void __attribute__((noreturn)) child(const struct probe_disk *d, const char *outdir,
					    uid_t uid, gid_t gid, int fd)
{
	struct probe_msg m;
	struct err ce = { 0 };
	memset(&m, 0, sizeof(m));
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	m.code = drop_to(uid, gid);
	if (m.code < 0)
		err_set(&ce, m.code, "drop privileges: %s", strerror(-m.code));
	else
		m.code = probe_boot(d, outdir, &m.res, &ce);
	snprintf(m.msg, sizeof(m.msg), "%s", ce.msg);
	ssize_t w = write(fd, &m, sizeof(m));
	_exit(w == (ssize_t)sizeof(m) ? 0 : 1);
}

/* Reads the child's one message, or gives up after the time limit. */
static ssize_t read_msg(int fd, struct probe_msg *m)
{
	size_t got = 0;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (got < sizeof(*m)) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long left = PROBE_TIMEOUT_MS - ((now.tv_sec - t0.tv_sec) * 1000 +
						(now.tv_nsec - t0.tv_nsec) / 1000000);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int pr = left > 0 ? poll(&p, 1, (int)left) : 0;
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			return -ETIMEDOUT;
		ssize_t n = read(fd, (char *)m + got, sizeof(*m) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static bool terminated(const struct boot_probe *b)
{
	return memchr(b->kernel, 0, sizeof(b->kernel)) && memchr(b->initrd, 0, sizeof(b->initrd)) &&
	       memchr(b->root_uuid, 0, sizeof(b->root_uuid));
}

static int collect(pid_t pid, int fd, struct boot_probe *out, struct err *e)
{
	struct probe_msg m;
	ssize_t got = read_msg(fd, &m);
	if (got == -ETIMEDOUT)
		kill(pid, SIGKILL);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (got == -ETIMEDOUT)
		return err_set(e, -ETIMEDOUT, "reading the image took longer than %d s",
			       PROBE_TIMEOUT_MS / 1000);
	if (got != (ssize_t)sizeof(m) || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		if (WIFSIGNALED(st))
			return err_set(e, -EIO, "malformed image (its reader died of signal %d)",
				       WTERMSIG(st));
		return err_set(e, -EIO, "malformed image (its reader failed)");
	}
	m.msg[sizeof(m.msg) - 1] = '\0';
	if (m.code < 0)
		return err_set(e, m.code, "%s", m.msg);
	if (m.code > 0 || !terminated(&m.res) || m.res.root_part < 0 || m.res.root_part > 255)
		return err_set(e, -EIO, "malformed probe result");
	*out = m.res;
	return 0;
}

int probe_boot_isolated(const struct probe_disk *d, const char *outdir, uid_t uid, gid_t gid,
			struct boot_probe *out, struct err *e)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return err_set(e, -errno, "pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0) {
		int r = -errno;
		close(p[0]);
		close(p[1]);
		return err_set(e, r, "fork: %s", strerror(-r));
	}
	if (pid == 0) {
		close(p[0]);
		child(d, outdir, uid, gid, p[1]);
	}
	close(p[1]);
	int r = collect(pid, p[0], out, e);
	close(p[0]);
	return r;
}
