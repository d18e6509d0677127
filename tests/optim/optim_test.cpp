// Optimizer tests: every algorithm against the stacked formulas of ALGORITHMS.md (reference.cpp)
// on per-rank quadratics f_i(x) = 0.5 ||x - c_i||^2, run on n ranks of the in-process backend.
#include "decent/comm/context.h"
#include "decent/topology/generators.h"
#include "decent/topology/registry.h"
#include "decent/torch/optimizers.h"
#include "decent/torch/tensor_ops.h"

#include "reference.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace decent::optim {
namespace {

using Eigen::MatrixXd;
using testing::ReferenceConfig;

// Two parameter tensors per rank, of 2 and 3 elements (LARS sees two layers).
const std::vector<int> kLayers = {2, 3};
constexpr int kDim = 5;

MatrixXd initial_points(int n) {
  MatrixXd x(n, kDim);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < kDim; ++j) x(i, j) = 2.0 * std::sin(1.0 + 1.7 * i + 0.9 * j);
  return x;
}

// Heterogeneous optima: the global optimum mean(c_i) differs from every c_i.
MatrixXd targets(int n) {
  MatrixXd c(n, kDim);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < kDim; ++j) c(i, j) = (i - (n - 1) / 2.0) * (1.0 + 0.5 * j) + std::cos(j);
  return c;
}

std::vector<torch::Tensor> split_row(const MatrixXd& m, int row, torch::Dtype dtype,
                                     bool requires_grad) {
  std::vector<torch::Tensor> out;
  int col = 0;
  for (int width : kLayers) {
    torch::Tensor t = torch::empty({width}, torch::kFloat64);
    for (int j = 0; j < width; ++j) t[j] = m(row, col + j);
    out.push_back(t.to(dtype).set_requires_grad(requires_grad));
    col += width;
  }
  return out;
}

Eigen::RowVectorXd flatten(const std::vector<torch::Tensor>& params) {
  Eigen::RowVectorXd row(kDim);
  int col = 0;
  for (const auto& p : params) {
    torch::Tensor d = p.detach().to(torch::kFloat64).contiguous();
    for (int j = 0; j < d.numel(); ++j) row(col++) = d.data_ptr<double>()[j];
  }
  return row;
}

using Maker =
    std::function<std::unique_ptr<torch::optim::Optimizer>(std::vector<torch::Tensor>, ContextPtr)>;

// The optimizers take shared ownership of a Context; local::run owns the rank's context.
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

using AfterStep = std::function<void(int step, int rank, torch::optim::Optimizer&,
                                     const std::vector<torch::Tensor>& params)>;

// Every rank's parameters after each step (steps + 1 matrices).
std::vector<MatrixXd> run_trajectory(int n, const topology::SchedulePtr& topology,
                                     const MatrixXd& x0, const MatrixXd& c, const Maker& make,
                                     int steps, torch::Dtype dtype = torch::kFloat64,
                                     const AfterStep& after_step = {}) {
  std::vector<MatrixXd> trajectory(steps + 1, MatrixXd::Zero(n, kDim));
  local::run(n, [&](Context& ctx) {
    ctx.set_topology(topology);
    const int rank = ctx.rank();
    std::vector<torch::Tensor> params = split_row(x0, rank, dtype, true);
    const std::vector<torch::Tensor> target = split_row(c, rank, dtype, false);
    auto opt = make(params, borrow(ctx));
    trajectory[0].row(rank) = flatten(params);
    for (int s = 0; s < steps; ++s) {
      train_step(*opt, params, target);
      trajectory[s + 1].row(rank) = flatten(params);
      if (after_step) after_step(s, rank, *opt, params);
    }
  });
  return trajectory;
}

double max_abs_difference(const MatrixXd& a, const MatrixXd& b) {
  return (a - b).cwiseAbs().maxCoeff();
}

bool bitwise_equal(const std::vector<MatrixXd>& a, const std::vector<MatrixXd>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t k = 0; k < a.size(); ++k)
    if (!(a[k].array() == b[k].array()).all()) return false;
  return true;
}

// ---------------------------------------------------------------- configurations

AlgorithmConfig test_config(const std::string& name) {
  AlgorithmConfig c;
  c.name = name;
  c.lr = 0.1;
  c.momentum = 0.5;
  c.weight_decay = 0.01;
  c.period = 2;
  c.gossip_rounds = 2;
  c.slowmo_beta = 0.6;
  c.slowmo_alpha = 0.8;
  c.qg_mu = 0.7;
  c.lars_eta = 0.5;
  c.adam_beta1 = 0.8;
  c.adam_beta2 = 0.9;
  c.adam_eps = 1e-6;
  return c;
}

