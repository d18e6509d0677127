// Select topologies by name, as tools and configuration files do.
//
//   TopologyOptions opts;
//   opts.weights = WeightRule::kMetropolisHastings;
//   Graph g = make_graph("torus", 16, opts);
//   SchedulePtr s = make_schedule("one-peer-exponential", 16);
//   for (const auto& t : list_topologies()) std::cout << t.name << ": " << t.description;
#pragma once

#include "decent/topology/generators.h"
#include "decent/topology/graph.h"
#include "decent/topology/schedule.h"
#include "decent/topology/weights.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace decent::topology {

struct TopologyOptions {
  // Weight rule of static graphs (dynamic schedules define their own weights).
  WeightRule weights = WeightRule::kUniform;
  // Seed of random topologies (random graph, random matching); same seed, same graph.
  std::uint64_t seed = 0;
  // Edge probability of the random graph.
  double probability = 0.5;
  // Grid/torus shape; default closest_factor_shape(n).
  std::optional<GridShape> shape;
  // Centre of the star.
  int center = 0;
  // Base of "exponential" (2 unless set; "exponential-bN" names set it too).
  int base = 2;
  // Ranks per machine of hierarchical topologies; 0 picks closest_factor_shape(n).cols.
  int local_size = 0;
  // Graph between machines of "hierarchical" (any static topology name).
  std::string machine_topology = "exponential";
  // Which ranks of "hierarchical" connect across machines.
  HierarchicalLinks links = HierarchicalLinks::kCorrespondingLocalRanks;
};

struct TopologyInfo {
  std::string name;
  std::string description;  // one line
  bool dynamic = false;     // only available through make_schedule
};

// Every listed name (aliases excluded) with a one-line description, static graphs first.
std::vector<TopologyInfo> list_topologies();
// True when `name` is a static graph name make_graph accepts (after alias resolution).
bool is_static_topology(const std::string& name);

// Builds a static graph by name: ring, ring-directed, star, grid, torus, random, exponential
// (= exponential2), exponential-bN (base N), symmetric-exponential, hypercube, full,
// hierarchical; aliases: directed-ring, mesh, fully-connected, complete. Throws TopologyError for
// unknown names (listing the known ones), dynamic names and bad n.
Graph make_graph(const std::string& name, int n, const TopologyOptions& options = {});

// Builds any topology as a schedule: static names are wrapped in StaticSchedule; dynamic ones
// are one-peer-exponential, one-peer-<static name> (OnePeerCycle over that graph),
// random-matching and hierarchical-one-peer.
SchedulePtr make_schedule(const std::string& name, int n, const TopologyOptions& options = {});

}  // namespace decent::topology
