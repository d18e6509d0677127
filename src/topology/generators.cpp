#include "decent/topology/generators.h"

#include "random_util.h"
#include "size_check.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>
#include <set>
#include <vector>

namespace decent::topology {

using detail::check_size;

namespace {

void check_edge_budget(long long edges, int n, const char* topology) {
  if (edges > kMaxGraphEdges)
    throw TopologyError(
        fmt::format("{}: n = {} needs {} edges, more than the {} a graph may hold in memory",
                    topology, n, edges, kMaxGraphEdges));
}

void check_rule(WeightRule rule, const char* topology) {
  if (rule == WeightRule::kGiven)
    throw TopologyError(
        fmt::format("{}: generators build unweighted structures; choose the uniform, metropolis or "
                    "max-degree weight rule",
                    topology));
}

// Adds src -> dst and dst -> src (placeholder weights, replaced by the weight rule).
void link(Graph& g, int a, int b) {
  if (a == b) return;
  g.set_edge(a, b, 1.0);
  g.set_edge(b, a, 1.0);
}

int mod(long long a, int n) {
  return static_cast<int>(((a % n) + n) % n);
}

// Directed circulant graph: i sends to i + offset for every offset (mod n, zero dropped).
Graph circulant(int n, const std::vector<long long>& offsets, std::string name) {
  std::set<int> distinct;
  for (long long o : offsets)
    if (mod(o, n) != 0) distinct.insert(mod(o, n));
  check_edge_budget(static_cast<long long>(n) * static_cast<long long>(distinct.size()), n,
                    name.c_str());
  Graph g(n, std::move(name));
  for (int i = 0; i < n; ++i)
    for (int o : distinct) g.set_edge(i, (i + o) % n, 1.0);
  return g;
}

Graph mesh(GridShape shape, bool wrap, const char* topology, WeightRule rule) {
  if (shape.rows < 1 || shape.cols < 1)
    throw TopologyError(
        fmt::format("{}: shape {}x{} must have positive sides", topology, shape.rows, shape.cols));
  const long long n = static_cast<long long>(shape.rows) * shape.cols;
  if (n > kMaxGraphSize)
    throw TopologyError(fmt::format("{}: shape {}x{} has {} nodes, more than the limit of {}",
                                    topology, shape.rows, shape.cols, n, kMaxGraphSize));
  check_rule(rule, topology);
  check_edge_budget(4 * n, static_cast<int>(n), topology);
  Graph g(static_cast<int>(n), fmt::format("{}-{}x{}", topology, shape.rows, shape.cols));
  auto id = [&](int r, int c) { return r * shape.cols + c; };
  for (int r = 0; r < shape.rows; ++r) {
    for (int c = 0; c < shape.cols; ++c) {
      if (r + 1 < shape.rows) link(g, id(r, c), id(r + 1, c));
      if (c + 1 < shape.cols) link(g, id(r, c), id(r, c + 1));
      if (wrap && r + 1 == shape.rows && shape.rows > 2) link(g, id(r, c), id(0, c));
      if (wrap && c + 1 == shape.cols && shape.cols > 2) link(g, id(r, c), id(r, 0));
    }
  }
  return apply_weights(std::move(g), rule);
}

bool connected_undirected(const Graph& g) {
  std::vector<char> seen(g.size(), 0);
  std::vector<int> stack{0};
  seen[0] = 1;
  int reached = 1;
  while (!stack.empty()) {
    const int v = stack.back();
    stack.pop_back();
    for (int u : g.out_ranks(v))
      if (!seen[u]) {
        seen[u] = 1;
        ++reached;
        stack.push_back(u);
      }
  }
  return reached == g.size();
}

}  // namespace

int ceil_log(int n, int base) {
  if (base < 2) throw TopologyError(fmt::format("logarithm base must be >= 2, got {}", base));
  if (n < 1) throw TopologyError(fmt::format("ceil_log needs n >= 1, got {}", n));
  int t = 0;
  for (long long power = 1; power < n; power *= base) ++t;
  return t;
}

GridShape closest_factor_shape(int n) {
  check_size(n, "grid shape");
  int rows = static_cast<int>(std::sqrt(static_cast<double>(n)));
  while (rows > 1 && n % rows != 0) --rows;
  if (rows < 1) rows = 1;
  return {rows, n / rows};
}

GridShape parse_shape(const std::string& text) {
  const auto sep = text.find_first_of("xX*,");
  auto parse_int = [&](const std::string& part) {
    if (part.empty() || part.size() > 9 ||
        !std::all_of(part.begin(), part.end(), [](unsigned char c) { return std::isdigit(c); }))
      throw TopologyError(
          fmt::format("shape '{}' is not of the form RxC with positive integers", text));
    return std::stoi(part);
  };
  if (sep == std::string::npos)
    throw TopologyError(fmt::format("shape '{}' is not of the form RxC (e.g. 4x8)", text));
  GridShape shape{parse_int(text.substr(0, sep)), parse_int(text.substr(sep + 1))};
  if (shape.rows < 1 || shape.cols < 1)
    throw TopologyError(fmt::format("shape '{}' must have positive sides", text));
  return shape;
}

Graph ring(int n, WeightRule rule) {
  check_size(n, "ring");
  check_rule(rule, "ring");
  check_edge_budget(2LL * n, n, "ring");
  Graph g(n, "ring");
  for (int i = 0; i < n; ++i) link(g, i, (i + 1) % n);
  return apply_weights(std::move(g), rule);
}

Graph directed_ring(int n, WeightRule rule) {
  check_size(n, "ring-directed");
  check_rule(rule, "ring-directed");
  Graph g = circulant(n, {1}, "ring-directed");
  return apply_weights(std::move(g), rule);
}

Graph star(int n, int center, WeightRule rule) {
  check_size(n, "star");
  check_rule(rule, "star");
  if (center < 0 || center >= n)
    throw TopologyError(fmt::format("star: centre {} is out of range [0, {})", center, n));
  check_edge_budget(2LL * n, n, "star");
  Graph g(n, "star");
  for (int i = 0; i < n; ++i) link(g, center, i);
  return apply_weights(std::move(g), rule);
}

Graph grid(int n, WeightRule rule) {
  check_size(n, "grid");
  Graph g = grid(closest_factor_shape(n), rule);
  return g;
}

Graph grid(GridShape shape, WeightRule rule) {
  return mesh(shape, false, "grid", rule);
}

Graph torus(int n, WeightRule rule) {
  check_size(n, "torus");
  return torus(closest_factor_shape(n), rule);
}

Graph torus(GridShape shape, WeightRule rule) {
  return mesh(shape, true, "torus", rule);
}

Graph random_graph(int n, double p, std::uint64_t seed, WeightRule rule, int max_attempts) {
  check_size(n, "random");
  check_rule(rule, "random");
  if (!(p >= 0.0 && p <= 1.0))
    throw TopologyError(fmt::format("random: edge probability must be in [0, 1], got {}", p));
  if (max_attempts < 1)
    throw TopologyError(fmt::format("random: max_attempts must be >= 1, got {}", max_attempts));
  const double expected_edges = p * static_cast<double>(n) * (n - 1);
  if (expected_edges > static_cast<double>(kMaxGraphEdges))
    throw TopologyError(fmt::format(
        "random: n = {}, p = {} gives about {:.0f} edges, more than the {} a graph may hold", n, p,
        expected_edges, kMaxGraphEdges));
  std::mt19937_64 rng(detail::mix64(seed));
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    Graph g(n, "random");
    if (p >= 1.0) {
      for (int v = 1; v < n; ++v)
        for (int w = 0; w < v; ++w) link(g, v, w);
    } else if (p > 0.0) {
      // Batagelj-Brandes: jump over the pairs (v, w), w < v, that get no edge with a geometric
      // draw, so sparse graphs cost O(n + edges) instead of O(n^2).
      const double log_q = std::log1p(-p);
      long long v = 1, w = -1;
      while (v < n) {
        const double r = detail::uniform01(rng);
        // Clamped so tiny p cannot overflow; 1e12 already exceeds the number of pairs.
        const double skip = std::min(std::floor(std::log1p(-r) / log_q), 1e12);
        w += 1 + static_cast<long long>(skip);
        while (w >= v && v < n) {
          w -= v;
          ++v;
        }
        if (v < n) link(g, static_cast<int>(v), static_cast<int>(w));
      }
    }
    if (connected_undirected(g)) return apply_weights(std::move(g), rule);
  }
  throw TopologyError(fmt::format(
      "random: the graph with n = {} and p = {} was disconnected in all {} attempts (seed {}); "
      "use a larger p (connectivity needs roughly p > ln(n)/n = {:.3g})",
      n, p, max_attempts, seed, std::log(static_cast<double>(n)) / n));
}

