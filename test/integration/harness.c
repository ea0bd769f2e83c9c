#include "harness.h"
#include "fleetbox.h"
#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"
#include "util/proc.h"
#include "rpc/wire.h"

#include <dirent.h>
#include <grp.h>
#include <sched.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

char h_root[256];
const char *h_bin;
static char image_path[300];

long h_now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void h_setup(const char *name)
{
	h_bin = getenv("FLEETBOX_BIN");
	CHECK(h_bin != NULL);
	snprintf(h_root, sizeof(h_root), "/tmp/fb-it-%s-XXXXXX", name);
	CHECK(mkdtemp(h_root) != NULL);
	setenv("FLEETBOX_HOME", h_root, 1);
	setenv("FLEETBOX_VMM", "fake", 1);
	/* a private image cache: never the user's own */
	char cache[sizeof(h_root) + 8];
	snprintf(cache, sizeof(cache), "%s/cache", h_root);
	setenv("FLEETBOX_CACHE", cache, 1);
	unsetenv("FLEETBOX_NET");
	unsetenv("FLEETBOX_PARENT_PID");
	unsetenv("FLEETBOX_HELPER");
	/* A failed CHECK exits: still stop what this case started. */
	atexit(h_teardown);
	snprintf(image_path, sizeof(image_path), "%s/tiny.img", h_root);
	char zeros[4096] = { 0 };
	CHECK_INT(file_write_atomic(image_path, zeros, sizeof(zeros), 0644), 0);
	char k[320];
	snprintf(k, sizeof(k), "%s.vmlinuz", image_path);
	CHECK_INT(file_write_atomic(k, "kernel", 6, 0644), 0);
}

const char *h_image(void)
{
	return image_path;
}

void h_teardown(void)
{
	if (!h_root[0] || access(h_root, F_OK) != 0)
		return;
	/* Stop whatever a failed assertion may have left, then delete. */
	char *out = NULL;
	h_run(&out, "rm", "-f", "--all", NULL);
	free(out);
	rm_rf(h_root);
}

/* argv for `fleetbox arg...` into argv[64]; returns argc. */
static int build_argv(char **argv, const char *arg, va_list ap)
{
	int n = 0;
	argv[n++] = (char *)h_bin;
	for (const char *a = arg; a && n < 63; a = va_arg(ap, const char *))
		argv[n++] = (char *)a;
	argv[n] = NULL;
	return n;
}

