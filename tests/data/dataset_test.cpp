#include "decent/data/dataset.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace decent::data {
namespace {

namespace fs = std::filesystem;

void put_be32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 24));
  out.push_back(static_cast<std::uint8_t>(v >> 16));
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}

std::vector<std::uint8_t> idx_images(std::uint32_t magic, std::uint32_t count, std::uint32_t rows,
                                     std::uint32_t cols, std::size_t pixel_bytes) {
  std::vector<std::uint8_t> out;
  put_be32(out, magic);
  put_be32(out, count);
  put_be32(out, rows);
  put_be32(out, cols);
  for (std::size_t i = 0; i < pixel_bytes; ++i) out.push_back(static_cast<std::uint8_t>(i * 7));
  return out;
}

std::vector<std::uint8_t> idx_labels(std::uint32_t magic, std::uint32_t count,
                                     const std::vector<std::uint8_t>& labels) {
  std::vector<std::uint8_t> out;
  put_be32(out, magic);
  put_be32(out, count);
  out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

class IdxFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("decent_data_") + info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write_plain(const std::string& name, const std::vector<std::uint8_t>& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    return path;
  }
  std::string write_gz(const std::string& name, const std::vector<std::uint8_t>& bytes) {
    const std::string path = (dir_ / name).string();
    gzFile f = gzopen(path.c_str(), "wb");
    EXPECT_NE(f, nullptr);
    EXPECT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
              static_cast<int>(bytes.size()));
    gzclose(f);
    return path;
  }

  // Writes a consistent Fashion-MNIST-shaped split with `count` images named like the real one.
  void write_split(const std::string& prefix, std::uint32_t count, bool gzip) {
    std::vector<std::uint8_t> labels(count);
    for (std::uint32_t i = 0; i < count; ++i) labels[i] = static_cast<std::uint8_t>(i % 10);
    const auto images = idx_images(0x803, count, 28, 28, std::size_t{count} * 784);
    const auto label_file = idx_labels(0x801, count, labels);
    if (gzip) {
      write_gz(prefix + "-images-idx3-ubyte.gz", images);
      write_gz(prefix + "-labels-idx1-ubyte.gz", label_file);
    } else {
      write_plain(prefix + "-images-idx3-ubyte", images);
      write_plain(prefix + "-labels-idx1-ubyte", label_file);
    }
  }

  fs::path dir_;
};

// Runs `fn`, expects a DataError whose message contains every fragment.
template <typename Fn>
void expect_data_error(Fn fn, const std::vector<std::string>& fragments) {
  try {
    fn();
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    const std::string message = e.what();
    for (const auto& fragment : fragments) {
      EXPECT_NE(message.find(fragment), std::string::npos)
          << "message '" << message << "' lacks '" << fragment << "'";
    }
  }
}

TEST_F(IdxFilesTest, ReadsGzipAndPlainFilesAlike) {
  write_split("train", 25, /*gzip=*/true);
  write_split("t10k", 7, /*gzip=*/false);
  const Dataset train = load_fashion_mnist(dir_.string(), "train");
  const Dataset test = load_fashion_mnist(dir_.string(), "test");
  EXPECT_EQ(train.n, 25);
  EXPECT_EQ(test.n, 7);
  EXPECT_EQ(train.shape(), (ImageShape{1, 28, 28}));
  EXPECT_EQ(train.labels[13], 3);
  // Pixel k of the file is (k * 7) mod 256; image 1 starts at pixel 784.
  EXPECT_FLOAT_EQ(train.images[0], 0.0f);
  EXPECT_FLOAT_EQ(train.images[1], 7.0f / 255.0f);
  EXPECT_FLOAT_EQ(train.image(1)[0], static_cast<float>((784 * 7) % 256) / 255.0f);
  EXPECT_NO_THROW(train.validate());
}

TEST_F(IdxFilesTest, StandardizedPixelsUseTheTrainingMeanAndStd) {
  write_split("train", 3, /*gzip=*/false);
  const Dataset unit = load_fashion_mnist(dir_.string(), "train", PixelScaling::kUnit);
  const Dataset standard = load_fashion_mnist(dir_.string(), "train", PixelScaling::kStandardize);
  for (std::size_t i = 0; i < unit.images.size(); i += 97) {
    EXPECT_NEAR(standard.images[i], (unit.images[i] - kFashionMnistMean) / kFashionMnistStd, 1e-5);
  }
}

