// Average consensus: x_i = i under repeated W converges to (n-1)/2 for every connected
// topology whose weights are doubly stochastic.
#include "test_util.h"

namespace decent::topology {
namespace {

using testing::run_consensus;

void expect_average(const Schedule& s, int iterations) {
  const int n = s.size();
  const Eigen::VectorXd x = run_consensus(s, iterations);
  for (int i = 0; i < n; ++i) EXPECT_NEAR(x(i), (n - 1) / 2.0, 1e-8) << s.name() << " node " << i;
}

TEST(Consensus, EveryConnectedStaticGeneratorReachesTheAverage) {
  for (int n : {2, 3, 7, 10, 12}) {
    // Regular graphs are doubly stochastic with uniform weights; irregular ones (star, grid,
    // random) need Metropolis-Hastings weights for the limit to be the average.
    std::vector<Graph> graphs = {
        ring(n),
        directed_ring(n),
        torus(n),
        exponential(n),
        exponential(n, 3),
        symmetric_exponential(n),
        fully_connected(n),
        star(n, 0, WeightRule::kMetropolisHastings),
        grid(n, WeightRule::kMetropolisHastings),
        random_graph(n, 0.5, 3, WeightRule::kMetropolisHastings),
        grid(n, WeightRule::kMaxDegree),
        make_graph("hierarchical", n),
    };
    if ((n & (n - 1)) == 0) graphs.push_back(hypercube(n));
    for (const Graph& g : graphs) {
      SCOPED_TRACE(g.name() + " n=" + std::to_string(n));
      ASSERT_TRUE(is_doubly_stochastic(g));
      expect_average(StaticSchedule(g), 3000);
    }
  }
  // n = 10 from ALGORITHMS.md: every node ends at 4.5.
  const Eigen::VectorXd x = run_consensus(StaticSchedule(exponential(10)), 500);
  EXPECT_NEAR(x.minCoeff(), 4.5, 1e-9);
  EXPECT_NEAR(x.maxCoeff(), 4.5, 1e-9);
}

TEST(Consensus, DynamicSchedulesReachTheAverage) {
  for (int n : {2, 5, 8, 10}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    expect_average(OnePeerExponential(n), 400);
    expect_average(OnePeerCycle(symmetric_exponential(n)), 400);
    expect_average(OnePeerCycle(ring(n)), 3000);
    expect_average(RandomMatching(n, 1), 600);
  }
  expect_average(HierarchicalOnePeer(3, 4), 200);
  // Power of two: the exact average after exactly log2 n steps.
  const Eigen::VectorXd x = run_consensus(OnePeerExponential(16), 4);
  for (int i = 0; i < 16; ++i) EXPECT_NEAR(x(i), 7.5, 1e-12);
}

TEST(Consensus, RowStochasticButNotDoublyStochasticMissesTheAverage) {
  // Uniform weights on a star: nodes agree, but on a weighted average that is not (n-1)/2.
  const Eigen::VectorXd x = run_consensus(StaticSchedule(star(6)), 2000);
  EXPECT_NEAR(x.maxCoeff() - x.minCoeff(), 0.0, 1e-9);
  EXPECT_GT(std::abs(x(0) - 2.5), 0.1);
}

}  // namespace
}  // namespace decent::topology
