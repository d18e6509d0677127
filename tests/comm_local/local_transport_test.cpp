// The in-process transport, driven the way the engine drives it: one thread per rank.
#include "comm/local/local_transport.h"

#include <gtest/gtest.h>
#include <Eigen/Core>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace decent::comm {
namespace {

using namespace std::chrono_literals;

constexpr auto kWaitLimit = 10s;  // no wait in these tests should come anywhere near it

// Waits for `request` and turns a timeout into an error so that a broken test fails instead of
// hanging.
void wait(Request& request) {
  if (!request.wait_until(Clock::now() + kWaitLimit)) {
    throw std::runtime_error("request did not complete within the test's time limit");
  }
}

void wait(const RequestPtr& request) {
  wait(*request);
}

// Runs body(transport) for every rank of `transports` on its own thread; returns what each
// rank threw (null where it returned normally).
std::vector<std::exception_ptr> run_ranks(std::vector<std::unique_ptr<Transport>>& transports,
                                          const std::function<void(Transport&)>& body) {
  const std::size_t n = transports.size();
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::thread> threads;
  for (std::size_t r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      try {
        body(*transports[r]);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  return errors;
}

std::string what(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  }
}

void expect_no_errors(const std::vector<std::exception_ptr>& errors) {
  for (std::size_t r = 0; r < errors.size(); ++r) {
    if (errors[r]) ADD_FAILURE() << "rank " << r << " threw: " << what(errors[r]);
  }
}

// Runs body on n ranks of a fresh job and fails the test if any rank throws.
void run_ok(int n, const std::function<void(Transport&)>& body) {
  auto transports = make_local_transports(n);
  expect_no_errors(run_ranks(transports, body));
}

// Expects `error` to be an E whose message contains every one of `fragments`.
template <typename E>
void expect_error(const std::exception_ptr& error, const std::vector<std::string>& fragments,
                  int rank) {
  ASSERT_TRUE(error) << "rank " << rank << " did not throw";
  try {
    std::rethrow_exception(error);
  } catch (const E& e) {
    for (const auto& fragment : fragments) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
          << "rank " << rank << ": \"" << e.what() << "\" does not mention \"" << fragment << "\"";
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "rank " << rank << " threw the wrong type: " << e.what();
  }
}

void barrier(Transport& t) {
  wait(t.ibarrier());
}

class LocalTransportRanks : public ::testing::TestWithParam<int> {};

INSTANTIATE_TEST_SUITE_P(Sizes, LocalTransportRanks, ::testing::Values(1, 2, 3, 4, 5, 8, 16),
                         [](const auto& info) { return "n" + std::to_string(info.param); });

// ---------------------------------------------------------------- point to point

// Every rank sends to every rank (itself included) on two tags, interleaved, with sizes that
// vary per message; half of the receives are posted before any send, half after. Each (source,
// tag) stream must arrive complete and in order.
TEST_P(LocalTransportRanks, PointToPointKeepsOrderPerSourceAndTag) {
  const int n = GetParam();
  constexpr int kPerStream = 12;
  const std::vector<int> tags = {0, 7};
  run_ok(n, [&](Transport& t) {
    const int me = t.rank();
    // message[k] of stream (src, tag) holds {src, tag, k, ...} and 3 + k % 4 ints in total.
    auto message = [&](int src, int tag, int k) {
      std::vector<std::int32_t> m(3 + k % 4, -1);
      m[0] = src;
      m[1] = tag;
      m[2] = k;
      return m;
    };
    std::vector<std::vector<std::int32_t>> inbox;
    std::vector<std::tuple<int, int, int>> inbox_id;  // (src, tag, k)
    std::vector<RequestPtr> receives;
    inbox.reserve(static_cast<std::size_t>(n) * tags.size() * kPerStream);
    auto post = [&](int k_begin, int k_end) {
      for (int src = 0; src < n; ++src) {
        for (int tag : tags) {
          for (int k = k_begin; k < k_end; ++k) {
            inbox.emplace_back(8, 0);
            inbox_id.emplace_back(src, tag, k);
            receives.push_back(t.irecv(inbox.back().data(), 8 * sizeof(std::int32_t), src, tag));
          }
        }
      }
    };
    post(0, kPerStream / 2);
    barrier(t);  // every rank has posted its first half before anyone sends
    for (int k = 0; k < kPerStream; ++k) {
      for (int dst = 0; dst < n; ++dst) {
        for (int tag : tags) {
          const auto m = message(me, tag, k);
          wait(t.isend(m.data(), m.size() * sizeof(std::int32_t), dst, tag));
        }
      }
    }
    barrier(t);  // every message has been sent before the second half is posted
    post(kPerStream / 2, kPerStream);
    for (std::size_t i = 0; i < receives.size(); ++i) {
      wait(receives[i]);
      const auto [src, tag, k] = inbox_id[i];
      const auto expected = message(src, tag, k);
      ASSERT_EQ(receives[i]->received_bytes(), expected.size() * sizeof(std::int32_t));
      for (std::size_t j = 0; j < expected.size(); ++j) {
        ASSERT_EQ(inbox[i][j], expected[j]) << "rank " << me << " from " << src << " tag " << tag;
      }
    }
  });
}

TEST(LocalTransport, ReceivePostedBeforeTheSend) {
  run_ok(2, [](Transport& t) {
    double value = 0;
    if (t.rank() == 1) {
      auto recv = t.irecv(&value, sizeof value, 0, 3);
      EXPECT_FALSE(recv->test());
      barrier(t);
      wait(recv);
      EXPECT_EQ(value, 2.5);
      EXPECT_EQ(recv->received_bytes(), sizeof value);
    } else {
      barrier(t);
      value = 2.5;
      auto send = t.isend(&value, sizeof value, 1, 3);
      EXPECT_TRUE(send->test());  // eager
    }
  });
}

TEST(LocalTransport, ReceivePostedAfterTheSend) {
  run_ok(2, [](Transport& t) {
    double value = 0;
    if (t.rank() == 0) {
      value = -4.25;
      wait(t.isend(&value, sizeof value, 1, 3));
      value = 99;  // the send copied the payload: changing it now must not matter
      barrier(t);
    } else {
      barrier(t);
      auto recv = t.irecv(&value, sizeof value, 0, 3);
      EXPECT_TRUE(recv->test());
      EXPECT_EQ(value, -4.25);
    }
  });
}

// Messages on different tags do not overtake or block each other: the receiver takes the
// later tag first.
TEST_P(LocalTransportRanks, TagsAreIndependentQueues) {
  const int n = GetParam();
  run_ok(n, [&](Transport& t) {
    const int next = (t.rank() + 1) % n;
    const int prev = (t.rank() + n - 1) % n;
    const std::int64_t a = 1000 + t.rank(), b = 2000 + t.rank(), c = 3000 + t.rank();
    wait(t.isend(&a, sizeof a, next, 5));
    wait(t.isend(&b, sizeof b, next, 6));
    wait(t.isend(&c, sizeof c, next, 5));
    std::int64_t got_b = 0, got_a = 0, got_c = 0;
    wait(t.irecv(&got_b, sizeof got_b, prev, 6));
    wait(t.irecv(&got_a, sizeof got_a, prev, 5));
    wait(t.irecv(&got_c, sizeof got_c, prev, 5));
    EXPECT_EQ(got_a, 1000 + prev);
    EXPECT_EQ(got_b, 2000 + prev);
    EXPECT_EQ(got_c, 3000 + prev);
  });
}

TEST_P(LocalTransportRanks, ZeroByteMessages) {
  const int n = GetParam();
  run_ok(n, [&](Transport& t) {
    const int next = (t.rank() + 1) % n;
    const int prev = (t.rank() + n - 1) % n;
    wait(t.isend(nullptr, 0, next, 0));
    auto empty = t.irecv(nullptr, 0, prev, 0);
    wait(empty);
    EXPECT_EQ(empty->received_bytes(), 0u);
    // A zero-byte message into a receive that could hold more.
    wait(t.isend(nullptr, 0, next, 1));
    std::int32_t untouched = 77;
    auto roomy = t.irecv(&untouched, sizeof untouched, prev, 1);
    wait(roomy);
    EXPECT_EQ(roomy->received_bytes(), 0u);
    EXPECT_EQ(untouched, 77);
  });
}

TEST(LocalTransport, SixtyFourMegabyteMessage) {
  constexpr std::size_t kBytes = std::size_t{64} << 20;
  run_ok(2, [&](Transport& t) {
    std::vector<std::uint32_t> data(kBytes / sizeof(std::uint32_t));
    if (t.rank() == 0) {
      for (std::size_t i = 0; i < data.size(); ++i)
        data[i] = static_cast<std::uint32_t>(i * 2654435761u);
      wait(t.isend(data.data(), kBytes, 1, 0));
    } else {
      auto recv = t.irecv(data.data(), kBytes, 0, 0);
      wait(recv);
      EXPECT_EQ(recv->received_bytes(), kBytes);
      for (std::size_t i = 0; i < data.size(); ++i) {
        if (data[i] != static_cast<std::uint32_t>(i * 2654435761u)) {
          ADD_FAILURE() << "word " << i << " differs";
          break;
        }
      }
    }
  });
}

TEST(LocalTransport, MessageLargerThanTheReceiveIsAMismatch) {
  auto transports = make_local_transports(3);
  auto errors = run_ranks(transports, [](Transport& t) {
    std::vector<std::uint8_t> big(16, 1), small(8, 0);
    if (t.rank() == 2) wait(t.isend(big.data(), big.size(), 1, 4));
    if (t.rank() == 1) {
      auto recv = t.irecv(small.data(), small.size(), 2, 4);
      try {
        wait(recv);
      } catch (const MismatchError&) {
        EXPECT_THROW(recv->test(), MismatchError);  // the failure sticks
        EXPECT_EQ(small, std::vector<std::uint8_t>(8, 0));
        throw;
      }
    }
  });
  EXPECT_FALSE(errors[0]);
  EXPECT_FALSE(errors[2]);
  expect_error<MismatchError>(errors[1], {"rank 2", "rank 1", "16 bytes", "8 bytes"}, 1);
}

// exchange (the transport's default, over isend/irecv): around the ring, a message larger than
// the receive, and a timeout.
TEST_P(LocalTransportRanks, ExchangeAroundTheRing) {
  const int n = GetParam();
  run_ok(n, [n](Transport& t) {
    const int right = (t.rank() + 1) % n, left = (t.rank() + n - 1) % n;
    std::vector<std::int32_t> mine(100), got(120, -7);
    for (int i = 0; i < 100; ++i) mine[i] = 1000 * t.rank() + i;
    const ExchangeStatus status =
        t.exchange(mine.data(), 400, right, got.data(), 480, left, 3, Clock::now() + kWaitLimit);
    ASSERT_EQ(status.state, ExchangeStatus::State::kDone);
    EXPECT_EQ(status.received_bytes, 400u);
    EXPECT_FALSE(status.too_large);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(got[i], 1000 * left + i);
    for (int i = 100; i < 120; ++i) EXPECT_EQ(got[i], -7);
  });
}

TEST(LocalTransport, ExchangeReportsLargeMessagesAndTimeouts) {
  run_ok(2, [](Transport& t) {
    const int peer = 1 - t.rank();
    std::vector<std::uint8_t> big(64, 1), small(8, 0);
    ExchangeStatus status = t.exchange(big.data(), big.size(), peer, small.data(), small.size(),
                                       peer, 5, Clock::now() + kWaitLimit);
    ASSERT_EQ(status.state, ExchangeStatus::State::kDone);
    EXPECT_TRUE(status.too_large);
    EXPECT_EQ(small, std::vector<std::uint8_t>(8, 0));
    std::int32_t never = -1;
    const auto start = Clock::now();
    status = t.exchange(nullptr, 0, -1, &never, sizeof never, peer, 6, start + 100ms);
    EXPECT_EQ(status.state, ExchangeStatus::State::kReceiveTimedOut);
    EXPECT_GE(Clock::now() - start, 100ms);
    EXPECT_EQ(never, -1);
  });
}

// A receive abandoned before it matched must not swallow the next message of its stream.
TEST(LocalTransport, AbandonedReceiveDoesNotTakeLaterMessages) {
  run_ok(2, [](Transport& t) {
    std::int32_t value = 0;
    if (t.rank() == 1) {
      { auto abandoned = t.irecv(&value, sizeof value, 0, 0); }
      barrier(t);
      auto recv = t.irecv(&value, sizeof value, 0, 0);
      wait(recv);
      EXPECT_EQ(value, 42);
    } else {
      barrier(t);
      value = 42;
      wait(t.isend(&value, sizeof value, 1, 0));
    }
  });
}

TEST(LocalTransport, RejectsBadArguments) {
  auto transports = make_local_transports(2);
  Transport& t = *transports[0];
  std::int32_t x = 0;
  EXPECT_THROW(t.isend(&x, sizeof x, 2, 0), InvalidArgument);
  EXPECT_THROW(t.irecv(&x, sizeof x, -1, 0), InvalidArgument);
  EXPECT_THROW(t.isend(&x, sizeof x, 1, t.max_tag() + 1), InvalidArgument);
  EXPECT_THROW(t.irecv(&x, sizeof x, 1, -3), InvalidArgument);
  EXPECT_THROW(t.isend(nullptr, 4, 1, 0), InvalidArgument);
  EXPECT_THROW(t.iallreduce(&x, 1, DType::kInt32, ReduceOp::kAverage), InvalidArgument);
  EXPECT_THROW(t.ibroadcast(&x, sizeof x, 5), InvalidArgument);
  EXPECT_THROW(make_local_transports(0), InvalidArgument);
}

TEST(LocalTransport, IdentityAndHost) {
  auto transports = make_local_transports(3);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(transports[r]->rank(), r);
    EXPECT_EQ(transports[r]->size(), 3);
    EXPECT_EQ(transports[r]->backend(), "local");
    EXPECT_EQ(transports[r]->host(), "local");
  }
  EXPECT_EQ(make_local_transports(2, "node-a")[1]->host(), "node-a");
}

// ---------------------------------------------------------------- allreduce

// Small integers, so every dtype (float16 and bfloat16 included) holds inputs and sums exactly.
std::int64_t small_value(int rank, std::size_t i, bool non_negative) {
  const std::int64_t v = (rank * 7 + static_cast<std::int64_t>(i) * 3) % 11;
  return non_negative ? v : v - 5;
}

template <typename T>
double as_double(T v) {
  return static_cast<double>(static_cast<float>(v));
}
template <>
double as_double(double v) {
  return v;
}
template <>
double as_double(std::int64_t v) {
  return static_cast<double>(v);
}

template <typename T>
void check_allreduce(int n, DType dtype) {
  constexpr std::size_t kCount = 37;
  const bool unsigned_type = dtype == DType::kUInt8;
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMin, ReduceOp::kMax}) {
    std::vector<double> expected(kCount);
    for (std::size_t i = 0; i < kCount; ++i) {
      std::int64_t acc = small_value(0, i, unsigned_type);
      for (int r = 1; r < n; ++r) {
        const std::int64_t v = small_value(r, i, unsigned_type);
        acc = op == ReduceOp::kSum   ? acc + v
              : op == ReduceOp::kMin ? std::min(acc, v)
                                     : std::max(acc, v);
      }
      expected[i] = static_cast<double>(acc);
    }
    std::vector<std::vector<T>> results(n);
    run_ok(n, [&](Transport& t) {
      std::vector<T> data(kCount);
      for (std::size_t i = 0; i < kCount; ++i) {
        data[i] = static_cast<T>(static_cast<float>(small_value(t.rank(), i, unsigned_type)));
      }
      wait(t.iallreduce(data.data(), kCount, dtype, op));
      results[t.rank()] = data;
    });
    for (std::size_t i = 0; i < kCount; ++i) {
      ASSERT_EQ(as_double(results[0][i]), expected[i])
          << dtype_name(dtype) << " " << reduce_op_name(op) << " element " << i << " n=" << n;
    }
    for (int r = 1; r < n; ++r) {
      ASSERT_EQ(std::memcmp(results[r].data(), results[0].data(), kCount * sizeof(T)), 0)
          << "rank " << r << " differs from rank 0";
    }
  }
}

