// Decentralized first-order methods as plain solvers on a Context: every rank iterates on its own
// x_i (an Eigen vector) with gradients of its own f_i, and mixes with its neighbours through
// ctx.neighbor_allreduce over the context's topology. The formulas are those of ALGORITHMS.md.
//
//   decent::local::run(8, [&](decent::Context& ctx) {
//     ctx.set_topology(decent::topology::ring(8));
//     SolverOptions opts;
//     opts.algorithm = Algorithm::kExactDiffusion;
//     opts.step_size = 0.1;
//     opts.iterations = 500;
//     SolverResult r = solve(ctx, problem, opts);   // r.error[k]: (1/n) sum_i ||x_i^k - x*||^2
//   });
//
// Iteration k mixes with the matrix W^k of the topology (NeighborAllreduceOptions::step = k, or
// first_step + k), so on a time-varying schedule every vector mixed in iteration k, e.g. x and y
// of gradient tracking, uses the same W^k. Every rank starts from x_i^0 = 0.
#pragma once

#include "decent/comm/context.h"
#include "decent/convex/oracle.h"
#include "decent/convex/problem.h"

#include <Eigen/Dense>

#include <cstdint>
#include <string>
#include <vector>

namespace decent::convex {

enum class Algorithm {
  // Centralized GD / PSGD / heavy-ball PmSGD: allreduce of the gradients, one shared x.
  kCentralized,
  // DGD (Nedic & Ozdaglar 2009) = adapt-with-combine D-SGD: x <- W x - gamma g.
  kDgd,
  // D-SGD, adapt-then-combine: x <- W (x - gamma g).
  kDsgd,
  // DmSGD: m <- beta m + g; x <- W (x - gamma m).
  kDmsgd,
  // DecentLaM (Yuan et al. 2021): X+ = W (X - gamma G) + beta (X - X-).
  kDecentLam,
  // EXTRA (Shi et al. 2015).
  kExtra,
  // Exact-Diffusion (Yuan et al. 2019), W_bar = (I + W)/2.
  kExactDiffusion,
  // D^2 (Tang et al. 2018): Exact-Diffusion's recursion with W in place of W_bar.
  kD2,
  // Gradient tracking / DIGing (Nedic, Olshevsky & Shi 2017); valid on time-varying W^k.
  kGradientTracking,
};

struct AlgorithmInfo {
  Algorithm algorithm;
  const char* name;         // CLI and file name
  const char* description;  // one line
  // Vectors of size d each rank sends to each neighbour per iteration (gradient tracking mixes
  // x and y in one fused message of 2d numbers); 0 for the centralized baseline (allreduce).
  int vectors_per_message;
  // Converges to x* exactly with full gradients and a constant step size.
  bool bias_corrected;
  // Reads SolverOptions::momentum.
  bool uses_momentum;
};
// Every algorithm, in the order of the enum.
const std::vector<AlgorithmInfo>& algorithms();
const AlgorithmInfo& algorithm_info(Algorithm a);
const char* algorithm_name(Algorithm a);
// Names of algorithms() and aliases: gd, psgd, pmsgd (centralized); awc (dgd); d-sgd, atc
// (dsgd); ed (exact-diffusion); gt, diging (gradient-tracking). Throws ConvexError listing the
// known names.
Algorithm parse_algorithm(const std::string& text);

struct SolverOptions {
  Algorithm algorithm = Algorithm::kDsgd;
  // gamma (alpha in EXTRA and DIGing).
  double step_size = 0.05;
  // beta of the centralized baseline (heavy ball), DmSGD and DecentLaM; others ignore it.
  double momentum = 0.0;
  int iterations = 1000;
  // The error is recorded at iteration 0, every record_every iterations and at the last one.
  int record_every = 1;
  GradientNoise noise;
  // Iteration k mixes with W^(first_step + k).
  std::int64_t first_step = 0;
};

struct SolverResult {
  // Recorded iterations (0 is the starting point) and, for each, the mean squared distance to
  // the optimum (1/n) sum_i ||x_i^k - x*||^2. Identical on every rank.
  std::vector<int> iterations;
  std::vector<double> error;
  // This rank's final iterate x_i^K.
  Eigen::VectorXd x;
  // This rank's traffic during the iterations (the final error allreduce excluded).
  CommStats traffic;
  // Neighbour payload messages this rank sent (consistency headers not counted).
  std::uint64_t payload_messages = 0;
};

// Runs options.iterations iterations on every rank of ctx (a collective: every rank calls it
// with the same arguments). ctx.size() must equal problem.nodes(). Throws ConvexError for bad
// options and the Context's errors for communication failures.
SolverResult solve(Context& ctx, const Problem& problem, const SolverOptions& options);

}  // namespace decent::convex
