/* image/remote.c - catalog aliases and downloads into <root>/images/.
 *
 * Invariants:
 * - A file under its final name in images/ was completely downloaded, fsynced
 *   and (when a digest is pinned) verified before rename(); nothing else ever
 *   writes there. So an existing final file is reused without re-hashing.
 * - Every download happens under an exclusive flock on <final>.lock; the
 *   holder of the lock owns <final>.tmp and removes it on every failure.
 * - Catalog pins are copied from the distributions' published checksum files
 *   (Ubuntu SHA256SUMS, Debian SHA512SUMS -- Debian publishes no SHA-256 for
 *   its cloud images). An alias with an empty digest is refused, never
 *   downloaded unverified. */
#include "client/image/remote.h"

#include "util/err.h"
#include "util/fileio.h"
#include "util/hash.h"
#include "util/owner.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
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
	EVP_MD_CTX *md;
	image_progress_fn progress;
	void *data;
	const char *label;
	struct timespec last;
	bool announced;
};

static void emit(image_progress_fn fn, void *data, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void emit(image_progress_fn fn, void *data, const char *fmt, ...)
{
	if (!fn)
		return;
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fn(data, line);
}

static void emit_progress(struct dl *d, uint64_t now, uint64_t total)
{
	const double mib = 1024.0 * 1024.0;
	if (total > 0) {
		unsigned pct = (unsigned)(now * 100 / total);
		if (total >= 10 * 1024 * 1024)
			emit(d->progress, d->data, "downloading %s: %u%% (%llu/%llu MiB)", d->label,
			     pct, (unsigned long long)(now >> 20), (unsigned long long)(total >> 20));
		else
			emit(d->progress, d->data, "downloading %s: %u%% (%.1f/%.1f MiB)", d->label,
			     pct, now / mib, total / mib);
	} else {
		emit(d->progress, d->data, "downloading %s: %.1f MiB", d->label, now / mib);
	}
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
	if (!EVP_DigestUpdate(d->md, buf, len)) {
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

static void hex(const unsigned char *in, unsigned n, char *out)
{
	for (unsigned i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", in[i]);
	out[2 * n] = '\0';
}

/* Streams src->url into tmp (already open as fd), hashing on the fly. On
 * success digest_out holds the hex digest of src->algo (sha256 if unpinned). */
static int transfer(const struct image_source *src, int fd, image_progress_fn progress,
		    void *data, char digest_out[129], struct err *e)
{
	const EVP_MD *md = strcmp(src->algo, "sha512") == 0 ? EVP_sha512() : EVP_sha256();
	struct dl d = { .fd = fd, .progress = progress, .data = data, .label = src->label };
	d.md = EVP_MD_CTX_new();
	CURL *c = curl_easy_init();
	if (!d.md || !c || !EVP_DigestInit_ex(d.md, md, NULL)) {
		EVP_MD_CTX_free(d.md);
		curl_easy_cleanup(c);
		return err_set(e, -ENOMEM, "download %s: out of memory", src->label);
	}
	char errbuf[CURL_ERROR_SIZE] = "";
	bool ok = curl_easy_setopt(c, CURLOPT_URL, src->url) == CURLE_OK &&
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
		  curl_easy_setopt(c, CURLOPT_WRITEDATA, &d) == CURLE_OK &&
		  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xfer) == CURLE_OK &&
		  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &d) == CURLE_OK &&
		  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) == CURLE_OK;
	int r = 0;
	CURLcode res = ok ? curl_easy_perform(c) : CURLE_FAILED_INIT;
	if (res != CURLE_OK) {
		long code = 0;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		if (d.werr)
			r = err_set(e, d.werr, "download %s: writing: %s", src->label,
				    strerror(-d.werr));
		else if (res == CURLE_HTTP_RETURNED_ERROR)
			r = err_set(e, -EIO, "download %s: HTTP %ld from %s", src->label, code,
				    src->url);
		else
			r = err_set(e, -EIO, "download %s: %s", src->label,
				    errbuf[0] ? errbuf : curl_easy_strerror(res));
	} else {
		curl_off_t cl = -1;
		curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
		if (cl >= 0 && (uint64_t)cl != d.got)
			r = err_set(e, -EIO, "download %s: short read (%llu of %lld bytes)",
				    src->label, (unsigned long long)d.got, (long long)cl);
		else if (d.got == 0)
			r = err_set(e, -EIO, "download %s: empty response", src->label);
	}
	if (r == 0) {
		unsigned char out[EVP_MAX_MD_SIZE];
		unsigned n = 0;
		if (!EVP_DigestFinal_ex(d.md, out, &n))
			r = err_set(e, -ENOMEM, "download %s: digest failed", src->label);
		else
			hex(out, n, digest_out);
	}
	if (r == 0 && progress)
		emit_progress(&d, d.got, d.got);
	EVP_MD_CTX_free(d.md);
	curl_easy_cleanup(c);
	return r;
}

static int lock_file(const char *lock, const char *label, image_progress_fn progress,
		     void *data, struct err *e)
{
	int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0 || owner_claim_fd(fd) < 0) {
		int r = -errno;
		if (fd >= 0)
			close(fd);
		return err_set(e, r, "open %s: %s", lock, strerror(-r));
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return fd;
	if (errno != EWOULDBLOCK) {
		int r = -errno;
		close(fd);
		return err_set(e, r, "lock %s: %s", lock, strerror(-r));
	}
	emit(progress, data, "waiting for another download of %s", label);
	/* Blocking on purpose: the other download may take minutes; a crashed
	 * holder of the lock releases it with its last fd. */
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int r = -errno;
			close(fd);
			return err_set(e, r, "lock %s: %s", lock, strerror(-r));
		}
	}
	return fd;
}

