/* VM tests: real QEMU (TCG on this kind of machine) booting the embedded mini
 * image, each case inside its own network namespace and private store.
 * The mini image is built once per build tree into the image cache
 * $FLEETBOX_TEST_IMAGES (the cache's own lock serialises the builders) and
 * every case's fresh store uses it from there. Usage: vmtest <case>. */
#include "harness.h"
#include "fleetbox.h"
#include "client/image/image.h"
#include "client/ssh/keys.h"
#include "rpc/wire.h"
#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void vm_setup(const char *name)
{
	if (geteuid() != 0) {
		printf("skipped: VM tests need root (network namespace, taps)\n");
		exit(77);
	}
	h_setup(name);
	unsetenv("FLEETBOX_VMM"); /* auto: QEMU (KVM when it really works, else TCG) */
	const char *cache = getenv("FLEETBOX_TEST_IMAGES");
	CHECK(cache != NULL);
	setenv("FLEETBOX_CACHE", cache, 1);
	/* Built (or found current) in the host namespace: a build downloads
	 * the kernel package. A cache from another init recipe is rebuilt. */
	long t0 = h_now_ms();
	struct err ie = { 0 };
	if (image_mini_build(h_root, false, NULL, NULL, &ie) < 0) {
		fprintf(stderr, "mini image: %s\n", ie.msg);
		CHECK(0);
	}
	printf("bench mini_image_ready_ms=%ld\n", h_now_ms() - t0);
	h_enter_netns();
	unsetenv("FLEETBOX_NET"); /* QEMU implies the bridge network */
}

static json_t *status_of(const char *member)
{
	char *line = h_req(member, "{\"cmd\":\"status\"}\n", 2000);
	json_t *o = line ? json_loads(line, 0, NULL) : NULL;
	free(line);
	return o;
}

static const char *st_str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(json_object_get(o, "status"), k));
}

static void member_ip(const char *member, char ip[16])
{
	json_t *o = status_of(member);
	CHECK(o != NULL);
	snprintf(ip, 16, "%s", st_str(o, "ip"));
	json_decref(o);
}

/* PID of the QEMU process serving a member of this store. */
static pid_t qemu_pid(const char *member)
{
	return h_vmm_pid(member);
}

static int ssh_run(char **out, const char *member, const char *cmd)
{
	return h_run(out, "ssh", member, "--", cmd, NULL);
}

/* up one VM, run a command, persistence across down/up, rm leaves nothing. */
static void t_vm_lifecycle(void)
{
	vm_setup("vmlife");
	char *out;
	long t0 = h_now_ms();
	CHECK_INT(h_run(&out, "up", "vl", NULL), 0);
	printf("bench vm_up_cold_ms=%ld\n", h_now_ms() - t0);
	CHECK(strstr(out, "  vl  IP: 192.168.0.2  SSH: fleetbox ssh vl") != NULL);
	free(out);
	CHECK_INT(ssh_run(&out, "vl", "echo hello from $(hostname); id -un; sudo id -u"), 0);
	CHECK(strstr(out, "hello from vl\nfleetbox\n0\n") != NULL);
	free(out);
	CHECK_INT(ssh_run(NULL, "vl", "echo persisted > ~/note && sudo sh -c 'echo rootdata > /root/r' && sync"), 0);
	long t1 = h_now_ms();
	CHECK_INT(h_run(NULL, "down", "vl", NULL), 0);
	printf("bench vm_down_ms=%ld\n", h_now_ms() - t1);
	CHECK_INT(h_count_links("fbt"), 0);
	CHECK_INT(h_count_links("fb"), 0);
	CHECK(qemu_pid("vl") == 0);
	t1 = h_now_ms();
	CHECK_INT(h_run(&out, "up", "vl", NULL), 0);
	printf("bench vm_up_warm_ms=%ld\n", h_now_ms() - t1);
	free(out);
	CHECK_INT(ssh_run(&out, "vl", "cat ~/note; sudo cat /root/r"), 0);
	CHECK(strstr(out, "persisted\nrootdata\n") != NULL);
	free(out);
	/* per-VM host memory */
	pid_t q = qemu_pid("vl");
	CHECK(q > 0);
	char p[64], *s;
	snprintf(p, sizeof(p), "/proc/%d/status", (int)q);
	CHECK_INT(file_read_all(p, 1 << 16, &s, NULL), 0);
	char *rss = strstr(s, "VmRSS:");
	CHECK(rss != NULL);
	printf("bench vm_qemu_rss_kb=%ld\n", strtol(rss + 6, NULL, 10));
	free(s);
	CHECK_INT(h_run(NULL, "rm", "-f", "vl", NULL), 0);
	char dir[400];
	snprintf(dir, sizeof(dir), "%s/clusters/vl", h_root);
	CHECK(!path_exists(dir));
	CHECK_INT(h_count_links("fb"), 0);
	CHECK_INT(h_count_records(), 0);
	CHECK(qemu_pid("vl") == 0);
	h_teardown();
}