ReferenceConfig reference_config(const AlgorithmConfig& c) {
  ReferenceConfig r;
  r.lr = c.lr;
  r.momentum = c.momentum;
  r.weight_decay = c.weight_decay;
  r.period = c.period;
  r.gossip_rounds = c.gossip_rounds;
  r.slowmo_beta = c.slowmo_beta;
  r.slowmo_alpha = c.slowmo_alpha;
  r.slowmo_gossip = c.slowmo_gossip;
  r.qg_mu = c.qg_mu;
  r.lars_eta = c.lars_eta;
  r.adam_beta1 = c.adam_beta1;
  r.adam_beta2 = c.adam_beta2;
  r.adam_eps = c.adam_eps;
  r.awc = c.combine == "awc";
  return r;
}

Maker factory_maker(const AlgorithmConfig& c) {
  return [c](std::vector<torch::Tensor> params, ContextPtr ctx) {
    return make_optimizer(c, std::move(params), std::move(ctx));
  };
}

const std::vector<std::string> kAlgorithms = {"pmsgd",
                                              "pmsgd-lars",
                                              "dsgd",
                                              "dsgd-awc",
                                              "dmsgd",
                                              "da-dmsgd",
                                              "awc-dmsgd",
                                              "qg-dmsgd",
                                              "decentlam",
                                              "slowmo",
                                              "dsgd-pga",
                                              "local-sgd",
                                              "dsgd-multi-gossip",
                                              "push-sum",
                                              "wrapper-sgd",
                                              "wrapper-adam",
                                              "wrapper-adamw"};

struct TopologyCase {
  std::string label;
  std::string name;
  int n;
};

const std::vector<TopologyCase> kTopologies = {{"single", "ring", 1},
                                               {"pair", "ring", 2},
                                               {"ring3", "ring", 3},
                                               {"ring4", "ring", 4},
                                               {"onepeer4", "one-peer-exponential", 4},
                                               {"exponential5", "exponential", 5}};

void PrintTo(const TopologyCase& t, std::ostream* os) {
  *os << t.label;
}

std::string label(std::string s) {
  for (auto& ch : s)
    if (ch == '-') ch = '_';
  return s;
}

// ---------------------------------------------------------------- every algorithm vs formula

class MatchesFormula : public ::testing::TestWithParam<std::tuple<std::string, TopologyCase>> {};

