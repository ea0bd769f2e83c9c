/* fileio.h - small file helpers shared by every module.
 * All return 0 or -errno. Writes are atomic: a unique temporary, fsync,
 * rename, fsync dir, so a crash never leaves a half-written file under the
 * final name and concurrent writers never mix. Under sudo, the files and
 * directories these create belong to the invoking user (owner.h).
 *
 * Temporaries (every ".tmp" the project makes) are named by file_tmp_name():
 * "<final>.tmp.<pid>.<start>.<6 random>", the writer's pid and start time
 * (util/proc.h), so file_tmp_sweep() can remove exactly those whose writer is
 * dead, whoever wrote them (holder, client, a killed `up`). */
#pragma once
#include <stddef.h>
#include <sys/types.h>

int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* The same for name (one component) in the directory dfd, never following a
 * symlink (under sudo it is the invoking user's before it appears). */
int file_write_atomic_at(int dfd, const char *name, const void *data, size_t len, mode_t mode);

#define FILE_TMP_TAG ".tmp."
/* Names of older versions ("<x>.tmp", "<x>.tmp.XXXXXX") carry no writer: they
 * count as stale once this old (seconds). */
#define FILE_TMP_LEGACY_AGE (24 * 3600)
/* A fresh temporary name for path (the caller creates the file, e.g. with
 * O_EXCL, or hands the name to a tool). 0 or -ENAMETOOLONG. */
int file_tmp_name(const char *path, char *out, size_t len);
/* The writer a temporary's name records; -EINVAL when name is not one. */
int file_tmp_writer(const char *name, pid_t *pid, unsigned long long *start);
/* 1 when name (an entry of dirfd) is a temporary whose writer is gone, else 0. */
int file_tmp_stale(int dirfd, const char *name);
/* Removes the stale temporaries directly in dir (no recursion, symlinks are
 * removed, never followed); with prefix, only names starting with it.
 * Returns how many went, or -errno when dir cannot be opened. */
int file_tmp_sweep(const char *dir, const char *prefix);
int file_tmp_sweep_at(int dirfd, const char *prefix);
/* Reads a whole file (at most max bytes, else -EFBIG) into a NUL-terminated buffer. */
int file_read_all(const char *path, size_t max, char **out, size_t *len_out);
/* file_read_all, then trailing newlines (\n, \r) stripped: one-line files
 * such as keys and pidfiles. */
int file_read_trimmed(const char *path, size_t max, char **out, size_t *len_out);
/* mkdir -p with mode for every created component; existing dirs are left alone. */
int mkdir_p(const char *path, mode_t mode);
/* Removes a directory tree without following symlinks (openat/unlinkat based)
 * and without descending into another mount (-EBUSY, the mount untouched). */
int rm_rf(const char *path);
/* rm_rf of name inside the directory dfd. */
int rm_rf_at(int dfd, const char *name);
int path_exists(const char *path);
/* fsync the directory containing path. */
int fsync_parent(const char *path);
