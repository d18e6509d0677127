// Window test bodies shared by the local (threads) and MPI (processes) binaries; each runs on
// every rank with that rank's Context and checks values that follow from the maths.
#pragma once

#include "decent/comm/context.h"

#include <functional>
#include <string>
#include <vector>

namespace decent::testing {

struct WindowCase {
  std::string name;
  std::function<void(Context&)> body;
  int min_size = 1;                                // skip smaller jobs
  std::function<void(ContextOptions&)> configure;  // per-case options (timeouts)
};

const std::vector<WindowCase>& window_cases();

}  // namespace decent::testing
