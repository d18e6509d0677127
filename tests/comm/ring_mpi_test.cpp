// The allreduce algorithm cases (ring, recursive doubling, thresholds, mismatches) as a real
// multi-process MPI job; ctest runs it at several sizes.
#include "mpi_harness.h"
#include "ring_cases.h"

namespace decent::testing {
namespace {

class RingMpi : public ::testing::TestWithParam<std::size_t> {};

TEST_P(RingMpi, Run) {
  const CommCase& c = ring_cases()[GetParam()];
  if (!case_applies(c, mpi::world_size()))
    GTEST_SKIP() << "not for " << mpi::world_size() << " ranks";
  mpi::run_case(c.body, c.configure);
}

INSTANTIATE_TEST_SUITE_P(AllCases, RingMpi,
                         ::testing::ValuesIn(mpi::case_indices(ring_cases().size())),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           return ring_cases()[info.param].name;
                         });

}  // namespace
}  // namespace decent::testing

int main(int argc, char** argv) {
  return decent::testing::mpi::run_all_tests(argc, argv);
}
