// Checkpoints of decent-train: one file per rank and epoch, written to a temporary name and
// renamed (a file that exists is complete), plus a manifest written by rank 0 once every rank
// has written the epoch.
//
//   DIR/manifest.json                 {"epoch": E, "world_size": n, "files": [...], ...}
//   DIR/rank-00000/epoch-000003.pt    rank 0 after epoch 3 (the two newest epochs are kept)
//
// A rank file holds the model (parameters and buffers), the optimizer (optimizer.save: state,
// options, iteration counter), the position of the rank's batch stream, the step counter, the
// rank's communication volume so far, the wall time so far, the metrics of every finished epoch
// and the options the run was started with (resume_fingerprint).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace torch::nn {
class Module;
}
namespace torch::optim {
class Optimizer;
}

namespace decent::train {

struct RankCheckpoint {
  int rank = 0;
  int world_size = 1;
  std::int64_t epoch = 0;        // finished epochs
  std::int64_t global_step = 0;  // optimizer steps taken
  std::int64_t stream_pass = 0;  // BatchStream position
  std::int64_t stream_cursor = 0;
  std::int64_t bytes_sent = 0;  // this rank's training traffic so far
  double wall_time_s = 0.0;
  std::string fingerprint_json;  // resume_fingerprint of the run
  std::string metrics_json;      // JSON array of the finished epochs' metrics
};

std::string rank_checkpoint_path(const std::string& dir, int rank, std::int64_t epoch);
std::string manifest_path(const std::string& dir);

// Epochs for which `rank` has a complete file, ascending.
std::vector<std::int64_t> checkpoint_epochs(const std::string& dir, int rank);
// The newest of them, or -1 when there is none.
std::int64_t newest_checkpoint_epoch(const std::string& dir, int rank);

// Writes the rank file for checkpoint.epoch atomically. Throws std::runtime_error naming the
// path on I/O failure.
void save_rank_checkpoint(const std::string& dir, const RankCheckpoint& checkpoint,
                          const torch::nn::Module& model, const torch::optim::Optimizer& optimizer);
// Reads the rank file of `epoch` into model and optimizer and returns the rest. Before touching
// the model it compares the file's options with `expected_fingerprint_json` and throws
// UsageError listing the differences. Throws std::runtime_error naming the file when it is
// missing, unreadable or belongs to another rank.
RankCheckpoint load_rank_checkpoint(const std::string& dir, int rank, std::int64_t epoch,
                                    const std::string& expected_fingerprint_json,
                                    torch::nn::Module& model, torch::optim::Optimizer& optimizer);

// Deletes the rank's files of epochs older than `keep_from`.
void remove_rank_checkpoints_before(const std::string& dir, int rank, std::int64_t keep_from);
// Deletes every rank file of `rank` and the manifest (a fresh run in a used directory).
void remove_rank_checkpoints(const std::string& dir, int rank);

// Written by rank 0 after all ranks have written `epoch` (atomically).
void write_manifest(const std::string& dir, std::int64_t epoch, int world_size,
                    const std::string& fingerprint_json);

}  // namespace decent::train
