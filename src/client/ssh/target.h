/* target.h - how the client reaches a VM over SSH. Filled from the store and the
 * holder's status by target_resolve() (orchestration), or by hand in tests that
 * point at a local dropbear. */
#pragma once
#include <limits.h>

struct err;
struct rpc_status;

struct ssh_target {
	char name[64];              /* member name, for messages */
	char host[64];              /* IPv4 address */
	int port;                   /* 22 */
	char user[32];              /* "fleetbox" */
	char key_path[PATH_MAX];    /* installation private key (OpenSSH format) */
	char hostkey_pub[256];      /* pinned "ssh-ed25519 AAAA..." of the VM; "" = refuse */
	int connect_timeout_ms;     /* dial + handshake + auth; 0 = 10000 */
};

/* The local half of resolving: a valid name, a member in the store, a live
 * holder (pidfile + lock). No RPC. */
int target_check_running(const char *root, const char *name, struct err *e);
/* The other half, shared by the blocking and async paths: st is the holder's
 * status for name; fills out (port 22, user fleetbox, the installation key,
 * the pinned host key) or fails with -ENOTCONN when the member is not running
 * with an IP. */
int target_from_status(const char *root, const char *name, const struct rpc_status *st,
		       struct ssh_target *out, struct err *e);
/* Resolves a running member: IP from the holder's status, key paths from the
 * store, host key from <member_dir>/ssh_host_ed25519_key.pub. */
int target_resolve(const char *root, const char *name, struct ssh_target *out, struct err *e);
/* Retries an authenticated SSH session (`true`) until it succeeds or
 * timeout_ms passes; a host key or auth failure is final at once. */
int target_wait_ssh(const struct ssh_target *t, int timeout_ms, struct err *e);
