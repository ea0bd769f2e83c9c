/* test_fixture.c - --fixture parsing (every error), label assignment, and a
 * real image: ext4 superblock magic, label FBFIX<i>, no journal, and the files
 * (contents, symlink, empty dir) readable with debugfs. */
#include "client/fixture.h"
#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"
#include "t.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[PATH_MAX];

static void expect_err(const char *arg, int code, const char *part)
{
	struct fixture f;
	struct err e = { 0 };
	int r = fixture_parse(arg, &f, &e);
	if (r != code || !strstr(e.msg, part)) {
		fprintf(stderr, "fixture_parse(\"%s\"): got %d \"%s\", want %d \"%s\"\n", arg, r, e.msg,
			code, part);
		CHECK(0);
	}
}

static void test_parse(void)
{
	struct fixture f;
	struct err e = { 0 };
	char arg[PATH_MAX * 2], file[PATH_MAX], dir[PATH_MAX], odd[PATH_MAX];
	FMT(dir, "%s/data", base);
	FMT(file, "%s/file", base);
	FMT(odd, "%s/we:ird", base);
	CHECK(mkdir(dir, 0755) == 0 && mkdir(odd, 0755) == 0);
	CHECK(file_write_atomic(file, "x", 1, 0644) == 0);

	FMT(arg, "%s:/srv/data", dir);
	CHECK_OK(fixture_parse(arg, &f, &e), &e);
	CHECK_STREQ(f.host_path, dir);
	CHECK_STREQ(f.guest_path, "/srv/data");
	CHECK_STREQ(f.label, "");

	/* split on the last colon: host paths may contain colons */
	FMT(arg, "%s://srv//x/", odd);
	CHECK_OK(fixture_parse(arg, &f, &e), &e);
	CHECK_STREQ(f.host_path, odd);
	CHECK_STREQ(f.guest_path, "/srv/x");

	/* relative host paths become absolute */
	CHECK(chdir(base) == 0);
	CHECK_OK(fixture_parse("./data/../data:/d", &f, &e), &e);
	CHECK_STREQ(f.host_path, dir);

	expect_err("nocolon", -EINVAL, "must be HOST:GUEST");
	expect_err(":/x", -EINVAL, "empty host path");
	FMT(arg, "%s:", dir);
	expect_err(arg, -EINVAL, "empty guest path");
	FMT(arg, "%s:relative/path", dir);
	expect_err(arg, -EINVAL, "must be absolute");
	FMT(arg, "%s:/", dir);
	expect_err(arg, -EINVAL, "over the guest's /");
	FMT(arg, "%s:/a/../etc", dir);
	expect_err(arg, -EINVAL, ". or .. components");
	FMT(arg, "%s:/with space", dir);
	expect_err(arg, -EINVAL, "whitespace");
	FMT(arg, "%s:/new\nline", dir);
	expect_err(arg, -EINVAL, "whitespace or a control");
	FMT(arg, "%s/missing:/x", base);
	expect_err(arg, -ENOENT, "No such file");
	FMT(arg, "%s:/x", file);
	expect_err(arg, -ENOTDIR, "not a directory");

	/* sets: labels in order, duplicates refused */
	struct fixture set[3];
	FMT(arg, "%s:/a", dir);
	CHECK_OK(fixture_parse(arg, &set[0], &e), &e);
	FMT(arg, "%s:/b", dir); /* the same host dir twice is fine */
	CHECK_OK(fixture_parse(arg, &set[1], &e), &e);
	CHECK_OK(fixture_check_set(set, 2, &e), &e);
	CHECK_STREQ(set[0].label, "FBFIX0");
	CHECK_STREQ(set[1].label, "FBFIX1");
	FMT(arg, "%s:/a/", odd);
	CHECK_OK(fixture_parse(arg, &set[2], &e), &e);
	CHECK(fixture_check_set(set, 3, &e) == -EEXIST);
	CHECK(strstr(e.msg, "two fixtures are mounted at /a") != NULL);
}