TEST_P(MatchesFormula, FourStepsOnEveryRank) {
  const auto& [name, topo] = GetParam();
  const AlgorithmConfig config = test_config(name);
  const auto schedule = topology::make_schedule(topo.name, topo.n);
  const MatrixXd x0 = initial_points(topo.n), c = targets(topo.n);
  const int steps = 4;
  const auto got = run_trajectory(topo.n, schedule, x0, c, factory_maker(config), steps);
  const auto want = testing::reference_trajectory(name, reference_config(config), x0, c, *schedule,
                                                  steps, kLayers);
  for (int k = 1; k <= steps; ++k)
    EXPECT_LT(max_abs_difference(got[k], want[k]), 1e-6) << name << " step " << k << "\n"
                                                         << got[k] << "\nexpected\n"
                                                         << want[k];
  // The update must do something (a reference bug and an optimizer bug that agree on a no-op
  // would pass otherwise).
  EXPECT_GT(max_abs_difference(got[steps], x0), 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Algorithms, MatchesFormula,
                         ::testing::Combine(::testing::ValuesIn(kAlgorithms),
                                            ::testing::ValuesIn(kTopologies)),
                         [](const auto& info) {
                           return label(std::get<0>(info.param)) + "_" +
                                  std::get<1>(info.param).label;
                         });

TEST(Formula, AdaptWithCombineWrappersMatch) {
  for (const std::string name : {"wrapper-sgd", "wrapper-adam", "wrapper-adamw"}) {
    for (const std::string topo : {"ring", "one-peer-exponential"}) {
      AlgorithmConfig config = test_config(name);
      config.combine = "awc";
      const auto schedule = topology::make_schedule(topo, 4);
      const MatrixXd x0 = initial_points(4), c = targets(4);
      const auto got = run_trajectory(4, schedule, x0, c, factory_maker(config), 4);
      const auto want = testing::reference_trajectory(name, reference_config(config), x0, c,
                                                      *schedule, 4, kLayers);
      for (int k = 1; k <= 4; ++k)
        EXPECT_LT(max_abs_difference(got[k], want[k]), 1e-6) << name << " on " << topo;
    }
  }
}

TEST(Formula, SlowMoWithGossipInner) {
  AlgorithmConfig config = test_config("slowmo");
  config.slowmo_gossip = true;
  config.period = 3;
  const auto schedule = topology::make_schedule("one-peer-exponential", 4);
  const MatrixXd x0 = initial_points(4), c = targets(4);
  const auto got = run_trajectory(4, schedule, x0, c, factory_maker(config), 7);
  const auto want = testing::reference_trajectory("slowmo", reference_config(config), x0, c,
                                                  *schedule, 7, kLayers);
  for (int k = 1; k <= 7; ++k) EXPECT_LT(max_abs_difference(got[k], want[k]), 1e-6) << k;
}

TEST(Formula, DecentLaMFollowsStackedRecursionOverManySteps) {
  // X+ = W(X - gamma G) + beta (X - X-), checked over 12 steps on a static and a dynamic graph.
  for (const std::string topo : {"ring", "one-peer-exponential"}) {
    AlgorithmConfig config = test_config("decentlam");
    config.momentum = 0.8;
    config.weight_decay = 0.0;
    const auto schedule = topology::make_schedule(topo, 4);
    const MatrixXd x0 = initial_points(4), c = targets(4);
    const auto got = run_trajectory(4, schedule, x0, c, factory_maker(config), 12);
    const auto want = testing::reference_trajectory("decentlam", reference_config(config), x0, c,
                                                    *schedule, 12, kLayers);
    for (int k = 1; k <= 12; ++k) EXPECT_LT(max_abs_difference(got[k], want[k]), 1e-6) << topo;
  }
}

TEST(Formula, Float32Parameters) {
  const AlgorithmConfig config = test_config("dmsgd");
  const auto schedule = topology::make_schedule("ring", 3);
  const MatrixXd x0 = initial_points(3), c = targets(3);
  const auto got = run_trajectory(3, schedule, x0, c, factory_maker(config), 4, torch::kFloat32);
  const auto want = testing::reference_trajectory("dmsgd", reference_config(config), x0, c,
                                                  *schedule, 4, kLayers);
  for (int k = 1; k <= 4; ++k) EXPECT_LT(max_abs_difference(got[k], want[k]), 1e-5);
}

TEST(Formula, ParameterGroupsKeepTheirOwnLearningRate) {
  // One rank (W = [1]): x1 = x0 - lr_group * (x0 - c) for each group.
  const MatrixXd x0 = initial_points(1), c = targets(1);
  local::run(1, [&](Context& ctx) {
    std::vector<torch::Tensor> params = split_row(x0, 0, torch::kFloat64, true);
    const auto target = split_row(c, 0, torch::kFloat64, false);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(std::vector<torch::Tensor>{params[0]});
    groups.emplace_back(std::vector<torch::Tensor>{params[1]},
                        std::make_unique<DSGDOptions>(DSGDOptions(0.05)));
    DSGD opt(std::move(groups), borrow(ctx), DSGDOptions(0.2));
    train_step(opt, params, target);
    const Eigen::RowVectorXd got = flatten(params);
    for (int j = 0; j < kDim; ++j) {
      const double lr = j < 2 ? 0.2 : 0.05;
      EXPECT_NEAR(got(j), x0(0, j) - lr * (x0(0, j) - c(0, j)), 1e-12) << j;
    }
  });
}

// ---------------------------------------------------------------- equivalences

TEST(Equivalence, DmSGDWithZeroMomentumIsDSGD) {
  for (const std::string topo : {"ring", "one-peer-exponential"}) {
    const auto schedule = topology::make_schedule(topo, 4);
    const MatrixXd x0 = initial_points(4), c = targets(4);
    AlgorithmConfig dmsgd = test_config("dmsgd");
    dmsgd.momentum = 0.0;
    const auto a = run_trajectory(4, schedule, x0, c, factory_maker(dmsgd), 6);
    const auto b = run_trajectory(4, schedule, x0, c, factory_maker(test_config("dsgd")), 6);
    for (int k = 1; k <= 6; ++k) EXPECT_LT(max_abs_difference(a[k], b[k]), 1e-12) << topo;
  }
}

TEST(Equivalence, OverlapGivesBitIdenticalResults) {
  struct Case {
    std::string label;
    std::function<Maker(bool overlap)> maker;
  };
  const std::vector<Case> cases = {
      {"dsgd-awc",
       [](bool overlap) {
         AlgorithmConfig c = test_config("dsgd-awc");
         c.overlap = overlap;
         return factory_maker(c);
       }},
      {"awc-dmsgd",
       [](bool overlap) {
         AlgorithmConfig c = test_config("awc-dmsgd");
         c.overlap = overlap;
         return factory_maker(c);
       }},
      {"wrapper-adam awc",
       [](bool overlap) {
         AlgorithmConfig c = test_config("wrapper-adam");
         c.combine = "awc";
         c.overlap = overlap;
         return factory_maker(c);
       }},
      {"dsgd awc, 3 gossip rounds",
       [](bool overlap) -> Maker {
         return [overlap](std::vector<torch::Tensor> p, ContextPtr ctx) {
           return std::make_unique<DSGD>(std::move(p), std::move(ctx),
                                         DSGDOptions(0.1)
                                             .momentum(0.3)
                                             .combine(Combine::kAdaptWithCombine)
                                             .gossip_rounds(3)
                                             .overlap(overlap));
         };
       }},
  };
  for (const auto& cs : cases) {
    for (const std::string topo : {"ring", "one-peer-exponential"}) {
      const auto schedule = topology::make_schedule(topo, 4);
      const MatrixXd x0 = initial_points(4), c = targets(4);
      const auto with = run_trajectory(4, schedule, x0, c, cs.maker(true), 6);
      const auto without = run_trajectory(4, schedule, x0, c, cs.maker(false), 6);
      EXPECT_TRUE(bitwise_equal(with, without)) << cs.label << " on " << topo;
      EXPECT_GT(max_abs_difference(with[6], x0), 1e-3);
    }
  }
}

TEST(Equivalence, AdaptWithCombineDSGDIsDGD) {
  // x_{k+1} = W x_k - gamma g(x_k), directly.
  const auto schedule = topology::make_schedule("ring", 4);
  const MatrixXd w = schedule->graph_at(0).mixing_matrix();
  const MatrixXd x0 = initial_points(4), c = targets(4);
  AlgorithmConfig config = test_config("dsgd-awc");
  config.weight_decay = 0.0;
  const auto got = run_trajectory(4, schedule, x0, c, factory_maker(config), 3);
  MatrixXd x = x0;
  for (int k = 1; k <= 3; ++k) {
    x = w * x - config.lr * (x - c);
    EXPECT_LT(max_abs_difference(got[k], x), 1e-12);
  }
}

// ---------------------------------------------------------------- push-sum

topology::Graph irregular_directed_graph() {
  // 0->1->2->3->0 plus 0->2 and 3->1: out-degrees 2, 1, 1, 2, so push-sum weights leave 1.
  topology::Graph g(4, "irregular-directed");
  const std::vector<std::pair<int, int>> edges = {{0, 1}, {1, 2}, {2, 3}, {3, 0}, {0, 2}, {3, 1}};
  for (const auto& [src, dst] : edges) g.set_edge(src, dst, 0.25);
  for (int i = 0; i < 4; ++i) g.set_self_weight(i, 1.0 - 0.25 * g.in_degree(i));
  return g;
}

TEST(PushSum, KeepsSumsOfNumeratorsAndWeightsOnDirectedGraphs) {
  for (const bool irregular : {false, true}) {
    const int n = 4, steps = 8;
    const topology::Graph graph =
        irregular ? irregular_directed_graph() : topology::directed_ring(n);
    const auto schedule = std::make_shared<topology::StaticSchedule>(graph);
    const MatrixXd x0 = initial_points(n), c = targets(n);
    std::vector<MatrixXd> numerators(steps, MatrixXd::Zero(n, kDim));
    std::vector<Eigen::VectorXd> weights(steps, Eigen::VectorXd::Zero(n));
    AlgorithmConfig config = test_config("push-sum");
    config.momentum = 0.0;
    config.weight_decay = 0.0;
    const auto z = run_trajectory(
        n, schedule, x0, c, factory_maker(config), steps, torch::kFloat64,
        [&](int step, int rank, torch::optim::Optimizer& opt, const std::vector<torch::Tensor>&) {
          auto& ps = dynamic_cast<PushSum&>(opt);
          numerators[step].row(rank) = flatten(ps.numerators());
          weights[step](rank) = ps.weight();
        });
    const auto want = testing::reference_trajectory("push-sum", reference_config(config), x0, c,
                                                    *schedule, steps, kLayers);
    Eigen::RowVectorXd sum = x0.colwise().sum();  // x_0 = z_0 since w_0 = 1
    for (int k = 0; k < steps; ++k) {
      EXPECT_NEAR(weights[k].sum(), n, 1e-12) << "step " << k;
      // Mixing keeps sum_i x_i; only the gradient steps move it: sum x+ = sum (x - lr g(z)).
      sum -= config.lr * (z[k] - c).colwise().sum();
      EXPECT_LT((numerators[k].colwise().sum() - sum).cwiseAbs().maxCoeff(), 1e-10);
      EXPECT_LT(max_abs_difference(z[k + 1], want[k + 1]), 1e-9);
    }
    if (irregular)
      EXPECT_GT(weights[steps - 1].maxCoeff() - weights[steps - 1].minCoeff(), 0.05);
    else
      EXPECT_LT((weights[steps - 1].array() - 1.0).abs().maxCoeff(), 1e-12);
  }
}

TEST(PushSum, ConvergesToTheAverageOptimum) {
  const int n = 4;
  const MatrixXd x0 = initial_points(n), c = targets(n);
  const Eigen::RowVectorXd optimum = c.colwise().mean();
  const double spread = (c.rowwise() - optimum).rowwise().norm().maxCoeff();
  for (const bool irregular : {false, true}) {
    const topology::Graph graph =
        irregular ? irregular_directed_graph() : topology::directed_ring(n);
    const auto schedule = std::make_shared<topology::StaticSchedule>(graph);
    AlgorithmConfig config = test_config("push-sum");
    config.lr = 0.05;
    config.momentum = 0.0;
    config.weight_decay = 0.0;
    const auto z = run_trajectory(n, schedule, x0, c, factory_maker(config), 600);
    const MatrixXd& last = z.back();
    // At the fixed point sum_i g_i(z_i) = 0, so the mean of z is the optimum exactly; each z_i
    // stays within an O(lr) neighbourhood.
    EXPECT_LT((last.colwise().mean() - optimum).cwiseAbs().maxCoeff(), 1e-8);
    EXPECT_LT((last.rowwise() - optimum).rowwise().norm().maxCoeff(), 0.1 * spread);
  }
}

// ---------------------------------------------------------------- periodic averaging

TEST(LocalSGD, AveragesExactlyEveryPeriod) {
  const int n = 4, period = 3, steps = 7;
  AlgorithmConfig config = test_config("local-sgd");
  config.period = period;
  const MatrixXd x0 = initial_points(n), c = targets(n);
  const auto x =
      run_trajectory(n, topology::make_schedule("ring", n), x0, c, factory_maker(config), steps);
  for (int k = 1; k <= steps; ++k) {
    const double disagreement = max_abs_difference(x[k], testing::row_average(x[k]));
    if (k % period == 0)
      EXPECT_LT(disagreement, 1e-14) << "step " << k;
    else
      EXPECT_GT(disagreement, 1e-2) << "step " << k;
  }
}

// ---------------------------------------------------------------- checkpoints

class Resume : public ::testing::TestWithParam<std::string> {};

// K1 steps, save, destroy, rebuild on fresh tensors, load, K2 steps == K1 + K2 steps straight.
// The learning rate is changed after step 2 (a scheduler would), so the checkpoint must carry
// it; the one-peer exponential graph makes the topology step matter.
TEST_P(Resume, ContinuesBitIdentically) {
  AlgorithmConfig config = test_config(GetParam());
  if (GetParam() == "wrapper-adam") config.combine = "awc";
  const int n = 4, first = 3, second = 4;
  const auto schedule = topology::make_schedule("one-peer-exponential", n);
  const MatrixXd x0 = initial_points(n), c = targets(n);
  const Maker make = factory_maker(config);
  auto maybe_change_lr = [&](int step, torch::optim::Optimizer& opt) {
    if (step == 1) set_learning_rate(opt, 0.5 * config.lr);
  };

  MatrixXd straight(n, kDim), resumed(n, kDim);
  local::run(n, [&](Context& ctx) {
    ctx.set_topology(schedule);
    const int rank = ctx.rank();
    auto params = split_row(x0, rank, torch::kFloat64, true);
    const auto target = split_row(c, rank, torch::kFloat64, false);
    auto opt = make(params, borrow(ctx));
    for (int s = 0; s < first + second; ++s) {
      train_step(*opt, params, target);
      maybe_change_lr(s, *opt);
    }
    straight.row(rank) = flatten(params);
  });
  local::run(n, [&](Context& ctx) {
    ctx.set_topology(schedule);
    const int rank = ctx.rank();
    auto params = split_row(x0, rank, torch::kFloat64, true);
    const auto target = split_row(c, rank, torch::kFloat64, false);
    std::stringstream checkpoint;
    std::vector<torch::Tensor> saved_params;
    {
      auto opt = make(params, borrow(ctx));
      for (int s = 0; s < first; ++s) {
        train_step(*opt, params, target);
        maybe_change_lr(s, *opt);
      }
      torch::save(*opt, checkpoint);
      for (const auto& p : params) saved_params.push_back(p.detach().clone());
    }
    std::vector<torch::Tensor> restored;
    for (const auto& p : saved_params) restored.push_back(p.clone().set_requires_grad(true));
    auto opt = make(restored, borrow(ctx));
    torch::load(*opt, checkpoint);
    EXPECT_EQ(learning_rate(*opt), 0.5 * config.lr);
    EXPECT_EQ(dynamic_cast<DecentOptimizer&>(*opt).iteration(), first);
    for (int s = first; s < first + second; ++s) train_step(*opt, restored, target);
    resumed.row(rank) = flatten(restored);
  });
  EXPECT_TRUE((straight.array() == resumed.array()).all()) << straight << "\nvs\n" << resumed;
}

INSTANTIATE_TEST_SUITE_P(Algorithms, Resume, ::testing::ValuesIn(kAlgorithms),
                         [](const auto& info) { return label(info.param); });

TEST(Checkpoint, RejectsAnotherAlgorithmsCheckpoint) {
  local::run(1, [&](Context& ctx) {
    auto params = split_row(initial_points(1), 0, torch::kFloat64, true);
    auto dsgd = make_optimizer(test_config("dsgd"), params, borrow(ctx));
    auto lam = make_optimizer(test_config("decentlam"), params, borrow(ctx));
    std::stringstream checkpoint;
    torch::save(*dsgd, checkpoint);
    try {
      torch::load(*lam, checkpoint);
      ADD_FAILURE() << "loading a dsgd checkpoint into decentlam did not raise";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("'dsgd'"), std::string::npos) << e.what();
    }
  });
}

