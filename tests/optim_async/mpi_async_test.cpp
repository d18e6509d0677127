// The asynchronous optimizers as a real MPI job (one process per rank, MPI RMA windows).
#include "async_cases.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <iostream>

#include "comm/mpi/mpi_transport.h"

namespace decent::testing {
namespace {

int world_size() {
  static const int n = [] {
    auto ctx = Context::create(comm::make_mpi_world_transport(), ContextOptions{});
    return ctx->size();
  }();
  return n;
}

class MpiAsync : public ::testing::TestWithParam<std::size_t> {};

TEST_P(MpiAsync, Run) {
  const AsyncCase& c = async_cases()[GetParam()];
  if (world_size() < c.min_size) GTEST_SKIP() << "needs " << c.min_size << " ranks";
  ContextOptions options;
  options.timeout = std::chrono::seconds(60);
  {
    auto ctx = Context::create(comm::make_mpi_world_transport(), options);
    c.body(*ctx);
  }
  auto sync = Context::create(comm::make_mpi_world_transport(), ContextOptions{});
  sync->barrier();
}

std::vector<std::size_t> indices() {
  std::vector<std::size_t> out(async_cases().size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = i;
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllCases, MpiAsync, ::testing::ValuesIn(indices()),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           return async_cases()[info.param].name;
                         });

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

}  // namespace
}  // namespace decent::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  torch::set_num_threads(1);
  auto world =
      decent::Context::create(decent::comm::make_mpi_world_transport(), decent::ContextOptions{});
  auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
  if (world->rank() != 0) delete listeners.Release(listeners.default_result_printer());
  listeners.Append(new decent::testing::RankFailurePrinter(world->rank()));
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  world->allreduce(decent::Buffer(&failed, 1, decent::DType::kInt32), decent::ReduceOp::kMax);
  if (world->rank() == 0)
    std::cout << (failed ? "FAILED on at least one rank" : "PASSED on every rank") << std::endl;
  return failed;
}
