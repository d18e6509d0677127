#include "decent/topology/schedule.h"

namespace decent::topology {

StepPlan plan_from_graph(const Graph& g, int rank) {
  StepPlan plan;
  plan.self_weight = g.self_weight(rank);
  plan.recv = g.in_neighbors(rank);
  plan.send = g.out_neighbors(rank);
  return plan;
}

StepPlan Schedule::plan(std::int64_t step, int rank) const {
  return plan_from_graph(graph_at(step), rank);
}

}  // namespace decent::topology
