/* image/qcow2.c - what the image cache asks of a qcow2 header: the virtual
 * size, and to refuse what would make QEMU open files outside the cache (a
 * backing file or an external data file). The parser itself is the shared
 * pure one (util/qcow2.c, fuzzed by test/fuzz/fuzz_image.c and fuzz_qcow2.c). */
#include "client/image/int.h"

#include "util/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The reason a parsed header is not acceptable as a cached base, or 0. */
static int refuse(const struct qcow2_info *q, const char *what, struct err *e)
{
	if (q->backing_len)
		return err_set(e, -EPERM, "%s is a qcow2 overlay on \"%s\"; flatten it first "
			       "(qemu-img convert -O qcow2 IN OUT)", what, q->backing);
	if (q->encrypted)
		return err_set(e, -EOPNOTSUPP, "%s is an encrypted qcow2", what);
	if (q->incompat & QCOW2_INCOMPAT_DATA_FILE)
		return err_set(e, -EPERM, "%s keeps its data in an external file", what);
	if (q->incompat & QCOW2_INCOMPAT_CORRUPT)
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
	uint8_t h[104]; /* a v3 header; the backing name is read apart */
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
