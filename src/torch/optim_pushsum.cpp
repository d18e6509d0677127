// Stochastic gradient push (push-sum mixing with column-stochastic weights).
#include "decent/torch/optim/push_sum.h"
#include "decent/torch/tensor_ops.h"

#include "optim_internal.h"

namespace decent::optim {

using detail::read_field;
using detail::write_field;
using torch::serialize::InputArchive;
using torch::serialize::OutputArchive;

PushSumOptions::PushSumOptions(double lr) : lr_(lr) {}

void PushSumOptions::serialize(OutputArchive& a) const {
  write_field(a, "lr", lr());
  write_field(a, "momentum", momentum());
  write_field(a, "weight_decay", weight_decay());
}

void PushSumOptions::serialize(InputArchive& a) {
  read_field(a, "lr", lr_);
  read_field(a, "momentum", momentum_);
  read_field(a, "weight_decay", weight_decay_);
}

PushSum::PushSum(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
                 PushSumOptions defaults)
    : DecentOptimizer(std::move(param_groups), std::make_unique<PushSumOptions>(defaults),
                      std::move(ctx), "push-sum") {
  for (const auto& group : param_groups_) {
    const auto& o = detail::options_of<PushSumOptions>(group, where());
    detail::check_learning_rate(where(), o.lr());
    detail::check_unit_interval(where(), "momentum", o.momentum());
    detail::check_non_negative(where(), "weight_decay", o.weight_decay());
  }
}

PushSum::PushSum(std::vector<torch::Tensor> params, ContextPtr ctx, PushSumOptions defaults)
    : PushSum(std::vector<torch::optim::OptimizerParamGroup>{torch::optim::OptimizerParamGroup(
                  std::move(params))},
              std::move(ctx), defaults) {}

void PushSum::initialize_numerators() {
  torch::NoGradGuard no_grad;
  const std::vector<torch::Tensor> params = all_parameters();
  if (!weight_.defined())
    weight_ = torch::ones({1}, params.empty() ? torch::kFloat64 : params.front().scalar_type());
  // x = z * w: the parameters hold z; at the start w = 1 and x is z itself.
  for (const auto& p : params) {
    ParamState& st = param_state(p);
    if (!st.push_sum_numerator().defined())
      st.push_sum_numerator(p.detach().mul(weight_.to(p.scalar_type())).contiguous());
  }
}

double PushSum::weight() const {
  return weight_.defined() ? weight_.item<double>() : 1.0;
}

std::vector<torch::Tensor> PushSum::numerators() {
  initialize_numerators();
  std::vector<torch::Tensor> out;
  for (const auto& p : all_parameters()) out.push_back(param_state(p).push_sum_numerator());
  return out;
}

// Assran, Loizou, Ballas & Rabbat 2019, Algorithm 1 (SGP): the gradient, taken at the de-biased
// z_i, updates the numerator; then numerator and weight are pushed along the out-edges.
torch::Tensor PushSum::step(LossClosure closure) {
  torch::Tensor loss = detail::evaluate_closure(closure);
  torch::NoGradGuard no_grad;
  initialize_numerators();
  std::vector<torch::Tensor> buffers;
  for (auto& group : param_groups_) {
    const auto& o = detail::options_of<PushSumOptions>(group, where());
    for (auto& p : group.params()) {
      torch::Tensor d = decayed_gradient(p, o.weight_decay());
      if (o.momentum() != 0) d = update_momentum(p, d, o.momentum());
      torch::Tensor& x = param_state(p).push_sum_numerator();
      x.sub_(d, o.lr());
      buffers.push_back(x);
    }
  }
  buffers.push_back(weight_);

  // Column-stochastic split: keep 1/(d_out + 1), send the same share to each out-neighbour;
  // the receiver adds the pre-scaled messages of its in-neighbours as they are.
  const topology::StepPlan plan = ctx_->topology()->plan(iteration_, ctx_->rank());
  const double share = 1.0 / static_cast<double>(plan.send.size() + 1);
  NeighborAllreduceOptions opts;
  opts.step = iteration_;
  opts.self_weight = share;
  opts.src_weights.emplace();
  for (const auto& peer : plan.recv) (*opts.src_weights)[peer.rank] = 1.0;
  opts.dst_weights.emplace();
  for (const auto& peer : plan.send) (*opts.dst_weights)[peer.rank] = share;
  neighbor_allreduce_(*ctx_, buffers, opts);

  for (const auto& p : all_parameters())
    p.copy_(param_state(p).push_sum_numerator().div(weight_.to(p.scalar_type())));
  ++iteration_;
  return loss;
}

void PushSum::save_extra(OutputArchive& archive) const {
  if (weight_.defined()) archive.write("push_sum/weight", weight_);
}

void PushSum::load_extra(InputArchive& archive) {
  torch::Tensor w;
  if (archive.try_read("push_sum/weight", w)) {
    if (w.numel() != 1)
      throw InvalidArgument(
          fmt::format("{}: load: push-sum weight has {} elements, expected 1", where(), w.numel()));
    weight_ = w.contiguous();
  } else {
    weight_ = torch::Tensor();
  }
}

}  // namespace decent::optim
