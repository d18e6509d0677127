// Decentralized momentum methods that correct the bias momentum adds to D-SGD.
//
// DecentLaM (Yuan et al. 2021, "decentlam"): momentum on the effective gradient of one
// adapt-then-combine step,
//   g~_i = (1/gamma) (x_i - sum_j w_ij (x_j - gamma d_j));  m_i <- beta m_i + g~_i;
//   x_i <- x_i - gamma m_i,
// stacked: X+ = W(X - gamma D) + beta (X - X-). Its limiting bias on heterogeneous data is the
// one of D-SGD, while it converges as fast as DmSGD.
//
// QG-DmSGD (quasi-global momentum, Lin et al. 2021, "qg-dmsgd"):
//   x_i^{+1/2} = x_i - gamma (d_i + beta m_i);  x_i+ = sum_j w_ij x_j^{+1/2};
//   m_i <- mu m_i + (1 - mu) (x_i - x_i+) / gamma.
// The momentum tracks the displacement of the averaged iterate instead of the local gradient.
//
// In both, d_i = g_i + weight_decay * x_i. Per group: lr, momentum (beta), weight_decay, mu.
#pragma once

#include "decent/torch/optim/base.h"

namespace decent::optim {

struct DecentLaMOptions : public torch::optim::OptimizerCloneableOptions<DecentLaMOptions> {
  DecentLaMOptions(double lr = 0.1);  // NOLINT: implicit like torch::optim::SGDOptions
  TORCH_ARG(double, lr);
  // beta in [0, 1).
  TORCH_ARG(double, momentum) = 0.9;
  TORCH_ARG(double, weight_decay) = 0.0;

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
};

class DecentLaM : public DecentOptimizer {
 public:
  DecentLaM(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
            DecentLaMOptions defaults = {});
  DecentLaM(std::vector<torch::Tensor> params, ContextPtr ctx, DecentLaMOptions defaults = {});
  torch::Tensor step(LossClosure closure = nullptr) override;

  // True when DecentLaM's momentum is stable on `schedule` whatever the step size: a static,
  // symmetric W. On a directed or time-varying W the consensus error obeys
  // E+ = W E + beta (E - E-), which grows for beta = 0.9 (spectral radius 1.16 on the 4-rank
  // exponential graph, 1.08 per step on the 4-rank one-peer exponential graph, 1.05 on the
  // 8-rank one-peer hypercube); the first step() on such a topology prints a warning.
  static bool stable_on(const topology::Schedule& schedule);

 private:
  const topology::Schedule* checked_topology_ = nullptr;
};

struct QGDmSGDOptions : public torch::optim::OptimizerCloneableOptions<QGDmSGDOptions> {
  QGDmSGDOptions(double lr = 0.1);  // NOLINT: implicit like torch::optim::SGDOptions
  TORCH_ARG(double, lr);
  // beta in [0, 1): weight of the quasi-global momentum in the local step.
  TORCH_ARG(double, momentum) = 0.9;
  // mu in [0, 1): decay of the quasi-global momentum buffer.
  TORCH_ARG(double, mu) = 0.9;
  TORCH_ARG(double, weight_decay) = 0.0;

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
};

class QGDmSGD : public DecentOptimizer {
 public:
  QGDmSGD(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
          QGDmSGDOptions defaults = {});
  QGDmSGD(std::vector<torch::Tensor> params, ContextPtr ctx, QGDmSGDOptions defaults = {});
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace decent::optim
