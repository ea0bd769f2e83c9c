/* ssh/config.h - `fleetbox ssh-config`: OpenSSH client configuration for the
 * members, with host key checking ON through a known_hosts file of pinned keys
 * (keyed by the alias fleetbox-<member>, so addresses reused by later clusters
 * never collide with stale entries). */
#pragma once
#include <stddef.h>

struct err;

struct sshconfig_member {
	const char *name;
	const char *ip;          /* NULL or "": not running, rendered as a comment */
	int port;                /* 0 or 22: no Port line */
	const char *hostkey_pub; /* "ssh-ed25519 AAAA... [comment]"; NULL: none */
};

/* "Host <m>" blocks (HostName, User fleetbox, IdentityFile <root>/id_ed25519,
 * IdentitiesOnly yes, UserKnownHostsFile <root>/known_hosts,
 * StrictHostKeyChecking yes, HostKeyAlias fleetbox-<m>). Caller frees. */
char *sshconfig_render(const char *root, const struct sshconfig_member *m, size_t n);
/* "fleetbox-<m> ssh-ed25519 AAAA..." lines for members with a key. Caller frees. */
char *sshconfig_known_hosts(const struct sshconfig_member *m, size_t n);
/* Writes <root>/known_hosts (0644) atomically. */
int sshconfig_write_known_hosts(const char *root, const struct sshconfig_member *m, size_t n,
				struct err *e);
/* Writes <root>/ssh_config (0644) atomically: a header, then the Host blocks,
 * for `Include` from ~/.ssh/config. */
int sshconfig_write_file(const char *root, const struct sshconfig_member *m, size_t n,
			 struct err *e);
