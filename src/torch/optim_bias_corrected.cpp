// EXTRA, Exact-Diffusion, D^2, gradient tracking (DIGing) and DGD as torch optimizers.
#include "decent/torch/optim_bias_corrected.h"

#include "optim_internal.h"

namespace decent::optim {

using detail::read_field;
using detail::single_group;
using detail::write_field;
using torch::serialize::InputArchive;
using torch::serialize::OutputArchive;

namespace {

torch::Tensor contiguous_copy(const torch::Tensor& t) {
  return t.detach().clone(torch::MemoryFormat::Contiguous);
}

// Checkpoint names of the state fields; one list for saving, loading and shape checks.
template <typename State, typename Fn>
void for_each_field(State& s, Fn&& fn) {
  fn("previous_iterate", s.previous_iterate);
  fn("previous_neighbor_average", s.previous_neighbor_average);
  fn("previous_step", s.previous_step);
  fn("previous_psi", s.previous_psi);
  fn("mixed_tracker", s.mixed_tracker);
  fn("previous_gradient", s.previous_gradient);
}

}  // namespace

// ---------------------------------------------------------------- options and common part

BiasCorrectedOptions::BiasCorrectedOptions(double lr) : lr_(lr) {}

void BiasCorrectedOptions::serialize(OutputArchive& a) const {
  write_field(a, "lr", lr());
  write_field(a, "weight_decay", weight_decay());
}

void BiasCorrectedOptions::serialize(InputArchive& a) {
  read_field(a, "lr", lr_);
  read_field(a, "weight_decay", weight_decay_);
}

BiasCorrectedOptimizer::BiasCorrectedOptimizer(
    std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
    BiasCorrectedOptions defaults, std::string algorithm)
    : DecentOptimizer(std::move(param_groups), std::make_unique<BiasCorrectedOptions>(defaults),
                      std::move(ctx), std::move(algorithm)) {
  for (const auto& group : param_groups_) {
    const auto& o = detail::options_of<BiasCorrectedOptions>(group, where());
    detail::check_learning_rate(where(), o.lr());
    detail::check_non_negative(where(), "weight_decay", o.weight_decay());
  }
}

const BiasCorrectedState& BiasCorrectedOptimizer::bias_corrected_state(std::size_t index) const {
  static const BiasCorrectedState kEmpty;
  return index < states_.size() ? states_[index] : kEmpty;
}

std::vector<BiasCorrectedOptimizer::Slot> BiasCorrectedOptimizer::slots() {
  std::size_t count = 0;
  for (const auto& group : param_groups_) count += group.params().size();
  // Groups added with add_param_group start with empty state.
  if (states_.size() < count) states_.resize(count);
  std::vector<Slot> out;
  std::size_t index = 0;
  for (auto& group : param_groups_) {
    const auto& o = detail::options_of<BiasCorrectedOptions>(group, where());
    detail::check_learning_rate(where(), o.lr());
    for (auto& p : group.params()) {
      // A copy: p.grad() is zeroed in place by zero_grad() while d may be kept as state.
      out.push_back(
          {p, o.lr(), contiguous_copy(decayed_gradient(p, o.weight_decay())), &states_[index++]});
    }
  }
  return out;
}

void BiasCorrectedOptimizer::save_extra(OutputArchive& archive) const {
  write_field(archive, "bias_corrected/parameters", static_cast<std::int64_t>(states_.size()));
  for (std::size_t i = 0; i < states_.size(); ++i) {
    OutputArchive state_archive(archive.compilation_unit());
    for_each_field(states_[i], [&](const char* name, const torch::Tensor& t) {
      if (t.defined()) state_archive.write(name, t);
    });
    archive.write(fmt::format("bias_corrected/state/{}", i), state_archive);
  }
}

void BiasCorrectedOptimizer::load_extra(InputArchive& archive) {
  std::int64_t count = 0;
  read_field(archive, "bias_corrected/parameters", count);
  const std::vector<torch::Tensor> params = all_parameters();
  if (count > static_cast<std::int64_t>(params.size()))
    throw InvalidArgument(
        fmt::format("{}: load: the checkpoint has state for {} parameters, this "
                    "optimizer has {}",
                    where(), count, params.size()));
  std::vector<BiasCorrectedState> states(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < states.size(); ++i) {
    InputArchive state_archive;
    archive.read(fmt::format("bias_corrected/state/{}", i), state_archive);
    for_each_field(states[i], [&](const char* name, torch::Tensor& t) {
      torch::Tensor read;
      if (!state_archive.try_read(name, read)) return;
      if (read.sizes() != params[i].sizes())
        throw InvalidArgument(
            fmt::format("{}: load: state '{}' of parameter {} has shape {}, the parameter {}",
                        where(), name, i, c10::str(read.sizes()), c10::str(params[i].sizes())));
      t = read;
    });
  }
  states_ = std::move(states);
}

// ---------------------------------------------------------------- EXTRA

EXTRA::EXTRA(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
             BiasCorrectedOptions defaults)
    : BiasCorrectedOptimizer(std::move(param_groups), std::move(ctx), defaults, "extra") {}

EXTRA::EXTRA(std::vector<torch::Tensor> params, ContextPtr ctx, BiasCorrectedOptions defaults)
    : EXTRA(single_group(std::move(params)), std::move(ctx), defaults) {}

torch::Tensor EXTRA::step(LossClosure closure) {
  torch::Tensor loss = detail::evaluate_closure(closure);
  torch::NoGradGuard no_grad;
  std::vector<Slot> all = slots();
  std::vector<torch::Tensor> mixed;  // W^k x^k
  for (const Slot& s : all) mixed.push_back(contiguous_copy(s.param));
  average_with_neighbors(mixed, iteration_, 1);
  for (std::size_t i = 0; i < all.size(); ++i) {
    Slot& s = all[i];
    BiasCorrectedState& st = *s.state;
    torch::Tensor x = contiguous_copy(s.param);
    torch::Tensor step_now = s.gradient.mul(s.lr);
    torch::Tensor next;
    if (!st.previous_iterate.defined()) {
      next = mixed[i] - step_now;  // x^1 = W x^0 - gamma d^0
    } else {
      // x^{k+1} = x^k + W x^k - (x^{k-1} + W x^{k-1})/2 - (gamma_k d^k - gamma_{k-1} d^{k-1})
      next = x + mixed[i] - 0.5 * (st.previous_iterate + st.previous_neighbor_average) -
             (step_now - st.previous_step);
    }
    s.param.detach().copy_(next);
    st.previous_iterate = std::move(x);
    st.previous_neighbor_average = std::move(mixed[i]);
    st.previous_step = std::move(step_now);
  }
  ++iteration_;
  return loss;
}

// ---------------------------------------------------------------- Exact-Diffusion and D^2

void BiasCorrectedOptimizer::exact_diffusion_step(bool half_identity) {
  std::vector<Slot> all = slots();
  std::vector<torch::Tensor> phi, psi, mixed;
  for (auto& s : all) {
    const torch::Tensor x = s.param.detach();
    torch::Tensor p = x - s.lr * s.gradient;
    const torch::Tensor& previous = s.state->previous_psi.defined() ? s.state->previous_psi : x;
    phi.push_back((p + x - previous).contiguous());
    psi.push_back(std::move(p));
    // D^2 needs only W phi, so phi itself is averaged in place.
    mixed.push_back(half_identity ? phi.back().clone() : phi.back());
  }
  average_with_neighbors(mixed, iteration_, 1);
  for (std::size_t i = 0; i < all.size(); ++i) {
    torch::Tensor next = half_identity ? 0.5 * (phi[i] + mixed[i]) : mixed[i];
    all[i].param.detach().copy_(next);
    all[i].state->previous_psi = std::move(psi[i]);
  }
}

ExactDiffusion::ExactDiffusion(std::vector<torch::optim::OptimizerParamGroup> param_groups,
                               ContextPtr ctx, BiasCorrectedOptions defaults)
    : BiasCorrectedOptimizer(std::move(param_groups), std::move(ctx), defaults, "exact-diffusion") {
}

ExactDiffusion::ExactDiffusion(std::vector<torch::Tensor> params, ContextPtr ctx,
                               BiasCorrectedOptions defaults)
    : ExactDiffusion(single_group(std::move(params)), std::move(ctx), defaults) {}

torch::Tensor ExactDiffusion::step(LossClosure closure) {
  torch::Tensor loss = detail::evaluate_closure(closure);
  torch::NoGradGuard no_grad;
  exact_diffusion_step(/*half_identity=*/true);
  ++iteration_;
  return loss;
}

D2::D2(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
       BiasCorrectedOptions defaults)
    : BiasCorrectedOptimizer(std::move(param_groups), std::move(ctx), defaults, "d2") {}

D2::D2(std::vector<torch::Tensor> params, ContextPtr ctx, BiasCorrectedOptions defaults)
    : D2(single_group(std::move(params)), std::move(ctx), defaults) {}

torch::Tensor D2::step(LossClosure closure) {
  torch::Tensor loss = detail::evaluate_closure(closure);
  torch::NoGradGuard no_grad;
  exact_diffusion_step(/*half_identity=*/false);
  ++iteration_;
  return loss;
}

// ---------------------------------------------------------------- gradient tracking

GradientTracking::GradientTracking(std::vector<torch::optim::OptimizerParamGroup> param_groups,
                                   ContextPtr ctx, BiasCorrectedOptions defaults)
    : BiasCorrectedOptimizer(std::move(param_groups), std::move(ctx), defaults,
                             "gradient-tracking") {}

GradientTracking::GradientTracking(std::vector<torch::Tensor> params, ContextPtr ctx,
                                   BiasCorrectedOptions defaults)
    : GradientTracking(single_group(std::move(params)), std::move(ctx), defaults) {}

torch::Tensor GradientTracking::step(LossClosure closure) {
  torch::Tensor loss = detail::evaluate_closure(closure);
  torch::NoGradGuard no_grad;
  std::vector<Slot> all = slots();
  // y^k = W^{k-1} y^{k-1} + d^k - d^{k-1} (y^0 = d^0); then [x^k, y^k] mixed with W^k in one
  // fused exchange: x^{k+1} = W^k x^k - gamma y^k, and W^k y^k is kept for the next step.
  std::vector<torch::Tensor> trackers, mixed;
  for (auto& s : all) {
    const BiasCorrectedState& st = *s.state;
    trackers.push_back(st.mixed_tracker.defined()
                           ? (st.mixed_tracker + s.gradient - st.previous_gradient).contiguous()
                           : s.gradient.clone());
    mixed.push_back(contiguous_copy(s.param));
  }
  for (const auto& y : trackers) mixed.push_back(y.clone());
  average_with_neighbors(mixed, iteration_, 1);
  const std::size_t n = all.size();
  for (std::size_t i = 0; i < n; ++i) {
    Slot& s = all[i];
    s.param.detach().copy_(mixed[i] - s.lr * trackers[i]);
    s.state->mixed_tracker = std::move(mixed[n + i]);
    s.state->previous_gradient = std::move(s.gradient);
  }
  ++iteration_;
  return loss;
}

// ---------------------------------------------------------------- DGD

DGD::DGD(std::vector<torch::Tensor> params, ContextPtr ctx, double lr, double weight_decay,
         bool overlap)
    : DSGD(std::move(params), std::move(ctx),
           DSGDOptions(lr)
               .weight_decay(weight_decay)
               .combine(Combine::kAdaptWithCombine)
               .overlap(overlap),
           "dgd") {}

}  // namespace decent::optim
