/* select.c - FLEETBOX_VMM=fake|qemu|cloud-hypervisor|auto. auto takes
 * cloud-hypervisor only when its binary is found and KVM really works, else
 * QEMU (which falls back to TCG by itself). */
#include "vmm/vmm.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool vmm_ch_available(void);

int vmm_driver_select(const char *name, const struct vmm_driver **out, struct err *e)
{
	if (!name || !*name)
		name = getenv("FLEETBOX_VMM");
	if (!name || !*name)
		name = "auto";
	if (!strcmp(name, "fake"))
		*out = &vmm_fake_driver;
	else if (!strcmp(name, "qemu"))
		*out = &vmm_qemu_driver;
	else if (!strcmp(name, "cloud-hypervisor"))
		*out = &vmm_ch_driver;
	else if (!strcmp(name, "auto"))
		*out = vmm_ch_available() ? &vmm_ch_driver : &vmm_qemu_driver;
	else
		return err_set(e, -EINVAL,
			       "unknown FLEETBOX_VMM \"%s\" (want fake, qemu, cloud-hypervisor or auto)", name);
	return 0;
}