// ---------------------------------------------------------------- convergence

double global_loss(const MatrixXd& x, const MatrixXd& c) {
  // (1/n) sum_i f(x_i), f(x) = (1/n) sum_j 0.5 ||x - c_j||^2.
  double total = 0;
  for (Eigen::Index i = 0; i < x.rows(); ++i)
    for (Eigen::Index j = 0; j < c.rows(); ++j) total += 0.5 * (x.row(i) - c.row(j)).squaredNorm();
  return total / static_cast<double>(x.rows() * c.rows());
}

class DecreasesLoss : public ::testing::TestWithParam<std::string> {};

TEST_P(DecreasesLoss, OverFiftySteps) {
  AlgorithmConfig config = test_config(GetParam());
  config.weight_decay = 0.0;
  config.period = 4;
  // Adam moves each coordinate by about lr per step, whatever the gradient's size.
  if (GetParam().rfind("wrapper-adam", 0) == 0) config.lr = 0.3;
  const int n = 4;
  // A common start (as after broadcast_parameters) far from the optimum; near it, the
  // heterogeneity keeps the decentralized and local methods in a neighbourhood only.
  const MatrixXd x0 = testing::row_average(initial_points(n)).array() + 4.0;
  const MatrixXd c = targets(n);
  const auto x =
      run_trajectory(n, topology::make_schedule("ring", n), x0, c, factory_maker(config), 50);
  const double optimum = global_loss(testing::row_average(c), c);
  const double start = global_loss(x0, c) - optimum;
  const double end = global_loss(x.back(), c) - optimum;
  EXPECT_LT(end, 0.1 * start) << "suboptimality " << start << " -> " << end;
}

