/* copy.c - tar over SSH for `fleetbox cp` (see copy.h).
 *
 * Invariants of the host-side extractor:
 *  - every filesystem call is relative to a directory fd reached from the
 *    destination fd by openat(O_DIRECTORY|O_NOFOLLOW) one component at a time,
 *    so no symlink (from the archive or pre-existing) is ever traversed;
 *  - names are normalised first: absolute names and ".." components are refused,
 *    and the first component must be the expected top (then renamed);
 *  - a symlink target must be relative, of the form "../../a/b" (all ".." first,
 *    never more than the link's depth below the destination): each link then
 *    resolves inside the destination, and by induction so do chains of them.
 *    The destination is DIR when copying into DIR, and DIR/newname itself
 *    when copying to a new name (nothing points at a sibling of it);
 *  - hardlinks may only point at regular files extracted inside the destination;
 *  - files are created O_EXCL|O_NOFOLLOW after unlinking whatever was there;
 *    set-id bits are dropped; ownership is never applied;
 *  - directories are created 0700 and get their real mode (and mtime) at the
 *    end, deepest first, so read-only directories can still be filled. */
#include "client/ssh/copy.h"
#include "client/ssh/ssh.h"
#include "util/err.h"
#include "util/fileio.h"
#include "util/text.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#define BLOCK (64 * 1024)

/* ---------- path helpers ---------- */

/* Copies p without trailing slashes ("/" stays "/"). */
static int strip_slashes(const char *p, char *out, size_t len, bool *had)
{
	size_t n = strlen(p);
	if (n == 0 || n >= len)
		return -EINVAL;
	memcpy(out, p, n + 1);
	*had = false;
	while (n > 1 && out[n - 1] == '/') {
		out[--n] = '\0';
		*had = true;
	}
	return 0;
}

static const char *base_of(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

/* Parent of a slash-stripped path: "/a/b" -> "/a", "/a" -> "/", "a" -> ".". */
static void parent_of(const char *p, char *out, size_t len)
{
	const char *s = strrchr(p, '/');
	if (!s)
		snprintf(out, len, ".");
	else if (s == p)
		snprintf(out, len, "/");
	else
		snprintf(out, len, "%.*s", (int)(s - p), p);
}

/* ---------- create ---------- */

struct wctx {
	copy_write_fn w;
	void *arg;
	struct err *e;
	int failed;
	char *buf;
};

static la_ssize_t on_write(struct archive *a, void *ud, const void *buf, size_t len)
{
	struct wctx *c = ud;
	int r = c->w(c->arg, buf, len, c->e);
	if (r < 0) {
		c->failed = r;
		archive_set_error(a, -r, "%s", c->e ? c->e->msg : "write failed");
		return -1;
	}
	return (la_ssize_t)len;
}

static int ar_fail(struct wctx *c, struct archive *a, const char *what)
{
	if (c->failed)
		return c->failed;
	return err_set(c->e, -EIO, "tar: %s: %s", what, archive_error_string(a));
}

static int add_path(struct archive *a, struct wctx *c, int dfd, const char *name,
		    const char *arcpath);

static int add_dir_children(struct archive *a, struct wctx *c, int fd, const char *arcpath)
{
	DIR *d = fdopendir(fd);
	if (!d) {
		int r = -errno;
		close(fd);
		return err_set(c->e, r, "open directory %s: %s", arcpath, strerror(-r));
	}
	int r = 0;
	struct dirent *de;
	errno = 0;
	while (r == 0 && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char *child = NULL;
		if (asprintf(&child, "%s/%s", arcpath, de->d_name) < 0)
			r = err_set(c->e, -ENOMEM, "out of memory");
		else
			r = add_path(a, c, dirfd(d), de->d_name, child);
		free(child);
		errno = 0;
	}
	if (r == 0 && errno)
		r = err_set(c->e, -errno, "read directory %s: %s", arcpath, strerror(errno));
	closedir(d);
	return r;
}

static int add_file_data(struct archive *a, struct wctx *c, int fd, off_t size,
			 const char *arcpath)
{
	off_t left = size;
	while (left > 0) {
		size_t want = left < BLOCK ? (size_t)left : BLOCK;
		ssize_t n = read(fd, c->buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set(c->e, -errno, "read %s: %s", arcpath, strerror(errno));
		if (n == 0) {
			/* The file shrank while we read it: pad to the size in the header. */
			memset(c->buf, 0, want);
			n = (ssize_t)want;
		}
		if (archive_write_data(a, c->buf, (size_t)n) != n)
			return ar_fail(c, a, arcpath);
		left -= n;
	}
	return 0;
}

static int add_path(struct archive *a, struct wctx *c, int dfd, const char *name,
		    const char *arcpath)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return err_set(c->e, -errno, "%s: %s", arcpath, strerror(errno));
	if (S_ISSOCK(st.st_mode))
		return 0; /* like tar: sockets cannot be archived */
	int fd = -1, r = 0;
	if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
		fd = openat(dfd, name,
			    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
		if (fd < 0)
			return err_set(c->e, -errno, "open %s: %s", arcpath, strerror(errno));
		if (fstat(fd, &st) < 0) {
			r = err_set(c->e, -errno, "stat %s: %s", arcpath, strerror(errno));
			close(fd);
			return r;
		}
	}
	struct archive_entry *en = archive_entry_new();
	if (!en) {
		if (fd >= 0)
			close(fd);
		return err_set(c->e, -ENOMEM, "out of memory");
	}
	archive_entry_copy_stat(en, &st);
	archive_entry_set_pathname(en, arcpath);
	archive_entry_set_nlink(en, 1);
	archive_entry_set_uid(en, 0);
	archive_entry_set_gid(en, 0);
	if (!S_ISREG(st.st_mode))
		archive_entry_set_size(en, 0);
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(dfd, name, target, sizeof(target) - 1);
		if (n < 0) {
			r = err_set(c->e, -errno, "readlink %s: %s", arcpath, strerror(errno));
			goto out;
		}
		target[n] = '\0';
		archive_entry_set_symlink(en, target);
	}
	if (archive_write_header(a, en) < ARCHIVE_WARN) {
		r = ar_fail(c, a, arcpath);
		goto out;
	}
	if (S_ISREG(st.st_mode))
		r = add_file_data(a, c, fd, st.st_size, arcpath);
	if (r == 0 && archive_write_finish_entry(a) != ARCHIVE_OK)
		r = ar_fail(c, a, arcpath);
	if (r == 0 && S_ISDIR(st.st_mode)) {
		archive_entry_free(en);
		int dfd2 = fd;
		fd = -1;
		return add_dir_children(a, c, dfd2, arcpath);
	}
out:
	archive_entry_free(en);
	if (fd >= 0)
		close(fd);
	return r;
}

