/* cli.c - `fleetbox` subcommands built on the public API (include/fleetbox.h),
 * the same one a C test harness uses. Errors print `error: <msg>`, exit 1. */
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

static const char *usage_main =
	"usage: fleetbox <command> [args]\n"
	"\n"
	"Real Linux VMs as fixtures for tests and for manual work.\n"
	"\n"
	"commands:\n"
	"  up [NAME...] [-n N] [--cpus N] [--mem GB] [--disk GB] [--image ALIAS|URL|PATH]\n"
	"     [--fixture HOST:GUEST]...   create and/or boot members on one network\n"
	"  down NAME...|--all             stop members, keep their disks\n"
	"  rm NAME...|--all [-f]          stop and delete members and their disks\n"
	"  ls [-q] [-o table|json]        list members\n"
	"  status NAME                    live status of a member as JSON\n"
	"  ssh NAME [-- CMD...]           shell, or run a command and exit with its status\n"
	"  cp SRC DST                     copy files; one side is NAME:/abs/path\n"
	"  ssh-config                     Host blocks for OpenSSH\n"
	"  prune                          reclaim state left by crashed holders\n"
	"  image build mini               (re)build the embedded default image\n"
	"  image prepare [IMAGE]          build or download an image now (default mini)\n"
	"  help [COMMAND]                 help for a command\n"
	"\n"
	"A NAME pattern matches an exact member, else every member of that cluster\n"
	"(web matches web-1 and web-2, never web-prod).\n"
	"Environment: FLEETBOX_HOME (store root), FLEETBOX_VMM (fake|qemu|cloud-hypervisor|auto),\n"
	"FLEETBOX_ACCEL (auto|kvm|tcg), FLEETBOX_LOG (error|warn|info|debug).\n";

static const struct {
	const char *cmd, *text;
} help_texts[] = {
	{ "up", "usage: fleetbox up [NAME...] [-n N] [--cpus N] [--mem GB] [--disk GB]\n"
		"                   [--image ALIAS|URL|PATH] [--fixture HOST:GUEST]...\n"
		"Creates missing members and boots stopped ones, all on one private network in\n"
		"one detached holder. -n N with one NAME gives NAME-1..NAME-N; no NAME gives\n"
		"\"default\". Members of a cluster that is already running join its network.\n"
		"Create options are ignored for members that exist. All-or-nothing: on failure,\n"
		"members created by this call are destroyed, pre-existing ones only stopped.\n"
		"Defaults: --cpus 2, --mem 1 (mini image) or 4, --disk 20, --image mini.\n"
		"--fixture HOST:GUEST mounts the host directory read-only at GUEST (repeatable).\n" },
	{ "down", "usage: fleetbox down NAME...|--all\nStops members gracefully; disks are kept.\n" },
	{ "rm", "usage: fleetbox rm NAME...|--all [-f]\n"
		"Stops and deletes members with their disks. Asks for confirmation unless -f.\n" },
	{ "ls", "usage: fleetbox ls [-q] [-o table|json]\n"
		"Columns: NAME IP STATE CPUS MEM DISK AGE. -q prints names only.\n" },
	{ "status", "usage: fleetbox status NAME\nPrints the member's live status as JSON.\n" },
	{ "ssh", "usage: fleetbox ssh NAME [-- CMD...]\n"
		 "Without CMD: an interactive shell. One word after -- is a shell command line\n"
		 "(-- 'ls | wc -l'); several words are passed as an exact argv\n"
		 "(-- sh -c 'exit 7' exits 7). Exits with the command's status.\n" },
	{ "cp", "usage: fleetbox cp SRC DST\n"
		"Exactly one side is NAME:/abs/path. Files and directory trees, modes and\n"
		"symlinks kept.\n" },
	{ "ssh-config", "usage: fleetbox ssh-config\n"
			"Prints Host blocks so plain OpenSSH connects with host key checking on.\n" },
	{ "prune", "usage: fleetbox prune\n"
		   "Kills VMM processes, removes taps, bridges, firewall tables and stale\n"
		   "sockets left by holders that died.\n" },
	{ "image", "usage: fleetbox image build mini | fleetbox image prepare [IMAGE]\n"
		   "build mini rebuilds the embedded default image. prepare builds or downloads\n"
		   "IMAGE (mini, a catalog alias, a URL or a path) if it is not ready yet.\n" },
};

int cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

static int help_for(const char *cmd)
{
	for (size_t i = 0; i < sizeof(help_texts) / sizeof(help_texts[0]); i++)
		if (!strcmp(help_texts[i].cmd, cmd)) {
			fputs(help_texts[i].text, stdout);
			return 0;
		}
	return cli_error("unknown command \"%s\" (see fleetbox --help)", cmd);
}

static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return false;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return true;
	}
	return false;
}

static int parse_int(const char *opt, const char *s, int min, int max, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return cli_error("%s: \"%s\" is not a number in %d..%d", opt, s, min, max);
	*out = (int)v;
	return 0;
}

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

static int cmd_up(const char *root, int argc, char **argv)
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
		case 'n': bad = parse_int("-n", optarg, 1, 256, &count); break;
		case 'c': bad = parse_int("--cpus", optarg, 1, 256, &cpus); break;
		case 'm': bad = parse_int("--mem", optarg, 1, 1024, &mem_gb); break;
		case 'd': bad = parse_int("--disk", optarg, 1, 65536, &disk_gb); break;
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

/* --- down / rm --- */

static int cmd_down_rm(const char *root, int argc, char **argv, bool rm)
{
	bool all = false, force = false;
	const char **pats = calloc((size_t)argc, sizeof(char *));
	size_t n = 0;
	if (!pats)
		return cli_error("out of memory");
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--all") || !strcmp(argv[i], "-a"))
			all = true;
		else if (rm && (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--force")))
			force = true;
		else if (argv[i][0] == '-') {
			free(pats);
			return cli_error("%s: unknown option \"%s\"", argv[0], argv[i]);
		} else
			pats[n++] = argv[i];
	}
	if (all == (n > 0)) {
		free(pats);
		return cli_error("%s: give NAME... or --all", argv[0]);
	}
	fb_error fe = { 0 };
	int r;
	if (rm && !force) {
		/* Show exactly what will be deleted, then ask. */
		char **names = NULL;
		size_t nn = 0;
		if (all) {
			store_list_members(root, &names, &nn);
		} else {
			for (size_t i = 0; i < n; i++) {
				char **m;
				size_t nm;
				if (!wire_name_valid(pats[i])) {
					int rc = cli_error("invalid name \"%s\"", pats[i]);
					store_names_free(names, nn);
					free(pats);
					return rc;
				}
				if (store_match(root, pats[i], &m, &nm) < 0)
					continue;
				char **nv = realloc(names, (nn + nm) * sizeof(char *));
				if (!nv) {
					store_names_free(m, nm);
					break;
				}
				names = nv;
				memcpy(names + nn, m, nm * sizeof(char *));
				nn += nm;
				free(m);
			}
		}
		if (nn == 0) {
			free(pats);
			return 0; /* nothing to delete: rm is idempotent */
		}
		fprintf(stderr, "This deletes %zu member%s and their disks:", nn, nn == 1 ? "" : "s");
		for (size_t i = 0; i < nn; i++)
			fprintf(stderr, " %s", names[i]);
		fprintf(stderr, "\nContinue? [y/N] ");
		fflush(stderr);
		store_names_free(names, nn);
		char line[32] = "";
		if (!fgets(line, sizeof(line), stdin) || (line[0] != 'y' && line[0] != 'Y')) {
			free(pats);
			fprintf(stderr, "aborted\n");
			return 1;
		}
	}
	if (rm)
		r = all ? fb_rm_all(root, &fe) : fb_rm(root, pats, n, &fe);
	else
		r = all ? fb_down_all(root, &fe) : fb_down(root, pats, n, &fe);
	free(pats);
	if (r < 0)
		return cli_error("%s", fe.message);
	return 0;
}

/* --- ls / status --- */

static void fmt_age(const char *created, char *out, size_t len)
{
	struct tm tm = { 0 };
	if (!strptime(created, "%Y-%m-%dT%H:%M:%SZ", &tm)) {
		snprintf(out, len, "-");
		return;
	}
	long s = (long)difftime(time(NULL), timegm(&tm));
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(out, len, "%lds", s);
	else if (s < 7200)
		snprintf(out, len, "%ldm", s / 60);
	else if (s < 172800)
		snprintf(out, len, "%ldh", s / 3600);
	else
		snprintf(out, len, "%ldd", s / 86400);
}

static json_t *info_json(const fb_member_info *m, bool live)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:s, s:s}", "name", m->name, "ip",
			      m->ip, "state", m->state, "cpus", m->cpus, "memory_mb", m->memory_mb,
			      "disk_mb", m->disk_mb, "image", m->image, "created_at", m->created_at);
	if (o && live) {
		json_object_set_new(o, "running", json_boolean(m->running));
		json_object_set_new(o, "pid", json_integer(m->holder_pid));
		if (m->error[0])
			json_object_set_new(o, "error", json_string(m->error));
	}
	return o;
}

