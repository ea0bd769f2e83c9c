/* accel.c - see accel.h. */
#include "util/accel.h"

#include "util/err.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void accel_probe_host(struct accel_host *h)
{
	memset(h, 0, sizeof(*h));
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		h->dev_kvm = true;
		close(fd);
	}
	h->kvm_hw = access("/sys/module/kvm_intel", F_OK) == 0 ||
		    access("/sys/module/kvm_amd", F_OK) == 0;
	h->kvm_pvm = access("/sys/module/kvm_pvm", F_OK) == 0;
	FILE *f = fopen("/proc/cpuinfo", "re");
	if (f) {
		char line[4096];
		while (fgets(line, sizeof(line), f)) {
			if (strncmp(line, "flags", 5) != 0)
				continue;
			h->cpu_virt = strstr(line, " vmx") || strstr(line, " svm");
			break;
		}
		fclose(f);
	}
}

int accel_choose(const char *setting, const struct accel_host *h, enum vmm_accel *out,
		 char *warn, size_t warn_len, struct err *e)
{
	warn[0] = '\0';
	if (!setting || !*setting)
		setting = "auto";
	if (strcmp(setting, "tcg") == 0) {
		*out = VMM_ACCEL_TCG;
		return 0;
	}
	if (strcmp(setting, "kvm") == 0) {
		if (!h->dev_kvm)
			return err_set(e, -ENODEV, "FLEETBOX_ACCEL=kvm but /dev/kvm is not usable");
		if (h->kvm_pvm && !h->kvm_hw)
			snprintf(warn, warn_len, "/dev/kvm is backed by kvm_pvm; stock "
				 "kernels may hang (FLEETBOX_ACCEL=kvm was forced)");
		*out = VMM_ACCEL_KVM;
		return 0;
	}
	if (strcmp(setting, "auto") != 0)
		return err_set(e, -EINVAL, "unknown FLEETBOX_ACCEL \"%s\" (want auto, kvm or tcg)", setting);
	if (h->dev_kvm && h->kvm_hw) {
		*out = VMM_ACCEL_KVM;
		return 0;
	}
	*out = VMM_ACCEL_TCG;
	if (h->dev_kvm && h->kvm_pvm)
		snprintf(warn, warn_len, "KVM is not usable here (kvm_pvm); using TCG "
			 "software emulation, VMs will be slower");
	else if (h->dev_kvm)
		snprintf(warn, warn_len, "/dev/kvm has no kvm_intel/kvm_amd backend; using "
			 "TCG software emulation, VMs will be slower");
	else
		snprintf(warn, warn_len, "KVM is not available (no usable /dev/kvm); using "
			 "TCG software emulation, VMs will be slower");
	return 0;
}

int accel_select(enum vmm_accel *out, struct err *e)
{
	static bool warned;
	struct accel_host h;
	accel_probe_host(&h);
	char warn[256];
	int r = accel_choose(getenv("FLEETBOX_ACCEL"), &h, out, warn, sizeof(warn), e);
	if (r == 0 && warn[0] && !warned) {
		warned = true;
		log_warn("%s", warn);
	}
	return r;
}

bool accel_kvm_usable(void)
{
	struct accel_host h;
	accel_probe_host(&h);
	const char *s = getenv("FLEETBOX_ACCEL");
	if (s && strcmp(s, "tcg") == 0)
		return false;
	if (s && strcmp(s, "kvm") == 0)
		return h.dev_kvm;
	return h.dev_kvm && h.kvm_hw;
}
