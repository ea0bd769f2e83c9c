/* test_copy_tar.c - the tar halves of `cp` without SSH: our archive of a sample
 * tree extracts identically with our extractor, GNU tar and busybox tar; archives
 * made by GNU tar and busybox tar extract identically with ours; and every
 * malicious archive is refused with nothing written outside the destination. */
#include "client/ssh/copy.h"
#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"
#include "tree.h"
#include "t.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static char base[PATH_MAX];

struct mem {
	char *p;
	size_t len, cap, off;
	size_t chunk; /* reader: bytes per read, to exercise short reads */
};

static int mem_write(void *arg, const void *buf, size_t len, struct err *e)
{
	struct mem *m = arg;
	(void)e;
	if (m->len + len > m->cap) {
		size_t cap = m->cap ? m->cap : 65536;
		while (cap < m->len + len)
			cap *= 2;
		m->p = realloc(m->p, cap);
		CHECK(m->p);
		m->cap = cap;
	}
	memcpy(m->p + m->len, buf, len);
	m->len += len;
	return 0;
}

static ssize_t mem_read(void *arg, void *buf, size_t len, struct err *e)
{
	struct mem *m = arg;
	(void)e;
	size_t n = m->len - m->off;
	if (n > len)
		n = len;
	if (m->chunk && n > m->chunk)
		n = m->chunk;
	memcpy(buf, m->p + m->off, n);
	m->off += n;
	return (ssize_t)n;
}

static void save(const struct mem *m, const char *path)
{
	CHECK(file_write_atomic(path, m->p, m->len, 0644) == 0);
}

static void load(struct mem *m, const char *path)
{
	memset(m, 0, sizeof(*m));
	CHECK(file_read_all(path, 64 << 20, &m->p, &m->len) == 0);
	m->cap = m->len;
}

static void run(const char *const *argv)
{
	struct cmd c;
	struct err e = { 0 };
	cmd_init(&c, argv[0]);
	for (int i = 1; argv[i]; i++)
		cmd_add(&c, argv[i]);
	CHECK_OK(cmd_run(&c, NULL, &e), &e);
	cmd_fini(&c);
}

static void test_roundtrip(void)
{
	struct err e = { 0 };
	char src[PATH_MAX], dst[PATH_MAX], out[PATH_MAX], tarf[PATH_MAX];
	FMT(src, "%s/src", base);
	tree_make(src);

	/* ours -> ours, renamed top, read in odd chunk sizes */
	struct mem m = { 0 };
	CHECK_OK(copy_tar_create(src, "src", mem_write, &m, &e), &e);
	FMT(dst, "%s/ours", base);
	CHECK(mkdir(dst, 0755) == 0);
	m.chunk = 777;
	CHECK_OK(copy_tar_extract(mem_read, &m, dst, "src", "copy", &e), &e);
	FMT(out, "%s/copy", dst);
	tree_compare(src, out);

	/* ours -> GNU tar and busybox tar (as the guest would extract) */
	FMT(tarf, "%s/ours.tar", base);
	save(&m, tarf);
	free(m.p);
	const char *tars[2][3] = { { "tar", NULL, NULL }, { "busybox", "tar", NULL } };
	const char *names[2] = { "gnu", "busybox" };
	for (int i = 0; i < 2; i++) {
		if (i == 1 && access("/bin/busybox", X_OK) != 0)
			continue;
		FMT(dst, "%s/x-%s", base, names[i]);
		CHECK(mkdir(dst, 0755) == 0);
		const char *argv[10];
		int k = 0;
		for (int j = 0; tars[i][j]; j++)
			argv[k++] = tars[i][j];
		argv[k++] = "-x";
		argv[k++] = "-f";
		argv[k++] = tarf;
		argv[k++] = "-C";
		argv[k++] = dst;
		argv[k] = NULL;
		run(argv);
		FMT(out, "%s/src", dst);
		tree_compare(src, out);
		printf("%s tar extracts our archive identically\n", names[i]);
	}

	/* GNU tar / busybox tar archives -> ours */
	for (int i = 0; i < 2; i++) {
		if (i == 1 && access("/bin/busybox", X_OK) != 0)
			continue;
		FMT(tarf, "%s/%s.tar", base, names[i]);
		const char *argv[10];
		int k = 0;
		for (int j = 0; tars[i][j]; j++)
			argv[k++] = tars[i][j];
		argv[k++] = "-c";
		argv[k++] = "-f";
		argv[k++] = tarf;
		argv[k++] = "-C";
		argv[k++] = base;
		argv[k++] = "src";
		argv[k] = NULL;
		run(argv);
		struct mem m2;
		load(&m2, tarf);
		FMT(dst, "%s/from-%s", base, names[i]);
		CHECK(mkdir(dst, 0755) == 0);
		CHECK_OK(copy_tar_extract(mem_read, &m2, dst, "src", NULL, &e), &e);
		free(m2.p);
		FMT(out, "%s/src", dst);
		tree_compare(src, out);
		printf("we extract %s tar's archive identically\n", names[i]);
	}

	/* a single file and a single symlink as the top */
	char f[PATH_MAX];
	FMT(f, "%s/src/run.sh", base);
	memset(&m, 0, sizeof(m));
	CHECK_OK(copy_tar_create(f, "run.sh", mem_write, &m, &e), &e);
	FMT(dst, "%s/single", base);
	CHECK(mkdir(dst, 0755) == 0);
	CHECK_OK(copy_tar_extract(mem_read, &m, dst, "run.sh", "renamed.sh", &e), &e);
	free(m.p);
	FMT(out, "%s/renamed.sh", dst);
	tree_compare(f, out);

	/* extracting again over the same destination overwrites (cp semantics) */
	memset(&m, 0, sizeof(m));
	CHECK_OK(copy_tar_create(src, "src", mem_write, &m, &e), &e);
	FMT(dst, "%s/ours", base);
	CHECK_OK(copy_tar_extract(mem_read, &m, dst, "src", "copy", &e), &e);
	free(m.p);
	FMT(out, "%s/copy", dst);
	tree_compare(src, out);
}