/* Everything fd gives until EOF (or EIO: a pty whose slave side closed). */
static char *read_all_fd(int fd)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	CHECK(buf != NULL);
	for (;;) {
		if (len + 1024 > cap)
			CHECK((buf = realloc(buf, cap *= 2)) != NULL);
		ssize_t r = read(fd, buf + len, cap - len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	return buf;
}

/* Waits for pid, echoes the command and its output to stderr (the test log),
 * hands the output over; the exit status (128+N for signal N). */
static int reap(pid_t pid, const char *how, char **argv, int n, char *buf, char **out)
{
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	fprintf(stderr, "$ %sfleetbox", how);
	for (int i = 1; i < n; i++)
		fprintf(stderr, " %s", argv[i]);
	fprintf(stderr, "\n%s%s", buf, *buf && buf[strlen(buf) - 1] != '\n' ? "\n" : "");
	if (out)
		*out = buf;
	else
		free(buf);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int run_v(const char *input, char **out, const char *arg, va_list ap)
{
	char *argv[64];
	int n = build_argv(argv, arg, ap);
	int outp[2], inp[2];
	CHECK(pipe2(outp, O_CLOEXEC) == 0);
	CHECK(pipe2(inp, O_CLOEXEC) == 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, inp[0], 0);
	posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
	posix_spawn_file_actions_adddup2(&fa, outp[1], 2);
	pid_t pid;
	CHECK_INT(posix_spawn(&pid, h_bin, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(outp[1]);
	close(inp[0]);
	if (input) {
		ssize_t w = write(inp[1], input, strlen(input));
		(void)w;
	}
	close(inp[1]);
	char *buf = read_all_fd(outp[0]);
	close(outp[0]);
	return reap(pid, "", argv, n, buf, out);
}

int h_run(char **out, const char *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	int r = run_v(NULL, out, arg, ap);
	va_end(ap);
	return r;
}

int h_run_input(const char *input, char **out, const char *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	int r = run_v(input, out, arg, ap);
	va_end(ap);
	return r;
}

/* Types input once prompt shows up, then reads to EOF; bounded. */
static char *pty_io(int master, const char *prompt, const char *input)
{
	size_t cap = 8192, len = 0;
	char *buf = malloc(cap);
	CHECK(buf != NULL);
	bool typed = input == NULL;
	long deadline = h_now_ms() + 120000;
	while (h_now_ms() < deadline) {
		buf[len] = '\0';
		if (!typed && (!prompt || strstr(buf, prompt))) {
			CHECK(write(master, input, strlen(input)) == (ssize_t)strlen(input));
			typed = true;
		}
		struct pollfd p = { .fd = master, .events = POLLIN };
		if (poll(&p, 1, 200) <= 0)
			continue;
		if (len + 1024 > cap)
			CHECK((buf = realloc(buf, cap *= 2)) != NULL);
		ssize_t r = read(master, buf + len, cap - len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break; /* EIO: every slave fd is closed */
		len += (size_t)r;
	}
	buf[len] = '\0';
	return buf;
}

int h_run_pty(const char *prompt, const char *input, char **out, const char *arg, ...)
{
	char *argv[64];
	va_list ap;
	va_start(ap, arg);
	int n = build_argv(argv, arg, ap);
	va_end(ap);
	int master;
	pid_t pid = forkpty(&master, NULL, NULL, NULL);
	CHECK(pid >= 0);
	if (pid == 0) {
		execv(h_bin, argv);
		_exit(127);
	}
	char *buf = pty_io(master, prompt, input);
	close(master);
	return reap(pid, "(pty) ", argv, n, buf, out);
}

int h_run_as(uid_t uid, gid_t gid, char **out, const char *arg, ...)
{
	char *argv[64];
	va_list ap;
	va_start(ap, arg);
	int n = build_argv(argv, arg, ap);
	va_end(ap);
	int outp[2];
	CHECK(pipe2(outp, O_CLOEXEC) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(outp[1], 1) < 0 || dup2(outp[1], 2) < 0 ||
		    setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
		    setresuid(uid, uid, uid) < 0)
			_exit(126);
		setenv("HOME", h_root, 1);
		execv(h_bin, argv);
		_exit(127);
	}
	close(outp[1]);
	char *buf = read_all_fd(outp[0]);
	close(outp[0]);
	char how[32];
	snprintf(how, sizeof(how), "(uid %u) ", (unsigned)uid);
	return reap(pid, how, argv, n, buf, out);
}

int h_run_cases(int argc, char **argv, const struct h_case *cases, size_t n)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CASE\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN); /* a holder may close on us mid-write: that is the point */
	for (size_t i = 0; i < n; i++)
		if (!strcmp(cases[i].name, argv[1])) {
			cases[i].fn();
			printf("%s: ok\n", argv[1]);
			return 0;
		}
	fprintf(stderr, "unknown case %s\n", argv[1]);
	return 2;
}

int h_connect_path(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int h_dial(const char *path, int timeout_ms)
{
	long deadline = h_now_ms() + timeout_ms;
	for (;;) {
		int fd = h_connect_path(path);
		if (fd >= 0 || h_now_ms() >= deadline)
			return fd;
		struct timespec ts = { 0, 5 * 1000000L };
		nanosleep(&ts, NULL);
	}
}

int h_connect_member(const char *member)
{
	char p[128];
	CHECK_INT(wire_sock_path(h_root, member, p, sizeof(p)), 0);
	return h_connect_path(p);
}

char *h_request(const char *member, const char *bytes, size_t len, int timeout_ms)
{
	int fd = h_connect_member(member);
	if (fd < 0)
		return NULL;
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, bytes + off, len - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	char *buf = calloc(1, 1 << 16);
	size_t got = 0;
	long deadline = h_now_ms() + timeout_ms;
	while (got < (1 << 16) - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long left = deadline - h_now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		ssize_t r = read(fd, buf + got, (1 << 16) - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
		if (memchr(buf, '\n', got))
			break;
	}
	close(fd);
	char *nl = memchr(buf, '\n', got);
	if (!nl) {
		free(buf);
		return NULL;
	}
	*nl = '\0';
	return buf;
}

/* Still our --fleetbox-pdeath-exec re-exec (it execs the VMM in a moment). */
static bool h_pid_is_helper(pid_t pid)
{
	char p[64], *s;
	size_t n;
	snprintf(p, sizeof(p), "/proc/%d/cmdline", (int)pid);
	if (file_read_all(p, 1 << 16, &s, &n) < 0)
		return true;
	bool helper = memmem(s, n, "--fleetbox-pdeath-exec", 22) != NULL;
	free(s);
	return helper;
}

bool h_pid_alive(pid_t pid)
{
	if (pid <= 0)
		return false;
	if (kill(pid, 0) < 0)
		return false;
	/* A zombie is dead for our purposes. */
	char p[64], *s;
	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	if (file_read_all(p, 4096, &s, NULL) < 0)
		return false;
	char *rp = strrchr(s, ')');
	bool zombie = rp && rp[1] == ' ' && rp[2] == 'Z';
	free(s);
	return !zombie;
}

long h_wait_pid_gone(pid_t pid, int timeout_ms)
{
	long t0 = h_now_ms();
	CHECK(pid > 0);
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0) {
		CHECK(errno == ESRCH); /* only "already gone" counts as gone */
		return 0;
	}
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r = poll(&p, 1, timeout_ms);
	close(fd);
	if (r <= 0)
		return -1;
	return h_now_ms() - t0;
}

pid_t h_pidfile(const char *member)
{
	char p[512], *s;
	CHECK_INT(wire_pidfile_path(h_root, member, p, sizeof(p)), 0);
	if (file_read_all(p, 64, &s, NULL) < 0)
		return 0;
	pid_t pid = (pid_t)atoi(s);
	free(s);
	return pid;
}

bool h_sock_exists(const char *member)
{
	char p[128];
	CHECK_INT(wire_sock_path(h_root, member, p, sizeof(p)), 0);
	return access(p, F_OK) == 0;
}

bool h_wait_until(bool (*cond)(void *), void *arg, int timeout_ms)
{
	long deadline = h_now_ms() + timeout_ms;
	for (;;) {
		if (cond(arg))
			return true;
		if (h_now_ms() >= deadline)
			return false;
		struct timespec ts = { 0, 5 * 1000000L };
		nanosleep(&ts, NULL);
	}
}

pid_t h_find_process(const char *const *needles, pid_t parent)
{
	DIR *d = opendir("/proc");
	CHECK(d != NULL);
	struct dirent *de;
	pid_t found = 0;
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		pid_t pid = (pid_t)atoi(de->d_name);
		char p[300], *s;
		size_t n;
		snprintf(p, sizeof(p), "/proc/%s/cmdline", de->d_name);
		if (file_read_all(p, 1 << 16, &s, &n) < 0)
			continue;
		/* argv joined with spaces, with a space at each end for whole words */
		char *joined = malloc(n + 3);
		CHECK(joined != NULL);
		joined[0] = ' ';
		for (size_t i = 0; i < n; i++)
			joined[i + 1] = s[i] ? s[i] : ' ';
		joined[n + 1] = ' ';
		joined[n + 2] = '\0';
		free(s);
		bool all = true;
		for (const char *const *nd = needles; *nd && all; nd++)
			all = strstr(joined, *nd) != NULL;
		free(joined);
		if (!all || !h_pid_alive(pid))
			continue;
		if (parent) {
			snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
			int ppid = 0;
			if (file_read_all(p, 4096, &s, NULL) == 0) {
				char *rp = strrchr(s, ')');
				if (!rp || sscanf(rp + 2, "%*c %d", &ppid) != 1)
					ppid = 0;
				free(s);
			}
			if (ppid != parent)
				continue;
		}
		found = pid;
	}
	closedir(d);
	return found;
}

pid_t h_vmm_pid(const char *member)
{
	char dir[512], mark[600];
	CHECK_INT(wire_member_dir(h_root, member, dir, sizeof(dir)), 0);
	snprintf(mark, sizeof(mark), PROC_VMM_MARK "=%s", dir);
	DIR *d = opendir("/proc");
	CHECK(d != NULL);
	struct dirent *de;
	pid_t found = 0;
	while (!found && (de = readdir(d))) {
		pid_t pid = (pid_t)atoi(de->d_name);
		/* the pdeath re-exec carries the mark too; the VMM is what it execs */
		if (pid > 0 && proc_env_has(pid, mark) && h_pid_alive(pid) && !h_pid_is_helper(pid))
			found = pid;
	}
	closedir(d);
	return found;
}

pid_t h_fake_vm_pid(const char *member)
{
	/* argv: <exe> --fleetbox-fake-vm <member> ...; only this store's holder's child */
	char who[96];
	snprintf(who, sizeof(who), " --fleetbox-fake-vm %s ", member);
	pid_t holder = h_pidfile(member);
	if (!holder)
		return 0;
	const char *needles[] = { who, NULL };
	return h_find_process(needles, holder);
}

char *h_read_file(const char *path)
{
	char *s = NULL;
	if (file_read_all(path, 1 << 22, &s, NULL) < 0)
		return NULL;
	return s;
}



/* Links whose name starts with prefix, via netlink (`ip`): /sys/class/net
 * shows the namespace of whoever mounted /sys, not ours. */
int h_count_links(const char *prefix)
{
	char *out = h_tool("ip", "-br", "link", NULL);
	int n = 0;
	for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n"))
		if (!strncmp(l, prefix, strlen(prefix)))
			n++;
	free(out);
	return n;
}

/* Every networking case runs in a private network namespace and refuses to
 * run anywhere else: the host's interfaces are never touched. */
void h_enter_netns(void)
{
	if (geteuid() != 0) {
		printf("skipped: needs root for a private network namespace\n");
		exit(77);
	}
	struct stat before, mine;
	CHECK_INT(stat("/proc/self/ns/net", &before), 0);
	CHECK_INT(unshare(CLONE_NEWNET), 0);
	struct cmd c;
	cmd_init(&c, "ip");
	cmd_add(&c, "link");
	cmd_add(&c, "set");
	cmd_add(&c, "lo");
	cmd_add(&c, "up");
	struct err e = { 0 };
	CHECK_INT(cmd_run(&c, NULL, &e), 0);
	cmd_fini(&c);
	/* the guard: we really are in a new namespace */
	CHECK_INT(stat("/proc/self/ns/net", &mine), 0);
	CHECK(mine.st_ino != before.st_ino);
	CHECK_INT(h_count_links("fb"), 0);
	setenv("FLEETBOX_NET", "bridge", 1);
}

char *h_tool(const char *prog, const char *a1, const char *a2, const char *a3)
{
	struct cmd c;
	cmd_init(&c, prog);
	if (a1)
		cmd_add(&c, a1);
	if (a2)
		cmd_add(&c, a2);
	if (a3)
		cmd_add(&c, a3);
	char *out = NULL;
	struct err e = { 0 };
	int r = cmd_run(&c, &out, &e);
	cmd_fini(&c);
	CHECK_INT(r, 0);
	return out;
}

int h_count_records(void)
{
	char p[300];
	snprintf(p, sizeof(p), "%s/networks", h_root);
	DIR *d = opendir(p);
	if (!d)
		return 0;
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".json") && !strstr(de->d_name, ".tmp"))
			n++;
	closedir(d);
	return n;
}


