#include "decent/topology/validate.h"

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <set>
#include <vector>

namespace decent::topology {
namespace {

constexpr std::size_t kMaxListedProblems = 10;

std::string join(const std::vector<std::string>& items, const char* prefix) {
  std::string out;
  for (std::size_t i = 0; i < items.size() && i < kMaxListedProblems; ++i)
    out += (out.empty() ? "" : "; ") + std::string(prefix) + items[i];
  if (items.size() > kMaxListedProblems)
    out += fmt::format("; ... and {} more", items.size() - kMaxListedProblems);
  return out;
}

// Problem with one weight, or empty when it is finite and non-negative.
std::string weight_problem(double w) {
  if (std::isnan(w)) return "NaN";
  if (std::isinf(w)) return fmt::format("infinite ({})", w);
  if (w < 0) return fmt::format("negative ({})", w);
  return {};
}

void add(ValidationReport& report, Check check, std::string message) {
  if (check == Check::kRequire) report.errors.push_back(std::move(message));
  if (check == Check::kWarn) report.warnings.push_back(std::move(message));
}

// Breadth-first reachability from node 0 along out-edges (forward) or in-edges (backward).
std::vector<char> reachable_from_zero(const std::vector<std::vector<int>>& adjacency) {
  std::vector<char> seen(adjacency.size(), 0);
  if (adjacency.empty()) return seen;
  std::vector<int> frontier{0};
  seen[0] = 1;
  while (!frontier.empty()) {
    const int v = frontier.back();
    frontier.pop_back();
    for (int u : adjacency[v])
      if (!seen[u]) {
        seen[u] = 1;
        frontier.push_back(u);
      }
  }
  return seen;
}

// Strong connectivity of the graph with edges out[v] (and their reverse, in[v]).
void check_connected(const std::vector<std::vector<int>>& out,
                     const std::vector<std::vector<int>>& in, const std::string& what, Check check,
                     ValidationReport& report) {
  if (check == Check::kIgnore) return;
  const auto forward = reachable_from_zero(out);
  for (std::size_t v = 0; v < forward.size(); ++v)
    if (!forward[v]) {
      add(report, check,
          fmt::format("{} is not strongly connected: messages from node 0 never reach node {}",
                      what, v));
      return;
    }
  const auto backward = reachable_from_zero(in);
  for (std::size_t v = 0; v < backward.size(); ++v)
    if (!backward[v]) {
      add(report, check,
          fmt::format("{} is not strongly connected: messages from node {} never reach node 0",
                      what, v));
      return;
    }
}

void check_weights(const Graph& g, const ValidationOptions& options, const std::string& prefix,
                   ValidationReport& report) {
  const int n = g.size();
  std::vector<double> column_sums(n, 0.0);
  for (int i = 0; i < n; ++i) {
    const double self = g.self_weight(i);
    if (auto p = weight_problem(self); !p.empty())
      report.errors.push_back(fmt::format("{}node {}: self weight is {}", prefix, i, p));
    double row = self;
    column_sums[i] += self;
    const auto in = g.in_neighbors(i);
    for (const auto& peer : in) {
      if (auto p = weight_problem(peer.weight); !p.empty())
        report.errors.push_back(fmt::format("{}node {}: weight of the message from node {} is {}",
                                            prefix, i, peer.rank, p));
      row += peer.weight;
      column_sums[peer.rank] += peer.weight;
    }
    if (!(std::abs(row - 1.0) <= options.tolerance))
      report.errors.push_back(fmt::format(
          "{}node {}: weights sum to {} (self {} + {} in-neighbours), not 1 (tolerance {})", prefix,
          i, row, self, in.size(), options.tolerance));
  }
  if (options.doubly_stochastic == Check::kIgnore) return;
  for (int j = 0; j < n; ++j)
    if (!(std::abs(column_sums[j] - 1.0) <= options.tolerance)) {
      add(report, options.doubly_stochastic,
          fmt::format("{}node {}: its messages carry total weight {} (column sum, own weight "
                      "included), not 1, so W is not doubly stochastic",
                      prefix, j, column_sums[j]));
    }
}

bool same_peers(const std::vector<WeightedPeer>& a, const std::vector<WeightedPeer>& b,
                double tolerance) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].rank != b[i].rank || !(std::abs(a[i].weight - b[i].weight) <= tolerance)) return false;
  return true;
}

std::string ranks_of(const std::vector<WeightedPeer>& peers) {
  std::string out;
  for (const auto& p : peers) out += (out.empty() ? "" : ", ") + std::to_string(p.rank);
  return "{" + out + "}";
}

}  // namespace

std::string ValidationReport::summary() const {
  std::string out = join(errors, "");
  if (!warnings.empty()) out += (out.empty() ? "" : "; ") + join(warnings, "warning: ");
  return out.empty() ? "no problems" : out;
}

ValidationError::ValidationError(ValidationReport report)
    : TopologyError("invalid topology: " + report.summary()), report_(std::move(report)) {}

ValidationReport check(const Graph& graph, const ValidationOptions& options) {
  ValidationReport report;
  const int n = graph.size();
  if (n < 1) {
    report.errors.push_back("graph has no nodes");
    return report;
  }
  check_weights(graph, options, "", report);
  std::vector<std::vector<int>> out(n), in(n);
  for (int i = 0; i < n; ++i) {
    out[i] = graph.out_ranks(i);
    in[i] = graph.in_ranks(i);
  }
  check_connected(out, in, fmt::format("graph '{}'", graph.name()), options.connected, report);
  return report;
}

