/* test_quote.c - pure helpers of ssh.c: shell quoting, the CLI's command-word
 * rule, pinned key decoding and fingerprints. */
#include "client/ssh/keys.h"
#include "client/ssh/ssh.h"
#include "util/err.h"
#include "t.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void q(const char *in, const char *want)
{
	char *s = ssh_quote(in);
	CHECK_STREQ(s, want);
	free(s);
}

static void j(int n, char **w, const char *want)
{
	char *s = ssh_command_join(n, w);
	CHECK_STREQ(s, want);
	free(s);
}

int main(void)
{
	q("", "''");
	q("abc", "'abc'");
	q("a b", "'a b'");
	q("it's", "'it'\\''s'");
	q("'", "''\\'''");
	q("$HOME `x` \"y\" \\ *", "'$HOME `x` \"y\" \\ *'");
	q("new\nline", "'new\nline'");

	char *w1[] = { "ls | wc -l" };
	j(1, w1, "ls | wc -l"); /* one word: verbatim command line */
	char *w2[] = { "sh", "-c", "exit 7" };
	j(3, w2, "'sh' '-c' 'exit 7'");
	char *w3[] = { "echo", "it's", "" };
	j(3, w3, "'echo' 'it'\\''s' ''");
	CHECK(ssh_command_join(0, NULL) == NULL);

	/* pinned keys */
	struct err e = { 0 };
	char *pem = NULL, *line = NULL;
	CHECK_OK(keys_generate("c", &pem, &line, &e), &e);
	unsigned char *blob;
	size_t len;
	CHECK(ssh_pubkey_decode(line, &blob, &len) == 0);
	CHECK(len == 51 && blob[3] == 11 && !memcmp(blob + 4, "ssh-ed25519", 11));
	char fp[64];
	ssh_fingerprint(blob, len, fp, sizeof(fp));
	CHECK(strncmp(fp, "SHA256:", 7) == 0 && strlen(fp) == 7 + 43);
	free(blob);
	/* no comment, extra spaces and a trailing newline are fine */
	char buf[256];
	size_t bl = strcspn(line + 12, " ");
	FMT(buf, "  ssh-ed25519   %.*s\n", (int)bl, line + 12);
	CHECK(ssh_pubkey_decode(buf, &blob, &len) == 0);
	free(blob);
	CHECK(ssh_pubkey_decode("", &blob, &len) == -EINVAL);
	CHECK(ssh_pubkey_decode("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== x", &blob, &len) == -EINVAL);
	CHECK(ssh_pubkey_decode("ssh-ed25519 !!!!", &blob, &len) == -EINVAL);
	CHECK(ssh_pubkey_decode("ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ==", &blob, &len) ==
	      -EINVAL); /* an rsa blob under an ed25519 label */
	free(pem);
	free(line);
	printf("ok\n");
	return 0;
}
