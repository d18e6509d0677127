// Runs every shared comm case as a real multi-process MPI job (one process per rank). ctest
// launches this binary with mpiexec at several sizes; each case gets a fresh Context.
#include "cases.h"
#include "mpi_harness.h"

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

}  // namespace
}  // namespace decent::testing

int main(int argc, char** argv) {
  return decent::testing::mpi::run_all_tests(argc, argv);
}