pid_t h_bound_start(const struct h_bound *b, pid_t *holder)
{
	setenv("FLEETBOX_HELPER", h_bin, 1);
	int pfd[2];
	CHECK(pipe(pfd) == 0);
	pid_t child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		close(pfd[0]);
		if (b->own_group)
			setpgid(0, 0);
		if (b->alarm_s)
			alarm(b->alarm_s); /* bounded even if the test dies */
		fb_up_options o = b->o;
		o.bound = 1;
		fb_cluster *c;
		fb_error e;
		if (fb_up(&o, &c, &e) < 0) {
			fprintf(stderr, "fb_up: %s\n", e.message);
			_exit(3);
		}
		if (b->exec_check) {
			fb_exec_result r;
			if (fb_exec(NULL, o.names[0], b->exec_check, &r, &e) < 0 || r.exit_status != 0) {
				fprintf(stderr, "fb_exec %s: %s\n", b->exec_check, e.message);
				_exit(4);
			}
			fb_exec_result_free(&r);
		}
		pid_t hp = fb_cluster_holder_pid(c);
		if (write(pfd[1], &hp, sizeof(hp)) != sizeof(hp))
			_exit(5);
		for (;;)
			pause(); /* until the test kills us */
	}
	close(pfd[1]);
	*holder = 0;
	CHECK_INT(read(pfd[0], holder, sizeof(*holder)), sizeof(*holder));
	close(pfd[0]);
	CHECK(*holder > 0);
	return child;
}

