/* util/beneath: the lexical rule and the resolution rule a root holder
 * applies to handed paths, for openat2 and its fallback walk alike. */
#include "check.h"
#include "util/beneath.h"
#include "util/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_lexical(void)
{
	const char *rel;
	struct { const char *dir, *path, *rel; } ok[] = {
		{ "/s", "/s/a", "a" }, { "/s/", "/s/a/b", "a/b" }, { "/", "/etc", "etc" },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		CHECK_INT(path_under(ok[i].dir, ok[i].path, &rel), 0);
		CHECK_STR(rel, ok[i].rel);
	}
	const char *bad[][2] = {
		{ "/s", "/s" }, { "/s", "/s/" }, { "/s", "/sx/a" }, { "/s", "/s/../etc" },
		{ "/s", "/s/./a" }, { "/s", "/s//a" }, { "/s", "/s/a/.." }, { "/s", "s/a" },
		{ "s", "s/a" }, { "/s", "/t/a" }, { "", "/a" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(path_under(bad[i][0], bad[i][1], &rel), -EXDEV);
	CHECK(path_rel_normal("a/b.c") && !path_rel_normal("a/") && !path_rel_normal("/a") &&
	      !path_rel_normal("..") && !path_rel_normal(""));
}

static char root[PATH_MAX], outside[PATH_MAX];

static void mk(const char *rel, bool dir)
{
	char p[PATH_MAX * 2];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	if (dir)
		CHECK_INT(mkdir(p, 0700), 0);
	else
		CHECK_INT(file_write_atomic(p, "x", 1, 0600), 0);
}

static void link_to(const char *target, const char *rel)
{
	char p[PATH_MAX * 2];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	CHECK_INT(symlink(target, p), 0);
}

typedef int (*open_fn)(int, const char *, int, mode_t);

static void test_resolution(open_fn open_at, const char *which)
{
	int rfd = open(root, O_RDONLY | O_DIRECTORY);
	CHECK(rfd >= 0);
	struct { const char *rel; int flags, want; } rows[] = {
		{ "d/f", O_RDONLY, 0 },             { "f", O_RDONLY, 0 },
		{ "lf", O_RDONLY, -ELOOP },          { "ld/f", O_RDONLY, -ELOOP },
		{ "d/lout", O_RDONLY, -ELOOP },      { "lout/secret", O_RDONLY, -ELOOP },
		{ "missing", O_RDONLY, -ENOENT },    { "f/x", O_RDONLY, -ENOTDIR },
		{ "d/new", O_WRONLY | O_CREAT, 0 },  { "lf", O_WRONLY | O_CREAT | O_TRUNC, -ELOOP },
		{ "../x", O_RDONLY, -EXDEV },        { "d/../f", O_RDONLY, -EXDEV },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int fd = open_at(rfd, rows[i].rel, rows[i].flags, 0600);
		int got = fd >= 0 ? 0 : fd;
		if (got != rows[i].want) {
			fprintf(stderr, "%s %s: got %d, want %d\n", which, rows[i].rel, got, rows[i].want);
			CHECK(0);
		}
		if (fd >= 0)
			close(fd);
	}
	close(rfd);
}

static int walk(int dirfd, const char *rel, int flags, mode_t mode)
{
	if (!path_rel_normal(rel))
		return -EXDEV;
	return beneath_open_walk(dirfd, rel, flags, mode);
}

static void test_mkdir(void)
{
	int rfd = open(root, O_RDONLY | O_DIRECTORY);
	int fd = beneath_mkdir_p(rfd, "m/n/o", 0700);
	CHECK(fd >= 0);
	close(fd);
	CHECK_INT(beneath_mkdir_p(rfd, "ld/x", 0700), -ELOOP); /* never through a symlink */
	CHECK_INT(beneath_mkdir_p(rfd, "f/x", 0700), -ENOTDIR);
	CHECK_INT(beneath_mkdir_p(rfd, "../x", 0700), -EXDEV);
	char p[PATH_MAX * 2];
	snprintf(p, sizeof(p), "%s/x", outside);
	CHECK(!path_exists(p));
	close(rfd);
}

int main(void)
{
	snprintf(root, sizeof(root), "/tmp/fb-beneath-XXXXXX");
	snprintf(outside, sizeof(outside), "/tmp/fb-beneath-out-XXXXXX");
	CHECK(mkdtemp(root) && mkdtemp(outside));
	mk("d", true);
	mk("d/f", false);
	mk("f", false);
	link_to("f", "lf");
	link_to("d", "ld");
	link_to(outside, "d/lout");
	link_to(outside, "lout");
	test_lexical();
	test_resolution(beneath_open, "openat2");
	test_resolution(walk, "walk");
	test_mkdir();
	CHECK_INT(rm_rf(root), 0);
	CHECK_INT(rm_rf(outside), 0);
	printf("beneath: ok\n");
	return 0;
}
