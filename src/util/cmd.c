#include "util/cmd.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

void cmd_init(struct cmd *c, const char *prog)
{
	memset(c, 0, sizeof(*c));
	cmd_add(c, prog);
}

static void cmd_push(struct cmd *c, char *s)
{
	if (c->error) {
		free(s);
		return;
	}
	if (!s) {
		c->error = -ENOMEM;
		return;
	}
	if (c->n + 2 > c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		char **nv = realloc(c->argv, cap * sizeof(*nv));
		if (!nv) {
			free(s);
			c->error = -ENOMEM;
			return;
		}
		c->argv = nv;
		c->cap = cap;
	}
	c->argv[c->n++] = s;
	c->argv[c->n] = NULL;
}

void cmd_add(struct cmd *c, const char *arg)
{
	cmd_push(c, arg ? strdup(arg) : NULL);
}

void cmd_addf(struct cmd *c, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	cmd_push(c, s);
}

void cmd_fini(struct cmd *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->argv[i]);
	free(c->argv);
	memset(c, 0, sizeof(*c));
}

char **cmd_argv(struct cmd *c)
{
	return c->error || !c->argv ? NULL : c->argv;
}

char *cmd_to_string(const struct cmd *c)
{
	size_t len = 1;
	for (size_t i = 0; i < c->n; i++)
		len += strlen(c->argv[i]) * 4 + 3;
	char *out = malloc(len), *p = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < c->n; i++) {
		const char *a = c->argv[i];
		int plain = *a != '\0' && strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,@+%") == strlen(a);
		if (i)
			*p++ = ' ';
		if (plain) {
			p = stpcpy(p, a);
			continue;
		}
		*p++ = '\'';
		for (; *a; a++) {
			if (*a == '\'')
				p = stpcpy(p, "'\\''");
			else
				*p++ = *a;
		}
		*p++ = '\'';
	}
	*p = '\0';
	return out;
}

int cmd_run(struct cmd *c, char **output, struct err *e)
{
	if (output)
		*output = NULL;
	char **argv = cmd_argv(c);
	if (!argv)
		return err_set(e, c->error ? c->error : -EINVAL, "out of memory building command");
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return err_set(e, -errno, "pipe: %s", strerror(errno));
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	pid_t pid;
	int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (r != 0) {
		close(pipefd[0]);
		return err_set(e, -r, "cannot run %s: %s", argv[0], strerror(r));
	}
	enum { KEEP = 64 * 1024 };
	char *buf = malloc(KEEP + 1);
	size_t len = 0;
	char chunk[8192];
	for (;;) {
		ssize_t n = read(pipefd[0], chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (!buf)
			continue;
		/* Keep the tail: the last lines carry the error. */
		if (len + (size_t)n > KEEP) {
			size_t drop = len + (size_t)n - KEEP;
			if (drop > len)
				drop = len;
			memmove(buf, buf + drop, len - drop);
			len -= drop;
		}
		size_t take = (size_t)n > KEEP ? KEEP : (size_t)n;
		memcpy(buf + len, chunk + ((size_t)n - take), take);
		len += take;
	}
	close(pipefd[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			free(buf);
			return err_set(e, -errno, "waitpid: %s", strerror(errno));
		}
	}
	if (buf)
		buf[len] = '\0';
	int rc = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char last[256] = "";
		if (buf) {
			char *end = buf + len;
			while (end > buf && (end[-1] == '\n' || end[-1] == '\r'))
				*--end = '\0';
			char *nl = strrchr(buf, '\n');
			snprintf(last, sizeof(last), "%s", nl ? nl + 1 : buf);
		}
		if (WIFEXITED(status))
			rc = err_set(e, -EIO, "%s failed (exit %d)%s%s", argv[0], WEXITSTATUS(status),
				     last[0] ? ": " : "", last);
		else
			rc = err_set(e, -EIO, "%s killed by signal %d", argv[0], WTERMSIG(status));
	}
	if (output)
		*output = buf;
	else
		free(buf);
	return rc;
}
