#include "util/fileio.h"
#include "util/owner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util/proc.h"

/* The directory containing path ("." for a bare name, "/" for "/x"). */
static int parent_dir(const char *path, char *dir, size_t len)
{
	if (snprintf(dir, len, "%s", path) >= (int)len)
		return -ENAMETOOLONG;
	char *slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, len, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	return 0;
}

int fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	if (parent_dir(path, dir, sizeof(dir)) < 0)
		return -ENAMETOOLONG;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	/* Some filesystems refuse fsync on directories; that is not a failure. */
	return r == -EINVAL ? 0 : r;
}

/* ---- temporaries ---- */

static unsigned long long self_start(void)
{
	static pid_t pid;
	static unsigned long long start;
	if (pid != getpid()) { /* first call, or we are a fork child */
		pid = getpid();
		if (proc_start_time(pid, &start) < 0)
			start = 0;
	}
	return start;
}

static void random_alnum(char *out, size_t n)
{
	static const char set[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	unsigned char rnd[16];
	if (n > sizeof(rnd) || getrandom(rnd, n, 0) != (ssize_t)n) {
		/* Without getrandom the pid + start time still make the name ours;
		 * the suffix only separates one process's own temporaries. */
		static unsigned counter;
		for (size_t i = 0; i < n && i < sizeof(rnd); i++)
			rnd[i] = (unsigned char)(++counter * 2654435761u >> 24);
	}
	for (size_t i = 0; i < n; i++)
		out[i] = set[rnd[i] % (sizeof(set) - 1)];
	out[n] = '\0';
}

static int tmp_format(const char *path, const char *suffix, char *out, size_t len)
{
	int n = snprintf(out, len, "%s" FILE_TMP_TAG "%d.%llu.%s", path, (int)getpid(), self_start(),
			 suffix);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int file_tmp_name(const char *path, char *out, size_t len)
{
	char sfx[7];
	random_alnum(sfx, 6);
	return tmp_format(path, sfx, out, len);
}

static bool all_digits(const char *s, size_t n)
{
	if (n == 0 || n > 20)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static bool all_alnum(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return true;
}

/* The last ".tmp." in name, or NULL. */
static const char *tmp_tag(const char *name)
{
	const char *tag = NULL;
	for (const char *p = name; (p = strstr(p, FILE_TMP_TAG)); p++)
		tag = p;
	return tag && tag > name ? tag : NULL;
}

int file_tmp_writer(const char *name, pid_t *pid, unsigned long long *start)
{
	const char *tag = tmp_tag(name);
	if (!tag)
		return -EINVAL;
	const char *p = tag + strlen(FILE_TMP_TAG);
	const char *d1 = strchr(p, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	if (!d1 || !d2 || !all_digits(p, (size_t)(d1 - p)) ||
	    !all_digits(d1 + 1, (size_t)(d2 - d1 - 1)) || strlen(d2 + 1) != 6 ||
	    !all_alnum(d2 + 1, 6))
		return -EINVAL;
	long long v = strtoll(p, NULL, 10);
	if (v <= 0 || v > 0x7fffffff)
		return -EINVAL;
	*pid = (pid_t)v;
	*start = strtoull(d1 + 1, NULL, 10);
	return 0;
}

/* "<x>.tmp" or mkostemp's "<x>.tmp.XXXXXX": what older versions left. */
static bool legacy_tmp(const char *name)
{
	size_t n = strlen(name);
	if (n > 4 && !strcmp(name + n - 4, ".tmp"))
		return true;
	return n > 11 && !strncmp(name + n - 11, FILE_TMP_TAG, 5) && all_alnum(name + n - 6, 6);
}

int file_tmp_stale(int dirfd, const char *name)
{
	pid_t pid;
	unsigned long long start;
	if (file_tmp_writer(name, &pid, &start) == 0)
		return !proc_same(pid, start);
	if (!legacy_tmp(name))
		return 0;
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	return time(NULL) - st.st_mtime > FILE_TMP_LEGACY_AGE;
}

int file_tmp_sweep_at(int dfd, const char *prefix)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int r = -errno;
		close(fd);
		return r;
	}
	int removed = 0;
	size_t pl = prefix ? strlen(prefix) : 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_type == DT_DIR || (pl && strncmp(de->d_name, prefix, pl) != 0))
			continue;
		/* unlinkat never follows: a symlink named like a temporary goes, not its target. */
		if (file_tmp_stale(dirfd(d), de->d_name) == 1 && unlinkat(dirfd(d), de->d_name, 0) == 0)
			removed++;
	}
	closedir(d);
	return removed;
}

