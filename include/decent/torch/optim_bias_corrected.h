// Bias-corrected decentralized optimizers (primal-dual family): with full gradients and a
// constant learning rate they converge to the exact minimizer of (1/n) sum_i f_i even when the
// local data differ, where D-SGD keeps an O(lr^2 b^2 / (1 - rho)^2) bias. With d_i = g_i +
// weight_decay * x_i, W^k the mixing matrix of topology step k and gamma_k the learning rate of
// iteration k:
//
//   EXTRA (Shi, Ling, Wu & Yin 2015, "extra"), W~ = (I + W)/2:
//     x^1 = W x^0 - gamma_0 d^0
//     x^{k+1} = (I + W) x^k - W~ x^{k-1} - (gamma_k d^k - gamma_{k-1} d^{k-1})
//   Exact-Diffusion (Yuan, Ying, Zhao & Sayed 2019, "exact-diffusion"), W_bar = (I + W)/2:
//     psi^{k+1} = x^k - gamma_k d^k;  phi^{k+1} = psi^{k+1} + x^k - psi^k;  x^{k+1} = W_bar
//     phi^{k+1} with psi^0 = x^0
//   D^2 (Tang, Lian, Yan, Zhang & Liu 2018, "d2"): Exact-Diffusion with W for W_bar, i.e.
//     x^{k+1} = W (2 x^k - x^{k-1} - gamma_k d^k + gamma_{k-1} d^{k-1});  needs a symmetric W
//     with eigenvalues > -1/3 (it diverges on the directed exponential graph)
//   Gradient tracking, DIGing form (Nedic, Olshevsky & Shi 2017, "gradient-tracking"):
//     x^{k+1} = W^k x^k - gamma_k y^k;  y^{k+1} = W^k y^k + d^{k+1} - d^k,  y^0 = d^0;
//     valid on time-varying schedules (one-peer exponential): x and y travel in one fused
//     exchange with the same W^k
//   DGD (Nedic & Ozdaglar 2009, "dgd"): x^{k+1} = W x^k - gamma_k d^k, which is D-SGD
//     adapt-with-combine (DSGD with Combine::kAdaptWithCombine, overlap on by default). It has
//     D-SGD's bias and is here for completeness of the family.
//
// For a constant learning rate these are the papers' recursions; when a scheduler changes it,
// EXTRA and D^2 correct with the previous iteration's gamma d (the step actually taken), so the
// correction stays exact.
//
// Each iteration makes one fused neighbour averaging (topology step = iteration, see base.h).
// The state kept between steps (previous iterate, its neighbour average and step, psi, the mixed
// tracker and the previous gradient) is part of the checkpoint (save/load), so a resumed run
// continues bit-identically. A parameter's state starts empty: its first step() is the first
// iteration of the recursion.
//
//   decent::optim::GradientTracking opt(model->parameters(), ctx,
//                                       decent::optim::BiasCorrectedOptions(0.05));
//   opt.zero_grad(); loss.backward(); opt.step();
#pragma once

#include "decent/torch/optim/base.h"
#include "decent/torch/optim/dsgd.h"

#include <string>
#include <vector>

namespace decent::optim {

// Options of EXTRA, Exact-Diffusion, D^2 and gradient tracking. Per group: lr, weight_decay.
struct BiasCorrectedOptions : public torch::optim::OptimizerCloneableOptions<BiasCorrectedOptions> {
  BiasCorrectedOptions(double lr = 0.1);  // NOLINT: implicit like torch::optim::SGDOptions
  TORCH_ARG(double, lr);
  // Added to the gradient as weight_decay * x.
  TORCH_ARG(double, weight_decay) = 0.0;

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
};

// What the bias-corrected recursions carry from one iteration to the next, per parameter. Each
// algorithm fills the fields it needs; all are undefined before the parameter's first step.
struct BiasCorrectedState {
  torch::Tensor previous_iterate;           // x^{k-1}                  (EXTRA)
  torch::Tensor previous_neighbor_average;  // W x^{k-1}                (EXTRA)
  torch::Tensor previous_step;              // gamma_{k-1} d^{k-1}      (EXTRA)
  // psi^k = x^{k-1} - gamma_{k-1} d^{k-1}, x^0 before the first step (Exact-Diffusion, D^2).
  torch::Tensor previous_psi;
  torch::Tensor mixed_tracker;      // W^{k-1} y^{k-1}          (gradient tracking)
  torch::Tensor previous_gradient;  // d^{k-1}                  (gradient tracking)
};

// Common part: options checks, the per-parameter state and its checkpoint entries.
class BiasCorrectedOptimizer : public DecentOptimizer {
 public:
  // State of the i-th parameter (all groups, in order); empty before its first step.
  const BiasCorrectedState& bias_corrected_state(std::size_t index) const;

 protected:
  BiasCorrectedOptimizer(std::vector<torch::optim::OptimizerParamGroup> param_groups,
                         ContextPtr ctx, BiasCorrectedOptions defaults, std::string algorithm);
  // The parameters with their learning rate and decayed gradient d = g + weight_decay * x.
  struct Slot {
    torch::Tensor param;
    double lr;
    torch::Tensor gradient;
    BiasCorrectedState* state;
  };
  std::vector<Slot> slots();
  // One iteration of Exact-Diffusion (M = (I + W)/2) or D^2 (M = W):
  // psi^{k+1} = x^k - gamma d^k; phi^{k+1} = psi^{k+1} + x^k - psi^k; x^{k+1} = M phi^{k+1}.
  void exact_diffusion_step(bool half_identity);
  void save_extra(torch::serialize::OutputArchive& archive) const override;
  void load_extra(torch::serialize::InputArchive& archive) override;

 private:
  std::vector<BiasCorrectedState> states_;
};

class EXTRA : public BiasCorrectedOptimizer {
 public:
  EXTRA(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
        BiasCorrectedOptions defaults = {});
  EXTRA(std::vector<torch::Tensor> params, ContextPtr ctx, BiasCorrectedOptions defaults = {});
  torch::Tensor step(LossClosure closure = nullptr) override;
};

class ExactDiffusion : public BiasCorrectedOptimizer {
 public:
  ExactDiffusion(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
                 BiasCorrectedOptions defaults = {});
  ExactDiffusion(std::vector<torch::Tensor> params, ContextPtr ctx,
                 BiasCorrectedOptions defaults = {});
  torch::Tensor step(LossClosure closure = nullptr) override;
};

class D2 : public BiasCorrectedOptimizer {
 public:
  D2(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
     BiasCorrectedOptions defaults = {});
  D2(std::vector<torch::Tensor> params, ContextPtr ctx, BiasCorrectedOptions defaults = {});
  torch::Tensor step(LossClosure closure = nullptr) override;
};

class GradientTracking : public BiasCorrectedOptimizer {
 public:
  GradientTracking(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
                   BiasCorrectedOptions defaults = {});
  GradientTracking(std::vector<torch::Tensor> params, ContextPtr ctx,
                   BiasCorrectedOptions defaults = {});
  torch::Tensor step(LossClosure closure = nullptr) override;
};

// DGD: DSGD fixed to adapt-with-combine without momentum (checkpoints say "dgd").
class DGD : public DSGD {
 public:
  DGD(std::vector<torch::Tensor> params, ContextPtr ctx, double lr, double weight_decay = 0.0,
      bool overlap = true);
};

}  // namespace decent::optim
