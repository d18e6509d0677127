// Algorithms that communicate exactly, but only every few iterations.
//
// Local SGD / FedAvg (lazy communication, "local-sgd"): local (momentum) SGD steps,
//   m_i <- beta m_i + d_i;  x_i <- x_i - gamma m_i,
// and after every period-th step (iteration k+1 divisible by period) the exact average
// x_i <- (1/n) sum_j x_j. Momentum buffers stay local. period 1 with beta 0 is PSGD on models.
//
// SlowMo (Wang, Tantia, Ballas & Rabbat 2019, "slowmo"): the base optimizer (local momentum
// SGD as above, or DmSGD over the topology with gossip_inner(true)) runs for period = tau
// steps from x_start; then
//   x_avg = (1/n) sum_j x_j                  (exact average, allreduce)
//   u <- beta_s u + (x_start - x_avg) / gamma
//   x <- x_start - alpha gamma u;  x_start <- x
// with gamma the group's current learning rate. The base momentum buffers are kept across outer
// iterations. Ranks must start from the same x (broadcast_parameters), as x_start is local.
//
// d_i = g_i + weight_decay * x_i. Per group: lr, momentum, weight_decay. Optimizer-wide:
// period, slowmo_beta, slowmo_alpha, gossip_inner.
#pragma once

#include "decent/torch/optim/base.h"

namespace decent::optim {

struct LocalSGDOptions : public torch::optim::OptimizerCloneableOptions<LocalSGDOptions> {
  LocalSGDOptions(double lr = 0.1);  // NOLINT: implicit like torch::optim::SGDOptions
  TORCH_ARG(double, lr);
  TORCH_ARG(double, momentum) = 0.0;
  TORCH_ARG(double, weight_decay) = 0.0;
  // Iterations between exact averages (tau >= 1).
  TORCH_ARG(int, period) = 8;

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
};

class LocalSGD : public DecentOptimizer {
 public:
  LocalSGD(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
           LocalSGDOptions defaults = {});
  LocalSGD(std::vector<torch::Tensor> params, ContextPtr ctx, LocalSGDOptions defaults = {});
  torch::Tensor step(LossClosure closure = nullptr) override;
};

struct SlowMoOptions : public torch::optim::OptimizerCloneableOptions<SlowMoOptions> {
  SlowMoOptions(double lr = 0.1);  // NOLINT: implicit like torch::optim::SGDOptions
  TORCH_ARG(double, lr);
  // Base optimizer momentum in [0, 1).
  TORCH_ARG(double, momentum) = 0.9;
  TORCH_ARG(double, weight_decay) = 0.0;
  // Inner steps per outer iteration (tau >= 1).
  TORCH_ARG(int, period) = 8;
  // Slow momentum beta_s in [0, 1).
  TORCH_ARG(double, slowmo_beta) = 0.5;
  // Slow learning rate alpha (> 0); alpha 1, beta_s 0 reduces to the base algorithm + average.
  TORCH_ARG(double, slowmo_alpha) = 1.0;
  // Inner steps average with neighbours (DmSGD, adapt-then-combine) instead of staying local.
  TORCH_ARG(bool, gossip_inner) = false;

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
};

class SlowMo : public DecentOptimizer {
 public:
  SlowMo(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
         SlowMoOptions defaults = {});
  SlowMo(std::vector<torch::Tensor> params, ContextPtr ctx, SlowMoOptions defaults = {});
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace decent::optim
