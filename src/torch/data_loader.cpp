#include "decent/torch/data_loader.h"

#include <ATen/Functions.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include "decent/data/random.h"

namespace decent::data {
namespace {

std::vector<std::int64_t> all_indices(const Dataset* dataset) {
  std::vector<std::int64_t> indices(dataset ? static_cast<std::size_t>(dataset->n) : 0);
  std::iota(indices.begin(), indices.end(), 0);
  return indices;
}

Batch gather_samples(const Dataset& dataset, const std::int64_t* ids, std::int64_t count) {
  const std::int64_t numel = dataset.sample_numel();
  Batch batch;
  batch.images = at::empty({count, dataset.channels, dataset.height, dataset.width},
                           at::TensorOptions().dtype(at::kFloat));
  batch.labels = at::empty({count}, at::TensorOptions().dtype(at::kLong));
  float* images = batch.images.data_ptr<float>();
  std::int64_t* labels = batch.labels.data_ptr<std::int64_t>();
  for (std::int64_t b = 0; b < count; ++b) {
    const std::int64_t i = ids[b];
    if (i < 0 || i >= dataset.n) {
      throw std::out_of_range(
          fmt::format("dataset '{}': sample index {} outside [0, {})", dataset.name, i, dataset.n));
    }
    std::memcpy(images + b * numel, dataset.image(i), sizeof(float) * numel);
    labels[b] = dataset.labels[static_cast<std::size_t>(i)];
  }
  return batch;
}

}  // namespace

BatchLoader::BatchLoader(std::shared_ptr<const Dataset> dataset, std::vector<std::int64_t> indices,
                         LoaderOptions options)
    : dataset_(std::move(dataset)), indices_(std::move(indices)), options_(options) {
  if (!dataset_) throw std::invalid_argument("BatchLoader: dataset is null");
  if (options_.batch_size < 1) {
    throw std::invalid_argument(
        fmt::format("BatchLoader: batch_size must be >= 1, got {}", options_.batch_size));
  }
  for (std::int64_t i : indices_) {
    if (i < 0 || i >= dataset_->n) {
      throw std::invalid_argument(fmt::format("BatchLoader: index {} outside dataset '{}' of {}", i,
                                              dataset_->name, dataset_->n));
    }
  }
}

BatchLoader::BatchLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options)
    : BatchLoader(dataset, all_indices(dataset.get()), options) {}

std::int64_t BatchLoader::batches_per_epoch() const {
  const std::int64_t n = num_samples();
  const std::int64_t b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<std::int64_t> BatchLoader::epoch_order(std::int64_t epoch) const {
  std::vector<std::int64_t> order = indices_;
  if (options_.shuffle) {
    Rng rng(mix_seed(options_.seed, static_cast<std::uint64_t>(epoch)));
    rng.shuffle(order);
  }
  return order;
}

void BatchLoader::start_epoch(std::int64_t epoch) {
  epoch_ = epoch;
  order_ = epoch_order(epoch);
  cursor_ = 0;
}

bool BatchLoader::next(Batch& batch) {
  if (epoch_ < 0) start_epoch(0);
  const std::int64_t remaining = static_cast<std::int64_t>(order_.size()) - cursor_;
  const std::int64_t count = std::min(remaining, options_.batch_size);
  if (count <= 0 || (options_.drop_last && count < options_.batch_size)) return false;
  batch = gather(order_.data() + cursor_, count);
  cursor_ += count;
  return true;
}

Batch BatchLoader::next_cyclic() {
  if (batches_per_epoch() == 0) {
    throw std::logic_error(fmt::format(
        "BatchLoader: {} samples make no batch of {} with drop_last; cannot stream batches",
        num_samples(), options_.batch_size));
  }
  Batch batch;
  if (next(batch)) return batch;
  start_epoch(epoch_ + 1);
  next(batch);
  return batch;
}

Batch BatchLoader::gather(const std::int64_t* ids, std::int64_t count) const {
  return gather_samples(*dataset_, ids, count);
}

Batch to_batch(const Dataset& dataset, const std::vector<std::int64_t>& indices) {
  return gather_samples(dataset, indices.data(), static_cast<std::int64_t>(indices.size()));
}

Batch to_batch(const Dataset& dataset) {
  return to_batch(dataset, all_indices(&dataset));
}

}  // namespace decent::data
