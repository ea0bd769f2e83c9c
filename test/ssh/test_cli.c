/* test_cli.c - the fleetbox binary's ssh / cp / ssh-config argument handling
 * and error reporting ("error: <msg>"; exit 1, ssh 255 like OpenSSH) without
 * any VM: an empty store in a scratch FLEETBOX_HOME. argv[1] is the binary. */
#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"
#include "t.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *bin;

/* Runs fleetbox with args; returns its exit code and its output in *out. */
static int fb(char **out, const char *a1, const char *a2, const char *a3, const char *a4,
	      const char *a5)
{
	struct cmd c;
	struct err e = { 0 };
	cmd_init(&c, bin);
	const char *a[] = { a1, a2, a3, a4, a5 };
	for (int i = 0; i < 5 && a[i]; i++)
		cmd_add(&c, a[i]);
	*out = NULL;
	int r = cmd_run(&c, out, &e);
	cmd_fini(&c);
	if (r == 0)
		return 0;
	const char *x = strstr(e.msg, "(exit ");
	return x ? atoi(x + 6) : -1;
}

static void expect(int code, const char *part, const char *a1, const char *a2, const char *a3,
		   const char *a4, const char *a5)
{
	char *out;
	int r = fb(&out, a1, a2, a3, a4, a5);
	if (r != code || !out || !strstr(out, part)) {
		fprintf(stderr, "fleetbox %s %s: got %d \"%s\", want %d \"%s\"\n", a1, a2 ? a2 : "", r,
			out ? out : "", code, part);
		CHECK(0);
	}
	free(out);
}

int main(int argc, char **argv)
{
	CHECK(argc == 2);
	bin = argv[1];
	char home[PATH_MAX] = "/tmp/fbcli-XXXXXX";
	CHECK(mkdtemp(home));
	CHECK(setenv("FLEETBOX_HOME", home, 1) == 0);

	expect(1, "error: cp: exactly one of SRC and DST", "cp", "a", "b", NULL, NULL);
	expect(1, "error: cp: exactly one of SRC and DST", "cp", "web-1:/a", "web-2:/b", NULL, NULL);
	expect(1, "error: cp: guest path must be absolute", "cp", "web-1:rel", "/tmp/x", NULL, NULL);
	expect(1, "error: cp: want SRC DST", "cp", "only-one", NULL, NULL, NULL);
	expect(1, "error: cp: unexpected argument \"c\"", "cp", "a", "b", "c", NULL);
	expect(1, "error: cp: unknown option \"--rot\" (did you mean --root?)", "cp", "--rot", "a",
	       "b:/c", NULL);
	expect(1, "error: no such member: nosuch", "cp", "./x", "nosuch:/x", NULL, NULL);
	/* ssh: every fleetbox error is 255, like OpenSSH */
	expect(255, "error: no such member: nosuch", "ssh", "nosuch", "--", "true", NULL);
	expect(255, "error: ssh: missing NAME", "ssh", NULL, NULL, NULL, NULL);
	expect(255, "error: invalid name", "ssh", "Bad_Name", "--", "true", NULL);
	expect(255, "error: ssh: missing value for -u", "ssh", "-u", NULL, NULL, NULL);
	expect(255, "error: ssh: unknown option \"-x\"", "ssh", "-x", "web-1", NULL, NULL);
	/* options after NAME are options; the first word after it starts the command */
	expect(255, "error: no such member: nosuch", "ssh", "nosuch", "-t", "ls", "-x");

	/* ssh-config on an empty store: nothing to print, known_hosts written */
	char *out;
	CHECK(fb(&out, "ssh-config", NULL, NULL, NULL, NULL) == 0);
	CHECK(out && strcmp(out, "") == 0);
	free(out);
	char kh[PATH_MAX];
	FMT(kh, "%s/known_hosts", home);
	struct stat st;
	CHECK(stat(kh, &st) == 0 && st.st_size == 0 && (st.st_mode & 0777) == 0644);
	/* and <root>/ssh_config, for Include from ~/.ssh/config */
	char sc[PATH_MAX], *txt = NULL;
	FMT(sc, "%s/ssh_config", home);
	CHECK(file_read_all(sc, 1 << 16, &txt, NULL) == 0);
	CHECK(strstr(txt, "Include ") != NULL);
	free(txt);

	CHECK(rm_rf(home) == 0);
	printf("ok\n");
	return 0;
}
