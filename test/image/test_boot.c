/* test_boot.c - local disk images into a private image cache: the kernel and
 * initrd read out of raw and qcow2 disks built here with Debian-like (root on
 * 1, links in /), Ubuntu-like (separate /boot on 16), link-less and
 * whole-disk layouts; the probe result used on every resolve (issue 11.5);
 * a changed image gets fresh boot files; concurrent resolves import once.
 * Set FLEETBOX_IMAGE_BENCH_MB=300 to also time a bigger image. */
#include "../unit/check.h"
#include "disk.h"

#include "client/image/image.h"
#include "util/err.h"
#include "util/fileio.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[PATH_MAX], cache[PATH_MAX];

static const char *at(const char *name)
{
	return path_in(dir, name);
}

static const char *in_cache(const char *name)
{
	return path_in(cache, name);
}

static int images(void)
{
	return count_suffix(in_cache("images"), "") - 2;
}

struct lines {
	int n, imports, probes;
};

static void on_line(void *data, const char *line)
{
	struct lines *l = data;
	l->n++;
	l->imports += strstr(line, "importing") != NULL;
	l->probes += strstr(line, "reading the kernel out of") != NULL;
}

/* No work in progress left in the cache, nothing written beside the image. */
static void check_clean(const char *img)
{
	char p[PATH_MAX];
	CHECK_INT(count_suffix(in_cache("tmp"), ""), 2);
	snprintf(p, sizeof(p), "%s.vmlinuz", img);
	CHECK(!exists(p));
	snprintf(p, sizeof(p), "%s.bootinfo", img);
	CHECK(!exists(p));
}

static json_t *meta(const struct image_info *img)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/image.json", img->dir);
	json_t *j = json_load_file(p, 0, NULL);
	CHECK(j != NULL);
	return j;
}

static void expect(const char *img, int want_root, const char *kernel, const char *initrd)
{
	struct image_info a, b;
	struct err e = { 0 };
	struct lines l = { 0 };
	double t0 = now_s();
	int r = image_resolve(dir, img, on_line, &l, &a, &e);
	if (r < 0)
		fprintf(stderr, "resolve %s: %s\n", img, e.msg);
	CHECK_INT(r, 0);
	printf("import %s: %.3f s\n", strrchr(img, '/') + 1, now_s() - t0);
	CHECK_INT(l.imports, 1);
	CHECK_INT(l.probes, 1);
	CHECK(strncmp(a.kernel, cache, strlen(cache)) == 0);
	CHECK(strncmp(a.base, a.dir, strlen(a.dir)) == 0);
	CHECK(files_equal(a.kernel, kernel));
	CHECK(files_equal(a.base, img));
	if (initrd)
		CHECK(files_equal(a.initrd, initrd));
	else
		CHECK_STR(a.initrd, "");
	char want[64];
	snprintf(want, sizeof(want), want_root ? "root=/dev/vda%d rw" : "root=/dev/vda rw", want_root);
	CHECK(strstr(a.cmdline, want) != NULL);
	json_t *j = meta(&a);
	CHECK_INT(json_integer_value(json_object_get(j, "root_part")), want_root);
	json_decref(j);
	check_clean(img);

	/* resolved again: the same image, the recorded root, no work at all */
	struct stat s1, s2;
	CHECK(stat(a.kernel, &s1) == 0);
	struct lines l2 = { 0 };
	CHECK_INT(image_resolve(dir, img, on_line, &l2, &b, &e), 0);
	CHECK_INT(l2.n, 0);
	CHECK_STR(b.digest, a.digest);
	CHECK_STR(b.cmdline, a.cmdline);
	CHECK_STR(b.kernel, a.kernel);
	CHECK(stat(b.kernel, &s2) == 0);
	CHECK(s1.st_ino == s2.st_ino && s1.st_mtim.tv_nsec == s2.st_mtim.tv_nsec);
}

static void to_qcow2(const char *raw, const char *q)
{
	const char *argv[] = { "qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2",
			       raw, q, NULL };
	run(argv);
}

/* Debian: root on 1 with the kernel in /boot and links in /, an older
 * kernel that must not win, and an absolute initrd link. */
