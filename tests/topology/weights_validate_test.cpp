// Weight rules and validation messages.
#include "test_util.h"

#include <cmath>
#include <limits>
#include <string>

namespace decent::topology {
namespace {

// Runs `f`, expects ValidationError whose message contains `text`.
template <typename F>
void expect_validation_error(F f, const std::string& text) {
  try {
    f();
    ADD_FAILURE() << "expected ValidationError containing: " << text;
  } catch (const ValidationError& e) {
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos)
        << "message: " << e.what() << "\nexpected to contain: " << text;
    EXPECT_FALSE(e.report().ok());
  }
}

// Path 0 - 1 - 2.
Graph path3() {
  Graph g(3, "path");
  for (auto [a, b] : {std::pair{0, 1}, {1, 2}}) {
    g.set_edge(a, b, 1.0);
    g.set_edge(b, a, 1.0);
  }
  return g;
}

TEST(Weights, UniformMetropolisMaxDegreeOnAPath) {
  const Eigen::MatrixXd uniform = apply_weights(path3(), WeightRule::kUniform).mixing_matrix();
  Eigen::MatrixXd expected(3, 3);
  expected << 0.5, 0.5, 0, 1 / 3.0, 1 / 3.0, 1 / 3.0, 0, 0.5, 0.5;
  EXPECT_LT((uniform - expected).cwiseAbs().maxCoeff(), 1e-15);

  // d = (1, 2, 1): w_01 = 1/(1 + max(1, 2)) = 1/3, w_00 = 2/3, w_11 = 1/3.
  const Eigen::MatrixXd mh =
      apply_weights(path3(), WeightRule::kMetropolisHastings).mixing_matrix();
  expected << 2 / 3.0, 1 / 3.0, 0, 1 / 3.0, 1 / 3.0, 1 / 3.0, 0, 1 / 3.0, 2 / 3.0;
  EXPECT_LT((mh - expected).cwiseAbs().maxCoeff(), 1e-15);

  // Max degree 2: every edge 1/3, self 1 - d_i/3.
  const Eigen::MatrixXd md = apply_weights(path3(), WeightRule::kMaxDegree).mixing_matrix();
  EXPECT_LT((md - expected).cwiseAbs().maxCoeff(), 1e-15);  // equal to MH on this path

  Graph given = path3();
  given.set_edge(0, 1, 0.25);
  EXPECT_EQ(apply_weights(given, WeightRule::kGiven).weight(0, 1), 0.25);
}

TEST(Weights, MetropolisHastingsIsSymmetricAndDoublyStochasticOnRandomGraphs) {
  for (int n : {5, 10, 20}) {
    for (double p : {0.3, 0.5}) {
      for (std::uint64_t seed = 0; seed < 10; ++seed) {
        const Graph g = random_graph(n, p, seed, WeightRule::kMetropolisHastings);
        EXPECT_TRUE(is_symmetric(g, 1e-15)) << n << " " << p << " " << seed;
        EXPECT_TRUE(is_doubly_stochastic(g, 1e-12)) << n << " " << p << " " << seed;
        EXPECT_LT(rho(g), 1.0);
        for (int i = 0; i < n; ++i) EXPECT_GE(g.self_weight(i), 0.0);
      }
    }
  }
}

TEST(Weights, MetropolisHastingsRefusesDirectedGraphs) {
  try {
    apply_weights(exponential(8), WeightRule::kMetropolisHastings);
    ADD_FAILURE() << "directed graph accepted";
  } catch (const TopologyError& e) {
    EXPECT_NE(std::string(e.what()).find("undirected"), std::string::npos) << e.what();
  }
  EXPECT_THROW(directed_ring(4, WeightRule::kMetropolisHastings), TopologyError);
}

TEST(Weights, ParseRule) {
  EXPECT_EQ(parse_weight_rule("uniform"), WeightRule::kUniform);
  EXPECT_EQ(parse_weight_rule("Metropolis"), WeightRule::kMetropolisHastings);
  EXPECT_EQ(parse_weight_rule("metropolis_hastings"), WeightRule::kMetropolisHastings);
  EXPECT_EQ(parse_weight_rule("max-degree"), WeightRule::kMaxDegree);
  EXPECT_EQ(parse_weight_rule(to_string(WeightRule::kGiven)), WeightRule::kGiven);
  EXPECT_THROW(parse_weight_rule("average"), TopologyError);
}

TEST(Validate, AcceptsGoodGraphs) {
  const ValidationReport r = validate(exponential(8));
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(r.warnings.empty());
  // Row- but not doubly stochastic: a warning by default.
  const ValidationReport star_report = validate(star(5));
  EXPECT_TRUE(star_report.ok());
  ASSERT_FALSE(star_report.warnings.empty());
  EXPECT_NE(star_report.warnings[0].find("node 0: its messages carry total weight"),
            std::string::npos)
      << star_report.warnings[0];
}

TEST(Validate, NegativeWeightNamesTheNodes) {
  Graph g = ring(4);
  g.set_edge(1, 2, -0.1);
  expect_validation_error([&] { validate(g); },
                          "node 2: weight of the message from node 1 is negative (-0.1)");
}

TEST(Validate, NaNWeights) {
  Graph g = ring(4);
  g.set_edge(3, 0, std::numeric_limits<double>::quiet_NaN());
  expect_validation_error([&] { validate(g); }, "node 0: weight of the message from node 3 is NaN");
  Graph h = ring(4);
  h.set_self_weight(2, std::numeric_limits<double>::quiet_NaN());
  expect_validation_error([&] { validate(h); }, "node 2: self weight is NaN");
  Graph inf = ring(4);
  inf.set_self_weight(1, std::numeric_limits<double>::infinity());
  expect_validation_error([&] { validate(inf); }, "node 1: self weight is infinite");
}

TEST(Validate, RowsNotSummingToOne) {
  Graph g = ring(5);
  g.set_self_weight(3, 0.5);
  expect_validation_error([&] { validate(g); }, "node 3: weights sum to 1.1666");
  // Within tolerance passes, beyond it fails.
  Graph h = ring(5);
  h.set_self_weight(1, 1.0 / 3 + 1e-11);
  EXPECT_NO_THROW(validate(h));
  ValidationOptions strict;
  strict.tolerance = 1e-13;
  expect_validation_error([&] { validate(h, strict); }, "node 1: weights sum to");
}

TEST(Validate, DoublyStochasticWarningOrError) {
  ValidationOptions require;
  require.doubly_stochastic = Check::kRequire;
  expect_validation_error([&] { validate(star(5), require); }, "so W is not doubly stochastic");
  ValidationOptions ignore;
  ignore.doubly_stochastic = Check::kIgnore;
  EXPECT_TRUE(validate(star(5), ignore).warnings.empty());
  EXPECT_NO_THROW(validate(star(5, 0, WeightRule::kMetropolisHastings), require));
}

TEST(Validate, DisconnectedGraphs) {
  expect_validation_error([] { validate(Graph(3)); },
                          "is not strongly connected: messages from node 0 never reach node 1");
  // 1 -> 0 only: node 0 reaches nobody.
  Graph g(2, "one-way");
  g.set_edge(1, 0, 0.5);
  g.set_self_weight(0, 0.5);
  expect_validation_error([&] { validate(g); }, "messages from node 0 never reach node 1");
  // 0 -> 1 only: node 1 is reached, but its messages never reach node 0.
  Graph h(2, "one-way");
  h.set_edge(0, 1, 0.5);
  h.set_self_weight(1, 0.5);
  expect_validation_error([&] { validate(h); }, "messages from node 1 never reach node 0");
  ValidationOptions warn;
  warn.connected = Check::kWarn;
  EXPECT_EQ(validate(Graph(3), warn).warnings.size(), 1u);
}

TEST(Validate, PlanRankOutOfRange) {
  StepPlan p;
  p.self_weight = 0.5;
  p.recv = {{7, 0.5}};
  p.send = {{-1, 0.5}};
  const ValidationReport r = check_plan(p, 2, 4, 3);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0], "rank 2 at step 3: receives from rank 7, which is out of range [0, 4)");
  EXPECT_EQ(r.errors[1], "rank 2 at step 3: sends to rank -1, which is out of range [0, 4)");
  StepPlan self;
  self.self_weight = 0.5;
  self.recv = {{1, 0.25}, {1, 0.25}};
  const ValidationReport r2 = check_plan(self, 1, 4, 0);
  ASSERT_EQ(r2.errors.size(), 2u);
  EXPECT_EQ(r2.errors[0], "rank 1 at step 0: receives from itself");
}

