/* fixture.c - --fixture HOST:GUEST parsing and the read-only ext4 images.
 *
 * The image is rebuilt from the host directory at every boot: mke2fs -d copies
 * the tree (symlinks as symlinks), no journal (it is attached read-only), no
 * reserved blocks. It is built at a temporary (file_tmp_name) and renamed, so a failed build
 * never leaves a half image under the real name. Guest paths end up in the
 * seed's mounts: (and the guest's fstab), so whitespace and control characters
 * are refused there. */
#include "client/fixture.h"
#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"
#include "util/owner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIXTURE_MAX 64

static int check_guest(const char *g, struct err *e)
{
	if (g[0] != '/')
		return err_set(e, -EINVAL, "fixture guest path must be absolute: \"%s\"", g);
	if (!strcmp(g, "/"))
		return err_set(e, -EINVAL, "a fixture cannot be mounted over the guest's /");
	for (const unsigned char *p = (const unsigned char *)g; *p; p++)
		if (*p <= ' ' || *p == 0x7f)
			return err_set(e, -EINVAL,
				       "fixture guest path \"%s\" contains whitespace or a control "
				       "character", g);
	for (const char *p = g; *p;) {
		while (*p == '/')
			p++;
		size_t l = strcspn(p, "/");
		if ((l == 1 && p[0] == '.') || (l == 2 && !strncmp(p, "..", 2)))
			return err_set(e, -EINVAL,
				       "fixture guest path \"%s\" must not contain . or .. components", g);
		p += l;
	}
	return 0;
}

int fixture_parse(const char *arg, struct fixture *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	const char *colon = arg ? strrchr(arg, ':') : NULL;
	if (!colon)
		return err_set(e, -EINVAL, "fixture \"%s\" must be HOST:GUEST", arg ? arg : "");
	size_t hl = (size_t)(colon - arg);
	const char *guest = colon + 1;
	if (hl == 0)
		return err_set(e, -EINVAL, "fixture \"%s\": empty host path", arg);
	if (!*guest)
		return err_set(e, -EINVAL, "fixture \"%s\": empty guest path", arg);
	if (hl >= sizeof(out->host_path) || strlen(guest) >= sizeof(out->guest_path))
		return err_set(e, -ENAMETOOLONG, "fixture \"%s\": path too long", arg);
	char host[PATH_MAX];
	memcpy(host, arg, hl);
	host[hl] = '\0';
	int r = check_guest(guest, e);
	if (r < 0)
		return r;

	struct stat st;
	if (stat(host, &st) < 0)
		return err_set(e, -errno, "fixture host directory \"%s\": %s", host, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return err_set(e, -ENOTDIR, "fixture host path \"%s\" is not a directory", host);
	char *abs = realpath(host, NULL);
	if (!abs)
		return err_set(e, -errno, "fixture host directory \"%s\": %s", host, strerror(errno));
	snprintf(out->host_path, sizeof(out->host_path), "%s", abs);
	free(abs);
	/* normalised guest path: no trailing or doubled slashes */
	size_t o = 0;
	for (const char *p = guest; *p; p++) {
		if (*p == '/' && (o > 0 && out->guest_path[o - 1] == '/'))
			continue;
		out->guest_path[o++] = *p;
	}
	while (o > 1 && out->guest_path[o - 1] == '/')
		o--;
	out->guest_path[o] = '\0';
	return 0;
}

int fixture_check_set(struct fixture *set, size_t n, struct err *e)
{
	if (n > FIXTURE_MAX)
		return err_set(e, -E2BIG, "too many fixtures (%zu, at most %d)", n, FIXTURE_MAX);
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < i; j++)
			if (!strcmp(set[i].guest_path, set[j].guest_path))
				return err_set(e, -EEXIST,
					       "two fixtures are mounted at %s (%s and %s)",
					       set[i].guest_path, set[j].host_path, set[i].host_path);
		snprintf(set[i].label, sizeof(set[i].label), "FBFIX%zu", i);
	}
	return 0;
}

/* Bytes and inodes the tree needs (symlinks not followed). */
static int tree_usage(int dfd, const char *name, uint64_t *bytes, uint64_t *inodes, int depth)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	*inodes += 1;
	/* data rounded to 4 KiB blocks, plus room for the inode's extent/xattr use */
	*bytes += ((uint64_t)st.st_size + 4095) / 4096 * 4096 + 512;
	if (!S_ISDIR(st.st_mode))
		return 0;
	if (depth > 256)
		return -ELOOP;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	int r = 0;
	struct dirent *de;
	while (r == 0 && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			r = tree_usage(dirfd(d), de->d_name, bytes, inodes, depth + 1);
	closedir(d);
	return r;
}

int fixture_build_image(const struct fixture *f, const char *img_path, struct err *e)
{
	if (!f->label[0])
		return err_set(e, -EINVAL, "fixture %s has no label (fixture_check_set assigns them)",
			       f->host_path);
	uint64_t bytes = 0, inodes = 0;
	int r = tree_usage(AT_FDCWD, f->host_path, &bytes, &inodes, 0);
	if (r < 0)
		return err_set(e, r, "fixture %s: %s", f->host_path, strerror(-r));
	/* headroom: metadata (inode tables, bitmaps, directories) + 25% + 8 MiB */
	uint64_t ninodes = inodes + inodes / 4 + 64;
	uint64_t size_kib = (bytes + bytes / 4 + ninodes * 256) / 1024 + 8192;
	size_kib = (size_kib + 3) / 4 * 4;

	char tmp[PATH_MAX];
	if (file_tmp_name(img_path, tmp, sizeof(tmp)) < 0)
		return err_set(e, -ENAMETOOLONG, "image path too long: %s", img_path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return err_set(e, -errno, "create %s: %s", tmp, strerror(errno));
	r = owner_claim_fd(fd); /* mke2fs writes into it: the owner stays */
	close(fd);
	if (r < 0) {
		unlink(tmp);
		return err_set(e, r, "chown %s: %s", tmp, strerror(-r));
	}

	struct cmd c;
	cmd_init(&c, "mke2fs");
	cmd_add(&c, "-t");
	cmd_add(&c, "ext4");
	cmd_add(&c, "-O");
	cmd_add(&c, "^has_journal");
	cmd_add(&c, "-m");
	cmd_add(&c, "0");
	cmd_add(&c, "-N");
	cmd_addf(&c, "%llu", (unsigned long long)ninodes);
	cmd_add(&c, "-d");
	cmd_add(&c, f->host_path);
	cmd_add(&c, "-L");
	cmd_add(&c, f->label);
	cmd_add(&c, "-F");
	cmd_add(&c, "-q");
	cmd_add(&c, tmp);
	cmd_addf(&c, "%lluk", (unsigned long long)size_kib);
	r = cmd_run(&c, NULL, e);
	cmd_fini(&c);
	if (r < 0) {
		unlink(tmp);
		return err_prefix(e, "fixture %s: ", f->host_path);
	}
	fd = open(tmp, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0) {
		r = err_set(e, -errno, "fsync %s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		return r;
	}
	close(fd);
	if (rename(tmp, img_path) < 0) {
		r = err_set(e, -errno, "rename %s: %s", tmp, strerror(errno));
		unlink(tmp);
		return r;
	}
	(void)fsync_parent(img_path);
	return 0;
}
