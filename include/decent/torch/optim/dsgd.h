// Decentralized (momentum) SGD over the context's topology, the primal family of ALGORITHMS.md.
// With d_i = g_i + weight_decay * x_i and W_k the mixing matrix of step k:
//
//   momentum 0, ATC                (D-SGD, "dsgd")           x_i <- sum_j w_ij (x_j - gamma d_j)
//   momentum 0, AWC                (D-SGD/DGD, "dsgd-awc")   x_i <- sum_j w_ij x_j - gamma d_i
//   momentum beta, ATC             (DmSGD, "dmsgd")          m_i <- beta m_i + d_i
//                                                            x_i <- sum_j w_ij (x_j - gamma m_j)
//   momentum beta, AWC             (AWC-DmSGD, Balu et al. 2020, "awc-dmsgd")
//                                                            m_i <- beta m_i + d_i
//                                                            x_i <- sum_j w_ij x_j - gamma m_i
//   average_momentum, ATC          (DA-DmSGD, Yu, Jin & Yang 2019, "da-dmsgd")
//                                  u_i = beta m_i + d_i;  m_i <- sum_j w_ij u_j;
//                                  x_i <- sum_j w_ij (x_j - gamma u_j)
//     (Yu et al.'s Algorithm: the local momentum u_j updates x_j, then x and the momentum are
//      averaged with the same W in one fused message.)
//   gossip_rounds R > 1            ("dsgd-multi-gossip") W is applied R times per iteration,
//                                  the r-th round using topology step k*R + r, so R = tau rounds
//                                  of the one-peer exponential graph average exactly.
//   global_average_period H > 0    (DSGD-PGA, Chen et al. 2021, "dsgd-pga") after the update of
//                                  every H-th iteration (k+1 divisible by H): x_i <- mean_j x_j.
//
// Overlap (adapt-with-combine only, on by default): at the end of step k the optimizer starts
// W x_{k+1} on a copy of the new parameters; step k+1 waits for it and sets
// x_{k+2} = (W x_{k+1}) - gamma d(x_{k+1}). Communication thus runs during the next forward and
// backward pass, and the result is bit-identical to overlap(false).
//
// Per group: lr, momentum, weight_decay. Optimizer-wide (read from the defaults): combine,
// average_momentum, gossip_rounds, global_average_period, overlap.
#pragma once

#include "decent/torch/optim/base.h"

namespace decent::optim {

struct DSGDOptions : public torch::optim::OptimizerCloneableOptions<DSGDOptions> {
  DSGDOptions(double lr = 0.1);  // NOLINT: implicit like torch::optim::SGDOptions
  TORCH_ARG(double, lr);
  // beta in [0, 1); 0 gives D-SGD.
  TORCH_ARG(double, momentum) = 0.0;
  // Added to the gradient as weight_decay * x.
  TORCH_ARG(double, weight_decay) = 0.0;
  TORCH_ARG(Combine, combine) = Combine::kAdaptThenCombine;
  // Average the momentum buffers with the iterates (DA-DmSGD); adapt-then-combine only.
  TORCH_ARG(bool, average_momentum) = false;
  // Rounds of W per iteration (>= 1).
  TORCH_ARG(int, gossip_rounds) = 1;
  // Exact global average every this many iterations; 0 never.
  TORCH_ARG(int, global_average_period) = 0;
  // Adapt-with-combine: average x_{k+1} while the next gradient is computed.
  TORCH_ARG(bool, overlap) = true;

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
};

class DSGD : public DecentOptimizer {
 public:
  DSGD(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
       DSGDOptions defaults = {}, std::string algorithm = "dsgd");
  DSGD(std::vector<torch::Tensor> params, ContextPtr ctx, DSGDOptions defaults = {},
       std::string algorithm = "dsgd");
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace decent::optim
