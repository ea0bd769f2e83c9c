/* orch/tidy.c - leaving no files behind for members that no longer exist:
 * holder logs (runner-<first member>.log), cluster lock files, and what a
 * killed creation left (store.h "Crash-safe creation"). Used by rm and by
 * prune. */
#include "client/orch/orch.h"
#include "client/image/image.h"
#include "client/store.h"
#include "util/err.h"
#include "util/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Does process pid have the file (dev, ino) open? */
static bool pid_has_open(pid_t pid, dev_t dev, ino_t ino)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(dir);
	if (!d)
		return true; /* cannot tell (another user's holder): keep it */
	struct dirent *de;
	bool open = false;
	while (!open && (de = readdir(d))) {
		char p[300];
		struct stat st;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		open = de->d_name[0] != '.' && stat(p, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
	}
	closedir(d);
	return open;
}

/* Is the log written by a live holder of this store? */
static bool log_in_use(const char *root, const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return false;
	char **names;
	size_t n;
	if (store_list_members(root, &names, &n) < 0)
		return true;
	bool used = false;
	for (size_t i = 0; i < n && !used; i++) {
		pid_t pid;
		used = store_member_running(root, names[i], &pid) && pid_has_open(pid, st.st_dev, st.st_ino);
	}
	store_names_free(names, n);
	return used;
}

void orch_tidy_runner_log(const char *root, const char *name)
{
	char log[PATH_MAX], dir[PATH_MAX];
	snprintf(log, sizeof(log), "%s/runner-%s.log", root, name);
	if (store_member_dir(root, name, dir, sizeof(dir)) < 0 || path_exists(dir) || !path_exists(log))
		return;
	if (!log_in_use(root, log))
		unlink(log);
}

/* Takes the cluster's lock only if nobody holds it (prune never waits for a
 * running up). -EBUSY if busy. The caller closes the fd. */
static int try_lock_cluster(const char *root, const char *cluster)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/clusters/.%s.lock", root, cluster);
	int fd = open(p, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat a, b;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0 || fstat(fd, &a) < 0 || stat(p, &b) < 0 ||
	    a.st_ino != b.st_ino) {
		close(fd);
		return -EBUSY;
	}
	return fd;
}

/* Incomplete creations whose cluster is not locked by a running command. */
static int prune_incomplete(const char *root)
{
	char **names;
	size_t n;
	int count = 0;
	if (store_list_incomplete(root, NULL, &names, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char cl[FB_NAME_MAX + 1];
		wire_cluster_name(names[i], cl);
		int fd = try_lock_cluster(root, cl);
		struct err e = { 0 };
		if (fd == -EBUSY)
			continue;
		if (store_member_incomplete(root, names[i]) && store_member_reclaim(root, names[i], &e) == 0)
			count++;
		if (fd >= 0)
			close(fd);
	}
	store_names_free(names, n);
	return count;
}

int orch_tidy_runner_logs(const char *root)
{
	int count = 0;
	DIR *d = opendir(root);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		size_t l = strlen(de->d_name);
		char name[FB_NAME_MAX + 1];
		if (l <= 11 || strncmp(de->d_name, "runner-", 7) || strcmp(de->d_name + l - 4, ".log") ||
		    l - 11 > FB_NAME_MAX)
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(l - 11), de->d_name + 7);
		char log[PATH_MAX];
		snprintf(log, sizeof(log), "%s/%s", root, de->d_name);
		orch_tidy_runner_log(root, name);
		count += !path_exists(log);
	}
	if (d)
		closedir(d);
	return count;
}

/* .<c>.lock of clusters that do not exist (and nobody holds). */
static int prune_locks(const char *root)
{
	int count = 0;
	struct dirent *de;
	char cdir[PATH_MAX];
	snprintf(cdir, sizeof(cdir), "%s/clusters", root);
	DIR *d = opendir(cdir);
	while (d && (de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l <= 6 || de->d_name[0] != '.' || strcmp(de->d_name + l - 5, ".lock"))
			continue;
		char cl[FB_NAME_MAX + 1], cd[PATH_MAX], lp[PATH_MAX];
		snprintf(cl, sizeof(cl), "%.*s", (int)(l - 6), de->d_name + 1);
		snprintf(cd, sizeof(cd), "%s/%s", cdir, cl);
		snprintf(lp, sizeof(lp), "%s/%s", cdir, de->d_name);
		int fd = path_exists(cd) ? -1 : try_lock_cluster(root, cl);
		if (fd >= 0 && !path_exists(cd) && unlink(lp) == 0)
			count++;
		if (fd >= 0)
			close(fd);
	}
	if (d)
		closedir(d);
	return count;
}

int orch_prune_store(const char *root, struct err *e)
{
	(void)e;
	int n = prune_incomplete(root);
	n += orch_tidy_runner_logs(root);
	n += image_cache_sweep();
	return n + prune_locks(root);
}
