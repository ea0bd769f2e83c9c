/* cli.c - the dispatcher (global options, environment check, sudo, help) and
 * the `prune` and `image` commands (`up` is cli/up.c), built on the public API
 * (include/fleetbox.h), the same one a C test harness uses. Errors print
 * `error: <msg>` and exit 1. The other commands live in members.c, ssh.c,
 * logs.c; their descriptions in commands.c. */
#include "client/cli/cli.h"
#include "client/ctl.h"
#include "client/orch/orch.h"
#include "client/image/image.h"
#include "client/store.h"
#include "fleetbox.h"
#include "rpc/wire.h"
#include "util/cmd.h"
#include "vmm/vmm.h"
#include "util/err.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* --- prune --- */

/* Host network state and orphaned VMMs: the holder binary's one-shot
 * reconcile mode (it needs the same privileges as a holder). Its last output
 * line is a JSON report, returned in *rep. */
static int prune_network(const char *root, json_t **rep)
{
	*rep = NULL;
	const char *self = vmm_self_exe();
	if (!*self)
		return cli_error("cannot find own executable");
	struct cmd c;
	cmd_init(&c, self);
	cmd_add(&c, "--fleetbox-reconcile");
	char *out = NULL;
	struct err e = { 0 };
	setenv("FLEETBOX_HOME", root, 1);
	int r = cmd_run(&c, &out, &e);
	cmd_fini(&c);
	if (out) {
		char *last = out + strlen(out);
		while (last > out && last[-1] == '\n')
			*--last = '\0';
		char *nl = strrchr(out, '\n');
		*rep = json_loads(nl ? nl + 1 : out, 0, NULL);
	}
	free(out);
	return r < 0 ? cli_error("prune: %s", e.msg) : 0;
}

/* Sockets and pidfiles of members whose holder is gone. */
static int prune_member_files(const char *root)
{
	int stale = 0;
	char **names;
	size_t n;
	if (store_list_members(root, &names, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char sock[WIRE_SUN_PATH_MAX], pid[PATH_MAX];
		if (store_member_running(root, names[i], NULL))
			continue;
		if (wire_sock_path(root, names[i], sock, sizeof(sock)) == 0 && unlink(sock) == 0)
			stale++;
		if (wire_pidfile_path(root, names[i], pid, sizeof(pid)) == 0 && unlink(pid) == 0)
			stale++;
	}
	store_names_free(names, n);
	return stale;
}

/* Sockets in run/ nobody listens on (a holder killed mid-up, before any
 * config existed): connect() is refused on a dead socket file. */
static int prune_dead_sockets(const char *root)
{
	int stale = 0;
	char run[PATH_MAX];
	snprintf(run, sizeof(run), "%s/run", root);
	DIR *d = opendir(run);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l < 5 || (strcmp(de->d_name + l - 5, ".sock") != 0 && strcmp(de->d_name + l - 4, ".ctl") != 0))
			continue;
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", run, de->d_name);
		int fd = ctl_connect_unix(p);
		if (fd >= 0)
			close(fd);
		else if (fd == -ECONNREFUSED && unlink(p) == 0)
			stale++;
	}
	if (d)
		closedir(d);
	return stale;
}

static json_int_t rep_int(json_t *rep, const char *key)
{
	return rep ? json_integer_value(json_object_get(rep, key)) : 0;
}

int cmd_prune(const char *root, int argc, char **argv)
{
	if (cli_prune_wants_images(argc, argv))
		return cli_prune_images(argc, argv);
	struct cli_parse p;
	cli_parse_init(&p, "prune", cli_command_find("prune")->opts, argc, argv);
	int c;
	while ((c = cli_next(&p)) != CLI_END)
		if (c == CLI_BAD || c == CLI_WORD)
			return c == CLI_BAD ? 1 : cli_usage_error("prune", "unexpected argument \"%s\"", p.value);
	json_t *rep;
	if (prune_network(root, &rep)) {
		json_decref(rep);
		return 1;
	}
	/* and the files of members that are gone (orch/tidy.c) */
	struct err e = { 0 };
	int stale = prune_member_files(root) + prune_dead_sockets(root) + orch_prune_store(root, &e);
	stale += (int)rep_int(rep, "temporaries_removed");
	stale += (int)rep_int(rep, "pidfiles_removed");
	printf("pruned: %lld network(s), %lld tap(s), %lld orphaned VMM process(es), %d stale file(s)\n",
	       (long long)rep_int(rep, "records_reclaimed"), (long long)rep_int(rep, "taps_removed"),
	       (long long)rep_int(rep, "processes_killed"), stale);
	json_int_t kept = rep_int(rep, "records_kept");
	json_decref(rep);
	if (kept)
		return cli_error("%lld network record(s) could not be reclaimed; see the messages above",
				 (long long)kept);
	return 0;
}