static int cmd_ls(const char *root, int argc, char **argv)
{
	bool quiet = false, json = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet"))
			quiet = true;
		else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
			const char *f = argv[++i];
			if (!strcmp(f, "json"))
				json = true;
			else if (strcmp(f, "table") != 0)
				return cli_error("ls: -o takes table or json, not \"%s\"", f);
		} else if (!strcmp(argv[i], "-ojson") || !strcmp(argv[i], "--output=json"))
			json = true;
		else
			return cli_error("ls: unknown argument \"%s\"", argv[i]);
	}
	fb_member_info *list;
	size_t n;
	fb_error fe = { 0 };
	if (fb_list(root, &list, &n, &fe) < 0)
		return cli_error("%s", fe.message);
	if (json) {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, info_json(&list[i], false));
		char *s = json_dumps(a, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		json_decref(a);
		printf("%s\n", s ? s : "[]");
		free(s);
	} else if (quiet) {
		for (size_t i = 0; i < n; i++)
			printf("%s\n", list[i].name);
	} else {
		printf("%-20s %-15s %-8s %4s %6s %6s %5s\n", "NAME", "IP", "STATE", "CPUS", "MEM", "DISK",
		       "AGE");
		for (size_t i = 0; i < n; i++) {
			char age[16], mem[16], disk[16];
			fmt_age(list[i].created_at, age, sizeof(age));
			snprintf(mem, sizeof(mem), "%dG", list[i].memory_mb / 1024);
			if (list[i].memory_mb % 1024)
				snprintf(mem, sizeof(mem), "%dM", list[i].memory_mb);
			snprintf(disk, sizeof(disk), "%dG", list[i].disk_mb / 1024);
			printf("%-20s %-15s %-8s %4d %6s %6s %5s\n", list[i].name,
			       list[i].ip[0] ? list[i].ip : "-", list[i].state, list[i].cpus, mem, disk, age);
		}
	}
	fb_list_free(list);
	return 0;
}

static int cmd_status(const char *root, int argc, char **argv)
{
	if (argc != 2)
		return cli_error("status: want exactly one NAME");
	fb_member_info info;
	fb_error fe = { 0 };
	if (fb_status(root, argv[1], &info, &fe) < 0)
		return cli_error("%s", fe.message);
	json_t *o = info_json(&info, true);
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	printf("%s\n", s ? s : "{}");
	free(s);
	return 0;
}

/* --- prune --- */

static int cmd_prune(const char *root, int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return cli_error("prune takes no arguments");
	/* 1. Host network state and orphaned VMMs: the holder binary's one-shot
	 * reconcile mode (it needs the same privileges as a holder). */
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
	/* The last line of its output is the JSON report. */
	json_t *rep = NULL;
	if (out) {
		char *last = out + strlen(out);
		while (last > out && last[-1] == '\n')
			*--last = '\0';
		char *nl = strrchr(out, '\n');
		rep = json_loads(nl ? nl + 1 : out, 0, NULL);
	}
	free(out);
	if (r < 0) {
		json_decref(rep);
		return cli_error("prune: %s", e.msg);
	}
	/* 2. Stale sockets and pidfiles of members whose holder is gone. */
	int stale = 0;
	char **names;
	size_t n;
	if (store_list_members(root, &names, &n) == 0) {
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
	}
	/* 3. Sockets in run/ nobody listens on (a holder killed mid-up, before
	 * any config existed): connect() is refused on a dead socket file. */
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
	json_int_t nets = rep ? json_integer_value(json_object_get(rep, "records_reclaimed")) : 0;
	json_int_t procs = rep ? json_integer_value(json_object_get(rep, "processes_killed")) : 0;
	json_int_t taps = rep ? json_integer_value(json_object_get(rep, "taps_removed")) : 0;
	json_int_t kept = rep ? json_integer_value(json_object_get(rep, "records_kept")) : 0;
	printf("pruned: %lld network(s), %lld tap(s), %lld orphaned VMM process(es), %d stale file(s)\n",
	       (long long)nets, (long long)taps, (long long)procs, stale);
	json_decref(rep);
	if (kept)
		return cli_error("%lld network record(s) could not be reclaimed; see the messages above",
				 (long long)kept);
	return 0;
}

