/* cli/sudo.c - commands that need root (networking: bridges, taps, nftables)
 * re-run themselves through sudo when an ordinary user runs them.
 *
 *   fleetbox up web            (uid 1000, FLEETBOX_VMM unset: QEMU needs a network)
 *   -> sudo [-n] -- /usr/bin/fleetbox --fleetbox-sudo <pid> FLEETBOX_HOME=/home/u/.fleetbox
 *        FLEETBOX_CACHE=/home/u/.cache/fleetbox [FLEETBOX_...=...] -- up web
 *
 * Variables travel as arguments, not through sudo's environment handling, so a
 * sudoers rule that allows just the fleetbox binary works too; only the
 * variables marked via_sudo in env.c travel (never ones naming a program to
 * run). The store root and cache are the ones the invoking user resolved.
 * The outer process waits: the inner one signals it (SIGUSR1) once it runs,
 * so a sudo that refused or failed is told apart from the command failing.
 * -n (no password prompt) is used only when there is no terminal to ask on.
 * Under sudo, everything fleetbox creates belongs to the invoking user
 * (util/owner.h), and the inner process refuses a store or cache that is not
 * that user's (a sudoers rule for fleetbox must not let them write elsewhere). */
#include "client/cli/cli.h"
#include "rpc/wire.h"
#include "util/owner.h"
#include "vmm/vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t inner_started;
static volatile sig_atomic_t sudo_pid;

bool cli_needs_root(const struct cli_command *c)
{
	if (!(c->flags & CLI_NET_ROOT) || geteuid() == 0)
		return false;
	const char *net = getenv("FLEETBOX_NET");
	if (net && !strcmp(net, "bridge"))
		return true;
	if (net && !strcmp(net, "none"))
		return false;
	const struct vmm_driver *drv;
	if (vmm_driver_select(NULL, &drv, NULL) < 0)
		return false; /* the command reports the bad FLEETBOX_VMM */
	return drv->needs_network;
}

/* sudo on PATH (execvp would find it too; knowing first gives a clear error). */
static bool find_sudo(char *out, size_t len)
{
	const char *path = getenv("PATH");
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path && *path ? path : "/usr/bin:/bin:/usr/sbin:/sbin");
	for (char *save, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		if (snprintf(out, len, "%s/sudo", *d ? d : ".") < (int)len && access(out, X_OK) == 0)
			return true;
	}
	return false;
}

static bool have_terminal(void)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static void on_started(int sig)
{
	(void)sig;
	inner_started = 1;
}

static void on_forward(int sig)
{
	if (sudo_pid > 0)
		kill((pid_t)sudo_pid, sig);
}

/* argv for sudo: the store and cache as the invoking user resolved them, the
 * via_sudo variables that are set, then the original command. */
static char **sudo_argv(const char *sudo, const char *root, int argc, char **argv, char **strs,
			size_t *nstrs)
{
	size_t cap = (size_t)argc + 64, n = 0;
	char **a = calloc(cap, sizeof(char *));
	if (!a)
		return NULL;
	a[n++] = (char *)sudo;
	if (!have_terminal())
		a[n++] = (char *)"-n";
	a[n++] = (char *)"--";
	a[n++] = (char *)vmm_self_exe();
	a[n++] = (char *)"--fleetbox-sudo";
	char pid[24];
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	char cache[PATH_MAX];
	if (wire_cache_root(cache, sizeof(cache)) < 0)
		cache[0] = '\0';
	*nstrs = 0;
	if (asprintf(&strs[(*nstrs)++], "%s", pid) < 0 ||
	    asprintf(&strs[(*nstrs)++], "FLEETBOX_HOME=%s", root) < 0 ||
	    asprintf(&strs[(*nstrs)++], "FLEETBOX_CACHE=%s", cache) < 0) {
		free(a);
		return NULL;
	}
	for (size_t i = 0; i < *nstrs; i++)
		a[n++] = strs[i];
	for (const struct cli_env *v = cli_env_vars; v->name && *nstrs < 60; v++) {
		const char *val = getenv(v->name);
		if (!v->via_sudo || !val || !strcmp(v->name, "FLEETBOX_HOME") ||
		    !strcmp(v->name, "FLEETBOX_CACHE"))
			continue;
		if (asprintf(&strs[*nstrs], "%s=%s", v->name, val) < 0)
			break;
		a[n++] = strs[(*nstrs)++];
	}
	a[n++] = (char *)"--";
	for (int i = 0; i < argc && n < cap - 1; i++)
		a[n++] = argv[i];
	a[n] = NULL;
	return a;
}

