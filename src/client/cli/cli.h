/* cli/cli.h - the fleetbox command line. Only the files in cli/ print.
 *
 * One table (cli/help.c) describes every command: its options, help text,
 * examples and exit codes. The option parser (cli/args.c), `--help`,
 * `help CMD`, the man page (`--fleetbox-man`, generated at build time) and the
 * shell completions (cli/completion.c) all read it, so they cannot drift. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

int cli_main(int argc, char **argv);

/* ---- messages (args.c): one format everywhere ---- */

/* Prints "error: <msg>" to stderr and returns 1 (the usual exit code). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "warning: <msg>" to stderr. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "note: <msg>" to stderr. */
void cli_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* How long ago since was: "42s", "5m", "3h", "12d" (members.c). */
void cli_age(time_t since, char *out, size_t len);
/* Damerau-Levenshtein distance, for "did you mean ...?" (capped at 9). */
int cli_distance(const char *a, const char *b);
/* The word of words[] (NULL-terminated) nearest to s when it is a plausible
 * typo of it (distance <= 2 and less than half its length), else NULL. */
const char *cli_nearest(const char *s, const char *const *words);

/* ---- options (args.c) ---- */

enum cli_arg { CLI_FLAG, CLI_VALUE };

/* An option of a command. id is what cli_next() returns (> 0). The text and
 * metavar feed --help, the man page and completions. complete: "members",
 * "files", a '|'-separated word list ("table|json"), or NULL. */
struct cli_opt {
	int id;
	char shortname;         /* 0: none */
	const char *longname;   /* without "--"; NULL: none */
	enum cli_arg arg;
	const char *metavar;    /* "N", "GB", ... for CLI_VALUE */
	const char *text;
	const char *complete;
};

#define CLI_END (-1)  /* cli_next: no more arguments */
#define CLI_WORD 0    /* cli_next: a positional word in p->value */
#define CLI_BAD (-2)  /* cli_next: an error was printed; exit 1 */

/* Parser state over argv[1..] of a subcommand (argv[0] is its name). Options
 * may come before or after positional words; "--" ends options, and the words
 * after it are positional (see cli_rest). -n3, -n 3, --cpus=2, --cpus 2 and
 * bundled flags (-qf) are accepted. */
struct cli_parse {
	const char *cmd;
	const struct cli_opt *opts; /* terminated by an entry with id 0 */
	int argc;
	char **argv;
	int i;               /* next argv index */
	const char *bundle;  /* rest of a "-abc" group */
	const char *bundle_tok;
	bool dashdash;       /* "--" seen: everything else is positional */
	const char *value;   /* option value, or the positional word */
	const char *token;   /* the option as written ("-n", "--cpus") */
};
void cli_parse_init(struct cli_parse *p, const char *cmd, const struct cli_opt *opts, int argc,
		    char **argv);
int cli_next(struct cli_parse *p);
/* After the last cli_next that returned CLI_WORD with stop semantics: the words
 * not yet looked at (argv + p->i), how many. */
char **cli_rest(struct cli_parse *p, int *n);
/* Integer option value in min..max; prints the error (naming opt) and returns
 * CLI_BAD when it is not. */
int cli_int(const struct cli_parse *p, int min, int max, int *out);
/* A decimal int in min..max from s, the value of option opt; prints the error
 * and returns 1 when it is not one. */
int cli_parse_int(const char *opt, const char *s, int min, int max, int *out);
/* "cmd: unexpected argument \"x\"" etc., with a pointer to `fleetbox help cmd`. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- commands ---- */

struct cli_example {
	const char *cmd;
	const char *what;
};

struct cli_exit {
	int code;
	const char *what;
};

struct cli_command {
	const char *name;
	const char *synopsis;    /* after "fleetbox " */
	const char *summary;     /* one line, for the command list */
	const char *text;        /* paragraphs, wrapped at 80 columns */
	const struct cli_opt *opts;
	const char *words;       /* what positional words complete to: "members", "files", ... */
	const struct cli_example *examples;
	const struct cli_exit *exits;
	int (*run)(const char *root, int argc, char **argv);
	unsigned flags;
};
#define CLI_NET_ROOT 1u   /* needs root when networking is on (up, prune) */
#define CLI_NO_STORE 2u   /* runs without a store root (completion) */

