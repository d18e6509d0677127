// The MPI transport on 1..8 ranks: point-to-point semantics, errors, collectives on every dtype,
// split, and the derived-datatype paths for buffers larger than one MPI count.
#include "comm/mpi/mpi_transport.h"
#include "comm/mpi/mpi_transport_impl.h"
#include "mpi_test_world.h"

#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>
#include <Eigen/Core>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

namespace decent::comm::test {
namespace {

testing::AssertionResult completes(Request& request) {
  if (request.wait_until(Clock::now() + kWaitLimit)) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "not complete after " << kWaitLimit.count() << " s";
}

int right_of(const Transport& t) {
  return (t.rank() + 1) % t.size();
}
int left_of(const Transport& t) {
  return (t.rank() + t.size() - 1) % t.size();
}

// Bytes that identify the sender and the position, so misplaced data cannot go unnoticed.
std::vector<std::uint8_t> pattern(int sender, std::size_t bytes, int salt = 0) {
  std::vector<std::uint8_t> out(bytes);
  for (std::size_t i = 0; i < bytes; ++i) {
    out[i] = static_cast<std::uint8_t>((i * 31 + static_cast<std::size_t>(sender) * 101 +
                                        static_cast<std::size_t>(salt) * 7 + (i >> 8)) &
                                       0xff);
  }
  return out;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Expects `request` to fail with MismatchError and returns its message.
std::string mismatch_message(Request& request) {
  try {
    request.wait_until(Clock::now() + kWaitLimit);
  } catch (const MismatchError& error) {
    return error.what();
  }
  ADD_FAILURE() << "expected a MismatchError";
  return {};
}

TEST(MpiTransport, ReportsRankSizeHostAndTags) {
  Transport& t = world();
  int world_rank = -1;
  int world_size = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  EXPECT_EQ(t.backend(), "mpi");
  EXPECT_EQ(t.rank(), world_rank);
  EXPECT_EQ(t.size(), world_size);
  if (const char* size = std::getenv("OMPI_COMM_WORLD_SIZE")) {
    EXPECT_EQ(t.size(), std::atoi(size));
  }
  char hostname[256] = {};
  ASSERT_EQ(gethostname(hostname, sizeof(hostname) - 1), 0);
  // MPI may drop the domain part of the name.
  EXPECT_FALSE(t.host().empty());
  EXPECT_EQ(std::string(hostname).rfind(t.host(), 0), 0u) << t.host() << " vs " << hostname;
  EXPECT_GE(t.max_tag(), 32767);
  EXPECT_TRUE(launched_under_mpi());
}

TEST(MpiTransport, LaunchedUnderMpiReadsTheLauncherVariables) {
  const char* names[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"};
  std::vector<std::pair<std::string, std::string>> saved;
  for (const char* name : names) {
    if (const char* value = std::getenv(name)) saved.emplace_back(name, value);
    unsetenv(name);
  }
  EXPECT_FALSE(launched_under_mpi());
  setenv("PMI_RANK", "0", 1);
  EXPECT_TRUE(launched_under_mpi());
  unsetenv("PMI_RANK");
  setenv("PMIX_RANK", "3", 1);
  EXPECT_TRUE(launched_under_mpi());
  unsetenv("PMIX_RANK");
  for (const auto& [name, value] : saved) setenv(name.c_str(), value.c_str(), 1);
}

TEST(MpiTransport, RingMessagesWithOneTagArriveInSendOrder) {
  Transport& t = world();
  const int tag = 11;
  // A rendezvous-sized message first, then eager ones: MPI must not let them overtake it.
  const std::vector<std::size_t> sizes = {1 << 20, 8, 0, 200000, 4, 64};
  const std::size_t capacity = 1 << 20;
  std::vector<std::vector<std::uint8_t>> out, in(sizes.size(), std::vector<std::uint8_t>(capacity));
  std::vector<RequestPtr> receives, sends;
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    receives.push_back(t.irecv(in[k].data(), capacity, left_of(t), tag));
  }
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    out.push_back(pattern(t.rank(), sizes[k], static_cast<int>(k)));
    sends.push_back(t.isend(out[k].data(), sizes[k], right_of(t), tag));
  }
  // Completing the last receive first: matching follows posting order, not testing order.
  for (std::size_t k = sizes.size(); k-- > 0;) {
    ASSERT_TRUE(completes(*receives[k])) << "receive " << k;
    ASSERT_EQ(receives[k]->received_bytes(), sizes[k]) << "receive " << k;
    const auto expected = pattern(left_of(t), sizes[k], static_cast<int>(k));
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), in[k].begin())) << "message " << k;
  }
  for (auto& send : sends) ASSERT_TRUE(completes(*send));
}