TEST_F(IdxFilesTest, MissingFileIsNamed) {
  write_plain("train-labels-idx1-ubyte", idx_labels(0x801, 1, {0}));
  expect_data_error([&] { load_fashion_mnist(dir_.string(), "train"); },
                    {"train-images-idx3-ubyte.gz", "not found"});
  expect_data_error([&] { read_idx_labels((dir_ / "nothing-here").string()); },
                    {"nothing-here", "not found"});
}

TEST_F(IdxFilesTest, WrongMagicNumberIsNamed) {
  // A labels file where images are expected.
  const std::string images = write_gz("train-images-idx3-ubyte.gz", idx_labels(0x801, 2, {1, 2}));
  write_gz("train-labels-idx1-ubyte.gz", idx_labels(0x801, 2, {1, 2}));
  expect_data_error([&] { load_fashion_mnist(dir_.string(), "train"); },
                    {images, "wrong magic number 0x00000801", "0x00000803"});
  const std::string labels = write_plain("labels", idx_labels(0x12345678, 2, {1, 2}));
  expect_data_error([&] { read_idx_labels(labels); }, {labels, "wrong magic number 0x12345678"});
}

TEST_F(IdxFilesTest, WrongDimensionsAreNamed) {
  const std::string images =
      write_plain("train-images-idx3-ubyte", idx_images(0x803, 2, 27, 28, 2 * 27 * 28));
  write_plain("train-labels-idx1-ubyte", idx_labels(0x801, 2, {0, 1}));
  expect_data_error([&] { load_fashion_mnist(dir_.string(), "train"); },
                    {images, "wrong image dimensions 27x28", "28x28"});
  const std::string zero = write_plain("zero", idx_images(0x803, 2, 0, 28, 0));
  expect_data_error([&] { read_idx_images(zero); }, {zero, "row count 0"});
}

TEST_F(IdxFilesTest, TruncatedFilesAreNamed) {
  // Header promises 3 images of 28x28, the data stops after 2.5 images.
  const auto short_images = idx_images(0x803, 3, 28, 28, 784 * 5 / 2);
  const std::string plain = write_plain("short-plain", short_images);
  expect_data_error([&] { read_idx_images(plain); },
                    {plain, "truncated", "2352 bytes of pixel data", "only 1960"});
  const std::string gz = write_gz("short.gz", short_images);
  expect_data_error([&] { read_idx_images(gz); }, {gz, "truncated"});

  // A valid gzip stream cut in the middle of its compressed bytes.
  const std::string whole = write_gz("whole.gz", idx_images(0x803, 40, 28, 28, 40 * 784));
  std::ifstream in(whole, std::ios::binary);
  std::vector<std::uint8_t> compressed((std::istreambuf_iterator<char>(in)), {});
  compressed.resize(compressed.size() / 2);
  const std::string cut = write_plain("cut.gz", compressed);
  expect_data_error([&] { read_idx_images(cut); }, {cut, "truncated"});

  // Too short even for the header.
  const std::string stub = write_plain("stub", {0, 0, 8});
  expect_data_error([&] { read_idx_labels(stub); }, {stub, "truncated"});
}

TEST_F(IdxFilesTest, TrailingBytesAreReported) {
  auto labels = idx_labels(0x801, 2, {0, 1});
  labels.push_back(5);
  const std::string path = write_plain("long", labels);
  expect_data_error([&] { read_idx_labels(path); }, {path, "more data than the header promises"});
}

TEST_F(IdxFilesTest, CountMismatchIsNamed) {
  write_gz("train-images-idx3-ubyte.gz", idx_images(0x803, 3, 28, 28, 3 * 784));
  const std::string labels = write_gz("train-labels-idx1-ubyte.gz", idx_labels(0x801, 2, {0, 1}));
  expect_data_error([&] { load_fashion_mnist(dir_.string(), "train"); },
                    {labels, "2 labels", "3 images"});
}

TEST_F(IdxFilesTest, LabelOutOfRangeIsNamed) {
  write_gz("t10k-images-idx3-ubyte.gz", idx_images(0x803, 3, 28, 28, 3 * 784));
  const std::string labels =
      write_gz("t10k-labels-idx1-ubyte.gz", idx_labels(0x801, 3, {0, 10, 1}));
  expect_data_error([&] { load_fashion_mnist(dir_.string(), "test"); },
                    {labels, "label 10 of sample 1", "[0, 10)"});
}

TEST(FashionMnistTest, UnknownSplitIsRejected) {
  EXPECT_THROW(load_fashion_mnist("/nonexistent", "validation"), std::invalid_argument);
}