TEST_P(LocalTransportRanks, AllreduceEveryDtypeAndOp) {
  const int n = GetParam();
  check_allreduce<float>(n, DType::kFloat32);
  check_allreduce<double>(n, DType::kFloat64);
  check_allreduce<Eigen::half>(n, DType::kFloat16);
  check_allreduce<Eigen::bfloat16>(n, DType::kBFloat16);
  check_allreduce<std::int32_t>(n, DType::kInt32);
  check_allreduce<std::int64_t>(n, DType::kInt64);
  check_allreduce<std::uint8_t>(n, DType::kUInt8);
}

// Non-integer sums depend on the order of additions: the result is the left fold over ranks
// 0, 1, ..., n-1, and float16 is accumulated in float32 and rounded once.
TEST_P(LocalTransportRanks, AllreduceSumIsTheRankOrderFold) {
  const int n = GetParam();
  constexpr std::size_t kCount = 64;
  auto f32 = [](int r, std::size_t i) { return 0.1f * static_cast<float>(r + 1) + 1e-3f * i; };
  auto f16 = [](int r, std::size_t i) { return Eigen::half(0.3f * (r + 1) + 0.01f * i); };
  std::vector<float> expected32(kCount);
  std::vector<Eigen::half> expected16(kCount);
  for (std::size_t i = 0; i < kCount; ++i) {
    float acc32 = f32(0, i);
    float acc16 = static_cast<float>(f16(0, i));
    for (int r = 1; r < n; ++r) {
      acc32 += f32(r, i);
      acc16 += static_cast<float>(f16(r, i));
    }
    expected32[i] = acc32;
    expected16[i] = Eigen::half(acc16);
  }
  run_ok(n, [&](Transport& t) {
    std::vector<float> x32(kCount);
    std::vector<Eigen::half> x16(kCount);
    for (std::size_t i = 0; i < kCount; ++i) {
      x32[i] = f32(t.rank(), i);
      x16[i] = f16(t.rank(), i);
    }
    auto r32 = t.iallreduce(x32.data(), kCount, DType::kFloat32, ReduceOp::kSum);
    auto r16 = t.iallreduce(x16.data(), kCount, DType::kFloat16, ReduceOp::kSum);
    wait(r16);  // completion order need not follow start order
    wait(r32);
    EXPECT_EQ(std::memcmp(x32.data(), expected32.data(), kCount * sizeof(float)), 0);
    EXPECT_EQ(std::memcmp(x16.data(), expected16.data(), kCount * sizeof(Eigen::half)), 0);
  });
}

