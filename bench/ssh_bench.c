/* ssh_bench.c - SSH layer costs against a private dropbear on 127.0.0.1 (see
 * test/ssh/dropbear.h; needs root): command round trip (fresh connection each
 * time: dial + handshake + auth + exec) and a 64 MiB file copied in and out,
 * ours vs OpenSSH ssh / scp -O (when openssh-client is installed).
 * Usage: ssh_bench [rounds] [MiB] */
#include "client/ssh/copy.h"
#include "client/ssh/ssh.h"
#include "client/ssh/config.h"
#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"
#include "dropbear.h"
#include "t.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct tdb db;
static char cfg[PATH_MAX];

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void openssh(const char *prog, const char *a, const char *b, const char *c2)
{
	struct cmd c;
	struct err e = { 0 };
	cmd_init(&c, prog);
	cmd_add(&c, "-F");
	cmd_add(&c, cfg);
	cmd_add(&c, "-o");
	cmd_add(&c, "BatchMode=yes");
	if (!strcmp(prog, "ssh")) {
		cmd_add(&c, "-l");
		cmd_add(&c, "root");
	} else {
		cmd_add(&c, "-O"); /* classic scp protocol: dropbear has no sftp server */
		cmd_add(&c, "-q");
	}
	cmd_add(&c, a);
	if (b)
		cmd_add(&c, b);
	if (c2)
		cmd_add(&c, c2);
	CHECK_OK(cmd_run(&c, NULL, &e), &e);
	cmd_fini(&c);
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 30;
	int mib = argc > 2 ? atoi(argv[2]) : 64;
	signal(SIGPIPE, SIG_IGN);
	int r = tdb_start(&db);
	if (r)
		return r;
	bool have_openssh = access("/usr/bin/ssh", X_OK) == 0 && access("/usr/bin/scp", X_OK) == 0;
	struct err e = { 0 };
	if (have_openssh) {
		struct sshconfig_member m = { "dbvm", "127.0.0.1", db.port, db.target.hostkey_pub };
		CHECK_OK(sshconfig_write_known_hosts(db.store, &m, 1, &e), &e);
		char *txt = sshconfig_render(db.store, &m, 1);
		/* scp has no -l: the user goes in the config */
		char *u = strstr(txt, "User fleetbox");
		CHECK(u);
		memcpy(u, "User root    ", 13);
		FMT(cfg, "%s/ssh_config", db.dir);
		CHECK(file_write_atomic(cfg, txt, strlen(txt), 0644) == 0);
		free(txt);
	}

	/* round trips */
	struct ssh_result res;
	double t0 = now_s();
	for (int i = 0; i < rounds; i++) {
		CHECK_OK(ssh_exec(&db.target, "true", &res, &e), &e);
		ssh_result_fini(&res);
	}
	double ours_rt = (now_s() - t0) / rounds * 1000;
	double their_rt = 0;
	if (have_openssh) {
		t0 = now_s();
		for (int i = 0; i < rounds; i++)
			openssh("ssh", "dbvm", "true", NULL);
		their_rt = (now_s() - t0) / rounds * 1000;
	}

	/* copies */
	char src[PATH_MAX], gdst[PATH_MAX], hdst[PATH_MAX], spec[PATH_MAX + 16];
	FMT(src, "%s/big.bin", db.dir);
	FMT(gdst, "%s/guest.bin", db.dir);
	FMT(hdst, "%s/back.bin", db.dir);
	int fd = open(src, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	uint8_t *buf = malloc(1 << 20);
	uint32_t x = 88172645;
	for (int m = 0; m < mib; m++) {
		for (int i = 0; i < (1 << 20); i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			buf[i] = (uint8_t)x;
		}
		CHECK(write(fd, buf, 1 << 20) == 1 << 20);
	}
	free(buf);
	close(fd);
	t0 = now_s();
	CHECK_OK(copy_to_guest(&db.target, src, gdst, NULL, &e), &e);
	double ours_in = now_s() - t0;
	t0 = now_s();
	CHECK_OK(copy_from_guest(&db.target, gdst, hdst, NULL, &e), &e);
	double ours_out = now_s() - t0;
	struct stat st;
	CHECK(stat(hdst, &st) == 0 && st.st_size == (off_t)mib << 20);
	double their_in = 0, their_out = 0;
	if (have_openssh) {
		unlink(gdst);
		unlink(hdst);
		FMT(spec, "dbvm:%s", gdst);
		t0 = now_s();
		openssh("scp", src, spec, NULL);
		their_in = now_s() - t0;
		t0 = now_s();
		openssh("scp", spec, hdst, NULL);
		their_out = now_s() - t0;
	}

	printf("%-34s %12s %12s\n", "", "fleetbox", have_openssh ? "openssh" : "(no openssh)");
	printf("%-34s %9.2f ms %9.2f ms\n", "command round trip (new conn)", ours_rt, their_rt);
	printf("%-34s %7.1f MiB/s %7.1f MiB/s\n", "copy in (host -> guest)", mib / ours_in,
	       have_openssh ? mib / their_in : 0.0);
	printf("%-34s %7.1f MiB/s %7.1f MiB/s\n", "copy out (guest -> host)", mib / ours_out,
	       have_openssh ? mib / their_out : 0.0);
	tdb_stop(&db);
	return 0;
}