pid_t h_bound_child(const char *const *names, size_t n, const char *image, const char *exec_check,
		    pid_t *holder)
{
	struct h_bound b = { .o = { .names = names, .n_names = n, .image = image },
			     .exec_check = exec_check };
	return h_bound_start(&b, holder);
}

/* --- leftovers (after a teardown, nothing of a store may remain) --- */

static bool in_our_netns(pid_t pid)
{
	static ino_t ns;
	struct stat st;
	if (!ns) {
		CHECK_INT(stat("/proc/self/ns/net", &st), 0);
		ns = st.st_ino;
	}
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/ns/net", (int)pid);
	return pid != getpid() && stat(p, &st) == 0 && st.st_ino == ns && h_pid_alive(pid);
}

int h_count_procs(void)
{
	DIR *d = opendir("/proc");
	CHECK(d != NULL);
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d))) {
		pid_t pid = (pid_t)atoi(de->d_name);
		n += pid > 0 && in_our_netns(pid);
	}
	closedir(d);
	return n;
}

bool h_no_procs(void *arg)
{
	(void)arg;
	return h_count_procs() == 0;
}

/* Files under dir (depth levels) whose name matches. */
static int count_files(const char *dir, int depth, const char *suffix, const char *contains)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char p[1024];
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		size_t l = strlen(de->d_name), sl = suffix ? strlen(suffix) : 0;
		if ((suffix && l >= sl && !strcmp(de->d_name + l - sl, suffix)) ||
		    (contains && strstr(de->d_name, contains)))
			n++;
		if (de->d_type == DT_DIR && depth > 0)
			n += count_files(p, depth - 1, suffix, contains);
	}
	closedir(d);
	return n;
}

