// Import and export of graphs: JSON (round-trips exactly) and graphviz DOT.
//
// JSON schema (see docs/topologies.md): either an edge list
//   {"name": "g", "n": 4, "edges": [[0, 1], {"src": 1, "dst": 2, "weight": 0.5}, [2, 3, 0.25]],
//    "self_weights": [...], "weights": "uniform", "directed": true}
// or a dense mixing matrix, row i holding the weights node i applies:
//   {"name": "g", "matrix": [[0.5, 0.5], [0.5, 0.5]]}
#pragma once

#include "decent/topology/graph.h"
#include "decent/topology/schedule.h"

#include <string>

namespace decent::topology {

// {"name", "n", "self_weights": [n numbers], "edges": [{"src", "dst", "weight"}...]}.
std::string to_json(const Graph& graph, int indent = 2);
// Parses the schema above. Throws GraphFormatError naming the field, edge index or rank at
// fault: malformed JSON, missing/absurd n, ranks out of range, self loops, duplicate edges,
// negative or non-finite weights, ragged or empty matrices.
Graph from_json(const std::string& text);
// Reads a JSON graph file (GraphFormatError if it cannot be read or parsed; the message names
// the file).
Graph load_graph(const std::string& path);
void save_graph(const Graph& graph, const std::string& path);

// Graphviz DOT. Pairs of edges with equal weights in both directions are drawn once with
// dir=both; edges are labelled with their weights when `weights` is true.
std::string to_dot(const Graph& graph, bool weights = true);
// The union of `steps` steps of a schedule, each edge labelled with the steps that use it.
std::string to_dot(const Schedule& schedule, int steps);

}  // namespace decent::topology
