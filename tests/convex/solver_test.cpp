// The per-rank solvers against the stacked formulas of ALGORITHMS.md, against plain gradient
// descent at n = 1, run to run determinism, and argument checking.
#include "decent/convex/solvers.h"
#include "reference.h"

#include <gtest/gtest.h>

#include <cmath>

namespace decent::convex {
namespace {

using test::run_solver;
using test::schedule;

void expect_same_series(const std::vector<double>& actual, const std::vector<double>& expected,
                        double scale, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (std::size_t k = 0; k < actual.size(); ++k)
    ASSERT_NEAR(actual[k], expected[k], 1e-10 * expected[k] + 1e-22 * scale)
        << what << " at iteration " << k;
}

struct ReferenceCase {
  std::string topology;
  int nodes;
};
void PrintTo(const ReferenceCase& c, std::ostream* os) {
  *os << c.topology << ", n = " << c.nodes;
}

class StackedReferenceTest : public testing::TestWithParam<ReferenceCase> {};

// Every algorithm, run rank by rank with neighbor_allreduce, reproduces its stacked matrix
// recursion (with W^k = the schedule's graph at step k) to rounding.
TEST_P(StackedReferenceTest, SolverFollowsTheStackedRecursion) {
  const ReferenceCase c = GetParam();
  const Problem p = Problem::generate(test::least_squares(c.nodes));
  const auto s = schedule(c.topology, c.nodes);
  for (const AlgorithmInfo& info : algorithms()) {
    SolverOptions o;
    o.algorithm = info.algorithm;
    o.step_size = 0.08;
    o.momentum = 0.6;
    o.iterations = 40;
    const auto results = run_solver(p, s, o);
    const auto expected =
        test::stacked_reference(p, *s, info.algorithm, o.step_size, o.momentum, o.iterations);
    expect_same_series(results[0].error, expected, p.optimum_norm2(),
                       std::string(info.name) + " on " + c.topology);
    for (const auto& r : results) EXPECT_EQ(r.error, results[0].error) << info.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Topologies, StackedReferenceTest,
                         testing::Values(ReferenceCase{"ring", 5}, ReferenceCase{"exponential", 6},
                                         ReferenceCase{"one-peer-exponential", 8}),
                         [](const testing::TestParamInfo<ReferenceCase>& info) {
                           std::string name = info.param.topology;
                           for (char& ch : name)
                             if (ch == '-') ch = '_';
                           return name + "_n" + std::to_string(info.param.nodes);
                         });

// At n = 1, W = [1] and every method is gradient descent on f (heavy ball for the methods with
// momentum), computed here without any Context.
TEST(SolverTest, EveryAlgorithmIsGradientDescentOnOneNode) {
  for (ProblemKind kind : {ProblemKind::kLeastSquares, ProblemKind::kLogistic}) {
    ProblemOptions po = test::least_squares(1);
    po.kind = kind;
    const Problem p = Problem::generate(po);
    for (const AlgorithmInfo& info : algorithms()) {
      SolverOptions o;
      o.algorithm = info.algorithm;
      o.step_size = 0.1;
      o.momentum = 0.5;
      o.iterations = 60;
      const SolverResult r = run_solver(p, schedule("ring", 1), o)[0];
      const double beta = info.uses_momentum ? o.momentum : 0.0;
      Eigen::VectorXd x = Eigen::VectorXd::Zero(p.dim()), m = x;
      std::vector<double> expected = {(x - p.optimum()).squaredNorm()};
      for (int k = 0; k < o.iterations; ++k) {
        m = beta * m + p.gradient(x);
        x -= o.step_size * m;
        expected.push_back((x - p.optimum()).squaredNorm());
      }
      expect_same_series(r.error, expected, p.optimum_norm2(),
                         std::string(info.name) + " on " + problem_name(kind));
      EXPECT_LT((r.x - x).norm(), 1e-12 * (1 + x.norm())) << info.name;
    }
  }
}

TEST(SolverTest, RunsAreBitIdenticalOnTheLocalBackend) {
  const Problem p = Problem::generate(test::least_squares(6));
  for (Algorithm a :
       {Algorithm::kDmsgd, Algorithm::kExactDiffusion, Algorithm::kGradientTracking}) {
    SolverOptions o;
    o.algorithm = a;
    o.step_size = 0.05;
    o.momentum = 0.9;
    o.iterations = 80;
    o.noise = GradientNoise{3, 0.1, 11};  // mini-batches and additive noise
    const auto first = run_solver(p, schedule("one-peer-exponential", 6), o);
    const auto second = run_solver(p, schedule("one-peer-exponential", 6), o);
    for (int i = 0; i < p.nodes(); ++i) {
      EXPECT_EQ(first[i].x, second[i].x) << algorithm_name(a) << " rank " << i;
      EXPECT_EQ(first[i].error, second[i].error) << algorithm_name(a);
    }
    // A different noise seed gives a different run (the noise is really used).
    o.noise.seed = 12;
    EXPECT_NE(run_solver(p, schedule("one-peer-exponential", 6), o)[0].error, first[0].error);
  }
}

TEST(SolverTest, RecordsEveryKthIterationAndTheLast) {
  const Problem p = Problem::generate(test::least_squares(3));
  SolverOptions o;
  o.iterations = 25;
  o.record_every = 10;
  const auto r = run_solver(p, schedule("ring", 3), o)[0];
  EXPECT_EQ(r.iterations, (std::vector<int>{0, 10, 20, 25}));
  EXPECT_DOUBLE_EQ(r.error[0], p.optimum_norm2());  // x^0 = 0
}

TEST(SolverTest, MeasuresOneMessagePerNeighbourAndIteration) {
  const Problem p = Problem::generate(test::least_squares(8));
  SolverOptions o;
  o.iterations = 20;
  o.algorithm = Algorithm::kExactDiffusion;
  EXPECT_EQ(run_solver(p, schedule("ring", 8), o)[3].payload_messages, 2u * 20);
  EXPECT_EQ(run_solver(p, schedule("one-peer-exponential", 8), o)[3].payload_messages, 20u);
  // Gradient tracking sends x and y fused into one message of 2d numbers.
  o.algorithm = Algorithm::kGradientTracking;
  const auto gt = run_solver(p, schedule("one-peer-exponential", 8), o)[3];
  EXPECT_EQ(gt.payload_messages, 20u);
  o.algorithm = Algorithm::kDsgd;
  const auto dsgd = run_solver(p, schedule("one-peer-exponential", 8), o)[3];
  EXPECT_EQ(gt.traffic.bytes_sent - dsgd.traffic.bytes_sent, 20u * p.dim() * sizeof(double));
}

TEST(SolverTest, RejectsBadOptionsNamingRankAndSetting) {
  const Problem p = Problem::generate(test::least_squares(4));
  SolverOptions o;
  o.step_size = -1;
  try {
    run_solver(p, schedule("ring", 4), o);
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("step size"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("rank"), std::string::npos) << e.what();
  }
  o = SolverOptions{};
  o.momentum = 1.0;
  EXPECT_ANY_THROW(run_solver(p, schedule("ring", 4), o));
  // Three ranks for a four-node problem.
  try {
    local::run(3, [&](Context& ctx) { solve(ctx, p, SolverOptions{}); });
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("3 ranks but the problem has 4 nodes"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(parse_algorithm("admm"), ConvexError);
  EXPECT_EQ(parse_algorithm("diging"), Algorithm::kGradientTracking);
  EXPECT_EQ(parse_algorithm("ed"), Algorithm::kExactDiffusion);
}

}  // namespace
}  // namespace decent::convex
