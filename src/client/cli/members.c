/* cli/members.c - `down`, `rm`, `ls`, `status`: the store's members as a
 * user sees them. Patterns are expanded here (exact member, else its
 * cluster) so messages can name what matched and what did not; the library
 * then gets exact names. rm reports only what is really gone. */
#include "client/cli/cli.h"
#include "client/store.h"
#include "fleetbox.h"
#include "rpc/wire.h"
#include "util/err.h"
#include "util/fileio.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- patterns ---- */

static int add_unique(char ***v, size_t *n, const char *s)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*v)[i], s))
			return 0;
	char **nv = realloc(*v, (*n + 1) * sizeof(char *));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	if (!(nv[*n] = strdup(s)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One pattern into names: 0, -ENOENT (no match), or another -errno. */
static int expand_one(const char *root, const char *pat, char ***names, size_t *count)
{
	char **m;
	size_t nm;
	int r = store_match(root, pat, &m, &nm);
	for (size_t j = 0; r == 0 && j < nm; j++)
		r = add_unique(names, count, m[j]);
	if (nm)
		store_names_free(m, nm);
	return r;
}

/* A pattern that matched nothing may still name something this user cannot
 * read (a member or cluster directory left by root): never call that "no
 * such member". 1 after printing an error, else 0. */
static int hidden(const char *root, const char *cmd, const char *pat)
{
	char dir[PATH_MAX], cdir[PATH_MAX], cfg[PATH_MAX + 16];
	struct stat st;
	if (store_member_dir(root, pat, dir, sizeof(dir)) < 0)
		return 0;
	snprintf(cdir, sizeof(cdir), "%s/clusters/%s", root, pat);
	snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
	const char *p = NULL;
	if (stat(dir, &st) < 0 && errno == EACCES)
		p = dir; /* its cluster directory is closed to us */
	else if (access(dir, F_OK) == 0 && access(dir, R_OK | X_OK) < 0)
		p = dir;
	else if (access(cfg, F_OK) == 0 && access(cfg, R_OK) < 0)
		p = cfg; /* a missing config is an unfinished creation, not a hidden one */
	else if (access(cdir, F_OK) == 0 && access(cdir, R_OK | X_OK) < 0)
		p = cdir;
	if (!p)
		return 0;
	return cli_error("%s: \"%s\" may exist but cannot be read here: %s: %s", cmd, pat, p,
			 strerror(EACCES));
}

int cli_expand(const char *root, const char *cmd, char **pats, size_t n, bool all,
	       bool missing_is_error, char ***names, size_t *count)
{
	*names = NULL;
	*count = 0;
	int r = 0;
	if (all && (r = store_list_members(root, names, count)) < 0)
		return cli_error("%s: cannot list the store %s: %s", cmd, root, strerror(-r));
	for (size_t i = 0; i < n; i++) {
		if (!wire_name_valid(pats[i])) {
			r = cli_error("%s: invalid name \"%s\" (names are [a-z0-9][a-z0-9-]{0,62})", cmd,
				      pats[i]);
			break;
		}
		int er = expand_one(root, pats[i], names, count);
		if (er == -ENOENT && (r = hidden(root, cmd, pats[i])))
			break;
		if (er == -ENOENT && missing_is_error) {
			r = cli_error("no such member: %s", pats[i]);
			break;
		}
		if (er == -ENOENT)
			cli_note("%s: no member matches \"%s\"", cmd, pats[i]);
		else if (er < 0) {
			r = cli_error("%s: %s: %s", cmd, pats[i], strerror(-er));
			break;
		}
	}
	if (r) {
		store_names_free(*names, *count);
		*names = NULL;
		*count = 0;
		return 1;
	}
	if (*count > 1)
		qsort(*names, *count, sizeof(char *), cmp_name);
	return 0;
}

/* ---- down / rm ---- */

struct sel {
	char **pats;
	size_t n;
	bool all, force;
};

/* NAME...|--all [-f]: 0, or 1 after an error. */
static int parse_sel(const char *cmd, const struct cli_opt *opts, int argc, char **argv,
		     struct sel *s)
{
	memset(s, 0, sizeof(*s));
	s->pats = calloc((size_t)argc + 1, sizeof(char *));
	if (!s->pats)
		return cli_error("out of memory");
	struct cli_parse p;
	cli_parse_init(&p, cmd, opts, argc, argv);
	int c;
	while ((c = cli_next(&p)) != CLI_END) {
		if (c == CLI_BAD)
			return 1;
		if (c == CLI_WORD)
			s->pats[s->n++] = (char *)p.value;
		else if (c == 'a')
			s->all = true;
		else if (c == 'f')
			s->force = true;
	}
	if (s->all == (s->n > 0))
		return cli_usage_error(cmd, s->all ? "give NAME... or --all, not both"
						   : "give NAME... or --all");
	return 0;
}

static const struct cli_opt *opts_of(const char *cmd)
{
	return cli_command_find(cmd)->opts;
}

int cmd_down(const char *root, int argc, char **argv)
{
	struct sel s;
	char **names = NULL;
	size_t n = 0;
	int rc = parse_sel("down", opts_of("down"), argc, argv, &s);
	if (rc == 0)
		rc = cli_expand(root, "down", s.pats, s.n, s.all, true, &names, &n);
	free(s.pats);
	if (rc)
		return rc;
	fb_error fe = { 0 };
	if (n && fb_down(root, (const char *const *)names, n, &fe) < 0)
		rc = cli_error("%s", fe.message);
	for (size_t i = 0; i < n; i++)
		if (!store_member_running(root, names[i], NULL))
			printf("stopped %s\n", names[i]);
	store_names_free(names, n);
	return rc;
}

/* The confirmation: 0 to go on, 1 (after a message) not to. */
static int confirm(char **names, size_t n)
{
	if (!isatty(0))
		return cli_error("rm: stdin is not a terminal, so there is nobody to confirm "
				 "deleting %zu member%s: use rm -f", n, n == 1 ? "" : "s");
	fprintf(stderr, "This deletes %zu member%s and their disks:", n, n == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, " %s", names[i]);
	fprintf(stderr, "\nContinue? [y/N] ");
	fflush(stderr);
	char line[32] = "";
	if (!fgets(line, sizeof(line), stdin) || (line[0] != 'y' && line[0] != 'Y')) {
		fprintf(stderr, "aborted: nothing deleted\n");
		return 1;
	}
	return 0;
}

static bool member_gone(const char *root, const char *name)
{
	char dir[PATH_MAX];
	return store_member_dir(root, name, dir, sizeof(dir)) == 0 && !path_exists(dir) &&
	       !store_member_running(root, name, NULL);
}

/* The owner of path, for a hint about entries a root process left behind. */
static void owner_hint(const char *root, char *out, size_t len)
{
	struct stat st;
	out[0] = '\0';
	if (lstat(root, &st) == 0 && st.st_uid == getuid())
		snprintf(out, len, " (entries owned by another user, e.g. root from an old sudo run, "
			 "can be fixed with: sudo chown -R %u:%u %s)", (unsigned)getuid(),
			 (unsigned)getgid(), root);
}

/* Unfinished creations (a member directory a killed `up` left without a
 * config, store.h) that the patterns name: rm reclaims them too. */
static void add_unfinished(const char *root, char **pats, size_t n, bool all, char ***names,
			   size_t *count)
{
	for (size_t i = 0; i < (all ? 1 : n); i++) {
		char **u;
		size_t nu;
		if (store_list_incomplete(root, all ? NULL : pats[i], &u, &nu) < 0)
			continue;
		for (size_t j = 0; j < nu; j++)
			(void)add_unique(names, count, u[j]);
		store_names_free(u, nu);
	}
}

int cmd_rm(const char *root, int argc, char **argv)
{
	struct sel s;
	char **names = NULL;
	size_t n = 0;
	int rc = parse_sel("rm", opts_of("rm"), argc, argv, &s);
	if (rc == 0)
		rc = cli_expand(root, "rm", s.pats, s.n, s.all, false, &names, &n);
	if (rc == 0)
		add_unfinished(root, s.pats, s.n, s.all, &names, &n);
	bool force = s.force;
	free(s.pats);
	if (rc || n == 0)
		return rc; /* nothing to delete: rm is idempotent */
	if (!force && (rc = confirm(names, n)))
		goto out;
	fb_error fe = { 0 };
	int r = fb_rm(root, (const char *const *)names, n, &fe);
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (member_gone(root, names[i]))
			printf("removed %s\n", names[i]);
		else
			kept++;
	}
	char hint[PATH_MAX + 160] = "";
	if (r == -EACCES || r == -EPERM)
		owner_hint(root, hint, sizeof(hint));
	if (kept)
		rc = cli_error("%zu of %zu member%s not deleted: %s%s", kept, n, n == 1 ? "" : "s",
			       r < 0 ? fe.message : "still present", hint);
	else if (r < 0)
		rc = cli_error("%s%s", fe.message, hint);
out:
	store_names_free(names, n);
	return rc;
}

/* ---- ls ---- */

static void fmt_age(const char *created, char *out, size_t len)
{
	struct tm tm = { 0 };
	if (!strptime(created, "%Y-%m-%dT%H:%M:%SZ", &tm)) {
		snprintf(out, len, "-");
		return;
	}
	cli_age(timegm(&tm), out, len);
}

void cli_age(time_t since, char *out, size_t len)
{
	long s = (long)difftime(time(NULL), since);
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

static bool has_address(const fb_member_info *m)
{
	return m->running && m->ip[0];
}

static json_t *info_json(const fb_member_info *m, bool live)
{
	char cl[FB_NAME_MAX + 1];
	wire_cluster_name(m->name, cl);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:s, s:s}", "name", m->name,
			      "cluster", cl, "ip", has_address(m) ? m->ip : "", "state", m->state,
			      "cpus", m->cpus, "memory_mb", m->memory_mb, "disk_mb", m->disk_mb,
			      "image", m->image, "created_at", m->created_at);
	if (o && live) {
		json_object_set_new(o, "running", json_boolean(m->running));
		json_object_set_new(o, "pid", json_integer(m->holder_pid));
		if (m->error[0])
			json_object_set_new(o, "error", json_string(m->error));
	}
	return o;
}

