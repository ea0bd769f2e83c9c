/* test_hostile.c - crafted disk images (issue 10.1): each must give a clear
 * error naming the image, never a crash, a hang or a kept image. Every case
 * runs twice: through image_resolve (the isolated reader, as `up` does), and
 * in-process through the parsers themselves, so ASan/UBSan see our code. */
#include "../unit/check.h"
#include "disk.h"

#include "client/image/image.h"
#include "client/image/int.h"
#include "util/err.h"
#include "util/fileio.h"

#include <errno.h>
#include <ext2fs/ext2fs.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[PATH_MAX], cache[PATH_MAX];

static const char *at(const char *name)
{
	return path_in(dir, name);
}

static void write_at(const char *path, uint64_t off, const void *p, size_t n)
{
	int fd = open(path, O_RDWR);
	CHECK(fd >= 0);
	CHECK(pwrite(fd, p, n, (off_t)off) == (ssize_t)n);
	close(fd);
}

static void sized(const char *path, uint64_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK(ftruncate(fd, (off_t)size) == 0);
	close(fd);
}

static void put32be(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

/* ---- partition tables ---- */

/* The reproducer: 8 KiB, a GPT entry whose first LBA is near 2^64. */
static void gpt_lba(const char *path, uint64_t size, bool crc)
{
	uint8_t head[34 * 512];
	gpt_header(head, size / 512);
	gpt_entry(head, 1, false, 0xfffffffffffffff0ull, 0xffffffffffffffffull);
	if (crc)
		gpt_fix_crcs(head, 1024, 128, 128);
	sized(path, size);
	write_at(path, 0, head, size < sizeof(head) ? (size_t)size : sizeof(head));
}
static void mk_gpt_8k(const char *p) { gpt_lba(p, 8192, true); }
static void mk_gpt_1m(const char *p) { gpt_lba(p, 1 << 20, true); }
static void mk_gpt_nocrc(const char *p) { gpt_lba(p, 1 << 20, false); }

static void gpt_hdr_field(const char *path, size_t off, uint64_t v, int width)
{
	uint8_t head[34 * 512];
	gpt_header(head, 2048);
	gpt_entry(head, 1, false, 34, 2000);
	if (width == 8)
		put64(head + 512 + off, v);
	else
		put32(head + 512 + off, (uint32_t)v);
	gpt_fix_crcs(head, 1024, 128, 128);
	sized(path, 1 << 20);
	write_at(path, 0, head, sizeof(head));
}
static void mk_gpt_far_entries(const char *p) { gpt_hdr_field(p, 72, 1ull << 40, 8); }
static void mk_gpt_many(const char *p) { gpt_hdr_field(p, 80, 0xffffffffu, 4); }
static void mk_gpt_big_entry(const char *p) { gpt_hdr_field(p, 84, 0xffffffffu, 4); }
static void mk_gpt_usable(const char *p) { gpt_hdr_field(p, 48, ~0ull, 8); }

static void mbr(const char *path, uint64_t size, uint8_t type, uint32_t start, uint32_t count)
{
	uint8_t s[512] = { 0 };
	s[510] = 0x55;
	s[511] = 0xaa;
	s[446 + 4] = type;
	put32(s + 446 + 8, start);
	put32(s + 446 + 12, count);
	sized(path, size);
	write_at(path, 0, s, sizeof(s));
}
static void mk_mbr_beyond(const char *p) { mbr(p, 8192, 0x83, 0xfffffff0u, 16); }
static void mk_mbr_wrap(const char *p) { mbr(p, 8192, 0x83, 1, 0xffffffffu); }

/* An extended partition whose EBR chain points back at itself. */
static void mk_ebr_loop(const char *p)
{
	mbr(p, 1 << 20, 0x05, 64, 1000);
	uint8_t s[512] = { 0 };
	s[510] = 0x55;
	s[511] = 0xaa;
	s[446 + 4] = 0x83;
	put32(s + 446 + 8, 1);
	put32(s + 446 + 12, 10);
	s[462 + 4] = 0x05;
	put32(s + 462 + 8, 0); /* the next EBR: this one again */
	put32(s + 462 + 12, 1000);
	write_at(p, 64 * 512, s, sizeof(s));
}

/* ---- ext filesystems (MBR partition 1 at 1 MiB, 6 MiB) ---- */

static void ext_disk(const char *path, const char *tree)
{
	struct tpart pt[] = { { .num = 1, .start_mib = 1, .size_mib = 6, .tree = tree } };
	disk_make(path, 8, false, pt, 1);
}

static void kernel_tree(const char *tree)
{
	char p[PATH_MAX];
	mkdir_or_die(tree);
	snprintf(p, sizeof(p), "%s/boot", tree);
	mkdir_or_die(p);
	snprintf(p, sizeof(p), "%s/boot/vmlinuz-1", tree);
	write_random(p, 4096);
	snprintf(p, sizeof(p), "%s/vmlinuz", tree);
	symlink_or_die("boot/vmlinuz-1", p);
}

static void sb_patch(const char *path, size_t field, uint32_t v)
{
	uint8_t b[4];
	put32(b, v);
	write_at(path, (1 << 20) + 1024 + field, b, 4);
}

static void mk_ext_blocks(const char *p)
{
	kernel_tree(at("t-blocks"));
	ext_disk(p, at("t-blocks"));
	sb_patch(p, 0x04, 0x7fffffffu);
}

static void mk_ext_logbs(const char *p)
{
	kernel_tree(at("t-logbs"));
	ext_disk(p, at("t-logbs"));
	sb_patch(p, 0x18, 40);
}

static void mk_ext_groups(const char *p)
{
	kernel_tree(at("t-groups"));
	ext_disk(p, at("t-groups"));
	sb_patch(p, 0x20, 0);
}

static void mk_ext_loop(const char *p)
{
	mkdir_or_die(at("t-loop"));
	mkdir_or_die(at("t-loop/boot"));
	symlink_or_die("a", at("t-loop/vmlinuz"));
	symlink_or_die("/vmlinuz", at("t-loop/a"));
	ext_disk(p, at("t-loop"));
}

static void mk_ext_chain(const char *p)
{
	mkdir_or_die(at("t-chain"));
	for (int i = 0; i < 20; i++) {
		char name[64], target[16];
		snprintf(name, sizeof(name), "t-chain/l%d", i);
		snprintf(target, sizeof(target), "l%d", i + 1);
		symlink_or_die(target, at(name));
	}
	write_random(at("t-chain/l20"), 100);
	symlink_or_die("l0", at("t-chain/vmlinuz"));
	ext_disk(p, at("t-chain"));
}

static void mk_ext_huge(const char *p)
{
	mkdir_or_die(at("t-huge"));
	mkdir_or_die(at("t-huge/boot"));
	sized(at("t-huge/boot/vmlinuz-9"), 300ull << 20); /* sparse */
	symlink_or_die("boot/vmlinuz-9", at("t-huge/vmlinuz"));
	ext_disk(p, at("t-huge"));
}

static void mk_ext_dir(const char *p)
{
	mkdir_or_die(at("t-dir"));
	mkdir_or_die(at("t-dir/vmlinuz"));
	mkdir_or_die(at("t-dir/boot"));
	mkdir_or_die(at("t-dir/boot/vmlinuz-1"));
	ext_disk(p, at("t-dir"));
}

/* The root directory's block overwritten with noise. */
static void mk_ext_root(const char *p)
{
	kernel_tree(at("t-root"));
	disk_make_plain(p, 6, at("t-root"));
	ext2_filsys fs;
	CHECK(ext2fs_open(p, 0, 0, 0, unix_io_manager, &fs) == 0);
	blk64_t blk = 0;
	CHECK(ext2fs_bmap2(fs, EXT2_ROOT_INO, NULL, NULL, 0, 0, NULL, &blk) == 0 && blk);
	uint64_t bs = fs->blocksize;
	ext2fs_close_free(&fs);
	write_random(at("noise"), bs);
	char *noise;
	size_t n;
	CHECK_INT(file_read_all(at("noise"), bs + 1, &noise, &n), 0);
	write_at(p, blk * bs, noise, n);
	free(noise);
}

/* ---- qcow2 ---- */

static void qcow2_new(const char *p, const char *backing)
{
	const char *a1[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", backing,
			     p, "64M", NULL };
	const char *a2[] = { "qemu-img", "create", "-q", "-f", "qcow2", p, "64M", NULL };
	run(backing ? a1 : a2);
}
static void mk_q_backing(const char *p) { qcow2_new(p, "/etc/hostname"); }

static void q_patch(const char *p, size_t off, const void *v, size_t n)
{
	qcow2_new(p, NULL);
	write_at(p, off, v, n);
}
static void mk_q_huge(const char *p) { q_patch(p, 24, "\x40\0\0\0\0\0\0\0", 8); }
static void mk_q_data_file(const char *p) { q_patch(p, 72 + 7, "\x04", 1); }
static void mk_q_encrypted(const char *p) { q_patch(p, 32 + 3, "\x01", 1); }
static void mk_q_version(const char *p) { q_patch(p, 4 + 3, "\x09", 1); }
static void mk_q_l1(const char *p) { q_patch(p, 36, "\x7f\xff\xff\xff", 4); }

static void mk_q_garbage(const char *p)
{
	write_random(p, 4096);
	write_at(p, 0, "QFI\xfb", 4);
}

static void mk_q_trunc(const char *p)
{
	qcow2_new(p, NULL);
	CHECK(truncate(p, 100) == 0);
}

static void mk_q_backing_far(const char *p)
{
	uint8_t v[12];
	put32be(v, 0);
	put32be(v + 4, 1u << 20); /* backing name offset 1 MiB: outside cluster and file */
	put32be(v + 8, 10);
	q_patch(p, 8, v, sizeof(v));
}

/* ---- tiny files ---- */

static void mk_empty(const char *p) { sized(p, 0); }
static void mk_100(const char *p) { write_random(p, 100); }
static void mk_zeros(const char *p) { sized(p, 8192); }

static const struct {
	const char *name;
	void (*make)(const char *path);
	const char *want; /* in the message */
} cases[] = {
	{ "gpt-lba-2^64-8k", mk_gpt_8k, "no ext2/3/4 filesystem" },
	{ "gpt-lba-2^64-1m", mk_gpt_1m, "no ext2/3/4 filesystem" },
	{ "gpt-lba-2^64-nocrc", mk_gpt_nocrc, "no ext2/3/4 filesystem" },
	{ "gpt-entries-at-2^40", mk_gpt_far_entries, "no ext2/3/4 filesystem" },
	{ "gpt-2^32-entries", mk_gpt_many, "no ext2/3/4 filesystem" },
	{ "gpt-2^32-entry-size", mk_gpt_big_entry, "no ext2/3/4 filesystem" },
	{ "gpt-usable-to-2^64", mk_gpt_usable, "no ext2/3/4 filesystem" },
	{ "mbr-start-beyond-end", mk_mbr_beyond, "outside the disk" },
	{ "mbr-size-wraps", mk_mbr_wrap, "outside the disk" },
	{ "mbr-ebr-loop", mk_ebr_loop, "no ext2/3/4 filesystem" },
	{ "ext-blocks-2^31", mk_ext_blocks, "superblock of partition 1 is malformed" },
	{ "ext-block-size-2^50", mk_ext_logbs, "superblock of partition 1 is malformed" },
	{ "ext-0-blocks-per-group", mk_ext_groups, "superblock of partition 1 is malformed" },
	{ "ext-symlink-loop", mk_ext_loop, "no kernel" },
	{ "ext-symlink-chain-20", mk_ext_chain, "no kernel" },
	{ "ext-kernel-300m", mk_ext_huge, "bytes (want 1.." },
	{ "ext-kernel-is-dir", mk_ext_dir, "no kernel" },
	{ "ext-root-dir-noise", mk_ext_root, "no kernel" },
	{ "qcow2-backing-file", mk_q_backing, "qcow2 overlay on \"/etc/hostname\"" },
	{ "qcow2-backing-far", mk_q_backing_far, "malformed qcow2 header" },
	{ "qcow2-size-2^62", mk_q_huge, "virtual size" },
	{ "qcow2-data-file", mk_q_data_file, "external file" },
	{ "qcow2-encrypted", mk_q_encrypted, "encrypted" },
	{ "qcow2-version-9", mk_q_version, "unsupported qcow2" },
	{ "qcow2-l1-2^31-entries", mk_q_l1, "qemu-img" },
	{ "qcow2-garbage", mk_q_garbage, "qcow2" },
	{ "qcow2-truncated", mk_q_trunc, "malformed qcow2 header" },
	{ "empty", mk_empty, "0 bytes is not a disk image" },
	{ "100-bytes", mk_100, "100 bytes is not a disk image" },
	{ "8k-zeros", mk_zeros, "no ext2/3/4 filesystem" },
};

static int images(void)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/images", cache);
	return exists(p) ? count_suffix(p, "") - 2 : 0;
}