TEST(FashionMnistTest, RealFilesHaveTheDocumentedContents) {
  const std::string dir = default_fashion_mnist_dir();
  if (!fs::exists(fs::path(dir) / "train-images-idx3-ubyte.gz") &&
      !fs::exists(fs::path(dir) / "train-images-idx3-ubyte")) {
    GTEST_SKIP() << "Fashion-MNIST not installed in " << dir << " (Debian: dataset-fashion-mnist)";
  }
  const Dataset train = load_fashion_mnist(dir, "train");
  const Dataset test = load_fashion_mnist(dir, "test");
  EXPECT_EQ(train.n, 60000);
  EXPECT_EQ(test.n, 10000);
  EXPECT_EQ(train.shape(), (ImageShape{1, 28, 28}));
  EXPECT_EQ(test.shape(), (ImageShape{1, 28, 28}));
  EXPECT_EQ(train.num_classes, 10);
  EXPECT_EQ(class_counts(train), std::vector<std::int64_t>(10, 6000));
  EXPECT_EQ(class_counts(test), std::vector<std::int64_t>(10, 1000));
  const auto [lo, hi] = std::minmax_element(train.images.begin(), train.images.end());
  EXPECT_FLOAT_EQ(*lo, 0.0f);
  EXPECT_FLOAT_EQ(*hi, 1.0f);
  double sum = 0.0;
  for (float v : train.images) sum += v;
  EXPECT_NEAR(sum / static_cast<double>(train.images.size()), kFashionMnistMean, 1e-4);
  // The first training image is an ankle boot (class 9), the first test image too.
  EXPECT_EQ(train.labels[0], 9);
  EXPECT_EQ(test.labels[0], 9);
}

TEST(SyntheticDatasetTest, IsDeterministicBalancedAndValid) {
  const ImageShape shape{2, 10, 12};
  const Dataset a = make_synthetic_dataset(203, 7, shape, 42);
  const Dataset b = make_synthetic_dataset(203, 7, shape, 42);
  const Dataset c = make_synthetic_dataset(203, 7, shape, 43);
  EXPECT_NO_THROW(a.validate());
  EXPECT_EQ(a.n, 203);
  EXPECT_EQ(a.shape(), shape);
  EXPECT_EQ(a.images, b.images);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_NE(a.images, c.images);
  for (std::int64_t count : class_counts(a)) EXPECT_TRUE(count == 29) << count;  // 203 = 7 * 29
  // Labels are shuffled, not in round-robin order.
  int in_round_robin_place = 0;
  for (std::int64_t i = 0; i < a.n; ++i) in_round_robin_place += a.labels[i] == i % 7;
  EXPECT_LT(in_round_robin_place, 100);
}

// Nearest-class-mean on the noise-free patterns estimated from one stream classifies another
// stream well: the task is learnable and the streams share their class patterns.
TEST(SyntheticDatasetTest, StreamsShareClassPatterns) {
  const ImageShape shape{1, 28, 28};
  const int classes = 10;
  const Dataset train = make_synthetic_dataset(1000, classes, shape, 5);
  SyntheticOptions test_options;
  test_options.sample_stream = 1;
  const Dataset test = make_synthetic_dataset(500, classes, shape, 5, test_options);
  EXPECT_NE(train.images[0], test.images[0]);
  const std::int64_t d = shape.numel();
  std::vector<double> means(static_cast<std::size_t>(classes * d), 0.0);
  const auto counts = class_counts(train);
  for (std::int64_t i = 0; i < train.n; ++i) {
    for (std::int64_t k = 0; k < d; ++k) {
      means[train.labels[i] * d + k] +=
          train.image(i)[k] / static_cast<double>(counts[train.labels[i]]);
    }
  }
  int correct = 0;
  for (std::int64_t i = 0; i < test.n; ++i) {
    int best = -1;
    double best_distance = 0.0;
    for (int c = 0; c < classes; ++c) {
      double distance = 0.0;
      for (std::int64_t k = 0; k < d; ++k) {
        const double diff = test.image(i)[k] - means[c * d + k];
        distance += diff * diff;
      }
      if (best < 0 || distance < best_distance) {
        best = c;
        best_distance = distance;
      }
    }
    correct += best == test.labels[i];
  }
  EXPECT_GT(correct, 0.95 * test.n);
}

TEST(DatasetTest, ValidateCatchesInconsistentSizes) {
  Dataset ds = make_synthetic_dataset(10, 3, {1, 4, 4}, 1);
  ds.labels[4] = 3;
  EXPECT_THROW(ds.validate(), DataError);
  ds.labels[4] = 0;
  ds.images.pop_back();
  EXPECT_THROW(ds.validate(), DataError);
}

}  // namespace
}  // namespace decent::data
