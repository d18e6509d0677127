#include "decent/data/dataset.h"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

#include "decent/data/random.h"

namespace decent::data {
namespace {

constexpr std::uint32_t kIdxImagesMagic = 0x00000803;  // unsigned byte, 3 dimensions
constexpr std::uint32_t kIdxLabelsMagic = 0x00000801;  // unsigned byte, 1 dimension
// Larger dimensions mean a corrupt header rather than a real dataset; refusing them avoids
// attempting a multi-terabyte allocation.
constexpr std::uint32_t kMaxIdxCount = 1u << 30;
constexpr std::uint32_t kMaxIdxSide = 1u << 14;

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};
using GzHandle = std::unique_ptr<gzFile_s, GzCloser>;

// Sequential reader over a plain or gzip-compressed file that reports errors with its path.
class IdxFile {
 public:
  explicit IdxFile(const std::string& path) : path_(path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      throw DataError(fmt::format("{}: file not found", path));
    }
    errno = 0;
    file_.reset(gzopen(path.c_str(), "rb"));
    if (!file_) {
      throw DataError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    }
    gzbuffer(file_.get(), 1 << 17);
  }

  // Reads up to `size` bytes; returns how many were read. Throws on a decompression error
  // other than an early end of data (which the caller reports as truncation).
  std::size_t read_some(void* out, std::size_t size) {
    auto* dst = static_cast<unsigned char*>(out);
    std::size_t done = 0;
    while (done < size) {
      const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(size - done, 1u << 24));
      const int got = gzread(file_.get(), dst + done, chunk);
      if (got < 0) {
        int code = Z_OK;
        const char* message = gzerror(file_.get(), &code);
        // A gzip stream cut short surfaces as Z_BUF_ERROR: that is truncation, not corruption.
        if (code == Z_BUF_ERROR) return done;
        throw DataError(fmt::format("{}: read error after {} bytes: {}", path_, offset_ + done,
                                    message ? message : "unknown zlib error"));
      }
      if (got == 0) break;
      done += static_cast<std::size_t>(got);
    }
    offset_ += done;
    return done;
  }

  // Reads exactly `size` bytes of `what`, or throws a truncation error.
  void read_exact(void* out, std::size_t size, const char* what) {
    const std::uint64_t start = offset_;
    const std::size_t got = read_some(out, size);
    if (got != size) {
      throw DataError(fmt::format(
          "{}: truncated: the header promises {} bytes of {} from byte {} on, only {} are "
          "present",
          path_, size, what, start, got));
    }
  }

  // Reads exactly `size` bytes of `what` into `out`, growing it chunk by chunk as the data
  // arrives: a corrupt header promising terabytes ends in a truncation error, not in an
  // allocation of what it promised.
  void read_growing(std::vector<std::uint8_t>& out, std::uint64_t size, const char* what) {
    constexpr std::uint64_t kChunk = std::uint64_t{1} << 20;
    const std::uint64_t start = offset_;
    out.clear();
    while (out.size() < size) {
      const std::size_t have = out.size();
      const std::size_t want = static_cast<std::size_t>(std::min(kChunk, size - have));
      out.resize(have + want);
      const std::size_t got = read_some(out.data() + have, want);
      if (got != want) {
        throw DataError(fmt::format(
            "{}: truncated: the header promises {} bytes of {} from byte {} on, only {} are "
            "present",
            path_, size, what, start, have + got));
      }
    }
  }

  std::uint32_t read_be32(const char* what) {
    unsigned char b[4];
    read_exact(b, 4, what);
    return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) |
           std::uint32_t{b[3]};
  }

  void expect_magic(std::uint32_t expected, const char* description) {
    const std::uint32_t magic = read_be32("IDX magic number");
    if (magic != expected) {
      throw DataError(fmt::format("{}: wrong magic number 0x{:08x}, expected 0x{:08x} ({})", path_,
                                  magic, expected, description));
    }
  }

  std::uint32_t read_dimension(const char* name, std::uint32_t max_value) {
    const std::uint32_t value = read_be32("IDX dimension");
    if (value == 0 || value > max_value) {
      throw DataError(fmt::format("{}: implausible {} {} in the header (expected 1..{})", path_,
                                  name, value, max_value));
    }
    return value;
  }

  // Data after the promised payload means the header and the contents disagree.
  void expect_end() {
    unsigned char extra;
    if (read_some(&extra, 1) != 0) {
      throw DataError(
          fmt::format("{}: more data than the header promises: {} bytes expected, found more",
                      path_, offset_ - 1));
    }
  }

 private:
  std::string path_;
  GzHandle file_;
  std::uint64_t offset_ = 0;
};

