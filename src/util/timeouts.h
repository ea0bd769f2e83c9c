/* timeouts.h - the long waits of fleetbox in one place, scaled to what the
 * guest is and what runs it (docs/timeouts.md has the table).
 *
 * A systemd guest under TCG needs minutes to boot and 9-14 s to power off;
 * under KVM a fraction of that; the mini image powers off the moment its init
 * sees the ACPI event. Every default below fits the slow case, and every one
 * has an environment override ("300", "90s", "2m30s", "1500ms", "1h"):
 *   FLEETBOX_IP_WAIT_TIMEOUT   holder: VMM start -> guest port 22 accepts
 *   FLEETBOX_SSH_WAIT_TIMEOUT  client: port 22 open -> an SSH session works
 *   FLEETBOX_STOP_TIMEOUT      holder: graceful power-off before SIGTERM
 * A stop escalates: graceful (ACPI) -> grace -> SIGTERM -> TO_TERM_MS ->
 * SIGKILL. A halt (bound holder whose client died: nobody waits for a clean
 * power-off) skips the graceful phase: SIGTERM -> TO_HALT_MS -> SIGKILL. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#define TO_TERM_MS 5000u          /* SIGTERM -> SIGKILL */
#define TO_HALT_MS 1000u          /* halt: SIGTERM -> SIGKILL */
#define TO_STOP_MARGIN_MS 10000u  /* client wait beyond the holder's escalation */
#define TO_STOP_MAX_MS 3600000u   /* longest grace we accept (1 h) */

#define TO_BOOT_TCG_MS 300000u
#define TO_BOOT_KVM_MS 120000u
#define TO_GRACE_MINI_MS 5000u
#define TO_GRACE_TCG_MS 60000u
#define TO_GRACE_KVM_MS 30000u

/* Parses a duration: plain seconds ("300", "2.5") or Go-style units
 * ("90s", "2m30s", "1500ms", "1h"). 0, or -EINVAL for junk and for 0. */
int timeouts_parse(const char *s, uint64_t *ms);
/* The environment variable as a duration, else def (junk: def too). */
uint64_t timeouts_env(const char *name, uint64_t def);
/* True when VMs here run under KVM (FLEETBOX_ACCEL and the host probe,
 * util/accel.h), so the defaults can be shorter. */
bool timeouts_kvm(void);

uint64_t timeouts_boot_ms(void);  /* FLEETBOX_IP_WAIT_TIMEOUT, 300 s TCG / 120 s KVM */
uint64_t timeouts_ssh_ms(void);   /* FLEETBOX_SSH_WAIT_TIMEOUT, same defaults */
/* Graceful power-off before SIGTERM: FLEETBOX_STOP_TIMEOUT, else 5 s for the
 * mini image, 60 s for other images under TCG, 30 s under KVM. */
uint64_t timeouts_stop_grace_ms(bool mini);
/* True when FLEETBOX_STOP_TIMEOUT holds a valid duration (into *ms). */
bool timeouts_stop_env(uint64_t *ms);
/* How long a holder may take to stop a VM given that grace: grace + SIGTERM
 * phase; and how long a client waits for it: that + TO_STOP_MARGIN_MS. */
uint64_t timeouts_stop_escalation_ms(uint64_t grace_ms);
uint64_t timeouts_stop_wait_ms(uint64_t grace_ms);
