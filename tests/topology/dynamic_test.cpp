// Dynamic schedules: plans, exact finite-time consensus, determinism, consistency.
#include "test_util.h"

#include <atomic>
#include <set>
#include <thread>

namespace decent::topology {
namespace {

using testing::averaging_matrix;

TEST(OnePeerExponential, ProductOfOnePeriodIsExactAverage) {
  for (int n : {2, 4, 8, 16}) {
    const OnePeerExponential s(n);
    ASSERT_EQ(s.period(), static_cast<int>(std::log2(n)));
    const Eigen::MatrixXd product = schedule_product(s, s.period());
    EXPECT_LT((product - averaging_matrix(n)).cwiseAbs().maxCoeff(), 1e-12) << "n=" << n;
    // One step short of the period is not yet the average: entries are 2/n or 0, not 1/n.
    if (n >= 4) {
      EXPECT_NEAR((schedule_product(s, s.period() - 1) - averaging_matrix(n)).cwiseAbs().maxCoeff(),
                  1.0 / n, 1e-12);
    }
    // Any window of tau consecutive steps works, not just the first.
    EXPECT_LT((schedule_product(s, s.period(), 5) - averaging_matrix(n)).cwiseAbs().maxCoeff(),
              1e-12);
  }
}

TEST(OnePeerExponential, PlansFollowTheFormula) {
  const OnePeerExponential s(12);
  EXPECT_EQ(s.period(), 4);
  for (int k = 0; k < 9; ++k) {
    const int offset = 1 << (k % 4);
    EXPECT_EQ(s.offset_at(k), offset);
    for (int i = 0; i < 12; ++i) {
      const StepPlan p = s.plan(k, i);
      EXPECT_DOUBLE_EQ(p.self_weight, 0.5);
      ASSERT_EQ(p.recv.size(), 1u);
      ASSERT_EQ(p.send.size(), 1u);
      EXPECT_EQ(p.recv[0], (WeightedPeer{(i - offset + 12) % 12, 0.5}));
      EXPECT_EQ(p.send[0], (WeightedPeer{(i + offset) % 12, 0.5}));
    }
  }
  EXPECT_NO_THROW(validate(s));
  EXPECT_NO_THROW(validate(s, 20));
  EXPECT_THROW(s.plan(0, 12), std::out_of_range);
}

TEST(OnePeerExponential, SingleNodeIsTrivial) {
  const OnePeerExponential s(1);
  EXPECT_EQ(s.period(), 1);
  const StepPlan p = s.plan(3, 0);
  EXPECT_DOUBLE_EQ(p.self_weight, 1.0);
  EXPECT_TRUE(p.recv.empty());
  EXPECT_TRUE(p.send.empty());
  EXPECT_EQ(s.graph_at(3).mixing_matrix(), Eigen::MatrixXd::Ones(1, 1));
  EXPECT_THROW(OnePeerExponential(0), TopologyError);
}

TEST(OnePeerCycle, OverExponentialGraphIsOnePeerExponential) {
  for (int n : {2, 5, 8, 12}) {
    const OnePeerCycle cycle(exponential(n));
    const OnePeerExponential one_peer(n);
    EXPECT_EQ(cycle.period(), one_peer.period());
    for (int k = 0; k < 2 * one_peer.period(); ++k)
      EXPECT_EQ(cycle.graph_at(k).mixing_matrix(), one_peer.graph_at(k).mixing_matrix())
          << "n=" << n << " step " << k;
  }
}

TEST(OnePeerCycle, StarCentreAveragesEveryLeafMessage) {
  // Every leaf has one out-neighbour (the centre) and sends to it every step; the centre sends
  // to one leaf per step, in rank order.
  const OnePeerCycle s(star(5));
  EXPECT_EQ(s.period(), 4);
  for (int k = 0; k < 8; ++k) {
    const StepPlan centre = s.plan(k, 0);
    EXPECT_EQ(centre.recv.size(), 4u);
    EXPECT_DOUBLE_EQ(centre.self_weight, 0.2);
    ASSERT_EQ(centre.send.size(), 1u);
    EXPECT_EQ(centre.send[0].rank, 1 + k % 4);
    EXPECT_DOUBLE_EQ(centre.send[0].weight, 0.5);  // the leaf averages self + centre
    const StepPlan leaf = s.plan(k, 1 + k % 4);
    EXPECT_DOUBLE_EQ(leaf.self_weight, 0.5);
    EXPECT_EQ(leaf.send, (std::vector<WeightedPeer>{{0, 0.2}}));
  }
  EXPECT_NO_THROW(validate(s));
}

TEST(OnePeerCycle, PeriodIsLcmOfOutDegrees) {
  EXPECT_EQ(OnePeerCycle(ring(6)).period(), 2);
  EXPECT_EQ(OnePeerCycle(hypercube(16)).period(), 4);
  EXPECT_EQ(OnePeerCycle(Graph(3)).period(), 1);
  EXPECT_EQ(OnePeerCycle(ring(6)).name(), "one-peer-ring");
}

TEST(OnePeerCycle, HypercubeExchangesAlongOneDimensionPerStep) {
  for (int n : {2, 4, 8, 16}) {
    const auto s = one_peer_hypercube(n);
    for (int k = 0; k < s->period(); ++k)
      for (int i = 0; i < n; ++i) {
        const StepPlan p = s->plan(k, i);
        EXPECT_EQ(p.recv, (std::vector<WeightedPeer>{{i ^ (1 << k), 0.5}}));
        EXPECT_EQ(p.send, (std::vector<WeightedPeer>{{i ^ (1 << k), 0.5}}));
      }
    EXPECT_LT((schedule_product(*s, s->period()) - averaging_matrix(n)).cwiseAbs().maxCoeff(),
              1e-12);
  }
  EXPECT_THROW(one_peer_hypercube(6), TopologyError);
}

TEST(OnePeerCycle, TorusShiftsEveryNodeTheSameWay) {
  for (GridShape shape : {GridShape{4, 4}, GridShape{3, 5}, GridShape{2, 3}, GridShape{1, 4}}) {
    const auto s = one_peer_torus(shape);
    const int n = shape.rows * shape.cols;
    for (int k = 0; k < s->period(); ++k) {
      const Graph g = s->graph_at(k);
      for (int i = 0; i < n; ++i) {
        EXPECT_EQ(g.in_degree(i), 1) << shape.rows << "x" << shape.cols << " step " << k;
        EXPECT_EQ(g.out_degree(i), 1);
      }
    }
    EXPECT_NO_THROW(validate(*s));
  }
  EXPECT_EQ(one_peer_torus(GridShape{4, 4})->period(), 4);
  EXPECT_EQ(one_peer_torus(GridShape{2, 3})->period(), 3);  // +col, +row, -col (+row = -row)
}

TEST(OnePeerCycle, ExplicitOrderMustPermuteOutNeighbours) {
  EXPECT_THROW(OnePeerCycle(ring(4), {{1, 3}, {0, 2}, {1, 3}}), TopologyError);
  EXPECT_THROW(OnePeerCycle(ring(4), {{1, 3}, {0, 2}, {1, 3}, {0, 1}}), TopologyError);
  const OnePeerCycle reversed(ring(4), {{3, 1}, {0, 2}, {1, 3}, {2, 0}});
  EXPECT_EQ(reversed.plan(0, 0).send[0].rank, 3);
}

TEST(RandomMatching, DeterministicPerStepAndAValidMatching) {
  const RandomMatching a(11, 5), b(11, 5), other_seed(11, 6);
  bool differs_across_steps = false, differs_across_seeds = false;
  for (int k = 0; k < 30; ++k) {
    const auto m = a.matching(k);
    EXPECT_EQ(m, b.matching(k));
    differs_across_steps |= m != a.matching(k + 1);
    differs_across_seeds |= m != other_seed.matching(k);
    int unmatched = 0;
    for (int i = 0; i < 11; ++i) {
      if (m[i] < 0) {
        ++unmatched;
        EXPECT_DOUBLE_EQ(a.plan(k, i).self_weight, 1.0);
        EXPECT_TRUE(a.plan(k, i).recv.empty());
        continue;
      }
      EXPECT_NE(m[i], i);
      EXPECT_EQ(m[m[i]], i);
      EXPECT_EQ(a.plan(k, i).recv, (std::vector<WeightedPeer>{{m[i], 0.5}}));
    }
    EXPECT_EQ(unmatched, 1);  // n odd
  }
  EXPECT_TRUE(differs_across_steps);
  EXPECT_TRUE(differs_across_seeds);
  EXPECT_EQ(a.period(), 0);
  EXPECT_NO_THROW(validate(a, 10));
  for (int k = 0; k < 10; ++k) EXPECT_TRUE(is_symmetric(a.graph_at(k)));
  for (int k = 0; k < 10; ++k) EXPECT_TRUE(is_doubly_stochastic(a.graph_at(k)));
}

TEST(RandomMatching, PlansAreConsistentWhenRanksAskConcurrently) {
  // Ranks of the local backend are threads sharing one schedule and asking for different steps.
  const RandomMatching s(64, 9);
  std::vector<std::vector<int>> expected;
  for (int k = 0; k < 8; ++k) expected.push_back(s.matching(k));
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 50; ++round)
        for (int rank = 0; rank < 64; ++rank) {
          const int k = (round + t) % 8;
          const StepPlan p = s.plan(k, rank);
          const int partner = p.recv.empty() ? -1 : p.recv[0].rank;
          if (partner != expected[k][rank]) ++mismatches;
        }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(HierarchicalOnePeer, EffectiveMatrixAndExactAverage) {
  // 4 machines x 3 ranks: machines mix by one-peer exponential, so 2 steps give the average.
  const HierarchicalOnePeer s(4, 3);
  EXPECT_EQ(s.size(), 12);
  EXPECT_EQ(s.period(), 2);
  EXPECT_EQ(s.machine_schedule()->size(), 4);
  const Eigen::MatrixXd w0 = s.graph_at(0).mixing_matrix();
  for (int r = 0; r < 12; ++r)
    for (int c = 0; c < 12; ++c) {
      const int mr = r / 3, mc = c / 3;
      const double expected = (mc == mr || mc == (mr + 3) % 4) ? 0.5 / 3 : 0.0;
      EXPECT_DOUBLE_EQ(w0(r, c), expected) << r << "," << c;
    }
  EXPECT_LT((schedule_product(s, 2) - averaging_matrix(12)).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_NO_THROW(validate(s));
  EXPECT_THROW(HierarchicalOnePeer(0, 3), TopologyError);
  // A single machine averages exactly every step.
  EXPECT_LT((HierarchicalOnePeer(1, 5).graph_at(0).mixing_matrix() - averaging_matrix(5))
                .cwiseAbs()
                .maxCoeff(),
            1e-15);
}

TEST(ScheduleAnalysis, OnePeriodOfOnePeerExponential) {
  const ScheduleAnalysis a = analyze(OnePeerExponential(16));
  EXPECT_EQ(a.period, 4);
  EXPECT_EQ(a.steps_analyzed, 4);
  EXPECT_NEAR(a.rho, 0.0, 1e-12);
  EXPECT_DOUBLE_EQ(a.average_in_degree, 1.0);
  EXPECT_EQ(a.max_in_degree, 1);
  EXPECT_TRUE(a.doubly_stochastic);
  EXPECT_FALSE(a.symmetric);
  EXPECT_TRUE(a.strongly_connected);
  // Not a power of two: no finite-time consensus, but rho of the product is below 1.
  const ScheduleAnalysis b = analyze(OnePeerExponential(12));
  EXPECT_GT(b.rho, 1e-3);
  EXPECT_LT(b.rho, 1.0);
  EXPECT_NEAR(b.rho_per_step, std::pow(b.rho, 1.0 / 4), 1e-12);
}

}  // namespace
}  // namespace decent::topology
