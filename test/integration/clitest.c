/* CLI tests with the real binary and the fake VMM: sudo re-exec and store
 * ownership, unreadable store entries, help and man page, error messages,
 * ls, logs, ssh-config, completion. Usage: clitest <case>. */
#include "harness.h"
#include "rpc/wire.h"
#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOBODY 65534

static char *run_tool(const char *prog, char *const *argv, int *status)
{
	struct cmd c;
	cmd_init(&c, prog);
	for (char *const *a = argv; *a; a++)
		cmd_add(&c, *a);
	char *out = NULL;
	struct err e = { 0 };
	int r = cmd_run(&c, &out, &e);
	cmd_fini(&c);
	*status = r == 0 ? 0 : (strstr(e.msg, "(exit ") ? atoi(strstr(e.msg, "(exit ") + 6) : -1);
	if (!out)
		out = strdup(e.msg);
	return out;
}

/* ---- sudo: a test user, a sudoers rule for a copy of the binary ---- */

static char s_user[32], s_rule[128], s_bindir[300];

static void sudo_cleanup(void)
{
	h_teardown(); /* with the copied binary, before it goes */
	if (s_rule[0])
		unlink(s_rule);
	if (s_user[0]) {
		int st;
		char *argv[] = { s_user, NULL };
		free(run_tool("userdel", argv, &st));
		s_user[0] = '\0';
	}
	if (s_bindir[0])
		rm_rf(s_bindir);
}

static void on_term(int sig)
{
	sudo_cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Creates the user and a copy of the binary it may run (the build tree may
 * not be reachable for it); returns its uid/gid. */
static void sudo_user_create(uid_t *uid, gid_t *gid)
{
	snprintf(s_user, sizeof(s_user), "fbsudo%d", (int)getpid());
	atexit(sudo_cleanup);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	int st;
	char *argv[] = { (char *)"-M", (char *)"-U", (char *)"-s", (char *)"/bin/sh", (char *)"-d",
			 (char *)"/nonexistent", s_user, NULL };
	char *out = run_tool("useradd", argv, &st);
	fprintf(stderr, "useradd %s: %s\n", s_user, out);
	free(out);
	CHECK_INT(st, 0);
	struct passwd *pw = getpwnam(s_user);
	CHECK(pw != NULL);
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	snprintf(s_bindir, sizeof(s_bindir), "/tmp/fb-sudo-bin-%d", (int)getpid());
	CHECK_INT(mkdir_p(s_bindir, 0755), 0);
	static char bin[400];
	snprintf(bin, sizeof(bin), "%s/fleetbox", s_bindir);
	char *cp[] = { (char *)h_bin, bin, NULL };
	free(run_tool("cp", cp, &st));
	CHECK_INT(st, 0);
	CHECK_INT(chmod(bin, 0755), 0);
	h_bin = bin;
}

/* A sudoers.d drop-in: the user may run exactly that binary as root. */
static void sudo_rule_add(void)
{
	snprintf(s_rule, sizeof(s_rule), "/etc/sudoers.d/fleetbox-test-%d", (int)getpid());
	char text[600];
	snprintf(text, sizeof(text), "%s ALL=(root) NOPASSWD: %s\n", s_user, h_bin);
	CHECK_INT(file_write_atomic(s_rule, text, strlen(text), 0440), 0);
	int st;
	char *argv[] = { (char *)"-cf", s_rule, NULL };
	char *out = run_tool("visudo", argv, &st);
	free(out);
	CHECK_INT(st, 0);
}

struct walk {
	uid_t uid;
	gid_t gid;
	int n, bad;
};

/* Every entry under dir (not following symlinks) owned by uid:gid. */
static void walk_owned(const char *dir, struct walk *w)
{
	DIR *d = opendir(dir);
	CHECK(d != NULL);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char p[1024];
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		struct stat st;
		CHECK_INT(lstat(p, &st), 0);
		w->n++;
		if (st.st_uid != w->uid || st.st_gid != w->gid) {
			fprintf(stderr, "not the user's: %s (%u:%u)\n", p, (unsigned)st.st_uid,
				(unsigned)st.st_gid);
			w->bad++;
		}
		if (S_ISDIR(st.st_mode))
			walk_owned(p, w);
	}
	closedir(d);
}

