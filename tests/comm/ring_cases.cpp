#include "ring_cases.h"

#include "decent/topology/generators.h"
#include "decent/topology/schedule.h"

#include <gtest/gtest.h>

#include <Eigen/Core>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <thread>
#include <type_traits>

namespace decent::testing {
namespace {

// Every allreduce of these cases runs as a ring (the threshold is 0 bytes).
void ring_always(ContextOptions& o) {
  o.ring_allreduce_threshold_bytes = 0;
}

// Values whose sums, minima and maxima are exact in every dtype, so that the ring (which adds in
// a different order than a transport's allreduce) must produce exactly the expected elements.
// `wide` differs between nearby element indices (a chunk sent to the wrong place shows up); it
// is used for the 32/64-bit types. `narrow` stays in [-3, 7.5] for float16/bfloat16/uint8.
double wide(int rank, std::size_t k, bool fractions) {
  // k mod 2^16 keeps sums of up to 64 ranks within float32's 24-bit significand.
  const double v = static_cast<double>(k % 65536) + static_cast<double>((rank * 5 + k) % 7) - 3.0;
  return fractions ? v + 0.5 * static_cast<double>((rank + k) % 2) : v;
}
double narrow(int rank, std::size_t k, bool fractions, bool non_negative) {
  const double v = static_cast<double>((rank * 7 + k * 3) % 11) - (non_negative ? 0.0 : 3.0);
  return fractions ? v + 0.5 * static_cast<double>((rank + k) % 2) : v;
}

template <typename T>
constexpr DType dtype_for() {
  if constexpr (std::is_same_v<T, Eigen::half>)
    return DType::kFloat16;
  else if constexpr (std::is_same_v<T, Eigen::bfloat16>)
    return DType::kBFloat16;
  else
    return dtype_of<T>();
}

template <typename T>
double input_value(int rank, std::size_t k) {
  constexpr bool is_half = std::is_same_v<T, Eigen::half> || std::is_same_v<T, Eigen::bfloat16>;
  constexpr bool is_float = is_half || std::is_floating_point_v<T>;
  if constexpr (is_half || std::is_same_v<T, std::uint8_t>)
    return narrow(rank, k, is_float, std::is_same_v<T, std::uint8_t>);
  else
    return wide(rank, k, is_float);
}

// The element the maths asks for: the reduction over ranks of input_value, and for an average
// the sum times 1/n rounded as the engine's scale kernel does (in T, or in float for 16 bits).
template <typename T>
T expected_value(int n, std::size_t k, ReduceOp op) {
  double sum = 0, lo = std::numeric_limits<double>::max(),
         hi = std::numeric_limits<double>::lowest();
  for (int r = 0; r < n; ++r) {
    const double v = input_value<T>(r, k);
    sum += v;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  switch (op) {
    case ReduceOp::kSum:
      return static_cast<T>(sum);
    case ReduceOp::kMin:
      return static_cast<T>(lo);
    case ReduceOp::kMax:
      return static_cast<T>(hi);
    case ReduceOp::kAverage:
      break;
  }
  if constexpr (std::is_same_v<T, Eigen::half> || std::is_same_v<T, Eigen::bfloat16>) {
    return T(static_cast<float>(1.0 / n) * static_cast<float>(T(static_cast<float>(sum))));
  } else {
    return static_cast<T>(static_cast<T>(sum) * static_cast<T>(1.0 / n));
  }
}

template <typename T>
std::vector<T> inputs(int rank, std::size_t count) {
  std::vector<T> x(count);
  for (std::size_t k = 0; k < count; ++k) x[k] = static_cast<T>(input_value<T>(rank, k));
  return x;
}

template <typename T>
void expect_reduced(const std::vector<T>& got, int n, ReduceOp op, const std::string& what) {
  std::size_t wrong = 0;
  for (std::size_t k = 0; k < got.size(); ++k) {
    const T want = expected_value<T>(n, k, op);
    // Compare as double: exact for every dtype here, and printable for the 16-bit ones.
    if (static_cast<double>(got[k]) != static_cast<double>(want) && wrong++ < 3)
      ADD_FAILURE() << what << ": element " << k << " is " << static_cast<double>(got[k])
                    << ", expected " << static_cast<double>(want);
  }
  EXPECT_EQ(wrong, 0u) << what << ": wrong elements out of " << got.size();
}

template <typename T>
void check_allreduce(Context& c, std::size_t count, ReduceOp op) {
  std::vector<T> x = inputs<T>(c.rank(), count);
  c.allreduce(Buffer(x.data(), count, dtype_for<T>()), op);
  expect_reduced(x, c.size(), op,
                 "rank " + std::to_string(c.rank()) + " " + dtype_name(dtype_for<T>()) + " " +
                     reduce_op_name(op) + " of " + std::to_string(count) + " elements");
}

// Counts around the number of chunks: fewer elements than ranks (empty chunks), a multiple of n,
// and counts that do not divide evenly.
std::vector<std::size_t> edge_counts(int n) {
  const std::size_t un = static_cast<std::size_t>(n);
  std::vector<std::size_t> counts = {1, un, un + 1, 2 * un + 3, 1000};
  if (n > 2) counts.push_back(un - 1);
  return counts;
}

template <typename T>
void check_every_op(Context& c, bool floating) {
  for (std::size_t count : edge_counts(c.size())) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMin, ReduceOp::kMax})
      check_allreduce<T>(c, count, op);
    if (floating) check_allreduce<T>(c, count, ReduceOp::kAverage);
  }
}

// Elements of chunk `c` when `total` elements are cut into n chunks differing by at most one.
std::size_t chunk_size(std::size_t total, int n, int c) {
  return total / n + (static_cast<std::size_t>(c) < total % n ? 1 : 0);
}

// Messages rank r sends (and receives) in one recursive-doubling collective of n ranks: one per
// pairwise step, log2(p) steps for p the largest power of two <= n, and one fold message for the
// ranks below 2(n - p) (an even one sends its data and gets the result back instead of stepping).
std::uint64_t rd_messages(int n, int r) {
  if (n == 1) return 0;
  int p = 1;
  std::uint64_t steps = 0;
  while (p * 2 <= n) {
    p *= 2;
    ++steps;
  }
  if (r < 2 * (n - p)) return r % 2 == 0 ? 1 : 1 + steps;
  return steps;
}
// Bytes of the consistency header at the front of each recursive-doubling message: a magic
// number, the maximum and the minimum of 7 fields, and a flag, 8 bytes each.
constexpr std::size_t kCheckHeaderBytes = 8 * (1 + 7 + 7 + 1);

