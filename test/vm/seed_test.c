/* seed_test.c - the NoCloud seed writer (suite "unit"): rendered text
 * byte-for-byte with and without fixtures/network, YAML quoting of a hard
 * guest path, and the ISO read back with libarchive (volume label cidata in
 * the Joliet descriptor, CIDATA in the primary one, the three files). */
#include "client/seed.h"
#include "util/err.h"
#include "util/fileio.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, #c); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } } while (0)

static const char *PRIV = "-----BEGIN OPENSSH PRIVATE KEY-----\n"
			  "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
			  "AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFake\n"
			  "-----END OPENSSH PRIVATE KEY-----\n";

static const char *UD_HEAD =
	"#cloud-config\n"
	"users:\n"
	"  - name: fleetbox\n"
	"    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n"
	"    shell: /bin/sh\n"
	"    lock_passwd: true\n"
	"    ssh_authorized_keys:\n"
	"      - ssh-ed25519 AAAAinstall fleetbox\n"
	"ssh_deletekeys: true\n"
	"ssh_keys:\n"
	"  ed25519_private: |\n"
	"    -----BEGIN OPENSSH PRIVATE KEY-----\n"
	"    b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
	"    AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFake\n"
	"    -----END OPENSSH PRIVATE KEY-----\n"
	"  ed25519_public: ssh-ed25519 AAAAhost web-1\n";

/* A member without cluster hosts: its own name on 127.0.1.1, empty block. */
static const char *UD_HOSTS_SOLO =
	"manage_etc_hosts: false\n"
	"write_files:\n"
	"  - path: /etc/hosts\n"
	"    permissions: \"0644\"\n"
	"    content: |\n"
	"      127.0.0.1 localhost\n"
	"      127.0.1.1 web-1\n"
	"      ::1 localhost ip6-localhost ip6-loopback\n"
	"      ff02::1 ip6-allnodes\n"
	"      ff02::2 ip6-allrouters\n"
	"      # fleetbox cluster begin\n"
	"      # fleetbox cluster end\n";

/* A member of a cluster: its name on its own address, every member listed. */
static const char *UD_HOSTS_CLUSTER =
	"manage_etc_hosts: false\n"
	"write_files:\n"
	"  - path: /etc/hosts\n"
	"    permissions: \"0644\"\n"
	"    content: |\n"
	"      127.0.0.1 localhost\n"
	"      ::1 localhost ip6-localhost ip6-loopback\n"
	"      ff02::1 ip6-allnodes\n"
	"      ff02::2 ip6-allrouters\n"
	"      # fleetbox cluster begin\n"
	"      192.168.3.2 web-1\n"
	"      192.168.3.3 web-2\n"
	"      # fleetbox cluster end\n";

static const struct seed_host HOSTS[] = { {"web-1", "192.168.3.2"}, {"web-2", "192.168.3.3"} };

static struct seed_params base(void)
{
	struct seed_params p = {
		.hostname = "web-1", .instance_id = "iid-web-1", .user = "fleetbox",
		.authorized_key = "ssh-ed25519 AAAAinstall fleetbox\n",
		.host_key_priv = PRIV, .host_key_pub = "ssh-ed25519 AAAAhost web-1",
	};
	return p;
}

static void test_minimal(void)
{
	struct seed_params p = base();
	char *md, *ud, *nc;
	struct err e = {0};
	CHECK(seed_render(&p, &md, &ud, &nc, &e) == 0, "%s", e.msg);
	CHECK(strcmp(md, "instance-id: iid-web-1\nlocal-hostname: web-1\n") == 0, "meta-data:\n%s", md);
	char want[4096];
	snprintf(want, sizeof(want), "%s%s", UD_HEAD, UD_HOSTS_SOLO);
	CHECK(strcmp(ud, want) == 0, "user-data:\n%s", ud);
	CHECK(!strstr(ud, "ssh_pwauth"), "ssh_pwauth restarts sshd late in boot");
	CHECK(nc == NULL, "network-config without static addressing");
	free(md);
	free(ud);
}

