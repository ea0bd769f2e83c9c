/* cli/args.c - messages in one format, "did you mean", and the option parser
 * every command shares (see cli.h). Errors name the token the user typed:
 *   error: up: unknown option "-q" in "-qn" (see fleetbox help up)
 *   error: up: missing value for -n (see fleetbox help up)
 *   error: up: --cpus: "x" is not a number in 1..256 */
#include "client/cli/cli.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void vmsg(const char *tag, const char *fmt, va_list ap)
{
	char line[2048];
	vsnprintf(line, sizeof(line), fmt, ap);
	/* One write so that concurrent processes do not interleave lines. */
	fprintf(stderr, "%s: %s\n", tag, line);
	fflush(stderr);
}

int cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg("error", fmt, ap);
	va_end(ap);
	return 1;
}

void cli_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg("warning", fmt, ap);
	va_end(ap);
}

void cli_note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg("note", fmt, ap);
	va_end(ap);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return cli_error("%s: %s (see fleetbox help %s)", cmd, msg, cmd);
}

/* ---- did you mean ---- */

static int min3(int a, int b, int c)
{
	int m = a < b ? a : b;
	return m < c ? m : c;
}

int cli_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 32 || lb > 32)
		return 9;
	int d[33][33];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (int)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (int)j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			int cost = a[i - 1] != b[j - 1];
			d[i][j] = min3(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < d[i][j])
				d[i][j] = d[i - 2][j - 2] + 1; /* a transposition */
		}
	return d[la][lb] > 9 ? 9 : d[la][lb];
}

const char *cli_nearest(const char *s, const char *const *words)
{
	const char *best = NULL;
	int bestd = 3;
	for (size_t i = 0; words[i]; i++) {
		int d = cli_distance(s, words[i]);
		size_t len = strlen(words[i]);
		if (d < bestd && (d == 1 ? len >= 2 : (size_t)d * 2 < len)) {
			best = words[i];
			bestd = d;
		}
	}
	return best;
}

/* ---- the parser ---- */

void cli_parse_init(struct cli_parse *p, const char *cmd, const struct cli_opt *opts, int argc,
		    char **argv)
{
	memset(p, 0, sizeof(*p));
	p->cmd = cmd;
	p->opts = opts;
	p->argc = argc;
	p->argv = argv;
	p->i = 1;
}

static const struct cli_opt *find_short(const struct cli_parse *p, char c)
{
	for (const struct cli_opt *o = p->opts; o && o->id; o++)
		if (o->shortname && o->shortname == c)
			return o;
	return NULL;
}

static const struct cli_opt *find_long(const struct cli_parse *p, const char *name, size_t len)
{
	for (const struct cli_opt *o = p->opts; o && o->id; o++)
		if (o->longname && strlen(o->longname) == len && !strncmp(o->longname, name, len))
			return o;
	return NULL;
}

static int unknown_long(struct cli_parse *p, const char *tok, size_t len)
{
	const char *names[64];
	size_t n = 0;
	for (const struct cli_opt *o = p->opts; o && o->id && n < 63; o++)
		if (o->longname)
			names[n++] = o->longname;
	names[n] = NULL;
	char name[128];
	snprintf(name, sizeof(name), "%.*s", (int)(len < 120 ? len : 120), tok + 2);
	const char *near = cli_nearest(name, names);
	if (near)
		return cli_error("%s: unknown option \"%s\" (did you mean --%s?)", p->cmd, tok, near),
		       CLI_BAD;
	return cli_usage_error(p->cmd, "unknown option \"%s\"", tok), CLI_BAD;
}

static int take_value(struct cli_parse *p, const struct cli_opt *o, const char *inline_value)
{
	if (o->arg == CLI_FLAG) {
		if (inline_value)
			return cli_usage_error(p->cmd, "%s takes no value (got \"%s\")", p->token,
					       inline_value), CLI_BAD;
		p->value = NULL;
		return o->id;
	}
	if (inline_value) {
		p->value = inline_value;
		return o->id;
	}
	if (p->i >= p->argc)
		return cli_usage_error(p->cmd, "missing value for %s", p->token), CLI_BAD;
	p->value = p->argv[p->i++];
	return o->id;
}

static int next_long(struct cli_parse *p, const char *tok)
{
	const char *eq = strchr(tok, '=');
	size_t len = eq ? (size_t)(eq - tok) : strlen(tok);
	const struct cli_opt *o = find_long(p, tok + 2, len - 2);
	if (!o)
		return unknown_long(p, tok, len);
	static char written[128];
	snprintf(written, sizeof(written), "--%s", o->longname);
	p->token = written;
	return take_value(p, o, eq ? eq + 1 : NULL);
}

static int next_short(struct cli_parse *p)
{
	char c = *p->bundle++;
	static char written[3] = "-?";
	written[1] = c;
	p->token = written;
	const struct cli_opt *o = find_short(p, c);
	const char *group = p->bundle_tok;
	if (!o) {
		p->bundle = NULL;
		if (strlen(group) > 2)
			return cli_usage_error(p->cmd, "unknown option \"-%c\" in \"%s\"", c, group),
			       CLI_BAD;
		return cli_usage_error(p->cmd, "unknown option \"-%c\"", c), CLI_BAD;
	}
	if (o->arg == CLI_VALUE && *p->bundle) {
		p->value = p->bundle; /* -n3 */
		p->bundle = NULL;
		return o->id;
	}
	if (!*p->bundle)
		p->bundle = NULL;
	else if (o->arg == CLI_VALUE)
		return cli_usage_error(p->cmd, "missing value for -%c in \"%s\"", c, group), CLI_BAD;
	return take_value(p, o, NULL);
}

int cli_next(struct cli_parse *p)
{
	if (p->bundle)
		return next_short(p);
	if (p->i >= p->argc)
		return CLI_END;
	const char *tok = p->argv[p->i++];
	if (p->dashdash || tok[0] != '-' || !strcmp(tok, "-")) {
		p->value = tok;
		return CLI_WORD;
	}
	if (!strcmp(tok, "--")) {
		p->dashdash = true;
		return cli_next(p);
	}
	if (tok[1] == '-')
		return next_long(p, tok);
	p->bundle = tok + 1;
	p->bundle_tok = tok;
	return next_short(p);
}

char **cli_rest(struct cli_parse *p, int *n)
{
	*n = p->argc - p->i;
	return p->argv + p->i;
}

int cli_int(const struct cli_parse *p, int min, int max, int *out)
{
	char opt[160];
	snprintf(opt, sizeof(opt), "%s: %s", p->cmd, p->token);
	return cli_parse_int(opt, p->value, min, max, out) ? CLI_BAD : 0;
}

int cli_parse_int(const char *opt, const char *s, int min, int max, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return cli_error("%s: \"%s\" is not a number in %d..%d", opt, s, min, max);
	*out = (int)v;
	return 0;
}
