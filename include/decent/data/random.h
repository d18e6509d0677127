// A small, fully specified random number generator for data partitioning and shuffling.
//
// Every rank must compute the same global partition independently, and runs must be
// reproducible across compilers: the distributions of <random> are implementation-defined,
// so the generator (xoshiro256**, seeded through SplitMix64) and every distribution here are
// written out explicitly.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace decent::data {

// Combines a seed with a stream number (epoch, class, rank...) into an independent seed.
std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t stream);

class Rng {
 public:
  explicit Rng(std::uint64_t seed);

  std::uint64_t next_u64();
  // Uniform in [0, 1) with 53 random bits.
  double uniform();
  // Uniform integer in [0, bound); bound must be positive. Unbiased (rejection sampling).
  std::uint64_t uniform_int(std::uint64_t bound);
  // Standard normal (Box-Muller, one value per call).
  double normal();
  // log of a Gamma(shape, 1) sample (Marsaglia-Tsang); the log keeps tiny shapes finite.
  double log_gamma(double shape);
  // A sample of Dirichlet(alpha, ..., alpha) with k components; sums to 1.
  std::vector<double> dirichlet(double alpha, int k);

  // Fisher-Yates shuffle.
  template <typename T>
  void shuffle(std::vector<T>& values) {
    for (std::size_t i = values.size(); i > 1; --i) {
      std::size_t j = static_cast<std::size_t>(uniform_int(i));
      std::swap(values[i - 1], values[j]);
    }
  }

 private:
  std::uint64_t state_[4];
};

}  // namespace decent::data