TEST_P(LocalTransportRanks, IntegerSumsWrapAround) {
  const int n = GetParam();
  run_ok(n, [&](Transport& t) {
    std::uint8_t byte = 255;
    std::int32_t big = std::numeric_limits<std::int32_t>::max();
    wait(t.iallreduce(&byte, 1, DType::kUInt8, ReduceOp::kSum));
    wait(t.iallreduce(&big, 1, DType::kInt32, ReduceOp::kSum));
    EXPECT_EQ(byte, static_cast<std::uint8_t>(255u * n));
    EXPECT_EQ(big, static_cast<std::int32_t>(
                       static_cast<std::uint32_t>(std::numeric_limits<std::int32_t>::max()) * n));
  });
}

TEST_P(LocalTransportRanks, AllreduceOfNothing) {
  run_ok(GetParam(),
         [&](Transport& t) { wait(t.iallreduce(nullptr, 0, DType::kFloat32, ReduceOp::kSum)); });
}

// ---------------------------------------------------------------- broadcast, allgather, barrier

TEST_P(LocalTransportRanks, BroadcastFromEveryRoot) {
  const int n = GetParam();
  constexpr std::size_t kBytes = 13;
  run_ok(n, [&](Transport& t) {
    for (int root = 0; root < n; ++root) {
      std::vector<std::uint8_t> data(kBytes);
      for (std::size_t i = 0; i < kBytes; ++i)
        data[i] = static_cast<std::uint8_t>(t.rank() * 16 + i);
      wait(t.ibroadcast(data.data(), kBytes, root));
      for (std::size_t i = 0; i < kBytes; ++i) {
        ASSERT_EQ(data[i], static_cast<std::uint8_t>(root * 16 + i)) << "root " << root;
      }
    }
  });
}

