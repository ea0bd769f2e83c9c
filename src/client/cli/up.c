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
#include "util/accel.h"
#include "vmm/vmm.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define UP_MAX_N 253 /* .2 .. .254 of one /24 */

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

/* --- what the user sees ---
 *
 * On a terminal (stderr): one line per member not yet ready, redrawn in place
 * (phase, elapsed seconds, the guest console's last line). Not on a
 * terminal: one line per phase change. Either way a member's
 * "  <m>  IP: ...  SSH: fleetbox ssh <m>" line goes to stdout the moment that
 * member is ready. */

struct view_row {
	char name[FB_NAME_MAX + 1];
	fb_up_phase phase;
	char phase_name[32];
	double elapsed;
	char ip[16];
	char detail[256];
	bool seen, done; /* done: its final line is printed */
};

struct view {
	bool tty;
	int width, height;
	struct view_row *rows;
	size_t n;
	size_t drawn;        /* lines of the block on screen now */
	uint64_t last_draw;  /* ms; ticks redraw at most 5 times a second */
};

static void term_size(struct view *v)
{
	struct winsize ws;
	bool ok = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0;
	v->width = ok && ws.ws_col >= 20 ? ws.ws_col : 80;
	v->height = ok && ws.ws_row >= 5 ? ws.ws_row : 24;
}

static uint64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static void view_init(struct view *v, const char *const *names, size_t n)
{
	const char *term = getenv("TERM");
	v->tty = isatty(STDERR_FILENO) && !(term && !strcmp(term, "dumb"));
	if (v->tty)
		term_size(v);
	v->rows = calloc(n ? n : 1, sizeof(*v->rows));
	v->n = v->rows ? n : 0;
	for (size_t i = 0; i < v->n; i++)
		snprintf(v->rows[i].name, sizeof(v->rows[i].name), "%s", names[i]);
	v->drawn = 0;
}

static struct view_row *view_row(struct view *v, const char *name)
{
	for (size_t i = 0; i < v->n; i++)
		if (!strcmp(v->rows[i].name, name))
			return &v->rows[i];
	/* A pattern expanded to members we were not told about: add a row. */
	struct view_row *nr = realloc(v->rows, (v->n + 1) * sizeof(*nr));
	if (!nr)
		return NULL;
	v->rows = nr;
	memset(&nr[v->n], 0, sizeof(*nr));
	snprintf(nr[v->n].name, sizeof(nr[v->n].name), "%s", name);
	return &nr[v->n++];
}

static void view_erase(struct view *v)
{
	if (v->tty && v->drawn)
		fprintf(stderr, "\033[%zuA\r\033[J", v->drawn);
	v->drawn = 0;
}

static void row_line(const struct view *v, const struct view_row *r, char *out, size_t len)
{
	int n = snprintf(out, len, "  %-12s  %-15s %4ds", r->name, r->phase_name, (int)r->elapsed);
	if (r->detail[0] && n > 0 && (size_t)n + 4 < len)
		snprintf(out + n, len - (size_t)n, "  %s", r->detail);
	size_t w = v->width > 1 ? (size_t)v->width - 1 : len - 1;
	if (w < len && strlen(out) > w)
		out[w] = '\0'; /* one screen line each, or the redraw goes wrong */
}

/* The block: a line per member not ready, as many as fit the screen, then
 * one line counting the rest. */
static void view_draw(struct view *v)
{
	if (!v->tty)
		return;
	view_erase(v);
	char line[512];
	size_t fit = (size_t)v->height - 2, hidden = 0;
	for (size_t i = 0; i < v->n; i++) {
		if (!v->rows[i].seen || v->rows[i].done)
			continue;
		if (v->drawn + 1 >= fit) {
			hidden++;
			continue;
		}
		row_line(v, &v->rows[i], line, sizeof(line));
		fprintf(stderr, "%s\n", line);
		v->drawn++;
	}
	if (hidden) {
		fprintf(stderr, "  ... and %zu more\n", hidden);
		v->drawn++;
	}
	fflush(stderr);
	v->last_draw = mono_ms();
}

static void print_ready(struct view *v, struct view_row *r)
{
	view_erase(v);
	fflush(stderr);
	printf("  %s  IP: %s  SSH: fleetbox ssh %s\n", r->name, r->ip[0] ? r->ip : "-", r->name);
	fflush(stdout);
	r->done = true;
	view_draw(v);
}

/* Not a terminal: one line per phase change (ticks only update elapsed). */
static void print_change(const struct view_row *r)
{
	if (r->detail[0] && (r->phase == FB_UP_FAILED || r->phase == FB_UP_ROLLED_BACK))
		fprintf(stderr, "%s: %s (%s)\n", r->name, r->phase_name, r->detail);
	else
		fprintf(stderr, "%s: %s (%.0fs)\n", r->name, r->phase_name, r->elapsed);
}