/* Runs sudo and waits; its exit status (128+N for signal N), or -1 when it
 * could not be started. */
static int run_sudo(char **a, bool *started)
{
	struct sigaction sa = { .sa_handler = on_started }, fw = { .sa_handler = on_forward },
			 ign = { .sa_handler = SIG_IGN }, o_usr1, o_int, o_quit, o_term, o_hup;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&fw.sa_mask);
	sigemptyset(&ign.sa_mask);
	inner_started = 0;
	sigaction(SIGUSR1, &sa, &o_usr1);
	/* The terminal's Ctrl-C reaches sudo and the command directly (or sudo
	 * relays it); a kill aimed at us is passed on. */
	sigaction(SIGINT, &ign, &o_int);
	sigaction(SIGQUIT, &ign, &o_quit);
	sigaction(SIGTERM, &fw, &o_term);
	sigaction(SIGHUP, &fw, &o_hup);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		sigaction(SIGINT, &o_int, NULL);
		sigaction(SIGQUIT, &o_quit, NULL);
		sigaction(SIGTERM, &o_term, NULL);
		sigaction(SIGHUP, &o_hup, NULL);
		execv(a[0], a);
		_exit(127);
	}
	int st = 0, rc = -1;
	if (pid > 0) {
		sudo_pid = pid;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		sudo_pid = 0;
		rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	}
	*started = inner_started;
	sigaction(SIGUSR1, &o_usr1, NULL);
	sigaction(SIGINT, &o_int, NULL);
	sigaction(SIGQUIT, &o_quit, NULL);
	sigaction(SIGTERM, &o_term, NULL);
	sigaction(SIGHUP, &o_hup, NULL);
	return rc;
}

int cli_sudo_reexec(const struct cli_command *c, const char *root, int argc, char **argv,
		    bool *handled)
{
	*handled = false;
	if (!cli_needs_root(c))
		return 0;
	*handled = true;
	const char *why = "networking (bridges, taps, nftables)";
	const char *no = getenv("FLEETBOX_NO_SUDO");
	if (no && !strcmp(no, "1"))
		return cli_error("%s needs root for %s and FLEETBOX_NO_SUDO=1 forbids sudo: run it as "
				 "root", c->name, why);
	char sudo[PATH_MAX];
	if (!find_sudo(sudo, sizeof(sudo)))
		return cli_error("%s needs root for %s, and sudo is not installed: run it as root "
				 "(or install sudo)", c->name, why);
	if (!*vmm_self_exe())
		return cli_error("cannot find fleetbox's own executable to re-run it through sudo");
	char *strs[64] = { 0 };
	size_t nstrs = 0;
	char **a = sudo_argv(sudo, root, argc, argv, strs, &nstrs);
	if (!a)
		return cli_error("out of memory");
	cli_note("%s needs root for %s: running it through sudo", c->name, why);
	bool started = false;
	int rc = run_sudo(a, &started);
	for (size_t i = 0; i < nstrs; i++)
		free(strs[i]);
	free(a);
	if (started)
		return rc;
	if (rc == 127 || rc < 0)
		return cli_error("could not run %s: %s", sudo, strerror(errno));
	return cli_error("sudo did not run fleetbox (see its message above): %s needs root for "
			 "%s; run it as root, or allow it in sudoers (set FLEETBOX_NO_SUDO=1 to "
			 "never try sudo)", c->name, why);
}

