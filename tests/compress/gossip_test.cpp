// Compressed neighbour averaging on the in-process backend: the encoded exchange against the
// exact weighted sum, CHOCO gossip reducing to W x with an exact compressor and reaching
// consensus at the average with top-k, byte counts, and errors.
#include "decent/compress/gossip.h"
#include "decent/comm/context.h"
#include "decent/topology/generators.h"
#include "decent/topology/registry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <string>
#include <vector>

namespace decent::compress {
namespace {

std::vector<double> point(int rank, std::size_t d) {
  std::vector<double> x(d);
  for (std::size_t j = 0; j < d; ++j) x[j] = std::sin(1.0 + 1.3 * rank + 0.7 * j) * (1 + rank);
  return x;
}

TEST(EncodedExchange, WeightedSumOfDecodedNeighboursAndPayloadBytes) {
  const int n = 5;
  const std::size_t d = 9;
  local::run(n, [&](Context& ctx) {
    ctx.set_topology(topology::exponential(n));
    const auto c = make_compressor("fp16");
    // Multiples of 1/8 below 2^10: exact in fp16, so the result must equal W x exactly.
    std::vector<double> x(d);
    for (std::size_t j = 0; j < d; ++j) x[j] = 0.125 * ((ctx.rank() * 7 + j * 3) % 40) - 2.0;
    std::vector<double> expected = x;
    ctx.neighbor_allreduce(ConstBuffer(x), Buffer(expected));
    const auto bytes = c->encode(x.data(), d);
    std::vector<double> out(d);
    const auto stats_before = ctx.stats().bytes_sent;
    const std::uint64_t sent =
        neighbor_allreduce_encoded(ctx, *c, bytes, x.data(), d, out.data(), /*step=*/0);
    const std::size_t out_degree = ctx.topology()->plan(0, ctx.rank()).send.size();
    EXPECT_EQ(sent, (6 + 2 * d) * out_degree);
    EXPECT_GE(ctx.stats().bytes_sent - stats_before, sent);
    for (std::size_t j = 0; j < d; ++j) EXPECT_NEAR(out[j], expected[j], 1e-14) << j;

    // self_weight w_ii - 1 gives sum_j (w_ij - I_ij) C(v_j), DeepSqueeze's combination.
    const double w_self = ctx.topology()->plan(0, ctx.rank()).self_weight;
    neighbor_allreduce_encoded(ctx, *c, bytes, x.data(), d, out.data(), 1, w_self - 1.0);
    for (std::size_t j = 0; j < d; ++j) EXPECT_NEAR(out[j], expected[j] - x[j], 1e-14) << j;
  });
}

TEST(ChocoGossip, ExactCompressorWithUnitStepIsOneRoundOfW) {
  const int n = 4;
  const std::size_t d = 6;
  local::run(n, [&](Context& ctx) {
    ctx.set_topology(topology::ring(n));
    CompressedGossip<double> gossip(ctx, make_compressor("none"), d, 1.0);
    std::vector<double> x = point(ctx.rank(), d), expected = x;
    for (int k = 0; k < 3; ++k) {
      ctx.neighbor_allreduce(ConstBuffer(expected), Buffer(expected));
      const std::vector<double> before = x;
      const std::uint64_t sent = gossip.step(x.data(), k, k);
      EXPECT_EQ(sent, (6 + 8 * d) * 2);
      for (std::size_t j = 0; j < d; ++j) EXPECT_NEAR(x[j], expected[j], 1e-12) << k << " " << j;
      // An exact compressor brings the replica to the state that was sent.
      for (std::size_t j = 0; j < d; ++j) EXPECT_NEAR(gossip.replica()[j], before[j], 1e-12);
    }
    EXPECT_EQ(gossip.bytes_sent(), 3 * (6 + 8 * d) * 2);
  });
}

TEST(ChocoGossip, TopKReachesConsensusAtTheAverage) {
  const int n = 6;
  const std::size_t d = 12;
  std::vector<std::vector<float>> final_x(n);
  std::vector<double> average(d, 0.0);
  for (int r = 0; r < n; ++r)
    for (std::size_t j = 0; j < d; ++j) average[j] += point(r, d)[j] / n;
  local::run(n, [&](Context& ctx) {
    ctx.set_topology(topology::ring(n));
    CompressedGossip<float> gossip(ctx, make_compressor("topk:k=3"), d, 0.3);
    const auto start = point(ctx.rank(), d);
    std::vector<float> x(start.begin(), start.end());
    for (int k = 0; k < 600; ++k) gossip.step(x.data(), k, k);
    EXPECT_EQ(gossip.bytes_sent(), 600u * (6 + 8 * 3) * 2);
    final_x[ctx.rank()] = x;
  });
  double spread = 0;
  for (int r = 0; r < n; ++r) {
    for (std::size_t j = 0; j < d; ++j)
      spread = std::max(spread, std::fabs(final_x[r][j] - average[j]));
  }
  // Starting spread is several units; W doubly stochastic keeps the average.
  EXPECT_LT(spread, 1e-4);
}

TEST(ChocoGossip, RejectsTimeVaryingTopologiesAndBadSteps) {
  EXPECT_THROW(local::run(4,
                          [&](Context& ctx) {
                            ctx.set_topology(topology::make_schedule("one-peer-exponential", 4));
                            CompressedGossip<float> gossip(ctx, make_compressor("sign"), 3, 0.5);
                            std::vector<float> x(3, 1.0f);
                            gossip.step(x.data(), 0, 0);
                          }),
               InvalidArgument);
  local::run(1, [&](Context& ctx) {
    for (double gamma : {0.0, -0.5, 1.5, std::nan("")})
      EXPECT_THROW(CompressedGossip<float>(ctx, make_compressor("sign"), 3, gamma),
                   InvalidArgument);
    EXPECT_THROW(CompressedGossip<float>(ctx, nullptr, 3, 0.5), InvalidArgument);
  });
}

TEST(EncodedExchange, CorruptedOrMismatchedNeighbourMessagesNameTheSender) {
  const int n = 3;
  std::mutex mu;
  std::vector<std::string> errors(n);
  local::run(n, [&](Context& ctx) {
    ctx.set_topology(topology::ring(n));
    const auto c = make_compressor("qsgd:s=3");
    std::vector<float> x(10, 1.0f), out(10);
    auto bytes = c->encode(x.data(), x.size(), 1);
    if (ctx.rank() == 1) bytes.pop_back();
    try {
      neighbor_allreduce_encoded(ctx, *c, bytes, x.data(), x.size(), out.data(), 0);
    } catch (const DecodeError& e) {
      std::lock_guard<std::mutex> lock(mu);
      errors[ctx.rank()] = e.what();
    }
  });
  EXPECT_NE(errors[0].find("rank 0: compressed neighbor_allreduce: message from rank 1:"),
            std::string::npos)
      << errors[0];
  EXPECT_NE(errors[0].find("(truncated)"), std::string::npos) << errors[0];
  EXPECT_NE(errors[2].find("message from rank 1"), std::string::npos) << errors[2];
  EXPECT_TRUE(errors[1].empty()) << errors[1];

  EXPECT_THROW(local::run(n,
                          [&](Context& ctx) {
                            ctx.set_topology(topology::ring(n));
                            const auto c = make_compressor("sign");
                            const std::size_t d = ctx.rank() == 2 ? 5 : 4;
                            std::vector<float> x(d, 1.0f), out(d);
                            const auto bytes = c->encode(x.data(), d);
                            neighbor_allreduce_encoded(ctx, *c, bytes, x.data(), d, out.data(), 0);
                          }),
               MismatchError);
}

}  // namespace
}  // namespace decent::compress
