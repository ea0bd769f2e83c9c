/* tree.c - see tree.h. */
#include "tree.h"
#include "t.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void put(const char *dir, const char *rel, const void *data, size_t len, mode_t mode)
{
	char p[PATH_MAX];
	FMT(p, "%s/%s", dir, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, data, len) == (ssize_t)len);
	CHECK(fchmod(fd, mode) == 0);
	CHECK(close(fd) == 0);
}

static void mk(const char *dir, const char *rel, mode_t mode)
{
	char p[PATH_MAX];
	FMT(p, "%s/%s", dir, rel);
	CHECK(mkdir(p, 0700) == 0);
	CHECK(chmod(p, mode) == 0);
}

static void ln(const char *dir, const char *rel, const char *target)
{
	char p[PATH_MAX];
	FMT(p, "%s/%s", dir, rel);
	CHECK(symlink(target, p) == 0);
}

void tree_make(const char *dir)
{
	CHECK(mkdir(dir, 0755) == 0);
	put(dir, "a.txt", "hello\n", 6, 0644);
	put(dir, "run.sh", "#!/bin/sh\necho run\n", 19, 0755);
	mk(dir, "private", 0755);
	put(dir, "private/secret", "s3cret", 6, 0600);
	mk(dir, "empty", 0755);
	mk(dir, "sub", 0755);
	mk(dir, "sub/deeper", 0750);
	ln(dir, "link", "a.txt");
	ln(dir, "loop1", "loop2");
	ln(dir, "loop2", "loop1");
	ln(dir, "dangling", "nowhere");
	ln(dir, "sub/deeper/up", "../../a.txt");
	size_t big = 6 * 1024 * 1024;
	uint8_t *b = malloc(big);
	CHECK(b);
	uint32_t x = 2463534242u;
	for (size_t i = 0; i < big; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = (uint8_t)x;
	}
	put(dir, "big.bin", b, big, 0644);
	free(b);
	char longdir[PATH_MAX], rel[PATH_MAX];
	FMT(longdir, "%s", "d123456789012345678901234567890123456789012345678901234567890");
	mk(dir, longdir, 0755);
	FMT(rel, "%s/%s", longdir,
	    "f12345678901234567890123456789012345678901234567890123456789012345678901234567890123456789.txt");
	put(dir, rel, "long\n", 5, 0644);
	put(dir, "h\xc3\xa9llo-\xc3\xbc" "n\xc3\xaf" "code.txt", "utf8\n", 5, 0644);
	put(dir, "it's a file", "quote\n", 6, 0640);
	char fifo[PATH_MAX];
	FMT(fifo, "%s/fifo", dir);
	CHECK(mkfifo(fifo, 0644) == 0);
	/* the top's own mode is part of the copy */
	CHECK(chmod(dir, 0750) == 0);
	/* private/ becomes 0700 last (after its file was written) */
	char priv[PATH_MAX];
	FMT(priv, "%s/private", dir);
	CHECK(chmod(priv, 0700) == 0);
}

static int same_file(const char *a, const char *b)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	int same = fa && fb;
	char ba[65536], bb[65536];
	while (same) {
		size_t na = fread(ba, 1, sizeof(ba), fa), nb = fread(bb, 1, sizeof(bb), fb);
		if (na != nb || memcmp(ba, bb, na) != 0)
			same = 0;
		if (na == 0)
			break;
	}
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return same;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	CHECK(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

void tree_compare(const char *a, const char *b)
{
	struct stat sa, sb;
	CHECK(lstat(a, &sa) == 0);
	if (lstat(b, &sb) != 0) {
		fprintf(stderr, "missing in copy: %s\n", b);
		CHECK(0);
	}
	if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT) ||
	    (!S_ISLNK(sa.st_mode) && (sa.st_mode & 07777) != (sb.st_mode & 07777))) {
		fprintf(stderr, "mode differs: %s %o vs %s %o\n", a, sa.st_mode, b, sb.st_mode);
		CHECK(0);
	}
	if (S_ISREG(sa.st_mode)) {
		if (sa.st_size != sb.st_size || !same_file(a, b)) {
			fprintf(stderr, "content differs: %s vs %s\n", a, b);
			CHECK(0);
		}
	} else if (S_ISLNK(sa.st_mode)) {
		char ta[PATH_MAX], tb[PATH_MAX];
		ssize_t na = readlink(a, ta, sizeof(ta) - 1), nb = readlink(b, tb, sizeof(tb) - 1);
		CHECK(na >= 0 && nb >= 0);
		ta[na] = tb[nb] = '\0';
		CHECK_STREQ(ta, tb);
	} else if (S_ISDIR(sa.st_mode)) {
		CHECK(count_entries(a) == count_entries(b));
		DIR *d = opendir(a);
		CHECK(d);
		struct dirent *de;
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			char ca[PATH_MAX], cb[PATH_MAX];
			FMT(ca, "%s/%s", a, de->d_name);
			FMT(cb, "%s/%s", b, de->d_name);
			tree_compare(ca, cb);
		}
		closedir(d);
	}
}
