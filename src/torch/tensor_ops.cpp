#include "decent/torch/tensor_ops.h"

#include <fmt/format.h>

#include <sstream>

namespace decent {

DType dtype_of_tensor(const torch::Tensor& t, const Context& ctx, const char* op) {
  switch (t.scalar_type()) {
    case torch::kFloat32:
      return DType::kFloat32;
    case torch::kFloat64:
      return DType::kFloat64;
    case torch::kFloat16:
      return DType::kFloat16;
    case torch::kBFloat16:
      return DType::kBFloat16;
    case torch::kInt32:
      return DType::kInt32;
    case torch::kInt64:
      return DType::kInt64;
    case torch::kUInt8:
      return DType::kUInt8;
    default:
      throw InvalidArgument(fmt::format("rank {}: {}: unsupported tensor dtype {}", ctx.rank(), op,
                                        std::string(c10::toString(t.scalar_type()))));
  }
}

Buffer buffer_of(const torch::Tensor& t, const Context& ctx, const char* op) {
  if (!t.defined())
    throw InvalidArgument(fmt::format("rank {}: {}: undefined tensor", ctx.rank(), op));
  if (!t.device().is_cpu())
    throw InvalidArgument(
        fmt::format("rank {}: {}: tensor is on {}, only CPU tensors are supported", ctx.rank(), op,
                    t.device().str()));
  if (!t.is_contiguous())
    throw InvalidArgument(fmt::format(
        "rank {}: {}: tensor is not contiguous (call .contiguous() first)", ctx.rank(), op));
  return Buffer(t.data_ptr(), static_cast<std::size_t>(t.numel()), dtype_of_tensor(t, ctx, op));
}

namespace {

std::vector<Buffer> buffers_of(const std::vector<torch::Tensor>& xs, const Context& ctx,
                               const char* op) {
  std::vector<Buffer> out;
  out.reserve(xs.size());
  for (const auto& x : xs) out.push_back(buffer_of(x, ctx, op));
  return out;
}

}  // namespace

torch::Tensor neighbor_allreduce(Context& ctx, const torch::Tensor& x,
                                 const NeighborAllreduceOptions& opts) {
  torch::Tensor out = torch::empty_like(x, torch::MemoryFormat::Contiguous);
  ctx.neighbor_allreduce(buffer_of(x, ctx, "neighbor_allreduce"),
                         buffer_of(out, ctx, "neighbor_allreduce"), opts);
  return out;
}

void neighbor_allreduce_(Context& ctx, torch::Tensor& x, const NeighborAllreduceOptions& opts) {
  Buffer b = buffer_of(x, ctx, "neighbor_allreduce");
  ctx.neighbor_allreduce(b, b, opts);
}

Handle neighbor_allreduce_async(Context& ctx, const torch::Tensor& in, torch::Tensor& out,
                                const NeighborAllreduceOptions& opts) {
  return ctx.neighbor_allreduce_async(buffer_of(in, ctx, "neighbor_allreduce"),
                                      buffer_of(out, ctx, "neighbor_allreduce"), opts);
}

void neighbor_allreduce_(Context& ctx, std::vector<torch::Tensor>& xs,
                         const NeighborAllreduceOptions& opts) {
  ctx.neighbor_allreduce(buffers_of(xs, ctx, "neighbor_allreduce"), opts);
}

Handle neighbor_allreduce_async_(Context& ctx, std::vector<torch::Tensor>& xs,
                                 const NeighborAllreduceOptions& opts) {
  return ctx.neighbor_allreduce_async(buffers_of(xs, ctx, "neighbor_allreduce"), opts);
}

torch::Tensor gathered_tensor(const GatherResult& g, const torch::Tensor& like, const Context& ctx,
                              const char* op) {
  const std::int64_t row =
      like.dim() == 0 ? 1 : like.numel() / std::max<std::int64_t>(1, like.size(0));
  std::int64_t rows = 0;
  for (std::size_t c : g.counts) {
    if (row > 0 && static_cast<std::int64_t>(c) % row != 0)
      throw MismatchError(fmt::format(
          "rank {}: {}: a contributor sent {} elements, not a multiple of this rank's row size {}",
          ctx.rank(), op, c, row));
    rows += row > 0 ? static_cast<std::int64_t>(c) / row : 0;
  }
  std::vector<std::int64_t> shape =
      like.dim() == 0 ? std::vector<std::int64_t>{rows} : like.sizes().vec();
  if (like.dim() > 0) shape[0] = rows;
  torch::Tensor out = torch::empty(shape, like.options());
  if (!g.data.empty()) std::memcpy(out.data_ptr(), g.data.data(), g.data.size());
  return out;
}

torch::Tensor neighbor_allgather(Context& ctx, const torch::Tensor& x,
                                 const NeighborAllreduceOptions& opts) {
  GatherResult g = ctx.neighbor_allgather(buffer_of(x, ctx, "neighbor_allgather"), opts);
  return gathered_tensor(g, x, ctx, "neighbor_allgather");
}

void hierarchical_neighbor_allreduce_(Context& ctx, torch::Tensor& x,
                                      const NeighborAllreduceOptions& machine_opts) {
  Buffer b = buffer_of(x, ctx, "hierarchical_neighbor_allreduce");
  ctx.hierarchical_neighbor_allreduce(b, b, machine_opts);
}

void pair_gossip_(Context& ctx, torch::Tensor& x, int peer, double self_weight) {
  ctx.pair_gossip(buffer_of(x, ctx, "pair_gossip"), peer, self_weight);
}

void allreduce_(Context& ctx, torch::Tensor& x, ReduceOp op) {
  ctx.allreduce(buffer_of(x, ctx, "allreduce"), op);
}

void allreduce_(Context& ctx, std::vector<torch::Tensor>& xs, ReduceOp op) {
  ctx.allreduce(buffers_of(xs, ctx, "allreduce"), op);
}

Handle allreduce_async_(Context& ctx, std::vector<torch::Tensor>& xs, ReduceOp op) {
  return ctx.allreduce_async(buffers_of(xs, ctx, "allreduce"), op);
}

void broadcast_(Context& ctx, torch::Tensor& x, int root) {
  ctx.broadcast(buffer_of(x, ctx, "broadcast"), root);
}

torch::Tensor allgather(Context& ctx, const torch::Tensor& x) {
  GatherResult g = ctx.allgather(buffer_of(x, ctx, "allgather"));
  return gathered_tensor(g, x, ctx, "allgather");
}

void broadcast_parameters(Context& ctx, std::vector<torch::Tensor> tensors, int root) {
  torch::NoGradGuard no_grad;
  for (auto& t : tensors) {
    if (!t.is_contiguous())
      throw InvalidArgument(
          fmt::format("rank {}: broadcast_parameters: non-contiguous tensor", ctx.rank()));
    ctx.broadcast(buffer_of(t, ctx, "broadcast_parameters"), root);
  }
}

void broadcast_parameters(Context& ctx, torch::nn::Module& module, int root) {
  std::vector<torch::Tensor> tensors = module.parameters();
  for (auto& b : module.buffers()) tensors.push_back(b);
  broadcast_parameters(ctx, std::move(tensors), root);
}

void broadcast_optimizer_state(Context& ctx, torch::optim::Optimizer& optimizer, int root) {
  // Walk parameters in order so ranks agree; each state object travels as its serialized bytes,
  // which works for every optimizer's state type.
  torch::NoGradGuard no_grad;
  auto& state = optimizer.state();
  for (const auto& group : optimizer.param_groups()) {
    for (const auto& p : group.params()) {
      const std::string key = c10::guts::to_string(p.unsafeGetTensorImpl());
      const int has_state = state.count(key) ? 1 : 0;
      int flags[2] = {has_state, -has_state};  // max gives (any, -all)
      ctx.allreduce(Buffer(flags, 2, DType::kInt32), ReduceOp::kMax);
      if (flags[0] != -flags[1])
        throw MismatchError(fmt::format(
            "rank {}: broadcast_optimizer_state: ranks disagree on which parameters have state "
            "(take one optimizer step on every rank first)",
            ctx.rank()));
      if (!has_state) continue;
      std::string blob;
      if (ctx.rank() == root) {
        torch::serialize::OutputArchive out;
        state.at(key)->serialize(out);
        std::ostringstream os;
        out.save_to(os);
        blob = os.str();
      }
      std::int64_t length = static_cast<std::int64_t>(blob.size());
      ctx.broadcast(Buffer(&length, 1), root);
      blob.resize(static_cast<std::size_t>(length));
      ctx.broadcast(Buffer(reinterpret_cast<std::uint8_t*>(blob.data()), blob.size()), root);
      if (ctx.rank() != root) {
        torch::serialize::InputArchive in;
        std::istringstream is(blob);
        in.load_from(is);
        state.at(key)->serialize(in);
      }
    }
  }
}

void allreduce_parameters(Context& ctx, torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> params = module.parameters();
  allreduce_(ctx, params, ReduceOp::kAverage);
}

double consensus_distance(Context& ctx, const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  double local = 0.0;
  for (const auto& t : tensors) {
    torch::Tensor x = t.detach().to(torch::kFloat64).contiguous();
    torch::Tensor mean = x.clone();
    allreduce_(ctx, mean, ReduceOp::kAverage);
    local += (x - mean).pow(2).sum().item<double>();
  }
  ctx.allreduce(Buffer(&local, 1), ReduceOp::kAverage);
  return local;
}

}  // namespace decent
