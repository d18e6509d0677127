// Parallel momentum SGD (PmSGD): the centralized baseline. Gradients are averaged exactly over
// all ranks (allreduce, Horovod style), then every rank applies the same momentum update, so
// all ranks hold the same x when they start from the same x.
//
//   g_bar = (1/n) sum_j g_j (+ weight_decay * x)
//   m <- beta m + g_bar;   x <- x - gamma m
//
// With lars(true), each parameter tensor (a "layer") gets its own trust ratio, following You,
// Gitman & Ginsburg 2017 (LARS), where the ratio scales the gradient inside the momentum:
//   r_l = eta ||x_l|| / (||g_bar_l|| + lambda ||x_l||)   (r_l = 1 when ||x_l|| or ||g_bar_l|| is 0)
//   m_l <- beta m_l + r_l (g_bar_l + lambda x_l);   x_l <- x_l - gamma m_l
// so the effective rate of layer l is gamma_l = gamma r_l as in ALGORITHMS.md (lambda is the
// weight decay).
//
//   decent::optim::PmSGD opt(model->parameters(), ctx,
//   decent::optim::PmSGDOptions(0.1).momentum(0.9));
#pragma once

#include "decent/torch/optim/base.h"

namespace decent::optim {

struct PmSGDOptions : public torch::optim::OptimizerCloneableOptions<PmSGDOptions> {
  PmSGDOptions(double lr = 0.1);  // NOLINT: implicit like torch::optim::SGDOptions
  TORCH_ARG(double, lr);
  // beta in [0, 1).
  TORCH_ARG(double, momentum) = 0.0;
  // Added to the averaged gradient as weight_decay * x (lambda of LARS).
  TORCH_ARG(double, weight_decay) = 0.0;
  // Layer-wise adaptive rate scaling.
  TORCH_ARG(bool, lars) = false;
  // LARS trust coefficient eta (> 0).
  TORCH_ARG(double, lars_eta) = 0.001;

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
};

class PmSGD : public DecentOptimizer {
 public:
  PmSGD(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
        PmSGDOptions defaults = {});
  PmSGD(std::vector<torch::Tensor> params, ContextPtr ctx, PmSGDOptions defaults = {});
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace decent::optim
