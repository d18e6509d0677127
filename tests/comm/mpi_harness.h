// What every multi-process MPI test driver shares (tests/comm, tests/comm_window,
// tests/optim_async): the world size, the indices of a case list, running one case on a fresh
// Context, and a main that lets only rank 0 print GoogleTest's progress while every rank prints
// its failures, and that fails on every rank when any rank failed.
#pragma once

#include "decent/comm/context.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <iostream>
#include <vector>

#include "comm/mpi/mpi_transport.h"

namespace decent::testing::mpi {

// Ranks in MPI_COMM_WORLD (asked once, through a Context of its own).
inline int world_size() {
  static const int n = [] {
    auto ctx = Context::create(comm::make_mpi_world_transport(), ContextOptions{});
    return ctx->size();
  }();
  return n;
}

// 0 .. count-1, the parameters of a TEST_P over a case list.
inline std::vector<std::size_t> case_indices(std::size_t count) {
  std::vector<std::size_t> out(count);
  for (std::size_t i = 0; i < count; ++i) out[i] = i;
  return out;
}

// Runs `body` on a fresh Context (60 s timeout unless `configure` changes it), then synchronises
// every rank on another fresh Context (its own communicator) before the first is destroyed. The
// order matters: a case that fails on purpose can leave messages nobody receives; were its
// communicator freed first, MPI could give the next one the same context id and deliver them
// there.
inline void run_case(const std::function<void(Context&)>& body,
                     const std::function<void(ContextOptions&)>& configure = nullptr) {
  ContextOptions options;
  options.timeout = std::chrono::seconds(60);
  if (configure) configure(options);
  auto ctx = Context::create(comm::make_mpi_world_transport(), options);
  body(*ctx);
  auto sync = Context::create(comm::make_mpi_world_transport(), ContextOptions{});
  sync->barrier();
}

// Prints failures from every rank, prefixed with the rank.
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed())
      std::cerr << "[rank " << rank_ << "] " << (r.file_name() ? r.file_name() : "") << ":"
                << r.line_number() << ": " << r.summary() << std::endl;
  }

 private:
  int rank_;
};

// The body of main(): runs every test on every rank and returns 1 on every rank if any failed.
inline int run_all_tests(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto world = Context::create(comm::make_mpi_world_transport(), ContextOptions{});
  auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
  if (world->rank() != 0) delete listeners.Release(listeners.default_result_printer());
  listeners.Append(new RankFailurePrinter(world->rank()));
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  world->allreduce(Buffer(&failed, 1, DType::kInt32), ReduceOp::kMax);
  if (world->rank() == 0)
    std::cout << (failed ? "FAILED on at least one rank" : "PASSED on every rank") << std::endl;
  return failed;
}

}  // namespace decent::testing::mpi
