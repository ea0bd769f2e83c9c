/* uptest.c - integration tests of `up`'s orchestration (the fake VMM, the
 * real binary as CLI and holder, a private FLEETBOX_HOME per case):
 * interrupts at every phase, patterns, isolation, ephemeral members, adding
 * to a live cluster, crash-safe creation, parallel stops, argument hygiene.
 * Usage: uptest <case>. FLEETBOX_TEST_STOP_AT makes the binary stop itself
 * (SIGSTOP) at a named step, so signals land exactly there. */
#include "harness.h"
#include "fleetbox.h"
#include "rpc/wire.h"
#include "util/fileio.h"

#define STORE_CREATING_NAME ".creating" /* store.h */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* --- helpers --- */

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static char out_path[400];

/* `fleetbox ARGS...` in the background, output to a file in the store. */
static pid_t spawn_cli(const char *const *args)
{
	snprintf(out_path, sizeof(out_path), "%s/cli.out", h_root);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int nul = open("/dev/null", O_RDONLY);
		if (fd < 0 || nul < 0)
			_exit(126);
		dup2(nul, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		const char *argv[32] = { h_bin };
		int n = 1;
		for (const char *const *a = args; *a && n < 31; a++)
			argv[n++] = *a;
		argv[n] = NULL;
		execv(h_bin, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* The member's fake VM process, once it exists (bounded). Looked up once:
 * a second look may land in its exec and see an empty cmdline. */
static pid_t wait_vm_pid(const char *m)
{
	long deadline = h_now_ms() + 20000;
	pid_t v;
	while (!(v = h_fake_vm_pid(m)) && h_now_ms() < deadline)
		nap_ms(5);
	return v;
}

static char *cli_output(void)
{
	char *s = h_read_file(out_path);
	fprintf(stderr, "--- output ---\n%s--------------\n", s ? s : "(none)");
	return s ? s : strdup("");
}

/* Waits until the child stopped itself (FLEETBOX_TEST_STOP_AT). */
static void wait_stopped(pid_t pid)
{
	int st;
	CHECK(waitpid(pid, &st, WUNTRACED) == pid);
	CHECK(WIFSTOPPED(st));
}

static int wait_exit_status(pid_t pid);

/* `fleetbox args...` stopped at step (FLEETBOX_TEST_STOP_AT), then sig
 * delivered and the process continued; returns its exit status. */
static int cli_signalled_at(const char *step, const char *const *args, int sig)
{
	setenv("FLEETBOX_TEST_STOP_AT", step, 1);
	pid_t pid = spawn_cli(args);
	wait_stopped(pid);
	unsetenv("FLEETBOX_TEST_STOP_AT");
	CHECK_INT(kill(pid, sig), 0);
	CHECK_INT(kill(pid, SIGCONT), 0);
	return wait_exit_status(pid);
}

static int wait_exit_status(pid_t pid)
{
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static bool member_dir_exists(const char *m)
{
	char p[512], cl[FB_NAME_MAX + 1];
	wire_cluster_name(m, cl);
	snprintf(p, sizeof(p), "%s/clusters/%s/%s", h_root, cl, m);
	return path_exists(p);
}

static bool member_file_exists(const char *m, const char *file)
{
	char p[600], cl[FB_NAME_MAX + 1];
	wire_cluster_name(m, cl);
	snprintf(p, sizeof(p), "%s/clusters/%s/%s/%s", h_root, cl, m, file);
	return path_exists(p);
}

static bool member_gone(const char *m)
{
	return !h_sock_exists(m) && (h_pidfile(m) == 0 || !h_pid_alive(h_pidfile(m)));
}

/* Does pid's environment say it serves our store? */
static bool in_our_store(pid_t pid)
{
	char p[64], *env;
	size_t len;
	snprintf(p, sizeof(p), "/proc/%d/environ", (int)pid);
	if (file_read_all(p, 1 << 20, &env, &len) < 0)
		return false;
	char want[320];
	snprintf(want, sizeof(want), "FLEETBOX_HOME=%s", h_root);
	bool ours = false;
	for (size_t i = 0; i < len && !ours; i += strlen(env + i) + 1)
		ours = !strcmp(env + i, want);
	free(env);
	return ours;
}

/* A live holder of this store launched for exactly these names (argv
 * "--fleetbox-runner csv"); other test runs on the machine do not count. */
static pid_t holder_for(const char *csv)
{
	char who[256];
	snprintf(who, sizeof(who), "--fleetbox-runner %s", csv);
	DIR *d = opendir("/proc");
	CHECK(d != NULL);
	struct dirent *de;
	pid_t found = 0;
	while (!found && (de = readdir(d))) {
		pid_t pid = (pid_t)atoi(de->d_name);
		char p[300], *s;
		size_t n;
		snprintf(p, sizeof(p), "/proc/%s/cmdline", de->d_name);
		if (pid <= 0 || file_read_all(p, 1 << 16, &s, &n) < 0)
			continue;
		for (size_t i = 0; i + 1 < n; i++)
			if (!s[i])
				s[i] = ' ';
		bool match = n > 0 && strstr(s, who) && !strcmp(strstr(s, who) + strlen(who), "");
		free(s);
		if (match && h_pid_alive(pid) && in_our_store(pid))
			found = pid;
	}
	closedir(d);
	if (found)
		fprintf(stderr, "holder %d for %s is alive\n", (int)found, csv);
	return found;
}

static bool holder_gone_cond(void *arg)
{
	return holder_for(arg) == 0;
}

static json_t *status_of(const char *m)
{
	char *line = h_req(m, "{\"cmd\":\"status\"}\n", 2000);
	json_t *o = line ? json_loads(line, 0, NULL) : NULL;
	free(line);
	return o;
}

static const char *state_of(json_t *o)
{
	return json_string_value(json_object_get(json_object_get(o, "status"), "state"));
}

/* --- interrupts --- */

static const char *const phases[] = { "validate", "lock",    "classify", "holder",
				      "network",  "image",   "prepare",  "reserve",
				      "boot",	  "commit",  NULL };

/* cx-1 exists stopped (its disk and a file of the user's in its dir); cx-2
 * and cx-3 are new. An interrupt at any phase leaves exactly that. */
static void check_spawn_state_intact(const char *disk1, const char *marker)
{
	CHECK(path_exists(disk1) && path_exists(marker));
	CHECK(member_file_exists("cx-1", "config.json"));
	CHECK(member_gone("cx-1") && member_gone("cx-2") && member_gone("cx-3"));
	CHECK(!member_dir_exists("cx-2") && !member_dir_exists("cx-3"));
	CHECK(h_wait_until(holder_gone_cond, "cx-1,cx-2,cx-3", 10000));
	CHECK(!h_fake_vm_pid("cx-1"));
}

static void interrupt_at(const char *phase, int sig, const char *disk1, const char *marker)
{
	const char *args[] = { "up", "cx-1", "cx-2", "cx-3", "--image", h_image(), NULL };
	int rc = cli_signalled_at(phase, args, sig);
	char *out = cli_output();
	fprintf(stderr, "phase %s, signal %d: exit %d\n", phase, sig, rc);
	CHECK_INT(rc, sig == SIGINT ? 130 : 143);
	char want[128];
	snprintf(want, sizeof(want), "error: interrupted during %s;", phase);
	CHECK(strstr(out, want) != NULL);
	/* what was made is said: the new members, once their dirs existed */
	bool made = strcmp(phase, "validate") && strcmp(phase, "lock") && strcmp(phase, "classify");
	CHECK(!made || !strcmp(phase, "holder") || strstr(out, "deleted cx-2, cx-3"));
	CHECK(!made || !strcmp(phase, "holder") || strstr(out, "stopped cx-1 again"));
	free(out);
	check_spawn_state_intact(disk1, marker);
}

static void t_cancel_phases(void)
{
	h_setup("cancel");
	CHECK_INT(h_run(NULL, "up", "cx-1", "--image", h_image(), NULL), 0);
	CHECK_INT(h_run(NULL, "down", "cx-1", NULL), 0);
	char disk1[400], marker[400];
	snprintf(disk1, sizeof(disk1), "%s/clusters/cx/cx-1/disk", h_root);
	snprintf(marker, sizeof(marker), "%s/clusters/cx/cx-1/keep-me", h_root);
	CHECK_INT(file_write_atomic(marker, "x", 1, 0600), 0);
	for (const char *const *p = phases; *p; p++) {
		interrupt_at(*p, SIGINT, disk1, marker);
		interrupt_at(*p, SIGTERM, disk1, marker);
	}
	/* and after all that the same up works */
	CHECK_INT(h_run(NULL, "up", "cx-1", "cx-2", "cx-3", "--image", h_image(), NULL), 0);
	h_teardown();
}

/* Mid-boot: VMs still booting in their holder are stopped, not left to
 * reach running; the interrupt does not wait for the boot to finish. */
static void t_cancel_boot(void)
{
	h_setup("cancelboot");
	setenv("FLEETBOX_FAKE_BOOT_MS", "60000", 1);
	for (int round = 0; round < 2; round++) {
		int sig = round == 0 ? SIGINT : SIGTERM;
		const char *args[] = { "up", "cb", "-n", "2", "--image", h_image(), NULL };
		pid_t pid = spawn_cli(args);
		pid_t v1 = wait_vm_pid("cb-1"), v2 = wait_vm_pid("cb-2");
		CHECK(v1 > 0 && v2 > 0);
		json_t *o = status_of("cb-1");
		CHECK_STR(state_of(o), "starting");
		json_decref(o);
		long t0 = h_now_ms();
		CHECK_INT(kill(pid, sig), 0);
		CHECK_INT(wait_exit_status(pid), sig == SIGINT ? 130 : 143);
		long took = h_now_ms() - t0;
		char *out = cli_output();
		CHECK(strstr(out, "error: interrupted during boot; rolled back: deleted cb-1, cb-2") != NULL);
		free(out);
		/* the VMs are gone when the command returns, long before a 60 s boot */
		CHECK(!h_pid_alive(v1) && !h_pid_alive(v2));
		CHECK(h_wait_until(holder_gone_cond, "cb-1,cb-2", 10000));
		CHECK(!member_dir_exists("cb-1") && !member_dir_exists("cb-2"));
		printf("bench cancel_mid_boot_ms=%ld\n", took);
	}
	unsetenv("FLEETBOX_FAKE_BOOT_MS");
	h_teardown();
}

/* Joining a running cluster: the running member and its holder are never
 * touched; the stopped one is stopped again; the new one goes. */
static void t_cancel_join(void)
{
	h_setup("canceljoin");
	CHECK_INT(h_run(NULL, "up", "cj-1", "cj-2", "--image", h_image(), NULL), 0);
	CHECK_INT(h_run(NULL, "down", "cj-2", NULL), 0);
	pid_t holder = h_pidfile("cj-1"), vm1 = h_fake_vm_pid("cj-1");
	CHECK(holder > 0 && vm1 > 0);
	const char *stops[] = { "reserve", "boot", "commit", NULL };
	for (const char *const *p = stops; *p; p++) {
		const char *args[] = { "up", "cj-1", "cj-2", "cj-3", "--image", h_image(), NULL };
		CHECK_INT(cli_signalled_at(*p, args, SIGINT), 130);
		char *out = cli_output();
		CHECK(strstr(out, "deleted cj-3") != NULL);
		/* booted by this call (commit): stopped again; not booted yet: untouched */
		CHECK((strstr(out, "stopped cj-2 again") != NULL) == !strcmp(*p, "commit"));
		CHECK(strstr(out, "cj-1 again") == NULL);
		free(out);
		CHECK_INT(h_pidfile("cj-1"), holder);
		CHECK_INT(h_fake_vm_pid("cj-1"), vm1);
		json_t *o = status_of("cj-1");
		CHECK_STR(state_of(o), "running");
		json_decref(o);
		CHECK(member_gone("cj-2") && member_file_exists("cj-2", "disk"));
		CHECK(member_gone("cj-3") && !member_dir_exists("cj-3"));
	}
	h_teardown();
}

/* A second interrupt during rollback: the graceful wait ends, the holder
 * this up spawned is killed (its VMs with it), the command exits. */
static void t_cancel_twice(void)
{
	h_setup("canceltwice");
	setenv("FLEETBOX_FAKE_BOOT_MS", "60000", 1);
	setenv("FLEETBOX_TEST_STOP_AT", "rollback", 1);
	const char *args[] = { "up", "ct", "-n", "2", "--image", h_image(), NULL };
	pid_t pid = spawn_cli(args);
	pid_t v1 = wait_vm_pid("ct-1"), v2 = wait_vm_pid("ct-2");
	pid_t holder = h_pidfile("ct-1");
	CHECK(holder > 0 && v1 > 0 && v2 > 0);
	CHECK_INT(kill(pid, SIGINT), 0);
	wait_stopped(pid); /* at the start of rollback */
	unsetenv("FLEETBOX_TEST_STOP_AT");
	CHECK_INT(kill(pid, SIGINT), 0);
	CHECK_INT(kill(pid, SIGCONT), 0);
	CHECK_INT(wait_exit_status(pid), 130);
	char *out = cli_output();
	char want[96];
	snprintf(want, sizeof(want), "second interrupt: killed holder %d", (int)holder);
	CHECK(strstr(out, want) != NULL);
	CHECK(strstr(out, "deleted ct-1, ct-2") != NULL);
	free(out);
	CHECK(h_wait_pid_gone(holder, 5000) >= 0);
	CHECK(h_wait_pid_gone(v1, 5000) >= 0 && h_wait_pid_gone(v2, 5000) >= 0);
	CHECK(!member_dir_exists("ct-1") && !member_dir_exists("ct-2"));
	unsetenv("FLEETBOX_FAKE_BOOT_MS");
	/* what is left (sockets of the killed holder) the next command repairs */
	CHECK_INT(h_run(NULL, "up", "ct", "-n", "2", "--image", h_image(), NULL), 0);
	h_teardown();
}

static volatile sig_atomic_t lib_cancel;

static void on_alarm(int sig)
{
	(void)sig;
	lib_cancel = 1;
}

/* During the SSH confirm wait: FLEETBOX_TEST_FAKE_SSH makes up wait for SSH
 * on the fake VM's address, which nothing answers (in a private network
 * namespace with no route: no packet leaves); the interrupt ends the wait at
 * once instead of after its 2 min timeout. */
static void t_cancel_ssh(void)
{
	h_setup("cancelssh");
	h_enter_netns();
	unsetenv("FLEETBOX_NET"); /* the network-free fake: 203.0.113.x, unroutable here */
	setenv("FLEETBOX_TEST_FAKE_SSH", "1", 1);
	const char *args[] = { "up", "cs", "-n", "2", "--image", h_image(), NULL };
	pid_t pid = spawn_cli(args);
	/* wait until the members are running in their holder: up is in its SSH wait */
	long deadline = h_now_ms() + 20000;
	bool waiting = false;
	while (!waiting && h_now_ms() < deadline) {
		json_t *a = status_of("cs-1"), *b = status_of("cs-2");
		waiting = a && b && !strcmp(state_of(a), "running") && !strcmp(state_of(b), "running");
		json_decref(a);
		json_decref(b);
		nap_ms(20);
	}
	CHECK(waiting);
	nap_ms(1200); /* a progress tick or two, retries meanwhile */
	long t0 = h_now_ms();
	CHECK_INT(kill(pid, SIGINT), 0);
	CHECK_INT(wait_exit_status(pid), 130);
	printf("bench cancel_ssh_wait_ms=%ld\n", h_now_ms() - t0);
	char *out = cli_output();
	/* the first member booted waits for SSH (the others' turn comes after it) */
	CHECK(strstr(out, "cs-1: waiting for SSH (") || strstr(out, "cs-2: waiting for SSH ("));
	CHECK(strstr(out, "error: interrupted during boot; rolled back: deleted cs-1, cs-2") != NULL);
	free(out);
	CHECK(h_wait_until(holder_gone_cond, "cs-1,cs-2", 10000));
	CHECK(!member_dir_exists("cs-1") && !member_dir_exists("cs-2"));
	unsetenv("FLEETBOX_TEST_FAKE_SSH");
	h_teardown();
}

/* The library: a bound fb_up with a flag a SIGALRM handler sets. */
static void t_cancel_lib(void)
{
	h_setup("cancellib");
	setenv("FLEETBOX_HELPER", h_bin, 1);
	const char *names[] = { "cl-1", "cl-2" };
	fb_up_options o = { .names = names, .n_names = 2, .bound = 1, .image = h_image(),
			    .cancel = &lib_cancel };
	fb_cluster *c = (fb_cluster *)1;
	fb_error e = { 0 };
	/* set before the call: nothing is done, nothing to undo */
	lib_cancel = 1;
	CHECK_INT(fb_up(&o, &c, &e), -ECANCELED);
	CHECK(c == NULL);
	CHECK_STR(e.message, "interrupted during validate; nothing to roll back");
	CHECK(!member_dir_exists("cl-1"));
	/* during the boot wait */
	lib_cancel = 0;
	setenv("FLEETBOX_FAKE_BOOT_MS", "60000", 1);
	signal(SIGALRM, on_alarm);
	alarm(1);
	long t0 = h_now_ms();
	CHECK_INT(fb_up(&o, &c, &e), -ECANCELED);
	printf("bench lib_cancel_return_ms=%ld\n", h_now_ms() - t0);
	CHECK_INT(e.code, -ECANCELED);
	CHECK(strstr(e.message, "interrupted during boot; rolled back: deleted cl-1, cl-2") != NULL);
	CHECK(!member_dir_exists("cl-1") && !member_dir_exists("cl-2"));
	CHECK(holder_for("cl-1,cl-2") == 0);
	unsetenv("FLEETBOX_FAKE_BOOT_MS");
	/* and then it works */
	lib_cancel = 0;
	CHECK_INT(fb_up(&o, &c, &e), 0);
	CHECK_INT(e.code, 0);
	CHECK_STR(e.message, "");
	CHECK_INT(fb_cluster_close(c, &e), 0);
	h_teardown();
}

/* An up SIGKILLed while its VMs boot: the boots go on in the holder. The
 * next up (same cluster lock, the members still starting) waits for those
 * boots instead of failing or booting twice. */
static void t_adopt_boot(void)
{
	h_setup("adopt");
	setenv("FLEETBOX_FAKE_BOOT_MS", "3000", 1);
	const char *args[] = { "up", "ab", "-n", "2", "--image", h_image(), NULL };
	pid_t pid = spawn_cli(args);
	pid_t v1 = wait_vm_pid("ab-1"), v2 = wait_vm_pid("ab-2");
	CHECK(v1 > 0 && v2 > 0);
	CHECK_INT(kill(pid, SIGKILL), 0);
	CHECK_INT(wait_exit_status(pid), 128 + SIGKILL);
	unsetenv("FLEETBOX_FAKE_BOOT_MS");
	json_t *o = status_of("ab-1");
	CHECK_STR(state_of(o), "starting");
	json_decref(o);
	pid_t holder = h_pidfile("ab-1");
	char *out;
	CHECK_INT(h_run(&out, "up", "ab", "-n", "2", NULL), 0);
	CHECK(strstr(out, "  ab-1  IP: 203.0.113.2") && strstr(out, "  ab-2  IP: 203.0.113.3"));
	free(out);
	/* the same VMs, the same holder: nothing booted twice */
	CHECK_INT(h_pidfile("ab-1"), holder);
	CHECK(h_pid_alive(v1) && h_pid_alive(v2));
	CHECK_INT(h_fake_vm_pid("ab-1"), v1);
	h_teardown();
}

/* --- progress --- */

struct seen_event {
	char name[64], detail[256], ip[16];
	fb_up_phase phase;
	double elapsed;
};

struct seen {
	struct seen_event ev[256];
	int n;
	int lines;
};

static void record_member(void *data, const fb_member_progress *p)
{
	struct seen *s = data;
	CHECK(p->name && p->phase_name && p->ip && p->detail);
	CHECK(s->n < 256);
	struct seen_event *e = &s->ev[s->n++];
	snprintf(e->name, sizeof(e->name), "%s", p->name);
	snprintf(e->detail, sizeof(e->detail), "%s", p->detail);
	snprintf(e->ip, sizeof(e->ip), "%s", p->ip);
	e->phase = p->phase;
	e->elapsed = p->elapsed;
	fprintf(stderr, "progress %s %s (%.2f s) ip=%s detail=%s\n", p->name, p->phase_name,
		p->elapsed, p->ip, p->detail);
}

static void record_line(void *data, const char *line)
{
	struct seen *s = data;
	s->lines++;
	fprintf(stderr, "line: %s\n", line);
}

/* The phase changes of one member, ticks folded. */
static int phases_of(const struct seen *s, const char *name, fb_up_phase *out, int max)
{
	int k = 0;
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->ev[i].name, name) && (k == 0 || out[k - 1] != s->ev[i].phase) && k < max)
			out[k++] = s->ev[i].phase;
	return k;
}

static const struct seen_event *last_of(const struct seen *s, const char *name)
{
	for (int i = s->n; i-- > 0;)
		if (!strcmp(s->ev[i].name, name))
			return &s->ev[i];
	return NULL;
}

static void t_progress_lib(void)
{
	h_setup("proglib");
	setenv("FLEETBOX_HELPER", h_bin, 1);
	setenv("FLEETBOX_FAKE_BOOT_MS", "2200", 1);
	static struct seen s;
	const char *names[] = { "pl-1" };
	fb_up_options o = { .names = names, .n_names = 1, .bound = 1, .image = h_image(),
			    .progress = record_line, .member_progress = record_member,
			    .progress_data = &s };
	fb_cluster *c;
	fb_error e;
	CHECK_INT(fb_up(&o, &c, &e), 0);
	fb_up_phase ph[16];
	int k = phases_of(&s, "pl-1", ph, 16);
	CHECK_INT(k, 4);
	CHECK(ph[0] == FB_UP_WAITING && ph[1] == FB_UP_CREATING && ph[2] == FB_UP_BOOTING &&
	      ph[3] == FB_UP_READY);
	const struct seen_event *ready = last_of(&s, "pl-1");
	CHECK(strncmp(ready->ip, "203.0.113.", 10) == 0);
	CHECK(ready->elapsed >= 2.0); /* it includes the boot */
	/* while booting, once a second: the same phase, the console's last line */
	int ticks = 0;
	bool console = false;
	double last = 0;
	for (int i = 0; i < s.n; i++) {
		CHECK(s.ev[i].elapsed >= last);
		last = s.ev[i].elapsed;
		if (s.ev[i].phase == FB_UP_BOOTING) {
			ticks++;
			console |= !strcmp(s.ev[i].detail, "fleetbox fake vm pl-1: booting");
		}
	}
	CHECK(ticks >= 2 && console);
	CHECK(s.lines >= 1); /* the line callback still works ("booting 1 member") */
	CHECK_INT(fb_cluster_close(c, &e), 0);
	unsetenv("FLEETBOX_FAKE_BOOT_MS");

	/* a failure: the failing member says why, the others what was undone */
	memset(&s, 0, sizeof(s));
	setenv("FLEETBOX_FAKE_FAIL_CREATE", "pm-2", 1);
	const char *two[] = { "pm-1", "pm-2" };
	o.names = two;
	o.n_names = 2;
	CHECK(fb_up(&o, &c, &e) < 0);
	unsetenv("FLEETBOX_FAKE_FAIL_CREATE");
	const struct seen_event *f = NULL;
	for (int i = 0; i < s.n; i++)
		if (!strcmp(s.ev[i].name, "pm-2") && s.ev[i].phase == FB_UP_FAILED)
			f = &s.ev[i];
	CHECK(f && strstr(f->detail, "forced create failure for pm-2"));
	CHECK(last_of(&s, "pm-1")->phase == FB_UP_ROLLED_BACK);
	CHECK_STR(last_of(&s, "pm-1")->detail, "deleted");
	CHECK(last_of(&s, "pm-2")->phase == FB_UP_ROLLED_BACK);
	h_teardown();
}

static size_t index_of(const char *hay, const char *needle)
{
	const char *p = strstr(hay, needle);
	CHECK(p != NULL);
	return (size_t)(p - hay);
}

/* Not a terminal: a line per phase change; each member's IP line as soon as
 * it is ready, not after the others. */
static void t_progress_cli(void)
{
	h_setup("progcli");
	CHECK_INT(h_run(NULL, "up", "pc-1", "--image", h_image(), NULL), 0);
	setenv("FLEETBOX_FAKE_BOOT_MS", "1500", 1);
	char *out;
	CHECK_INT(h_run(&out, "up", "pc-1", "pc-2", "--image", h_image(), NULL), 0);
	/* the running member is ready at once, before the new one even boots */
	CHECK(index_of(out, "  pc-1  IP: 203.0.113.2  SSH: fleetbox ssh pc-1\n") <
	      index_of(out, "pc-2: booting ("));
	CHECK(index_of(out, "pc-2: waiting (") < index_of(out, "pc-2: creating disk ("));
	CHECK(index_of(out, "pc-2: creating disk (") < index_of(out, "pc-2: booting ("));
	CHECK(index_of(out, "pc-2: booting (") < index_of(out, "  pc-2  IP: 203.0.113.3"));
	/* once per change: the ticks while booting print nothing */
	const char *b = strstr(out, "pc-2: booting (");
	CHECK(strstr(b + 1, "pc-2: booting (") == NULL);
	CHECK(strchr(out, '\033') == NULL);
	free(out);
	unsetenv("FLEETBOX_FAKE_BOOT_MS");
	h_teardown();
}

/* On a terminal: rows redrawn in place with elapsed seconds ticking and the
 * guest console's last line, then the IP line. */
static void t_progress_tty(void)
{
	h_setup("progtty");
	setenv("FLEETBOX_FAKE_BOOT_MS", "2500", 1);
	setenv("TERM", "xterm", 1);
	int master;
	pid_t pid = forkpty(&master, NULL, NULL, NULL);
	CHECK(pid >= 0);
	if (pid == 0) {
		execl(h_bin, h_bin, "up", "pt-1", "--image", h_image(), (char *)NULL);
		_exit(127);
	}
	size_t cap = 1 << 16, len = 0;
	char *buf = calloc(1, cap);
	for (;;) {
		ssize_t r = read(master, buf + len, cap - 1 - len);
		if (r <= 0)
			break; /* EIO once the child closed the terminal */
		len += (size_t)r;
	}
	close(master);
	CHECK_INT(wait_exit_status(pid), 0);
	fprintf(stderr, "%s\n", buf);
	CHECK(strstr(buf, "\033[1A\r\033[J") != NULL); /* redrawn in place */
	CHECK(strstr(buf, "  pt-1          booting            1s  fleetbox fake vm pt-1: booting") != NULL);
	CHECK(strstr(buf, "  pt-1          booting            2s  fleetbox fake vm pt-1: booting") != NULL);
	CHECK(strstr(buf, "  pt-1  IP: 203.0.113.2  SSH: fleetbox ssh pt-1") != NULL);
	free(buf);
	unsetenv("FLEETBOX_FAKE_BOOT_MS");
	h_teardown();
}

/* --- patterns --- */

static bool running_in(const char *m, pid_t holder)
{
	json_t *o = status_of(m);
	bool ok = o && !strcmp(state_of(o), "running") && h_pidfile(m) == holder;
	json_decref(o);
	return ok;
}

/* up NAME resolves NAME as down and rm do. */
static void t_patterns(void)
{
	h_setup("patterns");
	char *out;
	CHECK_INT(h_run(NULL, "up", "pt", "-n", "3", "--image", h_image(), NULL), 0);
	CHECK_INT(h_run(NULL, "down", "pt", NULL), 0);
	/* the cluster comes back, no solo "pt" appears */
	CHECK_INT(h_run(&out, "up", "pt", NULL), 0);
	CHECK(strstr(out, "pt: the members of cluster pt (pt-1, pt-2, pt-3)") != NULL);
	CHECK(strstr(out, "  pt-1  IP: ") && strstr(out, "  pt-2  IP: ") && strstr(out, "  pt-3  IP: "));
	CHECK(strstr(out, "  pt  IP:") == NULL);
	free(out);
	CHECK(!member_dir_exists("pt"));
	pid_t holder = h_pidfile("pt-1");
	CHECK(running_in("pt-1", holder) && running_in("pt-2", holder) && running_in("pt-3", holder));
	/* up of a running cluster by its name: returned as it is */
	CHECK_INT(h_run(&out, "up", "pt", NULL), 0);
	CHECK(strstr(out, "  pt-3  IP: ") != NULL);
	free(out);
	CHECK_INT(h_pidfile("pt-1"), holder);
	/* what rm took away stays away */
	CHECK_INT(h_run(NULL, "rm", "-f", "pt-2", NULL), 0);
	CHECK_INT(h_run(NULL, "down", "pt", NULL), 0);
	CHECK_INT(h_run(&out, "up", "pt", NULL), 0);
	CHECK(strstr(out, "  pt-1  IP: ") && strstr(out, "  pt-3  IP: ") && !strstr(out, "pt-2"));
	free(out);
	CHECK(!member_dir_exists("pt-2") && !member_dir_exists("pt"));

	/* a name that is both a member and a cluster means the member, for up
	 * as for down and rm */
	CHECK_INT(h_run(NULL, "up", "pq", "pq-1", "pq-2", "--image", h_image(), NULL), 0);
	holder = h_pidfile("pq-1");
	CHECK_INT(h_run(NULL, "down", "pq", NULL), 0);
	CHECK(member_gone("pq") && running_in("pq-1", holder) && running_in("pq-2", holder));
	CHECK_INT(h_run(&out, "up", "pq", NULL), 0);
	CHECK(strstr(out, "  pq  IP: ") != NULL && strstr(out, "pq-1") == NULL);
	free(out);
	CHECK(running_in("pq", holder)); /* it joined its cluster's holder */
	CHECK_INT(h_run(NULL, "down", "pq-1", "pq-2", NULL), 0);
	CHECK_INT(h_run(&out, "up", "pq", NULL), 0);
	CHECK(strstr(out, "pq-1") == NULL); /* still only the member */
	free(out);
	CHECK(member_gone("pq-1") && member_gone("pq-2"));
	CHECK_INT(h_run(NULL, "rm", "-f", "pq", NULL), 0);
	CHECK(!member_dir_exists("pq") && member_dir_exists("pq-1"));
	/* with the member gone, the name means the cluster again */
	CHECK_INT(h_run(&out, "up", "pq", NULL), 0);
	CHECK(strstr(out, "  pq-1  IP: ") && strstr(out, "  pq-2  IP: "));
	free(out);
	CHECK(!member_dir_exists("pq"));
	/* a name that is neither: a new solo member; names given twice merge */
	CHECK_INT(h_run(&out, "up", "solo", "--image", h_image(), NULL), 0);
	CHECK(strstr(out, "  solo  IP: ") != NULL);
	free(out);
	CHECK_INT(h_run(&out, "up", "pt", "pt-1", NULL), 0);
	const char *first = strstr(out, "  pt-1  IP: ");
	CHECK(first && !strstr(first + 1, "  pt-1  IP: "));
	free(out);
	/* the library resolves the same way */
	CHECK_INT(h_run(NULL, "down", "pt", NULL), 0);
	setenv("FLEETBOX_HELPER", h_bin, 1);
	const char *names[] = { "pt" };
	fb_up_options o = { .names = names, .n_names = 1 };
	fb_cluster *c;
	fb_error e;
	CHECK_INT(fb_up(&o, &c, &e), 0);
	CHECK_INT(fb_cluster_size(c), 2);
	CHECK_STR(fb_cluster_name(c, 0), "pt-1");
	CHECK_STR(fb_cluster_name(c, 1), "pt-3");
	fb_cluster_close(c, &e);
	/* the rule is in the help */
	CHECK_INT(h_run(&out, "help", "up", NULL), 0);
	CHECK(strstr(out, "A NAME that is both a") && strstr(out, "member and a cluster (a solo `web` next to web-1) means the member."));
	free(out);
	/* no lock files of clusters that do not exist were left by all this */
	char lock[400];
	snprintf(lock, sizeof(lock), "%s/clusters/.pt-1.lock", h_root);
	CHECK(!path_exists(lock));
	snprintf(lock, sizeof(lock), "%s/clusters/.solo.lock", h_root);
	CHECK(path_exists(lock)); /* solo exists: its lock stays */
	h_teardown();
}

/* --- isolation --- */

/* Another process (harness A) holds is-1 bound to itself: a second harness
 * with the same names is refused, with A named, unless it joins. */
static void t_isolation_bound(void)
{
	h_setup("isobound");
	const char *names[] = { "is-1" };
	pid_t ha;
	pid_t a = h_bound_child(names, 1, h_image(), NULL, &ha);
	pid_t vm = h_fake_vm_pid("is-1");
	CHECK(vm > 0);
	fb_up_options o = { .names = names, .n_names = 1, .bound = 1, .image = h_image() };
	fb_cluster *c = NULL;
	fb_error e;
	CHECK_INT(fb_up(&o, &c, &e), -EBUSY);
	CHECK(c == NULL);
	char want[200];
	snprintf(want, sizeof(want), "is-1 is held by holder %d, bound to process %d (uptest), not by this process",
		 (int)ha, (int)a);
	CHECK(strstr(e.message, want) != NULL);
	CHECK(strstr(e.message, "join = 1") != NULL);
	/* a new member of A's cluster would join A's holder: refused too */
	const char *mate[] = { "is-2" };
	o.names = mate;
	CHECK_INT(fb_up(&o, &c, &e), -EBUSY);
	snprintf(want, sizeof(want), "is-2 would join holder %d, bound to process %d", (int)ha, (int)a);
	CHECK(strstr(e.message, want) != NULL);
	CHECK(!member_dir_exists("is-2"));
	CHECK_INT(h_fake_vm_pid("is-1"), vm); /* A's VM was not touched */
	/* the CLI (detached) refuses both as well */
	char *out;
	CHECK_INT(h_run(&out, "up", "is-2", "--image", h_image(), NULL), 1);
	CHECK(strstr(out, "error: is-2 would join holder") && strstr(out, "members there die with that process"));
	free(out);
	CHECK_INT(h_run(&out, "up", "is-1", NULL), 1);
	CHECK(strstr(out, "error: is-1 is held by holder") != NULL);
	free(out);
	CHECK(!member_dir_exists("is-2"));
	/* join = 1: the same VM, A's holder */
	o.names = names;
	o.join = 1;
	CHECK_INT(fb_up(&o, &c, &e), 0);
	CHECK_INT(fb_cluster_holder_pid(c), ha);
	CHECK(strncmp(fb_cluster_ip(c, 0), "203.0.113.", 10) == 0);
	CHECK_INT(fb_cluster_close(c, &e), 0);
	CHECK_INT(h_fake_vm_pid("is-1"), vm); /* closing a joined cluster leaves A's holder alone */
	CHECK_INT(kill(a, SIGKILL), 0);
	waitpid(a, NULL, 0);
	CHECK(h_wait_pid_gone(ha, 10000) >= 0);
	/* with A gone the names are free for us */
	o.join = 0;
	CHECK_INT(fb_up(&o, &c, &e), 0);
	CHECK(fb_cluster_holder_pid(c) != ha);
	/* and a second call of this process joins its own holder without join */
	o.names = mate;
	fb_cluster *c2;
	CHECK_INT(fb_up(&o, &c2, &e), 0);
	CHECK_INT(fb_cluster_holder_pid(c2), fb_cluster_holder_pid(c));
	CHECK_INT(fb_cluster_close(c2, &e), 0);
	CHECK_INT(fb_cluster_close(c, &e), 0);
	h_teardown();
}

/* A detached cluster (fleetbox up) and a bound fb_up of the same names. */
static void t_isolation_detached(void)
{
	h_setup("isodet");
	setenv("FLEETBOX_HELPER", h_bin, 1);
	CHECK_INT(h_run(NULL, "up", "id-1", "--image", h_image(), NULL), 0);
	pid_t holder = h_pidfile("id-1"), vm = h_fake_vm_pid("id-1");
	const char *names[] = { "id-1" };
	fb_up_options o = { .names = names, .n_names = 1, .bound = 1, .image = h_image() };
	fb_cluster *c = NULL;
	fb_error e;
	CHECK_INT(fb_up(&o, &c, &e), -EBUSY);
	char want[160];
	snprintf(want, sizeof(want), "id-1 is held by detached holder %d (a `fleetbox up` cluster)", (int)holder);
	CHECK(strstr(e.message, want) != NULL);
	const char *mate[] = { "id-2" };
	o.names = mate;
	CHECK_INT(fb_up(&o, &c, &e), -EBUSY);
	CHECK(strstr(e.message, "id-2 would join detached holder") != NULL);
	CHECK(!member_dir_exists("id-2"));
	/* opting in joins the detached holder; the member outlives our close */
	o.join = 1;
	CHECK_INT(fb_up(&o, &c, &e), 0);
	CHECK_INT(fb_cluster_holder_pid(c), holder);
	CHECK_INT(fb_cluster_close(c, &e), 0);
	json_t *s = status_of("id-2");
	CHECK_STR(state_of(s), "running");
	json_decref(s);
	CHECK_INT(h_fake_vm_pid("id-1"), vm);
	/* detached callers share detached holders, as before */
	CHECK_INT(h_run(NULL, "up", "id-3", "--image", h_image(), NULL), 0);
	CHECK_INT(h_pidfile("id-3"), holder);
	h_teardown();
}

/* --- ephemeral --- */

static bool root_file_exists(const char *name)
{
	char p[400];
	snprintf(p, sizeof(p), "%s/%s", h_root, name);
	return path_exists(p);
}

/* Closing an ephemeral cluster deletes what it created, and only that. */
static void t_ephemeral_close(void)
{
	h_setup("ephclose");
	setenv("FLEETBOX_HELPER", h_bin, 1);
	CHECK_INT(h_run(NULL, "up", "ep-0", "--image", h_image(), NULL), 0);
	CHECK_INT(h_run(NULL, "down", "ep-0", NULL), 0);
	const char *names[] = { "ep-0", "ep-1", "ep-2" };
	fb_up_options o = { .names = names, .n_names = 3, .bound = 1, .image = h_image(), .ephemeral = 1 };
	fb_cluster *c;
	fb_error e;
	CHECK_INT(fb_up(&o, &c, &e), 0);
	CHECK(member_dir_exists("ep-1") && member_dir_exists("ep-2"));
	pid_t holder = fb_cluster_holder_pid(c);
	CHECK_INT(fb_cluster_close(c, &e), 0);
	CHECK_INT(e.code, 0);
	CHECK(!h_pid_alive(holder));
	CHECK(!member_dir_exists("ep-1") && !member_dir_exists("ep-2"));
	CHECK(member_file_exists("ep-0", "disk") && member_file_exists("ep-0", "config.json"));

	/* detached: close stops the ephemeral members, then deletes them */
	const char *det[] = { "eq-1" };
	fb_up_options d = { .names = det, .n_names = 1, .image = h_image(), .ephemeral = 1 };
	CHECK_INT(fb_up(&d, &c, &e), 0);
	holder = fb_cluster_holder_pid(c);
	CHECK(h_pid_alive(holder));
	CHECK_INT(fb_cluster_close(c, &e), 0);
	CHECK(!member_dir_exists("eq-1") && !root_file_exists("clusters/eq"));
	CHECK(h_wait_pid_gone(holder, 10000) >= 0); /* its last member went: the holder exits */
	char lock[400];
	snprintf(lock, sizeof(lock), "%s/clusters/.eq.lock", h_root);
	CHECK(!path_exists(lock));

	/* not ephemeral: close keeps the members (bound: stopped) */
	const char *keep[] = { "er-1" };
	fb_up_options k = { .names = keep, .n_names = 1, .bound = 1, .image = h_image() };
	CHECK_INT(fb_up(&k, &c, &e), 0);
	CHECK_INT(fb_cluster_close(c, &e), 0);
	CHECK(member_file_exists("er-1", "disk"));
	h_teardown();
}

/* Does the holder delete an ephemeral member itself when it stops serving
 * it (the holder side of the spec's "ephemeral" key)? */
static bool holder_deletes_ephemeral(void)
{
	const char *names[] = { "ek-0" };
	fb_up_options o = { .names = names, .n_names = 1, .bound = 1, .image = h_image(), .ephemeral = 1 };
	fb_cluster *c;
	fb_error e;
	CHECK_INT(fb_up(&o, &c, &e), 0);
	char *r = h_req("ek-0", "{\"cmd\":\"stop\"}\n", 2000);
	CHECK_STR(r, "{}");
	free(r);
	pid_t holder = fb_cluster_holder_pid(c);
	CHECK(h_wait_pid_gone(holder, 10000) >= 0); /* last member: the holder exits */
	bool deleted = !member_dir_exists("ek-0");
	fb_cluster_close(c, &e);
	return deleted;
}

/* kill -9 of the owner: its bound holder tears down and deletes the
 * ephemeral members. */
static void t_ephemeral_kill(void)
{
	h_setup("ephkill");
	setenv("FLEETBOX_HELPER", h_bin, 1);
	CHECK(holder_deletes_ephemeral()); /* a stop of the last member */
	const char *names[] = { "ek-1", "ek-2" };
	struct h_bound b = { .o = { .names = names, .n_names = 2, .image = h_image(),
				    .ephemeral = 1 } };
	pid_t holder, child = h_bound_start(&b, &holder);
	CHECK(member_dir_exists("ek-1") && member_dir_exists("ek-2"));
	CHECK_INT(kill(child, SIGKILL), 0);
	waitpid(child, NULL, 0);
	CHECK(h_wait_pid_gone(holder, 20000) >= 0);
	CHECK(!member_dir_exists("ek-1") && !member_dir_exists("ek-2"));
	h_teardown();
}

/* --- fb_cluster_add --- */

static void t_cluster_add(void)
{
	h_setup("add");
	setenv("FLEETBOX_HELPER", h_bin, 1);
	char fxdir[400];
	snprintf(fxdir, sizeof(fxdir), "%s/fx", h_root);
	CHECK_INT(mkdir_p(fxdir, 0755), 0);
	const char *names[] = { "ca-1" };
	fb_fixture_spec fx[] = { { fxdir, "/srv/fx" } };
	fb_up_options o = { .names = names, .n_names = 1, .bound = 1, .image = h_image(),
			    .cpus = 3, .fixtures = fx, .n_fixtures = 1 };
	fb_cluster *c;
	fb_error e;
	CHECK_INT(fb_up(&o, &c, &e), 0);
	pid_t holder = fb_cluster_holder_pid(c);
	/* a new member, in the same holder and network, with the same options */
	CHECK_INT(fb_cluster_add(c, "ca-2", &e), 0);
	CHECK_INT(e.code, 0);
	CHECK_INT(fb_cluster_size(c), 2);
	CHECK_STR(fb_cluster_name(c, 1), "ca-2");
	CHECK_STR(fb_cluster_ip(c, 1), "203.0.113.3");
	CHECK_INT(h_pidfile("ca-2"), holder);
	fb_member_info info;
	CHECK_INT(fb_status(NULL, "ca-2", &info, &e), 0);
	CHECK_STR(info.state, "running");
	CHECK_INT(info.cpus, 3);
	CHECK_STR(info.image, h_image());
	CHECK(member_file_exists("ca-2", "fixture-0.img"));
	/* another cluster's name: it joins this holder too (the caller asked) */
	CHECK_INT(fb_cluster_add(c, "cb", &e), 0);
	CHECK_INT(h_pidfile("cb"), holder);
	/* a member that runs in another holder is not taken */
	CHECK_INT(h_run(NULL, "up", "cz-1", "--image", h_image(), NULL), 0);
	CHECK_INT(fb_cluster_add(c, "cz-1", &e), -EBUSY);
	CHECK(strstr(e.message, "cz-1 is running in holder") && strstr(e.message, "not in this cluster's holder"));
	CHECK_INT(fb_cluster_size(c), 3);
	/* a failure rolls back the new member, the cluster is unchanged */
	CHECK_INT(fb_cluster_add(c, "Bad_Name", &e), -EINVAL);
	CHECK_INT(fb_cluster_add(NULL, "x", &e), -EINVAL);
	CHECK_INT(fb_cluster_add(c, NULL, &e), -EINVAL);
	CHECK_INT(fb_cluster_size(c), 3);
	/* close: the bound holder stops every member, added ones included */
	CHECK_INT(fb_cluster_close(c, &e), 0);
	CHECK(h_wait_pid_gone(holder, 5000) >= 0);
	CHECK(member_gone("ca-2") && member_gone("cb"));
	CHECK(member_file_exists("ca-2", "disk")); /* not ephemeral: kept */

	/* an ephemeral cluster's added members are ephemeral */
	const char *en[] = { "ce-1" };
	fb_up_options eo = { .names = en, .n_names = 1, .bound = 1, .image = h_image(), .ephemeral = 1 };
	CHECK_INT(fb_up(&eo, &c, &e), 0);
	CHECK_INT(fb_cluster_add(c, "ce-2", &e), 0);
	CHECK_INT(fb_cluster_close(c, &e), 0);
	CHECK(!member_dir_exists("ce-1") && !member_dir_exists("ce-2"));

	/* a detached cluster grows in its detached holder */
	const char *dn[] = { "cd-1" };
	fb_up_options dopt = { .names = dn, .n_names = 1, .image = h_image() };
	CHECK_INT(fb_up(&dopt, &c, &e), 0);
	holder = fb_cluster_holder_pid(c);
	CHECK_INT(fb_cluster_add(c, "cd-2", &e), 0);
	CHECK_INT(fb_cluster_close(c, &e), 0);
	CHECK_INT(h_pidfile("cd-2"), holder);
	json_t *st = status_of("cd-2");
	CHECK_STR(state_of(st), "running");
	json_decref(st);
	h_teardown();
}

/* --- crash-safe creation --- */

static bool nothing_left_of(const char *cluster)
{
	char p[400];
	snprintf(p, sizeof(p), "%s/clusters/%s", h_root, cluster);
	if (path_exists(p))
		return false;
	snprintf(p, sizeof(p), "%s/clusters/.%s.lock", h_root, cluster);
	return !path_exists(p);
}

/* A bound client doing fb_up of kc-1, stopped at step, then SIGKILLed;
 * returns once its holder is gone too. */
static void kill_bound_up_at(const char *step)
{
	setenv("FLEETBOX_TEST_STOP_AT", step, 1);
	pid_t child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		const char *names[] = { "kc-1" };
		fb_up_options o = { .names = names, .n_names = 1, .bound = 1, .image = h_image() };
		fb_cluster *c;
		fb_error e;
		_exit(fb_up(&o, &c, &e) == 0 ? 0 : 3);
	}
	unsetenv("FLEETBOX_TEST_STOP_AT");
	wait_stopped(child);
	CHECK_INT(kill(child, SIGKILL), 0);
	CHECK_INT(wait_exit_status(child), 128 + SIGKILL);
	CHECK(h_wait_until(holder_gone_cond, "kc-1", 10000));
}

static void t_create_crash(void)
{
	h_setup("createcrash");
	setenv("FLEETBOX_HELPER", h_bin, 1);
	static const char *const steps[] = { "prepare",	    "create-dir",    "create-marker",
					     "create-keys", "create-disk",   "create-config",
					     "reserve",	    "boot",	     NULL };
	char *out;
	for (const char *const *st = steps; *st; st++) {
		/* then up (it reclaims or boots what is there), then rm */
		kill_bound_up_at(*st);
		fprintf(stderr, "killed at %s\n", *st);
		CHECK_INT(h_run(&out, "up", "kc-1", "--image", h_image(), NULL), 0);
		CHECK(strstr(out, "  kc-1  IP: ") != NULL);
		free(out);
		CHECK(!member_file_exists("kc-1", STORE_CREATING_NAME));
		CHECK_INT(h_run(NULL, "rm", "-f", "kc-1", NULL), 0);
		CHECK(nothing_left_of("kc"));
		/* or rm straight away */
		kill_bound_up_at(*st);
		CHECK_INT(h_run(NULL, "rm", "-f", "kc-1", NULL), 0);
		CHECK(nothing_left_of("kc"));
		CHECK_INT(h_run(&out, "ls", "-q", NULL), 0);
		CHECK_STR(out, "");
		free(out);
	}
	/* a disk that was there before (no config) is still never touched */
	char d[400], disk[420];
	snprintf(d, sizeof(d), "%s/clusters/kd/kd-1", h_root);
	CHECK_INT(mkdir_p(d, 0700), 0);
	snprintf(disk, sizeof(disk), "%s/disk", d);
	CHECK_INT(file_write_atomic(disk, "precious", 8, 0600), 0);
	CHECK_INT(h_run(&out, "up", "kd-1", "--image", h_image(), NULL), 1);
	CHECK(strstr(out, "already exists and is not a member's") != NULL);
	free(out);
	CHECK_INT(h_run(NULL, "rm", "-f", "kd-1", NULL), 0);
	char *s = h_read_file(disk);
	CHECK(s && !strcmp(s, "precious"));
	free(s);
	h_teardown();
}

/* --- down/rm: concurrent stops, nothing left behind --- */

/* `down` of N members sends every stop before it waits for any: stopped at
 * the point where all stops are answered, the holders have been told to
 * stop all of them (a one-after-another down would have told only one). */
static void t_parallel_down(void)
{
	h_setup("pdown");
	char rec[400];
	snprintf(rec, sizeof(rec), "%s/record.ndjson", h_root);
	setenv("FLEETBOX_FAKE_RECORD", rec, 1);
	CHECK_INT(h_run(NULL, "up", "pd", "-n", "2", "--image", h_image(), NULL), 0);
	CHECK_INT(h_run(NULL, "up", "pe-1", "--image", h_image(), NULL), 0); /* another holder */
	pid_t h1 = h_pidfile("pd-1"), h2 = h_pidfile("pe-1");
	CHECK(h1 > 0 && h2 > 0 && h1 != h2);
	setenv("FLEETBOX_TEST_STOP_AT", "stop-wait", 1);
	const char *args[] = { "down", "pd", "pe-1", NULL };
	pid_t pid = spawn_cli(args);
	wait_stopped(pid);
	unsetenv("FLEETBOX_TEST_STOP_AT");
	/* the holders work on their own while the client is stopped */
	CHECK(h_wait_pid_gone(h1, 10000) >= 0 && h_wait_pid_gone(h2, 10000) >= 0);
	char *s = h_read_file(rec);
	fprintf(stderr, "record:\n%s", s ? s : "");
	CHECK(s && strstr(s, "{\"op\":\"stop\",\"name\":\"pd-1\"}") &&
	      strstr(s, "{\"op\":\"stop\",\"name\":\"pd-2\"}") &&
	      strstr(s, "{\"op\":\"stop\",\"name\":\"pe-1\"}"));
	free(s);
	CHECK_INT(kill(pid, SIGCONT), 0);
	CHECK_INT(wait_exit_status(pid), 0);
	CHECK(member_gone("pd-1") && member_gone("pd-2") && member_gone("pe-1"));
	CHECK(member_file_exists("pd-1", "disk"));
	unsetenv("FLEETBOX_FAKE_RECORD");
	/* rm in parallel too, and it leaves no lock file or holder log of what it removed */
	CHECK_INT(h_run(NULL, "up", "pd", "pe-1", NULL), 0);
	CHECK(root_file_exists("runner-pd-1.log"));
	CHECK_INT(h_run(NULL, "rm", "-f", "pd", "pe", NULL), 0);
	CHECK(nothing_left_of("pd") && nothing_left_of("pe"));
	CHECK(!root_file_exists("runner-pd-1.log") && !root_file_exists("runner-pe-1.log"));
	h_teardown();
}

/* A holder's log stays while the holder lives (it serves others); rm of its
 * last member takes it. prune sweeps what crashes left. */
static void t_rm_tidy(void)
{
	h_setup("rmtidy");
	CHECK_INT(h_run(NULL, "up", "rt", "-n", "2", "--image", h_image(), NULL), 0);
	CHECK_INT(h_run(NULL, "rm", "-f", "rt-1", NULL), 0);
	CHECK(root_file_exists("runner-rt-1.log")); /* rt-2's holder writes it */
	CHECK_INT(h_run(NULL, "rm", "-f", "rt-2", NULL), 0);
	CHECK(!root_file_exists("runner-rt-1.log"));
	CHECK(nothing_left_of("rt"));
	/* leftovers of crashes: an orphan holder log, a lock of a cluster that
	 * is gone, an unfinished creation */
	char p[400];
	snprintf(p, sizeof(p), "%s/runner-ghost-1.log", h_root);
	CHECK_INT(file_write_atomic(p, "x", 1, 0600), 0);
	snprintf(p, sizeof(p), "%s/clusters/.ghost.lock", h_root);
	CHECK_INT(file_write_atomic(p, "", 0, 0600), 0);
	snprintf(p, sizeof(p), "%s/clusters/gh/gh-1", h_root);
	CHECK_INT(mkdir_p(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/clusters/gh/gh-1/.creating", h_root);
	CHECK_INT(file_write_atomic(p, "1", 1, 0600), 0);
	snprintf(p, sizeof(p), "%s/clusters/gh/gh-1/disk", h_root);
	CHECK_INT(file_write_atomic(p, "half", 4, 0600), 0);
	/* and things prune must keep: a member, its lock, a live holder's log */
	CHECK_INT(h_run(NULL, "up", "kp-1", "--image", h_image(), NULL), 0);
	char *out;
	CHECK_INT(h_run(&out, "ls", "-q", NULL), 0);
	CHECK_STR(out, "kp-1\n"); /* the unfinished creation is not a member */
	free(out);
	CHECK_INT(h_run(&out, "prune", NULL), 0);
	CHECK(strstr(out, "3 stale file(s)") != NULL);
	free(out);
	CHECK(!root_file_exists("runner-ghost-1.log") && !root_file_exists("clusters/.ghost.lock"));
	CHECK(nothing_left_of("gh"));
	CHECK(root_file_exists("runner-kp-1.log") && root_file_exists("clusters/.kp.lock"));
	CHECK(member_file_exists("kp-1", "disk"));
	h_teardown();
}

/* rm never reports success for what it did not delete: a member directory
 * that cannot be removed (a mount point inside it, in a private mount
 * namespace) makes rm fail, and says which. */
static void t_rm_undeletable(void)
{
	if (geteuid() != 0) {
		printf("skipped: needs root for a private mount namespace\n");
		exit(77);
	}
	h_setup("rmfail");
	CHECK_INT(h_run(NULL, "up", "rf-1", "--image", h_image(), NULL), 0);
	CHECK_INT(h_run(NULL, "down", "rf-1", NULL), 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		char sub[400];
		snprintf(sub, sizeof(sub), "%s/clusters/rf/rf-1/mnt", h_root);
		if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mkdir(sub, 0700) < 0 || mount("tmpfs", sub, "tmpfs", 0, NULL) < 0)
			_exit(77);
		char *out;
		int rc = h_run(&out, "rm", "-f", "rf-1", NULL);
		bool said = strstr(out, "error: 1 of 1 member not deleted: delete ") && strstr(out, "rf-1");
		free(out);
		umount2(sub, MNT_DETACH);
		_exit(rc == 1 && said ? 0 : 1);
	}
	int rc = wait_exit_status(pid);
	if (rc == 77) {
		printf("skipped: no private mount namespace here\n");
		h_teardown();
		exit(77);
	}
	CHECK_INT(rc, 0);
	h_teardown();
}

/* --- argument hygiene --- */

static void junk(fb_error *e)
{
	e->code = -EIO;
	snprintf(e->message, sizeof(e->message), "stale message");
}

static void check_cleared(const fb_error *e)
{
	CHECK_INT(e->code, 0);
	CHECK_STR(e->message, "");
}

static void t_args(void)
{
	h_setup("args");
	setenv("FLEETBOX_HELPER", h_bin, 1);
	const char *names[] = { "ar-1" };
	fb_up_options o = { .names = names, .n_names = 1, .bound = 1, .image = h_image() };
	fb_cluster *c = (fb_cluster *)&o;
	fb_error e;
	/* NULL arguments: -EINVAL and a message, never a crash */
	CHECK_INT(fb_up(NULL, &c, &e), -EINVAL);
	CHECK(c == NULL && e.code == -EINVAL && strstr(e.message, "options is NULL"));
	CHECK_INT(fb_up(&o, NULL, &e), -EINVAL);
	CHECK_INT(fb_up(&o, NULL, NULL), -EINVAL);
	fb_up_options bad = o;
	bad.names = NULL;
	CHECK_INT(fb_up(&bad, &c, &e), -EINVAL);
	CHECK(strstr(e.message, "names is NULL") != NULL);
	const char *nul[] = { NULL };
	bad.names = nul;
	CHECK_INT(fb_up(&bad, &c, &e), -EINVAL);
	CHECK(strstr(e.message, "names[0] is NULL") != NULL);
	bad = o;
	bad.n_fixtures = 1;
	CHECK_INT(fb_up(&bad, &c, &e), -EINVAL);
	CHECK(strstr(e.message, "fixtures is NULL") != NULL);
	fb_fixture_spec fx = { NULL, "/x" };
	bad.fixtures = &fx;
	CHECK_INT(fb_up(&bad, &c, &e), -EINVAL);
	/* negative sizes are refused, not replaced by defaults */
	bad = o;
	bad.cpus = -1;
	CHECK_INT(fb_up(&bad, &c, &e), -EINVAL);
	CHECK_STR(e.message, "cpus is -1: want a positive value, or 0 for the default");
	bad.cpus = 0;
	bad.memory_mb = -512;
	CHECK_INT(fb_up(&bad, &c, &e), -EINVAL);
	CHECK(strstr(e.message, "memory_mb is -512") != NULL);
	bad.memory_mb = 0;
	bad.disk_mb = -1;
	CHECK_INT(fb_up(&bad, &c, &e), -EINVAL);
	CHECK(strstr(e.message, "disk_mb is -1") != NULL);
	CHECK(!member_dir_exists("ar-1"));
	/* more than one /24 holds, up front */
	static const char *many[254];
	static char buf[254][16];
	for (int i = 0; i < 254; i++) {
		snprintf(buf[i], sizeof(buf[i]), "mn-%d", i + 1);
		many[i] = buf[i];
	}
	bad = o;
	bad.names = many;
	bad.n_names = 254;
	CHECK_INT(fb_up(&bad, &c, &e), -EINVAL);
	CHECK(strstr(e.message, "254 members: one network (a /24) holds at most 253") != NULL);
	CHECK(!root_file_exists("clusters/mn"));
	char *out;
	CHECK_INT(h_run(&out, "up", "mn", "-n", "254", NULL), 1);
	CHECK(strstr(out, "error: up: -n 254: one network (a /24) holds at most 253 members") != NULL);
	free(out);
	CHECK(!root_file_exists("clusters/mn"));
	/* down/rm: NULL patterns */
	CHECK_INT(fb_down(NULL, NULL, 1, &e), -EINVAL);
	CHECK_INT(fb_rm(NULL, nul, 1, &e), -EINVAL);
	CHECK_INT(fb_rm(NULL, nul, 1, NULL), -EINVAL);
	/* the accessors take NULL */
	CHECK_INT(fb_cluster_size(NULL), 0);
	CHECK(fb_cluster_name(NULL, 0) == NULL && fb_cluster_ip(NULL, 0) == NULL);
	CHECK_INT(fb_cluster_holder_pid(NULL), 0);
	junk(&e);
	CHECK_INT(fb_cluster_close(NULL, &e), 0);
	check_cleared(&e);
	/* success clears a stale error, in every call */
	junk(&e);
	CHECK_INT(fb_up(&o, &c, &e), 0);
	check_cleared(&e);
	CHECK(fb_cluster_name(c, 5) == NULL && fb_cluster_ip(c, 5) == NULL);
	junk(&e);
	CHECK_INT(fb_cluster_add(c, "ar-2", &e), 0);
	check_cleared(&e);
	junk(&e);
	CHECK_INT(fb_cluster_close(c, &e), 0);
	check_cleared(&e);
	const char *pat[] = { "ar" };
	junk(&e);
	CHECK_INT(fb_down(NULL, pat, 1, &e), 0);
	check_cleared(&e);
	junk(&e);
	CHECK_INT(fb_rm(NULL, pat, 1, &e), 0);
	check_cleared(&e);
	junk(&e);
	CHECK_INT(fb_rm_all(NULL, &e), 0);
	check_cleared(&e);
	junk(&e);
	CHECK_INT(fb_down_all(NULL, &e), 0);
	check_cleared(&e);
	/* create options are ignored for running members too, and it says so */
	CHECK_INT(h_run(NULL, "up", "nr-1", "--image", h_image(), NULL), 0);
	CHECK_INT(h_run(&out, "up", "nr-1", "--cpus", "4", NULL), 0);
	CHECK(strstr(out, "note: nr-1 is running; create options are ignored") != NULL);
	free(out);
	h_teardown();
}

static const struct h_case cases[] = {
	{ "up-cancel", t_cancel_phases },   { "up-cancel-boot", t_cancel_boot },
	{ "up-cancel-join", t_cancel_join }, { "up-cancel-twice", t_cancel_twice },
	{ "up-cancel-lib", t_cancel_lib }, { "up-cancel-ssh", t_cancel_ssh },
	{ "up-adopt-boot", t_adopt_boot },
	{ "up-progress-lib", t_progress_lib },
	{ "up-progress-cli", t_progress_cli }, { "up-progress-tty", t_progress_tty },
	{ "up-patterns", t_patterns },	    { "up-isolation-bound", t_isolation_bound },
	{ "up-isolation-detached", t_isolation_detached }, { "up-ephemeral", t_ephemeral_close },
	{ "up-ephemeral-kill", t_ephemeral_kill }, { "up-cluster-add", t_cluster_add },
	{ "up-create-crash", t_create_crash }, { "down-parallel", t_parallel_down },
	{ "rm-tidy", t_rm_tidy },		  { "rm-undeletable", t_rm_undeletable },
	{ "up-args", t_args },
};

int main(int argc, char **argv)
{
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
