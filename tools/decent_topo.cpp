// decent-topo: inspect a communication topology.
//
//   decent-topo exponential -n 16            degrees, rho, spectral gap, messages per node
//   decent-topo one-peer-exponential -n 8    the same for a dynamic schedule, step by step
//   decent-topo torus -n 64 --json           one JSON object
//   decent-topo ring -n 8 --png ring.png     graphviz drawing
//   decent-topo my_graph.json                a graph from a JSON file (docs/topologies.md)
//   decent-topo --list                       every topology name with a one-line description
//
// Exit codes: 0 success, 1 runtime failure (files, graphviz), 2 usage errors (unknown topology,
// bad n or options, malformed graph file).
#include "decent/topology/topology.h"

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

extern char** environ;

namespace topo = decent::topology;
using nlohmann::ordered_json;

namespace {

// Dense SVD costs O(n^3) time and O(n^2) memory (about a second at n = 1024); beyond the
// --max-spectral-n limit rho is skipped.
constexpr int kDefaultMaxSpectralNodes = 1024;
// BFS from every node costs O(n * edges); beyond this the diameter is skipped.
constexpr int kMaxDiameterNodes = 4096;

// A usage problem: reported with exit code 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Args {
  std::string topology;
  int n = 0;
  bool n_given = false;
  std::string weights;
  std::uint64_t seed = 0;
  std::string shape;
  double probability = 0.5;
  int center = 0;
  int base = 2;
  int local_size = 0;
  std::string machine_topology = "exponential";
  std::string links = "corresponding";
  int steps = 0;
  int show = 16;
  int max_spectral_nodes = kDefaultMaxSpectralNodes;
  bool json = false;
  bool list = false;
  std::string dot_file;
  std::string png_file;
};

bool looks_like_file(const std::string& topology) {
  return topology.find('/') != std::string::npos ||
         (topology.size() > 5 && topology.compare(topology.size() - 5, 5, ".json") == 0) ||
         std::filesystem::is_regular_file(topology);
}

// What is inspected: a static graph or a dynamic schedule (both as a schedule).
struct Subject {
  topo::SchedulePtr schedule;
  std::optional<topo::Graph> graph;  // set for static topologies
  std::string weights;               // weight rule description
};

Subject build(const Args& a) {
  Subject s;
  if (looks_like_file(a.topology)) {
    topo::Graph g = topo::load_graph(a.topology);
    if (a.n_given && a.n != g.size())
      throw UsageError(fmt::format("-n {} does not match the {} nodes of graph file '{}'", a.n,
                                   g.size(), a.topology));
    s.weights = "from the file";
    if (!a.weights.empty()) {
      const topo::WeightRule rule = topo::parse_weight_rule(a.weights);
      g = topo::apply_weights(std::move(g), rule);
      s.weights = topo::to_string(rule);
    }
    s.graph = g;
    s.schedule = std::make_shared<topo::StaticSchedule>(std::move(g));
    return s;
  }
  if (!a.n_given)
    throw UsageError(
        fmt::format("-n N (number of nodes) is required for topology '{}'", a.topology));
  topo::TopologyOptions options;
  if (!a.weights.empty()) options.weights = topo::parse_weight_rule(a.weights);
  options.seed = a.seed;
  options.probability = a.probability;
  if (!a.shape.empty()) options.shape = topo::parse_shape(a.shape);
  options.center = a.center;
  options.base = a.base;
  options.local_size = a.local_size;
  options.machine_topology = a.machine_topology;
  if (a.links == "corresponding")
    options.links = topo::HierarchicalLinks::kCorrespondingLocalRanks;
  else if (a.links == "leaders")
    options.links = topo::HierarchicalLinks::kLeaders;
  else
    throw UsageError(
        fmt::format("--links must be 'corresponding' or 'leaders', got '{}'", a.links));
  s.schedule = topo::make_schedule(a.topology, a.n, options);
  // Dynamic schedules stay dynamic even when their period is 1 (e.g. one-peer at n = 2).
  if (const auto* fixed = dynamic_cast<const topo::StaticSchedule*>(s.schedule.get())) {
    s.graph = fixed->graph();
    s.weights = topo::to_string(options.weights);
  } else {
    s.weights = "defined by the schedule";
    if (!a.weights.empty())
      std::cerr << fmt::format(
          "warning: --weights does not apply to the dynamic topology '{}', which sets its own "
          "weights\n",
          a.topology);
  }
  return s;
}

