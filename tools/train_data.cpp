#include "train_data.h"

#include "decent/data/partition.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>

namespace decent::train {
namespace {

constexpr int kNumClasses = 10;
constexpr const char* kPackageHint =
    "install the Debian package dataset-fashion-mnist, pass --data-dir DIR, or use --dataset "
    "synthetic";

// Fails with a usage error when the directory or one of its four files is missing.
void check_fashion_mnist_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw UsageError(
        fmt::format("Fashion-MNIST directory {} does not exist ({})", dir, kPackageHint));
  }
  for (const char* name : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}) {
    const fs::path plain = fs::path(dir) / name;
    if (!fs::exists(plain, ec) && !fs::exists(plain.string() + ".gz", ec)) {
      throw UsageError(
          fmt::format("Fashion-MNIST file {}[.gz] is missing ({})", plain.string(), kPackageHint));
    }
  }
}

}  // namespace

TrainingData prepare_training_data(const TrainOptions& o, int world_size) {
  TrainingData out;
  if (o.dataset == "fashion-mnist") {
    const std::string dir = o.data_dir.empty() ? data::default_fashion_mnist_dir() : o.data_dir;
    check_fashion_mnist_dir(dir);
    out.train = std::make_shared<data::Dataset>(
        data::load_fashion_mnist(dir, "train", data::PixelScaling::kStandardize));
    out.test = std::make_shared<data::Dataset>(
        data::load_fashion_mnist(dir, "test", data::PixelScaling::kStandardize));
  } else if (o.dataset == "synthetic") {
    // One task (class patterns from the seed), two independent sample streams.
    const data::ImageShape shape{1, 28, 28};
    data::SyntheticOptions train_options;
    train_options.sample_stream = 0;
    data::SyntheticOptions test_options;
    test_options.sample_stream = 1;
    out.train = std::make_shared<data::Dataset>(data::make_synthetic_dataset(
        o.synthetic_samples, kNumClasses, shape, o.seed, train_options));
    out.test = std::make_shared<data::Dataset>(
        data::make_synthetic_dataset(std::max<std::int64_t>(kNumClasses, o.synthetic_samples / 5),
                                     kNumClasses, shape, o.seed, test_options));
  } else {
    throw UsageError(
        fmt::format("unknown --dataset '{}' (valid: fashion-mnist, synthetic)", o.dataset));
  }

  data::PartitionOptions partition;
  partition.scheme = data::parse_partition_scheme(o.partition);
  partition.seed = o.seed;
  partition.shards_per_rank = o.shards_per_rank;
  partition.dirichlet_alpha = o.alpha;
  // Every rank should fill at least one mini-batch, however skewed the Dirichlet draw.
  partition.min_samples_per_rank =
      std::max<std::int64_t>(1, std::min(o.batch_size, out.train->n / world_size));
  try {
    out.parts =
        data::partition_indices(out.train->labels, out.train->num_classes, world_size, partition);
  } catch (const std::invalid_argument& e) {
    throw UsageError(fmt::format("cannot partition {} samples over {} ranks: {}", out.train->n,
                                 world_size, e.what()));
  }
  out.partition_description = data::describe(partition);
  out.eval_count =
      o.eval_samples > 0 ? std::min<std::int64_t>(o.eval_samples, out.test->n) : out.test->n;
  return out;
}

std::string describe_partition(const TrainingData& d) {
  const auto histograms = data::label_histograms(d.train->labels, d.parts, d.train->num_classes);
  std::int64_t smallest = d.train->n;
  std::int64_t largest = 0;
  double dominant_share = 0.0;
  for (const auto& h : histograms) {
    std::int64_t total = 0;
    std::int64_t top = 0;
    for (std::int64_t count : h) {
      total += count;
      top = std::max(top, count);
    }
    smallest = std::min(smallest, total);
    largest = std::max(largest, total);
    dominant_share += total > 0 ? static_cast<double>(top) / static_cast<double>(total) : 0.0;
  }
  dominant_share /= static_cast<double>(std::max<std::size_t>(1, histograms.size()));
  return fmt::format("{}: {}-{} samples per rank, largest class {:.0f}% of a rank on average",
                     d.partition_description, smallest, largest, 100.0 * dominant_share);
}

BatchStream::BatchStream(std::shared_ptr<const data::Dataset> dataset,
                         std::vector<std::int64_t> indices, std::int64_t batch_size,
                         std::uint64_t seed)
    : loader_(std::move(dataset), std::move(indices),
              data::LoaderOptions().set_batch_size(batch_size).set_seed(seed)),
      batch_size_(batch_size) {
  if (loader_.num_samples() == 0) {
    throw std::invalid_argument("BatchStream: this rank's part of the training set is empty");
  }
}

void BatchStream::restore(std::int64_t pass, std::int64_t cursor) {
  if (pass < 0 || cursor < 0 || cursor >= loader_.num_samples()) {
    throw std::invalid_argument(
        fmt::format("BatchStream: position (pass {}, cursor {}) outside a part of {} samples", pass,
                    cursor, loader_.num_samples()));
  }
  pass_ = pass;
  cursor_ = cursor;
}

data::Batch BatchStream::next() {
  if (order_pass_ != pass_) {
    order_ = loader_.epoch_order(pass_);
    order_pass_ = pass_;
  }
  const std::int64_t n = static_cast<std::int64_t>(order_.size());
  const std::int64_t count = std::min(batch_size_, n - cursor_);
  std::vector<std::int64_t> ids(order_.begin() + cursor_, order_.begin() + cursor_ + count);
  cursor_ += count;
  if (cursor_ >= n) {
    ++pass_;
    cursor_ = 0;
  }
  return data::to_batch(loader_.dataset(), ids);
}

}  // namespace decent::train
