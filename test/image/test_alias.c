/* test_alias.c - catalog, URL parsing, cache names, partition tables, cmdline. */
#include "../unit/check.h"

#include "client/image/remote.h"
#include "util/err.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

static void test_catalog(void)
{
	static const char *want[] = { "debian-11", "debian-12", "debian-13",
				      "ubuntu-22.04", "ubuntu-24.04", "ubuntu-26.04" };
	size_t n = 0;
	for (const struct image_alias *a = image_aliases; a->name; a++)
		n++;
	CHECK_INT(n, 6);
	for (size_t i = 0; i < 6; i++) {
		const struct image_alias *a = image_alias_find(want[i]);
		CHECK(a != NULL);
		CHECK(image_is_remote(want[i]));
		/* pinned to a dated snapshot over https */
		CHECK(strncmp(a->url, "https://", 8) == 0);
		CHECK(strstr(a->url, "/20") != NULL || strstr(a->url, "/release-20") != NULL);
		CHECK(strstr(a->url, "amd64") != NULL);
		CHECK(strstr(a->url, "latest") == NULL && strstr(a->url, "current") == NULL);
		struct image_source s;
		struct err e = {0};
		int r = image_source_parse(want[i], &s, &e);
		if (a->digest[0]) {
			CHECK_INT(r, 0);
			CHECK_STR(s.label, want[i]);
			CHECK_STR(s.url, a->url);
			CHECK(strcmp(s.algo, "sha256") == 0 || strcmp(s.algo, "sha512") == 0);
			CHECK_INT(strlen(s.digest), strcmp(s.algo, "sha256") == 0 ? 64 : 128);
			CHECK(strncmp(a->digest, s.algo, 6) == 0 && a->digest[6] == ':');
			CHECK_STR(s.digest, a->digest + 7);
			/* <16 hex>-<basename of the URL> */
			CHECK_INT(strspn(s.file, "0123456789abcdef"), 16);
			CHECK_STR(s.file + 17, strrchr(a->url, '/') + 1);
		} else {
			CHECK_INT(r, -ENOKEY);
		}
	}
	CHECK(image_alias_find("debian-10") == NULL);
	CHECK(!image_is_remote("debian-10"));
	CHECK(!image_is_remote("mini"));
	CHECK(!image_is_remote(""));
	CHECK(!image_is_remote(NULL));
	CHECK(!image_is_remote("/var/lib/img.qcow2"));
	CHECK(!image_is_remote("ftp://host/x.img"));
	CHECK(image_is_remote("https://example.org/x.img"));
	CHECK(image_is_remote("HTTP://example.org/x.img"));
	CHECK(image_is_remote("file:///tmp/x.img"));
}

static void test_unpinned_alias_refused(void)
{
	struct image_alias a = { "future-1", "https://example.org/future-1.qcow2", "" };
	struct image_source s;
	struct err e = {0};
	CHECK_INT(image_source_from_alias(&a, &s, &e), -ENOKEY);
	CHECK_STR(e.msg, "image alias future-1 has no pinned checksum yet");
	struct image_alias b = { "bad-1", "https://example.org/b.qcow2", "md5:abcd" };
	CHECK_INT(image_source_from_alias(&b, &s, &e), -EINVAL);
}

