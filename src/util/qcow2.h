/* qcow2.h - the one qcow2 header parser (pure: the client's image cache and
 * the holder's check of member disks both use it, and the fuzzers drive it).
 * Everything else about qcow2 is QEMU's business; this reads what decides
 * which files QEMU would open: the backing file (name, recorded format) and
 * an external data file, plus the version, virtual size and feature bits.
 * Every offset and length read from the image is range-checked against the
 * buffer, the cluster size and the file size before use. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QCOW2_HEAD_MAX 65536          /* bytes worth reading: header, extensions, backing name */
#define QCOW2_MAX_SIZE (64ull << 40)  /* virtual sizes beyond 64 TiB are refused */
#define QCOW2_BACKING_MAX 1023u
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)

struct qcow2_info {
	uint32_t version, cluster_bits, header_len;
	uint64_t size;             /* virtual disk size, bytes */
	uint64_t incompat;
	bool encrypted;
	uint64_t backing_off;      /* 0 = no backing file */
	uint32_t backing_len;
	/* The name as stored when it lies within the parsed bytes (else ""; the
	 * image cache then reads a printable form of it, qcow2_inspect). */
	char backing[QCOW2_BACKING_MAX + 1];
	char backing_fmt[32];      /* header extension, "" = not recorded */
	bool data_file;            /* an external data file (feature bit or extension) */
};

bool qcow2_magic(const void *buf, size_t len);
/* Parses the first len bytes of a file of file_size bytes. 0, -EINVAL
 * (malformed, or not qcow2), -EOPNOTSUPP (version/features), -EFBIG (virtual
 * size 0 or beyond QCOW2_MAX_SIZE). */
int qcow2_parse(const void *buf, size_t len, uint64_t file_size, struct qcow2_info *out);
