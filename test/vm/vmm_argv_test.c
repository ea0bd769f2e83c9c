/* vmm_argv_test.c - pure parts of the QEMU / cloud-hypervisor drivers (suite
 * "unit"): the command lines, the accelerator decision, the boot timeout
 * parser and the serial-log tail. */
#include "util/cmd.h"
#include "util/err.h"
#include "util/accel.h"
#include "util/timeouts.h"
#include "vmm/qemu_argv.h"
#include "vmm/qemu_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, #c); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } } while (0)

static char *joined(struct cmd *c)
{
	char *s = cmd_to_string(c);
	CHECK(s, "oom");
	return s;
}

static void spec_init(struct vmm_boot_spec *s, const char *disk, const char *seed,
		      const char *const *fix, size_t nfix)
{
	memset(s, 0, sizeof(*s));
	s->name = "web-1";
	s->member_dir = "/r/clusters/web/web-1";
	s->disk_path = disk;
	s->seed_path = seed;
	s->fixture_paths = fix;
	s->n_fixtures = nfix;
	s->serial_log_path = "/r/clusters/web/web-1/serial.log";
	s->kernel_path = "/r/images/mini/vmlinux";
	s->initrd_path = "/r/images/mini/initrd";
	s->cmdline = "console=ttyS0 quiet";
	s->cpus = 2;
	s->memory_bytes = 1ull << 30;
	s->mac = "02:11:22:33:44:55";
	s->ip = "192.168.3.2";
	s->tap = "fbtap0";
}

static void test_ch(void)
{
	char dir[] = "/tmp/fbargv-XXXXXX";
	CHECK(mkdtemp(dir), "mkdtemp");
	char disk[64], seed[64], fix0[64], fix1[64];
	snprintf(disk, sizeof(disk), "%s/disk", dir);
	snprintf(seed, sizeof(seed), "%s/seed.iso", dir);
	snprintf(fix0, sizeof(fix0), "%s/fixture-0.img", dir);
	snprintf(fix1, sizeof(fix1), "%s/fixture-1.img", dir);
	struct vmm_boot_spec s;
	const char *fix[] = {fix0, fix1};
	spec_init(&s, disk, seed, fix, 2);
	struct cmd c = {0};
	struct err e = {0};
	/* Validation: disk and seed must exist. */
	CHECK(ch_argv_build("cloud-hypervisor", "/r/ch.sock", &s, &c, &e) < 0, "missing disk accepted");
	cmd_fini(&c);
	FILE *f = fopen(disk, "w");
	CHECK(f, "create");
	fclose(f);
	CHECK(ch_argv_build("cloud-hypervisor", "/r/ch.sock", &s, &c, &e) < 0, "missing seed accepted");
	cmd_fini(&c);
	f = fopen(seed, "w");
	fclose(f);
	s.cpus = 0;
	CHECK(ch_argv_build("cloud-hypervisor", "/r/ch.sock", &s, &c, &e) < 0, "cpus 0 accepted");
	cmd_fini(&c);
	s.cpus = 2;
	s.memory_bytes = 255ull << 20;
	CHECK(ch_argv_build("cloud-hypervisor", "/r/ch.sock", &s, &c, &e) < 0, "255 MB accepted");
	cmd_fini(&c);
	s.memory_bytes = 1ull << 30;
	s.cmdline = NULL;
	CHECK(ch_argv_build("cloud-hypervisor", "/r/ch.sock", &s, &c, &e) == 0, "%s", e.msg);
	char *got = joined(&c);
	char want[2048];
	snprintf(want, sizeof(want),
		 "cloud-hypervisor --api-socket /r/ch.sock --kernel /r/images/mini/vmlinux "
		 "--initramfs /r/images/mini/initrd --cmdline 'console=ttyS0 root=/dev/vda1 rw' "
		 "--disk path=%s path=%s,readonly=on path=%s,readonly=on path=%s,readonly=on "
		 "--cpus boot=2 --memory size=1024M --net tap=fbtap0,mac=02:11:22:33:44:55 "
		 "--console off --serial file=/r/clusters/web/web-1/serial.log",
		 disk, seed, fix0, fix1);
	CHECK(strcmp(got, want) == 0, "\n got: %s\nwant: %s", got, want);
	free(got);
	cmd_fini(&c);
	unlink(disk);
	unlink(seed);
	rmdir(dir);
}

