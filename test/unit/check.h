/* check.h - minimal assertions for C tests: a failed CHECK prints the
 * location and expression and exits 1, so meson reports the test failed. */
#pragma once
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                   \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			exit(1);                                                      \
		}                                                                     \
	} while (0)

#define CHECK_STR(a, b)                                                               \
	do {                                                                          \
		const char *a_ = (a), *b_ = (b);                                      \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) {                              \
			fprintf(stderr, "%s:%d: CHECK_STR failed: %s\n  got:  \"%s\"\n  want: \"%s\"\n", \
				__FILE__, __LINE__, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
			exit(1);                                                      \
		}                                                                     \
	} while (0)

#define CHECK_INT(a, b)                                                               \
	do {                                                                          \
		long long a_ = (long long)(a), b_ = (long long)(b);                   \
		if (a_ != b_) {                                                       \
			fprintf(stderr, "%s:%d: CHECK_INT failed: %s = %lld, want %lld\n", \
				__FILE__, __LINE__, #a, a_, b_);                      \
			exit(1);                                                      \
		}                                                                     \
	} while (0)
