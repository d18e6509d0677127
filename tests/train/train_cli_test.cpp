// decent-train as a user runs it: exit codes and messages of bad command lines, short training
// runs on the synthetic dataset whose loss falls and accuracy rises above chance, the metrics
// file, and resume from a checkpoint reproducing the uninterrupted run.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct Result {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

Result run_train(const std::vector<std::string>& args) {
  std::string command = quote(DECENT_TRAIN_EXE);
  for (const auto& a : args) command += " " + quote(a);
  command += " 2>&1";
  Result result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> chunk{};
  std::size_t got = 0;
  while ((got = std::fread(chunk.data(), 1, chunk.size(), pipe)) > 0) {
    result.output.append(chunk.data(), got);
  }
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::string scratch_dir(const std::string& name) {
  const fs::path dir = fs::path(DECENT_TRAIN_TEST_DIR) / "cli" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// A short synthetic run: 3 ranks, 3000 samples, batch 32 per rank -> 32 steps per epoch.
std::vector<std::string> synthetic_run(const std::string& algorithm, const std::string& topology) {
  return {"--local",
          "3",
          "--dataset",
          "synthetic",
          "--synthetic-samples",
          "3000",
          "--model",
          "mlp",
          "--batch-size",
          "32",
          "--lr",
          "0.05",
          "--seed",
          "7",
          "--algorithm",
          algorithm,
          "--topology",
          topology};
}

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// ---------------------------------------------------------------- usage errors

void expect_usage_error(const std::vector<std::string>& args,
                        const std::vector<std::string>& message_parts) {
  const Result r = run_train(args);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  for (const auto& part : message_parts) {
    EXPECT_NE(r.output.find(part), std::string::npos) << "expected '" << part << "' in:\n"
                                                      << r.output;
  }
}

const std::vector<std::string> kBase = {"--local", "2", "--dataset", "synthetic"};

TEST(TrainCliTest, UnknownNamesListTheValidOnes) {
  expect_usage_error(kBase + std::vector<std::string>{"--algorithm", "sgdx", "--topology", "ring"},
                     {"unknown --algorithm 'sgdx'", "pmsgd", "dmsgd", "decentlam", "qg-dmsgd"});
  expect_usage_error(kBase + std::vector<std::string>{"--algorithm", "dmsgd", "--topology", "blob"},
                     {"blob", "ring", "one-peer-exponential"});
  expect_usage_error(kBase + std::vector<std::string>{"--algorithm", "dmsgd", "--topology", "ring",
                                                      "--model", "vgg"},
                     {"unknown --model 'vgg'", "mlp", "cnn", "logreg"});
  expect_usage_error(
      {"--local", "2", "--dataset", "imagenet", "--algorithm", "dmsgd", "--topology", "ring"},
      {"unknown --dataset 'imagenet'", "fashion-mnist", "synthetic"});
}

TEST(TrainCliTest, OutOfRangeValuesAreUsageErrors) {
  const std::vector<std::string> run = {"--algorithm", "dmsgd", "--topology", "ring"};
  expect_usage_error(kBase + run + std::vector<std::string>{"--batch-size", "0"},
                     {"--batch-size must be >= 1, got 0"});
  expect_usage_error(kBase + run + std::vector<std::string>{"--epochs", "-1"},
                     {"--epochs must be >= 0, got -1"});
  expect_usage_error(
      {"--local", "0", "--dataset", "synthetic", "--algorithm", "dmsgd", "--topology", "ring"},
      {"--local must be >= 1, got 0"});
  expect_usage_error(kBase + run + std::vector<std::string>{"--slow-rank", "5", "--slowdown", "2"},
                     {"--slow-rank 5"});
  expect_usage_error(kBase + std::vector<std::string>{"--topology", "ring"},
                     {"missing --algorithm"});
  expect_usage_error(kBase + run + std::vector<std::string>{"--bogus"}, {"--bogus"});
}

TEST(TrainCliTest, MissingDataDirNamesThePackage) {
  expect_usage_error({"--local", "2", "--algorithm", "dmsgd", "--topology", "ring", "--data-dir",
                      "/nonexistent/fashion"},
                     {"/nonexistent/fashion", "dataset-fashion-mnist"});
  // A directory without the files: the missing file is named.
  const std::string empty = scratch_dir("empty-data");
  expect_usage_error(
      {"--local", "2", "--algorithm", "dmsgd", "--topology", "ring", "--data-dir", empty},
      {"train-images-idx3-ubyte", "dataset-fashion-mnist"});
}

TEST(TrainCliTest, ResumeNeedsACheckpoint) {
  const std::vector<std::string> run = {"--algorithm", "dmsgd", "--topology", "ring"};
  expect_usage_error(kBase + run + std::vector<std::string>{"--resume"},
                     {"--resume needs --checkpoint"});
  const std::string empty = scratch_dir("empty-checkpoint");
  expect_usage_error(kBase + run + std::vector<std::string>{"--resume", "--checkpoint", empty},
                     {"--resume", "no checkpoint"});
}

TEST(TrainCliTest, ListsAlgorithmsAndTopologies) {
  Result r = run_train({"--list-algorithms"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* name : {"pmsgd", "dsgd", "dmsgd", "decentlam", "qg-dmsgd"}) {
    EXPECT_NE(r.output.find(name), std::string::npos) << name;
  }
  r = run_train({"--list-topologies"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("one-peer-exponential"), std::string::npos);
}

// ---------------------------------------------------------------- training runs

const char* const kEpochFields[] = {"epoch",
                                    "test_accuracy_rank0",
                                    "train_loss",
                                    "test_accuracy_avg",
                                    "test_accuracy_local",
                                    "consensus_distance",
                                    "samples_per_sec",
                                    "bytes_sent_per_rank",
                                    "wall_time_s"};

// Trains 2 epochs and checks what the maths promises: the loss falls, the averaged model beats
// chance (10 classes) by far, communication was counted.
void check_learns(const std::string& algorithm, const std::string& topology) {
  const std::string dir = scratch_dir(algorithm + "-" + topology);
  const std::string metrics = dir + "/metrics.json";
  const Result r = run_train(synthetic_run(algorithm, topology) +
                             std::vector<std::string>{"--epochs", "2", "--metrics", metrics});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("epoch 1/2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("epoch 2/2"), std::string::npos) << r.output;

  const nlohmann::json doc = read_json(metrics);
  EXPECT_EQ(doc["algorithm"], algorithm);
  EXPECT_EQ(doc["topology"], topology);
  EXPECT_EQ(doc["world_size"], 3);
  ASSERT_TRUE(doc["config"].is_object());
  EXPECT_EQ(doc["config"]["model"], "mlp");
  EXPECT_EQ(doc["config"]["batch_size"], 32);
  EXPECT_EQ(doc["config"]["total_batch_size"], 96);
  ASSERT_EQ(doc["epochs"].size(), 2u);
  for (const auto& e : doc["epochs"]) {
    for (const char* field : kEpochFields) {
      ASSERT_TRUE(e.contains(field)) << field;
      EXPECT_TRUE(e[field].is_number()) << field << " = " << e[field];
    }
  }
  const auto& first = doc["epochs"][0];
  const auto& last = doc["epochs"][1];
  EXPECT_EQ(first["epoch"], 1);
  EXPECT_EQ(last["epoch"], 2);
  EXPECT_LT(last["train_loss"].get<double>(), first["train_loss"].get<double>());
  EXPECT_LT(first["train_loss"].get<double>(), 2.302585);  // below the loss of a uniform guess
  EXPECT_GT(last["test_accuracy_avg"].get<double>(), 0.5);
  EXPECT_GT(last["test_accuracy_local"].get<double>(), 0.5);
  EXPECT_GE(last["consensus_distance"].get<double>(), 0.0);
  EXPECT_GT(last["samples_per_sec"].get<double>(), 0.0);
  EXPECT_GT(last["bytes_sent_per_rank"].get<double>(), first["bytes_sent_per_rank"].get<double>());
  EXPECT_GT(last["wall_time_s"].get<double>(), first["wall_time_s"].get<double>());
}

TEST(TrainRunTest, DmsgdOnRingLearns) {
  check_learns("dmsgd", "ring");
}
TEST(TrainRunTest, DecentLamOnOnePeerExponentialLearns) {
  check_learns("decentlam", "one-peer-exponential");
}
TEST(TrainRunTest, PmsgdLearnsAndKeepsRanksIdentical) {
  check_learns("pmsgd", "ring");
  // Exact gradient averaging from a common start: the models never differ, so the averaged
  // and the local model score the same and the consensus distance is zero.
  const nlohmann::json doc =
      read_json(fs::path(DECENT_TRAIN_TEST_DIR) / "cli" / "pmsgd-ring" / "metrics.json");
  for (const auto& e : doc["epochs"]) {
    EXPECT_EQ(e["consensus_distance"].get<double>(), 0.0);
    EXPECT_EQ(e["test_accuracy_avg"], e["test_accuracy_local"]);
    EXPECT_EQ(e["test_accuracy_avg"], e["test_accuracy_rank0"]);
  }
}
TEST(TrainRunTest, QgDmsgdOnRingLearns) {
  check_learns("qg-dmsgd", "ring");
}

// A learning rate far too large: the run stops after the first non-finite epoch with exit
// code 1, and the metrics file records that epoch (NaN is written as null).
// The asynchronous methods' window traffic is in the metrics: an AD-PSGD step on a ring always
// has a peer and sends it one model (4 bytes per float32 parameter), so the bytes per rank are
// the mean number of steps times the model size (steps are rounded to an integer: half a model
// either way), plus decent-train's own small collectives (the shared step count's allreduces,
// at most one per step, and a barrier: under 1000 bytes each).
TEST(TrainRunTest, AdPsgdReportsItsWindowTraffic) {
  const std::string dir = scratch_dir("ad-psgd-ring");
  const std::string metrics = dir + "/metrics.json";
  const Result r = run_train(synthetic_run("ad-psgd", "ring") +
                             std::vector<std::string>{"--epochs", "1", "--max-steps-per-epoch",
                                                      "10", "--metrics", metrics});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json doc = read_json(metrics);
  const double model_bytes = 4.0 * doc["config"]["parameters"].get<double>();
  ASSERT_GT(model_bytes, 0.0);
  ASSERT_EQ(doc["epochs"].size(), 1u);
  const auto& e = doc["epochs"][0];
  const double steps = e["steps"].get<double>();
  const double bytes = e["bytes_sent_per_rank"].get<double>();
  EXPECT_GE(steps, 10.0);  // 10 steps x 3 ranks shared by the ranks, 10 per rank on average
  EXPECT_GE(bytes, (steps - 0.5) * model_bytes);
  EXPECT_LE(bytes, (steps + 0.5) * model_bytes + 1000.0 * (steps + 2.0));
}

TEST(TrainRunTest, DivergenceStopsTheRun) {
  const std::string dir = scratch_dir("diverge");
  const Result r =
      run_train(synthetic_run("dmsgd", "ring") +
                std::vector<std::string>{"--lr", "10000", "--epochs", "3", "--max-steps-per-epoch",
                                         "10", "--metrics", dir + "/metrics.json"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("training diverged"), std::string::npos) << r.output;
  const nlohmann::json doc = read_json(dir + "/metrics.json");
  ASSERT_EQ(doc["epochs"].size(), 1u);
  EXPECT_TRUE(doc["epochs"][0]["train_loss"].is_null());
}

// --slow-rank R --slowdown F: rank R sleeps (F-1)x its compute time each step, and a
// synchronous algorithm (allreduce every step) waits for it. The MLP's compute is only part of
// a step (data, communication, three ranks on two cores), so F must be large for the drop to
// stand clear of a loaded machine's noise: at F = 25 the throughput falls to about 0.1x here,
// at F = 8 only to 0.25-0.65x, which a busy CI machine once pushed past the 0.6 bound.
TEST(TrainRunTest, StragglerSlowsASynchronousRun) {
  const std::string dir = scratch_dir("straggler");
  const std::vector<std::string> run =
      synthetic_run("pmsgd", "ring") +
      std::vector<std::string>{"--epochs",       "1", "--max-steps-per-epoch", "15",
                               "--eval-samples", "30"};
  Result r = run_train(run + std::vector<std::string>{"--metrics", dir + "/normal.json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_train(run + std::vector<std::string>{"--slow-rank", "1", "--slowdown", "25", "--metrics",
                                               dir + "/slow.json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const double normal = read_json(dir + "/normal.json")["epochs"][0]["samples_per_sec"];
  const double slow = read_json(dir + "/slow.json")["epochs"][0]["samples_per_sec"];
  EXPECT_LT(slow, 0.6 * normal) << "normal " << normal << " samples/s, straggler " << slow;
  EXPECT_EQ(read_json(dir + "/slow.json")["config"]["slow_rank"], 1);
}

// ---------------------------------------------------------------- resume

// Runs `epochs` epochs straight, then the same split at `split` (by --epochs split or by
// --stop-after-epoch split) and resumed; the metrics of every epoch after the split must be
// identical except wall time and throughput.
void check_resume_reproduces(const std::string& name, const std::vector<std::string>& run,
                             int epochs, int split, bool stop_after) {
  const std::string dir = scratch_dir(name);
  const std::string straight = dir + "/straight.json";
  const std::string resumed = dir + "/resumed.json";
  const std::string checkpoint = dir + "/checkpoint";
  Result r = run_train(
      run + std::vector<std::string>{"--epochs", std::to_string(epochs), "--metrics", straight});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<std::string> first =
      run + std::vector<std::string>{"--metrics", resumed, "--checkpoint", checkpoint};
  if (stop_after) {
    first = first + std::vector<std::string>{"--epochs", std::to_string(epochs),
                                             "--stop-after-epoch", std::to_string(split)};
  } else {
    first = first + std::vector<std::string>{"--epochs", std::to_string(split)};
  }
  r = run_train(first);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(fs::exists(checkpoint + "/manifest.json"));
  EXPECT_EQ(read_json(checkpoint + "/manifest.json")["epoch"], split);
  EXPECT_EQ(read_json(resumed)["epochs"].size(), static_cast<std::size_t>(split));
  r = run_train(run + std::vector<std::string>{"--epochs", std::to_string(epochs), "--metrics",
                                               resumed, "--checkpoint", checkpoint, "--resume"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed"), std::string::npos) << r.output;

  const nlohmann::json a = read_json(straight);
  const nlohmann::json b = read_json(resumed);
  ASSERT_EQ(a["epochs"].size(), static_cast<std::size_t>(epochs));
  ASSERT_EQ(b["epochs"].size(), static_cast<std::size_t>(epochs));
  for (int e = 0; e < epochs; ++e) {
    for (const char* field :
         {"epoch", "train_loss", "test_accuracy_avg", "test_accuracy_local", "test_accuracy_rank0",
          "consensus_distance", "bytes_sent_per_rank", "lr", "steps"}) {
      // Bitwise: the JSON text holds doubles exactly.
      EXPECT_EQ(a["epochs"][e][field], b["epochs"][e][field])
          << "epoch " << e + 1 << " field " << field;
    }
  }
  // Only the two newest epochs stay on disk.
  EXPECT_TRUE(fs::exists(checkpoint + "/rank-00000/epoch-" +
                         std::string(6 - std::to_string(epochs).size(), '0') +
                         std::to_string(epochs) + ".pt"));
  int files = 0;
  for (const auto& entry : fs::directory_iterator(checkpoint + "/rank-00002")) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 2);
}

TEST(TrainResumeTest, DmsgdRingThreeEpochsEqualsTwoPlusResume) {
  check_resume_reproduces("resume-dmsgd", synthetic_run("dmsgd", "ring"), 3, 2, false);
}

// A dynamic topology, adapt-with-combine with the neighbour average prefetched across the
// checkpoint, a cosine schedule with warm-up and a Dirichlet partition.
TEST(TrainResumeTest, OverlappedDynamicCosineRunResumesExactly) {
  check_resume_reproduces(
      "resume-awc",
      synthetic_run("awc-dmsgd", "one-peer-exponential") +
          std::vector<std::string>{"--lr-schedule", "cosine", "--warmup-epochs", "1", "--partition",
                                   "dirichlet", "--alpha", "0.3"},
      3, 1, true);
}

// A rank that died before writing its last file: every rank falls back to the newest epoch
// all of them have, and the run still reproduces the uninterrupted one.
TEST(TrainResumeTest, FallsBackToTheNewestEpochEveryRankHas) {
  const std::string dir = scratch_dir("resume-fallback");
  const std::string checkpoint = dir + "/checkpoint";
  const std::vector<std::string> run =
      synthetic_run("dmsgd", "ring") +
      std::vector<std::string>{"--epochs", "3", "--max-steps-per-epoch", "8"};
  Result r = run_train(run + std::vector<std::string>{"--metrics", dir + "/straight.json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_train(run + std::vector<std::string>{"--stop-after-epoch", "2", "--checkpoint",
                                               checkpoint, "--metrics", dir + "/resumed.json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(fs::remove(checkpoint + "/rank-00001/epoch-000002.pt"));
  r = run_train(run + std::vector<std::string>{"--checkpoint", checkpoint, "--resume", "--metrics",
                                               dir + "/resumed.json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from " + checkpoint + " at epoch 1"), std::string::npos)
      << r.output;
  const nlohmann::json a = read_json(dir + "/straight.json");
  const nlohmann::json b = read_json(dir + "/resumed.json");
  ASSERT_EQ(b["epochs"].size(), 3u);
  for (int e = 0; e < 3; ++e) {
    EXPECT_EQ(a["epochs"][e]["train_loss"], b["epochs"][e]["train_loss"]) << "epoch " << e + 1;
    EXPECT_EQ(a["epochs"][e]["test_accuracy_avg"], b["epochs"][e]["test_accuracy_avg"]);
    EXPECT_EQ(a["epochs"][e]["consensus_distance"], b["epochs"][e]["consensus_distance"]);
  }
}

TEST(TrainResumeTest, ResumeWithOtherOptionsIsRefused) {
  const std::string dir = scratch_dir("resume-mismatch");
  const std::string checkpoint = dir + "/checkpoint";
  Result r = run_train(synthetic_run("dsgd", "ring") +
                       std::vector<std::string>{"--epochs", "1", "--checkpoint", checkpoint,
                                                "--max-steps-per-epoch", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_train(synthetic_run("dsgd", "ring") +
                std::vector<std::string>{"--epochs", "2", "--checkpoint", checkpoint,
                                         "--max-steps-per-epoch", "4", "--lr", "0.2", "--resume"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--lr: checkpoint 0.05, now 0.2"), std::string::npos) << r.output;
}

// ---------------------------------------------------------------- MPI

// Checks the metrics written by the ctest entry train.mpi_synthetic (2 MPI processes).
TEST(TrainMpiTest, TwoProcessRunWroteItsMetrics) {
  const std::string path = std::string(DECENT_TRAIN_TEST_DIR) + "/mpi/metrics.json";
  ASSERT_TRUE(fs::exists(path)) << path << " is missing: did train.mpi_synthetic run?";
  const nlohmann::json doc = read_json(path);
  EXPECT_EQ(doc["world_size"], 2);
  EXPECT_EQ(doc["config"]["backend"], "mpi");
  ASSERT_EQ(doc["epochs"].size(), 2u);
  EXPECT_LT(doc["epochs"][1]["train_loss"].get<double>(),
            doc["epochs"][0]["train_loss"].get<double>());
  EXPECT_GT(doc["epochs"][1]["test_accuracy_avg"].get<double>(), 0.5);
  EXPECT_GT(doc["epochs"][1]["bytes_sent_per_rank"].get<double>(), 0.0);
}

}  // namespace
