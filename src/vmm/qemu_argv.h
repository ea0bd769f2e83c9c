/* qemu_argv.h - the QEMU and cloud-hypervisor command lines as pure functions
 * (no I/O besides sniffing disk formats), so they are unit-tested. */
#pragma once
#include "util/accel.h"
#include "vmm/vmm.h"

#include <stdbool.h>

struct cmd;
struct err;

struct qemu_opts {
	const char *binary;     /* "qemu-system-x86_64" */
	enum vmm_accel accel;
	const char *machine;    /* "pc", "q35" or "microvm" */
	unsigned tb_size_mb;    /* TCG translation cache (0: QEMU default) */
	const char *qmp_path;   /* unix socket QEMU listens on */
	const char *disk_format; /* "qcow2"/"raw" of spec->disk_path */
	unsigned long tsc_khz;  /* microvm under TCG: tsc_early_khz= (0: 2000000) */
};

/* Kernel command line when the spec carries none. */
#define VMM_DEFAULT_CMDLINE "console=ttyS0 root=/dev/vda1 rw"

int qemu_argv_build(const struct qemu_opts *o, const struct vmm_boot_spec *spec, struct cmd *c,
		    struct err *e);

/* cloud-hypervisor, as in behaviour.md "VMM command lines" (ch_argv.c). */
int ch_argv_build(const char *binary, const char *api_socket, const struct vmm_boot_spec *spec,
		  struct cmd *c, struct err *e);

/* The guest TSC rate under TCG is the host's: "cpu MHz" of /proc/cpuinfo in
 * kHz, 0 if unknown. */
unsigned long qemu_host_tsc_khz(void);
/* True when path is an ELF image (a vmlinux QEMU can boot via PVH). */
bool qemu_kernel_is_elf(const char *path);

/* "qcow2" when the file starts with the qcow2 magic, else "raw". */
const char *qemu_disk_format(const char *path);
