/* image/boot.c - the kernel and initrd of a disk image, read from its own ext
 * filesystem without mounting anything.
 *
 * How: parse the MBR/GPT ourselves, then ask e2fsprogs' debugfs (read-only,
 * -c: no bitmaps) to list, stat and dump files. A raw image is read in place
 * through libext2fs' "<file>?offset=<bytes>" device syntax. qcow2 has no such
 * path, so the one partition being inspected is first copied out with
 * `qemu-img convert` (raw driver offset/size over the qcow2) into a sparse
 * scratch file next to the image: this costs the partition's allocated data
 * in temporary disk space and time, once per image, and the scratch is always
 * removed.
 *
 * Which partition: ext partitions (by superblock magic) are tried smallest
 * first, so a separate /boot (Ubuntu 23.10+: partition 16) is found without
 * copying the big root. The root partition is the one holding the kernel if
 * it also has /etc, else the lowest-numbered other ext partition.
 *
 * Invariants: <image>.bootinfo is written (atomically) only after
 * <image>.vmlinuz and <image>.initrd were renamed into place, so its presence
 * means the set is complete; the whole extraction runs under an exclusive
 * flock on the image file itself. A kernel already sitting at <image>.vmlinuz
 * without bootinfo was put there by the user and is never overwritten. */
#include "client/image/remote.h"

#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"
#include "util/owner.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEAD_LEN (1024 * 1024)  /* MBR + GPT header + entries must lie within */
#define MAX_PARTS 128
#define MAX_HOPS 8              /* symlink hops */

/* ---- partition tables (pure) ---- */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* GPT type GUIDs (on-disk mixed-endian bytes) that never hold a root or /boot. */
static const uint8_t skip_types[][16] = {
	/* BIOS boot 21686148-6449-6E6F-744E-656564454649 */
	{ 0x48, 0x61, 0x68, 0x21, 0x49, 0x64, 0x6f, 0x6e,
	  0x74, 0x4e, 0x65, 0x65, 0x64, 0x45, 0x46, 0x49 },
	/* EFI system C12A7328-F81F-11D2-BA4B-00A0C93EC93B */
	{ 0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11,
	  0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b },
	/* Linux swap 0657FD6D-A4AB-43C4-84E5-0933C84B4F4F */
	{ 0x6d, 0xfd, 0x57, 0x06, 0xab, 0xa4, 0xc4, 0x43,
	  0x84, 0xe5, 0x09, 0x33, 0xc8, 0x4b, 0x4f, 0x4f },
};

static bool zero16(const uint8_t *p)
{
	for (int i = 0; i < 16; i++)
		if (p[i])
			return false;
	return true;
}

static int parse_gpt(const uint8_t *head, size_t len, struct image_part *out, size_t max)
{
	const uint8_t *h = head + 512;
	uint64_t lba = le64(h + 72);
	uint32_t n = le32(h + 80), esz = le32(h + 84);
	if (esz < 128 || esz > 4096 || n > 1024 || lba < 2)
		return -EINVAL;
	if (lba > len / 512 || (uint64_t)n * esz > len - lba * 512)
		return -ERANGE; /* entries beyond what we read: unsupported layout */
	size_t k = 0;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *ent = head + lba * 512 + (uint64_t)i * esz;
		if (zero16(ent))
			continue;
		bool skip = false;
		for (size_t t = 0; t < sizeof(skip_types) / sizeof(skip_types[0]); t++)
			skip = skip || memcmp(ent, skip_types[t], 16) == 0;
		uint64_t first = le64(ent + 32), last = le64(ent + 40);
		if (skip || last < first)
			continue;
		if (k == max)
			return -E2BIG;
		out[k++] = (struct image_part){ .num = (int)i + 1, .start = first * 512,
						.size = (last - first + 1) * 512 };
	}
	return (int)k;
}

