/* sweep.c - `fleetbox prune` (--fleetbox-reconcile) removes the temporaries
 * of dead writers everywhere in the store a writer of ours puts them: the
 * root (key pair), run/, clusters/<c>/ and every member dir (disk, seed,
 * fixtures, config, pidfile), and images/ one level down (in-store images of
 * older versions). networks/ is swept by net_reconcile under its lock.
 * Directories are entered with O_NOFOLLOW one component at a time, so a
 * symlink in a (possibly user-owned) store never leads a root prune astray. */
#include "loop/holder.h"
#include "util/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
