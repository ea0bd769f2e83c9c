/* spawn.c - VMM children that cannot outlive their holder.
 *
 * libuv's uv_spawn offers no hook between fork and exec, so PR_SET_PDEATHSIG is
 * set by a tiny re-exec of our own binary. Because the death signal is tied to
 * the thread that forked, and the holder is single-threaded, it fires exactly
 * when the holder dies, including by SIGKILL. The parent-PID check after prctl
 * closes the race where the holder died before prctl ran. */
#include "vmm/vmm.h"

#include <errno.h>
#include <fcntl.h>
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

int vmm_spawn(uv_loop_t *loop, uv_process_t *proc, char **argv, int log_fd,
	      uv_exit_cb exit_cb)
{
	size_t n = 0;
	while (argv[n])
		n++;
	const char *self = vmm_self_exe();
	if (!*self)
		return -ENOENT;
	char ppid[24];
	snprintf(ppid, sizeof(ppid), "%d", (int)getpid());
	char **args = calloc(n + 4, sizeof(*args));
	if (!args)
		return -ENOMEM;
	args[0] = (char *)self;
	args[1] = (char *)"--fleetbox-pdeath-exec";
	args[2] = ppid;
	memcpy(args + 3, argv, n * sizeof(*args));

	uv_stdio_container_t stdio[3];
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
	uv_process_options_t opts = {
		.exit_cb = exit_cb,
		.file = self,
		.args = args,
		.stdio_count = 3,
		.stdio = stdio,
	};
	int r = uv_spawn(loop, proc, &opts);
	free(args);
	return r;
}

int vmm_pdeath_exec_main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: fleetbox --fleetbox-pdeath-exec PPID PROG [ARGS...]\n");
		return 2;
	}
	pid_t want = (pid_t)strtol(argv[2], NULL, 10);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) {
		perror("prctl(PR_SET_PDEATHSIG)");
		return 127;
	}
	if (getppid() != want)
		return 127; /* the holder is already gone */
	execvp(argv[3], argv + 3);
	fprintf(stderr, "exec %s: %s\n", argv[3], strerror(errno));
	return 127;
}