/* Three members ping each other; a second cluster cannot reach the first. */
static void t_vm_cluster(void)
{
	vm_setup("vmcluster");
	char *out;
	long t0 = h_now_ms();
	CHECK_INT(h_run(&out, "up", "cx", "-n", "3", NULL), 0);
	printf("bench vm_up_3_members_ms=%ld\n", h_now_ms() - t0);
	free(out);
	char ips[3][16];
	for (int i = 0; i < 3; i++) {
		char m[16];
		snprintf(m, sizeof(m), "cx-%d", i + 1);
		member_ip(m, ips[i]);
	}
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 3; j++) {
			if (i == j)
				continue;
			char m[16], cmd[128];
			snprintf(m, sizeof(m), "cx-%d", i + 1);
			snprintf(cmd, sizeof(cmd), "sudo ping -c1 -W3 %s", ips[j]);
			CHECK_INT(ssh_run(NULL, m, cmd), 0);
		}
	CHECK_INT(h_run(&out, "up", "dy-1", NULL), 0);
	free(out);
	char dip[16];
	member_ip("dy-1", dip);
	CHECK(strncmp(dip, "192.168.0.", 10) != 0); /* its own /24 */
	char cmd[128];
	/* busybox ping exits 1 when nothing answers (an SSH failure would be 255) */
	snprintf(cmd, sizeof(cmd), "sudo ping -c1 -W2 %s", ips[0]);
	CHECK_INT(ssh_run(NULL, "dy-1", cmd), 1);
	snprintf(cmd, sizeof(cmd), "sudo ping -c1 -W2 %s", dip);
	CHECK_INT(ssh_run(NULL, "cx-1", cmd), 1);
	/* the host reaches both (that is how ssh got there) */
	CHECK_INT(ssh_run(NULL, "dy-1", "true"), 0);
	h_teardown();
}

/* A bound test process killed with SIGKILL: QEMU, taps, sockets gone. */
static void t_vm_bound_kill(void)
{
	vm_setup("vmbound");
	const char *names[] = { "vb-1" };
	pid_t holder;
	pid_t child = h_bound_child(names, 1, NULL, "test \"$(uname -s)\" = Linux", &holder);
	pid_t q = qemu_pid("vb-1");
	CHECK(holder > 0 && q > 0);
	CHECK_INT(h_count_links("fbt"), 1);
	long t0 = h_now_ms();
	CHECK_INT(kill(child, SIGKILL), 0);
	waitpid(child, NULL, 0);
	CHECK(h_wait_pid_gone(holder, 30000) >= 0);
	CHECK(h_wait_pid_gone(q, 5000) >= 0 || !h_pid_alive(q));
	printf("bench vm_bound_teardown_ms=%ld\n", h_now_ms() - t0);
	CHECK_INT(h_count_links("fb"), 0);
	CHECK(!h_sock_exists("vb-1"));
	CHECK_INT(h_count_records(), 0);
	h_teardown();
}

/* `poweroff` inside the guest: the member is stopped (not error), QEMU and
 * its tap are gone, and `up` boots it again. */