// Every allreduce of these cases runs as Rabenseifner's algorithm.
void rabenseifner_always(ContextOptions& o) {
  o.small_allreduce_threshold_bytes = 0;
  o.rabenseifner_allreduce_threshold_bytes = 0;
  o.ring_allreduce_threshold_bytes = std::numeric_limits<std::size_t>::max();
}

// What rank r sends and receives in one Rabenseifner allreduce of `count` elements (each
// message below one 1 MiB segment, so one message per non-empty span). p is the largest power of
// two <= n, rem = n - p; the buffer is cut into p blocks differing by at most one element.
//  - fold: ranks 2i < 2 rem hand their whole buffer to 2i + 1 and get the result back;
//  - reduce-scatter: virtual rank v keeps, with mask = 1 .. p/2, the upper half of its block
//    range if bit `mask` of v is set (else the lower), sending the other half and receiving the
//    kept half;
//  - allgather: with mask = p/2 .. 1 it sends the blocks it owns and receives the sibling range
//    of as many blocks from v ^ mask.
struct Volume {
  std::uint64_t messages = 0, sent = 0, received = 0;  // elements for sent/received
};
Volume rabenseifner_volume(std::size_t count, int n, int r) {
  Volume vol;
  if (n == 1) return vol;
  int p = 1;
  while (p * 2 <= n) p *= 2;
  const int rem = n - p;
  auto begin = [&](int b) {
    const std::size_t ub = static_cast<std::size_t>(b);
    return ub * (count / p) + std::min(ub, count % p);
  };
  auto send = [&](std::size_t elements) {
    vol.sent += elements;
    vol.messages += elements > 0 ? 1 : 0;
  };
  if (r < 2 * rem && r % 2 == 0) {  // hands over everything, gets everything back
    send(count);
    vol.received += count;
    return vol;
  }
  if (r < 2 * rem) {  // receives the partner's buffer first and sends it the result last
    vol.received += count;
    send(count);
  }
  const int v = r < 2 * rem ? r / 2 : r - rem;
  int lo = 0, size = p;
  for (int mask = 1; mask < p; mask *= 2) {
    const int half = size / 2, mid = lo + half;
    const std::size_t lower = begin(mid) - begin(lo), upper = begin(mid + half) - begin(mid);
    if (v & mask) {
      send(lower);
      vol.received += upper;
      lo = mid;
    } else {
      send(upper);
      vol.received += lower;
    }
    size = half;
  }
  for (; size < p; size *= 2) {
    const int other = lo ^ size;
    send(begin(lo + size) - begin(lo));
    vol.received += begin(other + size) - begin(other);
    lo = std::min(lo, other);
  }
  return vol;
}

// Halving-doubling takes Rabenseifner's steps (same spans: rabenseifner_volume), one message per
// step even when its span is empty, with the header in the fold, reduce-scatter and unfold
// messages. Messages rank r sends, and how many of them (and of those it receives) carry a
// header.
struct HalvingMessages {
  std::uint64_t sent = 0, headers_sent = 0, headers_received = 0;
};
HalvingMessages halving_messages(int n, int r) {
  HalvingMessages m;
  if (n == 1) return m;
  int p = 1;
  std::uint64_t steps = 0;
  while (p * 2 <= n) {
    p *= 2;
    ++steps;
  }
  const int rem = n - p;
  if (r < 2 * rem && r % 2 == 0) return {1, 1, 1};  // fold out, result back
  m.sent = 2 * steps;                               // reduce-scatter + allgather
  m.headers_sent = m.headers_received = steps;      // the reduce-scatter's
  if (r < 2 * rem) {                                // fold in, unfold out
    m.sent += 1;
    m.headers_sent += 1;
    m.headers_received += 1;
  }
  return m;
}

// Runs `call` (which must fail on every rank because the ranks disagree) and checks the
// MismatchError names this rank, the operation, and every fragment of `fragments`.
template <typename Fn>
void expect_mismatch(Context& c, Fn&& call, const std::string& op,
                     const std::vector<std::string>& fragments) {
  const std::string me = "rank " + std::to_string(c.rank());
  try {
    call();
    ADD_FAILURE() << me << ": " << op << " did not fail";
  } catch (const MismatchError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind(me + ": " + op + ": ranks disagree", 0), 0u) << message;
    for (const auto& f : fragments)
      EXPECT_NE(message.find(f), std::string::npos) << f << " in " << message;
  } catch (const Error& e) {
    ADD_FAILURE() << me << ": expected a MismatchError, got: " << e.what();
  }
}

