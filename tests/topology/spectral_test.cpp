// rho = ||W - 11^T/n||_2 against values that follow from the maths (ALGORITHMS.md), and the
// other analysis helpers.
#include "test_util.h"

#include <cmath>
#include <random>

namespace decent::topology {
namespace {

TEST(Spectral, FullyConnectedHasRhoZero) {
  for (int n = 1; n <= 12; ++n) EXPECT_NEAR(rho(fully_connected(n)), 0.0, 1e-12) << "n=" << n;
}

TEST(Spectral, DisconnectedGraphHasRhoOne) {
  // Two complete halves without a link between them: each half averages, the halves never meet.
  for (int n : {2, 4, 6, 10}) {
    Graph g(n, "two-cliques");
    const int half = n / 2;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j)
        if (i != j && (i < half) == (j < half)) g.set_edge(j, i, 1.0);
    g = apply_weights(std::move(g), WeightRule::kUniform);
    EXPECT_FALSE(is_strongly_connected(g));
    EXPECT_NEAR(rho(g), 1.0, 1e-9) << "n=" << n;
  }
  EXPECT_NEAR(rho(Graph(5)), 1.0, 1e-12);  // W = I
}

TEST(Spectral, StaticExponentialMatchesClosedForm) {
  for (int n : {4, 8, 16, 32}) {
    const double expected = 1.0 - 2.0 / (1.0 + std::log2(n));
    EXPECT_NEAR(rho(exponential(n)), expected, 1e-9) << "n=" << n;
  }
}

TEST(Spectral, RingMatchesApproximationAndExactEigenvalue) {
  // ALGORITHMS.md: rho ~ 1 - 16 pi^2 / (3 n^2) for large n, within 5% at n = 64.
  const int n = 64;
  const double approx = 1.0 - 16.0 * M_PI * M_PI / (3.0 * n * n);
  const double r = rho(ring(n));
  EXPECT_LT(std::abs(r - approx) / approx, 0.05);
  // Exactly: W is circulant with eigenvalues (1 + 2 cos(2 pi k / n)) / 3, the largest below 1
  // in magnitude at k = 1 for n >= 5.
  for (int m : {5, 6, 9, 16, 64, 100})
    EXPECT_NEAR(rho(ring(m)), (1.0 + 2.0 * std::cos(2.0 * M_PI / m)) / 3.0, 1e-12) << m;
}

TEST(Spectral, HypercubeAndTorusClosedForms) {
  // Hypercube with uniform weights: eigenvalues (1 + d - 2k)/(d + 1); rho = (d - 1)/(d + 1).
  for (int d = 1; d <= 6; ++d)
    EXPECT_NEAR(rho(hypercube(1 << d)), (d - 1.0) / (d + 1.0), 1e-12) << "d=" << d;
  // Torus r x c (sides >= 3), weights 1/5: (1 + 2cos(2pi/r) + 2cos(0))/5 for the slowest mode.
  EXPECT_NEAR(rho(torus(GridShape{8, 8})), (3.0 + 2.0 * std::cos(2.0 * M_PI / 8)) / 5.0, 1e-12);
}

TEST(Spectral, RhoOfMatrixChecksShape) {
  EXPECT_THROW(rho(Eigen::MatrixXd(2, 3)), std::invalid_argument);
  // A non-symmetric, non-normal matrix: a 2-node "leader" graph where
  // node 1 copies node 0. W - J = [[1/2, -1/2], [1/2, -1/2]] has singular value 1.
  Eigen::MatrixXd w(2, 2);
  w << 1, 0, 1, 0;
  EXPECT_NEAR(rho(w), 1.0, 1e-12);
}

TEST(Spectral, NonSymmetricRhoIsTheLargestSingularValue) {
  // Row-stochastic random matrices (non-symmetric, non-normal) against power iteration on
  // D^T D, D = W - 11^T/n: its limit is sigma_max(D)^2.
  std::mt19937 gen(7);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int n : {3, 10, 37}) {
    Eigen::MatrixXd w(n, n);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) w(i, j) = unit(gen);
    for (int i = 0; i < n; ++i) w.row(i) /= w.row(i).sum();
    const Eigen::MatrixXd d = w - Eigen::MatrixXd::Constant(n, n, 1.0 / n);
    const Eigen::MatrixXd gram = d.transpose() * d;
    Eigen::VectorXd x = Eigen::VectorXd::Ones(n) + Eigen::VectorXd::LinSpaced(n, 0.0, 1.0);
    double lambda = 0;
    for (int k = 0; k < 5000; ++k) {
      const Eigen::VectorXd y = gram * x;
      lambda = y.norm() / x.norm();
      x = y / y.norm();
    }
    ASSERT_FALSE(w.isApprox(w.transpose(), 1e-3));
    EXPECT_NEAR(rho(w), std::sqrt(lambda), 1e-12 * std::sqrt(lambda)) << "n=" << n;
  }
}

