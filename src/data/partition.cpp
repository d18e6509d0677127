#include "decent/data/partition.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "decent/data/random.h"

namespace decent::data {
namespace {

// Distinct streams so the schemes do not share random sequences for the same seed.
constexpr std::uint64_t kIidStream = 0x11d;
constexpr std::uint64_t kShardsStream = 0x5a4d;
constexpr std::uint64_t kDirichletStream = 0xd1c;

using Parts = std::vector<std::vector<std::int64_t>>;

Parts partition_iid(std::int64_t n, int world_size, std::uint64_t seed) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  Rng rng(mix_seed(seed, kIidStream));
  rng.shuffle(order);
  Parts parts(static_cast<std::size_t>(world_size));
  const std::int64_t base = n / world_size;
  const std::int64_t extra = n % world_size;
  std::int64_t begin = 0;
  for (int r = 0; r < world_size; ++r) {
    const std::int64_t size = base + (r < extra ? 1 : 0);
    parts[r].assign(order.begin() + begin, order.begin() + begin + size);
    begin += size;
  }
  return parts;
}

Parts partition_shards(const std::vector<std::int64_t>& labels, int world_size, int shards_per_rank,
                       std::uint64_t seed) {
  const std::int64_t n = static_cast<std::int64_t>(labels.size());
  if (shards_per_rank < 1) {
    throw std::invalid_argument(
        fmt::format("partition 'shards': shards_per_rank must be >= 1, got {}", shards_per_rank));
  }
  const std::int64_t num_shards = static_cast<std::int64_t>(world_size) * shards_per_rank;
  if (n < num_shards) {
    throw std::invalid_argument(
        fmt::format("partition 'shards': {} samples cannot fill {} ranks x {} shards", n,
                    world_size, shards_per_rank));
  }
  Rng rng(mix_seed(seed, kShardsStream));
  // Label-sorted order with a random order inside each class, so shard contents depend on seed.
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  rng.shuffle(order);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int64_t a, std::int64_t b) { return labels[a] < labels[b]; });

  std::vector<std::int64_t> shard_ids(static_cast<std::size_t>(num_shards));
  std::iota(shard_ids.begin(), shard_ids.end(), 0);
  rng.shuffle(shard_ids);

  Parts parts(static_cast<std::size_t>(world_size));
  for (int r = 0; r < world_size; ++r) {
    for (int k = 0; k < shards_per_rank; ++k) {
      const std::int64_t shard = shard_ids[static_cast<std::size_t>(r) * shards_per_rank + k];
      const std::int64_t begin = shard * n / num_shards;
      const std::int64_t end = (shard + 1) * n / num_shards;
      parts[r].insert(parts[r].end(), order.begin() + begin, order.begin() + end);
    }
  }
  return parts;
}

