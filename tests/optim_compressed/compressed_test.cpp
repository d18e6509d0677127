// Compressed optimizers on per-rank quadratics f_i(x) = 0.5 ||x - c_i||^2 (gradient x - c_i),
// on the in-process backend: reduction to the uncompressed algorithms with an exact compressor,
// stacked formulas of ALGORITHMS.md with real compressors, CHOCO's fixed point with top-k,
// bit-identical resume, byte counts and option errors.
#include "decent/comm/context.h"
#include "decent/compress/compressor.h"
#include "decent/topology/generators.h"
#include "decent/topology/registry.h"
#include "decent/torch/optimizers.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <Eigen/Dense>

#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace decent::optim {
namespace {

using Eigen::MatrixXd;
using Eigen::RowVectorXd;

const std::vector<int> kLayers = {2, 3};
constexpr int kDim = 5;
constexpr double kLr = 0.1;
constexpr double kWeightDecay = 0.01;

MatrixXd initial_points(int n) {
  MatrixXd x(n, kDim);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < kDim; ++j) x(i, j) = 2.0 * std::sin(1.0 + 1.7 * i + 0.9 * j);
  return x;
}

MatrixXd targets(int n) {
  MatrixXd c(n, kDim);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < kDim; ++j) c(i, j) = (i - (n - 1) / 2.0) * (1.0 + 0.5 * j) + std::cos(j);
  return c;
}

std::vector<torch::Tensor> split_row(const MatrixXd& m, int row, bool requires_grad) {
  std::vector<torch::Tensor> out;
  int col = 0;
  for (int width : kLayers) {
    torch::Tensor t = torch::empty({width}, torch::kFloat64);
    for (int j = 0; j < width; ++j) t[j] = m(row, col + j);
    out.push_back(t.set_requires_grad(requires_grad));
    col += width;
  }
  return out;
}

RowVectorXd flatten(const std::vector<torch::Tensor>& params) {
  RowVectorXd row(kDim);
  int col = 0;
  for (const auto& p : params) {
    torch::Tensor d = p.detach().contiguous();
    for (int j = 0; j < d.numel(); ++j) row(col++) = d.data_ptr<double>()[j];
  }
  return row;
}

ContextPtr borrow(Context& ctx) {
  return ContextPtr(&ctx, [](Context*) {});
}

void train_step(torch::optim::Optimizer& opt, const std::vector<torch::Tensor>& params,
                const std::vector<torch::Tensor>& target) {
  opt.zero_grad();
  torch::Tensor loss = torch::zeros({}, params.front().options());
  for (std::size_t j = 0; j < params.size(); ++j)
    loss = loss + 0.5 * (params[j] - target[j]).pow(2).sum();
  loss.backward();
  opt.step();
}

AlgorithmConfig config(const std::string& name, const std::string& compressor,
                       double consensus_step = 1.0) {
  AlgorithmConfig c;
  c.name = name;
  c.lr = kLr;
  c.momentum = 0.5;
  c.weight_decay = kWeightDecay;
  c.overlap = false;
  c.compressor = compressor;
  c.consensus_step = consensus_step;
  return c;
}

// Every rank's parameters after each step.
std::vector<MatrixXd> trajectory(const AlgorithmConfig& c, const topology::SchedulePtr& schedule,
                                 int steps, const MatrixXd& x0, const MatrixXd& targets_) {
  const int n = schedule->size();
  std::vector<MatrixXd> out(steps + 1, MatrixXd::Zero(n, kDim));
  local::run(n, [&](Context& ctx) {
    ctx.set_topology(schedule);
    const int rank = ctx.rank();
    auto params = split_row(x0, rank, true);
    const auto target = split_row(targets_, rank, false);
    auto opt = make_optimizer(c, params, borrow(ctx));
    out[0].row(rank) = flatten(params);
    for (int s = 0; s < steps; ++s) {
      train_step(*opt, params, target);
      out[s + 1].row(rank) = flatten(params);
    }
  });
  return out;
}

double max_abs_difference(const std::vector<MatrixXd>& a, const std::vector<MatrixXd>& b) {
  double m = 0;
  for (std::size_t k = 0; k < a.size(); ++k) m = std::max(m, (a[k] - b[k]).cwiseAbs().maxCoeff());
  return m;
}

