/* net_create_test.c - two networks side by side: distinct /24s (skipping a host
 * address), bridges, tables; reservations; taps with neighbour entries appear
 * and disappear; everything is gone after destroy. Prints bench lines. */
#include <errno.h>
#include <linux/neighbour.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/addr.h"
#include "net/net.h"
#include "net/nl.h"
#include "net/record.h"
#include "nstest.h"
#include "util/err.h"
#include "util/fileio.h"

static void check_tap(struct net *n, const char *tap, const char *ip, const char *mac)
{
	struct nl_link t, br;
	CHECK(nl_link_get(tap, &t) == 0);
	CHECK(nl_link_get(net_bridge(n), &br) == 0);
	CHECK(t.master == br.index);
	CHECK(t.flags & IFF_UP);
	CHECK(strcmp(t.kind, "tun") == 0);
	CHECK(if_nametoindex(tap) == (unsigned)t.index);
	uint32_t a;
	uint8_t want[6], got[6];
	uint16_t state;
	CHECK(addr_parse(ip, &a) == 0 && nl_mac_parse(mac, want) == 0);
	CHECK(nl_neigh_get(br.index, a, got, &state) == 0);
	CHECK(state == NUD_PERMANENT);
	CHECK(memcmp(got, want, 6) == 0);
}

static void check_record_taps(const char *root, const char *bridge, size_t want)
{
	char p[4096];
	struct net_record r;
	struct err e = {0};
	CHECK(record_path(root, bridge, p, sizeof(p)) == 0);
	CHECK_OK(record_load(p, &r, &e), e);
	CHECK(r.ntaps == want);
	CHECK(r.owner_pid == getpid());
	CHECK(strcmp(r.state, "ready") == 0);
	record_fini(&r);
}

