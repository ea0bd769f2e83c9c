/* test_cache.c - the image cache's management: ls/rm/prune with member disks
 * (never remove a base a disk backs onto), a member booting the image its
 * disk was made on after the source changed, a store of an older fleetbox
 * (images/mini imported, not rebuilt), debris of dead writers, ownership
 * under sudo, and the CLI (`image ls|rm`, `prune --images`). */
#include "../unit/check.h"
#include "disk.h"

#include "client/image/image.h"
#include "client/image/int.h"
#include "util/err.h"
#include "util/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[PATH_MAX], cache[PATH_MAX], store[PATH_MAX];

static const char *at(const char *name)
{
	return path_in(dir, name);
}

/* A small whole-disk image whose kernel is kernel_len random bytes. */
static void make_image(const char *name, size_t kernel_len)
{
	char tree[PATH_MAX], p[PATH_MAX];
	snprintf(tree, sizeof(tree), "%s/tree-%s", dir, name);
	rm_rf(tree);
	mkdir_or_die(tree);
	snprintf(p, sizeof(p), "%s/vmlinuz", tree);
	write_random(p, kernel_len);
	disk_make_plain(at(name), 4, tree);
}

static void resolve(const char *path, struct image_info *img)
{
	struct err e = { 0 };
	int r = image_resolve(store, path, NULL, NULL, img, &e);
	if (r < 0)
		fprintf(stderr, "resolve %s: %s\n", path, e.msg);
	CHECK_INT(r, 0);
}

static int count_images(void)
{
	struct image_entry *v;
	size_t n;
	struct err e = { 0 };
	CHECK_INT(image_list(&v, &n, &e), 0);
	free(v);
	return (int)n;
}

static const struct image_entry *find(struct image_entry *v, size_t n, const char *digest)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].digest, digest))
			return &v[i];
	return NULL;
}

static void age(const struct image_info *img, int days)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/used", img->dir);
	struct timespec t[2] = { { time(NULL) - days * 86400L, 0 }, { time(NULL) - days * 86400L, 0 } };
	CHECK_INT(utimensat(AT_FDCWD, p, t, 0), 0);
}

static void member_disk(const struct image_info *img, const char *name, char *out)
{
	snprintf(out, PATH_MAX, "%s/%s", store, name);
	struct err e = { 0 };
	CHECK_INT(disk_create(img, out, 64, &e), 0);
}

static void test_ls_rm_prune(void)
{
	struct image_info a, b, c;
	make_image("a.raw", 5000);
	make_image("b.raw", 6000);
	resolve(at("a.raw"), &a);
	resolve(at("b.raw"), &b);
	struct image_entry *v;
	size_t n;
	struct err e = { 0 };
	CHECK_INT(image_list(&v, &n, &e), 0);
	CHECK_INT(n, 2);
	const struct image_entry *ea = find(v, n, a.digest);
	CHECK(ea != NULL);
	CHECK_STR(ea->names, "a.raw");
	CHECK_STR(ea->source, at("a.raw"));
	CHECK(ea->size > 4000 && ea->disks == 0 && time(NULL) - ea->last_use < 60);
	free(v);

	char disk[PATH_MAX];
	member_disk(&a, "m1.qcow2", disk);
	CHECK_INT(image_list(&v, &n, &e), 0);
	CHECK_INT(find(v, n, a.digest)->disks, 1);
	free(v);
	/* in use: refused by name and by digest, naming the disk */
	CHECK_INT(image_remove("a.raw", &e), -EBUSY);
	CHECK(strstr(e.msg, disk) && strstr(e.msg, "remove those members first"));
	CHECK_INT(image_remove(a.digest, &e), -EBUSY);
	CHECK(exists(a.base));
	/* unused: by a 12-hex digest prefix */
	char prefix[20];
	snprintf(prefix, sizeof(prefix), "%.12s", b.digest + 7);
	CHECK_INT(image_remove(prefix, &e), 0);
	CHECK(!exists(b.dir));
	CHECK_INT(count_images(), 1);
	CHECK_INT(image_remove("b.raw", &e), -ENOENT);
	CHECK(strstr(e.msg, "no cached image b.raw") != NULL);

	/* prune: an old image a member disk still backs onto stays */
	struct image_prune_report rep;
	age(&a, 10);
	CHECK_INT(image_prune(5, &rep, &e), 0);
	CHECK(rep.removed == 0 && rep.kept_in_use == 1);
	CHECK(exists(a.base));
	/* ... until the disk is gone (its record is then stale) */
	CHECK_INT(unlink(disk), 0);
	CHECK_INT(image_prune(5, &rep, &e), 0);
	CHECK(rep.removed == 1 && rep.freed > 4000 && rep.debris >= 1);
	CHECK(!exists(a.dir));
	/* a rebased (not deleted) disk does not keep its old base either */
	make_image("c.raw", 7000);
	resolve(at("c.raw"), &c);
	member_disk(&c, "m2.qcow2", disk);
	const char *rebase[] = { "qemu-img", "rebase", "-q", "-u", "-b", "", disk, NULL };
	run(rebase);
	/* recently used: kept with --older-than, removed without */
	CHECK_INT(image_prune(5, &rep, &e), 0);
	CHECK(rep.removed == 0 && rep.kept_recent == 1);
	CHECK_INT(image_prune(0, &rep, &e), 0);
	CHECK_INT(rep.removed, 1);
	CHECK_INT(count_images(), 0);
	CHECK_INT(image_prune(-1, &rep, &e), -EINVAL);
}

