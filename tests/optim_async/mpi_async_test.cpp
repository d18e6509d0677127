// The asynchronous optimizers as a real MPI job (one process per rank, MPI RMA windows).
#include "../comm/mpi_harness.h"
#include "async_cases.h"

#include <torch/torch.h>

namespace decent::testing {
namespace {

class MpiAsync : public ::testing::TestWithParam<std::size_t> {};

TEST_P(MpiAsync, Run) {
  const AsyncCase& c = async_cases()[GetParam()];
  if (mpi::world_size() < c.min_size) GTEST_SKIP() << "needs " << c.min_size << " ranks";
  mpi::run_case(c.body);
}

INSTANTIATE_TEST_SUITE_P(AllCases, MpiAsync,
                         ::testing::ValuesIn(mpi::case_indices(async_cases().size())),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           return async_cases()[info.param].name;
                         });

}  // namespace
}  // namespace decent::testing

int main(int argc, char** argv) {
  torch::set_num_threads(1);
  return decent::testing::mpi::run_all_tests(argc, argv);
}
