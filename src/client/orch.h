/* orch.h - orchestration shared by the public API and the CLI. */
#pragma once
#include "fleetbox.h"

struct err;

/* fb_error <-> struct err */
void orch_err_export(const struct err *e, fb_error *out);
/* Resolves opt root or the default into buf. */
int orch_root(const char *root, char *buf, size_t len, struct err *e);
