// The convex problems: x* is the optimum, gradients are right, data are deterministic, the
// heterogeneity knob does what it says, and the oracles are unbiased and reproducible.
#include "decent/convex/problem.h"
#include "decent/convex/oracle.h"
#include "reference.h"

#include <gtest/gtest.h>

#include <cmath>

namespace decent::convex {
namespace {

ProblemOptions logistic(int nodes) {
  ProblemOptions o;
  o.kind = ProblemKind::kLogistic;
  o.nodes = nodes;
  o.l2 = 0.05;
  return o;
}

TEST(ProblemTest, LeastSquaresOptimumZeroesTheGradientAndMatchesQr) {
  const Problem p = Problem::generate(test::least_squares(6));
  EXPECT_LT(p.gradient(p.optimum()).norm(), 1e-13);
  // Independent solution: QR of the stacked system [A_i / sqrt(m_i)] x = [b_i / sqrt(m_i)].
  Eigen::MatrixXd a(0, p.dim());
  Eigen::VectorXd b(0);
  for (int i = 0; i < p.nodes(); ++i) {
    const Shard& s = p.shard(i);
    const double scale = 1.0 / std::sqrt(static_cast<double>(s.features.rows()));
    Eigen::MatrixXd a2(a.rows() + s.features.rows(), a.cols());
    a2 << a, scale * s.features;
    Eigen::VectorXd b2(b.size() + s.targets.size());
    b2 << b, scale * s.targets;
    a = a2;
    b = b2;
  }
  const Eigen::VectorXd qr = a.colPivHouseholderQr().solve(b);
  EXPECT_LT((qr - p.optimum()).norm(), 1e-12 * p.optimum().norm());
  // Strictly better than nearby points.
  for (int c = 0; c < p.dim(); ++c) {
    Eigen::VectorXd moved = p.optimum();
    moved[c] += 1e-3;
    EXPECT_GT(p.loss(moved), p.loss(p.optimum()));
  }
}

TEST(ProblemTest, LogisticOptimumFromNewtonZeroesTheGradient) {
  const Problem p = Problem::generate(logistic(5));
  EXPECT_LT(p.gradient(p.optimum()).norm(), 1e-13);
  EXPECT_GT(p.optimum().norm(), 0.1);  // not the trivial point
  for (int c = 0; c < p.dim(); ++c) {
    Eigen::VectorXd moved = p.optimum();
    moved[c] -= 1e-3;
    EXPECT_GT(p.loss(moved), p.loss(p.optimum()));
  }
  // Labels are +-1.
  for (int i = 0; i < p.nodes(); ++i)
    for (Eigen::Index r = 0; r < p.shard(i).targets.size(); ++r)
      EXPECT_EQ(std::abs(p.shard(i).targets[r]), 1.0);
}

void expect_gradient_matches_finite_differences(const Problem& p) {
  Eigen::VectorXd x = Eigen::VectorXd::LinSpaced(p.dim(), -0.5, 0.7);
  for (int i = 0; i < p.nodes(); ++i) {
    const Eigen::VectorXd g = p.local_gradient(i, x);
    for (int c = 0; c < p.dim(); ++c) {
      const double h = 1e-6;
      Eigen::VectorXd up = x, down = x;
      up[c] += h;
      down[c] -= h;
      const double numeric = (p.local_loss(i, up) - p.local_loss(i, down)) / (2 * h);
      EXPECT_NEAR(g[c], numeric, 1e-7 * std::max(1.0, std::abs(numeric))) << "node " << i;
    }
  }
  // The global Hessian is the derivative of the global gradient.
  const Eigen::MatrixXd h = p.hessian(x);
  for (int c = 0; c < p.dim(); ++c) {
    Eigen::VectorXd up = x, down = x;
    up[c] += 1e-6;
    down[c] -= 1e-6;
    const Eigen::VectorXd column = (p.gradient(up) - p.gradient(down)) / 2e-6;
    EXPECT_LT((column - h.col(c)).norm(), 1e-6);
  }
}

TEST(ProblemTest, GradientsAndHessiansMatchFiniteDifferences) {
  expect_gradient_matches_finite_differences(Problem::generate(test::least_squares(3)));
  expect_gradient_matches_finite_differences(Problem::generate(logistic(3)));
}

TEST(ProblemTest, FullBatchOfAllRowsEqualsTheLocalGradient) {
  for (const ProblemOptions& o : {test::least_squares(2), logistic(2)}) {
    const Problem p = Problem::generate(o);
    std::vector<int> rows(p.samples(1));
    for (int r = 0; r < p.samples(1); ++r) rows[r] = r;
    const Eigen::VectorXd x = Eigen::VectorXd::Constant(p.dim(), 0.3);
    Eigen::VectorXd batch;
    p.local_batch_gradient(1, x, rows, batch);
    EXPECT_LT((batch - p.local_gradient(1, x)).norm(), 1e-13);
  }
}

TEST(ProblemTest, DataArePureFunctionsOfSeedAndNode) {
  const Problem a = Problem::generate(test::least_squares(4));
  const Problem b = Problem::generate(test::least_squares(4));
  const Problem wider = Problem::generate(test::least_squares(8));
  ProblemOptions other_seed = test::least_squares(4);
  other_seed.seed = 2;
  const Problem c = Problem::generate(other_seed);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(a.shard(i).features, b.shard(i).features);
    EXPECT_EQ(a.shard(i).targets, b.shard(i).targets);
    // Node i's data do not depend on how many nodes there are.
    EXPECT_EQ(a.shard(i).features, wider.shard(i).features);
    EXPECT_EQ(a.shard(i).targets, wider.shard(i).targets);
    EXPECT_NE(a.shard(i).targets, c.shard(i).targets);
  }
  EXPECT_EQ(a.optimum(), b.optimum());
  EXPECT_NE(a.shard(0).targets, a.shard(1).targets);
}

TEST(ProblemTest, HeterogeneityKnobScalesBSquaredQuadratically) {
  // grad f_i(x*) = H_i (x* - x*_i) and both x* - x_base and x*_i - x_base are h times a fixed
  // vector, so b^2 is exactly proportional to h^2; h = 0 gives every node the same optimum.
  const double b1 = Problem::generate(test::least_squares(6, 1.0)).heterogeneity_b2();
  const double b2 = Problem::generate(test::least_squares(6, 2.0)).heterogeneity_b2();
  const double b0 = Problem::generate(test::least_squares(6, 0.0)).heterogeneity_b2();
  EXPECT_GT(b1, 0.1);
  EXPECT_NEAR(b2 / b1, 4.0, 1e-9);
  EXPECT_LT(b0, 1e-25);
}

TEST(ProblemTest, SmoothnessAndStrongConvexityBoundTheHessianSpectrum) {
  for (const ProblemOptions& o : {test::least_squares(5), logistic(5)}) {
    const Problem p = Problem::generate(o);
    const double l = p.smoothness(), mu = p.strong_convexity();
    EXPECT_GT(mu, 0);
    EXPECT_GE(l, mu);
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(p.hessian(p.optimum()));
    EXPECT_NEAR(eig.eigenvalues().minCoeff(), mu, 1e-12);
    EXPECT_LE(eig.eigenvalues().maxCoeff(), l + 1e-12);
  }
}

TEST(ProblemTest, BadSettingsAreRejectedWithTheirName) {
  ProblemOptions o = test::least_squares(4);
  o.dim = 0;
  EXPECT_THROW(Problem::generate(o), ConvexError);
  o = test::least_squares(1);
  o.samples_per_node = 3;  // 3 rows cannot determine 10 unknowns
  try {
    Problem::generate(o);
    FAIL() << "expected ConvexError";
  } catch (const ConvexError& e) {
    EXPECT_NE(std::string(e.what()).find("singular"), std::string::npos) << e.what();
  }
  o = logistic(2);
  o.l2 = 0;
  EXPECT_THROW(Problem::generate(o), ConvexError);
  EXPECT_THROW(parse_problem("quadratic"), ConvexError);
  EXPECT_EQ(parse_problem("ls"), ProblemKind::kLeastSquares);
}

TEST(OracleTest, FullGradientWithoutNoise) {
  const Problem p = Problem::generate(test::least_squares(3));
  GradientOracle oracle(p, 2, GradientNoise{});
  const Eigen::VectorXd x = Eigen::VectorXd::Ones(p.dim());
  Eigen::VectorXd g;
  oracle(x, g);
  EXPECT_EQ(g, p.local_gradient(2, x));
  EXPECT_EQ(oracle.evaluations(), 1);
}

TEST(OracleTest, StochasticGradientsAreUnbiasedAndReproducible) {
  const Problem p = Problem::generate(test::least_squares(2));
  const Eigen::VectorXd x = Eigen::VectorXd::Zero(p.dim());
  const Eigen::VectorXd exact = p.local_gradient(0, x);
  for (const GradientNoise noise : {GradientNoise{4, 0.0, 3}, GradientNoise{0, 0.5, 3}}) {
    GradientOracle oracle(p, 0, noise), again(p, 0, noise), other_node(p, 1, noise);
    const int draws = 20000;
    Eigen::VectorXd sum = Eigen::VectorXd::Zero(p.dim()), g, h, o;
    double spread = 0;
    for (int k = 0; k < draws; ++k) {
      oracle(x, g);
      again(x, h);
      ASSERT_EQ(g, h) << "draw " << k;  // same seed, same sequence
      sum += g;
      spread += (g - exact).squaredNorm();
    }
    other_node(x, o);
    const double per_coordinate_std = std::sqrt(spread / draws / p.dim());
    EXPECT_GT(per_coordinate_std, 0.05);  // really stochastic
    // The mean is within 5 standard errors of the exact gradient in every coordinate.
    const Eigen::VectorXd bias = sum / draws - exact;
    EXPECT_LT(bias.cwiseAbs().maxCoeff(), 5 * per_coordinate_std / std::sqrt(double(draws)));
  }
}

}  // namespace
}  // namespace decent::convex