static void test_qemu(void)
{
	struct vmm_boot_spec s;
	const char *fix[] = {"/r/f,0.img"};
	spec_init(&s, "/r/clusters/web/web-1/disk", "/r/clusters/web/web-1/seed.iso", fix, 1);
	struct qemu_opts o = {.binary = "qemu-system-x86_64", .accel = VMM_ACCEL_TCG, .machine = "pc",
			      .tb_size_mb = 64, .qmp_path = "/r/clusters/web/web-1/qmp.sock",
			      .disk_format = "qcow2"};
	struct cmd c = {0};
	struct err e = {0};
	CHECK(qemu_argv_build(&o, &s, &c, &e) == 0, "%s", e.msg);
	char *got = joined(&c);
	const char *want =
		"qemu-system-x86_64 -name web-1 -M pc -accel tcg,tb-size=64 -cpu max -smp 2 -m 1024M "
		"-nodefaults -no-user-config -display none -kernel /r/images/mini/vmlinux "
		"-initrd /r/images/mini/initrd -append 'console=ttyS0 quiet' "
		"-drive file=/r/clusters/web/web-1/disk,if=none,id=disk0,format=qcow2,cache=writeback,discard=unmap "
		"-device virtio-blk-pci,drive=disk0 "
		"-drive file=/r/clusters/web/web-1/seed.iso,if=none,id=seed,format=raw,cache=writeback,discard=unmap,readonly=on "
		"-device virtio-blk-pci,drive=seed "
		"-drive file=/r/f,,0.img,if=none,id=fix0,format=raw,cache=writeback,discard=unmap,readonly=on "
		"-device virtio-blk-pci,drive=fix0 "
		"-netdev tap,id=n0,ifname=fbtap0,script=no,downscript=no "
		"-device virtio-net-pci,netdev=n0,mac=02:11:22:33:44:55 "
		"-object rng-random,id=rng0,filename=/dev/urandom -device virtio-rng-pci,rng=rng0 "
		"-serial file:/r/clusters/web/web-1/serial.log "
		"-qmp unix:/r/clusters/web/web-1/qmp.sock,server=on,wait=off";
	CHECK(strcmp(got, want) == 0, "\n got: %s\nwant: %s", got, want);
	free(got);
	cmd_fini(&c);

	/* microvm under TCG: mmio devices and tsc_early_khz appended. */
	o.machine = "microvm";
	CHECK(qemu_argv_build(&o, &s, &c, &e) == 0, "%s", e.msg);
	got = joined(&c);
	CHECK(strstr(got, "-M microvm,acpi=on") && strstr(got, "virtio-blk-device,drive=disk0") &&
	      strstr(got, "'console=ttyS0 quiet tsc_early_khz=2000000'"), "%s", got);
	free(got);
	cmd_fini(&c);

	/* KVM: -cpu host, no tb-size. */
	o.machine = "q35";
	o.accel = VMM_ACCEL_KVM;
	CHECK(qemu_argv_build(&o, &s, &c, &e) == 0, "%s", e.msg);
	got = joined(&c);
	CHECK(strstr(got, "-M q35 -accel kvm -cpu host -smp 2") && !strstr(got, "tb-size"), "%s", got);
	free(got);
	cmd_fini(&c);

	/* The backing chain the holder opened is named on the command line, so
	 * QEMU never opens the names written in the image headers. */
	const char *bp[] = {"/proc/self/fd/7", "/proc/self/fd/8"}, *bf[] = {"qcow2", "raw"};
	s.backing_paths = bp;
	s.backing_formats = bf;
	s.n_backing = 2;
	CHECK(qemu_argv_build(&o, &s, &c, &e) == 0, "%s", e.msg);
	got = joined(&c);
	CHECK(strstr(got, "id=disk0,format=qcow2,cache=writeback,discard=unmap,"
			  "backing.file.filename=/proc/self/fd/7,backing.driver=qcow2,"
			  "backing.backing.file.filename=/proc/self/fd/8,backing.backing.driver=raw "),
	      "%s", got);
	CHECK(strstr(got, "id=seed,format=raw,cache=writeback,discard=unmap,readonly=on "), "%s", got);
	free(got);
	cmd_fini(&c);
	s.n_backing = 0;
	/* A tap the holder opened: by fd, no /dev/net/tun needed. */
	s.tap_fd = 9;
	CHECK(qemu_argv_build(&o, &s, &c, &e) == 0, "%s", e.msg);
	got = joined(&c);
	CHECK(strstr(got, "-netdev tap,id=n0,fd=9 -device virtio-net-pci,netdev=n0,mac=02:11:22:33:44:55"),
	      "%s", got);
	free(got);
	cmd_fini(&c);
	s.tap_fd = 0;

	s.cpus = 0;
	CHECK(qemu_argv_build(&o, &s, &c, &e) < 0, "cpus 0 accepted");
	cmd_fini(&c);
}