/* A stopped member boots the image its disk was made on, even after the
 * file it came from changed; a disk of an older store falls back. */
static void test_resolve_member(void)
{
	struct image_info a, now, m;
	struct err e = { 0 };
	make_image("r.raw", 5000);
	resolve(at("r.raw"), &a);
	char disk[PATH_MAX];
	member_disk(&a, "r1.qcow2", disk);
	make_image("r.raw", 5001);
	resolve(at("r.raw"), &now);
	CHECK(strcmp(now.digest, a.digest) != 0);
	CHECK_INT(image_resolve_member(store, at("r.raw"), disk, NULL, NULL, &m, &e), 0);
	CHECK_STR(m.digest, a.digest);
	CHECK_STR(m.kernel, a.kernel);
	CHECK_STR(m.name, "r.raw");
	/* an overlay on a base outside the cache: resolved by name */
	char legacy[PATH_MAX];
	snprintf(legacy, sizeof(legacy), "%s/old.qcow2", store);
	const char *mk[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
			     at("r.raw"), legacy, "64M", NULL };
	run(mk);
	CHECK_INT(image_resolve_member(store, at("r.raw"), legacy, NULL, NULL, &m, &e), 0);
	CHECK_STR(m.digest, now.digest);
	CHECK_INT(unlink(disk), 0);
}

/* A store of an older fleetbox: its current images/mini/ is imported (no
 * build, no network) and left in place. */
static void test_legacy_mini(void)
{
	char mini[PATH_MAX], p[PATH_MAX + 32], recipe[65], man[512];
	snprintf(mini, sizeof(mini), "%s/images/mini", store);
	CHECK_INT(mkdir_p(mini, 0755), 0);
	mini_recipe_id(recipe);
	int n = snprintf(man, sizeof(man), "{\"version\":1,\"recipe\":\"%s\",\"kernel_origin\":"
			 "\"debian:linux-image-test\",\"kernel_release\":\"6.1-test\"}\n", recipe);
	snprintf(p, sizeof(p), "%s/manifest.json", mini);
	CHECK_INT(file_write_atomic(p, man, (size_t)n, 0644), 0);
	snprintf(p, sizeof(p), "%s/vmlinux", mini);
	write_random(p, 300000);
	snprintf(p, sizeof(p), "%s/initrd", mini);
	write_random(p, 200000);
	snprintf(p, sizeof(p), "%s/base.raw", mini);
	write_random(p, 4096);
	struct image_info img;
	resolve("mini", &img);
	snprintf(p, sizeof(p), "%s/vmlinux", mini);
	CHECK(files_equal(img.kernel, p));
	CHECK(strstr(img.cmdline, "rdinit=/init") != NULL);
	CHECK_STR(img.name, "mini");
	CHECK(exists(p));
	struct image_entry *v;
	size_t k;
	struct err e = { 0 };
	CHECK_INT(image_list(&v, &k, &e), 0);
	CHECK(strstr(find(v, k, img.digest)->source, "debian:linux-image-test") != NULL);
	free(v);
	CHECK_INT(image_remove("mini", &e), 0);
}

