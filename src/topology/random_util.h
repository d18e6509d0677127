// Deterministic pseudo-random helpers. Only the fully specified std::mt19937_64 engine is used,
// with our own conversions, so the same seed gives the same graphs and matchings with every
// standard library (std::uniform_*_distribution are implementation-defined).
#pragma once

#include <cstdint>
#include <random>

namespace decent::topology::detail {

// SplitMix64 finalizer: decorrelates nearby seeds (seed, seed+1, ... or (seed, step) pairs).
inline std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Uniform double in [0, 1) from the top 53 bits.
inline double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

// Uniform integer in [0, bound) without modulo bias (rejection sampling), bound >= 1.
inline std::uint64_t uniform_below(std::mt19937_64& rng, std::uint64_t bound) {
  const std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % bound);
  std::uint64_t x;
  do {
    x = rng();
  } while (x >= limit);
  return x % bound;
}

}  // namespace decent::topology::detail
