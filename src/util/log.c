#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum log_level max_level = LOG_INFO;
static const char *log_ident = "fleetbox";

void log_init(const char *ident)
{
	const char *v = getenv("FLEETBOX_LOG");
	if (ident)
		log_ident = ident;
	if (!v)
		return;
	if (!strcmp(v, "debug"))
		max_level = LOG_DEBUG;
	else if (!strcmp(v, "info"))
		max_level = LOG_INFO;
	else if (!strcmp(v, "warn"))
		max_level = LOG_WARN;
	else if (!strcmp(v, "error"))
		max_level = LOG_ERROR;
}

int log_enabled(enum log_level lvl)
{
	return lvl <= max_level;
}

static void vlog(enum log_level lvl, const char *suffix, const char *fmt, va_list ap)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	char line[2048];
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld %s[%d] %s: ", tm.tm_hour,
			 tm.tm_min, tm.tm_sec, (long)tv.tv_usec / 1000, log_ident, (int)getpid(),
			 names[lvl]);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		m = 0;
	size_t len = strnlen(line, sizeof(line) - 2);
	if (suffix)
		len += (size_t)snprintf(line + len, sizeof(line) - 2 - len, "%s", suffix);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	/* One write() per line so concurrent writers do not interleave. */
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	if (!log_enabled(lvl))
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(lvl, NULL, fmt, ap);
	va_end(ap);
}

int log_errno(enum log_level lvl, int err, const char *fmt, ...)
{
	if (log_enabled(lvl)) {
		char suffix[160];
		snprintf(suffix, sizeof(suffix), ": %s", strerror(err < 0 ? -err : err));
		va_list ap;
		va_start(ap, fmt);
		vlog(lvl, suffix, fmt, ap);
		va_end(ap);
	}
	return err;
}
