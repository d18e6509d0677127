#include "decent/topology/io.h"

#include "decent/topology/errors.h"
#include "decent/topology/weights.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace decent::topology {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& message) {
  throw GraphFormatError(message);
}

// A finite, non-negative weight, or a GraphFormatError naming `what`.
double read_weight(const json& value, const std::string& what) {
  if (!value.is_number()) fail(fmt::format("{} is not a number ({})", what, value.dump()));
  const double w = value.get<double>();
  if (!std::isfinite(w)) fail(fmt::format("{} is not finite ({})", what, value.dump()));
  if (w < 0) fail(fmt::format("{} is negative ({})", what, w));
  return w;
}

int read_rank(const json& value, int n, const std::string& what) {
  if (!value.is_number_integer())
    fail(fmt::format("{} is not an integer rank ({})", what, value.dump()));
  const auto r = value.get<long long>();
  if (r < 0 || r >= n) fail(fmt::format("{} is rank {}, out of range [0, {})", what, r, n));
  return static_cast<int>(r);
}

int read_size(const json& value) {
  if (!value.is_number_integer() || value.get<long long>() < 1)
    fail(fmt::format("\"n\" must be a positive integer, got {}", value.dump()));
  const auto n = value.get<long long>();
  if (n > kMaxGraphSize)
    fail(fmt::format("\"n\" = {} exceeds the limit of {} nodes", n, kMaxGraphSize));
  return static_cast<int>(n);
}

Graph graph_from_matrix(const json& doc, const std::string& name) {
  const json& rows = doc.at("matrix");
  if (!rows.is_array()) fail("\"matrix\" must be an array of rows");
  if (rows.empty()) fail("\"matrix\" is empty");
  if (rows.size() > static_cast<std::size_t>(kMaxGraphSize))
    fail(fmt::format("\"matrix\" has {} rows, more than the limit of {} nodes", rows.size(),
                     kMaxGraphSize));
  const int n = static_cast<int>(rows.size());
  if (doc.contains("n") && read_size(doc.at("n")) != n)
    fail(fmt::format("\"n\" = {} but \"matrix\" has {} rows", doc.at("n").dump(), n));
  // Every row is checked before the n x n matrix exists: many short rows must not allocate it.
  for (int i = 0; i < n; ++i) {
    const json& row = rows[i];
    if (!row.is_array() || row.size() != static_cast<std::size_t>(n))
      fail(fmt::format("matrix row {} must be an array of {} numbers, got {}", i, n,
                       row.is_array() ? fmt::format("{} entries", row.size()) : row.dump()));
  }
  Eigen::MatrixXd w(n, n);
  for (int i = 0; i < n; ++i) {
    const json& row = rows[i];
    for (int j = 0; j < n; ++j)
      w(i, j) = read_weight(row[j], fmt::format("matrix entry ({}, {})", i, j));
  }
  return Graph::from_matrix(w, name);
}