MatrixXd mixing_matrix(const topology::Schedule& schedule, std::int64_t step) {
  const int n = schedule.size();
  MatrixXd w = MatrixXd::Zero(n, n);
  for (int i = 0; i < n; ++i) {
    const auto plan = schedule.plan(step, i);
    w(i, i) = plan.self_weight;
    for (const auto& p : plan.recv) w(i, p.rank) = p.weight;
  }
  return w;
}

// ---------------------------------------------------------------- exact compressor

struct Reduction {
  std::string compressed;
  std::string uncompressed;
  std::string topology;
  int n;
};

class ReducesToUncompressed : public ::testing::TestWithParam<Reduction> {};

TEST_P(ReducesToUncompressed, WithTheExactCompressorAndUnitConsensusStep) {
  const Reduction r = GetParam();
  const auto schedule = topology::make_schedule(r.topology, r.n);
  const MatrixXd x0 = initial_points(r.n), c = targets(r.n);
  const auto compressed = trajectory(config(r.compressed, "none"), schedule, 4, x0, c);
  const auto reference = trajectory(config(r.uncompressed, "none"), schedule, 4, x0, c);
  EXPECT_LT(max_abs_difference(compressed, reference), 1e-12);
  // The comparison is sharp: the trajectories do move.
  EXPECT_GT((reference.back() - reference.front()).cwiseAbs().maxCoeff(), 0.1);
}

INSTANTIATE_TEST_SUITE_P(Algorithms, ReducesToUncompressed,
                         ::testing::Values(Reduction{"csgd", "pmsgd", "ring", 4},
                                           Reduction{"doublesqueeze", "pmsgd", "exponential", 5},
                                           Reduction{"dcd-psgd", "dsgd-awc", "ring", 4},
                                           Reduction{"dcd-psgd", "dsgd-awc", "exponential", 5},
                                           Reduction{"deepsqueeze", "dsgd", "ring", 4},
                                           Reduction{"deepsqueeze", "dsgd", "one-peer-exponential",
                                                     4},
                                           Reduction{"choco-sgd", "dsgd", "ring", 4},
                                           Reduction{"choco-sgd", "dsgd", "exponential", 5}),
                         [](const auto& info) {
                           std::string s = info.param.compressed + "_" + info.param.topology;
                           for (auto& ch : s)
                             if (ch == '-') ch = '_';
                           return s;
                         });

// ---------------------------------------------------------------- stacked formulas

// C applied to row i as rank i's `purpose`-th encoding of iteration k.
RowVectorXd apply(const compress::Compressor& c, const RowVectorXd& row, int rank, int k,
                  std::uint64_t purpose = 0) {
  std::vector<double> v(row.data(), row.data() + row.size()), out(row.size());
  compress::compress(c, v.data(), v.size(), compress::derive_seed(0, rank, k, purpose), out.data());
  return Eigen::Map<RowVectorXd>(out.data(), out.size());
}

MatrixXd apply_rows(const compress::Compressor& c, const MatrixXd& m, int k) {
  MatrixXd out(m.rows(), m.cols());
  for (int i = 0; i < m.rows(); ++i) out.row(i) = apply(c, m.row(i), i, k);
  return out;
}

// The stacked recursion of `algorithm` with compressor `c`, W fixed.
std::vector<MatrixXd> stacked(const std::string& algorithm, const compress::Compressor& c,
                              const MatrixXd& w, const MatrixXd& x0, const MatrixXd& targets_,
                              double eta, double beta, int steps) {
  const int n = static_cast<int>(x0.rows());
  const MatrixXd identity = MatrixXd::Identity(n, n);
  MatrixXd x = x0, state_a = MatrixXd::Zero(n, kDim), state_b = MatrixXd::Zero(n, kDim);
  RowVectorXd aggregator = RowVectorXd::Zero(kDim);
  std::vector<MatrixXd> out = {x};
  for (int k = 0; k < steps; ++k) {
    const MatrixXd g = x - targets_;  // raw gradients
    const MatrixXd d = g + kWeightDecay * x;
    if (algorithm == "choco-sgd") {  // state_a = X^ (replicas)
      const MatrixXd half = x - kLr * d;
      state_a += apply_rows(c, half - state_a, k);
      x = half + eta * (w * state_a - state_a);
    } else if (algorithm == "deepsqueeze") {  // state_a = residuals
      const MatrixXd u = x - kLr * d;
      const MatrixXd v = apply_rows(c, u + state_a, k);
      state_a = u + state_a - v;
      x = u + eta * (w - identity) * v;
    } else if (algorithm == "dcd-psgd") {  // state_a = W X from the replicas
      if (k == 0) state_a = w * x;
      const MatrixXd q = apply_rows(c, state_a - kLr * d - x, k);
      x += q;
      state_a += w * q;
    } else if (algorithm == "csgd" || algorithm == "doublesqueeze") {  // state_b = momentum
      RowVectorXd average;
      if (algorithm == "csgd") {
        average = apply_rows(c, g, k).colwise().mean();
      } else {  // state_a = worker residuals, `aggregator` = rank 0's residual
        const MatrixXd v = apply_rows(c, g + state_a, k);
        state_a = g + state_a - v;
        const RowVectorXd corrected = v.colwise().mean() + aggregator;
        average = apply(c, corrected, 0, k, 1);
        aggregator = corrected - average;
      }
      for (int i = 0; i < n; ++i) {
        state_b.row(i) = beta * state_b.row(i) + average + kWeightDecay * x.row(i);
        x.row(i) -= kLr * state_b.row(i);
      }
    }
    out.push_back(x);
  }
  return out;
}

