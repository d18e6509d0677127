// JSON import/export and DOT output.
#include "test_util.h"

#include <cstdio>
#include <fstream>
#include <string>

namespace decent::topology {
namespace {

template <typename F>
void expect_format_error(F f, const std::string& text) {
  try {
    f();
    ADD_FAILURE() << "expected GraphFormatError containing: " << text;
  } catch (const GraphFormatError& e) {
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos)
        << "message: " << e.what() << "\nexpected to contain: " << text;
  }
}

void expect_same_graph(const Graph& a, const Graph& b) {
  EXPECT_EQ(a.name(), b.name());
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(a.mixing_matrix(), b.mixing_matrix());  // bit-exact
  for (int i = 0; i < a.size(); ++i) EXPECT_EQ(a.in_ranks(i), b.in_ranks(i));
}

TEST(Json, RoundTripIsExact) {
  const std::vector<Graph> graphs = {
      ring(1),
      ring(7),
      exponential(12),
      star(6, 2, WeightRule::kMetropolisHastings),
      random_graph(15, 0.4, 9, WeightRule::kMetropolisHastings),
      OnePeerExponential(8).graph_at(2),
      torus(GridShape{3, 5}, WeightRule::kMaxDegree),
  };
  for (const Graph& g : graphs) {
    SCOPED_TRACE(g.name());
    expect_same_graph(g, from_json(to_json(g)));
    expect_same_graph(g, from_json(to_json(g, -1)));  // compact form
  }
  // An edge with weight 0 survives (the edge list keeps it).
  Graph z = ring(3);
  z.set_edge(0, 1, 0.0);
  z.set_self_weight(1, 2.0 / 3);
  const Graph back = from_json(to_json(z));
  EXPECT_TRUE(back.has_edge(0, 1));
  EXPECT_EQ(back.weight(0, 1), 0.0);
}

TEST(Json, SchemaForms) {
  // Unweighted edge list: the weight rule (uniform by default) sets the weights.
  const Graph a = from_json(R"({"name": "p", "n": 3, "edges": [[0, 1], [1, 0], [1, 2], [2, 1]]})");
  EXPECT_EQ(a.name(), "p");
  EXPECT_DOUBLE_EQ(a.weight(0, 1), 1 / 3.0);
  EXPECT_DOUBLE_EQ(a.self_weight(0), 0.5);
  // Undirected shorthand and a named rule.
  const Graph b = from_json(
      R"({"n": 3, "directed": false, "weights": "metropolis", "edges": [[0, 1], [1, 2]]})");
  EXPECT_TRUE(b.is_undirected());
  EXPECT_DOUBLE_EQ(b.self_weight(0), 2 / 3.0);
  EXPECT_EQ(b.name(), "custom");
  // Weighted edges: self weights complete each row unless given.
  const Graph c =
      from_json(R"({"n": 2, "edges": [{"src": 0, "dst": 1, "weight": 0.25}, [1, 0, 0.5]]})");
  EXPECT_DOUBLE_EQ(c.weight(0, 1), 0.25);
  EXPECT_DOUBLE_EQ(c.self_weight(1), 0.75);
  EXPECT_DOUBLE_EQ(c.self_weight(0), 0.5);
  const Graph d = from_json(R"({"n": 2, "edges": [[0, 1, 0.5]], "self_weights": [1, 0.5]})");
  EXPECT_DOUBLE_EQ(d.self_weight(0), 1.0);
  // Dense matrix.
  const Graph m = from_json(R"({"name": "mat", "matrix": [[0.5, 0.5, 0], [0, 0.5, 0.5],
                                                            [0.5, 0, 0.5]]})");
  EXPECT_EQ(m.size(), 3);
  EXPECT_TRUE(m.has_edge(1, 0));
  EXPECT_FALSE(m.has_edge(2, 0));
  EXPECT_EQ(m.mixing_matrix(), StaticSchedule(m).graph().mixing_matrix());
  EXPECT_EQ(from_json(R"({"n": 1, "edges": []})").mixing_matrix(), Eigen::MatrixXd::Ones(1, 1));
}