static void test_image(void)
{
	struct err e = { 0 };
	char dir[PATH_MAX], p[PATH_MAX], img[PATH_MAX];
	FMT(dir, "%s/tree", base);
	CHECK(mkdir(dir, 0755) == 0);
	FMT(p, "%s/hello.txt", dir);
	CHECK(file_write_atomic(p, "hello fixture\n", 14, 0644) == 0);
	FMT(p, "%s/empty", dir);
	CHECK(mkdir(p, 0755) == 0);
	FMT(p, "%s/sub", dir);
	CHECK(mkdir(p, 0700) == 0);
	FMT(p, "%s/sub/big", dir);
	size_t big = 3 << 20;
	char *b = calloc(1, big);
	CHECK(b);
	memset(b, 'z', big);
	CHECK(file_write_atomic(p, b, big, 0600) == 0);
	free(b);
	FMT(p, "%s/link", dir);
	CHECK(symlink("hello.txt", p) == 0);

	struct fixture f;
	char arg[PATH_MAX * 2];
	FMT(arg, "%s:/srv/fix", dir);
	CHECK_OK(fixture_parse(arg, &f, &e), &e);
	/* no label yet: refused */
	FMT(img, "%s/fixture-0.img", base);
	CHECK(fixture_build_image(&f, img, &e) == -EINVAL);
	CHECK_OK(fixture_check_set(&f, 1, &e), &e);
	CHECK_OK(fixture_build_image(&f, img, &e), &e);
	FMT(p, "%s.tmp", img);
	CHECK(access(p, F_OK) != 0);

	/* the superblock at 1024: magic 0xEF53 @56, compat features @92, label @120 */
	int fd = open(img, O_RDONLY);
	CHECK(fd >= 0);
	uint8_t sb[1024];
	CHECK(pread(fd, sb, sizeof(sb), 1024) == (ssize_t)sizeof(sb));
	close(fd);
	CHECK(sb[56] == 0x53 && sb[57] == 0xEF);
	uint32_t compat = sb[92] | sb[93] << 8 | sb[94] << 16 | (uint32_t)sb[95] << 24;
	CHECK((compat & 0x4) == 0); /* no has_journal */
	char label[17] = { 0 };
	memcpy(label, sb + 120, 16);
	CHECK_STREQ(label, "FBFIX0");

	/* the files are in it */
	struct cmd c;
	char *out = NULL;
	cmd_init(&c, "debugfs");
	cmd_add(&c, "-R");
	cmd_add(&c, "cat /hello.txt");
	cmd_add(&c, img);
	CHECK_OK(cmd_run(&c, &out, &e), &e);
	cmd_fini(&c);
	CHECK(strstr(out, "hello fixture") != NULL);
	free(out);
	cmd_init(&c, "debugfs");
	cmd_add(&c, "-R");
	cmd_add(&c, "ls -l /sub");
	cmd_add(&c, img);
	out = NULL;
	CHECK_OK(cmd_run(&c, &out, &e), &e);
	cmd_fini(&c);
	CHECK(strstr(out, "3145728") != NULL && strstr(out, "big") != NULL);
	free(out);
	cmd_init(&c, "debugfs");
	cmd_add(&c, "-R");
	cmd_add(&c, "stat /link");
	cmd_add(&c, img);
	out = NULL;
	CHECK_OK(cmd_run(&c, &out, &e), &e);
	cmd_fini(&c);
	CHECK(strstr(out, "symlink") != NULL && strstr(out, "hello.txt") != NULL);
	free(out);

	/* rebuilding replaces the image (the lead rebuilds at every boot) */
	FMT(p, "%s/hello.txt", dir);
	CHECK(file_write_atomic(p, "changed\n", 8, 0644) == 0);
	CHECK_OK(fixture_build_image(&f, img, &e), &e);
	cmd_init(&c, "debugfs");
	cmd_add(&c, "-R");
	cmd_add(&c, "cat /hello.txt");
	cmd_add(&c, img);
	out = NULL;
	CHECK_OK(cmd_run(&c, &out, &e), &e);
	cmd_fini(&c);
	CHECK(strstr(out, "changed") != NULL);
	free(out);
}

int main(void)
{
	FMT(base, "/tmp/fbfix-XXXXXX");
	CHECK(mkdtemp(base));
	test_parse();
	test_image();
	CHECK(chdir("/") == 0);
	CHECK(rm_rf(base) == 0);
	printf("ok\n");
	return 0;
}