static void test_full(void)
{
	struct seed_params p = base();
	const char *ns[] = {"1.1.1.1", "8.8.8.8"};
	struct seed_mount mounts[] = {
		{"FBFIX0", "/srv/data"},
		{"FBFIX1", "/mnt/my \"fix\" dir\\x \xc3\xbc"},
	};
	p.mac = "02:aa:bb:cc:dd:ee";
	p.ip = "192.168.3.2";
	p.prefix_len = 24;
	p.gateway = "192.168.3.1";
	p.nameservers = ns;
	p.n_nameservers = 2;
	p.mounts = mounts;
	p.n_mounts = 2;
	p.hosts = HOSTS;
	p.n_hosts = 2;
	char *md, *ud, *nc;
	struct err e = {0};
	CHECK(seed_render(&p, &md, &ud, &nc, &e) == 0, "%s", e.msg);
	char want[4096];
	snprintf(want, sizeof(want), "%s%s%s", UD_HEAD, UD_HOSTS_CLUSTER,
		 "mounts:\n"
		 "  - [ LABEL=FBFIX0, \"/srv/data\", ext4, \"ro,nofail\", \"0\", \"0\" ]\n"
		 "  - [ LABEL=FBFIX1, \"/mnt/my \\\"fix\\\" dir\\\\x \xc3\xbc\", ext4, \"ro,nofail\", \"0\", \"0\" ]\n");
	CHECK(strcmp(ud, want) == 0, "user-data:\n%s\nwant:\n%s", ud, want);
	const char *want_nc =
		"version: 1\n"
		"config:\n"
		"  - type: physical\n"
		"    name: eth0\n"
		"    mac_address: \"02:aa:bb:cc:dd:ee\"\n"
		"    subnets:\n"
		"      - type: static\n"
		"        address: 192.168.3.2/24\n"
		"        gateway: 192.168.3.1\n"
		"        dns_nameservers: [1.1.1.1, 8.8.8.8]\n";
	CHECK(nc && strcmp(nc, want_nc) == 0, "network-config:\n%s", nc ? nc : "(null)");
	free(md);
	free(ud);
	free(nc);

	/* Without nameservers the line is omitted; without a gateway too. */
	p.n_nameservers = 0;
	CHECK(seed_render(&p, &md, &ud, &nc, &e) == 0, "%s", e.msg);
	CHECK(!strstr(nc, "nameservers"), "nameservers present:\n%s", nc);
	CHECK(strstr(nc, "        gateway: 192.168.3.1\n") && nc[strlen(nc) - 1] == '\n', "%s", nc);
	free(md);
	free(ud);
	free(nc);
	p.gateway = NULL;
	CHECK(seed_render(&p, &md, &ud, &nc, &e) == 0, "%s", e.msg);
	CHECK(!strstr(nc, "gateway") && strstr(nc, "/24\n"), "%s", nc);
	free(md);
	free(ud);
	free(nc);

	/* Invalid input is refused. */
	struct seed_mount rel[] = {{"FBFIX0", "relative/path"}};
	p.mounts = rel;
	p.n_mounts = 1;
	CHECK(seed_render(&p, &md, &ud, &nc, &e) < 0, "relative guest path accepted");
	p = base();
	p.host_key_priv = NULL;
	CHECK(seed_render(&p, &md, &ud, &nc, &e) < 0, "missing host key accepted");
}

/* Control characters (and, in hosts lines, spaces and '#') are refused: no
 * value may end its line and start one of its own. */
static void test_refused(void)
{
	char *md, *ud, *nc;
	struct err e = {0};
	struct seed_params p = base();
	p.mac = "02:aa:bb:cc:dd:ee\nruncmd: [reboot]";
	p.ip = "192.168.3.2";
	p.prefix_len = 24;
	CHECK(seed_render(&p, &md, &ud, &nc, &e) == -EINVAL, "newline in the MAC accepted");
	CHECK(strstr(e.msg, "control character"), "%s", e.msg);
	p = base();
	p.gateway = "192.168.3.1\r";
	CHECK(seed_render(&p, &md, &ud, &nc, &e) == -EINVAL, "CR in the gateway accepted");
	p = base();
	p.hostname = "web-1\nbootcmd: [x]";
	CHECK(seed_render(&p, &md, &ud, &nc, &e) == -EINVAL, "newline in the hostname accepted");
	const char *bad_hosts[][2] = { {"web-2", "192.168.3.3\n"}, {"web 2", "192.168.3.3"},
				       {"web-2", "#"}, {"", "192.168.3.3"}, {"web-2", NULL},
				       {"web\x01", "192.168.3.3"} };
	for (size_t i = 0; i < sizeof(bad_hosts) / sizeof(bad_hosts[0]); i++) {
		struct seed_host h = { bad_hosts[i][0], bad_hosts[i][1] };
		p = base();
		p.hosts = &h;
		p.n_hosts = 1;
		CHECK(seed_render(&p, &md, &ud, &nc, &e) == -EINVAL, "bad host %zu accepted", i);
		CHECK(seed_hosts_block(&h, 1) == NULL, "bad host %zu rendered", i);
	}
}

