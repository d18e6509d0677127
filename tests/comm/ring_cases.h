// Ring allreduce cases, run on both backends (tests/comm/ring_local_test.cpp and
// ring_mpi_test.cpp) with the same CommCase shape as the shared suite.
#pragma once

#include "cases.h"

#include <vector>

namespace decent::testing {

const std::vector<CommCase>& ring_cases();

}  // namespace decent::testing
