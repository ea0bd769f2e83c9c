/* image/remote.c - catalog aliases and downloads into the image cache.
 *
 * Invariants:
 * - A download streams into a tmp/ directory of the cache, hashed on the
 *   fly (sha256 always: it is the image's digest; the pinned algorithm too),
 *   and becomes an image only when the pin matches and the image validates
 *   (import_finish); the ref "src-<key>" (key: a hash of the canonical
 *   source) then maps the source to that digest, so it is never fetched again.
 * - Every download happens under the flock of its ref key: concurrent `up`s
 *   of one image download it once; the others wait and reuse it.
 * - A store written by an older fleetbox kept downloads as
 *   <store>/images/<key>-<basename>: such a file is imported (hashed and
 *   verified again) instead of downloaded, and left in place.
 * - Catalog pins are copied from the distributions' published checksum files
 *   (Ubuntu SHA256SUMS, Debian SHA512SUMS -- Debian publishes no SHA-256 for
 *   its cloud images). An alias with an empty digest is refused, never
 *   downloaded unverified. */
#include "client/image/remote.h"
#include "client/image/int.h"

#include "util/err.h"
#include "util/fileio.h"
#include "util/hash.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Source: lima-vm/lima templates/_images/<alias>.yaml at commit 183a60d (Aug 2026),
 * which mirror the official checksum files of these dated snapshots. */
const struct image_alias image_aliases[] = {
	{ "debian-11",
	  "https://cloud.debian.org/images/cloud/bullseye/20260707-2532/"
	  "debian-11-genericcloud-amd64-20260707-2532.qcow2",
	  "sha512:6cf25158a6ccce87079f3f6f6a1fe0c93942eb38af9cd216e54b4a60c4a61c3f"
	  "76bb41eac4a4d8fbc4f995d82f0a128df0242dfb558393134ff97819cdd167b2" },
	{ "debian-12",
	  "https://cloud.debian.org/images/cloud/bookworm/20260712-2537/"
	  "debian-12-genericcloud-amd64-20260712-2537.qcow2",
	  "sha512:6c2607f1846ee86040830c87d0b723f0967da3e884ea4673d9db4aa8eee13a4b"
	  "7c663524bfa42082c16fc6919f3aa1bf425c004d07ff06c53a319ad0c42647bb" },
	{ "debian-13",
	  "https://cloud.debian.org/images/cloud/trixie/20260712-2537/"
	  "debian-13-genericcloud-amd64-20260712-2537.qcow2",
	  "sha512:7ae53e9dbee282bfc16f289dec483dde3a8598769c38a267948310f7a2a52c66"
	  "2620198603bc52c142627efba379863d16079698a10b34102d55bcedd40e8d32" },
	{ "ubuntu-22.04",
	  "https://cloud-images.ubuntu.com/releases/jammy/release-20260705/"
	  "ubuntu-22.04-server-cloudimg-amd64.img",
	  "sha256:ec3cdc1bf496078f645ccc8ac823e17609658753477ebc4e5fb730729ac5b434" },
	{ "ubuntu-24.04",
	  "https://cloud-images.ubuntu.com/releases/noble/release-20260705/"
	  "ubuntu-24.04-server-cloudimg-amd64.img",
	  "sha256:ffe6203da54deeb6db5d2a98a83f9ec8e55f149d3f7ba622e1abe5fa966ee3d6" },
	{ "ubuntu-26.04",
	  "https://cloud-images.ubuntu.com/releases/resolute/release-20260720/"
	  "ubuntu-26.04-server-cloudimg-amd64.img",
	  "sha256:117816726abbdefc5ef3e38902e81a76f1c76c3610e709999d0885f9d5d9b477" },
	{ NULL, NULL, NULL },
};

const struct image_alias *image_alias_find(const char *name)
{
	for (const struct image_alias *a = image_aliases; name && a->name; a++)
		if (strcmp(a->name, name) == 0)
			return a;
	return NULL;
}

static bool has_scheme(const char *s, const char *scheme)
{
	size_t n = strlen(scheme);
	return strncasecmp(s, scheme, n) == 0 && strncmp(s + n, "://", 3) == 0;
}

static bool is_url(const char *s)
{
	return has_scheme(s, "http") || has_scheme(s, "https") || has_scheme(s, "file");
}

bool image_is_remote(const char *image)
{
	return image && (image_alias_find(image) || is_url(image));
}

static bool is_hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
		      (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	return true;
}

