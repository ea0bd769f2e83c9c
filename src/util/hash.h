/* hash.h - SHA-256 helpers (OpenSSL libcrypto). */
#pragma once
#include <stddef.h>
#include <stdint.h>

void sha256(const void *data, size_t len, uint8_t out[32]);
/* Lowercase hex of the first nbytes of the digest: out must hold 2*nbytes+1. */
void sha256_hex_prefix(const void *data, size_t len, size_t nbytes, char *out);
