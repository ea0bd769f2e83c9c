/* owner.c - see owner.h. */
#include "util/owner.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

static bool parse_id(const char *s, unsigned long *out)
{
	char *end;
	if (!s || !*s)
		return false;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v >= (unsigned long)(uid_t)-1)
		return false;
	*out = v;
	return true;
}

bool owner_invoker(uid_t *uid, gid_t *gid)
{
	unsigned long u, g;
	if (geteuid() != 0 || !parse_id(getenv("SUDO_UID"), &u) ||
	    !parse_id(getenv("SUDO_GID"), &g) || u == 0)
		return false;
	if (uid)
		*uid = (uid_t)u;
	if (gid)
		*gid = (gid_t)g;
	return true;
}

int owner_claim_at(int dirfd, const char *name)
{
	uid_t u;
	gid_t g;
	if (!owner_invoker(&u, &g))
		return 0;
	int flags = AT_SYMLINK_NOFOLLOW | (*name ? 0 : AT_EMPTY_PATH);
	return fchownat(dirfd, name, u, g, flags) < 0 ? -errno : 0;
}

int owner_claim_fd(int fd)
{
	return owner_claim_at(fd, "");
}

int owner_claim(const char *path)
{
	return owner_claim_at(AT_FDCWD, path);
}
