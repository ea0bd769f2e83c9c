/* owner.h - under sudo, everything fleetbox creates belongs to the user who
 * ran sudo, so a store (and image cache) used once through sudo stays fully
 * usable without it.
 *
 * "Under sudo" means: effective uid 0 and SUDO_UID/SUDO_GID naming someone
 * other than root (sudo sets both; they are inherited by the holder it
 * spawns). Elsewhere every call here is a no-op returning 0. Callers claim a
 * file or directory right where they create it, on the fd when they have
 * one; symlinks are never followed. */
#pragma once
#include <stdbool.h>
#include <sys/types.h>

/* True under sudo; uid and gid (either may be NULL) get the invoking user's ids. */
bool owner_invoker(uid_t *uid, gid_t *gid);
/* chown to the invoking user: by fd, by path (never following a symlink), or
 * relative to a directory fd. 0 or -errno. */
int owner_claim_fd(int fd);
int owner_claim(const char *path);
int owner_claim_at(int dirfd, const char *name);
