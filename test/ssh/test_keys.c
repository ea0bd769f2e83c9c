/* test_keys.c - the generated keys are valid OpenSSH ed25519 keys: structure,
 * file modes, idempotency, .pub re-derivation, and acceptance by dropbearconvert
 * (and ssh-keygen when installed). libssh2 acceptance is checked by test_exec
 * (authentication against dropbear). */
#include "client/ssh/keys.h"
#include "util/cmd.h"
#include "util/err.h"
#include "util/fileio.h"
#include "t.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *slurp(const char *path)
{
	char *s = NULL;
	size_t n;
	CHECK(file_read_all(path, 1 << 20, &s, &n) == 0);
	return s;
}

static void check_pem_shape(const char *pem)
{
	CHECK(strncmp(pem, "-----BEGIN OPENSSH PRIVATE KEY-----\n", 36) == 0);
	const char *endm = "-----END OPENSSH PRIVATE KEY-----\n";
	CHECK(strlen(pem) > strlen(endm));
	CHECK(strcmp(pem + strlen(pem) - strlen(endm), endm) == 0);
	/* every body line at most 70 columns, all but the last exactly 70 */
	const char *p = pem + 36;
	int lines = 0, short_lines = 0;
	while (strncmp(p, "-----END", 8) != 0) {
		size_t l = strcspn(p, "\n");
		CHECK(l > 0 && l <= 70);
		if (l < 70)
			short_lines++;
		lines++;
		p += l + 1;
	}
	CHECK(lines >= 3);
	CHECK(short_lines <= 1);
}

static void check_pub_shape(const char *line, const char *comment)
{
	CHECK(strncmp(line, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI", 37) == 0);
	const char *sp = strchr(line + 12, ' ');
	CHECK(sp != NULL);
	CHECK(sp - (line + 12) == 68); /* 51-byte blob -> 68 base64 chars */
	CHECK(strncmp(sp + 1, comment, strlen(comment)) == 0);
}

int main(void)
{
	struct err e = { 0 };
	char *pem = NULL, *line = NULL, *pem2 = NULL, *line2 = NULL;

	CHECK_OK(keys_generate("test@fleetbox", &pem, &line, &e), &e);
	check_pem_shape(pem);
	check_pub_shape(line, "test@fleetbox");
	CHECK(strchr(line, '\n') == NULL);
	CHECK_OK(keys_generate("test@fleetbox", &pem2, &line2, &e), &e);
	CHECK(strcmp(line, line2) != 0);
	CHECK(strcmp(pem, pem2) != 0);
	free(pem2);
	free(line2);
	CHECK(keys_generate("a\nb", &pem2, &line2, &e) == -EINVAL);
	free(pem);
	free(line);

	char dir[] = "/tmp/fbkeysXXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char root[PATH_MAX], priv[PATH_MAX], pub[PATH_MAX], conv[PATH_MAX];
	FMT(root, "%s/store", dir);
	FMT(priv, "%s/id_ed25519", root);
	FMT(pub, "%s/id_ed25519.pub", root);
	CHECK_OK(keys_ensure_installation(root, &e), &e);
	struct stat st;
	CHECK(stat(root, &st) == 0 && (st.st_mode & 0777) == 0700);
	CHECK(stat(priv, &st) == 0 && (st.st_mode & 0777) == 0600);
	CHECK(stat(pub, &st) == 0 && (st.st_mode & 0777) == 0644);
	char *p1 = slurp(priv), *u1 = slurp(pub);
	check_pem_shape(p1);
	check_pub_shape(u1, "fleetbox\n");

	/* idempotent: the pair is kept */
	CHECK_OK(keys_ensure_installation(root, &e), &e);
	char *p2 = slurp(priv), *u2 = slurp(pub);
	CHECK_STREQ(p1, p2);
	CHECK_STREQ(u1, u2);
	free(p2);
	free(u2);

	/* a lost .pub is re-derived from the private key, byte for byte */
	CHECK(unlink(pub) == 0);
	CHECK_OK(keys_ensure_installation(root, &e), &e);
	u2 = slurp(pub);
	CHECK_STREQ(u1, u2);
	free(u2);

	/* host keys with a comment */
	CHECK_OK(keys_ensure_host(dir, "web-1", &e), &e);
	FMT(conv, "%s/ssh_host_ed25519_key.pub", dir);
	u2 = slurp(conv);
	check_pub_shape(u2, "web-1\n");
	free(u2);

	/* dropbearconvert must accept the OpenSSH private key; the converted key's
	 * public half must equal ours. */
	FMT(conv, "%s/id.dropbear", dir);
	struct cmd c;
	cmd_init(&c, "dropbearconvert");
	cmd_add(&c, "openssh");
	cmd_add(&c, "dropbear");
	cmd_add(&c, priv);
	cmd_add(&c, conv);
	CHECK_OK(cmd_run(&c, NULL, &e), &e);
	cmd_fini(&c);
	char *out = NULL;
	cmd_init(&c, "dropbearkey");
	cmd_add(&c, "-y");
	cmd_add(&c, "-f");
	cmd_add(&c, conv);
	CHECK_OK(cmd_run(&c, &out, &e), &e);
	cmd_fini(&c);
	char blob[128];
	FMT(blob, "%.80s", u1);
	blob[strcspn(blob + 12, " ") + 12] = '\0'; /* "ssh-ed25519 <b64>" */
	CHECK(strstr(out, blob) != NULL);
	free(out);

	/* ssh-keygen (OpenSSH itself) when available */
	if (access("/usr/bin/ssh-keygen", X_OK) == 0) {
		cmd_init(&c, "ssh-keygen");
		cmd_add(&c, "-y");
		cmd_add(&c, "-f");
		cmd_add(&c, priv);
		out = NULL;
		CHECK_OK(cmd_run(&c, &out, &e), &e);
		cmd_fini(&c);
		CHECK(strstr(out, blob) != NULL);
		free(out);
	}

	free(p1);
	free(u1);
	CHECK(rm_rf(dir) == 0);
	printf("ok\n");
	return 0;
}
