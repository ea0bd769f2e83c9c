/* wire.h - protocol v2 constants and the pure naming functions both halves
 * share: socket/pidfile paths, MAC derivation, member-name validation, cluster
 * name derivation. See ../shared/spec/protocol.md; changing any byte here breaks
 * other clients. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#define FB_PROTOCOL_VERSION "2"
/* Longest accepted request/reply line (excluding '\n'). */
#define FB_LINE_MAX (1024 * 1024)
#define FB_NAME_MAX 63
#define FB_MAC_STRLEN 18   /* "02:aa:bb:cc:dd:ee" + NUL */
#define FB_IP_STRLEN 16    /* "255.255.255.255" + NUL */

enum wire_state {
	FB_STATE_DOWNLOADING,
	FB_STATE_STARTING,
	FB_STATE_RUNNING,
	FB_STATE_STOPPED,
	FB_STATE_ERROR,
};
const char *wire_state_name(enum wire_state s);
int wire_state_parse(const char *s, enum wire_state *out);
/* The `running` boolean of a status reply. */
bool wire_state_is_running(enum wire_state s);

/* [a-z0-9][a-z0-9-]{0,62} */
bool wire_name_valid(const char *name);
/* Strip one trailing "-<digits>": web-3 -> web, web- -> web-, -5 -> -5. */
void wire_cluster_name(const char *member, char out[FB_NAME_MAX + 1]);
/* First 8 bytes of SHA-256(name) as 16 lowercase hex chars. out: 17 bytes. */
void wire_name_hash(const char *name, char out[17]);
/* "02:.." from SHA-256("fleetbox:" + name). */
void wire_mac(const char *name, char out[FB_MAC_STRLEN]);

/* Path builders; return 0 or -ENAMETOOLONG. Sockets additionally must fit
 * sun_path (108 bytes on Linux including NUL), else -ENAMETOOLONG. */
int wire_sock_path(const char *root, const char *member, char *out, size_t len);
int wire_ctl_path(const char *root, const char *first_member, char *out, size_t len);
int wire_member_dir(const char *root, const char *member, char *out, size_t len);
int wire_pidfile_path(const char *root, const char *member, char *out, size_t len);
#define WIRE_SUN_PATH_MAX 108

/* Store root: $FLEETBOX_HOME, else $HOME/.fleetbox; under sudo (root with
 * SUDO_USER set), SUDO_USER's home. 0 or -ENOENT/-ENAMETOOLONG. */
int wire_store_root(char *out, size_t len);
/* The per-user image cache, shared by every store of that user (behaviour.md
 * "Images"): $FLEETBOX_CACHE, else $XDG_CACHE_HOME/fleetbox (absolute only),
 * else ~/.cache/fleetbox; under sudo, the invoking user's ~/.cache/fleetbox.
 * Only resolves the path; creating and locking it is the image module's job. */
int wire_cache_root(char *out, size_t len);
