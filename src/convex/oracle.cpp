#include "decent/convex/oracle.h"

#include "random.h"

#include <fmt/format.h>

namespace decent::convex {

namespace {
// Stream id of the oracle's draws, apart from the problem's data streams.
constexpr std::uint64_t kOracleStream = 100;
}  // namespace

class GradientOracle::Sampler {
 public:
  explicit Sampler(std::uint64_t seed) : rng(seed) {}
  detail::Random rng;
};

GradientOracle::GradientOracle(const Problem& problem, int node, const GradientNoise& noise)
    : problem_(&problem), node_(node), noise_(noise) {
  if (node < 0 || node >= problem.nodes())
    throw ConvexError(
        fmt::format("gradient oracle: node {} out of range [0, {})", node, problem.nodes()));
  if (noise.batch_size < 0 || noise.sigma < 0)
    throw ConvexError(
        fmt::format("node {}: gradient noise needs batch_size >= 0 and sigma >= 0 "
                    "(got {} and {})",
                    node, noise.batch_size, noise.sigma));
  sampler_ = std::make_unique<Sampler>(
      detail::mix_seed(noise.seed, kOracleStream, static_cast<std::uint64_t>(node)));
  rows_.resize(static_cast<std::size_t>(noise.batch_size));
}

GradientOracle::~GradientOracle() = default;
GradientOracle::GradientOracle(GradientOracle&&) noexcept = default;

void GradientOracle::operator()(const Eigen::VectorXd& x, Eigen::VectorXd& out) {
  ++evaluations_;
  if (noise_.batch_size > 0) {
    const int m = problem_->samples(node_);
    for (int& r : rows_) r = sampler_->rng.index(m);
    problem_->local_batch_gradient(node_, x, rows_, out);
  } else {
    problem_->local_gradient(node_, x, out);
  }
  if (noise_.sigma > 0)
    for (Eigen::Index c = 0; c < out.size(); ++c) out[c] += noise_.sigma * sampler_->rng.normal();
}

}  // namespace decent::convex
