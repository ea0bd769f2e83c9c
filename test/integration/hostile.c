/* Hostile inputs against the holder and the CLI (issue 10): a bound holder
 * with the fake VMM, a private store, and requests a local user could send.
 * Usage: hostile <case>. Every row of a table names its expected error; the
 * holder must answer each, keep serving, and (for paths) open nothing: a
 * root-only secret outside the store is watched with inotify for any open. */
#include "harness.h"
#include "rpc/wire.h"
#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char secret_dir[256], secret[300], cache[300];

/* --- a raw bound holder --- */

struct holder_proc {
	pid_t pid;
	int ctl;
};

/* Starts `fleetbox --fleetbox-runner names` bound to us, acknowledged. */
static struct holder_proc holder_start(const char *names)
{
	struct holder_proc hp = { 0 };
	hp.pid = fork();
	CHECK(hp.pid >= 0);
	if (hp.pid == 0) {
		char ppid[32], log[400];
		snprintf(ppid, sizeof(ppid), "%d", (int)getppid());
		setenv("FLEETBOX_PARENT_PID", ppid, 1);
		snprintf(log, sizeof(log), "%s/runner.log", h_root);
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(fd, 1);
		dup2(fd, 2);
		int nul = open("/dev/null", O_RDONLY);
		dup2(nul, 0);
		execl(h_bin, h_bin, "--fleetbox-runner", names, (char *)NULL);
		_exit(127);
	}
	char first[64], ctl[128];
	snprintf(first, sizeof(first), "%.*s", (int)strcspn(names, ","), names);
	wire_ctl_path(h_root, first, ctl, sizeof(ctl));
	hp.ctl = h_dial(ctl, 30000);
	CHECK(hp.ctl >= 0);
	CHECK_INT(write(hp.ctl, "bind", 4), 4);
	char v[4] = { 0 };
	struct pollfd p = { .fd = hp.ctl, .events = POLLIN };
	CHECK(poll(&p, 1, 10000) == 1);
	CHECK_INT(read(hp.ctl, v, 1), 1);
	CHECK_STR(v, "2");
	CHECK_INT(write(hp.ctl, "ack", 3), 3);
	return hp;
}