INSTANTIATE_TEST_SUITE_P(Algorithms, DecreasesLoss, ::testing::ValuesIn(kAlgorithms),
                         [](const auto& info) { return label(info.param); });

TEST(Convergence, HeterogeneousFullBatchBiasOrdering) {
  // Full gradients, heterogeneous optima, ring of 4 (static W). PmSGD reaches mean(c) exactly;
  // D-SGD stops at its fixed point (I - (1-lr)W)^{-1} lr W C, away from mean(c); DmSGD behaves
  // as D-SGD with step lr/(1-beta) and so has a larger bias; DecentLaM reaches D-SGD's point.
  const int n = 4, steps = 400;
  const double lr = 0.1, beta = 0.5;
  const auto schedule = topology::make_schedule("ring", n);
  const MatrixXd w = schedule->graph_at(0).mixing_matrix();
  const MatrixXd x0 = initial_points(n), c = targets(n);
  const MatrixXd optimum = testing::row_average(c);
  auto run = [&](const std::string& name, const MatrixXd& start) {
    AlgorithmConfig config = test_config(name);
    config.lr = lr;
    config.momentum = beta;
    config.weight_decay = 0.0;
    return run_trajectory(n, schedule, start, c, factory_maker(config), steps).back();
  };
  auto bias = [&](const MatrixXd& x) { return (x - optimum).rowwise().norm().maxCoeff(); };

  // PmSGD keeps the ranks' differences x_i - x_j, so it starts from a common point.
  const MatrixXd pmsgd = run("pmsgd", testing::row_average(x0));
  EXPECT_LT(bias(pmsgd), 1e-9);

  const MatrixXd dsgd = run("dsgd", x0);
  EXPECT_LT(max_abs_difference(dsgd, testing::dsgd_fixed_point(w, c, lr)), 1e-9);
  EXPECT_GT(bias(dsgd), 1e-2);
  EXPECT_LT(bias(dsgd), 1.0);
  EXPECT_LT(max_abs_difference(testing::row_average(dsgd), optimum), 1e-9);

  const MatrixXd dmsgd = run("dmsgd", x0);
  EXPECT_LT(max_abs_difference(dmsgd, testing::dsgd_fixed_point(w, c, lr / (1 - beta))), 1e-9);
  EXPECT_GT(bias(dmsgd), 1.5 * bias(dsgd));

  const MatrixXd lam = run("decentlam", x0);
  EXPECT_LT(max_abs_difference(lam, testing::dsgd_fixed_point(w, c, lr)), 1e-9);
}