TEST_P(LocalTransportRanks, AllgatherOrdersByRank) {
  const int n = GetParam();
  constexpr int kPerRank = 5;
  run_ok(n, [&](Transport& t) {
    std::vector<std::int32_t> mine(kPerRank), all(kPerRank * n, -1);
    for (int i = 0; i < kPerRank; ++i) mine[i] = t.rank() * 100 + i;
    wait(t.iallgather(mine.data(), sizeof(std::int32_t) * kPerRank, all.data()));
    for (int r = 0; r < n; ++r) {
      for (int i = 0; i < kPerRank; ++i) ASSERT_EQ(all[r * kPerRank + i], r * 100 + i);
    }
    // Zero bytes per rank is a valid allgather.
    wait(t.iallgather(nullptr, 0, nullptr));
  });
}

TEST_P(LocalTransportRanks, BarrierHoldsEveryRankUntilAllArrive) {
  const int n = GetParam();
  constexpr int kRounds = 3;
  std::atomic<int> arrived{0};
  run_ok(n, [&](Transport& t) {
    for (int round = 0; round < kRounds; ++round) {
      // The last rank arrives late, so an early release would be seen.
      if (t.rank() == n - 1) std::this_thread::sleep_for(20ms);
      arrived.fetch_add(1);
      barrier(t);
      EXPECT_GE(arrived.load(), n * (round + 1)) << "rank " << t.rank() << " round " << round;
    }
  });
}

