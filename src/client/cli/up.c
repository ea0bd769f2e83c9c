/* cli/up.c - `fleetbox up`: options, member names, the interrupt flag, and
 * what the user sees while members boot.
 *
 * Interrupts (style.md 14): SIGINT/SIGTERM handlers only count into a flag
 * that fb_up checks between its phases and while it waits. The first one
 * rolls back like a failure; a second one ends rollback's graceful waits
 * (fb_up kills the holder it spawned); from then on the default action
 * applies, so a third kills fleetbox at once. Exit status 130 (SIGINT) or
 * 143 (SIGTERM) after a rollback. */
#include "client/cli/cli.h"
#include "fleetbox.h"
#include "rpc/wire.h"
#include "vmm/accel.h"
#include "vmm/vmm.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t up_cancel, up_signal;

static void on_up_signal(int sig)
{
	if (!up_signal)
		up_signal = sig;
	if (up_cancel < 2)
		up_cancel++;
	if (up_cancel >= 2) {
		struct sigaction dfl = { .sa_handler = SIG_DFL };
		sigaction(SIGINT, &dfl, NULL);
		sigaction(SIGTERM, &dfl, NULL);
	}
}

static void up_signals_install(struct sigaction old[2])
{
	struct sigaction sa = { .sa_handler = on_up_signal, .sa_flags = SA_RESTART };
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGINT);
	sigaddset(&sa.sa_mask, SIGTERM);
	sigaction(SIGINT, &sa, &old[0]);
	sigaction(SIGTERM, &sa, &old[1]);
}

static void up_signals_restore(const struct sigaction old[2])
{
	sigaction(SIGINT, &old[0], NULL);
	sigaction(SIGTERM, &old[1], NULL);
}

static void print_progress(void *data, const char *line)
{
	(void)data;
	fprintf(stderr, "%s\n", line);
}

struct up_args {
	int count, cpus, mem_gb, disk_gb;
	const char *image;
	fb_fixture_spec *fx;
	char **fxbuf;
	size_t nfx;
	const char **names;
	size_t nn;
	char (*gen)[FB_NAME_MAX + 2];
};

static void up_args_fini(struct up_args *a)
{
	free(a->names);
	free(a->gen);
	for (size_t i = 0; i < a->nfx; i++)
		free(a->fxbuf[i]);
	free(a->fxbuf);
	free(a->fx);
}

/* --fixture HOST:GUEST, split on the last colon; the library validates it. */
static int add_fixture(const char *arg, struct up_args *a)
{
	char *s = strdup(arg), *colon = s ? strrchr(s, ':') : NULL;
	if (!colon) {
		free(s);
		return cli_error("--fixture \"%s\": want HOST:GUEST", arg);
	}
	*colon = '\0';
	fb_fixture_spec *nf = realloc(a->fx, (a->nfx + 1) * sizeof(*a->fx));
	if (nf)
		a->fx = nf;
	char **nb = realloc(a->fxbuf, (a->nfx + 1) * sizeof(*a->fxbuf));
	if (nb)
		a->fxbuf = nb;
	if (!nf || !nb) {
		free(s);
		return cli_error("out of memory");
	}
	a->fxbuf[a->nfx] = s;
	a->fx[a->nfx].host_path = s;
	a->fx[a->nfx].guest_path = colon + 1;
	a->nfx++;
	return 0;
}