// A schedule whose plans disagree with each other: rank 0 sends to 1, but 1 does not listen,
// and rank 2 receives from 9.
class BrokenSchedule final : public Schedule {
 public:
  int size() const override { return 3; }
  std::string name() const override { return "broken"; }
  int period() const override { return 1; }
  Graph graph_at(std::int64_t) const override { return fully_connected(3); }
  StepPlan plan(std::int64_t, int rank) const override {
    StepPlan p;
    if (rank == 0) p.send = {{1, 1.0}};
    if (rank == 2) {
      p.self_weight = 0.5;
      p.recv = {{9, 0.5}};
    }
    return p;
  }
};

TEST(Validate, ScheduleConsistency) {
  const BrokenSchedule s;
  const ValidationReport r = check(s);
  ASSERT_FALSE(r.ok());
  const std::string all = r.summary();
  EXPECT_NE(all.find("rank 2 at step 0: receives from rank 9, which is out of range [0, 3)"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("rank 0 at step 0: sends to rank 1, which does not receive from it"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("plan() receives from {} but graph_at() from {1, 2}"), std::string::npos)
      << all;
  expect_validation_error([&] { validate(s); }, "rank 2 at step 0");
}

TEST(Validate, ScheduleUnionConnectivity) {
  // Each one-peer step is disconnected on its own; one period's union is connected.
  EXPECT_NO_THROW(validate(OnePeerExponential(8)));
  // A single step of the one-peer ring only goes one way round: still strongly connected.
  EXPECT_NO_THROW(validate(OnePeerCycle(ring(6)), 1));
  // Random matchings over one step are not.
  expect_validation_error([] { validate(RandomMatching(6, 1), 1); }, "is not strongly connected");
}

}  // namespace
}  // namespace decent::topology
