// Every window case on the in-process backend at n = 1..5 and 8, plus what only threads can
// show (a job shut down under a rank that keeps using its window).
#include "window_cases.h"

#include "decent/comm/window.h"
#include "decent/topology/generators.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace decent::testing {
namespace {

struct Param {
  std::size_t index;
  int n;
};

class LocalWindows : public ::testing::TestWithParam<Param> {};

TEST_P(LocalWindows, Run) {
  const WindowCase& c = window_cases()[GetParam().index];
  ContextOptions options;
  options.timeout = std::chrono::seconds(60);
  if (c.configure) c.configure(options);
  decent::local::run(GetParam().n, c.body, options);
}

std::vector<Param> params() {
  std::vector<Param> out;
  for (std::size_t i = 0; i < window_cases().size(); ++i)
    for (int n : {1, 2, 3, 4, 5, 8})
      if (n >= window_cases()[i].min_size) out.push_back({i, n});
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllCases, LocalWindows, ::testing::ValuesIn(params()),
                         [](const ::testing::TestParamInfo<Param>& info) {
                           return window_cases()[info.param.index].name + "_n" +
                                  std::to_string(info.param.n);
                         });

// Rank 1 fails while rank 0 keeps putting: rank 0's next window call raises CommError naming
// the failed rank instead of writing into a dead job.
TEST(LocalWindowShutdown, UseAfterShutdownRaises) {
  std::string seen_by_rank0;
  try {
    decent::local::run(2, [&](Context& c) {
      c.set_topology(topology::ring(2));
      std::vector<double> x(4, c.rank());
      Window& win = c.win_create("x", x);
      if (c.rank() == 1) throw InvalidArgument("rank 1 gives up");
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      try {
        while (std::chrono::steady_clock::now() < deadline) {
          win.put();
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      } catch (const CommError& e) {
        seen_by_rank0 = e.what();
      }
    });
    FAIL() << "expected rank 1's error";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 gives up"), std::string::npos) << e.what();
  }
  EXPECT_NE(seen_by_rank0.find("rank 1 failed"), std::string::npos) << seen_by_rank0;
}

}  // namespace
}  // namespace decent::testing
