#include "decent/topology/registry.h"

#include "decent/topology/dynamic.h"
#include "decent/topology/errors.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>

namespace decent::topology {
namespace {

const std::map<std::string, std::string>& aliases() {
  static const std::map<std::string, std::string> table = {
      {"directed-ring", "ring-directed"},
      {"ring-one-directional", "ring-directed"},
      {"mesh", "grid"},
      {"exponential2", "exponential"},
      {"exponential-b2", "exponential"},
      {"static-exponential", "exponential"},
      {"fully-connected", "full"},
      {"complete", "full"},
      {"one-peer-exponential2", "one-peer-exponential"},
      {"one-peer-static-exponential", "one-peer-exponential"},
  };
  return table;
}

std::string canonical(const std::string& name) {
  std::string t = name;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  std::replace(t.begin(), t.end(), '_', '-');
  const auto it = aliases().find(t);
  return it == aliases().end() ? t : it->second;
}

// Base N of "exponential-bN", or 0 when `name` is not of that form.
int exponential_base(const std::string& name) {
  const std::string prefix = "exponential-b";
  if (name.rfind(prefix, 0) != 0) return 0;
  const std::string digits = name.substr(prefix.size());
  if (digits.empty() || digits.size() > 6 ||
      !std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); }))
    return 0;
  return std::stoi(digits);
}

std::string known_names() {
  std::string names;
  for (const auto& t : list_topologies()) names += (names.empty() ? "" : ", ") + t.name;
  return names;
}

[[noreturn]] void unknown(const std::string& name) {
  throw TopologyError(
      fmt::format("unknown topology '{}'; known topologies: {}", name, known_names()));
}

void check_n(int n, const std::string& name) {
  if (n < 1) throw TopologyError(fmt::format("{}: number of nodes must be >= 1, got {}", name, n));
  if (n > kMaxGraphSize)
    throw TopologyError(
        fmt::format("{}: number of nodes {} exceeds the limit of {}", name, n, kMaxGraphSize));
}

// Machines and ranks per machine of a hierarchical topology over n ranks.
std::pair<int, int> machine_layout(int n, const TopologyOptions& options, const char* name) {
  int local = options.local_size;
  if (local == 0) local = closest_factor_shape(n).cols;
  if (local < 1)
    throw TopologyError(fmt::format("{}: ranks per machine must be >= 1, got {}", name, local));
  if (n % local != 0)
    throw TopologyError(
        fmt::format("{}: n = {} is not a multiple of the {} ranks per machine", name, n, local));
  return {n / local, local};
}

bool is_dynamic_name(const std::string& c) {
  return c == "one-peer-exponential" || c == "random-matching" || c == "hierarchical-one-peer" ||
         c.rfind("one-peer-", 0) == 0;
}

}  // namespace

std::vector<TopologyInfo> list_topologies() {
  return {
      {"ring", "bidirectional ring, i <-> i+-1 (in-degree 2)", false},
      {"ring-directed", "one-directional ring, i -> i+1 (in-degree 1)", false},
      {"star", "star around a centre (default 0): centre has n-1 neighbours, leaves 1", false},
      {"grid", "2D mesh r x c without wrap-around (shape: closest factors or given; degree <= 4)",
       false},
      {"torus", "2D mesh with wrap-around (shape: closest factors or given; degree 4)", false},
      {"random", "connected Erdos-Renyi graph with edge probability p (default 0.5), seeded",
       false},
      {"exponential",
       "static exponential, base 2: i -> i+2^t, t < ceil(log2 n) (alias exponential2)", false},
      {"exponential-b3",
       "static exponential, base 3: i -> i+j*3^t, j = 1,2 (exponential-bN: any base N)", false},
      {"symmetric-exponential", "exponential graph in both directions: i <-> i+-2^t", false},
      {"hypercube", "i <-> i xor 2^t; n must be a power of 2 (degree log2 n)", false},
      {"full", "fully connected, uniform weights give W = 11^T/n (rho = 0)", false},
      {"hierarchical",
       "machines x local ranks: complete inside a machine, machine graph (default exponential) "
       "between corresponding local ranks",
       false},
      {"one-peer-exponential",
       "dynamic: step k, i -> i+2^(k mod ceil(log2 n)), weights 1/2 (exact average after log2 n "
       "steps for n a power of 2)",
       true},
      {"one-peer-ring", "dynamic: ring one neighbour per step, alternating directions", true},
      {"one-peer-torus",
       "dynamic: torus, one direction per step (one-peer-<graph>: any static graph)", true},
      {"one-peer-hypercube",
       "dynamic: i <-> i xor 2^(k mod log2 n), pairwise averaging, exact after log2 n steps", true},
      {"random-matching", "dynamic: fresh random pairing every step (seeded), weights 1/2", true},
      {"hierarchical-one-peer",
       "dynamic: exact average inside machines, one-peer exponential between machines", true},
  };
}

