#include "cases.h"

#include "decent/topology/dynamic.h"
#include "decent/topology/generators.h"
#include "decent/topology/weights.h"

#include <gtest/gtest.h>

#include <Eigen/Core>

#include <cmath>
#include <numeric>
#include <thread>

namespace decent::testing {
namespace {

using topology::Graph;

constexpr std::size_t kCount = 7;

// Rank-dependent values with distinct entries so a wrong source or weight shows up.
double value(int rank, std::size_t k) {
  return (rank + 1.0) * (k + 1.0) + 0.5 * rank * rank;
}

std::vector<double> values(int rank, std::size_t count = kCount) {
  std::vector<double> v(count);
  for (std::size_t k = 0; k < count; ++k) v[k] = value(rank, k);
  return v;
}

// Row `rank` of W applied to every rank's values: what neighbour averaging must produce.
std::vector<double> expected_mix(const Eigen::MatrixXd& w, int rank, std::size_t count = kCount) {
  std::vector<double> out(count, 0.0);
  for (int j = 0; j < w.cols(); ++j)
    for (std::size_t k = 0; k < count; ++k) out[k] += w(rank, j) * value(j, k);
  return out;
}

template <typename T>
void expect_near_vec(const std::vector<T>& got, const std::vector<double>& want, double tol,
                     const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t k = 0; k < got.size(); ++k)
    EXPECT_NEAR(static_cast<double>(got[k]), want[k], tol * (1.0 + std::abs(want[k])))
        << what << " element " << k;
}

void check_uniform_average(Context& ctx, Graph g) {
  const std::string what = "rank " + std::to_string(ctx.rank()) + " on " + g.name();
  const Eigen::MatrixXd w = g.mixing_matrix();
  ctx.set_topology(std::move(g));
  // float64, separate output.
  auto x = values(ctx.rank());
  std::vector<double> out(kCount);
  ctx.neighbor_allreduce(x, out);
  expect_near_vec(out, expected_mix(w, ctx.rank()), 1e-13, what + " float64");
  EXPECT_EQ(x, values(ctx.rank())) << "input must be untouched";
  // float32, in place.
  std::vector<float> xf(kCount);
  for (std::size_t k = 0; k < kCount; ++k) xf[k] = static_cast<float>(value(ctx.rank(), k));
  ctx.neighbor_allreduce(xf, xf);
  expect_near_vec(xf, expected_mix(w, ctx.rank()), 1e-6, what + " float32 in place");
}

std::map<int, double> in_weights(const topology::Graph& g, int rank, double each) {
  std::map<int, double> m;
  for (int src : g.in_ranks(rank)) m[src] = each;
  return m;
}

template <typename Fn>
void expect_throws_with(Fn&& fn, const std::string& needle, const char* type) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << type << " message '" << e.what() << "' lacks '" << needle << "'";
    return;
  }
  ADD_FAILURE() << "expected " << type << " containing '" << needle << "'";
}

