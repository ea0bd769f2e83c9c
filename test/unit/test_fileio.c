/* Temporaries: names carry their writer; the sweeper removes exactly those
 * of dead writers (and old legacy names), never a live writer's, never
 * through a symlink; the next atomic write of a file sweeps its own. */
#include "check.h"
#include "util/fileio.h"
#include "util/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[PATH_MAX];

static void touch(const char *name, time_t age)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0);
	CHECK_INT(write(fd, "half", 4), 4);
	close(fd);
	if (age) {
		struct timespec ts[2] = { { time(NULL) - age, 0 }, { time(NULL) - age, 0 } };
		CHECK_INT(utimensat(AT_FDCWD, p, ts, 0), 0);
	}
}

static bool present(const char *name)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return path_exists(p);
}

/* pid and start time of a process that has exited and been reaped. */
static void dead_writer(pid_t *pid, unsigned long long *start)
{
	int p[2];
	CHECK_INT(pipe(p), 0);
	pid_t c = fork();
	CHECK(c >= 0);
	if (c == 0) {
		unsigned long long st = 0;
		proc_start_time(getpid(), &st);
		CHECK_INT(write(p[1], &st, sizeof(st)), sizeof(st));
		_exit(0);
	}
	CHECK_INT(read(p[0], start, sizeof(*start)), sizeof(*start));
	close(p[0]);
	close(p[1]);
	CHECK(waitpid(c, NULL, 0) == c);
	*pid = c;
}

static void test_names(void)
{
	char t[PATH_MAX], t2[PATH_MAX];
	CHECK_INT(file_tmp_name("/x/disk", t, sizeof(t)), 0);
	CHECK_INT(file_tmp_name("/x/disk", t2, sizeof(t2)), 0);
	CHECK(strcmp(t, t2) != 0); /* two temporaries of one writer differ */
	unsigned long long me;
	CHECK_INT(proc_start_time(getpid(), &me), 0);
	char want[128];
	snprintf(want, sizeof(want), "/x/disk.tmp.%d.%llu.", (int)getpid(), me);
	CHECK(strncmp(t, want, strlen(want)) == 0 && strlen(t) == strlen(want) + 6);
	pid_t pid;
	unsigned long long st;
	CHECK_INT(file_tmp_writer(strrchr(t, '/') + 1, &pid, &st), 0);
	CHECK_INT(pid, getpid());
	CHECK(st == me);
	/* not ours: refused by the parser */
	const char *bad[] = { "disk", "disk.tmp", "disk.tmp.12.34", "disk.tmp.x.34.abcdef",
			      "disk.tmp.12.34.abc", "disk.tmp.0.34.abcdef", ".tmp.1.2.abcdef",
			      "disk.tmp.12.34.ab/def", "disk.tmp.99999999999.1.abcdef" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(file_tmp_writer(bad[i], &pid, &st), -EINVAL);
	char small[8];
	CHECK_INT(file_tmp_name("/x/disk", small, sizeof(small)), -ENAMETOOLONG);
}

static void test_sweep(void)
{
	pid_t dpid;
	unsigned long long dst;
	dead_writer(&dpid, &dst);
	unsigned long long me;
	CHECK_INT(proc_start_time(getpid(), &me), 0);
	char dead[128], live[128], reused[128], dead_link[128];
	snprintf(dead, sizeof(dead), "seed.iso.tmp.%d.%llu.Ab12Cd", (int)dpid, dst);
	snprintf(live, sizeof(live), "seed.iso.tmp.%d.%llu.Ef34Gh", (int)getpid(), me);
	/* our pid with another start time: a dead process whose pid we got */
	snprintf(reused, sizeof(reused), "disk.tmp.%d.%llu.Ij56Kl", (int)getpid(), me + 1);
	snprintf(dead_link, sizeof(dead_link), "x.tmp.%d.%llu.Mn78Op", (int)dpid, dst);
	touch(dead, 0);
	touch(live, 0);
	touch(reused, 0);
	touch("config.json.tmp.Qr90St", 2 * FILE_TMP_LEGACY_AGE); /* legacy, old */
	touch("disk.tmp", 2 * FILE_TMP_LEGACY_AGE);               /* legacy, old */
	touch("seed.iso.tmp", 60);                                /* legacy, recent */
	touch("disk", 2 * FILE_TMP_LEGACY_AGE);                   /* not a temporary */
	touch("target", 0);
	char lp[PATH_MAX + 64];
	snprintf(lp, sizeof(lp), "%s/%s", dir, dead_link);
	CHECK_INT(symlink("target", lp), 0);

	CHECK_INT(file_tmp_sweep(dir, "nothing-matches"), 0);
	CHECK_INT(file_tmp_sweep(dir, NULL), 5);
	CHECK(!present(dead) && !present(reused) && !present(dead_link));
	CHECK(!present("config.json.tmp.Qr90St") && !present("disk.tmp"));
	CHECK(present(live) && present("seed.iso.tmp") && present("disk") && present("target"));
	CHECK_INT(file_tmp_sweep(dir, NULL), 0); /* idempotent */

	/* the next writer of a file sweeps that file's dead temporaries only */
	char cfg_dead[128], other_dead[128], cfg[PATH_MAX + 16];
	snprintf(cfg_dead, sizeof(cfg_dead), "config.json.tmp.%d.%llu.Uv12Wx", (int)dpid, dst);
	snprintf(other_dead, sizeof(other_dead), "pid.tmp.%d.%llu.Yz34Ab", (int)dpid, dst);
	touch(cfg_dead, 0);
	touch(other_dead, 0);
	snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
	CHECK_INT(file_write_atomic(cfg, "{}\n", 3, 0600), 0);
	CHECK(!present(cfg_dead) && present(other_dead) && present("config.json"));
	CHECK_INT(file_tmp_sweep(dir, "pid"), 1);
	CHECK_INT(file_tmp_sweep("/nonexistent-dir", NULL), -ENOENT);
}

/* rm_rf never empties a mount inside the tree (a killed mmdebstrap leaves
 * proc, sys, dev/shm mounted in its temporary): it leaves it, says -EBUSY,
 * and removes the rest. Needs CAP_SYS_ADMIN for the mount; skipped without. */
static void test_rm_rf_mount(void)
{
	char t[PATH_MAX + 16], m[PATH_MAX + 32], keep[PATH_MAX + 48], other[PATH_MAX + 32];
	snprintf(t, sizeof(t), "%s/tree", dir);
	snprintf(m, sizeof(m), "%s/mnt", t);
	snprintf(keep, sizeof(keep), "%s/keep", m);
	snprintf(other, sizeof(other), "%s/other", t);
	CHECK_INT(mkdir_p(m, 0755), 0);
	CHECK_INT(file_write_atomic(other, "x", 1, 0644), 0);
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", m, "tmpfs", 0, "size=1m") < 0) {
		printf("rm_rf across a mount: skipped (%s)\n", strerror(errno));
		CHECK_INT(rm_rf(t), 0);
		return;
	}
	CHECK_INT(file_write_atomic(keep, "x", 1, 0644), 0);
	CHECK_INT(rm_rf(t), -EBUSY);
	CHECK(access(keep, F_OK) == 0);
	CHECK(access(other, F_OK) < 0);
	CHECK_INT(umount(m), 0);
	CHECK_INT(rm_rf(t), 0);
	CHECK(access(t, F_OK) < 0);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/fb-fileio-XXXXXX");
	CHECK(mkdtemp(dir));
	test_names();
	test_sweep();
	test_rm_rf_mount();
	CHECK_INT(rm_rf(dir), 0);
	printf("fileio: ok\n");
	return 0;
}