// Label skew after Yurochkin et al. 2019 / Wang et al. 2020 (FedMA), as implemented in
// NIID-Bench (Li et al. 2022): for each class, shuffle its samples, draw p ~ Dir(alpha * 1_n)
// over the ranks, zero the share of ranks that already hold >= N/n samples (keeps sizes from
// running away), renormalise and cut the class at the cumulative proportions. Instead of
// redrawing until every rank is large enough, ranks below min_samples are topped up afterwards
// with samples of the largest rank's most frequent class, which always terminates.
Parts partition_dirichlet(const std::vector<std::int64_t>& labels, int num_classes, int world_size,
                          double alpha, std::int64_t min_samples, std::uint64_t seed) {
  const std::int64_t n = static_cast<std::int64_t>(labels.size());
  if (!(alpha > 0.0) || !std::isfinite(alpha)) {
    throw std::invalid_argument(
        fmt::format("partition 'dirichlet': alpha must be positive and finite, got {}", alpha));
  }
  if (min_samples < 0 || n < min_samples * world_size) {
    throw std::invalid_argument(
        fmt::format("partition 'dirichlet': {} samples cannot give {} ranks at least {} each", n,
                    world_size, min_samples));
  }
  std::vector<std::vector<std::int64_t>> by_class(static_cast<std::size_t>(num_classes));
  for (std::int64_t i = 0; i < n; ++i) by_class[labels[i]].push_back(i);

  Rng rng(mix_seed(seed, kDirichletStream));
  Parts parts(static_cast<std::size_t>(world_size));
  for (auto& members : by_class) {
    if (members.empty()) continue;
    rng.shuffle(members);
    std::vector<double> p = rng.dirichlet(alpha, world_size);
    double sum = 0.0;
    for (int r = 0; r < world_size; ++r) {
      if (static_cast<std::int64_t>(parts[r].size()) * world_size >= n) p[r] = 0.0;
      sum += p[r];
    }
    if (!(sum > 0.0)) {
      // Every open rank drew an underflowing share: spread the class over the open ranks.
      for (int r = 0; r < world_size; ++r) {
        p[r] = static_cast<std::int64_t>(parts[r].size()) * world_size < n ? 1.0 : 0.0;
        sum += p[r];
      }
    }
    const std::int64_t m = static_cast<std::int64_t>(members.size());
    double cumulative = 0.0;
    std::int64_t begin = 0;
    for (int r = 0; r < world_size; ++r) {
      cumulative += p[r] / sum;
      const std::int64_t end =
          r == world_size - 1 ? m
                              : std::min(m, static_cast<std::int64_t>(std::floor(cumulative * m)));
      if (end > begin) {
        parts[r].insert(parts[r].end(), members.begin() + begin, members.begin() + end);
        begin = end;
      }
    }
  }

  // Top-up: move samples from the largest rank (lowest rank number on ties) to each rank that
  // is short, taking the donor's most frequent class so its skew changes least.
  for (int needy = 0; needy < world_size; ++needy) {
    while (static_cast<std::int64_t>(parts[needy].size()) < min_samples) {
      int donor = 0;
      for (int r = 1; r < world_size; ++r) {
        if (parts[r].size() > parts[donor].size()) donor = r;
      }
      std::vector<std::int64_t> counts(static_cast<std::size_t>(num_classes), 0);
      for (std::int64_t i : parts[donor]) ++counts[labels[i]];
      const std::int64_t major = std::max_element(counts.begin(), counts.end()) - counts.begin();
      auto it = std::find_if(parts[donor].rbegin(), parts[donor].rend(),
                             [&](std::int64_t i) { return labels[i] == major; });
      parts[needy].push_back(*it);
      parts[donor].erase(std::next(it).base());
    }
  }
  return parts;
}

}  // namespace

PartitionScheme parse_partition_scheme(const std::string& name) {
  if (name == "iid") return PartitionScheme::kIid;
  if (name == "shards") return PartitionScheme::kShards;
  if (name == "dirichlet") return PartitionScheme::kDirichlet;
  throw std::invalid_argument(
      fmt::format("unknown partition scheme '{}' (expected iid, shards or dirichlet)", name));
}

const char* partition_scheme_name(PartitionScheme scheme) {
  switch (scheme) {
    case PartitionScheme::kIid:
      return "iid";
    case PartitionScheme::kShards:
      return "shards";
    case PartitionScheme::kDirichlet:
      return "dirichlet";
  }
  return "unknown";
}

PartitionOptions parse_partition_spec(const std::string& spec, std::uint64_t seed) {
  PartitionOptions options;
  options.seed = seed;
  const std::size_t colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
  options.scheme = parse_partition_scheme(name);
  if (colon == std::string::npos) return options;
  try {
    std::size_t used = 0;
    switch (options.scheme) {
      case PartitionScheme::kIid:
        throw std::invalid_argument("iid takes no parameter");
      case PartitionScheme::kShards:
        options.shards_per_rank = std::stoi(arg, &used);
        if (options.shards_per_rank < 1) throw std::invalid_argument("shards must be >= 1");
        break;
      case PartitionScheme::kDirichlet:
        options.dirichlet_alpha = std::stod(arg, &used);
        if (!(options.dirichlet_alpha > 0.0) || !std::isfinite(options.dirichlet_alpha)) {
          throw std::invalid_argument("alpha must be positive");
        }
        break;
    }
    if (used != arg.size()) throw std::invalid_argument("trailing characters");
  } catch (const std::exception& e) {
    throw std::invalid_argument(
        fmt::format("bad partition spec '{}' ({}); expected iid, shards[:K] or dirichlet[:ALPHA]",
                    spec, e.what()));
  }
  return options;
}

std::string describe(const PartitionOptions& options) {
  switch (options.scheme) {
    case PartitionScheme::kIid:
      return fmt::format("iid(seed={})", options.seed);
    case PartitionScheme::kShards:
      return fmt::format("shards(per_rank={}, seed={})", options.shards_per_rank, options.seed);
    case PartitionScheme::kDirichlet:
      return fmt::format("dirichlet(alpha={}, seed={})", options.dirichlet_alpha, options.seed);
  }
  return "unknown";
}