TEST(MpiTransport, ReceivesSelectMessagesByTag) {
  Transport& t = world();
  const std::int64_t first = 1000 + t.rank();
  const std::int64_t second = 2000 + t.rank();
  auto send_first = t.isend(&first, sizeof(first), right_of(t), 21);
  auto send_second = t.isend(&second, sizeof(second), right_of(t), 22);
  std::int64_t got_second = -1;
  std::int64_t got_first = -1;
  auto receive_second = t.irecv(&got_second, sizeof(got_second), left_of(t), 22);
  auto receive_first = t.irecv(&got_first, sizeof(got_first), left_of(t), 21);
  ASSERT_TRUE(completes(*receive_second));
  ASSERT_TRUE(completes(*receive_first));
  EXPECT_EQ(got_first, 1000 + left_of(t));
  EXPECT_EQ(got_second, 2000 + left_of(t));
  ASSERT_TRUE(completes(*send_first));
  ASSERT_TRUE(completes(*send_second));
}

TEST(MpiTransport, ZeroByteMessages) {
  Transport& t = world();
  std::array<std::uint8_t, 16> buffer;
  buffer.fill(0xab);
  auto receive_into_buffer = t.irecv(buffer.data(), buffer.size(), left_of(t), 31);
  auto receive_into_nothing = t.irecv(nullptr, 0, left_of(t), 31);
  auto send_a = t.isend(nullptr, 0, right_of(t), 31);
  auto send_b = t.isend(buffer.data(), 0, right_of(t), 31);
  ASSERT_TRUE(completes(*receive_into_buffer));
  ASSERT_TRUE(completes(*receive_into_nothing));
  EXPECT_EQ(receive_into_buffer->received_bytes(), 0u);
  EXPECT_EQ(receive_into_nothing->received_bytes(), 0u);
  for (std::uint8_t byte : buffer) EXPECT_EQ(byte, 0xab);
  ASSERT_TRUE(completes(*send_a));
  ASSERT_TRUE(completes(*send_b));
}

TEST(MpiTransport, ReceiveReportsTheBytesThatArrived) {
  Transport& t = world();
  const auto message = pattern(t.rank(), 300);
  std::vector<std::uint8_t> buffer(1000, 0);
  auto receive = t.irecv(buffer.data(), buffer.size(), left_of(t), 32);
  auto send = t.isend(message.data(), message.size(), right_of(t), 32);
  ASSERT_TRUE(completes(*receive));
  EXPECT_EQ(receive->received_bytes(), 300u);
  const auto expected = pattern(left_of(t), 300);
  EXPECT_TRUE(std::equal(expected.begin(), expected.end(), buffer.begin()));
  EXPECT_EQ(buffer[300], 0);  // nothing written past the message
  ASSERT_TRUE(completes(*send));
}

TEST(MpiTransport, SixtyFourMegabyteMessageAroundTheRing) {
  Transport& t = world();
  const std::size_t words = (std::size_t{64} << 20) / sizeof(std::uint32_t);
  auto value = [](int sender, std::size_t i) {
    return static_cast<std::uint32_t>(i * 2654435761u) ^ static_cast<std::uint32_t>(sender + 1);
  };
  std::vector<std::uint32_t> out(words), in(words, 0);
  for (std::size_t i = 0; i < words; ++i) out[i] = value(t.rank(), i);
  auto receive = t.irecv(in.data(), words * 4, left_of(t), 33);
  auto send = t.isend(out.data(), words * 4, right_of(t), 33);
  ASSERT_TRUE(completes(*receive));
  ASSERT_TRUE(completes(*send));
  EXPECT_EQ(receive->received_bytes(), words * 4);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < words; ++i) wrong += in[i] != value(left_of(t), i);
  EXPECT_EQ(wrong, 0u);
}

TEST(MpiTransport, MessageLargerThanTheReceiveIsAMismatchNamingTheSource) {
  Transport& t = world();
  const auto message = pattern(t.rank(), 100);
  std::vector<std::uint8_t> buffer(40);
  auto receive = t.irecv(buffer.data(), buffer.size(), left_of(t), 41);
  auto send = t.isend(message.data(), message.size(), right_of(t), 41);
  const std::string text = mismatch_message(*receive);
  EXPECT_TRUE(contains(text, "from rank " + std::to_string(left_of(t)))) << text;
  EXPECT_TRUE(contains(text, "rank " + std::to_string(t.rank()) + " of")) << text;
  EXPECT_TRUE(contains(text, "100 bytes")) << text;
  EXPECT_TRUE(contains(text, "40 bytes")) << text;
  // The error sticks to the request.
  EXPECT_THROW(receive->test(), MismatchError);
  ASSERT_TRUE(completes(*send));
}