static bool is_last_row(const struct view *v, const struct view_row *r)
{
	for (size_t i = v->n; i-- > 0;)
		if (v->rows[i].seen && !v->rows[i].done)
			return &v->rows[i] == r;
	return false;
}

static void on_member_progress(void *data, const fb_member_progress *p)
{
	struct view *v = data;
	struct view_row *r = view_row(v, p->name);
	if (!r)
		return;
	bool changed = !r->seen || r->phase != p->phase;
	r->seen = true;
	r->phase = p->phase;
	snprintf(r->phase_name, sizeof(r->phase_name), "%s", p->phase_name);
	r->elapsed = p->elapsed;
	snprintf(r->ip, sizeof(r->ip), "%s", p->ip);
	snprintf(r->detail, sizeof(r->detail), "%s", p->detail);
	if (p->phase == FB_UP_READY && !r->done)
		print_ready(v, r);
	else if (!v->tty && changed && p->phase != FB_UP_READY)
		print_change(r);
	else if (changed || is_last_row(v, r) || mono_ms() - v->last_draw >= 200)
		view_draw(v); /* a tick reports members in order: draw once per burst */
}

static void on_line_progress(void *data, const char *line)
{
	struct view *v = data;
	view_erase(v);
	fprintf(stderr, "%s\n", line);
	view_draw(v);
}

/* After fb_up: on a terminal, what the members not ready ended as. */
static void view_fini(struct view *v)
{
	view_erase(v);
	for (size_t i = 0; v->tty && i < v->n; i++)
		if (v->rows[i].seen && !v->rows[i].done && v->rows[i].phase != FB_UP_READY)
			print_change(&v->rows[i]);
	fflush(stderr);
	free(v->rows);
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

static int parse_count(const struct cli_parse *p, struct up_args *a)
{
	if (cli_int(p, 1, 1 << 20, &a->count) == CLI_BAD)
		return 1;
	if (a->count > UP_MAX_N)
		return cli_error("up: -n %d: one network (a /24) holds at most %d members", a->count,
				 UP_MAX_N);
	return 0;
}

/* One option or NAME; errors are printed (by the shared parser, naming the
 * token, or here) and give 1. */
static int parse_one(struct cli_parse *p, int c, struct up_args *a)
{
	switch (c) {
	case CLI_WORD: a->names[a->nn++] = p->value; return 0;
	case 'n': return parse_count(p, a);
	case 'c': return cli_int(p, 1, 256, &a->cpus) == CLI_BAD;
	case 'm': return cli_int(p, 1, 1024, &a->mem_gb) == CLI_BAD;
	case 'd': return cli_int(p, 1, 65536, &a->disk_gb) == CLI_BAD;
	case 'i': a->image = p->value; return 0;
	case 'f': return add_fixture(p->value, a);
	default: return 1; /* CLI_BAD: already said */
	}
}

static int parse_options(int argc, char **argv, struct up_args *a)
{
	a->names = calloc((size_t)argc + 1, sizeof(char *));
	if (!a->names)
		return cli_error("out of memory");
	struct cli_parse p;
	cli_parse_init(&p, "up", cli_up_opts, argc, argv);
	int c, bad = 0;
	while (!bad && (c = cli_next(&p)) != CLI_END)
		bad = parse_one(&p, c, a);
	return bad;
}

/* NAME... as given, NAME-1..NAME-N with -n, or "default". */
static int member_names(struct up_args *a)
{
	if (a->count == 0) {
		if (a->nn == 0)
			a->names[a->nn++] = "default";
		return 0;
	}
	if (a->nn > 1)
		return cli_error("-n takes one NAME (got %zu)", a->nn);
	const char *base = a->nn ? a->names[0] : "default";
	const char **names = realloc(a->names, ((size_t)a->count + 1) * sizeof(char *));
	a->gen = calloc((size_t)a->count, sizeof(*a->gen));
	if (names)
		a->names = names;
	if (!names || !a->gen)
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
	struct view view;
	view_init(&view, a->names, a->nn);
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
		.progress = on_line_progress,
		.member_progress = on_member_progress,
		.progress_data = &view,
		.cancel = &up_cancel,
	};
	warn_tcg();
	fb_cluster *cl = NULL;
	fb_error fe = { 0 };
	struct sigaction old[2];
	up_signals_install(old);
	int r = fb_up(&o, &cl, &fe);
	up_signals_restore(old);
	view_fini(&view);
	if (r < 0) {
		cli_error("%s", fe.message);
		return r == -ECANCELED && up_signal ? 128 + up_signal : 1;
	}
	fb_cluster_close(cl, NULL);
	return 0;
}

int cli_up(const char *root, int argc, char **argv)
{
	struct up_args a = { 0 };
	int rc = parse_options(argc, argv, &a);
	if (rc == 0)
		rc = member_names(&a);
	if (rc == 0)
		rc = run_up(root, &a);
	up_args_fini(&a);
	return rc;
}
