/* fuzz_image.c - libFuzzer target for the image parsing that is ours: the
 * qcow2 header parser, the ext superblock pre-check, and the whole boot
 * probe (libblkid partition tables and filesystem types, our range checks on
 * what it reports, libext2fs lookups and symlink resolution, extraction) on
 * the input taken as a raw disk image. Built and run by run.sh (README.md). */
#include "client/image/int.h"
#include "util/err.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char outdir[64] = "/dev/shm/fuzz-image-XXXXXX";
static int disk = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!mkdtemp(outdir) || (disk = memfd_create("fuzz-image", MFD_CLOEXEC)) < 0)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", disk);
	return 0;
}

static void clean_outdir(void)
{
	static const char *const files[] = { "vmlinuz", "initrd", "part.tmp" };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char p[128];
		snprintf(p, sizeof(p), "%s/%s", outdir, files[i]);
		unlink(p);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qcow2_info q;
	qcow2_parse(data, size, size, &q);
	if (size >= 1024 + EXT_SB_LEN)
		ext_sb_check(data + 1024, size);
	if (ftruncate(disk, 0) < 0 || pwrite(disk, data, size, 0) != (ssize_t)size)
		abort();
	struct probe_disk d = { .path = path };
	struct boot_probe b;
	struct err e = { 0 };
	int r = probe_boot(&d, outdir, &b, &e);
	/* a result is well-formed: terminated strings, partitions in range */
	if (r == 0 && (b.root_part < 0 || b.root_part > 255 || !memchr(b.kernel, 0, sizeof(b.kernel))))
		abort();
	if (r < 0 && !e.msg[0])
		abort(); /* every failure says why */
	clean_outdir();
	return 0;
}