TEST(MpiTransport, AbandonedReceiveDoesNotSwallowALaterMessage) {
  Transport& t = world();
  std::int32_t never = -1;
  t.irecv(&never, sizeof(never), t.rank(), 42).reset();  // posted, then given up
  const std::int32_t value = 4200 + t.rank();
  auto send = t.isend(&value, sizeof(value), t.rank(), 42);
  std::int32_t got = -1;
  auto receive = t.irecv(&got, sizeof(got), t.rank(), 42);
  ASSERT_TRUE(completes(*receive));
  EXPECT_EQ(got, 4200 + t.rank());
  EXPECT_EQ(never, -1);
  ASSERT_TRUE(completes(*send));
}

// ---- exchange: one blocking step of a collective ----

// Around the ring at sizes on both sides of the shared-memory eager limit (4032-8067 straddle
// the two-piece range [4033, 8066]), into a larger buffer: the exact bytes of the left
// neighbour arrive, nothing is written past them. With `room`, the capacity is exactly the
// message and the buffer (the room) holds the largest; without, the capacity is the buffer.
void exchange_around_the_ring(Transport& t, int tag, bool with_room) {
  constexpr std::size_t kLargest = 70000;
  for (std::size_t bytes :
       std::vector<std::size_t>{0, 300, 4032, 4033, 4034, 4224, 6000, 8066, 8067, kLargest}) {
    const auto message = pattern(t.rank(), bytes, tag);
    std::vector<std::uint8_t> buffer((with_room ? kLargest : bytes) + 64, 0xcd);
    const ExchangeStatus status = t.exchange(
        message.data(), bytes, right_of(t), buffer.data(), with_room ? bytes : buffer.size(),
        left_of(t), tag, Clock::now() + kWaitLimit, with_room ? buffer.size() : 0);
    ASSERT_EQ(status.state, ExchangeStatus::State::kDone) << bytes;
    EXPECT_FALSE(status.too_large) << bytes;
    EXPECT_EQ(status.received_bytes, bytes);
    const auto expected = pattern(left_of(t), bytes, tag);
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), buffer.begin())) << bytes;
    for (std::size_t i = bytes; i < buffer.size(); ++i) ASSERT_EQ(buffer[i], 0xcd) << bytes;
  }
}

TEST(MpiTransport, ExchangeAroundTheRing) {
  exchange_around_the_ring(world(), 51, false);
}

// Send-only and receive-only steps (the fold of recursive doubling) pair with each other and
// with the isend/irecv requests of the same tag, in order.
TEST(MpiTransport, ExchangeInOneDirectionPairsWithRequests) {
  Transport& t = world();
  const std::int64_t mine = 1000 + t.rank();
  std::int64_t first = -1, second = -1;
  const auto limit = Clock::now() + kWaitLimit;
  // Message 1 by exchange (send only), message 2 by isend; received by irecv, then exchange.
  ASSERT_EQ(t.exchange(&mine, sizeof mine, right_of(t), nullptr, 0, -1, 52, limit).state,
            ExchangeStatus::State::kDone);
  auto send = t.isend(&mine, sizeof mine, right_of(t), 52);
  auto receive = t.irecv(&first, sizeof first, left_of(t), 52);
  ASSERT_TRUE(completes(*receive));
  const ExchangeStatus status =
      t.exchange(nullptr, 0, -1, &second, sizeof second, left_of(t), 52, limit);
  ASSERT_EQ(status.state, ExchangeStatus::State::kDone);
  EXPECT_EQ(status.received_bytes, sizeof second);
  ASSERT_TRUE(completes(*send));
  EXPECT_EQ(first, 1000 + left_of(t));
  EXPECT_EQ(second, 1000 + left_of(t));
}

// A receive posted earlier for the same source and tag takes the first message; the exchange
// gets the next one.
TEST(MpiTransport, ExchangeKeepsOrderBehindAWaitingReceive) {
  Transport& t = world();
  std::int32_t early = -1, late = -1;
  auto receive = t.irecv(&early, sizeof early, left_of(t), 53);
  const std::int32_t one = 10 * t.rank() + 1, two = 10 * t.rank() + 2;
  auto send = t.isend(&one, sizeof one, right_of(t), 53);
  const ExchangeStatus status = t.exchange(&two, sizeof two, right_of(t), &late, sizeof late,
                                           left_of(t), 53, Clock::now() + kWaitLimit);
  ASSERT_EQ(status.state, ExchangeStatus::State::kDone);
  ASSERT_TRUE(completes(*receive));
  ASSERT_TRUE(completes(*send));
  EXPECT_EQ(early, 10 * left_of(t) + 1);
  EXPECT_EQ(late, 10 * left_of(t) + 2);
}