static int count_tables(void)
{
	char *out = h_tool("nft", "list", "tables", NULL);
	int n = 0;
	for (char *p = out; (p = strstr(p, "table ip fb")); p++)
		n++;
	free(out);
	return n;
}

struct h_leftovers h_leftovers(void)
{
	char run[300], clusters[300], networks[300];
	snprintf(run, sizeof(run), "%s/run", h_root);
	snprintf(clusters, sizeof(clusters), "%s/clusters", h_root);
	snprintf(networks, sizeof(networks), "%s/networks", h_root);
	struct h_leftovers c = {
		.procs = h_count_procs(),
		.socks = count_files(run, 0, ".sock", NULL) + count_files(run, 0, ".ctl", NULL),
		.pidfiles = count_files(clusters, 2, "pid", NULL),
		.links = h_count_links("fb"),
		.tables = count_tables(),
		.records = count_files(networks, 0, ".json", NULL),
		.tmps = count_files(h_root, 4, NULL, ".tmp"),
	};
	return c;
}

static void show_procs(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		pid_t pid = (pid_t)atoi(de->d_name);
		if (pid <= 0 || !in_our_netns(pid))
			continue;
		char p[64], *s = NULL;
		size_t n = 0;
		snprintf(p, sizeof(p), "/proc/%d/cmdline", (int)pid);
		if (file_read_all(p, 4096, &s, &n) == 0) {
			for (size_t i = 0; i + 1 < n; i++)
				if (!s[i])
					s[i] = ' ';
			fprintf(stderr, "  leftover process %d: %s\n", (int)pid, s);
		}
		free(s);
	}
	if (d)
		closedir(d);
}

static void show_tmps(const char *dir, int depth)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.' && (!de->d_name[1] || de->d_name[1] == '.'))
			continue;
		char p[1024];
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (strstr(de->d_name, ".tmp"))
			fprintf(stderr, "  leftover temporary %s\n", p);
		if (de->d_type == DT_DIR && depth > 0)
			show_tmps(p, depth - 1);
	}
	if (d)
		closedir(d);
}

void h_show_leftovers(void)
{
	show_procs();
	show_tmps(h_root, 4);
}