Graph exponential(int n, WeightRule rule) {
  check_size(n, "exponential");
  check_rule(rule, "exponential");
  std::vector<long long> offsets;
  for (int t = 0; t < ceil_log(n, 2); ++t) offsets.push_back(1LL << t);
  return apply_weights(circulant(n, offsets, "exponential"), rule);
}

Graph exponential(int n, int base, WeightRule rule) {
  check_size(n, "exponential");
  check_rule(rule, "exponential");
  if (base < 2) throw TopologyError(fmt::format("exponential: base must be >= 2, got {}", base));
  std::vector<long long> offsets;
  long long power = 1;
  for (int t = 0; t < ceil_log(n, base); ++t, power *= base)
    for (int j = 1; j < base; ++j) offsets.push_back(j * power);
  const std::string name = base == 2 ? "exponential" : fmt::format("exponential-b{}", base);
  return apply_weights(circulant(n, offsets, name), rule);
}

Graph symmetric_exponential(int n, WeightRule rule) {
  check_size(n, "symmetric-exponential");
  check_rule(rule, "symmetric-exponential");
  std::vector<long long> offsets;
  for (int t = 0; t < ceil_log(n, 2); ++t) {
    offsets.push_back(1LL << t);
    offsets.push_back(-(1LL << t));
  }
  return apply_weights(circulant(n, offsets, "symmetric-exponential"), rule);
}

