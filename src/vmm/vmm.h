/* vmm.h - the VMM driver interface the holder calls.
 *
 * A driver boots one VM per member as a child process supervised by the
 * holder's uv loop. Contract, for every vmm_vm returned by boot():
 *   - cb->ready(data, 0, NULL) is called once the guest is usable (fake: process
 *     started; qemu: guest port 22 accepts), or cb->ready(data, -errno, msg) once
 *     if booting failed. ready is called at most once, and never after exited.
 *   - cb->exited(data, unexpected, msg) is called exactly once, when the VMM
 *     process is gone AND every uv handle of the vm is closed. `unexpected` is
 *     true when the VMM died without stop()/kill() being asked for; msg then says
 *     why (e.g. exit status and the tail of serial.log). A guest that powered
 *     itself off (the VMM exited 0 on its own, not on a signal) is not
 *     unexpected: exited(data, false, "the guest powered itself off"). After
 *     exited returns the driver frees the vm: the holder must drop its pointer.
 *   - stop(vm, grace_ms) starts the escalation: graceful power-off (QMP
 *     system_powerdown, ACPI) -> grace_ms -> SIGTERM -> TO_TERM_MS -> SIGKILL,
 *     each step logged at WARNING naming the member and the time waited.
 *     grace_ms == 0 is a halt: no graceful phase, SIGTERM now, SIGKILL after
 *     TO_HALT_MS (util/timeouts.h). Idempotent, except that a halt overtakes a
 *     graceful stop in progress.
 *   - kill() sends SIGKILL now; idempotent.
 * VMM processes are spawned through vmm_spawn(), so they die with a SIGKILLed
 * holder (PR_SET_PDEATHSIG). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "util/proc.h"

struct err;

struct vmm_boot_spec {
	const char *name;
	const char *member_dir;      /* <root>/clusters/<cluster>/<member> */
	const char *disk_path;
	const char *seed_path;
	const char *const *fixture_paths;
	size_t n_fixtures;
	const char *efi_path;        /* may be NULL */
	const char *serial_log_path; /* may be NULL: <member_dir>/serial.log */
	const char *serial_log_shown; /* may be NULL: the console log as users name it
					* (serial_log_path may be /proc/self/fd/N) */
	const char *kernel_path;     /* may be NULL: <member_dir>/kernel */
	const char *initrd_path;     /* may be NULL: <member_dir>/initrd */
	const char *cmdline;         /* may be NULL: driver default */
	int cpus;
	uint64_t memory_bytes;
	/* From the holder's reservation and network: */
	const char *mac;             /* "02:.." */
	const char *ip;              /* assigned IPv4, dotted */
	const char *gateway;         /* NULL in network-free mode */
	int prefix_len;              /* 24 */
	const char *tap;             /* tap ifname, NULL in network-free mode */
	int tap_fd;                  /* > 2: an fd attached to tap (among pass_fds) */
	/* Privilege and hand-over, set by the holder (all zero = none):
	 *  - pass_fds: files the holder opened under its path policy, inherited by
	 *    the VMM under the same numbers; the *_path fields above then read
	 *    "/proc/self/fd/N", so the VMM opens exactly what was checked;
	 *  - run_uid/run_gid: the VMM drops to them (uid 0 = runs as the holder);
	 *  - member_dir_fd (> 2 when given, and among pass_fds): the member dir,
	 *    for the driver's own files (its log, its control socket);
	 *  - backing_*: the qcow2 backing chain of disk_path, outermost first, as
	 *    "/proc/self/fd/N" paths with their formats, so the VMM never opens
	 *    the names written in the image headers itself. */
	const int *pass_fds;
	size_t n_pass_fds;
	uid_t run_uid;
	gid_t run_gid;
	int member_dir_fd;
	const char *const *backing_paths;
	const char *const *backing_formats;
	size_t n_backing;
};

struct vmm_callbacks {
	void (*ready)(void *data, int status, const char *msg);
	void (*exited)(void *data, bool unexpected, const char *msg);
};

struct vmm_vm;

struct vmm_driver {
	const char *name;
	/* True when the driver needs the real network (bridge + tap). */
	bool needs_network;
	int (*boot)(uv_loop_t *loop, const struct vmm_boot_spec *spec,
		    const struct vmm_callbacks *cb, void *data, struct vmm_vm **out,
		    struct err *e);
	void (*stop)(struct vmm_vm *vm, uint64_t grace_ms);
	void (*kill)(struct vmm_vm *vm);
	pid_t (*pid)(const struct vmm_vm *vm);
};

extern const struct vmm_driver vmm_fake_driver;
extern const struct vmm_driver vmm_qemu_driver;
extern const struct vmm_driver vmm_ch_driver;

/* FLEETBOX_VMM=fake|qemu|cloud-hypervisor|auto (default auto). */
int vmm_driver_select(const char *name, const struct vmm_driver **out, struct err *e);

/* Spawns argv[0] (PATH lookup) as a child that receives SIGKILL when the holder
 * dies: the holder re-executes itself as `fleetbox --fleetbox-pdeath-exec PPID
 * [--as UID:GID] argv...`, which drops to UID:GID (with UID's supplementary
 * groups) when asked, then sets PR_SET_PDEATHSIG (after the drop: changing
 * credentials clears it), checks its parent is still PPID, and execs.
 * stdout/stderr go to log_fd (or /dev/null if < 0), stdin is /dev/null.
 * spec (may be NULL) gives pass_fds, run_uid/run_gid and member_dir (the
 * child's environment gets VMM_MARK_ENV=<member_dir>). proc->data is left
 * for the caller. */
#define VMM_MARK_ENV PROC_VMM_MARK /* util/proc.h */
int vmm_spawn(uv_loop_t *loop, uv_process_t *proc, char **argv, int log_fd,
	      uv_exit_cb exit_cb, const struct vmm_boot_spec *spec);
/* Our own executable, for re-executing helper modes. main() sets it from
 * argv[0] when that is a path (so it is right under valgrind, where
 * /proc/self/exe is the tool), else /proc/self/exe is used. */
void vmm_set_self_exe(const char *argv0);
const char *vmm_self_exe(void);
/* The other half, called from main() when argv[1] is --fleetbox-pdeath-exec.
 * Never returns on success. */
int vmm_pdeath_exec_main(int argc, char **argv);