struct FormulaCase {
  std::string algorithm;
  std::string compressor;
  double eta;
};

class MatchesStackedFormula : public ::testing::TestWithParam<FormulaCase> {};

TEST_P(MatchesStackedFormula, ThreeStepsOnFourRanks) {
  const FormulaCase f = GetParam();
  const int n = 4;
  const auto schedule = topology::make_schedule("ring", n);
  const MatrixXd x0 = initial_points(n), c = targets(n);
  AlgorithmConfig cfg = config(f.algorithm, f.compressor, f.eta);
  const bool momentum = f.algorithm == "csgd" || f.algorithm == "doublesqueeze";
  const auto actual = trajectory(cfg, schedule, 3, x0, c);
  const auto expected =
      stacked(f.algorithm, *compress::make_compressor(f.compressor), mixing_matrix(*schedule, 0),
              x0, c, f.eta, momentum ? cfg.momentum : 0.0, 3);
  EXPECT_LT(max_abs_difference(actual, expected), 1e-6) << "actual\n"
                                                        << actual.back() << "\nexpected\n"
                                                        << expected.back();
  // Compression changes the result: the exact compressor would give another trajectory.
  const auto exact = trajectory(config(f.algorithm, "none", f.eta), schedule, 3, x0, c);
  EXPECT_GT(max_abs_difference(actual, exact), 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Algorithms, MatchesStackedFormula,
                         ::testing::Values(FormulaCase{"csgd", "randk:k=2", 1.0},
                                           FormulaCase{"doublesqueeze", "topk:k=2", 1.0},
                                           FormulaCase{"dcd-psgd", "qsgd:s=2", 1.0},
                                           FormulaCase{"deepsqueeze", "kbit:bits=3", 0.5},
                                           FormulaCase{"choco-sgd", "topk:k=2", 0.6}),
                         [](const auto& info) {
                           std::string s = info.param.algorithm;
                           for (auto& ch : s)
                             if (ch == '-') ch = '_';
                           return s;
                         });

// ---------------------------------------------------------------- convergence

TEST(Convergence, ChocoWithTopKReachesTheFixedPointOfItsMixingMatrix) {
  // At a fixed point q = 0, so X^ = X - lr D and X = (I + eta (W - I)) (X - lr D): D-SGD's
  // fixed point for W' = I + eta (W - I), reached despite sending 2 of 5 coordinates.
  const int n = 6;
  const double eta = 0.4;
  const auto schedule = topology::make_schedule("ring", n);
  const MatrixXd x0 = initial_points(n), c = targets(n);
  AlgorithmConfig cfg = config("choco-sgd", "topk:k=2", eta);
  cfg.weight_decay = 0.0;
  const auto run = trajectory(cfg, schedule, 1500, x0, c);
  const MatrixXd w = mixing_matrix(*schedule, 0);
  const MatrixXd w_eta = MatrixXd::Identity(n, n) + eta * (w - MatrixXd::Identity(n, n));
  const MatrixXd fixed =
      (MatrixXd::Identity(n, n) - (1 - kLr) * w_eta).inverse() * (kLr * w_eta * c);
  EXPECT_LT((run.back() - fixed).cwiseAbs().maxCoeff(), 1e-6) << run.back() << "\n" << fixed;
  // Its average is the optimum of (1/n) sum_i f_i.
  EXPECT_LT((run.back().colwise().mean() - c.colwise().mean()).cwiseAbs().maxCoeff(), 1e-6);
}

// ---------------------------------------------------------------- checkpoints

class Resume : public ::testing::TestWithParam<FormulaCase> {};

TEST_P(Resume, ContinuesBitIdentically) {
  const FormulaCase f = GetParam();
  const AlgorithmConfig cfg = config(f.algorithm, f.compressor, f.eta);
  const int n = 4, first = 3, second = 4;
  const auto schedule = topology::make_schedule("ring", n);
  const MatrixXd x0 = initial_points(n), c = targets(n);
  MatrixXd straight(n, kDim), resumed(n, kDim);
  local::run(n, [&](Context& ctx) {
    ctx.set_topology(schedule);
    auto params = split_row(x0, ctx.rank(), true);
    const auto target = split_row(c, ctx.rank(), false);
    auto opt = make_optimizer(cfg, params, borrow(ctx));
    for (int s = 0; s < first + second; ++s) {
      train_step(*opt, params, target);
      if (s == 1) set_learning_rate(*opt, 0.5 * cfg.lr);
    }
    straight.row(ctx.rank()) = flatten(params);
  });
  local::run(n, [&](Context& ctx) {
    ctx.set_topology(schedule);
    auto params = split_row(x0, ctx.rank(), true);
    const auto target = split_row(c, ctx.rank(), false);
    std::stringstream checkpoint;
    std::uint64_t bytes = 0;
    {
      auto opt = make_optimizer(cfg, params, borrow(ctx));
      for (int s = 0; s < first; ++s) {
        train_step(*opt, params, target);
        if (s == 1) set_learning_rate(*opt, 0.5 * cfg.lr);
      }
      torch::save(*opt, checkpoint);
      bytes = dynamic_cast<CompressedOptimizer&>(*opt).encoded_bytes_sent();
    }
    std::vector<torch::Tensor> restored;
    for (const auto& p : params) restored.push_back(p.detach().clone().set_requires_grad(true));
    auto opt = make_optimizer(cfg, restored, borrow(ctx));
    torch::load(*opt, checkpoint);
    auto& compressed = dynamic_cast<CompressedOptimizer&>(*opt);
    EXPECT_EQ(compressed.iteration(), first);
    EXPECT_EQ(compressed.encoded_bytes_sent(), bytes);
    EXPECT_EQ(learning_rate(*opt), 0.5 * cfg.lr);
    for (int s = first; s < first + second; ++s) train_step(*opt, restored, target);
    resumed.row(ctx.rank()) = flatten(restored);
  });
  EXPECT_TRUE((straight.array() == resumed.array()).all()) << straight << "\nvs\n" << resumed;
}

INSTANTIATE_TEST_SUITE_P(Algorithms, Resume,
                         ::testing::Values(FormulaCase{"csgd", "qsgd:s=3", 1.0},
                                           FormulaCase{"doublesqueeze", "sign", 1.0},
                                           FormulaCase{"dcd-psgd", "randk:k=3", 1.0},
                                           FormulaCase{"deepsqueeze", "qsgd:s=1,norm=max", 0.5},
                                           FormulaCase{"choco-sgd", "qsgd:s=2", 0.7}),
                         [](const auto& info) {
                           std::string s = info.param.algorithm;
                           for (auto& ch : s)
                             if (ch == '-') ch = '_';
                           return s;
                         });

TEST(Checkpoint, RejectsAnotherCompressorsCheckpoint) {
  local::run(1, [&](Context& ctx) {
    auto params = split_row(initial_points(1), 0, true);
    auto target = split_row(targets(1), 0, false);
    auto opt = make_optimizer(config("choco-sgd", "topk:k=2", 0.5), params, borrow(ctx));
    train_step(*opt, params, target);
    std::stringstream checkpoint;
    torch::save(*opt, checkpoint);
    auto other = make_optimizer(config("choco-sgd", "topk:k=3", 0.5), params, borrow(ctx));
    try {
      torch::load(*other, checkpoint);
      ADD_FAILURE() << "no error";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("written with compressor 'topk:k=2', this optimizer "
                                           "uses 'topk:k=3'"),
                std::string::npos)
          << e.what();
    }
  });
}