// A message larger than the receive is consumed without touching the buffer and reported; the
// stream goes on with the next message.
TEST(MpiTransport, ExchangeReportsAMessageLargerThanTheReceive) {
  Transport& t = world();
  const auto big = pattern(t.rank(), 5000, 9);
  std::vector<std::uint8_t> small(40, 0xee);
  const auto limit = Clock::now() + kWaitLimit;
  ExchangeStatus status = t.exchange(big.data(), big.size(), right_of(t), small.data(),
                                     small.size(), left_of(t), 54, limit);
  ASSERT_EQ(status.state, ExchangeStatus::State::kDone);
  EXPECT_TRUE(status.too_large);
  EXPECT_EQ(status.received_bytes, 0u);
  EXPECT_EQ(small, std::vector<std::uint8_t>(40, 0xee));
  const std::int32_t value = 5400 + t.rank();
  std::int32_t got = -1;
  status = t.exchange(&value, sizeof value, right_of(t), &got, sizeof got, left_of(t), 54, limit);
  ASSERT_EQ(status.state, ExchangeStatus::State::kDone);
  EXPECT_FALSE(status.too_large);
  EXPECT_EQ(got, 5400 + left_of(t));
}

// The same for a message sent in two pieces (4033-8066 bytes): both are consumed, the buffer is
// untouched, and a split message that fits arrives whole afterwards.
TEST(MpiTransport, ExchangeReportsASplitMessageLargerThanTheReceive) {
  Transport& t = world();
  const auto limit = Clock::now() + kWaitLimit;
  const auto big = pattern(t.rank(), 6000, 3);
  std::vector<std::uint8_t> buffer(4100, 0xee);
  ExchangeStatus status = t.exchange(big.data(), big.size(), right_of(t), buffer.data(),
                                     buffer.size(), left_of(t), 57, limit);
  ASSERT_EQ(status.state, ExchangeStatus::State::kDone);
  EXPECT_TRUE(status.too_large);
  EXPECT_EQ(buffer, std::vector<std::uint8_t>(4100, 0xee));
  const auto fits = pattern(t.rank(), 4050, 4);
  status = t.exchange(fits.data(), fits.size(), right_of(t), buffer.data(), buffer.size(),
                      left_of(t), 57, limit);
  ASSERT_EQ(status.state, ExchangeStatus::State::kDone);
  EXPECT_FALSE(status.too_large);
  EXPECT_EQ(status.received_bytes, 4050u);
  const auto expected = pattern(left_of(t), 4050, 4);
  EXPECT_TRUE(std::equal(expected.begin(), expected.end(), buffer.begin()));
  EXPECT_EQ(buffer[4050], 0xee);
}

// Nothing arrives: the exchange returns at the deadline and does not take the message that a
// later receive of the stream is meant to get. With `room` the posted receive is withdrawn.
void exchange_times_out_without_swallowing(Transport& t, int tag, bool with_room) {
  std::vector<std::int32_t> never(with_room ? 1024 : 1, -1);
  const std::size_t room = with_room ? never.size() * sizeof(std::int32_t) : 0;
  const auto start = Clock::now();
  const ExchangeStatus status =
      t.exchange(nullptr, 0, -1, never.data(), sizeof(std::int32_t), t.rank(), tag,
                 start + std::chrono::milliseconds(100), room);
  const double waited = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_EQ(status.state, ExchangeStatus::State::kReceiveTimedOut);
  EXPECT_GE(waited, 0.1);
  EXPECT_LT(waited, 5.0);
  const std::int32_t value = 100 * tag + t.rank();
  auto send = t.isend(&value, sizeof value, t.rank(), tag);
  std::int32_t got = -1;
  auto receive = t.irecv(&got, sizeof got, t.rank(), tag);
  ASSERT_TRUE(completes(*receive));
  ASSERT_TRUE(completes(*send));
  EXPECT_EQ(got, 100 * tag + t.rank());
  EXPECT_EQ(never[0], -1);
}

TEST(MpiTransport, ExchangeTimesOutWithoutSwallowingALaterMessage) {
  exchange_times_out_without_swallowing(world(), 55, false);
}

// ---- exchange with `room`: the receive is posted before the message arrives ----

constexpr std::size_t kRoom = 70000 + 64;

TEST(MpiTransport, ExchangeWithRoomAroundTheRing) {
  exchange_around_the_ring(world(), 58, true);
}

