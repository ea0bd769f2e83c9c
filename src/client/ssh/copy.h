/* copy.h - `fleetbox cp`: files and trees between host and guest as a tar
 * stream over one SSH connection (remote `tar -x` / `tar -c`, read and written
 * here with libarchive, streamed: no file is ever held in memory whole).
 *
 * Semantics follow `cp -r`: copying SRC to an existing directory DST creates
 * DST/<basename SRC>; to a missing DST creates DST itself (parents are created).
 * Modes are kept (set-id bits dropped on the host), symlinks are stored, never
 * followed, empty directories are kept. Ownership is not copied: files belong
 * to whoever extracts them.
 *
 * Host-side extraction never writes outside the destination: it works from an
 * opened directory fd with openat(O_NOFOLLOW) per component and refuses
 * absolute names, ".." components, symlinks pointing outside the destination,
 * entries under a symlinked parent, hardlinks to outside, and device nodes.
 *
 * A guest-side failure to read or write for lack of permission is reported
 * plainly ("permission denied writing /etc/app on web-2 as user fleetbox;
 * use --root"), not as tar's own message. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "client/ssh/target.h"

struct err;

/* Progress of a copy: bytes of the tar stream so far, the expected total (0
 * when unknown: copies out of the guest), done on the last call. */
typedef void (*copy_progress_fn)(void *data, uint64_t bytes, uint64_t total, bool done);

struct copy_opts {
	const char *tar; /* remote tar invocation, "tar" when NULL ("busybox tar" in tests) */
	/* Run the guest side as this user through the guest's passwordless sudo
	 * ("root" for --root); NULL: as the login user. */
	const char *sudo_user;
	copy_progress_fn progress; /* NULL: none */
	void *progress_data;
};

int copy_to_guest(const struct ssh_target *t, const char *host_src, const char *guest_dst,
		  const struct copy_opts *o, struct err *e);
int copy_from_guest(const struct ssh_target *t, const char *guest_src, const char *host_dst,
		    const struct copy_opts *o, struct err *e);

/* --- the tar halves, usable without SSH --- */

/* Sink for a tar stream: write all of buf or return < 0 (with e set). */
typedef int (*copy_write_fn)(void *arg, const void *buf, size_t len, struct err *e);
/* Source of a tar stream: > 0 bytes, 0 at EOF, < 0 error (with e set). */
typedef ssize_t (*copy_read_fn)(void *arg, void *buf, size_t len, struct err *e);

/* Archives host path src (file, symlink or tree; not followed) with its top entry
 * named arcname (a single path component). */
int copy_tar_create(const char *src, const char *arcname, copy_write_fn w, void *arg,
		    struct err *e);
/* Extracts a stream into the existing directory dest_dir. Every entry must lie
 * under top_from (its first component); that component is replaced by top_to. */
int copy_tar_extract(copy_read_fn r, void *arg, const char *dest_dir, const char *top_from,
		     const char *top_to, struct err *e);
/* The same; with top_is_dest, the top entry (dest_dir/top_to) is the
 * destination root for symlinks: `cp VM:/x DIR/newname`. */
int copy_tar_extract_to(copy_read_fn r, void *arg, const char *dest_dir, const char *top_from,
			const char *top_to, bool top_is_dest, struct err *e);

/* --- the safety checks, pure (unit tested and fuzzed) --- */

/* An archive name made relative and normal ("top_to/a/b"): "." and empty
 * components dropped, absolute names and ".." refused (-EPERM), the first
 * component must be top_from (when set) and becomes top_to (when set). */
int copy_name_normalize(const char *raw, const char *top_from, const char *top_to, char *out,
			size_t len, struct err *e);
/* 0 when symlink rel (a normalised name) -> target stays inside the
 * destination: relative, all ".." first, never above the destination root,
 * which lies root_depth components below the extraction dir; else -EPERM. */
int copy_symlink_check(const char *rel, const char *target, int root_depth, struct err *e);
