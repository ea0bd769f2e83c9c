/* test_quote.c - pure helpers of ssh.c and wrap.c: shell quoting, the CLI's
 * command-word rule, the exec wrapper and kill scripts, env names, pinned key
 * decoding and fingerprints. */
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

static void wrapper(void)
{
	struct err e = { 0 };
	char *s = NULL;
	const char *argv[] = { "a b", "it's", NULL };
	char *joined = ssh_argv_join(argv);
	CHECK_STREQ(joined, "'a b' 'it'\\''s'");
	free(joined);
	const char *one[] = { "ls", NULL }, *none[] = { NULL };
	joined = ssh_argv_join(one);
	CHECK_STREQ(joined, "'ls'"); /* one word is a word too, unlike the CLI rule */
	free(joined);
	CHECK(ssh_argv_join(none) == NULL);
	const char *env[] = { "A=1 2", "B_c=", NULL };
	struct ssh_script sc = { .cmd = "echo \"$A\"", .cwd = "/t'mp", .env = env };
	CHECK_OK(ssh_exec_script(&sc, &s, &e), &e);
	CHECK_STREQ(s, "read -r _ _ _ _ fbpg _ </proc/$$/stat && echo \"$fbpg\"\n"
		       "cd -- '/t'\\''mp' || exit 126\nexport A='1 2'\nexport B_c=''\necho \"$A\"");
	free(s);
	sc.root = true;
	sc.cwd = NULL;
	sc.env = NULL;
	CHECK_OK(ssh_exec_script(&sc, &s, &e), &e);
	CHECK(strstr(s, "\nexec sudo -n sh -c 'echo \"$A\"'") != NULL);
	free(s);
	const char *bad[] = { "1A=x", NULL }, *bad2[] = { "A-B=x", NULL }, *bad3[] = { "=x", NULL };
	sc.env = bad;
	CHECK(ssh_exec_script(&sc, &s, &e) == -EINVAL && s == NULL);
	CHECK(!ssh_env_name_valid(bad2[0]) && !ssh_env_name_valid(bad3[0]) &&
	      !ssh_env_name_valid("NOEQ") && ssh_env_name_valid("_x9=") );
	CHECK_OK(ssh_kill_script(1234, &s, &e), &e);
	CHECK_STREQ(s, "sudo -n sh -c 'kill -KILL -1234' 2>/dev/null || kill -KILL -1234");
	free(s);
	CHECK(ssh_kill_script(1, &s, &e) == -EINVAL);
}

int main(void)
{
	wrapper();
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
