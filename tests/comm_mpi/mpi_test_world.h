// The world transport shared by the MPI transport tests (created by the tests' main()).
#pragma once

#include "decent/comm/transport.h"

#include <chrono>

namespace decent::comm::test {

Transport& world();

// Longest a test waits for one operation before failing instead of hanging.
constexpr std::chrono::seconds kWaitLimit{30};

}  // namespace decent::comm::test
