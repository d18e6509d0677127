// Fuzzes the topology JSON parser (edge lists and matrices). Bad input must end in
// GraphFormatError (or another TopologyError); a graph that parses (of up to 4096 nodes) must
// survive a round trip through to_json unchanged.
#include "decent/topology/errors.h"
#include "decent/topology/io.h"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  // Above this many nodes the round trip is skipped: a graph of up to kMaxGraphSize (10^6)
  // isolated nodes is valid and parses fast, but printing every node's weights takes longer
  // than the fuzzer's per-input time limit under the sanitizers.
  constexpr int kMaxRoundTripNodes = 4096;
  std::string first;
  try {
    const decent::topology::Graph graph = decent::topology::from_json(text);
    if (graph.size() > kMaxRoundTripNodes) return 0;
    first = decent::topology::to_json(graph);
  } catch (const decent::topology::TopologyError&) {
    return 0;
  }
  // to_json writes every weight exactly, so parsing it again must give the same document.
  const std::string second = decent::topology::to_json(decent::topology::from_json(first));
  if (first != second) __builtin_trap();
  return 0;
}
