/* spawn.c - VMM children that cannot outlive their holder.
 *
 * libuv's uv_spawn offers no hook between fork and exec, so PR_SET_PDEATHSIG is
 * set by a tiny re-exec of our own binary. Because the death signal is tied to
 * the thread that forked, and the holder is single-threaded, it fires exactly
 * when the holder dies, including by SIGKILL. The parent-PID check after prctl
 * closes the race where the holder died before prctl ran. A VMM asked to run
 * as another user drops to it in the same re-exec, before prctl. */
#include "vmm/vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static char self_exe[PATH_MAX];

void vmm_set_self_exe(const char *argv0)
{
	if (argv0 && strchr(argv0, '/') && realpath(argv0, self_exe))
		return;
	ssize_t sl = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	self_exe[sl > 0 ? sl : 0] = '\0';
}

const char *vmm_self_exe(void)
{
	if (!self_exe[0])
		vmm_set_self_exe(NULL);
	return self_exe;
}

#define MAX_CHILD_FD 1024

extern char **environ;

/* Our environment plus FLEETBOX_VMM_OF=<member dir>: reconcile kills an
 * orphan only when its environment says it is that member's VMM, so a
 * record naming some other process (a forged one in a store its user can
 * write) never makes a root prune kill it. env[0] is the marker. */
static char **mark_env(const struct vmm_boot_spec *s)
{
	if (!s || !s->member_dir)
		return NULL;
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 2, sizeof(*env));
	if (!env || asprintf(&env[0], VMM_MARK_ENV "=%s", s->member_dir) < 0) {
		free(env);
		return NULL;
	}
	for (size_t i = 0, k = 1; i < n; i++)
		if (strncmp(environ[i], VMM_MARK_ENV "=", sizeof(VMM_MARK_ENV)) != 0)
			env[k++] = environ[i];
	return env;
}

/* stdio[fd] = fd for every passed fd (the child sees the same numbers). */
static int pass_stdio(uv_stdio_container_t *stdio, int *count, const struct vmm_boot_spec *s)
{
	for (size_t i = 0; s && i < s->n_pass_fds; i++) {
		int fd = s->pass_fds[i];
		if (fd < 3 || fd >= MAX_CHILD_FD)
			return -EBADF;
		for (; *count <= fd; (*count)++)
			stdio[*count].flags = UV_IGNORE;
		stdio[fd].flags = UV_INHERIT_FD;
		stdio[fd].data.fd = fd;
	}
	return 0;
}

int vmm_spawn(uv_loop_t *loop, uv_process_t *proc, char **argv, int log_fd,
	      uv_exit_cb exit_cb, const struct vmm_boot_spec *spec)
{
	size_t n = 0;
	while (argv[n])
		n++;
	const char *self = vmm_self_exe();
	if (!*self)
		return -ENOENT;
	char ppid[24], as[48];
	snprintf(ppid, sizeof(ppid), "%d", (int)getpid());
	bool drop = spec && spec->run_uid != 0;
	snprintf(as, sizeof(as), "%u:%u", drop ? (unsigned)spec->run_uid : 0u,
		 drop ? (unsigned)spec->run_gid : 0u);
	char **args = calloc(n + 6, sizeof(*args));
	uv_stdio_container_t *stdio = calloc(MAX_CHILD_FD, sizeof(*stdio));
	int r = args && stdio ? 0 : -ENOMEM;
	int count = 3;
	if (r == 0)
		r = pass_stdio(stdio, &count, spec);
	if (r < 0) {
		free(args);
		free(stdio);
		return r;
	}
	size_t k = 0;
	args[k++] = (char *)self;
	args[k++] = (char *)"--fleetbox-pdeath-exec";
	args[k++] = ppid;
	if (drop) {
		args[k++] = (char *)"--as";
		args[k++] = as;
	}
	memcpy(args + k, argv, n * sizeof(*args));

	stdio[0].flags = UV_IGNORE;
	if (log_fd >= 0) {
		stdio[1].flags = UV_INHERIT_FD;
		stdio[1].data.fd = log_fd;
		stdio[2].flags = UV_INHERIT_FD;
		stdio[2].data.fd = log_fd;
	} else {
		stdio[1].flags = UV_IGNORE;
		stdio[2].flags = UV_IGNORE;
	}
	char **env = mark_env(spec);
	uv_process_options_t opts = {
		.exit_cb = exit_cb,
		.file = self,
		.args = args,
		.env = env,
		.stdio_count = count,
		.stdio = stdio,
	};
	r = uv_spawn(loop, proc, &opts);
	if (env)
		free(env[0]);
	free(env);
	free(args);
	free(stdio);
	return r;
}

/* setgroups (UID's groups when it has a passwd entry), then gid, then uid:
 * all three ids, real, effective and saved, so nothing can be regained. */
static int drop_to(const char *spec)
{
	unsigned uid, gid;
	char tail;
	if (sscanf(spec, "%u:%u%c", &uid, &gid, &tail) != 2 || uid == 0)
		return -EINVAL;
	struct passwd *pw = getpwuid((uid_t)uid);
	if (pw ? initgroups(pw->pw_name, (gid_t)gid) < 0 : setgroups(1, &(gid_t){ (gid_t)gid }) < 0)
		return -errno;
	if (setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) < 0 ||
	    setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) < 0)
		return -errno;
	if (setuid(0) == 0) /* paranoia: the drop must be final */
		return -EPERM;
	return 0;
}

int vmm_pdeath_exec_main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: fleetbox --fleetbox-pdeath-exec PPID [--as UID:GID] PROG [ARGS...]\n");
		return 2;
	}
	pid_t want = (pid_t)strtol(argv[2], NULL, 10);
	int prog = 3;
	if (!strcmp(argv[3], "--as")) {
		int r = argc >= 6 ? drop_to(argv[4]) : -EINVAL;
		if (r < 0) {
			fprintf(stderr, "fleetbox: cannot run the VMM as %s: %s\n",
				argc >= 5 ? argv[4] : "?", strerror(-r));
			return 127;
		}
		prog = 5;
	}
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) {
		perror("prctl(PR_SET_PDEATHSIG)");
		return 127;
	}
	if (getppid() != want)
		return 127; /* the holder is already gone */
	execvp(argv[prog], argv + prog);
	fprintf(stderr, "exec %s: %s\n", argv[prog], strerror(errno));
	return 127;
}
