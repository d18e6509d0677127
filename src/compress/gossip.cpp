// Compressed neighbour averaging: encoded exchange and CHOCO gossip with replicas.
#include "decent/compress/gossip.h"

#include <fmt/format.h>

#include <cmath>
#include <map>

namespace decent::compress {

template <typename T>
std::uint64_t neighbor_allreduce_encoded(Context& ctx, const Compressor& compressor,
                                         const std::vector<std::uint8_t>& encoded, const T* own,
                                         std::size_t count, T* out, std::int64_t step,
                                         std::optional<double> self_weight) {
  const int rank = ctx.rank();
  const topology::StepPlan plan = ctx.topology()->plan(step, rank);
  NeighborAllreduceOptions opts;
  opts.step = step;
  const GatherResult received =
      ctx.neighbor_allgather(ConstBuffer(encoded.data(), encoded.size(), DType::kUInt8), opts);

  std::map<int, double> weights;
  for (const auto& p : plan.recv) weights[p.rank] = p.weight;
  const double w_self = self_weight ? *self_weight : plan.self_weight;
  std::vector<T> sum(count);
  for (std::size_t i = 0; i < count; ++i) sum[i] = static_cast<T>(w_self * own[i]);

  std::vector<T> decoded(count);
  std::size_t offset = 0;
  for (std::size_t m = 0; m < received.ranks.size(); ++m) {
    const int src = received.ranks[m];
    const std::uint8_t* bytes = received.data.data() + offset;
    const std::size_t size = received.counts[m];
    offset += size;
    const auto w = weights.find(src);
    if (w == weights.end())
      throw MismatchError(fmt::format(
          "rank {}: compressed neighbor_allreduce: received from rank {}, which is not an "
          "in-neighbour at step {}",
          rank, src, step));
    try {
      const std::size_t n = compressor.decoded_count(bytes, size);
      if (n != count)
        throw MismatchError(fmt::format(
            "rank {}: compressed neighbor_allreduce: rank {} encoded {} elements, this rank {}",
            rank, src, n, count));
      compressor.decode(bytes, size, decoded.data(), count);
    } catch (const DecodeError& e) {
      throw DecodeError(fmt::format(
          "rank {}: compressed neighbor_allreduce: message from rank {}: {}", rank, src, e.what()));
    }
    const T weight = static_cast<T>(w->second);
    for (std::size_t i = 0; i < count; ++i) sum[i] += weight * decoded[i];
  }
  std::copy(sum.begin(), sum.end(), out);
  return static_cast<std::uint64_t>(encoded.size()) * plan.send.size();
}

template std::uint64_t neighbor_allreduce_encoded<float>(Context&, const Compressor&,
                                                         const std::vector<std::uint8_t>&,
                                                         const float*, std::size_t, float*,
                                                         std::int64_t, std::optional<double>);
template std::uint64_t neighbor_allreduce_encoded<double>(Context&, const Compressor&,
                                                          const std::vector<std::uint8_t>&,
                                                          const double*, std::size_t, double*,
                                                          std::int64_t, std::optional<double>);

template <typename T>
CompressedGossip<T>::CompressedGossip(Context& ctx, CompressorPtr compressor, std::size_t count,
                                      double consensus_step)
    : ctx_(ctx),
      compressor_(std::move(compressor)),
      consensus_step_(consensus_step),
      replica_(count, T(0)),
      mixed_replica_(count, T(0)),
      difference_(count),
      decoded_(count),
      mixed_update_(count) {
  if (!compressor_)
    throw InvalidArgument(
        fmt::format("rank {}: compressed gossip: the compressor is null", ctx.rank()));
  if (!(std::isfinite(consensus_step) && consensus_step > 0 && consensus_step <= 1))
    throw InvalidArgument(
        fmt::format("rank {}: compressed gossip: consensus_step = {}: must be in (0, 1]",
                    ctx.rank(), consensus_step));
}

template <typename T>
std::uint64_t CompressedGossip<T>::step(T* x, std::int64_t step, std::uint64_t seed) {
  const auto& topology = ctx_.topology();
  if (!topology->is_static())
    throw InvalidArgument(fmt::format(
        "rank {}: compressed gossip: topology '{}' changes from step to step; the replicas of "
        "neighbours' states need a static graph",
        ctx_.rank(), topology->name()));
  const std::size_t n = replica_.size();
  for (std::size_t i = 0; i < n; ++i) difference_[i] = x[i] - replica_[i];
  const std::vector<std::uint8_t> q =
      compress(*compressor_, difference_.data(), n, seed, decoded_.data());
  const std::uint64_t sent = neighbor_allreduce_encoded(ctx_, *compressor_, q, decoded_.data(), n,
                                                        mixed_update_.data(), step);
  const T gamma = static_cast<T>(consensus_step_);
  for (std::size_t i = 0; i < n; ++i) {
    replica_[i] += decoded_[i];
    mixed_replica_[i] += mixed_update_[i];
    x[i] += gamma * (mixed_replica_[i] - replica_[i]);
  }
  bytes_sent_ += sent;
  return sent;
}

template class CompressedGossip<float>;
template class CompressedGossip<double>;

}  // namespace decent::compress
