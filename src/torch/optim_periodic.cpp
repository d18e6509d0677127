// Local SGD / FedAvg and SlowMo: exact averaging every few iterations.
#include "decent/torch/optim/periodic.h"
#include "decent/torch/tensor_ops.h"

#include "optim_internal.h"

namespace decent::optim {

using detail::read_field;
using detail::single_group;
using detail::write_field;
using torch::serialize::InputArchive;
using torch::serialize::OutputArchive;

// ---------------------------------------------------------------- Local SGD

LocalSGDOptions::LocalSGDOptions(double lr) : lr_(lr) {}

void LocalSGDOptions::serialize(OutputArchive& a) const {
  write_field(a, "lr", lr());
  write_field(a, "momentum", momentum());
  write_field(a, "weight_decay", weight_decay());
  write_field(a, "period", static_cast<std::int64_t>(period()));
}

void LocalSGDOptions::serialize(InputArchive& a) {
  read_field(a, "lr", lr_);
  read_field(a, "momentum", momentum_);
  read_field(a, "weight_decay", weight_decay_);
  read_field(a, "period", period_);
}

LocalSGD::LocalSGD(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
                   LocalSGDOptions defaults)
    : DecentOptimizer(std::move(param_groups), std::make_unique<LocalSGDOptions>(defaults),
                      std::move(ctx), "local-sgd") {
  detail::check_at_least(where(), "period", defaults.period(), 1);
  for (const auto& group : param_groups_) {
    const auto& o = detail::options_of<LocalSGDOptions>(group, where());
    detail::check_learning_rate(where(), o.lr());
    detail::check_unit_interval(where(), "momentum", o.momentum());
    detail::check_non_negative(where(), "weight_decay", o.weight_decay());
  }
}

LocalSGD::LocalSGD(std::vector<torch::Tensor> params, ContextPtr ctx, LocalSGDOptions defaults)
    : LocalSGD(single_group(std::move(params)), std::move(ctx), defaults) {}

torch::Tensor LocalSGD::step(LossClosure closure) {
  torch::Tensor loss = detail::evaluate_closure(closure);
  torch::NoGradGuard no_grad;
  for (auto& group : param_groups_) {
    const auto& o = detail::options_of<LocalSGDOptions>(group, where());
    for (auto& p : group.params()) {
      torch::Tensor d = decayed_gradient(p, o.weight_decay());
      if (o.momentum() != 0) d = update_momentum(p, d, o.momentum());
      p.sub_(d, o.lr());
    }
  }
  ++iteration_;
  if (iteration_ % static_cast<const LocalSGDOptions&>(defaults()).period() == 0) {
    std::vector<torch::Tensor> params = all_parameters();
    average_globally(params);
  }
  return loss;
}

// ---------------------------------------------------------------- SlowMo

SlowMoOptions::SlowMoOptions(double lr) : lr_(lr) {}

void SlowMoOptions::serialize(OutputArchive& a) const {
  write_field(a, "lr", lr());
  write_field(a, "momentum", momentum());
  write_field(a, "weight_decay", weight_decay());
  write_field(a, "period", static_cast<std::int64_t>(period()));
  write_field(a, "slowmo_beta", slowmo_beta());
  write_field(a, "slowmo_alpha", slowmo_alpha());
  write_field(a, "gossip_inner", gossip_inner());
}

void SlowMoOptions::serialize(InputArchive& a) {
  read_field(a, "lr", lr_);
  read_field(a, "momentum", momentum_);
  read_field(a, "weight_decay", weight_decay_);
  read_field(a, "period", period_);
  read_field(a, "slowmo_beta", slowmo_beta_);
  read_field(a, "slowmo_alpha", slowmo_alpha_);
  read_field(a, "gossip_inner", gossip_inner_);
}

SlowMo::SlowMo(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
               SlowMoOptions defaults)
    : DecentOptimizer(std::move(param_groups), std::make_unique<SlowMoOptions>(defaults),
                      std::move(ctx), "slowmo") {
  detail::check_at_least(where(), "period", defaults.period(), 1);
  detail::check_unit_interval(where(), "slowmo_beta", defaults.slowmo_beta());
  detail::check_positive(where(), "slowmo_alpha", defaults.slowmo_alpha());
  for (const auto& group : param_groups_) {
    const auto& o = detail::options_of<SlowMoOptions>(group, where());
    detail::check_learning_rate(where(), o.lr());
    detail::check_unit_interval(where(), "momentum", o.momentum());
    detail::check_non_negative(where(), "weight_decay", o.weight_decay());
  }
}

SlowMo::SlowMo(std::vector<torch::Tensor> params, ContextPtr ctx, SlowMoOptions defaults)
    : SlowMo(single_group(std::move(params)), std::move(ctx), defaults) {}

// Wang, Tantia, Ballas & Rabbat 2019, Algorithm 1.
torch::Tensor SlowMo::step(LossClosure closure) {
  torch::Tensor loss = detail::evaluate_closure(closure);
  torch::NoGradGuard no_grad;
  const auto& defaults = static_cast<const SlowMoOptions&>(this->defaults());
  for (auto& group : param_groups_) {
    const auto& o = detail::options_of<SlowMoOptions>(group, where());
    for (auto& p : group.params()) {
      ParamState& st = param_state(p);
      if (!st.anchor().defined()) st.anchor(p.detach().clone(torch::MemoryFormat::Contiguous));
      torch::Tensor d = decayed_gradient(p, o.weight_decay());
      if (o.momentum() != 0) d = update_momentum(p, d, o.momentum());
      p.sub_(d, o.lr());
    }
  }
  if (defaults.gossip_inner()) {
    std::vector<torch::Tensor> params = all_parameters();
    average_with_neighbors(params, iteration_, 1);
  }
  ++iteration_;
  if (iteration_ % defaults.period() != 0) return loss;

  std::vector<torch::Tensor> params = all_parameters();
  average_globally(params);
  for (auto& group : param_groups_) {
    const auto& o = detail::options_of<SlowMoOptions>(group, where());
    for (auto& p : group.params()) {
      ParamState& st = param_state(p);
      if (!st.slow_momentum_buffer().defined())
        st.slow_momentum_buffer(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
      torch::Tensor& u = st.slow_momentum_buffer();
      u.mul_(defaults.slowmo_beta()).add_(st.anchor().sub(p.detach()).div_(o.lr()));
      p.copy_(st.anchor()).sub_(u, defaults.slowmo_alpha() * o.lr());
      st.anchor().copy_(p.detach());
    }
  }
  return loss;
}

}  // namespace decent::optim
