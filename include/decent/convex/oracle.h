// Gradient oracles: full local gradients, mini-batch samples or gradients with additive noise.
//
//   GradientOracle oracle(problem, rank, {/*batch_size=*/5, /*sigma=*/0.0, /*seed=*/7});
//   oracle(x, g);   // g = (1/5) sum over 5 rows drawn with replacement of the sample gradient
#pragma once

#include "decent/convex/problem.h"

#include <Eigen/Dense>

#include <cstdint>
#include <memory>
#include <vector>

namespace decent::convex {

struct GradientNoise {
  // Rows per mini-batch, drawn uniformly with replacement from the node's data; 0 uses the
  // full local data set (exact gradient).
  int batch_size = 0;
  // Standard deviation of independent Gaussian noise added to every gradient coordinate.
  double sigma = 0.0;
  // Seed of the sampling; node i draws from its own stream of this seed.
  std::uint64_t seed = 0;

  bool stochastic() const { return batch_size > 0 || sigma > 0; }
};

// The gradient source of one node. Deterministic: the k-th call returns the same value in every
// run with the same seed.
class GradientOracle {
 public:
  GradientOracle(const Problem& problem, int node, const GradientNoise& noise);
  ~GradientOracle();
  GradientOracle(GradientOracle&&) noexcept;
  GradientOracle& operator=(GradientOracle&&) = delete;

  // out = an estimate of grad f_node(x) (exact when !noise.stochastic()).
  void operator()(const Eigen::VectorXd& x, Eigen::VectorXd& out);
  std::int64_t evaluations() const { return evaluations_; }

 private:
  class Sampler;
  const Problem* problem_;
  int node_;
  GradientNoise noise_;
  std::unique_ptr<Sampler> sampler_;
  std::vector<int> rows_;
  std::int64_t evaluations_ = 0;
};

}  // namespace decent::convex