static void test_urls(void)
{
	struct image_source s, t;
	struct err e = {0};
	CHECK_INT(image_source_parse("https://h.example/a/b/disk.qcow2", &s, &e), 0);
	CHECK_STR(s.url, "https://h.example/a/b/disk.qcow2");
	CHECK_STR(s.algo, "");
	CHECK_STR(s.label, "disk.qcow2");
	CHECK_STR(s.file + 16, "-disk.qcow2");

	/* a pin is a fragment, stripped from the URL, and part of the cache key */
	const char *h = "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef";
	char u[256];
	snprintf(u, sizeof(u), "https://h.example/a/b/disk.qcow2#sha256=%s", h);
	CHECK_INT(image_source_parse(u, &t, &e), 0);
	CHECK_STR(t.url, "https://h.example/a/b/disk.qcow2");
	CHECK_STR(t.algo, "sha256");
	CHECK_STR(t.digest, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	CHECK(strcmp(s.file, t.file) != 0);
	CHECK_STR(t.file + 16, "-disk.qcow2");
	/* stable */
	struct image_source t2;
	CHECK_INT(image_source_parse(u, &t2, &e), 0);
	CHECK_STR(t.file, t2.file);

	/* bad pins */
	CHECK_INT(image_source_parse("https://h/x.img#sha256=abc", &s, &e), -EINVAL);
	CHECK_INT(image_source_parse("https://h/x.img#md5=00112233445566778899aabbccddeeff", &s, &e),
		  -EINVAL);
	snprintf(u, sizeof(u), "https://h/x.img#sha256=%.63sg", h);
	CHECK_INT(image_source_parse(u, &s, &e), -EINVAL);

	/* unsafe basenames are sanitised; query strings do not count */
	CHECK_INT(image_source_parse("http://h/dir/we%20ird$name.img?token=1/2", &s, &e), 0);
	CHECK_STR(s.file + 16, "-we_20ird_name.img");
	CHECK_INT(image_source_parse("http://h/", &s, &e), 0);
	CHECK_STR(s.file + 16, "-image");
	CHECK_INT(image_source_parse("http://h/..", &s, &e), 0);
	CHECK_STR(s.file + 16, "-image");
	CHECK_INT(image_source_parse("file:///tmp/x y.img", &s, &e), -EINVAL);
	CHECK_INT(image_source_parse("https://", &s, &e), -EINVAL);
	CHECK_INT(image_source_parse("debian-10", &s, &e), -EINVAL);
	CHECK_INT(image_source_parse("/tmp/x.img", &s, &e), -EINVAL);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint8_t head[64 * 1024];

static void test_mbr(void)
{
	struct image_part p[8];
	memset(head, 0, sizeof(head));
	CHECK_INT(image_part_table_parse(head, sizeof(head), p, 8), 0);
	head[510] = 0x55;
	head[511] = 0xaa;
	/* 1: FAT (ignored), 2: Linux at 1 MiB, 3: extended (ignored), 4: Linux */
	head[446 + 4] = 0x0c;
	put32(head + 446 + 8, 63);
	put32(head + 446 + 12, 100);
	head[446 + 16 + 4] = 0x83;
	put32(head + 446 + 16 + 8, 2048);
	put32(head + 446 + 16 + 12, 4096);
	head[446 + 32 + 4] = 0x05;
	put32(head + 446 + 32 + 8, 8192);
	put32(head + 446 + 32 + 12, 100);
	head[446 + 48 + 4] = 0x83;
	put32(head + 446 + 48 + 8, 10000);
	put32(head + 446 + 48 + 12, 20);
	CHECK_INT(image_part_table_parse(head, sizeof(head), p, 8), 2);
	CHECK_INT(p[0].num, 2);
	CHECK_INT(p[0].start, 2048 * 512);
	CHECK_INT(p[0].size, 4096 * 512);
	CHECK_INT(p[1].num, 4);
	CHECK_INT(image_part_table_parse(head, sizeof(head), p, 1), -E2BIG);

	/* no table but an ext superblock magic: the whole disk */
	memset(head, 0, sizeof(head));
	head[1080] = 0x53;
	head[1081] = 0xef;
	CHECK_INT(image_part_table_parse(head, sizeof(head), p, 8), 1);
	CHECK_INT(p[0].num, 0);
	CHECK_INT(p[0].start, 0);
}

static const uint8_t linux_fs[16] = { 0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47,
				      0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4 };
static const uint8_t esp[16] = { 0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11,
				 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b };

static void test_gpt(void)
{
	struct image_part p[8];
	memset(head, 0, sizeof(head));
	head[510] = 0x55;
	head[511] = 0xaa;
	head[446 + 4] = 0xee;
	put32(head + 446 + 8, 1);
	put32(head + 446 + 12, 0xffffffff);
	memcpy(head + 512, "EFI PART", 8);
	put64(head + 512 + 72, 2);
	put32(head + 512 + 80, 128);
	put32(head + 512 + 84, 128);
	uint8_t *ent = head + 1024;
	/* entry 1: Linux 2048..4095; entry 15: ESP; entry 16: Linux 100..199 */
	memcpy(ent, linux_fs, 16);
	put64(ent + 32, 2048);
	put64(ent + 40, 4095);
	memcpy(ent + 14 * 128, esp, 16);
	put64(ent + 14 * 128 + 32, 34);
	put64(ent + 14 * 128 + 40, 99);
	memcpy(ent + 15 * 128, linux_fs, 16);
	put64(ent + 15 * 128 + 32, 100);
	put64(ent + 15 * 128 + 40, 199);
	CHECK_INT(image_part_table_parse(head, sizeof(head), p, 8), 2);
	CHECK_INT(p[0].num, 1);
	CHECK_INT(p[0].start, 2048 * 512);
	CHECK_INT(p[0].size, 2048 * 512);
	CHECK_INT(p[1].num, 16);
	CHECK_INT(p[1].start, 100 * 512);
	CHECK_INT(p[1].size, 100 * 512);

	/* entries beyond what was read */
	put64(head + 512 + 72, 4096);
	CHECK_INT(image_part_table_parse(head, sizeof(head), p, 8), -ERANGE);
	/* absurd entry size */
	put64(head + 512 + 72, 2);
	put32(head + 512 + 84, 8);
	CHECK_INT(image_part_table_parse(head, sizeof(head), p, 8), -EINVAL);
	CHECK_INT(image_part_table_parse(head, 100, p, 8), -EINVAL);
}

static void test_cmdline(void)
{
	char buf[64];
	CHECK_INT(image_boot_cmdline(1, buf, sizeof(buf)), 0);
	CHECK_STR(buf, "console=ttyS0 root=/dev/vda1 rw");
	CHECK_INT(image_boot_cmdline(2, buf, sizeof(buf)), 0);
	CHECK_STR(buf, "console=ttyS0 root=/dev/vda2 rw");
	CHECK_INT(image_boot_cmdline(0, buf, sizeof(buf)), 0);
	CHECK_STR(buf, "console=ttyS0 root=/dev/vda rw");
	CHECK_INT(image_boot_cmdline(1, buf, 10), -ENAMETOOLONG);
}

int main(void)
{
	test_catalog();
	test_unpinned_alias_refused();
	test_urls();
	test_mbr();
	test_gpt();
	test_cmdline();
	printf("ok\n");
	return 0;
}