std::vector<CommCase> make_cases() {
  std::vector<CommCase> cases;
  auto add = [&](std::string name, std::function<void(Context&)> body, int min_size = 1) {
    cases.push_back({std::move(name), std::move(body), min_size, false, nullptr});
  };

  // ---- uniform neighbour averaging on several graphs ----
  add("UniformExponential",
      [](Context& c) { check_uniform_average(c, topology::exponential(c.size())); });
  add("UniformRing", [](Context& c) { check_uniform_average(c, topology::ring(c.size())); });
  add("UniformStar",
      [](Context& c) { check_uniform_average(c, topology::star(c.size(), c.size() / 2)); });
  add("UniformGrid", [](Context& c) { check_uniform_average(c, topology::grid(c.size())); });
  add("MetropolisTorus", [](Context& c) {
    check_uniform_average(c, topology::torus(c.size(), topology::WeightRule::kMetropolisHastings));
  });
  add("DefaultTopologyIsExponential", [](Context& c) {
    auto x = values(c.rank());
    std::vector<double> out(kCount);
    c.neighbor_allreduce(x, out);
    expect_near_vec(out, expected_mix(topology::exponential(c.size()).mixing_matrix(), c.rank()),
                    1e-13, "default topology");
  });

  // ---- per-call weights ----
  add("WeightedSelfAndSources", [](Context& c) {
    Graph g = topology::ring(c.size());
    c.set_topology(g);
    const int deg = g.in_degree(c.rank());
    NeighborAllreduceOptions o;
    o.self_weight = 0.25;
    o.src_weights = in_weights(g, c.rank(), deg ? 0.75 / deg : 0.0);
    auto x = values(c.rank());
    std::vector<double> out(kCount), want(kCount);
    c.neighbor_allreduce(x, out, o);
    for (std::size_t k = 0; k < kCount; ++k) {
      want[k] = 0.25 * value(c.rank(), k);
      for (int src : g.in_ranks(c.rank())) want[k] += 0.75 / deg * value(src, k);
    }
    expect_near_vec(out, want, 1e-13, "weighted");
  });
  add("NeighborSum", [](Context& c) {
    Graph g = topology::exponential(c.size());
    c.set_topology(g);
    NeighborAllreduceOptions o;
    o.self_weight = 1.0;
    o.src_weights = in_weights(g, c.rank(), 1.0);
    auto x = values(c.rank());
    c.neighbor_allreduce(x, x, o);
    std::vector<double> want(kCount);
    for (std::size_t k = 0; k < kCount; ++k) {
      want[k] = value(c.rank(), k);
      for (int src : g.in_ranks(c.rank())) want[k] += value(src, k);
    }
    expect_near_vec(x, want, 1e-13, "neighbour sum");
  });
  add(
      "DynamicMove",
      [](Context& c) {
        // Self weight 0, receive only from rank-1, send only to rank+1: every value moves one hop.
        const int n = c.size();
        NeighborAllreduceOptions o;
        o.self_weight = 0.0;
        o.src_weights = std::map<int, double>{{(c.rank() - 1 + n) % n, 1.0}};
        o.dst_weights = std::map<int, double>{{(c.rank() + 1) % n, 1.0}};
        auto x = values(c.rank());
        c.neighbor_allreduce(x, x, o);
        expect_near_vec(
            x, [&] { return values((c.rank() - 1 + n) % n); }(), 0.0, "move");
      },
      2);
  add(
      "DynamicDestinationWeights",
      [](Context& c) {
        // Sender-side scaling (push-sum style): each rank sends 0.5 x to rank+1 and keeps 0.5 x.
        const int n = c.size();
        NeighborAllreduceOptions o;
        o.self_weight = 0.5;
        o.src_weights = std::map<int, double>{{(c.rank() - 1 + n) % n, 1.0}};
        o.dst_weights = std::map<int, double>{{(c.rank() + 1) % n, 0.5}};
        auto x = values(c.rank());
        c.neighbor_allreduce(x, x, o);
        std::vector<double> want(kCount);
        for (std::size_t k = 0; k < kCount; ++k)
          want[k] = 0.5 * value(c.rank(), k) + 0.5 * value((c.rank() - 1 + n) % n, k);
        expect_near_vec(x, want, 1e-13, "push");
      },
      2);

  // ---- dynamic schedules ----
  cases.push_back({"OnePeerExponentialExactAverage",
                   [](Context& c) {
                     auto schedule = std::make_shared<topology::OnePeerExponential>(c.size());
                     c.set_topology(schedule);
                     c.set_step(0);
                     double x = c.rank();
                     for (int k = 0; k < schedule->period(); ++k)
                       c.neighbor_allreduce(Buffer(&x, 1), Buffer(&x, 1));
                     EXPECT_NEAR(x, (c.size() - 1) / 2.0, 1e-12) << "rank " << c.rank();
                     EXPECT_EQ(c.step(), schedule->period());
                   },
                   1, true, nullptr});
  add("OnePeerExponentialPreservesMean", [](Context& c) {
    c.set_topology(std::make_shared<topology::OnePeerExponential>(c.size()));
    auto x = values(c.rank());
    for (int k = 0; k < 5; ++k) c.neighbor_allreduce(x, x);
    std::vector<double> mean = x;
    c.allreduce(mean, ReduceOp::kAverage);
    std::vector<double> want(kCount, 0.0);
    for (int r = 0; r < c.size(); ++r)
      for (std::size_t k = 0; k < kCount; ++k) want[k] += value(r, k) / c.size();
    expect_near_vec(mean, want, 1e-12, "mean after one-peer steps");
  });
  add("DoublyStochasticPreservesMeanAndConverges", [](Context& c) {
    c.set_topology(
        topology::random_graph(c.size(), 0.5, 7, topology::WeightRule::kMetropolisHastings));
    double x = c.rank();
    for (int k = 0; k < 200; ++k) c.neighbor_allreduce(Buffer(&x, 1), Buffer(&x, 1));
    double mean = x;
    c.allreduce(Buffer(&mean, 1), ReduceOp::kAverage);
    EXPECT_NEAR(mean, (c.size() - 1) / 2.0, 1e-12);
    EXPECT_NEAR(x, (c.size() - 1) / 2.0, 1e-6);
  });
  add("AverageConsensusExponential", [](Context& c) {
    c.set_topology(topology::exponential(c.size()));
    double x = c.rank();
    for (int k = 0; k < 60; ++k) c.neighbor_allreduce(Buffer(&x, 1), Buffer(&x, 1));
    EXPECT_NEAR(x, (c.size() - 1) / 2.0, 1e-6);
  });

  // ---- dtypes ----
  add("HalfPrecisionAveraging", [](Context& c) {
    Graph g = topology::ring(c.size());
    const Eigen::MatrixXd w = g.mixing_matrix();
    c.set_topology(g);
    std::vector<Eigen::half> h(kCount);
    std::vector<Eigen::bfloat16> b(kCount);
    for (std::size_t k = 0; k < kCount; ++k) {
      h[k] = Eigen::half(static_cast<float>(value(c.rank(), k)));
      b[k] = Eigen::bfloat16(static_cast<float>(value(c.rank(), k)));
    }
    c.neighbor_allreduce(Buffer(h.data(), kCount, DType::kFloat16),
                         Buffer(h.data(), kCount, DType::kFloat16));
    c.neighbor_allreduce(Buffer(b.data(), kCount, DType::kBFloat16),
                         Buffer(b.data(), kCount, DType::kBFloat16));
    const auto want = expected_mix(w, c.rank());
    for (std::size_t k = 0; k < kCount; ++k) {
      EXPECT_NEAR(static_cast<float>(h[k]), want[k], 2e-3 * std::abs(want[k]) + 1e-3);
      EXPECT_NEAR(static_cast<float>(b[k]), want[k], 1.6e-2 * std::abs(want[k]) + 1e-2);
    }
  });

  // ---- fusion and non-blocking ----
  add("FusedEqualsUnfused", [](Context& c) {
    c.set_topology(topology::exponential(c.size()));
    std::vector<std::vector<float>> fused(50), single(50);
    for (int b = 0; b < 50; ++b) {
      fused[b].resize(1 + (b * 37) % 200);
      for (std::size_t k = 0; k < fused[b].size(); ++k)
        fused[b][k] = static_cast<float>(std::sin(0.1 * (k + 1) * (b + 1) + c.rank()));
      single[b] = fused[b];
    }
    std::vector<Buffer> bufs;
    for (auto& f : fused) bufs.emplace_back(f);
    c.neighbor_allreduce(bufs);
    for (auto& s : single) c.neighbor_allreduce(s, s);
    for (int b = 0; b < 50; ++b) EXPECT_EQ(fused[b], single[b]) << "buffer " << b;
    // Fused allreduce as well.
    std::vector<Buffer> again;
    for (auto& f : fused) again.emplace_back(f);
    c.allreduce(again, ReduceOp::kAverage);
    for (auto& s : single) c.allreduce(s, ReduceOp::kAverage);
    for (int b = 0; b < 50; ++b) EXPECT_EQ(fused[b], single[b]) << "allreduce buffer " << b;
  });
  add("NonBlockingOverlapsComputation", [](Context& c) {
    Graph g = topology::exponential(c.size());
    const Eigen::MatrixXd w = g.mixing_matrix();
    c.set_topology(g);
    const std::size_t n = 1 << 20;
    std::vector<double> x(n), out(n);
    for (std::size_t k = 0; k < n; ++k) x[k] = c.rank() + 1e-6 * k;
    Handle h = c.neighbor_allreduce_async(x, out);
    // Computation that does not touch x/out while the exchange runs.
    double acc = 0;
    int polls = 0;
    for (int i = 0; i < 200000; ++i) {
      acc += std::sqrt(static_cast<double>(i));
      if (i % 20000 == 0 && !h.poll()) ++polls;
    }
    h.wait();
    EXPECT_GT(acc, 0);
    for (std::size_t k : {std::size_t{0}, n / 2, n - 1}) {
      double want = 0;
      for (int j = 0; j < c.size(); ++j) want += w(c.rank(), j) * (j + 1e-6 * k);
      EXPECT_NEAR(out[k], want, 1e-9);
    }
    // Several operations in flight complete in order.
    std::vector<double> a = values(c.rank()), b = values(c.rank());
    Handle ha = c.neighbor_allreduce_async(a, a);
    Handle hb = c.allreduce_async(b, ReduceOp::kSum);
    hb.wait();
    ha.wait();
    expect_near_vec(a, expected_mix(w, c.rank()), 1e-13, "async neighbour");
    std::vector<double> sum(kCount, 0);
    for (int r = 0; r < c.size(); ++r)
      for (std::size_t k = 0; k < kCount; ++k) sum[k] += value(r, k);
    expect_near_vec(b, sum, 1e-13, "async allreduce");
  });

  // ---- collectives ----
  add("AllreduceOps", [](Context& c) {
    const int n = c.size();
    std::vector<double> d = values(c.rank());
    std::vector<float> f(kCount);
    std::vector<std::int64_t> i(kCount);
    std::vector<Eigen::half> h(kCount);
    std::vector<Eigen::bfloat16> b(kCount);
    for (std::size_t k = 0; k < kCount; ++k) {
      f[k] = static_cast<float>(c.rank() + k);
      i[k] = c.rank() * 10 + static_cast<std::int64_t>(k);
      h[k] = Eigen::half(static_cast<float>(c.rank() + k));
      b[k] = Eigen::bfloat16(static_cast<float>(c.rank() + k));
    }
    c.allreduce(d, ReduceOp::kAverage);
    c.allreduce(f, ReduceOp::kSum);
    c.allreduce(i, ReduceOp::kMax);
    c.allreduce(Buffer(h.data(), kCount, DType::kFloat16), ReduceOp::kSum);
    c.allreduce(Buffer(b.data(), kCount, DType::kBFloat16), ReduceOp::kMin);
    for (std::size_t k = 0; k < kCount; ++k) {
      double mean = 0;
      for (int r = 0; r < n; ++r) mean += value(r, k) / n;
      EXPECT_NEAR(d[k], mean, 1e-12);
      EXPECT_EQ(f[k], static_cast<float>(n * (n - 1) / 2 + n * k));
      EXPECT_EQ(i[k], (n - 1) * 10 + static_cast<std::int64_t>(k));
      EXPECT_EQ(static_cast<float>(h[k]), static_cast<float>(n * (n - 1) / 2 + n * k));
      EXPECT_EQ(static_cast<float>(b[k]), static_cast<float>(k));
    }
  });
  add("BroadcastFromEveryRoot", [](Context& c) {
    for (int root = 0; root < c.size(); ++root) {
      std::vector<double> x = values(c.rank());
      c.broadcast(x, root);
      EXPECT_EQ(x, values(root)) << "root " << root;
    }
  });
  add("AllgatherVariableCounts", [](Context& c) {
    std::vector<float> mine(c.rank() + 1, static_cast<float>(c.rank()));
    GatherResult g = c.allgather(mine);
    ASSERT_EQ(g.counts.size(), static_cast<std::size_t>(c.size()));
    auto data = g.as<float>();
    std::size_t offset = 0;
    for (int r = 0; r < c.size(); ++r) {
      EXPECT_EQ(g.ranks[r], r);
      EXPECT_EQ(g.counts[r], static_cast<std::size_t>(r + 1));
      for (int k = 0; k <= r; ++k) EXPECT_EQ(data[offset + k], static_cast<float>(r));
      offset += r + 1;
    }
    EXPECT_EQ(offset, data.size());
  });
  add("NeighborAllgatherOrderedBySource", [](Context& c) {
    Graph g = topology::exponential(c.size());
    c.set_topology(g);
    std::vector<double> mine(c.rank() + 2, c.rank() * 1.5);
    GatherResult r = c.neighbor_allgather(mine);
    EXPECT_EQ(r.ranks, g.in_ranks(c.rank()));
    auto data = r.as<double>();
    std::size_t offset = 0;
    for (std::size_t i = 0; i < r.ranks.size(); ++i) {
      EXPECT_EQ(r.counts[i], static_cast<std::size_t>(r.ranks[i] + 2));
      for (std::size_t k = 0; k < r.counts[i]; ++k) EXPECT_EQ(data[offset + k], r.ranks[i] * 1.5);
      offset += r.counts[i];
    }
  });
  add("BarrierOrdersSideEffects", [](Context& c) {
    for (int i = 0; i < 5; ++i) c.barrier();
    c.barrier_async().wait();
    SUCCEED();
  });
  add(
      "PairGossip",
      [](Context& c) {
        const int peer = c.rank() ^ 1;
        auto x = values(c.rank());
        if (peer < c.size()) {
          c.pair_gossip(x, peer, 0.5);
          std::vector<double> want(kCount);
          for (std::size_t k = 0; k < kCount; ++k)
            want[k] = 0.5 * (value(c.rank(), k) + value(peer, k));
          expect_near_vec(x, want, 1e-13, "pair gossip");
          c.pair_gossip(x, peer, 0.5);  // already equal: stays
          expect_near_vec(x, want, 1e-13, "pair gossip twice");
        }
        c.barrier();
      },
      2);

  // ---- hierarchical ----
  cases.push_back({"HierarchicalTwoRanksPerMachine",
                   [](Context& c) {
                     const int n = c.size(), k = 2;
                     const int machines = (n + k - 1) / k;
                     EXPECT_EQ(c.machine_size(), machines);
                     EXPECT_EQ(c.machine_rank(), c.rank() / k);
                     EXPECT_EQ(c.local_rank(), c.rank() % k);
                     auto machine_graph = topology::exponential(machines);
                     c.set_machine_topology(
                         std::make_shared<topology::StaticSchedule>(machine_graph));
                     auto x = values(c.rank());
                     std::vector<double> out(kCount);
                     c.hierarchical_neighbor_allreduce(x, out);
                     // Machine means, then the machine graph's mixing.
                     const Eigen::MatrixXd w = machine_graph.mixing_matrix();
                     std::vector<double> want(kCount, 0.0);
                     for (int m = 0; m < machines; ++m) {
                       const int first = m * k, last = std::min(n, first + k);
                       for (std::size_t e = 0; e < kCount; ++e) {
                         double mean = 0;
                         for (int r = first; r < last; ++r) mean += value(r, e) / (last - first);
                         want[e] += w(c.machine_rank(), m) * mean;
                       }
                     }
                     expect_near_vec(out, want, 1e-12, "hierarchical");
                   },
                   1, false, [](ContextOptions& o) { o.ranks_per_machine = 2; }});

  add("SizeAndRanks", [](Context& c) {
    EXPECT_GE(c.rank(), 0);
    EXPECT_LT(c.rank(), c.size());
    std::vector<int> mine = {c.rank()};
    auto all = c.allgather(ConstBuffer(mine.data(), 1, DType::kInt32)).as<int>();
    for (int r = 0; r < c.size(); ++r) EXPECT_EQ(all[r], r);
  });
  add("TimelineAndStatsCount", [](Context& c) {
    const auto before = c.stats();
    auto x = values(c.rank());
    c.neighbor_allreduce(x, x);
    const auto after = c.stats();
    EXPECT_GE(after.operations, before.operations + 1);
    if (c.size() > 1) {
      EXPECT_GE(after.bytes_sent - before.bytes_sent,
                static_cast<std::uint64_t>(kCount * sizeof(double) *
                                           c.topology()->plan(0, c.rank()).send.size()));
    }
  });

  // A checked payload up to 16 KiB and its 24-byte header go as one message, a larger payload
  // and its header as two (the header counted in header_messages); bytes include the headers.
  add("StatsCountInlineAndSeparateHeaders", [](Context& c) {
    const std::uint64_t sends = c.topology()->plan(0, c.rank()).send.size();
    for (const std::size_t count : {std::size_t{16}, std::size_t{2048}, std::size_t{2049}}) {
      SCOPED_TRACE("count " + std::to_string(count));
      std::vector<double> x(count, c.rank());
      const auto before = c.stats();
      c.neighbor_allreduce(x, x);
      const auto after = c.stats();
      const bool separate = count * sizeof(double) > 16 * 1024;
      EXPECT_EQ(after.messages_sent - before.messages_sent, sends * (separate ? 2 : 1));
      EXPECT_EQ(after.header_messages - before.header_messages, separate ? sends : 0);
      EXPECT_EQ(after.bytes_sent - before.bytes_sent, sends * (count * sizeof(double) + 24));
    }
  });
  // ---- errors: raised, named, and never a hang ----
  cases.push_back(
      {"ErrorCountMismatchNamesRank",
       [](Context& c) {
         Graph g = topology::ring(c.size());
         c.set_topology(g);
         std::vector<double> x(c.rank() == 0 ? kCount + 1 : kCount, 1.0);
         const bool adjacent = g.has_edge(0, c.rank()) || c.rank() == 0;
         try {
           c.neighbor_allreduce(x, x);
           EXPECT_FALSE(adjacent) << "rank " << c.rank() << " should have seen the mismatch";
         } catch (const MismatchError& e) {
           EXPECT_TRUE(adjacent);
           EXPECT_NE(std::string(e.what()).find("element count mismatch"), std::string::npos)
               << e.what();
           EXPECT_NE(std::string(e.what()).find("rank"), std::string::npos) << e.what();
         }
       },
       2, false, [](ContextOptions& o) { o.timeout = std::chrono::milliseconds(1500); }});
  cases.push_back(
      {"ErrorDtypeMismatch",
       [](Context& c) {
         Graph g = topology::ring(c.size());
         c.set_topology(g);
         std::vector<double> d(kCount, 1.0);
         std::vector<float> f(kCount * 2, 1.0f);  // same bytes, other dtype
         const bool adjacent = g.has_edge(0, c.rank()) || c.rank() == 0;
         try {
           if (c.rank() == 0)
             c.neighbor_allreduce(d, d);
           else
             c.neighbor_allreduce(f, f);
           EXPECT_FALSE(adjacent);
         } catch (const MismatchError& e) {
           EXPECT_TRUE(adjacent);
           EXPECT_NE(std::string(e.what()).find("dtype mismatch"), std::string::npos) << e.what();
         }
       },
       2, false, [](ContextOptions& o) { o.timeout = std::chrono::milliseconds(1500); }});
  // Counts on either side of the size up to which a checked neighbour message carries its header
  // inline (16 KiB): rank 0 sends 8 elements in one message, its neighbours 4096 elements as a
  // header and a payload. Every rank next to rank 0 reports the mismatch at once (never a
  // timeout), with and without consistency checks (then only the sizes tell). The others either
  // finish or time out on a send to a rank that gave up (a 32 KiB message needs its receiver).
  for (const bool checked : {true, false}) {
    cases.push_back(
        {std::string("ErrorCountMismatchAcrossInlineHeaderSize") + (checked ? "" : "NoCheck"),
         [checked](Context& c) {
           Graph g = topology::ring(c.size());
           c.set_topology(g);
           std::vector<double> x(c.rank() == 0 ? 8 : 4096, 1.0);
           const bool adjacent = g.has_edge(0, c.rank()) || c.rank() == 0;
           const auto t0 = std::chrono::steady_clock::now();
           try {
             c.neighbor_allreduce(x, x);
             EXPECT_FALSE(adjacent) << "rank " << c.rank() << " should have seen the mismatch";
           } catch (const MismatchError& e) {
             EXPECT_TRUE(adjacent) << e.what();
             const std::string what = e.what();
             EXPECT_NE(what.find("element count mismatch"), std::string::npos) << what;
             EXPECT_NE(what.find("rank " + std::to_string(c.rank()) + ":"), std::string::npos)
                 << what;
             // With the check, a neighbour of rank 0 reads rank 0's header: it names the counts.
             if (checked && c.rank() != 0)
               EXPECT_NE(what.find("rank 0 sent 8 elements, this rank expects 4096"),
                         std::string::npos)
                   << what;
             EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1500));
           } catch (const TimeoutError& e) {
             EXPECT_FALSE(adjacent) << e.what();
             EXPECT_NE(std::string(e.what()).find("sends to ranks"), std::string::npos) << e.what();
           }
         },
         2, false,
         [checked](ContextOptions& o) {
           o.timeout = std::chrono::milliseconds(2000);
           o.check_consistency = checked;
         }});
  }
  cases.push_back({"ErrorAllreduceMismatchOnEveryRank",
                   [](Context& c) {
                     std::vector<float> x(c.rank() == c.size() - 1 ? 3 : 4, 1.0f);
                     expect_throws_with([&] { c.allreduce(x); }, "ranks disagree", "MismatchError");
                     expect_throws_with([&] { c.barrier(); }, "failed earlier", "CommError");
                   },
                   2, false,
                   [](ContextOptions& o) { o.timeout = std::chrono::milliseconds(3000); }});
  cases.push_back(
      {"ErrorTimeoutNamesMissingRank",
       [](Context& c) {
         Graph g = topology::ring(c.size());
         c.set_topology(g);
         if (c.rank() == 0) {
           // Rank 0 never joins; stay alive past the others' timeout so they time out (not "left").
           std::this_thread::sleep_for(std::chrono::milliseconds(1500));
           return;
         }
         auto x = values(c.rank());
         if (g.has_edge(0, c.rank())) {
           const auto t0 = std::chrono::steady_clock::now();
           expect_throws_with([&] { c.neighbor_allreduce(x, x); }, "ranks [0]", "TimeoutError");
           EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
         } else {
           c.neighbor_allreduce(x, x);  // its neighbours all take part
         }
       },
       2, false, [](ContextOptions& o) { o.timeout = std::chrono::milliseconds(500); }});
  cases.push_back({"ErrorSendReceiveSetsDoNotMatch",
                   [](Context& c) {
                     // Rank 0 sends to rank 1 out of turn; rank 1 expects nothing, then sees the
                     // stray message on its next operation and reports rank 0.
                     c.set_topology(topology::fully_connected(c.size()));
                     auto x = values(c.rank());
                     NeighborAllreduceOptions o;
                     o.self_weight = 1.0;
                     o.src_weights = std::map<int, double>{};
                     o.dst_weights = std::map<int, double>{};
                     if (c.rank() == 0) (*o.dst_weights)[1] = 1.0;
                     c.neighbor_allreduce(x, x, o);
                     if (c.rank() == 1) {
                       expect_throws_with([&] { c.neighbor_allreduce(x, x); },
                                          "rank 0 sent a message", "MismatchError");
                     } else {
                       try {
                         c.neighbor_allreduce(x, x);
                       } catch (const Error&) {
                         // Ranks that wait on rank 1 may fail too; what matters is rank 1's
                         // diagnosis.
                       }
                     }
                   },
                   2, false,
                   [](ContextOptions& o) { o.timeout = std::chrono::milliseconds(1500); }});
  add("ErrorInvalidArgumentsAreLocalAndRecoverable", [](Context& c) {
    const int n = c.size();
    auto x = values(c.rank());
    NeighborAllreduceOptions bad_rank;
    bad_rank.self_weight = 0.5;
    bad_rank.src_weights = std::map<int, double>{{n + 3, 0.5}};
    expect_throws_with([&] { c.neighbor_allreduce(x, x, bad_rank); }, "out of range",
                       "InvalidArgument");
    NeighborAllreduceOptions nan_weight;
    nan_weight.self_weight = std::nan("");
    expect_throws_with([&] { c.neighbor_allreduce(x, x, nan_weight); }, "not finite",
                       "InvalidArgument");
    if (n >= 4) {
      c.set_topology(topology::ring(n));
      NeighborAllreduceOptions not_neighbour;
      not_neighbour.self_weight = 0.5;
      not_neighbour.src_weights = std::map<int, double>{{(c.rank() + 2) % n, 0.5}};
      expect_throws_with([&] { c.neighbor_allreduce(x, x, not_neighbour); }, "not an in-neighbour",
                         "InvalidArgument");
    }
    expect_throws_with([&] { c.broadcast(x, n); }, "out of range", "InvalidArgument");
    std::vector<int> ints(3, 1);
    expect_throws_with([&] { c.neighbor_allreduce(ints, ints); }, "floating dtype",
                       "InvalidArgument");
    // The context still works afterwards.
    c.barrier();
    double v = 1.0;
    c.allreduce(Buffer(&v, 1), ReduceOp::kSum);
    EXPECT_EQ(v, static_cast<double>(n));
  });
  return cases;
}

}  // namespace

const std::vector<CommCase>& comm_cases() {
  static const std::vector<CommCase> cases = make_cases();
  return cases;
}

}  // namespace decent::testing
