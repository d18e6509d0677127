// Experiment grids, their summary numbers and files, and the decent-bench-convex command.
#include "decent/convex/experiment.h"
#include "reference.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <unistd.h>

namespace decent::convex {
namespace {

namespace fs = std::filesystem;

ExperimentSpec small_spec() {
  ExperimentSpec spec;
  spec.algorithms = {Algorithm::kDsgd, Algorithm::kGradientTracking};
  spec.topologies = {"ring", "one-peer-exponential"};
  spec.sizes = {4, 8};
  spec.step_sizes = {0.1};
  spec.solver.iterations = 300;
  spec.solver.record_every = 5;
  spec.target = 1e-6;
  return spec;
}

fs::path scratch_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("decent_convex_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(ExperimentTest, GridRunsEveryCombinationWithItsSummary) {
  const ExperimentSpec spec = small_spec();
  const ExperimentResult result = run_local(spec);
  ASSERT_EQ(result.problems.size(), 2u);
  ASSERT_EQ(result.runs.size(), 2u * 2 * 2);
  for (const RunRecord& r : result.runs) {
    SCOPED_TRACE(r.algorithm + " " + r.topology + " n=" + std::to_string(r.nodes));
    EXPECT_EQ(r.iterations.front(), 0);
    EXPECT_EQ(r.iterations.back(), 300);
    EXPECT_NEAR(r.error.front() / r.optimum_norm2, 1.0, 1e-12);  // x^0 = 0
    EXPECT_FALSE(r.diverged);
    const bool one_peer = r.topology == "one-peer-exponential";
    const double neighbours = one_peer ? 1.0 : 2.0;
    EXPECT_DOUBLE_EQ(r.neighbors_per_round, neighbours);
    EXPECT_DOUBLE_EQ(r.messages_per_iteration, neighbours);
    if (r.algorithm == "gradient-tracking") {
      ASSERT_TRUE(r.iterations_to_target.has_value());
      // The crossing is the first recorded iteration below the target.
      const auto k = std::find(r.iterations.begin(), r.iterations.end(), *r.iterations_to_target) -
                     r.iterations.begin();
      EXPECT_LE(r.error[k] / r.optimum_norm2, spec.target);
      EXPECT_GT(r.error[k - 1] / r.optimum_norm2, spec.target);
      EXPECT_FALSE(r.iterations_to_plateau.has_value());  // it converges to x*
    } else {
      EXPECT_FALSE(r.iterations_to_target.has_value());
      ASSERT_TRUE(r.iterations_to_plateau.has_value());
      EXPECT_LT(*r.iterations_to_plateau, 300);
    }
  }
  // Ring: rho = max over k != 0 of |1/3 + 2/3 cos(2 pi k / n)|, 1/3 for n = 4 and 0.8047 for
  // n = 8; one-peer exponential with n a power of 2 averages exactly after log2 n steps: rho = 0.
  EXPECT_NEAR(result.runs[0].rho, 1.0 / 3.0, 1e-12);
  EXPECT_NEAR(result.runs[4].rho, 1.0 / 3.0 + 2.0 / 3.0 * std::cos(2 * M_PI / 8), 1e-12);
  EXPECT_NEAR(result.runs[2].rho, 0.0, 1e-12);
}

TEST(ExperimentTest, CsvAndJsonHoldEveryRecordedPoint) {
  ExperimentSpec spec = small_spec();
  spec.sizes = {4};
  spec.topologies = {"ring"};
  const ExperimentResult result = run_local(spec);
  const fs::path dir = scratch_dir("files");
  write_csv((dir / "r.csv").string(), result);
  write_json((dir / "r.json").string(), spec, result);

  std::ifstream csv(dir / "r.csv");
  std::string header, line;
  std::getline(csv, header);
  EXPECT_EQ(header, "algorithm,topology,nodes,step_size,momentum,iteration,error,relative_error");
  int lines = 0;
  std::string last;
  while (std::getline(csv, line)) {
    ++lines;
    last = line;
  }
  EXPECT_EQ(lines, 2 * 61);  // iterations 0, 5, ..., 300 for two algorithms
  EXPECT_EQ(last.rfind("gradient-tracking,ring,4,0.1,0,300,", 0), 0u) << last;

  std::ifstream json_file(dir / "r.json");
  const auto j = nlohmann::json::parse(json_file);
  EXPECT_EQ(j["problem"]["kind"], "least-squares");
  ASSERT_EQ(j["runs"].size(), 2u);
  EXPECT_EQ(j["runs"][1]["algorithm"], "gradient-tracking");
  EXPECT_EQ(j["runs"][1]["error"].size(), 61u);
  EXPECT_EQ(j["runs"][1]["iterations_to_target"], *result.runs[1].iterations_to_target);
  EXPECT_TRUE(j["runs"][0]["iterations_to_target"].is_null());
  EXPECT_DOUBLE_EQ(j["problems"][0]["heterogeneity_b2"].get<double>(),
                   result.problems[0].heterogeneity_b2);
  fs::remove_all(dir);
}

TEST(ExperimentTest, DivergenceIsReported) {
  ExperimentSpec spec = small_spec();
  spec.algorithms = {Algorithm::kDsgd};
  spec.topologies = {"ring"};
  spec.sizes = {4};
  spec.step_sizes = {2.0};  // far above 2/L
  spec.solver.iterations = 100;
  const RunRecord r = run_local(spec).runs.at(0);
  EXPECT_TRUE(r.diverged);
  EXPECT_FALSE(r.iterations_to_plateau.has_value());
  EXPECT_NE(summary_table(run_local(spec), 1e-6).find("diverged"), std::string::npos);
}

TEST(ExperimentTest, MomentumGridOnlyForMethodsWithMomentum) {
  ExperimentSpec spec = small_spec();
  spec.algorithms = {Algorithm::kDsgd, Algorithm::kDmsgd};
  spec.topologies = {"ring"};
  spec.sizes = {4};
  spec.step_sizes = {0.05, 0.1};
  spec.momenta = {0.0, 0.5};
  spec.solver.iterations = 50;
  const ExperimentResult result = run_local(spec);
  ASSERT_EQ(result.runs.size(), 2u + 4u);
  EXPECT_EQ(result.runs[0].momentum, 0.0);
  EXPECT_EQ(result.runs[1].step_size, 0.1);
  // DmSGD with beta = 0 is D-SGD.
  EXPECT_EQ(result.runs[2].algorithm, "dmsgd");
  EXPECT_EQ(result.runs[2].momentum, 0.0);
  EXPECT_EQ(result.runs[2].error, result.runs[0].error);
  EXPECT_EQ(result.runs[3].momentum, 0.5);
  EXPECT_NE(result.runs[3].error, result.runs[0].error);
}

// ---- the command line ----

int run_command(const std::string& args, std::string* output = nullptr) {
  // ctest runs the CLI tests in parallel processes: one log file per process and call.
  static int calls = 0;
  const fs::path log =
      fs::temp_directory_path() /
      ("decent_convex_cli_" + std::to_string(::getpid()) + "_" + std::to_string(calls++) + ".log");
  const std::string command =
      std::string(DECENT_BENCH_CONVEX_EXE) + " " + args + " > " + log.string() + " 2>&1";
  const int status = std::system(command.c_str());
  if (output) {
    std::ifstream in(log);
    std::stringstream ss;
    ss << in.rdbuf();
    *output = ss.str();
  }
  fs::remove(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(CliTest, WritesCsvJsonAndSummary) {
  const fs::path dir = scratch_dir("cli");
  std::string out;
  ASSERT_EQ(run_command("-a dsgd,exact-diffusion -t ring --local 4 --iterations 200 --no-plot "
                        "--out " +
                            (dir / "ls").string(),
                        &out),
            0)
      << out;
  EXPECT_TRUE(fs::exists(dir / "ls.csv"));
  EXPECT_TRUE(fs::exists(dir / "ls.json"));
  EXPECT_FALSE(fs::exists(dir / "ls.png"));
  EXPECT_NE(out.find("| exact-diffusion | ring | 4 |"), std::string::npos) << out;
  EXPECT_NE(out.find("b^2"), std::string::npos) << out;
  fs::remove_all(dir);
}

TEST(CliTest, UsageErrorsExitWithTwo) {
  std::string out;
  EXPECT_EQ(run_command("-a admm --no-plot", &out), 2);
  EXPECT_NE(out.find("unknown algorithm 'admm'"), std::string::npos) << out;
  EXPECT_EQ(run_command("-t no-such-graph --no-plot", &out), 2);
  EXPECT_EQ(run_command("-t hypercube --local 6 --no-plot", &out), 2);  // not a power of 2
  EXPECT_EQ(run_command("--problem quadratic --no-plot", &out), 2);
  EXPECT_EQ(run_command("--list", &out), 0);
  EXPECT_NE(out.find("gradient-tracking"), std::string::npos);
}

}  // namespace
}  // namespace decent::convex
