// DecentOptimizer (state, overlap, checkpoints) and DecentralizedWrapper.
#include "decent/torch/optim/base.h"
#include "decent/torch/optim/wrapper.h"
#include "decent/torch/tensor_ops.h"

#include "optim_internal.h"

namespace decent::optim {

using torch::serialize::InputArchive;
using torch::serialize::OutputArchive;

const char* combine_name(Combine c) {
  return c == Combine::kAdaptThenCombine ? "adapt-then-combine" : "adapt-with-combine";
}

// ---------------------------------------------------------------- ParamState

namespace {

// Accessors by name; keeps serialization and shape checks in one list.
template <typename Fn>
void for_each_field(ParamState& s, Fn&& fn) {
  fn("momentum_buffer", s.momentum_buffer());
  fn("slow_momentum_buffer", s.slow_momentum_buffer());
  fn("anchor", s.anchor());
  fn("push_sum_numerator", s.push_sum_numerator());
  fn("neighbor_average", s.neighbor_average());
}

}  // namespace

void ParamState::serialize(OutputArchive& archive) const {
  for_each_field(const_cast<ParamState&>(*this), [&](const char* name, const torch::Tensor& t) {
    if (t.defined()) archive.write(name, t);
  });
}

void ParamState::serialize(InputArchive& archive) {
  for_each_field(*this, [&](const char* name, torch::Tensor& t) {
    torch::Tensor read;
    t = archive.try_read(name, read) ? read : torch::Tensor();
  });
}

// ---------------------------------------------------------------- DecentOptimizer

DecentOptimizer::DecentOptimizer(std::vector<torch::optim::OptimizerParamGroup> param_groups,
                                 std::unique_ptr<torch::optim::OptimizerOptions> defaults,
                                 ContextPtr ctx, std::string algorithm)
    : torch::optim::Optimizer(std::move(param_groups), std::move(defaults)),
      ctx_(detail::require_context(std::move(ctx), algorithm.c_str())),
      algorithm_(std::move(algorithm)) {}

DecentOptimizer::~DecentOptimizer() {
  // The communication thread may still write into prefetched buffers; let it finish.
  for (auto& h : prefetch_handles_) {
    try {
      h.wait();
    } catch (...) {
    }
  }
}

std::string DecentOptimizer::where() const {
  return fmt::format("rank {}: {}", ctx_->rank(), algorithm_);
}

ParamState& DecentOptimizer::param_state(const torch::Tensor& p) {
  auto& slot = state_[c10::guts::to_string(p.unsafeGetTensorImpl())];
  if (!slot) slot = std::make_unique<ParamState>();
  return static_cast<ParamState&>(*slot);
}

std::vector<torch::Tensor> DecentOptimizer::all_parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& group : param_groups_)
    for (const auto& p : group.params()) out.push_back(p);
  return out;
}

torch::Tensor DecentOptimizer::decayed_gradient(const torch::Tensor& p, double weight_decay) {
  torch::Tensor g = p.grad().defined() ? p.grad().detach() : torch::zeros_like(p);
  return weight_decay != 0 ? g.add(p.detach(), weight_decay) : g;
}

