/* image/import.c - bringing a disk image into the cache: hash it, validate
 * it, read its kernel out (or take the one the user put beside it), publish.
 *
 * A local image is copied in (holes stay holes) rather than used in place:
 * member disks are overlays of the base, so the base must never change under
 * them, and the VMM may only open files inside the cache or the store. Its
 * identity (device, inode, size, mtime, ctime and path, plus those of a
 * kernel beside it) maps to the digest computed at the copy, so the next
 * `up` of an unchanged file costs one stat(). */
#include "client/image/int.h"

#include "util/err.h"
#include "util/fileio.h"
#include "util/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1u << 20)

static const unsigned char zeros[CHUNK];

static void hex(const unsigned char *in, unsigned n, char *out)
{
	for (unsigned i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", in[i]);
	out[2 * n] = '\0';
}

int hasher_init(struct hasher *h, const char *algo2)
{
	h->a = EVP_MD_CTX_new();
	h->b = algo2 && !strcmp(algo2, "sha512") ? EVP_MD_CTX_new() : NULL;
	if (!h->a || !EVP_DigestInit_ex(h->a, EVP_sha256(), NULL))
		return -ENOMEM;
	if (h->b && !EVP_DigestInit_ex(h->b, EVP_sha512(), NULL))
		return -ENOMEM;
	return 0;
}

int hasher_update(struct hasher *h, const void *p, size_t n)
{
	if (!EVP_DigestUpdate(h->a, p, n) || (h->b && !EVP_DigestUpdate(h->b, p, n)))
		return -ENOMEM;
	return 0;
}

int hasher_final(struct hasher *h, char a[65], char b[129])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	if (!EVP_DigestFinal_ex(h->a, md, &n))
		return -ENOMEM;
	hex(md, n, a);
	if (h->b) {
		if (!EVP_DigestFinal_ex(h->b, md, &n))
			return -ENOMEM;
		hex(md, n, b);
	}
	return 0;
}

void hasher_fini(struct hasher *h)
{
	EVP_MD_CTX_free(h->a);
	EVP_MD_CTX_free(h->b);
}

static int hash_zeros(struct hasher *h, uint64_t n)
{
	int r = 0;
	for (; r == 0 && n > 0; n -= n < CHUNK ? n : CHUNK)
		r = hasher_update(h, zeros, n < CHUNK ? (size_t)n : CHUNK);
	return r;
}

/* Reads [off, off+len) of src, hashes it and writes it to dst at the same
 * offset, skipping all-zero chunks (they stay holes). */
