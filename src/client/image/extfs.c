/* image/extfs.c - the kernel and initrd inside one ext2/3/4 filesystem, read
 * with e2fsprogs' libext2fs (read-only, never mounted, no debugfs).
 *
 * Before libext2fs sees a superblock we check the few fields that size its
 * allocations (block count, block size, group geometry) against the
 * partition that holds it, so a crafted superblock cannot make it allocate
 * or read gigabytes. Paths inside the image are resolved one symlink at a
 * time (at most EXT_MAX_HOPS), so we know the kernel's real name and can pick
 * the initrd of the same version. */
#include "client/image/int.h"

#include "util/err.h"

#include <errno.h>
#include <et/com_err.h>
#include <ext2fs/ext2fs.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXT_MAX_HOPS 8
#define EXT_MAX_GROUPS (1u << 20)   /* 64 MiB of group descriptors at most */
#define EXT_MAX_MATCHES 1024        /* vmlinuz-* entries looked at in one directory */

struct extfs {
	ext2_filsys fs;
};

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

bool ext_sb_magic(const uint8_t sb[EXT_SB_LEN])
{
	return le16(sb + 0x38) == 0xef53;
}

int ext_sb_check(const uint8_t sb[EXT_SB_LEN], uint64_t part_size)
{
	if (!ext_sb_magic(sb))
		return -EINVAL;
	uint32_t log = le32(sb + 0x18), bpg = le32(sb + 0x20), ipg = le32(sb + 0x28);
	uint32_t first = le32(sb + 0x14), inodes = le32(sb + 0x00);
	if (log > 6)
		return -EINVAL;  /* blocks of 1 KiB .. 64 KiB */
	uint64_t bsize = 1024ull << log;
	uint64_t blocks = le32(sb + 0x04);
	if (le32(sb + 0x60) & 0x80) /* INCOMPAT_64BIT */
		blocks |= (uint64_t)le32(sb + 0x150) << 32;
	if (blocks == 0 || blocks > part_size / bsize || first >= blocks)
		return -ERANGE;  /* the filesystem must fit in its partition */
	if (bpg == 0 || bpg > 8 * bsize || ipg == 0 || ipg > 8 * bsize)
		return -EINVAL;
	uint64_t groups = (blocks - first + bpg - 1) / bpg;
	if (groups > EXT_MAX_GROUPS || inodes > groups * ipg)
		return -EINVAL;
	return 0;
}

static int fs_err(struct err *e, errcode_t ec, const char *what)
{
	return err_set(e, -EIO, "%s: %s", what, error_message(ec));
}

int extfs_open(const char *dev, uint64_t offset, struct extfs **out, struct err *e)
{
	char opts[40];
	snprintf(opts, sizeof(opts), "offset=%" PRIu64, offset);
	struct extfs *x = calloc(1, sizeof(*x));
	if (!x)
		return err_set(e, -ENOMEM, "out of memory");
	errcode_t ec = ext2fs_open2(dev, opts, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &x->fs);
	if (ec) {
		free(x);
		return fs_err(e, ec, "open ext filesystem");
	}
	*out = x;
	return 0;
}

void extfs_close(struct extfs *x)
{
	if (!x)
		return;
	ext2fs_close_free(&x->fs);
	free(x);
}

/* ---- paths ---- */

/* Collapses "//", "." and ".." of an absolute path in place (never above /). */
static void normalize(char *path, size_t len)
{
	char out[EXT_PATH_MAX];
	size_t o = 0;
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		size_t n = strcspn(p, "/");
		if (n == 0)
			break;
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
		} else if (!(n == 1 && p[0] == '.') && o + n + 2 < sizeof(out)) {
			out[o++] = '/';
			memcpy(out + o, p, n);
			o += n;
		}
		p += n;
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = '\0';
	snprintf(path, len, "%s", out);
}

