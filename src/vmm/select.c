#include "vmm/vmm.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Defined by the qemu/cloud-hypervisor drivers: true when usable here.
 * Weak until those drivers land in the tree (see README, "status"). */
__attribute__((weak)) bool vmm_ch_available(void);
__attribute__((weak)) extern const struct vmm_driver vmm_qemu_driver;
__attribute__((weak)) extern const struct vmm_driver vmm_ch_driver;

int vmm_driver_select(const char *name, const struct vmm_driver **out, struct err *e)
{
	if (!name || !*name)
		name = getenv("FLEETBOX_VMM");
	if (!name || !*name)
		name = "auto";
	if (!strcmp(name, "fake")) {
		*out = &vmm_fake_driver;
		return 0;
	}
	if (!strcmp(name, "qemu")) {
		if (!&vmm_qemu_driver)
			return err_set(e, -ENOSYS, "the qemu driver is not built in");
		*out = &vmm_qemu_driver;
		return 0;
	}
	if (!strcmp(name, "cloud-hypervisor")) {
		if (!&vmm_ch_driver)
			return err_set(e, -ENOSYS, "the cloud-hypervisor driver is not built in");
		*out = &vmm_ch_driver;
		return 0;
	}
	if (!strcmp(name, "auto")) {
		/* cloud-hypervisor only with working KVM; QEMU works everywhere (TCG). */
		if (&vmm_ch_driver && vmm_ch_available && vmm_ch_available())
			*out = &vmm_ch_driver;
		else if (&vmm_qemu_driver)
			*out = &vmm_qemu_driver;
		else
			return err_set(e, -ENOSYS, "no real VMM driver is built in");
		return 0;
	}
	return err_set(e, -EINVAL, "unknown FLEETBOX_VMM \"%s\" (want fake, qemu, cloud-hypervisor or auto)", name);
}
