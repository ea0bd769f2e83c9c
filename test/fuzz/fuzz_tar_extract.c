/* fuzz_tar_extract.c - whole tar streams through the host-side extractor
 * into a fresh destination inside a sandbox directory: whatever the stream,
 * nothing may appear in the sandbox outside the destination. */
#include "fuzz.h"
#include "client/ssh/copy.h"
#include "util/err.h"
#include "util/fileio.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

struct src {
	const uint8_t *p;
	size_t len, off;
};

static ssize_t rd(void *arg, void *buf, size_t len, struct err *e)
{
	struct src *s = arg;
	(void)e;
	size_t n = s->len - s->off < len ? s->len - s->off : len;
	memcpy(buf, s->p + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

static char sandbox[64], dest[96];

static void setup(void)
{
	if (sandbox[0])
		return;
	snprintf(sandbox, sizeof(sandbox), "/tmp/fb-fuzz-tar-%d", (int)getpid());
	rm_rf(sandbox);
	if (mkdir(sandbox, 0700) < 0)
		abort();
	snprintf(dest, sizeof(dest), "%s/dest", sandbox);
}

/* The sandbox holds only dest. */
static void check_sandbox(void)
{
	DIR *d = opendir(sandbox);
	FUZZ_CHECK(d);
	struct dirent *de;
	while ((de = readdir(d)))
		FUZZ_CHECK(!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
			   !strcmp(de->d_name, "dest"));
	closedir(d);
}

/* Directories extracted read-only would stop an unprivileged cleanup. */
static void make_writable(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	fchmod(fd, 0700);
	DIR *d = fdopendir(fd);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (de->d_type == DT_DIR && strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			make_writable(dirfd(d), de->d_name);
	if (d)
		closedir(d);
	else
		close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	if (size < 1 || mkdir(dest, 0700) < 0)
		return 0;
	struct src s = { data + 1, size - 1, 0 };
	struct err e = { 0 };
	copy_tar_extract_to(rd, &s, dest, "top", (data[0] & 2) ? "newname" : NULL, data[0] & 1, &e);
	check_sandbox();
	make_writable(AT_FDCWD, dest);
	FUZZ_CHECK(rm_rf(dest) == 0);
	return 0;
}