Graph graph_from_edges(const json& doc, const std::string& name) {
  if (!doc.contains("n")) fail("\"n\" (number of nodes) is required with \"edges\"");
  const int n = read_size(doc.at("n"));
  const json& edges = doc.at("edges");
  if (!edges.is_array()) fail("\"edges\" must be an array");
  bool directed = true;
  if (doc.contains("directed")) {
    if (!doc.at("directed").is_boolean()) fail("\"directed\" must be true or false");
    directed = doc.at("directed").get<bool>();
  }

  struct Edge {
    int src, dst;
    double weight;
    bool weighted;
  };
  std::vector<Edge> parsed;
  parsed.reserve(edges.size());
  for (std::size_t e = 0; e < edges.size(); ++e) {
    const json& entry = edges[e];
    const std::string where = fmt::format("edge {}", e);
    const json *src = nullptr, *dst = nullptr, *weight = nullptr;
    if (entry.is_array()) {
      if (entry.size() != 2 && entry.size() != 3)
        fail(fmt::format("{} must be [src, dst] or [src, dst, weight], got {}", where,
                         entry.dump()));
      src = &entry[0];
      dst = &entry[1];
      if (entry.size() == 3) weight = &entry[2];
    } else if (entry.is_object()) {
      for (const auto& item : entry.items())
        if (item.key() != "src" && item.key() != "dst" && item.key() != "weight")
          fail(fmt::format("{} has unknown key \"{}\" (expected src, dst, weight)", where,
                           item.key()));
      if (!entry.contains("src") || !entry.contains("dst"))
        fail(fmt::format("{} needs \"src\" and \"dst\", got {}", where, entry.dump()));
      src = &entry.at("src");
      dst = &entry.at("dst");
      if (entry.contains("weight")) weight = &entry.at("weight");
    } else {
      fail(fmt::format("{} must be an array or an object, got {}", where, entry.dump()));
    }
    Edge edge{read_rank(*src, n, where + " source"), read_rank(*dst, n, where + " destination"),
              0.0, weight != nullptr};
    if (weight) edge.weight = read_weight(*weight, fmt::format("{} weight", where));
    if (edge.src == edge.dst)
      fail(fmt::format("{} is a self loop on node {}; give self weights in \"self_weights\"", where,
                       edge.src));
    parsed.push_back(edge);
  }

  std::size_t weighted = 0;
  for (const auto& e : parsed) weighted += e.weighted ? 1 : 0;
  if (weighted != 0 && weighted != parsed.size()) {
    for (std::size_t e = 0; e < parsed.size(); ++e)
      if (!parsed[e].weighted)
        fail(
            fmt::format("edge {} ({} -> {}) has no weight while other edges do; give every "
                        "edge a weight or none",
                        e, parsed[e].src, parsed[e].dst));
  }
  // Without edges, given self weights make the graph "weighted" (W diagonal as given).
  const bool has_weights = weighted > 0 || (parsed.empty() && doc.contains("self_weights"));

  Graph g(n, name);
  std::set<std::pair<int, int>> seen;
  auto insert = [&](std::size_t e, int src, int dst, double w) {
    if (!seen.insert({src, dst}).second)
      fail(fmt::format("edge {} repeats edge {} -> {}", e, src, dst));
    g.set_edge(src, dst, w);
  };
  for (std::size_t e = 0; e < parsed.size(); ++e) {
    insert(e, parsed[e].src, parsed[e].dst, parsed[e].weight);
    if (!directed) insert(e, parsed[e].dst, parsed[e].src, parsed[e].weight);
  }

  if (!has_weights) {
    if (doc.contains("self_weights"))
      fail(
          "\"self_weights\" needs weighted edges; without edge weights the \"weights\" rule "
          "sets every weight");
    WeightRule rule = WeightRule::kUniform;
    if (doc.contains("weights")) {
      if (!doc.at("weights").is_string()) fail("\"weights\" must be a weight rule name");
      try {
        rule = parse_weight_rule(doc.at("weights").get<std::string>());
      } catch (const TopologyError& e) {
        fail(fmt::format("\"weights\": {}", e.what()));
      }
      if (rule == WeightRule::kGiven) fail("\"weights\": \"given\" needs weighted edges");
    }
    try {
      return apply_weights(std::move(g), rule);
    } catch (const TopologyError& e) {
      fail(e.what());
    }
  }

  if (doc.contains("weights") &&
      !(doc.at("weights").is_string() && doc.at("weights").get<std::string>() == "given"))
    fail("\"weights\" names a rule, but the edges carry their own weights; drop one of them");
  if (doc.contains("self_weights")) {
    const json& self = doc.at("self_weights");
    if (!self.is_array() || self.size() != static_cast<std::size_t>(n))
      fail(fmt::format("\"self_weights\" must be an array of n = {} numbers", n));
    for (int i = 0; i < n; ++i)
      g.set_self_weight(i, read_weight(self[i], fmt::format("self weight of node {}", i)));
  } else {
    // Self weights complete each row to 1.
    for (int i = 0; i < n; ++i) {
      double sum = 0.0;
      for (const auto& p : g.in_neighbors(i)) sum += p.weight;
      if (sum > 1.0 + 1e-12)
        fail(
            fmt::format("node {}: incoming weights sum to {} > 1, so its self weight would be "
                        "negative; give \"self_weights\" explicitly",
                        i, sum));
      g.set_self_weight(i, std::max(0.0, 1.0 - sum));
    }
  }
  return g;
}

