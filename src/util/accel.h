/* accel.h - choosing hardware acceleration for the VMM drivers (and the
 * waits that scale with it, util/timeouts.h).
 *
 * FLEETBOX_ACCEL=auto|kvm|tcg (default auto). auto picks KVM only when it
 * really works: /dev/kvm is usable AND a real KVM backend is loaded
 * (kvm_intel/kvm_amd). A PVM host (kvm_pvm) exposes /dev/kvm but stock
 * kernels hang under it, so auto falls back to TCG there, with one warning. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

struct err;

enum vmm_accel { VMM_ACCEL_TCG, VMM_ACCEL_KVM };

struct accel_host {
	bool dev_kvm;       /* /dev/kvm opens read-write */
	bool kvm_hw;        /* /sys/module/kvm_intel or kvm_amd present */
	bool kvm_pvm;       /* /sys/module/kvm_pvm present */
	bool cpu_virt;      /* vmx or svm in /proc/cpuinfo */
};

void accel_probe_host(struct accel_host *h);
/* Pure decision (unit-tested). warn gets a one-line warning or "". */
int accel_choose(const char *setting, const struct accel_host *h, enum vmm_accel *out,
		 char *warn, size_t warn_len, struct err *e);
/* Probe + choose from the environment; logs the warning once per process. */
int accel_select(enum vmm_accel *out, struct err *e);
/* True when KVM is really usable here (used by the auto driver choice). */
bool accel_kvm_usable(void);
