/* keys.c - ed25519 keys generated with OpenSSL 3 and written in OpenSSH formats.
 *
 * Private key: PEM armour around base64 of the "openssh-key-v1" container,
 * unencrypted (cipher "none", kdf "none", empty kdf options, one key):
 *   "openssh-key-v1\0" string("none") string("none") string("") uint32(1)
 *   string(public blob) string(private section)
 * private section: uint32 check, uint32 check (equal, random), string("ssh-ed25519"),
 *   string(pub 32), string(seed 32 || pub 32), string(comment), padding 1,2,3..
 *   up to a multiple of 8 (the "none" cipher's block size).
 * Public blob: string("ssh-ed25519") string(pub 32).
 * Invariants: private material is wiped from our buffers before they are freed;
 * the private file is always written after the public one, so an existing private
 * key means the pair was completed (a .pub can always be re-derived from it). */
#include "client/ssh/keys.h"
#include "util/err.h"
#include "util/fileio.h"
#include "util/owner.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define KEY_TYPE "ssh-ed25519"
#define AUTH_MAGIC "openssh-key-v1"
#define PEM_BEGIN "-----BEGIN OPENSSH PRIVATE KEY-----\n"
#define PEM_END "-----END OPENSSH PRIVATE KEY-----\n"
#define PEM_WRAP 70
#define KEY_FILE_MAX (64 * 1024)

/* A growable byte buffer for building SSH wire structures. */
struct sbuf {
	uint8_t *p;
	size_t len, cap;
	int error;
};

static void sb_put(struct sbuf *b, const void *data, size_t n)
{
	if (b->error)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *np = malloc(cap);
		if (!np) {
			b->error = -ENOMEM;
			return;
		}
		/* Copy instead of realloc so the old (possibly secret) bytes can be wiped. */
		if (b->len)
			memcpy(np, b->p, b->len);
		if (b->p) {
			OPENSSL_cleanse(b->p, b->cap);
			free(b->p);
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void sb_u32(struct sbuf *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	sb_put(b, x, 4);
}

static void sb_string(struct sbuf *b, const void *data, size_t n)
{
	sb_u32(b, (uint32_t)n);
	sb_put(b, data, n);
}

static void sb_wipe(struct sbuf *b)
{
	if (b->p) {
		OPENSSL_cleanse(b->p, b->cap);
		free(b->p);
	}
	memset(b, 0, sizeof(*b));
}

/* Base64 without line breaks; caller frees. */
static char *b64(const uint8_t *data, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);
	if (!out)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, data, (int)n);
	return out;
}

static void pub_blob(struct sbuf *b, const uint8_t pub[32])
{
	sb_string(b, KEY_TYPE, strlen(KEY_TYPE));
	sb_string(b, pub, 32);
}

static char *make_pub_line(const uint8_t *blob, size_t blob_len, const char *comment)
{
	char *enc = b64(blob, blob_len);
	if (!enc)
		return NULL;
	char *line = NULL;
	int r = comment && *comment ? asprintf(&line, "%s %s %s\n", KEY_TYPE, enc, comment)
				    : asprintf(&line, "%s %s\n", KEY_TYPE, enc);
	free(enc);
	return r < 0 ? NULL : line;
}

static char *make_priv_pem(const uint8_t seed[32], const uint8_t pub[32], const char *comment)
{
	struct sbuf priv = { 0 }, all = { 0 }, pb = { 0 };
	char *pem = NULL, *enc = NULL;
	uint32_t check;
	if (RAND_bytes((unsigned char *)&check, sizeof(check)) != 1)
		return NULL;

	sb_u32(&priv, check);
	sb_u32(&priv, check);
	sb_string(&priv, KEY_TYPE, strlen(KEY_TYPE));
	sb_string(&priv, pub, 32);
	sb_u32(&priv, 64);
	sb_put(&priv, seed, 32);
	sb_put(&priv, pub, 32);
	sb_string(&priv, comment, strlen(comment));
	for (uint8_t pad = 1; !priv.error && priv.len % 8 != 0; pad++)
		sb_put(&priv, &pad, 1);

	pub_blob(&pb, pub);
	sb_put(&all, AUTH_MAGIC, sizeof(AUTH_MAGIC)); /* includes the NUL */
	sb_string(&all, "none", 4);
	sb_string(&all, "none", 4);
	sb_string(&all, "", 0);
	sb_u32(&all, 1);
	sb_string(&all, pb.p, pb.len);
	sb_string(&all, priv.p, priv.len);
	if (priv.error || all.error || pb.error)
		goto out;

	enc = b64(all.p, all.len);
	if (!enc)
		goto out;
	size_t elen = strlen(enc);
	size_t cap = strlen(PEM_BEGIN) + strlen(PEM_END) + elen + elen / PEM_WRAP + 2;
	pem = malloc(cap);
	if (!pem)
		goto out;
	char *w = pem;
	w += sprintf(w, "%s", PEM_BEGIN);
	for (size_t off = 0; off < elen; off += PEM_WRAP) {
		size_t n = elen - off < PEM_WRAP ? elen - off : PEM_WRAP;
		memcpy(w, enc + off, n);
		w += n;
		*w++ = '\n';
	}
	sprintf(w, "%s", PEM_END);
out:
	if (enc) {
		OPENSSL_cleanse(enc, strlen(enc));
		free(enc);
	}
	sb_wipe(&priv);
	sb_wipe(&all);
	sb_wipe(&pb);
	return pem;
}