TEST(Analysis, Flags) {
  EXPECT_TRUE(is_symmetric(ring(7)));
  EXPECT_FALSE(is_symmetric(exponential(8)));
  EXPECT_TRUE(is_doubly_stochastic(exponential(8)));
  EXPECT_FALSE(is_doubly_stochastic(star(5)));  // leaves give the centre 1/2, centre gives 1/5
  EXPECT_TRUE(is_row_stochastic(star(5)));
  EXPECT_TRUE(is_doubly_stochastic(star(5, 0, WeightRule::kMetropolisHastings)));
  Graph bad = ring(4);
  bad.set_self_weight(0, 0.5);
  EXPECT_FALSE(is_row_stochastic(bad));
}

TEST(Analysis, DiameterAndDegrees) {
  EXPECT_EQ(diameter(ring(8)), 4);
  EXPECT_EQ(diameter(directed_ring(8)), 7);
  EXPECT_EQ(diameter(exponential(16)), 4);
  EXPECT_EQ(diameter(hypercube(16)), 4);
  EXPECT_EQ(diameter(fully_connected(6)), 1);
  EXPECT_EQ(diameter(Graph(1)), 0);
  EXPECT_EQ(diameter(Graph(3)), -1);
  EXPECT_EQ(max_in_degree(star(9)), 8);
  EXPECT_EQ(max_out_degree(directed_ring(9)), 1);

  const GraphAnalysis a = analyze(exponential(16));
  EXPECT_EQ(a.n, 16);
  EXPECT_EQ(a.num_edges, 64);
  EXPECT_EQ(a.max_in_degree, 4);
  EXPECT_DOUBLE_EQ(a.average_in_degree, 4.0);
  EXPECT_NEAR(a.rho, 0.6, 1e-9);
  EXPECT_NEAR(a.spectral_gap, 0.4, 1e-9);
  EXPECT_TRUE(a.doubly_stochastic);
  EXPECT_FALSE(a.symmetric);
  EXPECT_EQ(a.diameter, 4);

  AnalysisOptions cheap;
  cheap.spectral = cheap.diameter = false;
  const GraphAnalysis b = analyze(ring(10), cheap);
  EXPECT_EQ(b.rho, -1.0);
  EXPECT_EQ(b.diameter, -1);
  EXPECT_TRUE(b.strongly_connected);
}

TEST(Analysis, ScheduleOfStaticGraphMatchesGraph) {
  const StaticSchedule s(ring(10));
  const ScheduleAnalysis a = analyze(s);
  EXPECT_EQ(a.period, 1);
  EXPECT_EQ(a.steps_analyzed, 1);
  EXPECT_NEAR(a.rho, rho(ring(10)), 1e-12);
  EXPECT_DOUBLE_EQ(a.average_in_degree, 2.0);
  EXPECT_TRUE(a.symmetric);
}

}  // namespace
}  // namespace decent::topology