static int print_json(json_t *o)
{
	char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	if (!s)
		return cli_error("out of memory");
	printf("%s\n", s);
	free(s);
	return 0;
}

#define NCOL 8

static void row_cells(const fb_member_info *m, char cells[NCOL][64])
{
	wire_cluster_name(m->name, cells[1]);
	snprintf(cells[0], 64, "%s", m->name);
	snprintf(cells[2], 64, "%s", has_address(m) ? m->ip : "-");
	snprintf(cells[3], 64, "%s", m->state);
	snprintf(cells[4], 64, "%d", m->cpus);
	if (m->memory_mb % 1024)
		snprintf(cells[5], 64, "%dM", m->memory_mb);
	else
		snprintf(cells[5], 64, "%dG", m->memory_mb / 1024);
	snprintf(cells[6], 64, "%dG", m->disk_mb / 1024);
	fmt_age(m->created_at, cells[7], 64);
}

static void print_row(char cells[NCOL][64], const int *w)
{
	static const bool right[NCOL] = { false, false, false, false, true, true, true, true };
	for (int c = 0; c < NCOL; c++) {
		bool last = c == NCOL - 1;
		if (right[c])
			printf("%*s%s", w[c], cells[c], last ? "\n" : "  ");
		else
			printf("%-*s%s", last ? 0 : w[c], cells[c], last ? "\n" : "  ");
	}
}