/* "sha256:<hex>" or "sha256=<hex>" (sep given) into algo/digest, lowercased. */
static int parse_digest(const char *s, char sep, struct image_source *out, struct err *e)
{
	const char *p = strchr(s, sep);
	size_t hexlen = 0;
	if (p && (size_t)(p - s) == 6 && strncmp(s, "sha256", 6) == 0)
		hexlen = 64;
	else if (p && (size_t)(p - s) == 6 && strncmp(s, "sha512", 6) == 0)
		hexlen = 128;
	if (!hexlen || !is_hex(p + 1, hexlen))
		return err_set(e, -EINVAL, "bad checksum \"%s\": want sha256%c<64 hex> or "
			       "sha512%c<128 hex>", s, sep, sep);
	memcpy(out->algo, s, 6);
	out->algo[6] = '\0';
	for (size_t i = 0; i < hexlen; i++)
		out->digest[i] = (char)(p[1 + i] | 0x20);
	out->digest[hexlen] = '\0';
	return 0;
}

/* Cache name: a key over the canonical source (so a different pin for the same
 * URL never reuses a file verified against another) plus a safe basename. */
static void make_file_name(struct image_source *out)
{
	char canon[sizeof(out->url) + 160];
	if (out->algo[0])
		snprintf(canon, sizeof(canon), "%s#%s=%s", out->url, out->algo, out->digest);
	else
		snprintf(canon, sizeof(canon), "%s", out->url);
	char key[17];
	sha256_hex_prefix(canon, strlen(canon), 8, key);

	/* basename of the path part: after the last '/', before '?' */
	const char *path = strstr(out->url, "://");
	path = path ? path + 3 : out->url;
	size_t end = strcspn(path, "?");
	const char *base = path;
	for (size_t i = 0; i < end; i++)
		if (path[i] == '/')
			base = path + i + 1;
	size_t blen = (size_t)(path + end - base);
	char safe[101];
	size_t n = 0;
	for (size_t i = 0; i < blen && n < sizeof(safe) - 1; i++) {
		char c = base[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
		safe[n++] = ok ? c : '_';
	}
	safe[n] = '\0';
	/* never a hidden or dot-only name */
	if (n == 0 || safe[0] == '.')
		snprintf(safe, sizeof(safe), "image");
	snprintf(out->file, sizeof(out->file), "%s-%s", key, safe);
	if (!out->label[0])
		snprintf(out->label, sizeof(out->label), "%s", safe);
}

int image_source_from_alias(const struct image_alias *a, struct image_source *out,
			    struct err *e)
{
	memset(out, 0, sizeof(*out));
	if (!a->digest || !a->digest[0])
		return err_set(e, -ENOKEY, "image alias %s has no pinned checksum yet", a->name);
	snprintf(out->url, sizeof(out->url), "%s", a->url);
	snprintf(out->label, sizeof(out->label), "%s", a->name);
	int r = parse_digest(a->digest, ':', out, e);
	if (r < 0)
		return err_prefix(e, "image alias %s: ", a->name);
	make_file_name(out);
	return 0;
}

int image_source_parse(const char *image, struct image_source *out, struct err *e)
{
	const struct image_alias *a = image_alias_find(image);
	if (a)
		return image_source_from_alias(a, out, e);
	memset(out, 0, sizeof(*out));
	if (!image || !is_url(image))
		return err_set(e, -EINVAL, "image %s: not a catalog alias or an http(s)/file URL",
			       image ? image : "(null)");
	const char *frag = strchr(image, '#');
	size_t ulen = frag ? (size_t)(frag - image) : strlen(image);
	if (ulen >= sizeof(out->url))
		return err_set(e, -ENAMETOOLONG, "image URL too long");
	for (size_t i = 0; i < ulen; i++)
		if ((unsigned char)image[i] <= 0x20 || image[i] == 0x7f)
			return err_set(e, -EINVAL, "image URL contains spaces or control characters");
	memcpy(out->url, image, ulen);
	out->url[ulen] = '\0';
	const char *p = strstr(out->url, "://") + 3;
	if (!*p || *p == '?')
		return err_set(e, -EINVAL, "image %s: URL has no host or path", out->url);
	if (frag) {
		int r = parse_digest(frag + 1, '=', out, e);
		if (r < 0)
			return err_prefix(e, "image %s: ", out->url);
	}
	make_file_name(out);
	return 0;
}

/* ---- download ---- */

struct dl {
	int fd;
	int werr;                  /* -errno of a failed write */
	uint64_t got;
	struct hasher h;           /* sha256, and the pin's sha512 */
	image_progress_fn progress;
	void *data;
	const char *label;
	struct timespec last;
	bool announced;
};

static void emit_progress(struct dl *d, uint64_t now, uint64_t total)
{
	const double mib = 1024.0 * 1024.0;
	if (total > 0 && total >= 10 * 1024 * 1024)
		image_say(d->progress, d->data, "downloading %s: %u%% (%llu/%llu MiB)", d->label,
			  (unsigned)(now * 100 / total), (unsigned long long)(now >> 20),
			  (unsigned long long)(total >> 20));
	else if (total > 0)
		image_say(d->progress, d->data, "downloading %s: %u%% (%.1f/%.1f MiB)", d->label,
			  (unsigned)(now * 100 / total), now / mib, total / mib);
	else
		image_say(d->progress, d->data, "downloading %s: %.1f MiB", d->label, now / mib);
}

static size_t on_data(char *buf, size_t size, size_t n, void *user)
{
	struct dl *d = user;
	size_t len = size * n, off = 0;
	while (off < len) {
		ssize_t w = write(d->fd, buf + off, len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			d->werr = -errno;
			return 0; /* makes curl fail with CURLE_WRITE_ERROR */
		}
		off += (size_t)w;
	}
	if (hasher_update(&d->h, buf, len) < 0) {
		d->werr = -ENOMEM;
		return 0;
	}
	d->got += len;
	return len;
}

/* Throttled: the first line once the size is known, then at most one a second. */
static int on_xfer(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		   curl_off_t ulnow)
{
	(void)ultotal;
	(void)ulnow;
	struct dl *d = user;
	if (!d->progress || dlnow <= 0)
		return 0;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	double since = (double)(ts.tv_sec - d->last.tv_sec) +
		       (double)(ts.tv_nsec - d->last.tv_nsec) / 1e9;
	if (d->announced && since < 1.0)
		return 0;
	d->announced = true;
	d->last = ts;
	emit_progress(d, (uint64_t)dlnow, dltotal > 0 ? (uint64_t)dltotal : 0);
	return 0;
}

static bool setup_curl(CURL *c, const struct image_source *src, struct dl *d, char *errbuf)
{
	return curl_easy_setopt(c, CURLOPT_URL, src->url) == CURLE_OK &&
	       /* file:// only as given by the user, never via a redirect */
	       curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file") == CURLE_OK &&
	       curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") == CURLE_OK &&
	       curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L) == CURLE_OK &&
	       curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L) == CURLE_OK &&
	       curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L) == CURLE_OK &&
	       curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
	       curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L) == CURLE_OK &&
	       /* a stalled transfer (< 1 KiB/s for a minute) fails instead of hanging */
	       curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L) == CURLE_OK &&
	       curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L) == CURLE_OK &&
	       curl_easy_setopt(c, CURLOPT_USERAGENT, "fleetbox/" FLEETBOX_VERSION) == CURLE_OK &&
	       curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK &&
	       curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data) == CURLE_OK &&
	       curl_easy_setopt(c, CURLOPT_WRITEDATA, d) == CURLE_OK &&
	       curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xfer) == CURLE_OK &&
	       curl_easy_setopt(c, CURLOPT_XFERINFODATA, d) == CURLE_OK &&
	       curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) == CURLE_OK;
}

