/* image/cpio.c - the initramfs writer (libarchive cpio "newc", uncompressed:
 * under TCG the kernel unpacks a plain archive faster than it can inflate
 * one, and the file is only read once into guest RAM).
 *
 * Invariants: every path is absolute in the caller's view and stored without
 * the leading '/'; a path is added at most once (later adds of the same path
 * are no-ops), and parents are added (0755) before children. */
#include "client/image/int.h"

#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"
#include "util/owner.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

struct cpio {
	struct archive *a;
	char *path;
	char **names;
	size_t n, cap;
};

bool cpio_has(const struct cpio *c, const char *path)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->names[i], path) == 0)
			return true;
	return false;
}

static int remember(struct cpio *c, const char *path)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		char **nv = realloc(c->names, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		c->names = nv;
		c->cap = cap;
	}
	c->names[c->n] = strdup(path);
	if (!c->names[c->n])
		return -ENOMEM;
	c->n++;
	return 0;
}

int cpio_open(const char *path, struct cpio **out, struct err *e)
{
	struct cpio *c = calloc(1, sizeof(*c));
	if (!c || !(c->path = strdup(path)) || !(c->a = archive_write_new())) {
		if (c)
			free(c->path);
		free(c);
		return err_set(e, -ENOMEM, "out of memory");
	}
	if (archive_write_set_format_cpio_newc(c->a) != ARCHIVE_OK ||
	    archive_write_add_filter_none(c->a) != ARCHIVE_OK ||
	    archive_write_open_filename(c->a, path) != ARCHIVE_OK || owner_claim(path) < 0) {
		int r = err_set(e, -EIO, "initramfs %s: %s", path, archive_error_string(c->a));
		cpio_abort(c);
		return r;
	}
	*out = c;
	return 0;
}

/* Writes one header (+data) for path; parents first. */
static int put(struct cpio *c, const char *path, mode_t type, mode_t perm, uid_t uid, gid_t gid,
	       const char *link, dev_t rdev, const void *data, size_t len, struct err *e);

