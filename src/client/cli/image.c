/* cli/image.c - `fleetbox image ls|rm|prepare|build` and `prune --images`:
 * the image cache from the command line (image/image.h does the work). */
#include "client/cli/cli.h"
#include "client/image/image.h"
#include "util/err.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void progress(void *data, const char *line)
{
	(void)data;
	fprintf(stderr, "%s\n", line);
}

static void human_size(uint64_t b, char *out, size_t len)
{
	const char *u = "BKMGT";
	double v = (double)b;
	while (v >= 1024 && u[1]) {
		v /= 1024;
		u++;
	}
	snprintf(out, len, *u == 'B' ? "%.0f%c" : "%.1f%c", v, *u);
}

static json_t *entry_json(const struct image_entry *en)
{
	char when[32];
	struct tm tm;
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&en->last_use, &tm));
	json_t *names = json_array();
	char buf[sizeof(en->names)];
	snprintf(buf, sizeof(buf), "%s", en->names);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (strcmp(t, "-") != 0)
			json_array_append_new(names, json_string(t));
	return json_pack("{s:o, s:s, s:s, s:I, s:s, s:i}", "names", names, "source", en->source,
			 "digest", en->digest, "size", (json_int_t)en->size, "last_use", when,
			 "disks", en->disks);
}

static void print_table(const struct image_entry *v, size_t n)
{
	printf("%-20s %-44s %-19s %7s %9s %5s\n", "NAME", "SOURCE", "DIGEST", "SIZE", "LAST USE",
	       "DISKS");
	for (size_t i = 0; i < n; i++) {
		char size[16], when[24], src[45];
		human_size(v[i].size, size, sizeof(size));
		char age[16];
		cli_age(v[i].last_use, age, sizeof(age));
		snprintf(when, sizeof(when), "%s ago", age);
		if (strlen(v[i].source) > 44)
			snprintf(src, sizeof(src), "%.41s...", v[i].source);
		else
			snprintf(src, sizeof(src), "%s", v[i].source);
		printf("%-20s %-44s sha256:%.12s %7s %9s %5d\n", v[i].names, src, v[i].digest + 7, size,
		       when, v[i].disks);
	}
}

struct image_args {
	const char *sub;
	const char *words[64];
	int n;
	const char *output, *name;
};

static int parse_args(int argc, char **argv, struct image_args *a)
{
	struct cli_parse p;
	memset(a, 0, sizeof(*a));
	cli_parse_init(&p, "image", cli_image_opts, argc, argv);
	int c;
	while ((c = cli_next(&p)) != CLI_END) {
		if (c == CLI_BAD)
			return 1;
		if (c == 'o')
			a->output = p.value;
		else if (c == 'N')
			a->name = p.value;
		else if (!a->sub)
			a->sub = p.value;
		else if (a->n < 64)
			a->words[a->n++] = p.value;
		else
			return cli_usage_error("image", "too many arguments");
	}
	if (a->output && strcmp(a->sub ? a->sub : "", "ls") != 0)
		return cli_usage_error("image", "-o is an option of image ls");
	if (a->name && strcmp(a->sub ? a->sub : "", "build") != 0)
		return cli_usage_error("image", "--name is an option of image build");
	return 0;
}

static int image_ls(const struct image_args *a)
{
	bool json = a->output && !strcmp(a->output, "json");
	if (a->output && !json && strcmp(a->output, "table") != 0)
		return cli_usage_error("image", "-o takes table or json, not \"%s\"", a->output);
	if (a->n)
		return cli_usage_error("image", "ls: unexpected argument \"%s\"", a->words[0]);
	struct image_entry *v;
	size_t n;
	struct err e = { 0 };
	if (image_list(&v, &n, &e) < 0)
		return cli_error("%s", e.msg);
	if (json) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, entry_json(&v[i]));
		char *s = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		json_decref(arr);
		printf("%s\n", s ? s : "[]");
		free(s);
	} else {
		print_table(v, n);
	}
	free(v);
	return 0;
}

static int image_rm(const struct image_args *a)
{
	if (a->n == 0)
		return cli_usage_error("image", "rm: give NAME or DIGEST...");
	int rc = 0;
	for (int i = 0; i < a->n; i++) {
		struct err e = { 0 };
		if (image_remove(a->words[i], &e) < 0)
			rc = cli_error("%s", e.msg);
		else
			printf("removed %s\n", a->words[i]);
	}
	return rc;
}

static int image_prepare(const char *root, const struct image_args *a)
{
	if (a->n > 1)
		return cli_usage_error("image", "prepare: at most one IMAGE");
	/* Build or download now (e.g. before going offline), not at up. */
	struct image_info img;
	struct err e = { 0 };
	if (image_resolve(root, a->n ? a->words[0] : "mini", progress, NULL, &img, &e) < 0)
		return cli_error("%s", e.msg);
	printf("%s: %s ready (kernel %s)\n", img.name, img.digest, img.kernel);
	return 0;
}

static int image_build_cmd(const char *root, const struct image_args *a)
{
	if (a->n != 1)
		return cli_usage_error("image", "build: give mini or debian-<N> [--name NAME]");
	struct image_info img;
	struct err e = { 0 };
	if (image_build(root, a->words[0], a->name, progress, NULL, &img, &e) < 0)
		return cli_error("%s", e.msg);
	printf("%s: %s ready\n", img.name, img.digest);
	return 0;
}

int cli_image(const char *root, int argc, char **argv)
{
	struct image_args a;
	if (parse_args(argc, argv, &a))
		return 1;
	const char *sub = a.sub ? a.sub : "";
	if (!strcmp(sub, "ls") || !strcmp(sub, "list"))
		return image_ls(&a);
	if (!strcmp(sub, "rm"))
		return image_rm(&a);
	if (!strcmp(sub, "prepare"))
		return image_prepare(root, &a);
	if (!strcmp(sub, "build"))
		return image_build_cmd(root, &a);
	static const char *const subs[] = { "ls", "rm", "prepare", "build", NULL };
	const char *near = *sub ? cli_nearest(sub, subs) : NULL;
	if (near)
		return cli_usage_error("image", "unknown subcommand \"%s\" (did you mean %s?)", sub, near);
	return cli_usage_error("image", "want ls, rm, prepare or build%s%s%s", *sub ? ", not \"" : "",
			       sub, *sub ? "\"" : "");
}

bool cli_prune_wants_images(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (!strcmp(argv[i], "--images") || !strncmp(argv[i], "--older-than", 12))
			return true;
	return false;
}

int cli_prune_images(int argc, char **argv)
{
	struct cli_parse p;
	cli_parse_init(&p, "prune", cli_prune_opts, argc, argv);
	int c, days = 0;
	bool images = false;
	while ((c = cli_next(&p)) != CLI_END) {
		if (c == CLI_BAD || (c == 'O' && cli_int(&p, 0, 36500, &days) == CLI_BAD))
			return 1;
		if (c == CLI_WORD)
			return cli_usage_error("prune", "unexpected argument \"%s\"", p.value);
		images |= c == 'I';
	}
	if (!images)
		return cli_usage_error("prune", "--older-than goes with --images");
	struct image_prune_report rep;
	struct err e = { 0 };
	if (image_prune(days, &rep, &e) < 0)
		return cli_error("%s", e.msg);
	char freed[16];
	human_size(rep.freed, freed, sizeof(freed));
	printf("pruned: %d image(s), %s freed; kept %d in use by member disks, %d used in the last "
	       "%d day(s); %d stale record(s)\n", rep.removed, freed, rep.kept_in_use, rep.kept_recent,
	       days, rep.debris);
	return 0;
}
