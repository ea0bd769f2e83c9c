/* fixture.h - read-only host directories in the guest. */
#pragma once
#include <limits.h>
#include <stddef.h>

struct err;

struct fixture {
	char host_path[PATH_MAX];  /* absolute, existing directory */
	char guest_path[PATH_MAX]; /* absolute */
	char label[16];            /* FBFIX<i> */
};

/* Parses "HOST:GUEST" (split on the last colon; GUEST absolute; HOST made
 * absolute and must be an existing directory). */
int fixture_parse(const char *arg, struct fixture *out, struct err *e);
/* Refuses duplicate guest paths; assigns labels FBFIX<i>. */
int fixture_check_set(struct fixture *set, size_t n, struct err *e);
/* Builds a read-only ext4 image labelled f->label from f->host_path at img_path
 * (mke2fs -d, written to .tmp then renamed). */
int fixture_build_image(const struct fixture *f, const char *img_path, struct err *e);