// DecentLaM's consensus recursion E+ = W E + beta (E - E-) is stable for a static symmetric W
// only; the optimizer warns on the others.
TEST(DecentLaM, StableOnStaticSymmetricTopologiesOnly) {
  EXPECT_TRUE(DecentLaM::stable_on(*topology::make_schedule("ring", 4)));
  EXPECT_TRUE(DecentLaM::stable_on(*topology::make_schedule("symmetric-exponential", 8)));
  EXPECT_TRUE(DecentLaM::stable_on(*topology::make_schedule("full", 5)));
  EXPECT_FALSE(DecentLaM::stable_on(*topology::make_schedule("exponential", 4)));
  EXPECT_FALSE(DecentLaM::stable_on(*topology::make_schedule("ring-directed", 3)));
  EXPECT_FALSE(DecentLaM::stable_on(*topology::make_schedule("one-peer-exponential", 4)));
  EXPECT_FALSE(DecentLaM::stable_on(*topology::make_schedule("one-peer-hypercube", 8)));
}

// ---------------------------------------------------------------- factory and options

TEST(Factory, ListsAndBuildsEveryAlgorithm) {
  const auto algorithms = list_algorithms();
  std::set<std::string> names;
  for (const auto& a : algorithms) {
    EXPECT_FALSE(a.description.empty()) << a.name;
    EXPECT_TRUE(names.insert(a.name).second) << "duplicate " << a.name;
  }
  for (const auto& name : kAlgorithms) EXPECT_TRUE(names.count(name)) << name;
  EXPECT_TRUE(names.count("wrapper"));
  local::run(2, [&](Context& ctx) {
    for (const auto& a : algorithms) {
      auto params = split_row(initial_points(2), ctx.rank(), torch::kFloat64, true);
      AlgorithmConfig config = test_config(a.name);
      config.base_optimizer = "adamw";
      auto opt = make_optimizer(config, params, borrow(ctx));
      auto* decent = dynamic_cast<DecentOptimizer*>(opt.get());
      ASSERT_NE(decent, nullptr) << a.name;
      EXPECT_EQ(decent->algorithm(), a.name == "wrapper" ? "wrapper-adamw" : a.name);
      EXPECT_EQ(learning_rate(*opt), config.lr);
    }
    auto params = split_row(initial_points(2), ctx.rank(), torch::kFloat64, true);
    AlgorithmConfig fedavg = test_config("fedavg");
    EXPECT_EQ(
        dynamic_cast<DecentOptimizer&>(*make_optimizer(fedavg, params, borrow(ctx))).algorithm(),
        "local-sgd");
  });
}

