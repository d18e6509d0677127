// The asynchronous optimizers on the in-process backend, plus what only threads can show.
#include "async_cases.h"

#include "decent/comm/window.h"
#include "decent/topology/generators.h"
#include "decent/torch/optim/factory.h"
#include "decent/torch/optim_async.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace decent::testing {
namespace {

struct Param {
  std::size_t index;
  int n;
};

class LocalAsync : public ::testing::TestWithParam<Param> {};

TEST_P(LocalAsync, Run) {
  ContextOptions options;
  options.timeout = std::chrono::seconds(60);
  decent::local::run(GetParam().n, async_cases()[GetParam().index].body, options);
}

std::vector<Param> params() {
  std::vector<Param> out;
  for (std::size_t i = 0; i < async_cases().size(); ++i)
    for (int n : {1, 2, 3, 4, 5})
      if (n >= async_cases()[i].min_size) out.push_back({i, n});
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllCases, LocalAsync, ::testing::ValuesIn(params()),
                         [](const ::testing::TestParamInfo<Param>& info) {
                           return async_cases()[info.param.index].name + "_n" +
                                  std::to_string(info.param.n);
                         });

ContextPtr borrow(Context& ctx) {
  return ContextPtr(&ctx, [](Context*) {});
}

// The other ranks finish all their steps before rank 0 takes its first one: a step never waits
// for a neighbour (with a synchronous method this would hang until the timeout).
TEST(AsyncOptimizers, StepsNeverWaitForANeighbour) {
  for (const char* algorithm : {"ad-psgd", "async-gossip"}) {
    std::atomic<int> finished{0};
    constexpr int kRanks = 4;
    ContextOptions options;
    options.timeout = std::chrono::seconds(30);
    decent::local::run(
        kRanks,
        [&](Context& c) {
          c.set_topology(topology::ring(kRanks));
          torch::Tensor x = torch::full({8}, static_cast<double>(c.rank()), torch::kFloat64);
          x.requires_grad_(true);
          optim::AlgorithmConfig config;
          config.name = algorithm;
          config.lr = 0.1;
          config.momentum = 0.0;
          auto opt = optim::make_optimizer(config, {x}, borrow(c));
          if (c.rank() == 0) {
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
            while (finished.load() < kRanks - 1 && std::chrono::steady_clock::now() < deadline)
              std::this_thread::sleep_for(std::chrono::milliseconds(1));
            EXPECT_EQ(finished.load(), kRanks - 1) << algorithm << ": the others did not finish";
          }
          for (int k = 0; k < 50; ++k) opt->step();
          if (c.rank() != 0) ++finished;
          c.barrier();
          dynamic_cast<optim::AsyncDecentOptimizer&>(*opt).refresh_parameters();
          c.barrier();
        },
        options);
  }
}

TEST(AsyncOptimizers, FactoryNamesAndErrors) {
  decent::local::run(2, [](Context& c) {
    torch::Tensor x = torch::zeros({3}, torch::kFloat64).requires_grad_(true);
    optim::AlgorithmConfig config;
    config.name = "adpsgd";
    auto opt = optim::make_optimizer(config, {x}, borrow(c));
    EXPECT_EQ(dynamic_cast<optim::DecentOptimizer&>(*opt).algorithm(), "ad-psgd");
    // Two optimizers on one context get windows of their own.
    auto second = optim::make_optimizer(config, {x}, borrow(c));
    EXPECT_NE(&dynamic_cast<optim::AsyncDecentOptimizer&>(*opt).window(),
              &dynamic_cast<optim::AsyncDecentOptimizer&>(*second).window());
    torch::Tensor ints = torch::zeros({3}, torch::kInt64);
    try {
      optim::ADPSGD bad(std::vector<torch::Tensor>{ints}, borrow(c));
      ADD_FAILURE() << "int64 parameters accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("rank " + std::to_string(c.rank())), std::string::npos)
          << e.what();
    }
    c.barrier();
  });
}

}  // namespace
}  // namespace decent::testing
