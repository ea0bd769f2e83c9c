#include "rpc/frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

ssize_t frame_scan(const char *buf, size_t len, size_t limit, size_t *line_len)
{
	size_t window = len < limit + 1 ? len : limit + 1;
	const char *nl = memchr(buf, '\n', window);
	if (nl) {
		*line_len = (size_t)(nl - buf);
		return (ssize_t)(*line_len + 1);
	}
	if (len > limit)
		return -E2BIG;
	return 0;
}

void frame_init(struct frame *f, size_t limit)
{
	memset(f, 0, sizeof(*f));
	f->limit = limit;
}

void frame_fini(struct frame *f)
{
	free(f->buf);
	memset(f, 0, sizeof(*f));
}

size_t frame_pending(const struct frame *f)
{
	return f->len - f->off;
}

int frame_feed(struct frame *f, const char *data, size_t n)
{
	if (f->off > 0 && f->off == f->len) {
		f->off = f->len = 0;
	}
	if (f->len + n + 1 > f->cap) {
		/* Compact before growing: consumed lines are dead weight. */
		if (f->off > 0) {
			memmove(f->buf, f->buf + f->off, f->len - f->off);
			f->len -= f->off;
			f->off = 0;
		}
		if (f->len + n + 1 > f->cap) {
			size_t cap = f->cap ? f->cap : 4096;
			while (cap < f->len + n + 1)
				cap *= 2;
			/* Never hold more than one over-limit line plus one read. */
			if (f->len > f->limit + 1)
				return -E2BIG;
			char *nb = realloc(f->buf, cap);
			if (!nb)
				return -ENOMEM;
			f->buf = nb;
			f->cap = cap;
		}
	}
	memcpy(f->buf + f->len, data, n);
	f->len += n;
	f->buf[f->len] = '\0';
	/* Fail early when the pending line is already hopeless. */
	size_t ll;
	ssize_t r = frame_scan(f->buf + f->off, f->len - f->off, f->limit, &ll);
	return r == -E2BIG ? -E2BIG : 0;
}

int frame_next(struct frame *f, char **line, size_t *len)
{
	if (f->off >= f->len)
		return 0;
	size_t ll;
	ssize_t r = frame_scan(f->buf + f->off, f->len - f->off, f->limit, &ll);
	if (r < 0)
		return (int)r;
	if (r == 0)
		return 0;
	char *start = f->buf + f->off;
	start[ll] = '\0';
	if (ll > 0 && start[ll - 1] == '\r')
		start[--ll] = '\0';
	f->off += (size_t)r;
	*line = start;
	*len = ll;
	return 1;
}