// Messages longer than the capacity but within the room, whole and in two pieces, and shorter
// ones: reported (too large, or by their size), and the stream goes on with the next message.
TEST(MpiTransport, ExchangeWithRoomReportsOtherSizesAndGoesOn) {
  Transport& t = world();
  const auto limit = Clock::now() + kWaitLimit;
  std::vector<std::uint8_t> buffer(kRoom, 0xee);
  for (std::size_t bytes : std::vector<std::size_t>{5000, 9000, 100}) {
    const auto message = pattern(t.rank(), bytes, 7);
    const std::size_t capacity = 4100;
    ExchangeStatus status = t.exchange(message.data(), bytes, right_of(t), buffer.data(), capacity,
                                       left_of(t), 59, limit, buffer.size());
    ASSERT_EQ(status.state, ExchangeStatus::State::kDone) << bytes;
    EXPECT_EQ(status.too_large, bytes > capacity) << bytes;
    EXPECT_EQ(status.received_bytes, bytes > capacity ? 0u : bytes) << bytes;
    const std::int32_t value = 5900 + t.rank();
    std::int32_t got = -1;
    status = t.exchange(&value, sizeof value, right_of(t), &got, sizeof got, left_of(t), 59, limit);
    ASSERT_EQ(status.state, ExchangeStatus::State::kDone);
    EXPECT_EQ(got, 5900 + left_of(t)) << bytes;
  }
}

TEST(MpiTransport, ExchangeWithRoomTimesOutWithoutSwallowingALaterMessage) {
  exchange_times_out_without_swallowing(world(), 60, true);
}

// Behind a receive posted earlier for the same source and tag, the exchange still gets the
// second message.
TEST(MpiTransport, ExchangeWithRoomKeepsOrderBehindAWaitingReceive) {
  Transport& t = world();
  std::int32_t early = -1;
  std::vector<std::int32_t> late(kRoom / sizeof(std::int32_t), -1);
  auto receive = t.irecv(&early, sizeof early, left_of(t), 61);
  const std::int32_t one = 10 * t.rank() + 1, two = 10 * t.rank() + 2;
  auto send = t.isend(&one, sizeof one, right_of(t), 61);
  const ExchangeStatus status =
      t.exchange(&two, sizeof two, right_of(t), late.data(), sizeof(std::int32_t), left_of(t), 61,
                 Clock::now() + kWaitLimit, late.size() * sizeof(std::int32_t));
  ASSERT_EQ(status.state, ExchangeStatus::State::kDone);
  ASSERT_TRUE(completes(*receive));
  ASSERT_TRUE(completes(*send));
  EXPECT_EQ(early, 10 * left_of(t) + 1);
  EXPECT_EQ(late[0], 10 * left_of(t) + 2);
}

TEST(MpiTransport, ExchangeRejectsRoomBelowTheCapacity) {
  Transport& t = world();
  std::vector<std::uint8_t> buffer(8192);
  try {
    t.exchange(nullptr, 0, -1, buffer.data(), 8192, left_of(t), 62, Clock::now() + kWaitLimit,
               5000);
    ADD_FAILURE() << "room below the capacity accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_TRUE(contains(e.what(), "rank " + std::to_string(t.rank()))) << e.what();
    EXPECT_TRUE(contains(e.what(), "room for 5000 bytes")) << e.what();
  }
}

TEST(MpiTransport, ExchangeRejectsBadArgumentsNamingTheRank) {
  Transport& t = world();
  std::int32_t x = 0;
  const auto limit = Clock::now() + kWaitLimit;
  const std::string me = "rank " + std::to_string(t.rank());
  try {
    t.exchange(&x, sizeof x, t.size(), nullptr, 0, -1, 56, limit);
    ADD_FAILURE() << "destination out of range accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_TRUE(contains(e.what(), me)) << e.what();
    EXPECT_TRUE(contains(e.what(), "destination rank " + std::to_string(t.size()))) << e.what();
  }
  EXPECT_THROW(t.exchange(nullptr, 0, -1, nullptr, 4, left_of(t), 56, limit), InvalidArgument);
  EXPECT_THROW(t.exchange(&x, sizeof x, right_of(t), nullptr, 0, -1, -3, limit), InvalidArgument);
}

TEST(MpiTransport, RejectsBadArgumentsNamingTheRank) {
  Transport& t = world();
  std::int32_t value = 0;
  const std::string me = "rank " + std::to_string(t.rank()) + " of";
  auto expect_invalid = [&](auto&& call, const std::string& part) {
    try {
      call();
      ADD_FAILURE() << "expected InvalidArgument mentioning " << part;
    } catch (const InvalidArgument& error) {
      EXPECT_TRUE(contains(error.what(), me)) << error.what();
      EXPECT_TRUE(contains(error.what(), part)) << error.what();
    }
  };
  expect_invalid([&] { t.isend(&value, 4, t.size(), 1); }, "rank " + std::to_string(t.size()));
  expect_invalid([&] { t.isend(&value, 4, -1, 1); }, "rank -1");
  expect_invalid([&] { t.irecv(&value, 4, t.size(), 1); }, "source");
  expect_invalid([&] { t.isend(&value, 4, 0, -1); }, "tag -1");
  if (t.max_tag() < INT_MAX) {
    expect_invalid([&] { t.irecv(&value, 4, 0, t.max_tag() + 1); }, "tag");
  }
  expect_invalid([&] { t.isend(nullptr, 4, 0, 1); }, "null");
  expect_invalid([&] { t.ibroadcast(&value, 4, t.size()); }, "root");
  expect_invalid([&] { t.iallreduce(&value, 1, DType::kInt32, ReduceOp::kAverage); }, "average");
  expect_invalid([&] { t.split(-1, 0); }, "color -1");
}