int copy_tar_create(const char *src, const char *arcname, copy_write_fn w, void *arg,
		    struct err *e)
{
	if (!*arcname || strchr(arcname, '/') || !strcmp(arcname, ".") || !strcmp(arcname, ".."))
		return err_set(e, -EINVAL, "bad archive name '%s'", arcname);
	struct wctx c = { .w = w, .arg = arg, .e = e };
	c.buf = malloc(BLOCK);
	struct archive *a = archive_write_new();
	if (!a || !c.buf) {
		free(c.buf);
		if (a)
			archive_write_free(a);
		return err_set(e, -ENOMEM, "out of memory");
	}
	/* pax restricted: plain ustar headers unless a name, link or size needs a
	 * pax extension; both GNU tar and busybox tar read it. */
	int r = 0;
	/* hdrcharset=BINARY: names are stored as the raw bytes the filesystem has,
	 * whatever the locale (the C locale cannot translate them to UTF-8). */
	if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_set_format_option(a, "pax", "hdrcharset", "BINARY") != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(a, BLOCK) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open2(a, &c, NULL, on_write, NULL, NULL) != ARCHIVE_OK) {
		r = ar_fail(&c, a, "open");
		goto out;
	}
	r = add_path(a, &c, AT_FDCWD, src, arcname);
	if (r == 0 && archive_write_close(a) != ARCHIVE_OK)
		r = ar_fail(&c, a, "close");
out:
	archive_write_free(a);
	free(c.buf);
	return r;
}

/* ---------- extract ---------- */

struct dirfix {
	char *rel;
	mode_t mode;
	struct timespec mtime;
};

struct xctx {
	int root;
	int root_depth; /* leading components above the destination root (0 or 1) */
	const char *top_from, *top_to;
	struct err *e;
	struct dirfix *fix;
	size_t nfix, capfix;
	char *buf;  /* file data being extracted */
	char *rbuf; /* the stream as read; libarchive points into it */
	/* read side */
	copy_read_fn r;
	void *arg;
	int failed;
};

static la_ssize_t on_read(struct archive *a, void *ud, const void **buf)
{
	struct xctx *x = ud;
	ssize_t n = x->r(x->arg, x->rbuf, BLOCK, x->e);
	if (n < 0) {
		x->failed = (int)n;
		archive_set_error(a, (int)-n, "%s", x->e ? x->e->msg : "read failed");
		return -1;
	}
	*buf = x->rbuf;
	return n;
}

