/* disk.c - see disk.h. */
#include "disk.h"

#include "../unit/check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void test_dir(const char *prefix, char *dir, char *cache)
{
	char tmpl[128];
	snprintf(tmpl, sizeof(tmpl), "%s-XXXXXX", prefix);
	CHECK(mkdtemp(tmpl) != NULL);
	CHECK(realpath(tmpl, dir) != NULL);
	snprintf(cache, PATH_MAX, "%s/cache", dir);
	CHECK(setenv("FLEETBOX_CACHE", cache, 1) == 0);
}

const char *path_in(const char *dir, const char *name)
{
	static char buf[8][PATH_MAX];
	static int i;
	i = (i + 1) % 8;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void run(const char *const argv[])
{
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 1);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "command failed:");
		for (int i = 0; argv[i]; i++)
			fprintf(stderr, " %s", argv[i]);
		fprintf(stderr, "\n");
		exit(1);
	}
}

void write_random(const char *path, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	static uint64_t x = 0x9e3779b97f4a7c15ull;
	x ^= (uint64_t)len * 0x2545f4914f6cdd1dull ^ (uint64_t)(uintptr_t)path;
	char buf[65536];
	while (len > 0) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);
		for (size_t i = 0; i + 8 <= sizeof(buf); i += 8) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			memcpy(buf + i, &x, 8);
		}
		CHECK(write(fd, buf, n) == (ssize_t)n);
		len -= n;
	}
	CHECK(close(fd) == 0);
}

void mkdir_or_die(const char *path)
{
	CHECK(mkdir(path, 0755) == 0 || errno == EEXIST);
}

void symlink_or_die(const char *target, const char *path)
{
	CHECK(symlink(target, path) == 0);
}

bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

bool files_equal(const char *a, const char *b)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	bool eq = fa && fb;
	while (eq) {
		char x[65536], y[65536];
		size_t n = fread(x, 1, sizeof(x), fa), m = fread(y, 1, sizeof(y), fb);
		if (n != m || memcmp(x, y, n) != 0)
			eq = false;
		if (n == 0)
			break;
	}
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return eq;
}

int count_suffix(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	CHECK(d != NULL);
	int n = 0;
	struct dirent *de;
	size_t sl = strlen(suffix);
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l >= sl && strcmp(de->d_name + l - sl, suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static void mkfs_at(const char *path, uint64_t start_mib, uint64_t size_mib, const char *tree)
{
	char ext[64], size[32];
	snprintf(ext, sizeof(ext), "offset=%llu", (unsigned long long)(start_mib << 20));
	snprintf(size, sizeof(size), "%lluM", (unsigned long long)size_mib);
	const char *argv[] = { "mke2fs", "-q", "-F", "-t", "ext4", "-E", ext, "-d", tree,
			       path, size, NULL };
	run(argv);
}

void disk_make_plain(const char *path, uint64_t size_mib, const char *tree)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK(ftruncate(fd, (off_t)(size_mib << 20)) == 0);
	close(fd);
	mkfs_at(path, 0, size_mib, tree);
}

uint32_t crc32_le(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < len; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = c >> 1 ^ (0xedb88320u & (0u - (c & 1)));
	}
	return ~c;
}

void gpt_fix_crcs(uint8_t *head, uint64_t entries_off, uint32_t n, uint32_t esz)
{
	uint8_t *h = head + 512;
	put32(h + 88, crc32_le(head + entries_off, (size_t)n * esz));
	put32(h + 16, 0);
	put32(h + 16, crc32_le(h, 92));
}

static const uint8_t linux_fs[16] = { 0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47,
				      0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4 };
static const uint8_t esp_type[16] = { 0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11,
				      0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b };

void gpt_header(uint8_t *head, uint64_t sectors)
{
	memset(head, 0, 34 * 512);
	head[510] = 0x55;
	head[511] = 0xaa;
	head[446 + 4] = 0xee;
	put32(head + 446 + 8, 1);
	put32(head + 446 + 12, sectors - 1 > 0xffffffffu ? 0xffffffffu : (uint32_t)(sectors - 1));
	uint8_t *h = head + 512;
	memcpy(h, "EFI PART", 8);
	put32(h + 8, 0x00010000);
	put32(h + 12, 92);
	put64(h + 24, 1);
	put64(h + 32, sectors - 1);
	put64(h + 40, 34);
	put64(h + 48, sectors - 34);
	memset(h + 56, 0x42, 16); /* disk GUID */
	put64(h + 72, 2);
	put32(h + 80, 128);
	put32(h + 84, 128);
}

void gpt_entry(uint8_t *head, int num, bool esp, uint64_t first, uint64_t last)
{
	uint8_t *e = head + 1024 + (size_t)(num - 1) * 128;
	memcpy(e, esp ? esp_type : linux_fs, 16);
	memset(e + 16, num, 16); /* unique partition GUID */
	put64(e + 32, first);
	put64(e + 40, last);
}

void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

/* A real GPT (valid CRCs; the backup copy is left out: libblkid and the
 * kernel use the primary when it is valid) or an MBR. */
void disk_make(const char *path, uint64_t size_mib, bool gpt, const struct tpart *p, int n)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK(ftruncate(fd, (off_t)(size_mib << 20)) == 0);
	close(fd);
	for (int i = 0; i < n; i++)
		if (p[i].tree)
			mkfs_at(path, p[i].start_mib, p[i].size_mib, p[i].tree);
	uint8_t head[34 * 512];
	memset(head, 0, sizeof(head));
	head[510] = 0x55;
	head[511] = 0xaa;
	if (gpt) {
		gpt_header(head, size_mib << 11);
		for (int i = 0; i < n; i++)
			gpt_entry(head, p[i].num, p[i].esp, p[i].start_mib << 11,
				  ((p[i].start_mib + p[i].size_mib) << 11) - 1);
		gpt_fix_crcs(head, 1024, 128, 128);
	} else {
		for (int i = 0; i < n; i++) {
			uint8_t *e = head + 446 + 16 * (p[i].num - 1);
			e[4] = p[i].esp ? 0xef : 0x83;
			put32(e + 8, (uint32_t)(p[i].start_mib << 11));
			put32(e + 12, (uint32_t)(p[i].size_mib << 11));
		}
	}
	fd = open(path, O_RDWR);
	CHECK(fd >= 0);
	CHECK(pwrite(fd, head, sizeof(head), 0) == (ssize_t)sizeof(head));
	close(fd);
}