std::string find_split_file(const std::string& dir, const std::string& base) {
  const std::filesystem::path plain = std::filesystem::path(dir) / base;
  const std::filesystem::path gz = std::filesystem::path(dir) / (base + ".gz");
  std::error_code ec;
  if (std::filesystem::is_regular_file(gz, ec)) return gz.string();
  if (std::filesystem::is_regular_file(plain, ec)) return plain.string();
  throw DataError(fmt::format(
      "{}: file not found (nor {}); install Debian's dataset-fashion-mnist package or point "
      "DECENT_FASHION_MNIST_DIR at a directory holding the Fashion-MNIST IDX files",
      gz.string(), plain.string()));
}

// Sum of Gaussian blobs, clamped to [0, 1]: one pattern per (class, channel).
std::vector<float> make_class_pattern(Rng& rng, int height, int width) {
  std::vector<float> pattern(static_cast<std::size_t>(height) * width, 0.0f);
  const double side = std::min(height, width);
  for (int blob = 0; blob < 3; ++blob) {
    const double cy = (0.15 + 0.7 * rng.uniform()) * (height - 1);
    const double cx = (0.15 + 0.7 * rng.uniform()) * (width - 1);
    const double sigma = std::max(0.5, (0.08 + 0.12 * rng.uniform()) * side);
    const double inv_two_var = 1.0 / (2.0 * sigma * sigma);
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        const double d2 = (y - cy) * (y - cy) + (x - cx) * (x - cx);
        pattern[static_cast<std::size_t>(y) * width + x] +=
            static_cast<float>(std::exp(-d2 * inv_two_var));
      }
    }
  }
  for (auto& p : pattern) p = std::min(p, 1.0f);
  return pattern;
}

}  // namespace

void Dataset::validate() const {
  if (n < 0 || channels <= 0 || height <= 0 || width <= 0 || num_classes <= 0) {
    throw DataError(fmt::format("dataset '{}': invalid sizes n={} shape={}x{}x{} num_classes={}",
                                name, n, channels, height, width, num_classes));
  }
  if (static_cast<std::int64_t>(images.size()) != n * sample_numel()) {
    throw DataError(fmt::format("dataset '{}': {} image values, expected n * C * H * W = {}", name,
                                images.size(), n * sample_numel()));
  }
  if (static_cast<std::int64_t>(labels.size()) != n) {
    throw DataError(fmt::format("dataset '{}': {} labels for {} images", name, labels.size(), n));
  }
  for (std::int64_t i = 0; i < n; ++i) {
    if (labels[i] < 0 || labels[i] >= num_classes) {
      throw DataError(fmt::format("dataset '{}': label {} of sample {} is outside [0, {})", name,
                                  labels[i], i, num_classes));
    }
  }
}

IdxImages read_idx_images(const std::string& path) {
  IdxFile file(path);
  file.expect_magic(kIdxImagesMagic, "IDX unsigned-byte images, 3 dimensions");
  IdxImages result;
  result.count = file.read_dimension("image count", kMaxIdxCount);
  result.rows = static_cast<int>(file.read_dimension("row count", kMaxIdxSide));
  result.cols = static_cast<int>(file.read_dimension("column count", kMaxIdxSide));
  file.read_growing(result.pixels,
                    static_cast<std::uint64_t>(result.count) * result.rows * result.cols,
                    "pixel data");
  file.expect_end();
  return result;
}

std::vector<std::uint8_t> read_idx_labels(const std::string& path) {
  IdxFile file(path);
  file.expect_magic(kIdxLabelsMagic, "IDX unsigned-byte labels, 1 dimension");
  const std::uint32_t count = file.read_dimension("label count", kMaxIdxCount);
  std::vector<std::uint8_t> labels;
  file.read_growing(labels, count, "label data");
  file.expect_end();
  return labels;
}

Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path,
                         int num_classes, PixelScaling scaling, int expected_rows,
                         int expected_cols) {
  if (num_classes <= 0 || num_classes > 256) {
    throw std::invalid_argument(
        fmt::format("load_idx_dataset: num_classes must be in 1..256, got {}", num_classes));
  }
  IdxImages raw = read_idx_images(images_path);
  if ((expected_rows > 0 && raw.rows != expected_rows) ||
      (expected_cols > 0 && raw.cols != expected_cols)) {
    throw DataError(fmt::format("{}: wrong image dimensions {}x{}, expected {}x{}", images_path,
                                raw.rows, raw.cols, expected_rows, expected_cols));
  }
  const std::vector<std::uint8_t> raw_labels = read_idx_labels(labels_path);
  if (static_cast<std::int64_t>(raw_labels.size()) != raw.count) {
    throw DataError(fmt::format("{}: {} labels, but {} holds {} images", labels_path,
                                raw_labels.size(), images_path, raw.count));
  }

  Dataset ds;
  ds.name = images_path;
  ds.n = raw.count;
  ds.channels = 1;
  ds.height = raw.rows;
  ds.width = raw.cols;
  ds.num_classes = num_classes;
  ds.labels.resize(raw_labels.size());
  for (std::size_t i = 0; i < raw_labels.size(); ++i) {
    if (raw_labels[i] >= num_classes) {
      throw DataError(fmt::format("{}: label {} of sample {} is outside [0, {})", labels_path,
                                  raw_labels[i], i, num_classes));
    }
    ds.labels[i] = raw_labels[i];
  }

  float scale = 1.0f / 255.0f;
  float shift = 0.0f;
  if (scaling == PixelScaling::kStandardize) {
    scale = static_cast<float>(1.0 / (255.0 * kFashionMnistStd));
    shift = static_cast<float>(-kFashionMnistMean / kFashionMnistStd);
  }
  ds.images.resize(raw.pixels.size());
  for (std::size_t i = 0; i < raw.pixels.size(); ++i) {
    ds.images[i] = static_cast<float>(raw.pixels[i]) * scale + shift;
  }
  return ds;
}