static void test_debian_like(void)
{
	mkdir_or_die(at("deb"));
	mkdir_or_die(at("deb/boot"));
	mkdir_or_die(at("deb/etc"));
	write_random(at("deb/boot/vmlinuz-1.0"), 700 * 1024 + 13);
	write_random(at("deb/boot/initrd.img-1.0"), 300 * 1024 + 7);
	write_random(at("deb/boot/vmlinuz-0.9"), 1000);
	write_random(at("deb/boot/initrd.img-0.9"), 1000);
	symlink_or_die("boot/vmlinuz-1.0", at("deb/vmlinuz"));
	symlink_or_die("/boot/initrd.img-1.0", at("deb/initrd.img"));
	symlink_or_die("boot/vmlinuz-0.9", at("deb/vmlinuz.old"));
	struct tpart p[] = { { .num = 1, .start_mib = 1, .size_mib = 30, .tree = at("deb") } };
	disk_make(at("deb.raw"), 32, false, p, 1);
	expect(at("deb.raw"), 1, at("deb/boot/vmlinuz-1.0"), at("deb/boot/initrd.img-1.0"));

	to_qcow2(at("deb.raw"), at("deb.qcow2"));
	expect(at("deb.qcow2"), 1, at("deb/boot/vmlinuz-1.0"), at("deb/boot/initrd.img-1.0"));
}

/* Ubuntu 24.04: GPT, root on 1 (its /boot empty, /vmlinuz dangling there),
 * ESP on 15, /boot on 16 with its own links. */
static void test_ubuntu_like(void)
{
	mkdir_or_die(at("ubr"));
	mkdir_or_die(at("ubr/etc"));
	mkdir_or_die(at("ubr/boot"));
	symlink_or_die("boot/vmlinuz-2.0", at("ubr/vmlinuz"));
	symlink_or_die("boot/initrd.img-2.0", at("ubr/initrd.img"));
	write_random(at("ubr/etc/big"), 4 << 20);
	mkdir_or_die(at("ubb"));
	write_random(at("ubb/vmlinuz-2.0"), 512 * 1024);
	write_random(at("ubb/initrd.img-2.0"), 256 * 1024 + 1);
	symlink_or_die("vmlinuz-2.0", at("ubb/vmlinuz"));
	symlink_or_die("initrd.img-2.0", at("ubb/initrd.img"));
	struct tpart p[] = {
		{ .num = 1, .start_mib = 20, .size_mib = 40, .tree = at("ubr") },
		{ .num = 15, .start_mib = 1, .size_mib = 4, .esp = true },
		{ .num = 16, .start_mib = 5, .size_mib = 15, .tree = at("ubb") },
		/* Linux-typed but not ext (smallest, so tried first if not filtered) */
		{ .num = 2, .start_mib = 60, .size_mib = 2 },
	};
	disk_make(at("ub.raw"), 64, true, p, 4);
	expect(at("ub.raw"), 1, at("ubb/vmlinuz-2.0"), at("ubb/initrd.img-2.0"));
	to_qcow2(at("ub.raw"), at("ub.qcow2"));
	expect(at("ub.qcow2"), 1, at("ubb/vmlinuz-2.0"), at("ubb/initrd.img-2.0"));
	struct image_info img;
	struct err e = { 0 };
	CHECK_INT(image_resolve(dir, at("ub.qcow2"), NULL, NULL, &img, &e), 0);
	json_t *j = meta(&img);
	CHECK_INT(json_integer_value(json_object_get(j, "kernel_part")), 16);
	CHECK_STR(json_string_value(json_object_get(j, "kernel_path")), "/vmlinuz-2.0");
	CHECK_STR(json_string_value(json_object_get(j, "format")), "qcow2");
	CHECK(strlen(json_string_value(json_object_get(j, "root_uuid"))) == 36);
	json_decref(j);
}

/* No links: newest /boot/vmlinuz-* by version order; root on partition 2. */
static void test_no_links(void)
{
	mkdir_or_die(at("nl"));
	mkdir_or_die(at("nl/etc"));
	mkdir_or_die(at("nl/boot"));
	write_random(at("nl/boot/vmlinuz-5.9.0"), 2000);
	write_random(at("nl/boot/vmlinuz-5.10.0"), 3000);
	write_random(at("nl/boot/initrd.img-5.9.0"), 2000);
	write_random(at("nl/boot/initrd.img-5.10.0"), 4000);
	struct tpart p[] = { { .num = 2, .start_mib = 2, .size_mib = 20, .tree = at("nl") } };
	disk_make(at("nl.raw"), 24, true, p, 1);
	expect(at("nl.raw"), 2, at("nl/boot/vmlinuz-5.10.0"), at("nl/boot/initrd.img-5.10.0"));
}

