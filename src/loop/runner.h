/* runner.h - entry points of the holder modes of the fleetbox binary. */
#pragma once

/* fleetbox --fleetbox-runner NAME1,NAME2,... */
int runner_main(const char *names_csv);
/* fleetbox --fleetbox-reconcile (backs `fleetbox prune`) */
int reconcile_main(void);