// ---------------------------------------------------------------- mismatched collectives

// Runs one collective per rank (chosen by `call`), expects MismatchError on every rank naming
// the given fragments, then checks that the next collective works again.
void expect_mismatch(int n, const std::function<RequestPtr(Transport&)>& call,
                     const std::vector<std::string>& fragments) {
  auto transports = make_local_transports(n);
  auto errors = run_ranks(transports, [&](Transport& t) { wait(call(t)); });
  for (int r = 0; r < n; ++r) expect_error<MismatchError>(errors[r], fragments, r);
  expect_no_errors(run_ranks(transports, [&](Transport& t) {
    std::int32_t x = t.rank();
    wait(t.iallreduce(&x, 1, DType::kInt32, ReduceOp::kSum));
    EXPECT_EQ(x, n * (n - 1) / 2);
  }));
}

TEST_P(LocalTransportRanks, MismatchedCollectivesFailOnEveryRank) {
  const int n = GetParam();
  if (n < 2) GTEST_SKIP() << "a mismatch needs two ranks";
  const int odd = n - 1;
  const std::string odd_rank = "rank " + std::to_string(odd);
  std::vector<std::vector<double>> buffers(n, std::vector<double>(8));
  std::vector<std::vector<double>> gathered(n, std::vector<double>(8 * n));

  expect_mismatch(n,
                  [&](Transport& t) {
                    const std::size_t count = t.rank() == odd ? 4 : 8;
                    return t.iallreduce(buffers[t.rank()].data(), count, DType::kFloat64,
                                        ReduceOp::kSum);
                  },
                  {odd_rank, "count=4", "count=8", "differs in count"});
  expect_mismatch(n,
                  [&](Transport& t) {
                    const DType dtype = t.rank() == odd ? DType::kInt64 : DType::kFloat64;
                    return t.iallreduce(buffers[t.rank()].data(), 8, dtype, ReduceOp::kSum);
                  },
                  {odd_rank, "int64", "float64", "differs in dtype"});
  expect_mismatch(n,
                  [&](Transport& t) {
                    const ReduceOp op = t.rank() == odd ? ReduceOp::kMax : ReduceOp::kSum;
                    return t.iallreduce(buffers[t.rank()].data(), 8, DType::kFloat64, op);
                  },
                  {odd_rank, "op=max", "differs in op"});
  expect_mismatch(n,
                  [&](Transport& t) {
                    return t.ibroadcast(buffers[t.rank()].data(), 64, t.rank() == odd ? 1 : 0);
                  },
                  {odd_rank, "root=1", "root=0", "differs in root"});
  expect_mismatch(n,
                  [&](Transport& t) {
                    if (t.rank() == 0) return t.ibarrier();
                    return t.iallgather(buffers[t.rank()].data(), 64, gathered[t.rank()].data());
                  },
                  {"rank 0 called barrier()", "allgather(bytes=64)", "differs in operation"});
}

