/* test_sshconfig.c - ssh-config rendering, and the proof that matters: plain
 * OpenSSH `ssh -F <rendered>` reaches dropbear with StrictHostKeyChecking ON
 * through our known_hosts, and refuses when the pinned key is wrong. */
#include "client/ssh/config.h"
#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"
#include "dropbear.h"
#include "t.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct tdb db;

static void test_render(void)
{
	struct sshconfig_member m[3] = {
		{ "web-1", "192.168.7.11", 0, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKEY1 web-1\n" },
		{ "web-2", NULL, 0, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKEY2" },
		{ "db", "192.168.7.12", 2222, NULL },
	};
	char *txt = sshconfig_render("/home/u/my store", m, 3);
	CHECK(txt);
	const char *want =
		"Host web-1\n"
		"  HostName 192.168.7.11\n"
		"  User fleetbox\n"
		"  IdentityFile \"/home/u/my store/id_ed25519\"\n"
		"  IdentitiesOnly yes\n"
		"  UserKnownHostsFile \"/home/u/my store/known_hosts\"\n"
		"  StrictHostKeyChecking yes\n"
		"  HostKeyAlias fleetbox-web-1\n"
		"\n"
		"# web-2: not running\n"
		"\n"
		"Host db\n"
		"  HostName 192.168.7.12\n"
		"  Port 2222\n"
		"  User fleetbox\n"
		"  IdentityFile \"/home/u/my store/id_ed25519\"\n"
		"  IdentitiesOnly yes\n"
		"  UserKnownHostsFile \"/home/u/my store/known_hosts\"\n"
		"  StrictHostKeyChecking yes\n"
		"  HostKeyAlias fleetbox-db\n"
		"\n";
	CHECK_STREQ(txt, want);
	free(txt);
	txt = sshconfig_known_hosts(m, 3);
	CHECK_STREQ(txt, "fleetbox-web-1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKEY1\n"
			 "fleetbox-web-2 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKEY2\n");
	free(txt);
}

static int run_ssh(const char *cfg, char **out, struct err *e)
{
	struct cmd c;
	cmd_init(&c, "ssh");
	cmd_add(&c, "-F");
	cmd_add(&c, cfg);
	cmd_add(&c, "-l");
	cmd_add(&c, "root"); /* dropbear here knows root, not fleetbox */
	cmd_add(&c, "-o");
	cmd_add(&c, "BatchMode=yes");
	cmd_add(&c, "dbvm");
	cmd_add(&c, "echo via-openssh");
	int r = cmd_run(&c, out, e);
	cmd_fini(&c);
	return r;
}

static void test_openssh(void)
{
	if (access("/usr/bin/ssh", X_OK) != 0) {
		printf("skip: openssh-client not installed, OpenSSH check not run\n");
		return;
	}
	struct err e = { 0 };
	struct sshconfig_member m = { "dbvm", "127.0.0.1", db.port, db.target.hostkey_pub };
	CHECK_OK(sshconfig_write_known_hosts(db.store, &m, 1, &e), &e);
	char *txt = sshconfig_render(db.store, &m, 1);
	char cfg[PATH_MAX];
	FMT(cfg, "%s/ssh_config", db.dir);
	CHECK(file_write_atomic(cfg, txt, strlen(txt), 0644) == 0);
	free(txt);
	char *out = NULL;
	CHECK_OK(run_ssh(cfg, &out, &e), &e);
	CHECK(strstr(out, "via-openssh") != NULL);
	free(out);

	/* a wrong pinned key: OpenSSH refuses (host key checking is really on) */
	char other[256];
	tdb_other_key(&db, other, sizeof(other));
	m.hostkey_pub = other;
	CHECK_OK(sshconfig_write_known_hosts(db.store, &m, 1, &e), &e);
	out = NULL;
	CHECK(run_ssh(cfg, &out, &e) < 0);
	CHECK(strstr(e.msg, "exit 255") != NULL);
	printf("openssh with a wrong key: %s\n", e.msg);
	free(out);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_render();
	int r = tdb_start(&db);
	if (r)
		return r;
	test_openssh();
	tdb_stop(&db);
	printf("ok\n");
	return 0;
}
