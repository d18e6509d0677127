// Data side of decent-train: the training and test sets, the partition over ranks and the
// stream of mini-batches each rank draws from its own part.
#pragma once

#include "decent/data/dataset.h"
#include "decent/torch/data_loader.h"
#include "train_options.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace decent::train {

// Built once per process and shared read-only by the ranks of a --local run.
struct TrainingData {
  std::shared_ptr<const data::Dataset> train;
  std::shared_ptr<const data::Dataset> test;
  // parts[r]: the training indices of rank r (the same computation on every rank).
  std::vector<std::vector<std::int64_t>> parts;
  // Evaluation uses test samples [0, eval_count).
  std::int64_t eval_count = 0;
  // e.g. "dirichlet(alpha=0.1, seed=1)"
  std::string partition_description;
};

// Loads (or generates) the data and partitions it over `world_size` ranks. A missing
// Fashion-MNIST directory or file raises UsageError naming it and the Debian package
// dataset-fashion-mnist; malformed files raise decent::data::DataError.
TrainingData prepare_training_data(const TrainOptions& options, int world_size);

// One line summarizing the partition: samples per rank and class concentration.
std::string describe_partition(const TrainingData& data);

// Endless mini-batches from one rank's indices: pass p visits them in the seeded order
// BatchLoader::epoch_order(p), in batches of batch_size (the last batch of a pass may be
// smaller). The position (pass, cursor) is all the state there is, so a checkpoint restores it.
class BatchStream {
 public:
  BatchStream(std::shared_ptr<const data::Dataset> dataset, std::vector<std::int64_t> indices,
              std::int64_t batch_size, std::uint64_t seed);

  data::Batch next();

  std::int64_t pass() const { return pass_; }
  std::int64_t cursor() const { return cursor_; }
  void restore(std::int64_t pass, std::int64_t cursor);

 private:
  data::BatchLoader loader_;
  std::int64_t batch_size_;
  std::int64_t pass_ = 0;
  std::int64_t cursor_ = 0;
  std::int64_t order_pass_ = -1;  // pass whose order is cached in order_
  std::vector<std::int64_t> order_;
};

}  // namespace decent::train