torch::Tensor& DecentOptimizer::update_momentum(const torch::Tensor& p, const torch::Tensor& d,
                                                double beta) {
  ParamState& st = param_state(p);
  if (!st.momentum_buffer().defined())
    st.momentum_buffer(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
  st.momentum_buffer().mul_(beta).add_(d);
  return st.momentum_buffer();
}

void DecentOptimizer::average_with_neighbors(std::vector<torch::Tensor>& tensors,
                                             std::int64_t first_step, int rounds) {
  for (int r = 0; r < rounds; ++r) {
    NeighborAllreduceOptions opts;
    opts.step = first_step + r;
    neighbor_allreduce_(*ctx_, tensors, opts);
  }
}

void DecentOptimizer::average_globally(std::vector<torch::Tensor>& tensors) {
  allreduce_(*ctx_, tensors, ReduceOp::kAverage);
}

void DecentOptimizer::synchronize() const {
  std::vector<Handle> handles;
  handles.swap(prefetch_handles_);
  for (auto& h : handles) h.wait();
}

void DecentOptimizer::discard_prefetched_average() {
  synchronize();
  prefetched_iteration_ = -1;
}

std::vector<torch::Tensor> DecentOptimizer::neighbor_average_of_parameters(int rounds) {
  std::vector<torch::Tensor> averaged;
  if (prefetched_iteration_ == iteration_) {
    synchronize();
    for (const auto& p : all_parameters()) averaged.push_back(param_state(p).neighbor_average());
    prefetched_iteration_ = -1;
    return averaged;
  }
  for (const auto& p : all_parameters())
    averaged.push_back(p.detach().clone(torch::MemoryFormat::Contiguous));
  average_with_neighbors(averaged, iteration_ * rounds, rounds);
  return averaged;
}

void DecentOptimizer::prefetch_neighbor_average(int rounds) {
  synchronize();
  std::vector<torch::Tensor> buffers;
  for (const auto& p : all_parameters()) {
    ParamState& st = param_state(p);
    if (st.neighbor_average().defined() && st.neighbor_average().sizes() == p.sizes() &&
        st.neighbor_average().scalar_type() == p.scalar_type())
      st.neighbor_average().copy_(p.detach());
    else
      st.neighbor_average(p.detach().clone(torch::MemoryFormat::Contiguous));
    buffers.push_back(st.neighbor_average());
  }
  // Rounds are queued back to back on the communication thread, which runs them in order.
  for (int r = 0; r < rounds; ++r) {
    NeighborAllreduceOptions opts;
    opts.step = iteration_ * rounds + r;
    prefetch_handles_.push_back(neighbor_allreduce_async_(*ctx_, buffers, opts));
  }
  prefetched_iteration_ = iteration_;
}

void DecentOptimizer::save(OutputArchive& archive) const {
  synchronize();
  const bool prefetched = prefetched_iteration_ == iteration_;
  detail::write_field(archive, "decent/algorithm", algorithm_);
  detail::write_field(archive, "decent/iteration", iteration_);
  detail::write_field(archive, "decent/prefetched", prefetched);
  detail::write_field(archive, "decent/param_groups/size",
                      static_cast<std::int64_t>(param_groups_.size()));
  std::int64_t index = 0;
  for (std::size_t g = 0; g < param_groups_.size(); ++g) {
    const auto& group = param_groups_[g];
    OutputArchive group_archive(archive.compilation_unit());
    detail::write_field(group_archive, "size", static_cast<std::int64_t>(group.params().size()));
    OutputArchive options_archive(archive.compilation_unit());
    group.options().serialize(options_archive);
    group_archive.write("options", options_archive);
    archive.write(fmt::format("decent/param_groups/{}", g), group_archive);
    for (const auto& p : group.params()) {
      auto it = state_.find(c10::guts::to_string(p.unsafeGetTensorImpl()));
      if (it != state_.end()) {
        ParamState st = static_cast<const ParamState&>(*it->second);
        // A consumed average is scratch space only; a prefetched one is the next step's input.
        if (!prefetched) st.neighbor_average(torch::Tensor());
        OutputArchive state_archive(archive.compilation_unit());
        st.serialize(state_archive);
        archive.write(fmt::format("decent/state/{}", index), state_archive);
      }
      ++index;
    }
  }
  save_extra(archive);
}

void DecentOptimizer::load(InputArchive& archive) {
  discard_prefetched_average();
  c10::IValue algorithm = detail::read_value(archive, "decent/algorithm");
  if (algorithm.toStringRef() != algorithm_)
    throw InvalidArgument(fmt::format("{}: load: the checkpoint was written by '{}'", where(),
                                      algorithm.toStringRef()));
  std::int64_t groups = 0;
  detail::read_field(archive, "decent/param_groups/size", groups);
  if (groups != static_cast<std::int64_t>(param_groups_.size()))
    throw InvalidArgument(
        fmt::format("{}: load: the checkpoint has {} parameter groups, this "
                    "optimizer {}",
                    where(), groups, param_groups_.size()));
  std::vector<std::unique_ptr<torch::optim::OptimizerOptions>> options;
  for (std::size_t g = 0; g < param_groups_.size(); ++g) {
    InputArchive group_archive;
    archive.read(fmt::format("decent/param_groups/{}", g), group_archive);
    std::int64_t size = 0;
    detail::read_field(group_archive, "size", size);
    if (size != static_cast<std::int64_t>(param_groups_[g].params().size()))
      throw InvalidArgument(
          fmt::format("{}: load: parameter group {} has {} parameters in the "
                      "checkpoint and {} here",
                      where(), g, size, param_groups_[g].params().size()));
    InputArchive options_archive;
    group_archive.read("options", options_archive);
    auto o = param_groups_[g].options().clone();
    o->serialize(options_archive);
    options.push_back(std::move(o));
  }
  // Read everything before changing anything, so a bad checkpoint leaves the optimizer intact.
  std::vector<std::unique_ptr<ParamState>> states;
  const std::vector<torch::Tensor> params = all_parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    InputArchive state_archive;
    if (!archive.try_read(fmt::format("decent/state/{}", i), state_archive)) {
      states.emplace_back();
      continue;
    }
    auto st = std::make_unique<ParamState>();
    st->serialize(state_archive);
    for_each_field(*st, [&](const char* name, torch::Tensor& t) {
      if (t.defined() && t.sizes() != params[i].sizes())
        throw InvalidArgument(
            fmt::format("{}: load: state '{}' of parameter {} has shape {}, "
                        "the parameter {}",
                        where(), name, i, c10::str(t.sizes()), c10::str(params[i].sizes())));
    });
    states.push_back(std::move(st));
  }
  std::int64_t iteration = 0;
  bool prefetched = false;
  detail::read_field(archive, "decent/iteration", iteration);
  detail::read_field(archive, "decent/prefetched", prefetched);
  if (prefetched)
    for (const auto& st : states)
      if (!st || !st->neighbor_average().defined())
        throw InvalidArgument(
            fmt::format("{}: load: prefetched neighbour average is incomplete", where()));
  load_extra(archive);

  for (std::size_t g = 0; g < param_groups_.size(); ++g)
    param_groups_[g].set_options(std::move(options[g]));
  state_.clear();
  for (std::size_t i = 0; i < params.size(); ++i)
    if (states[i])
      state_[c10::guts::to_string(params[i].unsafeGetTensorImpl())] = std::move(states[i]);
  iteration_ = iteration;
  prefetched_iteration_ = prefetched ? iteration_ : -1;
}

