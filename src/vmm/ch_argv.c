/* ch_argv.c - the cloud-hypervisor command line, exactly as the reference
 * (behaviour.md "VMM command lines"): one --disk flag carrying the member
 * disk, the seed and the fixtures (read-only) in that order. Validates like
 * the reference: cpus >= 1, memory >= 256 MB, disk and seed exist. */
#include "vmm/qemu_argv.h"

#include "util/cmd.h"
#include "util/err.h"

#include <errno.h>
#include <unistd.h>

int ch_argv_build(const char *binary, const char *api_socket, const struct vmm_boot_spec *s,
		  struct cmd *c, struct err *e)
{
	if (s->cpus < 1)
		return err_set(e, -EINVAL, "cloud-hypervisor: cpus must be >= 1");
	if (s->memory_bytes < (256ull << 20))
		return err_set(e, -EINVAL, "cloud-hypervisor: memory must be >= 256 MB");
	if (!s->disk_path || access(s->disk_path, F_OK) != 0)
		return err_set(e, -ENOENT, "cloud-hypervisor: disk %s does not exist",
			       s->disk_path ? s->disk_path : "(none)");
	if (!s->seed_path || access(s->seed_path, F_OK) != 0)
		return err_set(e, -ENOENT, "cloud-hypervisor: seed %s does not exist",
			       s->seed_path ? s->seed_path : "(none)");
	if (!s->kernel_path || !s->serial_log_path)
		return err_set(e, -EINVAL, "cloud-hypervisor: missing kernel or serial log path");
	cmd_init(c, binary);
	cmd_add(c, "--api-socket");
	cmd_add(c, api_socket);
	cmd_add(c, "--kernel");
	cmd_add(c, s->kernel_path);
	if (s->initrd_path && *s->initrd_path) {
		cmd_add(c, "--initramfs");
		cmd_add(c, s->initrd_path);
	}
	cmd_add(c, "--cmdline");
	cmd_add(c, s->cmdline && *s->cmdline ? s->cmdline : VMM_DEFAULT_CMDLINE);
	cmd_add(c, "--disk");
	cmd_addf(c, "path=%s", s->disk_path);
	cmd_addf(c, "path=%s,readonly=on", s->seed_path);
	for (size_t i = 0; i < s->n_fixtures; i++)
		cmd_addf(c, "path=%s,readonly=on", s->fixture_paths[i]);
	cmd_add(c, "--cpus");
	cmd_addf(c, "boot=%d", s->cpus);
	cmd_add(c, "--memory");
	cmd_addf(c, "size=%lluM", (unsigned long long)(s->memory_bytes >> 20));
	if (s->tap && *s->tap) {
		cmd_add(c, "--net");
		cmd_addf(c, "tap=%s,mac=%s", s->tap, s->mac ? s->mac : "");
	}
	cmd_add(c, "--console");
	cmd_add(c, "off");
	cmd_add(c, "--serial");
	cmd_addf(c, "file=%s", s->serial_log_path);
	if (!cmd_argv(c))
		return err_set(e, -ENOMEM, "out of memory building the cloud-hypervisor command line");
	return 0;
}
