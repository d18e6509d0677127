// Static topology generators. Each returns a Graph over n ranks with the weights of `rule`
// (uniform 1/(in-degree+1) by default). Every generator accepts n = 1 (W = [1]) and rejects
// n < 1 or n > kMaxGraphSize with a TopologyError.
//
//   auto w = decent::topology::exponential(16);                       // 4 out-neighbours each
//   auto g = decent::topology::torus({4, 8}, WeightRule::kMetropolisHastings);
#pragma once

#include "decent/topology/errors.h"
#include "decent/topology/graph.h"
#include "decent/topology/weights.h"

#include <cstdint>
#include <string>

namespace decent::topology {

// Rows x columns of a 2D grid or torus; node (r, c) is rank r * cols + c.
struct GridShape {
  int rows = 1;
  int cols = 1;
  bool operator==(const GridShape& o) const { return rows == o.rows && cols == o.cols; }
};

// The most square factorisation rows x cols = n with rows <= cols (16 -> 4x4, 12 -> 3x4,
// 7 -> 1x7).
GridShape closest_factor_shape(int n);
// Parses "RxC" (also "R*C" or "R,C"); throws TopologyError on anything else.
GridShape parse_shape(const std::string& text);

// Bidirectional ring: i exchanges with i-1 and i+1 (mod n). In-degree 2 (1 when n = 2).
Graph ring(int n, WeightRule rule = WeightRule::kUniform);
// One-directional ring: i sends to i+1 (mod n). In-degree 1.
Graph directed_ring(int n, WeightRule rule = WeightRule::kUniform);
// Star with the given centre: the centre exchanges with every other node.
Graph star(int n, int center = 0, WeightRule rule = WeightRule::kUniform);

// 2D mesh without wrap-around: (r, c) exchanges with (r±1, c) and (r, c±1). The first form uses
// closest_factor_shape(n).
Graph grid(int n, WeightRule rule = WeightRule::kUniform);
Graph grid(GridShape shape, WeightRule rule = WeightRule::kUniform);
// 2D torus: the mesh with wrap-around. In-degree 4 when both sides are >= 3 (a side of 2 has a
// single neighbour along it, a side of 1 none).
Graph torus(int n, WeightRule rule = WeightRule::kUniform);
Graph torus(GridShape shape, WeightRule rule = WeightRule::kUniform);

// Undirected Erdos-Renyi graph: each pair is joined with probability p. Deterministic for a
// seed. Redraws from the same seeded stream until the graph is connected, at most
// `max_attempts` times, then throws TopologyError suggesting a larger p.
Graph random_graph(int n, double p, std::uint64_t seed = 0, WeightRule rule = WeightRule::kUniform,
                   int max_attempts = 100);

// Static exponential graph, base 2: i sends to (i + 2^t) mod n for t = 0 .. ceil(log2 n)-1.
// In-degree ceil(log2 n).
Graph exponential(int n, WeightRule rule = WeightRule::kUniform);
// Base b >= 2: i sends to (i + j * b^t) mod n for j = 1..b-1, t = 0 .. ceil(log_b n)-1, that is
// (b-1) * ceil(log_b n) out-neighbours; offsets that coincide modulo n (or are multiples of n)
// are kept once (or dropped), so small n can have fewer.
Graph exponential(int n, int base, WeightRule rule = WeightRule::kUniform);
// Exponential graph with both directions: i exchanges with (i ± 2^t) mod n. Undirected.
Graph symmetric_exponential(int n, WeightRule rule = WeightRule::kUniform);
// Hypercube: i exchanges with i xor 2^t. n must be a power of 2 (TopologyError otherwise).
Graph hypercube(int n, WeightRule rule = WeightRule::kUniform);
// Complete graph; with uniform weights W = 11^T/n.
Graph fully_connected(int n, WeightRule rule = WeightRule::kUniform);

// How a hierarchical graph joins machines.
enum class HierarchicalLinks {
  // Local rank l of machine m connects to local rank l of every machine m' that the machine
  // graph links to m. Every rank carries an equal share of the inter-machine traffic.
  kCorrespondingLocalRanks,
  // Only machine leaders (local rank 0) connect across machines.
  kLeaders,
};

// machines x local_size ranks, rank = machine * local_size + local_rank. Complete graph inside
// each machine; the edges of `machine_graph` (its weights are ignored) join machines as chosen
// by `links`.
Graph hierarchical(int machines, int local_size, const Graph& machine_graph,
                   HierarchicalLinks links = HierarchicalLinks::kCorrespondingLocalRanks,
                   WeightRule rule = WeightRule::kUniform);
// Same with the static exponential graph between machines.
Graph hierarchical(int machines, int local_size,
                   HierarchicalLinks links = HierarchicalLinks::kCorrespondingLocalRanks,
                   WeightRule rule = WeightRule::kUniform);

// Smallest t with base^t >= n (0 for n = 1): the number of exponential "levels".
int ceil_log(int n, int base);

}  // namespace decent::topology
