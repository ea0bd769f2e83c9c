/* image/qcow2.c - the little of a qcow2 header we read ourselves.
 *
 * Everything else about qcow2 (L1/L2 tables, compression, refcounts) is
 * QEMU's business; we only need the virtual size, and to refuse what would
 * make QEMU open files outside the cache: a backing file or an external
 * data file. Every field is range-checked against the file size before use;
 * the parser is pure so the fuzzer can drive it (test/fuzz/fuzz_image.c). */
#include "client/image/int.h"

#include "util/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define QCOW2_V2_LEN 72u
#define QCOW2_V3_LEN 104u
#define INCOMPAT_CORRUPT (1ull << 1)
#define INCOMPAT_DATA_FILE (1ull << 2)
#define INCOMPAT_KNOWN 0x1full  /* dirty, corrupt, data file, compression, extended L2 */

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

bool qcow2_magic(const void *buf, size_t len)
{
	return len >= 4 && memcmp(buf, "QFI\xfb", 4) == 0;
}

static int check_v3(const uint8_t *h, size_t len, uint64_t file_size, uint32_t cluster,
		    struct qcow2_info *out)
{
	if (len < QCOW2_V3_LEN || file_size < QCOW2_V3_LEN)
		return -EINVAL;
	out->incompat = be64(h + 72);
	uint32_t refcount_order = be32(h + 96), hlen = be32(h + 100);
	if (refcount_order > 6 || hlen < QCOW2_V3_LEN || hlen > cluster || hlen > file_size)
		return -EINVAL;
	out->header_len = hlen;
	if (out->incompat & ~INCOMPAT_KNOWN)
		return -EOPNOTSUPP;
	return 0;
}

int qcow2_parse(const void *buf, size_t len, uint64_t file_size, struct qcow2_info *out)
{
	const uint8_t *h = buf;
	memset(out, 0, sizeof(*out));
	if (len > file_size || len < QCOW2_V2_LEN || !qcow2_magic(buf, len))
		return -EINVAL;
	out->version = be32(h + 4);
	out->cluster_bits = be32(h + 20);
	if (out->version != 2 && out->version != 3)
		return -EOPNOTSUPP;
	/* QEMU's own limits: 512 B .. 2 MiB clusters */
	if (out->cluster_bits < 9 || out->cluster_bits > 21)
		return -EINVAL;
	uint32_t cluster = 1u << out->cluster_bits;
	out->header_len = QCOW2_V2_LEN;
	int r = out->version == 3 ? check_v3(h, len, file_size, cluster, out) : 0;
	if (r < 0)
		return r;
	out->size = be64(h + 24);
	if (out->size == 0 || out->size > QCOW2_MAX_SIZE)
		return -EFBIG;
	out->encrypted = be32(h + 32) != 0;
	uint64_t boff = be64(h + 8);
	uint32_t bsize = be32(h + 16);
	if (boff == 0)
		return 0;
	/* QEMU keeps the name in the first cluster, after the header, < 1 KiB. */
	if (bsize == 0 || bsize > QCOW2_BACKING_MAX || boff < out->header_len || boff > cluster ||
	    bsize > cluster - boff || boff + bsize > file_size)
		return -EINVAL;
	out->backing_off = boff;
	out->backing_len = bsize;
	return 0;
}

/* The reason a parsed header is not acceptable as a cached base, or 0. */
static int refuse(const struct qcow2_info *q, const char *what, struct err *e)
{
	if (q->backing_len)
		return err_set(e, -EPERM, "%s is a qcow2 overlay on \"%s\"; flatten it first "
			       "(qemu-img convert -O qcow2 IN OUT)", what, q->backing);
	if (q->encrypted)
		return err_set(e, -EOPNOTSUPP, "%s is an encrypted qcow2", what);
	if (q->incompat & INCOMPAT_DATA_FILE)
		return err_set(e, -EPERM, "%s keeps its data in an external file", what);
	if (q->incompat & INCOMPAT_CORRUPT)
		return err_set(e, -EINVAL, "%s is marked corrupt (qemu-img check -r all)", what);
	return 0;
}

/* The backing file name, printable characters only (for messages; it is
 * never opened by us). */
static int read_backing(int fd, struct qcow2_info *q)
{
	char raw[QCOW2_BACKING_MAX];
	ssize_t n = pread(fd, raw, q->backing_len, (off_t)q->backing_off);
	if (n != (ssize_t)q->backing_len)
		return n < 0 ? -errno : -EINVAL;
	size_t k = 0;
	for (size_t i = 0; i < q->backing_len && k < sizeof(q->backing) - 1; i++)
		q->backing[k++] = raw[i] >= 0x20 && raw[i] < 0x7f ? raw[i] : '?';
	q->backing[k] = '\0';
	return 0;
}

int qcow2_inspect(int fd, struct qcow2_info *out)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	uint8_t h[QCOW2_V3_LEN];
	size_t want = (uint64_t)st.st_size < sizeof(h) ? (size_t)st.st_size : sizeof(h);
	ssize_t n = pread(fd, h, want, 0);
	if (n < 0)
		return -errno;
	int r = qcow2_parse(h, (size_t)n, (uint64_t)st.st_size, out);
	if (r == 0 && out->backing_len)
		r = read_backing(fd, out);
	return r;
}

int qcow2_check_base(int fd, const char *what, struct qcow2_info *out, struct err *e)
{
	int r = qcow2_inspect(fd, out);
	if (r == -EOPNOTSUPP)
		return err_set(e, r, "%s: unsupported qcow2 version or features", what);
	if (r == -EFBIG)
		return err_set(e, r, "%s: qcow2 virtual size is 0 or beyond %llu TiB", what,
			       (unsigned long long)(QCOW2_MAX_SIZE >> 40));
	if (r < 0)
		return err_set(e, r, "%s: malformed qcow2 header", what);
	return refuse(out, what, e);
}
