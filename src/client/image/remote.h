/* image/remote.h - catalog aliases and image sources (URLs with optional
 * pins). A source's cache key is a prefix of the SHA-256 of its canonical
 * form ("<url>" or "<url>#<algo>=<hex>" when a digest is pinned), so a
 * different pin for the same URL never reuses an image verified against
 * another; downloads themselves are in remote.c (remote_resolve, int.h). */
#pragma once
#include "client/image/image.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;

struct image_alias {
	const char *name;    /* "debian-12" */
	const char *url;     /* dated snapshot */
	const char *digest;  /* "sha256:<hex>" / "sha512:<hex>", or "" = not pinned yet */
};

/* The catalog, terminated by an entry with name == NULL. */
extern const struct image_alias image_aliases[];

/* Catalog entry for name, or NULL. */
const struct image_alias *image_alias_find(const char *name);
/* True for a catalog alias or an http://, https:// or file:// URL. */
bool image_is_remote(const char *image);

/* A parsed source: URL without fragment, optional pinned digest, the label
 * used in progress lines, and the key. */
struct image_source {
	char url[2048];
	char algo[8];        /* "sha256", "sha512" or "" */
	char digest[129];    /* lowercase hex or "" */
	char label[64];      /* alias name or URL basename */
	char file[160];      /* "<16 hex key>-<basename>" (older stores' images/ name) */
};
/* Parses an alias or a URL, optionally pinned with a "#sha256=<hex>" or
 * "#sha512=<hex>" fragment (never sent to the server). An alias without a
 * pinned digest is refused (-ENOKEY). */
int image_source_parse(const char *image, struct image_source *out, struct err *e);
/* The same for one catalog entry (exposed so the refusal is testable). */
int image_source_from_alias(const struct image_alias *a, struct image_source *out,
			    struct err *e);

