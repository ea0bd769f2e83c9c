/* qemu_argv.c - see qemu_argv.h.
 *
 * QEMU flags and why (numbers: see bench/BOOT.md):
 *   -nodefaults -no-user-config -display none: no VGA, no default NIC/CD/floppy,
 *     no host config files; less to emulate and probe under TCG.
 *   -accel tcg,tb-size=N: caps the translation cache (default 1 GiB per VM!).
 *   -cpu max under TCG: RDRAND etc., so the guest RNG seeds at once;
 *     -cpu host under KVM.
 *   virtio-blk for every disk (member disk rw, seed and fixtures ro, in that
 *     order: /dev/vda, vdb, vdc...), virtio-net on the member's tap,
 *     virtio-rng fed by /dev/urandom (dropbear must not wait for entropy).
 *   -serial file: the console log; -qmp unix socket for system_powerdown.
 * File names are escaped for QEMU's option syntax (',' doubled). */
#include "vmm/qemu_argv.h"

#include "util/cmd.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *qemu_disk_format(const char *path)
{
	unsigned char m[4] = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (read(fd, m, sizeof(m)) != (ssize_t)sizeof(m))
			memset(m, 0, sizeof(m));
		close(fd);
	}
	return memcmp(m, "QFI\xfb", 4) == 0 ? "qcow2" : "raw";
}

unsigned long qemu_host_tsc_khz(void)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	if (!f)
		return 0;
	char line[512];
	double mhz = 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "cpu MHz : %lf", &mhz) == 1)
			break;
	fclose(f);
	return mhz > 100 ? (unsigned long)(mhz * 1000) : 0;
}

bool qemu_kernel_is_elf(const char *path)
{
	unsigned char m[4] = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool elf = read(fd, m, 4) == 4 && memcmp(m, "\177ELF", 4) == 0;
	close(fd);
	return elf;
}

/* QEMU option values: ',' must be doubled. Caller frees. */
static char *esc(const char *s)
{
	size_t n = strlen(s), extra = 0;
	for (size_t i = 0; i < n; i++)
		extra += s[i] == ',';
	char *o = malloc(n + extra + 1), *p = o;
	if (!o)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		*p++ = s[i];
		if (s[i] == ',')
			*p++ = ',';
	}
	*p = '\0';
	return o;
}

/* ",backing.file.filename=F,backing.driver=D,backing.backing...": the
 * backing chain the holder opened, so QEMU never opens a name it read from
 * an image header. "" when the spec carries no chain. */
static char *backing_opts(const struct vmm_boot_spec *s)
{
	size_t cap = 1;
	for (size_t i = 0; i < s->n_backing; i++)
		cap += 2 * (i + 1) * 8 + 2 * strlen(s->backing_paths[i]) + strlen(s->backing_formats[i]) + 40;
	char *o = calloc(1, cap), *prefix = calloc(1, 8 * s->n_backing + 1);
	size_t n = 0;
	for (size_t i = 0; o && prefix && i < s->n_backing; i++) {
		strcat(prefix, "backing.");
		char *f = esc(s->backing_paths[i]);
		if (!f) {
			free(o);
			o = NULL;
			break;
		}
		n += (size_t)snprintf(o + n, cap - n, ",%sfile.filename=%s,%sdriver=%s", prefix, f,
				      prefix, s->backing_formats[i]);
		free(f);
	}
	free(prefix);
	return o;
}

static void add_disk(struct cmd *c, const char *bus, const char *id, const char *path,
		     const char *fmt, bool ro, const char *extra)
{
	char *p = esc(path);
	if (!p || !extra) {
		free(p);
		cmd_add(c, NULL); /* records -ENOMEM */
		return;
	}
	cmd_add(c, "-drive");
	cmd_addf(c, "file=%s,if=none,id=%s,format=%s,cache=writeback,discard=unmap%s%s", p, id, fmt,
		 ro ? ",readonly=on" : "", extra);
	cmd_add(c, "-device");
	cmd_addf(c, "virtio-blk-%s,drive=%s", bus, id);
	free(p);
}

