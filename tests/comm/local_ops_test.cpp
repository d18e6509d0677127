// Runs every shared comm case on the in-process backend at n = 1, 2, 3, 4, 5, 8.
#include "cases.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

namespace decent::testing {
namespace {

struct Param {
  std::size_t index;
  int n;
};

class LocalOps : public ::testing::TestWithParam<Param> {};

TEST_P(LocalOps, Run) {
  const CommCase& c = comm_cases()[GetParam().index];
  ContextOptions options;
  options.timeout = std::chrono::seconds(60);
  if (c.configure) c.configure(options);
  decent::local::run(GetParam().n, c.body, options);
}

std::vector<Param> params() {
  std::vector<Param> out;
  for (std::size_t i = 0; i < comm_cases().size(); ++i)
    for (int n : local_sizes())
      if (case_applies(comm_cases()[i], n)) out.push_back({i, n});
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllCases, LocalOps, ::testing::ValuesIn(params()),
                         [](const ::testing::TestParamInfo<Param>& info) {
                           return comm_cases()[info.param.index].name + "_n" +
                                  std::to_string(info.param.n);
                         });

TEST(LocalRun, RethrowsFirstErrorWithRank) {
  try {
    decent::local::run(3, [](Context& c) {
      if (c.rank() == 2) throw InvalidArgument("boom");
      c.barrier();  // released by the failure of rank 2, not by the timeout
    });
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 2"), std::string::npos) << e.what();
  }
}

TEST(LocalRun, RejectsBadSize) {
  EXPECT_THROW(decent::local::run(0, [](Context&) {}), InvalidArgument);
}

TEST(LocalRun, SixteenRanksOnTwoCores) {
  decent::local::run(16, [](Context& c) {
    double x = c.rank();
    for (int k = 0; k < 40; ++k) c.neighbor_allreduce(Buffer(&x, 1), Buffer(&x, 1));
    EXPECT_NEAR(x, 7.5, 1e-6);
  });
}

TEST(Context, InitWithoutLauncherIsSingleRank) {
  auto ctx = Context::init();
  EXPECT_EQ(ctx->size(), 1);
  EXPECT_EQ(ctx->rank(), 0);
  std::vector<float> x = {1, 2, 3};
  ctx->neighbor_allreduce(x, x);
  ctx->allreduce(x);
  EXPECT_EQ(x, (std::vector<float>{1, 2, 3}));
}

TEST(Context, OptionsFromEnvironment) {
  setenv("DECENT_TIMEOUT_MS", "1234", 1);
  setenv("DECENT_FUSION_THRESHOLD", "0", 1);
  auto o = ContextOptions::from_env();
  EXPECT_EQ(o.timeout.count(), 1234);
  EXPECT_EQ(o.fusion_threshold_bytes, 0u);
  setenv("DECENT_TIMEOUT_MS", "soon", 1);
  EXPECT_THROW(ContextOptions::from_env(), InvalidArgument);
  unsetenv("DECENT_TIMEOUT_MS");
  unsetenv("DECENT_FUSION_THRESHOLD");
}

TEST(Context, TimelineWritesChromeTrace) {
  const std::string prefix = ::testing::TempDir() + "decent_timeline_";
  ContextOptions options;
  options.timeline_prefix = prefix;
  decent::local::run(
      2,
      [](Context& c) {
        std::vector<double> x(100, c.rank());
        c.neighbor_allreduce(x, x);
        c.allreduce(x);
      },
      options);
  for (int r = 0; r < 2; ++r) {
    std::ifstream in(prefix + std::to_string(r) + ".json");
    ASSERT_TRUE(in) << "missing timeline of rank " << r;
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find("\"traceEvents\""), std::string::npos);
    EXPECT_NE(text.find("neighbor_allreduce"), std::string::npos);
    EXPECT_NE(text.find("\"communicate\""), std::string::npos);
    EXPECT_NE(text.find("\"reduce\""), std::string::npos);
    EXPECT_EQ(text.substr(text.size() - 3), "]}\n");
  }
}

}  // namespace
}  // namespace decent::testing
