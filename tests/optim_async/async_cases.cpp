#include "async_cases.h"

#include "decent/comm/window.h"
#include "decent/topology/generators.h"
#include "decent/torch/optim/factory.h"
#include "decent/torch/optim_async.h"
#include "decent/torch/tensor_ops.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <thread>

namespace decent::testing {
namespace {

using optim::ADPSGD;
using optim::AsyncGossip;
using optim::AsyncOptions;

constexpr std::int64_t kDim = 4;
constexpr std::int64_t kRows = 12;

ContextPtr borrow(Context& ctx) {
  return ContextPtr(&ctx, [](Context*) {});
}

// Rank i's least-squares data: f_i(x) = ||A_i x - b_i||^2 / (2 kRows), heterogeneous optima.
struct LeastSquares {
  torch::Tensor a, b;
};

LeastSquares data_of(int rank) {
  // A generator of its own: the local backend's ranks are threads sharing torch's global one.
  at::Generator generator = at::detail::createCPUGenerator(1000 + rank);
  const auto options = torch::TensorOptions().dtype(torch::kFloat64);
  LeastSquares d;
  d.a = at::randn({kRows, kDim}, generator, options);
  d.b = d.a.matmul(torch::arange(1, kDim + 1, torch::kFloat64)) + (rank % 3 - 1.0) +
        0.3 * at::randn({kRows}, generator, options);
  return d;
}

// argmin (1/n) sum_i f_i: the normal equations of all ranks' rows stacked.
torch::Tensor optimum(int n) {
  auto ata = torch::zeros({kDim, kDim}, torch::kFloat64);
  auto atb = torch::zeros({kDim}, torch::kFloat64);
  for (int r = 0; r < n; ++r) {
    const LeastSquares d = data_of(r);
    ata += d.a.t().matmul(d.a);
    atb += d.a.t().matmul(d.b);
  }
  return torch::linalg_solve(ata, atb.unsqueeze(1)).squeeze(1);
}

void set_gradient(const torch::Tensor& x, const LeastSquares& d) {
  if (x.grad().defined()) x.grad().zero_();
  const torch::Tensor loss = (d.a.matmul(x) - d.b).pow(2).sum() / (2.0 * kRows);
  loss.backward();
}

// Runs `steps` steps of `opt` on rank's least squares with a decaying step size. The pause
// stands for the computation of a real model: it lets the ranks progress side by side, as
// they do in training, rather than one thread running all its steps before another starts
// (then the early rank's data would weigh less in the final average: asynchrony's own bias).
template <typename Optimizer>
void train(Optimizer& opt, const torch::Tensor& x, int rank, int steps, double lr0,
           std::chrono::microseconds pause = std::chrono::microseconds(200)) {
  const LeastSquares d = data_of(rank);
  for (int k = 0; k < steps; ++k) {
    optim::set_learning_rate(opt, lr0 / (1.0 + k / 100.0));
    set_gradient(x, d);
    if (pause.count() > 0) std::this_thread::sleep_for(pause);
    opt.step();
  }
}

// After every rank stopped: the models agree and their average is the optimum.
template <typename Optimizer>
void expect_converged(Context& c, Optimizer& opt, const torch::Tensor& x, double tolerance,
                      double spread_bound = -1.0) {
  c.barrier();
  opt.refresh_parameters();
  const double spread = consensus_distance(c, {x});
  std::vector<torch::Tensor> mean = {x.detach().clone()};
  allreduce_(c, mean, ReduceOp::kAverage);
  const double error = (mean[0] - optimum(c.size())).norm().item<double>();
  EXPECT_LT(error, tolerance) << "rank " << c.rank() << ": mean model " << mean[0];
  EXPECT_LT(spread, spread_bound > 0 ? spread_bound : tolerance * tolerance) << "rank " << c.rank();
}

torch::Tensor start_point(int rank) {
  // Different on every rank, far from the optimum: the consensus distance starts large.
  return torch::full({kDim}, 3.0 * rank - 5.0, torch::kFloat64).requires_grad_(true);
}

std::vector<AsyncCase> make_cases() {
  std::vector<AsyncCase> cases;
  auto add = [&](std::string name, std::function<void(Context&)> body, int min_size = 1) {
    cases.push_back({std::move(name), std::move(body), min_size});
  };

  add("AdPsgdConvergesOnLeastSquares", [](Context& c) {
    c.set_topology(topology::ring(c.size()));
    torch::Tensor x = start_point(c.rank());
    const double initial_spread = consensus_distance(c, {x});
    {
      ADPSGD opt(std::vector<torch::Tensor>{x}, borrow(c), AsyncOptions(0.05));
      train(opt, x, c.rank(), 600, 0.05);
      expect_converged(c, opt, x, 0.15);
      if (c.size() > 1) {
        EXPECT_GE(opt.last_peer(), 0);
        EXPECT_LT(consensus_distance(c, {x}), 1e-3 * initial_spread);
      }
      c.barrier();
    }
  });

  add("AdPsgdWithMomentumConverges", [](Context& c) {
    c.set_topology(topology::exponential(c.size()));
    torch::Tensor x = start_point(c.rank());
    ADPSGD opt(std::vector<torch::Tensor>{x}, borrow(c), AsyncOptions(0.02).momentum(0.5));
    train(opt, x, c.rank(), 600, 0.02);
    // Momentum amplifies the bias from heterogeneous data (ALGORITHMS.md), and more so with
    // asynchrony: the check is progress (the error of the mean model shrinks fivefold) and
    // agreement.
    c.barrier();
    opt.refresh_parameters();
    std::vector<torch::Tensor> mean = {x.detach().clone()};
    allreduce_(c, mean, ReduceOp::kAverage);
    const double error = (mean[0] - optimum(c.size())).norm().item<double>();
    const double initial_error =
        (torch::full({kDim}, 1.5 * (c.size() - 1) - 5.0, torch::kFloat64) - optimum(c.size()))
            .norm()
            .item<double>();
    EXPECT_LT(error, 0.2 * initial_error) << "rank " << c.rank();
    EXPECT_LT(consensus_distance(c, {x}), 0.05) << "rank " << c.rank();
    c.barrier();
  });

  // Averaging alone (no gradient): the sum over ranks is kept exactly and the models meet at the
  // average of the starting points, (n - 1) / 2 for x_i = i.
  add("AdPsgdAveragingPreservesTheSum", [](Context& c) {
    c.set_topology(topology::ring(c.size()));
    torch::Tensor x = torch::full({3}, static_cast<double>(c.rank()), torch::kFloat64);
    x.requires_grad_(true);
    ADPSGD opt(std::vector<torch::Tensor>{x}, borrow(c), AsyncOptions(0.1));
    for (int k = 0; k < 300; ++k) {
      opt.step();  // no backward: the gradient counts as zero
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    c.barrier();
    opt.refresh_parameters();
    std::vector<torch::Tensor> sum = {x.detach().clone()};
    allreduce_(c, sum, ReduceOp::kSum);
    const double want = c.size() * (c.size() - 1) / 2.0;
    for (std::int64_t k = 0; k < 3; ++k) EXPECT_NEAR(sum[0][k].item<double>(), want, 1e-9);
    for (std::int64_t k = 0; k < 3; ++k)
      EXPECT_NEAR(x[k].item<double>(), (c.size() - 1) / 2.0, 1e-2) << "rank " << c.rank();
    c.barrier();
  });

  // Their window traffic is in Context::stats(): an AD-PSGD step with a peer reads the peer's
  // model and writes the average back (one model received, one sent), a gossip step on an
  // undirected graph puts the model to every out-neighbour. Steps take part in no collective,
  // so the deltas are exact.
  add("AsyncTrafficIsCounted", [](Context& c) {
    c.set_topology(topology::ring(c.size()));
    const std::uint64_t model_bytes = 8 * kDim;  // float64 parameters
    const std::uint64_t peers = c.size() > 1 ? 1 : 0;
    const std::uint64_t degree = c.size() == 1 ? 0 : (c.size() == 2 ? 1 : 2);
    constexpr std::uint64_t kSteps = 25;
    {
      torch::Tensor x = start_point(c.rank());
      ADPSGD opt(std::vector<torch::Tensor>{x}, borrow(c), AsyncOptions(0.01));
      const CommStats before = c.stats();
      for (std::uint64_t k = 0; k < kSteps; ++k) opt.step();
      const CommStats after = c.stats();
      EXPECT_EQ(after.bytes_sent - before.bytes_sent, kSteps * peers * model_bytes);
      EXPECT_EQ(after.bytes_received - before.bytes_received, kSteps * peers * model_bytes);
      EXPECT_EQ(after.messages_sent - before.messages_sent, kSteps * peers);
      EXPECT_EQ(after.operations - before.operations, 2 * kSteps * peers);
      c.barrier();
    }
    {
      torch::Tensor x = start_point(c.rank());
      AsyncGossip opt(std::vector<torch::Tensor>{x}, borrow(c), AsyncOptions(0.01));
      EXPECT_FALSE(opt.push_sum());
      const CommStats before = c.stats();
      for (std::uint64_t k = 0; k < kSteps; ++k) opt.step();
      const CommStats after = c.stats();
      EXPECT_EQ(after.bytes_sent - before.bytes_sent, kSteps * degree * model_bytes);
      EXPECT_EQ(after.messages_sent - before.messages_sent, kSteps * degree);
      EXPECT_EQ(after.bytes_received, before.bytes_received);
      c.barrier();
    }
  });

  add("AsyncGossipConvergesOnLeastSquares", [](Context& c) {
    c.set_topology(topology::exponential(c.size()));
    torch::Tensor x = start_point(c.rank());
    AsyncGossip opt(std::vector<torch::Tensor>{x}, borrow(c), AsyncOptions(0.05));
    train(opt, x, c.rank(), 600, 0.05);
    // With push-sum (exponential graphs are directed), ranks that step at different rates weigh
    // their gradients by unequal weights for a while: a small bias on a loaded machine.
    expect_converged(c, opt, x, 0.3);
    c.barrier();
  });

  // Directed ring: push-sum weights. Mass is conserved: once every rank has stopped and drained
  // its slots, the weights sum to n.
  add(
      "AsyncGossipPushSumOnDirectedRing",
      [](Context& c) {
        c.set_topology(topology::directed_ring(c.size()));
        torch::Tensor x = start_point(c.rank());
        AsyncGossip opt(std::vector<torch::Tensor>{x}, borrow(c), AsyncOptions(0.05));
        EXPECT_EQ(opt.push_sum(), c.size() > 2);
        train(opt, x, c.rank(), 800, 0.05);
        // The ranks of a directed ring hear from one neighbour each, late ones from stale mass:
        // agreement is looser than on the undirected graphs (measured up to 0.11 under load).
        expect_converged(c, opt, x, 0.3, 0.25);
        double weight = opt.weight();
        c.allreduce(Buffer(&weight, 1), ReduceOp::kSum);
        EXPECT_NEAR(weight, c.size(), 1e-9);
        c.barrier();
      },
      2);

  // One rank 20x slower than the others: nobody waits for it and the models still agree. (Its
  // data weigh less in the result, since it contributes fewer gradients: the optimum reached is
  // that of a reweighted objective, so only progress towards the true one is checked.)
  add(
      "SlowRankDoesNotBlock",
      [](Context& c) {
        c.set_topology(topology::ring(c.size()));
        for (const char* algorithm : {"ad-psgd", "async-gossip"}) {
          torch::Tensor x = start_point(c.rank());
          std::vector<torch::Tensor> start = {x.detach().clone()};
          allreduce_(c, start, ReduceOp::kAverage);
          const double initial_error = (start[0] - optimum(c.size())).norm().item<double>();
          const double initial_spread = consensus_distance(c, {x});
          std::unique_ptr<optim::AsyncDecentOptimizer> opt;
          if (std::string(algorithm) == "ad-psgd") {
            opt = std::make_unique<ADPSGD>(std::vector<torch::Tensor>{x}, borrow(c),
                                           AsyncOptions(0.05));
          } else {
            opt = std::make_unique<AsyncGossip>(std::vector<torch::Tensor>{x}, borrow(c),
                                                AsyncOptions(0.05));
          }
          const bool slow = c.rank() == 0;
          train(*opt, x, c.rank(), slow ? 30 : 600, 0.05,
                std::chrono::microseconds(slow ? 4000 : 200));
          c.barrier();
          opt->refresh_parameters();
          std::vector<torch::Tensor> mean = {x.detach().clone()};
          allreduce_(c, mean, ReduceOp::kAverage);
          const double error = (mean[0] - optimum(c.size())).norm().item<double>();
          EXPECT_LT(error, 0.5 * initial_error) << algorithm << " rank " << c.rank();
          EXPECT_LT(consensus_distance(c, {x}), 1e-2 * initial_spread) << algorithm;
          c.barrier();
        }
      },
      2);

  return cases;
}

}  // namespace

const std::vector<AsyncCase>& async_cases() {
  static const std::vector<AsyncCase> cases = make_cases();
  return cases;
}

}  // namespace decent::testing
