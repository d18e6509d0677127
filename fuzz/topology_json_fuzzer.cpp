// Fuzzes the topology JSON parser (edge lists and matrices). Bad input must end in
// GraphFormatError (or another TopologyError); a graph that parses must survive a round trip
// through to_json unchanged.
#include "decent/topology/errors.h"
#include "decent/topology/io.h"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::string first;
  try {
    first = decent::topology::to_json(decent::topology::from_json(text));
  } catch (const decent::topology::TopologyError&) {
    return 0;
  }
  // to_json writes every weight exactly, so parsing it again must give the same document.
  const std::string second = decent::topology::to_json(decent::topology::from_json(first));
  if (first != second) __builtin_trap();
  return 0;
}
