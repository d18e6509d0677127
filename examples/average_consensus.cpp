// Average consensus: every rank starts with its rank number and repeatedly averages with its
// neighbours, x_i <- sum_j w_ij x_j. On a connected graph with doubly stochastic weights every
// rank converges to the mean (n-1)/2, e.g. 4.5 for n = 10.
//
//   decentrun -np 10 build/bin/average_consensus            # 10 MPI processes
//   build/bin/average_consensus --local 10                  # 10 threads, no launcher
//   build/bin/average_consensus --local 8 --topology one-peer-exponential --iterations 3
#include "decent/comm/context.h"
#include "decent/topology/registry.h"

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <vector>

namespace {

struct Config {
  int local_ranks = 0;
  std::string topology = "exponential";
  int iterations = 60;
  double tolerance = 1e-6;
};

// Returns this rank's final error |x - (n-1)/2|.
double run_consensus(decent::Context& ctx, const Config& cfg, std::mutex& print_mutex) {
  ctx.set_topology(decent::topology::make_schedule(cfg.topology, ctx.size()));
  double x = ctx.rank();
  for (int k = 0; k < cfg.iterations; ++k)
    ctx.neighbor_allreduce(decent::Buffer(&x, 1), decent::Buffer(&x, 1));
  // Print in rank order so the output reads the same on both backends.
  const double target = (ctx.size() - 1) / 2.0;
  for (int r = 0; r < ctx.size(); ++r) {
    if (r == ctx.rank()) {
      std::lock_guard<std::mutex> lock(print_mutex);
      std::cout << fmt::format("rank {:>3}: x = {:.9f}  (error {:.2e})", ctx.rank(), x,
                               std::abs(x - target))
                << std::endl;
    }
    ctx.barrier();
  }
  double worst = std::abs(x - target);
  ctx.allreduce(decent::Buffer(&worst, 1), decent::ReduceOp::kMax);
  if (ctx.rank() == 0) {
    std::lock_guard<std::mutex> lock(print_mutex);
    std::cout << fmt::format(
                     "{} ranks, topology {}, {} iterations on the {} backend: target {}, max "
                     "error {:.2e} -> {}",
                     ctx.size(), cfg.topology, cfg.iterations, ctx.backend(), target, worst,
                     worst < cfg.tolerance ? "converged" : "NOT converged")
              << std::endl;
  }
  return worst;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Average consensus by repeated neighbour averaging"};
  Config cfg;
  app.add_option("--local", cfg.local_ranks,
                 "Run N ranks as threads of this process (no launcher needed)")
      ->check(CLI::Range(1, 4096));
  app.add_option("--topology", cfg.topology, "Topology name (see decent-topo --list)");
  app.add_option("--iterations", cfg.iterations, "Rounds of neighbour averaging")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--tolerance", cfg.tolerance, "Largest error that counts as converged");
  CLI11_PARSE(app, argc, argv);

  std::mutex print_mutex;
  double worst = 0;
  try {
    if (cfg.local_ranks > 0) {
      std::mutex result_mutex;
      decent::local::run(cfg.local_ranks, [&](decent::Context& ctx) {
        const double w = run_consensus(ctx, cfg, print_mutex);
        std::lock_guard<std::mutex> lock(result_mutex);
        worst = w;
      });
    } else {
      auto ctx = decent::Context::init();
      worst = run_consensus(*ctx, cfg, print_mutex);
    }
  } catch (const std::exception& e) {
    std::cerr << "average_consensus: " << e.what() << std::endl;
    return 1;
  }
  return worst < cfg.tolerance ? 0 : 3;
}
