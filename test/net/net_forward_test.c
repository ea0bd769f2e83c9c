/* net_forward_test.c - forwarding is switched on only per interface (bridge +
 * default-route uplink), never globally, and the uplink's original value comes
 * back when the last of our networks is gone. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/net.h"
#include "net/netint.h"
#include "net/record.h"
#include "nstest.h"
#include "util/err.h"
#include "util/fileio.h"

static int read_int(const char *path)
{
	char *s = NULL;
	size_t len;
	CHECK(file_read_all(path, 64, &s, &len) == 0);
	int v = atoi(s);
	free(s);
	return v;
}

static void check_globals_untouched(void)
{
	CHECK(read_int("/proc/sys/net/ipv4/ip_forward") == 0);
	CHECK(read_int("/proc/sys/net/ipv4/conf/all/forwarding") == 0);
	CHECK(read_int("/proc/sys/net/ipv4/conf/default/forwarding") == 0);
	CHECK(read_int("/proc/sys/net/ipv4/conf/lo/forwarding") == 0);
}

static int recorded_original(const char *root, const char *bridge, const char *ifname)
{
	char p[PATH_MAX];
	struct net_record r;
	struct err e = {0};
	CHECK(record_path(root, bridge, p, sizeof(p)) == 0);
	CHECK_OK(record_load(p, &r, &e), e);
	int v = -1;
	for (size_t i = 0; i < r.nfwd; i++)
		if (strcmp(r.fwd[i].ifname, ifname) == 0)
			v = r.fwd[i].original;
	record_fini(&r);
	return v;
}

int main(void)
{
	nstest_enter();
	unsetenv("FLEETBOX_SUBNET_RANGE");
	char *root = nstest_tmp_root();
	struct err e = {0};
	CHECK(read_int("/proc/sys/net/ipv4/ip_forward") == 0);  /* a clean namespace */
	nstest_uplink("up0", "10.99.0.2", 24, "10.99.0.1", 0);
	check_globals_untouched();

	struct net *a, *b, *c;
	struct net_config cfg = {.store_root = root, .cluster = "fw"};
	CHECK_OK(net_create(&cfg, &a, &e), e);
	CHECK(nstest_fwd(net_bridge(a)) == 1 && nstest_fwd("up0") == 1);
	CHECK(nstest_fwd("up0p") == 0);  /* not on a default route: untouched */
	CHECK(recorded_original(root, net_bridge(a), "up0") == 0);
	check_globals_untouched();

	/* The second network shares the uplink and inherits the true original (0),
	 * not the 1 that a left there. */
	CHECK_OK(net_create(&cfg, &b, &e), e);
	CHECK(recorded_original(root, net_bridge(b), "up0") == 0);
	CHECK_OK(net_destroy(a, &e), e);
	CHECK(nstest_fwd("up0") == 1);  /* b still needs it */
	CHECK_OK(net_destroy(b, &e), e);
	CHECK(nstest_fwd("up0") == 0);  /* last one gone: restored */
	check_globals_untouched();

	/* An uplink that was already forwarding stays forwarding. */
	CHECK(fwd_write("up0", 1) == 0);
	CHECK_OK(net_create(&cfg, &c, &e), e);
	CHECK(recorded_original(root, net_bridge(c), "up0") == 1);
	CHECK_OK(net_destroy(c, &e), e);
	CHECK(nstest_fwd("up0") == 1);
	check_globals_untouched();

	/* The global switches are refused outright by the helper. */
	CHECK(fwd_write("all", 1) == -EINVAL);
	CHECK(fwd_write("default", 1) == -EINVAL);
	CHECK(fwd_write("../all", 1) == -EINVAL);
	check_globals_untouched();
	rm_rf(root);
	free(root);
	printf("net_forward_test: ok\n");
	return 0;
}