Graph hypercube(int n, WeightRule rule) {
  check_size(n, "hypercube");
  check_rule(rule, "hypercube");
  if ((n & (n - 1)) != 0)
    throw TopologyError(fmt::format("hypercube: number of nodes must be a power of 2, got {}", n));
  const int dims = ceil_log(n, 2);
  check_edge_budget(static_cast<long long>(n) * dims, n, "hypercube");
  Graph g(n, "hypercube");
  for (int i = 0; i < n; ++i)
    for (int t = 0; t < dims; ++t) g.set_edge(i, i ^ (1 << t), 1.0);
  return apply_weights(std::move(g), rule);
}

Graph fully_connected(int n, WeightRule rule) {
  check_size(n, "full");
  check_rule(rule, "full");
  check_edge_budget(static_cast<long long>(n) * (n - 1), n, "full");
  Graph g(n, "full");
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      if (i != j) g.set_edge(j, i, 1.0);
  return apply_weights(std::move(g), rule);
}

Graph hierarchical(int machines, int local_size, const Graph& machine_graph,
                   HierarchicalLinks links, WeightRule rule) {
  if (machines < 1 || local_size < 1)
    throw TopologyError(
        fmt::format("hierarchical: machines ({}) and ranks per machine ({}) must be >= 1", machines,
                    local_size));
  const long long n = static_cast<long long>(machines) * local_size;
  if (n > kMaxGraphSize)
    throw TopologyError(fmt::format("hierarchical: {} x {} = {} nodes exceeds the limit of {}",
                                    machines, local_size, n, kMaxGraphSize));
  if (machine_graph.size() != machines)
    throw TopologyError(fmt::format("hierarchical: the machine graph has {} nodes, expected {}",
                                    machine_graph.size(), machines));
  check_rule(rule, "hierarchical");
  const long long inter = links == HierarchicalLinks::kLeaders
                              ? machine_graph.num_edges()
                              : static_cast<long long>(machine_graph.num_edges()) * local_size;
  check_edge_budget(n * (local_size - 1) + inter, static_cast<int>(n), "hierarchical");
  Graph g(static_cast<int>(n), fmt::format("hierarchical-{}x{}", machines, local_size));
  auto rank = [&](int machine, int local) { return machine * local_size + local; };
  for (int m = 0; m < machines; ++m)
    for (int a = 0; a < local_size; ++a)
      for (int b = a + 1; b < local_size; ++b) link(g, rank(m, a), rank(m, b));
  for (int m = 0; m < machines; ++m) {
    for (int peer : machine_graph.out_ranks(m)) {
      if (links == HierarchicalLinks::kLeaders) {
        g.set_edge(rank(m, 0), rank(peer, 0), 1.0);
      } else {
        for (int l = 0; l < local_size; ++l) g.set_edge(rank(m, l), rank(peer, l), 1.0);
      }
    }
  }
  return apply_weights(std::move(g), rule);
}

Graph hierarchical(int machines, int local_size, HierarchicalLinks links, WeightRule rule) {
  if (machines < 1)
    throw TopologyError(fmt::format("hierarchical: machines must be >= 1, got {}", machines));
  return hierarchical(machines, local_size, exponential(machines), links, rule);
}

}  // namespace decent::topology
