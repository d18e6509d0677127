// Dynamic schedules: the send/receive sets change every step. Plans are pure functions of
// (step, rank), so every rank computes the same schedule independently, without communication.
//
//   auto s = std::make_shared<OnePeerExponential>(8);
//   StepPlan p = s->plan(step, rank);   // one message out, one in, weights 1/2 and 1/2
#pragma once

#include "decent/topology/generators.h"
#include "decent/topology/graph.h"
#include "decent/topology/schedule.h"

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace decent::topology {

// One-peer exponential graph: at step k node i sends to (i + 2^(k mod tau)) mod n and receives
// from (i - 2^(k mod tau)) mod n, with self and neighbour weights 1/2; tau = ceil(log2 n). For
// n a power of 2 the product of tau consecutive mixing matrices is exactly 11^T/n. n = 1 never
// communicates (W = [1]).
class OnePeerExponential final : public Schedule {
 public:
  explicit OnePeerExponential(int n);
  int size() const override { return n_; }
  std::string name() const override { return "one-peer-exponential"; }
  int period() const override { return tau_ == 0 ? 1 : tau_; }
  Graph graph_at(std::int64_t step) const override;
  StepPlan plan(std::int64_t step, int rank) const override;
  // The offset 2^(k mod tau) used at step k.
  int offset_at(std::int64_t step) const;

 private:
  int n_;
  int tau_;
};

// One peer at a time out of a static graph: at step k node i sends only to the (k mod d_i)-th of
// its d_i out-neighbours, ordered by ring offset (dst - i) mod n, so circulant graphs send along
// the same offset everywhere (the exponential graph gives the one-peer exponential graph). Each
// node averages uniformly over itself and the messages it receives that step.
class OnePeerCycle final : public Schedule {
 public:
  explicit OnePeerCycle(Graph base, std::string name = "");
  // With an explicit order: peer_order[i] must be a permutation of base.out_ranks(i). Choosing
  // orders where every node moves "in the same direction" makes each step a permutation (every
  // node receives exactly one message), as one_peer_hypercube and one_peer_torus do.
  OnePeerCycle(Graph base, std::vector<std::vector<int>> peer_order, std::string name = "");
  int size() const override { return base_.size(); }
  std::string name() const override { return name_; }
  // lcm of the out-degrees; 0 when that exceeds kMaxPeriod (treat the schedule as aperiodic).
  int period() const override { return period_; }
  Graph graph_at(std::int64_t step) const override;
  StepPlan plan(std::int64_t step, int rank) const override;
  const Graph& base() const { return base_; }
  static constexpr int kMaxPeriod = 1 << 20;

 private:
  void init_period();
  int target_at(std::int64_t step, int node) const;  // -1 when the node has no out-neighbour
  int receive_count(std::int64_t step, int node) const;
  Graph base_;
  std::string name_;
  std::vector<std::vector<int>> ordered_out_;
  int period_ = 1;
};

// One-peer hypercube (n a power of 2): at step k node i exchanges with i xor 2^(k mod log2 n),
// weights 1/2 — a perfect matching every step, and the exact average after log2 n steps.
std::shared_ptr<OnePeerCycle> one_peer_hypercube(int n);
// One-peer torus: every node cycles through its +1 column, +1 row, -1 column, -1 row neighbours
// (directions that do not exist or repeat on short sides are skipped), so every step is a shift.
std::shared_ptr<OnePeerCycle> one_peer_torus(GridShape shape);

// A fresh random matching every step: nodes are paired at random and each pair averages
// (weights 1/2, 1/2); with n odd one node stays unmatched (self weight 1). The matching of step
// k depends only on (seed, k), so ranks agree without communicating. period() is 0.
class RandomMatching final : public Schedule {
 public:
  explicit RandomMatching(int n, std::uint64_t seed = 0);
  int size() const override { return n_; }
  std::string name() const override { return "random-matching"; }
  int period() const override { return 0; }
  Graph graph_at(std::int64_t step) const override;
  StepPlan plan(std::int64_t step, int rank) const override;
  // partner[i] is the node i is paired with at step k, or -1.
  std::vector<int> matching(std::int64_t step) const;

 private:
  // The matching costs O(n); plan() is called once per rank with the same step, so the last
  // one is kept (guarded: ranks of the local backend are threads sharing the schedule).
  std::shared_ptr<const std::vector<int>> cached_matching(std::int64_t step) const;
  int n_;
  std::uint64_t seed_;
  mutable std::mutex cache_mutex_;
  mutable std::int64_t cached_step_ = -1;
  mutable std::shared_ptr<const std::vector<int>> cached_;
};

// Machine-level one-peer exponential for clusters of `machines` x `local_size` ranks
// (rank = machine * local_size + local_rank). At step k every machine m averages exactly inside
// itself, then mixes half-and-half with machine (m - 2^(k mod tau_M)) mod M, which is what a
// hierarchical neighbour allreduce computes: graph_at(k) is that effective rank-level matrix,
// (A_k kron 11^T/L). machine_schedule() is the schedule over machines a communicator uses for
// the inter-machine step.
class HierarchicalOnePeer final : public Schedule {
 public:
  HierarchicalOnePeer(int machines, int local_size);
  int size() const override { return machines_ * local_size_; }
  std::string name() const override { return "hierarchical-one-peer"; }
  int period() const override { return machine_schedule_.period(); }
  Graph graph_at(std::int64_t step) const override;
  StepPlan plan(std::int64_t step, int rank) const override;
  int machines() const { return machines_; }
  int local_size() const { return local_size_; }
  // The one-peer exponential schedule over machines (for Context::set_machine_topology).
  SchedulePtr machine_schedule() const;

 private:
  int machines_;
  int local_size_;
  OnePeerExponential machine_schedule_;
};

}  // namespace decent::topology
