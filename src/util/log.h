/* log.h - logging for the holder and the CLI only. Library code (src/client,
 * src/rpc) never prints; it returns errors. Level from FLEETBOX_LOG
 * (error|warn|info|debug), default info. Lines go to stderr, which for a holder
 * is its runner log. */
#pragma once

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_init(const char *ident);
int log_enabled(enum log_level lvl);
__attribute__((format(printf, 2, 3)))
void log_msg(enum log_level lvl, const char *fmt, ...);
/* Logs "<msg>: <strerror(-err)>" and returns err (negative errno). */
__attribute__((format(printf, 3, 4)))
int log_errno(enum log_level lvl, int err, const char *fmt, ...);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
