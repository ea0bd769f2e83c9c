/* main.c - one binary, several roles: the CLI, the holder
 * (--fleetbox-runner), the one-shot reconciler (--fleetbox-reconcile), and two
 * internal helpers (--fleetbox-pdeath-exec, --fleetbox-fake-vm). The holder
 * flags are recognised anywhere in argv (protocol.md). */
#include "client/cli/cli.h"
#include "loop/runner.h"
#include "vmm/fake.h"
#include "vmm/vmm.h"

#include <string.h>

int main(int argc, char **argv)
{
	vmm_set_self_exe(argv[0]);
	/* Internal helpers take their own argv layout and must come first. */
	if (argc > 1 && !strcmp(argv[1], "--fleetbox-pdeath-exec"))
		return vmm_pdeath_exec_main(argc, argv);
	if (argc > 1 && !strcmp(argv[1], "--fleetbox-fake-vm"))
		return vmm_fake_vm_main(argc, argv);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--fleetbox-runner"))
			return runner_main(i + 1 < argc ? argv[i + 1] : "");
		if (!strncmp(argv[i], "--fleetbox-runner=", 18))
			return runner_main(argv[i] + 18);
		if (!strcmp(argv[i], "--fleetbox-reconcile"))
			return reconcile_main();
	}
	return cli_main(argc, argv);
}