/* Column widths from the content. */
static void print_table(const fb_member_info *list, size_t n)
{
	char head[NCOL][64] = { "NAME", "CLUSTER", "IP", "STATE", "CPUS", "MEM", "DISK", "AGE" };
	int w[NCOL];
	for (int c = 0; c < NCOL; c++)
		w[c] = (int)strlen(head[c]);
	for (size_t i = 0; i < n; i++) {
		char cells[NCOL][64];
		row_cells(&list[i], cells);
		for (int c = 0; c < NCOL; c++)
			if ((int)strlen(cells[c]) > w[c])
				w[c] = (int)strlen(cells[c]);
	}
	print_row(head, w);
	for (size_t i = 0; i < n; i++) {
		char cells[NCOL][64];
		row_cells(&list[i], cells);
		print_row(cells, w);
	}
}

static void on_unreadable(void *data, const char *path, int err)
{
	(void)data;
	cli_warn("cannot read %s: %s (not listed)", path, strerror(-err));
}

struct ls_args {
	bool quiet, json;
	char **pats;
	size_t n;
};

static int set_format(struct ls_args *a, const struct cli_parse *p)
{
	if (!strcmp(p->value, "json"))
		a->json = true;
	else if (!strcmp(p->value, "table"))
		a->json = false;
	else
		return cli_usage_error("ls", "%s takes table or json, not \"%s\"", p->token, p->value);
	return 0;
}

