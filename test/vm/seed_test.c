/* seed_test.c - the NoCloud seed writer (suite "unit"): rendered text
 * byte-for-byte with and without fixtures/network, YAML quoting of a hard
 * guest path, and the ISO read back with libarchive (volume label cidata in
 * the Joliet descriptor, CIDATA in the primary one, the three files). */
#include "client/seed.h"
#include "util/err.h"
#include "util/fileio.h"

#include <archive.h>
#include <archive_entry.h>
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
	"ssh_pwauth: false\n"
	"ssh_deletekeys: true\n"
	"ssh_genkeytypes: []\n"
	"ssh_keys:\n"
	"  ed25519_private: |\n"
	"    -----BEGIN OPENSSH PRIVATE KEY-----\n"
	"    b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
	"    AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFake\n"
	"    -----END OPENSSH PRIVATE KEY-----\n"
	"  ed25519_public: ssh-ed25519 AAAAhost web-1\n";

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
	CHECK(strcmp(ud, UD_HEAD) == 0, "user-data:\n%s", ud);
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
	char *md, *ud, *nc;
	struct err e = {0};
	CHECK(seed_render(&p, &md, &ud, &nc, &e) == 0, "%s", e.msg);
	char want[4096];
	snprintf(want, sizeof(want), "%s%s", UD_HEAD,
		 "mounts:\n"
		 "  - [ LABEL=FBFIX0, \"/srv/data\", ext4, \"ro,nofail\", \"0\", \"0\" ]\n"
		 "  - [ LABEL=FBFIX1, \"/mnt/my \\\"fix\\\" dir\\\\x \xc3\xbc\", ext4, \"ro,nofail\", \"0\", \"0\" ]\n");
	CHECK(strcmp(ud, want) == 0, "user-data:\n%s\nwant:\n%s", ud, want);
	const char *want_nc =
		"version: 2\n"
		"ethernets:\n"
		"  eth0:\n"
		"    match:\n"
		"      macaddress: \"02:aa:bb:cc:dd:ee\"\n"
		"    set-name: eth0\n"
		"    dhcp4: false\n"
		"    addresses: [192.168.3.2/24]\n"
		"    routes:\n"
		"      - to: 0.0.0.0/0\n"
		"        via: 192.168.3.1\n"
		"    nameservers:\n"
		"      addresses: [1.1.1.1, 8.8.8.8]\n";
	CHECK(nc && strcmp(nc, want_nc) == 0, "network-config:\n%s", nc ? nc : "(null)");
	free(md);
	free(ud);
	free(nc);

	/* Without nameservers the pair of lines is omitted. */
	p.n_nameservers = 0;
	CHECK(seed_render(&p, &md, &ud, &nc, &e) == 0, "%s", e.msg);
	CHECK(!strstr(nc, "nameservers"), "nameservers present:\n%s", nc);
	CHECK(strstr(nc, "        via: 192.168.3.1\n") && nc[strlen(nc) - 1] == '\n', "%s", nc);
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

int main(void)
{
	test_minimal();
	test_full();
	test_iso();
	printf("ok\n");
	return 0;
}
