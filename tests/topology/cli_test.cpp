// decent-topo, run as a program: exit codes and the JSON report.
#include "test_util.h"

#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <string>

namespace {

struct Result {
  int exit_code = -1;
  std::string out;
};

Result run_topo(const std::string& args) {
  const std::string command = std::string(DECENT_TOPO_EXE) + " " + args + " 2>/dev/null";
  Result r;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buffer{};
  std::size_t got;
  while ((got = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) r.out.append(buffer.data(), got);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

TEST(DecentTopo, UsageErrorsExitWithTwo) {
  EXPECT_EQ(run_topo("no-such-topology -n 4").exit_code, 2);
  EXPECT_EQ(run_topo("ring -n 0").exit_code, 2);
  EXPECT_EQ(run_topo("ring -n -3").exit_code, 2);
  EXPECT_EQ(run_topo("ring -n abc").exit_code, 2);
  EXPECT_EQ(run_topo("ring -n 2000000").exit_code, 2);
  EXPECT_EQ(run_topo("ring").exit_code, 2);
  EXPECT_EQ(run_topo("hypercube -n 12").exit_code, 2);
  EXPECT_EQ(run_topo("ring -n 4 --weights bogus").exit_code, 2);
  EXPECT_EQ(run_topo("/nonexistent/graph.json").exit_code, 2);
  EXPECT_EQ(run_topo("ring -n 4 --no-such-flag").exit_code, 2);
}

TEST(DecentTopo, JsonReportHasTheRequiredKeys) {
  const Result r = run_topo("exponential -n 16 --json");
  ASSERT_EQ(r.exit_code, 0);
  const auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"n", "max_degree", "rho", "spectral_gap", "doubly_stochastic",
                          "symmetric", "messages_per_node"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["n"], 16);
  EXPECT_EQ(j["max_degree"], 4);
  EXPECT_NEAR(j["rho"].get<double>(), 0.6, 1e-9);
  EXPECT_NEAR(j["spectral_gap"].get<double>(), 0.4, 1e-9);
  EXPECT_EQ(j["doubly_stochastic"], true);
  EXPECT_EQ(j["symmetric"], false);
  EXPECT_DOUBLE_EQ(j["messages_per_node"].get<double>(), 4.0);
  EXPECT_EQ(j["plan"][0]["sends"][3], (std::vector<int>{4, 5, 7, 11}));
}

TEST(DecentTopo, DynamicJsonReport) {
  const Result r = run_topo("one-peer-exponential -n 8 --json");
  ASSERT_EQ(r.exit_code, 0);
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["dynamic"], true);
  EXPECT_EQ(j["period"], 3);
  EXPECT_NEAR(j["rho"].get<double>(), 0.0, 1e-12);
  EXPECT_DOUBLE_EQ(j["messages_per_node"].get<double>(), 1.0);
  ASSERT_EQ(j["plan"].size(), 3u);
  EXPECT_EQ(j["plan"][2]["sends"][5], std::vector<int>{1});  // 5 + 4 mod 8
}

TEST(DecentTopo, TextReportListAndGraphFile) {
  const Result text = run_topo("ring -n 8 --weights metropolis");
  ASSERT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("max in-degree      2"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("doubly stochastic  yes"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("  3 -> 2 4  (2 messages)"), std::string::npos) << text.out;

  const Result list = run_topo("--list");
  ASSERT_EQ(list.exit_code, 0);
  for (const auto& t : decent::topology::list_topologies())
    EXPECT_NE(list.out.find(t.name + " "), std::string::npos) << t.name;

  const std::string path = ::testing::TempDir() + "decent_topo_cli_test.json";
  decent::topology::save_graph(decent::topology::ring(5), path);
  const Result file = run_topo(path + " --json");
  ASSERT_EQ(file.exit_code, 0);
  const auto j = nlohmann::json::parse(file.out);
  EXPECT_EQ(j["n"], 5);
  EXPECT_EQ(j["topology"], "ring");
  EXPECT_EQ(run_topo(path + " -n 6").exit_code, 2);  // -n contradicts the file

  const std::string dot = ::testing::TempDir() + "decent_topo_cli_test.dot";
  ASSERT_EQ(run_topo("torus -n 9 --dot " + dot).exit_code, 0);
  std::ifstream in(dot);
  const std::string dot_text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(dot_text.find("digraph"), std::string::npos);
  std::remove(path.c_str());
  std::remove(dot.c_str());
}

}  // namespace
