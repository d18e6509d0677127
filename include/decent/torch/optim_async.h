// Asynchronous decentralized optimizers over one-sided windows (decent/comm/window.h): no rank
// ever waits for another to reach the same iteration, so a slow rank slows only itself.
//
//   ADPSGD       ad-psgd        Lian, Zhang, Zhang & Liu 2018 (asynchronous D-PSGD)
//   AsyncGossip  async-gossip   window gossip: put + update every step; push-sum weights on
//                               directed graphs
//
// Both keep all parameters (one floating dtype) in one flat buffer behind a window that the
// constructor creates collectively (every rank constructs the optimizer) and the destructor
// frees collectively. step() takes no part in any collective, so ranks may take different
// numbers of steps; before reading the models of all ranks together (evaluation, checkpoints)
// meet in a barrier and call refresh_parameters().
//
// Checkpoints hold the iteration counter, momentum and (AsyncGossip) the push-sum numerator and
// weight; mass still in flight in the windows when the checkpoint is written is not part of it,
// and asynchronous runs are not bit-reproducible anyway (they depend on timing).
#pragma once

#include "decent/torch/optim/base.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace decent {
class Window;
}

namespace decent::optim {

struct AsyncOptions : public torch::optim::OptimizerCloneableOptions<AsyncOptions> {
  AsyncOptions(double lr = 0.1);  // NOLINT: implicit like torch::optim::SGDOptions
  TORCH_ARG(double, lr);
  // Local heavy-ball momentum on the gradient, in [0, 1).
  TORCH_ARG(double, momentum) = 0.0;
  TORCH_ARG(double, weight_decay) = 0.0;

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
};

// What the asynchronous optimizers share: the flat buffer, its window, the local update
// direction (gradient + weight decay, with momentum).
class AsyncDecentOptimizer : public DecentOptimizer {
 public:
  ~AsyncDecentOptimizer() override;  // frees the window (collective) unless an error unwinds

  // Makes the parameters this rank's current model (AD-PSGD: its value in the window, which
  // neighbours change between this rank's steps). Call after a barrier that every rank reaches
  // once it has stopped stepping, so that nobody changes the value meanwhile.
  virtual void refresh_parameters() = 0;
  Window& window() const { return *window_; }
  // Total number of elements of the parameters.
  std::int64_t numel() const { return numel_; }

 protected:
  AsyncDecentOptimizer(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
                       AsyncOptions defaults, std::string algorithm, std::int64_t extra_elements,
                       bool init_slots_with_neighbors);
  // The update direction d (gradient + weight decay, then momentum) of every parameter, flat.
  torch::Tensor flat_direction();
  // The parameters, flat (a new tensor) / the parameters <- a flat tensor.
  torch::Tensor flatten_parameters() const;
  void assign_parameters(const torch::Tensor& flat);
  const AsyncOptions& options() const;

  // Backs the window: the parameters (and `extra_elements` more values) of this rank.
  torch::Tensor flat_;
  Window* window_ = nullptr;
  std::int64_t numel_ = 0;

 private:
  std::string window_name_;
};

// AD-PSGD. Each step of rank i, with no barrier:
//   d_i = gradient at the parameters (the model as of i's previous step), with momentum;
//   pick a neighbour j uniformly at random (in- or out-neighbour of the topology);
//   atomically: x_i, x_j <- (x_i + x_j) / 2, then x_i <- x_i - lr d_i;
//   parameters <- x_i.
// x_i is rank i's value in the window, which the neighbours also average with. Atomicity comes
// from the window mutexes of i and j, always taken in rank order so that no two ranks wait for
// each other (deadlock-free on any graph, without a bipartite active/passive split, and every
// rank can start an averaging). A rank that is slow (or sleeping) still gets averaged by its
// neighbours. Sum over ranks of x is preserved by the averaging.
class ADPSGD : public AsyncDecentOptimizer {
 public:
  ADPSGD(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
         AsyncOptions defaults = {});
  ADPSGD(std::vector<torch::Tensor> params, ContextPtr ctx, AsyncOptions defaults = {});
  torch::Tensor step(LossClosure closure = nullptr) override;
  void refresh_parameters() override;
  // The neighbour averaged with in the last step (-1 before the first, or without neighbours).
  int last_peer() const { return last_peer_; }

 protected:
  void load_extra(torch::serialize::InputArchive& archive) override;

 private:
  std::vector<int> peers_;
  std::mt19937_64 rng_;
  int last_peer_ = -1;
  bool publish_parameters_ = false;  // after load(): the window still holds the old model
  torch::Tensor peer_value_;
};

// Asynchronous window gossip. Each step of rank i, with no barrier: a local step on x_i, then
//   undirected topology: put x_i to the out-neighbours' slots, and
//     x_i <- w_ii x_i + sum_j w_ij slot_j (the topology's weights; slot_j is j's latest put,
//     however old: gossip with delays);
//   directed topology (push-sum; the gradient step is x_i <- x_i - lr w_i d_i, which moves
//     z_i = x_i / w_i by lr d_i however far w_i is from 1):
//     send share (x_i, w_i) with share = 1/(out-degree + 1) to each
//     out-neighbour by accumulate, then (x_i, w_i) <- share (x_i, w_i) + all mass received since
//     the last step (slots drained), parameters <- z_i = x_i / w_i. Mass is conserved exactly,
//     so the ranks agree on the true average in the limit whatever the delays. A rank whose
//     weight fell below 0.01 (it steps faster than mass comes in) keeps its mass for that step.
class AsyncGossip : public AsyncDecentOptimizer {
 public:
  AsyncGossip(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
              AsyncOptions defaults = {});
  AsyncGossip(std::vector<torch::Tensor> params, ContextPtr ctx, AsyncOptions defaults = {});
  torch::Tensor step(LossClosure closure = nullptr) override;
  void refresh_parameters() override;
  bool push_sum() const { return push_sum_; }
  // The push-sum weight w_i (1 without push-sum).
  double weight() const;

 protected:
  void save_extra(torch::serialize::OutputArchive& archive) const override;
  void load_extra(torch::serialize::InputArchive& archive) override;

 private:
  bool push_sum_ = false;
};

}  // namespace decent::optim