/* ---- the inner side ---- */

static bool env_via_sudo(const char *assign)
{
	const char *eq = strchr(assign, '=');
	if (!eq)
		return false;
	for (const struct cli_env *v = cli_env_vars; v->name; v++)
		if (v->via_sudo && strlen(v->name) == (size_t)(eq - assign) &&
		    !strncmp(v->name, assign, (size_t)(eq - assign)))
			return true;
	return false;
}

/* Tells the waiting outer process (one of the invoking user's) we run. */
static void signal_outer(const char *pidstr, uid_t invoker)
{
	char *end;
	long pid = strtol(pidstr, &end, 10);
	char proc[64];
	struct stat st;
	snprintf(proc, sizeof(proc), "/proc/%ld", pid);
	if (*end || pid <= 1 || stat(proc, &st) < 0 || st.st_uid != invoker)
		return;
	kill((pid_t)pid, SIGUSR1);
}

int cli_sudo_inner(int *argc, char ***argv)
{
	char **a = *argv;
	int n = *argc;
	uid_t uid;
	if (!owner_invoker(&uid, NULL))
		return cli_error("--fleetbox-sudo is internal: it runs only as root under sudo");
	if (n < 3)
		return cli_error("--fleetbox-sudo: missing arguments");
	int i = 3;
	for (; i < n && strcmp(a[i], "--") != 0; i++) {
		if (!env_via_sudo(a[i]))
			return cli_error("--fleetbox-sudo: refusing \"%s\"", a[i]);
		char *eq = strchr(a[i], '=');
		*eq = '\0';
		if (eq[1])
			setenv(a[i], eq + 1, 1);
		else
			unsetenv(a[i]);
		*eq = '=';
	}
	if (i >= n)
		return cli_error("--fleetbox-sudo: missing command");
	signal_outer(a[2], uid);
	/* argv[0] stays; the command follows the "--". */
	a[i] = a[0];
	*argv = a + i;
	*argc = n - i;
	return 0;
}

/* A path root would write to must be the invoking user's: the directory
 * itself, or (when missing) its nearest existing parent, which may also be a
 * sticky world-writable directory such as /tmp (what root creates there is
 * then claimed for the user). */
static int check_owned(const char *what, const char *path, uid_t uid, gid_t gid)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s", path);
	struct stat st;
	while (lstat(p, &st) < 0) {
		char *s = strrchr(p, '/');
		if (errno != ENOENT || !s || s == p)
			return cli_error("%s %s: %s", what, path, strerror(errno));
		*s = '\0';
	}
	if (S_ISLNK(st.st_mode) && stat(p, &st) < 0)
		return cli_error("%s %s: %s", what, path, strerror(errno));
	bool shared_tmp = strcmp(p, path) != 0 && (st.st_mode & S_ISVTX) && (st.st_mode & S_IWOTH);
	if (st.st_uid != uid && !shared_tmp)
		return cli_error("under sudo, the %s must belong to the invoking user (uid %u): %s is "
				 "owned by uid %u (if an older fleetbox left it to root: sudo chown -R "
				 "%u:%u %s)", what, (unsigned)uid, p, (unsigned)st.st_uid, (unsigned)uid,
				 (unsigned)gid, p);
	return 0;
}

int cli_sudo_check_paths(const char *root)
{
	uid_t uid;
	gid_t gid;
	if (!owner_invoker(&uid, &gid))
		return 0;
	char cache[PATH_MAX];
	if (check_owned("store", root, uid, gid))
		return 1;
	if (wire_cache_root(cache, sizeof(cache)) == 0 && check_owned("image cache", cache, uid, gid))
		return 1;
	return 0;
}