static int perform(CURL *c, const struct image_source *src, struct dl *d, struct err *e)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	CURLcode res = setup_curl(c, src, d, errbuf) ? curl_easy_perform(c) : CURLE_FAILED_INIT;
	if (res != CURLE_OK) {
		long code = 0;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		if (d->werr)
			return err_set(e, d->werr, "download %s: writing: %s", src->label,
				       strerror(-d->werr));
		if (res == CURLE_HTTP_RETURNED_ERROR)
			return err_set(e, -EIO, "download %s: HTTP %ld from %s", src->label, code,
				       src->url);
		return err_set(e, -EIO, "download %s: %s", src->label,
			       errbuf[0] ? errbuf : curl_easy_strerror(res));
	}
	curl_off_t cl = -1;
	curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
	if (cl >= 0 && (uint64_t)cl != d->got)
		return err_set(e, -EIO, "download %s: short read (%llu of %lld bytes)", src->label,
			       (unsigned long long)d->got, (long long)cl);
	if (d->got == 0)
		return err_set(e, -EIO, "download %s: empty response", src->label);
	return 0;
}

/* Streams src->url into fd, hashing on the fly: sha256 always, and the
 * pinned algorithm's digest into pin_hex (= sha256 when that is the pin). */
static int transfer(const struct image_source *src, int fd, image_progress_fn progress,
		    void *data, char sha256_hex[65], char pin_hex[129], struct err *e)
{
	struct dl d = { .fd = fd, .progress = progress, .data = data, .label = src->label };
	CURL *c = curl_easy_init();
	int r = 0;
	if (!c || hasher_init(&d.h, src->algo) < 0)
		r = err_set(e, -ENOMEM, "download %s: out of memory", src->label);
	if (r == 0)
		r = perform(c, src, &d, e);
	if (r == 0 && hasher_final(&d.h, sha256_hex, pin_hex) < 0)
		r = err_set(e, -ENOMEM, "download %s: digest failed", src->label);
	if (r == 0 && strcmp(src->algo, "sha512") != 0)
		snprintf(pin_hex, 129, "%s", sha256_hex);
	if (r == 0 && progress)
		emit_progress(&d, d.got, d.got);
	hasher_fini(&d.h);
	curl_easy_cleanup(c);
	return r;
}