int keys_generate(const char *comment, char **priv_pem, char **pub_line, struct err *e)
{
	*priv_pem = NULL;
	*pub_line = NULL;
	if (!comment)
		comment = "";
	if (strchr(comment, '\n'))
		return err_set(e, -EINVAL, "key comment must be a single line");

	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!pkey)
		return err_set(e, -EIO, "ed25519 key generation failed (OpenSSL)");
	uint8_t seed[32], pub[32];
	size_t slen = sizeof(seed), plen = sizeof(pub);
	int ok = EVP_PKEY_get_raw_private_key(pkey, seed, &slen) == 1 &&
		 EVP_PKEY_get_raw_public_key(pkey, pub, &plen) == 1 && slen == 32 && plen == 32;
	EVP_PKEY_free(pkey);
	if (!ok) {
		OPENSSL_cleanse(seed, sizeof(seed));
		return err_set(e, -EIO, "cannot extract ed25519 key material (OpenSSL)");
	}

	struct sbuf pb = { 0 };
	pub_blob(&pb, pub);
	char *line = pb.error ? NULL : make_pub_line(pb.p, pb.len, comment);
	sb_wipe(&pb);
	char *pem = line ? make_priv_pem(seed, pub, comment) : NULL;
	OPENSSL_cleanse(seed, sizeof(seed));
	if (!line || !pem) {
		free(line);
		free(pem);
		return err_set(e, -ENOMEM, "out of memory while encoding an SSH key");
	}
	/* Callers embed the public line; drop our trailing newline. */
	line[strcspn(line, "\n")] = '\0';
	*priv_pem = pem;
	*pub_line = line;
	return 0;
}

/* --- reading back our own private key format (to re-derive a lost .pub) --- */

static int rd_u32(const uint8_t **p, size_t *n, uint32_t *v)
{
	if (*n < 4)
		return -EINVAL;
	*v = (uint32_t)(*p)[0] << 24 | (uint32_t)(*p)[1] << 16 | (uint32_t)(*p)[2] << 8 | (*p)[3];
	*p += 4;
	*n -= 4;
	return 0;
}

static int rd_string(const uint8_t **p, size_t *n, const uint8_t **s, size_t *slen)
{
	uint32_t l;
	if (rd_u32(p, n, &l) < 0 || l > *n)
		return -EINVAL;
	*s = *p;
	*slen = l;
	*p += l;
	*n -= l;
	return 0;
}

/* Decodes the PEM body of an unencrypted openssh-key-v1 file into the public line. */
static int pub_line_from_pem(const char *pem, char **line_out)
{
	const char *b = strstr(pem, "-----BEGIN OPENSSH PRIVATE KEY-----");
	const char *end = b ? strstr(b, "-----END OPENSSH PRIVATE KEY-----") : NULL;
	if (!b || !end)
		return -EINVAL;
	b += strlen("-----BEGIN OPENSSH PRIVATE KEY-----");
	size_t cap = (size_t)(end - b) + 1;
	char *txt = malloc(cap);
	uint8_t *raw = malloc(cap);
	int r = -EINVAL;
	if (!txt || !raw) {
		r = -ENOMEM;
		goto out;
	}
	size_t tl = 0;
	for (const char *c = b; c < end; c++)
		if (*c != '\n' && *c != '\r' && *c != ' ')
			txt[tl++] = *c;
	if (tl == 0 || tl % 4 != 0)
		goto out;
	int rl = EVP_DecodeBlock(raw, (unsigned char *)txt, (int)tl);
	if (rl < 0)
		goto out;
	size_t n = (size_t)rl - (txt[tl - 1] == '=') - (txt[tl - 2] == '=');
	const uint8_t *p = raw, *s, *blob, *sec;
	size_t sl, bl, secl;
	uint32_t nkeys, c1, c2;
	if (n < sizeof(AUTH_MAGIC) || memcmp(p, AUTH_MAGIC, sizeof(AUTH_MAGIC)) != 0)
		goto out;
	p += sizeof(AUTH_MAGIC);
	n -= sizeof(AUTH_MAGIC);
	if (rd_string(&p, &n, &s, &sl) || sl != 4 || memcmp(s, "none", 4) || /* cipher */
	    rd_string(&p, &n, &s, &sl) || sl != 4 || memcmp(s, "none", 4) || /* kdf */
	    rd_string(&p, &n, &s, &sl) || rd_u32(&p, &n, &nkeys) || nkeys != 1 ||
	    rd_string(&p, &n, &blob, &bl) || rd_string(&p, &n, &sec, &secl))
		goto out;
	/* The comment sits in the (unencrypted) private section. */
	if (rd_u32(&sec, &secl, &c1) || rd_u32(&sec, &secl, &c2) || c1 != c2 ||
	    rd_string(&sec, &secl, &s, &sl) || sl != strlen(KEY_TYPE) || memcmp(s, KEY_TYPE, sl) ||
	    rd_string(&sec, &secl, &s, &sl) || rd_string(&sec, &secl, &s, &sl) ||
	    rd_string(&sec, &secl, &s, &sl))
		goto out;
	char comment[256];
	snprintf(comment, sizeof(comment), "%.*s", (int)(sl < 255 ? sl : 255), (const char *)s);
	comment[strcspn(comment, "\n")] = '\0';
	char *line = make_pub_line(blob, bl, comment);
	if (!line) {
		r = -ENOMEM;
		goto out;
	}
	*line_out = line;
	r = 0;
out:
	if (raw) {
		OPENSSL_cleanse(raw, cap);
		free(raw);
	}
	if (txt) {
		OPENSSL_cleanse(txt, cap);
		free(txt);
	}
	return r;
}

