// Exception types of the topology layer. Each message names the node, rank or field at fault.
#pragma once

#include <stdexcept>
#include <string>

namespace decent::topology {

// A topology cannot be built or used as asked: bad size, unknown name, impossible parameters.
class TopologyError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// A graph description (JSON text or file) is malformed or describes an impossible graph.
class GraphFormatError : public TopologyError {
 public:
  using TopologyError::TopologyError;
};

// Largest number of nodes any generator, schedule or loader accepts.
constexpr int kMaxGraphSize = 1'000'000;
// Largest number of edges a generator materializes; keeps memory well under a gigabyte.
constexpr long long kMaxGraphEdges = 8'000'000;

}  // namespace decent::topology
