// Options of decent-train: the command line, its validation, the learning-rate schedule and the
// JSON forms written into the metrics file and checkpoints. No LibTorch here, so the parsing and
// the schedule are cheap to compile and to test.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace decent::train {

// A problem with the command line or with what it names (unknown algorithm, missing data
// directory, a checkpoint that does not match the options): decent-train exits with code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class LrSchedule {
  kConstant,  // gamma
  kCosine,    // 0.5 gamma (1 + cos(pi p)), p = progress after warm-up in [0, 1)
  kStep,      // gamma, 0.1 gamma from half of the steps on, 0.01 gamma from three quarters
};
LrSchedule parse_lr_schedule(const std::string& name);  // throws UsageError
const char* lr_schedule_name(LrSchedule schedule);

struct TrainOptions {
  // What is trained and how.
  std::string algorithm;            // decent::optim::list_algorithms() name
  std::string topology;             // decent::topology::list_topologies() name
  std::string weights = "uniform";  // weight rule of static topologies
  int local_ranks = 0;              // --local N; 0: one process per rank (MPI) or a single rank
  std::string dataset = "fashion-mnist";
  std::string data_dir;           // empty: decent::data::default_fashion_mnist_dir()
  std::string partition = "iid";  // iid, shards or dirichlet
  double alpha = 0.5;             // Dirichlet concentration
  int shards_per_rank = 2;
  std::int64_t synthetic_samples = 12000;  // training samples of --dataset synthetic
  std::string model = "mlp";
  std::int64_t batch_size = 32;  // per rank
  double lr = 0.05;
  double momentum = 0.9;
  double weight_decay = 0.0;
  LrSchedule lr_schedule = LrSchedule::kConstant;
  double warmup_epochs = 0.0;
  int epochs = 5;
  int period = 8;
  int gossip_rounds = 2;
  double qg_mu = 0.9;
  double slowmo_beta = 0.5;
  double slowmo_alpha = 1.0;
  std::string base_optimizer = "sgd";
  std::string combine = "atc";
  bool overlap = true;
  // Compressed optimizers: compressor spec and consensus step eta (choco-sgd, deepsqueeze).
  std::string compressor = "qsgd:s=16,bucket=512";
  double consensus_step = 1.0;
  std::uint64_t seed = 1;

  // Output, evaluation and checkpoints.
  std::string metrics_file;
  std::string checkpoint_dir;
  bool resume = false;
  std::int64_t max_steps_per_epoch = 0;  // 0: no cap
  int eval_every = 1;
  std::int64_t eval_samples = 0;  // 0: the whole test split
  int stop_after_epoch = 0;       // 0: run all epochs
  bool quiet = false;
  // Print the accepted names and exit.
  bool list_algorithms = false;
  bool list_topologies = false;

  // Straggler emulation.
  int slow_rank = -1;
  double slowdown = 1.0;
};

// Parses the command line. Returns an exit code when the program should stop right away
// (0 after --help, 2 after a parse error, with the message already printed to
// `err`); std::nullopt when training should go ahead. `print` is false on ranks other than 0 of
// an MPI launch, so that only one copy of messages appears.
std::optional<int> parse_command_line(int argc, const char* const* argv, TrainOptions& options,
                                      bool print);

// Checks everything that does not need LibTorch, the data or the world size: ranges, choices,
// option combinations. Throws UsageError naming the option.
void validate_options(const TrainOptions& options);

// Learning rate of global step `step` (0-based) of a run of `total_steps` steps with
// `warmup_steps` of linear warm-up from gamma / warmup_steps to gamma.
double learning_rate_at(LrSchedule schedule, double base_lr, std::int64_t step,
                        std::int64_t total_steps, std::int64_t warmup_steps);

// The "config" object of the metrics file: every option that shapes the run.
nlohmann::ordered_json options_to_json(const TrainOptions& options);

// The options a checkpoint must agree with to be resumed (epochs may grow; output paths and
// the straggler settings may change). Differences are listed by describe_mismatch.
nlohmann::ordered_json resume_fingerprint(const TrainOptions& options, int world_size);
// Empty when equal; otherwise "--lr: checkpoint 0.1, now 0.2; ..." for every differing key.
std::string describe_mismatch(const nlohmann::ordered_json& saved,
                              const nlohmann::ordered_json& current);

// "a, b, c" for error messages listing the valid names.
std::string join_names(const std::vector<std::string>& names);

}  // namespace decent::train