void expect_invalid(const AlgorithmConfig& config, const std::string& fragment) {
  try {
    validate(config);
    ADD_FAILURE() << "no error for " << config.name << " (" << fragment << ")";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Factory, RejectsBadNamesAndValues) {
  AlgorithmConfig c = test_config("adagossip");
  expect_invalid(c, "valid names: pmsgd, pmsgd-lars, dsgd");
  auto bad = [](auto mutate) {
    AlgorithmConfig c = test_config("dmsgd");
    mutate(c);
    return c;
  };
  expect_invalid(bad([](AlgorithmConfig& c) { c.lr = 0; }), "lr = 0");
  expect_invalid(bad([](AlgorithmConfig& c) { c.lr = -0.1; }), "lr = -0.1");
  expect_invalid(bad([](AlgorithmConfig& c) { c.lr = std::nan(""); }), "lr");
  expect_invalid(bad([](AlgorithmConfig& c) { c.momentum = 1.0; }), "momentum = 1");
  expect_invalid(bad([](AlgorithmConfig& c) { c.momentum = -0.1; }), "momentum");
  expect_invalid(bad([](AlgorithmConfig& c) { c.weight_decay = -1; }), "weight_decay");
  expect_invalid(bad([](AlgorithmConfig& c) { c.period = 0; }), "period = 0");
  expect_invalid(bad([](AlgorithmConfig& c) { c.gossip_rounds = 0; }), "gossip_rounds = 0");
  expect_invalid(bad([](AlgorithmConfig& c) { c.slowmo_beta = 1.5; }), "slowmo_beta");
  expect_invalid(bad([](AlgorithmConfig& c) { c.slowmo_alpha = 0; }), "slowmo_alpha");
  expect_invalid(bad([](AlgorithmConfig& c) { c.qg_mu = 1; }), "qg_mu");
  expect_invalid(bad([](AlgorithmConfig& c) { c.lars_eta = 0; }), "lars_eta");
  expect_invalid(bad([](AlgorithmConfig& c) { c.combine = "sideways"; }), "combine");
  AlgorithmConfig wrapper = test_config("wrapper");
  wrapper.base_optimizer = "rmsprop";
  expect_invalid(wrapper, "base_optimizer = 'rmsprop'");

  local::run(2, [&](Context& ctx) {
    auto params = split_row(initial_points(2), ctx.rank(), torch::kFloat64, true);
    try {
      make_optimizer(test_config("nope"), params, borrow(ctx));
      ADD_FAILURE() << "unknown name accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("rank " + std::to_string(ctx.rank())), std::string::npos)
          << e.what();
    }
  });
  EXPECT_THROW(make_optimizer(test_config("dsgd"), {}, nullptr), InvalidArgument);
}

TEST(Options, ConstructorsRejectBadValues) {
  local::run(1, [&](Context& ctx) {
    auto params = split_row(initial_points(1), 0, torch::kFloat64, true);
    auto ctxp = borrow(ctx);
    EXPECT_THROW(DSGD(params, ctxp, DSGDOptions(0.0)), InvalidArgument);
    EXPECT_THROW(DSGD(params, ctxp, DSGDOptions(0.1).momentum(1.0)), InvalidArgument);
    EXPECT_THROW(DSGD(params, ctxp, DSGDOptions(0.1).gossip_rounds(0)), InvalidArgument);
    EXPECT_THROW(DSGD(params, ctxp, DSGDOptions(0.1).global_average_period(-1)), InvalidArgument);
    EXPECT_THROW(DSGD(params, ctxp,
                      DSGDOptions(0.1).average_momentum(true).combine(Combine::kAdaptWithCombine)),
                 InvalidArgument);
    EXPECT_THROW(PmSGD(params, ctxp, PmSGDOptions(0.1).lars(true).lars_eta(-1)), InvalidArgument);
    EXPECT_THROW(DecentLaM(params, ctxp, DecentLaMOptions(-1)), InvalidArgument);
    EXPECT_THROW(QGDmSGD(params, ctxp, QGDmSGDOptions(0.1).mu(1.0)), InvalidArgument);
    EXPECT_THROW(LocalSGD(params, ctxp, LocalSGDOptions(0.1).period(0)), InvalidArgument);
    EXPECT_THROW(SlowMo(params, ctxp, SlowMoOptions(0.1).slowmo_alpha(0)), InvalidArgument);
    EXPECT_THROW(PushSum(params, ctxp, PushSumOptions(0.1).weight_decay(-0.5)), InvalidArgument);
    EXPECT_THROW(DSGD(params, nullptr, DSGDOptions(0.1)), InvalidArgument);
    EXPECT_THROW(DecentralizedWrapper(nullptr, ctxp), InvalidArgument);
    // A group carrying another optimizer's options.
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(params, std::make_unique<torch::optim::SGDOptions>(0.1));
    EXPECT_THROW(DSGD(std::move(groups), ctxp, DSGDOptions(0.1)), InvalidArgument);
    // Non-contiguous parameters cannot be communicated.
    torch::Tensor wide = torch::zeros({3, 4}, torch::kFloat64);
    torch::Tensor strided = wide.t().set_requires_grad(true);
    DSGD opt(std::vector<torch::Tensor>{strided}, ctxp, DSGDOptions(0.1));
    EXPECT_THROW(opt.step(), InvalidArgument);
  });
}

TEST(Options, SchedulersDriveTheLearningRate) {
  local::run(2, [&](Context& ctx) {
    ctx.set_topology(topology::ring(2));
    auto params = split_row(initial_points(2), ctx.rank(), torch::kFloat64, true);
    const auto target = split_row(targets(2), ctx.rank(), torch::kFloat64, false);
    for (const std::string name : {"dmsgd", "wrapper-adam", "push-sum"}) {
      auto opt = make_optimizer(test_config(name), params, borrow(ctx));
      // torch's StepLR scales at its 2nd and 4th step() calls (counting from 0).
      torch::optim::StepLR scheduler(*opt, /*step_size=*/2, /*gamma=*/0.5);
      for (int s = 0; s < 5; ++s) {
        train_step(*opt, params, target);
        scheduler.step();
      }
      EXPECT_DOUBLE_EQ(learning_rate(*opt), 0.025) << name;
      if (auto* wrapper = dynamic_cast<DecentralizedWrapper*>(opt.get())) {
        // The base receives the wrapper's options before each of its steps.
        train_step(*opt, params, target);
        EXPECT_DOUBLE_EQ(wrapper->base().param_groups()[0].options().get_lr(), 0.025);
      }
    }
  });
}

}  // namespace
}  // namespace decent::optim

int main(int argc, char** argv) {
  torch::set_num_threads(1);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
