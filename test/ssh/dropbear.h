/* dropbear.h - a private dropbear on 127.0.0.1 for SSH tests.
 *
 * tdb_start() needs root: it moves the test process into a private mount
 * namespace (propagation made private) and bind-mounts a fresh home over root's
 * home there, holding .ssh/authorized_keys with a freshly generated installation
 * key, so the host's real ~/.ssh is never read or touched. dropbear runs in the
 * foreground with PDEATHSIG, its host key is one of ours converted with
 * dropbearconvert, and tdb_stop() kills it and removes the scratch directory. */
#pragma once
#include <limits.h>
#include <sys/types.h>

#include "client/ssh/target.h"

struct tdb {
	char dir[PATH_MAX];      /* scratch directory */
	char store[PATH_MAX];    /* fake store root with id_ed25519 */
	char hostdir[PATH_MAX];  /* ssh_host_ed25519_key(.pub) */
	pid_t pid;
	int port;
	int passwd_bound;        /* /etc/passwd is our copy (tdb_start_as) */
	struct ssh_target target; /* ready to use: root@127.0.0.1:port, pinned key */
};

/* Returns 0, or 77 (skip) when not root / namespaces are unavailable; exits the
 * test with a message on any other failure. */
/* Moves this process into a new network namespace with lo up (so a test may
 * bind 127.0.0.1:22 and never touches the host's interfaces). 0 or -1 with
 * errno set. */
int tdb_private_netns(void);
int tdb_start(struct tdb *d);
/* Like tdb_start, on a given port (0 = a free one) and as a given user (NULL =
 * root). A user other than root is added in the private mount namespace as a
 * uid-0 alias with root's (bind-mounted) home, via a bind-mounted copy of
 * /etc/passwd. Port 22 needs a private network namespace (the caller's). */
int tdb_start_as(struct tdb *d, int port, const char *user);
void tdb_stop(struct tdb *d);
/* A second, unrelated ed25519 public key line (for mismatch tests). */
void tdb_other_key(struct tdb *d, char *out, size_t len);