static void image_progress(void *data, const char *line)
{
	(void)data;
	fprintf(stderr, "%s\n", line);
}

static int cmd_image(const char *root, int argc, char **argv)
{
	struct err e = { 0 };
	if (argc == 3 && !strcmp(argv[1], "build") && !strcmp(argv[2], "mini")) {
		if (store_init(root, &e) < 0 || image_mini_build(root, true, image_progress, NULL, &e) < 0)
			return cli_error("%s", e.msg);
		return 0;
	}
	if ((argc == 2 || argc == 3) && !strcmp(argv[1], "prepare")) {
		/* Build or download now (e.g. before going offline), not at up. */
		struct image_info img;
		if (store_init(root, &e) < 0 ||
		    image_resolve(root, argc == 3 ? argv[2] : "mini", image_progress, NULL, &img, &e) < 0)
			return cli_error("%s", e.msg);
		printf("%s: kernel %s\n", img.name, img.kernel);
		return 0;
	}
	return cli_error("usage: fleetbox image build mini | fleetbox image prepare [IMAGE]");
}

int cli_main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN); /* a peer closing early is an error, not a death */
	if (argc < 2) {
		cli_error("no command given");
		fputs(usage_main, stderr);
		return 1;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		fputs(usage_main, stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		printf("fleetbox %s (protocol %s)\n", fb_version(), FB_PROTOCOL_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "help"))
		return argc > 2 ? help_for(argv[2]) : (fputs(usage_main, stdout), 0);
	/* The CLI is a holder too: spawn this very binary (main() recorded it). */
	ctl_set_helper(vmm_self_exe());
	char root[PATH_MAX];
	if (store_root_resolve(root, sizeof(root)) < 0)
		return cli_error("cannot determine the store root (set FLEETBOX_HOME)");
	int sub_argc = argc - 1;
	char **sub = argv + 1;
	bool known = !strcmp(cmd, "up") || !strcmp(cmd, "down") || !strcmp(cmd, "rm") ||
		     !strcmp(cmd, "ls") || !strcmp(cmd, "status") || !strcmp(cmd, "ssh") ||
		     !strcmp(cmd, "cp") || !strcmp(cmd, "ssh-config") || !strcmp(cmd, "prune") ||
		     !strcmp(cmd, "image");
	if (!known)
		return cli_error("unknown command \"%s\" (see fleetbox --help)", cmd);
	if (wants_help(sub_argc, sub))
		return help_for(cmd);
	if (!strcmp(cmd, "up"))
		return cmd_up(root, sub_argc, sub);
	if (!strcmp(cmd, "down"))
		return cmd_down_rm(root, sub_argc, sub, false);
	if (!strcmp(cmd, "rm"))
		return cmd_down_rm(root, sub_argc, sub, true);
	if (!strcmp(cmd, "ls"))
		return cmd_ls(root, sub_argc, sub);
	if (!strcmp(cmd, "status"))
		return cmd_status(root, sub_argc, sub);
	if (!strcmp(cmd, "ssh"))
		return cli_ssh(root, sub_argc, sub);
	if (!strcmp(cmd, "cp"))
		return cli_cp(root, sub_argc, sub);
	if (!strcmp(cmd, "ssh-config"))
		return cli_ssh_config(root, sub_argc, sub);
	if (!strcmp(cmd, "prune"))
		return cmd_prune(root, sub_argc, sub);
	return cmd_image(root, sub_argc, sub);
}