/* A whole-disk filesystem, no initrd: root=/dev/vda on every resolve (it fell
 * back to vda1 once the kernel was cached), in raw and qcow2 form. A changed
 * image gets fresh boot files; the old image stays for disks made from it. */
static void test_whole_disk_and_change(void)
{
	mkdir_or_die(at("pl"));
	mkdir_or_die(at("pl/boot"));
	mkdir_or_die(at("pl/etc"));
	write_random(at("pl/boot/vmlinuz-3"), 5000);
	symlink_or_die("boot/vmlinuz-3", at("pl/vmlinuz"));
	disk_make_plain(at("pl.raw"), 16, at("pl"));
	expect(at("pl.raw"), 0, at("pl/boot/vmlinuz-3"), NULL);
	to_qcow2(at("pl.raw"), at("pl.qcow2"));
	expect(at("pl.qcow2"), 0, at("pl/boot/vmlinuz-3"), NULL);

	struct image_info old, fresh;
	struct err e = { 0 };
	CHECK_INT(image_resolve(dir, at("pl.raw"), NULL, NULL, &old, &e), 0);
	write_random(at("pl/boot/vmlinuz-3"), 6001);
	disk_make_plain(at("pl.raw"), 16, at("pl"));
	struct lines l = { 0 };
	CHECK_INT(image_resolve(dir, at("pl.raw"), on_line, &l, &fresh, &e), 0);
	CHECK_INT(l.imports, 1);
	CHECK(strcmp(fresh.digest, old.digest) != 0);
	CHECK(files_equal(fresh.kernel, at("pl/boot/vmlinuz-3")));
	CHECK(!files_equal(old.kernel, at("pl/boot/vmlinuz-3")));
	CHECK(strstr(fresh.cmdline, "root=/dev/vda rw") != NULL);
	CHECK(exists(old.base));
}

static void test_failures(void)
{
	struct err e = { 0 };
	struct image_info img;
	int before = images();
	/* an ext partition without any kernel: clear error, nothing kept */
	mkdir_or_die(at("nk"));
	mkdir_or_die(at("nk/etc"));
	symlink_or_die("boot/vmlinuz-9", at("nk/vmlinuz"));
	struct tpart p[] = { { .num = 1, .start_mib = 1, .size_mib = 10, .tree = at("nk") } };
	disk_make(at("nk.raw"), 12, false, p, 1);
	CHECK_INT(image_resolve(dir, at("nk.raw"), NULL, NULL, &img, &e), -ENOENT);
	CHECK(strstr(e.msg, "no kernel") != NULL);
	CHECK_INT(images(), before);
	to_qcow2(at("nk.raw"), at("nk.qcow2"));
	CHECK_INT(image_resolve(dir, at("nk.qcow2"), NULL, NULL, &img, &e), -ENOENT);
	check_clean(at("nk.qcow2"));

	/* not a disk at all */
	write_random(at("junk.img"), 1 << 20);
	CHECK(image_resolve(dir, at("junk.img"), NULL, NULL, &img, &e) < 0);
	CHECK(strstr(e.msg, "junk.img") != NULL);
	CHECK(strstr(e.msg, "no ext2/3/4 filesystem") != NULL);
	CHECK_INT(images(), before);
	CHECK_INT(image_resolve(dir, at("missing.img"), NULL, NULL, &img, &e), -ENOENT);

	/* a kernel the user put next to the image is taken as is (root on 1) */
	CHECK(file_write_atomic(at("nk.raw.vmlinuz"), "mine", 4, 0644) == 0);
	CHECK_INT(image_resolve(dir, at("nk.raw"), NULL, NULL, &img, &e), 0);
	char *s = NULL;
	size_t n;
	CHECK_INT(file_read_all(img.kernel, 100, &s, &n), 0);
	CHECK_STR(s, "mine");
	free(s);
	CHECK(strstr(img.cmdline, "root=/dev/vda1 rw") != NULL);
	CHECK_STR(img.initrd, "");
	/* ... and a changed one is taken again */
	CHECK(file_write_atomic(at("nk.raw.vmlinuz"), "mine2", 5, 0644) == 0);
	CHECK_INT(image_resolve(dir, at("nk.raw"), NULL, NULL, &img, &e), 0);
	CHECK_INT(file_read_all(img.kernel, 100, &s, &n), 0);
	CHECK_STR(s, "mine2");
	free(s);
}