bool is_static_topology(const std::string& name) {
  const std::string c = canonical(name);
  if (exponential_base(c) >= 2) return true;
  for (const auto& t : list_topologies())
    if (t.name == c) return !t.dynamic;
  return false;
}

Graph make_graph(const std::string& name, int n, const TopologyOptions& options) {
  const std::string c = canonical(name);
  const WeightRule rule = options.weights;
  if (c == "ring") return ring(n, rule);
  if (c == "ring-directed") return directed_ring(n, rule);
  if (c == "star") return star(n, options.center, rule);
  if (c == "grid" || c == "torus") {
    check_n(n, c);
    const GridShape shape = options.shape.value_or(closest_factor_shape(n));
    if (static_cast<long long>(shape.rows) * shape.cols != n)
      throw TopologyError(fmt::format("{}: shape {}x{} has {} nodes, but n = {}", c, shape.rows,
                                      shape.cols, static_cast<long long>(shape.rows) * shape.cols,
                                      n));
    return c == "grid" ? grid(shape, rule) : torus(shape, rule);
  }
  if (c == "random") return random_graph(n, options.probability, options.seed, rule);
  if (c == "exponential") return exponential(n, options.base, rule);
  if (const int base = exponential_base(c); base != 0) {
    if (base < 2) throw TopologyError(fmt::format("{}: base must be >= 2", name));
    return exponential(n, base, rule);
  }
  if (c == "symmetric-exponential") return symmetric_exponential(n, rule);
  if (c == "hypercube") return hypercube(n, rule);
  if (c == "full") return fully_connected(n, rule);
  if (c == "hierarchical") {
    check_n(n, c);
    const auto [machines, local] = machine_layout(n, options, "hierarchical");
    const std::string machine_name = canonical(options.machine_topology);
    if (machine_name == "hierarchical" || !is_static_topology(machine_name))
      throw TopologyError(fmt::format(
          "hierarchical: machine topology '{}' must be a static, non-hierarchical topology",
          options.machine_topology));
    TopologyOptions machine_options = options;
    machine_options.weights = WeightRule::kUniform;
    machine_options.shape.reset();
    const Graph machine_graph = make_graph(machine_name, machines, machine_options);
    return hierarchical(machines, local, machine_graph, options.links, rule);
  }
  if (is_dynamic_name(c))
    throw TopologyError(fmt::format(
        "'{}' is a dynamic topology: build it with make_schedule, not make_graph", name));
  unknown(name);
}

SchedulePtr make_schedule(const std::string& name, int n, const TopologyOptions& options) {
  const std::string c = canonical(name);
  if (c == "one-peer-exponential") {
    check_n(n, c);
    return std::make_shared<OnePeerExponential>(n);
  }
  if (c == "random-matching") {
    check_n(n, c);
    return std::make_shared<RandomMatching>(n, options.seed);
  }
  if (c == "hierarchical-one-peer") {
    check_n(n, c);
    const auto [machines, local] = machine_layout(n, options, "hierarchical-one-peer");
    return std::make_shared<HierarchicalOnePeer>(machines, local);
  }
  if (c == "one-peer-hypercube") return one_peer_hypercube(n);
  if (c == "one-peer-torus") {
    check_n(n, c);
    const GridShape shape = options.shape.value_or(closest_factor_shape(n));
    if (static_cast<long long>(shape.rows) * shape.cols != n)
      throw TopologyError(
          fmt::format("{}: shape {}x{} does not have n = {} nodes", c, shape.rows, shape.cols, n));
    return one_peer_torus(shape);
  }
  const std::string prefix = "one-peer-";
  if (c.rfind(prefix, 0) == 0) {
    const std::string base_name = c.substr(prefix.size());
    if (!is_static_topology(base_name)) unknown(name);
    TopologyOptions base_options = options;
    base_options.weights = WeightRule::kUniform;
    Graph base = make_graph(base_name, n, base_options);
    return std::make_shared<OnePeerCycle>(std::move(base), c);
  }
  if (!is_static_topology(c)) unknown(name);
  return std::make_shared<StaticSchedule>(make_graph(c, n, options));
}

}  // namespace decent::topology
