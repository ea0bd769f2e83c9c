/* proc.h - process identity that survives PID reuse: a process is its pid
 * plus its start time (/proc/<pid>/stat field 22, clock ticks since boot), so
 * a recycled pid never counts as the same process. Zombies count as gone. */
#pragma once
#include <stdbool.h>
#include <sys/types.h>

/* Start time of a live, non-zombie process, else -ESRCH. */
int proc_start_time(pid_t pid, unsigned long long *start);
/* Same process as recorded (pid alive and start time equal). */
bool proc_same(pid_t pid, unsigned long long start);
/* The environment entry that marks a VMM process as a member's:
 * FLEETBOX_VMM_OF=<member dir> (set by vmm_spawn, checked by reconcile). */
#define PROC_VMM_MARK "FLEETBOX_VMM_OF"
/* True when the process's initial environment holds exactly `entry`
 * ("NAME=value"). Marks processes as ours: see vmm_spawn's FLEETBOX_VMM_OF. */
bool proc_env_has(pid_t pid, const char *entry);
