/* ruleset.h - the per-bridge nftables table, through libnftables only.
 *
 * table ip <table>:
 *   postrouting (nat, srcnat): traffic from the subnet leaving through any other
 *     interface than the bridge is masqueraded;
 *   forward (filter): into the subnet from any other interface only
 *     established/related passes, everything else (new connections from another
 *     cluster or the outside) is dropped; egress from the subnet is accepted.
 * The host itself reaches every VM (input/output path, not forward). Policies
 * stay `accept` so the table never affects traffic that is not ours. */
#pragma once
#include <stdbool.h>

struct err;

/* The ruleset text exactly as `nft list table` prints it (minus blank lines). */
char *ruleset_text(const char *table, const char *bridge, const char *cidr);
/* Installs (atomically replacing any table of that name), then verifies. */
int ruleset_install(const char *table, const char *bridge, const char *cidr, struct err *e);
/* Reads the table back as JSON and compares it with what install writes. */
int ruleset_verify(const char *table, const char *bridge, const char *cidr, struct err *e);
/* Text listing of the table (`nft list table ip <table>`). Caller frees. */
int ruleset_list(const char *table, bool json, char **out, struct err *e);
int ruleset_exists(const char *table, bool *exists, struct err *e);
/* Deletes the table; absent is success. Verified. */
int ruleset_delete(const char *table, struct err *e);
/* Runs an arbitrary command buffer (preflight probe and tests). */
int ruleset_run(const char *cmd, char **out, struct err *e);