static int check_pin(const struct image_source *src, const char *got, const char *sha256_hex,
		     image_progress_fn progress, void *data, struct err *e)
{
	if (src->algo[0] && strcmp(got, src->digest) != 0)
		return err_set(e, -EBADMSG, "download %s: checksum mismatch: want %s:%s, got %s:%s",
			       src->label, src->algo, src->digest, src->algo, got);
	if (!src->algo[0])
		image_say(progress, data, "downloaded %s (unpinned; pin it with #sha256=%s)",
			  src->label, sha256_hex);
	return 0;
}

/* A store from an older fleetbox: <store>/images/<key>-<basename>. */
static int legacy_path(const char *store, const struct image_source *src, char *out, size_t len)
{
	struct stat st;
	if (!store || snprintf(out, len, "%s/images/%s", store, src->file) >= (int)len)
		return -ENOENT;
	return lstat(out, &st) == 0 && S_ISREG(st.st_mode) ? 0 : -ENOENT;
}

/* Fills <tmp>/disk from the legacy file or the network; im->disk_sha. */
static int fetch_into(const char *store, const struct image_source *src, const char *disk,
		      struct import *im, struct err *e)
{
	char legacy[PATH_MAX], pin[129] = "";
	int fd = open(disk, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return err_set(e, -errno, "create %s: %s", disk, strerror(errno));
	int r;
	if (legacy_path(store, src, legacy, sizeof(legacy)) == 0) {
		image_say(im->progress, im->data, "importing %s from %s", src->label, legacy);
		int in = open(legacy, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		r = in < 0 ? err_set(e, -errno, "%s: %s", legacy, strerror(errno))
			   : hash_copy(in, fd, im->disk_sha, src->algo, pin, NULL, e);
		if (in >= 0)
			close(in);
		if (r == 0 && strcmp(src->algo, "sha512") != 0)
			snprintf(pin, sizeof(pin), "%s", im->disk_sha);
	} else {
		r = transfer(src, fd, im->progress, im->data, im->disk_sha, pin, e);
	}
	if (r == 0 && fsync(fd) < 0)
		r = err_set(e, -errno, "fsync %s: %s", disk, strerror(errno));
	if (close(fd) < 0 && r == 0)
		r = err_set(e, -errno, "close %s: %s", disk, strerror(errno));
	if (r == 0)
		r = check_pin(src, pin, im->disk_sha, im->progress, im->data, e);
	return r;
}

static int fetch_locked(const struct cache *c, const char *store, const struct image_source *src,
			struct import *im, struct image_info *out, struct err *e)
{
	if (cache_ref_load(c, im->key, out, e) == 0) /* another process just did it */
		return 0;
	char tmp[PATH_MAX], disk[PATH_MAX + 8];
	int r = cache_tmpdir(c, im->key, tmp, sizeof(tmp), e);
	if (r < 0)
		return r;
	snprintf(disk, sizeof(disk), "%s/disk", tmp);
	if ((r = fetch_into(store, src, disk, im, e)) < 0) {
		rm_rf(tmp);
		return r;
	}
	return import_finish(c, tmp, im, out, e);
}

int remote_resolve(const struct cache *c, const char *store, const char *image,
		   image_progress_fn progress, void *data, struct image_info *out,
		   struct err *e)
{
	struct image_source src;
	int r = image_source_parse(image, &src, e);
	if (r < 0)
		return r;
	char key[REF_KEY_MAX], source[sizeof(src.url) + 160];
	snprintf(key, sizeof(key), "src-%.16s", src.file);
	if (src.algo[0])
		snprintf(source, sizeof(source), "%s#%s=%s", src.url, src.algo, src.digest);
	else
		snprintf(source, sizeof(source), "%s", src.url);
	struct import im = { .key = key, .name = src.label,
			     .kind = image_alias_find(image) ? "alias" : "url", .source = source,
			     .progress = progress, .data = data };
	if (cache_ref_load(c, key, out, e) == 0)
		return 0;
	int fd = cache_lock(c, key, LOCK_EX, progress, data, src.label, e);
	if (fd < 0)
		return fd;
	r = fetch_locked(c, store, &src, &im, out, e);
	close(fd);
	return r;
}