/* Closes the acknowledged .ctl: the holder tears down and exits 0. */
static void holder_stop(struct holder_proc *hp)
{
	close(hp->ctl);
	int st;
	CHECK(waitpid(hp->pid, &st, 0) == hp->pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static char *req(const char *member, const char *line)
{
	char *r = h_request(member, line, strlen(line), 10000);
	CHECK(r != NULL);
	return r;
}

static void reserve(const char *via, const char *name)
{
	char line[256];
	snprintf(line, sizeof(line), "{\"cmd\":\"reserve\",\"name\":\"%s\"}\n", name);
	char *r = req(via, line);
	CHECK(strstr(r, "\"reservation\"") != NULL);
	free(r);
}

/* reserve + boot-member of name through via, accepted. */
static void boot_eph(const char *via, const char *name, const char *disk, bool eph)
{
	reserve(via, name);
	char line[900];
	snprintf(line, sizeof(line),
		 "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"%s\",\"disk_path\":\"%s\"%s}}\n",
		 name, disk, eph ? ",\"ephemeral\":true" : "");
	char *r = req(via, line);
	CHECK_STR(r, "{}");
	free(r);
}

static bool member_gone_p(void *arg)
{
	const char *m = arg;
	return !h_sock_exists(m) && h_pidfile(m) == 0;
}

/* --- the secret, watched for opens --- */

static int watch_fd = -1;

static void secret_make(void)
{
	snprintf(secret_dir, sizeof(secret_dir), "/tmp/fb-secret-XXXXXX");
	CHECK(mkdtemp(secret_dir) != NULL);
	CHECK_INT(chmod(secret_dir, 0700), 0);
	snprintf(secret, sizeof(secret), "%s/shadow", secret_dir);
	CHECK_INT(file_write_atomic(secret, "root-only secret\n", 17, 0600), 0);
	struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
	CHECK_INT(utimensat(AT_FDCWD, secret, old, 0), 0);
	watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	CHECK(watch_fd >= 0);
	CHECK(inotify_add_watch(watch_fd, secret, IN_OPEN | IN_ACCESS | IN_MODIFY | IN_ATTRIB) >= 0);
	CHECK(inotify_add_watch(watch_fd, secret_dir, IN_CREATE | IN_DELETE | IN_MOVED_TO) >= 0);
	/* the detector detects: one open of ours is seen, then drained */
	int fd = open(secret, O_RDONLY);
	CHECK(fd >= 0);
	close(fd);
	char buf[4096];
	CHECK(read(watch_fd, buf, sizeof(buf)) > 0);
	while (read(watch_fd, buf, sizeof(buf)) > 0)
		;
}

/* Nothing opened, changed or created next to it since secret_make(). */
static void secret_untouched(const char *row)
{
	char buf[4096];
	ssize_t n = read(watch_fd, buf, sizeof(buf));
	if (n > 0) {
		struct inotify_event *ev = (struct inotify_event *)buf;
		fprintf(stderr, "%s: the secret saw inotify event 0x%x %s\n", row, ev->mask,
			ev->len ? ev->name : "");
		CHECK(0);
	}
	struct stat st;
	CHECK_INT(stat(secret, &st), 0);
	CHECK(st.st_mtime == 1000000000 && st.st_size == 17 && st.st_uid == 0);
	CHECK((st.st_mode & 07777) == 0600);
}

static void secret_cleanup(void)
{
	if (watch_fd >= 0)
		close(watch_fd);
	rm_rf(secret_dir);
}

/* --- templates: %R store root, %S secret, %D secret dir, %C image cache --- */

static void expand(const char *t, char *out, size_t len)
{
	size_t o = 0;
	for (const char *p = t; *p && o + 1 < len; p++) {
		const char *v = NULL;
		if (p[0] == '%' && p[1]) {
			switch (p[1]) {
			case 'R': v = h_root; break;
			case 'S': v = secret; break;
			case 'D': v = secret_dir; break;
			case 'C': v = cache; break;
			}
		}
		if (!v) {
			out[o++] = *p;
			continue;
		}
		o += (size_t)snprintf(out + o, len - o, "%s", v);
		p++;
	}
	out[o < len ? o : len - 1] = '\0';
}

static void mklink(const char *target_t, const char *link_t)
{
	char t[512], l[512];
	expand(target_t, t, sizeof(t));
	expand(link_t, l, sizeof(l));
	CHECK_INT(symlink(t, l), 0);
}

/* A qcow2 overlay at path whose header names backing of format fmt (not
 * opened: -u). */
static void mkqcow2f(const char *path_t, const char *backing_t, const char *fmt)
{
	char p[512], b[512];
	expand(path_t, p, sizeof(p));
	expand(backing_t, b, sizeof(b));
	struct cmd c;
	cmd_init(&c, "qemu-img");
	cmd_add(&c, "create");
	cmd_add(&c, "-q");
	cmd_add(&c, "-u");
	cmd_add(&c, "-f");
	cmd_add(&c, "qcow2");
	cmd_add(&c, "-F");
	cmd_add(&c, fmt);
	cmd_add(&c, "-b");
	cmd_add(&c, b);
	cmd_add(&c, p);
	cmd_add(&c, "16M");
	struct err e = { 0 };
	CHECK_INT(cmd_run(&c, NULL, &e), 0);
	cmd_fini(&c);
}

static void mkqcow2(const char *path_t, const char *backing_t)
{
	mkqcow2f(path_t, backing_t, "raw");
}

/* Sets qcow2 v3 incompatible feature bit 2 (external data file). */
static void set_data_file_bit(const char *path_t)
{
	char p[512];
	expand(path_t, p, sizeof(p));
	int fd = open(p, O_RDWR);
	CHECK(fd >= 0);
	unsigned char b;
	CHECK_INT(pread(fd, &b, 1, 79), 1);
	b |= 4;
	CHECK_INT(pwrite(fd, &b, 1, 79), 1);
	close(fd);
}

static void path_fixtures(void)
{
	char p[512];
	snprintf(cache, sizeof(cache), "%s-cache", h_root);
	CHECK_INT(mkdir_p(cache, 0700), 0);
	setenv("FLEETBOX_CACHE", cache, 1);
	expand("%R/ok.raw", p, sizeof(p));
	CHECK_INT(file_write_atomic(p, "disk", 4, 0600), 0);
	expand("%C/base.raw", p, sizeof(p));
	CHECK_INT(file_write_atomic(p, "base", 4, 0600), 0);
	expand("%C/vmlinuz", p, sizeof(p));
	CHECK_INT(file_write_atomic(p, "kernel", 6, 0600), 0);
	mklink("%S", "%R/link");
	mklink("%D", "%R/dirlink");
	mklink("%S", "%R/serial-link");
	mklink("%S", "%C/kernel-link");
	mklink("%S", "%R/backing-link");
	mkqcow2("%R/backs-secret.qcow2", "%S");
	mkqcow2("%R/backs-link.qcow2", "%R/backing-link");
	mkqcow2("%R/backs-relative.qcow2", "../../../../../../../..%S");
	mkqcow2("%R/backs-cache.qcow2", "%C/base.raw");
	mkqcow2("%R/datafile.qcow2", "%C/base.raw");
	set_data_file_bit("%R/datafile.qcow2");
	/* the second level escapes; recorded as raw, the first level's header is
	 * never interpreted (by us or QEMU) and it is accepted */
	mkqcow2f("%R/chain2.qcow2", "%R/backs-secret.qcow2", "qcow2");
	mkqcow2("%R/chain2-raw.qcow2", "%R/backs-secret.qcow2");
	expand("%R/fifo", p, sizeof(p));
	CHECK_INT(mkfifo(p, 0600), 0);
	expand("%R/bad.qcow2", p, sizeof(p));
	char bad[80] = "QFI\xfb\0\0\0\x03"; /* v3, and nothing else valid */
	CHECK_INT(file_write_atomic(p, bad, sizeof(bad), 0600), 0);
}

struct row {
	const char *spec;   /* the JSON spec members after "name" */
	const char *error;  /* expected error, "" = accepted */
};

/* Each spec is sent for member hp-1 through its own socket. */
static const struct row path_rows[] = {
	{ "\"disk_path\":\"%S\"", "start hp-1: disk_path %S is outside the store %R" },
	{ "\"disk_path\":\"%R/ok.raw\",\"seed_path\":\"%S\"",
	  "start hp-1: seed_path %S is outside the store %R" },
	{ "\"disk_path\":\"%R/ok.raw\",\"fixture_paths\":[\"%R/ok.raw\",\"%S\"]",
	  "start hp-1: fixture_paths[1] %S is outside the store %R" },
	{ "\"disk_path\":\"%R/ok.raw\",\"serial_log_path\":\"%S\"",
	  "start hp-1: serial_log_path %S is outside the store %R" },
	{ "\"disk_path\":\"%R/ok.raw\",\"kernel_path\":\"%S\"",
	  "start hp-1: kernel_path %S is outside the store %R and the image cache %C" },
	{ "\"disk_path\":\"%R/ok.raw\",\"initrd_path\":\"%S\"",
	  "start hp-1: initrd_path %S is outside the store %R and the image cache %C" },
	{ "\"disk_path\":\"%R/ok.raw\",\"efi_path\":\"%S\"",
	  "start hp-1: efi_path %S is outside the store %R and the image cache %C" },
	{ "\"disk_path\":\"%R/link\"",
	  "start hp-1: disk_path %R/link is a symlink or has one on its way; refused" },
	{ "\"disk_path\":\"%R/dirlink/shadow\"",
	  "start hp-1: disk_path %R/dirlink/shadow is a symlink or has one on its way; refused" },
	{ "\"disk_path\":\"%R/../..%S\"", "start hp-1: disk_path %R/../..%S is outside the store %R" },
	{ "\"disk_path\":\"%R/./ok.raw\"", "start hp-1: disk_path %R/./ok.raw is outside the store %R" },
	{ "\"disk_path\":\"%R//ok.raw\"", "start hp-1: disk_path %R//ok.raw is outside the store %R" },
	{ "\"disk_path\":\"ok.raw\"", "start hp-1: disk_path \"ok.raw\" is not an absolute path" },
	{ "\"disk_path\":\"%R/ok.raw\",\"serial_log_path\":\"%R/serial-link\"",
	  "start hp-1: serial_log_path %R/serial-link is a symlink or has one on its way; refused" },
	{ "\"disk_path\":\"%R/ok.raw\",\"kernel_path\":\"%C/kernel-link\"",
	  "start hp-1: kernel_path %C/kernel-link is a symlink or has one on its way; refused" },
	{ "\"disk_path\":\"%R/backs-secret.qcow2\"",
	  "start hp-1: disk_path %R/backs-secret.qcow2: backing file %S is outside the store %R "
	  "and the image cache %C" },
	{ "\"disk_path\":\"%R/backs-link.qcow2\"",
	  "start hp-1: disk_path %R/backs-link.qcow2: backing file %R/backing-link is a symlink "
	  "or has one on its way; refused" },
	{ "\"disk_path\":\"%R/backs-relative.qcow2\"",
	  "start hp-1: disk_path %R/backs-relative.qcow2: backing file %R/../../../../../../../..%S "
	  "is outside the store %R and the image cache %C" },
	{ "\"disk_path\":\"%R/chain2.qcow2\"",
	  "start hp-1: disk_path %R/chain2.qcow2: backing file %S is outside the store %R and the "
	  "image cache %C" },
	{ "\"disk_path\":\"%R/datafile.qcow2\"",
	  "start hp-1: disk_path %R/datafile.qcow2: %R/datafile.qcow2 names an external data file; "
	  "refused" },
	{ "\"disk_path\":\"%R/bad.qcow2\"",
	  "start hp-1: disk_path %R/bad.qcow2: %R/bad.qcow2 is not a valid qcow2 image" },
	{ "\"disk_path\":\"%R/fifo\"", "start hp-1: disk_path %R/fifo is not a regular file" },
	{ "\"disk_path\":\"%R\"", "start hp-1: disk_path %R is outside the store %R" },
	{ "\"disk_path\":\"%R/run\"", "start hp-1: disk_path %R/run is not a regular file" },
	{ "\"disk_path\":\"%R/missing\"", "start hp-1: disk_path %R/missing: No such file or directory" },
	{ "\"disk_path\":\"%R/ok.raw\",\"memory_bytes\":9223372036854775807",
	  "start hp-1: memory_bytes 9223372036854775807 is more than this host has" },
	/* accepted: a qcow2 overlay on a base in the image cache, a cache kernel */
	{ "\"disk_path\":\"%R/backs-cache.qcow2\",\"kernel_path\":\"%C/vmlinuz\"", "" },
};

static void send_row(const struct row *rw, int i)
{
	const char *member = "hp-1";
	char spec[2048], line[2400], want[2048];
	expand(rw->spec, spec, sizeof(spec));
	snprintf(line, sizeof(line), "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"%s\",%s}}\n",
		 member, spec);
	char *r = req("hp-1", line); /* holder-wide: the primary's socket */
	if (!*rw->error) {
		CHECK_STR(r, "{}");
	} else {
		expand(rw->error, want, sizeof(want));
		json_t *o = json_loads(r, 0, NULL);
		const char *got = json_string_value(json_object_get(o, "error"));
		if (!got || strncmp(got, want, strlen(want)) != 0) {
			fprintf(stderr, "row %d: %s\n  got:  %s\n  want: %s\n", i, line, r, want);
			CHECK(0);
		}
		json_decref(o);
	}
	printf("row %2d ok: %s\n", i, r);
	free(r);
	char row[32];
	snprintf(row, sizeof(row), "row %d", i);
	secret_untouched(row);
}

static void t_paths(void)
{
	h_setup("hpaths");
	secret_make();
	path_fixtures();
	struct holder_proc hp = holder_start("hp-1");
	char *r = req("hp-1", "{\"cmd\":\"createnetwork\"}\n");
	free(r);
	reserve("hp-1", "hp-1");
	reserve("hp-1", "hp-2");
	size_t n = sizeof(path_rows) / sizeof(path_rows[0]);
	for (size_t i = 0; i < n; i++)
		send_row(&path_rows[i], (int)i);
	/* a second level recorded as raw is never parsed: accepted */
	char p[512], line[700];
	expand("%R/chain2-raw.qcow2", p, sizeof(p));
	snprintf(line, sizeof(line),
		 "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"hp-2\",\"disk_path\":\"%s\"}}\n", p);
	r = req("hp-1", line);
	CHECK_STR(r, "{}");
	free(r);
	secret_untouched("raw second level");
	/* the accepted row booted: the holder is still serving, status says so */
	r = req("hp-1", "{\"cmd\":\"status\"}\n");
	CHECK(strstr(r, "\"state\":\"running\"") != NULL);
	free(r);
	/* a member dir that is a symlink out of the store is refused, and the
	 * holder creates nothing there */
	expand("%R/clusters/hz", p, sizeof(p));
	CHECK_INT(mkdir_p(p, 0700), 0);
	mklink("%D", "%R/clusters/hz/hz-1");
	reserve("hp-1", "hz-1");
	r = req("hp-1", "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"hz-1\",\"disk_path\":\"/x\"}}\n");
	expand("{\"error\":\"create hz-1: create %R/clusters/hz/hz-1: a symlink on its way; refused\"}",
	       p, sizeof(p));
	CHECK_STR(r, p);
	free(r);
	secret_untouched("member dir symlink");
	r = req("hp-1", "{\"cmd\":\"status\"}\n");
	CHECK(strstr(r, "\"state\":\"running\"") != NULL);
	free(r);
	holder_stop(&hp);
	secret_untouched("after teardown");
	secret_cleanup();
	rm_rf(cache);
	h_teardown();
}

/* "Uid:\t<real>\t<eff>\t<saved>\t<fs>" of pid, as one string. */
static void proc_ids(pid_t pid, const char *key, char *out, size_t len)
{
	char p[64], *s;
	snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
	CHECK_INT(file_read_all(p, 1 << 16, &s, NULL), 0);
	char *l = strstr(s, key);
	CHECK(l != NULL);
	snprintf(out, len, "%.*s", (int)strcspn(l, "\n"), l);
	free(s);
}

static bool has_banner(void *arg)
{
	char *s = h_read_file(arg);
	bool ok = s && strstr(s, "booted");
	free(s);
	return ok;
}

/* A member dir owned by a user: its VMM runs as that user (all ids, that
 * user's groups), on a tap owned by that user, writing a serial log the
 * holder created for it, marked as that member's VMM. */
static void t_priv(void)
{
	h_setup("hpriv");
	h_enter_netns();
	char dir[512], disk[600], serial[600];
	snprintf(dir, sizeof(dir), "%s/clusters/hq/hq-1", h_root);
	CHECK_INT(mkdir_p(dir, 0700), 0);
	CHECK_INT(chown(dir, 65534, 65534), 0);
	snprintf(disk, sizeof(disk), "%s/disk", dir);
	CHECK_INT(file_write_atomic(disk, "disk", 4, 0600), 0);
	CHECK_INT(chown(disk, 65534, 65534), 0);
	snprintf(serial, sizeof(serial), "%s/serial.log", dir);
	struct holder_proc hp = holder_start("hq-1");
	char *r = req("hq-1", "{\"cmd\":\"createnetwork\"}\n");
	CHECK(strstr(r, "\"subnet\"") != NULL);
	free(r);
	boot_eph("hq-1", "hq-1", disk, false);
	pid_t vm = h_vmm_pid("hq-1");
	CHECK(vm > 0);
	char ids[128];
	proc_ids(vm, "Uid:", ids, sizeof(ids));
	CHECK_STR(ids, "Uid:\t65534\t65534\t65534\t65534");
	proc_ids(vm, "Gid:", ids, sizeof(ids));
	CHECK_STR(ids, "Gid:\t65534\t65534\t65534\t65534");
	proc_ids(vm, "CapEff:", ids, sizeof(ids));
	CHECK_STR(ids, "CapEff:\t0000000000000000");
	/* it wrote its banner through the file the holder opened and gave it */
	CHECK(h_wait_until(has_banner, serial, 10000));
	struct stat st;
	CHECK_INT(lstat(serial, &st), 0);
	CHECK(st.st_uid == 65534 && S_ISREG(st.st_mode));
	/* the tap belongs to that user too */
	r = req("hq-1", "{\"cmd\":\"status\"}\n");
	json_t *o = json_loads(r, 0, NULL);
	free(r);
	const char *ip = json_string_value(json_object_get(json_object_get(o, "status"), "ip"));
	CHECK(ip && *ip);
	unsigned a, b, c2, d;
	CHECK_INT(sscanf(ip, "%u.%u.%u.%u", &a, &b, &c2, &d), 4);
	char tap[32];
	snprintf(tap, sizeof(tap), "fbt%08x", a << 24 | b << 16 | c2 << 8 | d);
	json_decref(o);
	char *out = h_tool("ip", "-d", "link", NULL); /* only hq-1's tap exists yet */
	CHECK(strstr(out, tap) && strstr(out, "user nobody") && strstr(out, "group nogroup"));
	free(out);
	/* a member dir owned by root: its VMM runs as root, as before */
	boot_eph("hq-1", "hq-2", disk, false);
	pid_t vm2 = h_vmm_pid("hq-2");
	CHECK(vm2 > 0);
	proc_ids(vm2, "Uid:", ids, sizeof(ids));
	CHECK_STR(ids, "Uid:\t0\t0\t0\t0");
	holder_stop(&hp);
	CHECK(!h_pid_alive(vm) && !h_pid_alive(vm2));
	CHECK_INT(h_count_links("fb"), 0);
	h_teardown();
}

static void raise_nofile(rlim_t n)
{
	struct rlimit rl = { n, n };
	CHECK_INT(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

/* Non-blocking connects to path until n are up or 30 s passed (a full
 * backlog says EAGAIN until the holder accepts). Returns how many. */
static int flood(const char *path, int *fds, int n)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	long deadline = h_now_ms() + 30000;
	int k = 0;
	while (k < n && h_now_ms() < deadline) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		CHECK(fd >= 0);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
			fds[k++] = fd;
			continue;
		}
		CHECK(errno == EAGAIN);
		close(fd);
		struct timespec ts = { 0, 1000000L };
		nanosleep(&ts, NULL);
	}
	return k;
}

/* Of fds, how many the holder has answered or closed (readable). */
static int answered(const int *fds, int n, const char *needle)
{
	int k = 0;
	for (int i = 0; i < n; i++) {
		char buf[256] = { 0 };
		ssize_t r = recv(fds[i], buf, sizeof(buf) - 1, MSG_DONTWAIT);
		if (r == 0 || (r > 0 && (!needle || strstr(buf, needle))))
			k++;
	}
	return k;
}

enum { FLOOD_N = 4200 };

/* The flood as uid 65534: FLOOD_N idle connections, then wait to be killed. */
static pid_t flood_child(const char *sock, int report)
{
	pid_t c = fork();
	CHECK(c >= 0);
	if (c)
		return c;
	alarm(120); /* bounded even if the test dies */
	raise_nofile(FLOOD_N + 64);
	if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
	    setresuid(65534, 65534, 65534) < 0)
		_exit(126);
	static int fds[FLOOD_N];
	int got[2] = { flood(sock, fds, FLOOD_N), 0 };
	struct timespec ts = { 1, 0 }; /* let the holder accept and answer */
	nanosleep(&ts, NULL);
	got[1] = answered(fds, got[0], "too many connections from this user");
	if (write(report, got, sizeof(got)) != sizeof(got))
		_exit(1);
	pause();
	_exit(0);
}

