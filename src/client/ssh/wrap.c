/* wrap.c - the remote side of exec options: the script a wrapped command runs
 * as, and the command that kills it (see ssh.h, ssh_exec_script). */
#include "client/ssh/ssh.h"
#include "client/ssh/ssh_int.h"
#include "util/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void sb_add(struct obuf *b, const char *s)
{
	obuf_add(b, s, strlen(s));
}

static void sb_quoted(struct obuf *b, const char *word)
{
	char *q = ssh_quote(word);
	if (!q) {
		b->error = -ENOMEM;
		return;
	}
	sb_add(b, q);
	free(q);
}

static int sb_take(struct obuf *b, char **out, struct err *e)
{
	if (b->error) {
		free(b->p);
		return err_set(e, -ENOMEM, "out of memory");
	}
	*out = b->p;
	return 0;
}

bool ssh_env_name_valid(const char *kv)
{
	const char *eq = strchr(kv, '=');
	if (!eq || eq == kv)
		return false;
	for (const char *p = kv; p < eq; p++) {
		bool alpha = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_';
		if (!alpha && (p == kv || *p < '0' || *p > '9'))
			return false;
	}
	return true;
}

char *ssh_argv_join(const char *const *argv)
{
	struct obuf b = { 0 };
	for (size_t i = 0; argv && argv[i]; i++) {
		if (i)
			sb_add(&b, " ");
		sb_quoted(&b, argv[i]);
	}
	char *out = NULL;
	return b.len && sb_take(&b, &out, NULL) == 0 ? out : (free(b.p), NULL);
}

/* The part that runs as the target user: cd, exports, the command. */
static void body(struct obuf *b, const struct ssh_script *s)
{
	if (s->cwd) {
		sb_add(b, "cd -- ");
		sb_quoted(b, s->cwd);
		sb_add(b, " || exit 126\n");
	}
	for (size_t i = 0; s->env && s->env[i]; i++) {
		size_t nl = (size_t)(strchr(s->env[i], '=') - s->env[i]);
		char name[256];
		snprintf(name, sizeof(name), "%.*s", (int)(nl < 255 ? nl : 255), s->env[i]);
		sb_add(b, "export ");
		sb_add(b, name);
		sb_add(b, "=");
		sb_quoted(b, s->env[i] + nl + 1);
		sb_add(b, "\n");
	}
	sb_add(b, s->cmd);
}

int ssh_exec_script(const struct ssh_script *s, char **out, struct err *e)
{
	*out = NULL;
	if (!s->cmd || !*s->cmd)
		return err_set(e, -EINVAL, "empty command");
	if (s->cwd && !*s->cwd)
		return err_set(e, -EINVAL, "empty working directory");
	for (size_t i = 0; s->env && s->env[i]; i++)
		if (!ssh_env_name_valid(s->env[i]) || strchr(s->env[i], '=') - s->env[i] > 255)
			return err_set(e, -EINVAL, "bad environment entry \"%s\": want NAME=value",
				       s->env[i]);
	/* The process group of the shell (OpenSSH makes the shell its leader;
	 * dropbear's per-connection process leads it, shell included). Newlines,
	 * not ';': the line runs even if the command does not parse. */
	struct obuf b = { 0 };
	sb_add(&b, "read -r _ _ _ _ fbpg _ </proc/$$/stat && echo \"$fbpg\"\n");
	if (!s->root) {
		body(&b, s);
		return sb_take(&b, out, e);
	}
	struct obuf inner = { 0 };
	body(&inner, s);
	if (inner.error)
		b.error = inner.error;
	sb_add(&b, "exec sudo -n sh -c ");
	if (!inner.error)
		sb_quoted(&b, inner.p);
	free(inner.p);
	return sb_take(&b, out, e);
}

int ssh_kill_script(long pgid, char **out, struct err *e)
{
	char buf[256];
	if (pgid <= 1)
		return err_set(e, -EINVAL, "no process group to kill");
	/* As root when sudo lets us (the command may have become root, and
	 * dropbear's connection process in the group is root), else as the user.
	 * Always a shell's builtin kill: procps kill takes "-PGID" for an option
	 * (and succeeds doing nothing), busybox and dash refuse "--". */
	snprintf(buf, sizeof(buf), "sudo -n sh -c 'kill -KILL -%ld' 2>/dev/null || kill -KILL -%ld",
		 pgid, pgid);
	*out = strdup(buf);
	return *out ? 0 : err_set(e, -ENOMEM, "out of memory");
}