static int add_parents(struct cpio *c, const char *path, struct err *e)
{
	char buf[PATH_MAX];
	if (strlen(path) >= sizeof(buf))
		return err_set(e, -ENAMETOOLONG, "path too long: %s", path);
	strcpy(buf, path);
	for (char *s = strchr(buf + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		if (!cpio_has(c, buf)) {
			int r = put(c, buf, S_IFDIR, 0755, 0, 0, NULL, 0, NULL, 0, e);
			if (r < 0)
				return r;
		}
		*s = '/';
	}
	return 0;
}

static int put(struct cpio *c, const char *path, mode_t type, mode_t perm, uid_t uid, gid_t gid,
	       const char *link, dev_t rdev, const void *data, size_t len, struct err *e)
{
	if (path[0] != '/')
		return err_set(e, -EINVAL, "initramfs path not absolute: %s", path);
	if (cpio_has(c, path))
		return 0;
	int r = add_parents(c, path, e);
	if (r < 0)
		return r;
	struct archive_entry *ent = archive_entry_new();
	if (!ent)
		return err_set(e, -ENOMEM, "out of memory");
	archive_entry_set_pathname(ent, path + 1);
	archive_entry_set_filetype(ent, type);
	archive_entry_set_perm(ent, perm);
	archive_entry_set_uid(ent, uid);
	archive_entry_set_gid(ent, gid);
	archive_entry_set_mtime(ent, 0, 0);
	archive_entry_set_nlink(ent, type == S_IFDIR ? 2 : 1);
	if (link)
		archive_entry_set_symlink(ent, link);
	if (type == S_IFCHR)
		archive_entry_set_rdev(ent, rdev);
	archive_entry_set_size(ent, type == S_IFREG ? (la_int64_t)len : 0);
	if (archive_write_header(c->a, ent) != ARCHIVE_OK) {
		r = err_set(e, -EIO, "initramfs %s: %s", path, archive_error_string(c->a));
	} else if (type == S_IFREG && len &&
		   archive_write_data(c->a, data, len) != (la_ssize_t)len) {
		r = err_set(e, -EIO, "initramfs %s: %s", path, archive_error_string(c->a));
	}
	archive_entry_free(ent);
	if (r == 0 && remember(c, path) < 0)
		r = err_set(e, -ENOMEM, "out of memory");
	return r;
}

int cpio_add_dir(struct cpio *c, const char *path, mode_t mode, struct err *e)
{
	return put(c, path, S_IFDIR, mode, 0, 0, NULL, 0, NULL, 0, e);
}

int cpio_add_symlink(struct cpio *c, const char *path, const char *target, struct err *e)
{
	return put(c, path, S_IFLNK, 0777, 0, 0, target, 0, NULL, 0, e);
}

int cpio_add_chardev(struct cpio *c, const char *path, mode_t mode, int major, int minor,
		     struct err *e)
{
	return put(c, path, S_IFCHR, mode, 0, 0, NULL, makedev(major, minor), NULL, 0, e);
}

int cpio_add_data(struct cpio *c, const char *path, const void *data, size_t len,
		  mode_t mode, uid_t uid, gid_t gid, struct err *e)
{
	return put(c, path, S_IFREG, mode, uid, gid, NULL, 0, data, len, e);
}

int cpio_add_file(struct cpio *c, const char *path, const char *host, mode_t mode,
		  struct err *e)
{
	if (cpio_has(c, path))
		return 0;
	char *buf = NULL;
	size_t len = 0;
	int r = file_read_all(host, 512u << 20, &buf, &len);
	if (r < 0)
		return err_set(e, r, "read %s: %s", host, strerror(-r));
	r = cpio_add_data(c, path, buf, len, mode, 0, 0, e);
	free(buf);
	return r;
}

/* `ldd` lines: "\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)",
 * "\t/lib64/ld-linux-x86-64.so.2 (0x...)", "\tlinux-vdso.so.1 (0x...)". */
static int add_libs(struct cpio *c, const char *host, struct err *e)
{
	struct cmd cmd;
	cmd_init(&cmd, "ldd");
	cmd_add(&cmd, host);
	char *out = NULL;
	struct err le = {0};
	int r = cmd_run(&cmd, &out, &le);
	cmd_fini(&cmd);
	if (r < 0) {
		/* A static program: nothing to add. */
		bool is_static = out && strstr(out, "not a dynamic executable");
		free(out);
		if (is_static)
			return 0;
		return err_set(e, r, "resolving libraries of %s: %s", host, le.msg);
	}
	r = 0;
	for (char *save = NULL, *line = strtok_r(out, "\n", &save); line && r == 0;
	     line = strtok_r(NULL, "\n", &save)) {
		char *arrow = strstr(line, "=> ");
		char *p = arrow ? arrow + 3 : line + strspn(line, " \t");
		if (*p != '/') {
			if (arrow && strstr(arrow, "not found"))
				r = err_set(e, -ENOENT, "%s needs a missing library: %s", host, line);
			continue;
		}
		char *end = strchr(p, ' ');
		if (end)
			*end = '\0';
		r = cpio_add_file(c, p, p, 0755, e);
	}
	free(out);
	return r;
}

int cpio_add_program(struct cpio *c, const char *path, const char *host, struct err *e)
{
	int r = cpio_add_file(c, path, host, 0755, e);
	if (r < 0)
		return r;
	return add_libs(c, host, e);
}

static void cpio_free(struct cpio *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->names[i]);
	free(c->names);
	free(c->path);
	free(c);
}

int cpio_close(struct cpio *c, struct err *e)
{
	int r = 0;
	if (archive_write_close(c->a) != ARCHIVE_OK)
		r = err_set(e, -EIO, "initramfs %s: %s", c->path, archive_error_string(c->a));
	archive_write_free(c->a);
	if (r == 0) {
		int fd = open(c->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0)
			r = err_set(e, -errno, "fsync %s: %s", c->path, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	cpio_free(c);
	return r;
}

void cpio_abort(struct cpio *c)
{
	if (!c)
		return;
	if (c->a)
		archive_write_free(c->a);
	cpio_free(c);
}