// ---- allreduce on every dtype ----

// Small integers, negative ones too for signed types, so that float16 and bfloat16 are exact.
int element_value(int rank, std::size_t i, bool is_signed) {
  const int v = static_cast<int>((static_cast<std::size_t>(rank) * 7 + i * 3) % 11);
  return is_signed ? v - 5 : v;
}

template <typename T>
T from_int(int v) {
  return static_cast<T>(v);
}
template <>
Eigen::half from_int<Eigen::half>(int v) {
  return Eigen::half(static_cast<float>(v));
}
template <>
Eigen::bfloat16 from_int<Eigen::bfloat16>(int v) {
  return Eigen::bfloat16(static_cast<float>(v));
}
template <typename T>
double to_double(T v) {
  return static_cast<double>(static_cast<float>(v));
}
template <>
double to_double<double>(double v) {
  return v;
}
template <>
double to_double<std::int64_t>(std::int64_t v) {
  return static_cast<double>(v);
}

template <typename T>
void check_allreduce(Transport& t, DType dtype, std::size_t count) {
  const bool is_signed = dtype != DType::kUInt8;
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMin, ReduceOp::kMax}) {
    std::vector<T> data(count);
    for (std::size_t i = 0; i < count; ++i)
      data[i] = from_int<T>(element_value(t.rank(), i, is_signed));
    auto request = t.iallreduce(data.data(), count, dtype, op);
    ASSERT_TRUE(completes(*request)) << dtype_name(dtype) << " " << reduce_op_name(op);
    int wrong = 0;
    for (std::size_t i = 0; i < count && wrong < 5; ++i) {
      int expected = element_value(0, i, is_signed);
      for (int r = 1; r < t.size(); ++r) {
        const int v = element_value(r, i, is_signed);
        expected = op == ReduceOp::kSum   ? expected + v
                   : op == ReduceOp::kMin ? std::min(expected, v)
                                          : std::max(expected, v);
      }
      if (to_double(data[i]) != expected) {
        ++wrong;
        ADD_FAILURE() << dtype_name(dtype) << " " << reduce_op_name(op) << " element " << i
                      << ": got " << to_double(data[i]) << ", expected " << expected;
      }
    }
  }
}

void check_allreduce_all_dtypes(Transport& t, std::size_t count) {
  check_allreduce<float>(t, DType::kFloat32, count);
  check_allreduce<double>(t, DType::kFloat64, count);
  check_allreduce<Eigen::half>(t, DType::kFloat16, count);
  check_allreduce<Eigen::bfloat16>(t, DType::kBFloat16, count);
  check_allreduce<std::int32_t>(t, DType::kInt32, count);
  check_allreduce<std::int64_t>(t, DType::kInt64, count);
  check_allreduce<std::uint8_t>(t, DType::kUInt8, count);
}

TEST(MpiTransport, AllreduceSumMinMaxOnEveryDtype) {
  check_allreduce_all_dtypes(world(), 1000);
}

TEST(MpiTransport, AllreduceOfNothingCompletes) {
  auto request = world().iallreduce(nullptr, 0, DType::kFloat32, ReduceOp::kSum);
  EXPECT_TRUE(completes(*request));
}

TEST(MpiTransport, BroadcastFromEveryRoot) {
  Transport& t = world();
  for (int root = 0; root < t.size(); ++root) {
    const std::size_t bytes = 1000 + static_cast<std::size_t>(root);
    std::vector<std::uint8_t> data =
        t.rank() == root ? pattern(root, bytes) : std::vector<std::uint8_t>(bytes, 0xee);
    auto request = t.ibroadcast(data.data(), bytes, root);
    ASSERT_TRUE(completes(*request)) << "root " << root;
    EXPECT_EQ(data, pattern(root, bytes)) << "root " << root;
  }
  auto empty = t.ibroadcast(nullptr, 0, t.size() - 1);
  EXPECT_TRUE(completes(*empty));
}