// ---------------------------------------------------------------- bytes

TEST(Bytes, EncodedBytesPerStepFollowTheCommunicationPattern) {
  const int n = 4;
  const auto c = compress::make_compressor("qsgd:s=7");
  const std::uint64_t message = c->encoded_size(kDim, DType::kFloat64);  // 6 + 4 + 20 bits
  EXPECT_EQ(message, 6u + 4u + 3u);
  local::run(n, [&](Context& ctx) {
    ctx.set_topology(topology::ring(n));
    for (const std::string name :
         {"csgd", "doublesqueeze", "dcd-psgd", "deepsqueeze", "choco-sgd"}) {
      auto params = split_row(initial_points(n), ctx.rank(), true);
      auto target = split_row(targets(n), ctx.rank(), false);
      auto opt = make_optimizer(config(name, "qsgd:s=7", 0.5), params, borrow(ctx));
      const auto wire_before = ctx.stats().bytes_sent;
      train_step(*opt, params, target);
      train_step(*opt, params, target);
      const auto encoded = dynamic_cast<CompressedOptimizer&>(*opt).encoded_bytes_sent();
      std::uint64_t per_step = 2 * message;  // ring: two out-neighbours
      if (name == "csgd") per_step = (n - 1) * message;
      // Workers send to rank 0, which broadcasts once (counted once, as CommStats does).
      if (name == "doublesqueeze") per_step = message;
      EXPECT_EQ(encoded, 2 * per_step) << name;
      // The transport adds its headers (and DCD-PSGD's one exact averaging at the start).
      EXPECT_GE(ctx.stats().bytes_sent - wire_before, encoded) << name;
    }
  });
}