static void test_accel(void)
{
	enum vmm_accel a;
	char warn[256];
	struct err e = {0};
	struct accel_host pvm = {.dev_kvm = true, .kvm_pvm = true};
	struct accel_host real = {.dev_kvm = true, .kvm_hw = true, .cpu_virt = true};
	struct accel_host none = {0};
	CHECK(accel_choose("auto", &pvm, &a, warn, sizeof(warn), &e) == 0 && a == VMM_ACCEL_TCG, "pvm");
	CHECK(strstr(warn, "kvm_pvm") && strstr(warn, "TCG"), "warning: %s", warn);
	CHECK(accel_choose(NULL, &real, &a, warn, sizeof(warn), &e) == 0 && a == VMM_ACCEL_KVM && !warn[0],
	      "real kvm");
	CHECK(accel_choose("auto", &none, &a, warn, sizeof(warn), &e) == 0 && a == VMM_ACCEL_TCG && warn[0],
	      "no kvm");
	CHECK(accel_choose("tcg", &real, &a, warn, sizeof(warn), &e) == 0 && a == VMM_ACCEL_TCG && !warn[0],
	      "forced tcg");
	CHECK(accel_choose("kvm", &none, &a, warn, sizeof(warn), &e) < 0, "kvm without /dev/kvm");
	CHECK(accel_choose("kvm", &pvm, &a, warn, sizeof(warn), &e) == 0 && a == VMM_ACCEL_KVM && warn[0],
	      "forced kvm on pvm");
	CHECK(accel_choose("hvf", &real, &a, warn, sizeof(warn), &e) < 0, "unknown accel");
}

