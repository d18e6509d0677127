// Runs every shared comm case as a real multi-process MPI job (one process per rank). ctest
// launches this binary with mpiexec at several sizes; each case gets a fresh Context.
#include "cases.h"
#include "mpi_harness.h"

#include <string>
#include <vector>

namespace decent::testing {
namespace {

class MpiOps : public ::testing::TestWithParam<std::size_t> {};

TEST_P(MpiOps, Run) {
  const CommCase& c = comm_cases()[GetParam()];
  if (!case_applies(c, mpi::world_size()))
    GTEST_SKIP() << "not for " << mpi::world_size() << " ranks";
  mpi::run_case(c.body, c.configure);
}

INSTANTIATE_TEST_SUITE_P(AllCases, MpiOps,
                         ::testing::ValuesIn(mpi::case_indices(comm_cases().size())),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           return comm_cases()[info.param].name;
                         });

// Ranks whose small-allreduce thresholds differ (a misconfiguration) run different algorithms
// for one allreduce: rank 0 halving-doubling, whose messages on the collective tag reach
// 0.5-1 MiB, the others the ring or Rabenseifner, which receive their check headers on
// that tag into buffers posted before the message arrives. The ranks agree at start-up on the
// largest message of the tag, so those buffers hold rank 0's messages, and every rank reports
// the mismatch (sized from its own threshold alone, they would be overrun).
TEST(MpiContext, DifferentSmallThresholdsAreReportedNotOverrun) {
  if (mpi::world_size() < 2) GTEST_SKIP() << "needs 2 ranks";
  auto transport = comm::make_mpi_world_transport();
  const int rank = transport->rank();
  ContextOptions options;
  options.timeout = std::chrono::seconds(20);
  options.small_allreduce_threshold_bytes =
      rank == 0 ? std::size_t{1} << 20 : std::size_t{256} << 10;
  auto ctx = Context::create(std::move(transport), options);
  // Just below rank 0's threshold: its messages reach 512 KiB (n = 2) to 1 MiB (the fold).
  std::vector<float> x((std::size_t{256} << 10) - 1, 1.0f);
  try {
    ctx->allreduce(x);
    ADD_FAILURE() << "rank " << rank << ": the allreduce did not fail";
  } catch (const MismatchError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("algorithm=halving-doubling"), std::string::npos) << message;
  } catch (const Error& e) {
    ADD_FAILURE() << "rank " << rank << ": expected a MismatchError, got: " << e.what();
  }
  auto sync = Context::create(comm::make_mpi_world_transport(), ContextOptions{});
  sync->barrier();
}

}  // namespace
}  // namespace decent::testing

int main(int argc, char** argv) {
  return decent::testing::mpi::run_all_tests(argc, argv);
}
