#include "decent/convex/problem.h"

#include "random.h"

#include <fmt/format.h>
#include <Eigen/Eigenvalues>

#include <algorithm>
#include <cmath>

namespace decent::convex {

namespace {

// Random streams of ProblemOptions::seed, so adding one kind of draw never shifts another.
enum Stream : std::uint64_t { kBase = 0, kFeatures = 1, kDirection = 2, kTargets = 3 };

// log(1 + exp(t)) without overflow.
double softplus(double t) {
  return t > 0 ? t + std::log1p(std::exp(-t)) : std::log1p(std::exp(t));
}

// 1 / (1 + exp(-t)) without overflow.
double sigmoid(double t) {
  if (t >= 0) return 1.0 / (1.0 + std::exp(-t));
  const double e = std::exp(t);
  return e / (1.0 + e);
}

double largest_eigenvalue(const Eigen::MatrixXd& symmetric) {
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(symmetric, Eigen::EigenvaluesOnly);
  return solver.eigenvalues().maxCoeff();
}

double smallest_eigenvalue(const Eigen::MatrixXd& symmetric) {
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(symmetric, Eigen::EigenvaluesOnly);
  return solver.eigenvalues().minCoeff();
}

}  // namespace

const char* problem_name(ProblemKind kind) {
  switch (kind) {
    case ProblemKind::kLeastSquares:
      return "least-squares";
    case ProblemKind::kLogistic:
      return "logistic";
  }
  return "?";
}

ProblemKind parse_problem(const std::string& text) {
  if (text == "least-squares" || text == "ls" || text == "linear")
    return ProblemKind::kLeastSquares;
  if (text == "logistic" || text == "logreg") return ProblemKind::kLogistic;
  throw ConvexError(
      fmt::format("unknown problem '{}': expected 'least-squares' or 'logistic'", text));
}

Problem Problem::generate(const ProblemOptions& o) {
  if (o.nodes < 1) throw ConvexError(fmt::format("problem: nodes = {} must be >= 1", o.nodes));
  if (o.dim < 1) throw ConvexError(fmt::format("problem: dim = {} must be >= 1", o.dim));
  if (o.samples_per_node < 1)
    throw ConvexError(
        fmt::format("problem: samples_per_node = {} must be >= 1", o.samples_per_node));
  if (o.heterogeneity < 0 || o.observation_noise < 0 || o.l2 < 0)
    throw ConvexError("problem: heterogeneity, observation_noise and l2 must be >= 0");
  if (o.kind == ProblemKind::kLogistic && o.l2 == 0)
    throw ConvexError("problem: logistic regression needs l2 > 0 to be strongly convex");

  detail::Random base_rng(detail::mix_seed(o.seed, kBase));
  const Eigen::VectorXd x_base = base_rng.normal_vector(o.dim);

  std::vector<Shard> shards(o.nodes);
  for (int i = 0; i < o.nodes; ++i) {
    const auto node = static_cast<std::uint64_t>(i);
    detail::Random feature_rng(detail::mix_seed(o.seed, kFeatures, node));
    detail::Random direction_rng(detail::mix_seed(o.seed, kDirection, node));
    detail::Random target_rng(detail::mix_seed(o.seed, kTargets, node));
    Shard& s = shards[i];
    s.features = feature_rng.normal_matrix(o.samples_per_node, o.dim);
    const Eigen::VectorXd local_optimum =
        x_base + o.heterogeneity * direction_rng.normal_vector(o.dim);
    const Eigen::VectorXd scores = s.features * local_optimum;
    s.targets.resize(o.samples_per_node);
    for (int r = 0; r < o.samples_per_node; ++r) {
      if (o.kind == ProblemKind::kLeastSquares) {
        s.targets[r] = scores[r] + o.observation_noise * target_rng.normal();
      } else {
        // Labels drawn from the logistic model of the node's own separator.
        s.targets[r] = target_rng.uniform() < sigmoid(scores[r]) ? 1.0 : -1.0;
      }
    }
  }
  return Problem(o.kind, std::move(shards), o.kind == ProblemKind::kLogistic ? o.l2 : 0.0);
}

Problem::Problem(ProblemKind kind, std::vector<Shard> shards, double l2)
    : kind_(kind), shards_(std::move(shards)), l2_(l2) {
  if (shards_.empty()) throw ConvexError("problem: no nodes");
  dim_ = static_cast<int>(shards_.front().features.cols());
  for (int i = 0; i < nodes(); ++i) {
    const Shard& s = shards_[i];
    if (s.features.cols() != dim_ || s.features.rows() != s.targets.size() ||
        s.features.rows() == 0)
      throw ConvexError(fmt::format(
          "problem: node {} has a {}x{} feature matrix and {} targets (expected {} columns and "
          "one target per row, at least one row)",
          i, s.features.rows(), s.features.cols(), s.targets.size(), dim_));
  }
  compute_optimum();
}

const Shard& Problem::shard(int node) const {
  if (node < 0 || node >= nodes())
    throw ConvexError(fmt::format("problem: node {} out of range [0, {})", node, nodes()));
  return shards_[node];
}

double Problem::local_loss(int node, const Eigen::VectorXd& x) const {
  const Shard& s = shard(node);
  const double m = static_cast<double>(s.features.rows());
  if (kind_ == ProblemKind::kLeastSquares)
    return (s.features * x - s.targets).squaredNorm() / (2.0 * m);
  const Eigen::VectorXd margins = (s.features * x).cwiseProduct(s.targets);
  double sum = 0;
  for (Eigen::Index r = 0; r < margins.size(); ++r) sum += softplus(-margins[r]);
  return sum / m + 0.5 * l2_ * x.squaredNorm();
}

Eigen::VectorXd Problem::local_gradient(int node, const Eigen::VectorXd& x) const {
  Eigen::VectorXd g;
  local_gradient(node, x, g);
  return g;
}

void Problem::local_gradient(int node, const Eigen::VectorXd& x, Eigen::VectorXd& out) const {
  const Shard& s = shard(node);
  const double m = static_cast<double>(s.features.rows());
  if (kind_ == ProblemKind::kLeastSquares) {
    out.noalias() = s.features.transpose() * (s.features * x - s.targets);
    out /= m;
    return;
  }
  Eigen::VectorXd weights = (s.features * x).cwiseProduct(s.targets);
  for (Eigen::Index r = 0; r < weights.size(); ++r)
    weights[r] = -s.targets[r] * sigmoid(-weights[r]);
  out.noalias() = s.features.transpose() * weights;
  out /= m;
  out += l2_ * x;
}

void Problem::local_batch_gradient(int node, const Eigen::VectorXd& x, const std::vector<int>& rows,
                                   Eigen::VectorXd& out) const {
  const Shard& s = shard(node);
  if (rows.empty()) throw ConvexError(fmt::format("node {}: empty mini-batch", node));
  out.setZero(dim_);
  for (int r : rows) {
    if (r < 0 || r >= s.features.rows())
      throw ConvexError(fmt::format("node {}: mini-batch row {} out of range [0, {})", node, r,
                                    s.features.rows()));
    const auto a = s.features.row(r).transpose();
    const double score = a.dot(x);
    if (kind_ == ProblemKind::kLeastSquares)
      out += (score - s.targets[r]) * a;
    else
      out += (-s.targets[r] * sigmoid(-s.targets[r] * score)) * a;
  }
  out /= static_cast<double>(rows.size());
  if (kind_ == ProblemKind::kLogistic) out += l2_ * x;
}

double Problem::loss(const Eigen::VectorXd& x) const {
  double sum = 0;
  for (int i = 0; i < nodes(); ++i) sum += local_loss(i, x);
  return sum / nodes();
}

Eigen::VectorXd Problem::gradient(const Eigen::VectorXd& x) const {
  Eigen::VectorXd sum = Eigen::VectorXd::Zero(dim_), g;
  for (int i = 0; i < nodes(); ++i) {
    local_gradient(i, x, g);
    sum += g;
  }
  return sum / nodes();
}

Eigen::MatrixXd Problem::hessian(const Eigen::VectorXd& x) const {
  Eigen::MatrixXd h = Eigen::MatrixXd::Zero(dim_, dim_);
  for (const Shard& s : shards_) {
    const double m = static_cast<double>(s.features.rows());
    if (kind_ == ProblemKind::kLeastSquares) {
      h.noalias() += s.features.transpose() * s.features / m;
      continue;
    }
    Eigen::VectorXd curvature = (s.features * x).cwiseProduct(s.targets);
    for (Eigen::Index r = 0; r < curvature.size(); ++r) {
      const double p = sigmoid(curvature[r]);
      curvature[r] = p * (1 - p) / m;
    }
    h.noalias() += s.features.transpose() * curvature.asDiagonal() * s.features;
  }
  h /= nodes();
  h.diagonal().array() += l2_;
  return h;
}

void Problem::compute_optimum() {
  if (kind_ == ProblemKind::kLeastSquares) {
    // Normal equations of f: (1/n) sum_i A_i^T A_i / m_i x = (1/n) sum_i A_i^T b_i / m_i. One
    // step of iterative refinement brings the residual to rounding level.
    const Eigen::MatrixXd h = hessian(Eigen::VectorXd::Zero(dim_));
    Eigen::VectorXd rhs = Eigen::VectorXd::Zero(dim_);
    for (const Shard& s : shards_)
      rhs += s.features.transpose() * s.targets / static_cast<double>(s.features.rows());
    rhs /= nodes();
    const Eigen::LLT<Eigen::MatrixXd> llt(h);
    if (llt.info() != Eigen::Success || smallest_eigenvalue(h) <= 1e-12 * largest_eigenvalue(h))
      throw ConvexError(fmt::format(
          "least squares: the global Hessian is singular ({} nodes x {} rows for dimension {}); "
          "use more samples per node",
          nodes(), shards_.front().features.rows(), dim_));
    optimum_ = llt.solve(rhs);
    optimum_ += llt.solve(rhs - h * optimum_);
    return;
  }
  // Logistic regression: damped Newton from 0 until the step stops shrinking the gradient.
  optimum_ = Eigen::VectorXd::Zero(dim_);
  double value = loss(optimum_);
  for (int iteration = 0; iteration < 100; ++iteration) {
    const Eigen::VectorXd g = gradient(optimum_);
    if (g.norm() <= 1e-15 * std::max(1.0, optimum_.norm())) break;
    const Eigen::VectorXd direction = hessian(optimum_).llt().solve(-g);
    double t = 1.0;
    Eigen::VectorXd candidate = optimum_ + direction;
    double candidate_value = loss(candidate);
    // Backtracking (Armijo) while far away. Near x* (small Newton decrement) the loss
    // differences drown in rounding, so the full step is taken, as Newton's theory allows.
    const bool near_optimum = -g.dot(direction) < 1e-8;
    while (!near_optimum && candidate_value > value + 0.25 * t * g.dot(direction) && t > 1e-10) {
      t *= 0.5;
      candidate = optimum_ + t * direction;
      candidate_value = loss(candidate);
    }
    const bool stalled = (candidate - optimum_).norm() <= 1e-16 * std::max(1.0, optimum_.norm());
    optimum_ = candidate;
    value = candidate_value;
    if (stalled) break;
  }
  const double residual = gradient(optimum_).norm();
  if (!(residual <= 1e-10))
    throw ConvexError(fmt::format(
        "logistic regression: Newton's method stopped at ||grad f|| = {:.3e}", residual));
}

double Problem::heterogeneity_b2() const {
  double sum = 0;
  for (int i = 0; i < nodes(); ++i) sum += local_gradient(i, optimum_).squaredNorm();
  return sum / nodes();
}

double Problem::smoothness() const {
  double worst = 0;
  for (const Shard& s : shards_) {
    const Eigen::MatrixXd gram =
        s.features.transpose() * s.features / static_cast<double>(s.features.rows());
    // The logistic loss has curvature at most 1/4 per sample.
    const double scale = kind_ == ProblemKind::kLeastSquares ? 1.0 : 0.25;
    worst = std::max(worst, scale * largest_eigenvalue(gram) + l2_);
  }
  return worst;
}

double Problem::strong_convexity() const {
  return smallest_eigenvalue(hessian(optimum_));
}

}  // namespace decent::convex