static void test_timeout_and_tail(void)
{
	uint64_t def = timeouts_kvm() ? TO_BOOT_KVM_MS : TO_BOOT_TCG_MS, ms = 0;
	unsetenv("FLEETBOX_IP_WAIT_TIMEOUT");
	CHECK(timeouts_boot_ms() == def, "default");
	setenv("FLEETBOX_ACCEL", "tcg", 1);
	CHECK(timeouts_boot_ms() == 300000, "TCG default fits a systemd guest");
	CHECK(timeouts_ssh_ms() == 300000, "TCG SSH default");
	unsetenv("FLEETBOX_ACCEL");
	setenv("FLEETBOX_IP_WAIT_TIMEOUT", "300", 1);
	CHECK(timeouts_boot_ms() == 300000, "seconds");
	setenv("FLEETBOX_IP_WAIT_TIMEOUT", "2m30s", 1);
	CHECK(timeouts_boot_ms() == 150000, "go duration");
	setenv("FLEETBOX_IP_WAIT_TIMEOUT", "junk", 1);
	CHECK(timeouts_boot_ms() == def, "junk falls back");
	unsetenv("FLEETBOX_IP_WAIT_TIMEOUT");
	CHECK(timeouts_parse("1500ms", &ms) == 0 && ms == 1500, "ms");
	CHECK(timeouts_parse("1h", &ms) == 0 && ms == 3600000, "hours");
	CHECK(timeouts_parse("0", &ms) < 0 && timeouts_parse("-5", &ms) < 0 &&
	      timeouts_parse("5x", &ms) < 0 && timeouts_parse("", &ms) < 0, "junk refused");
	/* stop grace: mini short, stock long (TCG), env wins */
	setenv("FLEETBOX_ACCEL", "tcg", 1);
	unsetenv("FLEETBOX_STOP_TIMEOUT");
	CHECK(timeouts_stop_grace_ms(true) == TO_GRACE_MINI_MS, "mini grace");
	CHECK(timeouts_stop_grace_ms(false) == TO_GRACE_TCG_MS, "stock grace under TCG");
	setenv("FLEETBOX_STOP_TIMEOUT", "90s", 1);
	CHECK(timeouts_stop_grace_ms(true) == 90000 && timeouts_stop_grace_ms(false) == 90000,
	      "FLEETBOX_STOP_TIMEOUT");
	setenv("FLEETBOX_STOP_TIMEOUT", "2h", 1);
	CHECK(timeouts_stop_grace_ms(false) == TO_GRACE_TCG_MS, "over 1 h refused");
	unsetenv("FLEETBOX_STOP_TIMEOUT");
	unsetenv("FLEETBOX_ACCEL");
	CHECK(timeouts_stop_wait_ms(60000) > timeouts_stop_escalation_ms(60000) &&
	      timeouts_stop_escalation_ms(60000) == 60000 + TO_TERM_MS, "client waits longer");

	/* the console watchdog: panics and emergency shells, excerpt sanitized */
	char why[400];
	static const char alert[] = "Begin: Running /scripts/local-block ... done.\r\n"
				    "\033[1;31mALERT!\033[0m  UUID=1234 does not exist.  Dropping to a shell!\r\n";
	CHECK(vmcore_console_fatal(alert, sizeof(alert) - 1, why, sizeof(why)) == 1, "ALERT! seen");
	CHECK(strstr(why, "emergency shell") && strstr(why, "UUID=1234 does not exist") &&
	      !strchr(why, '\033') && !strstr(why, "[1;31m"), "excerpt: %s", why);
	static const char em[] = "You are in emergency mode. After logging in, type ...\n";
	CHECK(vmcore_console_fatal(em, sizeof(em) - 1, why, sizeof(why)) == 1 &&
	      strstr(why, "emergency mode"), "systemd emergency mode");
	static const char ok[] = "[  OK  ] Reached target Multi-User System.\n";
	CHECK(vmcore_console_fatal(ok, sizeof(ok) - 1, why, sizeof(why)) == 0, "a normal boot");

	char path[] = "/tmp/fbtail-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0, "mkstemp");
	const char *log = "line1\nline2\r\nline3 \x1b[0m\nlast line\n\n";
	CHECK(write(fd, log, strlen(log)) == (ssize_t)strlen(log), "write");
	close(fd);
	char out[256];
	vmcore_tail(path, 2, out, sizeof(out));
	CHECK(strcmp(out, "line3  | last line") == 0, "tail, escapes removed: \"%s\"", out);
	vmcore_tail("/nonexistent/x", 3, out, sizeof(out));
	CHECK(out[0] == '\0', "tail of a missing file");
	unlink(path);

	/* The QMP socket falls back to <root>/run/ when the member dir is long. */
	struct vmm_boot_spec s = {.name = "web-1"};
	char longdir[300];
	snprintf(longdir, sizeof(longdir), "/r/%0120d/clusters/web/web-1", 0);
	s.member_dir = longdir;
	char p[200];
	struct err e = {0};
	CHECK(vmcore_ctl_path(&s, "qmp.sock", "qmp", p, sizeof(p), &e) < 0, "too long accepted");
	s.member_dir = "/r/clusters/web/web-1";
	CHECK(vmcore_ctl_path(&s, "qmp.sock", "qmp", p, sizeof(p), &e) == 0 &&
	      strcmp(p, "/r/clusters/web/web-1/qmp.sock") == 0, "%s", p);
	char mid[300];
	snprintf(mid, sizeof(mid), "/%079d/clusters/web/web-1", 0);
	s.member_dir = mid;
	CHECK(vmcore_ctl_path(&s, "qmp.sock", "qmp", p, sizeof(p), &e) == 0 && strstr(p, "/run/") &&
	      strlen(p) < 108, "%s", p);
}

int main(void)
{
	test_ch();
	test_qemu();
	test_accel();
	test_timeout_and_tail();
	printf("ok\n");
	return 0;
}