int copy_name_normalize(const char *raw, const char *top_from, const char *top_to, char *out,
			size_t len, struct err *e)
{
	if (!raw || !*raw)
		return err_set(e, -EPERM, "refusing an entry with an empty name");
	if (raw[0] == '/')
		return err_set(e, -EPERM, "refusing absolute name '%s' in the archive", raw);
	size_t o = 0;
	bool first = true;
	const char *p = raw;
	while (*p) {
		size_t l = strcspn(p, "/");
		if (l == 2 && !strncmp(p, "..", 2))
			return err_set(e, -EPERM, "refusing name with '..' in the archive: '%s'", raw);
		if (l > 0 && !(l == 1 && p[0] == '.')) {
			const char *comp = p;
			size_t cl = l;
			if (first) {
				if (top_from && (strlen(top_from) != l || strncmp(p, top_from, l) != 0))
					return err_set(e, -EPERM,
						       "refusing entry '%s' outside '%s' in the archive",
						       raw, top_from);
				if (top_to) {
					comp = top_to;
					cl = strlen(comp);
				}
			}
			if (o + cl + 2 > len)
				return err_set(e, -ENAMETOOLONG, "name too long: '%s'", raw);
			if (!first)
				out[o++] = '/';
			memcpy(out + o, comp, cl);
			o += cl;
			first = false;
		}
		p += l;
		while (*p == '/')
			p++;
	}
	if (first)
		return err_set(e, -EPERM, "refusing entry '%s': no name left", raw);
	out[o] = '\0';
	return 0;
}

static int norm_name(struct xctx *x, const char *raw, char *out, size_t len)
{
	return copy_name_normalize(raw, x->top_from, x->top_to, out, len, x->e);
}

/* Opens the directory holding rel's last component (creating missing parents
 * when create is set) and points *leaf at that component. */
static int open_parent(struct xctx *x, char *rel, bool create, int *pfd, const char **leaf)
{
	int fd = dup(x->root);
	if (fd < 0)
		return err_set(x->e, -errno, "dup: %s", strerror(errno));
	char *p = rel;
	for (;;) {
		char *slash = strchr(p, '/');
		if (!slash)
			break;
		*slash = '\0';
		int nfd = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT && create) {
			if (mkdirat(fd, p, 0755) < 0 && errno != EEXIST) {
				int r = -errno;
				*slash = '/';
				close(fd);
				return err_set(x->e, r, "mkdir %s: %s", rel, strerror(-r));
			}
			nfd = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		int saved = errno;
		*slash = '/';
		close(fd);
		if (nfd < 0) {
			if (saved == ELOOP || saved == ENOTDIR)
				return err_set(x->e, -EPERM,
					       "refusing '%s': a parent is a symlink or not a directory",
					       rel);
			return err_set(x->e, -saved, "open parent of %s: %s", rel, strerror(saved));
		}
		fd = nfd;
		p = slash + 1;
	}
	*pfd = fd;
	*leaf = p;
	return 0;
}

