/* test_copy.c - `cp` through a real SSH server (dropbear on loopback; the
 * "guest" is this machine seen through SSH): a sample tree goes to the guest and
 * back with GNU tar and with busybox tar as the remote tar, bytes and modes
 * compared; cp -r destination semantics; errors carry the remote tar's words. */
#include "client/ssh/copy.h"
#include "util/err.h"
#include "util/fileio.h"
#include "dropbear.h"
#include "tree.h"
#include "t.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct tdb db;
static char base[PATH_MAX], src[PATH_MAX];

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void roundtrip(const char *label, const struct copy_opts *o)
{
	struct err e = { 0 };
	char gdst[PATH_MAX], gtree[PATH_MAX], hback[PATH_MAX], htree[PATH_MAX];
	/* guest destination does not exist, nor do its parents: created, named gdst */
	FMT(gdst, "%s/guest-%s/a/b/tree", base, label);
	double t0 = now_s();
	CHECK_OK(copy_to_guest(&db.target, src, gdst, o, &e), &e);
	double t1 = now_s();
	tree_compare(src, gdst);
	/* back to the host into an existing directory: creates hback/tree */
	FMT(hback, "%s/host-%s", base, label);
	CHECK(mkdir(hback, 0755) == 0);
	CHECK_OK(copy_from_guest(&db.target, gdst, hback, o, &e), &e);
	double t2 = now_s();
	FMT(htree, "%s/tree", hback);
	tree_compare(src, htree);
	printf("%s: ~6 MiB tree to guest %.2f s, back %.2f s\n", label, t1 - t0, t2 - t1);

	/* to an existing guest directory: creates <dir>/<basename src> */
	FMT(gtree, "%s/guest-%s/a", base, label);
	CHECK_OK(copy_to_guest(&db.target, src, gtree, o, &e), &e);
	FMT(gtree, "%s/guest-%s/a/src", base, label);
	tree_compare(src, gtree);
}

static void semantics(void)
{
	struct err e = { 0 };
	char f[PATH_MAX], g[PATH_MAX], h[PATH_MAX];
	FMT(f, "%s/run.sh", src);

	/* a file to a new guest name, then over an existing guest file */
	FMT(g, "%s/files/renamed.sh", base);
	CHECK_OK(copy_to_guest(&db.target, f, g, NULL, &e), &e);
	tree_compare(f, g);
	char a[PATH_MAX];
	FMT(a, "%s/a.txt", src);
	CHECK_OK(copy_to_guest(&db.target, a, g, NULL, &e), &e);
	tree_compare(a, g);

	/* a trailing slash on a missing destination means "a directory" */
	FMT(g, "%s/newdir/", base);
	CHECK_OK(copy_to_guest(&db.target, f, g, NULL, &e), &e);
	FMT(g, "%s/newdir/run.sh", base);
	tree_compare(f, g);

	/* guest file to a missing host path: created with that name, parents too */
	FMT(h, "%s/hostside/x/y/copied.sh", base);
	CHECK_OK(copy_from_guest(&db.target, g, h, NULL, &e), &e);
	tree_compare(f, h);

	/* a directory cannot replace a guest file */
	int r = copy_to_guest(&db.target, src, g, NULL, &e);
	CHECK(r == -ENOTDIR);
	printf("dir over file: %s\n", e.msg);

	/* missing guest source: the remote tar's message comes through */
	FMT(g, "%s/does-not-exist", base);
	FMT(h, "%s/nothing-here", base);
	r = copy_from_guest(&db.target, g, h, NULL, &e);
	CHECK(r < 0);
	CHECK(strstr(e.msg, "does-not-exist") != NULL);
	CHECK(access(h, F_OK) != 0);
	printf("missing source: %s\n", e.msg);

	/* guest paths with quotes and spaces are quoted exactly */
	FMT(g, "%s/it's a \"dir\" $(touch %s/pwned)", base, base);
	CHECK_OK(copy_to_guest(&db.target, f, g, NULL, &e), &e);
	tree_compare(f, g);
	FMT(h, "%s/pwned", base);
	CHECK(access(h, F_OK) != 0);

	/* a hostile guest tree: an absolute symlink is refused on the host, the
	 * connection is dropped mid-stream, and nothing lands outside */
	char evil[PATH_MAX], lnk[PATH_MAX], big[PATH_MAX];
	FMT(evil, "%s/evil", base);
	CHECK(mkdir(evil, 0755) == 0);
	FMT(big, "%s/aaa-big.bin", evil);
	FMT(lnk, "%s/src/big.bin", base);
	CHECK(link(lnk, big) == 0);
	FMT(lnk, "%s/zzz-abs", evil);
	CHECK(symlink("/etc/passwd", lnk) == 0);
	FMT(h, "%s/evil-copy", base);
	r = copy_from_guest(&db.target, evil, h, NULL, &e);
	CHECK(r == -EPERM);
	CHECK(strstr(e.msg, "points outside the destination") != NULL);
	printf("hostile guest: %s\n", e.msg);

	/* relative guest paths are refused */
	CHECK(copy_to_guest(&db.target, f, "relative/x", NULL, &e) == -EINVAL);
	CHECK(copy_from_guest(&db.target, "relative/x", h, NULL, &e) == -EINVAL);
}

