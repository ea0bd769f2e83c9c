/* t.h - tiny assertion helpers for the ssh/copy/keys tests. A failed CHECK
 * prints the location and exits 1 (so meson reports the test as failed). */
#pragma once
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                 \
	do {                                                                        \
		if (!(cond)) {                                                      \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,      \
				__LINE__, #cond);                                   \
			exit(1);                                                    \
		}                                                                   \
	} while (0)

#define CHECK_OK(expr, errp)                                                        \
	do {                                                                        \
		int r_ = (expr);                                                    \
		if (r_ < 0) {                                                       \
			fprintf(stderr, "%s:%d: %s failed: %d %s\n", __FILE__,      \
				__LINE__, #expr, r_, (errp)->msg);                  \
			exit(1);                                                    \
		}                                                                   \
	} while (0)

#define CHECK_STREQ(a, b)                                                           \
	do {                                                                        \
		const char *a_ = (a), *b_ = (b);                                    \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) {                            \
			fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", __FILE__,      \
				__LINE__, a_ ? a_ : "(null)", b_ ? b_ : "(null)");  \
			exit(1);                                                    \
		}                                                                   \
	} while (0)

#define TEST_SKIP 77

/* snprintf that fails the test on truncation (and keeps -Wformat-truncation quiet). */
#define FMT(buf, ...) CHECK(snprintf((buf), sizeof(buf), __VA_ARGS__) < (int)sizeof(buf))
