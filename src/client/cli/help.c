/* cli/help.c - `fleetbox --help`, `help CMD`, `help environment` and the man
 * page (`--fleetbox-man`, run at build time), all rendered from the tables in
 * commands.c and env.c. */
#include "client/cli/cli.h"
#include "fleetbox.h"

#include <stdio.h>
#include <string.h>

/* "-n, --count N" as shown in help. */
static void opt_label(const struct cli_opt *o, char *out, size_t len)
{
	char s[8] = "", l[64] = "";
	if (o->shortname)
		snprintf(s, sizeof(s), "-%c", o->shortname);
	if (o->longname)
		snprintf(l, sizeof(l), "--%s", o->longname);
	snprintf(out, len, "%s%s%s%s%s", s, *s && *l ? ", " : "", l,
		 o->arg == CLI_VALUE ? " " : "", o->arg == CLI_VALUE ? o->metavar : "");
}

static void exit_label(const struct cli_exit *x, char *out, size_t len)
{
	if (x->code == -2)
		snprintf(out, len, "N");
	else
		snprintf(out, len, "%d", x->code);
}

static void print_command(FILE *f, const struct cli_command *c)
{
	fprintf(f, "usage: fleetbox %s\n\n%s\n", c->synopsis, c->text);
	fprintf(f, "\noptions:\n");
	if (c->opts) {
		for (const struct cli_opt *o = c->opts; o->id; o++) {
			char label[96];
			opt_label(o, label, sizeof(label));
			fprintf(f, "  %-22s %s\n", label, o->text);
		}
	}
	fprintf(f, "  %-22s %s\n", "-h, --help", "this help");
	fprintf(f, "\nexamples:\n");
	for (const struct cli_example *x = c->examples; x && x->cmd; x++)
		fprintf(f, "  %s\n      %s\n", x->cmd, x->what);
	fprintf(f, "\nexit codes:\n");
	for (const struct cli_exit *x = c->exits; x && x->what; x++) {
		char code[8];
		exit_label(x, code, sizeof(code));
		fprintf(f, "  %-4s %s\n", code, x->what);
	}
}

void cli_usage_main(void *stream)
{
	FILE *f = stream;
	fprintf(f, "usage: fleetbox [--debug] <command> [args]\n\n"
		   "Real Linux VMs as fixtures for tests and for manual work.\n\ncommands:\n");
	for (const struct cli_command *c = cli_commands; c->name; c++)
		fprintf(f, "  %-11s %s\n", c->name, c->summary);
	fprintf(f, "\nA NAME pattern matches an exact member, else every member of that cluster\n"
		   "(web matches web-1 and web-2, never web-prod).\n\n"
		   "global options:\n"
		   "  --debug      debug lines from fleetbox itself on stderr (FLEETBOX_LOG=debug)\n"
		   "  --version    version and protocol\n"
		   "  -h, --help   this help; `fleetbox help COMMAND` for one command\n\n"
		   "Errors print \"error: <message>\" on stderr and exit 1 (ssh: 255).\n"
		   "Environment variables: `fleetbox help environment`.\n");
}

static void print_env(FILE *f)
{
	fprintf(f, "Environment variables (checked before anything runs; a bad value is an "
		   "error):\n\n");
	for (const struct cli_env *v = cli_env_vars; v->name; v++) {
		if (v->testing)
			continue;
		fprintf(f, "  %s=%s\n      %s\n", v->name, v->values, v->text);
	}
	fprintf(f, "\nFor tests of fleetbox itself:\n");
	for (const struct cli_env *v = cli_env_vars; v->name; v++)
		if (v->testing)
			fprintf(f, "  %s=%s\n      %s\n", v->name, v->values, v->text);
}

int cli_help(const char *cmd)
{
	if (!cmd) {
		cli_usage_main(stdout);
		return 0;
	}
	if (!strcmp(cmd, "environment") || !strcmp(cmd, "env")) {
		print_env(stdout);
		return 0;
	}
	const struct cli_command *c = cli_command_find(cmd);
	if (!c) {
		const char *near = cli_command_nearest(cmd);
		if (near)
			return cli_error("no help for \"%s\" (did you mean %s?)", cmd, near);
		return cli_error("no help for \"%s\" (see fleetbox --help)", cmd);
	}
	print_command(stdout, c);
	return 0;
}

