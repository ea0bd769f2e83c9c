/* qcow2.c - see qcow2.h. Layout (docs/interop/qcow2.txt in QEMU), big-endian:
 *   0 magic "QFI\xfb", 4 version, 8 backing_file_offset (u64),
 *   16 backing_file_size (u32), 20 cluster_bits, 24 size, 32 crypt_method;
 *   v3 adds 72 incompatible features, 96 refcount_order, 100 header_length.
 * Header extensions follow the header (v2: at 72), each type/length/data
 * padded to 8 bytes, ending at type 0 or where the backing file name begins;
 * a malformed extension area just ends the walk (QEMU refuses such an image
 * itself, and a data file needs the incompatible feature bit anyway). */
#include "util/qcow2.h"

#include <errno.h>
#include <string.h>

#define QCOW2_V2_LEN 72u
#define QCOW2_V3_LEN 104u
#define INCOMPAT_KNOWN 0x1full /* dirty, corrupt, data file, compression, extended L2 */
#define EXT_BACKING_FMT 0xe2792acau
#define EXT_DATA_FILE 0x44415441u

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
	out->data_file = out->incompat & QCOW2_INCOMPAT_DATA_FILE;
	if (out->incompat & ~INCOMPAT_KNOWN)
		return -EOPNOTSUPP;
	return 0;
}

/* The extensions in h[start, end): the backing format, a data file. */
static void parse_exts(const uint8_t *h, size_t start, size_t end, struct qcow2_info *o)
{
	size_t off = start;
	while (off + 8 <= end) {
		uint32_t type = be32(h + off), elen = be32(h + off + 4);
		off += 8;
		if (type == 0 || elen > end - off)
			return;
		if (type == EXT_BACKING_FMT && elen > 0 && elen < sizeof(o->backing_fmt) &&
		    !memchr(h + off, 0, elen)) {
			memcpy(o->backing_fmt, h + off, elen);
			o->backing_fmt[elen] = '\0';
		} else if (type == EXT_DATA_FILE) {
			o->data_file = true;
		}
		size_t padded = ((size_t)elen + 7) & ~(size_t)7;
		if (padded > end - off)
			return;
		off += padded;
	}
}

/* Backing name (range-checked against cluster and file) and what precedes it. */
static int parse_backing(const uint8_t *h, size_t len, uint64_t file_size, uint32_t cluster,
			 struct qcow2_info *out)
{
	uint64_t boff = be64(h + 8);
	uint32_t bsize = be32(h + 16);
	size_t in_buf = len < cluster ? len : cluster;
	if (boff == 0) {
		parse_exts(h, out->header_len, in_buf, out);
		return 0;
	}
	/* QEMU keeps the name in the first cluster, after the header, < 1 KiB. */
	if (bsize == 0 || bsize > QCOW2_BACKING_MAX || boff < out->header_len || boff > cluster ||
	    bsize > cluster - boff || boff + bsize > file_size)
		return -EINVAL;
	out->backing_off = boff;
	out->backing_len = bsize;
	if (boff + bsize <= len) {
		memcpy(out->backing, h + boff, bsize);
		out->backing[bsize] = '\0';
	}
	parse_exts(h, out->header_len, boff < in_buf ? (size_t)boff : in_buf, out);
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
	return parse_backing(h, len, file_size, cluster, out);
}