static void test_hosts_block(void)
{
	char *b = seed_hosts_block(HOSTS, 2);
	CHECK(b && !strcmp(b, "# fleetbox cluster begin\n192.168.3.2 web-1\n192.168.3.3 web-2\n"
			       "# fleetbox cluster end\n"), "%s", b ? b : "(null)");
	free(b);
	b = seed_hosts_block(NULL, 0);
	CHECK(b && !strcmp(b, "# fleetbox cluster begin\n# fleetbox cluster end\n"), "%s", b);
	free(b);
}

static void test_iso(void)
{
	char dir[] = "/tmp/fbseedtest-XXXXXX";
	CHECK(mkdtemp(dir), "mkdtemp");
	char path[256];
	snprintf(path, sizeof(path), "%s/seed.iso", dir);
	struct seed_params p = base();
	p.mac = "02:aa:bb:cc:dd:ee";
	p.ip = "192.168.3.2";
	p.prefix_len = 24;
	p.gateway = "192.168.3.1";
	struct err e = {0};
	CHECK(seed_write(path, &p, &e) == 0, "%s", e.msg);
	char tmp[300];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	CHECK(access(tmp, F_OK) != 0, "temp file left behind");

	/* Volume descriptors: primary at sector 16, Joliet (UCS-2) after it. */
	char *iso = NULL;
	size_t len = 0;
	CHECK(file_read_all(path, 16 << 20, &iso, &len) == 0, "read iso");
	CHECK(len > 18 * 2048, "iso too small");
	CHECK(memcmp(iso + 16 * 2048 + 1, "CD001", 5) == 0, "no ISO 9660 primary descriptor");
	CHECK(strncasecmp(iso + 16 * 2048 + 40, "cidata ", 7) == 0, "primary volume id");
	bool joliet = false;
	for (int s = 17; s < 32 && (size_t)(s + 1) * 2048 <= len; s++) {
		const unsigned char *d = (const unsigned char *)iso + s * 2048;
		if (d[0] == 255)
			break;
		if (d[0] == 2 && memcmp(d + 1, "CD001", 5) == 0) {
			const char want[] = {0, 'c', 0, 'i', 0, 'd', 0, 'a', 0, 't', 0, 'a', 0, ' '};
			joliet = memcmp(d + 40, want, sizeof(want)) == 0;
		}
	}
	CHECK(joliet, "no Joliet descriptor with volume id \"cidata\"");
	free(iso);

	/* The files, read back with libarchive. */
	struct archive *a = archive_read_new();
	archive_read_support_format_iso9660(a);
	CHECK(archive_read_open_filename(a, path, 10240) == ARCHIVE_OK, "%s", archive_error_string(a));
	struct archive_entry *ent;
	int found = 0;
	char *md, *ud, *nc;
	CHECK(seed_render(&p, &md, &ud, &nc, &e) == 0, "%s", e.msg);
	while (archive_read_next_header(a, &ent) == ARCHIVE_OK) {
		const char *n = archive_entry_pathname(ent);
		if (!strcmp(n, ".") || !strcmp(n, "./"))
			continue; /* the root directory record */
		const char *want = !strcmp(n, "meta-data") ? md : !strcmp(n, "user-data") ? ud
				 : !strcmp(n, "network-config") ? nc : NULL;
		CHECK(want, "unexpected entry %s", n);
		char buf[8192];
		la_ssize_t got = archive_read_data(a, buf, sizeof(buf) - 1);
		CHECK(got >= 0, "read %s", n);
		buf[got] = '\0';
		CHECK(strcmp(buf, want) == 0, "%s differs:\n%s", n, buf);
		found++;
	}
	CHECK(found == 3, "found %d files, want 3", found);
	archive_read_free(a);
	free(md);
	free(ud);
	free(nc);
	unlink(path);
	rmdir(dir);
}

/* The member whose seed test/seed/record.sh feeds to cloud-init; which = 0
 * network-config, 1 user-data. */
static char *recorded_member(int which)
{
	struct seed_params p = base();
	const char *ns[] = {"1.1.1.1", "8.8.8.8"};
	p.mac = "02:aa:bb:cc:dd:ee";
	p.ip = "192.168.3.2";
	p.prefix_len = 24;
	p.gateway = "192.168.3.1";
	p.nameservers = ns;
	p.n_nameservers = 2;
	p.hosts = HOSTS;
	p.n_hosts = 2;
	struct seed_mount mounts[] = { {"FBFIX0", "/srv/data"} };
	p.mounts = mounts;
	p.n_mounts = 1;
	char *md, *ud, *nc;
	struct err e = {0};
	CHECK(seed_render(&p, &md, &ud, &nc, &e) == 0, "%s", e.msg);
	free(md);
	if (which == 0) {
		free(ud);
		return nc;
	}
	free(nc);
	return ud;
}

