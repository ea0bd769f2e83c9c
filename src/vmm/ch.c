/* ch.c - the cloud-hypervisor driver (vmm_ch_driver). Command line as the
 * reference (ch_argv.c); it needs KVM, so `auto` picks it only when the
 * binary is found and KVM really works (vmm_ch_available).
 *
 * Readiness is the same as QEMU's (guest port 22 accepts), which is stronger
 * than the reference's "GET /api/v1/vm.info answers 200": the API is up long
 * before the guest is. Graceful stop over the API socket (HTTP/1.1 on a unix
 * socket): PUT /api/v1/vm.shutdown, then PUT /api/v1/vmm.shutdown once it
 * answers 2xx so the process exits; then SIGTERM, SIGKILL as for QEMU.
 * FLEETBOX_CH overrides the binary (default cloud-hypervisor). */
#include "vmm/vmm.h"

#include "util/cmd.h"
#include "util/err.h"
#include "util/log.h"
#include "util/accel.h"
#include "vmm/qemu_argv.h"
#include "vmm/qemu_core.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool vmm_ch_available(void);

struct vmm_vm {
	struct vmcore core; /* first member: the core frees the vm */
	int http_stage;     /* 0: vm.shutdown sent, 1: vmm.shutdown sent */
};

#define CH_PUT(path) "PUT " path " HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n" \
	"Content-Length: 0\r\n\r\n"

static const char *ch_binary(void)
{
	const char *b = getenv("FLEETBOX_CH");
	return b && *b ? b : "cloud-hypervisor";
}

static const char *ch_stop_request(struct vmcore *c)
{
	((struct vmm_vm *)c)->http_stage = 0;
	return CH_PUT("/api/v1/vm.shutdown");
}

static const char *ch_stop_on_read(struct vmcore *c, const char *buf, size_t len)
{
	struct vmm_vm *vm = (struct vmm_vm *)c;
	if (vm->http_stage == 0 && len >= 10 && memcmp(buf, "HTTP/1.1 2", 10) == 0) {
		vm->http_stage = 1;
		return CH_PUT("/api/v1/vmm.shutdown");
	}
	return NULL;
}

static const struct vmcore_ops ch_ops = {
	.vmm_name = "cloud-hypervisor",
	.stop_request = ch_stop_request,
	.stop_on_read = ch_stop_on_read,
};

/* PATH lookup without running anything. */
static bool in_path(const char *prog)
{
	if (strchr(prog, '/'))
		return access(prog, X_OK) == 0;
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	char dir[PATH_MAX];
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, ":");
		if (n && n < sizeof(dir) - 1 - strlen(prog) - 1) {
			snprintf(dir, sizeof(dir), "%.*s/%s", (int)n, p, prog);
			if (access(dir, X_OK) == 0)
				return true;
		}
		p += n;
		if (*p == ':')
			p++;
	}
	return false;
}

bool vmm_ch_available(void)
{
	return in_path(ch_binary()) && accel_kvm_usable();
}

static int ch_boot(uv_loop_t *loop, const struct vmm_boot_spec *spec,
		   const struct vmm_callbacks *cb, void *data, struct vmm_vm **out, struct err *e)
{
	struct vmm_boot_spec s = *spec;
	char serial[PATH_MAX], kernel[PATH_MAX], initrd[PATH_MAX];
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
	if (!in_path(ch_binary()))
		return err_set(e, -ENOENT, "%s not found in PATH", ch_binary());
	struct vmm_vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return err_set(e, -ENOMEM, "out of memory");
	struct vmcore *c = &vm->core;
	c->ops = &ch_ops;
	int r = vmcore_ctl_path(&s, "ch.sock", "ch", c->ctl_path, sizeof(c->ctl_path), e);
	struct cmd cmd = {0};
	if (r == 0)
		r = ch_argv_build(ch_binary(), c->ctl_path, &s, &cmd, e);
	if (r < 0) {
		cmd_fini(&cmd);
		free(vm);
		return r;
	}
	r = vmcore_launch(c, loop, &cmd, "ch.log", &s, cb, data, e);
	if (r < 0)
		return r;
	*out = vm;
	return 0;
}

const struct vmm_driver vmm_ch_driver = {
	.name = "cloud-hypervisor",
	.needs_network = true,
	.boot = ch_boot,
	.stop = vmcore_op_stop,
	.kill = vmcore_op_kill,
	.pid = vmcore_op_pid,
};
