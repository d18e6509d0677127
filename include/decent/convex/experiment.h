// Grids of solver runs (algorithms x topologies x step sizes x network sizes) on one problem,
// with the summary numbers a study reports, and their CSV/JSON output. decent-bench-convex is a
// thin command line over this file.
//
//   ExperimentSpec spec;
//   spec.algorithms = {Algorithm::kDsgd, Algorithm::kExactDiffusion};
//   spec.topologies = {"ring", "one-peer-exponential"};
//   spec.sizes = {16, 32};
//   spec.step_sizes = {0.05, 0.1};
//   ExperimentResult r = run_local(spec);          // n ranks as threads, for each n
//   write_csv("convex.csv", r);
//   write_json("convex.json", spec, r);
#pragma once

#include "decent/comm/context.h"
#include "decent/convex/problem.h"
#include "decent/convex/solvers.h"
#include "decent/topology/registry.h"

#include <optional>
#include <string>
#include <vector>

namespace decent::convex {

struct ExperimentSpec {
  // The problem; `nodes` is replaced by each network size.
  ProblemOptions problem;
  std::vector<Algorithm> algorithms;
  // Topology names of topology::make_schedule (static graphs and dynamic schedules).
  std::vector<std::string> topologies = {"ring"};
  topology::TopologyOptions topology_options;
  // Network sizes for run_local; run_on uses the context's size.
  std::vector<int> sizes = {8};
  std::vector<double> step_sizes = {0.1};
  // Momentum values beta; algorithms without momentum run once, with beta reported as 0.
  std::vector<double> momenta = {0.0};
  // Iterations, recording and gradient noise of every run (algorithm, step size and momentum
  // are set per run).
  SolverOptions solver;
  // Relative error (1/n) sum ||x_i - x*||^2 / ||x*||^2 whose first crossing is reported.
  double target = 1e-6;
};

// Properties of the problem generated for one network size.
struct ProblemSummary {
  int nodes = 0;
  double smoothness = 0;        // L
  double strong_convexity = 0;  // mu
  double heterogeneity_b2 = 0;  // (1/n) sum ||grad f_i(x*)||^2
  double optimum_norm2 = 0;     // ||x*||^2
};

struct RunRecord {
  std::string algorithm;
  std::string topology;
  int nodes = 0;
  double step_size = 0;
  double momentum = 0;
  std::vector<int> iterations;
  std::vector<double> error;  // (1/n) sum_i ||x_i - x*||^2 at each recorded iteration
  double optimum_norm2 = 0;
  double final_relative_error = 0;
  // First recorded iteration whose relative error is <= spec.target.
  std::optional<int> iterations_to_target;
  // First recorded iteration from which the error stays in the band [min, max] (1% margin) of
  // the last 10% of the run: where it reached its limiting error, the plateau of a biased
  // method (a cycle on periodic schedules). Not set while the last 10% still change by more
  // than a factor 2, for runs that diverge, and for runs that converge to x* (final relative
  // error at rounding level, below 1e-20).
  std::optional<int> iterations_to_plateau;
  // Non-finite error, or a final error above the initial one.
  bool diverged = false;
  // Topology facts: rho = ||W - 11^T/n||_2 (per step, rho of the period's product ^ 1/period,
  // for dynamic schedules) and the messages each node receives per mixing round.
  double rho = 0;
  double neighbors_per_round = 0;
  // Measured per node and iteration (mean over ranks): neighbour payload messages sent and
  // bytes sent (allreduce bytes as the communicator counts them, headers included).
  double messages_per_iteration = 0;
  double bytes_per_iteration = 0;
  double seconds = 0;  // wall time of the iterations on rank 0
};

struct ExperimentResult {
  std::vector<ProblemSummary> problems;  // one per network size
  std::vector<RunRecord> runs;
};

// Every run of the spec on ctx's ranks (a collective; n = ctx.size()). Every rank returns the
// same records (seconds excepted).
ExperimentResult run_on(Context& ctx, const ExperimentSpec& spec);
// For each n in spec.sizes, runs n ranks as threads of this process (decent::local::run).
ExperimentResult run_local(const ExperimentSpec& spec,
                           const ContextOptions& options = ContextOptions::from_env());

// Long format, one line per recorded iteration:
// algorithm,topology,nodes,step_size,momentum,iteration,error,relative_error
void write_csv(const std::string& path, const ExperimentResult& result);
// The spec, the problem summaries and every run with its summary numbers and error series.
void write_json(const std::string& path, const ExperimentSpec& spec,
                const ExperimentResult& result);
// Markdown table of the runs' summary numbers.
std::string summary_table(const ExperimentResult& result, double target);

}  // namespace decent::convex
