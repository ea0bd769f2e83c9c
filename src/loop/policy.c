/* policy.c - see policy.h. */
#include "loop/policy.h"
#include "loop/holder.h"
#include "util/beneath.h"
#include "util/owner.h"
#include "util/qcow2.h"
#include "vmm/vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct area {
	int fd;            /* base directory the path is resolved beneath */
	const char *rel;
	bool own_fd;       /* the cache's fd, opened for this lookup */
};

struct ctx {
	struct member *m;
	struct boot_files *bf;
	char *err;
	size_t errlen;
	char cache[PATH_MAX], cache_real[PATH_MAX]; /* "" when there is none */
};

__attribute__((format(printf, 3, 4)))
static int fail(struct ctx *c, int code, const char *fmt, ...)
{
	char msg[900];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errlen, "start %s: %s", c->m->name, msg);
	return code;
}

bool holder_path_in_store(const struct member *m, const char *path, const char **rel)
{
	const struct holder *h = m->h;
	return path_under(h->root, path, rel) == 0 ||
	       (h->root_real[0] && path_under(h->root_real, path, rel) == 0);
}

static void cache_roots(struct ctx *c)
{
	c->cache[0] = c->cache_real[0] = '\0';
	if (wire_cache_root(c->cache, sizeof(c->cache)) < 0)
		c->cache[0] = '\0';
	else if (!realpath(c->cache, c->cache_real))
		c->cache_real[0] = '\0';
}

