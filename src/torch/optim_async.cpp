// Asynchronous decentralized optimizers: AD-PSGD and window gossip (push-sum on directed graphs).
#include "decent/torch/optim_async.h"

#include "decent/comm/window.h"

#include "optim_internal.h"

#include <algorithm>
#include <exception>
#include <set>

namespace decent::optim {

using detail::read_field;
using detail::write_field;
using torch::serialize::InputArchive;
using torch::serialize::OutputArchive;

namespace {

// True when some rank's out-neighbours differ from its in-neighbours over one period of the
// topology: gossip then needs push-sum weights to converge to the true average.
bool topology_is_directed(const Context& ctx) {
  const topology::SchedulePtr schedule = ctx.topology();
  const int period = std::max(1, schedule->period());
  for (int r = 0; r < ctx.size(); ++r) {
    std::set<int> in, out;
    for (int k = 0; k < period; ++k) {
      const topology::StepPlan plan = schedule->plan(k, r);
      for (const auto& p : plan.recv) in.insert(p.rank);
      for (const auto& p : plan.send) out.insert(p.rank);
    }
    if (in != out) return true;
  }
  return false;
}

std::vector<torch::optim::OptimizerParamGroup> one_group(std::vector<torch::Tensor> params) {
  return {torch::optim::OptimizerParamGroup(std::move(params))};
}

}  // namespace

// ---------------------------------------------------------------- options

AsyncOptions::AsyncOptions(double lr) : lr_(lr) {}

void AsyncOptions::serialize(OutputArchive& a) const {
  write_field(a, "lr", lr());
  write_field(a, "momentum", momentum());
  write_field(a, "weight_decay", weight_decay());
}

void AsyncOptions::serialize(InputArchive& a) {
  read_field(a, "lr", lr_);
  read_field(a, "momentum", momentum_);
  read_field(a, "weight_decay", weight_decay_);
}

// ---------------------------------------------------------------- shared machinery

AsyncDecentOptimizer::AsyncDecentOptimizer(
    std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
    AsyncOptions defaults, std::string algorithm, std::int64_t extra_elements,
    bool init_slots_with_neighbors)
    : DecentOptimizer(std::move(param_groups), std::make_unique<AsyncOptions>(defaults),
                      std::move(ctx), std::move(algorithm)) {
  for (const auto& group : param_groups_) {
    const auto& o = detail::options_of<AsyncOptions>(group, where());
    detail::check_learning_rate(where(), o.lr());
    detail::check_unit_interval(where(), "momentum", o.momentum());
    detail::check_non_negative(where(), "weight_decay", o.weight_decay());
  }
  const std::vector<torch::Tensor> params = all_parameters();
  const auto dtype = params.empty() ? torch::kFloat32 : params.front().scalar_type();
  if (dtype != torch::kFloat32 && dtype != torch::kFloat64) {
    throw InvalidArgument(fmt::format("{}: parameters must be float32 or float64, got {}", where(),
                                      c10::toString(dtype)));
  }
  for (const auto& p : params) {
    if (p.scalar_type() != dtype || !p.device().is_cpu()) {
      throw InvalidArgument(fmt::format(
          "{}: every parameter must be a CPU tensor of one dtype ({}), got {} on {}", where(),
          c10::toString(dtype), c10::toString(p.scalar_type()), p.device().str()));
    }
    numel_ += p.numel();
  }
  {
    torch::NoGradGuard no_grad;
    flat_ = torch::empty({numel_ + extra_elements}, torch::TensorOptions().dtype(dtype));
    if (numel_ > 0) flat_.slice(0, 0, numel_).copy_(flatten_parameters());
    if (extra_elements > 0) flat_.slice(0, numel_).fill_(1.0);
  }
  // The k-th window of this algorithm on the context: every rank creates its optimizers in the
  // same order, so the names agree.
  for (int k = 0;; ++k) {
    window_name_ = fmt::format("optim/{}/{}", this->algorithm(), k);
    try {
      ctx_->window(window_name_);
    } catch (const InvalidArgument&) {
      break;
    }
  }
  WindowOptions window_options;
  window_options.init_slots_with_neighbors = init_slots_with_neighbors;
  window_ = &ctx_->win_create(window_name_,
                              Buffer(flat_.data_ptr(), static_cast<std::size_t>(flat_.numel()),
                                     dtype == torch::kFloat32 ? DType::kFloat32 : DType::kFloat64),
                              window_options);
}

AsyncDecentOptimizer::~AsyncDecentOptimizer() {
  // Freeing is collective; while an error unwinds, the other ranks may never come.
  if (std::uncaught_exceptions() > 0) return;
  try {
    ctx_->win_free(window_name_);
  } catch (...) {
  }
}

const AsyncOptions& AsyncDecentOptimizer::options() const {
  return detail::options_of<AsyncOptions>(param_groups_.front(), where());
}

torch::Tensor AsyncDecentOptimizer::flatten_parameters() const {
  std::vector<torch::Tensor> pieces;
  for (const auto& p : all_parameters()) pieces.push_back(p.detach().reshape({-1}));
  if (pieces.empty()) return torch::empty({0}, flat_.options());
  return torch::cat(pieces);
}

void AsyncDecentOptimizer::assign_parameters(const torch::Tensor& flat) {
  torch::NoGradGuard no_grad;
  std::int64_t offset = 0;
  for (auto& p : all_parameters()) {
    p.copy_(flat.slice(0, offset, offset + p.numel()).view_as(p));
    offset += p.numel();
  }
}

torch::Tensor AsyncDecentOptimizer::flat_direction() {
  std::vector<torch::Tensor> pieces;
  for (auto& group : param_groups_) {
    const auto& o = detail::options_of<AsyncOptions>(group, where());
    for (auto& p : group.params()) {
      torch::Tensor d = decayed_gradient(p, o.weight_decay());
      if (o.momentum() != 0) d = update_momentum(p, d, o.momentum());
      pieces.push_back(d.reshape({-1}));
    }
  }
  if (pieces.empty()) return torch::empty({0}, flat_.options());
  return torch::cat(pieces);
}

// ---------------------------------------------------------------- AD-PSGD

ADPSGD::ADPSGD(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
               AsyncOptions defaults)
    : AsyncDecentOptimizer(std::move(param_groups), std::move(ctx), defaults, "ad-psgd", 0, false) {
  std::set<int> peers(window_->in_neighbors().begin(), window_->in_neighbors().end());
  peers.insert(window_->out_neighbors().begin(), window_->out_neighbors().end());
  peers_.assign(peers.begin(), peers.end());
  rng_.seed(0x61647073ULL ^ (static_cast<std::uint64_t>(ctx_->rank()) * 0x9e3779b97f4a7c15ULL));
  peer_value_ = torch::empty({numel_}, flat_.options());
}

ADPSGD::ADPSGD(std::vector<torch::Tensor> params, ContextPtr ctx, AsyncOptions defaults)
    : ADPSGD(one_group(std::move(params)), std::move(ctx), defaults) {}

torch::Tensor ADPSGD::step(LossClosure closure) {
  torch::Tensor loss = detail::evaluate_closure(closure);
  torch::NoGradGuard no_grad;
  const int me = ctx_->rank();
  const double lr = options().lr();
  const torch::Tensor direction = flat_direction();
  Window& win = *window_;
  const std::size_t count = static_cast<std::size_t>(numel_);
  const DType dtype = win.dtype();
  Buffer mine(flat_.data_ptr(), count, dtype);
  Buffer theirs(peer_value_.data_ptr(), count, dtype);

  if (peers_.empty()) {
    Window::Guard own(win, me);
    if (publish_parameters_) {
      flat_.copy_(flatten_parameters());
      win.write_value(me, mine);
    }
    win.read_value(me, mine);
    flat_.sub_(direction, lr);
    win.write_value(me, mine);
  } else {
    const int peer = peers_[std::uniform_int_distribution<std::size_t>(0, peers_.size() - 1)(rng_)];
    // Both mutexes, lower rank first: two ranks averaging with each other (or any cycle of
    // ranks) always queue on the same first lock instead of holding one each.
    win.lock(std::min(me, peer));
    win.lock(std::max(me, peer));
    try {
      if (publish_parameters_) {
        flat_.copy_(flatten_parameters());
        win.write_value(me, mine);
      }
      win.read_value(me, mine);
      win.read_value(peer, theirs);
      flat_.add_(peer_value_).mul_(0.5);
      win.write_value(peer, mine);
      win.unlock(peer);
      flat_.sub_(direction, lr);
      win.write_value(me, mine);
      win.unlock(me);
    } catch (...) {
      for (int r : {peer, me}) {
        if (win.holds_lock(r)) {
          try {
            win.unlock(r);
          } catch (...) {
          }
        }
      }
      throw;
    }
    last_peer_ = peer;
  }
  publish_parameters_ = false;
  assign_parameters(flat_);
  ++iteration_;
  return loss;
}

void ADPSGD::refresh_parameters() {
  torch::NoGradGuard no_grad;
  Window& win = *window_;
  if (publish_parameters_) return;  // the parameters are newer than the window
  win.read_value(ctx_->rank(),
                 Buffer(flat_.data_ptr(), static_cast<std::size_t>(numel_), win.dtype()));
  assign_parameters(flat_);
}

void ADPSGD::load_extra(InputArchive&) {
  publish_parameters_ = true;
}

// ---------------------------------------------------------------- window gossip

AsyncGossip::AsyncGossip(std::vector<torch::optim::OptimizerParamGroup> param_groups,
                         ContextPtr ctx, AsyncOptions defaults)
    : AsyncDecentOptimizer(std::move(param_groups), ctx, defaults, "async-gossip",
                           topology_is_directed(*ctx) ? 1 : 0, !topology_is_directed(*ctx)) {
  push_sum_ = flat_.numel() > numel_;
}

AsyncGossip::AsyncGossip(std::vector<torch::Tensor> params, ContextPtr ctx, AsyncOptions defaults)
    : AsyncGossip(one_group(std::move(params)), std::move(ctx), defaults) {}

double AsyncGossip::weight() const {
  return push_sum_ ? flat_[numel_].item<double>() : 1.0;
}

torch::Tensor AsyncGossip::step(LossClosure closure) {
  torch::Tensor loss = detail::evaluate_closure(closure);
  torch::NoGradGuard no_grad;
  const double lr = options().lr();
  const torch::Tensor direction = flat_direction();
  torch::Tensor x = flat_.slice(0, 0, numel_);
  Window& win = *window_;
  if (push_sum_) {
    // The gradient was taken at z = x / w. Scaled by w it moves z by exactly lr d: unscaled, a
    // rank whose weight is small (it stepped ahead of the mass coming in) would take a step
    // lr / w in z and diverge.
    x.sub_(direction, lr * flat_[numel_].item<double>());
    // A rank that steps faster than its in-neighbours gives away mass faster than it receives
    // any, and its weight would underflow; below kMinWeight it keeps its mass for a step (a
    // self-loop of weight 1, still column-stochastic) until its neighbours' mass comes in.
    constexpr double kMinWeight = 1e-2;
    const bool send_now = flat_[numel_].item<double>() >= kMinWeight;
    const double share = send_now ? 1.0 / static_cast<double>(win.out_neighbors().size() + 1) : 1.0;
    if (send_now) {
      WinPutOptions send;
      send.dst_weights.emplace();
      for (int dst : win.out_neighbors()) (*send.dst_weights)[dst] = share;
      win.accumulate(send);
    }
    WinUpdateOptions gather;
    gather.self_weight = share;
    gather.src_weights.emplace();
    for (int src : win.in_neighbors()) (*gather.src_weights)[src] = 1.0;
    gather.reset = true;
    win.update(gather);
    assign_parameters(x / flat_[numel_]);
  } else {
    x.copy_(flatten_parameters());
    x.sub_(direction, lr);
    win.put();
    win.update();
    assign_parameters(x);
  }
  ++iteration_;
  return loss;
}

void AsyncGossip::refresh_parameters() {
  torch::NoGradGuard no_grad;
  // The parameters already are this rank's model; with push-sum, fold in the mass that arrived
  // since the last step so that none is left behind in the slots.
  if (!push_sum_) return;
  WinUpdateOptions gather;
  gather.self_weight = 1.0;
  gather.src_weights.emplace();
  for (int src : window_->in_neighbors()) (*gather.src_weights)[src] = 1.0;
  gather.reset = true;
  window_->update(gather);
  assign_parameters(flat_.slice(0, 0, numel_) / flat_[numel_]);
}

void AsyncGossip::save_extra(OutputArchive& archive) const {
  archive.write("async_gossip/flat", flat_);
}

void AsyncGossip::load_extra(InputArchive& archive) {
  torch::Tensor saved;
  if (!archive.try_read("async_gossip/flat", saved)) return;
  if (saved.numel() != flat_.numel()) {
    throw InvalidArgument(fmt::format("{}: load: the checkpoint holds {} values, expected {}",
                                      where(), saved.numel(), flat_.numel()));
  }
  torch::NoGradGuard no_grad;
  flat_.copy_(saved);
  window_->publish();
}

}  // namespace decent::optim
