// The per-epoch metrics of decent-train: the JSON file read by scripts/plot_metrics.py (schema
// in docs/data.md and docs/training.md) and the line printed per epoch.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace decent::train {

struct EpochMetrics {
  int epoch = 0;  // 1-based; 0 is the initial model (only with --epochs 0)
  // Mean over ranks of each rank's mean mini-batch loss during the epoch.
  double train_loss = 0.0;
  // Test accuracy of the average model (1/n) sum_i x_i, the mean over ranks of each rank's
  // own model's accuracy, and rank 0's model's accuracy; absent in epochs skipped by
  // --eval-every.
  std::optional<double> test_accuracy_avg;
  std::optional<double> test_accuracy_local;
  std::optional<double> test_accuracy_rank0;
  // (1/n) sum_i ||x_i - xbar||^2 over all parameters at the end of the epoch.
  double consensus_distance = 0.0;
  // Training samples of all ranks divided by the epoch's training time (evaluation excluded).
  double samples_per_sec = 0.0;
  // Bytes sent by the optimizer since the start of training, mean over ranks (evaluation and
  // checkpoint traffic excluded).
  double bytes_sent_per_rank = 0.0;
  // Seconds since the start of training, across resumes.
  double wall_time_s = 0.0;
  // Learning rate of the epoch's last step and optimizer steps taken so far.
  double lr = 0.0;
  std::int64_t steps = 0;
};

nlohmann::ordered_json to_json(const EpochMetrics& m);
// Throws std::runtime_error when a field is missing or has the wrong type.
EpochMetrics epoch_metrics_from_json(const nlohmann::json& j);

struct RunDescription {
  std::string algorithm;
  std::string topology;
  int world_size = 1;
  nlohmann::ordered_json config;  // options_to_json plus facts of the run
};

// {"algorithm","topology","world_size","config","epochs":[...]}.
nlohmann::ordered_json metrics_document(const RunDescription& run,
                                        const std::vector<EpochMetrics>& epochs);

// Writes `text` to `path` through a temporary file in the same directory and a rename, so a
// reader never sees a half-written file. Throws std::runtime_error naming the path.
void write_file_atomically(const std::string& path, const std::string& text);

// "epoch  3/10  loss 0.4120  acc avg 85.31%  local 84.02%  r0 84.50%  consensus 1.2e-03
//  9812 samples/s  1.90 MiB/rank  41.2 s"
std::string format_epoch_line(const EpochMetrics& m, int total_epochs);

}  // namespace decent::train
