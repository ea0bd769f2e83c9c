/* fake.h - extra hooks of the fake driver (recording of holder-level calls). */
#pragma once

void vmm_fake_record_reserve(const char *name, const char *ip_hint, const char *mac,
			     const char *ip);
void vmm_fake_record_close(void);
/* main() of the child in --fleetbox-fake-vm NAME mode. */
int vmm_fake_vm_main(int argc, char **argv);
