// Parts of decent-train tested directly: option parsing and validation, the learning-rate
// schedule, the batch stream, metrics JSON and checkpoint files.
#include "train_checkpoint.h"
#include "train_data.h"
#include "train_loop.h"
#include "train_metrics.h"
#include "train_options.h"

#include "decent/torch/models.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace decent::train {
namespace {

namespace fs = std::filesystem;

std::string scratch_dir(const std::string& name) {
  const fs::path dir = fs::path(DECENT_TRAIN_TEST_DIR) / "unit" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::optional<int> parse(std::vector<std::string> args, TrainOptions& options) {
  args.insert(args.begin(), "decent-train");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  return parse_command_line(static_cast<int>(argv.size()), argv.data(), options, false);
}

std::string usage_message(const TrainOptions& options) {
  try {
    validate_options(options);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

TrainOptions valid_options() {
  TrainOptions o;
  o.algorithm = "dmsgd";
  o.topology = "ring";
  return o;
}

TEST(TrainOptionsTest, ParsesEveryOption) {
  TrainOptions o;
  const auto exit_code = parse({"--algorithm",
                                "decentlam",
                                "--topology",
                                "ring",
                                "--local",
                                "4",
                                "--dataset",
                                "synthetic",
                                "--partition",
                                "dirichlet",
                                "--alpha",
                                "0.1",
                                "--model",
                                "cnn",
                                "--batch-size",
                                "64",
                                "--lr",
                                "0.2",
                                "--momentum",
                                "0.8",
                                "--weight-decay",
                                "1e-4",
                                "--lr-schedule",
                                "cosine",
                                "--warmup-epochs",
                                "1.5",
                                "--epochs",
                                "7",
                                "--period",
                                "4",
                                "--gossip-rounds",
                                "3",
                                "--seed",
                                "9",
                                "--metrics",
                                "m.json",
                                "--checkpoint",
                                "ck",
                                "--resume",
                                "--max-steps-per-epoch",
                                "5",
                                "--eval-every",
                                "2",
                                "--quiet",
                                "--slow-rank",
                                "1",
                                "--slowdown",
                                "4",
                                "--no-overlap"},
                               o);
  EXPECT_FALSE(exit_code.has_value());
  EXPECT_EQ(o.algorithm, "decentlam");
  EXPECT_EQ(o.local_ranks, 4);
  EXPECT_EQ(o.dataset, "synthetic");
  EXPECT_EQ(o.partition, "dirichlet");
  EXPECT_DOUBLE_EQ(o.alpha, 0.1);
  EXPECT_EQ(o.model, "cnn");
  EXPECT_EQ(o.batch_size, 64);
  EXPECT_DOUBLE_EQ(o.lr, 0.2);
  EXPECT_DOUBLE_EQ(o.momentum, 0.8);
  EXPECT_DOUBLE_EQ(o.weight_decay, 1e-4);
  EXPECT_EQ(o.lr_schedule, LrSchedule::kCosine);
  EXPECT_DOUBLE_EQ(o.warmup_epochs, 1.5);
  EXPECT_EQ(o.epochs, 7);
  EXPECT_EQ(o.period, 4);
  EXPECT_EQ(o.gossip_rounds, 3);
  EXPECT_EQ(o.seed, 9u);
  EXPECT_EQ(o.metrics_file, "m.json");
  EXPECT_EQ(o.checkpoint_dir, "ck");
  EXPECT_TRUE(o.resume);
  EXPECT_EQ(o.max_steps_per_epoch, 5);
  EXPECT_EQ(o.eval_every, 2);
  EXPECT_TRUE(o.quiet);
  EXPECT_EQ(o.slow_rank, 1);
  EXPECT_DOUBLE_EQ(o.slowdown, 4.0);
  EXPECT_FALSE(o.overlap);
  EXPECT_EQ(usage_message(o), "");
}

TEST(TrainOptionsTest, ParseErrorsExitWithTwo) {
  TrainOptions o;
  EXPECT_EQ(parse({"--local", "0"}, o), std::optional<int>(2));
  EXPECT_EQ(parse({"--local", "-3"}, o), std::optional<int>(2));
  EXPECT_EQ(parse({"--batch-size", "many"}, o), std::optional<int>(2));
  EXPECT_EQ(parse({"--no-such-option"}, o), std::optional<int>(2));
  EXPECT_EQ(parse({"--lr-schedule", "linear"}, o), std::optional<int>(2));
  EXPECT_EQ(parse({"--help"}, o), std::optional<int>(0));
}

TEST(TrainOptionsTest, ValidationNamesTheOption) {
  TrainOptions o = valid_options();
  EXPECT_EQ(usage_message(o), "");
  o.batch_size = 0;
  EXPECT_NE(usage_message(o).find("--batch-size must be >= 1, got 0"), std::string::npos);
  o = valid_options();
  o.epochs = -1;
  EXPECT_NE(usage_message(o).find("--epochs must be >= 0"), std::string::npos);
  o = valid_options();
  o.algorithm.clear();
  EXPECT_NE(usage_message(o).find("missing --algorithm"), std::string::npos);
  o = valid_options();
  o.dataset = "cifar10";
  EXPECT_NE(usage_message(o).find("valid: fashion-mnist, synthetic"), std::string::npos);
  o = valid_options();
  o.partition = "random";
  EXPECT_NE(usage_message(o).find("unknown --partition 'random'"), std::string::npos);
  o = valid_options();
  o.resume = true;
  EXPECT_NE(usage_message(o).find("--resume needs --checkpoint"), std::string::npos);
  o = valid_options();
  o.slowdown = 0.5;
  EXPECT_NE(usage_message(o).find("--slowdown must be >= 1"), std::string::npos);
  o = valid_options();
  o.lr = 0;
  EXPECT_NE(usage_message(o).find("--lr must be > 0"), std::string::npos);
}

TEST(TrainSetupTest, UnknownNamesListTheValidOnes) {
  TrainOptions o = valid_options();
  EXPECT_NO_THROW(validate_setup(o, 4));
  o.algorithm = "adamax";
  try {
    validate_setup(o, 4);
    FAIL() << "unknown algorithm accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown --algorithm 'adamax'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("dmsgd"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("decentlam"), std::string::npos);
  }
  o = valid_options();
  o.topology = "moebius";
  try {
    validate_setup(o, 4);
    FAIL() << "unknown topology accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("moebius"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("one-peer-exponential"), std::string::npos);
  }
  o = valid_options();
  o.model = "resnet50";
  try {
    validate_setup(o, 4);
    FAIL() << "unknown model accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("valid: "), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("cnn"), std::string::npos);
  }
  o = valid_options();
  o.slow_rank = 4;
  o.slowdown = 2;
  EXPECT_THROW(validate_setup(o, 4), UsageError);
  EXPECT_NO_THROW(validate_setup(o, 5));
}

TEST(LearningRateTest, ConstantWithWarmup) {
  EXPECT_DOUBLE_EQ(learning_rate_at(LrSchedule::kConstant, 0.4, 0, 100, 0), 0.4);
  EXPECT_DOUBLE_EQ(learning_rate_at(LrSchedule::kConstant, 0.4, 99, 100, 0), 0.4);
  // Linear warm-up over 4 steps: 0.1, 0.2, 0.3, 0.4, then 0.4.
  EXPECT_DOUBLE_EQ(learning_rate_at(LrSchedule::kConstant, 0.4, 0, 100, 4), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate_at(LrSchedule::kConstant, 0.4, 2, 100, 4), 0.30000000000000004);
  EXPECT_DOUBLE_EQ(learning_rate_at(LrSchedule::kConstant, 0.4, 3, 100, 4), 0.4);
  EXPECT_DOUBLE_EQ(learning_rate_at(LrSchedule::kConstant, 0.4, 4, 100, 4), 0.4);
}

TEST(LearningRateTest, CosineFallsFromGammaToZero) {
  // 10 warm-up steps, then 90 steps of cosine decay.
  EXPECT_DOUBLE_EQ(learning_rate_at(LrSchedule::kCosine, 1.0, 10, 100, 10), 1.0);
  EXPECT_NEAR(learning_rate_at(LrSchedule::kCosine, 1.0, 55, 100, 10), 0.5, 1e-12);
  EXPECT_NEAR(learning_rate_at(LrSchedule::kCosine, 1.0, 99, 100, 10),
              0.5 * (1 + std::cos(M_PI * 89.0 / 90.0)), 1e-12);
  double previous = 2.0;
  for (int step = 10; step < 100; ++step) {
    const double lr = learning_rate_at(LrSchedule::kCosine, 1.0, step, 100, 10);
    EXPECT_LT(lr, previous);
    previous = lr;
  }
}

TEST(LearningRateTest, StepDecaysAtHalfAndThreeQuarters) {
  EXPECT_DOUBLE_EQ(learning_rate_at(LrSchedule::kStep, 1.0, 49, 100, 0), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate_at(LrSchedule::kStep, 1.0, 50, 100, 0), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate_at(LrSchedule::kStep, 1.0, 74, 100, 0), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate_at(LrSchedule::kStep, 1.0, 75, 100, 0), 0.01);
}

TEST(TrainOptionsTest, FingerprintMismatchNamesTheOptions) {
  TrainOptions a = valid_options();
  TrainOptions b = a;
  EXPECT_EQ(describe_mismatch(resume_fingerprint(a, 4), resume_fingerprint(b, 4)), "");
  b.epochs = 10;  // more epochs may be asked for on resume
  b.metrics_file = "other.json";
  EXPECT_EQ(describe_mismatch(resume_fingerprint(a, 4), resume_fingerprint(b, 4)), "");
  b.lr = 0.5;
  const std::string message = describe_mismatch(resume_fingerprint(a, 4), resume_fingerprint(b, 3));
  EXPECT_NE(message.find("--lr: checkpoint 0.05, now 0.5"), std::string::npos) << message;
  EXPECT_NE(message.find("world size: checkpoint 4, now 3"), std::string::npos) << message;
}

std::shared_ptr<const data::Dataset> small_dataset(std::int64_t n) {
  return std::make_shared<data::Dataset>(
      data::make_synthetic_dataset(n, 10, data::ImageShape{1, 28, 28}, 3));
}

TEST(BatchStreamTest, EveryPassVisitsEachIndexOnce) {
  auto dataset = small_dataset(50);
  std::vector<std::int64_t> indices = {1, 4, 9, 16, 25, 36, 49};
  BatchStream stream(dataset, indices, 3, 11);
  for (int pass = 0; pass < 2; ++pass) {
    std::multiset<std::int64_t> labels_seen;
    std::vector<std::int64_t> sizes;
    for (int b = 0; b < 3; ++b) {
      const data::Batch batch = stream.next();
      sizes.push_back(batch.size());
      for (std::int64_t i = 0; i < batch.size(); ++i) {
        labels_seen.insert(batch.labels[i].item<std::int64_t>());
      }
    }
    EXPECT_EQ(sizes, (std::vector<std::int64_t>{3, 3, 1}));
    std::multiset<std::int64_t> expected;
    for (std::int64_t i : indices) expected.insert(dataset->labels[static_cast<std::size_t>(i)]);
    EXPECT_EQ(labels_seen, expected);
    EXPECT_EQ(stream.pass(), pass + 1);
    EXPECT_EQ(stream.cursor(), 0);
  }
}

TEST(BatchStreamTest, RestoredStreamContinuesIdentically) {
  auto dataset = small_dataset(200);
  std::vector<std::int64_t> indices;
  for (std::int64_t i = 0; i < 200; i += 2) indices.push_back(i);
  BatchStream original(dataset, indices, 16, 5);
  for (int b = 0; b < 9; ++b) original.next();  // into the second pass
  BatchStream restored(dataset, indices, 16, 5);
  restored.restore(original.pass(), original.cursor());
  for (int b = 0; b < 10; ++b) {
    const data::Batch x = original.next();
    const data::Batch y = restored.next();
    ASSERT_TRUE(torch::equal(x.images, y.images)) << "batch " << b;
    ASSERT_TRUE(torch::equal(x.labels, y.labels)) << "batch " << b;
  }
  EXPECT_THROW(restored.restore(0, 100), std::invalid_argument);
}

TEST(MetricsTest, DocumentHasTheSchemaFieldsAndRoundTrips) {
  EpochMetrics m;
  m.epoch = 2;
  m.train_loss = 0.123456789012345678;
  m.test_accuracy_avg = 0.875;
  m.consensus_distance = 1e-7;
  m.samples_per_sec = 1234.5;
  m.bytes_sent_per_rank = 4096;
  m.wall_time_s = 3.25;
  m.lr = 0.05;
  m.steps = 40;
  RunDescription run{"dmsgd", "ring", 4, {{"model", "mlp"}}};
  const auto doc = metrics_document(run, {m});
  for (const char* key : {"algorithm", "topology", "world_size", "config", "epochs"}) {
    EXPECT_TRUE(doc.contains(key)) << key;
  }
  const auto& e = doc["epochs"][0];
  for (const char* key :
       {"epoch", "train_loss", "test_accuracy_avg", "test_accuracy_local", "consensus_distance",
        "samples_per_sec", "bytes_sent_per_rank", "wall_time_s"}) {
    EXPECT_TRUE(e.contains(key)) << key;
  }
  EXPECT_TRUE(e["test_accuracy_local"].is_null());
  // Doubles survive the text form bit for bit.
  const std::string path = scratch_dir("metrics") + "/m.json";
  write_file_atomically(path, doc.dump(2));
  std::ifstream in(path);
  const auto back = epoch_metrics_from_json(nlohmann::json::parse(in)["epochs"][0]);
  EXPECT_EQ(back.train_loss, m.train_loss);
  EXPECT_EQ(back.test_accuracy_avg, m.test_accuracy_avg);
  EXPECT_FALSE(back.test_accuracy_local.has_value());
  EXPECT_EQ(back.steps, 40);
  EXPECT_EQ(
      std::distance(fs::directory_iterator(fs::path(path).parent_path()), fs::directory_iterator{}),
      1)
      << "the temporary file was left behind";
  EXPECT_THROW(write_file_atomically("/proc/no/such/dir/m.json", "{}"), std::runtime_error);
}

TEST(CheckpointTest, SavesAndRestoresModelOptimizerAndPosition) {
  const std::string dir = scratch_dir("checkpoint");
  auto model = models::make_model("logreg", data::ImageShape{1, 28, 28}, 10, 1);
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  // One step so the momentum buffers exist.
  optimizer.zero_grad();
  torch::nn::functional::cross_entropy(model->forward(torch::ones({2, 1, 28, 28})),
                                       torch::tensor({1, 2}, torch::kLong))
      .backward();
  optimizer.step();

  RankCheckpoint c;
  c.rank = 1;
  c.world_size = 3;
  c.epoch = 4;
  c.global_step = 77;
  c.stream_pass = 2;
  c.stream_cursor = 5;
  c.bytes_sent = 123456789012LL;
  c.wall_time_s = 9.5;
  c.fingerprint_json = R"({"lr":0.1})";
  c.metrics_json = "[]";
  save_rank_checkpoint(dir, c, *model, optimizer);
  c.epoch = 5;
  save_rank_checkpoint(dir, c, *model, optimizer);
  EXPECT_EQ(checkpoint_epochs(dir, 1), (std::vector<std::int64_t>{4, 5}));
  EXPECT_EQ(newest_checkpoint_epoch(dir, 1), 5);
  EXPECT_EQ(newest_checkpoint_epoch(dir, 0), -1);

  auto other = models::make_model("logreg", data::ImageShape{1, 28, 28}, 10, 2);
  torch::optim::SGD other_optimizer(other->parameters(),
                                    torch::optim::SGDOptions(0.1).momentum(0.9));
  const RankCheckpoint back =
      load_rank_checkpoint(dir, 1, 4, R"({"lr":0.1})", *other, other_optimizer);
  EXPECT_EQ(back.global_step, 77);
  EXPECT_EQ(back.stream_pass, 2);
  EXPECT_EQ(back.stream_cursor, 5);
  EXPECT_EQ(back.bytes_sent, 123456789012LL);
  EXPECT_EQ(back.wall_time_s, 9.5);
  const auto a = model->parameters();
  const auto b = other->parameters();
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i]));
  const auto& state = other_optimizer.state();
  ASSERT_EQ(state.size(), a.size());
  for (const auto& p : other->parameters()) {
    const auto& s = static_cast<const torch::optim::SGDParamState&>(
        *state.at(c10::guts::to_string(p.unsafeGetTensorImpl())));
    EXPECT_TRUE(s.momentum_buffer().defined());
  }

  // Other options: refused before the model is touched, naming the difference.
  try {
    load_rank_checkpoint(dir, 1, 4, R"({"lr":0.2})", *other, other_optimizer);
    FAIL() << "a checkpoint with other options was loaded";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--lr: checkpoint 0.1, now 0.2"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(load_rank_checkpoint(dir, 1, 3, R"({"lr":0.1})", *other, other_optimizer),
               std::runtime_error);
  EXPECT_THROW(load_rank_checkpoint(dir, 0, 4, R"({"lr":0.1})", *other, other_optimizer),
               std::runtime_error);

  remove_rank_checkpoints_before(dir, 1, 5);
  EXPECT_EQ(checkpoint_epochs(dir, 1), (std::vector<std::int64_t>{5}));
  write_manifest(dir, 5, 3, c.fingerprint_json);
  std::ifstream in(manifest_path(dir));
  const auto manifest = nlohmann::json::parse(in);
  EXPECT_EQ(manifest["epoch"], 5);
  EXPECT_EQ(manifest["files"].size(), 3u);
  EXPECT_EQ(manifest["files"][1], "rank-00001/epoch-000005.pt");
}

}  // namespace
}  // namespace decent::train