static void t_vm_poweroff(void)
{
	vm_setup("vmpoweroff");
	char *out;
	CHECK_INT(h_run(&out, "up", "po", NULL), 0);
	free(out);
	pid_t q = qemu_pid("po");
	CHECK(q > 0);
	/* the session may end before the command returns: only the state counts */
	ssh_run(NULL, "po", "sudo poweroff");
	CHECK(h_wait_pid_gone(q, 60000) >= 0 || !h_pid_alive(q));
	json_t *o = NULL;
	for (int i = 0; i < 400; i++) {
		json_decref(o);
		o = status_of("po");
		if (o && strcmp(st_str(o, "state"), "running") != 0)
			break;
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "after poweroff: state %s, error \"%s\"\n", st_str(o, "state"),
		st_str(o, "error") ? st_str(o, "error") : "");
	CHECK_STR(st_str(o, "state"), "stopped");
	CHECK(!st_str(o, "error") || !*st_str(o, "error"));
	json_decref(o);
	CHECK_INT(h_count_links("fbt"), 0);
	CHECK_INT(h_run(&out, "up", "po", NULL), 0);
	free(out);
	CHECK_INT(ssh_run(NULL, "po", "true"), 0);
	CHECK_INT(h_run(NULL, "down", "po", NULL), 0);
	h_teardown();
}

/* `down` of one and of two members (in parallel): both graceful, timed. */
static void t_vm_down_timing(void)
{
	vm_setup("vmdown");
	char *out;
	CHECK_INT(h_run(&out, "up", "dt", "-n", "2", NULL), 0);
	free(out);
	long t0 = h_now_ms();
	CHECK_INT(h_run(NULL, "down", "dt-1", NULL), 0);
	printf("bench vm_down_1_ms=%ld\n", h_now_ms() - t0);
	CHECK_INT(h_run(&out, "up", "dt", "-n", "2", NULL), 0);
	free(out);
	t0 = h_now_ms();
	CHECK_INT(h_run(NULL, "down", "dt", NULL), 0);
	printf("bench vm_down_2_ms=%ld\n", h_now_ms() - t0);
	CHECK_INT(h_count_links("fb"), 0);
	char p[400], *log = NULL;
	snprintf(p, sizeof(p), "%s/runner-dt-1.log", h_root);
	if (file_read_all(p, 1 << 20, &log, NULL) == 0) {
		/* the mini guest powers off on ACPI well inside its grace */
		CHECK(strstr(log, "sending SIGTERM") == NULL);
		free(log);
	}
	h_teardown();
}

/* QEMU killed under a running cluster: that member goes to error with the
 * serial log's tail; its sibling keeps working. */
static void t_vm_kill_qemu(void)
{
	vm_setup("vmkillq");
	char *out;
	CHECK_INT(h_run(&out, "up", "kq", "-n", "2", NULL), 0);
	free(out);
	pid_t q = qemu_pid("kq-1");
	CHECK(q > 0);
	CHECK_INT(kill(q, SIGKILL), 0);
	json_t *o = NULL;
	for (int i = 0; i < 1000; i++) {
		json_decref(o);
		o = status_of("kq-1");
		if (o && !strcmp(st_str(o, "state"), "error"))
			break;
		struct timespec ts = { 0, 5 * 1000000L };
		nanosleep(&ts, NULL);
	}
	CHECK_STR(st_str(o, "state"), "error");
	fprintf(stderr, "error: %s\n", st_str(o, "error"));
	CHECK(strstr(st_str(o, "error"), "signal 9") != NULL || strstr(st_str(o, "error"), "killed") != NULL);
	json_decref(o);
	CHECK_INT(h_count_links("fbt"), 1); /* kq-1's tap went with its VM */
	CHECK_INT(ssh_run(&out, "kq-2", "echo alive"), 0);
	CHECK(strstr(out, "alive") != NULL);
	free(out);
	h_teardown();
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	CHECK_INT(file_write_atomic(path, text, strlen(text), mode), 0);
}

/* SSH exec, exit codes, stdout/stderr, cp both ways, fixtures, host key
 * pinning, interactive shell: one VM for all of issue 5's VM checks. */