int image_part_table_parse(const void *buf, size_t len, struct image_part *out, size_t max)
{
	const uint8_t *head = buf;
	if (len < 2048)
		return -EINVAL;
	bool mbr = head[510] == 0x55 && head[511] == 0xaa;
	if (mbr && memcmp(head + 512, "EFI PART", 8) == 0) {
		for (int i = 0; i < 4; i++)
			if (head[446 + 16 * i + 4] == 0xee)
				return parse_gpt(head, len, out, max);
	}
	size_t k = 0;
	for (int i = 0; mbr && i < 4; i++) {
		const uint8_t *ent = head + 446 + 16 * i;
		uint8_t type = ent[4];
		uint64_t start = le32(ent + 8), count = le32(ent + 12);
		/* Linux (0x83) only: extended partitions and their logical
		 * children are not followed. */
		if (type != 0x83 || count == 0)
			continue;
		if (k == max)
			return -E2BIG;
		out[k++] = (struct image_part){ .num = i + 1, .start = start * 512,
						.size = count * 512 };
	}
	if (k == 0 && head[1080] == 0x53 && head[1081] == 0xef) {
		/* no partition table: the whole disk is one ext filesystem */
		if (max == 0)
			return -E2BIG;
		out[k++] = (struct image_part){ .num = 0, .start = 0, .size = 0 };
	}
	return (int)k;
}

/* ---- reading the image ---- */

struct disk {
	const char *path;
	bool qcow2;
};

/* --image-opts values: a comma is written doubled. */
static int add_opts(struct cmd *c, const char *path, uint64_t off, uint64_t size)
{
	char *esc = malloc(strlen(path) * 2 + 1);
	if (!esc)
		return -ENOMEM;
	char *q = esc;
	for (const char *p = path; *p; p++) {
		*q++ = *p;
		if (*p == ',')
			*q++ = ',';
	}
	*q = '\0';
	cmd_addf(c, "driver=raw,offset=%" PRIu64 ",size=%" PRIu64
		 ",file.driver=qcow2,file.file.filename=%s", off, size, esc);
	free(esc);
	return 0;
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
	int r = add_opts(&c, path, off, size);
	cmd_add(&c, "-O");
	cmd_add(&c, "raw");
	cmd_add(&c, dst);
	if (r == 0)
		r = cmd_run(&c, NULL, e);
	else
		err_set(e, r, "out of memory");
	cmd_fini(&c);
	if (r < 0) {
		unlink(dst);
		return err_prefix(e, "read %s: ", path);
	}
	return 0;
}

/* Reads len bytes at off of the virtual disk (zero-filled past its end). */
static int read_range(const struct disk *d, uint64_t off, void *buf, size_t len,
		      struct err *e)
{
	memset(buf, 0, len);
	char tmp[PATH_MAX];
	const char *src = d->path;
	uint64_t at = off;
	if (d->qcow2) {
		if (snprintf(tmp, sizeof(tmp), "%s.read.tmp", d->path) >= (int)sizeof(tmp))
			return err_set(e, -ENAMETOOLONG, "image path too long");
		int r = qcow2_copy_out(d->path, off, len, tmp, e);
		if (r < 0)
			return r;
		src = tmp;
		at = 0;
	}
	int fd = open(src, O_RDONLY | O_CLOEXEC);
	int r = fd < 0 ? -errno : 0;
	size_t n = 0;
	while (r == 0 && n < len) {
		ssize_t k = pread(fd, (uint8_t *)buf + n, len - n, (off_t)(at + n));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			r = -errno;
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	if (fd >= 0)
		close(fd);
	if (d->qcow2)
		unlink(src);
	if (r < 0)
		return err_set(e, r, "read %s: %s", d->path, strerror(-r));
	return 0;
}

/* ---- debugfs ---- */

struct fs {
	char dev[PATH_MAX + 32];  /* debugfs device argument */
};

static int debugfs(const struct fs *fs, const char *req, char **out, struct err *e)
{
	struct cmd c;
	cmd_init(&c, "debugfs");
	cmd_add(&c, "-c");
	cmd_add(&c, "-R");
	cmd_add(&c, req);
	cmd_add(&c, fs->dev);
	char *o = NULL;
	int r = cmd_run(&c, &o, e);
	cmd_fini(&c);
	if (r < 0) {
		free(o);
		return r;
	}
	/* debugfs exits 0 even when it cannot open the filesystem */
	const char *bad = o ? strstr(o, "while trying to open") : NULL;
	if (bad) {
		const char *sol = bad;
		while (sol > o && sol[-1] != '\n')
			sol--;
		int n = (int)strcspn(sol, "\n");
		r = err_set(e, -EINVAL, "debugfs: %.*s", n, sol);
		free(o);
		return r;
	}
	*out = o;
	return 0;
}

/* Names we pass inside a debugfs request: no quoting games. */
static bool safe_fs_path(const char *p)
{
	for (; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("/._+-~", *p)))
			return false;
	return true;
}

