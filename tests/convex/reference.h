// Test helpers: the algorithms of ALGORITHMS.md in stacked form (X is n x d, row i = x_i, one
// dense W^k per iteration), written independently of the per-rank solvers, and a runner that
// collects every rank's SolverResult from the local backend.
#pragma once

#include "decent/comm/context.h"
#include "decent/convex/solvers.h"
#include "decent/topology/topology.h"

#include <Eigen/Dense>

#include <memory>
#include <string>
#include <vector>

namespace decent::convex::test {

using Matrix = Eigen::MatrixXd;

// Rows: grad f_i(x_i).
inline Matrix stacked_gradient(const Problem& p, const Matrix& x) {
  Matrix g(x.rows(), x.cols());
  for (int i = 0; i < p.nodes(); ++i) g.row(i) = p.local_gradient(i, x.row(i).transpose());
  return g;
}

inline double mean_squared_error(const Problem& p, const Matrix& x) {
  return (x.rowwise() - p.optimum().transpose()).squaredNorm() / p.nodes();
}

// (1/n) sum_i ||x_i^k - x*||^2 for k = 0..iterations, starting from X^0 = 0.
inline std::vector<double> stacked_reference(const Problem& p, const topology::Schedule& schedule,
                                             Algorithm algorithm, double gamma, double beta,
                                             int iterations) {
  const int n = p.nodes();
  const Matrix identity = Matrix::Identity(n, n);
  auto w = [&](int k) { return schedule.graph_at(k).mixing_matrix(); };
  Matrix x = Matrix::Zero(n, p.dim());
  Matrix x_prev = x, m = Matrix::Zero(n, p.dim());
  Matrix g_prev = stacked_gradient(p, x);
  Matrix y = g_prev;    // gradient tracking
  Matrix psi_prev = x;  // Exact-Diffusion
  std::vector<double> errors = {mean_squared_error(p, x)};
  for (int k = 0; k < iterations; ++k) {
    const Matrix g = stacked_gradient(p, x);
    Matrix next;
    switch (algorithm) {
      case Algorithm::kCentralized: {
        const Eigen::RowVectorXd mean = g.colwise().mean();
        m = beta * m + mean.replicate(n, 1);
        next = x - gamma * m;
        break;
      }
      case Algorithm::kDgd:
        next = w(k) * x - gamma * g;
        break;
      case Algorithm::kDsgd:
        next = w(k) * (x - gamma * g);
        break;
      case Algorithm::kDmsgd:
        m = beta * m + g;
        next = w(k) * (x - gamma * m);
        break;
      case Algorithm::kDecentLam:
        next = w(k) * (x - gamma * g) + beta * (x - x_prev);
        break;
      case Algorithm::kExtra:
        next = k == 0 ? Matrix(w(0) * x - gamma * g)
                      : Matrix((identity + w(k)) * x - 0.5 * (identity + w(k - 1)) * x_prev -
                               gamma * (g - g_prev));
        break;
      case Algorithm::kExactDiffusion: {
        const Matrix psi = x - gamma * g;
        next = 0.5 * (identity + w(k)) * (psi + x - psi_prev);
        psi_prev = psi;
        break;
      }
      case Algorithm::kD2:
        next = k == 0 ? Matrix(w(0) * (x - gamma * g))
                      : Matrix(w(k) * (2 * x - x_prev - gamma * g + gamma * g_prev));
        break;
      case Algorithm::kGradientTracking: {
        next = w(k) * x - gamma * y;
        y = w(k) * y + stacked_gradient(p, next) - g;
        break;
      }
    }
    x_prev = x;
    g_prev = g;
    x = next;
    errors.push_back(mean_squared_error(p, x));
  }
  return errors;
}

// Runs solve() on n = problem.nodes() threads over `schedule`; result i is rank i's.
inline std::vector<SolverResult> run_solver(const Problem& problem,
                                            const topology::SchedulePtr& schedule,
                                            const SolverOptions& options) {
  std::vector<SolverResult> results(problem.nodes());
  local::run(problem.nodes(), [&](Context& ctx) {
    ctx.set_topology(schedule);
    results[ctx.rank()] = solve(ctx, problem, options);
  });
  return results;
}

inline topology::SchedulePtr schedule(const std::string& name, int n) {
  return topology::make_schedule(name, n);
}

inline ProblemOptions least_squares(int nodes, double heterogeneity = 1.0) {
  ProblemOptions o;
  o.nodes = nodes;
  o.heterogeneity = heterogeneity;
  return o;
}

}  // namespace decent::convex::test
