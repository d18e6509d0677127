// Splitting a dataset across ranks. Every rank computes the same global assignment from the
// labels and a shared seed, then keeps its own part: no communication is needed and the parts
// are disjoint by construction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace decent::data {

enum class PartitionScheme {
  kIid,        // seeded shuffle, then equal contiguous slices (sizes differ by at most one)
  kShards,     // label-sorted shards, shards_per_rank random shards per rank (McMahan et al.)
  kDirichlet,  // per class, proportions ~ Dir(alpha) across ranks (FedMA / NIID-Bench style)
};

struct PartitionOptions {
  PartitionScheme scheme = PartitionScheme::kIid;
  // Must be equal on every rank; the assignment is a pure function of labels and options.
  std::uint64_t seed = 0;
  // kShards: number of label-sorted shards each rank receives; 2 gives most ranks 2 classes.
  int shards_per_rank = 2;
  // kDirichlet: concentration; 0.1 gives each rank mostly one or two classes, 1000 is near-iid.
  double dirichlet_alpha = 0.5;
  // kDirichlet: ranks left with fewer samples are topped up from the largest ranks.
  std::int64_t min_samples_per_rank = 1;
};

// "iid", "shards" or "dirichlet".
PartitionScheme parse_partition_scheme(const std::string& name);
const char* partition_scheme_name(PartitionScheme scheme);
// Parses "iid", "shards", "shards:K" or "dirichlet:ALPHA" (default alpha 0.5) into options with
// the given seed. Throws std::invalid_argument naming the spec.
PartitionOptions parse_partition_spec(const std::string& spec, std::uint64_t seed = 0);
// Human-readable form, e.g. "dirichlet(alpha=0.1, seed=1)".
std::string describe(const PartitionOptions& options);

// The global assignment: result[r] lists the sample indices of rank r in ascending order.
// labels[i] must lie in [0, num_classes). Throws std::invalid_argument when the dataset is too
// small for the scheme (fewer samples than ranks * min_samples_per_rank, fewer samples than
// shards) or an argument is out of range.
std::vector<std::vector<std::int64_t>> partition_indices(const std::vector<std::int64_t>& labels,
                                                         int num_classes, int world_size,
                                                         const PartitionOptions& options);

// The part of `rank` in partition_indices (computed in full, then sliced).
std::vector<std::int64_t> local_indices(const std::vector<std::int64_t>& labels, int num_classes,
                                        int world_size, int rank, const PartitionOptions& options);

// Samples of each class among `indices`.
std::vector<std::int64_t> label_histogram(const std::vector<std::int64_t>& labels,
                                          const std::vector<std::int64_t>& indices,
                                          int num_classes);
// One histogram per rank: result[r][c] = samples of class c on rank r.
std::vector<std::vector<std::int64_t>> label_histograms(
    const std::vector<std::int64_t>& labels, const std::vector<std::vector<std::int64_t>>& parts,
    int num_classes);

// A text table with one row per rank (class counts, total, largest class fraction), for logs.
std::string format_histograms(const std::vector<std::vector<std::int64_t>>& histograms);

}  // namespace decent::data
