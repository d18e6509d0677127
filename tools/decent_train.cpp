// decent-train: decentralized training of a LibTorch classifier.
//
//   decentrun -np 4 decent-train --algorithm dmsgd --topology ring --model cnn --epochs 5
//   decent-train --local 4 --algorithm decentlam --topology one-peer-exponential
//   decent-train --local 3 --dataset synthetic --algorithm dsgd --topology ring --epochs 2
//       --metrics run.json --checkpoint ckpt/      (later: the same with --resume)
//
// One process per rank under decentrun/mpirun (MPI backend), or --local N ranks as threads of
// this process. Exit codes: 0 success, 1 runtime failure, 2 usage errors (bad options, unknown
// names, missing data, nothing to resume).
#include "train_data.h"
#include "train_loop.h"
#include "train_options.h"

#include "decent/comm/context.h"
#include "decent/torch/threads.h"

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

namespace {

using decent::train::TrainOptions;
using decent::train::UsageError;

// The rank this process will have in an MPI launch (before MPI is initialized), or -1.
int launched_rank() {
  for (const char* variable : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"}) {
    if (const char* value = std::getenv(variable)) return std::atoi(value);
  }
  return -1;
}

int launched_size() {
  for (const char* variable : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
    if (const char* value = std::getenv(variable)) return std::atoi(value);
  }
  return -1;
}

// Compute threads per process: DECENT_TORCH_THREADS, else OMP_NUM_THREADS, else 1 (ranks share
// the cores; more intra-op threads per rank only oversubscribe them further).
int torch_threads() {
  for (const char* variable : {"DECENT_TORCH_THREADS", "OMP_NUM_THREADS"}) {
    if (const char* value = std::getenv(variable)) {
      const int threads = std::atoi(value);
      if (threads >= 1) return threads;
    }
  }
  return 1;
}

int run(const TrainOptions& options) {
  decent::set_compute_threads(torch_threads());
  if (options.local_ranks > 0) {
    if (launched_size() > 1) {
      throw UsageError(
          "--local runs every rank in this process; do not combine it with decentrun/mpirun");
    }
    decent::train::validate_setup(options, options.local_ranks);
    const decent::train::TrainingData data =
        decent::train::prepare_training_data(options, options.local_ranks);
    // local::run reports a rank's exception as decent::Error; remember that it was a usage
    // problem to exit with 2.
    std::atomic<bool> usage_error{false};
    try {
      decent::local::run(options.local_ranks, [&](decent::Context& ctx) {
        // The Context belongs to local::run and outlives this function.
        const decent::ContextPtr ctx_ptr(&ctx, [](decent::Context*) {});
        try {
          decent::train::train_rank(options, data, ctx_ptr);
        } catch (const UsageError&) {
          usage_error = true;
          throw;
        }
      });
    } catch (const std::exception& e) {
      if (usage_error) throw UsageError(e.what());
      throw;
    }
    return 0;
  }

  const decent::ContextPtr ctx = decent::Context::init();
  decent::train::validate_setup(options, ctx->size());
  const decent::train::TrainingData data =
      decent::train::prepare_training_data(options, ctx->size());
  decent::train::train_rank(options, data, ctx);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int rank = launched_rank();
  const bool print = rank <= 0;
  TrainOptions options;
  if (auto exit_code = decent::train::parse_command_line(argc, argv, options, print)) {
    return *exit_code;
  }
  try {
    if (options.list_algorithms || options.list_topologies) {
      if (print && options.list_algorithms) std::cout << decent::train::algorithm_list();
      if (print && options.list_topologies) std::cout << decent::train::topology_list();
      return 0;
    }
    decent::train::validate_options(options);
    return run(options);
  } catch (const UsageError& e) {
    if (print) std::cerr << "decent-train: error: " << e.what() << '\n';
    return 2;
  } catch (const std::exception& e) {
    // Runtime failures may differ between ranks: every rank reports its own.
    std::cerr << "decent-train: error" << (rank >= 0 ? " on rank " + std::to_string(rank) : "")
              << ": " << e.what() << '\n';
    return 1;
  }
}