/* ---- the man page ---- */

/* Writes s as roff text: backslashes escaped, '-' as \-, and a line that
 * would start with '.' or '\'' protected. */
static void roff(FILE *f, const char *s)
{
	bool bol = true;
	for (; *s; s++) {
		if (bol && (*s == '.' || *s == '\''))
			fputs("\\&", f);
		if (*s == '\\')
			fputs("\\e", f);
		else if (*s == '-')
			fputs("\\-", f);
		else
			fputc(*s, f);
		bol = *s == '\n';
	}
}

/* Paragraphs of a help text: a blank line starts a new one. */
static void roff_text(FILE *f, const char *text)
{
	fputs(".PP\n", f);
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (len == 0) {
			fputs(".PP\n", f);
		} else {
			char line[512];
			snprintf(line, sizeof(line), "%.*s\n", (int)len, p);
			roff(f, line);
		}
		p += len + (nl ? 1 : 0);
	}
}

static void roff_tag(FILE *f, const char *tag, const char *text)
{
	fputs(".TP\n.B ", f);
	roff(f, tag);
	fputc('\n', f);
	roff(f, text);
	fputc('\n', f);
}

static void man_command(FILE *f, const struct cli_command *c)
{
	fputs(".SS \"fleetbox ", f);
	roff(f, c->synopsis);
	fputs("\"\n", f);
	roff_text(f, c->text);
	for (const struct cli_opt *o = c->opts; o && o->id; o++) {
		char label[96];
		opt_label(o, label, sizeof(label));
		roff_tag(f, label, o->text);
	}
	fputs(".PP\nExamples:\n", f);
	for (const struct cli_example *x = c->examples; x && x->cmd; x++) {
		fputs(".TP\n.B ", f);
		roff(f, x->cmd);
		fputc('\n', f);
		roff(f, x->what);
		fputc('\n', f);
	}
	fputs(".PP\nExit status:\n", f);
	for (const struct cli_exit *x = c->exits; x && x->what; x++) {
		char code[8];
		exit_label(x, code, sizeof(code));
		roff_tag(f, code, x->what);
	}
}

int cli_man(void)
{
	FILE *f = stdout;
	fprintf(f, ".TH FLEETBOX 1 \"\" \"fleetbox %s\" \"User Commands\"\n", fb_version());
	fputs(".SH NAME\nfleetbox \\- real Linux VMs as fixtures for tests and manual work\n", f);
	fputs(".SH SYNOPSIS\n.B fleetbox\n[\\-\\-debug] \\fIcommand\\fR [\\fIargs\\fR]\n", f);
	fputs(".SH DESCRIPTION\n", f);
	roff_text(f, "fleetbox boots real Linux VMs on private networks with static addresses,\n"
		     "each reachable over SSH with a pinned host key. A NAME pattern matches an\n"
		     "exact member, else every member of that cluster (web matches web-1 and\n"
		     "web-2, never web-prod). The cluster of a member is its name with one\n"
		     "trailing -<digits> removed.\n"
		     "\n"
		     "Errors print \"error: <message>\" on stderr and exit 1 (ssh: 255).\n"
		     "--debug prints fleetbox's own debug lines on stderr.");
	fputs(".SH COMMANDS\n", f);
	for (const struct cli_command *c = cli_commands; c->name; c++)
		man_command(f, c);
	fputs(".SH ENVIRONMENT\n", f);
	for (const struct cli_env *v = cli_env_vars; v->name; v++) {
		char tag[256];
		snprintf(tag, sizeof(tag), "%s=%s", v->name, v->values);
		char text[1024];
		snprintf(text, sizeof(text), "%s%s", v->text, v->testing ? " (for tests of fleetbox)" : "");
		roff_tag(f, tag, text);
	}
	fputs(".SH FILES\n", f);
	roff_tag(f, "~/.fleetbox", "the store: clusters/<cluster>/<member>/ (config.json, disk, "
				   "seed.iso, serial.log), run/ (sockets), networks/ (crash records), "
				   "runner-*.log (holder logs), id_ed25519, ssh_config, known_hosts");
	roff_tag(f, "~/.cache/fleetbox", "the image cache, shared by all stores of a user");
	fputs(".SH SEE ALSO\n.BR ssh (1),\n.BR sudo (8)\n", f);
	return 0;
}
