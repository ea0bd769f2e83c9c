/* qemu_core.h - process supervision shared by the QEMU and cloud-hypervisor
 * drivers: spawn, boot readiness (guest TCP port 22 accepts), the boot
 * watchdog (kernel panic or emergency shell on the console / no init marker /
 * overall deadline, each failing at once with the tail of serial.log and
 * where the whole log is), graceful stop over a unix-socket control
 * channel (QMP or the CH HTTP API) escalating to SIGTERM and SIGKILL, and the
 * vmm.h callback contract (ready at most once and never after exited; exited
 * exactly once, after the process is reaped and every handle is closed).
 *
 * Ownership: the core is embedded as the first member of struct vmm_vm; it is
 * freed by the core itself right after cb->exited returns. */
#pragma once

struct cmd;
#include "vmm/vmm.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

struct vmcore;

struct vmcore_ops {
	const char *vmm_name; /* "qemu", "cloud-hypervisor": for messages */
	/* Bytes to send right after the control socket connects (graceful stop). */
	const char *(*stop_request)(struct vmcore *c);
	/* Called with bytes read from the control socket; may return a further
	 * request to send (or NULL). */
	const char *(*stop_on_read)(struct vmcore *c, const char *buf, size_t len);
};

struct vmcore {
	uv_loop_t *loop;
	uv_process_t proc;
	uv_timer_t tick;   /* boot poll + watchdog, then idle */
	uv_timer_t esc;    /* stop escalation */
	uv_tcp_t probe;
	uv_connect_t probe_req;
	uv_pipe_t ctl;
	uv_connect_t ctl_req;
	uv_write_t ctl_wreq;
	char *ctl_wbuf;
	int open_handles;
	bool probe_busy, ctl_open, proc_exited, stopping, killing, ready_done, boot_failed;
	bool halting;             /* stop(vm, 0): no graceful phase */
	int esc_stage;            /* 0 none, 1 waiting graceful, 2 waiting SIGTERM */
	uint64_t grace_ms;        /* of the graceful phase under way */
	uint64_t t0_ms, probe_started_ms, stop_ms;
	uint64_t scan_off;        /* serial.log bytes the watchdog has read */
	uint64_t deadline_ms;     /* overall boot deadline */
	uint64_t marker_ms;       /* 0: no init marker expected */
	int64_t exit_status;
	int term_signal;
	struct vmm_callbacks cb;
	void *data;
	const struct vmcore_ops *ops;
	char name[64];
	char ip[16];
	char serial[PATH_MAX];
	char serial_shown[PATH_MAX]; /* for messages: where users find the console */
	char vmm_log[PATH_MAX];   /* the VMM's own stderr ("" = none) */
	char ctl_path[108];
	char fail_msg[1024];
};

/* Serial-log marker printed by the mini image's init (see init.sh). */
#define VMCORE_INIT_MARKER "fleetbox-mini: init started"

/* Spawns argv and starts supervising; on error nothing is left running and
 * the core is freed. */
/* c->vmm_log may be set before: its last line joins failure messages. */
int vmcore_start(struct vmcore *c, uv_loop_t *loop, char **argv, int log_fd,
		 const struct vmm_boot_spec *spec, bool expect_marker,
		 const struct vmm_callbacks *cb, void *data, struct err *e);
/* grace_ms 0: halt (SIGTERM now, SIGKILL after TO_HALT_MS). */
void vmcore_stop(struct vmcore *c, uint64_t grace_ms);
void vmcore_kill(struct vmcore *c);
pid_t vmcore_pid(const struct vmcore *c);
/* The common tail of both drivers' boot(): removes a stale control socket,
 * truncates serial.log, logs argv at debug, sends the VMM's own stderr to
 * <member_dir>/<log_name>, starts the core, frees cmd.
 * The mini image's init marker is expected when its cmdline is used. */
int vmcore_launch(struct vmcore *c, uv_loop_t *loop, struct cmd *cmd, const char *log_name,
		  const struct vmm_boot_spec *s, const struct vmm_callbacks *cb, void *data,
		  struct err *e);
/* Driver ops for any struct vmm_vm whose first member is its struct vmcore. */
void vmcore_op_stop(struct vmm_vm *vm, uint64_t grace_ms);
void vmcore_op_kill(struct vmm_vm *vm);
pid_t vmcore_op_pid(const struct vmm_vm *vm);

/* Helpers shared by both drivers. */
/* Last `lines` lines of a file (at most ~2 KiB), "" if unreadable. */
void vmcore_tail(const char *path, int lines, char *out, size_t len);
/* Picks the control socket path: <member_dir>/<file> when it fits sun_path,
 * else <root>/run/<hash>.<ext> derived from the member dir. */
int vmcore_ctl_path(const struct vmm_boot_spec *spec, const char *file, const char *ext,
		    char *out, size_t len, struct err *e);
/* What the watchdog looks for on the console: the first line of buf[0..len)
 * that shows the boot cannot go on (kernel panic, initramfs or systemd
 * emergency shell), as "<why> (<that line, sanitized>)" into out. Returns 1
 * when found, else 0 (pure: unit-tested). */
int vmcore_console_fatal(const char *buf, size_t len, char *out, size_t outlen);
