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

static void ago(time_t t, char *out, size_t len)
{
	long s = (long)difftime(time(NULL), t);
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(out, len, "%lds ago", s);
	else if (s < 7200)
		snprintf(out, len, "%ldm ago", s / 60);
	else if (s < 172800)
		snprintf(out, len, "%ldh ago", s / 3600);
	else
		snprintf(out, len, "%ldd ago", s / 86400);
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
		ago(v[i].last_use, when, sizeof(when));
		if (strlen(v[i].source) > 44)
			snprintf(src, sizeof(src), "%.41s...", v[i].source);
		else
			snprintf(src, sizeof(src), "%s", v[i].source);
		printf("%-20s %-44s sha256:%.12s %7s %9s %5d\n", v[i].names, src, v[i].digest + 7, size,
		       when, v[i].disks);
	}
}

static int image_ls(int argc, char **argv)
{
	bool json = false;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "-o") && i + 1 < argc && !strcmp(argv[i + 1], "json"))
			json = true, i++;
		else if (!strcmp(argv[i], "-o") && i + 1 < argc && !strcmp(argv[i + 1], "table"))
			i++;
		else
			return cli_error("image ls: unknown argument \"%s\" (want -o table|json)", argv[i]);
	}
	struct image_entry *v;
	size_t n;
	struct err e = { 0 };
	if (image_list(&v, &n, &e) < 0)
		return cli_error("%s", e.msg);
	if (json) {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, entry_json(&v[i]));
		char *s = json_dumps(a, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		json_decref(a);
		printf("%s\n", s ? s : "[]");
		free(s);
	} else {
		print_table(v, n);
	}
	free(v);
	return 0;
}

static int image_rm(int argc, char **argv)
{
	if (argc < 3)
		return cli_error("image rm: give NAME or DIGEST...");
	int rc = 0;
	for (int i = 2; i < argc; i++) {
		struct err e = { 0 };
		if (image_remove(argv[i], &e) < 0)
			rc = cli_error("%s", e.msg);
		else
			printf("removed %s\n", argv[i]);
	}
	return rc;
}

static int image_prepare(const char *root, int argc, char **argv)
{
	if (argc > 3)
		return cli_error("image prepare: at most one IMAGE");
	/* Build or download now (e.g. before going offline), not at up. */
	struct image_info img;
	struct err e = { 0 };
	if (image_resolve(root, argc == 3 ? argv[2] : "mini", progress, NULL, &img, &e) < 0)
		return cli_error("%s", e.msg);
	printf("%s: %s ready (kernel %s)\n", img.name, img.digest, img.kernel);
	return 0;
}

static int image_build_cmd(const char *root, int argc, char **argv)
{
	const char *what = NULL, *name = NULL;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--name") && i + 1 < argc)
			name = argv[++i];
		else if (argv[i][0] != '-' && !what)
			what = argv[i];
		else
			return cli_error("image build: unexpected \"%s\"", argv[i]);
	}
	if (!what)
		return cli_error("image build: give mini or debian-<N> [--name NAME]");
	struct image_info img;
	struct err e = { 0 };
	if (image_build(root, what, name, progress, NULL, &img, &e) < 0)
		return cli_error("%s", e.msg);
	printf("%s: %s ready\n", img.name, img.digest);
	return 0;
}

int cli_image(const char *root, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	if (!strcmp(sub, "ls") || !strcmp(sub, "list"))
		return image_ls(argc, argv);
	if (!strcmp(sub, "rm"))
		return image_rm(argc, argv);
	if (!strcmp(sub, "prepare"))
		return image_prepare(root, argc, argv);
	if (!strcmp(sub, "build"))
		return image_build_cmd(root, argc, argv);
	return cli_error("usage: fleetbox image ls [-o json] | rm NAME|DIGEST... | prepare [IMAGE] | "
			 "build mini|debian-<N> [--name NAME]");
}

bool cli_prune_wants_images(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--images"))
			return true;
	return false;
}

int cli_prune_images(int argc, char **argv)
{
	int days = 0;
	for (int i = 1; i < argc; i++) {
		char *end;
		if (!strcmp(argv[i], "--images"))
			continue;
		if (strcmp(argv[i], "--older-than") != 0 || i + 1 >= argc)
			return cli_error("prune --images: unknown argument \"%s\"", argv[i]);
		long v = strtol(argv[++i], &end, 10);
		if (end == argv[i] || *end || v < 0 || v > 36500)
			return cli_error("--older-than: \"%s\" is not a number of days", argv[i]);
		days = (int)v;
	}
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
