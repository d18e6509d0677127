// A decentralized averaging loop that runs until it is told to stop, for the fault tests: each
// rank repeats neighbor_allreduce on a ring and reports its progress, so that a test can kill or
// stop one rank mid-run and watch how the others end.
//
//   decentrun -np 4 --timeout-ms 3000 fault_loop --steps 100000 --sleep-ms 5
//
// Each rank prints "fault_loop: rank R pid P started" once and "fault_loop: rank R step K" every
// --report-every steps. A decent::Error ends the rank with exit code 1 and the line
// "fault_loop: error on rank R: <message>".
#include "decent/comm/context.h"
#include "decent/topology/registry.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

struct LoopOptions {
  long steps = 1000;
  int sleep_ms = 0;
  int report_every = 10;
  std::size_t elements = 1024;
  std::string topology = "ring";
};

LoopOptions parse(int argc, char** argv) {
  LoopOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string option = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "fault_loop: option %s needs a value\n", option.c_str());
      std::exit(2);
    }
    const char* value = argv[++i];
    if (option == "--steps") {
      options.steps = std::atol(value);
    } else if (option == "--sleep-ms") {
      options.sleep_ms = std::atoi(value);
    } else if (option == "--report-every") {
      options.report_every = std::max(1, std::atoi(value));
    } else if (option == "--elements") {
      options.elements = static_cast<std::size_t>(std::atol(value));
    } else if (option == "--topology") {
      options.topology = value;
    } else if (option == "--tag") {
      // Only marks the command line so that a test can find its processes.
    } else {
      std::fprintf(stderr, "fault_loop: unknown option %s\n", option.c_str());
      std::exit(2);
    }
  }
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  const LoopOptions options = parse(argc, argv);
  int rank = -1;
  try {
    auto ctx = decent::Context::init();
    rank = ctx->rank();
    ctx->set_topology(decent::topology::make_schedule(options.topology, ctx->size()));
    std::printf("fault_loop: rank %d pid %d started\n", rank, static_cast<int>(getpid()));
    std::fflush(stdout);
    std::vector<float> x(options.elements, static_cast<float>(rank));
    for (long step = 1; step <= options.steps; ++step) {
      ctx->neighbor_allreduce(decent::Buffer(x), decent::Buffer(x));
      if (step % options.report_every == 0) {
        std::printf("fault_loop: rank %d step %ld\n", rank, step);
        std::fflush(stdout);
      }
      if (options.sleep_ms > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(options.sleep_ms));
      }
    }
    ctx->barrier();
  } catch (const decent::Error& error) {
    std::fprintf(stderr, "fault_loop: error on rank %d: %s\n", rank, error.what());
    return 1;
  }
  return 0;
}