static int parse_options(int argc, char **argv, struct up_args *a)
{
	static const struct option opts[] = {
		{ "cpus", required_argument, NULL, 'c' },  { "mem", required_argument, NULL, 'm' },
		{ "disk", required_argument, NULL, 'd' },  { "image", required_argument, NULL, 'i' },
		{ "fixture", required_argument, NULL, 'f' }, { NULL, 0, NULL, 0 },
	};
	int c, bad = 0;
	optind = 1;
	opterr = 0;
	/* GNU getopt permutes: options may come before or after the names. */
	while (!bad && (c = getopt_long(argc, argv, "n:", opts, NULL)) != -1) {
		switch (c) {
		case 'n': bad = cli_parse_int("-n", optarg, 1, 256, &a->count); break;
		case 'c': bad = cli_parse_int("--cpus", optarg, 1, 256, &a->cpus); break;
		case 'm': bad = cli_parse_int("--mem", optarg, 1, 1024, &a->mem_gb); break;
		case 'd': bad = cli_parse_int("--disk", optarg, 1, 65536, &a->disk_gb); break;
		case 'i': a->image = optarg; break;
		case 'f': bad = add_fixture(optarg, a); break;
		default:
			bad = cli_error("up: unknown or incomplete option \"%s\" (see fleetbox help up)",
					argv[optind - 1]);
		}
	}
	return bad;
}

/* NAME... as given, NAME-1..NAME-N with -n, or "default". */
static int member_names(int argc, char **argv, struct up_args *a)
{
	a->names = calloc((size_t)argc + (size_t)a->count + 1, sizeof(char *));
	if (!a->names)
		return cli_error("out of memory");
	for (int i = optind; i < argc; i++)
		a->names[a->nn++] = argv[i];
	if (a->count == 0) {
		if (a->nn == 0)
			a->names[a->nn++] = "default";
		return 0;
	}
	if (a->nn > 1)
		return cli_error("-n takes one NAME (got %zu)", a->nn);
	const char *base = a->nn ? a->names[0] : "default";
	a->gen = calloc((size_t)a->count, sizeof(*a->gen));
	if (!a->gen)
		return cli_error("out of memory");
	for (int i = 0; i < a->count; i++) {
		if (snprintf(a->gen[i], sizeof(a->gen[i]), "%s-%d", base, i + 1) > FB_NAME_MAX)
			return cli_error("name \"%s-%d\" is too long", base, i + 1);
		a->names[i] = a->gen[i];
	}
	a->nn = (size_t)a->count;
	return 0;
}

/* The holder picks KVM or TCG; say here, once, when it will be TCG. */
static void warn_tcg(void)
{
	const char *vmm = getenv("FLEETBOX_VMM");
	if (vmm && !strcmp(vmm, "fake"))
		return;
	struct accel_host host;
	enum vmm_accel accel;
	char warn[256] = "";
	accel_probe_host(&host);
	if (accel_choose(getenv("FLEETBOX_ACCEL"), &host, &accel, warn, sizeof(warn), NULL) == 0 &&
	    warn[0])
		fprintf(stderr, "warning: %s\n", warn);
}

static int run_up(const char *root, const struct up_args *a)
{
	fb_up_options o = {
		.root = root,
		.names = a->names,
		.n_names = a->nn,
		.cpus = a->cpus,
		.memory_mb = a->mem_gb * 1024,
		.disk_mb = a->disk_gb * 1024,
		.image = a->image,
		.fixtures = a->fx,
		.n_fixtures = a->nfx,
		.bound = 0,
		.progress = print_progress,
		.cancel = &up_cancel,
	};
	warn_tcg();
	fb_cluster *cl = NULL;
	fb_error fe = { 0 };
	struct sigaction old[2];
	up_signals_install(old);
	int r = fb_up(&o, &cl, &fe);
	up_signals_restore(old);
	if (r < 0) {
		cli_error("%s", fe.message);
		return r == -ECANCELED && up_signal ? 128 + up_signal : 1;
	}
	for (size_t i = 0; i < fb_cluster_size(cl); i++)
		printf("  %s  IP: %s  SSH: fleetbox ssh %s\n", fb_cluster_name(cl, i), fb_cluster_ip(cl, i),
		       fb_cluster_name(cl, i));
	fb_cluster_close(cl, NULL);
	return 0;
}

int cli_up(const char *root, int argc, char **argv)
{
	struct up_args a = { 0 };
	int rc = parse_options(argc, argv, &a);
	if (rc == 0)
		rc = member_names(argc, argv, &a);
	if (rc == 0)
		rc = run_up(root, &a);
	up_args_fini(&a);
	return rc;
}
