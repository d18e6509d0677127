// Selecting topologies by name.
#include "test_util.h"

#include <set>

namespace decent::topology {
namespace {

TEST(Registry, EveryListedTopologyBuildsAndValidates) {
  const auto topologies = list_topologies();
  std::set<std::string> names;
  for (const auto& t : topologies) {
    EXPECT_TRUE(names.insert(t.name).second) << "duplicate " << t.name;
    EXPECT_FALSE(t.description.empty());
    EXPECT_EQ(t.description.find('\n'), std::string::npos);
    for (int n : {1, 2, 8, 16}) {
      SCOPED_TRACE(t.name + " n=" + std::to_string(n));
      const SchedulePtr s = make_schedule(t.name, n);
      ASSERT_EQ(s->size(), n);
      ValidationOptions options;
      options.doubly_stochastic = Check::kIgnore;
      const int steps = s->period() > 0 ? 0 : 8;
      EXPECT_NO_THROW(validate(*s, steps, options));
      EXPECT_EQ(is_static_topology(t.name), !t.dynamic);
      if (t.dynamic) {
        EXPECT_EQ(dynamic_cast<const StaticSchedule*>(s.get()), nullptr);
        try {
          make_graph(t.name, n);
          ADD_FAILURE() << "make_graph accepted a dynamic topology";
        } catch (const TopologyError& e) {
          EXPECT_NE(std::string(e.what()).find("make_schedule"), std::string::npos);
        }
      } else {
        EXPECT_EQ(make_graph(t.name, n).mixing_matrix(), s->graph_at(0).mixing_matrix());
      }
    }
  }
  for (const char* required :
       {"ring", "ring-directed", "star", "grid", "torus", "random", "exponential",
        "symmetric-exponential", "hypercube", "full", "hierarchical", "one-peer-exponential",
        "random-matching", "hierarchical-one-peer"})
    EXPECT_TRUE(names.count(required)) << required;
}

TEST(Registry, NamesMapToTheGenerators) {
  EXPECT_EQ(make_graph("exponential2", 10).mixing_matrix(), exponential(10).mixing_matrix());
  EXPECT_EQ(make_graph("exponential-b3", 10).mixing_matrix(), exponential(10, 3).mixing_matrix());
  EXPECT_EQ(make_graph("exponential-b5", 30).mixing_matrix(), exponential(30, 5).mixing_matrix());
  EXPECT_EQ(make_graph("Fully_Connected", 4).mixing_matrix(), fully_connected(4).mixing_matrix());
  EXPECT_EQ(make_graph("directed-ring", 4).mixing_matrix(), directed_ring(4).mixing_matrix());
  TopologyOptions o;
  o.weights = WeightRule::kMetropolisHastings;
  o.shape = GridShape{2, 6};
  EXPECT_EQ(make_graph("grid", 12, o).mixing_matrix(),
            grid(GridShape{2, 6}, WeightRule::kMetropolisHastings).mixing_matrix());
  o.seed = 11;
  o.probability = 0.3;
  EXPECT_EQ(make_graph("random", 12, o).mixing_matrix(),
            random_graph(12, 0.3, 11, WeightRule::kMetropolisHastings).mixing_matrix());
  TopologyOptions h;
  h.local_size = 4;
  h.machine_topology = "ring";
  h.links = HierarchicalLinks::kLeaders;
  EXPECT_EQ(make_graph("hierarchical", 12, h).mixing_matrix(),
            hierarchical(3, 4, ring(3), HierarchicalLinks::kLeaders).mixing_matrix());
  TopologyOptions star_options;
  star_options.center = 3;
  EXPECT_EQ(make_graph("star", 5, star_options).in_degree(3), 4);

  EXPECT_EQ(make_schedule("one-peer-ring", 6)->graph_at(1).mixing_matrix(),
            OnePeerCycle(ring(6)).graph_at(1).mixing_matrix());
  EXPECT_EQ(make_schedule("one-peer-exponential-b3", 9)->period(), 4);
  TopologyOptions seeded;
  seeded.seed = 4;
  EXPECT_EQ(make_schedule("random-matching", 9, seeded)->graph_at(3).mixing_matrix(),
            RandomMatching(9, 4).graph_at(3).mixing_matrix());
}

TEST(Registry, ClearErrors) {
  try {
    make_graph("moebius", 4);
    ADD_FAILURE();
  } catch (const TopologyError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("unknown topology 'moebius'"), std::string::npos) << m;
    EXPECT_NE(m.find("one-peer-exponential"), std::string::npos) << m;
  }
  EXPECT_THROW(make_schedule("one-peer-moebius", 4), TopologyError);
  EXPECT_THROW(make_graph("ring", 0), TopologyError);
  EXPECT_THROW(make_schedule("one-peer-exponential", -1), TopologyError);
  EXPECT_THROW(make_graph("exponential-b1", 8), TopologyError);
  TopologyOptions bad_shape;
  bad_shape.shape = GridShape{3, 3};
  EXPECT_THROW(make_graph("torus", 8, bad_shape), TopologyError);
  TopologyOptions bad_local;
  bad_local.local_size = 3;
  EXPECT_THROW(make_graph("hierarchical", 8, bad_local), TopologyError);
  TopologyOptions recursive;
  recursive.machine_topology = "hierarchical";
  EXPECT_THROW(make_graph("hierarchical", 16, recursive), TopologyError);
}

}  // namespace
}  // namespace decent::topology
