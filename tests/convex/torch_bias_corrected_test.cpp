// The LibTorch optimizers EXTRA, ExactDiffusion, D2, GradientTracking and DGD against the Eigen
// solvers of decent_convex on a least-squares problem (same x^0 = 0, same gradients, same
// topology steps), with the parameter split in two tensors of two groups, and checkpoint/resume.
#include "decent/convex/solvers.h"
#include "decent/torch/optim/factory.h"
#include "decent/torch/optim_bias_corrected.h"
#include "reference.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace decent::convex {
namespace {

using Maker = std::function<std::unique_ptr<optim::DecentOptimizer>(
    std::vector<torch::optim::OptimizerParamGroup>, ContextPtr)>;

constexpr double kLr = 0.1;
constexpr int kSplit = 4;  // x = [first 4 coordinates | the rest], two parameter groups

ContextPtr borrow(Context& ctx) {
  return ContextPtr(&ctx, [](Context*) {});
}

struct Case {
  std::string name;
  Algorithm algorithm;
  std::string topology;
  Maker make;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name << " on " << c.topology;
}

template <typename Optimizer>
Maker bias_corrected() {
  return [](std::vector<torch::optim::OptimizerParamGroup> groups, ContextPtr ctx) {
    return std::make_unique<Optimizer>(std::move(groups), std::move(ctx),
                                       optim::BiasCorrectedOptions(kLr));
  };
}

Maker dgd() {
  return [](std::vector<torch::optim::OptimizerParamGroup> groups, ContextPtr ctx) {
    std::vector<torch::Tensor> params;
    for (auto& g : groups)
      for (auto& p : g.params()) params.push_back(p);
    return std::make_unique<optim::DGD>(std::move(params), std::move(ctx), kLr);
  };
}

// The same algorithms built by name, as decent-train builds them (one parameter group).
Maker by_name(const std::string& name) {
  return [name](std::vector<torch::optim::OptimizerParamGroup> groups, ContextPtr ctx) {
    std::vector<torch::Tensor> params;
    for (auto& g : groups)
      for (auto& p : g.params()) params.push_back(p);
    optim::AlgorithmConfig config;
    config.name = name;
    config.lr = kLr;
    auto built = optim::make_optimizer(config, std::move(params), std::move(ctx));
    auto* decent = dynamic_cast<optim::DecentOptimizer*>(built.get());
    if (decent == nullptr) throw std::logic_error(name + " is not a DecentOptimizer");
    built.release();
    return std::unique_ptr<optim::DecentOptimizer>(decent);
  };
}

std::vector<Case> cases() {
  return {
      {"extra", Algorithm::kExtra, "ring", bias_corrected<optim::EXTRA>()},
      {"exact_diffusion", Algorithm::kExactDiffusion, "one-peer-exponential",
       bias_corrected<optim::ExactDiffusion>()},
      {"d2", Algorithm::kD2, "ring", bias_corrected<optim::D2>()},
      {"gradient_tracking", Algorithm::kGradientTracking, "one-peer-exponential",
       bias_corrected<optim::GradientTracking>()},
      {"dgd", Algorithm::kDgd, "one-peer-exponential", dgd()},
      {"factory_extra", Algorithm::kExtra, "exponential", by_name("extra")},
      {"factory_ed", Algorithm::kExactDiffusion, "ring", by_name("ed")},
      {"factory_d2", Algorithm::kD2, "ring", by_name("d2")},
      {"factory_diging", Algorithm::kGradientTracking, "one-peer-exponential", by_name("diging")}};
}

// Rank `rank`'s x as two float64 parameters, in two groups.
struct Params {
  torch::Tensor head, tail;
  std::vector<torch::optim::OptimizerParamGroup> groups() const {
    return {torch::optim::OptimizerParamGroup({head}), torch::optim::OptimizerParamGroup({tail})};
  }
  Eigen::VectorXd x() const {
    Eigen::VectorXd v(head.numel() + tail.numel());
    for (int c = 0; c < head.numel(); ++c) v[c] = head[c].item<double>();
    for (int c = 0; c < tail.numel(); ++c) v[kSplit + c] = tail[c].item<double>();
    return v;
  }
};

Params make_params(const Eigen::VectorXd& x) {
  auto tensor = [](const double* data, int count) {
    return torch::from_blob(const_cast<double*>(data), {count}, torch::kFloat64)
        .clone()
        .set_requires_grad(true);
  };
  return {tensor(x.data(), kSplit), tensor(x.data() + kSplit, static_cast<int>(x.size()) - kSplit)};
}

// Sets the gradients of the rank's f_i at the current parameters and steps.
void train_step(const Problem& problem, int rank, Params& p, torch::optim::Optimizer& opt) {
  const Eigen::VectorXd g = problem.local_gradient(rank, p.x());
  p.head.mutable_grad() =
      torch::from_blob(const_cast<double*>(g.data()), {kSplit}, torch::kFloat64).clone();
  p.tail.mutable_grad() = torch::from_blob(const_cast<double*>(g.data() + kSplit),
                                           {static_cast<long>(g.size()) - kSplit}, torch::kFloat64)
                              .clone();
  opt.step();
}

class TorchBiasCorrectedTest : public testing::TestWithParam<Case> {};

TEST_P(TorchBiasCorrectedTest, MatchesTheEigenSolver) {
  const Case c = GetParam();
  const int n = 4, steps = 8;
  const Problem problem = Problem::generate(test::least_squares(n));
  const auto schedule = test::schedule(c.topology, n);
  SolverOptions o;
  o.algorithm = c.algorithm;
  o.step_size = kLr;
  o.iterations = steps;
  const auto expected = test::run_solver(problem, schedule, o);
  std::vector<Eigen::VectorXd> actual(n);
  local::run(n, [&](Context& ctx) {
    ctx.set_topology(schedule);
    Params p = make_params(Eigen::VectorXd::Zero(problem.dim()));
    auto opt = c.make(p.groups(), borrow(ctx));
    for (int k = 0; k < steps; ++k) train_step(problem, ctx.rank(), p, *opt);
    actual[ctx.rank()] = p.x();
  });
  for (int i = 0; i < n; ++i) {
    const double scale = expected[i].x.norm();
    EXPECT_GT((expected[i].x).norm(), 0.1);
    EXPECT_LT((actual[i] - expected[i].x).norm(), 1e-12 * scale)
        << c.name << " rank " << i << "\n"
        << actual[i].transpose() << "\nvs\n"
        << expected[i].x.transpose();
  }
}

// 3 steps, save, rebuild on fresh tensors, load, 4 more == 7 steps straight, bit for bit; the
// one-peer schedule makes the restored iteration counter matter.
TEST_P(TorchBiasCorrectedTest, ResumesBitIdentically) {
  const Case c = GetParam();
  const int n = 4, first = 3, second = 4;
  const Problem problem = Problem::generate(test::least_squares(n));
  const auto schedule = test::schedule("one-peer-exponential", n);
  std::vector<Eigen::VectorXd> straight(n), resumed(n);
  local::run(n, [&](Context& ctx) {
    ctx.set_topology(schedule);
    Params p = make_params(Eigen::VectorXd::Zero(problem.dim()));
    auto opt = c.make(p.groups(), borrow(ctx));
    for (int k = 0; k < first + second; ++k) train_step(problem, ctx.rank(), p, *opt);
    straight[ctx.rank()] = p.x();
  });
  local::run(n, [&](Context& ctx) {
    ctx.set_topology(schedule);
    std::stringstream checkpoint;
    Eigen::VectorXd saved;
    {
      Params p = make_params(Eigen::VectorXd::Zero(problem.dim()));
      auto opt = c.make(p.groups(), borrow(ctx));
      for (int k = 0; k < first; ++k) train_step(problem, ctx.rank(), p, *opt);
      torch::save(*opt, checkpoint);
      saved = p.x();
    }
    Params p = make_params(saved);
    auto opt = c.make(p.groups(), borrow(ctx));
    torch::load(*opt, checkpoint);
    EXPECT_EQ(opt->iteration(), first);
    for (int k = first; k < first + second; ++k) train_step(problem, ctx.rank(), p, *opt);
    resumed[ctx.rank()] = p.x();
  });
  for (int i = 0; i < n; ++i) EXPECT_EQ(straight[i], resumed[i]) << c.name << " rank " << i;
}

INSTANTIATE_TEST_SUITE_P(Optimizers, TorchBiasCorrectedTest, testing::ValuesIn(cases()),
                         [](const testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST(TorchBiasCorrectedOptionsTest, RejectsBadOptionsAndForeignCheckpoints) {
  local::run(1, [&](Context& ctx) {
    Params p = make_params(Eigen::VectorXd::Zero(10));
    EXPECT_THROW(optim::EXTRA(p.groups(), borrow(ctx), optim::BiasCorrectedOptions(-1.0)),
                 InvalidArgument);
    EXPECT_THROW(optim::GradientTracking(p.groups(), borrow(ctx),
                                         optim::BiasCorrectedOptions(0.1).weight_decay(-1)),
                 InvalidArgument);
    optim::EXTRA extra(p.groups(), borrow(ctx));
    optim::ExactDiffusion diffusion(p.groups(), borrow(ctx));
    std::stringstream checkpoint;
    torch::save(extra, checkpoint);
    try {
      torch::load(diffusion, checkpoint);
      ADD_FAILURE() << "loading an extra checkpoint into exact-diffusion did not raise";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("'extra'"), std::string::npos) << e.what();
    }
  });
}

}  // namespace
}  // namespace decent::convex
