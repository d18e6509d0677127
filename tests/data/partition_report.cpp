// Prints the per-rank label histograms of a partition, e.g.
//   data_partition_report dirichlet:0.1 8 [seed]
// on Fashion-MNIST's training split (or a synthetic 60000-sample set when it is not installed).
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "decent/data/dataset.h"
#include "decent/data/partition.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s iid|shards[:K]|dirichlet[:ALPHA] WORLD_SIZE [SEED]\n", argv[0]);
    return 2;
  }
  try {
    const int world_size = std::stoi(argv[2]);
    const std::uint64_t seed = argc > 3 ? std::stoull(argv[3]) : 0;
    const auto options = decent::data::parse_partition_spec(argv[1], seed);
    decent::data::Dataset dataset;
    try {
      dataset =
          decent::data::load_fashion_mnist(decent::data::default_fashion_mnist_dir(), "train");
    } catch (const decent::data::DataError& e) {
      std::fprintf(stderr, "%s\nusing a synthetic dataset instead\n", e.what());
      dataset = decent::data::make_synthetic_dataset(60000, 10, {1, 28, 28}, 0);
    }
    const auto parts =
        decent::data::partition_indices(dataset.labels, dataset.num_classes, world_size, options);
    const auto histograms =
        decent::data::label_histograms(dataset.labels, parts, dataset.num_classes);
    fmt::print("{} on {} ({} samples), {} ranks\n{}", decent::data::describe(options), dataset.name,
               dataset.n, world_size, decent::data::format_histograms(histograms));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