TEST(MpiTransport, AllgatherOrdersContributionsByRank) {
  Transport& t = world();
  const std::array<std::int32_t, 3> mine = {t.rank(), 10 * t.rank(), -t.rank()};
  std::vector<std::int32_t> all(3 * static_cast<std::size_t>(t.size()), 99);
  auto request = t.iallgather(mine.data(), sizeof(mine), all.data());
  ASSERT_TRUE(completes(*request));
  for (int r = 0; r < t.size(); ++r) {
    EXPECT_EQ(all[3 * r], r);
    EXPECT_EQ(all[3 * r + 1], 10 * r);
    EXPECT_EQ(all[3 * r + 2], -r);
  }
  // The contribution may already sit in its slot of the result.
  std::vector<std::int64_t> in_place(static_cast<std::size_t>(t.size()), -1);
  in_place[t.rank()] = 7 * t.rank();
  auto aliased = t.iallgather(&in_place[t.rank()], sizeof(std::int64_t), in_place.data());
  ASSERT_TRUE(completes(*aliased));
  for (int r = 0; r < t.size(); ++r) EXPECT_EQ(in_place[r], 7 * r);
}

TEST(MpiTransport, BarrierWaitsForTheLastRank) {
  Transport& t = world();
  // Timestamps are comparable between processes only on one machine (CLOCK_MONOTONIC).
  char name[64] = {};
  std::strncpy(name, t.host().c_str(), sizeof(name) - 1);
  std::vector<char> names(sizeof(name) * t.size());
  ASSERT_TRUE(completes(*t.iallgather(name, sizeof(name), names.data())));
  bool one_machine = true;
  for (int r = 0; r < t.size(); ++r)
    one_machine &= std::strcmp(&names[r * sizeof(name)], name) == 0;

  std::int64_t rank0_entered = 0;
  if (t.rank() == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    rank0_entered = Clock::now().time_since_epoch().count();
  }
  ASSERT_TRUE(completes(*t.ibarrier()));
  const std::int64_t left_barrier = Clock::now().time_since_epoch().count();
  ASSERT_TRUE(completes(*t.ibroadcast(&rank0_entered, sizeof(rank0_entered), 0)));
  if (one_machine) {
    EXPECT_GE(left_barrier, rank0_entered);
  }
  // Several barriers in flight complete in order.
  auto first = t.ibarrier();
  auto second = t.ibarrier();
  EXPECT_TRUE(completes(*second));
  EXPECT_TRUE(completes(*first));
}

TEST(MpiTransport, SplitIntoOddAndEvenRanks) {
  Transport& t = world();
  const int parity = t.rank() % 2;
  // key = -rank orders each group from the highest world rank down.
  auto sub = t.split(parity, -t.rank());
  ASSERT_NE(sub, nullptr);
  std::vector<std::int32_t> group;
  for (int r = t.size() - 1; r >= 0; --r) {
    if (r % 2 == parity) group.push_back(r);
  }
  EXPECT_EQ(sub->backend(), "mpi");
  ASSERT_EQ(sub->size(), static_cast<int>(group.size()));
  EXPECT_EQ(group[sub->rank()], t.rank());
  EXPECT_EQ(sub->host(), t.host());

  // Collectives on the split see only the group.
  std::int64_t sum = t.rank();
  ASSERT_TRUE(completes(*sub->iallreduce(&sum, 1, DType::kInt64, ReduceOp::kSum)));
  EXPECT_EQ(sum, std::accumulate(group.begin(), group.end(), std::int64_t{0}));
  std::int32_t me = t.rank();
  std::vector<std::int32_t> gathered(group.size(), -1);
  ASSERT_TRUE(completes(*sub->iallgather(&me, sizeof(me), gathered.data())));
  EXPECT_EQ(gathered, group);

  // Its own tag space: a message sent on the world with the same tag is not received on the split.
  const char on_world = 'w';
  const char on_split = 's';
  auto send_world = t.isend(&on_world, 1, t.rank(), 51);
  auto send_split = sub->isend(&on_split, 1, sub->rank(), 51);
  char got = 0;
  ASSERT_TRUE(completes(*sub->irecv(&got, 1, sub->rank(), 51)));
  EXPECT_EQ(got, 's');
  ASSERT_TRUE(completes(*t.irecv(&got, 1, t.rank(), 51)));
  EXPECT_EQ(got, 'w');
  ASSERT_TRUE(completes(*send_world));
  ASSERT_TRUE(completes(*send_split));

  // Error messages name the rank in the group and, when the group is not the world, the world
  // rank too.
  try {
    sub->isend(&me, 4, sub->size(), 0);
    ADD_FAILURE() << "expected InvalidArgument";
  } catch (const InvalidArgument& error) {
    const std::string text = error.what();
    EXPECT_TRUE(contains(
        text, "rank " + std::to_string(sub->rank()) + " of " + std::to_string(sub->size())))
        << text;
    if (sub->size() < t.size()) {
      EXPECT_TRUE(contains(text, "(world rank " + std::to_string(t.rank()) + ")")) << text;
    }
  }

  // A split of a split, and the world still works after the splits are gone.
  auto alone = sub->split(sub->rank(), 0);
  EXPECT_EQ(alone->size(), 1);
  EXPECT_EQ(alone->rank(), 0);
  alone.reset();
  sub.reset();
  std::int32_t count = 1;
  ASSERT_TRUE(completes(*t.iallreduce(&count, 1, DType::kInt32, ReduceOp::kSum)));
  EXPECT_EQ(count, t.size());
}

