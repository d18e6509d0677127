// The ring allreduce cases on the in-process backend at n = 1, 2, 3, 4, 5, 8, plus the polling
// policy and timeline file names, which need no second process.
#include "ring_cases.h"

#include "comm/polling.h"
#include "decent/comm/transport.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

namespace decent::testing {
namespace {

struct Param {
  std::size_t index;
  int n;
};

class RingLocal : public ::testing::TestWithParam<Param> {};

TEST_P(RingLocal, Run) {
  const CommCase& c = ring_cases()[GetParam().index];
  ContextOptions options;
  options.timeout = std::chrono::seconds(60);
  if (c.configure) c.configure(options);
  decent::local::run(GetParam().n, c.body, options);
}

std::vector<Param> params() {
  std::vector<Param> out;
  for (std::size_t i = 0; i < ring_cases().size(); ++i)
    for (int n : local_sizes())
      if (case_applies(ring_cases()[i], n)) out.push_back({i, n});
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllCases, RingLocal, ::testing::ValuesIn(params()),
                         [](const ::testing::TestParamInfo<Param>& info) {
                           return ring_cases()[info.param.index].name + "_n" +
                                  std::to_string(info.param.n);
                         });

// A request that completes on its `complete_after`-th test (never when negative).
class CountingRequest : public comm::Request {
 public:
  explicit CountingRequest(int complete_after) : complete_after_(complete_after) {}
  bool test() override { return complete_after_ >= 0 && ++tests_ >= complete_after_; }
  int tests() const { return tests_; }

 private:
  int complete_after_;
  int tests_ = 0;
};

TEST(Polling, WaitStopsAtTheDeadline) {
  CountingRequest never(-1);
  const auto start = Clock::now();
  EXPECT_FALSE(never.wait_until(start + std::chrono::milliseconds(30)));
  const auto waited = Clock::now() - start;
  EXPECT_GE(waited, std::chrono::milliseconds(30));
  // Sleeps are cut at the deadline, so the wait ends within one scheduling delay of it.
  EXPECT_LT(waited, std::chrono::milliseconds(500));
}

TEST(Polling, WaitReturnsOnCompletion) {
  CountingRequest soon(5);
  EXPECT_TRUE(soon.wait_until(Clock::now() + std::chrono::seconds(10)));
  EXPECT_EQ(soon.tests(), 5);
}

TEST(Polling, SleepsAfterTheSpinWindow) {
  // No spin window and a 2 ms cap: a 40 ms wait tests about 40 / 2 + log2(2000 / 20) times, far
  // fewer than a loop that only yields.
  comm::PollPolicy policy;
  policy.spin = std::chrono::microseconds(0);
  policy.first_sleep = std::chrono::microseconds(20);
  policy.max_sleep = std::chrono::microseconds(2000);
  comm::Backoff backoff(policy);
  const auto deadline = Clock::now() + std::chrono::milliseconds(40);
  int pauses = 0;
  while (Clock::now() < deadline) {
    backoff.pause(deadline);
    ++pauses;
  }
  EXPECT_LE(pauses, 40 / 2 + 8 + 1);
  EXPECT_GE(pauses, 8);
}

TEST(Polling, PolicyMatchesTheHost) {
  const comm::PollPolicy& p = comm::poll_policy();
  EXPECT_GE(p.hardware_threads, 1);
  EXPECT_GE(p.ranks_on_host, 1);
  EXPECT_GT(p.max_sleep.count(), 0) << "a zero cap would be a busy loop";
  EXPECT_LE(p.first_sleep, p.max_sleep);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(Timeline, ContextsInOneProcessWriteSeparateFiles) {
  const std::string prefix = ::testing::TempDir() + "decent_ring_timeline_";
  for (int r = 0; r < 2; ++r)
    for (const char* suffix : {".json", ".ctx1.json", ".ctx2.json"})
      std::remove((prefix + std::to_string(r) + suffix).c_str());
  ContextOptions options;
  options.timeline_prefix = prefix;
  options.ring_allreduce_threshold_bytes = 0;
  // Two jobs one after the other and, in each rank of the second, a context of its own.
  auto body = [](Context& c) {
    std::vector<double> x(10, c.rank());
    c.allreduce(x);
  };
  decent::local::run(2, body, options);
  decent::local::run(2, body, options);
  for (int r = 0; r < 2; ++r) {
    for (const char* suffix : {".json", ".ctx1.json"}) {
      const std::string path = prefix + std::to_string(r) + suffix;
      const std::string text = read_file(path);
      ASSERT_FALSE(text.empty()) << "missing " << path;
      EXPECT_NE(text.find("allreduce#0"), std::string::npos) << path;
      EXPECT_EQ(text.substr(text.size() - 3), "]}\n") << path << " is not a complete trace";
    }
    EXPECT_TRUE(read_file(prefix + std::to_string(r) + ".ctx2.json").empty());
  }
}

}  // namespace
}  // namespace decent::testing