// A rank that calls split while the others reduce gets the mismatch from split itself.
TEST(LocalTransport, MismatchedSplit) {
  auto transports = make_local_transports(3);
  auto errors = run_ranks(transports, [](Transport& t) {
    if (t.rank() == 1) {
      t.split(0, 0);
    } else {
      barrier(t);
    }
  });
  for (int r = 0; r < 3; ++r) expect_error<MismatchError>(errors[r], {"rank 1 called split()"}, r);
}

// ---------------------------------------------------------------- split

TEST_P(LocalTransportRanks, SplitByParityWithReversedKeys) {
  const int n = GetParam();
  run_ok(n, [&](Transport& t) {
    const int old_rank = t.rank();
    const int color = old_rank % 2;
    auto sub = t.split(color, n - old_rank);  // larger old rank -> smaller key -> first
    std::vector<int> members;
    for (int r = n - 1; r >= 0; --r) {
      if (r % 2 == color) members.push_back(r);
    }
    ASSERT_EQ(sub->size(), static_cast<int>(members.size()));
    ASSERT_EQ(members[sub->rank()], old_rank);
    EXPECT_EQ(sub->host(), t.host());

    // Collectives on the sub-world meet only its members.
    std::int64_t sum = old_rank;
    wait(sub->iallreduce(&sum, 1, DType::kInt64, ReduceOp::kSum));
    EXPECT_EQ(sum, std::accumulate(members.begin(), members.end(), std::int64_t{0}));
    std::vector<std::int32_t> order(sub->size());
    const std::int32_t me = old_rank;
    wait(sub->iallgather(&me, sizeof me, order.data()));
    EXPECT_EQ(std::vector<int>(order.begin(), order.end()), members);

    // Same tag on both worlds: the messages stay apart.
    const int sub_next = (sub->rank() + 1) % sub->size();
    const int sub_prev = (sub->rank() + sub->size() - 1) % sub->size();
    const std::int32_t in_sub = 1000 + old_rank, in_parent = 2000 + old_rank;
    const int parent_next = (old_rank + 1) % n;
    const int parent_prev = (old_rank + n - 1) % n;
    wait(sub->isend(&in_sub, sizeof in_sub, sub_next, 0));
    wait(t.isend(&in_parent, sizeof in_parent, parent_next, 0));
    std::int32_t got_parent = 0, got_sub = 0;
    wait(t.irecv(&got_parent, sizeof got_parent, parent_prev, 0));
    wait(sub->irecv(&got_sub, sizeof got_sub, sub_prev, 0));
    EXPECT_EQ(got_parent, 2000 + parent_prev);
    EXPECT_EQ(got_sub, 1000 + members[sub_prev]);

    // The parent's collective sequence is unaffected by the sub-world's.
    barrier(t);
  });
}

