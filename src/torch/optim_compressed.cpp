// C-SGD, DoubleSqueeze, DCD-PSGD, DeepSqueeze and CHOCO-SGD as torch optimizers.
#include "decent/torch/optim_compressed.h"

#include "optim_internal.h"

#include <cstring>

namespace decent::optim {

using detail::read_field;
using detail::single_group;
using detail::write_field;
using torch::serialize::InputArchive;
using torch::serialize::OutputArchive;

namespace {

bool needs_unbiased(const std::string& algorithm) {
  return algorithm == "csgd" || algorithm == "dcd-psgd";
}

std::size_t total_elements(const std::vector<torch::optim::OptimizerParamGroup>& groups) {
  std::size_t total = 0;
  for (const auto& g : groups)
    for (const auto& p : g.params()) total += static_cast<std::size_t>(p.numel());
  return total;
}

// The m-th contributor's bytes of a gather.
std::vector<std::uint8_t> message_of(const GatherResult& r, std::size_t m) {
  std::size_t offset = 0;
  for (std::size_t i = 0; i < m; ++i) offset += r.counts[i];
  return {r.data.begin() + static_cast<std::ptrdiff_t>(offset),
          r.data.begin() + static_cast<std::ptrdiff_t>(offset + r.counts[m])};
}

}  // namespace

// ---------------------------------------------------------------- options

CompressedOptions::CompressedOptions(double lr) : lr_(lr) {}

void CompressedOptions::serialize(OutputArchive& a) const {
  write_field(a, "lr", lr());
  write_field(a, "momentum", momentum());
  write_field(a, "weight_decay", weight_decay());
}

void CompressedOptions::serialize(InputArchive& a) {
  read_field(a, "lr", lr_);
  read_field(a, "momentum", momentum_);
  read_field(a, "weight_decay", weight_decay_);
}

CompressionOptions::CompressionOptions(std::string compressor)
    : compressor_(std::move(compressor)) {}

void validate_compression(const std::string& algorithm, const CompressionOptions& options,
                          const std::string& where) {
  compress::CompressorPtr c;
  try {
    c = compress::make_compressor(options.compressor());
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(fmt::format("{}: {}", where, e.what()));
  }
  if (needs_unbiased(algorithm) && !c->unbiased())
    throw InvalidArgument(
        fmt::format("{}: {} needs an unbiased compressor (none, qsgd, randk); '{}' is biased",
                    where, algorithm, options.compressor()));
  const double eta = options.consensus_step();
  if (!(std::isfinite(eta) && eta > 0 && eta <= 1))
    throw InvalidArgument(fmt::format("{}: consensus_step = {}: must be in (0, 1]", where, eta));
}

// ---------------------------------------------------------------- common part

CompressedOptimizer::CompressedOptimizer(
    std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
    CompressedOptions defaults, CompressionOptions compression, std::string algorithm,
    bool allows_momentum)
    : DecentOptimizer(std::move(param_groups), std::make_unique<CompressedOptions>(defaults),
                      std::move(ctx), algorithm),
      compression_(std::move(compression)) {
  validate_compression(algorithm, compression_, where());
  compressor_ = compress::make_compressor(compression_.compressor());
  for (const auto& group : param_groups_) {
    const auto& o = detail::options_of<CompressedOptions>(group, where());
    detail::check_learning_rate(where(), o.lr());
    detail::check_unit_interval(where(), "momentum", o.momentum());
    detail::check_non_negative(where(), "weight_decay", o.weight_decay());
    if (!allows_momentum && o.momentum() != 0)
      throw InvalidArgument(fmt::format(
          "{}: momentum = {}: this algorithm has no momentum (csgd and doublesqueeze do)", where(),
          o.momentum()));
    for (const auto& p : group.params())
      if (!p.is_floating_point())
        throw InvalidArgument(fmt::format("{}: parameters must be floating point, got {}", where(),
                                          c10::toString(p.scalar_type())));
  }
  dimension_ = total_elements(param_groups_);
}

std::vector<CompressedOptimizer::Segment> CompressedOptimizer::segments() {
  std::vector<Segment> out;
  std::size_t offset = 0;
  for (auto& group : param_groups_) {
    const auto& o = detail::options_of<CompressedOptions>(group, where());
    detail::check_learning_rate(where(), o.lr());
    for (auto& p : group.params()) {
      const auto numel = static_cast<std::size_t>(p.numel());
      out.push_back({p, offset, numel, o.lr(), o.momentum(), o.weight_decay()});
      offset += numel;
    }
  }
  if (offset != dimension_)
    throw InvalidArgument(fmt::format(
        "{}: the parameters have {} elements, {} when the optimizer was built; the compressed "
        "state (residuals, replicas) cannot follow added parameters",
        where(), offset, dimension_));
  return out;
}

std::vector<double> CompressedOptimizer::flat_parameters(const std::vector<Segment>& segments) {
  std::vector<double> x;
  x.reserve(segments.empty() ? 0 : segments.back().offset + segments.back().numel);
  for (const auto& s : segments) {
    const torch::Tensor t = s.param.detach().reshape(-1).to(torch::kFloat64).contiguous();
    x.insert(x.end(), t.data_ptr<double>(), t.data_ptr<double>() + s.numel);
  }
  return x;
}

std::vector<double> CompressedOptimizer::flat_gradients(const std::vector<Segment>& segments) {
  std::vector<double> g;
  for (const auto& s : segments) {
    if (!s.param.grad().defined()) {
      g.insert(g.end(), s.numel, 0.0);
      continue;
    }
    const torch::Tensor t = s.param.grad().detach().reshape(-1).to(torch::kFloat64).contiguous();
    g.insert(g.end(), t.data_ptr<double>(), t.data_ptr<double>() + s.numel);
  }
  return g;
}

std::vector<double> CompressedOptimizer::adapted_parameters(const std::vector<Segment>& segments,
                                                            const std::vector<double>& x,
                                                            const std::vector<double>& g) {
  std::vector<double> u(x.size());
  for (const auto& s : segments)
    for (std::size_t i = s.offset; i < s.offset + s.numel; ++i)
      u[i] = x[i] - s.lr * (g[i] + s.weight_decay * x[i]);
  return u;
}

void CompressedOptimizer::write_parameters(const std::vector<Segment>& segments,
                                           const std::vector<double>& x) {
  for (const auto& s : segments) {
    const torch::Tensor src =
        torch::from_blob(const_cast<double*>(x.data() + s.offset),
                         {static_cast<std::int64_t>(s.numel)}, torch::kFloat64);
    s.param.detach().copy_(src.view(s.param.sizes()));
  }
}

void CompressedOptimizer::apply_averaged_gradient(const std::vector<Segment>& segments,
                                                  const std::vector<double>& v) {
  for (const auto& s : segments) {
    torch::Tensor d = torch::from_blob(const_cast<double*>(v.data() + s.offset),
                                       {static_cast<std::int64_t>(s.numel)}, torch::kFloat64)
                          .view(s.param.sizes())
                          .to(s.param.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
    if (s.weight_decay != 0) d.add_(s.param.detach(), s.weight_decay);
    if (s.momentum != 0) d = update_momentum(s.param, d, s.momentum);
    s.param.detach().sub_(d, s.lr);
  }
}

std::uint64_t CompressedOptimizer::seed(std::uint64_t purpose) const {
  return compress::derive_seed(compression_.seed(), ctx_->rank(), iteration_, purpose);
}

void CompressedOptimizer::save_extra(OutputArchive& archive) const {
  write_field(archive, "compressed/compressor", compressor_->spec());
  write_field(archive, "compressed/consensus_step", compression_.consensus_step());
  write_field(archive, "compressed/seed", static_cast<std::int64_t>(compression_.seed()));
  write_field(archive, "compressed/initialized", initialized_);
  write_field(archive, "compressed/encoded_bytes_sent",
              static_cast<std::int64_t>(encoded_bytes_sent_));
  for (const auto& [name, vec] : const_cast<CompressedOptimizer*>(this)->state_vectors()) {
    // A copy: the archive keeps the tensor, the optimizer keeps changing its vectors.
    torch::Tensor t = torch::empty({static_cast<std::int64_t>(vec->size())}, torch::kFloat64);
    if (!vec->empty()) std::memcpy(t.data_ptr<double>(), vec->data(), vec->size() * sizeof(double));
    archive.write("compressed/" + name, t);
  }
}

void CompressedOptimizer::load_extra(InputArchive& archive) {
  c10::IValue spec = detail::read_value(archive, "compressed/compressor");
  if (spec.toStringRef() != compressor_->spec())
    throw InvalidArgument(fmt::format(
        "{}: load: the checkpoint was written with compressor '{}', this optimizer uses '{}'",
        where(), spec.toStringRef(), compressor_->spec()));
  double eta = 0;
  std::int64_t saved_seed = 0, bytes = 0;
  bool initialized = false;
  read_field(archive, "compressed/consensus_step", eta);
  read_field(archive, "compressed/seed", saved_seed);
  read_field(archive, "compressed/initialized", initialized);
  read_field(archive, "compressed/encoded_bytes_sent", bytes);
  if (eta != compression_.consensus_step() ||
      static_cast<std::uint64_t>(saved_seed) != compression_.seed())
    throw InvalidArgument(fmt::format(
        "{}: load: the checkpoint has consensus_step {} and seed {}, this optimizer {} and {}",
        where(), eta, saved_seed, compression_.consensus_step(), compression_.seed()));
  // Read every vector before changing any, so that a bad checkpoint leaves the state intact.
  auto targets = state_vectors();
  std::vector<std::vector<double>> values;
  for (const auto& [name, vec] : targets) {
    torch::Tensor t;
    archive.read("compressed/" + name, t);
    t = t.to(torch::kFloat64).contiguous();
    const auto n = static_cast<std::size_t>(t.numel());
    // Empty means "not set up yet" (DCD-PSGD before its first step, DoubleSqueeze's
    // aggregator residual on the other ranks); state that always exists must come back whole.
    const bool always_present = !vec->empty();
    if ((n != 0 && n != dimension_) || (n == 0 && always_present && dimension_ != 0))
      throw InvalidArgument(
          fmt::format("{}: load: state '{}' has {} elements, the flattened parameters {}", where(),
                      name, n, dimension_));
    values.emplace_back(t.data_ptr<double>(), t.data_ptr<double>() + n);
  }
  for (std::size_t i = 0; i < targets.size(); ++i) *targets[i].second = std::move(values[i]);
  initialized_ = initialized;
  encoded_bytes_sent_ = static_cast<std::uint64_t>(bytes);
}

// ---------------------------------------------------------------- C-SGD

CSGD::CSGD(std::vector<torch::Tensor> params, ContextPtr ctx, CompressedOptions defaults,
           CompressionOptions compression)
    : CompressedOptimizer(single_group(std::move(params)), std::move(ctx), defaults,
                          std::move(compression), "csgd", /*allows_momentum=*/true) {}

torch::Tensor CSGD::step(LossClosure closure) {
  torch::Tensor loss = detail::evaluate_closure(closure);
  torch::NoGradGuard no_grad;
  const std::vector<Segment> segs = segments();
  const std::vector<double> g = flat_gradients(segs);
  const std::vector<std::uint8_t> bytes = compressor_->encode(g.data(), g.size(), seed());
  const GatherResult all = ctx_->allgather(ConstBuffer(bytes.data(), bytes.size(), DType::kUInt8));
  encoded_bytes_sent_ += bytes.size() * static_cast<std::uint64_t>(ctx_->size() - 1);
  // Summed in rank order on every rank, so all ranks apply the same average.
  std::vector<double> average(dimension_, 0.0), decoded(dimension_);
  for (std::size_t m = 0; m < all.ranks.size(); ++m) {
    const std::vector<std::uint8_t> message = message_of(all, m);
    try {
      compressor_->decode(message.data(), message.size(), decoded.data(), dimension_);
    } catch (const compress::DecodeError& e) {
      throw compress::DecodeError(
          fmt::format("{}: message from rank {}: {}", where(), all.ranks[m], e.what()));
    }
    for (std::size_t i = 0; i < dimension_; ++i) average[i] += decoded[i];
  }
  const double n = ctx_->size();
  for (double& a : average) a /= n;
  apply_averaged_gradient(segs, average);
  ++iteration_;
  return loss;
}

// ---------------------------------------------------------------- DoubleSqueeze

DoubleSqueeze::DoubleSqueeze(std::vector<torch::Tensor> params, ContextPtr ctx,
                             CompressedOptions defaults, CompressionOptions compression)
    : CompressedOptimizer(single_group(std::move(params)), std::move(ctx), defaults,
                          std::move(compression), "doublesqueeze", /*allows_momentum=*/true),
      worker_(compressor_, dimension_),
      aggregator_residual_(ctx_->rank() == 0 ? dimension_ : 0, 0.0) {}

std::vector<std::pair<std::string, std::vector<double>*>> DoubleSqueeze::state_vectors() {
  return {{"worker_residual", &worker_.residual()}, {"aggregator_residual", &aggregator_residual_}};
}

torch::Tensor DoubleSqueeze::step(LossClosure closure) {
  torch::Tensor loss = detail::evaluate_closure(closure);
  torch::NoGradGuard no_grad;
  const std::vector<Segment> segs = segments();
  const std::vector<double> g = flat_gradients(segs);
  const int n = ctx_->size();
  const int rank = ctx_->rank();
  constexpr int kAggregator = 0;

  // Workers -> aggregator: v_i = C(g_i + delta_i) with error feedback.
  std::vector<double> own(dimension_);
  const std::vector<std::uint8_t> up = worker_.encode(g.data(), seed(0), own.data());
  GatherResult received;
  if (n > 1) {
    NeighborAllreduceOptions to_aggregator;
    to_aggregator.self_weight = 1.0;
    to_aggregator.src_weights.emplace();
    to_aggregator.dst_weights.emplace();
    if (rank == kAggregator) {
      for (int j = 0; j < n; ++j)
        if (j != kAggregator) (*to_aggregator.src_weights)[j] = 1.0;
    } else {
      (*to_aggregator.dst_weights)[kAggregator] = 1.0;
      encoded_bytes_sent_ += up.size();
    }
    received =
        ctx_->neighbor_allgather(ConstBuffer(up.data(), up.size(), DType::kUInt8), to_aggregator);
  }

  // Aggregator: v = C(avg_j v_j + delta_bar) with error feedback, broadcast to every rank.
  std::vector<std::uint8_t> down(compressor_->encoded_size(dimension_, DType::kFloat64));
  if (rank == kAggregator) {
    std::vector<double> average = own, decoded(dimension_);
    for (std::size_t m = 0; m < received.ranks.size(); ++m) {
      const std::vector<std::uint8_t> message = message_of(received, m);
      try {
        compressor_->decode(message.data(), message.size(), decoded.data(), dimension_);
      } catch (const compress::DecodeError& e) {
        throw compress::DecodeError(
            fmt::format("{}: message from rank {}: {}", where(), received.ranks[m], e.what()));
      }
      for (std::size_t i = 0; i < dimension_; ++i) average[i] += decoded[i];
    }
    for (std::size_t i = 0; i < dimension_; ++i)
      average[i] = average[i] / n + aggregator_residual_[i];
    std::vector<double> sent(dimension_);
    down = compress::compress(*compressor_, average.data(), dimension_, seed(1), sent.data());
    for (std::size_t i = 0; i < dimension_; ++i) aggregator_residual_[i] = average[i] - sent[i];
    // A broadcast counts once, as in the Context's statistics (its tree is the transport's).
    if (n > 1) encoded_bytes_sent_ += down.size();
  }
  if (n > 1) ctx_->broadcast(Buffer(down.data(), down.size(), DType::kUInt8), kAggregator);
  std::vector<double> v(dimension_);
  try {
    compressor_->decode(down.data(), down.size(), v.data(), dimension_);
  } catch (const compress::DecodeError& e) {
    throw compress::DecodeError(
        fmt::format("{}: message from rank {}: {}", where(), kAggregator, e.what()));
  }
  apply_averaged_gradient(segs, v);
  ++iteration_;
  return loss;
}

// ---------------------------------------------------------------- DCD-PSGD

DCDPSGD::DCDPSGD(std::vector<torch::Tensor> params, ContextPtr ctx, CompressedOptions defaults,
                 CompressionOptions compression)
    : CompressedOptimizer(single_group(std::move(params)), std::move(ctx), defaults,
                          std::move(compression), "dcd-psgd", /*allows_momentum=*/false) {}

std::vector<std::pair<std::string, std::vector<double>*>> DCDPSGD::state_vectors() {
  return {{"mixed_parameters", &mixed_parameters_}};
}

torch::Tensor DCDPSGD::step(LossClosure closure) {
  torch::Tensor loss = detail::evaluate_closure(closure);
  torch::NoGradGuard no_grad;
  const auto& topology = ctx_->topology();
  if (!topology->is_static())
    throw InvalidArgument(fmt::format(
        "{}: topology '{}' changes from step to step; the replicas of neighbours' models need "
        "a static graph (deepsqueeze runs on dynamic ones)",
        where(), topology->name()));
  const std::vector<Segment> segs = segments();
  std::vector<double> x = flat_parameters(segs);
  const std::vector<double> g = flat_gradients(segs);
  if (!initialized_) {
    // Replicas start as exact copies of the neighbours' models: one uncompressed averaging.
    mixed_parameters_ = x;
    NeighborAllreduceOptions opts;
    opts.step = iteration_;
    ctx_->neighbor_allreduce(ConstBuffer(mixed_parameters_), Buffer(mixed_parameters_), opts);
    initialized_ = true;
  }
  // z = sum_j w_ij x_j - gamma d_i - x_i, with u = x - gamma d.
  const std::vector<double> u = adapted_parameters(segs, x, g);
  std::vector<double> z(dimension_), q(dimension_), mixed_update(dimension_);
  for (std::size_t i = 0; i < dimension_; ++i) z[i] = (mixed_parameters_[i] - x[i]) - (x[i] - u[i]);
  const std::vector<std::uint8_t> bytes =
      compress::compress(*compressor_, z.data(), dimension_, seed(), q.data());
  encoded_bytes_sent_ += compress::neighbor_allreduce_encoded(
      *ctx_, *compressor_, bytes, q.data(), dimension_, mixed_update.data(), iteration_);
  for (std::size_t i = 0; i < dimension_; ++i) {
    x[i] += q[i];
    mixed_parameters_[i] += mixed_update[i];
  }
  write_parameters(segs, x);
  ++iteration_;
  return loss;
}

// ---------------------------------------------------------------- DeepSqueeze

DeepSqueeze::DeepSqueeze(std::vector<torch::Tensor> params, ContextPtr ctx,
                         CompressedOptions defaults, CompressionOptions compression)
    : CompressedOptimizer(single_group(std::move(params)), std::move(ctx), defaults,
                          std::move(compression), "deepsqueeze", /*allows_momentum=*/false),
      feedback_(compressor_, dimension_) {}

std::vector<std::pair<std::string, std::vector<double>*>> DeepSqueeze::state_vectors() {
  return {{"residual", &feedback_.residual()}};
}

torch::Tensor DeepSqueeze::step(LossClosure closure) {
  torch::Tensor loss = detail::evaluate_closure(closure);
  torch::NoGradGuard no_grad;
  const std::vector<Segment> segs = segments();
  const std::vector<double> x = flat_parameters(segs);
  std::vector<double> u = adapted_parameters(segs, x, flat_gradients(segs));
  std::vector<double> v(dimension_), combination(dimension_);
  const std::vector<std::uint8_t> bytes = feedback_.encode(u.data(), seed(), v.data());
  // sum_j (w_ij - I_ij) v_j: the topology's weights with w_ii - 1 for this rank's own v.
  const double self_weight = ctx_->topology()->plan(iteration_, ctx_->rank()).self_weight;
  encoded_bytes_sent_ +=
      compress::neighbor_allreduce_encoded(*ctx_, *compressor_, bytes, v.data(), dimension_,
                                           combination.data(), iteration_, self_weight - 1.0);
  const double eta = compression_.consensus_step();
  for (std::size_t i = 0; i < dimension_; ++i) u[i] += eta * combination[i];
  write_parameters(segs, u);
  ++iteration_;
  return loss;
}

// ---------------------------------------------------------------- CHOCO-SGD

ChocoSGD::ChocoSGD(std::vector<torch::Tensor> params, ContextPtr ctx, CompressedOptions defaults,
                   CompressionOptions compression)
    : CompressedOptimizer(single_group(std::move(params)), std::move(ctx), defaults,
                          std::move(compression), "choco-sgd", /*allows_momentum=*/false),
      gossip_(*ctx_, compressor_, dimension_, compression_.consensus_step()) {}

std::vector<std::pair<std::string, std::vector<double>*>> ChocoSGD::state_vectors() {
  return {{"replica", &gossip_.replica()}, {"mixed_replica", &gossip_.mixed_replica()}};
}

torch::Tensor ChocoSGD::step(LossClosure closure) {
  torch::Tensor loss = detail::evaluate_closure(closure);
  torch::NoGradGuard no_grad;
  const std::vector<Segment> segs = segments();
  const std::vector<double> x = flat_parameters(segs);
  std::vector<double> half = adapted_parameters(segs, x, flat_gradients(segs));
  encoded_bytes_sent_ += gossip_.step(half.data(), iteration_, seed());
  write_parameters(segs, half);
  ++iteration_;
  return loss;
}

}  // namespace decent::optim