/* Where path lies: the store, else (cache_ok) the image cache, else -EXDEV. */
static int locate(struct ctx *c, const char *path, bool cache_ok, struct area *a)
{
	*a = (struct area){ .fd = c->m->h->root_fd };
	if (holder_path_in_store(c->m, path, &a->rel))
		return 0;
	if (!cache_ok || !c->cache[0])
		return -EXDEV;
	if (path_under(c->cache, path, &a->rel) < 0 &&
	    (!c->cache_real[0] || path_under(c->cache_real, path, &a->rel) < 0))
		return -EXDEV;
	/* The cache root is trusted as named (it is the invoking user's). */
	a->fd = open(c->cache_real[0] ? c->cache_real : c->cache,
		     O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (a->fd < 0)
		return -errno;
	a->own_fd = true;
	return 0;
}

static int outside(struct ctx *c, const char *label, const char *path, bool cache_ok)
{
	if (cache_ok && c->cache[0])
		return fail(c, -EPERM, "%s %s is outside the store %s and the image cache %s",
			    label, path, c->m->h->root, c->cache);
	return fail(c, -EPERM, "%s %s is outside the store %s", label, path, c->m->h->root);
}

/* Opens one path under the rules; returns its index in bf->fds. O_NONBLOCK:
 * a FIFO planted in the store must not hang the holder (it is refused below). */
static int open_one(struct ctx *c, const char *label, const char *path, bool cache_ok,
		    int flags)
{
	struct boot_files *bf = c->bf;
	if (!path || path[0] != '/')
		return fail(c, -EINVAL, "%s \"%s\" is not an absolute path", label, path ? path : "");
	if (bf->n == BOOT_FDS_MAX)
		return fail(c, -E2BIG, "too many files in the spec");
	struct area a;
	int r = locate(c, path, cache_ok, &a);
	if (r == -EXDEV)
		return outside(c, label, path, cache_ok);
	if (r < 0)
		return fail(c, r, "%s %s: %s", label, path, strerror(-r));
	int fd = beneath_open(a.fd, a.rel, flags | O_NONBLOCK, 0644);
	if (a.own_fd)
		close(a.fd);
	if (fd == -ELOOP)
		return fail(c, fd, "%s %s is a symlink or has one on its way; refused", label, path);
	if (fd == -EXDEV)
		return outside(c, label, path, cache_ok);
	if (fd == -EISDIR || fd == -ENXIO) /* a directory; a FIFO nobody reads */
		return fail(c, -EPERM, "%s %s is not a regular file", label, path);
	if (fd < 0)
		return fail(c, fd, "%s %s: %s", label, path, strerror(-fd));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(c, -EPERM, "%s %s is not a regular file", label, path);
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	size_t i = bf->n++;
	bf->fds[i] = fd;
	snprintf(bf->names[i], sizeof(bf->names[i]), "/proc/self/fd/%d", fd);
	return (int)i;
}

/* The backing file name of a qcow2 image, absolute (relative names are
 * relative to the image's directory, as QEMU resolves them). */
static int backing_path(const char *image, const char *name, char *out, size_t len)
{
	if (name[0] == '/')
		return snprintf(out, len, "%s", name) < (int)len ? 0 : -ENAMETOOLONG;
	const char *slash = strrchr(image, '/');
	int n = snprintf(out, len, "%.*s/%s", (int)(slash - image), image, name);
	return n < (int)len ? 0 : -ENAMETOOLONG;
}

/* 1 = qcow2 (parsed into q), 0 = raw, < 0 = refused (err set). */
static int read_header(struct ctx *c, int fd, const char *disk, const char *image,
		       struct qcow2_info *q)
{
	char *head = malloc(QCOW2_HEAD_MAX);
	if (!head)
		return fail(c, -ENOMEM, "out of memory");
	struct stat st;
	ssize_t n = fstat(fd, &st) < 0 ? -1 : pread(fd, head, QCOW2_HEAD_MAX, 0);
	bool qcow2 = n > 0 && qcow2_magic(head, (size_t)n);
	int r = n < 0 ? -errno : qcow2 ? qcow2_parse(head, (size_t)n, (uint64_t)st.st_size, q) : 0;
	free(head);
	if (r == -EINVAL || r == -EFBIG)
		return fail(c, r, "disk_path %s: %s is not a valid qcow2 image", disk, image);
	if (r == -EOPNOTSUPP)
		return fail(c, r, "disk_path %s: %s uses an unsupported qcow2 version or feature",
			    disk, image);
	if (r < 0)
		return fail(c, r, "disk_path %s: read %s: %s", disk, image, strerror(-r));
	return qcow2 ? 1 : 0;
}

/* The format QEMU would use for a backing file: the recorded one, else what
 * probing finds. "" for a format we do not hand over. */
static const char *backing_format(const struct qcow2_info *q, int fd)
{
	if (q->backing_fmt[0])
		return !strcmp(q->backing_fmt, "raw") || !strcmp(q->backing_fmt, "qcow2")
			       ? q->backing_fmt : "";
	unsigned char magic[4] = { 0 };
	return pread(fd, magic, 4, 0) == 4 && qcow2_magic(magic, 4) ? "qcow2" : "raw";
}

/* The disk's format, then its backing chain, each file opened under the rules. */
static int open_chain(struct ctx *c, const char *disk, int idx)
{
	struct boot_files *bf = c->bf;
	char cur[PATH_MAX], next[PATH_MAX], label[PATH_MAX + 40];
	snprintf(cur, sizeof(cur), "%s", disk);
	for (int depth = 0;; depth++) {
		struct qcow2_info q;
		int r = read_header(c, bf->fds[idx], disk, cur, &q);
		if (r < 0)
			return r;
		if (depth == 0)
			snprintf(bf->disk_format, sizeof(bf->disk_format), "%s", r ? "qcow2" : "raw");
		if (r == 1 && q.data_file)
			return fail(c, -EPERM, "disk_path %s: %s names an external data file; refused",
				    disk, cur);
		if (r == 0 || !q.backing_len) /* raw, or a qcow2 without backing */
			return 0;
		if (depth == BOOT_BACKING_MAX)
			return fail(c, -ELOOP, "disk_path %s: backing chain longer than %d", disk,
				    BOOT_BACKING_MAX);
		if (strlen(q.backing) != q.backing_len) /* a NUL in it, or beyond what we read */
			return fail(c, -EINVAL, "disk_path %s: %s is not a valid qcow2 image", disk, cur);
		if (backing_path(cur, q.backing, next, sizeof(next)) < 0)
			return fail(c, -ENAMETOOLONG, "disk_path %s: backing file name too long", disk);
		snprintf(label, sizeof(label), "disk_path %s: backing file", disk);
		if ((idx = open_one(c, label, next, true, O_RDONLY)) < 0)
			return idx;
		const char *fmt = backing_format(&q, bf->fds[idx]);
		if (!*fmt)
			return fail(c, -EPERM, "disk_path %s: backing format \"%s\" is not supported",
				    disk, q.backing_fmt);
		size_t b = bf->n_backing++;
		snprintf(bf->backing_fmt[b], sizeof(bf->backing_fmt[b]), "%s", fmt);
		bf->backing_paths[b] = bf->names[idx];
		bf->backing_formats[b] = bf->backing_fmt[b];
		if (strcmp(fmt, "qcow2") != 0)
			return 0;
		snprintf(cur, sizeof(cur), "%s", next);
	}
}

/* <member dir>/<file> when it exists (the drivers' defaults), else "". */
static int open_default(struct ctx *c, const char *file, const char *label, int *idx)
{
	char path[PATH_MAX];
	*idx = -1;
	snprintf(path, sizeof(path), "%s/%s", c->m->dir, file);
	struct stat st;
	if (fstatat(c->m->dir_fd, file, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
		return 0;
	*idx = open_one(c, label, path, false, O_RDONLY);
	return *idx < 0 ? *idx : 0;
}

/* The VMM runs as the member dir's owner when the holder is root and the
 * owner is not: the user whose VM it is, with that user's groups. */
static void pick_user(struct ctx *c)
{
	struct stat st;
	c->bf->uid = 0;
	c->bf->gid = 0;
	if (geteuid() != 0 || fstat(c->m->dir_fd, &st) < 0 || st.st_uid == 0)
		return;
	struct passwd *pw = getpwuid(st.st_uid);
	c->bf->uid = st.st_uid;
	c->bf->gid = pw ? pw->pw_gid : st.st_gid;
}

static int open_fixtures(struct ctx *c, const struct rpc_spec *s)
{
	if (s->n_fixtures > BOOT_FIXTURES_MAX)
		return fail(c, -E2BIG, "%zu fixtures; at most %d", s->n_fixtures, BOOT_FIXTURES_MAX);
	for (size_t i = 0; i < s->n_fixtures; i++) {
		char label[32];
		snprintf(label, sizeof(label), "fixture_paths[%zu]", i);
		int k = open_one(c, label, s->fixture_paths[i], false, O_RDONLY);
		if (k < 0)
			return k;
		c->bf->fixture_paths[c->bf->n_fixtures++] = c->bf->names[k];
	}
	return 0;
}

static int open_serial(struct ctx *c, const struct rpc_spec *s)
{
	char def[PATH_MAX];
	const char *p = s->serial_log_path;
	if (!p || !*p) {
		snprintf(def, sizeof(def), "%s/serial.log", c->m->dir);
		p = def;
	}
	int k = open_one(c, "serial_log_path", p, false, O_WRONLY | O_CREAT | O_TRUNC);
	if (k < 0)
		return k;
	c->bf->serial = k;
	/* The VMM's user writes it; else (under sudo) the invoking user owns it. */
	int fd = c->bf->fds[k];
	if (c->bf->uid ? fchown(fd, c->bf->uid, c->bf->gid) < 0 : owner_claim_fd(fd) < 0)
		return fail(c, -errno, "serial_log_path %s: chown: %s", p, strerror(errno));
	return 0;
}

/* A path the spec may leave out: given -> checked; absent -> the default. */
static int open_opt(struct ctx *c, const char *path, const char *label, bool cache_ok,
		    const char *def, int *idx)
{
	if (path && *path) {
		*idx = open_one(c, label, path, cache_ok, O_RDONLY);
		return *idx < 0 ? *idx : 0;
	}
	return def ? open_default(c, def, label, idx) : 0;
}

static int open_all(struct ctx *c, const struct rpc_spec *s)
{
	struct boot_files *bf = c->bf;
	int r, k;
	uint64_t phys = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
	if (s->memory_bytes > phys && phys > 0)
		return fail(c, -E2BIG, "memory_bytes %llu is more than this host has (%llu)",
			    (unsigned long long)s->memory_bytes, (unsigned long long)phys);
	if ((k = open_one(c, "disk_path", s->disk_path, false, O_RDWR)) < 0)
		return k;
	bf->disk = k;
	if ((r = open_chain(c, s->disk_path, k)) < 0)
		return r;
	if (s->seed_path && *s->seed_path) {
		if ((k = open_one(c, "seed_path", s->seed_path, false, O_RDONLY)) < 0)
			return k;
		bf->seed = k;
	}
	if ((r = open_fixtures(c, s)) < 0 || (r = open_serial(c, s)) < 0 ||
	    (r = open_opt(c, s->kernel_path, "kernel_path", true, "kernel", &bf->kernel)) < 0 ||
	    (r = open_opt(c, s->initrd_path, "initrd_path", true, "initrd", &bf->initrd)) < 0 ||
	    (r = open_opt(c, s->efi_path, "efi_path", true, NULL, &bf->efi)) < 0)
		return r;
	return 0;
}

int boot_files_open(struct member *m, const struct rpc_spec *s, struct boot_files *bf,
		    char *err, size_t errlen)
{
	memset(bf, 0, sizeof(*bf));
	bf->disk = bf->seed = bf->serial = bf->kernel = bf->initrd = bf->efi = -1;
	struct ctx c = { .m = m, .bf = bf, .err = err, .errlen = errlen };
	cache_roots(&c);
	pick_user(&c);
	int r = open_all(&c, s);
	if (r < 0)
		boot_files_close(bf);
	return r;
}

static const char *name_of(struct boot_files *bf, int idx)
{
	return idx >= 0 ? bf->names[idx] : "";
}

void boot_files_apply(struct boot_files *bf, int member_dir_fd, struct vmm_boot_spec *bs)
{
	bs->disk_path = name_of(bf, bf->disk);
	bs->seed_path = bf->seed >= 0 ? bf->names[bf->seed] : NULL;
	bs->fixture_paths = bf->fixture_paths;
	bs->n_fixtures = bf->n_fixtures;
	bs->serial_log_path = name_of(bf, bf->serial);
	/* "" (not NULL): the drivers must not fall back to a path of their own. */
	bs->kernel_path = name_of(bf, bf->kernel);
	bs->initrd_path = name_of(bf, bf->initrd);
	bs->efi_path = bf->efi >= 0 ? bf->names[bf->efi] : NULL;
	bs->backing_paths = bf->backing_paths;
	bs->backing_formats = bf->backing_formats;
	bs->n_backing = bf->n_backing;
	bf->fds[bf->n] = member_dir_fd; /* handed over too: the VMM's control socket lives there */
	bs->pass_fds = bf->fds;
	bs->n_pass_fds = bf->n + 1;
	bs->member_dir_fd = member_dir_fd;
	bs->run_uid = bf->uid;
	bs->run_gid = bf->gid;
}

int boot_files_add(struct boot_files *bf, int fd)
{
	if (bf->n == BOOT_FDS_MAX)
		return -E2BIG;
	bf->fds[bf->n] = fd;
	snprintf(bf->names[bf->n], sizeof(bf->names[0]), "/proc/self/fd/%d", fd);
	return (int)bf->n++;
}

void boot_files_close(struct boot_files *bf)
{
	for (size_t i = 0; i < bf->n; i++)
		close(bf->fds[i]);
	bf->n = 0;
}