// Receivers of every node at one step.
std::vector<std::vector<int>> sends_at(const topo::Schedule& schedule, std::int64_t step) {
  const topo::Graph g = schedule.graph_at(step);
  std::vector<std::vector<int>> sends(g.size());
  for (int i = 0; i < g.size(); ++i) sends[i] = g.out_ranks(i);
  return sends;
}

std::string join(const std::vector<int>& v, const char* sep) {
  std::string out;
  for (int x : v) out += (out.empty() ? "" : sep) + std::to_string(x);
  return out;
}

std::string fmt_number(double x) {
  return x < 0 ? "skipped" : fmt::format("{:.6g}", x);
}

ordered_json number_or_null(double x) {
  return x < 0 ? ordered_json(nullptr) : ordered_json(x);
}

bool find_in_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (!path) return false;
  std::string dirs = path;
  std::size_t start = 0;
  while (start <= dirs.size()) {
    const std::size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::string dir = dirs.substr(start, end - start);
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error(fmt::format("cannot write '{}'", path));
  out << text;
  if (!out) throw std::runtime_error(fmt::format("failed writing '{}'", path));
}

void render_png(const std::string& dot_text, const std::string& png_file) {
  if (!find_in_path("dot"))
    throw std::runtime_error(
        "--png needs graphviz's 'dot' program, which is not in PATH (install graphviz, or "
        "write DOT with --dot FILE)");
  char tmp[] = "/tmp/decent-topo-XXXXXX";
  const int fd = mkstemp(tmp);
  if (fd < 0) throw std::runtime_error("cannot create a temporary DOT file");
  close(fd);
  write_file(tmp, dot_text);
  std::string out_arg = "-o" + png_file;
  std::vector<char*> argv = {const_cast<char*>("dot"), const_cast<char*>("-Tpng"), out_arg.data(),
                             tmp, nullptr};
  pid_t pid = 0;
  const int spawn_error = posix_spawnp(&pid, "dot", nullptr, nullptr, argv.data(), environ);
  int status = 0;
  if (spawn_error == 0) waitpid(pid, &status, 0);
  std::remove(tmp);
  if (spawn_error != 0)
    throw std::runtime_error(fmt::format("cannot run graphviz 'dot': error {}", spawn_error));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(fmt::format("graphviz 'dot -Tpng' failed writing '{}'", png_file));
}

