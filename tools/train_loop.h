// The training loop of decent-train, run by every rank: model, optimizer, per-epoch metrics,
// evaluation of the averaged and local models, checkpoints and resume.
#pragma once

#include "decent/comm/context.h"
#include "train_data.h"
#include "train_options.h"

#include <stdexcept>
#include <string>

namespace decent::train {

// The training loss became NaN or infinite; the metrics up to that epoch have been written.
class TrainingDiverged : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Checks what needs the libraries to be known: the algorithm and its option values, the
// topology at this world size, the weight rule, the model, the straggler rank. Throws
// UsageError listing the valid names.
void validate_setup(const TrainOptions& options, int world_size);

// "name  description" lines for --list-algorithms and --list-topologies.
std::string algorithm_list();
std::string topology_list();

// Trains rank ctx->rank() of the job. Every rank of the job calls it with the same options
// and data. Rank 0 prints (unless quiet) and writes the metrics file. Throws UsageError when
// --resume finds no checkpoint every rank has or one written with other options, and
// TrainingDiverged when the loss stops being finite.
void train_rank(const TrainOptions& options, const TrainingData& data, const ContextPtr& ctx);

}  // namespace decent::train
