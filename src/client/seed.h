/* seed.h - the NoCloud seed: an ISO 9660 volume labelled "cidata" (libarchive's
 * ISO writer) holding meta-data, user-data and network-config as in
 * ../shared/spec/behaviour.md. The same seed boots the mini image (our init
 * parses it) and stock cloud images (cloud-init). */
#pragma once
#include <stddef.h>

struct err;

struct seed_mount {
	const char *label;      /* "FBFIX0" */
	const char *guest_path; /* absolute */
};

/* One line of the cluster's /etc/hosts. */
struct seed_host {
	const char *name;       /* member name */
	const char *ip;         /* its static address */
};

struct seed_params {
	const char *hostname;        /* member name */
	const char *instance_id;
	const char *user;            /* "fleetbox" */
	const char *authorized_key;  /* installation public key line */
	const char *host_key_priv;   /* OpenSSH PEM */
	const char *host_key_pub;    /* "ssh-ed25519 ..." */
	const char *mac;             /* NULL: no network-config */
	const char *ip;              /* NULL: no network-config (DHCP) */
	int prefix_len;
	const char *gateway;
	const char *const *nameservers;
	size_t n_nameservers;
	const struct seed_mount *mounts;
	size_t n_mounts;
	const struct seed_host *hosts; /* every member of the cluster (this one too) */
	size_t n_hosts;
};

/* The cluster block of /etc/hosts, between the markers, one "<ip> <name>"
 * line per host; NULL (-EINVAL) if a name or address is empty or holds
 * whitespace, '#' or a control byte, or out of memory. Shared by the seed and
 * the update of running members (orch/hosts.c). */
#define SEED_HOSTS_BEGIN "# fleetbox cluster begin"
#define SEED_HOSTS_END "# fleetbox cluster end"
char *seed_hosts_block(const struct seed_host *h, size_t n);

/* Renders the three files (caller frees each); exposed for unit tests. */
int seed_render(const struct seed_params *p, char **meta_data, char **user_data,
		char **network_config, struct err *e);
/* Writes the ISO atomically (a file_tmp_name temporary, fsync, rename). */
int seed_write(const char *path, const struct seed_params *p, struct err *e);
