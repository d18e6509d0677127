// In-memory image classification datasets: the Fashion-MNIST reader (IDX files, optionally
// gzip-compressed) and a deterministic synthetic dataset for tests. No LibTorch, no MPI.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace decent::data {

// A dataset file is missing, malformed or inconsistent. The message names the file.
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ImageShape {
  int channels = 1;
  int height = 28;
  int width = 28;
  std::int64_t numel() const { return static_cast<std::int64_t>(channels) * height * width; }
  bool operator==(const ImageShape& o) const {
    return channels == o.channels && height == o.height && width == o.width;
  }
};

// n images stored contiguously in NCHW order, with one label in [0, num_classes) each.
struct Dataset {
  std::string name;  // e.g. "fashion-mnist/train", for logs
  std::int64_t n = 0;
  int channels = 0;
  int height = 0;
  int width = 0;
  std::vector<float> images;         // n * channels * height * width values
  std::vector<std::int64_t> labels;  // n values
  int num_classes = 0;

  ImageShape shape() const { return {channels, height, width}; }
  std::int64_t sample_numel() const { return shape().numel(); }
  const float* image(std::int64_t i) const { return images.data() + i * sample_numel(); }
  // Throws DataError when sizes disagree or a label is out of range.
  void validate() const;
};

// How raw 8-bit pixels become floats.
enum class PixelScaling {
  kUnit,         // p / 255, in [0, 1]
  kStandardize,  // (p / 255 - mean) / std with the Fashion-MNIST training-set mean and std
};

// Mean and standard deviation of the Fashion-MNIST training images after p / 255,
// measured over all 60000 * 784 pixels; used by PixelScaling::kStandardize.
inline constexpr double kFashionMnistMean = 0.28604;
inline constexpr double kFashionMnistStd = 0.35302;

// Raw contents of an IDX image file (magic 0x00000803: unsigned bytes, 3 dimensions).
struct IdxImages {
  std::int64_t count = 0;
  int rows = 0;
  int cols = 0;
  std::vector<std::uint8_t> pixels;  // count * rows * cols, row-major
};

// Reads IDX files, gzip-compressed or not (zlib detects which). Throws DataError naming the
// file for: missing or unreadable file, wrong magic number, zero or implausible dimensions,
// fewer bytes than the header promises (truncated) and bytes left after the promised data.
IdxImages read_idx_images(const std::string& path);
// Labels file (magic 0x00000801: unsigned bytes, 1 dimension).
std::vector<std::uint8_t> read_idx_labels(const std::string& path);

// Reads an MNIST-format pair of files into a Dataset with one channel. Throws DataError when
// the counts differ or a label is >= num_classes; when expected_rows/cols are positive the
// image dimensions must match them.
Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path,
                         int num_classes, PixelScaling scaling = PixelScaling::kUnit,
                         int expected_rows = 0, int expected_cols = 0);

// Directory searched by default: $DECENT_FASHION_MNIST_DIR when set, otherwise the location of
// Debian's dataset-fashion-mnist package, /usr/share/datasets/fashion-mnist.
std::string default_fashion_mnist_dir();

// Loads split "train" (60000 images) or "test" (10000 images) from `dir`, which holds
// {train,t10k}-{images-idx3,labels-idx1}-ubyte, each either plain or with a .gz suffix.
// Images are 1x28x28, labels 0..9.
Dataset load_fashion_mnist(const std::string& dir, const std::string& split,
                           PixelScaling scaling = PixelScaling::kUnit);

struct SyntheticOptions {
  // Standard deviation of the per-pixel Gaussian noise added to the class pattern (patterns
  // lie in [0, 1]). At 0.35 on 28x28 images single pixels are unreliable, yet the nearest
  // class mean classifies over 95% of the samples correctly.
  double noise_stddev = 0.35;
  // Samples drawn with different streams differ while the class patterns do not: use
  // stream 0 for a training set and stream 1 for a test set of the same task.
  std::uint64_t sample_stream = 0;
};

// A learnable classification task: class c has a fixed pattern of three Gaussian blobs per
// channel (positions and widths drawn from `seed`); a sample is its class pattern times a
// random brightness in [0.8, 1.2] plus pixel noise. Labels are balanced (counts differ by at
// most one) and in seeded random order. Deterministic in (n, num_classes, shape, seed, options).
Dataset make_synthetic_dataset(std::int64_t n, int num_classes, ImageShape shape,
                               std::uint64_t seed, const SyntheticOptions& options = {});

// Number of samples of each class in the dataset.
std::vector<std::int64_t> class_counts(const Dataset& dataset);

}  // namespace decent::data