/* The parsers in-process (ASan sees them directly): qcow2 header or probe. */
static void in_process(const char *path)
{
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	unsigned char m[4] = { 0 };
	bool q = pread(fd, m, 4, 0) == 4 && qcow2_magic(m, 4);
	struct qcow2_info qi;
	struct err e = { 0 };
	if (q) {
		CHECK(qcow2_check_base(fd, path, &qi, &e) <= 0);
	} else {
		struct probe_disk d = { .path = path };
		struct boot_probe b;
		char out[PATH_MAX];
		snprintf(out, sizeof(out), "%s/probe-out", dir);
		rm_rf(out);
		mkdir_or_die(out);
		CHECK(probe_boot(&d, out, &b, &e) < 0);
	}
	close(fd);
}

int main(void)
{
	test_dir("image-hostile", dir, cache);
	int failed = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s.img", dir, cases[i].name);
		cases[i].make(path);
		in_process(path);
		struct image_info img;
		struct err e = { 0 };
		double t0 = now_s();
		int r = image_resolve(dir, path, NULL, NULL, &img, &e);
		bool ok = r < 0 && strstr(e.msg, cases[i].name) && strstr(e.msg, cases[i].want) &&
			  !strstr(e.msg, "signal") && images() == 0;
		printf("%-4s %-24s %.2f s  %d: %s\n", ok ? "ok" : "FAIL", cases[i].name, now_s() - t0, r,
		       e.msg);
		failed += !ok;
	}
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s/tmp", cache);
	CHECK_INT(count_suffix(tmp, ""), 2);
	CHECK_INT(failed, 0);
	CHECK_INT(rm_rf(dir), 0);
	printf("ok: %zu hostile images, each a clear error\n", sizeof(cases) / sizeof(cases[0]));
	return 0;
}
