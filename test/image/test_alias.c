/* test_alias.c - catalog, URL parsing, cache names, partition tables, cmdline. */
#include "../unit/check.h"

#include "client/image/remote.h"
#include "client/image/int.h"
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

static void put32be(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put64be(uint8_t *p, uint64_t v)
{
	put32be(p, (uint32_t)(v >> 32));
	put32be(p + 4, (uint32_t)v);
}

static uint8_t q[4096];

/* A valid v3 header: 64 KiB clusters, 1 GiB, no backing file. */
static void qcow2_base(void)
{
	memset(q, 0, sizeof(q));
	memcpy(q, "QFI\xfb", 4);
	put32be(q + 4, 3);
	put32be(q + 20, 16);
	put64be(q + 24, 1ull << 30);
	put32be(q + 96, 4);
	put32be(q + 100, 104);
}

/* The qcow2 header parser: every field we use is range-checked. */
static void test_qcow2(void)
{
	struct qcow2_info i;
	qcow2_base();
	CHECK_INT(qcow2_parse(q, sizeof(q), sizeof(q), &i), 0);
	CHECK_INT(i.size, 1ull << 30);
	CHECK_INT(i.backing_len, 0);
	CHECK_INT(qcow2_parse(q, 50, 50, &i), -EINVAL);            /* truncated */
	CHECK_INT(qcow2_parse(q, 80, 80, &i), -EINVAL);            /* v3 without its fields */
	CHECK_INT(qcow2_parse(q, sizeof(q), 10, &i), -EINVAL);     /* more read than the file */
	put32be(q + 4, 4);
	CHECK_INT(qcow2_parse(q, sizeof(q), sizeof(q), &i), -EOPNOTSUPP);
	qcow2_base();
	put32be(q + 20, 63);                                        /* absurd cluster size */
	CHECK_INT(qcow2_parse(q, sizeof(q), sizeof(q), &i), -EINVAL);
	qcow2_base();
	put32be(q + 20, 8);
	CHECK_INT(qcow2_parse(q, sizeof(q), sizeof(q), &i), -EINVAL);
	qcow2_base();
	put64be(q + 24, 0);
	CHECK_INT(qcow2_parse(q, sizeof(q), sizeof(q), &i), -EFBIG);
	put64be(q + 24, ~0ull);
	CHECK_INT(qcow2_parse(q, sizeof(q), sizeof(q), &i), -EFBIG);
	qcow2_base();
	put32be(q + 100, 1u << 20);                                 /* header beyond a cluster */
	CHECK_INT(qcow2_parse(q, sizeof(q), sizeof(q), &i), -EINVAL);
	qcow2_base();
	put64be(q + 72, 1ull << 40);                                /* unknown incompatible bit */
	CHECK_INT(qcow2_parse(q, sizeof(q), sizeof(q), &i), -EOPNOTSUPP);
	qcow2_base();
	put64be(q + 72, 1ull << 2);                                 /* external data file */
	CHECK_INT(qcow2_parse(q, sizeof(q), sizeof(q), &i), 0);
	CHECK(i.incompat & 4);
	/* backing file name: inside the first cluster, after the header, < 1 KiB */
	qcow2_base();
	put64be(q + 8, 200);
	put32be(q + 16, 11);
	CHECK_INT(qcow2_parse(q, sizeof(q), sizeof(q), &i), 0);
	CHECK_INT(i.backing_off, 200);
	CHECK_INT(i.backing_len, 11);
	put64be(q + 8, ~0ull - 4);                                  /* offset + size wraps */
	CHECK_INT(qcow2_parse(q, sizeof(q), sizeof(q), &i), -EINVAL);
	put64be(q + 8, 4090);                                       /* beyond the file */
	CHECK_INT(qcow2_parse(q, sizeof(q), sizeof(q), &i), -EINVAL);
	put64be(q + 8, 50);                                         /* inside the header */
	CHECK_INT(qcow2_parse(q, sizeof(q), sizeof(q), &i), -EINVAL);
	put64be(q + 8, 200);
	put32be(q + 16, 0x80000000u);                               /* absurd length */
	CHECK_INT(qcow2_parse(q, sizeof(q), sizeof(q), &i), -EINVAL);
	/* v2: 72-byte header, no feature bits */
	qcow2_base();
	put32be(q + 4, 2);
	CHECK_INT(qcow2_parse(q, 72, 72, &i), 0);
	CHECK_INT(i.header_len, 72);
}

static void le32w(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The ext superblock pre-check: the filesystem must fit its partition. */
static void test_ext_sb(void)
{
	uint8_t sb[1024];
	memset(sb, 0, sizeof(sb));
	sb[0x38] = 0x53;
	sb[0x39] = 0xef;
	le32w(sb + 0x00, 2048);      /* inodes */
	le32w(sb + 0x04, 8192);      /* blocks */
	le32w(sb + 0x14, 1);         /* first data block */
	le32w(sb + 0x18, 0);         /* 1 KiB blocks */
	le32w(sb + 0x20, 8192);      /* blocks per group */
	le32w(sb + 0x28, 2048);      /* inodes per group */
	CHECK_INT(ext_sb_check(sb, 8u << 20), 0);
	CHECK_INT(ext_sb_check(sb, 4u << 20), -ERANGE);   /* bigger than its partition */
	le32w(sb + 0x18, 30);                              /* 1 GiB blocks */
	CHECK_INT(ext_sb_check(sb, 8u << 20), -EINVAL);
	le32w(sb + 0x18, 0);
	le32w(sb + 0x60, 0x80);                            /* 64bit: blocks_hi counts */
	le32w(sb + 0x150, 1);
	CHECK_INT(ext_sb_check(sb, 8u << 20), -ERANGE);
	le32w(sb + 0x60, 0);
	le32w(sb + 0x20, 0);                               /* no blocks per group */
	CHECK_INT(ext_sb_check(sb, 8u << 20), -EINVAL);
	le32w(sb + 0x20, 8192);
	le32w(sb + 0x00, 0xffffffffu);                     /* more inodes than groups hold */
	CHECK_INT(ext_sb_check(sb, 8u << 20), -EINVAL);
	le32w(sb + 0x00, 2048);
	le32w(sb + 0x14, 8192);                            /* first block beyond the end */
	CHECK_INT(ext_sb_check(sb, 8u << 20), -ERANGE);
	sb[0x38] = 0;
	CHECK_INT(ext_sb_check(sb, 8u << 20), -EINVAL);
}

int main(void)
{
	test_catalog();
	test_unpinned_alias_refused();
	test_urls();
	test_qcow2();
	test_ext_sb();
	printf("ok\n");
	return 0;
}