ValidationReport validate(const Graph& graph, const ValidationOptions& options) {
  ValidationReport report = check(graph, options);
  if (!report.ok()) throw ValidationError(std::move(report));
  return report;
}

ValidationReport check_plan(const StepPlan& plan, int rank, int n, std::int64_t step,
                            const ValidationOptions& options) {
  ValidationReport report;
  const std::string where = fmt::format("rank {} at step {}", rank, step);
  if (rank < 0 || rank >= n)
    report.errors.push_back(fmt::format("{}: rank {} is out of range [0, {})", where, rank, n));
  double sum = plan.self_weight;
  if (auto p = weight_problem(plan.self_weight); !p.empty())
    report.errors.push_back(fmt::format("{}: self weight is {}", where, p));
  auto check_peers = [&](const std::vector<WeightedPeer>& peers, const char* verb) {
    std::set<int> seen;
    for (const auto& peer : peers) {
      if (peer.rank < 0 || peer.rank >= n)
        report.errors.push_back(fmt::format("{}: {} rank {}, which is out of range [0, {})", where,
                                            verb, peer.rank, n));
      else if (peer.rank == rank)
        report.errors.push_back(fmt::format("{}: {} itself", where, verb));
      else if (!seen.insert(peer.rank).second)
        report.errors.push_back(fmt::format("{}: {} rank {} twice", where, verb, peer.rank));
      if (auto p = weight_problem(peer.weight); !p.empty())
        report.errors.push_back(
            fmt::format("{}: weight for rank {} ({}) is {}", where, peer.rank, verb, p));
    }
  };
  check_peers(plan.recv, "receives from");
  check_peers(plan.send, "sends to");
  for (const auto& peer : plan.recv) sum += peer.weight;
  if (!(std::abs(sum - 1.0) <= options.tolerance))
    report.errors.push_back(
        fmt::format("{}: self and received weights sum to {}, not 1 (tolerance {})", where, sum,
                    options.tolerance));
  return report;
}

ValidationReport check(const Schedule& schedule, int steps, const ValidationOptions& options) {
  ValidationReport report;
  const int n = schedule.size();
  if (n < 1) {
    report.errors.push_back(fmt::format("schedule '{}' has no nodes", schedule.name()));
    return report;
  }
  if (steps <= 0) steps = schedule.period() > 0 ? schedule.period() : 1;
  std::vector<std::set<int>> union_out(n), union_in(n);
  ValidationOptions per_step = options;
  per_step.connected = Check::kIgnore;
  for (int step = 0; step < steps; ++step) {
    const Graph g = schedule.graph_at(step);
    if (g.size() != n) {
      report.errors.push_back(
          fmt::format("step {}: graph has {} nodes, schedule has {}", step, g.size(), n));
      continue;
    }
    check_weights(g, per_step, fmt::format("step {}: ", step), report);
    std::vector<StepPlan> plans(n);
    for (int r = 0; r < n; ++r) {
      plans[r] = schedule.plan(step, r);
      const auto plan_report = check_plan(plans[r], r, n, step, per_step);
      report.errors.insert(report.errors.end(), plan_report.errors.begin(),
                           plan_report.errors.end());
      const StepPlan expected = plan_from_graph(g, r);
      if (!same_peers(plans[r].recv, expected.recv, options.tolerance) ||
          !(std::abs(plans[r].self_weight - expected.self_weight) <= options.tolerance))
        report.errors.push_back(
            fmt::format("rank {} at step {}: plan() receives from {} but graph_at() from {}", r,
                        step, ranks_of(plans[r].recv), ranks_of(expected.recv)));
    }
    // A send must be matched by a receive with the same weight, and the other way around.
    for (int r = 0; r < n; ++r) {
      for (const auto& s : plans[r].send) {
        if (s.rank < 0 || s.rank >= n) continue;
        bool matched = false;
        for (const auto& q : plans[s.rank].recv)
          if (q.rank == r) {
            matched = true;
            if (!(std::abs(q.weight - s.weight) <= options.tolerance))
              report.errors.push_back(fmt::format(
                  "rank {} at step {}: sends to rank {} with weight {}, but rank {} applies {}", r,
                  step, s.rank, s.weight, s.rank, q.weight));
          }
        if (!matched)
          report.errors.push_back(
              fmt::format("rank {} at step {}: sends to rank {}, which does not receive from it", r,
                          step, s.rank));
        else {
          union_out[r].insert(s.rank);
          union_in[s.rank].insert(r);
        }
      }
      for (const auto& q : plans[r].recv) {
        if (q.rank < 0 || q.rank >= n) continue;
        bool sent = false;
        for (const auto& s : plans[q.rank].send) sent = sent || s.rank == r;
        if (!sent)
          report.errors.push_back(
              fmt::format("rank {} at step {}: receives from rank {}, which does not send to it", r,
                          step, q.rank));
      }
    }
  }
  std::vector<std::vector<int>> out(n), in(n);
  for (int i = 0; i < n; ++i) {
    out[i].assign(union_out[i].begin(), union_out[i].end());
    in[i].assign(union_in[i].begin(), union_in[i].end());
  }
  check_connected(
      out, in, fmt::format("the union of steps 0..{} of schedule '{}'", steps - 1, schedule.name()),
      options.connected, report);
  return report;
}

ValidationReport validate(const Schedule& schedule, int steps, const ValidationOptions& options) {
  ValidationReport report = check(schedule, steps, options);
  if (!report.ok()) throw ValidationError(std::move(report));
  return report;
}

}  // namespace decent::topology