/* ---- crafted archives ---- */

struct ent {
	char type; /* f file, d dir, l symlink, h hardlink, c char device */
	const char *name;
	const char *target;
};

static void craft(struct mem *m, const struct ent *ents, size_t n)
{
	char path[PATH_MAX];
	FMT(path, "%s/crafted.tar", base);
	struct archive *a = archive_write_new();
	CHECK(archive_write_set_format_pax_restricted(a) == ARCHIVE_OK);
	CHECK(archive_write_open_filename(a, path) == ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *en = archive_entry_new();
		archive_entry_set_pathname(en, ents[i].name);
		archive_entry_set_mtime(en, 1000000000, 0);
		switch (ents[i].type) {
		case 'f':
			archive_entry_set_filetype(en, AE_IFREG);
			archive_entry_set_perm(en, 04755); /* set-id must be dropped */
			archive_entry_set_size(en, 4);
			break;
		case 'd':
			archive_entry_set_filetype(en, AE_IFDIR);
			archive_entry_set_perm(en, 0755);
			break;
		case 'l':
			archive_entry_set_filetype(en, AE_IFLNK);
			archive_entry_set_perm(en, 0777);
			archive_entry_set_symlink(en, ents[i].target);
			break;
		case 'h':
			archive_entry_set_filetype(en, AE_IFREG);
			archive_entry_set_perm(en, 0644);
			archive_entry_set_hardlink(en, ents[i].target);
			break;
		case 'c':
			archive_entry_set_filetype(en, AE_IFCHR);
			archive_entry_set_perm(en, 0666);
			archive_entry_set_rdev(en, makedev(1, 3));
			break;
		}
		CHECK(archive_write_header(a, en) == ARCHIVE_OK);
		if (ents[i].type == 'f')
			CHECK(archive_write_data(a, "evil", 4) == 4);
		archive_entry_free(en);
	}
	CHECK(archive_write_close(a) == ARCHIVE_OK);
	archive_write_free(a);
	load(m, path);
	unlink(path);
}

static int case_no = 0;

/* Extracts the crafted archive into a fresh destination; returns the result. */
static int try_extract(const struct ent *ents, size_t n, char *dst, size_t dlen, struct err *e)
{
	struct mem m;
	craft(&m, ents, n);
	CHECK(snprintf(dst, dlen, "%s/dest%d", base, ++case_no) < (int)dlen);
	CHECK(mkdir(dst, 0755) == 0);
	memset(e, 0, sizeof(*e));
	int r = copy_tar_extract(mem_read, &m, dst, "top", NULL, e);
	free(m.p);
	return r;
}