static int count_fds(pid_t pid)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(p);
	CHECK(d != NULL);
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 2;
}

/* 4200 idle connections from another uid do not lock the owner out: that
 * user gets a small share, the rest are refused at once. */
static void t_dos(void)
{
	h_setup("hdos");
	struct holder_proc hp = holder_start("dd-1");
	free(req("dd-1", "{\"cmd\":\"createnetwork\"}\n"));
	boot_eph("dd-1", "dd-1", h_image(), false);
	/* let uid 65534 reach the socket (a store shared on purpose, or the
	 * reference's 0666 sockets) */
	char run[300], sock[128];
	snprintf(run, sizeof(run), "%s/run", h_root);
	wire_sock_path(h_root, "dd-1", sock, sizeof(sock));
	CHECK_INT(chmod(h_root, 0711), 0);
	CHECK_INT(chmod(run, 0711), 0);
	CHECK_INT(chmod(sock, 0666), 0);
	int p[2];
	CHECK_INT(pipe(p), 0);
	long t0 = h_now_ms();
	pid_t fl = flood_child(sock, p[1]);
	int got[2];
	struct pollfd pf = { .fd = p[0], .events = POLLIN };
	CHECK(poll(&pf, 1, 60000) == 1);
	CHECK_INT(read(p[0], got, sizeof(got)), sizeof(got));
	printf("flood: %d connections from uid 65534 in %ld ms, %d refused at once\n", got[0],
	       h_now_ms() - t0, got[1]);
	CHECK_INT(got[0], FLOOD_N);
	CHECK(got[1] >= FLOOD_N - 256 - 16);
	int fds = count_fds(hp.pid);
	printf("holder fds during the flood: %d\n", fds);
	CHECK(fds < 400);
	/* the owner is served all along: raw status, the CLI, then stop */
	t0 = h_now_ms();
	for (int i = 0; i < 50; i++) {
		char *r = req("dd-1", "{\"cmd\":\"status\"}\n");
		CHECK(strstr(r, "\"state\":\"running\"") != NULL);
		free(r);
	}
	printf("50 owner status requests during the flood: %ld ms\n", h_now_ms() - t0);
	char *out;
	CHECK_INT(h_run(&out, "status", "dd-1", NULL), 0);
	CHECK(strstr(out, "\"running\"") != NULL);
	free(out);
	char *r = req("dd-1", "{\"cmd\":\"stop\"}\n");
	CHECK_STR(r, "{}");
	free(r);
	int st;
	CHECK(waitpid(hp.pid, &st, 0) == hp.pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(hp.ctl);
	kill(fl, SIGKILL);
	waitpid(fl, NULL, 0);
	h_teardown();
}

/* 3000 idle .ctl connections (never acknowledged) are closed by the idle
 * timeout or refused at once; a real client still binds meanwhile. */
static void t_ctl_flood(void)
{
	h_setup("hctl");
	setenv("FLEETBOX_CONN_TIMEOUT_MS", "1000", 1);
	raise_nofile(4000);
	struct holder_proc hp = holder_start("dc-1");
	char ctl[128];
	wire_ctl_path(h_root, "dc-1", ctl, sizeof(ctl));
	enum { N = 3000 };
	static int fds[N];
	long t0 = h_now_ms();
	CHECK_INT(flood(ctl, fds, N), N);
	/* another process binds and leaves before ack: served */
	pid_t c = fork();
	CHECK(c >= 0);
	if (c == 0) {
		int fd = h_dial(ctl, 5000);
		char v[2] = { 0 };
		struct pollfd p = { .fd = fd, .events = POLLIN };
		_exit(fd >= 0 && write(fd, "bind", 4) == 4 && poll(&p, 1, 5000) == 1 &&
		      read(fd, v, 1) == 1 && v[0] == '2' ? 0 : 1);
	}
	int st;
	CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	int closed = 0;
	while (h_now_ms() - t0 < 10000 && (closed = answered(fds, N, NULL)) < N) {
		struct timespec ts = { 0, 50 * 1000000L };
		nanosleep(&ts, NULL);
	}
	printf(".ctl flood: %d of %d idle connections closed after %ld ms\n", closed, N,
	       h_now_ms() - t0);
	CHECK_INT(closed, N);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	/* our acknowledged session is untouched: the holder still serves */
	char *r = req("dc-1", "{\"cmd\":\"status\"}\n");
	CHECK(strstr(r, "\"name\":\"dc-1\"") != NULL);
	free(r);
	holder_stop(&hp);
	unsetenv("FLEETBOX_CONN_TIMEOUT_MS");
	h_teardown();
}

/* A member dir with a disk, as a client prepares it. */
static void member_prep(const char *cluster, const char *name, char *disk, size_t len)
{
	char dir[400];
	snprintf(dir, sizeof(dir), "%s/clusters/%s/%s", h_root, cluster, name);
	CHECK_INT(mkdir_p(dir, 0700), 0);
	snprintf(disk, len, "%s/disk", dir);
	CHECK_INT(file_write_atomic(disk, "disk", 4, 0600), 0);
}

static bool exists_f(const char *fmt, const char *a)
{
	char p[600];
	snprintf(p, sizeof(p), fmt, h_root, a);
	return path_exists(p);
}

/* Bound holder for ephemeral members, owned by a child we SIGKILL. */
static pid_t eph_client(pid_t *holder)
{
	int p[2];
	CHECK_INT(pipe(p), 0);
	pid_t c = fork();
	CHECK(c >= 0);
	if (c == 0) {
		alarm(120);
		struct holder_proc hp = holder_start("ek-1");
		free(req("ek-1", "{\"cmd\":\"createnetwork\"}\n"));
		char disk[600];
		member_prep("ek", "ek-1", disk, sizeof(disk));
		boot_eph("ek-1", "ek-1", disk, true);
		member_prep("ek", "ek-2", disk, sizeof(disk));
		boot_eph("ek-1", "ek-2", disk, true);
		member_prep("ek", "ek-3", disk, sizeof(disk));
		boot_eph("ek-1", "ek-3", disk, false); /* kept */
		member_prep("el", "el-1", disk, sizeof(disk));
		boot_eph("ek-1", "el-1", disk, true);  /* its cluster dir goes too */
		if (write(p[1], &hp.pid, sizeof(hp.pid)) != sizeof(hp.pid))
			_exit(1);
		pause();
		_exit(0);
	}
	close(p[1]);
	struct pollfd pf = { .fd = p[0], .events = POLLIN };
	CHECK(poll(&pf, 1, 60000) == 1);
	CHECK_INT(read(p[0], holder, sizeof(*holder)), sizeof(*holder));
	close(p[0]);
	return c;
}

/* spec.ephemeral: the holder deletes the member's directory once its VM has
 * exited, whenever it stops serving it (stop, or the client gone), and
 * only inside its store. */
static void t_ephemeral(void)
{
	h_setup("heph");
	/* 1. stop of one ephemeral member: its dir goes, the holder serves on */
	struct holder_proc hp = holder_start("es-1");
	free(req("es-1", "{\"cmd\":\"createnetwork\"}\n"));
	char disk[600];
	member_prep("es", "es-1", disk, sizeof(disk));
	boot_eph("es-1", "es-1", disk, false);
	member_prep("es", "es-2", disk, sizeof(disk));
	boot_eph("es-1", "es-2", disk, true);
	pid_t vm2 = h_vmm_pid("es-2");
	CHECK(vm2 > 0);
	char *r = req("es-2", "{\"cmd\":\"stop\"}\n");
	CHECK_STR(r, "{}");
	free(r);
	CHECK(h_wait_until(member_gone_p, "es-2", 10000));
	CHECK(!h_pid_alive(vm2));
	CHECK(!exists_f("%s/clusters/es/%s", "es-2"));
	CHECK(exists_f("%s/clusters/es/%s/disk", "es-1")); /* the cluster dir is not empty */
	/* 2. a swapped cluster dir: nothing outside the store is deleted */
	member_prep("et", "et-1", disk, sizeof(disk));
	boot_eph("es-1", "et-1", disk, true);
	char decoy[300], from[300], to[300];
	snprintf(decoy, sizeof(decoy), "%s-decoy", h_root);
	snprintf(from, sizeof(from), "%s/clusters/et", h_root);
	snprintf(to, sizeof(to), "%s/et-1", decoy);
	CHECK_INT(mkdir_p(decoy, 0700), 0);
	CHECK_INT(rename(from, to), 0);              /* et/ -> decoy/et-1 ... */
	snprintf(to, sizeof(to), "%s/et-1/et-1/disk", decoy);
	CHECK(path_exists(to));
	CHECK_INT(symlink(decoy, from), 0);          /* ... clusters/et -> decoy */
	r = req("et-1", "{\"cmd\":\"stop\"}\n");
	free(r);
	CHECK(h_wait_until(member_gone_p, "et-1", 10000));
	CHECK(path_exists(to)); /* refused: clusters/et is a symlink now */
	unlink(from);
	rm_rf(decoy);
	holder_stop(&hp);
	CHECK(exists_f("%s/clusters/es/%s/disk", "es-1")); /* not ephemeral: kept */

	/* 3. the bound client SIGKILLed: every ephemeral dir goes, and its
	 * cluster dir when that left it empty; the others stay */
	pid_t holder;
	pid_t c = eph_client(&holder);
	pid_t v1 = h_vmm_pid("ek-1");
	CHECK(v1 > 0);
	CHECK_INT(kill(c, SIGKILL), 0);
	waitpid(c, NULL, 0);
	CHECK(h_wait_pid_gone(holder, 20000) >= 0);
	CHECK(!h_pid_alive(v1));
	CHECK(!exists_f("%s/clusters/ek/%s", "ek-1") && !exists_f("%s/clusters/ek/%s", "ek-2"));
	CHECK(exists_f("%s/clusters/ek/%s/disk", "ek-3"));
	CHECK(!exists_f("%s/clusters/%s", "el"));
	CHECK(member_gone_p("ek-1") && member_gone_p("ek-3") && member_gone_p("el-1"));
	h_teardown();
}

/* --- the hostile-input table: the CLI and the holder --- */

struct cli_row {
	const char *argv[8];  /* after "fleetbox"; %R/%C expanded */
	int rc;
	const char *error;    /* substring of the output: names the bad token */
};

static const struct cli_row cli_rows[] = {
	/* names */
	{ { "up", "../etc" }, 1, "invalid name \"../etc\"" },
	{ { "up", "a/b" }, 1, "invalid name \"a/b\"" },
	{ { "up", "WEB" }, 1, "invalid name \"WEB\"" },
	{ { "up", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" }, 1,
	  "invalid name \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"" },
	{ { "up", "x\ny" }, 1, "invalid name" },
	{ { "status", "../../x" }, 1, "invalid name \"../../x\"" },
	{ { "ssh", "-x" }, 255, "unknown option \"-x\"" }, /* ssh: OpenSSH's 255 */
	{ { "rm", "-f", "." }, 1, "invalid name \".\"" },
	/* sizes */
	{ { "up", "hx", "-n", "300" }, 1, "300" },
	{ { "up", "hx", "-n", "-1" }, 1, "-1" },
	{ { "up", "hx", "-n", "1e3" }, 1, "1e3" },
	{ { "up", "hx", "--cpus", "0" }, 1, "0" },
	{ { "up", "hx", "--cpus", "99999" }, 1, "99999" },
	{ { "up", "hx", "--mem", "999999999" }, 1, "999999999" },
	{ { "up", "hx", "--disk", "18446744073709551616" }, 1, "18446744073709551616" },
	/* URLs and paths */
	{ { "up", "hx", "--image", "http://" }, 1, "http://: URL has no host or path" },
	{ { "up", "hx", "--image", "https://e/x#sha256=zz" }, 1, "bad checksum \"sha256=zz\"" },
	{ { "up", "hx", "--image", "/nonexistent/img" }, 1, "/nonexistent/img" },
	{ { "up", "hx", "--image", "/etc" }, 1, "/etc: not a" },
	{ { "up", "hx", "--fixture", "/etc:relative" }, 1, "relative" },
	{ { "up", "hx", "--fixture", "/nonexistent:/x" }, 1, "/nonexistent" },
	{ { "cp", "/a", "/b" }, 1, "NAME:/abs/path" },
	{ { "cp", "hx:relative", "/tmp/x" }, 1, "error: " },
};

static void cli_table(void)
{
	size_t n = sizeof(cli_rows) / sizeof(cli_rows[0]);
	for (size_t i = 0; i < n; i++) {
		const char *const *a = cli_rows[i].argv;
		char *out = NULL;
		int rc = h_run(&out, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], NULL);
		if (rc != cli_rows[i].rc || !strstr(out, cli_rows[i].error)) {
			fprintf(stderr, "cli row %zu (%s %s): rc %d, output:\n%s\nwant rc %d and \"%s\"\n",
				i, a[0], a[1] ? a[1] : "", rc, out, cli_rows[i].rc, cli_rows[i].error);
			CHECK(0);
		}
		free(out);
	}
	/* none of them made anything */
	char p[300];
	snprintf(p, sizeof(p), "%s/clusters/hx", h_root);
	CHECK(!path_exists(p));
	CHECK(!h_sock_exists("hx"));
	printf("cli table: %zu rows ok\n", n);
}

struct req_row {
	const char *line;   /* %R expanded; sent to ht-1 */
	const char *reply;  /* expected prefix of the reply line */
};

static const struct req_row req_rows[] = {
	/* names */
	{ "{\"cmd\":\"reserve\",\"name\":\"../x\"}", "{\"error\":\"reserve ../x: invalid member name\"}" },
	{ "{\"cmd\":\"reserve\",\"name\":\"A\"}", "{\"error\":\"reserve A: invalid member name\"}" },
	{ "{\"cmd\":\"reserve\",\"name\":\"\"}", "{\"error\":\"missing member name\"}" },
	{ "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"../../etc\",\"disk_path\":\"%R/d\"}}",
	  "{\"error\":\"missing or invalid spec\"}" },
	{ "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"ht-9\",\"disk_path\":\"%R/d\"}}",
	  "{\"error\":\"member ht-9 was not reserved\"}" },
	/* sizes */
	{ "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"ht-1\",\"disk_path\":\"%R/d\",\"cpus\":1025}}",
	  "{\"error\":\"missing or invalid spec\"}" },
	{ "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"ht-1\",\"disk_path\":\"%R/d\",\"memory_bytes\":-1}}",
	  "{\"error\":\"missing or invalid spec\"}" },
	{ "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"ht-1\",\"disk_path\":\"%R/d\",\"memory_bytes\":1e30}}",
	  "{\"error\":\"missing or invalid spec\"}" },
	{ "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"ht-1\",\"disk_path\":\"%R/d\",\"fixture_paths\":["
	  "\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\","
	  "\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\","
	  "\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\",\"%R/d\"]}}",
	  "{\"error\":\"start ht-1: 33 fixtures; at most 32\"}" },
	/* specs and types */
	{ "{\"cmd\":\"boot-member\",\"spec\":\"x\"}", "{\"error\":\"missing or invalid spec\"}" },
	{ "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"ht-1\",\"disk_path\":\"%R/d\",\"fixture_paths\":\"%R/d\"}}",
	  "{\"error\":\"missing or invalid spec\"}" },
	{ "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"ht-1\",\"disk_path\":\"%R/d\",\"ephemeral\":\"yes\"}}",
	  "{\"error\":\"missing or invalid spec\"}" },
	{ "{\"cmd\":\"boot-member\",\"spec\":{\"name\":\"ht-1\",\"disk_path\":\"\"}}",
	  "{\"error\":\"missing or invalid spec\"}" },
	/* the JSON itself */
	{ "{\"cmd\":\"status\",\"cmd\":\"stop\"}", "{\"error\":\"invalid JSON: duplicate object key" },
	{ "{\"cmd\":\"st\\u0000op\"}", "{\"error\":\"invalid JSON: " },
	{ "{\"cmd\":\"\xc3\xa9\xc3\"}", "{\"error\":\"invalid JSON: " },
	{ "{\"cmd\":\"\xe2\x98\x83\"}", "{\"error\":\"unknown command \\\"\xe2\x98\x83\\\"\"}" },
	{ "[1,2,3]", "{\"error\":\"invalid JSON: expected an object\"}" },
	{ "{\"cmd\":[]}", "{\"error\":\"cmd must be a string\"}" },
};

static void req_table(void)
{
	size_t n = sizeof(req_rows) / sizeof(req_rows[0]);
	for (size_t i = 0; i < n; i++) {
		char line[4096], want[1024];
		expand(req_rows[i].line, line, sizeof(line) - 1);
		strcat(line, "\n");
		expand(req_rows[i].reply, want, sizeof(want));
		char *r = req("ht-1", line);
		if (strncmp(r, want, strlen(want)) != 0) {
			fprintf(stderr, "request row %zu: %s  got:  %s\n  want: %s\n", i, line, r, want);
			CHECK(0);
		}
		free(r);
	}
	/* a JSON nesting bomb and 100k keys: answered, the holder lives */
	size_t big = 200000;
	char *bomb = malloc(big + 2);
	CHECK(bomb != NULL);
	memset(bomb, '[', big);
	bomb[big] = '\n';
	bomb[big + 1] = '\0';
	char *r = req("ht-1", bomb);
	CHECK(strncmp(r, "{\"error\":\"invalid JSON", 22) == 0);
	free(r);
	free(bomb);
	printf("request table: %zu rows ok\n", n + 1);
}

static void t_table(void)
{
	h_setup("htable");
	cli_table();
	char d[400];
	snprintf(d, sizeof(d), "%s/d", h_root);
	CHECK_INT(file_write_atomic(d, "disk", 4, 0600), 0);
	struct holder_proc hp = holder_start("ht-1");
	free(req("ht-1", "{\"cmd\":\"createnetwork\"}\n"));
	reserve("ht-1", "ht-1");
	req_table();
	char *r = req("ht-1", "{\"cmd\":\"status\"}\n");
	CHECK(strstr(r, "\"name\":\"ht-1\"") != NULL);
	free(r);
	holder_stop(&hp);
	h_teardown();
}

static const struct h_case cases[] = {
	{ "hostile-table", t_table },
	{ "ephemeral", t_ephemeral },
	{ "hostile-dos", t_dos },
	{ "hostile-ctl", t_ctl_flood },
	{ "hostile-paths", t_paths },
	{ "hostile-priv", t_priv },
};

int main(int argc, char **argv)
{
	if (geteuid() != 0) {
		printf("skipped: needs root (a root-only secret, other uids)\n");
		return 77;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
