/* cmd.h - argv builder and synchronous runner for child programs (after
 * libvirt's virCommand). Arguments are collected with deferred errors: a failed
 * allocation is remembered and reported by cmd_run()/cmd_argv(), so call sites add
 * arguments without checking each one. No shell is ever involved. */
#pragma once
#include <stddef.h>

struct err;

struct cmd {
	char **argv;  /* NULL-terminated */
	size_t n, cap;
	int error;    /* first deferred error (-ENOMEM) */
};

void cmd_init(struct cmd *c, const char *prog);
void cmd_add(struct cmd *c, const char *arg);
__attribute__((format(printf, 2, 3)))
void cmd_addf(struct cmd *c, const char *fmt, ...);
void cmd_fini(struct cmd *c);
/* argv or NULL when a deferred error occurred. */
char **cmd_argv(struct cmd *c);
/* Shell-like rendering for debug logs only (never executed). Caller frees. */
char *cmd_to_string(const struct cmd *c);

/* Runs the command with stdin=/dev/null and stdout+stderr captured (at most 64 KiB
 * kept, the tail). Returns 0 when it exited 0; otherwise fills e with
 * "<prog> failed (exit N): <last output line>" and returns -EIO (or -errno if it
 * could not be started, e.g. -ENOENT). output may be NULL. */
int cmd_run(struct cmd *c, char **output, struct err *e);
