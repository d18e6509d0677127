// Portable, seeded random numbers for the convex problems. std::normal_distribution is
// implementation-defined, so normals are drawn with Box-Muller from std::mt19937_64, whose
// output sequence the standard fixes: the same seed gives the same data on every platform.
#pragma once

#include <Eigen/Dense>

#include <cmath>
#include <cstdint>
#include <random>

namespace decent::convex::detail {

// splitmix64 finaliser: turns (seed, stream ids) into well-separated generator seeds.
inline std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t a, std::uint64_t b = 0) {
  std::uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (a + 1) + 0xbf58476d1ce4e5b9ULL * (b + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

class Random {
 public:
  explicit Random(std::uint64_t seed) : engine_(seed) {}

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

  // Uniform integer in [0, n).
  int index(int n) { return static_cast<int>(uniform() * n); }

  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    const double radius = std::sqrt(-2.0 * std::log(u1));
    const double angle = 2.0 * M_PI * u2;
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return radius * std::cos(angle);
  }

  Eigen::VectorXd normal_vector(int size) {
    Eigen::VectorXd v(size);
    for (int i = 0; i < size; ++i) v[i] = normal();
    return v;
  }

  Eigen::MatrixXd normal_matrix(int rows, int cols) {
    Eigen::MatrixXd m(rows, cols);
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) m(r, c) = normal();
    return m;
  }

 private:
  std::mt19937_64 engine_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace decent::convex::detail
