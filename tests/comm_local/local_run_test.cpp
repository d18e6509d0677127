// decent::local::run: threads as ranks, and how their errors come back to the caller.
#include "decent/comm/context.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace decent {
namespace {

using namespace std::chrono_literals;

// Options with a timeout long enough that a test passing quickly proves ranks were released
// by the failure, not by the timeout.
ContextOptions slow_timeout() {
  ContextOptions options;
  options.timeout = 60s;
  return options;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

TEST(LocalRun, EveryRankRunsWithItsOwnContext) {
  for (int n : {1, 2, 3, 5, 8}) {
    std::vector<int> seen(n, 0);
    std::atomic<int> calls{0};
    local::run(
        n,
        [&](Context& ctx) {
          ASSERT_EQ(ctx.size(), n);
          ASSERT_EQ(ctx.backend(), "local");
          seen[ctx.rank()] += 1;
          calls.fetch_add(1);
          std::vector<double> x = {static_cast<double>(ctx.rank())};
          ctx.allreduce(x, ReduceOp::kSum);
          EXPECT_EQ(x[0], n * (n - 1) / 2.0);
        },
        slow_timeout());
    EXPECT_EQ(calls.load(), n);
    EXPECT_EQ(seen, std::vector<int>(n, 1));
  }
}

TEST(LocalRun, RejectsFewerThanOneRank) {
  EXPECT_THROW(local::run(
                   0, [](Context&) {}, slow_timeout()),
               InvalidArgument);
  EXPECT_THROW(local::run(
                   -3, [](Context&) {}, slow_timeout()),
               InvalidArgument);
}

// Rank 2 throws while the others wait for it in a barrier: they are released at once, and the
// caller gets rank 2's error (the cause), with its type, not the peers' consequential errors.
TEST(LocalRun, FirstErrorIsRethrownWithItsRankAndType) {
  const auto start = Clock::now();
  try {
    local::run(
        4,
        [](Context& ctx) {
          if (ctx.rank() == 2) throw InvalidArgument("weights do not sum to one");
          ctx.barrier();
        },
        slow_timeout());
    FAIL() << "run returned normally";
  } catch (const InvalidArgument& e) {
    EXPECT_EQ(std::string(e.what()), "rank 2: weights do not sum to one");
  }
  EXPECT_LT(seconds_since(start), 10.0);
}

TEST(LocalRun, ForeignExceptionsBecomeDecentErrors) {
  try {
    local::run(
        3,
        [](Context& ctx) {
          if (ctx.rank() == 1) throw std::out_of_range("index 9");
        },
        slow_timeout());
    FAIL() << "run returned normally";
  } catch (const InvalidArgument&) {
    FAIL() << "wrapped as the wrong type";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "rank 1: index 9");
  }
  try {
    local::run(
        2,
        [](Context& ctx) {
          if (ctx.rank() == 0) throw 42;
        },
        slow_timeout());
    FAIL() << "run returned normally";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "rank 0: unknown exception");
  }
}

// A rank that returns while a peer still waits for it does not leave the peer hanging until
// the timeout.
TEST(LocalRun, RankThatReturnsEarlyReleasesItsPeers) {
  const auto start = Clock::now();
  try {
    local::run(
        3,
        [](Context& ctx) {
          if (ctx.rank() != 0) ctx.barrier();
        },
        slow_timeout());
    FAIL() << "run returned normally";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("rank 0 left"), std::string::npos) << e.what();
  }
  EXPECT_LT(seconds_since(start), 10.0);
}

}  // namespace
}  // namespace decent