TEST(Json, Errors) {
  expect_format_error([] { from_json(""); }, "graph JSON is empty");
  expect_format_error([] { from_json("{\"n\": 3, \"edges\": [[0, 1]"); }, "malformed");
  expect_format_error([] { from_json("[1, 2]"); }, "must be an object");
  expect_format_error([] { from_json("{}"); }, "neither \"edges\" nor \"matrix\"");
  expect_format_error([] { from_json(R"({"n": 2, "edges": [], "matrix": [[1]]})"); },
                      "both \"edges\" and \"matrix\"");
  expect_format_error([] { from_json(R"({"edges": [[0, 1]]})"); }, "\"n\" (number of nodes)");
  expect_format_error([] { from_json(R"({"n": 0, "edges": []})"); },
                      "\"n\" must be a positive integer, got 0");
  expect_format_error([] { from_json(R"({"n": 2.5, "edges": []})"); }, "positive integer");
  expect_format_error([] { from_json(R"({"n": 2000000, "edges": []})"); },
                      "\"n\" = 2000000 exceeds the limit of 1000000 nodes");
  expect_format_error([] { from_json(R"({"n": 3, "edges": [[0, 1], [1, 3]]})"); },
                      "edge 1 destination is rank 3, out of range [0, 3)");
  expect_format_error([] { from_json(R"({"n": 3, "edges": [{"src": -1, "dst": 0}]})"); },
                      "edge 0 source is rank -1, out of range [0, 3)");
  expect_format_error([] { from_json(R"({"n": 3, "edges": [[0, 1, -0.5]]})"); },
                      "edge 0 weight is negative (-0.5)");
  expect_format_error([] { from_json(R"({"n": 3, "edges": [[0, 1, 1e999]]})"); },
                      "number overflow");
  expect_format_error([] { from_json(R"({"n": 3, "edges": [[0, 1, NaN]]})"); }, "malformed");
  expect_format_error([] { from_json(R"({"n": 3, "edges": [[0, 1, "x"]]})"); },
                      "edge 0 weight is not a number");
  expect_format_error([] { from_json(R"({"n": 3, "edges": [[1, 1]]})"); },
                      "edge 0 is a self loop on node 1");
  expect_format_error([] { from_json(R"({"n": 3, "edges": [[0, 1], [0, 1]]})"); },
                      "edge 1 repeats edge 0 -> 1");
  expect_format_error([] { from_json(R"({"n": 3, "edges": [[0, 1, 0.5], [1, 2]]})"); },
                      "edge 1 (1 -> 2) has no weight while other edges do");
  expect_format_error([] { from_json(R"({"n": 3, "edges": [[0, 1, 0.7], [2, 1, 0.7]]})"); },
                      "node 1: incoming weights sum to 1.4 > 1");
  expect_format_error([] { from_json(R"({"n": 3, "edgs": []})"); }, "unknown key \"edgs\"");
  expect_format_error([] { from_json(R"({"n": 3, "edges": [[0]]})"); },
                      "edge 0 must be [src, dst] or [src, dst, weight]");
  expect_format_error([] { from_json(R"({"n": 3, "edges": [[0, 1]], "weights": "magic"})"); },
                      "unknown weight rule 'magic'");
  expect_format_error([] { from_json(R"({"n": 3, "edges": [[0, 1]], "weights": "metropolis"})"); },
                      "undirected");
  expect_format_error([] { from_json(R"({"matrix": []})"); }, "\"matrix\" is empty");
  expect_format_error([] { from_json(R"({"matrix": [[1, 0], [0]]})"); },
                      "matrix row 1 must be an array of 2 numbers, got 1 entries");
  expect_format_error([] { from_json(R"({"matrix": [[1, 0], [-1, 2]]})"); },
                      "matrix entry (1, 0) is negative (-1)");
  expect_format_error([] { from_json(R"({"n": 3, "matrix": [[1, 0], [0, 1]]})"); },
                      "\"n\" = 3 but \"matrix\" has 2 rows");
}

TEST(Json, FilesNameTheFile) {
  const std::string path = ::testing::TempDir() + "decent_topology_io_test.json";
  save_graph(exponential(6), path);
  expect_same_graph(exponential(6), load_graph(path));
  {
    std::ofstream out(path);
    out << "{\"n\": 2, \"edges\": [[0, 5]]}";
  }
  expect_format_error([&] { load_graph(path); }, "graph file '" + path + "': edge 0");
  std::remove(path.c_str());
  expect_format_error([&] { load_graph(path); }, "cannot read graph file '" + path + "'");
}

TEST(Dot, UndirectedPairsDrawnOnce) {
  const std::string dot = to_dot(ring(3));
  EXPECT_NE(dot.find("digraph \"ring\" {"), std::string::npos) << dot;
  EXPECT_NE(dot.find("0 -> 1 [dir=both, label=\"0.333\"];"), std::string::npos) << dot;
  EXPECT_EQ(dot.find("1 -> 0"), std::string::npos) << dot;
  const std::string directed = to_dot(directed_ring(3), false);
  EXPECT_NE(directed.find("2 -> 0;"), std::string::npos) << directed;
  const std::string dynamic = to_dot(OnePeerExponential(4), 2);
  EXPECT_NE(dynamic.find("0 -> 1 [label=\"k=0\"];"), std::string::npos) << dynamic;
  EXPECT_NE(dynamic.find("0 -> 2 [label=\"k=1\"];"), std::string::npos) << dynamic;
}

}  // namespace
}  // namespace decent::topology
