// PmSGD (+LARS), the D-SGD family (ATC/AWC, DmSGD, AWC-DmSGD, DA-DmSGD, periodic global
// averaging, multiple gossip rounds), DecentLaM and QG-DmSGD.
#include "decent/topology/analysis.h"
#include "decent/topology/schedule.h"
#include "decent/torch/optim/dsgd.h"
#include "decent/torch/optim/momentum.h"
#include "decent/torch/optim/pmsgd.h"
#include "decent/torch/tensor_ops.h"

#include "optim_internal.h"

#include <algorithm>
#include <iostream>

namespace decent::optim {

using detail::read_field;
using detail::single_group;
using detail::write_field;
using torch::serialize::InputArchive;
using torch::serialize::OutputArchive;

// ---------------------------------------------------------------- PmSGD

PmSGDOptions::PmSGDOptions(double lr) : lr_(lr) {}

void PmSGDOptions::serialize(OutputArchive& a) const {
  write_field(a, "lr", lr());
  write_field(a, "momentum", momentum());
  write_field(a, "weight_decay", weight_decay());
  write_field(a, "lars", lars());
  write_field(a, "lars_eta", lars_eta());
}

void PmSGDOptions::serialize(InputArchive& a) {
  read_field(a, "lr", lr_);
  read_field(a, "momentum", momentum_);
  read_field(a, "weight_decay", weight_decay_);
  read_field(a, "lars", lars_);
  read_field(a, "lars_eta", lars_eta_);
}

PmSGD::PmSGD(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
             PmSGDOptions defaults)
    : DecentOptimizer(std::move(param_groups), std::make_unique<PmSGDOptions>(defaults),
                      std::move(ctx), defaults.lars() ? "pmsgd-lars" : "pmsgd") {
  for (const auto& group : param_groups_) {
    const auto& o = detail::options_of<PmSGDOptions>(group, where());
    detail::check_learning_rate(where(), o.lr());
    detail::check_unit_interval(where(), "momentum", o.momentum());
    detail::check_non_negative(where(), "weight_decay", o.weight_decay());
    detail::check_positive(where(), "lars_eta", o.lars_eta());
  }
}

PmSGD::PmSGD(std::vector<torch::Tensor> params, ContextPtr ctx, PmSGDOptions defaults)
    : PmSGD(single_group(std::move(params)), std::move(ctx), defaults) {}

torch::Tensor PmSGD::step(LossClosure closure) {
  torch::Tensor loss = detail::evaluate_closure(closure);
  torch::NoGradGuard no_grad;
  // Gradients are copied so that p.grad() stays this rank's own gradient.
  std::vector<torch::Tensor> grads;
  for (const auto& p : all_parameters())
    grads.push_back(p.grad().defined() ? p.grad().detach().clone(torch::MemoryFormat::Contiguous)
                                       : torch::zeros_like(p, torch::MemoryFormat::Contiguous));
  average_globally(grads);
  std::size_t index = 0;
  for (auto& group : param_groups_) {
    const auto& o = detail::options_of<PmSGDOptions>(group, where());
    for (auto& p : group.params()) {
      torch::Tensor& g = grads[index++];
      double trust = 1.0;
      if (o.lars()) {
        const double x_norm = p.detach().norm().item<double>();
        const double g_norm = g.norm().item<double>();
        if (x_norm > 0 && g_norm > 0)
          trust = o.lars_eta() * x_norm / (g_norm + o.weight_decay() * x_norm);
      }
      torch::Tensor d = o.weight_decay() != 0 ? g.add(p.detach(), o.weight_decay()) : g;
      if (trust != 1.0) d.mul_(trust);
      if (o.momentum() != 0) d = update_momentum(p, d, o.momentum());
      p.sub_(d, o.lr());
    }
  }
  ++iteration_;
  return loss;
}

// ---------------------------------------------------------------- DSGD family

DSGDOptions::DSGDOptions(double lr) : lr_(lr) {}

void DSGDOptions::serialize(OutputArchive& a) const {
  write_field(a, "lr", lr());
  write_field(a, "momentum", momentum());
  write_field(a, "weight_decay", weight_decay());
  write_field(a, "combine", static_cast<std::int64_t>(combine()));
  write_field(a, "average_momentum", average_momentum());
  write_field(a, "gossip_rounds", static_cast<std::int64_t>(gossip_rounds()));
  write_field(a, "global_average_period", static_cast<std::int64_t>(global_average_period()));
  write_field(a, "overlap", overlap());
}

void DSGDOptions::serialize(InputArchive& a) {
  read_field(a, "lr", lr_);
  read_field(a, "momentum", momentum_);
  read_field(a, "weight_decay", weight_decay_);
  std::int64_t combine = 0;
  read_field(a, "combine", combine);
  if (combine != 0 && combine != 1)
    throw InvalidArgument(fmt::format("optimizer checkpoint: combine = {} is not 0 or 1", combine));
  combine_ = static_cast<Combine>(combine);
  read_field(a, "average_momentum", average_momentum_);
  read_field(a, "gossip_rounds", gossip_rounds_);
  read_field(a, "global_average_period", global_average_period_);
  read_field(a, "overlap", overlap_);
}

DSGD::DSGD(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
           DSGDOptions defaults, std::string algorithm)
    : DecentOptimizer(std::move(param_groups), std::make_unique<DSGDOptions>(defaults),
                      std::move(ctx), std::move(algorithm)) {
  detail::check_at_least(where(), "gossip_rounds", defaults.gossip_rounds(), 1);
  detail::check_at_least(where(), "global_average_period", defaults.global_average_period(), 0);
  if (defaults.average_momentum() && defaults.combine() != Combine::kAdaptThenCombine)
    throw InvalidArgument(fmt::format(
        "{}: average_momentum (DA-DmSGD) is defined for adapt-then-combine only", where()));
  for (const auto& group : param_groups_) {
    const auto& o = detail::options_of<DSGDOptions>(group, where());
    detail::check_learning_rate(where(), o.lr());
    detail::check_unit_interval(where(), "momentum", o.momentum());
    detail::check_non_negative(where(), "weight_decay", o.weight_decay());
  }
}

DSGD::DSGD(std::vector<torch::Tensor> params, ContextPtr ctx, DSGDOptions defaults,
           std::string algorithm)
    : DSGD(single_group(std::move(params)), std::move(ctx), defaults, std::move(algorithm)) {}

torch::Tensor DSGD::step(LossClosure closure) {
  torch::Tensor loss = detail::evaluate_closure(closure);
  torch::NoGradGuard no_grad;
  const auto& defaults = static_cast<const DSGDOptions&>(this->defaults());
  const int rounds = defaults.gossip_rounds();
  const bool awc = defaults.combine() == Combine::kAdaptWithCombine;
  const bool average_momentum = defaults.average_momentum();

  // Adapt-with-combine: W x_k does not need the gradient (and may already be here).
  std::vector<torch::Tensor> averaged;
  if (awc) averaged = neighbor_average_of_parameters(rounds);

  std::vector<torch::Tensor> to_mix;  // ATC: updated iterates, then momentum buffers (DA-DmSGD)
  std::vector<torch::Tensor> momenta;
  std::size_t index = 0;
  for (auto& group : param_groups_) {
    const auto& o = detail::options_of<DSGDOptions>(group, where());
    for (auto& p : group.params()) {
      torch::Tensor d = decayed_gradient(p, o.weight_decay());
      if (o.momentum() != 0 || average_momentum) {
        d = update_momentum(p, d, o.momentum());
        if (average_momentum) momenta.push_back(d);
      }
      if (awc) {
        p.copy_(averaged[index]).sub_(d, o.lr());
      } else {
        p.sub_(d, o.lr());
        to_mix.push_back(p);
      }
      ++index;
    }
  }
  if (!awc) {
    to_mix.insert(to_mix.end(), momenta.begin(), momenta.end());
    average_with_neighbors(to_mix, iteration_ * rounds, rounds);
  }
  const int period = defaults.global_average_period();
  if (period > 0 && (iteration_ + 1) % period == 0) {
    std::vector<torch::Tensor> params = all_parameters();
    average_globally(params);
  }
  ++iteration_;
  if (awc && defaults.overlap()) prefetch_neighbor_average(rounds);
  return loss;
}

// ---------------------------------------------------------------- DecentLaM

DecentLaMOptions::DecentLaMOptions(double lr) : lr_(lr) {}

void DecentLaMOptions::serialize(OutputArchive& a) const {
  write_field(a, "lr", lr());
  write_field(a, "momentum", momentum());
  write_field(a, "weight_decay", weight_decay());
}

void DecentLaMOptions::serialize(InputArchive& a) {
  read_field(a, "lr", lr_);
  read_field(a, "momentum", momentum_);
  read_field(a, "weight_decay", weight_decay_);
}

DecentLaM::DecentLaM(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
                     DecentLaMOptions defaults)
    : DecentOptimizer(std::move(param_groups), std::make_unique<DecentLaMOptions>(defaults),
                      std::move(ctx), "decentlam") {
  for (const auto& group : param_groups_) {
    const auto& o = detail::options_of<DecentLaMOptions>(group, where());
    detail::check_learning_rate(where(), o.lr());
    detail::check_unit_interval(where(), "momentum", o.momentum());
    detail::check_non_negative(where(), "weight_decay", o.weight_decay());
  }
}

DecentLaM::DecentLaM(std::vector<torch::Tensor> params, ContextPtr ctx, DecentLaMOptions defaults)
    : DecentLaM(single_group(std::move(params)), std::move(ctx), defaults) {}

bool DecentLaM::stable_on(const topology::Schedule& schedule) {
  return schedule.is_static() && topology::is_symmetric(schedule.graph_at(0), 1e-12);
}

// Yuan et al. 2021, Algorithm 1: the momentum integrates the "effective gradient" of one
// adapt-then-combine D-SGD step instead of the local gradient.
torch::Tensor DecentLaM::step(LossClosure closure) {
  torch::Tensor loss = detail::evaluate_closure(closure);
  torch::NoGradGuard no_grad;
  const auto schedule = ctx_->topology();
  if (schedule && schedule.get() != checked_topology_) {
    checked_topology_ = schedule.get();
    double beta = 0;
    for (auto& group : param_groups_)
      beta = std::max(beta, detail::options_of<DecentLaMOptions>(group, where()).momentum());
    if (beta > 0 && ctx_->rank() == 0 && !stable_on(*schedule))
      std::cerr << fmt::format(
          "{}: warning: topology '{}' is {}; DecentLaM's momentum (beta = {}) amplifies the "
          "consensus error on such mixing matrices and training may diverge. Use a static "
          "symmetric topology (ring, symmetric-exponential, torus, hypercube, full) or dmsgd / "
          "qg-dmsgd.\n",
          where(), schedule->name(),
          schedule->is_static() ? "directed (W not symmetric)" : "time-varying", beta);
  }
  std::vector<torch::Tensor> mixed;  // x_i - gamma d_i, then W(X - gamma D)
  for (auto& group : param_groups_) {
    const auto& o = detail::options_of<DecentLaMOptions>(group, where());
    for (auto& p : group.params())
      mixed.push_back(p.detach().sub(decayed_gradient(p, o.weight_decay()), o.lr()).contiguous());
  }
  average_with_neighbors(mixed, iteration_, 1);
  std::size_t index = 0;
  for (auto& group : param_groups_) {
    const auto& o = detail::options_of<DecentLaMOptions>(group, where());
    for (auto& p : group.params()) {
      torch::Tensor effective = p.detach().sub(mixed[index++]).div_(o.lr());
      p.sub_(update_momentum(p, effective, o.momentum()), o.lr());
    }
  }
  ++iteration_;
  return loss;
}

// ---------------------------------------------------------------- QG-DmSGD

QGDmSGDOptions::QGDmSGDOptions(double lr) : lr_(lr) {}

void QGDmSGDOptions::serialize(OutputArchive& a) const {
  write_field(a, "lr", lr());
  write_field(a, "momentum", momentum());
  write_field(a, "mu", mu());
  write_field(a, "weight_decay", weight_decay());
}

void QGDmSGDOptions::serialize(InputArchive& a) {
  read_field(a, "lr", lr_);
  read_field(a, "momentum", momentum_);
  read_field(a, "mu", mu_);
  read_field(a, "weight_decay", weight_decay_);
}

QGDmSGD::QGDmSGD(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
                 QGDmSGDOptions defaults)
    : DecentOptimizer(std::move(param_groups), std::make_unique<QGDmSGDOptions>(defaults),
                      std::move(ctx), "qg-dmsgd") {
  for (const auto& group : param_groups_) {
    const auto& o = detail::options_of<QGDmSGDOptions>(group, where());
    detail::check_learning_rate(where(), o.lr());
    detail::check_unit_interval(where(), "momentum", o.momentum());
    detail::check_unit_interval(where(), "mu", o.mu());
    detail::check_non_negative(where(), "weight_decay", o.weight_decay());
  }
}

QGDmSGD::QGDmSGD(std::vector<torch::Tensor> params, ContextPtr ctx, QGDmSGDOptions defaults)
    : QGDmSGD(single_group(std::move(params)), std::move(ctx), defaults) {}

// Lin, Karimireddy, Stich & Jaggi 2021, Algorithm 1 (quasi-global momentum).
torch::Tensor QGDmSGD::step(LossClosure closure) {
  torch::Tensor loss = detail::evaluate_closure(closure);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> half;  // x^{+1/2}, then x^+ = W x^{+1/2}
  for (auto& group : param_groups_) {
    const auto& o = detail::options_of<QGDmSGDOptions>(group, where());
    for (auto& p : group.params()) {
      ParamState& st = param_state(p);
      if (!st.momentum_buffer().defined())
        st.momentum_buffer(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
      torch::Tensor direction =
          decayed_gradient(p, o.weight_decay()).add(st.momentum_buffer(), o.momentum());
      half.push_back(p.detach().sub(direction, o.lr()).contiguous());
    }
  }
  average_with_neighbors(half, iteration_, 1);
  std::size_t index = 0;
  for (auto& group : param_groups_) {
    const auto& o = detail::options_of<QGDmSGDOptions>(group, where());
    for (auto& p : group.params()) {
      const torch::Tensor& next = half[index++];
      torch::Tensor displacement = p.detach().sub(next).div_(o.lr());
      param_state(p).momentum_buffer().mul_(o.mu()).add_(displacement, 1.0 - o.mu());
      p.copy_(next);
    }
  }
  ++iteration_;
  return loss;
}

}  // namespace decent::optim