int main(void)
{
	nstest_enter();
	char *root = nstest_tmp_root();
	struct err e = {0};
	CHECK_OK(net_preflight(&e), e);
	unsetenv("FLEETBOX_SUBNET_RANGE");

	/* A host address inside 192.168.0.0/24 makes that /24 unavailable. */
	nstest_uplink("up0", "192.168.0.9", 24, "192.168.0.254", 0);

	struct net_config ca = {.store_root = root, .cluster = "alpha"};
	struct net_config cb = {.store_root = root, .cluster = "beta"};
	struct net *a = NULL, *b = NULL;
	double c0 = nstest_now_ms();
	CHECK_OK(net_create(&ca, &a, &e), e);
	double c1 = nstest_now_ms();
	CHECK_OK(net_create(&cb, &b, &e), e);
	printf("bench net_create_ms=%.2f\n", c1 - c0);
	printf("bench net_create_second_ms=%.2f\n", nstest_now_ms() - c1);

	printf("alpha %s %s %s\n", net_subnet(a), net_gateway(a), net_bridge(a));
	printf("beta  %s %s %s\n", net_subnet(b), net_gateway(b), net_bridge(b));
	CHECK(strcmp(net_subnet(a), "192.168.1.0/24") == 0);
	CHECK(strcmp(net_gateway(a), "192.168.1.1") == 0);
	CHECK(strcmp(net_subnet(b), "192.168.2.0/24") == 0);
	CHECK(net_prefix_len(a) == 24 && net_prefix_len(b) == 24);
	CHECK(strcmp(net_bridge(a), net_bridge(b)) != 0);
	CHECK(strlen(net_bridge(a)) < 16);
	CHECK(nstest_link_exists(net_bridge(a)) && nstest_link_exists(net_bridge(b)));
	CHECK(nstest_table_exists(net_bridge(a)) && nstest_table_exists(net_bridge(b)));
	CHECK(nstest_table_count() == 2);
	CHECK(nstest_record_exists(root, net_bridge(a)) && nstest_record_exists(root, net_bridge(b)));
	struct nl_link br;
	CHECK(nl_link_get(net_bridge(a), &br) == 0 && (br.flags & IFF_UP) &&
	      strcmp(br.kind, "bridge") == 0);
	CHECK(nstest_fwd(net_bridge(a)) == 1);

	/* Range from cfg, then from the environment; an exhausted range is an error. */
	struct net_config cc = {.store_root = root, .cluster = "gamma", .range = "10.77.0.0/23"};
	struct net *c = NULL, *d = NULL;
	CHECK_OK(net_create(&cc, &c, &e), e);
	CHECK(strcmp(net_subnet(c), "10.77.0.0/24") == 0);
	setenv("FLEETBOX_SUBNET_RANGE", "10.77.0.0/23", 1);
	struct net_config cd = {.store_root = root, .cluster = "delta"};
	CHECK_OK(net_create(&cd, &d, &e), e);
	CHECK(strcmp(net_subnet(d), "10.77.1.0/24") == 0);
	struct net *x = NULL;
	CHECK(net_create(&cd, &x, &e) == -ENOSPC && x == NULL);
	printf("exhausted range: %s\n", e.msg);
	CHECK(strstr(e.msg, "no free /24 in 10.77.0.0/23"));
	setenv("FLEETBOX_SUBNET_RANGE", "10.77.0.0/25", 1);
	CHECK(net_create(&cd, &x, &e) == -EINVAL && strstr(e.msg, "invalid subnet range"));
	unsetenv("FLEETBOX_SUBNET_RANGE");
	CHECK_OK(net_destroy(c, &e), e);
	CHECK_OK(net_destroy(d, &e), e);

	/* Reservations: hints honoured or fallen back from, idempotent per name. */
	char ip[FB_IP_STRLEN], mac[FB_MAC_STRLEN], ip2[FB_IP_STRLEN], mac2[FB_MAC_STRLEN];
	char want_mac[FB_MAC_STRLEN];
	CHECK_OK(net_reserve(a, "web-1", NULL, ip, mac, &e), e);
	CHECK(strcmp(ip, "192.168.1.2") == 0);
	wire_mac("web-1", want_mac);
	CHECK(strcmp(mac, want_mac) == 0);
	CHECK_OK(net_reserve(a, "web-1", "192.168.1.99", ip2, mac2, &e), e);
	CHECK(strcmp(ip2, ip) == 0 && strcmp(mac2, mac) == 0);
	CHECK_OK(net_reserve(a, "web-2", "192.168.1.40", ip, mac, &e), e);
	CHECK(strcmp(ip, "192.168.1.40") == 0);
	CHECK_OK(net_reserve(a, "web-3", "10.0.0.9", ip, mac, &e), e);   /* outside */
	CHECK(strcmp(ip, "192.168.1.3") == 0);
	CHECK_OK(net_reserve(a, "web-4", "192.168.1.1", ip, mac, &e), e); /* gateway */
	CHECK(strcmp(ip, "192.168.1.4") == 0);
	CHECK_OK(net_reserve(a, "web-5", "192.168.1.40", ip, mac, &e), e); /* taken */
	CHECK(strcmp(ip, "192.168.1.5") == 0);
	CHECK_OK(net_reserve(a, "web-6", "192.168.1.255", ip, mac, &e), e); /* broadcast */
	CHECK(strcmp(ip, "192.168.1.6") == 0);
	CHECK(net_reserve(a, "Bad Name", NULL, ip, mac, &e) == -EINVAL);
	CHECK_OK(net_reserve(b, "db-1", "192.168.1.40", ip, mac, &e), e); /* other subnet */
	CHECK(strcmp(ip, "192.168.2.2") == 0);

	/* Taps. */
	char t1[16], t2[16], t3[16], again[16];
	CHECK(net_tap_add(a, "nobody", t1, &e) == -ENOENT && strstr(e.msg, "was not reserved"));
	double t2s = nstest_now_ms();
	CHECK_OK(net_tap_add(a, "web-1", t1, &e), e);
	printf("bench net_tap_add_ms=%.2f\n", nstest_now_ms() - t2s);
	CHECK_OK(net_tap_add(a, "web-2", t2, &e), e);
	CHECK_OK(net_tap_add(b, "db-1", t3, &e), e);
	CHECK(strcmp(t1, t2) != 0 && strcmp(t1, t3) != 0 && strlen(t1) < 16);
	check_tap(a, t1, "192.168.1.2", mac2);
	wire_mac("web-2", want_mac);
	check_tap(a, t2, "192.168.1.40", want_mac);
	wire_mac("db-1", want_mac);
	check_tap(b, t3, "192.168.2.2", want_mac);
	check_record_taps(root, net_bridge(a), 2);
	check_record_taps(root, net_bridge(b), 1);
	CHECK_OK(net_tap_add(a, "web-1", again, &e), e);  /* idempotent */
	CHECK(strcmp(again, t1) == 0);
	check_record_taps(root, net_bridge(a), 2);
	CHECK(net_tap_set_pid(a, "web-1", getpid()) == 0);
	CHECK(net_tap_set_pid(a, "nobody", getpid()) == -ENOENT);

	CHECK_OK(net_tap_remove(a, "web-2", &e), e);
	CHECK(!nstest_link_exists(t2));
	uint32_t ip40;
	CHECK(addr_parse("192.168.1.40", &ip40) == 0);
	CHECK(nl_neigh_get(br.index, ip40, NULL, NULL) == -ENOENT);
	check_record_taps(root, net_bridge(a), 1);
	CHECK_OK(net_tap_remove(a, "web-2", &e), e);  /* idempotent */
	CHECK(nstest_link_exists(t1));

	/* Destroy: taps, table, bridge and record all go. */
	char bra[16], brb[16];
	snprintf(bra, sizeof(bra), "%s", net_bridge(a));
	snprintf(brb, sizeof(brb), "%s", net_bridge(b));
	double t3s = nstest_now_ms();
	CHECK_OK(net_destroy(a, &e), e);
	printf("bench net_destroy_ms=%.2f\n", nstest_now_ms() - t3s);
	CHECK(!nstest_link_exists(t1) && !nstest_link_exists(bra));
	CHECK(!nstest_table_exists(bra) && !nstest_record_exists(root, bra));
	CHECK(nstest_link_exists(brb) && nstest_link_exists(t3) && nstest_table_exists(brb));
	CHECK_OK(net_destroy(b, &e), e);
	CHECK(!nstest_link_exists(t3) && !nstest_link_exists(brb));
	CHECK(nstest_table_count() == 0);
	CHECK(!nstest_record_exists(root, brb));

	/* Nothing left for reconcile either. */
	struct net_reconcile_report rep;
	CHECK_OK(net_reconcile(root, &rep, &e), e);
	CHECK(rep.records_seen == 0);
	struct nl_link *links;
	size_t nl;
	CHECK(nl_link_list(&links, &nl) == 0);
	CHECK(nl == 3);  /* lo + up0 + up0p */
	free(links);
	rm_rf(root);
	free(root);
	printf("net_create_test: ok\n");
	return 0;
}
