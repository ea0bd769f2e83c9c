/* beneath.c - see beneath.h. */
#include "util/beneath.h"
#include "util/owner.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int path_rel_normal(const char *rel)
{
	if (!rel || !*rel || rel[0] == '/')
		return 0;
	for (const char *p = rel;;) {
		size_t l = strcspn(p, "/");
		if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		if (!p[l])
			return 1;
		p += l + 1;
	}
}

int path_under(const char *dir, const char *path, const char **rel)
{
	size_t n = dir ? strlen(dir) : 0;
	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (!path || n == 0 || dir[0] != '/' || strncmp(path, dir, n) != 0)
		return -EXDEV;
	const char *r = path + n;
	if (n > 1) { /* dir "/" keeps its slash in the prefix */
		if (*r != '/')
			return -EXDEV;
		r++;
	}
	if (!path_rel_normal(r))
		return -EXDEV;
	*rel = r;
	return 0;
}

/* openat(O_NOFOLLOW) failed on a component: say symlink when it is one. */
static int not_dir_err(int fd, const char *name, int err)
{
	struct stat st;
	if ((err == ENOTDIR || err == ELOOP) && fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return S_ISLNK(st.st_mode) ? -ELOOP : -ENOTDIR;
	return -err;
}

/* Moves *fd one directory down to name (never through a symlink), closing
 * the previous fd unless it is base. */
static int step(int *fd, int base, const char *name, int how)
{
	int nfd = openat(*fd, name, how | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int err = nfd < 0 ? not_dir_err(*fd, name, errno) : 0;
	if (*fd != base)
		close(*fd);
	*fd = nfd;
	return err;
}

/* The walk for kernels without openat2 (and valgrind, which may not know it). */
int beneath_open_walk(int dirfd, const char *rel, int flags, mode_t mode)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof(buf), "%s", rel) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	int fd = dirfd;
	char *p = buf;
	for (char *slash; (slash = strchr(p, '/')); p = slash + 1) {
		*slash = '\0';
		int err = step(&fd, dirfd, p, O_PATH);
		if (err < 0)
			return err;
	}
	int r = openat(fd, p, flags | O_NOFOLLOW | O_CLOEXEC, mode);
	if (r < 0)
		r = not_dir_err(fd, p, errno);
	if (fd != dirfd)
		close(fd);
	return r;
}

int beneath_open(int dirfd, const char *rel, int flags, mode_t mode)
{
	if (!path_rel_normal(rel))
		return -EXDEV;
	struct open_how how = {
		.flags = (unsigned long long)(flags | O_NOFOLLOW | O_CLOEXEC),
		.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
	if (fd >= 0)
		return (int)fd;
	if (errno == ENOSYS || errno == EPERM) /* EPERM: a seccomp filter that refuses it */
		return beneath_open_walk(dirfd, rel, flags, mode);
	return -errno;
}

int beneath_mkdir_p(int dirfd, const char *rel, mode_t mode)
{
	if (!path_rel_normal(rel))
		return -EXDEV;
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof(buf), "%s", rel) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	int fd = dirfd;
	for (char *p = buf;;) {
		char *slash = strchr(p, '/');
		if (slash)
			*slash = '\0';
		int made = mkdirat(fd, p, mode) == 0;
		if (!made && errno != EEXIST) {
			int err = -errno;
			if (fd != dirfd)
				close(fd);
			return err;
		}
		if (made)
			(void)owner_claim_at(fd, p); /* under sudo: the invoking user's */
		int err = step(&fd, dirfd, p, O_RDONLY);
		if (err < 0)
			return err;
		if (!slash)
			return fd;
		p = slash + 1;
	}
}