int run(const Args& a) {
  const Subject s = build(a);
  const topo::Schedule& schedule = *s.schedule;
  const int n = schedule.size();
  const bool dynamic = !s.graph.has_value();
  topo::AnalysisOptions analysis_options;
  analysis_options.spectral = n <= a.max_spectral_nodes;
  analysis_options.diameter = n <= kMaxDiameterNodes;

  // One period, or the requested window (default ceil(log2 n)) for aperiodic schedules.
  int steps = 1;
  if (dynamic)
    steps = a.steps > 0
                ? a.steps
                : (schedule.period() > 0 ? schedule.period() : std::max(1, topo::ceil_log(n, 2)));

  topo::ValidationOptions validation;
  validation.doubly_stochastic = topo::Check::kIgnore;  // reported as a flag instead
  validation.connected = topo::Check::kWarn;
  const topo::ValidationReport report =
      dynamic ? topo::check(schedule, steps, validation) : topo::check(*s.graph, validation);

  ordered_json out;
  out["topology"] = schedule.name();
  out["n"] = n;
  out["dynamic"] = dynamic;
  out["weights"] = s.weights;
  int max_in = 0, max_out = 0, diameter = -1;
  double rho = -1, rho_per_step = -1, gap = -1, avg_in = 0;
  bool symmetric = false, doubly = false, row = false, connected = false;
  if (dynamic) {
    const topo::ScheduleAnalysis r = topo::analyze(schedule, steps, analysis_options);
    max_in = r.max_in_degree;
    max_out = r.max_out_degree;
    rho = r.rho;
    rho_per_step = r.rho_per_step;
    gap = r.spectral_gap;
    avg_in = r.average_in_degree;
    symmetric = r.symmetric;
    doubly = r.doubly_stochastic;
    row = r.row_stochastic;
    connected = r.strongly_connected;
    out["period"] = schedule.period();
    out["steps_analyzed"] = steps;
  } else {
    const topo::GraphAnalysis r = topo::analyze(*s.graph, analysis_options);
    max_in = r.max_in_degree;
    max_out = r.max_out_degree;
    rho = r.rho;
    gap = r.spectral_gap;
    avg_in = r.average_in_degree;
    symmetric = r.symmetric;
    doubly = r.doubly_stochastic;
    row = r.row_stochastic;
    connected = r.strongly_connected;
    diameter = r.diameter;
    out["period"] = 1;
    out["edges"] = r.num_edges;
  }
  // Every received message is a sent message: the average in-degree is the average number of
  // messages a node sends per iteration.
  out["max_degree"] = max_in;
  out["max_in_degree"] = max_in;
  out["max_out_degree"] = max_out;
  out["messages_per_node"] = avg_in;
  out["max_messages_per_node"] = max_out;
  out["rho"] = number_or_null(rho);
  if (dynamic) out["rho_per_step"] = number_or_null(rho_per_step);
  out["spectral_gap"] = number_or_null(gap);
  out["symmetric"] = symmetric;
  out["doubly_stochastic"] = doubly;
  out["row_stochastic"] = row;
  out["connected"] = connected;
  if (!dynamic)
    out["diameter"] =
        analysis_options.diameter && diameter >= 0 ? ordered_json(diameter) : ordered_json(nullptr);

  // Per-step send lists, bounded to `show` steps and `show` nodes.
  const int shown_steps = std::min(steps, a.show);
  const int shown_nodes = std::min(n, a.show);
  ordered_json plan = ordered_json::array();
  std::vector<std::string> plan_lines;
  for (int k = 0; k < shown_steps; ++k) {
    const auto sends = sends_at(schedule, k);
    ordered_json nodes = ordered_json::array();
    std::string line;
    for (int i = 0; i < shown_nodes; ++i) {
      nodes.push_back(sends[i]);
      if (dynamic)
        line += fmt::format("{}{}->{}", line.empty() ? "" : "  ", i,
                            sends[i].empty() ? "-" : join(sends[i], ","));
      else
        plan_lines.push_back(fmt::format("  {} -> {}  ({} message{})", i,
                                         sends[i].empty() ? "-" : join(sends[i], " "),
                                         sends[i].size(), sends[i].size() == 1 ? "" : "s"));
    }
    if (dynamic) {
      if (shown_nodes < n) line += fmt::format("  ... ({} more nodes)", n - shown_nodes);
      plan_lines.push_back(fmt::format("  step {}: {}", k, line));
    } else if (shown_nodes < n) {
      plan_lines.push_back(fmt::format("  ... ({} more nodes)", n - shown_nodes));
    }
    plan.push_back({{"step", k}, {"sends", std::move(nodes)}});
  }
  if (dynamic && shown_steps < steps)
    plan_lines.push_back(fmt::format("  ... ({} more steps)", steps - shown_steps));
  out["plan"] = std::move(plan);
  out["plan_truncated"] = shown_steps < steps || shown_nodes < n;
  ordered_json problems = ordered_json::array();
  for (const auto& e : report.errors) problems.push_back(e);
  for (const auto& w : report.warnings) problems.push_back(w);
  out["problems"] = std::move(problems);

  if (!a.dot_file.empty() || !a.png_file.empty()) {
    const std::string dot_text =
        dynamic ? topo::to_dot(schedule, steps) : topo::to_dot(*s.graph, true);
    if (!a.dot_file.empty()) write_file(a.dot_file, dot_text);
    if (!a.png_file.empty()) render_png(dot_text, a.png_file);
  }

  for (const auto& e : report.errors) std::cerr << "warning: " << e << '\n';
  for (const auto& w : report.warnings) std::cerr << "warning: " << w << '\n';

  if (a.json) {
    std::cout << out.dump(2) << '\n';
    return 0;
  }
  const char* yes_no[] = {"no", "yes"};
  std::cout << fmt::format(
      "topology           {} ({})\n", schedule.name(),
      dynamic ? fmt::format("dynamic, period {}", schedule.period()) : "static");
  std::cout << fmt::format("n                  {}\n", n);
  std::cout << fmt::format("weights            {}\n", s.weights);
  std::cout << fmt::format("max in-degree      {}\n", max_in);
  std::cout << fmt::format("max out-degree     {}\n", max_out);
  if (dynamic) {
    std::cout << fmt::format("rho ({} steps)      {}\n", steps, fmt_number(rho));
    std::cout << fmt::format("rho per step       {}\n", fmt_number(rho_per_step));
  } else {
    std::cout << fmt::format("rho                {}\n", fmt_number(rho));
  }
  std::cout << fmt::format("spectral gap       {}\n", fmt_number(gap));
  if (rho < 0)
    std::cout << fmt::format(
        "                   (rho is skipped above n = {}: dense SVD; see --max-spectral-n)\n",
        a.max_spectral_nodes);
  std::cout << fmt::format("symmetric          {}\n", yes_no[symmetric]);
  std::cout << fmt::format("doubly stochastic  {}\n", yes_no[doubly]);
  std::cout << fmt::format("row stochastic     {}\n", yes_no[row]);
  std::cout << fmt::format("connected          {}", yes_no[connected]);
  if (!dynamic && diameter >= 0) std::cout << fmt::format(" (diameter {})", diameter);
  std::cout << '\n';
  std::cout << fmt::format("messages per node  {:.4g} per iteration on average, at most {}\n",
                           avg_in, max_out);
  std::cout << (dynamic ? fmt::format("messages sent at each step (node->receivers), {} steps:\n",
                                      steps)
                        : std::string("messages each node sends every iteration:\n"));
  for (const auto& line : plan_lines) std::cout << line << '\n';
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "decent-topo: inspect a communication topology (degrees, rho = ||W - 11^T/n||_2, "
      "spectral gap, messages per iteration) and export it as JSON, DOT or PNG"};
  Args a;
  app.add_option("topology", a.topology, "topology name (see --list) or path to a JSON graph file");
  auto* n_option = app.add_option("-n,--nodes", a.n, "number of nodes");
  app.add_option("--weights", a.weights, "weight rule: uniform, metropolis or max-degree");
  app.add_option("--seed", a.seed, "seed of random topologies");
  app.add_option("--shape", a.shape, "grid/torus shape RxC (default: closest factors of n)");
  app.add_option("-p,--probability", a.probability, "edge probability of 'random'")
      ->capture_default_str();
  app.add_option("--center", a.center, "centre of 'star'")->capture_default_str();
  app.add_option("--base", a.base, "base of 'exponential'")->capture_default_str();
  app.add_option("--local-size", a.local_size,
                 "ranks per machine of hierarchical topologies (default: closest factors)");
  app.add_option("--machine-topology", a.machine_topology, "graph between machines")
      ->capture_default_str();
  app.add_option("--links", a.links, "hierarchical links: corresponding or leaders")
      ->capture_default_str();
  app.add_option("--steps", a.steps,
                 "steps to analyze for dynamic topologies (default: one period, or "
                 "ceil(log2 n) when aperiodic)");
  app.add_option("--show", a.show, "print at most this many nodes and steps")
      ->capture_default_str();
  app.add_option("--max-spectral-n", a.max_spectral_nodes,
                 "skip rho (dense O(n^3) SVD) above this many nodes")
      ->capture_default_str();
  app.add_flag("--json", a.json, "print one JSON object instead of text");
  app.add_option("--dot", a.dot_file, "write graphviz DOT to FILE");
  app.add_option("--png", a.png_file, "render a PNG with graphviz 'dot -Tpng' to FILE");
  app.add_flag("--list", a.list, "list the topologies with a one-line description");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "decent-topo: error: " << e.what() << "\n(run decent-topo --help for usage)\n";
    return 2;
  }
  a.n_given = n_option->count() > 0;

  if (a.list) {
    std::size_t width = 0;
    for (const auto& t : topo::list_topologies()) width = std::max(width, t.name.size());
    for (const auto& t : topo::list_topologies())
      std::cout << fmt::format("{:<{}}  {}\n", t.name, width, t.description);
    return 0;
  }
  try {
    if (a.topology.empty())
      throw UsageError("missing TOPOLOGY (a name from --list or a JSON graph file)");
    if (a.n_given && (a.n < 1 || a.n > topo::kMaxGraphSize))
      throw UsageError(
          fmt::format("-n must be between 1 and {}, got {}", topo::kMaxGraphSize, a.n));
    if (a.show < 1) throw UsageError(fmt::format("--show must be >= 1, got {}", a.show));
    if (a.steps < 0) throw UsageError(fmt::format("--steps must be >= 0, got {}", a.steps));
    return run(a);
  } catch (const UsageError& e) {
    std::cerr << "decent-topo: error: " << e.what() << '\n';
    return 2;
  } catch (const topo::TopologyError& e) {
    std::cerr << "decent-topo: error: " << e.what() << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "decent-topo: error: " << e.what() << '\n';
    return 1;
  }
}
