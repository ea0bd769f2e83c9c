/* image/kernel.c - bzImage -> vmlinux (ELF) extraction.
 *
 * A bzImage is a real-mode setup block followed by the protected-mode part,
 * whose header (boot protocol >= 2.08) gives payload_offset/payload_length of
 * the compressed vmlinux. We decode that payload with libarchive's "raw"
 * format and its decompression filters, so no extra library is needed for
 * Debian's LZ4 (or xz/zstd/gzip) kernels. Booting the ELF via its PVH entry
 * point skips the in-guest decompressor, which is slow under TCG. */
#include "client/image/int.h"

#include "util/err.h"
#include "util/fileio.h"
#include "util/owner.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int decode(const unsigned char *payload, size_t len, int fd, struct err *e)
{
	struct archive *a = archive_read_new();
	if (!a)
		return err_set(e, -ENOMEM, "out of memory");
	archive_read_support_filter_all(a);
	archive_read_support_format_raw(a);
	int r = 0;
	char *buf = NULL;
	struct archive_entry *ent;
	if (archive_read_open_memory(a, payload, len) != ARCHIVE_OK ||
	    archive_read_next_header(a, &ent) != ARCHIVE_OK) {
		r = err_set(e, -EINVAL, "kernel payload: %s", archive_error_string(a));
		goto out;
	}
	if (archive_filter_count(a) < 2) {
		r = err_set(e, -EINVAL, "kernel payload is not compressed in a known format");
		goto out;
	}
	enum { BUF = 1 << 16 };
	buf = malloc(BUF);
	if (!buf) {
		r = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		la_ssize_t n = archive_read_data(a, buf, BUF);
		if (n == 0)
			break;
		if (n < 0) {
			r = err_set(e, -EIO, "decompressing kernel (%s): %s", archive_filter_name(a, 0),
				    archive_error_string(a));
			goto out;
		}
		r = write_all(fd, buf, (size_t)n);
		if (r < 0) {
			err_set(e, r, "writing vmlinux: %s", strerror(-r));
			goto out;
		}
	}
out:
	free(buf);
	archive_read_free(a);
	return r;
}

int image_kernel_extract(const char *bzimage, const char *vmlinux, struct err *e)
{
	char *img = NULL;
	size_t len = 0;
	int r = file_read_all(bzimage, 256u << 20, &img, &len);
	if (r < 0)
		return err_set(e, r, "read %s: %s", bzimage, strerror(-r));
	const unsigned char *p = (const unsigned char *)img;
	/* "HdrS" at 0x202, protocol version at 0x206. */
	if (len < 0x260 || memcmp(p + 0x202, "HdrS", 4) != 0 || (p[0x206] | p[0x207] << 8) < 0x208) {
		free(img);
		return err_set(e, -EINVAL, "%s is not a bzImage with boot protocol >= 2.08", bzimage);
	}
	size_t setup = p[0x1f1] ? p[0x1f1] : 4;
	size_t pm = (setup + 1) * 512;
	size_t off = le32(p + 0x248), plen = le32(p + 0x24c);
	if (pm + off + plen > len || plen < 16) {
		free(img);
		return err_set(e, -EINVAL, "%s: payload outside the file", bzimage);
	}
	int fd = open(vmlinux, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = -errno;
		free(img);
		return err_set(e, r, "create %s: %s", vmlinux, strerror(-r));
	}
	if ((r = owner_claim_fd(fd)) < 0)
		err_set(e, r, "chown %s: %s", vmlinux, strerror(-r));
	else
		r = decode(p + pm + off, plen, fd, e);
	free(img);
	if (r == 0 && fsync(fd) < 0)
		r = err_set(e, -errno, "fsync %s: %s", vmlinux, strerror(errno));
	close(fd);
	if (r == 0) {
		/* Sanity: an ELF64 image came out. */
		unsigned char hdr[5] = {0};
		int f = open(vmlinux, O_RDONLY | O_CLOEXEC);
		if (f < 0 || read(f, hdr, sizeof(hdr)) != (ssize_t)sizeof(hdr) ||
		    memcmp(hdr, "\177ELF\002", 5) != 0)
			r = err_set(e, -EINVAL, "%s: decompressed kernel is not an ELF64 image", bzimage);
		if (f >= 0)
			close(f);
	}
	if (r < 0)
		unlink(vmlinux);
	return r;
}
