#include "decent/data/partition.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "decent/data/dataset.h"
#include "decent/data/random.h"

namespace decent::data {
namespace {

// n samples, balanced classes in seeded random order (like Fashion-MNIST's train split).
std::vector<std::int64_t> balanced_labels(std::int64_t n, int classes, std::uint64_t seed) {
  std::vector<std::int64_t> labels(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) labels[i] = i % classes;
  Rng rng(seed);
  rng.shuffle(labels);
  return labels;
}

void expect_disjoint_cover(const std::vector<std::vector<std::int64_t>>& parts, std::int64_t n) {
  std::vector<int> owner(static_cast<std::size_t>(n), -1);
  for (std::size_t r = 0; r < parts.size(); ++r) {
    EXPECT_TRUE(std::is_sorted(parts[r].begin(), parts[r].end()));
    for (std::int64_t i : parts[r]) {
      ASSERT_GE(i, 0);
      ASSERT_LT(i, n);
      EXPECT_EQ(owner[i], -1) << "sample " << i << " on ranks " << owner[i] << " and " << r;
      owner[i] = static_cast<int>(r);
    }
  }
  EXPECT_EQ(std::count(owner.begin(), owner.end(), -1), 0) << "samples left unassigned";
}

double mean_max_class_fraction(const std::vector<std::vector<std::int64_t>>& histograms) {
  double sum = 0.0;
  for (const auto& h : histograms) {
    const std::int64_t total = std::accumulate(h.begin(), h.end(), std::int64_t{0});
    sum += static_cast<double>(*std::max_element(h.begin(), h.end())) / total;
  }
  return sum / static_cast<double>(histograms.size());
}

TEST(RngTest, IsReproducibleAndRoughlyUniform) {
  Rng a(7), b(7), c(8);
  EXPECT_EQ(a.next_u64(), b.next_u64());
  EXPECT_NE(a.next_u64(), c.next_u64());
  Rng rng(1);
  std::vector<int> bins(10, 0);
  double sum = 0.0, sum_sq = 0.0;
  const int draws = 100000;
  for (int i = 0; i < draws; ++i) {
    ++bins[rng.uniform_int(10)];
    const double z = rng.normal();
    sum += z;
    sum_sq += z * z;
  }
  for (int count : bins) EXPECT_NEAR(count, draws / 10, 500);  // ~5 standard deviations
  EXPECT_NEAR(sum / draws, 0.0, 0.02);
  EXPECT_NEAR(sum_sq / draws, 1.0, 0.02);
}

TEST(RngTest, GammaAndDirichletHaveTheRightMeans) {
  Rng rng(3);
  for (double shape : {0.1, 0.5, 2.0, 30.0}) {
    double sum = 0.0;
    const int draws = 40000;
    for (int i = 0; i < draws; ++i) sum += std::exp(rng.log_gamma(shape));
    // Var(Gamma(k)) = k, so the mean of `draws` samples has standard deviation sqrt(k/draws).
    EXPECT_NEAR(sum / draws, shape, 5 * std::sqrt(shape / draws)) << "shape " << shape;
  }
  const auto p = rng.dirichlet(0.01, 16);
  EXPECT_NEAR(std::accumulate(p.begin(), p.end(), 0.0), 1.0, 1e-12);
  EXPECT_GT(*std::max_element(p.begin(), p.end()), 0.5);  // tiny alpha: one component dominates
}

TEST(PartitionTest, IidIsDisjointCoveringBalancedAndSeeded) {
  const auto labels = balanced_labels(1003, 10, 1);
  const PartitionOptions options = parse_partition_spec("iid", 11);
  const auto parts = partition_indices(labels, 10, 4, options);
  ASSERT_EQ(parts.size(), 4u);
  expect_disjoint_cover(parts, 1003);
  EXPECT_EQ(parts[0].size(), 251u);  // 1003 = 3 * 251 + 250
  EXPECT_EQ(parts[1].size(), 251u);
  EXPECT_EQ(parts[2].size(), 251u);
  EXPECT_EQ(parts[3].size(), 250u);
  EXPECT_EQ(parts, partition_indices(labels, 10, 4, options));
  EXPECT_NE(parts, partition_indices(labels, 10, 4, parse_partition_spec("iid", 12)));
  EXPECT_EQ(local_indices(labels, 10, 4, 2, options), parts[2]);
  // A random quarter of a balanced set holds each class at about 10% (binomial sd ~ 19 of 251).
  for (const auto& h : label_histograms(labels, parts, 10)) {
    for (std::int64_t count : h) EXPECT_NEAR(count, 25, 15);
  }
}

TEST(PartitionTest, ShardsGiveEachRankFewClasses) {
  const std::int64_t n = 6000;
  const auto labels = balanced_labels(n, 10, 2);
  const PartitionOptions options = parse_partition_spec("shards:2", 5);
  EXPECT_EQ(options.shards_per_rank, 2);
  const auto parts = partition_indices(labels, 10, 10, options);
  expect_disjoint_cover(parts, n);
  // 20 shards of 300 samples over label-sorted data (600 per class): every shard is one class.
  for (const auto& part : parts) EXPECT_EQ(part.size(), 600u);
  for (const auto& h : label_histograms(labels, parts, 10)) {
    const auto classes = std::count_if(h.begin(), h.end(), [](std::int64_t c) { return c > 0; });
    EXPECT_GE(classes, 1);
    EXPECT_LE(classes, 2);
    for (std::int64_t count : h) EXPECT_TRUE(count == 0 || count == 300 || count == 600);
  }
  EXPECT_EQ(parts, partition_indices(labels, 10, 10, options));
  EXPECT_NE(parts, partition_indices(labels, 10, 10, parse_partition_spec("shards:2", 6)));
}

TEST(PartitionTest, ShardsCoverUnevenSizes) {
  const auto labels = balanced_labels(1001, 7, 3);
  const auto parts = partition_indices(labels, 7, 3, parse_partition_spec("shards:3", 1));
  expect_disjoint_cover(parts, 1001);
  for (const auto& part : parts) EXPECT_NEAR(static_cast<double>(part.size()), 1001.0 / 3, 2.0);
}

TEST(PartitionTest, DirichletSmallAlphaIsSkewed) {
  const std::int64_t n = 6000;
  const auto labels = balanced_labels(n, 10, 4);
  // Each class goes mostly to one rank, so a rank is dominated by about 10 / world classes:
  // the largest class holds well over the iid share of 0.1, and over half once world >= 8.
  for (const auto& [world, min_skew] :
       std::vector<std::pair<int, double>>{{4, 0.3}, {8, 0.5}, {16, 0.5}}) {
    const auto options = parse_partition_spec("dirichlet:0.1", 9);
    const auto parts = partition_indices(labels, 10, world, options);
    expect_disjoint_cover(parts, n);
    for (const auto& part : parts) EXPECT_GE(part.size(), 1u);
    const double skew = mean_max_class_fraction(label_histograms(labels, parts, 10));
    EXPECT_GT(skew, min_skew) << "world " << world;
    EXPECT_EQ(parts, partition_indices(labels, 10, world, options));
  }
}

TEST(PartitionTest, DirichletLargeAlphaIsNearlyUniform) {
  const std::int64_t n = 6000;
  const auto labels = balanced_labels(n, 10, 4);
  const auto parts = partition_indices(labels, 10, 8, parse_partition_spec("dirichlet:1000", 3));
  expect_disjoint_cover(parts, n);
  const auto histograms = label_histograms(labels, parts, 10);
  // Expected 75 of each class per rank; Dir(1000) shares have relative sd ~ 0.1.
  for (const auto& h : histograms) {
    for (std::int64_t count : h) EXPECT_NEAR(count, 75, 30);
  }
  EXPECT_LT(mean_max_class_fraction(histograms), 0.15);
}

TEST(PartitionTest, DirichletTopsUpEmptyRanks) {
  // 16 ranks, 2 classes, alpha 0.01: most ranks draw nothing and must be topped up.
  const auto labels = balanced_labels(200, 2, 5);
  PartitionOptions options = parse_partition_spec("dirichlet:0.01", 1);
  options.min_samples_per_rank = 3;
  const auto parts = partition_indices(labels, 2, 16, options);
  expect_disjoint_cover(parts, 200);
  for (const auto& part : parts) EXPECT_GE(part.size(), 3u);
  options.min_samples_per_rank = 13;  // 16 * 13 > 200
  EXPECT_THROW(partition_indices(labels, 2, 16, options), std::invalid_argument);
}

TEST(PartitionTest, RejectsBadArguments) {
  const auto labels = balanced_labels(20, 2, 1);
  const PartitionOptions iid;
  EXPECT_THROW(partition_indices(labels, 2, 0, iid), std::invalid_argument);
  EXPECT_THROW(partition_indices(labels, 2, 21, iid), std::invalid_argument);
  EXPECT_THROW(partition_indices(labels, 1, 2, iid), std::invalid_argument);  // label 1 >= 1
  EXPECT_THROW(local_indices(labels, 2, 4, 4, iid), std::invalid_argument);
  EXPECT_THROW(partition_indices(labels, 2, 4, parse_partition_spec("shards:6")),
               std::invalid_argument);  // 24 shards > 20 samples
  EXPECT_THROW(parse_partition_spec("random"), std::invalid_argument);
  EXPECT_THROW(parse_partition_spec("dirichlet:-1"), std::invalid_argument);
  EXPECT_THROW(parse_partition_spec("dirichlet:0.1x"), std::invalid_argument);
  EXPECT_THROW(parse_partition_spec("iid:3"), std::invalid_argument);
  EXPECT_DOUBLE_EQ(parse_partition_spec("dirichlet").dirichlet_alpha, 0.5);
  EXPECT_EQ(describe(parse_partition_spec("dirichlet:0.1", 4)), "dirichlet(alpha=0.1, seed=4)");
}

TEST(PartitionTest, HistogramsCountLabelsAndFormat) {
  const std::vector<std::int64_t> labels = {0, 1, 1, 2, 2, 2};
  const std::vector<std::vector<std::int64_t>> parts = {{0, 3}, {1, 2, 4, 5}};
  const auto histograms = label_histograms(labels, parts, 3);
  EXPECT_EQ(histograms[0], (std::vector<std::int64_t>{1, 0, 1}));
  EXPECT_EQ(histograms[1], (std::vector<std::int64_t>{0, 2, 2}));
  const std::string table = format_histograms(histograms);
  EXPECT_NE(table.find("0.500"), std::string::npos) << table;
  EXPECT_THROW(label_histogram(labels, {6}, 3), std::out_of_range);
}

}  // namespace
}  // namespace decent::data