static int copy_data(int src, int dst, uint64_t off, uint64_t len, struct hasher *h, char *buf)
{
	while (len > 0) {
		size_t want = len < CHUNK ? (size_t)len : CHUNK;
		ssize_t n = pread(src, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ESTALE; /* the file shrank while we read it */
		if (hasher_update(h, buf, (size_t)n) < 0)
			return -ENOMEM;
		if (dst >= 0 && memcmp(buf, zeros, (size_t)n) != 0 &&
		    pwrite(dst, buf, (size_t)n, (off_t)off) != n)
			return errno ? -errno : -EIO;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

/* Walks src's data and holes (SEEK_DATA/SEEK_HOLE; all data without them). */
static int copy_sparse(int src, int dst, uint64_t total, struct hasher *h, char *buf)
{
	uint64_t off = 0;
	int r = 0;
	while (r == 0 && off < total) {
		off_t data = lseek(src, (off_t)off, SEEK_DATA);
		if (data < 0)
			data = errno == ENXIO ? (off_t)total : (off_t)off;
		if ((uint64_t)data > total)
			data = (off_t)total;
		r = hash_zeros(h, (uint64_t)data - off);
		if (r < 0 || (uint64_t)data >= total)
			break;
		off_t hole = lseek(src, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > total)
			hole = (off_t)total;
		r = copy_data(src, dst, (uint64_t)data, (uint64_t)(hole - data), h, buf);
		off = (uint64_t)hole;
	}
	return r;
}

int hash_copy(int src, int dst, char sha256_hex[65], const char *algo2, char hex2[129],
	      uint64_t *size, struct err *e)
{
	struct stat st;
	if (fstat(src, &st) < 0)
		return err_set(e, -errno, "stat: %s", strerror(errno));
	struct hasher h = { 0 };
	char *buf = malloc(CHUNK);
	int r = buf ? hasher_init(&h, algo2) : -ENOMEM;
	if (r == 0)
		r = copy_sparse(src, dst, (uint64_t)st.st_size, &h, buf);
	if (r == 0 && dst >= 0 && (ftruncate(dst, st.st_size) < 0 || fsync(dst) < 0))
		r = -errno;
	if (r == 0)
		r = hasher_final(&h, sha256_hex, hex2);
	hasher_fini(&h);
	free(buf);
	if (size)
		*size = (uint64_t)st.st_size;
	if (r == -ESTALE)
		return err_set(e, r, "the file changed while it was being read");
	return r < 0 ? err_set(e, r, "copy: %s", strerror(-r)) : 0;
}

/* ---- validation ---- */

struct disk_fmt {
	char format[8];
	uint64_t vsize;
};

static int check_disk(const char *path, const char *what, struct disk_fmt *f, struct err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return err_set(e, -errno, "%s: %s", what, strerror(errno));
	unsigned char m[4] = { 0 };
	ssize_t n = pread(fd, m, sizeof(m), 0);
	int r = 0;
	if (n == 4 && qcow2_magic(m, 4)) {
		struct qcow2_info q;
		r = qcow2_check_base(fd, what, &q, e);
		snprintf(f->format, sizeof(f->format), "qcow2");
		f->vsize = q.size;
	} else if (st.st_size < 512) {
		r = err_set(e, -EINVAL, "%s: %lld bytes is not a disk image", what,
			    (long long)st.st_size);
	} else {
		snprintf(f->format, sizeof(f->format), "raw");
		f->vsize = (uint64_t)st.st_size;
	}
	close(fd);
	return r;
}

/* Copies a user-supplied boot file into tmp/name and hashes it. */
static int take_file(const char *src, const char *tmp, const char *name, char sha[65],
		     struct err *e)
{
	char dst[PATH_MAX];
	if (snprintf(dst, sizeof(dst), "%s/%s", tmp, name) >= (int)sizeof(dst))
		return err_set(e, -ENAMETOOLONG, "path too long");
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return err_set(e, -errno, "%s: %s", src, strerror(errno));
	int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	int r = out < 0 ? err_set(e, -errno, "create %s: %s", dst, strerror(errno))
			: hash_copy(in, out, sha, NULL, NULL, NULL, e);
	close(in);
	if (out >= 0)
		close(out);
	return r < 0 ? err_prefix(e, "%s: ", src) : 0;
}

/* The kernel (and initrd) the user put beside the image; the image's
 * digest then covers all of them. */
static int user_boot(const char *tmp, const struct import *im, char digest[DIGEST_MAX],
		     struct err *e)
{
	char ks[65], is[65] = "-";
	int r = take_file(im->kernel, tmp, "vmlinuz", ks, e);
	if (r == 0 && im->initrd && *im->initrd)
		r = take_file(im->initrd, tmp, "initrd", is, e);
	if (r < 0)
		return r;
	char all[256], h[65];
	int n = snprintf(all, sizeof(all), "disk %s\nkernel %s\ninitrd %s\n", im->disk_sha, ks, is);
	sha256_hex_prefix(all, (size_t)n, 32, h);
	snprintf(digest, DIGEST_MAX, "sha256:%s", h);
	return 0;
}

/* "console=ttyS0 root=/dev/vda<N> rw" for a root partition (0: whole disk). */
static void boot_cmdline(int root_part, char *buf, size_t len)
{
	if (root_part > 0)
		snprintf(buf, len, "console=ttyS0 root=/dev/vda%d rw", root_part);
	else
		snprintf(buf, len, "console=ttyS0 root=/dev/vda rw");
}

static int write_meta(const struct cache *c, const char *tmp, const struct import *im,
		      const struct disk_fmt *f, const struct boot_probe *b, const char *digest,
		      struct err *e)
{
	char cmdline[128];
	boot_cmdline(im->kernel ? 1 : b->root_part, cmdline, sizeof(cmdline));
	bool initrd = im->kernel ? im->initrd && *im->initrd : b->initrd[0] != '\0';
	json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:i, s:i, s:s, s:s, s:s, s:I}",
			      "version", 1, "digest", digest, "kind", im->kind, "disk", "disk",
			      "format", f->format, "virtual_size", (json_int_t)f->vsize,
			      "kernel", "vmlinuz", "initrd", initrd ? "initrd" : "",
			      "cmdline", cmdline, "root_part", im->kernel ? 1 : b->root_part,
			      "kernel_part", im->kernel ? 0 : b->kernel_part,
			      "root_uuid", b->root_uuid, "kernel_path", im->kernel ? im->kernel : b->kernel,
			      "initrd_path", im->kernel ? (im->initrd ? im->initrd : "") : b->initrd,
			      "created_at", (json_int_t)time(NULL));
	return cache_image_finish(c, tmp, j, e);
}

static int validate(const struct cache *c, const char *tmp, struct import *im,
		    struct disk_fmt *f, struct boot_probe *b, char digest[DIGEST_MAX],
		    struct err *e)
{
	char disk[PATH_MAX];
	snprintf(disk, sizeof(disk), "%s/disk", tmp);
	memset(b, 0, sizeof(*b));
	int r = check_disk(disk, im->name, f, e);
	if (r < 0)
		return r;
	if (im->kernel)
		return user_boot(tmp, im, digest, e);
	image_say(im->progress, im->data, "reading the kernel out of %s", im->name);
	struct probe_disk d = { .path = disk, .qcow2 = !strcmp(f->format, "qcow2"), .vsize = f->vsize };
	r = probe_boot_isolated(&d, tmp, c->uid, c->gid, b, e);
	if (r < 0)
		return err_prefix(e, "%s: ", im->name);
	snprintf(digest, DIGEST_MAX, "sha256:%s", im->disk_sha);
	return 0;
}

int import_finish(const struct cache *c, const char *tmp, struct import *im,
		  struct image_info *out, struct err *e)
{
	struct disk_fmt f;
	struct boot_probe b;
	char digest[DIGEST_MAX];
	int r = validate(c, tmp, im, &f, &b, digest, e);
	if (r == 0)
		r = write_meta(c, tmp, im, &f, &b, digest, e);
	if (r == 0)
		r = cache_publish(c, tmp, digest, e);
	if (r < 0) {
		rm_rf(tmp); /* an image that fails validation is not kept */
		return r;
	}
	struct image_ref ref = { .created_at = time(NULL) };
	snprintf(ref.key, sizeof(ref.key), "%s", im->key);
	snprintf(ref.name, sizeof(ref.name), "%s", im->name);
	snprintf(ref.kind, sizeof(ref.kind), "%s", im->kind);
	snprintf(ref.source, sizeof(ref.source), "%s", im->source);
	snprintf(ref.digest, sizeof(ref.digest), "%s", digest);
	r = cache_ref_write(c, &ref, e);
	return r < 0 ? r : cache_image_load(c, digest, im->name, out, e);
}

/* ---- local paths ---- */

struct local {
	char path[PATH_MAX];
	char kernel[PATH_MAX + 16], initrd[PATH_MAX + 16];  /* beside it, or "" */
	char key[REF_KEY_MAX];
};

static bool readable_file(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, R_OK) == 0;
}