struct prog {
	int calls, done;
	uint64_t last, total;
	bool monotonic;
};

static void on_prog(void *data, uint64_t bytes, uint64_t total, bool done)
{
	struct prog *p = data;
	p->monotonic &= bytes >= p->last;
	p->calls++;
	p->done += done;
	p->last = bytes;
	p->total = total;
}

/* Progress reports, the guest side as another user (through sudo), and a
 * refusal said plainly. */
static void options(void)
{
	struct err e = { 0 };
	char g[PATH_MAX], h[PATH_MAX], big[PATH_MAX];
	FMT(big, "%s/big.bin", src);
	struct stat st;
	CHECK(stat(big, &st) == 0);
	struct prog pr = { .monotonic = true };
	struct copy_opts o = { .progress = on_prog, .progress_data = &pr };
	FMT(g, "%s/progress/", base);
	CHECK_OK(copy_to_guest(&db.target, src, g, &o, &e), &e);
	printf("progress in: %d calls, %llu of %llu bytes\n", pr.calls, (unsigned long long)pr.last,
	       (unsigned long long)pr.total);
	CHECK(pr.calls > 2 && pr.done == 1 && pr.monotonic);
	CHECK(pr.total >= (uint64_t)st.st_size && pr.last >= pr.total);
	memset(&pr, 0, sizeof(pr));
	pr.monotonic = true;
	FMT(g, "%s/progress/src/big.bin", base);
	FMT(h, "%s/big-back.bin", base);
	CHECK_OK(copy_from_guest(&db.target, g, h, &o, &e), &e);
	CHECK(pr.done == 1 && pr.total == 0 && pr.last >= (uint64_t)st.st_size);
	tree_compare(big, h);
	if (access("/usr/bin/sudo", X_OK) != 0)
		return;
	/* as nobody through sudo: a root-only directory refuses, plainly */
	char closed[PATH_MAX], a[PATH_MAX];
	FMT(closed, "%s/closed", base);
	CHECK(mkdir(closed, 0700) == 0);
	FMT(a, "%s/a.txt", src);
	struct copy_opts as = { .sudo_user = "nobody" };
	FMT(g, "%s/closed/sub/", base);
	int r = copy_to_guest(&db.target, a, g, &as, &e);
	printf("as nobody: %s\n", e.msg);
	CHECK(r == -EACCES);
	char want[PATH_MAX + 64];
	FMT(want, "permission denied writing %s/closed/sub on ", base);
	CHECK(strstr(e.msg, want) && strstr(e.msg, "as user nobody (") && !strstr(e.msg, "--root"));
	/* as root through sudo: works */
	struct copy_opts asroot = { .sudo_user = "root" };
	CHECK_OK(copy_to_guest(&db.target, a, g, &asroot, &e), &e);
	FMT(g, "%s/closed/sub/a.txt", base);
	tree_compare(a, g);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	int r = tdb_start(&db);
	if (r)
		return r;
	umask(022);
	FMT(base, "%s/cp", db.dir);
	CHECK(mkdir(base, 0755) == 0);
	FMT(src, "%s/src", base);
	tree_make(src);
	roundtrip("gnu", NULL);
	if (access("/bin/busybox", X_OK) == 0) {
		struct copy_opts bb = { .tar = "/bin/busybox tar" };
		roundtrip("busybox", &bb);
	}
	semantics();
	options();
	tdb_stop(&db);
	printf("ok\n");
	return 0;
}
