// Weight rules: how a graph's structure becomes a mixing matrix W.
#pragma once

#include "decent/topology/graph.h"

#include <string>

namespace decent::topology {

enum class WeightRule {
  // w_ij = 1/(in-degree(i) + 1) for every in-neighbour j and for i itself. Row-stochastic;
  // doubly stochastic when every node has in-degree equal to out-degree and all in-degrees are
  // equal (ring, torus, exponential, hypercube, ...).
  kUniform,
  // w_ij = 1/(1 + max(d_i, d_j)), w_ii = 1 - sum_j w_ij. Symmetric and doubly stochastic on any
  // undirected graph; refused for directed graphs.
  kMetropolisHastings,
  // w_ij = 1/(max_degree + 1), w_ii = 1 - d_i/(max_degree + 1), with max_degree the largest
  // in-degree. Symmetric and doubly stochastic on undirected graphs.
  kMaxDegree,
  // Keep the weights already stored in the graph (user-given).
  kGiven,
};

// Returns `graph` with its weights replaced according to `rule` (kGiven returns it unchanged).
// Throws TopologyError for Metropolis-Hastings on a graph with an edge lacking its reverse.
Graph apply_weights(Graph graph, WeightRule rule);

// "uniform", "metropolis" (also "metropolis-hastings", "mh"), "max-degree", "given".
WeightRule parse_weight_rule(const std::string& text);
std::string to_string(WeightRule rule);

}  // namespace decent::topology