/* tmp/ of a dead writer is swept; a live writer's (its lock held) is not. */
static void test_debris(void)
{
	char dead[PATH_MAX], live[PATH_MAX], lock[PATH_MAX];
	snprintf(dead, sizeof(dead), "%s/tmp/path-0123456789abcdef.99999.0", cache);
	snprintf(live, sizeof(live), "%s/tmp/path-fedcba9876543210.99998.0", cache);
	snprintf(lock, sizeof(lock), "%s/locks/path-fedcba9876543210.lock", cache);
	mkdir_or_die(dead);
	mkdir_or_die(live);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int lfd = open(lock, O_RDWR | O_CREAT, 0644);
		if (lfd < 0 || flock(lfd, LOCK_EX) < 0)
			_exit(1);
		pause();
		_exit(0);
	}
	/* until the child holds it (a lock of our own open file would conflict) */
	int fd = -1;
	for (int i = 0; i < 500; i++) {
		if (fd < 0)
			fd = open(lock, O_RDWR);
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0)
			break;
		if (fd >= 0)
			flock(fd, LOCK_UN);
		usleep(10000);
	}
	struct image_prune_report rep;
	struct err e = { 0 };
	CHECK_INT(image_prune(0, &rep, &e), 0);
	CHECK(!exists(dead));
	CHECK(exists(live));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	CHECK_INT(image_prune(0, &rep, &e), 0);
	CHECK(!exists(live));
	close(fd);
}

/* A client killed while recording its disk in disks/ leaves a temporary
 * that names a dead writer: the sweep prune runs removes it, and keeps a
 * live writer's (ours). Found by chaos-client-kill. */
static void test_sweep_records(void)
{
	char d[PATH_MAX], dead[PATH_MAX], live[PATH_MAX], tmp[NAME_MAX + 1];
	snprintf(d, sizeof(d), "%s/images/sha256-%064d/disks", cache, 0);
	CHECK_INT(mkdir_p(d, 0755), 0);
	snprintf(dead, sizeof(dead), "%s/abc.tmp.999999.1.xxxxxx", d);
	CHECK_INT(file_tmp_name("abd", tmp, sizeof(tmp)), 0);
	snprintf(live, sizeof(live), "%s/%s", d, tmp);
	CHECK_INT(file_write_atomic(dead, "x", 1, 0644), 0); /* writes dead itself, via a temporary */
	CHECK_INT(file_write_atomic(live, "x", 1, 0644), 0);
	CHECK(image_cache_sweep() >= 1);
	CHECK(!exists(dead));
	CHECK(exists(live));
	snprintf(d, sizeof(d), "%s/images/sha256-%064d", cache, 0);
	CHECK_INT(rm_rf(d), 0);
}

static bool owned(const char *p, uid_t u)
{
	struct stat st;
	return lstat(p, &st) == 0 && st.st_uid == u;
}

