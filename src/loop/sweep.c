/* sweep.c - `fleetbox prune` (--fleetbox-reconcile) removes the temporaries
 * of dead writers everywhere in the store a writer of ours puts them: the
 * root (key pair), run/, clusters/<c>/ and every member dir (disk, seed,
 * fixtures, config, pidfile), and images/ one level down (in-store images of
 * older versions). networks/ is swept by net_reconcile under its lock.
 * It also removes a member's pidfile when no holder holds the member's
 * .lock: a holder takes the lock before it writes the pidfile and removes
 * the pidfile before it lets go, so a free lock means a dead holder (one
 * killed before the member had a config.json, which `prune`'s member list
 * never sees).
 * Directories are entered with O_NOFOLLOW one component at a time, so a
 * symlink in a (possibly user-owned) store never leads a root prune astray. */
#include "loop/holder.h"
#include "util/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int open_sub(int dfd, const char *name)
{
	return openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Sweeps dfd itself and, when depth > 0, its subdirectories (not dot-names). */
static int sweep_tree(int dfd, int depth)
{
	int n = file_tmp_sweep_at(dfd, NULL);
	n = n > 0 ? n : 0;
	if (depth == 0)
		return n;
	int fd = dup(dfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return n;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
			continue;
		int sub = open_sub(dirfd(d), de->d_name);
		if (sub < 0)
			continue;
		n += sweep_tree(sub, depth - 1);
		close(sub);
	}
	closedir(d);
	return n;
}

/* The pidfile in member dir dfd, when no live holder holds its .lock. */
static int sweep_pidfile(int dfd)
{
	int lock = openat(dfd, ".lock", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	bool held = lock >= 0 && fcntl(lock, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
	if (lock >= 0)
		close(lock);
	if (held || faccessat(dfd, "pid", F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	return unlinkat(dfd, "pid", 0) == 0;
}

int store_sweep_pidfiles(const char *root)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/clusters", root);
	int cfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *cd = cfd >= 0 ? fdopendir(cfd) : NULL;
	if (!cd) {
		if (cfd >= 0)
			close(cfd);
		return 0;
	}
	int n = 0;
	struct dirent *c, *m;
	while ((c = readdir(cd))) {
		int kfd = c->d_name[0] == '.' ? -1 : open_sub(dirfd(cd), c->d_name);
		DIR *kd = kfd >= 0 ? fdopendir(kfd) : NULL;
		while (kd && (m = readdir(kd))) {
			int mfd = m->d_name[0] == '.' ? -1 : open_sub(dirfd(kd), m->d_name);
			if (mfd >= 0) {
				n += sweep_pidfile(mfd);
				close(mfd);
			}
		}
		if (kd)
			closedir(kd);
		else if (kfd >= 0)
			close(kfd);
	}
	closedir(cd);
	return n;
}

int store_sweep_tmp(const char *root)
{
	int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rfd < 0)
		return -errno;
	int n = sweep_tree(rfd, 0);
	static const struct { const char *dir; int depth; } subs[] = {
		{ "run", 0 }, { "clusters", 2 }, { "images", 1 },
	};
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		int fd = open_sub(rfd, subs[i].dir);
		if (fd < 0)
			continue;
		n += sweep_tree(fd, subs[i].depth);
		close(fd);
	}
	close(rfd);
	return n;
}
