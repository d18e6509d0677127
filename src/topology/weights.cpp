#include "decent/topology/weights.h"

#include "decent/topology/errors.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace decent::topology {
namespace {

Graph uniform_weights(Graph g) {
  for (int i = 0; i < g.size(); ++i) {
    const double w = 1.0 / (g.in_degree(i) + 1);
    g.set_self_weight(i, w);
    for (int j : g.in_ranks(i)) g.set_edge(j, i, w);
  }
  return g;
}

Graph metropolis_hastings_weights(Graph g) {
  for (int i = 0; i < g.size(); ++i)
    for (int j : g.in_ranks(i))
      if (!g.has_edge(i, j))
        throw TopologyError(fmt::format(
            "Metropolis-Hastings weights need an undirected graph, but '{}' has edge {} -> {} "
            "without {} -> {}",
            g.name(), j, i, i, j));
  for (int i = 0; i < g.size(); ++i) {
    const int di = g.in_degree(i);
    double sum = 0.0;
    for (int j : g.in_ranks(i)) {
      const double w = 1.0 / (1 + std::max(di, g.in_degree(j)));
      g.set_edge(j, i, w);
      sum += w;
    }
    g.set_self_weight(i, 1.0 - sum);
  }
  return g;
}

Graph max_degree_weights(Graph g) {
  int max_degree = 0;
  for (int i = 0; i < g.size(); ++i) max_degree = std::max(max_degree, g.in_degree(i));
  const double w = 1.0 / (max_degree + 1);
  for (int i = 0; i < g.size(); ++i) {
    for (int j : g.in_ranks(i)) g.set_edge(j, i, w);
    g.set_self_weight(i, 1.0 - g.in_degree(i) * w);
  }
  return g;
}

}  // namespace

Graph apply_weights(Graph graph, WeightRule rule) {
  switch (rule) {
    case WeightRule::kUniform:
      return uniform_weights(std::move(graph));
    case WeightRule::kMetropolisHastings:
      return metropolis_hastings_weights(std::move(graph));
    case WeightRule::kMaxDegree:
      return max_degree_weights(std::move(graph));
    case WeightRule::kGiven:
      return graph;
  }
  throw TopologyError("unknown weight rule");
}

WeightRule parse_weight_rule(const std::string& text) {
  std::string t = text;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  std::replace(t.begin(), t.end(), '_', '-');
  if (t == "uniform") return WeightRule::kUniform;
  if (t == "metropolis" || t == "metropolis-hastings" || t == "mh")
    return WeightRule::kMetropolisHastings;
  if (t == "max-degree" || t == "maxdegree") return WeightRule::kMaxDegree;
  if (t == "given" || t == "user") return WeightRule::kGiven;
  throw TopologyError(fmt::format(
      "unknown weight rule '{}' (expected uniform, metropolis, max-degree or given)", text));
}

std::string to_string(WeightRule rule) {
  switch (rule) {
    case WeightRule::kUniform:
      return "uniform";
    case WeightRule::kMetropolisHastings:
      return "metropolis";
    case WeightRule::kMaxDegree:
      return "max-degree";
    case WeightRule::kGiven:
      return "given";
  }
  return "unknown";
}

}  // namespace decent::topology
