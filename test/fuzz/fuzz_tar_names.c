/* fuzz_tar_names.c - the tar extraction safety checks as pure functions:
 * copy_name_normalize (never "..", never absolute, always under the renamed
 * top) and copy_symlink_check, held against an independent resolver in both
 * directions: an accepted link never climbs above the destination root, and
 * a link of the accepted shape that stays inside is accepted. */
#include "fuzz.h"
#include "client/ssh/copy.h"
#include "util/err.h"

#include <errno.h>
#include <limits.h>

static void check_name(const char *out, const char *top_to)
{
	FUZZ_CHECK(out[0] && out[0] != '/');
	size_t tl = strlen(top_to);
	FUZZ_CHECK(!strncmp(out, top_to, tl) && (out[tl] == '\0' || out[tl] == '/'));
	for (const char *p = out;;) {
		size_t l = strcspn(p, "/");
		FUZZ_CHECK(l > 0 && !(l == 1 && p[0] == '.') && !(l == 2 && !strncmp(p, "..", 2)));
		if (!p[l])
			break;
		p += l + 1;
	}
}

/* 1: stays at or below the floor and has the accepted shape; 0: does not. */
static int resolves_inside(const char *rel, const char *target, int root_depth)
{
	if (!*target || target[0] == '/')
		return 0;
	int pos = 0;
	for (const char *p = rel; *p; p++)
		pos += *p == '/';
	int floor = pos < root_depth ? pos : root_depth;
	bool named = false;
	for (const char *p = target; *p;) {
		size_t l = strcspn(p, "/");
		if (l == 2 && !strncmp(p, "..", 2)) {
			if (named || --pos < floor)
				return 0;
		} else if (l && !(l == 1 && p[0] == '.')) {
			named = true;
			pos++;
		}
		p += l;
		while (*p == '/')
			p++;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int root_depth = data[0] & 1;
	const char *f[2];
	char *buf = fuzz_fields(data + 1, size - 1, f, 2);
	char out[PATH_MAX];
	struct err e = { 0 };
	int r = copy_name_normalize(f[0], "top", "newname", out, sizeof(out), &e);
	FUZZ_CHECK(r == 0 || r == -EPERM || r == -ENAMETOOLONG);
	if (r == 0) {
		check_name(out, "newname");
		int s = copy_symlink_check(out, f[1], root_depth, &e);
		FUZZ_CHECK(s == 0 || s == -EPERM);
		FUZZ_CHECK((s == 0) == (resolves_inside(out, f[1], root_depth) == 1));
	}
	free(buf);
	return 0;
}
