/* beneath.h - opening paths a privileged process was handed, without letting
 * the sender steer it outside a directory it trusts (the store, the image
 * cache): the path must lie lexically inside the directory (no "." or ".."
 * components), and it is resolved from an fd of that directory without
 * following any symlink (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS; where openat2 is missing, a component-wise walk with
 * O_NOFOLLOW). A symlink anywhere on the way gives -ELOOP, never its target.
 * All return an fd or 0, or -errno. */
#pragma once
#include <sys/types.h>

/* 0 and *rel pointing at the part of path after "<dir>/" when path lies
 * inside dir (dir itself excluded); -EXDEV when it does not, or when path or
 * the remainder is not in normal form (empty, ".", ".." components). */
int path_under(const char *dir, const char *path, const char **rel);
/* True when rel is a relative path in normal form: no leading '/', no empty,
 * "." or ".." component. */
int path_rel_normal(const char *rel);
/* openat(dirfd, rel, flags | O_NOFOLLOW | O_CLOEXEC, mode) resolved beneath
 * dirfd with no symlink followed. */
int beneath_open(int dirfd, const char *rel, int flags, mode_t mode);
/* The component-wise O_NOFOLLOW walk beneath_open falls back to (exposed so
 * tests hold both to the same rules). */
int beneath_open_walk(int dirfd, const char *rel, int flags, mode_t mode);
/* mkdir -p of rel beneath dirfd (each created component gets mode; an
 * existing symlink is -ELOOP, an existing non-directory -ENOTDIR); returns an
 * O_DIRECTORY fd of the last component. */
int beneath_mkdir_p(int dirfd, const char *rel, mode_t mode);