int cmd_image(const char *root, int argc, char **argv)
{
	return cli_image(root, argc, argv);
}

/* --- dispatch --- */

/* -h/--help among the command's own options (before "--"; for ssh, before
 * the remote command that follows NAME). */
static bool wants_help(const struct cli_command *c, int argc, char **argv)
{
	bool seen_word = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return false;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return true;
		if (argv[i][0] != '-' && !strcmp(c->name, "ssh")) {
			if (seen_word)
				return false;
			seen_word = true;
		}
	}
	return false;
}

/* Global options before the command: --debug, --help, --version. Returns the
 * index of the command word, or -1 with *rc set (help, version, errors). */
static int global_options(int argc, char **argv, int *rc)
{
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--debug")) {
			setenv("FLEETBOX_LOG", "debug", 1);
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			cli_usage_main(stdout);
			return *rc = 0, -1;
		} else if (!strcmp(a, "--version")) {
			printf("fleetbox %s (protocol %s)\n", fb_version(), FB_PROTOCOL_VERSION);
			return *rc = 0, -1;
		} else {
			*rc = cli_error("unknown option \"%s\" before the command (see fleetbox --help)", a);
			return -1;
		}
	}
	if (i >= argc) {
		*rc = cli_error("no command given");
		cli_usage_main(stderr);
		return -1;
	}
	return i;
}

/* --debug after the command word, before "--": also global. */
static void strip_debug(int *argc, char **argv)
{
	int o = 1;
	bool rest = false;
	for (int i = 1; i < *argc; i++) {
		rest |= !strcmp(argv[i], "--");
		if (!rest && !strcmp(argv[i], "--debug")) {
			setenv("FLEETBOX_LOG", "debug", 1);
			continue;
		}
		argv[o++] = argv[i];
	}
	argv[o] = NULL;
	*argc = o;
}

static int unknown_command(const char *cmd)
{
	const char *near = cli_command_nearest(cmd);
	if (near)
		return cli_error("unknown command \"%s\" (did you mean %s?)", cmd, near);
	return cli_error("unknown command \"%s\" (see fleetbox --help)", cmd);
}

static int run_command(const struct cli_command *c, int argc, char **argv)
{
	if (c->flags & CLI_NO_STORE)
		return c->run(NULL, argc, argv);
	/* The CLI is a holder too: spawn this very binary (main() recorded it). */
	ctl_set_helper(vmm_self_exe());
	char root[PATH_MAX];
	if (store_root_resolve(root, sizeof(root)) < 0)
		return cli_error("cannot determine the store root (set FLEETBOX_HOME)");
	if (cli_sudo_check_paths(root))
		return 1;
	bool handled;
	int rc = cli_sudo_reexec(c, root, argc, argv, &handled);
	if (handled)
		return rc;
	log_debug("%s: store %s, euid %d%s", c->name, root, (int)geteuid(),
		  getenv("SUDO_UID") ? " (under sudo)" : "");
	rc = c->run(root, argc, argv);
	if (rc == 0 && c->run == cli_up)
		cli_ssh_config_refresh(root);
	return rc;
}

int cli_main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN); /* a peer closing early is an error, not a death */
	if (argc > 1 && !strcmp(argv[1], "--fleetbox-sudo") && cli_sudo_inner(&argc, &argv))
		return 1;
	if (argc > 1 && !strcmp(argv[1], "--fleetbox-man"))
		return cli_man();
	int rc = 0, first = global_options(argc, argv, &rc);
	if (first < 0)
		return rc;
	argc -= first;
	argv += first;
	strip_debug(&argc, argv);
	if (cli_env_validate())
		return 1;
	log_init("fleetbox");
	const char *cmd = argv[0];
	if (!strcmp(cmd, "help")) {
		bool self = argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"));
		return cli_help(self ? "help" : argc > 1 ? argv[1] : NULL);
	}
	if (!strcmp(cmd, "version")) {
		printf("fleetbox %s (protocol %s)\n", fb_version(), FB_PROTOCOL_VERSION);
		return 0;
	}
	const struct cli_command *c = cli_command_find(cmd);
	if (!c)
		return unknown_command(cmd);
	if (wants_help(c, argc, argv))
		return cli_help(cmd);
	return run_command(c, argc, argv);
}
