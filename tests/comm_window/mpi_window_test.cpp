// Every window case as a real MPI job (one process per rank, MPI RMA); ctest launches it with
// mpiexec at several sizes. Each case gets a fresh Context.
#include "../comm/mpi_harness.h"
#include "window_cases.h"

namespace decent::testing {
namespace {

class MpiWindows : public ::testing::TestWithParam<std::size_t> {};

TEST_P(MpiWindows, Run) {
  const WindowCase& c = window_cases()[GetParam()];
  if (mpi::world_size() < c.min_size) GTEST_SKIP() << "needs " << c.min_size << " ranks";
  mpi::run_case(c.body, c.configure);
}

INSTANTIATE_TEST_SUITE_P(AllCases, MpiWindows,
                         ::testing::ValuesIn(mpi::case_indices(window_cases().size())),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           return window_cases()[info.param].name;
                         });

}  // namespace
}  // namespace decent::testing

int main(int argc, char** argv) {
  return decent::testing::mpi::run_all_tests(argc, argv);
}
