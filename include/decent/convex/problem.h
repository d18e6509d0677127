// Strongly convex decentralized test problems with a known optimum.
//
//   min_x f(x) = (1/n) sum_i f_i(x), node i holding its own data (A_i, b_i):
//   least squares:        f_i(x) = (1/2m) ||A_i x - b_i||^2
//   logistic regression:  f_i(x) = (1/m) sum_r log(1 + exp(-b_ir a_ir^T x)) + (lambda/2)||x||^2
//
//   ProblemOptions opts;
//   opts.nodes = 8;
//   opts.heterogeneity = 1.0;                      // local optima x*_i = x_base + h u_i
//   Problem p = Problem::generate(opts);           // same seed, same data, same x*
//   Eigen::VectorXd g = p.local_gradient(rank, x);
//   double err = (x - p.optimum()).squaredNorm();
//
// The data of every node is a pure function of (seed, node), so each rank of a job builds the
// same problem without communication. x* is computed centrally: least squares exactly from the
// normal equations, logistic regression by Newton's method to machine precision.
#pragma once

#include <Eigen/Dense>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace decent::convex {

// Bad problem, algorithm or experiment settings; the message names the setting.
class ConvexError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

enum class ProblemKind { kLeastSquares, kLogistic };
const char* problem_name(ProblemKind kind);
// "least-squares" (also "ls", "linear"), "logistic" (also "logreg").
ProblemKind parse_problem(const std::string& text);

struct ProblemOptions {
  ProblemKind kind = ProblemKind::kLeastSquares;
  int nodes = 8;
  // Dimension d of x.
  int dim = 10;
  // Rows m of each node's A_i; m >= d keeps every f_i strongly convex for least squares.
  int samples_per_node = 50;
  // Spread of the local optima: node i's targets come from x*_i = x_base + h u_i with u_i ~
  // N(0, I). h = 0 (and no observation noise) gives every node the same optimum, so
  // decentralized methods have no heterogeneity bias; larger h grows b^2 = (1/n) sum ||grad
  // f_i(x*)||^2 like h^2.
  double heterogeneity = 1.0;
  // Least squares: standard deviation of the noise added to b_i = A_i x*_i.
  double observation_noise = 0.0;
  // Logistic regression: L2 coefficient lambda (> 0 makes the problem strongly convex).
  double l2 = 0.1;
  std::uint64_t seed = 1;
};

// One node's data. Least squares: rows of A_i and targets b_i. Logistic: features and labels
// in {-1, +1}.
struct Shard {
  Eigen::MatrixXd features;
  Eigen::VectorXd targets;
};

class Problem {
 public:
  // Draws the data of every node from opts.seed and computes x*.
  static Problem generate(const ProblemOptions& options);
  // A problem over given shards (all with the same number of columns); computes x*.
  Problem(ProblemKind kind, std::vector<Shard> shards, double l2 = 0.0);

  ProblemKind kind() const { return kind_; }
  int nodes() const { return static_cast<int>(shards_.size()); }
  int dim() const { return dim_; }
  double l2() const { return l2_; }
  const Shard& shard(int node) const;
  int samples(int node) const { return static_cast<int>(shard(node).features.rows()); }

  // f_i and its gradient over the whole local data set.
  double local_loss(int node, const Eigen::VectorXd& x) const;
  Eigen::VectorXd local_gradient(int node, const Eigen::VectorXd& x) const;
  void local_gradient(int node, const Eigen::VectorXd& x, Eigen::VectorXd& out) const;
  // Unbiased estimate of grad f_i from the given rows (repeats allowed): the mean over the rows
  // of the per-sample gradient (plus lambda x for logistic regression).
  void local_batch_gradient(int node, const Eigen::VectorXd& x, const std::vector<int>& rows,
                            Eigen::VectorXd& out) const;

  // f and its gradient (averages over nodes).
  double loss(const Eigen::VectorXd& x) const;
  Eigen::VectorXd gradient(const Eigen::VectorXd& x) const;
  // Hessian of f (constant for least squares).
  Eigen::MatrixXd hessian(const Eigen::VectorXd& x) const;

  const Eigen::VectorXd& optimum() const { return optimum_; }
  // ||x*||^2, the scale of relative errors.
  double optimum_norm2() const { return optimum_.squaredNorm(); }
  // b^2 = (1/n) sum_i ||grad f_i(x*)||^2: the data heterogeneity that drives the limiting bias
  // of D-SGD, DmSGD and DecentLaM.
  double heterogeneity_b2() const;
  // L = max_i lambda_max(Hessian of f_i) (a bound over all x for logistic regression) and
  // mu = lambda_min(Hessian of f at x*); step sizes below 1/L are safe for every method here.
  double smoothness() const;
  double strong_convexity() const;

 private:
  void compute_optimum();
  ProblemKind kind_;
  std::vector<Shard> shards_;
  double l2_;
  int dim_ = 0;
  Eigen::VectorXd optimum_;
};

}  // namespace decent::convex
