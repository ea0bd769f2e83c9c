/* fileio.h - small file helpers shared by every module.
 * All return 0 or -errno. Writes are atomic: a unique <path>.tmp.XXXXXX, fsync,
 * rename, fsync dir, so a crash never leaves a half-written file under the
 * final name and concurrent writers never mix. Under sudo, the files and
 * directories these create belong to the invoking user (owner.h). */
#pragma once
#include <stddef.h>
#include <sys/types.h>

int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* Reads a whole file (at most max bytes, else -EFBIG) into a NUL-terminated buffer. */
int file_read_all(const char *path, size_t max, char **out, size_t *len_out);
/* file_read_all, then trailing newlines (\n, \r) stripped: one-line files
 * such as keys and pidfiles. */
int file_read_trimmed(const char *path, size_t max, char **out, size_t *len_out);
/* mkdir -p with mode for every created component; existing dirs are left alone. */
int mkdir_p(const char *path, mode_t mode);
/* Removes a directory tree without following symlinks (openat/unlinkat based). */
int rm_rf(const char *path);
int path_exists(const char *path);
/* fsync the directory containing path. */
int fsync_parent(const char *path);
