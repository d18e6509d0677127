#include "decent/topology/dynamic.h"

#include "decent/topology/errors.h"
#include "decent/topology/generators.h"
#include "decent/topology/weights.h"
#include "random_util.h"
#include "size_check.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace decent::topology {

using detail::check_size;

namespace {

void check_rank(int rank, int n, const char* schedule) {
  if (rank < 0 || rank >= n)
    throw std::out_of_range(fmt::format("{}: rank {} is out of range [0, {})", schedule, rank, n));
}

// step mod m in [0, m), also for negative steps.
int step_mod(std::int64_t step, int m) {
  return static_cast<int>(((step % m) + m) % m);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
OnePeerExponential::OnePeerExponential(int n) : n_(n), tau_(0) {
  check_size(n, "one-peer-exponential");
  tau_ = ceil_log(n, 2);
}

int OnePeerExponential::offset_at(std::int64_t step) const {
  return tau_ == 0 ? 0 : 1 << step_mod(step, tau_);
}

Graph OnePeerExponential::graph_at(std::int64_t step) const {
  Graph g(n_, name());
  if (n_ == 1) return g;
  const int offset = offset_at(step);
  for (int i = 0; i < n_; ++i) {
    g.set_self_weight(i, 0.5);
    g.set_edge(i, (i + offset) % n_, 0.5);
  }
  return g;
}

StepPlan OnePeerExponential::plan(std::int64_t step, int rank) const {
  check_rank(rank, n_, "one-peer-exponential");
  StepPlan p;
  if (n_ == 1) return p;
  const int offset = offset_at(step);
  p.self_weight = 0.5;
  p.recv = {{(rank - offset + n_) % n_, 0.5}};
  p.send = {{(rank + offset) % n_, 0.5}};
  return p;
}

// ---------------------------------------------------------------------------------------------
OnePeerCycle::OnePeerCycle(Graph base, std::string name)
    : base_(std::move(base)), name_(name.empty() ? "one-peer-" + base_.name() : std::move(name)) {
  const int n = base_.size();
  if (n < 1) throw TopologyError("one-peer cycle: the base graph is empty");
  ordered_out_.resize(n);
  for (int i = 0; i < n; ++i) {
    auto& out = ordered_out_[i];
    out = base_.out_ranks(i);
    std::sort(out.begin(), out.end(),
              [&](int a, int b) { return (a - i + n) % n < (b - i + n) % n; });
  }
  init_period();
}

OnePeerCycle::OnePeerCycle(Graph base, std::vector<std::vector<int>> peer_order, std::string name)
    : base_(std::move(base)),
      name_(name.empty() ? "one-peer-" + base_.name() : std::move(name)),
      ordered_out_(std::move(peer_order)) {
  const int n = base_.size();
  if (n < 1) throw TopologyError("one-peer cycle: the base graph is empty");
  if (static_cast<int>(ordered_out_.size()) != n)
    throw TopologyError(
        fmt::format("{}: peer order has {} entries for {} nodes", name_, ordered_out_.size(), n));
  for (int i = 0; i < n; ++i) {
    auto sorted = ordered_out_[i];
    std::sort(sorted.begin(), sorted.end());
    if (sorted != base_.out_ranks(i))
      throw TopologyError(fmt::format(
          "{}: peer order of node {} is not a permutation of its out-neighbours", name_, i));
  }
  init_period();
}

void OnePeerCycle::init_period() {
  long long period = 1;
  for (const auto& out : ordered_out_) {
    if (out.empty() || period == 0) continue;
    const long long d = static_cast<long long>(out.size());
    period = period / std::gcd(period, d) * d;
    if (period > kMaxPeriod) period = 0;
  }
  period_ = static_cast<int>(period);
}

std::shared_ptr<OnePeerCycle> one_peer_hypercube(int n) {
  const Graph cube = hypercube(n);
  const int dims = ceil_log(n, 2);
  std::vector<std::vector<int>> order(n);
  for (int i = 0; i < n; ++i)
    for (int t = 0; t < dims; ++t) order[i].push_back(i ^ (1 << t));
  return std::make_shared<OnePeerCycle>(cube, std::move(order), "one-peer-hypercube");
}

std::shared_ptr<OnePeerCycle> one_peer_torus(GridShape shape) {
  const Graph t = torus(shape);
  std::vector<std::vector<int>> order(t.size());
  for (int r = 0; r < shape.rows; ++r) {
    for (int c = 0; c < shape.cols; ++c) {
      const int node = r * shape.cols + c;
      const int candidates[] = {r * shape.cols + (c + 1) % shape.cols,
                                ((r + 1) % shape.rows) * shape.cols + c,
                                r * shape.cols + (c + shape.cols - 1) % shape.cols,
                                ((r + shape.rows - 1) % shape.rows) * shape.cols + c};
      for (int peer : candidates)
        if (peer != node &&
            std::find(order[node].begin(), order[node].end(), peer) == order[node].end())
          order[node].push_back(peer);
    }
  }
  return std::make_shared<OnePeerCycle>(t, std::move(order), "one-peer-torus");
}

int OnePeerCycle::target_at(std::int64_t step, int node) const {
  const auto& out = ordered_out_[node];
  if (out.empty()) return -1;
  return out[step_mod(step, static_cast<int>(out.size()))];
}

int OnePeerCycle::receive_count(std::int64_t step, int node) const {
  int count = 0;
  for (int src : base_.in_ranks(node))
    if (target_at(step, src) == node) ++count;
  return count;
}

Graph OnePeerCycle::graph_at(std::int64_t step) const {
  Graph g(size(), name_);
  for (int i = 0; i < size(); ++i) {
    const int target = target_at(step, i);
    if (target >= 0) g.set_edge(i, target, 1.0);
  }
  return apply_weights(std::move(g), WeightRule::kUniform);
}

StepPlan OnePeerCycle::plan(std::int64_t step, int rank) const {
  check_rank(rank, size(), name_.c_str());
  StepPlan p;
  for (int src : base_.in_ranks(rank))
    if (target_at(step, src) == rank) p.recv.push_back({src, 0.0});
  const double w = 1.0 / (static_cast<double>(p.recv.size()) + 1.0);
  p.self_weight = w;
  for (auto& peer : p.recv) peer.weight = w;
  const int target = target_at(step, rank);
  if (target >= 0) p.send.push_back({target, 1.0 / (receive_count(step, target) + 1.0)});
  return p;
}

// ---------------------------------------------------------------------------------------------
RandomMatching::RandomMatching(int n, std::uint64_t seed) : n_(n), seed_(seed) {
  check_size(n, "random-matching");
}

std::vector<int> RandomMatching::matching(std::int64_t step) const {
  std::mt19937_64 rng(detail::mix64(detail::mix64(seed_) ^ static_cast<std::uint64_t>(step)));
  std::vector<int> order(n_);
  std::iota(order.begin(), order.end(), 0);
  for (int i = n_ - 1; i > 0; --i)
    std::swap(order[i], order[detail::uniform_below(rng, static_cast<std::uint64_t>(i) + 1)]);
  std::vector<int> partner(n_, -1);
  for (int k = 0; k + 1 < n_; k += 2) {
    partner[order[k]] = order[k + 1];
    partner[order[k + 1]] = order[k];
  }
  return partner;
}

std::shared_ptr<const std::vector<int>> RandomMatching::cached_matching(std::int64_t step) const {
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (!cached_ || cached_step_ != step) {
    cached_ = std::make_shared<const std::vector<int>>(matching(step));
    cached_step_ = step;
  }
  return cached_;
}

Graph RandomMatching::graph_at(std::int64_t step) const {
  Graph g(n_, name());
  const auto shared_partner = cached_matching(step);
  const auto& partner = *shared_partner;
  for (int i = 0; i < n_; ++i) {
    if (partner[i] < 0) continue;
    g.set_self_weight(i, 0.5);
    g.set_edge(partner[i], i, 0.5);
  }
  return g;
}

StepPlan RandomMatching::plan(std::int64_t step, int rank) const {
  check_rank(rank, n_, "random-matching");
  const int partner = (*cached_matching(step))[rank];
  StepPlan p;
  if (partner < 0) return p;
  p.self_weight = 0.5;
  p.recv = {{partner, 0.5}};
  p.send = {{partner, 0.5}};
  return p;
}

// ---------------------------------------------------------------------------------------------
HierarchicalOnePeer::HierarchicalOnePeer(int machines, int local_size)
    : machines_(machines),
      local_size_(local_size),
      machine_schedule_(machines >= 1 ? machines : 1) {
  if (machines < 1 || local_size < 1)
    throw TopologyError(
        fmt::format("hierarchical-one-peer: machines ({}) and ranks per machine ({}) must be >= 1",
                    machines, local_size));
  check_size(static_cast<int>(std::min<long long>(static_cast<long long>(machines) * local_size,
                                                  kMaxGraphSize + 1LL)),
             "hierarchical-one-peer");
}

SchedulePtr HierarchicalOnePeer::machine_schedule() const {
  return std::make_shared<OnePeerExponential>(machines_);
}

StepPlan HierarchicalOnePeer::plan(std::int64_t step, int rank) const {
  check_rank(rank, size(), "hierarchical-one-peer");
  const int machine = rank / local_size_;
  const double local_share = 1.0 / local_size_;
  // Machine-level weights: the machine keeps 1/2 and takes 1/2 from its peer (1 alone).
  const StepPlan m = machine_schedule_.plan(step, machine);
  StepPlan p;
  p.self_weight = m.self_weight * local_share;
  auto add_machine = [&](std::vector<WeightedPeer>& peers, int of_machine, double weight) {
    for (int l = 0; l < local_size_; ++l) {
      const int r = of_machine * local_size_ + l;
      if (r != rank) peers.push_back({r, weight * local_share});
    }
  };
  add_machine(p.recv, machine, m.self_weight);
  add_machine(p.send, machine, m.self_weight);
  for (const auto& peer : m.recv) add_machine(p.recv, peer.rank, peer.weight);
  for (const auto& peer : m.send) add_machine(p.send, peer.rank, peer.weight);
  auto by_rank = [](const WeightedPeer& a, const WeightedPeer& b) { return a.rank < b.rank; };
  std::sort(p.recv.begin(), p.recv.end(), by_rank);
  std::sort(p.send.begin(), p.send.end(), by_rank);
  return p;
}

Graph HierarchicalOnePeer::graph_at(std::int64_t step) const {
  Graph g(size(), name());
  for (int r = 0; r < size(); ++r) {
    const StepPlan p = plan(step, r);
    g.set_self_weight(r, p.self_weight);
    for (const auto& peer : p.recv) g.set_edge(peer.rank, r, peer.weight);
  }
  return g;
}

}  // namespace decent::topology