static void check_all_owned(uid_t uid, gid_t gid, int min_entries)
{
	struct walk w = { uid, gid, 0, 0 };
	walk_owned(h_root, &w);
	printf("ownership: %d entries, %d not the user's\n", w.n, w.bad);
	CHECK_INT(w.bad, 0);
	CHECK(w.n >= min_entries);
}

/* An ordinary user runs `up`: fleetbox re-runs it through sudo, everything
 * in the store is the user's, and the user keeps working without sudo. */
static void t_sudo(void)
{
	if (geteuid() != 0) {
		printf("skipped: needs root to create a user and a sudoers rule\n");
		exit(77);
	}
	h_setup("sudo");
	h_enter_netns(); /* FLEETBOX_NET=bridge: up needs root */
	uid_t uid;
	gid_t gid;
	sudo_user_create(&uid, &gid);
	char *argv[] = { (char *)"-R", NULL, h_root, NULL };
	char own[64];
	snprintf(own, sizeof(own), "%u:%u", (unsigned)uid, (unsigned)gid);
	argv[1] = own;
	int st;
	free(run_tool("chown", argv, &st));
	CHECK_INT(st, 0);
	char *out;
	/* no sudoers rule yet: sudo -n refuses; a clear error, nothing created */
	CHECK_INT(h_run_as(uid, gid, &out, "up", "sd", "-n", "2", "--image", h_image(), NULL), 1);
	CHECK(strstr(out, "note: up needs root for networking") != NULL);
	CHECK(strstr(out, "error: sudo did not run fleetbox") != NULL);
	free(out);
	char cdir[400];
	snprintf(cdir, sizeof(cdir), "%s/clusters/sd", h_root);
	CHECK(!path_exists(cdir));
	/* FLEETBOX_NO_SUDO=1 and a missing sudo: errors before anything */
	setenv("FLEETBOX_NO_SUDO", "1", 1);
	CHECK_INT(h_run_as(uid, gid, &out, "up", "sd", "--image", h_image(), NULL), 1);
	CHECK(strstr(out, "FLEETBOX_NO_SUDO=1 forbids sudo") != NULL);
	free(out);
	unsetenv("FLEETBOX_NO_SUDO");
	char *path = strdup(getenv("PATH"));
	setenv("PATH", "/nonexistent", 1);
	CHECK_INT(h_run_as(uid, gid, &out, "up", "sd", "--image", h_image(), NULL), 1);
	CHECK(strstr(out, "sudo is not installed") != NULL);
	free(out);
	setenv("PATH", path, 1);
	free(path);
	CHECK(!path_exists(cdir));

	sudo_rule_add();
	/* a store that is not the user's is refused under sudo (root would write there) */
	char rootstore[300];
	snprintf(rootstore, sizeof(rootstore), "%s-root-owned", h_root);
	CHECK_INT(mkdir(rootstore, 0755), 0);
	setenv("FLEETBOX_HOME", rootstore, 1);
	CHECK_INT(h_run_as(uid, gid, &out, "up", "sd", "--image", h_image(), NULL), 1);
	setenv("FLEETBOX_HOME", h_root, 1);
	CHECK(strstr(out, "under sudo, the store must belong to the invoking user") != NULL);
	free(out);
	CHECK_INT(rmdir(rootstore), 0); /* still empty */
	CHECK_INT(h_run_as(uid, gid, &out, "up", "sd", "-n", "2", "--image", h_image(), NULL), 0);
	CHECK(strstr(out, "  sd-1  IP: 192.168.0.2") && strstr(out, "  sd-2  IP: 192.168.0.3"));
	free(out);
	pid_t holder = h_pidfile("sd-1");
	CHECK(holder > 0);
	char proc[64];
	struct stat pst;
	snprintf(proc, sizeof(proc), "/proc/%d", (int)holder);
	CHECK_INT(stat(proc, &pst), 0);
	CHECK_INT(pst.st_uid, 0); /* the holder runs as root ... */
	check_all_owned(uid, gid, 15); /* ... and everything it and the CLI made is the user's */

	/* the user, without sudo: ls, ssh-config, down, up (sudo again), rm */
	CHECK_INT(h_run_as(uid, gid, &out, "ls", NULL), 0);
	CHECK(strstr(out, "sd-1") && strstr(out, "running") && !strstr(out, "warning"));
	free(out);
	CHECK_INT(h_run_as(uid, gid, &out, "ssh-config", NULL), 0);
	free(out);
	CHECK_INT(h_run_as(uid, gid, &out, "down", "sd", NULL), 0);
	CHECK(strstr(out, "stopped sd-1") && strstr(out, "stopped sd-2"));
	free(out);
	CHECK(h_wait_pid_gone(holder, 10000) >= 0);
	check_all_owned(uid, gid, 15);
	CHECK_INT(h_run_as(uid, gid, &out, "up", "sd-1", "sd-2", NULL), 0);
	free(out);
	check_all_owned(uid, gid, 15);
	CHECK_INT(h_run_as(uid, gid, &out, "rm", "-f", "sd", NULL), 0);
	CHECK(strstr(out, "removed sd-1") && strstr(out, "removed sd-2"));
	free(out);
	CHECK(!path_exists(cdir));
	CHECK_INT(h_count_links("fb"), 0);
	check_all_owned(uid, gid, 1);
	h_teardown();
	sudo_cleanup();
}

