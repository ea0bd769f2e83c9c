/* tree.h - a sample host tree exercising cp semantics, and a tree comparison. */
#pragma once
#include <stddef.h>

/* Creates dir (must not exist) with: a.txt 0644, run.sh 0755, private/ 0700
 * holding secret, empty/ 0755, link -> a.txt, loop1 <-> loop2, dangling -> nowhere,
 * sub/deeper/up -> ../../a.txt, a 6 MiB pseudo-random big.bin, a 150-char nested
 * path, a non-ASCII name, a name with a quote and spaces, and a fifo. */
void tree_make(const char *dir);
/* Fails the test (with the differing path) unless a and b hold the same names,
 * types, permission bits, file bytes and symlink targets. */
void tree_compare(const char *a, const char *b);
