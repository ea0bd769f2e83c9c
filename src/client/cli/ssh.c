/* cli/ssh.c - `fleetbox ssh`, `fleetbox cp`, `fleetbox ssh-config`.
 * Exit codes: the remote command's status for `ssh NAME -- CMD` (128+N when it
 * was killed by signal N), 0/1 otherwise; errors print "error: <msg>". */
#include "client/cli/cli.h"
#include "client/ssh/copy.h"
#include "client/ssh/ssh.h"
#include "client/ssh/config.h"
#include "client/store.h"
#include "client/ssh/target.h"
#include "rpc/wire.h"
#include "util/err.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void write_fd(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static void to_stdout(void *data, const char *buf, size_t len)
{
	(void)data;
	write_fd(1, buf, len);
}

static void to_stderr(void *data, const char *buf, size_t len)
{
	(void)data;
	write_fd(2, buf, len);
}

int cli_ssh(const char *root, int argc, char **argv)
{
	if (argc < 2 || argv[1][0] == '-')
		return cli_error("usage: fleetbox ssh NAME [-- CMD...]");
	const char *name = argv[1];
	int first = 2;
	if (first < argc && !strcmp(argv[first], "--"))
		first++;
	int nwords = argc - first;
	struct ssh_target t;
	struct err e = { 0 };
	if (target_resolve(root, name, &t, &e) < 0)
		return cli_error("%s", e.msg);
	signal(SIGPIPE, SIG_IGN);

	struct ssh_status st = { 0 };
	int r;
	if (nwords > 0) {
		char *cmd = ssh_command_join(nwords, argv + first);
		if (!cmd)
			return cli_error("out of memory");
		struct ssh_io io = { to_stdout, to_stderr, NULL, 0 };
		r = ssh_exec_stream(&t, cmd, &io, &st, &e);
		free(cmd);
	} else if (isatty(0)) {
		r = ssh_shell(&t, 0, 1, &st, &e);
	} else {
		struct ssh_io io = { to_stdout, to_stderr, NULL, 0 };
		r = ssh_exec_stream(&t, NULL, &io, &st, &e);
	}
	if (r < 0)
		return cli_error("%s", e.msg);
	return st.exit_status & 0xff;
}

/* "NAME:/path" -> name and path; 0 when arg is not of that form. */
static int split_remote(const char *arg, char *name, size_t nlen, const char **path)
{
	const char *colon = strchr(arg, ':');
	if (!colon || (size_t)(colon - arg) >= nlen || colon == arg)
		return 0;
	memcpy(name, arg, (size_t)(colon - arg));
	name[colon - arg] = '\0';
	if (!wire_name_valid(name))
		return 0;
	*path = colon + 1;
	return 1;
}

int cli_cp(const char *root, int argc, char **argv)
{
	if (argc != 3)
		return cli_error("usage: fleetbox cp SRC DST (exactly one side is NAME:/abs/path)");
	char n1[FB_NAME_MAX + 1], n2[FB_NAME_MAX + 1];
	const char *p1 = NULL, *p2 = NULL;
	int r1 = split_remote(argv[1], n1, sizeof(n1), &p1);
	int r2 = split_remote(argv[2], n2, sizeof(n2), &p2);
	if (r1 == r2)
		return cli_error("exactly one of SRC and DST must be NAME:/abs/path");
	const char *gpath = r1 ? p1 : p2;
	if (gpath[0] != '/')
		return cli_error("guest path must be absolute: \"%s\"", gpath);
	struct ssh_target t;
	struct err e = { 0 };
	if (target_resolve(root, r1 ? n1 : n2, &t, &e) < 0)
		return cli_error("%s", e.msg);
	signal(SIGPIPE, SIG_IGN);
	int r = r1 ? copy_from_guest(&t, p1, argv[2], NULL, &e)
		   : copy_to_guest(&t, argv[1], p2, NULL, &e);
	if (r < 0)
		return cli_error("%s", e.msg);
	return 0;
}

int cli_ssh_config(const char *root, int argc, char **argv)
{
	(void)argv;
	if (argc > 1)
		return cli_error("usage: fleetbox ssh-config");
	char **names = NULL;
	size_t n = 0;
	int r = store_list_members(root, &names, &n);
	if (r < 0)
		return cli_error("cannot list members in %s: %s", root, strerror(-r));
	struct sshconfig_member *m = calloc(n ? n : 1, sizeof(*m));
	struct ssh_target *t = calloc(n ? n : 1, sizeof(*t));
	char (*keys)[256] = calloc(n ? n : 1, sizeof(*keys));
	int rc = 0;
	if (!m || !t || !keys) {
		rc = cli_error("out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct err e = { 0 };
		m[i].name = names[i];
		/* The host key is in the store whether or not the member runs. */
		char pub[PATH_MAX];
		if (store_member_file(root, names[i], "ssh_host_ed25519_key.pub", pub, sizeof(pub)) == 0) {
			FILE *f = fopen(pub, "re");
			if (f) {
				if (fgets(keys[i], sizeof(keys[i]), f))
					m[i].hostkey_pub = keys[i];
				fclose(f);
			}
		}
		if (target_resolve(root, names[i], &t[i], &e) == 0)
			m[i].ip = t[i].host;
	}
	struct err e = { 0 };
	if (sshconfig_write_known_hosts(root, m, n, &e) < 0) {
		rc = cli_error("%s", e.msg);
		goto out;
	}
	char *txt = sshconfig_render(root, m, n);
	if (!txt) {
		rc = cli_error("out of memory");
		goto out;
	}
	fputs(txt, stdout);
	free(txt);
out:
	free(m);
	free(t);
	free(keys);
	store_names_free(names, n);
	return rc;
}