static int parse_ls(int argc, char **argv, struct ls_args *a)
{
	memset(a, 0, sizeof(*a));
	if (!(a->pats = calloc((size_t)argc + 1, sizeof(char *))))
		return cli_error("out of memory");
	struct cli_parse p;
	cli_parse_init(&p, "ls", opts_of("ls"), argc, argv);
	int c;
	while ((c = cli_next(&p)) != CLI_END) {
		if (c == CLI_BAD)
			return 1;
		if (c == CLI_WORD)
			a->pats[a->n++] = (char *)p.value;
		else if (c == 'q')
			a->quiet = true;
		else if (c == 'j')
			a->json = true;
		else if ((c == 'o' || c == 'F') && set_format(a, &p))
			return 1;
	}
	return 0;
}

/* Keeps the members whose names are in keep (all when keep is NULL). */
static size_t filter(fb_member_info *list, size_t n, char **keep, size_t nkeep, bool use)
{
	if (!use)
		return n;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		bool in = false;
		for (size_t j = 0; j < nkeep && !in; j++)
			in = !strcmp(keep[j], list[i].name);
		if (in)
			list[o++] = list[i];
	}
	return o;
}

int cmd_ls(const char *root, int argc, char **argv)
{
	struct ls_args a;
	char **keep = NULL;
	size_t nkeep = 0;
	int rc = parse_ls(argc, argv, &a);
	if (rc == 0 && a.n)
		rc = cli_expand(root, "ls", a.pats, a.n, false, false, &keep, &nkeep);
	bool use_filter = a.n > 0;
	free(a.pats);
	if (rc)
		return rc;
	store_scan_unreadable(root, on_unreadable, NULL);
	fb_member_info *list;
	size_t n;
	fb_error fe = { 0 };
	if (fb_list(root, &list, &n, &fe) < 0) {
		store_names_free(keep, nkeep);
		return cli_error("%s", fe.message);
	}
	n = filter(list, n, keep, nkeep, use_filter);
	store_names_free(keep, nkeep);
	if (a.json) {
		json_t *arr = json_array();
		for (size_t i = 0; arr && i < n; i++)
			json_array_append_new(arr, info_json(&list[i], false));
		rc = print_json(arr);
	} else if (a.quiet) {
		for (size_t i = 0; i < n; i++)
			printf("%s\n", list[i].name);
	} else {
		print_table(list, n);
		for (size_t i = 0; i < n; i++)
			if (list[i].error[0])
				cli_note("%s: %s (see fleetbox logs %s)", list[i].name, list[i].error,
					 list[i].name);
	}
	fb_list_free(list);
	return rc;
}

int cmd_status(const char *root, int argc, char **argv)
{
	struct cli_parse p;
	cli_parse_init(&p, "status", opts_of("status"), argc, argv);
	const char *name = NULL;
	int c;
	while ((c = cli_next(&p)) != CLI_END) {
		if (c == CLI_BAD)
			return 1;
		if (name)
			return cli_usage_error("status", "unexpected argument \"%s\" (one NAME)", p.value);
		name = p.value;
	}
	if (!name)
		return cli_usage_error("status", "missing NAME");
	fb_member_info info;
	fb_error fe = { 0 };
	if (fb_status(root, name, &info, &fe) < 0)
		return cli_error("%s", fe.message);
	return print_json(info_json(&info, true));
}
