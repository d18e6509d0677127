// Turns one rank's part of a Dataset into LibTorch mini-batches.
//
// Each epoch visits the rank's indices in a fresh order that depends only on (seed, epoch), so
// a run is reproducible and a resumed run can jump straight to epoch e.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "decent/data/dataset.h"

namespace decent::data {

struct Batch {
  at::Tensor images;  // [B, C, H, W] float32
  at::Tensor labels;  // [B] int64
  std::int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

struct LoaderOptions {
  std::int64_t batch_size = 32;
  // Skip the last, smaller batch of an epoch (keeps every step the same size).
  bool drop_last = false;
  // Visit indices in a per-epoch seeded random order; false keeps the given order.
  bool shuffle = true;
  // Base of the per-epoch orders. Mix in the rank when ranks should not share the sequence
  // of draws (their indices differ anyway).
  std::uint64_t seed = 0;

  LoaderOptions& set_batch_size(std::int64_t v) {
    batch_size = v;
    return *this;
  }
  LoaderOptions& set_drop_last(bool v) {
    drop_last = v;
    return *this;
  }
  LoaderOptions& set_shuffle(bool v) {
    shuffle = v;
    return *this;
  }
  LoaderOptions& set_seed(std::uint64_t v) {
    seed = v;
    return *this;
  }
};

class BatchLoader {
 public:
  // `indices` selects the samples of `dataset` this loader serves (e.g. local_indices(...)).
  // Throws std::invalid_argument for a null dataset, a batch size < 1 or an index out of range.
  BatchLoader(std::shared_ptr<const Dataset> dataset, std::vector<std::int64_t> indices,
              LoaderOptions options);
  // Serves every sample of the dataset.
  BatchLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options);

  std::int64_t num_samples() const { return static_cast<std::int64_t>(indices_.size()); }
  std::int64_t batches_per_epoch() const;
  const LoaderOptions& options() const { return options_; }
  const Dataset& dataset() const { return *dataset_; }

  // The order in which epoch `epoch` visits the dataset indices (a pure function of seed and
  // epoch; the given order when shuffle is off).
  std::vector<std::int64_t> epoch_order(std::int64_t epoch) const;

  // Sequential use: start_epoch(e), then next(batch) until it returns false.
  void start_epoch(std::int64_t epoch);
  bool next(Batch& batch);
  std::int64_t epoch() const { return epoch_; }

  // Endless stream: like next(), but when the epoch is exhausted it starts the following one.
  // Lets ranks with unequal parts (e.g. a Dirichlet partition) take the same number of steps.
  Batch next_cyclic();

 private:
  Batch gather(const std::int64_t* ids, std::int64_t count) const;

  std::shared_ptr<const Dataset> dataset_;
  std::vector<std::int64_t> indices_;
  LoaderOptions options_;
  std::int64_t epoch_ = -1;
  std::vector<std::int64_t> order_;
  std::int64_t cursor_ = 0;
};

// Stacks the selected samples into one [N, C, H, W] float tensor and one [N] int64 tensor
// (e.g. a whole test set for evaluation).
Batch to_batch(const Dataset& dataset, const std::vector<std::int64_t>& indices);
Batch to_batch(const Dataset& dataset);

}  // namespace decent::data
