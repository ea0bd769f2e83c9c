/* frame.h - NDJSON framing as a pure function, no uv types (unit tested without
 * a loop). A line ends at '\n'; a line longer than the limit is an error, not a
 * truncation; bytes after an error are never interpreted. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Scans buf for one complete line. Returns the bytes consumed (line + '\n') and
 * sets *line_len, or 0 if no complete line is present yet (and len <= limit),
 * or -E2BIG if the line cannot complete within limit bytes. */
ssize_t frame_scan(const char *buf, size_t len, size_t limit, size_t *line_len);

/* An accumulating buffer on top of frame_scan for stream readers. */
struct frame {
	char *buf;
	size_t len, cap, off; /* off: start of unconsumed data */
	size_t limit;
};

void frame_init(struct frame *f, size_t limit);
void frame_fini(struct frame *f);
/* Appends bytes. -E2BIG once the pending line can no longer fit in limit. */
int frame_feed(struct frame *f, const char *data, size_t n);
/* Pops the next complete line into *line (NUL-terminated in place, without the
 * '\n'; valid until the next feed). Returns 1, 0 if none, -E2BIG. */
int frame_next(struct frame *f, char **line, size_t *len);
/* Bytes buffered but not yet returned as lines (a partial line at EOF). */
size_t frame_pending(const struct frame *f);