std::string dot_id(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string to_json(const Graph& graph, int indent) {
  nlohmann::ordered_json doc;
  doc["name"] = graph.name();
  doc["n"] = graph.size();
  auto self = nlohmann::ordered_json::array();
  for (int i = 0; i < graph.size(); ++i) self.push_back(graph.self_weight(i));
  doc["self_weights"] = std::move(self);
  auto edges = nlohmann::ordered_json::array();
  for (int dst = 0; dst < graph.size(); ++dst)
    for (const auto& p : graph.in_neighbors(dst))
      edges.push_back({{"src", p.rank}, {"dst", dst}, {"weight", p.weight}});
  doc["edges"] = std::move(edges);
  return doc.dump(indent);
}

Graph from_json(const std::string& text) {
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) fail("graph JSON is empty");
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {  // syntax errors and number overflow (1e999)
    fail(fmt::format("graph JSON is malformed: {}", e.what()));
  }
  if (!doc.is_object())
    fail("graph JSON must be an object with \"edges\" and \"n\", or \"matrix\"");
  static const std::set<std::string> known = {"name",    "n",        "edges",        "matrix",
                                              "weights", "directed", "self_weights", "description"};
  for (const auto& item : doc.items())
    if (!known.count(item.key()))
      fail(fmt::format(
          "graph JSON has unknown key \"{}\" (expected name, n, edges, self_weights, weights, "
          "directed, matrix, description)",
          item.key()));
  std::string name = "custom";
  if (doc.contains("name")) {
    if (!doc.at("name").is_string()) fail("\"name\" must be a string");
    name = doc.at("name").get<std::string>();
  }
  const bool has_edges = doc.contains("edges"), has_matrix = doc.contains("matrix");
  if (has_edges && has_matrix) fail("graph JSON has both \"edges\" and \"matrix\"; give one");
  if (!has_edges && !has_matrix) fail("graph JSON has neither \"edges\" nor \"matrix\"");
  if (has_matrix) {
    for (const char* key : {"weights", "directed", "self_weights"})
      if (doc.contains(key))
        fail(fmt::format("\"{}\" only applies to \"edges\", not to \"matrix\"", key));
    return graph_from_matrix(doc, name);
  }
  return graph_from_edges(doc, name);
}

Graph load_graph(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(fmt::format("cannot read graph file '{}': {}", path, std::strerror(errno)));
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return from_json(buffer.str());
  } catch (const GraphFormatError& e) {
    fail(fmt::format("graph file '{}': {}", path, e.what()));
  }
}

void save_graph(const Graph& graph, const std::string& path) {
  std::ofstream out(path, std::ios::binary);
  if (!out) throw TopologyError(fmt::format("cannot write graph file '{}'", path));
  out << to_json(graph) << '\n';
  if (!out) throw TopologyError(fmt::format("failed writing graph file '{}'", path));
}

std::string to_dot(const Graph& graph, bool weights) {
  std::string out = fmt::format("digraph {} {{\n  node [shape=circle];\n", dot_id(graph.name()));
  for (int i = 0; i < graph.size(); ++i) {
    if (weights)
      out += fmt::format("  {} [xlabel=\"{:.3g}\"];\n", i, graph.self_weight(i));
    else
      out += fmt::format("  {};\n", i);
  }
  for (int src = 0; src < graph.size(); ++src) {
    for (const auto& p : graph.out_neighbors(src)) {
      const int dst = p.rank;
      const bool both = graph.has_edge(dst, src) && graph.weight(dst, src) == p.weight;
      if (both && dst < src) continue;  // drawn with the reverse edge
      std::string attrs;
      if (both) attrs += "dir=both";
      if (weights) attrs += fmt::format("{}label=\"{:.3g}\"", attrs.empty() ? "" : ", ", p.weight);
      out += fmt::format("  {} -> {}{};\n", src, dst, attrs.empty() ? "" : " [" + attrs + "]");
    }
  }
  return out + "}\n";
}

std::string to_dot(const Schedule& schedule, int steps) {
  if (steps < 1) steps = 1;
  std::map<std::pair<int, int>, std::vector<int>> used;
  for (int k = 0; k < steps; ++k) {
    const Graph g = schedule.graph_at(k);
    for (int dst = 0; dst < g.size(); ++dst)
      for (int src : g.in_ranks(dst)) used[{src, dst}].push_back(k);
  }
  std::string out = fmt::format("digraph {} {{\n  node [shape=circle];\n", dot_id(schedule.name()));
  for (int i = 0; i < schedule.size(); ++i) out += fmt::format("  {};\n", i);
  for (const auto& [edge, ks] : used) {
    std::string label;
    for (int k : ks) label += (label.empty() ? "" : ",") + std::to_string(k);
    out += fmt::format("  {} -> {} [label=\"k={}\"];\n", edge.first, edge.second, label);
  }
  return out + "}\n";
}

}  // namespace decent::topology
