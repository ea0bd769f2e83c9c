/* Names, cluster names (the whole behaviour.md table), hashes, MACs, paths. */
#include "check.h"
#include "rpc/wire.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static void test_cluster_names(void)
{
	static const char *table[][2] = {
		{ "web-3", "web" },   { "web-01", "web" }, { "web-1-2", "web-1" }, { "node-2024", "node" },
		{ "dev", "dev" },     { "5", "5" },        { "web-", "web-" },     { "-5", "-5" },
		{ "a-0", "a" },       { "web1", "web1" },  { "x--2", "x-" },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		char out[FB_NAME_MAX + 1];
		wire_cluster_name(table[i][0], out);
		CHECK_STR(out, table[i][1]);
	}
}

static void test_names(void)
{
	CHECK(wire_name_valid("web-1"));
	CHECK(wire_name_valid("5"));
	CHECK(wire_name_valid("a-"));
	CHECK(!wire_name_valid(""));
	CHECK(!wire_name_valid("-a"));
	CHECK(!wire_name_valid("Web"));
	CHECK(!wire_name_valid("a_b"));
	CHECK(!wire_name_valid("../x"));
	CHECK(!wire_name_valid("a/b"));
	CHECK(!wire_name_valid(NULL));
	char n63[64], n64[65];
	memset(n63, 'a', 63);
	n63[63] = '\0';
	memset(n64, 'a', 64);
	n64[64] = '\0';
	CHECK(wire_name_valid(n63));
	CHECK(!wire_name_valid(n64));
}

static void test_hash_mac_paths(void)
{
	char h[17];
	wire_name_hash("web-1", h);
	CHECK_STR(h, "c4719afa76fa448b"); /* first 8 bytes of sha256("web-1") */
	char mac[FB_MAC_STRLEN];
	wire_mac("web-1", mac);
	CHECK_STR(mac, "c2:e2:65:d7:2f:93");
	wire_mac("dev", mac);
	CHECK_STR(mac, "12:8b:86:ed:f3:bc");
	/* locally administered, unicast for many names */
	for (int i = 0; i < 200; i++) {
		char name[16];
		snprintf(name, sizeof(name), "n-%d", i);
		wire_mac(name, mac);
		unsigned b0 = (unsigned)strtoul(mac, NULL, 16);
		CHECK((b0 & 1) == 0);
		CHECK((b0 & 2) == 2);
	}

	char p[256];
	CHECK_INT(wire_sock_path("/home/u/.fleetbox", "web-1", p, sizeof(p)), 0);
	CHECK_STR(p, "/home/u/.fleetbox/run/c4719afa76fa448b.sock");
	CHECK_INT(wire_ctl_path("/home/u/.fleetbox", "web-1", p, sizeof(p)), 0);
	CHECK_STR(p, "/home/u/.fleetbox/run/c4719afa76fa448b.ctl");
	CHECK_INT(wire_pidfile_path("/r", "web-1", p, sizeof(p)), 0);
	CHECK_STR(p, "/r/clusters/web/web-1/pid");
	CHECK_INT(wire_member_dir("/r", "dev", p, sizeof(p)), 0);
	CHECK_STR(p, "/r/clusters/dev/dev");

	/* Socket paths must fit sun_path (108 bytes with the NUL); the longest
	 * member name costs nothing thanks to hashing. */
	char root[128];
	memset(root, 'r', sizeof(root));
	root[0] = '/';
	size_t fixed = strlen("/run/") + 16 + strlen(".sock"); /* 26 */
	root[107 - fixed] = '\0';                               /* total length 107: fits */
	CHECK_INT(wire_sock_path(root, "a", p, sizeof(p)), 0);
	CHECK_INT(strlen(p), 107);
	root[107 - fixed] = 'r';
	root[108 - fixed] = '\0'; /* 108 chars + NUL does not fit */
	CHECK_INT(wire_sock_path(root, "a", p, sizeof(p)), -ENAMETOOLONG);
}

static void test_states(void)
{
	enum wire_state s;
	CHECK_INT(wire_state_parse("running", &s), 0);
	CHECK_INT(s, FB_STATE_RUNNING);
	CHECK_INT(wire_state_parse("bogus", &s), -EINVAL);
	CHECK(wire_state_is_running(FB_STATE_DOWNLOADING));
	CHECK(wire_state_is_running(FB_STATE_STARTING));
	CHECK(!wire_state_is_running(FB_STATE_STOPPED));
	CHECK(!wire_state_is_running(FB_STATE_ERROR));
	CHECK_STR(wire_state_name(FB_STATE_ERROR), "error");
}

static void test_store_root(void)
{
	char r[256];
	setenv("FLEETBOX_HOME", "/tmp/x/", 1);
	CHECK_INT(wire_store_root(r, sizeof(r)), 0);
	CHECK_STR(r, "/tmp/x");
	unsetenv("FLEETBOX_HOME");
	unsetenv("SUDO_USER");
	setenv("HOME", "/home/tester", 1);
	CHECK_INT(wire_store_root(r, sizeof(r)), 0);
	CHECK_STR(r, "/home/tester/.fleetbox");
	/* Under sudo the invoking user's store (root is uid 0 in the test run). */
	if (geteuid() == 0) {
		setenv("SUDO_USER", "root", 1);  /* sudo to root itself: $HOME */
		CHECK_INT(wire_store_root(r, sizeof(r)), 0);
		CHECK_STR(r, "/home/tester/.fleetbox");
		unsetenv("SUDO_USER");
	}
}

static void test_cache_root(void)
{
	char r[256];
	unsetenv("SUDO_USER");
	setenv("HOME", "/home/tester", 1);
	setenv("FLEETBOX_CACHE", "/var/cache/fb//", 1);
	CHECK_INT(wire_cache_root(r, sizeof(r)), 0);
	CHECK_STR(r, "/var/cache/fb");
	unsetenv("FLEETBOX_CACHE");
	setenv("XDG_CACHE_HOME", "/home/tester/.xdg", 1);
	CHECK_INT(wire_cache_root(r, sizeof(r)), 0);
	CHECK_STR(r, "/home/tester/.xdg/fleetbox");
	setenv("XDG_CACHE_HOME", "relative", 1);  /* the XDG spec: ignore relative */
	CHECK_INT(wire_cache_root(r, sizeof(r)), 0);
	CHECK_STR(r, "/home/tester/.cache/fleetbox");
	unsetenv("XDG_CACHE_HOME");
	CHECK_INT(wire_cache_root(r, sizeof(r)), 0);
	CHECK_STR(r, "/home/tester/.cache/fleetbox");
	char tiny[8];
	CHECK_INT(wire_cache_root(tiny, sizeof(tiny)), -ENAMETOOLONG);
}

int main(void)
{
	test_cluster_names();
	test_names();
	test_hash_mac_paths();
	test_states();
	test_store_root();
	test_cache_root();
	printf("wire: ok\n");
	return 0;
}
