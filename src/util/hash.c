#include "util/hash.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>

void sha256(const void *data, size_t len, uint8_t out[32])
{
	unsigned int n = 32;
	/* EVP_Digest only fails on allocation failure; there is no sane fallback. */
	if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL))
		abort();
}

void sha256_hex_prefix(const void *data, size_t len, size_t nbytes, char *out)
{
	uint8_t h[32];
	sha256(data, len, h);
	if (nbytes > 32)
		nbytes = 32;
	for (size_t i = 0; i < nbytes; i++)
		sprintf(out + 2 * i, "%02x", h[i]);
	out[2 * nbytes] = '\0';
}
