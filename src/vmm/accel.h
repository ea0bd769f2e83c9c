/* accel.h - moved to util/accel.h (the client scales its waits with it too);
 * kept so includes of the old path still build. */
#pragma once
#include "util/accel.h"
