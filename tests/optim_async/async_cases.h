// Asynchronous optimizer test bodies shared by the local (threads) and MPI (processes) binaries.
#pragma once

#include "decent/comm/context.h"

#include <functional>
#include <string>
#include <vector>

namespace decent::testing {

struct AsyncCase {
  std::string name;
  std::function<void(Context&)> body;
  int min_size = 1;
};

const std::vector<AsyncCase>& async_cases();

}  // namespace decent::testing