/* Four processes resolving the same new image at once: one import, one
 * image, the same answer for all. */
static void test_concurrent(void)
{
	struct tpart p[] = { { .num = 1, .start_mib = 1, .size_mib = 32, .tree = at("deb") } };
	disk_make(at("cc.raw"), 34, false, p, 1);
	to_qcow2(at("cc.raw"), at("cc.qcow2"));
	int before = images(), pipefd[2];
	CHECK(pipe(pipefd) == 0);
	pid_t kids[4];
	for (int i = 0; i < 4; i++) {
		kids[i] = fork();
		CHECK(kids[i] >= 0);
		if (kids[i] == 0) {
			struct err e = { 0 };
			struct image_info img;
			struct lines l = { 0 };
			int r = image_resolve(dir, at("cc.qcow2"), on_line, &l, &img, &e);
			if (r < 0)
				fprintf(stderr, "child: %s\n", e.msg);
			char msg[128];
			int k = snprintf(msg, sizeof(msg), "%d %d %.71s\n", l.imports, l.probes, img.digest);
			_exit(r == 0 && write(pipefd[1], msg, (size_t)k) == k ? 0 : 1);
		}
	}
	close(pipefd[1]);
	for (int i = 0; i < 4; i++) {
		int st;
		CHECK(waitpid(kids[i], &st, 0) == kids[i]);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	char buf[1024] = "";
	size_t got = 0;
	ssize_t k;
	while ((k = read(pipefd[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)k;
	close(pipefd[0]);
	int imports = 0, probes = 0;
	char first[80] = "";
	for (char *save = NULL, *ln = strtok_r(buf, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
		int a, b;
		char d[80];
		CHECK(sscanf(ln, "%d %d %79s", &a, &b, d) == 3);
		imports += a;
		probes += b;
		if (!first[0])
			snprintf(first, sizeof(first), "%s", d);
		CHECK_STR(d, first);
	}
	CHECK_INT(imports, 1);
	CHECK_INT(probes, 1);
	CHECK_INT(images(), before + 1);
	check_clean(at("cc.qcow2"));
}

/* Timing on an image whose root holds bench_mb of incompressible data. */
static void bench(int mb)
{
	mkdir_or_die(at("bn"));
	mkdir_or_die(at("bn/boot"));
	mkdir_or_die(at("bn/etc"));
	mkdir_or_die(at("bn/usr"));
	for (int i = 0; i < mb / 16; i++) {
		char name[64];
		snprintf(name, sizeof(name), "bn/usr/blob%d", i);
		write_random(at(name), 16 << 20);
	}
	write_random(at("bn/boot/vmlinuz-6.1"), 8 << 20);
	write_random(at("bn/boot/initrd.img-6.1"), 30 << 20);
	symlink_or_die("boot/vmlinuz-6.1", at("bn/vmlinuz"));
	symlink_or_die("boot/initrd.img-6.1", at("bn/initrd.img"));
	uint64_t size = (uint64_t)mb + mb / 4 + 80;
	struct tpart p[] = { { .num = 1, .start_mib = 1, .size_mib = size, .tree = at("bn") } };
	disk_make(at("bn.raw"), size + 2, false, p, 1);
	to_qcow2(at("bn.raw"), at("bn.qcow2"));
	struct stat st;
	CHECK(stat(at("bn.qcow2"), &st) == 0);
	printf("bench: root fs with %d MiB of data, qcow2 %lld MiB\n", mb,
	       (long long)(st.st_size >> 20));
	expect(at("bn.raw"), 1, at("bn/boot/vmlinuz-6.1"), at("bn/boot/initrd.img-6.1"));
	expect(at("bn.qcow2"), 1, at("bn/boot/vmlinuz-6.1"), at("bn/boot/initrd.img-6.1"));
}

int main(void)
{
	test_dir("image-boot", dir, cache);
	test_debian_like();
	test_ubuntu_like();
	test_no_links();
	test_whole_disk_and_change();
	test_failures();
	test_concurrent();
	const char *b = getenv("FLEETBOX_IMAGE_BENCH_MB");
	bench(b && atoi(b) >= 16 ? atoi(b) : 32);
	CHECK_INT(rm_rf(dir), 0);
	printf("ok\n");
	return 0;
}