int qemu_argv_build(const struct qemu_opts *o, const struct vmm_boot_spec *s, struct cmd *c,
		    struct err *e)
{
	if (!s->disk_path || !s->seed_path || !s->kernel_path || !s->serial_log_path || !o->qmp_path)
		return err_set(e, -EINVAL, "qemu: missing disk, seed, kernel, serial log or QMP path");
	if (s->cpus < 1 || s->memory_bytes < (64ull << 20))
		return err_set(e, -EINVAL, "qemu: need cpus >= 1 and memory >= 64 MiB");
	bool microvm = strcmp(o->machine, "microvm") == 0;
	const char *bus = microvm ? "device" : "pci";

	cmd_init(c, o->binary);
	cmd_add(c, "-name");
	cmd_addf(c, "%s", s->name);
	cmd_add(c, "-M");
	if (microvm)
		cmd_add(c, "microvm,acpi=on,pit=off,pic=off,rtc=on");
	else
		cmd_add(c, o->machine);
	cmd_add(c, "-accel");
	if (o->accel == VMM_ACCEL_KVM) {
		cmd_add(c, "kvm");
		cmd_add(c, "-cpu");
		cmd_add(c, "host");
	} else {
		if (o->tb_size_mb)
			cmd_addf(c, "tcg,tb-size=%u", o->tb_size_mb);
		else
			cmd_add(c, "tcg");
		cmd_add(c, "-cpu");
		cmd_add(c, "max");
	}
	cmd_add(c, "-smp");
	cmd_addf(c, "%d", s->cpus);
	cmd_add(c, "-m");
	cmd_addf(c, "%lluM", (unsigned long long)(s->memory_bytes >> 20));
	cmd_add(c, "-nodefaults");
	cmd_add(c, "-no-user-config");
	cmd_add(c, "-display");
	cmd_add(c, "none");

	char *k = esc(s->kernel_path);
	cmd_add(c, "-kernel");
	cmd_add(c, k);
	free(k);
	if (s->initrd_path && *s->initrd_path) {
		char *i = esc(s->initrd_path);
		cmd_add(c, "-initrd");
		cmd_add(c, i);
		free(i);
	}
	cmd_add(c, "-append");
	const char *cl = s->cmdline && *s->cmdline ? s->cmdline : VMM_DEFAULT_CMDLINE;
	/* microvm under TCG hangs calibrating the TSC without a given rate. */
	if (microvm && o->accel == VMM_ACCEL_TCG && !strstr(cl, "tsc_early_khz="))
		cmd_addf(c, "%s tsc_early_khz=%lu", cl, o->tsc_khz ? o->tsc_khz : 2000000ul);
	else
		cmd_add(c, cl);

	char *bk = backing_opts(s);
	add_disk(c, bus, "disk0", s->disk_path, o->disk_format ? o->disk_format : "qcow2", false, bk);
	free(bk);
	add_disk(c, bus, "seed", s->seed_path, "raw", true, "");
	for (size_t i = 0; i < s->n_fixtures; i++) {
		char id[32];
		snprintf(id, sizeof(id), "fix%zu", i);
		add_disk(c, bus, id, s->fixture_paths[i], "raw", true, "");
	}
	if (s->tap && *s->tap) {
		if (!s->mac)
			return err_set(e, -EINVAL, "qemu: a tap needs a MAC");
		cmd_add(c, "-netdev");
		if (s->tap_fd > 2) /* opened by the holder: QEMU needs no /dev/net/tun */
			cmd_addf(c, "tap,id=n0,fd=%d", s->tap_fd);
		else
			cmd_addf(c, "tap,id=n0,ifname=%s,script=no,downscript=no", s->tap);
		cmd_add(c, "-device");
		cmd_addf(c, "virtio-net-%s,netdev=n0,mac=%s", bus, s->mac);
	}
	cmd_add(c, "-object");
	cmd_add(c, "rng-random,id=rng0,filename=/dev/urandom");
	cmd_add(c, "-device");
	cmd_addf(c, "virtio-rng-%s,rng=rng0", bus);
	char *sl = esc(s->serial_log_path), *q = esc(o->qmp_path);
	cmd_add(c, "-serial");
	if (sl)
		cmd_addf(c, "file:%s", sl);
	else
		cmd_add(c, NULL);
	cmd_add(c, "-qmp");
	if (q)
		cmd_addf(c, "unix:%s,server=on,wait=off", q);
	else
		cmd_add(c, NULL);
	free(sl);
	free(q);
	if (!cmd_argv(c))
		return err_set(e, -ENOMEM, "out of memory building the qemu command line");
	return 0;
}