/* ---- unreadable store entries (left by a root process) ---- */

static void t_unreadable(void)
{
	if (geteuid() != 0) {
		printf("skipped: needs root to leave entries another user cannot read\n");
		exit(77);
	}
	h_setup("unread");
	char *out;
	/* as root without sudo: root-owned files, like an old `sudo fleetbox` */
	CHECK_INT(h_run(NULL, "up", "ur", "-n", "3", "--image", h_image(), NULL), 0);
	CHECK_INT(h_run(NULL, "down", "ur", NULL), 0);
	char *argv[] = { (char *)"-R", (char *)"65534:65534", h_root, NULL };
	int st;
	free(run_tool("chown", argv, &st));
	CHECK_INT(st, 0);
	char p[600];
	/* ur-1: a root-owned directory with content inside the member dir */
	snprintf(p, sizeof(p), "%s/clusters/ur/ur-1/leftover", h_root);
	CHECK_INT(mkdir_p(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/clusters/ur/ur-1/leftover/f", h_root);
	CHECK_INT(file_write_atomic(p, "x", 1, 0600), 0);
	/* ur-2: the member dir itself root's and closed */
	snprintf(p, sizeof(p), "%s/clusters/ur/ur-2", h_root);
	CHECK_INT(chown(p, 0, 0), 0);
	CHECK_INT(chmod(p, 0700), 0);
	/* ur-3: its config.json root's */
	snprintf(p, sizeof(p), "%s/clusters/ur/ur-3/config.json", h_root);
	CHECK_INT(chown(p, 0, 0), 0);

	CHECK_INT(h_run_as(NOBODY, NOBODY, &out, "ls", NULL), 0);
	CHECK(strstr(out, "warning: cannot read ") && strstr(out, "clusters/ur/ur-2: Permission denied"));
	CHECK(strstr(out, "clusters/ur/ur-3/config.json: Permission denied") != NULL);
	CHECK(strstr(out, "ur-1 ") != NULL);
	free(out);
	/* rm never reports success for what it did not delete */
	CHECK_INT(h_run_as(NOBODY, NOBODY, &out, "rm", "-f", "ur-1", NULL), 1);
	CHECK(!strstr(out, "removed ur-1") && strstr(out, "not deleted") &&
	      strstr(out, "Permission denied"));
	free(out);
	CHECK_INT(h_run_as(NOBODY, NOBODY, &out, "rm", "-f", "ur-2", NULL), 1);
	CHECK(!strstr(out, "removed") && strstr(out, "ur-2") && strstr(out, "Permission denied"));
	free(out);
	snprintf(p, sizeof(p), "%s/clusters/ur/ur-2", h_root);
	CHECK(path_exists(p));
	h_teardown();
}

/* ---- help, man page, environment list ---- */

static void check_help_text(const char *cmd, const char *out)
{
	char want[64];
	snprintf(want, sizeof(want), "usage: fleetbox %s", cmd);
	if (!strstr(out, want) || !strstr(out, "examples:\n  fleetbox ") ||
	    !strstr(out, "exit codes:\n  0 ") || (!strstr(out, "\n  1 ") && !strstr(out, "\n  N "))) {
		fprintf(stderr, "help %s is incomplete:\n%s\n", cmd, out);
		CHECK(0);
	}
}

static void t_help(void)
{
	h_setup("help");
	char *out, *main_help;
	CHECK_INT(h_run(&main_help, "--help", NULL), 0);
	const char *cmds[] = { "up", "down", "rm", "ls", "status", "ssh", "cp", "ssh-config", "logs",
			       "prune", "image", "completion", "help", NULL };
	for (const char **c = cmds; *c; c++) {
		char line[64];
		snprintf(line, sizeof(line), "\n  %s ", *c);
		CHECK(strstr(main_help, line) != NULL);
		CHECK_INT(h_run(&out, "help", *c, NULL), 0);
		check_help_text(*c, out);
		char *out2;
		CHECK_INT(h_run(&out2, *c, "--help", NULL), 0);
		CHECK_STR(out2, out);
		free(out2);
		free(out);
	}
	free(main_help);
	CHECK_INT(h_run(&out, "help", "ssh", NULL), 0);
	CHECK(strstr(out, "255 ") != NULL);
	free(out);
	/* one list of environment variables: help, man page and README agree */
	char *env, *readme, *man;
	CHECK_INT(h_run(&env, "help", "environment", NULL), 0);
	const char *src = getenv("FLEETBOX_SRC"), *manp = getenv("FLEETBOX_MAN");
	CHECK(src && manp);
	char rp[600];
	snprintf(rp, sizeof(rp), "%s/README.md", src);
	CHECK((readme = h_read_file(rp)) != NULL);
	CHECK((man = h_read_file(manp)) != NULL);
	int nvars = 0;
	for (char *p = env; (p = strstr(p, "\n  FLEETBOX_")); p++) {
		char name[64];
		CHECK(sscanf(p + 3, "%63[A-Z_]", name) == 1);
		nvars++;
		if (!strstr(readme, name) || !strstr(man, name)) {
			fprintf(stderr, "%s missing from %s\n", name, strstr(readme, name) ? manp : rp);
			CHECK(0);
		}
	}
	CHECK(nvars >= 15);
	/* the man page is the same text: every command and its examples */
	CHECK(strstr(man, ".TH FLEETBOX 1") && strstr(man, ".SH ENVIRONMENT"));
	CHECK(strstr(man, "fleetbox up web \\-n 3") != NULL);
	CHECK(strstr(man, ".SS \"fleetbox ssh\\-config") != NULL);
	free(env);
	free(readme);
	free(man);
	h_teardown();
}

/* ---- errors name the token that is wrong ---- */

static void expect_err(int code, const char *want, const char *a1, const char *a2, const char *a3,
		       const char *a4)
{
	char *out;
	int rc = h_run(&out, a1, a2, a3, a4, NULL);
	if (rc != code || !strstr(out, want)) {
		fprintf(stderr, "want exit %d and \"%s\"\n", code, want);
		CHECK(0);
	}
	free(out);
}

static void t_errors(void)
{
	h_setup("errors");
	expect_err(1, "error: unknown command \"lss\" (did you mean ls?)", "lss", NULL, NULL, NULL);
	expect_err(1, "error: unknown command \"sssh\" (did you mean ssh?)", "sssh", NULL, NULL, NULL);
	expect_err(1, "error: ls: unknown option \"-z\" in \"-qz\"", "ls", "-qz", NULL, NULL);
	expect_err(1, "error: ls: unknown option \"--jsn\" (did you mean --json?)", "ls", "--jsn", NULL, NULL);
	expect_err(1, "error: ls: missing value for -o", "ls", "-o", NULL, NULL);
	expect_err(1, "error: ls: --output takes table or json, not \"yaml\"", "ls", "--output=yaml", NULL, NULL);
	expect_err(1, "error: logs: missing value for -n", "logs", "x", "-n", NULL);
	expect_err(1, "error: logs: -n: \"many\" is not a number", "logs", "x", "-n", "many");
	expect_err(1, "error: down: --all takes no value", "down", "--all=yes", NULL, NULL);
	expect_err(1, "error: rm: give NAME... or --all, not both", "rm", "--all", "web", NULL);
	expect_err(1, "error: down: invalid name \"Web\"", "down", "Web", NULL, NULL);
	expect_err(1, "error: unknown option \"--verbose\" before the command", "--verbose", "ls", NULL, NULL);
	/* rm of a name that matches nothing: said on stderr, still exit 0 */
	expect_err(0, "note: rm: no member matches \"ghost\"", "rm", "-f", "ghost", NULL);
	expect_err(1, "error: no such member: ghost", "down", "ghost", NULL, NULL);
	/* a trailing '-' is not a hostname */
	expect_err(1, "invalid name \"web-\"", "up", "web-", NULL, NULL);
	/* environment checked before anything: no store is created */
	char store[400];
	snprintf(store, sizeof(store), "%s/fresh", h_root);
	setenv("FLEETBOX_HOME", store, 1);
	struct { const char *var, *val, *want; } bad[] = {
		{ "FLEETBOX_VMM", "qmeu", "FLEETBOX_VMM=\"qmeu\": want one of fake|qemu|cloud-hypervisor|auto (did you mean qemu?)" },
		{ "FLEETBOX_LOG", "loud", "FLEETBOX_LOG=\"loud\": want one of error|warn|info|debug" },
		{ "FLEETBOX_ACCEL", "kvmm", "(did you mean kvm?)" },
		{ "FLEETBOX_NET", "host", "FLEETBOX_NET=\"host\"" },
		{ "FLEETBOX_SUBNET_RANGE", "10.0.0.0/25", "FLEETBOX_SUBNET_RANGE=\"10.0.0.0/25\"" },
		{ "FLEETBOX_IP_WAIT_TIMEOUT", "soon", "FLEETBOX_IP_WAIT_TIMEOUT=\"soon\"" },
		{ "FLEETBOX_NO_SUDO", "yes", "FLEETBOX_NO_SUDO=\"yes\"" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv(bad[i].var, bad[i].val, 1);
		expect_err(1, bad[i].want, "up", "e1", "--image", h_image());
		unsetenv(bad[i].var);
		CHECK(!path_exists(store));
	}
	setenv("FLEETBOX_VM", "fake", 1);
	expect_err(0, "warning: FLEETBOX_VM is not a fleetbox variable (did you mean FLEETBOX_VMM?)",
		   "ls", NULL, NULL, NULL);
	unsetenv("FLEETBOX_VM");
	setenv("FLEETBOX_HOME", "relative/store", 1);
	expect_err(1, "FLEETBOX_HOME=\"relative/store\": want an absolute path", "ls", NULL, NULL, NULL);
	setenv("FLEETBOX_HOME", h_root, 1);
	/* --debug (and FLEETBOX_LOG=debug): the CLI's own debug lines */
	expect_err(0, "debug: ls: store ", "--debug", "ls", NULL, NULL);
	expect_err(0, "debug: ls: store ", "ls", "--debug", NULL, NULL);
	setenv("FLEETBOX_LOG", "debug", 1);
	expect_err(0, "debug: ls: store ", "ls", NULL, NULL, NULL);
	unsetenv("FLEETBOX_LOG");
	h_teardown();
}

/* ---- ls ---- */

static void t_ls(void)
{
	h_setup("ls");
	char *out;
	CHECK_INT(h_run(NULL, "up", "lsa", "-n", "2", "--image", h_image(), NULL), 0);
	CHECK_INT(h_run(NULL, "up", "a-very-long-member-name-for-widths", "--image", h_image(), NULL), 0);
	CHECK_INT(h_run(NULL, "down", "lsa-2", NULL), 0);
	CHECK_INT(h_run(&out, "ls", NULL), 0);
	/* widths from the content: the header's columns line up with the rows */
	char *l1 = strstr(out, "NAME"), *l2 = strstr(out, "\nlsa-1 ");
	CHECK(l1 && l2);
	CHECK_INT(strstr(l1, "CLUSTER") - l1, strstr(l2 + 1, "lsa ") - (l2 + 1));
	CHECK_INT(strstr(l1, "CLUSTER") - l1, (long)strlen("a-very-long-member-name-for-widths") + 2);
	/* a stopped member's IP is "-" */
	char *row2 = strstr(out, "\nlsa-2 ");
	CHECK(row2 && strstr(row2, "  -  ") && strstr(row2, "stopped"));
	free(out);
	/* a pattern filter */
	CHECK_INT(h_run(&out, "ls", "-q", "lsa", NULL), 0);
	CHECK_STR(out, "lsa-1\nlsa-2\n");
	free(out);
	/* json three ways, with the cluster */
	const char *forms[][3] = { { "--json", NULL, NULL }, { "--format", "json", NULL }, { "-o", "json", NULL },
				   { "--output=json", NULL, NULL } };
	for (size_t i = 0; i < 4; i++) {
		CHECK_INT(h_run(&out, "ls", "lsa", forms[i][0], forms[i][1], NULL), 0);
		json_t *a = json_loads(out, 0, NULL);
		CHECK(json_is_array(a) && json_array_size(a) == 2);
		CHECK_STR(json_string_value(json_object_get(json_array_get(a, 0), "cluster")), "lsa");
		CHECK_STR(json_string_value(json_object_get(json_array_get(a, 1), "ip")), "");
		CHECK_STR(json_string_value(json_object_get(json_array_get(a, 1), "state")), "stopped");
		json_decref(a);
		free(out);
	}
	h_teardown();
}

/* ---- logs ---- */

static void t_logs(void)
{
	h_setup("logs");
	char *out;
	CHECK_INT(h_run(NULL, "up", "lg", "-n", "2", "--image", h_image(), NULL), 0);
	CHECK_INT(h_run(&out, "logs", "lg-2", NULL), 0);
	CHECK(strstr(out, "(console) <==\nfleetbox fake vm lg-2: booting\nfleetbox fake vm lg-2: booted") != NULL);
	CHECK(strstr(out, "(holder, lines about this member) <==") != NULL);
	CHECK(strstr(out, "lg-2: starting -> running") != NULL);
	CHECK(strstr(out, "lg-1: ") == NULL); /* only lines about lg-2 */
	free(out);
	CHECK_INT(h_run(&out, "logs", "--holder", "-n", "1", "lg-1", NULL), 0);
	CHECK(strstr(out, "lg-1: starting -> running") && !strstr(out, "registered") &&
	      !strstr(out, "(console)"));
	free(out);
	expect_err(1, "logs: \"lg\" is a cluster of 2 members", "logs", "lg", NULL, NULL);
	/* -f follows until the member stops */
	int outp[2];
	CHECK(pipe(outp) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(outp[1], 1);
		dup2(outp[1], 2);
		execl(h_bin, h_bin, "logs", "-f", "lg-1", (char *)NULL);
		_exit(127);
	}
	close(outp[1]);
	struct timespec ts = { 0, 500 * 1000000L };
	nanosleep(&ts, NULL);
	CHECK(h_pid_alive(pid)); /* still following */
	long t0 = h_now_ms();
	CHECK_INT(h_run(NULL, "down", "lg-1", NULL), 0);
	CHECK(h_wait_pid_gone(pid, 10000) >= 0);
	printf("bench logs_follow_exit_after_down_ms=%ld\n", h_now_ms() - t0);
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	char buf[8192] = { 0 };
	size_t got = 0;
	ssize_t r;
	while ((r = read(outp[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)r;
	close(outp[0]);
	fprintf(stderr, "logs -f:\n%s\n", buf);
	CHECK(strstr(buf, "lg-1: running -> stopped") || strstr(buf, "lg-1: removed"));
	CHECK(strstr(buf, "note: lg-1 is not running") != NULL);
	h_teardown();
}

/* ---- ssh-config and completion ---- */

static void t_sshconfig(void)
{
	h_setup("sshcfg");
	char *out;
	CHECK_INT(h_run(NULL, "up", "sc", "-n", "2", "--image", h_image(), NULL), 0);
	CHECK_INT(h_run(NULL, "up", "other-1", "--image", h_image(), NULL), 0);
	CHECK_INT(h_run(&out, "ssh-config", "sc", NULL), 0);
	CHECK(strstr(out, "Host sc-1\n") && strstr(out, "Host sc-2\n") && !strstr(out, "other-1"));
	free(out);
	char p[400];
	snprintf(p, sizeof(p), "%s/ssh_config", h_root);
	char *file = h_read_file(p);
	CHECK(file && strstr(file, "Include ") && strstr(file, "Host other-1\n") &&
	      strstr(file, "Host sc-1\n"));
	free(file);
	/* up keeps the file current */
	CHECK_INT(h_run(NULL, "up", "third-1", "--image", h_image(), NULL), 0);
	file = h_read_file(p);
	CHECK(file && strstr(file, "Host third-1\n"));
	free(file);
	h_teardown();
}

static void t_completion(void)
{
	h_setup("compl");
	CHECK_INT(h_run(NULL, "up", "cm", "-n", "2", "--image", h_image(), NULL), 0);
	char *out;
	CHECK_INT(h_run(&out, "completion", "fish", NULL), 1);
	free(out);
	char script[400];
	snprintf(script, sizeof(script), "%s/fleetbox.bash", h_root);
	CHECK_INT(h_run(&out, "completion", "bash", NULL), 0);
	CHECK_INT(file_write_atomic(script, out, strlen(out), 0644), 0);
	free(out);
	int st;
	char *n[] = { (char *)"-n", script, NULL };
	free(run_tool("bash", n, &st));
	CHECK_INT(st, 0);
	/* run the completion function as bash would */
	struct { const char *line; const char *want; } cases[] = {
		{ "fleetbox up --im", "--image" },
		{ "fleetbox ss", "ssh ssh-config" },
		{ "fleetbox ssh cm", "cm-1 cm-2" },
		{ "fleetbox ls -o ", "table json" },
		{ "fleetbox --debug lo", "logs" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char prog[1200];
		snprintf(prog, sizeof(prog),
			 "source %s; COMP_LINE='%s'; read -ra COMP_WORDS <<< \"$COMP_LINE\"; "
			 "[[ $COMP_LINE == *' ' ]] && COMP_WORDS+=(''); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); "
			 "COMP_WORDS[0]=%s; _fleetbox; echo \"${COMPREPLY[*]}\"", script, cases[i].line, h_bin);
		char *argv[] = { (char *)"-c", prog, NULL };
		char *res = run_tool("bash", argv, &st);
		fprintf(stderr, "complete '%s' -> '%s'\n", cases[i].line, res);
		CHECK_INT(st, 0);
		CHECK(strstr(res, cases[i].want) != NULL);
		free(res);
	}
	/* zsh: the script parses (when zsh is installed) */
	CHECK_INT(h_run(&out, "completion", "zsh", NULL), 0);
	CHECK(strstr(out, "#compdef fleetbox") != NULL);
	snprintf(script, sizeof(script), "%s/_fleetbox", h_root);
	CHECK_INT(file_write_atomic(script, out, strlen(out), 0644), 0);
	free(out);
	if (access("/usr/bin/zsh", X_OK) == 0 || access("/bin/zsh", X_OK) == 0) {
		char *z[] = { (char *)"-n", script, NULL };
		free(run_tool("zsh", z, &st));
		CHECK_INT(st, 0);
	}
	h_teardown();
}

static const struct h_case cases[] = {
	{ "cli-sudo", t_sudo },		  { "cli-unreadable", t_unreadable },
	{ "cli-help", t_help },		  { "cli-errors-token", t_errors },
	{ "cli-ls", t_ls },		  { "cli-logs", t_logs },
	{ "cli-ssh-config", t_sshconfig }, { "cli-completion", t_completion },
};

int main(int argc, char **argv)
{
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
