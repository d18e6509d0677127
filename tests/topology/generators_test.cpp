// Structure of every static generator: sizes, degrees, weights, validity, n = 1 handling.
#include "test_util.h"

#include <cmath>
#include <functional>
#include <set>
#include <string>

namespace decent::topology {
namespace {

const int kSizes[] = {1, 2, 3, 5, 6, 7, 10, 12};

int log2_ceil(int n) {
  int t = 0;
  while ((1 << t) < n) ++t;
  return t;
}

// Number of distinct non-zero residues mod n among the offsets.
int distinct_offsets(int n, const std::vector<long long>& offsets) {
  std::set<long long> s;
  for (long long o : offsets) {
    const long long r = ((o % n) + n) % n;
    if (r != 0) s.insert(r);
  }
  return static_cast<int>(s.size());
}

int mesh_degree(GridShape shape, int node, bool wrap) {
  const int r = node / shape.cols, c = node % shape.cols;
  auto along = [&](int pos, int side) {
    if (wrap) return side >= 3 ? 2 : side - 1;
    return (pos > 0 ? 1 : 0) + (pos + 1 < side ? 1 : 0);
  };
  return along(r, shape.rows) + along(c, shape.cols);
}

struct Case {
  std::string name;
  std::function<Graph(int)> make;
  std::function<int(int n, int node)> expected_in_degree;
  bool undirected;
};

std::vector<Case> cases() {
  return {
      {"ring", [](int n) { return ring(n); },
       [](int n, int) { return n == 1 ? 0 : (n == 2 ? 1 : 2); }, true},
      {"ring-directed", [](int n) { return directed_ring(n); },
       [](int n, int) { return n == 1 ? 0 : 1; }, false},
      {"star", [](int n) { return star(n, n / 2); },
       [](int n, int node) { return node == n / 2 ? n - 1 : 1; }, true},
      {"grid", [](int n) { return grid(n); },
       [](int n, int node) { return mesh_degree(closest_factor_shape(n), node, false); }, true},
      {"torus", [](int n) { return torus(n); },
       [](int n, int node) { return mesh_degree(closest_factor_shape(n), node, true); }, true},
      {"random", [](int n) { return random_graph(n, 0.5, 7); }, nullptr, true},
      {"exponential", [](int n) { return exponential(n); }, [](int n, int) { return log2_ceil(n); },
       false},
      {"exponential-b3", [](int n) { return exponential(n, 3); },
       [](int n, int) {
         std::vector<long long> offsets;
         for (long long p = 1; p < n; p *= 3) offsets.insert(offsets.end(), {p, 2 * p});
         return distinct_offsets(n, offsets);
       },
       false},
      {"symmetric-exponential", [](int n) { return symmetric_exponential(n); },
       [](int n, int) {
         std::vector<long long> offsets;
         for (long long p = 1; p < n; p *= 2) offsets.insert(offsets.end(), {p, -p});
         return distinct_offsets(n, offsets);
       },
       true},
      {"full", [](int n) { return fully_connected(n); }, [](int n, int) { return n - 1; }, true},
      {"hierarchical", [](int n) { return make_graph("hierarchical", n); },
       [](int n, int) {
         const GridShape s = closest_factor_shape(n);  // machines = rows, local = cols
         return (s.cols - 1) + log2_ceil(s.rows);
       },
       false},
  };
}

TEST(Generators, EveryGeneratorIsValidWithExpectedDegrees) {
  for (const auto& c : cases()) {
    for (int n : kSizes) {
      SCOPED_TRACE(c.name + " n=" + std::to_string(n));
      const Graph g = c.make(n);
      ASSERT_EQ(g.size(), n);
      EXPECT_TRUE(is_row_stochastic(g));
      EXPECT_TRUE(is_strongly_connected(g));
      EXPECT_NO_THROW(validate(g));
      if (c.undirected) {
        EXPECT_TRUE(g.is_undirected());
      }
      for (int i = 0; i < n; ++i) {
        if (c.expected_in_degree) {
          EXPECT_EQ(g.in_degree(i), c.expected_in_degree(n, i)) << i;
        }
        // Uniform weights: every message and the node itself get 1/(in-degree + 1).
        const double w = 1.0 / (g.in_degree(i) + 1);
        EXPECT_DOUBLE_EQ(g.self_weight(i), w);
        for (const auto& p : g.in_neighbors(i)) {
          EXPECT_GE(p.rank, 0);
          EXPECT_LT(p.rank, n);
          EXPECT_NE(p.rank, i);
          EXPECT_DOUBLE_EQ(p.weight, w);
        }
        EXPECT_TRUE(check_plan(plan_from_graph(g, i), i, n, 0).ok());
      }
      if (n == 1) {
        EXPECT_EQ(g.mixing_matrix(), Eigen::MatrixXd::Ones(1, 1));
        EXPECT_EQ(g.num_edges(), 0);
      }
    }
  }
}

TEST(Generators, HypercubeNeedsPowerOfTwo) {
  for (int n : {1, 2, 4, 8, 16}) {
    const Graph g = hypercube(n);
    EXPECT_NO_THROW(validate(g));
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(g.in_degree(i), log2_ceil(n));
      for (int j : g.in_ranks(i)) EXPECT_EQ(__builtin_popcount(i ^ j), 1);
    }
  }
  for (int n : {3, 5, 6, 7, 10, 12}) {
    try {
      hypercube(n);
      ADD_FAILURE() << "hypercube(" << n << ") did not throw";
    } catch (const TopologyError& e) {
      EXPECT_NE(std::string(e.what()).find("power of 2"), std::string::npos) << e.what();
    }
  }
}

TEST(Generators, ExponentialEdgesFollowPowersOfTwo) {
  const Graph g = exponential(12);
  for (int i = 0; i < 12; ++i) {
    std::set<int> expected;
    for (int t = 0; t < 4; ++t) expected.insert((i + (1 << t)) % 12);
    const auto out = g.out_ranks(i);
    EXPECT_EQ(std::set<int>(out.begin(), out.end()), expected) << "node " << i;
  }
}

TEST(Generators, ExponentialBaseBHasBMinusOneTimesLevelsNeighbours) {
  // (b-1) * ceil(log_b n) out-neighbours when no offset coincides modulo n.
  EXPECT_EQ(exponential(27, 3).out_degree(0), 2 * 3);
  EXPECT_EQ(exponential(64, 4).out_degree(5), 3 * 3);
  EXPECT_EQ(exponential(100, 10).out_degree(0), 9 * 2);
  EXPECT_EQ(exponential(10, 3).out_ranks(0), (std::vector<int>{1, 2, 3, 6, 8, 9}));
  // Base 2 through the general form is the same graph.
  EXPECT_EQ(exponential(13, 2).mixing_matrix(), exponential(13).mixing_matrix());
  EXPECT_THROW(exponential(8, 1), TopologyError);
}

TEST(Generators, GridAndTorusShapes) {
  EXPECT_EQ(closest_factor_shape(16), (GridShape{4, 4}));
  EXPECT_EQ(closest_factor_shape(12), (GridShape{3, 4}));
  EXPECT_EQ(closest_factor_shape(7), (GridShape{1, 7}));
  EXPECT_EQ(closest_factor_shape(1), (GridShape{1, 1}));
  EXPECT_EQ(parse_shape("4x8"), (GridShape{4, 8}));
  EXPECT_EQ(parse_shape("2*3"), (GridShape{2, 3}));
  EXPECT_THROW(parse_shape("4"), TopologyError);
  EXPECT_THROW(parse_shape("0x4"), TopologyError);
  EXPECT_THROW(parse_shape("ax4"), TopologyError);
  const Graph t = torus(GridShape{4, 5});
  for (int i = 0; i < 20; ++i) EXPECT_EQ(t.in_degree(i), 4);
  EXPECT_TRUE(t.has_edge(0, 4));   // wrap along the row
  EXPECT_TRUE(t.has_edge(0, 15));  // wrap along the column
  const Graph g = grid(GridShape{4, 5});
  EXPECT_FALSE(g.has_edge(0, 4));
  EXPECT_EQ(g.num_edges(), 2 * (4 * 4 + 3 * 5));
  EXPECT_THROW(grid(GridShape{0, 3}), TopologyError);
}

TEST(Generators, StarCentre) {
  const Graph g = star(6, 2);
  EXPECT_EQ(g.in_degree(2), 5);
  for (int i : {0, 1, 3, 4, 5}) EXPECT_EQ(g.in_ranks(i), std::vector<int>{2});
  EXPECT_THROW(star(6, 6), TopologyError);
  EXPECT_THROW(star(6, -1), TopologyError);
}

TEST(Generators, RandomGraphIsSeededAndConnected) {
  const Graph a = random_graph(20, 0.3, 42);
  const Graph b = random_graph(20, 0.3, 42);
  EXPECT_EQ(a.mixing_matrix(), b.mixing_matrix());
  bool some_seed_differs = false;
  for (std::uint64_t seed = 43; seed < 48; ++seed)
    some_seed_differs |= random_graph(20, 0.3, seed).mixing_matrix() != a.mixing_matrix();
  EXPECT_TRUE(some_seed_differs);
  EXPECT_TRUE(a.is_undirected());
  EXPECT_TRUE(is_strongly_connected(a));
  // Edge count near p * n(n-1)/2 = 57 over many seeds.
  double total = 0;
  for (std::uint64_t seed = 0; seed < 50; ++seed) total += random_graph(20, 0.3, seed).num_edges();
  EXPECT_NEAR(total / 50 / 2, 0.3 * 190, 6.0);
  EXPECT_EQ(random_graph(6, 1.0).num_edges(), 30);
  try {
    random_graph(30, 0.0, 1, WeightRule::kUniform, 5);
    ADD_FAILURE() << "p = 0 cannot give a connected graph";
  } catch (const TopologyError& e) {
    EXPECT_NE(std::string(e.what()).find("disconnected in all 5 attempts"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(random_graph(5, 1.5), TopologyError);
  EXPECT_THROW(random_graph(5, std::nan("")), TopologyError);
}

TEST(Generators, HierarchicalLinks) {
  // 3 machines x 4 local ranks over a directed ring of machines.
  const Graph corresponding =
      hierarchical(3, 4, directed_ring(3), HierarchicalLinks::kCorrespondingLocalRanks);
  const Graph leaders = hierarchical(3, 4, directed_ring(3), HierarchicalLinks::kLeaders);
  for (int r = 0; r < 12; ++r) {
    const int m = r / 4, l = r % 4;
    for (int s = 0; s < 12; ++s) {
      if (s == r) continue;
      const bool same_machine = s / 4 == m;
      const bool from_previous_machine = s / 4 == (m + 2) % 3;
      EXPECT_EQ(corresponding.has_edge(s, r),
                same_machine || (from_previous_machine && s % 4 == l));
      EXPECT_EQ(leaders.has_edge(s, r),
                same_machine || (from_previous_machine && s % 4 == 0 && l == 0));
    }
  }
  EXPECT_THROW(hierarchical(3, 4, ring(4)), TopologyError);
  EXPECT_THROW(hierarchical(0, 4), TopologyError);
}

TEST(Generators, SizeLimitsAndWeightRuleErrors) {
  EXPECT_THROW(ring(0), TopologyError);
  EXPECT_THROW(ring(-5), TopologyError);
  EXPECT_THROW(ring(kMaxGraphSize + 1), TopologyError);
  try {
    fully_connected(100000);
    ADD_FAILURE() << "a complete graph on 100000 nodes must be refused";
  } catch (const TopologyError& e) {
    EXPECT_NE(std::string(e.what()).find("edges"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ring(5, WeightRule::kGiven), TopologyError);
}

}  // namespace
}  // namespace decent::topology
