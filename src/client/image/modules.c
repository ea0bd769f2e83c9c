/* image/modules.c - the kernel modules the mini image loads, with their
 * dependencies, in load order.
 *
 * A Debian kernel package carries no modules.dep (depmod runs at install,
 * and we never install it), so dependencies are read from each module's ELF
 * ".modinfo" section ("depends=a,b"). Module names treat '-' and '_' alike.
 * Modules listed in modules.builtin are compiled in and skipped. The result
 * is a flat /lib/modules/<kver>/<name>.ko set plus load.list, which init
 * feeds to insmod line by line (no modprobe, no depmod in the guest). */
#include "client/image/int.h"

#include "util/err.h"
#include "util/fileio.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* What the init needs: disks, NIC, entropy, the seed ISO, overlay roots for
 * persistence, vfat seeds, the ACPI power button. `optional` ones may be
 * missing (or built in) without failing the build. */
static const struct {
	const char *name;
	bool optional;
} wanted[] = {
	{"virtio_pci", false}, {"virtio_mmio", true}, {"virtio_blk", false},
	{"virtio_net", false}, {"virtio_rng", true},  {"isofs", false},
	{"overlay", false},    {"ext4", false},       {"vfat", true},
	{"nls_cp437", true},   {"nls_ascii", true},   {"button", true},
	{"evdev", true},       {"af_packet", true},
};

struct mod {
	char name[64];
	char path[PATH_MAX]; /* host path of the .ko */
	int state;           /* 0 new, 1 visiting, 2 added */
};

struct modset {
	struct mod *m;
	size_t n, cap;
	char *builtin; /* modules.builtin contents (may be NULL) */
};

static void norm(char *s)
{
	for (; *s; s++)
		if (*s == '-')
			*s = '_';
}

static int index_dir(struct modset *s, const char *dir, int depth)
{
	if (depth > 12)
		return 0;
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	int r = 0;
	struct dirent *de;
	while (r == 0 && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char p[PATH_MAX];
		if (snprintf(p, sizeof(p), "%s/%s", dir, de->d_name) >= (int)sizeof(p))
			continue;
		struct stat st;
		if (lstat(p, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			r = index_dir(s, p, depth + 1);
			continue;
		}
		size_t l = strlen(de->d_name);
		if (!S_ISREG(st.st_mode) || l < 4 || strcmp(de->d_name + l - 3, ".ko") != 0 ||
		    l - 3 >= sizeof(s->m[0].name))
			continue;
		if (s->n == s->cap) {
			size_t cap = s->cap ? s->cap * 2 : 1024;
			struct mod *nm = realloc(s->m, cap * sizeof(*nm));
			if (!nm) {
				r = -ENOMEM;
				break;
			}
			s->m = nm;
			s->cap = cap;
		}
		struct mod *m = &s->m[s->n++];
		memcpy(m->name, de->d_name, l - 3);
		m->name[l - 3] = '\0';
		norm(m->name);
		snprintf(m->path, sizeof(m->path), "%s", p);
		m->state = 0;
	}
	closedir(d);
	return r;
}

static struct mod *find(struct modset *s, const char *name)
{
	char n[64];
	snprintf(n, sizeof(n), "%s", name);
	norm(n);
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->m[i].name, n) == 0)
			return &s->m[i];
	return NULL;
}