enum node_type { NODE_NONE, NODE_DIR, NODE_FILE, NODE_LINK, NODE_OTHER };

struct node {
	enum node_type type;
	uint64_t size;
};

static void split(const char *path, char *dir, size_t dlen, const char **base)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;
	if (n == 0)
		snprintf(dir, dlen, "/");
	else
		snprintf(dir, dlen, "%.*s", (int)n, path);
	*base = slash ? slash + 1 : path;
}

/* Looks one absolute path up via `ls -p <dir>`: lines "/ino/mode/uid/gid/name/size/". */
static int fs_lookup(const struct fs *fs, const char *path, struct node *n, struct err *e)
{
	n->type = NODE_NONE;
	n->size = 0;
	if (!safe_fs_path(path))
		return 0;
	char dir[PATH_MAX], req[PATH_MAX + 16];
	const char *base;
	split(path, dir, sizeof(dir), &base);
	snprintf(req, sizeof(req), "ls -p %s", dir);
	char *out = NULL;
	int r = debugfs(fs, req, &out, e);
	if (r < 0)
		return r;
	char empty[] = "", *save = NULL;
	for (char *line = strtok_r(out ? out : empty, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		unsigned long mode;
		char name[256];
		unsigned long long size;
		int used = 0;
		if (line[0] != '/' ||
		    sscanf(line, "/%*u/%lo/%*u/%*u/%255[^/]/%n", &mode, name, &used) != 2 || !used)
			continue;
		if (strcmp(name, base) != 0)
			continue;
		size = strtoull(line + used, NULL, 10);
		mode &= 0170000;
		n->type = mode == 0040000 ? NODE_DIR : mode == 0100000 ? NODE_FILE
			: mode == 0120000 ? NODE_LINK : NODE_OTHER;
		n->size = size;
		break;
	}
	free(out);
	return 0;
}

/* Fast symlinks only (target < 60 bytes, which covers every kernel link). */
static int fs_readlink(const struct fs *fs, const char *path, char *buf, size_t len,
		       struct err *e)
{
	char req[PATH_MAX + 16];
	snprintf(req, sizeof(req), "stat %s", path);
	char *out = NULL;
	int r = debugfs(fs, req, &out, e);
	if (r < 0)
		return r;
	const char *p = out ? strstr(out, "Fast link dest: \"") : NULL;
	r = -ENOENT;
	if (p) {
		p += strlen("Fast link dest: \"");
		size_t n = strcspn(p, "\"\n");
		if (p[n] == '"' && n > 0 && n < len) {
			memcpy(buf, p, n);
			buf[n] = '\0';
			r = 0;
		}
	}
	free(out);
	return r; /* -ENOENT: not a fast link; the caller treats it as absent */
}

/* Collapses "//", "." and ".." of an absolute path in place. */
static void normalize(char *path)
{
	char out[PATH_MAX];
	size_t o = 0;
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		size_t n = strcspn(p, "/");
		if (n == 0)
			break;
		if (n == 1 && p[0] == '.') {
			/* skip */
		} else if (n == 2 && p[0] == '.' && p[1] == '.') {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
		} else if (o + n + 2 < sizeof(out)) {
			out[o++] = '/';
			memcpy(out + o, p, n);
			o += n;
		}
		p += n;
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = '\0';
	strcpy(path, out);
}

/* Follows a chain of symlinks to a regular file. path is updated in place. */
static int fs_resolve(const struct fs *fs, char *path, size_t len, struct node *n,
		      struct err *e)
{
	for (int hop = 0; hop <= MAX_HOPS; hop++) {
		int r = fs_lookup(fs, path, n, e);
		if (r < 0)
			return r;
		if (n->type != NODE_LINK)
			return 0;
		char target[PATH_MAX];
		r = fs_readlink(fs, path, target, sizeof(target), e);
		if (r < 0) {
			n->type = NODE_NONE;
			return r == -ENOENT ? 0 : r;
		}
		char next[PATH_MAX * 2];
		if (target[0] == '/') {
			snprintf(next, sizeof(next), "%s", target);
		} else {
			char dir[PATH_MAX];
			const char *base;
			split(path, dir, sizeof(dir), &base);
			snprintf(next, sizeof(next), "%s/%s", dir, target);
		}
		if (strlen(next) >= len) {
			n->type = NODE_NONE;
			return 0;
		}
		strcpy(path, next);
		normalize(path);
	}
	n->type = NODE_NONE; /* link loop */
	return 0;
}

/* Resolves to a regular file; on a separate /boot filesystem a link written
 * as "/boot/x" or "boot/x" names "/x" there, so that is tried as well. */
static int find_file(const struct fs *fs, const char *start, char *path, size_t len,
		     struct node *n, struct err *e)
{
	snprintf(path, len, "%s", start);
	int r = fs_resolve(fs, path, len, n, e);
	if (r < 0 || n->type == NODE_FILE)
		return r;
	size_t plen = strnlen(path, len);
	if (plen >= 6 && plen < len && strncmp(path, "/boot/", 6) == 0) {
		memmove(path, path + 5, plen - 5 + 1);
		r = fs_resolve(fs, path, len, n, e);
	}
	if (r == 0 && n->type != NODE_FILE)
		n->type = NODE_NONE;
	return r;
}

struct boot_files {
	char kernel[PATH_MAX];
	char initrd[PATH_MAX];   /* "" when the image has none */
	uint64_t kernel_size, initrd_size;
};

/* Newest "vmlinuz-<ver>" regular file directly in dir (version order). */
static int newest_kernel(const struct fs *fs, const char *dir, char *ver, size_t len,
			 struct err *e)
{
	char req[64];
	snprintf(req, sizeof(req), "ls -p %s", dir);
	char *out = NULL;
	int r = debugfs(fs, req, &out, e);
	if (r < 0)
		return r;
	ver[0] = '\0';
	char empty[] = "", *save = NULL;
	for (char *line = strtok_r(out ? out : empty, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		unsigned long mode;
		char name[256];
		if (sscanf(line, "/%*u/%lo/%*u/%*u/%255[^/]/", &mode, name) != 2 ||
		    (mode & 0170000) != 0100000 || strncmp(name, "vmlinuz-", 8) != 0 ||
		    !safe_fs_path(name) || strlen(name + 8) >= len)
			continue;
		if (!ver[0] || strverscmp(name + 8, ver) > 0)
			snprintf(ver, len, "%s", name + 8);
	}
	free(out);
	return 0;
}

static int find_initrd_for(const struct fs *fs, struct boot_files *b, struct err *e)
{
	char dir[PATH_MAX];
	const char *base;
	split(b->kernel, dir, sizeof(dir), &base);
	const char *ver = strncmp(base, "vmlinuz-", 8) == 0 ? base + 8 : NULL;
	if (!ver)
		return 0;
	const char *forms[] = { "%s/initrd.img-%s", "%s/initrd-%s.img", "%s/initramfs-%s.img" };
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		char cand[PATH_MAX * 2];
		snprintf(cand, sizeof(cand), forms[i], strcmp(dir, "/") ? dir : "", ver);
		struct node n;
		int r = find_file(fs, cand, b->initrd, sizeof(b->initrd), &n, e);
		if (r < 0)
			return r;
		if (n.type == NODE_FILE) {
			b->initrd_size = n.size;
			return 0;
		}
	}
	b->initrd[0] = '\0';
	return 0;
}

/* The Debian/Ubuntu links /vmlinuz, /boot/vmlinuz (and the initrd.img next to
 * them) first, else the newest /boot/vmlinuz-* or /vmlinuz-*. */
static int find_boot_files(const struct fs *fs, struct boot_files *b, bool *found,
			   struct err *e)
{
	*found = false;
	memset(b, 0, sizeof(*b));
	static const char *dirs[] = { "", "/boot" };
	for (size_t i = 0; i < 2; i++) {
		char start[64];
		struct node n;
		snprintf(start, sizeof(start), "%s/vmlinuz", dirs[i]);
		int r = find_file(fs, start, b->kernel, sizeof(b->kernel), &n, e);
		if (r < 0)
			return r;
		if (n.type != NODE_FILE)
			continue;
		b->kernel_size = n.size;
		snprintf(start, sizeof(start), "%s/initrd.img", dirs[i]);
		r = find_file(fs, start, b->initrd, sizeof(b->initrd), &n, e);
		if (r < 0)
			return r;
		if (n.type == NODE_FILE)
			b->initrd_size = n.size;
		else if ((r = find_initrd_for(fs, b, e)) < 0)
			return r;
		*found = true;
		return 0;
	}
	for (size_t i = 0; i < 2; i++) {
		char ver[200];
		int r = newest_kernel(fs, dirs[i][0] ? dirs[i] : "/", ver, sizeof(ver), e);
		if (r < 0)
			return r;
		if (!ver[0])
			continue;
		snprintf(b->kernel, sizeof(b->kernel), "%s/vmlinuz-%s", dirs[i], ver);
		struct node n;
		if ((r = fs_lookup(fs, b->kernel, &n, e)) < 0)
			return r;
		b->kernel_size = n.size;
		if ((r = find_initrd_for(fs, b, e)) < 0)
			return r;
		*found = true;
		return 0;
	}
	return 0;
}

/* dump <in> into tmp, check the size, fsync. The caller renames. */
static int dump_file(const struct fs *fs, const char *in, uint64_t size, const char *tmp,
		     struct err *e)
{
	char req[PATH_MAX * 2 + 32];
	unlink(tmp);
	snprintf(req, sizeof(req), "dump %s \"%s\"", in, tmp);
	char *out = NULL;
	int r = debugfs(fs, req, &out, e);
	free(out);
	if (r < 0)
		return r;
	int fd = open(tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		r = err_set(e, -errno, "extract %s: %s", in, strerror(errno));
	else if ((uint64_t)st.st_size != size)
		r = err_set(e, -EIO, "extract %s: got %lld of %llu bytes", in,
			    (long long)st.st_size, (unsigned long long)size);
	else if (fchmod(fd, 0644) < 0 || owner_claim_fd(fd) < 0 || fsync(fd) < 0)
		r = err_set(e, -errno, "extract %s: %s", in, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (r < 0)
		unlink(tmp);
	return r;
}

/* ---- driver ---- */

static int read_bootinfo(const char *info, int *root_part)
{
	char *s = NULL;
	size_t n = 0;
	int r = file_read_all(info, 4096, &s, &n);
	if (r < 0)
		return r;
	const char *p = strstr(s, "root_part=");
	r = -EINVAL;
	if (p) {
		char *end;
		long v = strtol(p + 10, &end, 10);
		if (end != p + 10 && v >= 0 && v <= MAX_PARTS) {
			*root_part = (int)v;
			r = 0;
		}
	}
	free(s);
	return r;
}

static int cmp_size(const void *a, const void *b)
{
	const struct image_part *x = a, *y = b;
	if (x->size != y->size)
		return x->size < y->size ? -1 : 1;
	return x->num - y->num;
}

struct found {
	int part;          /* where the kernel is */
	int root;
	struct boot_files b;
};

/* Opens candidate part as a debugfs device; scratch gets a path to remove. */
static int open_part(const struct disk *d, const struct image_part *p, struct fs *fs,
		     char *scratch, size_t slen, struct err *e)
{
	scratch[0] = '\0';
	if (!d->qcow2) {
		if (p->start)
			snprintf(fs->dev, sizeof(fs->dev), "%s?offset=%" PRIu64, d->path, p->start);
		else
			snprintf(fs->dev, sizeof(fs->dev), "%s", d->path);
		return 0;
	}
	if (p->size == 0) { /* whole-disk fs inside a qcow2: size from qemu-img info */
		return err_set(e, -ENOTSUP, "%s: a qcow2 without a partition table is not "
			       "supported; convert it to raw", d->path);
	}
	if (snprintf(scratch, slen, "%s.p%d.tmp", d->path, p->num) >= (int)slen)
		return err_set(e, -ENAMETOOLONG, "image path too long");
	int r = qcow2_copy_out(d->path, p->start, p->size, scratch, e);
	if (r < 0) {
		scratch[0] = '\0';
		return r;
	}
	snprintf(fs->dev, sizeof(fs->dev), "%s", scratch);
	return 0;
}

static int locate(const struct disk *d, struct found *f, const char *ktmp, const char *itmp,
		  struct err *e)
{
	uint8_t *head = malloc(HEAD_LEN);
	if (!head)
		return err_set(e, -ENOMEM, "out of memory");
	int r = read_range(d, 0, head, HEAD_LEN, e);
	struct image_part parts[MAX_PARTS];
	int n = r < 0 ? r : image_part_table_parse(head, HEAD_LEN, parts, MAX_PARTS);
	if (r == 0 && n < 0)
		r = err_set(e, n, "%s: unsupported partition table (%s)", d->path, strerror(-n));
	/* keep ext filesystems only: magic 0xEF53 at byte 56 of the superblock */
	int k = 0;
	for (int i = 0; r == 0 && i < n; i++) {
		uint8_t sb[512];
		if (parts[i].start + 1536 <= HEAD_LEN)
			memcpy(sb, head + parts[i].start + 1024, sizeof(sb));
		else if ((r = read_range(d, parts[i].start + 1024, sb, sizeof(sb), e)) < 0)
			break;
		if (sb[56] == 0x53 && sb[57] == 0xef)
			parts[k++] = parts[i];
	}
	free(head);
	if (r < 0)
		return r;
	if (k == 0)
		return err_set(e, -ENOENT, "%s: no ext2/3/4 partition found", d->path);
	qsort(parts, (size_t)k, sizeof(parts[0]), cmp_size);

	for (int i = 0; i < k; i++) {
		struct fs fs;
		char scratch[PATH_MAX];
		r = open_part(d, &parts[i], &fs, scratch, sizeof(scratch), e);
		if (r < 0)
			return r;
		bool found = false;
		r = find_boot_files(&fs, &f->b, &found, e);
		if (r == 0 && found) {
			struct node etc;
			r = fs_lookup(&fs, "/etc", &etc, e);
			f->part = parts[i].num;
			f->root = parts[i].num;
			if (r == 0 && etc.type != NODE_DIR) {
				/* a separate /boot: root is the lowest other ext partition */
				int best = -1;
				for (int j = 0; j < k; j++)
					if (j != i && (best < 0 || parts[j].num < best))
						best = parts[j].num;
				if (best >= 0)
					f->root = best;
			}
			if (r == 0)
				r = dump_file(&fs, f->b.kernel, f->b.kernel_size, ktmp, e);
			if (r == 0 && f->b.initrd[0])
				r = dump_file(&fs, f->b.initrd, f->b.initrd_size, itmp, e);
		}
		if (scratch[0])
			unlink(scratch);
		if (r < 0 || found)
			return r;
	}
	return err_set(e, -ENOENT, "%s: no kernel (/vmlinuz, /boot/vmlinuz or "
		       "/boot/vmlinuz-*) in any ext partition", d->path);
}

static int sniff_qcow2(int fd, bool *qcow2)
{
	unsigned char m[4] = {0};
	ssize_t n = pread(fd, m, sizeof(m), 0);
	if (n < 0)
		return -errno;
	*qcow2 = n == 4 && memcmp(m, "QFI\xfb", 4) == 0;
	return 0;
}

/* Renames the dumped files into place bracketed by a marker, so a crash
 * between the renames is recognised as ours (redo) and not as a kernel the
 * user put next to the image (keep). */
static int publish(const char *path, const struct found *f, int *root_part, struct err *e)
{
	char kdst[PATH_MAX], idst[PATH_MAX], ktmp[PATH_MAX + 8], itmp[PATH_MAX + 8],
	     info[PATH_MAX], mark[PATH_MAX];
	snprintf(kdst, sizeof(kdst), "%s.vmlinuz", path);
	snprintf(idst, sizeof(idst), "%s.initrd", path);
	snprintf(ktmp, sizeof(ktmp), "%s.tmp", kdst);
	snprintf(itmp, sizeof(itmp), "%s.tmp", idst);
	snprintf(info, sizeof(info), "%s.bootinfo", path);
	snprintf(mark, sizeof(mark), "%s.extracting", path);
	int r = file_write_atomic(mark, "", 0, 0644);
	if (r < 0)
		return err_set(e, r, "write %s: %s", mark, strerror(-r));
	if (rename(ktmp, kdst) < 0)
		r = err_set(e, -errno, "rename %s: %s", ktmp, strerror(errno));
	else if (f->b.initrd[0] && rename(itmp, idst) < 0)
		r = err_set(e, -errno, "rename %s: %s", itmp, strerror(errno));
	else if (!f->b.initrd[0] && unlink(idst) < 0 && errno != ENOENT)
		r = err_set(e, -errno, "remove stale %s: %s", idst, strerror(errno));
	if (r == 0) {
		char text[PATH_MAX * 2 + 96];
		int n = snprintf(text, sizeof(text),
				 "root_part=%d\nkernel_part=%d\nkernel=%s\ninitrd=%s\n",
				 f->root, f->part, f->b.kernel, f->b.initrd);
		r = file_write_atomic(info, text, (size_t)n, 0644);
		if (r < 0)
			err_set(e, r, "write %s: %s", info, strerror(-r));
	}
	if (r < 0) {
		unlink(kdst);
		unlink(idst);
	} else {
		*root_part = f->root;
	}
	unlink(ktmp);
	unlink(itmp);
	unlink(mark);
	return r;
}

int image_extract_boot(const char *path, int *root_part, struct err *e)
{
	char kdst[PATH_MAX], ktmp[PATH_MAX + 8], itmp[PATH_MAX + 8], info[PATH_MAX],
	     mark[PATH_MAX];
	if (snprintf(kdst, sizeof(kdst), "%s.vmlinuz", path) >= (int)sizeof(kdst) ||
	    snprintf(info, sizeof(info), "%s.bootinfo", path) >= (int)sizeof(info) ||
	    snprintf(mark, sizeof(mark), "%s.extracting", path) >= (int)sizeof(mark))
		return err_set(e, -ENAMETOOLONG, "image path too long: %s", path);
	snprintf(ktmp, sizeof(ktmp), "%s.vmlinuz.tmp", path);
	snprintf(itmp, sizeof(itmp), "%s.initrd.tmp", path);
	if (strchr(path, '"') || strchr(path, '?') || strchr(path, '\n'))
		return err_set(e, -EINVAL, "image %s: path must not contain '\"', '?' or newlines",
			       path);
	if (read_bootinfo(info, root_part) == 0)
		return 0;
	if (path_exists(kdst) > 0 && path_exists(mark) <= 0) {
		/* user-supplied kernel: never overwritten; root per the reference */
		*root_part = 1;
		return 0;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, -errno, "image %s: %s", path, strerror(errno));
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int r = -errno;
			close(fd);
			return err_set(e, r, "lock %s: %s", path, strerror(-r));
		}
	}
	int r = 0;
	if (read_bootinfo(info, root_part) == 0) /* another process just did it */
		goto out;
	struct disk d = { .path = path };
	if ((r = sniff_qcow2(fd, &d.qcow2)) < 0) {
		err_set(e, r, "read %s: %s", path, strerror(-r));
		goto out;
	}
	struct found f;
	memset(&f, 0, sizeof(f));
	r = locate(&d, &f, ktmp, itmp, e);
	if (r == 0)
		r = publish(path, &f, root_part, e);
	if (r < 0) {
		unlink(ktmp);
		unlink(itmp);
		err_prefix(e, "extract kernel from %s: ", path);
	}
out:
	close(fd);
	return r;
}

int image_boot_cmdline(int root_part, char *buf, size_t len)
{
	int n = root_part > 0 ? snprintf(buf, len, "console=ttyS0 root=/dev/vda%d rw", root_part)
			      : snprintf(buf, len, "console=ttyS0 root=/dev/vda rw");
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