// ---------------------------------------------------------------- failure, shutdown, timeouts

// The last rank fails while rank 0 waits for a message from it and the others wait in a
// collective it never joins: all of them are released at once with an error naming it.
TEST_P(LocalTransportRanks, FailedRankReleasesBlockedPeers) {
  const int n = GetParam();
  if (n < 2) GTEST_SKIP() << "needs a peer";
  const int failing = n - 1;
  auto transports = make_local_transports(n);
  std::vector<double> blocked_seconds(n, 0);
  auto errors = run_ranks(transports, [&](Transport& t) {
    if (t.rank() == failing) {
      std::this_thread::sleep_for(50ms);
      t.fail("out of memory");
      return;
    }
    const auto start = Clock::now();
    try {
      if (t.rank() == 0) {
        std::int32_t x;
        wait(t.irecv(&x, sizeof x, failing, 0));
      } else {
        barrier(t);
      }
    } catch (...) {
      blocked_seconds[t.rank()] = std::chrono::duration<double>(Clock::now() - start).count();
      throw;
    }
  });
  const std::string expected = "rank " + std::to_string(failing) + " failed: out of memory";
  EXPECT_FALSE(errors[failing]);
  for (int r = 0; r < failing; ++r) {
    expect_error<CommError>(errors[r], {expected}, r);
    EXPECT_LT(blocked_seconds[r], 2.0) << "rank " << r << " was released late";
  }
  // Later operations involving the failed rank fail at once, too.
  std::int32_t x = 0;
  EXPECT_THROW(transports[0]->irecv(&x, sizeof x, failing, 1)->test(), CommError);
  EXPECT_THROW(transports[0]->ibarrier()->test(), CommError);
  // ... and so does anything the failed rank itself still tries.
  EXPECT_THROW(transports[failing]->isend(&x, sizeof x, 0, 0)->test(), CommError);
}