// ---------------------------------------------------------------- DecentralizedWrapper

namespace {

const torch::optim::Optimizer& checked_base(const std::unique_ptr<torch::optim::Optimizer>& base,
                                            const std::string& algorithm) {
  if (!base) throw InvalidArgument(fmt::format("{}: the base optimizer is null", algorithm));
  return *base;
}

}  // namespace

DecentralizedWrapper::DecentralizedWrapper(std::unique_ptr<torch::optim::Optimizer> base,
                                           ContextPtr ctx, WrapperOptions options,
                                           std::string algorithm)
    : DecentOptimizer(checked_base(base, algorithm).param_groups(),
                      checked_base(base, algorithm).defaults().clone(), std::move(ctx), algorithm),
      base_(std::move(base)),
      options_(options) {
  detail::check_at_least(where(), "gossip_rounds", options_.gossip_rounds, 1);
}

void DecentralizedWrapper::copy_options_to_base() {
  auto& base_groups = base_->param_groups();
  if (base_groups.size() > param_groups_.size())
    throw InvalidArgument(
        fmt::format("{}: the base optimizer has parameter groups the wrapper "
                    "does not know; add groups to the wrapper",
                    where()));
  for (std::size_t g = base_groups.size(); g < param_groups_.size(); ++g)
    base_->add_param_group(param_groups_[g]);
  for (std::size_t g = 0; g < param_groups_.size(); ++g)
    base_groups[g].set_options(param_groups_[g].options().clone());
}

torch::Tensor DecentralizedWrapper::step(LossClosure closure) {
  const int rounds = options_.gossip_rounds;
  copy_options_to_base();
  if (options_.combine == Combine::kAdaptThenCombine) {
    torch::Tensor loss = base_->step(closure);
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> params = all_parameters();
    average_with_neighbors(params, iteration_ * rounds, rounds);
    ++iteration_;
    return loss;
  }
  std::vector<torch::Tensor> averaged;
  std::vector<torch::Tensor> before;
  {
    torch::NoGradGuard no_grad;
    averaged = neighbor_average_of_parameters(rounds);
    for (const auto& p : all_parameters()) before.push_back(p.detach().clone());
  }
  torch::Tensor loss = base_->step(closure);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> params = all_parameters();
  for (std::size_t i = 0; i < params.size(); ++i) params[i].sub_(before[i]).add_(averaged[i]);
  ++iteration_;
  if (options_.overlap) prefetch_neighbor_average(rounds);
  return loss;
}

void DecentralizedWrapper::save_extra(OutputArchive& archive) const {
  OutputArchive base_archive(archive.compilation_unit());
  base_->save(base_archive);
  archive.write("wrapper/base", base_archive);
}

void DecentralizedWrapper::load_extra(InputArchive& archive) {
  InputArchive base_archive;
  archive.read("wrapper/base", base_archive);
  base_->load(base_archive);
}

}  // namespace decent::optim
