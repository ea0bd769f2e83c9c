/* fuzz.h - shared by the libFuzzer targets: the entry point and a check that
 * traps (libFuzzer reports it as a crash with the input that caused it). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

/* A NUL-terminated copy of data (caller frees). */
static inline char *fuzz_str(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Splits a copy of data at NUL bytes into at most n fields (missing ones ""). */
static inline char *fuzz_fields(const uint8_t *data, size_t size, const char **f, size_t n)
{
	char *s = fuzz_str(data, size);
	size_t k = 0;
	f[k++] = s;
	for (size_t i = 0; i < size && k < n; i++)
		if (s[i] == '\0')
			f[k++] = s + i + 1;
	for (; k < n; k++)
		f[k] = "";
	return s;
}