static void t_vm_ssh(void)
{
	vm_setup("vmssh");
	char fx[400], fxarg[512];
	/* spaces and non-ASCII in the host side and in file names; the guest path
	 * is non-ASCII but without whitespace (cloud-init writes it to fstab) */
	snprintf(fx, sizeof(fx), "%s/fixture dïr", h_root);
	CHECK_INT(mkdir_p(fx, 0755), 0);
	char p[600];
	snprintf(p, sizeof(p), "%s/a file.txt", fx);
	write_file(p, "fixture v1\n", 0644);
	snprintf(p, sizeof(p), "%s/ünï", fx);
	CHECK_INT(mkdir_p(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/ünï/ñ.txt", fx);
	write_file(p, "nested\n", 0644);
	snprintf(fxarg, sizeof(fxarg), "%s:/mnt/fïx-data", fx);
	char *out;
	CHECK_INT(h_run(&out, "up", "sx", "--fixture", fxarg, NULL), 0);
	free(out);

	/* exit status and argv exactness */
	CHECK_INT(h_run(NULL, "ssh", "sx", "--", "sh", "-c", "exit 7", NULL), 7);
	CHECK_INT(h_run(&out, "ssh", "sx", "--", "printf", "%s|", "a b", "c'd", NULL), 0);
	CHECK(strstr(out, "a b|c'd|") != NULL);
	free(out);
	CHECK_INT(h_run(&out, "ssh", "sx", "--", "ls / | wc -l", NULL), 0);
	free(out);
	/* stdout and stderr apart */
	fb_exec_result r;
	fb_error e = { 0 };
	CHECK_INT(fb_exec(NULL, "sx", "echo out; echo err >&2; exit 3", &r, &e), 0);
	CHECK_INT(r.exit_status, 3);
	CHECK_STR(r.out, "out\n");
	CHECK_STR(r.err, "err\n");
	fb_exec_result_free(&r);

	/* a 0755 script into a guest dir that does not exist yet, then run it */
	char script[400];
	snprintf(script, sizeof(script), "%s/hello.sh", h_root);
	write_file(script, "#!/bin/sh\necho script-ran \"$1\"\n", 0755);
	char dst[128];
	snprintf(dst, sizeof(dst), "sx:/home/fleetbox/new/bin/hello.sh");
	CHECK_INT(h_run(NULL, "cp", script, dst, NULL), 0);
	CHECK_INT(ssh_run(&out, "sx", "/home/fleetbox/new/bin/hello.sh arg1; stat -c %a /home/fleetbox/new/bin/hello.sh"), 0);
	CHECK(strstr(out, "script-ran arg1\n755\n") != NULL);
	free(out);

	/* a tree in and back out, byte for byte, modes and symlinks kept */
	char tree[400], back[400];
	snprintf(tree, sizeof(tree), "%s/tree", h_root);
	snprintf(p, sizeof(p), "%s/sub/deeper", tree);
	CHECK_INT(mkdir_p(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/empty", tree);
	CHECK_INT(mkdir_p(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/sub/data.bin", tree);
	{
		size_t n = 3 << 20;
		char *buf = malloc(n);
		for (size_t i = 0; i < n; i++)
			buf[i] = (char)(i * 2654435761u >> 13);
		CHECK_INT(file_write_atomic(p, buf, n, 0600), 0);
		free(buf);
	}
	snprintf(p, sizeof(p), "%s/sub/deeper/x.txt", tree);
	write_file(p, "x\n", 0644);
	snprintf(p, sizeof(p), "%s/link", tree);
	CHECK_INT(symlink("sub/deeper/x.txt", p), 0);
	/* like cp -r: a destination that does not exist becomes the copy */
	CHECK_INT(h_run(NULL, "cp", tree, "sx:/home/fleetbox/copied", NULL), 0);
	CHECK_INT(ssh_run(&out, "sx", "cd /home/fleetbox/copied && stat -c '%n %a' empty sub/data.bin && readlink link"), 0);
	CHECK(strstr(out, "empty 700\nsub/data.bin 600\nsub/deeper/x.txt\n") != NULL);
	free(out);
	snprintf(back, sizeof(back), "%s/back", h_root);
	CHECK_INT(mkdir_p(back, 0755), 0);
	/* an existing destination directory receives the copy under its name */
	CHECK_INT(h_run(NULL, "cp", "sx:/home/fleetbox/copied", back, NULL), 0);
	snprintf(p, sizeof(p), "%s/copied", back);
	{
		struct cmd c;
		cmd_init(&c, "diff");
		cmd_add(&c, "-r");
		cmd_add(&c, "--no-dereference");
		cmd_add(&c, tree);
		cmd_add(&c, p);
		struct err de = { 0 };
		CHECK_INT(cmd_run(&c, NULL, &de), 0);
		cmd_fini(&c);
	}
	struct stat st;
	snprintf(p, sizeof(p), "%s/copied/empty", back);
	CHECK_INT(stat(p, &st), 0);
	CHECK_INT(st.st_mode & 0777, 0700);
	snprintf(p, sizeof(p), "%s/copied/link", back);
	CHECK_INT(lstat(p, &st), 0);
	CHECK(S_ISLNK(st.st_mode));

	/* fixtures: readable with spaces and non-ASCII names, read-only */
	CHECK_INT(ssh_run(&out, "sx", "cat '/mnt/fïx-data/a file.txt' '/mnt/fïx-data/ünï/ñ.txt'"), 0);
	CHECK(strstr(out, "fixture v1\nnested\n") != NULL);
	free(out);
	CHECK(ssh_run(NULL, "sx", "touch '/mnt/fïx-data/new'") != 0);
	CHECK(ssh_run(NULL, "sx", "sudo touch '/mnt/fïx-data/new'") != 0);
	/* content refreshes at the next boot */
	snprintf(p, sizeof(p), "%s/a file.txt", fx);
	write_file(p, "fixture v2\n", 0644);
	CHECK_INT(h_run(NULL, "down", "sx", NULL), 0);
	CHECK_INT(h_run(NULL, "up", "sx", NULL), 0);
	CHECK_INT(ssh_run(&out, "sx", "cat '/mnt/fïx-data/a file.txt'"), 0);
	CHECK(strstr(out, "fixture v2\n") != NULL);
	free(out);

	/* interactive shell through a PTY */
	int master;
	pid_t pid = forkpty(&master, NULL, NULL, NULL);
	CHECK(pid >= 0);
	if (pid == 0) {
		execl(h_bin, h_bin, "ssh", "sx", (char *)NULL);
		_exit(127);
	}
	const char *keys = "echo pty-$((40+2)); exit 3\n";
	CHECK_INT(write(master, keys, strlen(keys)), (ssize_t)strlen(keys));
	char buf[8192];
	size_t got = 0;
	long deadline = h_now_ms() + 30000;
	while (got < sizeof(buf) - 1 && h_now_ms() < deadline) {
		struct pollfd pf = { .fd = master, .events = POLLIN };
		if (poll(&pf, 1, 1000) <= 0)
			continue;
		ssize_t n = read(master, buf + got, sizeof(buf) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	int wst;
	CHECK(waitpid(pid, &wst, 0) == pid);
	close(master);
	fprintf(stderr, "pty output: %s\n", buf);
	CHECK(strstr(buf, "pty-42") != NULL);
	CHECK(WIFEXITED(wst) && WEXITSTATUS(wst) == 3);

	/* ssh-config for plain OpenSSH, host key checking on */
	CHECK_INT(h_run(&out, "ssh-config", NULL), 0);
	CHECK(strstr(out, "Host sx") && strstr(out, "StrictHostKeyChecking yes"));
	free(out);

	/* a tampered pinned host key is refused, never silently accepted */
	char pub[400], saved[400];
	snprintf(pub, sizeof(pub), "%s/clusters/sx/sx/ssh_host_ed25519_key.pub", h_root);
	snprintf(saved, sizeof(saved), "%s.saved", pub);
	CHECK_INT(rename(pub, saved), 0);
	char *priv = NULL, *other = NULL;
	struct err ke = { 0 };
	CHECK_INT(keys_generate("impostor", &priv, &other, &ke), 0);
	write_file(pub, other, 0644);
	free(priv);
	free(other);
	CHECK_INT(ssh_run(&out, "sx", "true"), 255); /* a fleetbox error, like OpenSSH */
	CHECK(strstr(out, "host key") != NULL);
	free(out);
	CHECK_INT(rename(saved, pub), 0);
	CHECK_INT(ssh_run(NULL, "sx", "true"), 0);
	h_teardown();
}

/* ---- a program on a pseudo-terminal, driven like a user ---- */

struct pty {
	pid_t pid;
	int master;
	char buf[65536];
	size_t len;
};

static void pty_start(struct pty *p, char *const argv[])
{
	memset(p, 0, sizeof(*p));
	struct winsize ws = { .ws_row = 40, .ws_col = 120 };
	p->pid = forkpty(&p->master, NULL, NULL, &ws);
	CHECK(p->pid >= 0);
	if (p->pid == 0) {
		setenv("TERM", "xterm", 1);
		execv(h_bin, argv);
		_exit(127);
	}
}

/* Reads until needle shows up (true), EOF or the deadline (false). */
static bool pty_expect(struct pty *p, const char *needle, int timeout_ms)
{
	long deadline = h_now_ms() + timeout_ms;
	while (h_now_ms() < deadline) {
		p->buf[p->len] = '\0';
		if (needle && strstr(p->buf, needle))
			return true;
		struct pollfd pf = { .fd = p->master, .events = POLLIN };
		if (poll(&pf, 1, 200) <= 0)
			continue;
		ssize_t n = read(p->master, p->buf + p->len, sizeof(p->buf) - 1 - p->len);
		if (n <= 0)
			return false;
		p->len += (size_t)n;
	}
	return false;
}

static void pty_type(struct pty *p, const char *s)
{
	CHECK_INT(write(p->master, s, strlen(s)), (ssize_t)strlen(s));
}

/* Drains output until the program exits; its status (-1 on timeout). */
static int pty_wait(struct pty *p, int timeout_ms)
{
	long deadline = h_now_ms() + timeout_ms;
	int st = 0;
	pid_t w = 0;
	while ((w = waitpid(p->pid, &st, WNOHANG)) == 0 && h_now_ms() < deadline)
		pty_expect(p, NULL, 200);
	pty_expect(p, NULL, 300); /* what was written just before exit */
	fprintf(stderr, "pty output:\n%s\n", p->buf);
	close(p->master);
	if (w != p->pid) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
		return -1;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Root in the guest (cp --root into /etc, plain messages without it), a
 * real terminal (ssh -t runs tty on /dev/pts, Ctrl-C reaches the command),
 * logs showing the console, and down ending an open session. */
static void t_vm_cli(void)
{
	vm_setup("vmcli");
	char *out;
	CHECK_INT(h_run(&out, "up", "vc", NULL), 0);
	free(out);
	/* cp into /etc as the guest user: a plain message, nothing half-done */
	char conf[400], p[600];
	snprintf(conf, sizeof(conf), "%s/conf", h_root);
	CHECK_INT(mkdir_p(conf, 0755), 0);
	snprintf(p, sizeof(p), "%s/app.ini", conf);
	write_file(p, "[app]\nport = 8080\n", 0640);
	CHECK_INT(h_run(&out, "cp", conf, "vc:/etc/app/", NULL), 1);
	CHECK(strstr(out, "error: permission denied writing /etc/app on vc as user fleetbox; use --root") != NULL);
	free(out);
	/* the README's example */
	CHECK_INT(h_run(NULL, "cp", "--root", conf, "vc:/etc/app/", NULL), 0);
	CHECK_INT(h_run(&out, "ssh", "--root", "vc", "--", "stat -c '%U %a' /etc/app/conf/app.ini; cat /etc/app/conf/app.ini", NULL), 0);
	CHECK(strstr(out, "root 640\n[app]\nport = 8080\n") != NULL);
	free(out);
	/* and out of a root-only file */
	snprintf(p, sizeof(p), "%s/shadow-copy", h_root);
	CHECK_INT(h_run(&out, "cp", "vc:/etc/shadow", p, NULL), 1);
	CHECK(strstr(out, "permission denied reading /etc/shadow on vc as user fleetbox; use --root") != NULL);
	free(out);
	CHECK_INT(h_run(NULL, "cp", "-u", "root", "vc:/etc/shadow", p, NULL), 0);
	char *sh = h_read_file(p);
	CHECK(sh && strstr(sh, "fleetbox:") != NULL);
	free(sh);
	CHECK_INT(h_run(&out, "ssh", "--root", "vc", "--", "id", "-u", NULL), 0);
	CHECK(strstr(out, "0\n") != NULL);
	free(out);

	/* a terminal: -t runs tty on a pty; -T does not; Ctrl-C reaches the command */
	struct pty t;
	pty_start(&t, (char *[]){ (char *)h_bin, (char *)"ssh", (char *)"-t", (char *)"vc", (char *)"--", (char *)"tty", NULL });
	CHECK_INT(pty_wait(&t, 60000), 0);
	CHECK(strstr(t.buf, "/dev/pts/") != NULL);
	pty_start(&t, (char *[]){ (char *)h_bin, (char *)"ssh", (char *)"-T", (char *)"vc", (char *)"--", (char *)"tty", NULL });
	CHECK_INT(pty_wait(&t, 60000), 1);
	CHECK(strstr(t.buf, "not a tty") != NULL);
	pty_start(&t, (char *[]){ (char *)h_bin, (char *)"ssh", (char *)"vc", (char *)"--", (char *)"echo started; sleep 60", NULL });
	CHECK(pty_expect(&t, "started", 60000));
	long t0 = h_now_ms();
	pty_type(&t, "\003");
	CHECK_INT(pty_wait(&t, 20000), 130); /* 128 + SIGINT, from the remote */
	printf("bench vm_ssh_ctrl_c_ms=%ld\n", h_now_ms() - t0);

	/* the console and the holder's lines */
	CHECK_INT(h_run(&out, "logs", "vc", NULL), 0);
	CHECK(strstr(out, "(console) <==") && strstr(out, "fleetbox-mini:"));
	CHECK(strstr(out, "vc: starting -> running") != NULL);
	free(out);

	/* down ends an open interactive session instead of leaving it hanging */
	pty_start(&t, (char *[]){ (char *)h_bin, (char *)"ssh", (char *)"vc", NULL });
	pty_type(&t, "echo in-$((40+2))\r");
	CHECK(pty_expect(&t, "in-42", 60000));
	CHECK_INT(h_run(NULL, "down", "vc", NULL), 0);
	t0 = h_now_ms();
	CHECK_INT(pty_wait(&t, 30000), 255);
	printf("bench vm_session_end_after_down_ms=%ld\n", h_now_ms() - t0);
	CHECK(strstr(t.buf, "error: vc ") != NULL);
	CHECK(strstr(t.buf, "session closed") || strstr(t.buf, "connection to vc lost"));
	h_teardown();
}

/* Issue 11: after one `image prepare` with the archive reachable, a brand-new
 * store boots mini inside a network namespace with no way out. The prepare
 * runs as three concurrent processes into a private cache: one builds, the
 * others wait for it and reuse the result. */
static void prepare_child(int fd, int i)
{
	char home[400], *out = NULL;
	snprintf(home, sizeof(home), "%s/prep-%d", h_root, i);
	setenv("FLEETBOX_HOME", home, 1);
	int rc = h_run(&out, "image", "prepare", NULL);
	dprintf(fd, "%d %d\n", rc, out && strstr(out, "building the mini image") ? 1 : 0);
	fprintf(stderr, "prepare %d: %s", i, out ? out : "");
	_exit(0);
}

static void t_vm_offline(void)
{
	h_setup("vmoffline");
	unsetenv("FLEETBOX_VMM");
	int p[2];
	CHECK(pipe(p) == 0);
	long t0 = h_now_ms();
	for (int i = 0; i < 3; i++) {
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0)
			prepare_child(p[1], i);
	}
	close(p[1]);
	for (int i = 0; i < 3; i++)
		CHECK(wait(NULL) > 0);
	printf("bench offline_prepare_3_concurrent_ms=%ld\n", h_now_ms() - t0);
	FILE *f = fdopen(p[0], "r");
	int rc, built, builds = 0, n = 0;
	while (f && fscanf(f, "%d %d", &rc, &built) == 2) {
		CHECK_INT(rc, 0);
		builds += built;
		n++;
	}
	fclose(f);
	CHECK_INT(n, 3);
	CHECK_INT(builds, 1);
	h_enter_netns();
	unsetenv("FLEETBOX_NET");
	char *routes = h_tool("ip", "route", "show", NULL);
	CHECK_STR(routes, ""); /* no way out, not even a default route */
	free(routes);
	/* the store is new: nothing but the cache lives under h_root */
	char clusters[400], *out;
	snprintf(clusters, sizeof(clusters), "%s/clusters", h_root);
	CHECK(!path_exists(clusters));
	t0 = h_now_ms();
	CHECK_INT(h_run(&out, "up", "off", NULL), 0);
	printf("bench offline_fresh_store_up_ms=%ld\n", h_now_ms() - t0);
	CHECK(strstr(out, "building") == NULL && strstr(out, "download") == NULL);
	free(out);
	CHECK_INT(ssh_run(&out, "off", "echo offline-$((6*7))"), 0);
	CHECK(strstr(out, "offline-42\n") != NULL);
	free(out);
	CHECK_INT(h_run(&out, "image", "ls", "-o", "json", NULL), 0);
	CHECK(strstr(out, "\"mini\"") && strstr(out, "\"disks\": 1"));
	free(out);
	h_teardown();
}

/* A member whose files belong to a user: QEMU runs as that user, with no
 * capabilities, on a tap owned by that user, and the VM works (what a store
 * used under sudo looks like once its files are the invoking user's). */
static void t_vm_as_user(void)
{
	vm_setup("vmuser");
	char *out;
	CHECK_INT(h_run(NULL, "up", "vu", NULL), 0);
	pid_t q = qemu_pid("vu");
	CHECK(q > 0);
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/status", (int)q);
	char *st = h_read_file(p);
	CHECK(st && strstr(st, "Uid:\t0\t")); /* root's member dir: as before */
	free(st);
	CHECK_INT(h_run(NULL, "down", "vu", NULL), 0);
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/clusters/vu/vu", h_root);
	free(h_tool("chown", "-R", "65534:65534", dir));
	CHECK_INT(h_run(&out, "up", "vu", NULL), 0);
	free(out);
	q = qemu_pid("vu");
	CHECK(q > 0);
	snprintf(p, sizeof(p), "/proc/%d/status", (int)q);
	st = h_read_file(p);
	CHECK(st && strstr(st, "Uid:\t65534\t65534\t65534\t65534") &&
	      strstr(st, "CapEff:\t0000000000000000"));
	free(st);
	CHECK_INT(ssh_run(&out, "vu", "echo as-user ok"), 0);
	CHECK(strstr(out, "as-user ok") != NULL);
	free(out);
	out = h_tool("ip", "-d", "link", NULL);
	CHECK(strstr(out, "user nobody") != NULL);
	free(out);
	CHECK_INT(h_run(NULL, "rm", "-f", "vu", NULL), 0);
	CHECK(qemu_pid("vu") == 0);
	h_teardown();
}

static const struct h_case cases[] = {
	{ "vm-as-user", t_vm_as_user },
	{ "vm-lifecycle", t_vm_lifecycle }, { "vm-cluster", t_vm_cluster },
	{ "vm-bound-kill", t_vm_bound_kill }, { "vm-kill-qemu", t_vm_kill_qemu },
	{ "vm-ssh", t_vm_ssh },	      { "vm-cli", t_vm_cli },
	{ "vm-offline", t_vm_offline }, { "vm-poweroff", t_vm_poweroff },
	{ "vm-down-timing", t_vm_down_timing },
};

int main(int argc, char **argv)
{
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