/* Under sudo the cache is the invoking user's: what we create is theirs. */
static void test_sudo_owner(void)
{
	if (geteuid() != 0) {
		printf("sudo ownership: skipped (not root)\n");
		return;
	}
	CHECK_INT(chmod(dir, 0755), 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		char c2[PATH_MAX];
		snprintf(c2, sizeof(c2), "%s/sudo-home/.cache/fleetbox", dir);
		setenv("FLEETBOX_CACHE", c2, 1);
		setenv("SUDO_UID", "65534", 1);
		setenv("SUDO_GID", "65534", 1);
		struct image_info img;
		struct err e = { 0 };
		int r = image_resolve(store, at("r.raw"), NULL, NULL, &img, &e);
		if (r < 0)
			fprintf(stderr, "sudo resolve: %s\n", e.msg);
		char refs[PATH_MAX];
		snprintf(refs, sizeof(refs), "%s/refs", c2);
		_exit(r == 0 && owned(c2, 65534) && owned(img.dir, 65534) && owned(img.kernel, 65534) &&
		      owned(img.base, 65534) && owned(refs, 65534) ? 0 : 1);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(owned(at("sudo-home"), 65534) && owned(at("sudo-home/.cache"), 65534));
}

/* fleetbox CLI: runs argv[] with output captured; returns the exit status. */
static int cli(char **out, const char *const *args)
{
	int p[2];
	CHECK(pipe(p) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		const char *argv[16] = { getenv("FLEETBOX_BIN") };
		for (int i = 0; args[i] && i < 14; i++)
			argv[i + 1] = args[i];
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	char buf[16384];
	size_t got = 0;
	ssize_t k;
	while ((k = read(p[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)k;
	buf[got] = '\0';
	close(p[0]);
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	*out = strdup(buf);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void test_cli(void)
{
	if (!getenv("FLEETBOX_BIN")) {
		printf("cli: skipped (FLEETBOX_BIN not set)\n");
		return;
	}
	setenv("FLEETBOX_HOME", store, 1);
	struct image_info a;
	make_image("cli.raw", 4444);
	resolve(at("cli.raw"), &a);
	char disk[PATH_MAX], *out;
	member_disk(&a, "cli1.qcow2", disk);
	CHECK_INT(cli(&out, (const char *const[]){ "image", "ls", "-o", "json", NULL }), 0);
	json_t *j = json_loads(out, 0, NULL);
	CHECK(json_is_array(j) && json_array_size(j) >= 1);
	json_t *first = json_array_get(j, 0);
	CHECK_STR(json_string_value(json_array_get(json_object_get(first, "names"), 0)), "cli.raw");
	CHECK_STR(json_string_value(json_object_get(first, "digest")), a.digest);
	CHECK_INT(json_integer_value(json_object_get(first, "disks")), 1);
	json_decref(j);
	free(out);
	CHECK_INT(cli(&out, (const char *const[]){ "image", "ls", NULL }), 0);
	CHECK(strstr(out, "NAME") && strstr(out, "LAST USE") && strstr(out, "cli.raw"));
	free(out);
	CHECK_INT(cli(&out, (const char *const[]){ "image", "rm", "cli.raw", NULL }), 1);
	CHECK(strstr(out, "error: image cli.raw is the base of 1 member disk(s)") != NULL);
	free(out);
	CHECK_INT(cli(&out, (const char *const[]){ "prune", "--images", "--older-than", "x", NULL }), 1);
	free(out);
	CHECK_INT(unlink(disk), 0);
	CHECK_INT(cli(&out, (const char *const[]){ "prune", "--images", "--older-than", "3", NULL }), 0);
	CHECK(strstr(out, "pruned: 0 image(s)") && strstr(out, "1 used in the last 3 day(s)"));
	free(out);
	CHECK_INT(cli(&out, (const char *const[]){ "image", "rm", "cli.raw", NULL }), 0);
	CHECK(strstr(out, "removed cli.raw") != NULL);
	free(out);
}

int main(void)
{
	test_dir("image-cache", dir, cache);
	snprintf(store, sizeof(store), "%s/store", dir);
	mkdir_or_die(store);
	test_ls_rm_prune();
	test_resolve_member();
	test_legacy_mini();
	test_debris();
	test_sweep_records();
	test_sudo_owner();
	test_cli();
	CHECK_INT(rm_rf(dir), 0);
	printf("ok\n");
	return 0;
}
