/* qemu.c - the QEMU driver (vmm_qemu_driver): direct kernel boot of the
 * member's kernel/initrd with virtio disks, NIC and RNG; readiness = the
 * guest's port 22 accepts; stop = QMP system_powerdown, escalating to
 * SIGTERM and SIGKILL (qemu_core.c does the supervision).
 *
 * Environment: FLEETBOX_QEMU (binary, default qemu-system-x86_64),
 * FLEETBOX_ACCEL (auto|kvm|tcg), FLEETBOX_QEMU_MACHINE (default: "microvm"
 * for an ELF vmlinux booted via PVH, like the mini image -- the fastest under
 * TCG, no PCI/ACPI-IRQ probing; "pc" for bzImage kernels of stock images,
 * whose initramfs may lack virtio-mmio; numbers in bench/BOOT.md),
 * FLEETBOX_QEMU_TB_MB (TCG translation cache, default 64). */
#include "vmm/vmm.h"

#include "util/cmd.h"
#include "util/err.h"
#include "util/log.h"
#include "util/accel.h"
#include "vmm/qemu_argv.h"
#include "vmm/qemu_core.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define QEMU_DEFAULT_TB_MB 64

struct vmm_vm {
	struct vmcore core; /* first member: the core frees the vm */
};

static const char *qmp_stop_request(struct vmcore *c)
{
	/* QEMU accepts commands queued behind the greeting; capabilities first. */
	return "{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"system_powerdown\"}\n";
}

static const struct vmcore_ops qemu_ops = {
	.vmm_name = "qemu",
	.stop_request = qmp_stop_request,
	.stop_on_read = NULL,
};

static const char *env_or(const char *name, const char *def)
{
	const char *v = getenv(name);
	return v && *v ? v : def;
}

/* Whether uid (primary group gid, plus its supplementary groups) may open
 * path read-write: the mode bits, as the kernel checks them for that user. */
static bool uid_can_rw(const char *path, uid_t uid, gid_t gid)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return false;
	if (st.st_uid == uid)
		return (st.st_mode & 0600) == 0600;
	gid_t groups[256];
	int n = 256;
	struct passwd *pw = getpwuid(uid);
	bool in_group = st.st_gid == gid;
	if (pw && getgrouplist(pw->pw_name, gid, groups, &n) >= 0)
		for (int i = 0; i < n && !in_group; i++)
			in_group = groups[i] == st.st_gid;
	if (in_group)
		return (st.st_mode & 060) == 060;
	return (st.st_mode & 06) == 06;
}

/* The VMM runs as the member's owner: KVM only if that user may use it. */
static int accel_for(const struct vmm_boot_spec *s, enum vmm_accel *accel, struct err *e)
{
	int r = accel_select(accel, e);
	if (r < 0 || *accel != VMM_ACCEL_KVM || s->run_uid == 0 ||
	    uid_can_rw("/dev/kvm", s->run_uid, s->run_gid))
		return r;
	const char *want = getenv("FLEETBOX_ACCEL");
	if (want && !strcmp(want, "kvm"))
		return err_set(e, -EACCES, "FLEETBOX_ACCEL=kvm, but the VMM runs as uid %u, which "
			       "cannot open /dev/kvm (add that user to its group)",
			       (unsigned)s->run_uid);
	log_warn("%s: the VMM runs as uid %u, which cannot open /dev/kvm: using TCG", s->name,
		 (unsigned)s->run_uid);
	*accel = VMM_ACCEL_TCG;
	return 0;
}

static int qemu_boot(uv_loop_t *loop, const struct vmm_boot_spec *spec,
		     const struct vmm_callbacks *cb, void *data, struct vmm_vm **out,
		     struct err *e)
{
	struct vmm_boot_spec s = *spec;
	char serial[4096], kernel[4096], initrd[4096];
	if (!s.serial_log_path) {
		snprintf(serial, sizeof(serial), "%s/serial.log", s.member_dir);
		s.serial_log_path = serial;
	}
	if (!s.kernel_path) {
		snprintf(kernel, sizeof(kernel), "%s/kernel", s.member_dir);
		s.kernel_path = kernel;
	}
	if (!s.initrd_path) {
		snprintf(initrd, sizeof(initrd), "%s/initrd", s.member_dir);
		s.initrd_path = access(initrd, R_OK) == 0 ? initrd : NULL;
	}
	if (!*s.kernel_path)
		return err_set(e, -ENOENT, "no kernel: the spec names none and %s/kernel does not "
			       "exist", s.member_dir);
	if (access(s.kernel_path, R_OK) != 0)
		return err_set(e, -ENOENT, "kernel %s: %s", s.kernel_path, strerror(errno));
	if (access(s.disk_path, F_OK) != 0 || access(s.seed_path, F_OK) != 0)
		return err_set(e, -ENOENT, "disk %s or seed %s does not exist", s.disk_path, s.seed_path);

	struct vmm_vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return err_set(e, -ENOMEM, "out of memory");
	struct vmcore *c = &vm->core;
	c->ops = &qemu_ops;
	int r = vmcore_ctl_path(&s, "qmp.sock", "qmp", c->ctl_path, sizeof(c->ctl_path), e);
	enum vmm_accel accel = VMM_ACCEL_TCG;
	if (r == 0)
		r = accel_for(&s, &accel, e);
	if (r < 0) {
		free(vm);
		return r;
	}

	struct qemu_opts o = {
		.binary = env_or("FLEETBOX_QEMU", "qemu-system-x86_64"),
		.accel = accel,
		.machine = env_or("FLEETBOX_QEMU_MACHINE",
				  qemu_kernel_is_elf(s.kernel_path) ? "microvm" : "pc"),
		.tb_size_mb = (unsigned)strtoul(env_or("FLEETBOX_QEMU_TB_MB", "64"), NULL, 10),
		.qmp_path = c->ctl_path,
		.disk_format = qemu_disk_format(s.disk_path),
		.tsc_khz = qemu_host_tsc_khz(),
	};
	struct cmd cmd = {0};
	r = qemu_argv_build(&o, &s, &cmd, e);
	if (r < 0) {
		cmd_fini(&cmd);
		free(vm);
		return r;
	}
	r = vmcore_launch(c, loop, &cmd, "qemu.log", &s, cb, data, e);
	if (r < 0)
		return r;
	*out = vm;
	return 0;
}

const struct vmm_driver vmm_qemu_driver = {
	.name = "qemu",
	.needs_network = true,
	.boot = qemu_boot,
	.stop = vmcore_op_stop,
	.kill = vmcore_op_kill,
	.pid = vmcore_op_pid,
};
