/* ssh/config.c - see config.h. Pure rendering plus one atomic write. */
#include "client/ssh/config.h"
#include "util/err.h"
#include "util/fileio.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ssh_config values with spaces need double quotes. */
static const char *q(const char *s, char *buf, size_t len)
{
	if (!strpbrk(s, " \t"))
		return s;
	snprintf(buf, len, "\"%s\"", s);
	return buf;
}

char *sshconfig_render(const char *root, const struct sshconfig_member *m, size_t n)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	if (!f)
		return NULL;
	char idf[PATH_MAX + 16], khf[PATH_MAX + 16], b1[PATH_MAX + 24], b2[PATH_MAX + 24];
	snprintf(idf, sizeof(idf), "%s/id_ed25519", root);
	snprintf(khf, sizeof(khf), "%s/known_hosts", root);
	for (size_t i = 0; i < n; i++) {
		if (!m[i].ip || !*m[i].ip) {
			fprintf(f, "# %s: not running\n\n", m[i].name);
			continue;
		}
		fprintf(f, "Host %s\n", m[i].name);
		fprintf(f, "  HostName %s\n", m[i].ip);
		if (m[i].port > 0 && m[i].port != 22)
			fprintf(f, "  Port %d\n", m[i].port);
		fprintf(f, "  User fleetbox\n");
		fprintf(f, "  IdentityFile %s\n", q(idf, b1, sizeof(b1)));
		fprintf(f, "  IdentitiesOnly yes\n");
		fprintf(f, "  UserKnownHostsFile %s\n", q(khf, b2, sizeof(b2)));
		fprintf(f, "  StrictHostKeyChecking yes\n");
		fprintf(f, "  HostKeyAlias fleetbox-%s\n", m[i].name);
		fprintf(f, "\n");
	}
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

char *sshconfig_known_hosts(const struct sshconfig_member *m, size_t n)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	if (!f)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const char *k = m[i].hostkey_pub;
		if (!k || strncmp(k, "ssh-ed25519 ", 12) != 0)
			continue;
		/* type and key only: the comment is not part of a known_hosts entry */
		const char *b = k + 12;
		size_t bl = strcspn(b, " \t\r\n");
		fprintf(f, "fleetbox-%s ssh-ed25519 %.*s\n", m[i].name, (int)bl, b);
	}
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

int sshconfig_write_known_hosts(const char *root, const struct sshconfig_member *m, size_t n,
				struct err *e)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/known_hosts", root) >= (int)sizeof(path))
		return err_set(e, -ENAMETOOLONG, "store root path too long");
	char *txt = sshconfig_known_hosts(m, n);
	if (!txt)
		return err_set(e, -ENOMEM, "out of memory");
	int r = file_write_atomic(path, txt, strlen(txt), 0644);
	free(txt);
	if (r < 0)
		return err_set(e, r, "write %s: %s", path, strerror(-r));
	return 0;
}

int sshconfig_write_file(const char *root, const struct sshconfig_member *m, size_t n,
			 struct err *e)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/ssh_config", root) >= (int)sizeof(path))
		return err_set(e, -ENAMETOOLONG, "store root path too long");
	char *body = sshconfig_render(root, m, n), *txt = NULL;
	if (!body || asprintf(&txt, "# Written by fleetbox (ssh-config, up): do not edit, it is "
				    "rewritten.\n# Use it with a first line in ~/.ssh/config:\n"
				    "#   Include %s\n\n%s", path, body) < 0) {
		free(body);
		return err_set(e, -ENOMEM, "out of memory");
	}
	free(body);
	int r = file_write_atomic(path, txt, strlen(txt), 0644);
	free(txt);
	if (r < 0)
		return err_set(e, r, "write %s: %s", path, strerror(-r));
	return 0;
}
