/* test_boot.c - kernel/initrd extraction from raw and qcow2 disks built here
 * with Debian-like (root on 1, links in /), Ubuntu-like (separate /boot on 16)
 * and link-less layouts. Set FLEETBOX_IMAGE_BENCH_MB=300 to also time a
 * bigger image. */
#include "../unit/check.h"
#include "disk.h"

#include "client/image/remote.h"
#include "util/err.h"
#include "util/fileio.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[PATH_MAX];

static const char *at(const char *name)
{
	static char buf[8][PATH_MAX];
	static int i;
	i = (i + 1) % 8;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static void check_clean(const char *img)
{
	char p[PATH_MAX];
	/* no scratch, no .tmp, no marker left next to the image */
	CHECK_INT(count_suffix(dir, ".tmp"), 0);
	snprintf(p, sizeof(p), "%s.extracting", img);
	CHECK(!exists(p));
}

static void expect(const char *img, int want_root, const char *kernel, const char *initrd)
{
	int root = -1;
	struct err e = {0};
	double t0 = now_s();
	int r = image_extract_boot(img, &root, &e);
	if (r < 0)
		fprintf(stderr, "extract %s: %s\n", img, e.msg);
	CHECK_INT(r, 0);
	printf("extract %s: %.3f s\n", strrchr(img, '/') + 1, now_s() - t0);
	CHECK_INT(root, want_root);
	char k[PATH_MAX], i[PATH_MAX], b[PATH_MAX];
	snprintf(k, sizeof(k), "%s.vmlinuz", img);
	snprintf(i, sizeof(i), "%s.initrd", img);
	snprintf(b, sizeof(b), "%s.bootinfo", img);
	CHECK(files_equal(k, kernel));
	if (initrd)
		CHECK(files_equal(i, initrd));
	else
		CHECK(!exists(i));
	CHECK(exists(b));
	check_clean(img);

	/* cached: the second call does not rewrite anything */
	struct stat s1, s2;
	CHECK(stat(k, &s1) == 0);
	root = -1;
	CHECK_INT(image_extract_boot(img, &root, &e), 0);
	CHECK_INT(root, want_root);
	CHECK(stat(k, &s2) == 0);
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
	char info[PATH_MAX], *s = NULL;
	size_t n;
	snprintf(info, sizeof(info), "%s.bootinfo", at("ub.qcow2"));
	CHECK_INT(file_read_all(info, 4096, &s, &n), 0);
	CHECK(strstr(s, "kernel_part=16\n") != NULL);
	CHECK(strstr(s, "kernel=/vmlinuz-2.0\n") != NULL);
	free(s);
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
	char cmd[64];
	CHECK_INT(image_boot_cmdline(2, cmd, sizeof(cmd)), 0);
	CHECK_STR(cmd, "console=ttyS0 root=/dev/vda2 rw");
}

/* A bare filesystem image, no initrd. */
static void test_plain(void)
{
	mkdir_or_die(at("pl"));
	mkdir_or_die(at("pl/boot"));
	mkdir_or_die(at("pl/etc"));
	write_random(at("pl/boot/vmlinuz-3"), 5000);
	symlink_or_die("boot/vmlinuz-3", at("pl/vmlinuz"));
	disk_make_plain(at("pl.raw"), 16, at("pl"));
	expect(at("pl.raw"), 0, at("pl/boot/vmlinuz-3"), NULL);
}

static void test_failures(void)
{
	struct err e = {0};
	int root = -1;
	/* an ext partition without any kernel: clear error, nothing left */
	mkdir_or_die(at("nk"));
	mkdir_or_die(at("nk/etc"));
	symlink_or_die("boot/vmlinuz-9", at("nk/vmlinuz"));
	struct tpart p[] = { { .num = 1, .start_mib = 1, .size_mib = 10, .tree = at("nk") } };
	disk_make(at("nk.raw"), 12, false, p, 1);
	CHECK_INT(image_extract_boot(at("nk.raw"), &root, &e), -ENOENT);
	CHECK(strstr(e.msg, "no kernel") != NULL);
	CHECK(!exists(at("nk.raw.vmlinuz")) && !exists(at("nk.raw.initrd")) &&
	      !exists(at("nk.raw.bootinfo")));
	to_qcow2(at("nk.raw"), at("nk.qcow2"));
	CHECK_INT(image_extract_boot(at("nk.qcow2"), &root, &e), -ENOENT);
	check_clean(at("nk.qcow2"));

	/* not a disk at all */
	write_random(at("junk.img"), 1 << 20);
	CHECK(image_extract_boot(at("junk.img"), &root, &e) < 0);
	CHECK(strstr(e.msg, "junk.img") != NULL);
	CHECK(!exists(at("junk.img.vmlinuz")));
	CHECK(image_extract_boot(at("missing.img"), &root, &e) == -ENOENT);

	/* a kernel the user put next to the image is kept as is */
	CHECK(file_write_atomic(at("nk.raw.vmlinuz"), "mine", 4, 0644) == 0);
	root = -1;
	CHECK_INT(image_extract_boot(at("nk.raw"), &root, &e), 0);
	CHECK_INT(root, 1);
	char *s = NULL;
	size_t n;
	CHECK_INT(file_read_all(at("nk.raw.vmlinuz"), 100, &s, &n), 0);
	CHECK_STR(s, "mine");
	free(s);
}

/* Two processes extracting the same qcow2 at once agree and leave no debris. */
static void test_concurrent(void)
{
	to_qcow2(at("deb.raw"), at("cc.qcow2"));
	pid_t kids[3];
	for (int i = 0; i < 3; i++) {
		kids[i] = fork();
		CHECK(kids[i] >= 0);
		if (kids[i] == 0) {
			struct err e = {0};
			int root = -1;
			int r = image_extract_boot(at("cc.qcow2"), &root, &e);
			if (r < 0)
				fprintf(stderr, "child: %s\n", e.msg);
			_exit(r == 0 && root == 1 ? 0 : 1);
		}
	}
	for (int i = 0; i < 3; i++) {
		int st;
		CHECK(waitpid(kids[i], &st, 0) == kids[i]);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	CHECK(files_equal(at("cc.qcow2.vmlinuz"), at("deb/boot/vmlinuz-1.0")));
	CHECK(files_equal(at("cc.qcow2.initrd"), at("deb/boot/initrd.img-1.0")));
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
	/* next to the build, not /tmp: /tmp may be a small tmpfs */
	char tmpl[] = "image-boot-XXXXXX";
	CHECK(mkdtemp(tmpl) != NULL);
	CHECK(realpath(tmpl, dir) != NULL);
	test_debian_like();
	test_ubuntu_like();
	test_no_links();
	test_plain();
	test_failures();
	test_concurrent();
	const char *b = getenv("FLEETBOX_IMAGE_BENCH_MB");
	bench(b && atoi(b) >= 16 ? atoi(b) : 32);
	CHECK_INT(rm_rf(dir), 0);
	printf("ok\n");
	return 0;
}
