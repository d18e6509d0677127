// Multi-rank test bodies shared by the local (threads) and MPI (processes) test binaries. Each
// body runs on every rank with that rank's Context and computes its expected values from the
// maths (mixing matrices of the topology library), so both backends check the same facts.
#pragma once

#include "decent/comm/context.h"

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace decent::testing {

struct CommCase {
  std::string name;
  std::function<void(Context&)> body;
  int min_size = 1;                                // skip smaller jobs
  bool powers_of_two_only = false;                 // skip sizes that are not powers of two
  std::function<void(ContextOptions&)> configure;  // per-case options (timeouts, layout...)
};

const std::vector<CommCase>& comm_cases();

// Sizes the local backend runs every case at (the MPI binary runs at its world size).
inline const std::vector<int>& local_sizes() {
  static const std::vector<int> sizes = {1, 2, 3, 4, 5, 8};
  return sizes;
}

inline bool case_applies(const CommCase& c, int n) {
  if (n < c.min_size) return false;
  if (c.powers_of_two_only && (n & (n - 1)) != 0) return false;
  return true;
}

}  // namespace decent::testing