static char *read_rec(const char *dir, const char *rel, bool must)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	char *s = NULL;
	int r = file_read_all(path, 1 << 20, &s, NULL);
	CHECK(r == 0 || !must, "%s: %s", path, strerror(-r));
	return r == 0 ? s : NULL;
}

static void has(const char *text, const char *what, const char *where)
{
	CHECK(strstr(text, what), "%s lacks \"%s\":\n%s", where, what, text);
}

/* Each renderer's output of one suite: a real default route via the
 * gateway, the address, the NIC matched by MAC; no `route add ... || true`. */
static void check_suite(const char *dir, const char *suite)
{
	char rel[256];
	static const struct { const char *file, *want[3]; } outs[] = {
		{ "eni/etc/network/interfaces.d/50-cloud-init",
		  { "iface eth0 inet static\n", "    address 192.168.3.2/24\n", "    gateway 192.168.3.1\n" } },
		{ "eni/etc/udev/rules.d/70-persistent-net.rules",
		  { "ATTR{address}==\"02:aa:bb:cc:dd:ee\", NAME=\"eth0\"", "", "" } },
		{ "netplan/etc/netplan/50-cloud-init.yaml",
		  { "macaddress: 02:aa:bb:cc:dd:ee\n", "- 192.168.3.2/24\n", "192.168.3.1\n" } },
		{ "networkd/etc/systemd/network/10-cloud-init-eth0.network",
		  { "MACAddress=02:aa:bb:cc:dd:ee\n", "Address=192.168.3.2/24\n", "[Route]\nGateway=192.168.3.1\n" } },
		{ "sysconfig/etc/sysconfig/network-scripts/ifcfg-eth0",
		  { "DEFROUTE=yes\n", "GATEWAY=192.168.3.1\n", "HWADDR=02:aa:bb:cc:dd:ee\n" } },
	};
	for (size_t i = 0; i < sizeof(outs) / sizeof(outs[0]); i++) {
		snprintf(rel, sizeof(rel), "%s/%s", suite, outs[i].file);
		char *t = read_rec(dir, rel, true);
		for (size_t k = 0; k < 3; k++)
			has(t, outs[i].want[k], rel);
		CHECK(!strstr(t, "route add") && !strstr(t, "|| true"), "%s: a route that may fail:\n%s", rel, t);
		free(t);
	}
	/* netplan: the deprecated gateway4 (22.x) or a default route (23.x on). */
	snprintf(rel, sizeof(rel), "%s/netplan/etc/netplan/50-cloud-init.yaml", suite);
	char *np = read_rec(dir, rel, true);
	CHECK(strstr(np, "gateway4: 192.168.3.1\n") ||
	      (strstr(np, "to: default\n") && strstr(np, "via: 192.168.3.1\n")) ||
	      (strstr(np, "to: 0.0.0.0/0\n") && strstr(np, "via: 192.168.3.1\n")),
	      "%s: no default route:\n%s", rel, np);
	free(np);
	snprintf(rel, sizeof(rel), "%s/user-data-schema", suite);
	char *sc = read_rec(dir, rel, true);
	CHECK(!strncmp(sc, "Valid", 5), "%s: cloud-init's schema refuses our user-data:\n%s", rel, sc);
	free(sc);
	snprintf(rel, sizeof(rel), "%s/cloud-init-version", suite);
	char *v = read_rec(dir, rel, true);
	fprintf(stderr, "  recorded %s: %.*s\n", suite, (int)strcspn(v, "\n"), v);
	free(v);
}

static void test_recorded(const char *dir)
{
	char *nc = recorded_member(0);
	char *in = read_rec(dir, "net.yaml", true);
	CHECK(!strcmp(in, nc), "test/seed/recorded/net.yaml is not what the seed renders now "
	      "(run test/seed/record.sh):\n%s\nrenders:\n%s", in, nc);
	free(in);
	free(nc);
	char *ud = recorded_member(1);
	in = read_rec(dir, "user-data", true);
	CHECK(!strcmp(in, ud), "test/seed/recorded/user-data is not what the seed renders now "
	      "(run test/seed/record.sh):\n%s\nrenders:\n%s", in, ud);
	free(in);
	free(ud);
	check_suite(dir, "bookworm");
	char *tv = read_rec(dir, "trixie/cloud-init-version", false);
	if (tv)
		check_suite(dir, "trixie");
	free(tv);
}

int main(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "--network-config") || !strcmp(argv[1], "--user-data"))) {
		char *nc = recorded_member(!strcmp(argv[1], "--user-data"));
		fputs(nc, stdout);
		free(nc);
		return 0;
	}
	if (argc > 1)
		test_recorded(argv[1]);
	test_minimal();
	test_full();
	test_refused();
	test_hosts_block();
	test_iso();
	printf("ok\n");
	return 0;
}
