// Per-step communication plans. A static graph is a schedule with period 1; dynamic topologies
// (one-peer exponential, random matchings, ...) change the send/receive sets every step.
#pragma once

#include "decent/topology/graph.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace decent::topology {

// What one rank does in one step of partial averaging:
//   x_i <- self_weight * x_i + sum_{p in recv} p.weight * x_{p.rank},
// and it sends its x to every rank in `send` (p.weight is the weight the receiver applies,
// kept here so a sender can pre-scale, as push-sum style algorithms need).
struct StepPlan {
  double self_weight = 1.0;
  std::vector<WeightedPeer> recv;  // sorted by rank
  std::vector<WeightedPeer> send;  // sorted by rank
};

class Schedule {
 public:
  virtual ~Schedule() = default;
  virtual int size() const = 0;
  virtual std::string name() const = 0;
  // Number of steps after which plans repeat; 1 for static graphs, 0 if never (random).
  virtual int period() const = 0;
  // The graph (mixing matrix) used at step k.
  virtual Graph graph_at(std::int64_t step) const = 0;
  // Plan of `rank` at step k. The default derives it from graph_at(step).
  virtual StepPlan plan(std::int64_t step, int rank) const;
  bool is_static() const { return period() == 1; }
};

// Plan of one rank in a fixed graph.
StepPlan plan_from_graph(const Graph& g, int rank);

// A static graph seen as a schedule.
class StaticSchedule final : public Schedule {
 public:
  explicit StaticSchedule(Graph g) : graph_(std::move(g)) {}
  int size() const override { return graph_.size(); }
  std::string name() const override { return graph_.name(); }
  int period() const override { return 1; }
  Graph graph_at(std::int64_t) const override { return graph_; }
  StepPlan plan(std::int64_t, int rank) const override { return plan_from_graph(graph_, rank); }
  const Graph& graph() const { return graph_; }

 private:
  Graph graph_;
};

using SchedulePtr = std::shared_ptr<const Schedule>;

}  // namespace decent::topology
