// Stochastic gradient push (Assran, Loizou, Ballas & Rabbat 2019, "push-sum"): decentralized
// SGD on directed or time-varying graphs whose mixing is only column-stochastic.
//
// Each rank keeps a numerator x_i (in ParamState::push_sum_numerator) and a scalar weight w_i
// (starts at 1); the parameters hold the de-biased z_i = x_i / w_i between steps, so gradients
// are taken at z_i. With d_i = g_i(z_i) + weight_decay * z_i and optional local momentum:
//   m_i <- beta m_i + d_i;             x_i <- x_i - gamma m_i            (beta 0: x_i - gamma d_i)
//   x_i <- sum_j p_ij x_j;  w_i <- sum_j p_ij w_j;  z_i = x_i / w_i
// where at step k rank j splits its (x_j, w_j) equally among itself and its out-neighbours of
// the topology's plan at step k: p_ij = 1 / (|out_j| + 1). Sums over ranks of x and w are kept
// by the mixing, whatever the in-degrees. The weight travels fused with the parameters (as one
// more element of the first parameter's dtype).
#pragma once

#include "decent/torch/optim/base.h"

namespace decent::optim {

struct PushSumOptions : public torch::optim::OptimizerCloneableOptions<PushSumOptions> {
  PushSumOptions(double lr = 0.1);  // NOLINT: implicit like torch::optim::SGDOptions
  TORCH_ARG(double, lr);
  // Local heavy-ball momentum on the numerator update, in [0, 1).
  TORCH_ARG(double, momentum) = 0.0;
  TORCH_ARG(double, weight_decay) = 0.0;

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
};

class PushSum : public DecentOptimizer {
 public:
  PushSum(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
          PushSumOptions defaults = {});
  PushSum(std::vector<torch::Tensor> params, ContextPtr ctx, PushSumOptions defaults = {});
  torch::Tensor step(LossClosure closure = nullptr) override;

  // The push-sum weight w_i of this rank.
  double weight() const;
  // The numerators x_i, one per parameter (z = x / weight() is in the parameters).
  std::vector<torch::Tensor> numerators();

 protected:
  void save_extra(torch::serialize::OutputArchive& archive) const override;
  void load_extra(torch::serialize::InputArchive& archive) override;

 private:
  void initialize_numerators();
  torch::Tensor weight_;  // shape [1], dtype of the first parameter
};

}  // namespace decent::optim
