// Communication operations on torch::Tensor: the Context operations for contiguous CPU tensors,
// plus module/optimizer helpers (broadcast_parameters, allreduce_parameters, consensus distance).
//
//   auto ctx = decent::Context::init();
//   decent::broadcast_parameters(*ctx, *model, 0);
//   decent::neighbor_allreduce_(*ctx, tensor);              // in place: x_i <- sum_j w_ij x_j
//   auto handle = decent::neighbor_allreduce_async(*ctx, params);  // fused, overlaps compute
//
// Tensors must be contiguous, on the CPU, and of a supported dtype (float32, float64, float16,
// bfloat16; integer types for allreduce/broadcast/allgather); anything else raises
// decent::InvalidArgument naming the rank and the operation.
#pragma once

#include "decent/comm/context.h"

#include <torch/torch.h>

#include <vector>

namespace decent {

// The Buffer view of a tensor (no copy). Throws InvalidArgument if it cannot be communicated.
Buffer buffer_of(const torch::Tensor& t, const Context& ctx, const char* op);
DType dtype_of_tensor(const torch::Tensor& t, const Context& ctx, const char* op);
// A gather's concatenated elements as a tensor of shape [sum of first dims, rest of like's shape];
// throws MismatchError if a contributor's element count is not a whole number of rows.
torch::Tensor gathered_tensor(const GatherResult& g, const torch::Tensor& like, const Context& ctx,
                              const char* op);

// ---- neighbour averaging ----
torch::Tensor neighbor_allreduce(Context& ctx, const torch::Tensor& x,
                                 const NeighborAllreduceOptions& opts = {});
void neighbor_allreduce_(Context& ctx, torch::Tensor& x, const NeighborAllreduceOptions& opts = {});
// Starts x_out = W x_in; both tensors must stay alive and untouched until the handle completes.
Handle neighbor_allreduce_async(Context& ctx, const torch::Tensor& in, torch::Tensor& out,
                                const NeighborAllreduceOptions& opts = {});
// Many tensors in place, fused into as few messages as the fusion threshold allows.
void neighbor_allreduce_(Context& ctx, std::vector<torch::Tensor>& xs,
                         const NeighborAllreduceOptions& opts = {});
Handle neighbor_allreduce_async_(Context& ctx, std::vector<torch::Tensor>& xs,
                                 const NeighborAllreduceOptions& opts = {});
// In-neighbours' tensors concatenated along dim 0, ordered by source rank.
torch::Tensor neighbor_allgather(Context& ctx, const torch::Tensor& x,
                                 const NeighborAllreduceOptions& opts = {});
void hierarchical_neighbor_allreduce_(Context& ctx, torch::Tensor& x,
                                      const NeighborAllreduceOptions& machine_opts = {});
void pair_gossip_(Context& ctx, torch::Tensor& x, int peer, double self_weight = 0.5);

// ---- collectives ----
void allreduce_(Context& ctx, torch::Tensor& x, ReduceOp op = ReduceOp::kAverage);
void allreduce_(Context& ctx, std::vector<torch::Tensor>& xs, ReduceOp op = ReduceOp::kAverage);
Handle allreduce_async_(Context& ctx, std::vector<torch::Tensor>& xs,
                        ReduceOp op = ReduceOp::kAverage);
void broadcast_(Context& ctx, torch::Tensor& x, int root);
// Every rank's tensor concatenated along dim 0 (first dimensions may differ), ordered by rank.
torch::Tensor allgather(Context& ctx, const torch::Tensor& x);

// ---- modules and optimizers ----
// Copies root's parameters and buffers to every rank (call once after construction).
void broadcast_parameters(Context& ctx, torch::nn::Module& module, int root = 0);
void broadcast_parameters(Context& ctx, std::vector<torch::Tensor> tensors, int root = 0);
// Copies root's optimizer state (every state tensor) to every rank; ranks must hold the same
// parameter shapes.
void broadcast_optimizer_state(Context& ctx, torch::optim::Optimizer& optimizer, int root = 0);
// Replaces every parameter by the global average over ranks.
void allreduce_parameters(Context& ctx, torch::nn::Module& module);
// (1/n) sum_i ||x_i - xbar||^2 over all the given tensors (collective).
double consensus_distance(Context& ctx, const std::vector<torch::Tensor>& tensors);

}  // namespace decent