static int dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	CHECK(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static char outside[PATH_MAX];

static void expect_refused(const char *label, const struct ent *ents, size_t n,
			   const char *msg_part)
{
	char dst[PATH_MAX];
	struct err e;
	int r = try_extract(ents, n, dst, sizeof(dst), &e);
	if (r != -EPERM || !strstr(e.msg, msg_part)) {
		fprintf(stderr, "%s: expected refusal containing '%s', got %d '%s'\n", label,
			msg_part, r, e.msg);
		CHECK(0);
	}
	CHECK(dir_entries(outside) == 0); /* nothing escaped */
	printf("refused %-22s %s\n", label, e.msg);
}

static void test_refusals(void)
{
	FMT(outside, "%s/outside", base);
	CHECK(mkdir(outside, 0755) == 0);
	char abs[PATH_MAX], rel_out[PATH_MAX];
	FMT(abs, "%s/pwned", outside);
	FMT(rel_out, "top/../../outside/pwned");

	struct ent absn[] = { { 'd', "top", NULL }, { 'f', abs, NULL } };
	expect_refused("absolute name", absn, 2, "absolute name");
	struct ent dotdot[] = { { 'd', "top", NULL }, { 'f', rel_out, NULL } };
	expect_refused("dotdot name", dotdot, 2, "'..'");
	struct ent other_top[] = { { 'd', "top", NULL }, { 'f', "elsewhere/x", NULL } };
	expect_refused("entry outside top", other_top, 2, "outside 'top'");
	struct ent esc1[] = { { 'd', "top", NULL }, { 'l', "top/esc", "../../outside" } };
	expect_refused("escaping symlink", esc1, 2, "points outside");
	struct ent esc2[] = { { 'd', "top", NULL }, { 'l', "top/abs", outside } };
	expect_refused("absolute symlink", esc2, 2, "points outside");
	struct ent esc3[] = { { 'd', "top", NULL }, { 'd', "top/a", NULL },
			      { 'l', "top/a/l", "b/../../../.." } };
	expect_refused("dotdot after name", esc3, 3, "'..' after a name");
	/* a contained symlink, then a file written "through" it */
	struct ent via[] = { { 'd', "top", NULL }, { 'd', "top/sub", NULL },
			     { 'l', "top/lnk", "sub" }, { 'f', "top/lnk/file", NULL } };
	expect_refused("symlinked parent", via, 4, "parent is a symlink");
	struct ent hl1[] = { { 'd', "top", NULL }, { 'h', "top/h", "/etc/passwd" } };
	expect_refused("hardlink absolute", hl1, 2, "refusing hardlink");
	struct ent hl2[] = { { 'd', "top", NULL }, { 'h', "top/h", "top/../../outside/x" } };
	expect_refused("hardlink dotdot", hl2, 2, "refusing hardlink");
	struct ent hl3[] = { { 'd', "top", NULL }, { 'd', "top/a", NULL },
			     { 'l', "top/a/l", "../x" }, { 'h', "top/h", "top/a/l" } };
	expect_refused("hardlink to symlink", hl3, 4, "not a regular file");
	struct ent dev[] = { { 'd', "top", NULL }, { 'c', "top/null", NULL } };
	expect_refused("device node", dev, 2, "device");

	/* a pre-existing symlink in the destination is never written through */
	char dst[PATH_MAX], lnk[PATH_MAX];
	struct mem m;
	struct ent pre[] = { { 'd', "top", NULL }, { 'f', "top/evil/pwned", NULL } };
	craft(&m, pre, 2);
	FMT(dst, "%s/dest-pre", base);
	CHECK(mkdir(dst, 0755) == 0);
	FMT(lnk, "%s/top", dst);
	CHECK(mkdir(lnk, 0755) == 0);
	FMT(lnk, "%s/top/evil", dst);
	CHECK(symlink(outside, lnk) == 0);
	struct err e = { 0 };
	CHECK(copy_tar_extract(mem_read, &m, dst, "top", NULL, &e) == -EPERM);
	free(m.p);
	CHECK(dir_entries(outside) == 0);
	printf("refused %-22s %s\n", "pre-existing symlink", e.msg);

	/* accepted: contained symlinks, hardlink to a file inside; set-id dropped */
	struct ent ok[] = { { 'd', "top", NULL },     { 'd', "top/d", NULL },
			    { 'f', "top/f", NULL },     { 'l', "top/d/up", "../f" },
			    { 'l', "top/self", "." },   { 'h', "top/d/hard", "top/f" },
			    { 'f', "./top//g", NULL } };
	CHECK_OK(try_extract(ok, 7, dst, sizeof(dst), &e), &e);
	char p[PATH_MAX];
	struct stat st;
	FMT(p, "%s/top/f", dst);
	CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0755 && st.st_nlink == 2);
	CHECK(st.st_mtime == 1000000000);
	FMT(p, "%s/top/d/up", dst);
	CHECK(stat(p, &st) == 0 && S_ISREG(st.st_mode));
	FMT(p, "%s/top/g", dst);
	CHECK(stat(p, &st) == 0);
}

