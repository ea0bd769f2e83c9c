/* timeouts.c - see timeouts.h. */
#include "util/timeouts.h"
#include "util/accel.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

/* One "<number><unit>" step of a duration; returns the rest or NULL. */
static const char *parse_step(const char *p, double *ms)
{
	char *end;
	double v = strtod(p, &end);
	if (end == p || !(v >= 0) || isinf(v))
		return NULL;
	double mult = 1000;
	if (*end == 'h')
		mult = 3600000, end++;
	else if (end[0] == 'm' && end[1] == 's')
		mult = 1, end += 2;
	else if (*end == 'm')
		mult = 60000, end++;
	else if (*end == 's')
		end++;
	else if (*end)
		return NULL;
	*ms = v * mult;
	return end;
}

int timeouts_parse(const char *s, uint64_t *ms)
{
	if (!s || !*s)
		return -EINVAL;
	double total = 0;
	for (const char *p = s; *p;) {
		double step;
		if (!(p = parse_step(p, &step)))
			return -EINVAL;
		total += step;
	}
	/* Bounded well inside uint64_t: a year is plenty for any wait. */
	if (total < 1 || total > 365.0 * 86400000.0)
		return -EINVAL;
	*ms = (uint64_t)total;
	return 0;
}

uint64_t timeouts_env(const char *name, uint64_t def)
{
	uint64_t ms;
	return timeouts_parse(getenv(name), &ms) == 0 ? ms : def;
}

bool timeouts_kvm(void)
{
	struct accel_host h;
	enum vmm_accel a;
	char warn[256];
	accel_probe_host(&h);
	return accel_choose(getenv("FLEETBOX_ACCEL"), &h, &a, warn, sizeof(warn), NULL) == 0 &&
	       a == VMM_ACCEL_KVM;
}

uint64_t timeouts_boot_ms(void)
{
	return timeouts_env("FLEETBOX_IP_WAIT_TIMEOUT",
			    timeouts_kvm() ? TO_BOOT_KVM_MS : TO_BOOT_TCG_MS);
}

uint64_t timeouts_ssh_ms(void)
{
	return timeouts_env("FLEETBOX_SSH_WAIT_TIMEOUT",
			    timeouts_kvm() ? TO_BOOT_KVM_MS : TO_BOOT_TCG_MS);
}

bool timeouts_stop_env(uint64_t *ms)
{
	uint64_t v;
	if (timeouts_parse(getenv("FLEETBOX_STOP_TIMEOUT"), &v) < 0 || v > TO_STOP_MAX_MS)
		return false;
	*ms = v;
	return true;
}

uint64_t timeouts_stop_grace_ms(bool mini)
{
	uint64_t ms;
	if (timeouts_stop_env(&ms))
		return ms;
	if (mini)
		return TO_GRACE_MINI_MS;
	return timeouts_kvm() ? TO_GRACE_KVM_MS : TO_GRACE_TCG_MS;
}

uint64_t timeouts_stop_escalation_ms(uint64_t grace_ms)
{
	return grace_ms + TO_TERM_MS;
}

uint64_t timeouts_stop_wait_ms(uint64_t grace_ms)
{
	return timeouts_stop_escalation_ms(grace_ms) + TO_STOP_MARGIN_MS;
}
