// The node-count check that every generator and schedule runs on its arguments first.
#pragma once

#include "decent/topology/errors.h"

#include <fmt/format.h>

namespace decent::topology::detail {

// Throws TopologyError naming `what` unless 1 <= n <= kMaxGraphSize.
inline void check_size(int n, const char* what) {
  if (n < 1) throw TopologyError(fmt::format("{}: number of nodes must be >= 1, got {}", what, n));
  if (n > kMaxGraphSize)
    throw TopologyError(
        fmt::format("{}: number of nodes {} exceeds the limit of {}", what, n, kMaxGraphSize));
}

}  // namespace decent::topology::detail