/* The directory part of an absolute path ("/" for "/x"). */
static void dir_of(const char *path, char *dir, size_t len)
{
	snprintf(dir, len, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		dir[1] = '\0';
	else if (slash)
		*slash = '\0';
}

static const char *base_of(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* A symlink's target text (fast, inline-data or block symlinks). */
static int read_link(ext2_filsys fs, ext2_ino_t ino, const struct ext2_inode *in, char *buf,
		     size_t len)
{
	uint64_t size = EXT2_I_SIZE(in);
	if (size == 0 || size >= len)
		return -ENAMETOOLONG;
	if (ext2fs_is_fast_symlink((struct ext2_inode *)in)) {
		memcpy(buf, in->i_block, (size_t)size); /* size < sizeof(i_block) */
	} else if (in->i_flags & EXT4_INLINE_DATA_FL) {
		size_t isz = 0;
		if (ext2fs_inline_data_size(fs, ino, &isz) || isz != size)
			return -EINVAL;
		if (ext2fs_inline_data_get(fs, ino, (struct ext2_inode *)in, buf, &isz))
			return -EIO;
	} else {
		ext2_file_t f;
		unsigned got = 0;
		if (ext2fs_file_open(fs, ino, 0, &f))
			return -EIO;
		errcode_t ec = ext2fs_file_read(f, buf, (unsigned)size, &got);
		ext2fs_file_close(f);
		if (ec || got != size)
			return -EIO;
	}
	buf[size] = '\0';
	return strlen(buf) == size ? 0 : -EINVAL; /* no NUL inside a link */
}

/* What path names: a regular file (ino, size), or nothing usable (-ENOENT).
 * Symlinks are followed, at most EXT_MAX_HOPS; path ends up as the final name. */
static int lookup(struct extfs *x, char *path, size_t len, ext2_ino_t *ino, uint64_t *size)
{
	for (int hop = 0; hop <= EXT_MAX_HOPS; hop++) {
		struct ext2_inode in;
		if (ext2fs_namei(x->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, ino) ||
		    ext2fs_read_inode(x->fs, *ino, &in))
			return -ENOENT;
		if (LINUX_S_ISREG(in.i_mode)) {
			*size = EXT2_I_SIZE(&in);
			return 0;
		}
		char target[EXT_PATH_MAX], next[EXT_PATH_MAX * 2];
		if (!LINUX_S_ISLNK(in.i_mode) || read_link(x->fs, *ino, &in, target, sizeof(target)) < 0)
			return -ENOENT;
		if (target[0] == '/') {
			snprintf(next, sizeof(next), "%s", target);
		} else {
			char dir[EXT_PATH_MAX];
			dir_of(path, dir, sizeof(dir));
			snprintf(next, sizeof(next), "%s/%s", dir, target);
		}
		if (strlen(next) >= len)
			return -ENOENT;
		snprintf(path, len, "%s", next);
		normalize(path, len);
	}
	return -ENOENT; /* a link loop */
}

/* lookup(), and on a separate /boot filesystem a link written "/boot/x"
 * names "/x" there, so that is tried as well. */
static int find_file(struct extfs *x, const char *start, char *path, size_t len, ext2_ino_t *ino,
		     uint64_t *size)
{
	snprintf(path, len, "%s", start);
	if (lookup(x, path, len, ino, size) == 0)
		return 0;
	if (strncmp(path, "/boot/", 6) != 0)
		return -ENOENT;
	memmove(path, path + 5, strlen(path + 5) + 1);
	return lookup(x, path, len, ino, size);
}

struct newest {
	ext2_filsys fs;
	char ver[200];
	int seen;
};

static int newest_cb(struct ext2_dir_entry *d, int offset, int blocksize, char *buf, void *priv)
{
	struct newest *n = priv;
	int nlen = ext2fs_dirent_name_len(d);
	char name[256];
	if (nlen <= 8 || nlen >= (int)sizeof(name) || n->seen >= EXT_MAX_MATCHES)
		return 0;
	memcpy(name, d->name, (size_t)nlen);
	name[nlen] = '\0';
	struct ext2_inode in;
	if (strncmp(name, "vmlinuz-", 8) != 0 || strchr(name, '/') || strlen(name) != (size_t)nlen ||
	    strlen(name + 8) >= sizeof(n->ver))
		return 0;
	n->seen++;
	if (ext2fs_read_inode(n->fs, d->inode, &in) || !LINUX_S_ISREG(in.i_mode))
		return 0;
	if (!n->ver[0] || strverscmp(name + 8, n->ver) > 0)
		snprintf(n->ver, sizeof(n->ver), "%s", name + 8);
	return 0;
}

/* Newest "vmlinuz-<ver>" regular file directly in dir (version order). */
static void newest_kernel(struct extfs *x, const char *dir, char *ver, size_t len)
{
	struct newest n = { .fs = x->fs };
	ext2_ino_t ino;
	ver[0] = '\0';
	if (ext2fs_namei(x->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, dir, &ino) ||
	    ext2fs_dir_iterate(x->fs, ino, 0, NULL, newest_cb, &n))
		return;
	snprintf(ver, len, "%s", n.ver);
}

static void find_initrd_for(struct extfs *x, struct boot_probe *b)
{
	char dir[EXT_PATH_MAX];
	dir_of(b->kernel, dir, sizeof(dir));
	const char *base = base_of(b->kernel);
	const char *ver = strncmp(base, "vmlinuz-", 8) == 0 ? base + 8 : NULL;
	static const char *const forms[] = { "%s/initrd.img-%s", "%s/initrd-%s.img",
					     "%s/initramfs-%s.img" };
	b->initrd[0] = '\0';
	for (size_t i = 0; ver && i < sizeof(forms) / sizeof(forms[0]); i++) {
		char cand[EXT_PATH_MAX * 2];
		ext2_ino_t ino;
		snprintf(cand, sizeof(cand), forms[i], strcmp(dir, "/") ? dir : "", ver);
		if (find_file(x, cand, b->initrd, sizeof(b->initrd), &ino, &b->initrd_size) == 0)
			return;
	}
	b->initrd[0] = '\0';
}

/* The Debian/Ubuntu links /vmlinuz, /boot/vmlinuz (and the initrd.img next
 * to them) first, else the newest /boot/vmlinuz-* or /vmlinuz-*. */
bool extfs_find_boot(struct extfs *x, struct boot_probe *b)
{
	static const char *const dirs[] = { "", "/boot" };
	ext2_ino_t ino;
	for (size_t i = 0; i < 2; i++) {
		char start[32];
		snprintf(start, sizeof(start), "%s/vmlinuz", dirs[i]);
		if (find_file(x, start, b->kernel, sizeof(b->kernel), &ino, &b->kernel_size) < 0)
			continue;
		snprintf(start, sizeof(start), "%s/initrd.img", dirs[i]);
		if (find_file(x, start, b->initrd, sizeof(b->initrd), &ino, &b->initrd_size) < 0)
			find_initrd_for(x, b);
		return true;
	}
	for (size_t i = 0; i < 2; i++) {
		char ver[200];
		newest_kernel(x, dirs[i][0] ? dirs[i] : "/", ver, sizeof(ver));
		if (!ver[0])
			continue;
		snprintf(b->kernel, sizeof(b->kernel), "%s/vmlinuz-%s", dirs[i], ver);
		if (lookup(x, b->kernel, sizeof(b->kernel), &ino, &b->kernel_size) < 0)
			continue;
		find_initrd_for(x, b);
		return true;
	}
	return false;
}

bool extfs_has_dir(struct extfs *x, const char *path)
{
	ext2_ino_t ino;
	struct ext2_inode in;
	return ext2fs_namei(x->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, &ino) == 0 &&
	       ext2fs_read_inode(x->fs, ino, &in) == 0 && LINUX_S_ISDIR(in.i_mode);
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int copy_out(ext2_file_t f, uint64_t size, int fd, struct err *e)
{
	enum { CHUNK = 1 << 20 };
	char *buf = malloc(CHUNK);
	if (!buf)
		return err_set(e, -ENOMEM, "out of memory");
	int r = 0;
	for (uint64_t done = 0; r == 0 && done < size;) {
		unsigned want = size - done < CHUNK ? (unsigned)(size - done) : CHUNK, got = 0;
		errcode_t ec = ext2fs_file_read(f, buf, want, &got);
		if (ec)
			r = fs_err(e, ec, "read");
		else if (got == 0)
			r = err_set(e, -EIO, "read: file ends early");
		else if ((r = write_all(fd, buf, got)) < 0)
			err_set(e, r, "write: %s", strerror(-r));
		done += got;
	}
	free(buf);
	return r;
}

int extfs_extract(struct extfs *x, const char *path, uint64_t max, const char *dst, struct err *e)
{
	char p[EXT_PATH_MAX];
	ext2_ino_t ino;
	uint64_t size;
	snprintf(p, sizeof(p), "%s", path);
	if (lookup(x, p, sizeof(p), &ino, &size) < 0)
		return err_set(e, -ENOENT, "%s: not found", path);
	if (size == 0 || size > max)
		return err_set(e, -EFBIG, "%s: %" PRIu64 " bytes (want 1..%" PRIu64 ")", path, size, max);
	ext2_file_t f;
	errcode_t ec = ext2fs_file_open(x->fs, ino, 0, &f);
	if (ec)
		return fs_err(e, ec, path);
	int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	int r = fd < 0 ? err_set(e, -errno, "create %s: %s", dst, strerror(errno)) : 0;
	if (r == 0)
		r = copy_out(f, size, fd, e);
	if (r == 0 && fsync(fd) < 0)
		r = err_set(e, -errno, "fsync %s: %s", dst, strerror(errno));
	if (fd >= 0)
		close(fd);
	ext2fs_file_close(f);
	if (r < 0) {
		unlink(dst);
		return err_prefix(e, "extract %s: ", path);
	}
	return 0;
}
