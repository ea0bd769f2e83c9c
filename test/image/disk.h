/* disk.h - test helpers: partitioned disk images built with our own MBR/GPT
 * writer (valid CRCs) and `mke2fs -d` (no loop devices, no mounts), plus small
 * file tools. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tpart {
	int num;              /* partition number (GPT: entry index + 1; MBR: 1..4) */
	uint64_t start_mib;
	uint64_t size_mib;
	const char *tree;     /* directory for mke2fs -d; NULL: leave unformatted */
	bool esp;             /* GPT type: EFI system partition instead of Linux */
};

/* A fresh "<prefix>-XXXXXX" in the cwd (the build tree: /tmp may be a small
 * tmpfs), absolute in dir, and a private image cache in it: cache =
 * <dir>/cache, exported as FLEETBOX_CACHE. */
void test_dir(const char *prefix, char *dir, char *cache);
/* "<dir>/<name>" in one of 8 rotating buffers. */
const char *path_in(const char *dir, const char *name);
/* Creates a sparse disk image of size_mib with the partitions. */
void disk_make(const char *path, uint64_t size_mib, bool gpt, const struct tpart *p, int n);
/* Formats the whole file as one ext4 filesystem from tree. */
void disk_make_plain(const char *path, uint64_t size_mib, const char *tree);
/* Runs argv (NULL-terminated), aborting the test unless it exits 0. */
void run(const char *const argv[]);
void write_random(const char *path, size_t len);
void mkdir_or_die(const char *path);
void symlink_or_die(const char *target, const char *path);
bool files_equal(const char *a, const char *b);
bool exists(const char *path);
/* Count of directory entries whose name ends with suffix. */
int count_suffix(const char *dir, const char *suffix);
double now_s(void);
/* GPT pieces for crafted images (little-endian writers, CRC32 as GPT uses). */
void put32(uint8_t *p, uint32_t v);
void put64(uint8_t *p, uint64_t v);
uint32_t crc32_le(const void *data, size_t len);
/* Protective MBR + primary header (entries at LBA 2, 128 x 128 bytes) in head[34*512]. */
void gpt_header(uint8_t *head, uint64_t sectors);
void gpt_entry(uint8_t *head, int num, bool esp, uint64_t first, uint64_t last);
/* Recomputes the entry array and header CRCs. */
void gpt_fix_crcs(uint8_t *head, uint64_t entries_off, uint32_t n, uint32_t esz);