static int download(const struct image_source *src, const char *final,
		    image_progress_fn progress, void *data, struct err *e)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", final) >= (int)sizeof(tmp))
		return err_set(e, -ENAMETOOLONG, "image path too long");
	/* We hold the lock, so any existing .tmp is debris of a crashed run. */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return err_set(e, -errno, "create %s: %s", tmp, strerror(errno));
	char got[129] = "";
	int r = owner_claim_fd(fd);
	if (r < 0)
		err_set(e, r, "chown %s: %s", tmp, strerror(-r));
	else
		r = transfer(src, fd, progress, data, got, e);
	if (r == 0 && src->algo[0] && strcmp(got, src->digest) != 0)
		r = err_set(e, -EBADMSG, "download %s: checksum mismatch: want %s:%s, got %s:%s",
			    src->label, src->algo, src->digest, src->algo, got);
	if (r == 0 && fsync(fd) < 0)
		r = err_set(e, -errno, "fsync %s: %s", tmp, strerror(errno));
	if (close(fd) < 0 && r == 0)
		r = err_set(e, -errno, "close %s: %s", tmp, strerror(errno));
	if (r == 0 && rename(tmp, final) < 0)
		r = err_set(e, -errno, "rename %s: %s", tmp, strerror(errno));
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	fsync_parent(final);
	if (!src->algo[0])
		emit(progress, data, "downloaded %s (unpinned; pin it with #sha256=%s)",
		     src->label, got);
	return 0;
}

static bool is_regular(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int image_fetch(const char *root, const char *image, image_progress_fn progress, void *data,
		char *path_out, size_t len, struct err *e)
{
	struct image_source src;
	int r = image_source_parse(image, &src, e);
	if (r < 0)
		return r;
	char dir[PATH_MAX], final[PATH_MAX], lock[PATH_MAX];
	if (snprintf(dir, sizeof(dir), "%s/images", root) >= (int)sizeof(dir) ||
	    snprintf(final, sizeof(final), "%s/%s", dir, src.file) >= (int)sizeof(final) ||
	    snprintf(lock, sizeof(lock), "%s.lock", final) >= (int)sizeof(lock) ||
	    strlen(final) >= len)
		return err_set(e, -ENAMETOOLONG, "store path too long: %s", root);
	r = mkdir_p(dir, 0755);
	if (r < 0)
		return err_set(e, r, "create %s: %s", dir, strerror(-r));
	if (!is_regular(final)) {
		int lfd = lock_file(lock, src.label, progress, data, e);
		if (lfd < 0)
			return lfd;
		/* re-check: whoever held the lock may have finished it */
		if (!is_regular(final))
			r = download(&src, final, progress, data, e);
		close(lfd);
		if (r < 0)
			return r;
	}
	snprintf(path_out, len, "%s", final);
	return 0;
}