extern const struct cli_command cli_commands[];
const struct cli_command *cli_command_find(const char *name);
/* The command (or "version") a mistyped name most likely meant, or NULL. */
const char *cli_command_nearest(const char *name);

/* up's options, for cli_up: cli_parse_init(&p, "up", cli_up_opts, argc, argv),
 * then cli_next() returns 'n' (-n/--count), 'c' (--cpus), 'm' (--mem), 'd'
 * (--disk), 'i' (--image), 'f' (--fixture), CLI_WORD for a NAME; use cli_int()
 * for the numbers. Errors are printed by the parser, naming the token. */
extern const struct cli_opt cli_up_opts[];

/* help.c */
int cli_help(const char *cmd);         /* `fleetbox help [CMD]` */
void cli_usage_main(void *stream);     /* the command list (FILE *) */
int cli_man(void);                     /* --fleetbox-man: the man page in roff */
/* completion.c */
int cmd_completion(const char *root, int argc, char **argv);

/* ---- environment (env.c) ---- */

struct cli_env {
	const char *name;
	const char *values;  /* "fake|qemu|..." or a metavar such as "PATH" */
	const char *text;
	/* NULL: anything; else returns 0 or fills why (what is wrong) */
	int (*check)(const char *value, char *why, size_t len);
	bool via_sudo;       /* passed through the sudo re-exec */
	bool testing;        /* for tests, not for users */
};
extern const struct cli_env cli_env_vars[];
/* Checks every FLEETBOX_* variable that is set; prints the error and returns 1
 * for a bad value (0 when all are fine). Unknown names near a known one get a
 * warning. */
int cli_env_validate(void);

/* ---- root and sudo (sudo.c) ---- */

/* Whether `cmd` needs root here: the command is CLI_NET_ROOT and networking
 * is on (FLEETBOX_NET=bridge, or unset with a VMM that needs a network). */
bool cli_needs_root(const struct cli_command *c);
/* Not root and root needed: re-runs this very command through sudo and
 * returns its exit code (sets *handled); prints an error and returns 1 when
 * sudo is disabled, missing or refused. */
int cli_sudo_reexec(const struct cli_command *c, const char *root, int argc, char **argv,
		    bool *handled);
/* The inner side: argv[1] == "--fleetbox-sudo". Applies the forwarded
 * variables, tells the outer process it started, and shifts argv to the
 * original command. 0, or 1 after printing an error. */
int cli_sudo_inner(int *argc, char ***argv);
/* Under sudo: refuses a store root or cache not owned by the invoking user. */
int cli_sudo_check_paths(const char *root);

/* ---- commands in other files ---- */

/* members.c */
int cmd_down(const char *root, int argc, char **argv);
int cmd_rm(const char *root, int argc, char **argv);
int cmd_ls(const char *root, int argc, char **argv);
int cmd_status(const char *root, int argc, char **argv);
/* Expands NAME patterns over the store (exact member, else its cluster), or
 * every member with all. A pattern matching nothing is an error when
 * missing_is_error, else a note on stderr. Duplicates dropped, sorted.
 * 0, or 1 after printing an error. */
int cli_expand(const char *root, const char *cmd, char **pats, size_t n, bool all,
	       bool missing_is_error, char ***names, size_t *count);
/* logs.c */
int cmd_logs(const char *root, int argc, char **argv);
/* ssh.c */
int cli_ssh(const char *root, int argc, char **argv);
int cli_cp(const char *root, int argc, char **argv);
int cli_ssh_config(const char *root, int argc, char **argv);
/* Rewrites <root>/ssh_config when it exists (after up: addresses change). */
void cli_ssh_config_refresh(const char *root);
/* up.c */
int cli_up(const char *root, int argc, char **argv);
/* cli.c */
int cmd_prune(const char *root, int argc, char **argv);
int cmd_image(const char *root, int argc, char **argv);
/* image.c: `image ls|rm|prepare|build` and `prune --images`, with these
 * options (commands.c): image 'o' (-o/--output), 'N' (--name); prune 'I'
 * (--images), 'O' (--older-than). */
extern const struct cli_opt cli_image_opts[];
extern const struct cli_opt cli_prune_opts[];
int cli_image(const char *root, int argc, char **argv);
bool cli_prune_wants_images(int argc, char **argv);
int cli_prune_images(int argc, char **argv);