std::vector<std::vector<std::int64_t>> partition_indices(const std::vector<std::int64_t>& labels,
                                                         int num_classes, int world_size,
                                                         const PartitionOptions& options) {
  if (world_size < 1) {
    throw std::invalid_argument(
        fmt::format("partition: world_size must be >= 1, got {}", world_size));
  }
  if (num_classes < 1) {
    throw std::invalid_argument(
        fmt::format("partition: num_classes must be >= 1, got {}", num_classes));
  }
  const std::int64_t n = static_cast<std::int64_t>(labels.size());
  for (std::int64_t i = 0; i < n; ++i) {
    if (labels[i] < 0 || labels[i] >= num_classes) {
      throw std::invalid_argument(fmt::format("partition: label {} of sample {} is outside [0, {})",
                                              labels[i], i, num_classes));
    }
  }
  if (n < world_size) {
    throw std::invalid_argument(
        fmt::format("partition {}: {} samples for {} ranks; every rank needs at least one",
                    partition_scheme_name(options.scheme), n, world_size));
  }
  Parts parts;
  switch (options.scheme) {
    case PartitionScheme::kIid:
      parts = partition_iid(n, world_size, options.seed);
      break;
    case PartitionScheme::kShards:
      parts = partition_shards(labels, world_size, options.shards_per_rank, options.seed);
      break;
    case PartitionScheme::kDirichlet:
      parts = partition_dirichlet(labels, num_classes, world_size, options.dirichlet_alpha,
                                  options.min_samples_per_rank, options.seed);
      break;
  }
  for (auto& part : parts) std::sort(part.begin(), part.end());
  return parts;
}

std::vector<std::int64_t> local_indices(const std::vector<std::int64_t>& labels, int num_classes,
                                        int world_size, int rank, const PartitionOptions& options) {
  if (rank < 0 || rank >= world_size) {
    throw std::invalid_argument(
        fmt::format("partition: rank {} is outside [0, {})", rank, world_size));
  }
  auto parts = partition_indices(labels, num_classes, world_size, options);
  return std::move(parts[static_cast<std::size_t>(rank)]);
}

std::vector<std::int64_t> label_histogram(const std::vector<std::int64_t>& labels,
                                          const std::vector<std::int64_t>& indices,
                                          int num_classes) {
  std::vector<std::int64_t> counts(static_cast<std::size_t>(std::max(num_classes, 0)), 0);
  for (std::int64_t i : indices) {
    if (i < 0 || i >= static_cast<std::int64_t>(labels.size())) {
      throw std::out_of_range(
          fmt::format("label_histogram: index {} outside [0, {})", i, labels.size()));
    }
    const std::int64_t label = labels[i];
    if (label < 0 || label >= num_classes) {
      throw std::out_of_range(fmt::format("label_histogram: label {} of sample {} outside [0, {})",
                                          label, i, num_classes));
    }
    ++counts[static_cast<std::size_t>(label)];
  }
  return counts;
}

std::vector<std::vector<std::int64_t>> label_histograms(
    const std::vector<std::int64_t>& labels, const std::vector<std::vector<std::int64_t>>& parts,
    int num_classes) {
  std::vector<std::vector<std::int64_t>> result;
  result.reserve(parts.size());
  for (const auto& part : parts) result.push_back(label_histogram(labels, part, num_classes));
  return result;
}

std::string format_histograms(const std::vector<std::vector<std::int64_t>>& histograms) {
  if (histograms.empty()) return "";
  const std::size_t classes = histograms.front().size();
  std::string out = "rank";
  for (std::size_t c = 0; c < classes; ++c) out += fmt::format(" {:>6}", fmt::format("c{}", c));
  out += fmt::format(" {:>7} {:>8}\n", "total", "max-frac");
  for (std::size_t r = 0; r < histograms.size(); ++r) {
    out += fmt::format("{:>4}", r);
    std::int64_t total = 0;
    std::int64_t largest = 0;
    for (std::int64_t count : histograms[r]) {
      out += fmt::format(" {:>6}", count);
      total += count;
      largest = std::max(largest, count);
    }
    const double fraction = total > 0 ? static_cast<double>(largest) / total : 0.0;
    out += fmt::format(" {:>7} {:>8.3f}\n", total, fraction);
  }
  return out;
}

}  // namespace decent::data