std::string default_fashion_mnist_dir() {
  if (const char* env = std::getenv("DECENT_FASHION_MNIST_DIR"); env && *env) return env;
  return "/usr/share/datasets/fashion-mnist";
}

Dataset load_fashion_mnist(const std::string& dir, const std::string& split, PixelScaling scaling) {
  std::string prefix;
  if (split == "train") {
    prefix = "train";
  } else if (split == "test") {
    prefix = "t10k";
  } else {
    throw std::invalid_argument(
        fmt::format("load_fashion_mnist: split must be 'train' or 'test', got '{}'", split));
  }
  const std::string images = find_split_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels = find_split_file(dir, prefix + "-labels-idx1-ubyte");
  Dataset ds = load_idx_dataset(images, labels, 10, scaling, 28, 28);
  ds.name = "fashion-mnist/" + split;
  return ds;
}

Dataset make_synthetic_dataset(std::int64_t n, int num_classes, ImageShape shape,
                               std::uint64_t seed, const SyntheticOptions& options) {
  if (n < 0 || num_classes < 1 || shape.channels < 1 || shape.height < 1 || shape.width < 1) {
    throw std::invalid_argument(fmt::format(
        "make_synthetic_dataset: need n >= 0, num_classes >= 1 and a positive shape, got n={} "
        "num_classes={} shape={}x{}x{}",
        n, num_classes, shape.channels, shape.height, shape.width));
  }
  if (!(options.noise_stddev >= 0.0)) {
    throw std::invalid_argument("make_synthetic_dataset: noise_stddev must be >= 0");
  }
  Dataset ds;
  ds.name = fmt::format("synthetic/{}", options.sample_stream);
  ds.n = n;
  ds.channels = shape.channels;
  ds.height = shape.height;
  ds.width = shape.width;
  ds.num_classes = num_classes;

  // The patterns depend on the seed only, so every sample stream describes the same task.
  Rng pattern_rng(mix_seed(seed, 0));
  const std::size_t plane = static_cast<std::size_t>(shape.height) * shape.width;
  std::vector<std::vector<float>> patterns(static_cast<std::size_t>(num_classes));
  for (auto& pattern : patterns) {
    pattern.reserve(plane * shape.channels);
    for (int c = 0; c < shape.channels; ++c) {
      std::vector<float> channel = make_class_pattern(pattern_rng, shape.height, shape.width);
      pattern.insert(pattern.end(), channel.begin(), channel.end());
    }
  }

  Rng sample_rng(mix_seed(seed, 1 + options.sample_stream));
  ds.labels.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) ds.labels[i] = i % num_classes;
  sample_rng.shuffle(ds.labels);

  const std::size_t numel = static_cast<std::size_t>(shape.numel());
  ds.images.resize(static_cast<std::size_t>(n) * numel);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::vector<float>& pattern = patterns[static_cast<std::size_t>(ds.labels[i])];
    const double brightness = 0.8 + 0.4 * sample_rng.uniform();
    float* out = ds.images.data() + static_cast<std::size_t>(i) * numel;
    for (std::size_t k = 0; k < numel; ++k) {
      out[k] =
          static_cast<float>(brightness * pattern[k] + options.noise_stddev * sample_rng.normal());
    }
  }
  return ds;
}

std::vector<std::int64_t> class_counts(const Dataset& dataset) {
  std::vector<std::int64_t> counts(static_cast<std::size_t>(std::max(dataset.num_classes, 0)), 0);
  for (std::int64_t label : dataset.labels) {
    if (label >= 0 && label < dataset.num_classes) ++counts[static_cast<std::size_t>(label)];
  }
  return counts;
}

}  // namespace decent::data
