/* net_ruleset_test.c - the table read back from the kernel is exactly the one we
 * meant, and verification notices when it is not. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "net/ruleset.h"
#include "nstest.h"
#include "util/err.h"
#include "util/fileio.h"

/* nft separates chains with a blank line; our text does not. */
static void drop_blank_lines(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++)
		if (!(*r == '\n' && (r == s || r[-1] == '\n')))
			*w++ = *r;
	*w = '\0';
}

int main(void)
{
	nstest_enter();
	char *root = nstest_tmp_root();
	struct err e = {0};
	struct net_config cfg = {.store_root = root, .cluster = "rs", .range = "10.20.0.0/16"};
	struct net *n = NULL;
	CHECK_OK(net_create(&cfg, &n, &e), e);
	const char *t = net_bridge(n);
	CHECK(strcmp(net_subnet(n), "10.20.0.0/24") == 0);

	/* Text listing equals the text we installed. */
	char *listing = NULL, *want = ruleset_text(t, t, net_subnet(n));
	CHECK(want);
	CHECK_OK(ruleset_list(t, false, &listing, &e), e);
	printf("%s", listing);
	drop_blank_lines(listing);
	CHECK(strcmp(listing, want) == 0);
	/* And says what the design says, literally. */
	char line[256];
	snprintf(line, sizeof(line), "ip saddr 10.20.0.0/24 oifname != \"%s\" masquerade\n", t);
	CHECK(strstr(listing, line));
	snprintf(line, sizeof(line),
		 "ip daddr 10.20.0.0/24 iifname != \"%s\" ct state established,related accept\n"
		 "\t\tip daddr 10.20.0.0/24 iifname != \"%s\" drop\n", t, t);
	CHECK(strstr(listing, line));
	snprintf(line, sizeof(line), "ip saddr 10.20.0.0/24 iifname \"%s\" accept\n", t);
	CHECK(strstr(listing, line));
	CHECK(strstr(listing, "type nat hook postrouting priority srcnat; policy accept;"));
	CHECK(strstr(listing, "type filter hook forward priority filter; policy accept;"));
	free(listing);

	/* JSON listing passes verification. */
	char *js = NULL;
	CHECK_OK(ruleset_list(t, true, &js, &e), e);
	CHECK(strstr(js, "\"masquerade\""));
	free(js);
	CHECK_OK(ruleset_verify(t, t, net_subnet(n), &e), e);
	/* Verifying against another subnet fails and names the difference. */
	CHECK(ruleset_verify(t, t, "10.20.9.0/24", &e) == -EPROTO);
	printf("mismatch: %s\n", e.msg);
	CHECK(strstr(e.msg, "differs") && strstr(e.msg, "10.20.9.0/24"));

	/* An extra rule is caught. */
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "add rule ip %s forward iifname \"eth9\" accept", t);
	CHECK_OK(ruleset_run(cmd, NULL, &e), e);
	err_clear(&e);
	CHECK(ruleset_verify(t, t, net_subnet(n), &e) == -EPROTO);
	printf("extra rule: %s\n", e.msg);
	CHECK(strstr(e.msg, "eth9"));
	/* So is a missing one. */
	snprintf(cmd, sizeof(cmd), "flush chain ip %s postrouting", t);
	CHECK_OK(ruleset_run(cmd, NULL, &e), e);
	CHECK(ruleset_verify(t, t, net_subnet(n), &e) == -EPROTO);
	printf("missing rule: %s\n", e.msg);
	/* Install replaces a damaged table atomically and verifies. */
	CHECK_OK(ruleset_install(t, t, net_subnet(n), &e), e);
	CHECK_OK(ruleset_verify(t, t, net_subnet(n), &e), e);
	CHECK(nstest_table_count() == 1);

	/* A table that is gone is reported as such. */
	CHECK_OK(ruleset_delete(t, &e), e);
	CHECK(ruleset_verify(t, t, net_subnet(n), &e) == -ENOENT);
	CHECK_OK(ruleset_delete(t, &e), e);  /* absent: fine */
	CHECK(ruleset_text("bad name", t, "10.0.0.0/24") == NULL);
	CHECK(ruleset_text(t, t, "10.0.0.0/24; flush ruleset") == NULL);

	CHECK_OK(net_destroy(n, &e), e);
	CHECK(nstest_table_count() == 0);
	free(want);
	rm_rf(root);
	free(root);
	printf("net_ruleset_test: ok\n");
	return 0;
}
