/* preflight.c - fail fast, with a message a user can act on, before touching
 * anything: CAP_NET_ADMIN, /dev/net/tun and a kernel with nf_tables. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/net.h"
#include "net/ruleset.h"
#include "util/err.h"
#include "util/fileio.h"

#define CAP_NET_ADMIN_BIT 12

static bool have_net_admin(void)
{
	char *s = NULL;
	size_t len;
	if (file_read_all("/proc/self/status", 1 << 16, &s, &len) < 0)
		return geteuid() == 0;
	const char *p = strstr(s, "\nCapEff:");
	bool ok = p && ((strtoull(p + 8, NULL, 16) >> CAP_NET_ADMIN_BIT) & 1);
	free(s);
	return ok;
}

int net_preflight(struct err *e)
{
	if (!have_net_admin())
		return err_set(e, -EPERM, "fleetbox networking needs root (CAP_NET_ADMIN)");
	if (access("/dev/net/tun", R_OK | W_OK) < 0)
		return err_set(e, -errno, "fleetbox networking needs /dev/net/tun: %s",
			       strerror(errno));
	struct err le = {0};
	int r = ruleset_run("list tables ip", NULL, &le);
	if (r < 0)
		return err_set(e, r, "fleetbox networking needs nf_tables support in the kernel "
			       "(%s)", le.msg);
	return 0;
}
