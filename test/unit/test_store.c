/* The store: config.json rendering and round trip, listing, patterns, delete. */
#include "check.h"
#include "client/store.h"
#include "util/err.h"
#include "util/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];

static void make_member(const char *name)
{
	struct member_config c = { 0 };
	snprintf(c.name, sizeof(c.name), "%s", name);
	wire_mac(name, c.mac);
	c.cpus = 2;
	c.memory_mb = 1024;
	c.disk_mb = 2048;
	snprintf(c.image, sizeof(c.image), "mini");
	snprintf(c.created_at, sizeof(c.created_at), "2026-11-23T07:00:00Z");
	struct err e = { 0 };
	CHECK_INT(store_config_write(root, &c, &e), 0);
}

static void test_config(void)
{
	struct member_config c = { 0 };
	snprintf(c.name, sizeof(c.name), "web-1");
	snprintf(c.mac, sizeof(c.mac), "02:00:00:00:00:01");
	c.cpus = 2;
	c.memory_mb = 4096;
	c.disk_mb = 20480;
	snprintf(c.image, sizeof(c.image), "mini");
	snprintf(c.created_at, sizeof(c.created_at), "2026-11-23T07:00:00Z");
	char *s = store_config_render(&c);
	CHECK_STR(s, "{\n  \"name\": \"web-1\",\n  \"mac\": \"02:00:00:00:00:01\",\n  \"cpus\": 2,\n"
		     "  \"memory_mb\": 4096,\n  \"disk_mb\": 20480,\n  \"image\": \"mini\",\n"
		     "  \"created_at\": \"2026-11-23T07:00:00Z\"\n}");
	free(s);

	struct fixture fx = { .host_path = "/h/d", .guest_path = "/g/d", .label = "FBFIX0" };
	c.fixtures = &fx;
	c.n_fixtures = 1;
	snprintf(c.ip, sizeof(c.ip), "192.168.3.2");
	struct err e = { 0 };
	CHECK_INT(store_config_write(root, &c, &e), 0);
	char p[512];
	CHECK_INT(store_member_file(root, "web-1", "config.json", p, sizeof(p)), 0);
	struct stat st;
	CHECK_INT(stat(p, &st), 0);
	CHECK_INT(st.st_mode & 0777, 0600);
	/* no half-written leftovers: the member dir holds only config.json */
	char dirp[512];
	store_member_dir(root, "web-1", dirp, sizeof(dirp));
	DIR *dd = opendir(dirp);
	CHECK(dd != NULL);
	struct dirent *de;
	int files = 0;
	while ((de = readdir(dd)))
		if (de->d_name[0] != '.') {
			files++;
			CHECK_STR(de->d_name, "config.json");
		}
	closedir(dd);
	CHECK_INT(files, 1);
	char dir[512];
	store_member_dir(root, "web-1", dir, sizeof(dir));
	CHECK_INT(stat(dir, &st), 0);
	CHECK_INT(st.st_mode & 0777, 0700);

	struct member_config r;
	CHECK_INT(store_config_read(root, "web-1", &r, &e), 0);
	CHECK_STR(r.name, "web-1");
	CHECK_INT(r.memory_mb, 4096);
	CHECK_STR(r.ip, "192.168.3.2");
	CHECK_INT(r.n_fixtures, 1);
	CHECK_STR(r.fixtures[0].guest_path, "/g/d");
	CHECK_STR(r.fixtures[0].label, "FBFIX0");
	store_config_fini(&r);

	CHECK_INT(store_config_read(root, "nope", &r, &e), -ENOENT);
	CHECK_STR(e.msg, "no such member: nope");
}

static void test_list_match_delete(void)
{
	make_member("web-2");
	make_member("web-prod");
	make_member("dev");
	char **names;
	size_t n;
	CHECK_INT(store_list_members(root, &names, &n), 0);
	CHECK_INT(n, 4);
	CHECK_STR(names[0], "dev");
	CHECK_STR(names[1], "web-1");
	CHECK_STR(names[2], "web-2");
	CHECK_STR(names[3], "web-prod");
	store_names_free(names, n);

	CHECK_INT(store_match(root, "web", &names, &n), 0);
	CHECK_INT(n, 2); /* web-1, web-2; never web-prod */
	CHECK_STR(names[0], "web-1");
	CHECK_STR(names[1], "web-2");
	store_names_free(names, n);
	CHECK_INT(store_match(root, "web-2", &names, &n), 0);
	CHECK_INT(n, 1);
	store_names_free(names, n);
	CHECK_INT(store_match(root, "web-prod", &names, &n), 0);
	CHECK_INT(n, 1);
	store_names_free(names, n);
	CHECK_INT(store_match(root, "db", &names, &n), -ENOENT);
	CHECK_INT(store_match(root, "../x", &names, &n), -EINVAL);

	/* not running: no pidfile */
	CHECK(!store_member_running(root, "web-1", NULL));
	/* a pidfile naming a live process that holds no lock is not a holder */
	char pid[512], buf[32];
	wire_pidfile_path(root, "web-1", pid, sizeof(pid));
	int len = snprintf(buf, sizeof(buf), "%d", (int)getpid());
	CHECK_INT(file_write_atomic(pid, buf, (size_t)len, 0600), 0);
	CHECK(!store_member_running(root, "web-1", NULL));

	struct err e = { 0 };
	CHECK_INT(store_member_delete(root, "web-1", &e), 0);
	CHECK_INT(store_member_delete(root, "web-2", &e), 0);
	char cdir[512];
	snprintf(cdir, sizeof(cdir), "%s/clusters/web", root);
	CHECK(access(cdir, F_OK) != 0); /* the empty cluster dir goes with its last member */
	CHECK_INT(store_member_delete(root, "web-prod", &e), 0);
	CHECK_INT(store_list_members(root, &names, &n), 0);
	CHECK_INT(n, 1);
	store_names_free(names, n);
}

int main(void)
{
	snprintf(root, sizeof(root), "/tmp/fb-store-test-XXXXXX");
	CHECK(mkdtemp(root) != NULL);
	test_config();
	test_list_match_delete();
	CHECK_INT(rm_rf(root), 0);
	printf("store: ok\n");
	return 0;
}