// Messages a rank sent before it failed are still delivered.
TEST(LocalTransport, MessagesSentBeforeAFailureArrive) {
  auto transports = make_local_transports(2);
  const std::int32_t sent = 31;
  wait(transports[1]->isend(&sent, sizeof sent, 0, 0));
  transports[1]->fail("done");
  std::int32_t got = 0;
  wait(transports[0]->irecv(&got, sizeof got, 1, 0));
  EXPECT_EQ(got, 31);
  EXPECT_THROW(wait(transports[0]->irecv(&got, sizeof got, 1, 0)), CommError);
}

// Failures reach sub-worlds: peers blocked in a sub-world collective are released too.
TEST(LocalTransport, FailureReachesSubWorlds) {
  auto transports = make_local_transports(4);
  std::vector<std::unique_ptr<Transport>> subs(4);
  expect_no_errors(run_ranks(transports, [&](Transport& t) { subs[t.rank()] = t.split(0, 0); }));
  auto errors = run_ranks(transports, [&](Transport& t) {
    if (t.rank() == 2) {
      std::this_thread::sleep_for(20ms);
      t.fail("boom");  // on the parent world
      return;
    }
    barrier(*subs[t.rank()]);
  });
  for (int r : {0, 1, 3}) expect_error<CommError>(errors[r], {"rank 2 failed: boom"}, r);
}

TEST(LocalTransport, LeftRankReleasesPeers) {
  auto transports = make_local_transports(2);
  auto world = static_cast<LocalTransport&>(*transports[0]).world();
  auto errors = run_ranks(transports, [&](Transport& t) {
    if (t.rank() == 1) {
      std::this_thread::sleep_for(20ms);
      world->leave(1, "finished");
      return;
    }
    std::int32_t x;
    wait(t.irecv(&x, sizeof x, 1, 0));
  });
  expect_error<CommError>(errors[0], {"rank 1 left: finished"}, 0);
}

TEST_P(LocalTransportRanks, ShutdownReleasesEveryWait) {
  const int n = GetParam();
  auto transports = make_local_transports(n);
  auto world = static_cast<LocalTransport&>(*transports[0]).world();
  std::thread stopper([&] {
    std::this_thread::sleep_for(50ms);
    world->shutdown("test over");
  });
  const auto start = Clock::now();
  auto errors = run_ranks(transports, [&](Transport& t) {
    std::int32_t x;
    if (t.rank() % 2 == 0) {
      wait(t.irecv(&x, sizeof x, (t.rank() + 1) % n, 9));  // never sent
    } else {
      wait(t.iallreduce(&x, 1, DType::kInt32, ReduceOp::kSum));  // rank 0 never joins
    }
  });
  stopper.join();
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 2.0);
  for (int r = 0; r < n; ++r) expect_error<CommError>(errors[r], {"shut down: test over"}, r);
}

TEST_P(LocalTransportRanks, WaitUntilReturnsFalseAtTheDeadline) {
  const int n = GetParam();
  auto transports = make_local_transports(n);
  const int peer = n - 1;
  std::int32_t x = 0;
  auto recv = transports[0]->irecv(&x, sizeof x, peer, 0);
  const auto start = Clock::now();
  EXPECT_FALSE(recv->wait_until(start + 100ms));
  const double waited = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_GE(waited, 0.1);
  EXPECT_LT(waited, 2.0);
  EXPECT_FALSE(recv->test());
  // The request stays usable: once the peer sends, it completes.
  const std::int32_t value = 5;
  wait(transports[peer]->isend(&value, sizeof value, 0, 0));
  wait(recv);
  EXPECT_EQ(x, 5);
}

// A blocked wait is woken by the matching send (not by a polling interval).
TEST(LocalTransport, WaitWakesOnArrival) {
  auto transports = make_local_transports(2);
  std::int32_t x = 0;
  auto recv = transports[0]->irecv(&x, sizeof x, 1, 0);
  std::thread sender([&] {
    std::this_thread::sleep_for(30ms);
    const std::int32_t value = 8;
    wait(transports[1]->isend(&value, sizeof value, 0, 0));
  });
  EXPECT_TRUE(recv->wait_until(Clock::now() + kWaitLimit));
  sender.join();
  EXPECT_EQ(x, 8);
}

}  // namespace
}  // namespace decent::comm