// ---- buffers beyond one MPI count: a transport whose "largest count" is tiny ----

class MpiTransportSmallCounts : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    mpi::MpiTransportOptions options;
    options.max_count = 1000;
    small_ = mpi::make_world_transport(options).release();
  }
  static void TearDownTestSuite() {
    delete small_;
    small_ = nullptr;
  }
  static mpi::MpiTransport* small_;
};
mpi::MpiTransport* MpiTransportSmallCounts::small_ = nullptr;

TEST_F(MpiTransportSmallCounts, PointToPointBeyondOneCount) {
  Transport& t = *small_;
  // With and without a remainder block; capacity larger than the message.
  for (std::size_t bytes : {std::size_t{10007}, std::size_t{3000}, std::size_t{999}}) {
    const auto message = pattern(t.rank(), bytes);
    std::vector<std::uint8_t> buffer(25000, 0);
    auto receive = t.irecv(buffer.data(), buffer.size(), left_of(t), 61);
    auto send = t.isend(message.data(), bytes, right_of(t), 61);
    ASSERT_TRUE(completes(*receive)) << bytes;
    EXPECT_EQ(receive->received_bytes(), bytes);
    const auto expected = pattern(left_of(t), bytes);
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), buffer.begin())) << bytes;
    EXPECT_EQ(buffer[bytes], 0) << bytes;
    ASSERT_TRUE(completes(*send));
  }
}

TEST_F(MpiTransportSmallCounts, TruncationBeyondOneCount) {
  Transport& t = *small_;
  const auto message = pattern(t.rank(), 5500);
  std::vector<std::uint8_t> buffer(2500);
  auto receive = t.irecv(buffer.data(), buffer.size(), left_of(t), 62);
  auto send = t.isend(message.data(), message.size(), right_of(t), 62);
  const std::string text = mismatch_message(*receive);
  EXPECT_TRUE(contains(text, "from rank " + std::to_string(left_of(t)))) << text;
  EXPECT_TRUE(contains(text, "2500 bytes")) << text;
  ASSERT_TRUE(completes(*send));
}

TEST_F(MpiTransportSmallCounts, CollectivesBeyondOneCount) {
  Transport& t = *small_;
  for (int root = 0; root < t.size(); ++root) {
    std::vector<std::uint8_t> data =
        t.rank() == root ? pattern(root, 4321) : std::vector<std::uint8_t>(4321, 0);
    ASSERT_TRUE(completes(*t.ibroadcast(data.data(), data.size(), root)));
    EXPECT_EQ(data, pattern(root, 4321)) << "root " << root;
  }
  const std::size_t bytes = 2345;
  const auto mine = pattern(t.rank(), bytes);
  std::vector<std::uint8_t> all(bytes * t.size());
  ASSERT_TRUE(completes(*t.iallgather(mine.data(), bytes, all.data())));
  for (int r = 0; r < t.size(); ++r) {
    const auto expected = pattern(r, bytes);
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), all.begin() + r * bytes)) << r;
  }
  // 2500 elements: allreduces of 1000, 1000 and 500.
  check_allreduce_all_dtypes(t, 2500);
}

// More than 2^31 bytes in one message (needs ~4.3 GB of memory on two ranks, so opt-in).
TEST(MpiTransport, MessageOverTwoGigabytes) {
  Transport& t = world();
  if (std::getenv("DECENT_TEST_HUGE_MESSAGES") == nullptr || t.size() < 2) {
    GTEST_SKIP() << "set DECENT_TEST_HUGE_MESSAGES=1 and run on 2+ ranks";
  }
  const std::size_t bytes = (std::size_t{1} << 31) + 4099;
  const int tag = 71;
  if (t.rank() == 0) {
    std::vector<std::uint8_t> out(bytes);
    for (std::size_t i = 0; i < bytes; ++i) out[i] = static_cast<std::uint8_t>(i % 251);
    auto send = t.isend(out.data(), bytes, 1, tag);
    ASSERT_TRUE(completes(*send));
  } else if (t.rank() == 1) {
    std::vector<std::uint8_t> in(bytes + 10, 0);
    auto receive = t.irecv(in.data(), in.size(), 0, tag);
    ASSERT_TRUE(completes(*receive));
    EXPECT_EQ(receive->received_bytes(), bytes);
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < bytes; ++i) wrong += in[i] != static_cast<std::uint8_t>(i % 251);
    EXPECT_EQ(wrong, 0u);
  }
  ASSERT_TRUE(completes(*t.ibarrier()));
}

}  // namespace
}  // namespace decent::comm::test
