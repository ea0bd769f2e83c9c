/* policy.h - what a holder (often root) may open on behalf of a boot-member
 * request, and how it hands it to the VMM.
 *
 * Every path of a spec (disk, seed, fixtures, serial log; kernel, initrd and
 * EFI firmware may also come from the per-user image cache) must lie inside
 * the store the holder serves, is resolved from the store's fd without
 * following any symlink (util/beneath.h) and must be a regular file. A qcow2
 * disk's backing chain is read from its headers (range-checked, util/qcow2.h)
 * and each backing file must pass the same rules; an external data file is
 * refused. The holder opens all of them itself and the VMM gets the open
 * files (/proc/self/fd/N, inherited), so what the VMM opens is exactly what
 * was checked, even if the store changes meanwhile. Anything else is refused
 * before anything is opened: "start <n>: disk_path /etc/shadow is outside
 * the store <root>".
 *
 * The VMM runs as the owner of the member directory (when the holder is root
 * and that owner is not): on a tap owned by that user, with no more privilege
 * than the user who owns the VM's files. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct member;
struct rpc_spec;
struct vmm_boot_spec;

#define BOOT_FIXTURES_MAX 32
#define BOOT_BACKING_MAX 8
#define BOOT_FDS_MAX (9 + BOOT_FIXTURES_MAX + BOOT_BACKING_MAX)

struct boot_files {
	int fds[BOOT_FDS_MAX + 1];            /* + the member dir at hand-over */
	size_t n;
	char names[BOOT_FDS_MAX][32];        /* "/proc/self/fd/N" */
	int disk, seed, serial, kernel, initrd, efi; /* index in fds, -1 = none */
	int fixtures[BOOT_FIXTURES_MAX];
	const char *fixture_paths[BOOT_FIXTURES_MAX];
	const char *backing_paths[BOOT_BACKING_MAX];
	const char *backing_formats[BOOT_BACKING_MAX];
	char backing_fmt[BOOT_BACKING_MAX][16];
	size_t n_fixtures, n_backing;
	char disk_format[8];
	uid_t uid;                           /* VMM runs as uid:gid (0 = as the holder) */
	gid_t gid;
};

/* Checks and opens everything s names for member m (err: "start <n>: ...").
 * On failure nothing stays open. */
int boot_files_open(struct member *m, const struct rpc_spec *s, struct boot_files *bf,
		    char *err, size_t errlen);
/* Adds an fd the VMM inherits (the tap); returns its index or -E2BIG. The
 * fd is closed with the others. */
int boot_files_add(struct boot_files *bf, int fd);
/* Points the paths of bs at the open files and sets the hand-over fields. */
void boot_files_apply(struct boot_files *bf, int member_dir_fd, struct vmm_boot_spec *bs);
void boot_files_close(struct boot_files *bf);
/* Whether path lies inside the store (by either spelling of its root). */
bool holder_path_in_store(const struct member *m, const char *path, const char **rel);