int file_tmp_sweep(const char *dir, const char *prefix)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = file_tmp_sweep_at(fd, prefix);
	close(fd);
	return r;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int fsync_dirfd(int dfd)
{
	int r = fsync(dfd) < 0 ? -errno : 0;
	/* Some filesystems refuse fsync on directories; that is not a failure. */
	return r == -EINVAL ? 0 : r;
}

int file_write_atomic_at(int dfd, const char *name, const void *data, size_t len, mode_t mode)
{
	/* A unique temporary name that names its writer: concurrent writers of
	 * the same file never truncate each other's half-written copy (the last
	 * rename wins whole), and a dead writer's copy can be told apart. */
	char tmp[NAME_MAX + 1];
	int r = file_tmp_name(name, tmp, sizeof(tmp));
	if (r < 0 || strchr(name, '/'))
		return r < 0 ? r : -EINVAL;
	int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode) < 0)
		r = -errno;
	if (r == 0)
		r = owner_claim_fd(fd); /* under sudo: the invoking user's */
	if (r == 0)
		r = write_all(fd, data, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(dfd, tmp, dfd, name) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dfd, tmp, 0);
		return r;
	}
	/* The dead writers' temporaries of this very file: cheap, the
	 * directory is being written anyway. */
	char prefix[NAME_MAX + 8];
	if (snprintf(prefix, sizeof(prefix), "%s" FILE_TMP_TAG, name) < (int)sizeof(prefix))
		file_tmp_sweep_at(dfd, prefix);
	return fsync_dirfd(dfd);
}

int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (parent_dir(path, dir, sizeof(dir)) < 0)
		return -ENAMETOOLONG;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	int r = file_write_atomic_at(dfd, slash ? slash + 1 : path, data, len, mode);
	close(dfd);
	return r;
}

int file_read_all(const char *path, size_t max, char **out, size_t *len_out)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		if (len == cap) {
			if (cap >= max) {
				free(buf);
				close(fd);
				return -EFBIG;
			}
			cap *= 2;
			char *nb = realloc(buf, cap + 1);
			if (!nb) {
				free(buf);
				close(fd);
				return -ENOMEM;
			}
			buf = nb;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;
			free(buf);
			close(fd);
			return e;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (len > max) {
		free(buf);
		return -EFBIG;
	}
	buf[len] = '\0';
	*out = buf;
	if (len_out)
		*len_out = len;
	return 0;
}

int file_read_trimmed(const char *path, size_t max, char **out, size_t *len_out)
{
	size_t n;
	int r = file_read_all(path, max, out, &n);
	if (r < 0)
		return r;
	while (n > 0 && ((*out)[n - 1] == '\n' || (*out)[n - 1] == '\r'))
		(*out)[--n] = '\0';
	if (len_out)
		*len_out = n;
	return 0;
}

int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(buf, mode) == 0) {
				int r = owner_claim(buf); /* under sudo: the invoking user's */
				if (r < 0)
					return r;
			} else if (errno != EEXIST) {
				return -errno;
			}
			*p = c;
			if (c == '\0')
				break;
		}
	}
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* The mount a directory fd is on: statx's mount id where the kernel gives
 * one (bind mounts of the same filesystem share st_dev), else st_dev. */
static int mount_of(int fd, uint64_t *id)
{
	struct statx sx;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) < 0)
		return -errno;
	*id = (sx.stx_mask & STATX_MNT_ID) ? sx.stx_mnt_id
					     : ((uint64_t)sx.stx_dev_major << 32 | sx.stx_dev_minor);
	return 0;
}

/* Never crosses into another mount: a killed image build (mmdebstrap)
 * leaves proc, sys, dev/pts and dev/shm mounted inside its temporary, and
 * removing a dead writer's temporary must not empty them. */
static int rm_tree(int dfd, const char *name, uint64_t *mnt)
{
	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	uint64_t here;
	int r = mount_of(fd, &here);
	if (r == 0 && !mnt)
		mnt = &here;
	if (r == 0 && here != *mnt)
		r = -EBUSY; /* a mount point */
	DIR *d = r == 0 ? fdopendir(fd) : NULL;
	if (!d) {
		r = r < 0 ? r : -errno;
		close(fd);
		return r;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		int rr = rm_tree(dirfd(d), de->d_name, mnt);
		if (rr < 0 && r == 0)
			r = rr;
	}
	closedir(d);
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
		r = -errno;
	return r;
}

int rm_rf_at(int dfd, const char *name)
{
	return rm_tree(dfd, name, NULL);
}

int rm_rf(const char *path)
{
	return rm_rf_at(AT_FDCWD, path);
}

int path_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}