/* Creates <priv_path> and <priv_path>.pub unless the private key already exists;
 * a missing .pub next to an existing private key is re-derived from it. */
static int ensure_pair_locked(const char *priv_path, const char *comment, struct err *e)
{
	char pub_path[PATH_MAX];
	if (snprintf(pub_path, sizeof(pub_path), "%s.pub", priv_path) >= (int)sizeof(pub_path))
		return err_set(e, -ENAMETOOLONG, "key path too long: %s", priv_path);

	struct stat st;
	if (stat(priv_path, &st) == 0) {
		if (stat(pub_path, &st) == 0)
			return 0;
		char *pem = NULL, *line = NULL;
		size_t len;
		int r = file_read_all(priv_path, KEY_FILE_MAX, &pem, &len);
		if (r < 0)
			return err_set(e, r, "read %s: %s", priv_path, strerror(-r));
		r = pub_line_from_pem(pem, &line);
		OPENSSL_cleanse(pem, len);
		free(pem);
		if (r < 0)
			return err_set(e, r, "%s is not an unencrypted OpenSSH ed25519 key; remove it "
					     "to regenerate", priv_path);
		r = file_write_atomic(pub_path, line, strlen(line), 0644);
		free(line);
		if (r < 0)
			return err_set(e, r, "write %s: %s", pub_path, strerror(-r));
		return 0;
	} else if (errno != ENOENT) {
		return err_set(e, -errno, "stat %s: %s", priv_path, strerror(errno));
	}

	char *pem = NULL, *line = NULL;
	int r = keys_generate(comment, &pem, &line, e);
	if (r < 0)
		return r;
	size_t ll = strlen(line);
	char *nl = realloc(line, ll + 2);
	if (!nl) {
		r = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	line = nl;
	memcpy(line + ll, "\n", 2);
	/* Public first: the private file's presence marks a complete pair. */
	r = file_write_atomic(pub_path, line, ll + 1, 0644);
	if (r < 0) {
		err_set(e, r, "write %s: %s", pub_path, strerror(-r));
		goto out;
	}
	r = file_write_atomic(priv_path, pem, strlen(pem), 0600);
	if (r < 0)
		err_set(e, r, "write %s: %s", priv_path, strerror(-r));
out:
	OPENSSL_cleanse(pem, strlen(pem));
	free(pem);
	free(line);
	return r;
}

/* Concurrent `fleetbox up` runs would each generate a pair and could leave a
 * public key of one with the private key of another: creators take turns on
 * <priv_path>.lock, and the second finds the complete pair. */
static int ensure_pair(const char *priv_path, const char *comment, struct err *e)
{
	char lock[PATH_MAX];
	if (snprintf(lock, sizeof(lock), "%s.lock", priv_path) >= (int)sizeof(lock))
		return err_set(e, -ENAMETOOLONG, "key path too long: %s", priv_path);
	int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(e, -errno, "open %s: %s", lock, strerror(errno));
	int r = owner_claim_fd(fd);
	if (r < 0) {
		close(fd);
		return err_set(e, r, "chown %s: %s", lock, strerror(-r));
	}
	while ((r = flock(fd, LOCK_EX)) < 0 && errno == EINTR)
		;
	if (r < 0) {
		r = err_set(e, -errno, "lock %s: %s", lock, strerror(errno));
		close(fd);
		return r;
	}
	r = ensure_pair_locked(priv_path, comment, e);
	close(fd);
	return r;
}

int keys_ensure_installation(const char *root, struct err *e)
{
	char path[PATH_MAX];
	int r = mkdir_p(root, 0700);
	if (r < 0)
		return err_set(e, r, "create %s: %s", root, strerror(-r));
	if (snprintf(path, sizeof(path), "%s/id_ed25519", root) >= (int)sizeof(path))
		return err_set(e, -ENAMETOOLONG, "store root path too long: %s", root);
	return ensure_pair(path, "fleetbox", e);
}

int keys_ensure_host(const char *dir, const char *comment, struct err *e)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/ssh_host_ed25519_key", dir) >= (int)sizeof(path))
		return err_set(e, -ENAMETOOLONG, "member directory path too long: %s", dir);
	return ensure_pair(path, comment, e);
}