// ---------------------------------------------------------------- options

void expect_invalid(const AlgorithmConfig& c, const std::string& fragment) {
  try {
    validate(c);
    ADD_FAILURE() << "no error for " << c.name << " (" << fragment << ")";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Options, FactoryBuildsEveryCompressedAlgorithmWithDefaults) {
  local::run(2, [&](Context& ctx) {
    for (const std::string name :
         {"csgd", "doublesqueeze", "dcd-psgd", "deepsqueeze", "choco-sgd", "choco", "dcd"}) {
      AlgorithmConfig c;
      c.name = name;
      auto params = split_row(initial_points(2), ctx.rank(), true);
      auto opt = make_optimizer(c, params, borrow(ctx));
      auto& compressed = dynamic_cast<CompressedOptimizer&>(*opt);
      EXPECT_EQ(compressed.compressor().spec(), "qsgd:s=16,bucket=512,norm=l2");
      EXPECT_EQ(compressed.dimension(), static_cast<std::size_t>(kDim));
    }
  });
}

TEST(Options, BadCompressionSettingsAreRejected) {
  expect_invalid(config("choco-sgd", "topk"), "compressor 'topk': give exactly one of ratio");
  expect_invalid(config("deepsqueeze", "zip"), "unknown compressor 'zip'");
  expect_invalid(
      config("csgd", "topk:ratio=0.1"),
      "csgd needs an unbiased compressor (none, qsgd, randk); 'topk:ratio=0.1' is biased");
  expect_invalid(config("dcd-psgd", "sign"), "dcd-psgd needs an unbiased compressor");
  expect_invalid(config("choco-sgd", "sign", 0.0), "consensus_step = 0: must be in (0, 1]");
  expect_invalid(config("deepsqueeze", "sign", 1.5), "consensus_step = 1.5");
  // Other algorithms ignore the compression settings.
  EXPECT_NO_THROW(validate(config("dsgd", "zip", 7.0)));

  local::run(4, [&](Context& ctx) {
    auto params = split_row(initial_points(4), ctx.rank(), true);
    EXPECT_THROW(ChocoSGD(params, borrow(ctx), CompressedOptions(0.1).momentum(0.9)),
                 InvalidArgument);
    ctx.set_topology(topology::make_schedule("one-peer-exponential", 4));
    for (const char* name : {"choco-sgd", "dcd-psgd"}) {
      auto opt = make_optimizer(config(name, "qsgd:s=4"), params, borrow(ctx));
      auto target = split_row(targets(4), ctx.rank(), false);
      try {
        train_step(*opt, params, target);
        ADD_FAILURE() << name << ": no error on a dynamic topology";
      } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find("need a static graph"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("rank " + std::to_string(ctx.rank())),
                  std::string::npos)
            << e.what();
      }
    }
  });
}

}  // namespace
}  // namespace decent::optim

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  torch::set_num_threads(1);
  return RUN_ALL_TESTS();
}