/* Removes whatever non-directory sits at leaf (never following it). */
static int clear_leaf(struct xctx *x, int pfd, const char *leaf, const char *rel)
{
	if (unlinkat(pfd, leaf, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno == EISDIR || errno == EPERM)
		return err_set(x->e, -EEXIST, "cannot overwrite directory '%s' with a non-directory",
			       rel);
	return err_set(x->e, -errno, "remove %s: %s", rel, strerror(errno));
}

int copy_symlink_check(const char *rel, const char *target, int root_depth, struct err *e)
{
	if (!target || !*target)
		return err_set(e, -EPERM, "refusing symlink '%s' with an empty target", rel);
	if (target[0] == '/')
		return err_set(e, -EPERM,
			       "refusing symlink '%s' -> '%s': it points outside the destination",
			       rel, target);
	int depth = 0;
	for (const char *p = rel; *p; p++)
		depth += *p == '/';
	/* Climbing is counted from the destination root: the top entry itself
	 * when it is the destination (DIR/newname), so no link inside it may
	 * reach a sibling of it. The top entry as a link is judged where it sits. */
	depth -= depth < root_depth ? depth : root_depth;
	bool down = false;
	const char *p = target;
	while (*p) {
		size_t l = strcspn(p, "/");
		if (l == 2 && !strncmp(p, "..", 2)) {
			if (down)
				return err_set(e, -EPERM,
					       "refusing symlink '%s' -> '%s': '..' after a name",
					       rel, target);
			if (--depth < 0)
				return err_set(e, -EPERM,
					       "refusing symlink '%s' -> '%s': it points outside the "
					       "destination", rel, target);
		} else if (l > 0 && !(l == 1 && p[0] == '.')) {
			down = true;
		}
		p += l;
		while (*p == '/')
			p++;
	}
	return 0;
}

static int check_symlink(struct xctx *x, const char *rel, const char *target)
{
	return copy_symlink_check(rel, target, x->root_depth, x->e);
}

static int add_fix(struct xctx *x, const char *rel, struct archive_entry *en)
{
	if (x->nfix == x->capfix) {
		size_t cap = x->capfix ? x->capfix * 2 : 64;
		struct dirfix *n = realloc(x->fix, cap * sizeof(*n));
		if (!n)
			return err_set(x->e, -ENOMEM, "out of memory");
		x->fix = n;
		x->capfix = cap;
	}
	struct dirfix *f = &x->fix[x->nfix];
	f->rel = strdup(rel);
	if (!f->rel)
		return err_set(x->e, -ENOMEM, "out of memory");
	f->mode = archive_entry_perm(en) & 01777;
	f->mtime.tv_sec = archive_entry_mtime(en);
	f->mtime.tv_nsec = archive_entry_mtime_nsec(en);
	x->nfix++;
	return 0;
}

static int x_dir(struct xctx *x, struct archive_entry *en, int pfd, const char *leaf,
		 const char *rel)
{
	if (mkdirat(pfd, leaf, 0700) == 0)
		return add_fix(x, rel, en);
	if (errno != EEXIST)
		return err_set(x->e, -errno, "mkdir %s: %s", rel, strerror(errno));
	struct stat st;
	if (fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return err_set(x->e, -errno, "stat %s: %s", rel, strerror(errno));
	if (S_ISLNK(st.st_mode))
		return err_set(x->e, -EPERM, "refusing to merge into '%s': it is a symlink", rel);
	if (!S_ISDIR(st.st_mode))
		return err_set(x->e, -EEXIST, "'%s' exists and is not a directory", rel);
	return 0; /* merge into an existing directory, leave its mode alone */
}

static int x_file(struct archive *a, struct xctx *x, struct archive_entry *en, int pfd,
		  const char *leaf, const char *rel)
{
	int r = clear_leaf(x, pfd, leaf, rel);
	if (r < 0)
		return r;
	int fd = openat(pfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(x->e, -errno, "create %s: %s", rel, strerror(errno));
	for (;;) {
		la_ssize_t n = archive_read_data(a, x->buf, BLOCK);
		if (n == 0)
			break;
		if (n < 0) {
			r = x->failed ? x->failed
				      : err_set(x->e, -EIO, "tar: reading %s: %s", rel,
						archive_error_string(a));
			goto out;
		}
		const char *p = x->buf;
		while (n > 0) {
			ssize_t w = write(fd, p, (size_t)n);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				r = err_set(x->e, -errno, "write %s: %s", rel, strerror(errno));
				goto out;
			}
			p += w;
			n -= w;
		}
	}
	if (fchmod(fd, archive_entry_perm(en) & 0777) < 0) {
		r = err_set(x->e, -errno, "chmod %s: %s", rel, strerror(errno));
		goto out;
	}
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
				  { archive_entry_mtime(en), archive_entry_mtime_nsec(en) } };
	(void)futimens(fd, ts);
out:
	if (close(fd) < 0 && r == 0)
		r = err_set(x->e, -errno, "close %s: %s", rel, strerror(errno));
	return r;
}

static int x_symlink(struct xctx *x, struct archive_entry *en, int pfd, const char *leaf,
		     const char *rel)
{
	const char *target = archive_entry_symlink(en);
	int r = check_symlink(x, rel, target);
	if (r < 0 || (r = clear_leaf(x, pfd, leaf, rel)) < 0)
		return r;
	if (symlinkat(target, pfd, leaf) < 0)
		return err_set(x->e, -errno, "symlink %s: %s", rel, strerror(errno));
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
				  { archive_entry_mtime(en), archive_entry_mtime_nsec(en) } };
	(void)utimensat(pfd, leaf, ts, AT_SYMLINK_NOFOLLOW);
	return 0;
}

