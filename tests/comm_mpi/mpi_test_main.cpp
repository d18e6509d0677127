// main() of the MPI transport tests: every rank runs every test; only rank 0 prints gtest's
// report, any rank prints its failures prefixed with its rank, and all ranks exit non-zero when
// any rank failed.
#include "comm/mpi/mpi_transport.h"
#include "mpi_test_world.h"

#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <memory>
#include <string>

namespace decent::comm::test {
namespace {

std::unique_ptr<Transport> g_world;

class RankFailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}

  // gtest holds its lock while reporting a result, so the test's name is recorded here.
  void OnTestStart(const testing::TestInfo& test) override {
    test_ = std::string(test.test_suite_name()) + "." + test.name();
  }

  void OnTestPartResult(const testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] FAILED %s at %s:%d\n[rank %d] %s\n", rank_, test_.c_str(),
                 result.file_name() ? result.file_name() : "?", result.line_number(), rank_,
                 result.summary());
    std::fflush(stderr);
  }

 private:
  int rank_;
  std::string test_ = "(outside a test)";
};

}  // namespace

Transport& world() {
  return *g_world;
}

}  // namespace decent::comm::test

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  using decent::comm::test::g_world;
  g_world = decent::comm::make_mpi_world_transport();
  const int rank = g_world->rank();

  testing::TestEventListeners& listeners = testing::UnitTest::GetInstance()->listeners();
  if (rank != 0) delete listeners.Release(listeners.default_result_printer());
  listeners.Append(new decent::comm::test::RankFailurePrinter(rank));

  const int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;

  // Let the slowest rank catch up without spinning, then agree on the verdict.
  g_world->ibarrier()->wait_until(decent::Clock::time_point::max());
  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (any_failed && rank == 0 && !failed) {
    std::fprintf(stderr, "[rank 0] another rank failed (see its [rank N] lines)\n");
  }
  g_world.reset();
  return any_failed;
}
