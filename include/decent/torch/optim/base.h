// Common machinery of the decentralized optimizers: the Context they communicate over, the
// iteration counter that selects the step of a dynamic topology, per-parameter state, the
// neighbour average computed one iteration ahead (overlap), and checkpointing.
//
// Training loop contract (every optimizer in decent::optim):
//
//   optimizer.zero_grad();
//   auto loss = model->forward(batch);
//   loss.backward();
//   optimizer.step();          // local update + communication, on every rank, same order
//
// Topology steps. Every neighbour averaging passes NeighborAllreduceOptions::step explicitly:
// the c-th averaging call (0 <= c < C) of iteration k uses step k*C + c, where C is the number
// of averaging calls the algorithm makes per iteration (C = gossip rounds for D-SGD, 1
// otherwise). The step is therefore a function of the optimizer's own iteration counter, which
// is checkpointed, so a dynamic schedule (one-peer exponential, random matching) continues at
// the right graph after a resume, and the context's own step counter is neither read nor
// advanced. Buffers averaged in one call (parameters, and momentum buffers where the algorithm
// averages them) always share one step, i.e. one mixing matrix W_k.
//
// Parameters are fused: every averaging call passes all parameters of all groups in one
// vector, so the Context packs them into as few messages as its fusion threshold allows.
// Parameters must be contiguous CPU tensors of a floating dtype. A parameter without a gradient
// is still communicated (its gradient counts as zero), so every rank sends the same buffers.
#pragma once

#include "decent/comm/context.h"

#include <torch/arg.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/archive.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace decent::optim {

// How local updates and neighbour averaging are combined.
enum class Combine : std::uint8_t {
  // Adapt-then-combine: x_i <- sum_j w_ij (x_j - gamma d_j). Averages the updated iterates.
  kAdaptThenCombine,
  // Adapt-with-combine: x_i <- sum_j w_ij x_j - gamma d_i. The average of x_k does not depend
  // on the gradient, so it can run while the next gradient is computed (overlap).
  kAdaptWithCombine,
};
const char* combine_name(Combine c);

// Per-parameter state shared by every algorithm; each uses the fields it needs and leaves the
// others undefined (undefined tensors are not serialized).
struct ParamState : public torch::optim::OptimizerCloneableParamState<ParamState> {
  // Momentum m (DmSGD, DecentLaM, QG-DmSGD, PmSGD, local SGD, SlowMo's inner momentum...).
  TORCH_ARG(torch::Tensor, momentum_buffer);
  // SlowMo's slow momentum u.
  TORCH_ARG(torch::Tensor, slow_momentum_buffer);
  // SlowMo's x at the start of the current outer iteration.
  TORCH_ARG(torch::Tensor, anchor);
  // Push-sum's biased numerator x (the parameter itself holds z = x / w).
  TORCH_ARG(torch::Tensor, push_sum_numerator);
  // Adapt-with-combine: W x_k, computed ahead while the gradient at x_k was being computed.
  TORCH_ARG(torch::Tensor, neighbor_average);

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

class DecentOptimizer : public torch::optim::Optimizer {
 public:
  ~DecentOptimizer() override;  // waits for communication still in flight

  const ContextPtr& context() const { return ctx_; }
  // Completed step() calls since construction (or restored by load()).
  std::int64_t iteration() const { return iteration_; }
  // Factory name of the algorithm ("dsgd", "push-sum", ...).
  const std::string& algorithm() const { return algorithm_; }

  // Blocks until the neighbour average started ahead by the last step (adapt-with-combine
  // with overlap) has arrived. step() does this by itself; call it before modifying the
  // parameters outside the optimizer, then call discard_prefetched_average().
  void synchronize() const;
  // Drops a neighbour average computed ahead (after synchronize()), so the next step averages
  // the parameters as they are then. Use it when parameters were changed between steps.
  void discard_prefetched_average();

  // The checkpoint holds everything the next step depends on: the iteration counter, every
  // group's options (including a learning rate changed by a scheduler), all per-parameter
  // state, a neighbour average computed ahead, and algorithm-specific values. A run resumed
  // from it continues bit-identically. Parameters are matched by position across groups.
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

 protected:
  DecentOptimizer(std::vector<torch::optim::OptimizerParamGroup> param_groups,
                  std::unique_ptr<torch::optim::OptimizerOptions> defaults, ContextPtr ctx,
                  std::string algorithm);

  // State of `p`, created empty on first use.
  ParamState& param_state(const torch::Tensor& p);
  // All parameters of all groups, in group order.
  std::vector<torch::Tensor> all_parameters() const;
  // g + weight_decay * p, with an undefined gradient read as zero. Never modifies p.grad().
  static torch::Tensor decayed_gradient(const torch::Tensor& p, double weight_decay);
  // Momentum update m <- beta m + d in the state of p (m starts at zero); returns m.
  torch::Tensor& update_momentum(const torch::Tensor& p, const torch::Tensor& d, double beta);

  // `rounds` fused neighbour averagings of `tensors` in place, steps first_step .. + rounds-1.
  void average_with_neighbors(std::vector<torch::Tensor>& tensors, std::int64_t first_step,
                              int rounds);
  // Exact global average of `tensors` in place (fused allreduce).
  void average_globally(std::vector<torch::Tensor>& tensors);

  // W^rounds x_k for the current iteration k: the buffers prefetched by the previous step if
  // there are any, otherwise computed now (blocking) from a copy of the parameters. Both paths
  // run the same arithmetic, so overlapping never changes the result.
  std::vector<torch::Tensor> neighbor_average_of_parameters(int rounds);
  // Starts W^rounds x_k on copies of the parameters for the current iteration_ k (called at the
  // end of step() after incrementing iteration_); the result is kept in
  // ParamState::neighbor_average.
  void prefetch_neighbor_average(int rounds);

  // Algorithm-specific checkpoint entries (optimizer-wide values, nested optimizers).
  virtual void save_extra(torch::serialize::OutputArchive& archive) const {}
  virtual void load_extra(torch::serialize::InputArchive& archive) {}

  // "rank r: <algorithm>: " prefix for error messages.
  std::string where() const;

  ContextPtr ctx_;
  std::int64_t iteration_ = 0;

 private:
  std::string algorithm_;
  // Iteration whose W x is held in ParamState::neighbor_average (-1: none) and the handles of
  // the averaging still running for it.
  std::int64_t prefetched_iteration_ = -1;
  mutable std::vector<Handle> prefetch_handles_;
};

}  // namespace decent::optim