/* `cp VM:/x DIR/newname`: newname itself is the destination, so a link in
 * it must not reach a sibling of it (issue 10 item 7). */
static void test_newname_root(void)
{
	struct ent sib[] = { { 'd', "top", NULL }, { 'd', "top/d", NULL },
			     { 'l', "top/l", "../secret" } };
	struct ent in[] = { { 'd', "top", NULL }, { 'd', "top/d", NULL }, { 'f', "top/f", NULL },
			    { 'l', "top/d/up", "../f" }, { 'l', "top/self", "." } };
	struct ent toplink[] = { { 'l', "top", "sibling" } };
	struct mem m;
	struct err e = { 0 };
	char dst[PATH_MAX], p[PATH_MAX];
	int k = 0;
	struct { const struct ent *ents; size_t n; bool top_is_dest; int want; } cases[] = {
		{ sib, 3, true, -EPERM },  /* DIR/newname/l -> DIR/secret: refused */
		{ sib, 3, false, 0 },      /* DIR/x/l -> DIR/secret: inside DIR */
		{ in, 5, true, 0 },        /* links within newname: fine */
		{ toplink, 1, true, 0 },   /* the top entry as a link is judged in DIR */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		craft(&m, cases[i].ents, cases[i].n);
		FMT(dst, "%s/newname%d", base, ++k);
		CHECK(mkdir(dst, 0755) == 0);
		memset(&e, 0, sizeof(e));
		int r = copy_tar_extract_to(mem_read, &m, dst, "top", "newname", cases[i].top_is_dest,
					    &e);
		free(m.p);
		if (r != cases[i].want) {
			fprintf(stderr, "newname case %zu: got %d '%s', want %d\n", i, r, e.msg,
				cases[i].want);
			CHECK(0);
		}
		if (r < 0) {
			CHECK(strstr(e.msg, "refusing symlink 'newname/l' -> '../secret': it points "
					    "outside the destination") != NULL);
			FMT(p, "%s/newname/l", dst);
			CHECK(!path_exists(p)); /* nothing made */
		}
		printf("newname case %zu: %d %s\n", i, r, e.msg);
	}
	/* the pure check, as a table */
	struct { const char *rel, *target; int depth, want; } t[] = {
		{ "n/l", "../s", 1, -EPERM }, { "n/l", "../s", 0, 0 },   { "n/d/l", "../s", 1, 0 },
		{ "n/d/l", "../../s", 1, -EPERM }, { "n", "s", 1, 0 },   { "n", "../s", 1, -EPERM },
		{ "n/l", "a/../../s", 0, -EPERM }, { "n/l", "/etc", 0, -EPERM }, { "n/l", "", 0, -EPERM },
		{ "n/l", "./././s", 1, 0 },       { "n/l", "..", 1, -EPERM }, { "n/l", ".", 1, 0 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int r = copy_symlink_check(t[i].rel, t[i].target, t[i].depth, &e);
		if (r != t[i].want) {
			fprintf(stderr, "check %s -> %s (root depth %d): %d, want %d\n", t[i].rel,
				t[i].target, t[i].depth, r, t[i].want);
			CHECK(0);
		}
	}
}

int main(void)
{
	FMT(base, "/tmp/fbcopy-XXXXXX");
	CHECK(mkdtemp(base));
	umask(022);
	test_roundtrip();
	test_refusals();
	test_newname_root();
	CHECK(rm_rf(base) == 0);
	printf("ok\n");
	return 0;
}
