/* fuzz_catalog.c - the catalog/URL parser (image/remote.c): aliases, URLs and
 * "#sha256=" / "#sha512=" pins. What it accepts has a URL without fragment,
 * space or control character, a lowercase digest of the algorithm's length,
 * and a cache file name that is one safe path component. */
#include "fuzz.h"
#include "client/image/remote.h"
#include "util/err.h"

#include <errno.h>

static void check_source(const struct image_source *s)
{
	FUZZ_CHECK(s->url[0] && !strchr(s->url, '#'));
	for (const char *p = s->url; *p; p++)
		FUZZ_CHECK((unsigned char)*p > 0x20 && *p != 0x7f);
	size_t dl = strlen(s->digest);
	FUZZ_CHECK((!s->algo[0] && dl == 0) || (!strcmp(s->algo, "sha256") && dl == 64) ||
		   (!strcmp(s->algo, "sha512") && dl == 128));
	for (size_t i = 0; i < dl; i++)
		FUZZ_CHECK((s->digest[i] >= '0' && s->digest[i] <= '9') ||
			   (s->digest[i] >= 'a' && s->digest[i] <= 'f'));
	FUZZ_CHECK(s->file[0] && !strchr(s->file, '/') && strcmp(s->file, ".") &&
		   strcmp(s->file, ".."));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = fuzz_str(data, size);
	bool remote = image_is_remote(in);
	struct image_source s;
	struct err e = { 0 };
	int r = image_source_parse(in, &s, &e);
	if (r == 0) {
		FUZZ_CHECK(remote);
		check_source(&s);
	} else {
		FUZZ_CHECK(r == -EINVAL || r == -ENAMETOOLONG || r == -ENOKEY);
		FUZZ_CHECK(e.msg[0]);
	}
	free(in);
	return 0;
}
