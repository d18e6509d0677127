// LibTorch side of the data layer: the batch loader and the model zoo.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <set>

#include "decent/data/dataset.h"
#include "decent/data/partition.h"
#include "decent/torch/data_loader.h"
#include "decent/torch/models.h"

namespace decent {
namespace {

using data::Batch;
using data::BatchLoader;
using data::LoaderOptions;

std::shared_ptr<const data::Dataset> synthetic(std::int64_t n, data::ImageShape shape = {1, 28, 28},
                                               std::uint64_t seed = 1) {
  return std::make_shared<const data::Dataset>(data::make_synthetic_dataset(n, 10, shape, seed));
}

TEST(BatchLoaderTest, BatchesHaveShapesDtypesAndContents) {
  auto ds = synthetic(50, {3, 8, 6});
  std::vector<std::int64_t> indices = {4, 9, 13, 20, 21, 30, 49};
  BatchLoader loader(ds, indices, LoaderOptions().set_batch_size(3).set_shuffle(false));
  EXPECT_EQ(loader.batches_per_epoch(), 3);
  Batch batch;
  std::vector<std::int64_t> sizes;
  std::int64_t position = 0;
  while (loader.next(batch)) {
    EXPECT_EQ(batch.images.dtype(), torch::kFloat);
    EXPECT_EQ(batch.labels.dtype(), torch::kLong);
    EXPECT_EQ(batch.images.sizes(), (std::vector<std::int64_t>{batch.size(), 3, 8, 6}));
    EXPECT_EQ(batch.labels.sizes(), (std::vector<std::int64_t>{batch.size()}));
    for (std::int64_t b = 0; b < batch.size(); ++b, ++position) {
      const std::int64_t i = indices[position];
      EXPECT_EQ(batch.labels[b].item<std::int64_t>(), ds->labels[i]);
      EXPECT_FLOAT_EQ(batch.images[b][2][7][5].item<float>(), ds->image(i)[2 * 48 + 7 * 6 + 5]);
    }
    sizes.push_back(batch.size());
  }
  EXPECT_EQ(sizes, (std::vector<std::int64_t>{3, 3, 1}));

  BatchLoader dropping(ds, indices, LoaderOptions().set_batch_size(3).set_drop_last(true));
  EXPECT_EQ(dropping.batches_per_epoch(), 2);
  int count = 0;
  while (dropping.next(batch)) {
    EXPECT_EQ(batch.size(), 3);
    ++count;
  }
  EXPECT_EQ(count, 2);
}

TEST(BatchLoaderTest, EpochsReshuffleDeterministically) {
  auto ds = synthetic(100);
  const auto part = data::local_indices(ds->labels, 10, 3, 1, data::parse_partition_spec("iid", 2));
  const LoaderOptions options = LoaderOptions().set_batch_size(8).set_seed(77);
  BatchLoader a(ds, part, options);
  BatchLoader b(ds, part, options);
  const auto e0 = a.epoch_order(0);
  const auto e1 = a.epoch_order(1);
  EXPECT_EQ(e0, b.epoch_order(0));
  EXPECT_NE(e0, e1);
  EXPECT_EQ(std::multiset<std::int64_t>(e0.begin(), e0.end()),
            std::multiset<std::int64_t>(part.begin(), part.end()));
  EXPECT_NE(e0, BatchLoader(ds, part, LoaderOptions(options).set_seed(78)).epoch_order(0));

  // The batches of epoch 1 are the samples of epoch_order(1), in that order.
  a.start_epoch(1);
  Batch batch;
  std::vector<std::int64_t> labels_seen;
  while (a.next(batch)) {
    for (std::int64_t b = 0; b < batch.size(); ++b) {
      labels_seen.push_back(batch.labels[b].item<std::int64_t>());
    }
  }
  ASSERT_EQ(labels_seen.size(), e1.size());
  for (std::size_t k = 0; k < e1.size(); ++k) EXPECT_EQ(labels_seen[k], ds->labels[e1[k]]);
}

TEST(BatchLoaderTest, CyclicStreamCrossesEpochs) {
  auto ds = synthetic(10);
  BatchLoader loader(ds, LoaderOptions().set_batch_size(4).set_drop_last(true).set_seed(3));
  EXPECT_EQ(loader.batches_per_epoch(), 2);
  for (int step = 0; step < 5; ++step) EXPECT_EQ(loader.next_cyclic().size(), 4);
  EXPECT_EQ(loader.epoch(), 2);  // steps 0-1 epoch 0, 2-3 epoch 1, 4 epoch 2
  BatchLoader empty(ds, {1, 2}, LoaderOptions().set_batch_size(4).set_drop_last(true));
  EXPECT_THROW(empty.next_cyclic(), std::logic_error);
  EXPECT_THROW(BatchLoader(ds, {10}, LoaderOptions()), std::invalid_argument);
  EXPECT_THROW(BatchLoader(ds, LoaderOptions().set_batch_size(0)), std::invalid_argument);
}

TEST(BatchLoaderTest, ToBatchStacksAWholeDataset) {
  auto ds = synthetic(12, {1, 5, 5});
  const Batch all = data::to_batch(*ds);
  EXPECT_EQ(all.images.sizes(), (std::vector<std::int64_t>{12, 1, 5, 5}));
  EXPECT_TRUE(torch::equal(all.labels, torch::tensor(ds->labels)));
}

TEST(ModelsTest, ForwardShapesAndDocumentedParameterCounts) {
  const std::map<std::string, std::int64_t> expected_parameters = {
      {"logreg", 7850}, {"mlp", 235146}, {"cnn", 20522}, {"mlp-large", 5824522}};
  for (const std::string& name : models::model_names()) {
    auto model = models::make_model(name, {1, 28, 28}, 10, 1);
    EXPECT_EQ(models::parameter_count(*model), expected_parameters.at(name)) << name;
    const auto out = model->forward(torch::rand({5, 1, 28, 28}));
    EXPECT_EQ(out.sizes(), (std::vector<std::int64_t>{5, 10})) << name;
  }
  // Other shapes and class counts.
  auto cnn = models::make_model("cnn", {3, 32, 32}, 7, 1);
  EXPECT_EQ(cnn->forward(torch::rand({2, 3, 32, 32})).sizes(), (std::vector<std::int64_t>{2, 7}));
  EXPECT_GE(models::parameter_count(*models::make_model("mlp-large", {1, 28, 28}, 10)), 5000000);
  EXPECT_THROW(models::make_model("cnn", {1, 11, 28}, 10), std::invalid_argument);
  EXPECT_THROW(models::make_model("resnet", {1, 28, 28}, 10), std::invalid_argument);
  EXPECT_THROW(models::make_model("mlp", {1, 28, 28}, 0), std::invalid_argument);
}

TEST(ModelsTest, SameSeedGivesIdenticalParameters) {
  for (const char* name : {"mlp", "cnn"}) {
    torch::manual_seed(1);
    auto a = models::make_model(name, {1, 28, 28}, 10, 42);
    torch::manual_seed(2);  // the global generator must not matter
    auto b = models::make_model(name, {1, 28, 28}, 10, 42);
    auto c = models::make_model(name, {1, 28, 28}, 10, 43);
    const auto pa = a->parameters(), pb = b->parameters(), pc = c->parameters();
    ASSERT_EQ(pa.size(), pb.size());
    bool all_equal_to_c = true;
    for (std::size_t k = 0; k < pa.size(); ++k) {
      EXPECT_TRUE(torch::equal(pa[k], pb[k])) << name << " parameter " << k;
      all_equal_to_c = all_equal_to_c && torch::equal(pa[k], pc[k]);
      // Default LibTorch scale: |w| <= 1/sqrt(fan_in).
      const std::int64_t fan_in = pa[k].dim() > 1 ? pa[k].numel() / pa[k].size(0) : 0;
      if (fan_in > 0) {
        EXPECT_LE(pa[k].abs().max().item<double>(), 1.0 / std::sqrt(fan_in) + 1e-7);
      }
    }
    EXPECT_FALSE(all_equal_to_c) << name;
  }
}

// Plain SGD on the synthetic task: the loss falls clearly and training accuracy gets high.
void train_and_check(const std::string& name, int steps, double learning_rate) {
  torch::set_num_threads(1);
  auto ds = synthetic(1000, {1, 28, 28}, 7);
  auto model = models::make_model(name, ds->shape(), 10, 3);
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(learning_rate).momentum(0.9));
  BatchLoader loader(ds, LoaderOptions().set_batch_size(32).set_drop_last(true).set_seed(1));
  double first_loss = 0.0, last_loss = 0.0;
  const int window = 10;
  for (int step = 0; step < steps; ++step) {
    const Batch batch = loader.next_cyclic();
    sgd.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(model->forward(batch.images), batch.labels);
    loss.backward();
    sgd.step();
    if (step < window) first_loss += loss.item<double>() / window;
    if (step >= steps - window) last_loss += loss.item<double>() / window;
  }
  torch::NoGradGuard no_grad;
  const Batch all = data::to_batch(*ds);
  const double accuracy =
      model->forward(all.images).argmax(1).eq(all.labels).to(torch::kDouble).mean().item<double>();
  std::printf(
      "%s: mean loss of the first %d steps %.3f, of the last %d steps %.3f, training accuracy "
      "%.3f\n",
      name.c_str(), window, first_loss, window, last_loss, accuracy);
  EXPECT_GT(first_loss, 1.5) << name;  // near log(10) = 2.3 at the start
  EXPECT_LT(last_loss, 0.3 * first_loss) << name;
  EXPECT_GT(accuracy, 0.9) << name;
}

TEST(ModelsTest, MlpLearnsTheSyntheticTask) {
  train_and_check("mlp", 80, 0.02);
}
TEST(ModelsTest, CnnLearnsTheSyntheticTask) {
  train_and_check("cnn", 120, 0.02);
}

}  // namespace
}  // namespace decent