static int x_hardlink(struct xctx *x, const char *raw_target, int pfd, const char *leaf,
		      const char *rel)
{
	char trel[PATH_MAX];
	int r = norm_name(x, raw_target, trel, sizeof(trel));
	if (r < 0) {
		char why[ERR_MSG_MAX];
		snprintf(why, sizeof(why), "%s", x->e ? x->e->msg : "");
		return err_set(x->e, -EPERM, "refusing hardlink '%s': %.400s", rel, why);
	}
	int tfd;
	const char *tleaf;
	if ((r = open_parent(x, trel, false, &tfd, &tleaf)) < 0)
		return r;
	struct stat st;
	if (fstatat(tfd, tleaf, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
		close(tfd);
		return err_set(x->e, -EPERM,
			       "refusing hardlink '%s' -> '%s': target is not a regular file "
			       "extracted here", rel, raw_target);
	}
	if ((r = clear_leaf(x, pfd, leaf, rel)) == 0 && linkat(tfd, tleaf, pfd, leaf, 0) < 0)
		r = err_set(x->e, -errno, "link %s: %s", rel, strerror(errno));
	close(tfd);
	return r;
}

static int x_entry(struct archive *a, struct xctx *x, struct archive_entry *en)
{
	char rel[PATH_MAX];
	int r = norm_name(x, archive_entry_pathname(en), rel, sizeof(rel));
	if (r < 0)
		return r;
	char walk[PATH_MAX];
	memcpy(walk, rel, strlen(rel) + 1);
	int pfd;
	const char *leaf;
	if ((r = open_parent(x, walk, true, &pfd, &leaf)) < 0)
		return r;
	const char *hl = archive_entry_hardlink(en);
	mode_t type = archive_entry_filetype(en);
	if (hl)
		r = x_hardlink(x, hl, pfd, leaf, rel);
	else if (type == AE_IFDIR)
		r = x_dir(x, en, pfd, leaf, rel);
	else if (type == AE_IFREG)
		r = x_file(a, x, en, pfd, leaf, rel);
	else if (type == AE_IFLNK)
		r = x_symlink(x, en, pfd, leaf, rel);
	else if (type == AE_IFIFO) {
		if ((r = clear_leaf(x, pfd, leaf, rel)) == 0 &&
		    mkfifoat(pfd, leaf, archive_entry_perm(en) & 0777) < 0)
			r = err_set(x->e, -errno, "mkfifo %s: %s", rel, strerror(errno));
	} else
		r = err_set(x->e, -EPERM, "refusing device or special file '%s'", rel);
	close(pfd);
	return r;
}

static int apply_fixes(struct xctx *x)
{
	int r = 0;
	for (size_t i = x->nfix; i-- > 0;) {
		struct dirfix *f = &x->fix[i];
		int pfd, fd;
		const char *leaf;
		if (r == 0 && open_parent(x, f->rel, false, &pfd, &leaf) == 0) {
			fd = openat(pfd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			close(pfd);
			if (fd >= 0) {
				struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, f->mtime };
				if (fchmod(fd, f->mode) < 0)
					r = err_set(x->e, -errno, "chmod %s: %s", f->rel,
						    strerror(errno));
				(void)futimens(fd, ts);
				close(fd);
			}
		}
		free(f->rel);
	}
	free(x->fix);
	x->fix = NULL;
	x->nfix = x->capfix = 0;
	return r;
}

int copy_tar_extract(copy_read_fn rd, void *arg, const char *dest_dir, const char *top_from,
		     const char *top_to, struct err *e)
{
	return copy_tar_extract_to(rd, arg, dest_dir, top_from, top_to, false, e);
}

int copy_tar_extract_to(copy_read_fn rd, void *arg, const char *dest_dir, const char *top_from,
			const char *top_to, bool top_is_dest, struct err *e)
{
	struct xctx x = { .root = -1, .root_depth = top_is_dest ? 1 : 0, .top_from = top_from,
			  .top_to = top_to, .e = e, .r = rd, .arg = arg };
	if (top_to && (!*top_to || strchr(top_to, '/') || !strcmp(top_to, ".") ||
		       !strcmp(top_to, "..")))
		return err_set(e, -EINVAL, "bad destination name '%s'", top_to);
	x.root = open(dest_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (x.root < 0)
		return err_set(e, -errno, "open %s: %s", dest_dir, strerror(errno));
	x.buf = malloc(BLOCK);
	x.rbuf = malloc(BLOCK);
	struct archive *a = archive_read_new();
	int r = 0;
	if (!a || !x.buf || !x.rbuf) {
		r = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	archive_read_support_format_tar(a);
	if (archive_read_open(a, &x, NULL, on_read, NULL) != ARCHIVE_OK) {
		r = x.failed ? x.failed
			     : err_set(e, -EIO, "tar: %s", archive_error_string(a));
		goto out;
	}
	for (;;) {
		struct archive_entry *en;
		int ar = archive_read_next_header(a, &en);
		if (ar == ARCHIVE_EOF)
			break;
		if (ar < ARCHIVE_WARN) {
			r = x.failed ? x.failed
				     : err_set(e, -EIO, "tar: %s", archive_error_string(a));
			break;
		}
		if ((r = x_entry(a, &x, en)) < 0)
			break;
	}
	int rf = apply_fixes(&x);
	if (r == 0)
		r = rf;
out:
	if (a)
		archive_read_free(a);
	free(x.buf);
	free(x.rbuf);
	for (size_t i = 0; i < x.nfix; i++)
		free(x.fix[i].rel);
	free(x.fix);
	close(x.root);
	return r;
}

/* ---------- over SSH ---------- */

/* The channel plus what progress reporting needs. */
struct stream {
	struct ssh_chan *ch;
	const struct copy_opts *o;
	uint64_t bytes, total;
};

static void stream_count(struct stream *s, size_t n)
{
	s->bytes += n;
	if (s->o && s->o->progress)
		s->o->progress(s->o->progress_data, s->bytes, s->total, false);
}

static void stream_done(struct stream *s)
{
	if (s->o && s->o->progress)
		s->o->progress(s->o->progress_data, s->bytes, s->total, true);
}

static int chan_write_cb(void *arg, const void *buf, size_t len, struct err *e)
{
	struct stream *s = arg;
	int r = ssh_chan_write(s->ch, buf, len, e);
	if (r == 0)
		stream_count(s, len);
	return r;
}

static ssize_t chan_read_cb(void *arg, void *buf, size_t len, struct err *e)
{
	struct stream *s = arg;
	ssize_t n = ssh_chan_read(s->ch, buf, len, e);
	if (n > 0)
		stream_count(s, (size_t)n);
	return n;
}

/* cmd as the guest user o->sudo_user (sudo -n: never a password prompt), or
 * as it is. Caller frees. */
static char *remote_cmd(const struct copy_opts *o, const char *cmd)
{
	char *out = NULL;
	if (!o || !o->sudo_user)
		return strdup(cmd);
	char *qu = ssh_quote(o->sudo_user), *qc = ssh_quote(cmd);
	if (!qu || !qc || asprintf(&out, "sudo -n -u %s -- sh -c %s", qu, qc) < 0)
		out = NULL;
	free(qu);
	free(qc);
	return out;
}

/* The guest side failed: a plain sentence for the usual causes (permission,
 * sudo), else tar's own message. path/writing say what was being done. */
static int tar_status(const struct ssh_target *t, const struct copy_opts *o, struct ssh_chan *ch,
		      const struct ssh_status *st, const char *path, bool writing, struct err *e)
{
	if (st->exit_status == 0)
		return 0;
	const char *msg = ssh_chan_stderr(ch);
	const char *as = o && o->sudo_user ? o->sudo_user : t->user;
	if (o && o->sudo_user && strstr(msg, "sudo:"))
		return err_set(e, -EACCES, "cannot act as %s on %s through sudo (it needs passwordless "
			       "sudo for %s): %s", as, t->name, t->user, msg);
	char line[256];
	if (text_line_with(msg, strlen(msg), "Permission denied", line, sizeof(line)) ||
	    text_line_with(msg, strlen(msg), "Operation not permitted", line, sizeof(line)))
		return err_set(e, -EACCES, "permission denied %s %s on %s as user %s%s (%s)",
			       writing ? "writing" : "reading", path, t->name, as,
			       o && o->sudo_user ? "" : "; use --root", line);
	if (text_line_with(msg, strlen(msg), "Read-only file system", line, sizeof(line)))
		return err_set(e, -EROFS, "%s on %s is on a read-only file system (%s)", path, t->name,
			       line);
	if (st->exit_signal)
		return err_set(e, -EIO, "remote tar on %s killed by SIG%s%s%s", t->name, st->signame,
			       *msg ? ": " : "", msg);
	return err_set(e, -EIO, "remote tar on %s failed (exit %d)%s%s", t->name, st->exit_status,
		       *msg ? ": " : "", msg);
}

/* Bytes of regular files under a host path (not following symlinks), for a
 * percentage; best effort. */
static uint64_t tree_bytes_at(int dfd, const char *name, int depth)
{
	struct stat st;
	if (depth > 64 || fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	if (S_ISREG(st.st_mode))
		return (uint64_t)st.st_size;
	if (!S_ISDIR(st.st_mode))
		return 0;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	uint64_t sum = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			sum += tree_bytes_at(dirfd(d), de->d_name, depth + 1);
	closedir(d);
	return sum;
}

static int host_basename(const char *src, char *out, size_t len, struct err *e)
{
	char tmp[PATH_MAX];
	bool had;
	if (strip_slashes(src, tmp, sizeof(tmp), &had) < 0)
		return err_set(e, -EINVAL, "bad path '%s'", src);
	const char *b = base_of(tmp);
	if (!strcmp(b, ".") || !strcmp(b, "..") || !*b) {
		char *rp = realpath(src, NULL);
		if (!rp)
			return err_set(e, -errno, "%s: %s", src, strerror(errno));
		snprintf(tmp, sizeof(tmp), "%s", rp);
		free(rp);
		b = base_of(tmp);
	}
	if (!*b)
		return err_set(e, -EINVAL, "cannot copy '/' itself");
	if (snprintf(out, len, "%s", b) >= (int)len)
		return err_set(e, -ENAMETOOLONG, "name too long: %s", b);
	return 0;
}

/* Runs a short command and returns its trimmed stdout in out; a failure is
 * explained as tar_status does (about path). */
static int probe(struct ssh_conn *c, const struct ssh_target *t, const struct copy_opts *o,
		 const char *cmd, const char *path, char *out, size_t len, struct err *e)
{
	struct ssh_chan *ch;
	char *rc = remote_cmd(o, cmd);
	if (!rc)
		return err_set(e, -ENOMEM, "out of memory");
	int r = ssh_chan_exec(c, rc, &ch, e);
	free(rc);
	if (r < 0)
		return r;
	size_t n = 0;
	for (;;) {
		char buf[256];
		ssize_t got = ssh_chan_read(ch, buf, sizeof(buf), e);
		if (got < 0) {
			ssh_chan_free(ch);
			return (int)got;
		}
		if (got == 0)
			break;
		for (ssize_t i = 0; i < got && n + 1 < len; i++)
			out[n++] = buf[i];
	}
	out[n] = '\0';
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
		out[--n] = '\0';
	struct ssh_status st;
	r = ssh_chan_finish(ch, &st, e);
	if (r == 0)
		r = tar_status(t, o, ch, &st, path, true, e);
	ssh_chan_free(ch);
	return r;
}

/* Finishes a stream whose local half ended with r: on success, and when the
 * guest side went away early (-EPIPE writing, -EIO reading a bad stream), its
 * status and stderr explain best; a local failure just drops the channel. */
static int finish_stream(const struct ssh_target *t, const struct copy_opts *o,
			 struct stream *s, int r, const char *path, bool writing, struct err *e)
{
	if (r != 0 && r != (writing ? -EPIPE : -EIO))
		return r;
	struct err e2 = { 0 };
	struct ssh_status sst;
	int r2 = r == 0 && writing ? ssh_chan_send_eof(s->ch, &e2) : 0;
	if (r2 == 0)
		r2 = ssh_chan_finish(s->ch, &sst, &e2);
	if (r2 == 0 && sst.exit_status != 0)
		return tar_status(t, o, s->ch, &sst, path, writing, e);
	if (r == 0 && r2 < 0)
		return err_set(e, r2, "%s", e2.msg);
	if (r == 0)
		stream_done(s);
	return r;
}

struct to_plan {
	char dst[PATH_MAX], arc[NAME_MAX + 1], xdir[PATH_MAX];
	bool slash, src_dir;
};

/* Where SRC lands, like cp -r: into an existing directory DST, or as DST. */
static int probe_dest(struct ssh_conn *c, const struct ssh_target *t, const struct copy_opts *o,
		      struct to_plan *p, const char *host_src, struct err *e)
{
	char *qd = ssh_quote(p->dst), *cmd = NULL, kind[32];
	if (!qd || asprintf(&cmd, "if [ -d %s ]; then echo dir; elif [ -e %s ] || [ -L %s ]; then "
				  "echo other; else echo none; fi", qd, qd, qd) < 0) {
		free(qd);
		return err_set(e, -ENOMEM, "out of memory");
	}
	free(qd);
	int r = probe(c, t, o, cmd, p->dst, kind, sizeof(kind), e);
	free(cmd);
	if (r < 0)
		return r;
	if (!strcmp(kind, "dir") || (!strcmp(kind, "none") && p->slash)) {
		snprintf(p->xdir, sizeof(p->xdir), "%s", p->dst);
		return 0;
	}
	if (strcmp(kind, "other") != 0 && strcmp(kind, "none") != 0)
		return err_set(e, -EIO, "unexpected answer from %s while probing %s: '%s'", t->name,
			       p->dst, kind);
	if (!strcmp(kind, "other") && p->src_dir)
		return err_set(e, -ENOTDIR, "cannot overwrite non-directory %s:%s with directory %s",
			       t->name, p->dst, host_src);
	parent_of(p->dst, p->xdir, sizeof(p->xdir));
	snprintf(p->arc, sizeof(p->arc), "%s", base_of(p->dst));
	return 0;
}

static int send_tree(struct ssh_conn *c, const struct ssh_target *t, const struct copy_opts *o,
		     const struct to_plan *p, const char *host_src, struct err *e)
{
	const char *tar = o && o->tar ? o->tar : "tar";
	char *qx = ssh_quote(p->xdir), *cmd = NULL, *rc = NULL;
	/* umask 000 after mkdir: GNU tar run by a non-root user applies the umask
	 * to archived modes (busybox tar does not); tar -o: don't chown. */
	if (!qx || asprintf(&cmd, "mkdir -p %s && umask 000 && %s -x -o -f - -C %s", qx, tar, qx) < 0)
		cmd = NULL;
	free(qx);
	if (!cmd || !(rc = remote_cmd(o, cmd))) {
		free(cmd);
		return err_set(e, -ENOMEM, "out of memory");
	}
	free(cmd);
	struct stream s = { .o = o, .total = tree_bytes_at(AT_FDCWD, host_src, 0) };
	int r = ssh_chan_exec(c, rc, &s.ch, e);
	free(rc);
	if (r < 0)
		return r;
	r = copy_tar_create(host_src, p->arc, chan_write_cb, &s, e);
	r = finish_stream(t, o, &s, r, p->dst, true, e);
	ssh_chan_free(s.ch);
	return r;
}

int copy_to_guest(const struct ssh_target *t, const char *host_src, const char *guest_dst,
		  const struct copy_opts *o, struct err *e)
{
	struct to_plan p;
	struct stat st;
	if (guest_dst[0] != '/')
		return err_set(e, -EINVAL, "guest path must be absolute: '%s'", guest_dst);
	if (strip_slashes(guest_dst, p.dst, sizeof(p.dst), &p.slash) < 0)
		return err_set(e, -EINVAL, "bad guest path '%s'", guest_dst);
	if (lstat(host_src, &st) < 0)
		return err_set(e, -errno, "%s: %s", host_src, strerror(errno));
	p.src_dir = S_ISDIR(st.st_mode);
	int r = host_basename(host_src, p.arc, sizeof(p.arc), e);
	if (r < 0)
		return r;
	struct ssh_conn *c = NULL;
	if ((r = ssh_conn_open(t, &c, e)) == 0 && (r = probe_dest(c, t, o, &p, host_src, e)) == 0)
		r = send_tree(c, t, o, &p, host_src, e);
	ssh_conn_free(c);
	return r;
}

struct from_plan {
	char src[PATH_MAX], sparent[PATH_MAX], xdir[PATH_MAX], top_to[NAME_MAX + 1];
	const char *sbase;
	bool top_is_dest;
};

/* Where the copy lands on the host, like cp -r (parents are created). */
static int plan_from(struct from_plan *p, const char *guest_src, const char *host_dst,
		     struct err *e)
{
	char dst[PATH_MAX];
	p->top_is_dest = false;
	bool slash;
	if (guest_src[0] != '/')
		return err_set(e, -EINVAL, "guest path must be absolute: '%s'", guest_src);
	if (strip_slashes(guest_src, p->src, sizeof(p->src), &slash) < 0)
		return err_set(e, -EINVAL, "bad guest path '%s'", guest_src);
	p->sbase = base_of(p->src);
	if (!*p->sbase || !strcmp(p->sbase, ".") || !strcmp(p->sbase, ".."))
		return err_set(e, -EINVAL, "cannot copy '%s': name a file or directory", guest_src);
	parent_of(p->src, p->sparent, sizeof(p->sparent));
	if (strip_slashes(host_dst, dst, sizeof(dst), &slash) < 0)
		return err_set(e, -EINVAL, "bad host path '%s'", host_dst);
	struct stat st;
	int r, sr = stat(dst, &st) == 0 ? 0 : -errno;
	if ((sr == 0 && S_ISDIR(st.st_mode)) || (sr == -ENOENT && slash)) {
		if (sr < 0 && (r = mkdir_p(dst, 0755)) < 0)
			return err_set(e, r, "mkdir %s: %s", dst, strerror(-r));
		snprintf(p->xdir, sizeof(p->xdir), "%s", dst);
		snprintf(p->top_to, sizeof(p->top_to), "%s", p->sbase);
		return 0;
	}
	const char *b = base_of(dst);
	if (!*b || !strcmp(b, ".") || !strcmp(b, ".."))
		return err_set(e, -EINVAL, "bad destination '%s'", host_dst);
	parent_of(dst, p->xdir, sizeof(p->xdir));
	if ((r = mkdir_p(p->xdir, 0755)) < 0)
		return err_set(e, r, "mkdir %s: %s", p->xdir, strerror(-r));
	snprintf(p->top_to, sizeof(p->top_to), "%s", b);
	p->top_is_dest = true; /* DIR/newname: newname itself is the destination */
	return 0;
}

int copy_from_guest(const struct ssh_target *t, const char *guest_src, const char *host_dst,
		    const struct copy_opts *o, struct err *e)
{
	const char *tar = o && o->tar ? o->tar : "tar";
	struct from_plan p;
	int r = plan_from(&p, guest_src, host_dst, e);
	if (r < 0)
		return r;
	struct ssh_conn *c = NULL;
	struct stream s = { .o = o };
	char *qp = ssh_quote(p.sparent), *qb = ssh_quote(p.sbase), *cmd = NULL, *rc = NULL;
	if (!qp || !qb || asprintf(&cmd, "%s -c -f - -C %s %s", tar, qp, qb) < 0)
		cmd = NULL;
	if (!cmd || !(rc = remote_cmd(o, cmd))) {
		r = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	if ((r = ssh_conn_open(t, &c, e)) < 0 || (r = ssh_chan_exec(c, rc, &s.ch, e)) < 0)
		goto out;
	/* Refusals and local failures drop the connection rather than drain the
	 * stream; a bad or empty stream (-EIO) is most likely explained by tar. */
	r = copy_tar_extract_to(chan_read_cb, &s, p.xdir, p.sbase, p.top_to, p.top_is_dest, e);
	r = finish_stream(t, o, &s, r, p.src, false, e);
out:
	ssh_chan_free(s.ch);
	ssh_conn_free(c);
	free(qp);
	free(qb);
	free(cmd);
	free(rc);
	return r;
}
