/* target.h - how the client reaches a VM over SSH. Filled from the store and the
 * holder's status by target_resolve() (orchestration), or by hand in tests that
 * point at a local dropbear. */
#pragma once
#include <limits.h>

struct err;

struct ssh_target {
	char name[64];              /* member name, for messages */
	char host[64];              /* IPv4 address */
	int port;                   /* 22 */
	char user[32];              /* "fleetbox" */
	char key_path[PATH_MAX];    /* installation private key (OpenSSH format) */
	char hostkey_pub[256];      /* pinned "ssh-ed25519 AAAA..." of the VM; "" = refuse */
	int connect_timeout_ms;     /* dial + handshake + auth; 0 = 10000 */
};

/* Resolves a running member: IP from the holder's status, key paths from the
 * store, host key from <member_dir>/ssh_host_ed25519_key.pub. */
int target_resolve(const char *root, const char *name, struct ssh_target *out, struct err *e);
/* Retries an authenticated SSH session (`true`) until it succeeds or
 * timeout_ms passes; a host key or auth failure is final at once. */
int target_wait_ssh(const struct ssh_target *t, int timeout_ms, struct err *e);
