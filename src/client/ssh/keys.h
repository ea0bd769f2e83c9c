/* keys.h - SSH keys made with OpenSSL: the installation keypair and per-VM host
 * keys, ed25519, written in OpenSSH formats (private "openssh-key-v1" PEM,
 * public "ssh-ed25519 <base64> <comment>"). */
#pragma once
#include <stddef.h>

struct err;

/* <root>/id_ed25519 (0600) and id_ed25519.pub (0644); created once, atomically. */
int keys_ensure_installation(const char *root, struct err *e);
/* Generates a keypair: *priv_pem (OpenSSH private key PEM, unencrypted) and
 * *pub_line ("ssh-ed25519 AAAA... comment"). Caller frees both. */
int keys_generate(const char *comment, char **priv_pem, char **pub_line, struct err *e);
/* Writes <dir>/ssh_host_ed25519_key (0600) and .pub (0644) if missing. */
int keys_ensure_host(const char *dir, const char *comment, struct err *e);