std::vector<CommCase> make_cases() {
  std::vector<CommCase> cases;
  auto add = [&](std::string name, std::function<void(Context&)> body,
                 std::function<void(ContextOptions&)> configure = ring_always) {
    CommCase c;
    c.name = std::move(name);
    c.body = std::move(body);
    c.configure = std::move(configure);
    cases.push_back(std::move(c));
  };

  add("RingFloat32EveryOp", [](Context& c) { check_every_op<float>(c, true); });
  add("RingFloat64EveryOp", [](Context& c) { check_every_op<double>(c, true); });
  add("RingFloat16EveryOp", [](Context& c) { check_every_op<Eigen::half>(c, true); });
  add("RingBFloat16EveryOp", [](Context& c) { check_every_op<Eigen::bfloat16>(c, true); });
  add("RingInt32EveryOp", [](Context& c) { check_every_op<std::int32_t>(c, false); });
  add("RingInt64EveryOp", [](Context& c) { check_every_op<std::int64_t>(c, false); });
  add("RingUInt8EveryOp", [](Context& c) { check_every_op<std::uint8_t>(c, false); });

  // Large buffers: chunks of several 1 MiB segments (more segments than receives posted ahead)
  // and a count that no n in {3, 5, 8} divides.
  add("RingLarge", [](Context& c) {
    check_allreduce<float>(c, (std::size_t{1} << 20) + 3, ReduceOp::kSum);
    check_allreduce<double>(c, (std::size_t{3} << 19) + 3, ReduceOp::kAverage);
    check_allreduce<Eigen::bfloat16>(c, (std::size_t{3} << 20) + 3, ReduceOp::kMax);
  });

  // Ring and transport allreduces queued without waiting, interleaved with neighbour averaging:
  // every operation must take only its own messages.
  add(
      "RingInterleavedWithOtherOps",
      [](Context& c) {
        const int n = c.size();
        topology::Graph g = topology::exponential(n);
        const Eigen::MatrixXd w = g.mixing_matrix();
        c.set_topology(g);
        const std::size_t big = 100003, small = 5;  // small: 40 bytes, below the threshold
        std::vector<double> a = inputs<double>(c.rank(), big);
        std::vector<double> nb(big), nb_out(big);
        for (std::size_t k = 0; k < big; ++k) nb[k] = c.rank() + 0.25 * static_cast<double>(k);
        std::vector<double> s = inputs<double>(c.rank(), small);
        std::vector<float> f = inputs<float>(c.rank(), big + 1);
        std::vector<std::int64_t> m = inputs<std::int64_t>(c.rank(), 777);
        std::vector<Handle> handles;
        handles.push_back(c.allreduce_async(a, ReduceOp::kSum));
        handles.push_back(c.neighbor_allreduce_async(nb, nb_out));
        handles.push_back(c.allreduce_async(s, ReduceOp::kMax));
        handles.push_back(c.allreduce_async(f, ReduceOp::kAverage));
        handles.push_back(c.neighbor_allreduce_async(nb_out, nb_out));
        handles.push_back(c.allreduce_async(m, ReduceOp::kMin));
        for (auto& h : handles) h.wait();
        const std::string who = "rank " + std::to_string(c.rank());
        expect_reduced(a, n, ReduceOp::kSum, who + " async ring sum");
        expect_reduced(s, n, ReduceOp::kMax, who + " async transport max");
        expect_reduced(f, n, ReduceOp::kAverage, who + " async ring average");
        expect_reduced(m, n, ReduceOp::kMin, who + " async ring min");
        // Two rounds of neighbour averaging: row `rank` of W^2 applied to every rank's values.
        const Eigen::MatrixXd w2 = w * w;
        for (std::size_t k : {std::size_t{0}, big / 2, big - 1}) {
          double want = 0;
          for (int j = 0; j < n; ++j) want += w2(c.rank(), j) * (j + 0.25 * static_cast<double>(k));
          EXPECT_NEAR(nb_out[k], want, 1e-9 * (1 + std::abs(want))) << who << " element " << k;
        }
      },
      [](ContextOptions& o) { o.ring_allreduce_threshold_bytes = 1024; });

  // The thresholds are inclusive, and each algorithm sends exactly what it should: recursive
  // doubling below 4096 bytes (rd_messages, header + payload each), the transport's allreduce
  // from there (only the header-only check messages of our own, plus the modelled 2(n-1)/n
  // volume), Rabenseifner's from 6144 bytes (a header ahead of each fold and reduce-scatter
  // step: the check's messages again, with the same partners; then rabenseifner_volume), and from
  // 8192 bytes the ring: the check, then 2(n-1) messages (one per step, chunks below one segment),
  // every chunk but (r+1) in the reduce-scatter and every chunk but (r+2) in the allgather.
  add(
      "AllreduceThresholdsAndVolume",
      [](Context& c) {
        const int n = c.size(), r = c.rank();
        const std::uint64_t checks = rd_messages(n, r);
        auto run = [&](std::size_t count, const char* what) {
          std::vector<float> x = inputs<float>(r, count);
          const CommStats before = c.stats();
          c.allreduce(x, ReduceOp::kSum);
          const CommStats after = c.stats();
          expect_reduced(x, n, ReduceOp::kSum, what);
          return CommStats{
              after.bytes_sent - before.bytes_sent, after.bytes_received - before.bytes_received,
              after.messages_sent - before.messages_sent, after.operations - before.operations};
        };
        const CommStats rd = run(1023, "recursive doubling, 4092 bytes");
        EXPECT_EQ(rd.messages_sent, checks);
        EXPECT_EQ(rd.bytes_sent, checks * (kCheckHeaderBytes + 4092));
        EXPECT_EQ(rd.bytes_received, rd.bytes_sent);
        EXPECT_EQ(rd.operations, 1u);
        for (std::size_t count : {std::size_t{1024}, std::size_t{1535}}) {
          const CommStats t = run(count, "transport");
          EXPECT_EQ(t.messages_sent, checks) << count << " floats";
          const std::uint64_t modelled = n == 1 ? 0 : 2 * count * sizeof(float) * (n - 1) / n;
          EXPECT_EQ(t.bytes_sent, checks * kCheckHeaderBytes + modelled) << count << " floats";
        }
        int p = 1;
        while (p * 2 <= n) p *= 2;
        for (std::size_t count : {std::size_t{1536}, std::size_t{2047}}) {
          const CommStats h = run(count, "rabenseifner");
          const Volume want = rabenseifner_volume(count, n, r);
          EXPECT_EQ(h.messages_sent, checks + want.messages) << count << " floats";
          EXPECT_EQ(h.bytes_sent, checks * kCheckHeaderBytes + want.sent * sizeof(float))
              << count << " floats";
          EXPECT_EQ(h.bytes_received, checks * kCheckHeaderBytes + want.received * sizeof(float))
              << count << " floats";
          // Blocks of equal size (1536 = 3 * 512 divides by every p here): a rank outside the
          // fold sends 2 (p-1)/p of the buffer in 2 log2(p) messages, one in the fold adds the
          // whole buffer once; the fold's even ranks send it once and nothing else.
          if (count % p == 0 && n > 1) {
            const bool folds = r < 2 * (n - p);
            const std::uint64_t main_phase = 2 * count * (p - 1) / p;
            const std::uint64_t sent =
                folds ? (r % 2 == 0 ? count : count + main_phase) : main_phase;
            EXPECT_EQ(want.sent, sent) << count << " floats";
          }
        }
        const std::size_t at = 2048;
        const CommStats ring = run(at, "ring, 8192 bytes");
        if (n == 1) {
          EXPECT_EQ(ring.messages_sent, 0u);
          return;
        }
        EXPECT_EQ(ring.messages_sent, checks + static_cast<std::uint64_t>(2 * (n - 1)));
        const std::size_t elements =
            2 * at - chunk_size(at, n, (r + 1) % n) - chunk_size(at, n, (r + 2) % n);
        EXPECT_EQ(ring.bytes_sent, checks * kCheckHeaderBytes + elements * sizeof(float));
        EXPECT_EQ(ring.bytes_received, ring.bytes_sent);
      },
      [](ContextOptions& o) {
        o.small_allreduce_threshold_bytes = 4096;
        o.rabenseifner_allreduce_threshold_bytes = 6144;
        o.ring_allreduce_threshold_bytes = 8192;
      });

  // ---- Rabenseifner (middle sizes): exact for every dtype and op, at the edge counts ----

  add(
      "RabenseifnerFloat32EveryOp", [](Context& c) { check_every_op<float>(c, true); },
      rabenseifner_always);
  add(
      "RabenseifnerFloat64EveryOp", [](Context& c) { check_every_op<double>(c, true); },
      rabenseifner_always);
  add(
      "RabenseifnerFloat16EveryOp", [](Context& c) { check_every_op<Eigen::half>(c, true); },
      rabenseifner_always);
  add(
      "RabenseifnerBFloat16EveryOp", [](Context& c) { check_every_op<Eigen::bfloat16>(c, true); },
      rabenseifner_always);
  add(
      "RabenseifnerIntegersEveryOp",
      [](Context& c) {
        check_every_op<std::int32_t>(c, false);
        check_every_op<std::int64_t>(c, false);
        check_every_op<std::uint8_t>(c, false);
      },
      rabenseifner_always);
  // Several 1 MiB segments per step (more than the receives posted ahead in the fold), counts
  // no n in {3, 5, 8} divides.
  add(
      "RabenseifnerLarge",
      [](Context& c) {
        check_allreduce<float>(c, (std::size_t{1} << 20) + 3, ReduceOp::kSum);
        check_allreduce<double>(c, (std::size_t{3} << 19) + 3, ReduceOp::kAverage);
        check_allreduce<Eigen::bfloat16>(c, (std::size_t{3} << 20) + 3, ReduceOp::kMax);
      },
      rabenseifner_always);
  add(
      "RabenseifnerWithoutChecks",
      [](Context& c) {
        check_every_op<float>(c, true);
        const CommStats before = c.stats();
        check_allreduce<double>(c, 1001, ReduceOp::kAverage);
        const CommStats after = c.stats();
        const Volume want = rabenseifner_volume(1001, c.size(), c.rank());
        EXPECT_EQ(after.messages_sent - before.messages_sent, want.messages);
        EXPECT_EQ(after.bytes_sent - before.bytes_sent, want.sent * sizeof(double));
        EXPECT_EQ(after.bytes_received - before.bytes_received, want.received * sizeof(double));
      },
      [](ContextOptions& o) {
        rabenseifner_always(o);
        o.check_consistency = false;
      });
  // Both sides of each threshold: recursive doubling / transport at 1 KiB, transport /
  // Rabenseifner at 2 KiB, Rabenseifner / ring at 4 KiB; every floating dtype and op.
  add(
      "AllreduceAroundEveryThreshold",
      [](Context& c) {
        for (std::size_t at : {std::size_t{256}, std::size_t{512}, std::size_t{1024}}) {
          for (std::size_t count : {at - 1, at, at + 1}) {
            for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAverage, ReduceOp::kMin, ReduceOp::kMax})
              check_allreduce<float>(c, count, op);
            check_allreduce<double>(c, count / 2, ReduceOp::kAverage);
            check_allreduce<double>(c, count / 2 + 1, ReduceOp::kSum);
            check_allreduce<Eigen::half>(c, 2 * count, ReduceOp::kAverage);
            check_allreduce<Eigen::bfloat16>(c, 2 * count + 1, ReduceOp::kSum);
          }
        }
      },
      [](ContextOptions& o) {
        o.small_allreduce_threshold_bytes = 1024;
        o.rabenseifner_allreduce_threshold_bytes = 2048;
        o.ring_allreduce_threshold_bytes = 4096;
      });
  // Rabenseifner queued without waiting between other collectives and neighbour averaging.
  add(
      "RabenseifnerInterleavedWithOtherOps",
      [](Context& c) {
        const int n = c.size(), r = c.rank();
        const std::string who = "rank " + std::to_string(r);
        std::vector<double> a = inputs<double>(r, 100003);
        std::vector<float> b = inputs<float>(r, 7);  // recursive doubling
        std::vector<float> f = inputs<float>(r, 50001);
        topology::Graph g = topology::exponential(n);
        const Eigen::MatrixXd w = g.mixing_matrix();
        c.set_topology(g);
        std::vector<double> nb(1000, r), nb_out(1000);
        std::vector<Handle> handles;
        handles.push_back(c.allreduce_async(a, ReduceOp::kSum));
        handles.push_back(c.allreduce_async(b, ReduceOp::kMax));
        handles.push_back(c.neighbor_allreduce_async(nb, nb_out));
        handles.push_back(c.allreduce_async(f, ReduceOp::kAverage));
        for (auto& h : handles) h.wait();
        expect_reduced(a, n, ReduceOp::kSum, who + " async rabenseifner sum");
        expect_reduced(b, n, ReduceOp::kMax, who + " async recursive doubling max");
        expect_reduced(f, n, ReduceOp::kAverage, who + " async rabenseifner average");
        double want = 0;
        for (int j = 0; j < n; ++j) want += w(r, j) * j;
        for (double v : nb_out) ASSERT_NEAR(v, want, 1e-12 * (1 + std::abs(want))) << who;
      },
      [](ContextOptions& o) {
        o.rabenseifner_allreduce_threshold_bytes = 1024;
        o.small_allreduce_threshold_bytes = 1024;
        o.ring_allreduce_threshold_bytes = std::numeric_limits<std::size_t>::max();
      });

  // ---- recursive doubling (small allreduces): exact, checked in its own messages ----

  auto rd_default = [](ContextOptions&) {
  };  // below the 64 KiB halving threshold: every buffer here
  add(
      "RecursiveDoublingFloat32EveryOp", [](Context& c) { check_every_op<float>(c, true); },
      rd_default);
  add(
      "RecursiveDoublingFloat64EveryOp", [](Context& c) { check_every_op<double>(c, true); },
      rd_default);
  add(
      "RecursiveDoublingFloat16EveryOp", [](Context& c) { check_every_op<Eigen::half>(c, true); },
      rd_default);
  add(
      "RecursiveDoublingBFloat16EveryOp",
      [](Context& c) { check_every_op<Eigen::bfloat16>(c, true); }, rd_default);
  add(
      "RecursiveDoublingIntegersEveryOp",
      [](Context& c) {
        check_every_op<std::int32_t>(c, false);
        check_every_op<std::int64_t>(c, false);
        check_every_op<std::uint8_t>(c, false);
      },
      rd_default);
  // Unchecked: payload-only messages, exactly rd_messages of them.
  add(
      "RecursiveDoublingWithoutChecks",
      [](Context& c) {
        check_every_op<float>(c, true);
        check_every_op<Eigen::bfloat16>(c, true);
        const CommStats before = c.stats();
        check_allreduce<double>(c, 100, ReduceOp::kAverage);
        const CommStats after = c.stats();
        const std::uint64_t m = rd_messages(c.size(), c.rank());
        EXPECT_EQ(after.messages_sent - before.messages_sent, m);
        EXPECT_EQ(after.bytes_sent - before.bytes_sent, m * 100 * sizeof(double));
      },
      [](ContextOptions& o) { o.check_consistency = false; });
  // Both sides of the small threshold (1 KiB here), every floating dtype and op.
  add(
      "RecursiveDoublingAroundTheThreshold",
      [](Context& c) {
        for (std::size_t count : {std::size_t{255}, std::size_t{256}, std::size_t{257}}) {
          for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAverage, ReduceOp::kMin, ReduceOp::kMax})
            check_allreduce<float>(c, count, op);
          for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAverage})
            check_allreduce<double>(c, count / 2 + (count - 255), op);
        }
        for (std::size_t count : {std::size_t{511}, std::size_t{512}, std::size_t{513}}) {
          check_allreduce<Eigen::half>(c, count, ReduceOp::kAverage);
          check_allreduce<Eigen::bfloat16>(c, count, ReduceOp::kSum);
        }
      },
      [](ContextOptions& o) {
        o.small_allreduce_threshold_bytes = 1024;
        o.ring_allreduce_threshold_bytes = std::numeric_limits<std::size_t>::max();
      });

  // ---- halving-doubling (small and middle allreduces): exact, checked in its own messages ----

  auto halving_always = [](ContextOptions& o) {
    o.halving_allreduce_threshold_bytes = 0;
    o.small_allreduce_threshold_bytes = std::numeric_limits<std::size_t>::max();
    o.ring_allreduce_threshold_bytes = std::numeric_limits<std::size_t>::max();
  };
  add(
      "HalvingDoublingFloat32EveryOp", [](Context& c) { check_every_op<float>(c, true); },
      halving_always);
  add(
      "HalvingDoublingFloat64EveryOp", [](Context& c) { check_every_op<double>(c, true); },
      halving_always);
  add(
      "HalvingDoublingFloat16EveryOp", [](Context& c) { check_every_op<Eigen::half>(c, true); },
      halving_always);
  add(
      "HalvingDoublingBFloat16EveryOp",
      [](Context& c) { check_every_op<Eigen::bfloat16>(c, true); }, halving_always);
  add(
      "HalvingDoublingIntegersEveryOp",
      [](Context& c) {
        check_every_op<std::int32_t>(c, false);
        check_every_op<std::int64_t>(c, false);
        check_every_op<std::uint8_t>(c, false);
      },
      halving_always);
  // Messages and bytes in closed form, checked (headers in the fold, reduce-scatter and unfold
  // messages) and unchecked (payloads only), at counts with empty blocks and uneven blocks.
  for (bool checked : {true, false}) {
    add(
        checked ? "HalvingDoublingTraffic" : "HalvingDoublingTrafficWithoutChecks",
        [checked](Context& c) {
          const int n = c.size(), r = c.rank();
          const std::size_t header = checked ? kCheckHeaderBytes : 0;
          for (std::size_t count :
               {std::size_t{1}, static_cast<std::size_t>(n) + 1, std::size_t{1000}}) {
            const CommStats before = c.stats();
            check_allreduce<float>(c, count, ReduceOp::kAverage);
            const CommStats after = c.stats();
            const Volume vol = rabenseifner_volume(count, n, r);
            const HalvingMessages m = halving_messages(n, r);
            const std::string who = "rank " + std::to_string(r) + ", " + std::to_string(count);
            EXPECT_EQ(after.messages_sent - before.messages_sent, m.sent) << who;
            EXPECT_EQ(after.bytes_sent - before.bytes_sent,
                      m.headers_sent * header + vol.sent * sizeof(float))
                << who;
            EXPECT_EQ(after.bytes_received - before.bytes_received,
                      m.headers_received * header + vol.received * sizeof(float))
                << who;
          }
        },
        [checked, halving_always](ContextOptions& o) {
          halving_always(o);
          o.check_consistency = checked;
        });
  }
  // The default thresholds: recursive doubling below 64 KiB, halving-doubling to 1 MiB (n a
  // power of two) or 256 KiB, then Rabenseifner (or the ring), each exact on both sides of the
  // edges.
  add(
      "AllreduceAroundTheDefaultThresholds",
      [](Context& c) {
        for (std::size_t count : {std::size_t{16383}, std::size_t{16384}, std::size_t{16385},
                                  std::size_t{65535}, std::size_t{65536}, std::size_t{65537},
                                  std::size_t{262143}, std::size_t{262144}, std::size_t{262145}}) {
          check_allreduce<float>(c, count, ReduceOp::kAverage);
          check_allreduce<float>(c, count, ReduceOp::kMax);
        }
      },
      [](ContextOptions&) {});

  // Mismatches on the recursive-doubling path: every rank raises the same kind of error naming
  // every rank's values, within the (short) timeout, and no buffer is touched.
  const std::function<void(ContextOptions&)> short_timeout = [](ContextOptions& o) {
    o.timeout = std::chrono::milliseconds(3000);
  };
  auto mismatch_case = [&](std::string name, std::function<void(Context&)> body,
                           std::function<void(ContextOptions&)> configure = nullptr) {
    CommCase c;
    c.name = std::move(name);
    c.body = std::move(body);
    c.min_size = 2;
    c.configure = configure ? std::move(configure) : short_timeout;
    cases.push_back(std::move(c));
  };
  mismatch_case("RecursiveDoublingCountMismatchOnEveryRank", [](Context& c) {
    const int n = c.size(), bad = n - 1;
    std::vector<float> x = inputs<float>(c.rank(), c.rank() == bad ? 3 : 4);
    const std::vector<float> original = x;
    const auto t0 = std::chrono::steady_clock::now();
    expect_mismatch(c, [&] { c.allreduce(x, ReduceOp::kSum); }, "allreduce #0",
                    {"rank " + std::to_string(bad) + ": allreduce #0 count=3 dtype=float32 op=sum",
                     "rank 0: allreduce #0 count=4"});
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
    EXPECT_EQ(x, original) << "the buffer changed although the allreduce failed";
    try {
      c.barrier();
      ADD_FAILURE() << "a barrier after the mismatch ran";
    } catch (const CommError& e) {
      EXPECT_NE(std::string(e.what()).find("failed earlier"), std::string::npos) << e.what();
    }
  });
  // Same bytes, other dtype: only the header can tell.
  mismatch_case("RecursiveDoublingDtypeMismatchOnEveryRank", [](Context& c) {
    std::vector<std::int32_t> i = inputs<std::int32_t>(c.rank(), 6);
    std::vector<float> f = inputs<float>(c.rank(), 6);
    expect_mismatch(
        c,
        [&] {
          if (c.rank() == 0)
            c.allreduce(i, ReduceOp::kSum);
          else
            c.allreduce(f, ReduceOp::kSum);
        },
        "allreduce #0",
        {"rank 0: allreduce #0 count=6 dtype=int32", "rank 1: allreduce #0 count=6 dtype=float32"});
    EXPECT_EQ(i, inputs<std::int32_t>(c.rank(), 6));
    EXPECT_EQ(f, inputs<float>(c.rank(), 6));
  });
  mismatch_case("RecursiveDoublingOpMismatchOnEveryRank", [](Context& c) {
    const int odd = c.size() / 2;
    std::vector<double> x = inputs<double>(c.rank(), 9);
    expect_mismatch(c,
                    [&] { c.allreduce(x, c.rank() == odd ? ReduceOp::kMax : ReduceOp::kAverage); },
                    "allreduce #0",
                    {"rank " + std::to_string(odd) + ": allreduce #0 count=9 dtype=float64 op=max",
                     "op=average algorithm=recursive-doubling"});
  });
  // A rank in another collective (a barrier, header-only messages): its message is smaller than
  // the payload the others expect, theirs larger than its receive; everyone still reports it.
  mismatch_case("RecursiveDoublingAgainstBarrierOnEveryRank", [](Context& c) {
    std::vector<float> x = inputs<float>(c.rank(), 16);
    expect_mismatch(c,
                    [&] {
                      if (c.rank() == 0)
                        c.barrier();
                      else
                        c.allreduce(x, ReduceOp::kSum);
                    },
                    c.rank() == 0 ? "barrier #0" : "allreduce #0",
                    {"rank 0: barrier #0", "rank 1: allreduce #0 count=16"});
  });
  // Counts of 2000 and 2001 put the header at the same place on every rank. A header travels in
  // the buffer next to the block it precedes or follows, or in a copy of a block too small to
  // lend it room; with counts of 30 and 3000 the ranks place it differently, and each reads a
  // header that is not there. Both are reported, and the buffers (whose bytes were lent) are as
  // they were.
  struct CountMismatch {
    const char* name;
    std::size_t bad_count, count;
  };
  for (const CountMismatch& m :
       {CountMismatch{"HalvingDoublingCountMismatchOnEveryRank", 2000, 2001},
        CountMismatch{"HalvingDoublingHeaderPlacedDifferentlyOnEveryRank", 30, 3000}}) {
    mismatch_case(
        m.name,
        [m](Context& c) {
          const int bad = c.size() - 1;
          std::vector<float> x = inputs<float>(c.rank(), c.rank() == bad ? m.bad_count : m.count);
          const std::vector<float> original = x;
          expect_mismatch(c, [&] { c.allreduce(x, ReduceOp::kAverage); }, "allreduce #0",
                          {"rank " + std::to_string(bad) +
                               ": allreduce #0 count=" + std::to_string(m.bad_count),
                           "rank 0: allreduce #0 count=" + std::to_string(m.count),
                           "algorithm=halving-doubling"});
          EXPECT_EQ(x, original) << "the buffer changed although the allreduce failed";
        },
        [halving_always](ContextOptions& o) {
          halving_always(o);
          o.timeout = std::chrono::milliseconds(3000);
        });
  }
  // Recursive doubling on rank 0 (just below the 64 KiB default threshold), halving-doubling on
  // the others: headers, patterns and sizes differ, and every rank reports it.
  mismatch_case("HalvingDoublingAgainstRecursiveDoublingOnEveryRank", [](Context& c) {
    std::vector<float> x = inputs<float>(c.rank(), c.rank() == 0 ? 16383 : 16384);
    const std::vector<float> original = x;
    expect_mismatch(c, [&] { c.allreduce(x, ReduceOp::kAverage); }, "allreduce #0",
                    {"rank 0: allreduce #0 count=16383 dtype=float32 op=average "
                     "algorithm=recursive-doubling",
                     "rank 1: allreduce #0 count=16384 dtype=float32 op=average "
                     "algorithm=halving-doubling"});
    EXPECT_EQ(x, original) << "the buffer changed although the allreduce failed";
  });
  mismatch_case(
      "HalvingDoublingAgainstBarrierOnEveryRank",
      [](Context& c) {
        std::vector<float> x = inputs<float>(c.rank(), 3000);
        expect_mismatch(c,
                        [&] {
                          if (c.rank() == 0)
                            c.barrier();
                          else
                            c.allreduce(x, ReduceOp::kSum);
                        },
                        c.rank() == 0 ? "barrier #0" : "allreduce #0",
                        {"rank 0: barrier #0", "rank 1: allreduce #0 count=3000"});
      },
      [halving_always](ContextOptions& o) {
        halving_always(o);
        o.timeout = std::chrono::milliseconds(3000);
      });
  // Broadcast and the transport/ring allreduces check with header-only recursive doubling.
  mismatch_case("BroadcastRootMismatchOnEveryRank", [](Context& c) {
    std::vector<double> x(5, c.rank());
    const int root = c.rank() == 0 ? 0 : 1;
    expect_mismatch(c, [&] { c.broadcast(x, root); }, "broadcast #0",
                    {"rank 0: broadcast #0 count=5 dtype=float64 root=0",
                     "rank 1: broadcast #0 count=5 dtype=float64 root=1"});
  });
  mismatch_case(
      "RingCountMismatchOnEveryRank",
      [](Context& c) {
        const int bad = c.size() - 1;
        std::vector<float> x = inputs<float>(c.rank(), c.rank() == bad ? 2000 : 2001);
        expect_mismatch(
            c, [&] { c.allreduce(x, ReduceOp::kSum); }, "allreduce #0",
            {"rank " + std::to_string(bad) + ": allreduce #0 count=2000", "algorithm=ring"});
      },
      [](ContextOptions& o) {
        o.timeout = std::chrono::milliseconds(3000);
        o.ring_allreduce_threshold_bytes = 0;
      });
  mismatch_case(
      "RabenseifnerCountMismatchOnEveryRank",
      [](Context& c) {
        const int bad = c.size() - 1;
        std::vector<float> x = inputs<float>(c.rank(), c.rank() == bad ? 2000 : 2001);
        const std::vector<float> original = x;
        expect_mismatch(c, [&] { c.allreduce(x, ReduceOp::kSum); }, "allreduce #0",
                        {"rank " + std::to_string(bad) + ": allreduce #0 count=2000",
                         "rank 0: allreduce #0 count=2001", "algorithm=rabenseifner"});
        EXPECT_EQ(x, original) << "the buffer changed although the allreduce failed";
      },
      [](ContextOptions& o) {
        rabenseifner_always(o);
        o.timeout = std::chrono::milliseconds(3000);
      });
  mismatch_case(
      "RabenseifnerOpMismatchOnRankZero",
      [](Context& c) {
        std::vector<double> x = inputs<double>(c.rank(), 3000);
        const std::vector<double> original = x;
        expect_mismatch(
            c, [&] { c.allreduce(x, c.rank() == 0 ? ReduceOp::kMax : ReduceOp::kAverage); },
            "allreduce #0",
            {"rank 0: allreduce #0 count=3000 dtype=float64 op=max algorithm=rabenseifner",
             "op=average algorithm=rabenseifner"});
        EXPECT_EQ(x, original) << "the buffer changed although the allreduce failed";
      },
      [](ContextOptions& o) {
        rabenseifner_always(o);
        o.timeout = std::chrono::milliseconds(3000);
      });
  // A rank in a barrier (header-only recursive doubling) against Rabenseifner's headers.
  mismatch_case(
      "RabenseifnerAgainstBarrierOnEveryRank",
      [](Context& c) {
        const int odd = c.size() / 2;
        std::vector<float> x = inputs<float>(c.rank(), 5000);
        expect_mismatch(c,
                        [&] {
                          if (c.rank() == odd)
                            c.barrier();
                          else
                            c.allreduce(x, ReduceOp::kSum);
                        },
                        c.rank() == odd ? "barrier #0" : "allreduce #0",
                        {"rank " + std::to_string(odd) + ": barrier #0",
                         "count=5000 dtype=float32 op=sum algorithm=rabenseifner"});
      },
      [](ContextOptions& o) {
        rabenseifner_always(o);
        o.timeout = std::chrono::milliseconds(3000);
      });
  mismatch_case(
      "RabenseifnerDtypeMismatchOnEveryRank",
      [](Context& c) {
        std::vector<std::int32_t> i = inputs<std::int32_t>(c.rank(), 600);
        std::vector<float> f = inputs<float>(c.rank(), 600);
        expect_mismatch(
            c,
            [&] {
              if (c.rank() == 1)
                c.allreduce(i, ReduceOp::kSum);
              else
                c.allreduce(f, ReduceOp::kSum);
            },
            "allreduce #0",
            {"rank 1: allreduce #0 count=600 dtype=int32",
             "rank 0: allreduce #0 count=600 dtype=float32 op=sum algorithm=rabenseifner"});
      },
      [](ContextOptions& o) {
        rabenseifner_always(o);
        o.timeout = std::chrono::milliseconds(3000);
      });
  // Unchecked, a count mismatch still fails on every rank without hanging: the ranks that
  // exchange with the odd one see a message of the wrong size, the others time out waiting for
  // the ranks that stopped.
  add(
      "RecursiveDoublingUncheckedCountMismatchFails",
      [](Context& c) {
        const int n = c.size(), bad = n - 1;
        if (n == 1) return;
        std::vector<float> x = inputs<float>(c.rank(), c.rank() == bad ? 3 : 4);
        const auto t0 = std::chrono::steady_clock::now();
        try {
          c.allreduce(x, ReduceOp::kSum);
          ADD_FAILURE() << "rank " << c.rank() << ": the allreduce did not fail";
        } catch (const MismatchError& e) {
          EXPECT_NE(std::string(e.what()).find("allreduce #0"), std::string::npos) << e.what();
        } catch (const Error& e) {
          EXPECT_NE(c.rank(), bad) << "the odd rank must see the size mismatch: " << e.what();
        }
        EXPECT_LT(std::chrono::steady_clock::now() - t0, c.options().timeout * 4);
        // Ranks that failed fast stay until the others have timed out.
        std::this_thread::sleep_until(t0 + c.options().timeout * 3);
      },
      [](ContextOptions& o) {
        o.check_consistency = false;
        o.timeout = std::chrono::milliseconds(300);
      });

  // Blocking calls run on the caller's thread only when nothing is queued; interleaved with
  // asynchronous ones they still run in submission order on every rank, with exact results.
  add(
      "BlockingAndAsyncCollectivesKeepOrder",
      [](Context& c) {
        const int n = c.size(), r = c.rank();
        const std::string who = "rank " + std::to_string(r);
        for (int round = 0; round < 5; ++round) {
          std::vector<float> a = inputs<float>(r, 33);
          std::vector<double> b = inputs<double>(r, 17);
          std::vector<std::int64_t> d(7, r);
          std::vector<Eigen::bfloat16> e = inputs<Eigen::bfloat16>(r, 40);
          std::vector<float> f = inputs<float>(r, 3000);  // the ring (threshold 8 KiB)
          std::vector<double> g(4, 10.0 * r);
          const CommStats before = c.stats();
          Handle ha = c.allreduce_async(a, ReduceOp::kSum);
          c.allreduce(b, ReduceOp::kMax);  // queued behind `a` (or inline once `a` is done)
          Handle hd = c.broadcast_async(d, n - 1);
          Handle hf = c.allreduce_async(f, ReduceOp::kAverage);
          c.barrier();
          c.allreduce(Buffer(e.data(), e.size(), DType::kBFloat16),
                      ReduceOp::kAverage);  // usually on this thread: the queue is empty
          Handle hg = c.allreduce_async(g, ReduceOp::kMin);
          c.broadcast(g, 0);  // after the min: every rank gets 0
          hg.wait();
          for (Handle* h : {&ha, &hd, &hf}) h->wait();
          expect_reduced(a, n, ReduceOp::kSum, who + " async sum");
          expect_reduced(b, n, ReduceOp::kMax, who + " blocking max");
          EXPECT_EQ(d, std::vector<std::int64_t>(7, n - 1)) << who;
          expect_reduced(f, n, ReduceOp::kAverage, who + " async ring average");
          expect_reduced(e, n, ReduceOp::kAverage, who + " blocking bfloat16 average");
          EXPECT_EQ(g, std::vector<double>(4, 0.0)) << who;
          EXPECT_EQ(c.stats().operations - before.operations, 8u) << who;
        }
      },
      [](ContextOptions& o) { o.ring_allreduce_threshold_bytes = 8192; });

  // Fused buffers go through the ring as one message stream and come back unfused and exact.
  add("RingFusedBuffers", [](Context& c) {
    std::vector<std::vector<double>> bufs;
    std::vector<Buffer> views;
    for (std::size_t b = 0; b < 20; ++b) bufs.push_back(inputs<double>(c.rank(), 3 * b + 1));
    for (auto& b : bufs) views.emplace_back(b);
    c.allreduce(views, ReduceOp::kAverage);
    for (std::size_t b = 0; b < bufs.size(); ++b)
      expect_reduced(bufs[b], c.size(), ReduceOp::kAverage, "fused buffer " + std::to_string(b));
  });

  // Consistency checks off: the ring still works, and repeated calls reuse tags safely.
  add(
      "RingWithoutConsistencyChecks",
      [](Context& c) {
        for (int round = 0; round < 3; ++round) {
          std::vector<std::int32_t> x = inputs<std::int32_t>(c.rank(), 4099 + round);
          c.allreduce(x, ReduceOp::kSum);
          expect_reduced(x, c.size(), ReduceOp::kSum, "round " + std::to_string(round));
        }
      },
      [](ContextOptions& o) {
        o.ring_allreduce_threshold_bytes = 0;
        o.check_consistency = false;
      });

  // Hierarchical averaging uses the ring inside each emulated machine.
  add(
      "RingInsideHierarchical",
      [](Context& c) {
        // Machines are pairs of consecutive ranks, mixed over the exponential graph.
        const int machines = c.machine_size();
        topology::Graph g = topology::exponential(machines);
        const Eigen::MatrixXd w = g.mixing_matrix();
        c.set_machine_topology(std::make_shared<topology::StaticSchedule>(g));
        std::vector<double> x = inputs<double>(c.rank(), 301);
        std::vector<double> out(x.size());
        c.hierarchical_neighbor_allreduce(x, out);
        auto machine_mean = [&](int m, std::size_t k) {
          const int first = 2 * m, last = std::min(c.size(), first + 2);
          double s = 0;
          for (int r = first; r < last; ++r) s += input_value<double>(r, k);
          return s / (last - first);
        };
        for (std::size_t k = 0; k < x.size(); ++k) {
          double want = 0;
          for (int j = 0; j < machines; ++j) want += w(c.machine_rank(), j) * machine_mean(j, k);
          ASSERT_NEAR(out[k], want, 1e-9 * (1 + std::abs(want))) << "element " << k;
        }
      },
      [](ContextOptions& o) {
        o.ring_allreduce_threshold_bytes = 0;
        o.ranks_per_machine = 2;
      });
  // A rank that never joins a halving-doubling allreduce: the others time out, and the bytes of
  // their buffers lent to outgoing headers are back in place (80 KiB: the blocks go by
  // rendezvous, so the sends to rank 0 are still pending when the wait gives up).
  add(
      "HalvingDoublingTimeoutLeavesTheBufferUntouched",
      [](Context& c) {
        if (c.size() == 1) return;
        if (c.rank() == 0) {
          std::this_thread::sleep_for(c.options().timeout * 10);
          return;
        }
        std::vector<float> x = inputs<float>(c.rank(), 20000);
        const std::vector<float> original = x;
        try {
          c.allreduce(x, ReduceOp::kSum);
          ADD_FAILURE() << "rank " << c.rank() << ": allreduce without rank 0 did not fail";
        } catch (const TimeoutError& e) {
          const std::string message = e.what();
          EXPECT_NE(message.find("allreduce #0"), std::string::npos) << message;
        } catch (const Error& e) {
          ADD_FAILURE() << "rank " << c.rank() << ": expected a TimeoutError, got: " << e.what();
        }
        EXPECT_EQ(x, original) << "rank " << c.rank() << ": the buffer changed on a timeout";
        std::this_thread::sleep_for(c.options().timeout * 4);
      },
      [halving_always](ContextOptions& o) {
        halving_always(o);
        o.timeout = std::chrono::milliseconds(200);
      });
  // A rank that never joins: its ring successor reports it by name, the others report their own
  // predecessor (which cannot forward what it never got), and nobody hangs.
  add(
      "RingTimeoutNamesTheMissingRank",
      [](Context& c) {
        const int n = c.size();
        if (n == 1) return;
        if (c.rank() == 0) {
          // Stay away (without leaving the job) until the others have timed out, with a margin
          // for ranks that start late on a loaded machine.
          std::this_thread::sleep_for(c.options().timeout * 10);
          return;
        }
        std::vector<double> x = inputs<double>(c.rank(), 64);
        const std::string left = "from rank " + std::to_string(c.rank() - 1);
        try {
          c.allreduce(x, ReduceOp::kSum);
          ADD_FAILURE() << "rank " << c.rank() << ": allreduce without rank 0 did not fail";
        } catch (const TimeoutError& e) {
          const std::string message = e.what();
          EXPECT_NE(message.find("rank " + std::to_string(c.rank()) + ": allreduce #0 (ring)"),
                    std::string::npos)
              << message;
          EXPECT_NE(message.find(left), std::string::npos) << message;
        } catch (const Error& e) {
          ADD_FAILURE() << "rank " << c.rank() << ": expected a TimeoutError, got: " << e.what();
        }
        // The local backend tells a rank at once when a peer has left; stay until the ranks that
        // started later have timed out on their own.
        std::this_thread::sleep_for(c.options().timeout * 4);
      },
      [](ContextOptions& o) {
        o.ring_allreduce_threshold_bytes = 0;
        o.check_consistency = false;  // with the check, its header-only exchange times out first
        o.timeout = std::chrono::milliseconds(200);
      });
  return cases;
}

}  // namespace

const std::vector<CommCase>& ring_cases() {
  static const std::vector<CommCase> cases = make_cases();
  return cases;
}

}  // namespace decent::testing