static bool is_builtin(const struct modset *s, const char *name)
{
	if (!s->builtin)
		return false;
	char n[64];
	snprintf(n, sizeof(n), "%s", name);
	norm(n);
	/* Lines look like "kernel/fs/ext4/ext4.ko". */
	for (const char *line = s->builtin; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		const char *slash = memrchr(line, '/', len);
		const char *base = slash ? slash + 1 : line;
		size_t bl = len - (size_t)(base - line);
		if (bl > 3 && bl - 3 == strlen(n)) {
			char b[64];
			memcpy(b, base, bl - 3);
			b[bl - 3] = '\0';
			norm(b);
			if (strcmp(b, n) == 0)
				return true;
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	return false;
}

/* Copies the "depends=" value of an ELF64 module's .modinfo into out. */
static int modinfo_depends(const char *data, size_t len, char *out, size_t outlen)
{
	out[0] = '\0';
	if (len < sizeof(Elf64_Ehdr) || memcmp(data, ELFMAG, SELFMAG) != 0 ||
	    data[EI_CLASS] != ELFCLASS64)
		return -EINVAL;
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)data;
	if (eh->e_shoff == 0 || eh->e_shentsize != sizeof(Elf64_Shdr) ||
	    eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) > len || eh->e_shstrndx >= eh->e_shnum)
		return -EINVAL;
	const Elf64_Shdr *sh = (const Elf64_Shdr *)(data + eh->e_shoff);
	const Elf64_Shdr *strs = &sh[eh->e_shstrndx];
	if (strs->sh_offset + strs->sh_size > len)
		return -EINVAL;
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		if (sh[i].sh_name >= strs->sh_size ||
		    strcmp(data + strs->sh_offset + sh[i].sh_name, ".modinfo") != 0)
			continue;
		if (sh[i].sh_offset + sh[i].sh_size > len)
			return -EINVAL;
		const char *p = data + sh[i].sh_offset, *end = p + sh[i].sh_size;
		while (p < end) {
			size_t l = strnlen(p, (size_t)(end - p));
			if (l > 8 && strncmp(p, "depends=", 8) == 0) {
				snprintf(out, outlen, "%.*s", (int)(l - 8), p + 8);
				return 0;
			}
			p += l + 1;
		}
		return 0;
	}
	return 0;
}

static int visit(struct cpio *c, struct modset *s, struct mod *m, const char *kver,
		 char **list, size_t *list_len, struct err *e)
{
	if (m->state == 2)
		return 0;
	if (m->state == 1)
		return err_set(e, -ELOOP, "module dependency cycle at %s", m->name);
	m->state = 1;
	char *ko = NULL;
	size_t len = 0;
	int r = file_read_all(m->path, 64u << 20, &ko, &len);
	if (r < 0)
		return err_set(e, r, "read %s: %s", m->path, strerror(-r));
	char deps[1024];
	if (modinfo_depends(ko, len, deps, sizeof(deps)) < 0) {
		free(ko);
		return err_set(e, -EINVAL, "%s: not an ELF64 kernel module", m->path);
	}
	for (char *save = NULL, *d = strtok_r(deps, ",", &save); d; d = strtok_r(NULL, ",", &save)) {
		struct mod *dm = find(s, d);
		if (!dm) {
			if (is_builtin(s, d))
				continue;
			free(ko);
			return err_set(e, -ENOENT, "module %s needs %s, which is missing", m->name, d);
		}
		r = visit(c, s, dm, kver, list, list_len, e);
		if (r < 0) {
			free(ko);
			return r;
		}
	}
	char dst[PATH_MAX];
	snprintf(dst, sizeof(dst), "/lib/modules/%s/%s.ko", kver, m->name);
	r = cpio_add_data(c, dst, ko, len, 0644, 0, 0, e);
	free(ko);
	if (r < 0)
		return r;
	size_t add = strlen(m->name) + 4;
	char *nl = realloc(*list, *list_len + add + 1);
	if (!nl)
		return err_set(e, -ENOMEM, "out of memory");
	*list = nl;
	*list_len += (size_t)sprintf(nl + *list_len, "%s.ko\n", m->name);
	m->state = 2;
	return 0;
}

int image_modules_add(struct cpio *c, const char *moddir, const char *kver, struct err *e)
{
	struct modset s = {0};
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/kernel", moddir);
	int r = index_dir(&s, p, 0);
	if (r < 0) {
		free(s.m);
		return err_set(e, r, "kernel modules in %s: %s", p, strerror(-r));
	}
	snprintf(p, sizeof(p), "%s/modules.builtin", moddir);
	size_t blen;
	if (file_read_all(p, 16u << 20, &s.builtin, &blen) < 0)
		s.builtin = NULL;
	char *list = calloc(1, 1);
	size_t list_len = 0;
	if (!list)
		r = err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; r == 0 && i < sizeof(wanted) / sizeof(wanted[0]); i++) {
		struct mod *m = find(&s, wanted[i].name);
		if (!m) {
			if (!wanted[i].optional && !is_builtin(&s, wanted[i].name))
				r = err_set(e, -ENOENT, "kernel %s lacks module %s", kver, wanted[i].name);
			continue;
		}
		r = visit(c, &s, m, kver, &list, &list_len, e);
	}
	if (r == 0) {
		snprintf(p, sizeof(p), "/lib/modules/%s/load.list", kver);
		r = cpio_add_data(c, p, list, list_len, 0644, 0, 0, e);
	}
	free(list);
	free(s.builtin);
	free(s.m);
	return r;
}