/* A kernel the user put beside the image: <path>.vmlinuz (unless an older
 * fleetbox extracted it there: <path>.bootinfo) or vmlinuz in its directory. */
static void find_user_kernel(struct local *l)
{
	char dir[PATH_MAX], info[PATH_MAX + 16];
	snprintf(dir, sizeof(dir), "%s", l->path);
	dirname(dir);
	snprintf(info, sizeof(info), "%s.bootinfo", l->path);
	snprintf(l->kernel, sizeof(l->kernel), "%s.vmlinuz", l->path);
	snprintf(l->initrd, sizeof(l->initrd), "%s.initrd", l->path);
	if (readable_file(l->kernel) && path_exists(info) <= 0) {
		if (!readable_file(l->initrd))
			l->initrd[0] = '\0';
		return;
	}
	snprintf(l->kernel, sizeof(l->kernel), "%s/vmlinuz", dir);
	snprintf(l->initrd, sizeof(l->initrd), "%s/initrd.img", dir);
	if (!readable_file(l->kernel))
		l->kernel[0] = l->initrd[0] = '\0';
	else if (!readable_file(l->initrd))
		l->initrd[0] = '\0';
}

static int ident(char *buf, size_t len, const char *p)
{
	struct stat st;
	if (!*p)
		return snprintf(buf, len, "-\n");
	if (stat(p, &st) < 0)
		return -errno;
	return snprintf(buf, len, "%s %llu %llu %lld %lld.%09ld %lld.%09ld\n", p,
			(unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
			(long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
			(long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
}

static int local_key(struct local *l)
{
	char all[3 * (PATH_MAX + 128)], h[33];
	size_t n = 0;
	const char *parts[] = { l->path, l->kernel, l->initrd };
	for (size_t i = 0; i < 3; i++) {
		int k = ident(all + n, sizeof(all) - n, parts[i]);
		if (k < 0)
			return k;
		n += (size_t)k < sizeof(all) - n ? (size_t)k : sizeof(all) - n - 1;
	}
	sha256_hex_prefix(all, n, 16, h);
	snprintf(l->key, sizeof(l->key), "path-%s", h);
	return 0;
}

/* Older refs of the same path (the file changed since) are dropped. */
static void drop_stale_path_refs(const struct cache *c, const struct local *l)
{
	struct image_ref *refs;
	size_t n;
	if (cache_ref_list(c, &refs, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(refs[i].kind, "path") && !strcmp(refs[i].source, l->path) &&
		    strcmp(refs[i].key, l->key) != 0)
			cache_ref_remove(c, refs[i].key);
	free(refs);
}

static int copy_in(const struct cache *c, struct local *l, const char *tmp, struct import *im,
		   struct err *e)
{
	char disk[PATH_MAX];
	snprintf(disk, sizeof(disk), "%s/disk", tmp);
	int in = open(l->path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return err_set(e, -errno, "image %s: %s", l->path, strerror(errno));
	struct stat st;
	fstat(in, &st);
	image_say(im->progress, im->data, "importing %s into the image cache (%.1f MiB)", l->path,
		  (double)st.st_size / (1 << 20));
	int out = open(disk, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	int r = out < 0 ? err_set(e, -errno, "create %s: %s", disk, strerror(errno))
			: hash_copy(in, out, im->disk_sha, NULL, NULL, NULL, e);
	close(in);
	if (out >= 0)
		close(out);
	return r < 0 ? err_prefix(e, "image %s: ", l->path) : 0;
}

static int import_locked(const struct cache *c, struct local *l, image_progress_fn progress,
			 void *data, struct image_info *out, struct err *e)
{
	const char *base = strrchr(l->path, '/') + 1;
	if (cache_ref_load(c, l->key, out, e) == 0) /* another process just did it */
		return 0;
	char tmp[PATH_MAX];
	int r = cache_tmpdir(c, l->key, tmp, sizeof(tmp), e);
	struct import im = { .key = l->key, .name = base, .kind = "path", .source = l->path,
			     .kernel = l->kernel[0] ? l->kernel : NULL, .initrd = l->initrd,
			     .progress = progress, .data = data };
	if (r == 0 && (r = copy_in(c, l, tmp, &im, e)) < 0)
		rm_rf(tmp);
	if (r == 0)
		r = import_finish(c, tmp, &im, out, e);
	if (r == 0)
		drop_stale_path_refs(c, l);
	return r;
}

int import_local(const struct cache *c, const char *path, image_progress_fn progress,
		 void *data, struct image_info *out, struct err *e)
{
	struct local l;
	memset(&l, 0, sizeof(l));
	if (!realpath(path, l.path))
		return err_set(e, -errno, "image %s: %s", path, strerror(errno));
	if (!readable_file(l.path))
		return err_set(e, -EINVAL, "image %s: not a readable regular file", path);
	find_user_kernel(&l);
	int r = local_key(&l);
	if (r < 0)
		return err_set(e, r, "image %s: %s", path, strerror(-r));
	if (cache_ref_load(c, l.key, out, e) == 0)
		return 0;
	int fd = cache_lock(c, l.key, LOCK_EX, progress, data, l.path, e);
	if (fd < 0)
		return fd;
	r = import_locked(c, &l, progress, data, out, e);
	close(fd);
	return r;
}
