/* cli.c - the dispatcher (global options, environment check, sudo, help) and
 * the `up`, `prune` and `image` commands, built on the public API
 * (include/fleetbox.h), the same one a C test harness uses. Errors print
 * `error: <msg>` and exit 1. The other commands live in members.c, ssh.c,
 * logs.c; their descriptions in commands.c. */
#include "client/cli/cli.h"
#include "client/ctl.h"
#include "client/image/image.h"
#include "client/store.h"
#include "fleetbox.h"
#include "rpc/wire.h"
#include "util/cmd.h"
#include "vmm/accel.h"
#include "vmm/vmm.h"
#include "util/err.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
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

static void print_progress(void *data, const char *line)
{
	(void)data;
	fprintf(stderr, "%s\n", line);
}

/* --- up --- */

/* --fixture HOST:GUEST, split on the last colon; the library validates it. */
static int add_fixture(const char *arg, fb_fixture_spec **fx, char ***bufs, size_t *n)
{
	char *s = strdup(arg), *colon = s ? strrchr(s, ':') : NULL;
	if (!colon) {
		free(s);
		return cli_error("--fixture \"%s\": want HOST:GUEST", arg);
	}
	*colon = '\0';
	fb_fixture_spec *nf = realloc(*fx, (*n + 1) * sizeof(**fx));
	if (nf)
		*fx = nf;
	char **nb = realloc(*bufs, (*n + 1) * sizeof(**bufs));
	if (nb)
		*bufs = nb;
	if (!nf || !nb) {
		free(s);
		return cli_error("out of memory");
	}
	(*bufs)[*n] = s;
	(*fx)[*n].host_path = s;
	(*fx)[*n].guest_path = colon + 1;
	(*n)++;
	return 0;
}

int cli_up(const char *root, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cpus", required_argument, NULL, 'c' },  { "mem", required_argument, NULL, 'm' },
		{ "disk", required_argument, NULL, 'd' },  { "image", required_argument, NULL, 'i' },
		{ "fixture", required_argument, NULL, 'f' }, { NULL, 0, NULL, 0 },
	};
	int count = 0, cpus = 0, mem_gb = 0, disk_gb = 0, c, bad = 0;
	const char *image = NULL;
	fb_fixture_spec *fx = NULL;
	char **fxbuf = NULL, **names = NULL;
	char (*gen)[FB_NAME_MAX + 2] = NULL;
	size_t nfx = 0, nn = 0;
	int rc = 1;
	optind = 1;
	opterr = 0;
	/* GNU getopt permutes: options may come before or after the names. */
	while (!bad && (c = getopt_long(argc, argv, "n:", opts, NULL)) != -1) {
		switch (c) {
		case 'n': bad = cli_parse_int("-n", optarg, 1, 256, &count); break;
		case 'c': bad = cli_parse_int("--cpus", optarg, 1, 256, &cpus); break;
		case 'm': bad = cli_parse_int("--mem", optarg, 1, 1024, &mem_gb); break;
		case 'd': bad = cli_parse_int("--disk", optarg, 1, 65536, &disk_gb); break;
		case 'i': image = optarg; break;
		case 'f': bad = add_fixture(optarg, &fx, &fxbuf, &nfx); break;
		default:
			bad = cli_error("up: unknown or incomplete option \"%s\" (see fleetbox help up)",
					argv[optind - 1]);
		}
	}
	if (bad)
		goto out;
	names = calloc((size_t)argc + (size_t)count + 1, sizeof(char *));
	if (!names) {
		cli_error("out of memory");
		goto out;
	}
	for (int i = optind; i < argc; i++)
		names[nn++] = argv[i];
	if (count > 0) {
		if (nn > 1) {
			cli_error("-n takes one NAME (got %zu)", nn);
			goto out;
		}
		const char *base = nn ? names[0] : "default";
		gen = calloc((size_t)count, sizeof(*gen));
		if (!gen) {
			cli_error("out of memory");
			goto out;
		}
		for (int i = 0; i < count; i++) {
			if (snprintf(gen[i], sizeof(gen[i]), "%s-%d", base, i + 1) > FB_NAME_MAX) {
				cli_error("name \"%s-%d\" is too long", base, i + 1);
				goto out;
			}
			names[i] = gen[i];
		}
		nn = (size_t)count;
	} else if (nn == 0) {
		names[nn++] = (char *)"default";
	}
	fb_up_options o = {
		.root = root,
		.names = (const char *const *)names,
		.n_names = nn,
		.cpus = cpus,
		.memory_mb = mem_gb * 1024,
		.disk_mb = disk_gb * 1024,
		.image = image,
		.fixtures = fx,
		.n_fixtures = nfx,
		.bound = 0,
		.progress = print_progress,
	};
	/* The holder picks KVM or TCG; say here, once, when it will be TCG. */
	const char *vmm = getenv("FLEETBOX_VMM");
	if (!vmm || strcmp(vmm, "fake") != 0) {
		struct accel_host host;
		enum vmm_accel accel;
		char warn[256] = "";
		accel_probe_host(&host);
		if (accel_choose(getenv("FLEETBOX_ACCEL"), &host, &accel, warn, sizeof(warn), NULL) == 0 &&
		    warn[0])
			fprintf(stderr, "warning: %s\n", warn);
	}
	fb_cluster *cl = NULL;
	fb_error fe = { 0 };
	if (fb_up(&o, &cl, &fe) < 0) {
		cli_error("%s", fe.message);
		goto out;
	}
	for (size_t i = 0; i < fb_cluster_size(cl); i++)
		printf("  %s  IP: %s  SSH: fleetbox ssh %s\n", fb_cluster_name(cl, i), fb_cluster_ip(cl, i),
		       fb_cluster_name(cl, i));
	fb_cluster_close(cl, NULL);
	rc = 0;
out:
	free(names);
	free(gen);
	for (size_t i = 0; i < nfx; i++)
		free(fxbuf[i]);
	free(fxbuf);
	free(fx);
	return rc;
}

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
	int stale = prune_member_files(root) + prune_dead_sockets(root);
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
