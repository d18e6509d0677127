#include "train_loop.h"

#include "decent/comm/window.h"
#include "decent/data/random.h"
#include "decent/topology/errors.h"
#include "decent/topology/registry.h"
#include "decent/torch/models.h"
#include "decent/torch/optim/base.h"
#include "decent/torch/optim/factory.h"
#include "decent/torch/optim_async.h"
#include "decent/torch/tensor_ops.h"
#include "train_checkpoint.h"
#include "train_metrics.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

#include <unistd.h>

namespace decent::train {
namespace {

using Seconds = std::chrono::duration<double>;
using SteadyClock = std::chrono::steady_clock;

// Test samples per forward pass during evaluation (bounds the activation memory).
constexpr std::int64_t kEvalChunk = 1000;
// Stream of the loader seeds, apart from the other uses of --seed.
constexpr std::uint64_t kLoaderSeedStream = 0x6c6f61646572ULL;

topology::TopologyOptions topology_options(const TrainOptions& o) {
  topology::TopologyOptions t;
  t.weights = topology::parse_weight_rule(o.weights);
  t.seed = o.seed;
  return t;
}

optim::AlgorithmConfig algorithm_config(const TrainOptions& o) {
  optim::AlgorithmConfig c;
  c.name = o.algorithm;
  c.lr = o.lr;
  c.momentum = o.momentum;
  c.weight_decay = o.weight_decay;
  c.period = o.period;
  c.gossip_rounds = o.gossip_rounds;
  c.qg_mu = o.qg_mu;
  c.slowmo_beta = o.slowmo_beta;
  c.slowmo_alpha = o.slowmo_alpha;
  c.overlap = o.overlap;
  c.base_optimizer = o.base_optimizer;
  c.combine = o.combine;
  c.compressor = o.compressor;
  c.consensus_step = o.consensus_step;
  return c;
}

std::vector<std::string> algorithm_names() {
  std::vector<std::string> names;
  for (const auto& a : optim::list_algorithms()) names.push_back(a.name);
  return names;
}

std::vector<std::string> topology_names() {
  std::vector<std::string> names;
  for (const auto& t : topology::list_topologies()) names.push_back(t.name);
  return names;
}

std::int64_t count_correct(torch::nn::Sequential& model, const data::Batch& batch) {
  std::int64_t correct = 0;
  for (std::int64_t start = 0; start < batch.size(); start += kEvalChunk) {
    const std::int64_t end = std::min(batch.size(), start + kEvalChunk);
    const torch::Tensor logits = model->forward(batch.images.slice(0, start, end));
    correct += logits.argmax(1).eq(batch.labels.slice(0, start, end)).sum().item<std::int64_t>();
  }
  return correct;
}

std::string with_thousands(std::int64_t v) {
  std::string digits = std::to_string(v);
  for (int pos = static_cast<int>(digits.size()) - 3; pos > 0; pos -= 3) digits.insert(pos, ",");
  return digits;
}

// Test accuracy of one epoch: of the average model, of the local models (mean over ranks) and
// of rank 0's model. Every rank receives the same values.
struct Accuracies {
  double average_model = 0.0;
  double local_models = 0.0;
  double rank0_model = 0.0;
};

// Evaluates on the first eval_count test samples, viewed in place (no copy) from the test set.
// The average model (1/n) sum_i x_i is formed in a second model by an allreduce of copies, so
// the training state is untouched; each rank scores a slice of the test samples with it and the
// counts are summed. Each rank then scores its own model on all samples; the local accuracy is
// the mean of those, computed from the summed counts (exact, so ranks holding identical models
// report exactly the average model's accuracy).
class Evaluator {
 public:
  Evaluator(const TrainOptions& o, const TrainingData& d, Context& ctx)
      : ctx_(ctx),
        eval_count_(d.eval_count),
        average_model_(
            models::make_model(o.model, d.train->shape(), d.train->num_classes, o.seed)) {
    const data::Dataset& test = *d.test;
    // The evaluation code only reads these tensors.
    whole_.images =
        torch::from_blob(const_cast<float*>(test.images.data()),
                         {eval_count_, test.channels, test.height, test.width}, torch::kFloat32);
    whole_.labels = torch::from_blob(const_cast<std::int64_t*>(test.labels.data()), {eval_count_},
                                     torch::kInt64);
    const std::int64_t n = ctx.size();
    const std::int64_t r = ctx.rank();
    const std::int64_t begin = r * eval_count_ / n;
    const std::int64_t end = (r + 1) * eval_count_ / n;
    slice_.images = whole_.images.slice(0, begin, end);
    slice_.labels = whole_.labels.slice(0, begin, end);
  }

  // Collective: every rank calls it.
  Accuracies evaluate(torch::nn::Sequential& model) {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> averaged;
    copy_floating(model->parameters(), average_model_->parameters(), averaged);
    copy_floating(model->buffers(), average_model_->buffers(), averaged);
    allreduce_(ctx_, averaged, ReduceOp::kAverage);
    average_model_->eval();
    model->eval();
    // {average model on this rank's slice, own model on all samples, rank 0's model}
    double counts[3] = {static_cast<double>(count_correct(average_model_, slice_)),
                        static_cast<double>(count_correct(model, whole_)), 0.0};
    model->train();
    if (ctx_.rank() == 0) counts[2] = counts[1];
    ctx_.allreduce(Buffer(counts, 3), ReduceOp::kSum);
    const double e = static_cast<double>(eval_count_);
    Accuracies a;
    a.average_model = counts[0] / e;
    a.local_models = counts[1] / (e * ctx_.size());
    a.rank0_model = counts[2] / e;
    return a;
  }

 private:
  static void copy_floating(const std::vector<torch::Tensor>& from,
                            const std::vector<torch::Tensor>& to,
                            std::vector<torch::Tensor>& averaged) {
    for (std::size_t i = 0; i < from.size() && i < to.size(); ++i) {
      to[i].copy_(from[i]);
      if (to[i].is_floating_point()) averaged.push_back(to[i]);
    }
  }

  Context& ctx_;
  std::int64_t eval_count_;
  torch::nn::Sequential average_model_;
  data::Batch whole_;
  data::Batch slice_;
};

// Rank 0's console output: the header, the progress of a long epoch on a terminal, one line
// per epoch.
class Console {
 public:
  Console(bool enabled, bool under_mpi, std::int64_t steps_per_epoch)
      : enabled_(enabled),
        progress_(enabled && progress_wanted(under_mpi)),
        steps_per_epoch_(steps_per_epoch) {}

  void line(const std::string& text) {
    if (!enabled_) return;
    clear_progress();
    std::cout << text << std::endl;
  }

  // Called after step `step` (0-based) of the epoch; prints about every 10%.
  void progress(int epoch, int epochs, std::int64_t step, double mean_loss) {
    if (!progress_ || steps_per_epoch_ < 10) return;
    const std::int64_t done = step + 1;
    if (done == steps_per_epoch_ || done % std::max<std::int64_t>(1, steps_per_epoch_ / 10) != 0) {
      return;
    }
    std::cout << fmt::format("\r  epoch {}/{}: {:3d}%  loss {:.4f}", epoch, epochs,
                             static_cast<int>(100 * done / steps_per_epoch_), mean_loss)
              << std::flush;
    showing_progress_ = true;
  }

 private:
  void clear_progress() {
    if (showing_progress_) std::cout << "\r\033[K";
    showing_progress_ = false;
  }

  // DECENT_PROGRESS=1/0 forces the progress updates on/off. Otherwise they are shown on a
  // terminal, but not under an MPI launcher: Open MPI hands ranks a pseudo-terminal even when
  // its own output goes to a file.
  static bool progress_wanted(bool under_mpi) {
    if (const char* forced = std::getenv("DECENT_PROGRESS")) return std::string(forced) == "1";
    return !under_mpi && ::isatty(STDOUT_FILENO) == 1;
  }

  bool enabled_;
  bool progress_;
  std::int64_t steps_per_epoch_;
  bool showing_progress_ = false;
};

// The end of an epoch for asynchronous optimizers, whose ranks take different numbers of steps:
// the epoch is over once all ranks together have taken its share of steps. Every step adds 1 to
// a counter in rank 0's window (one-sided, atomic), so no rank waits for a slow one and the
// total overshoots by at most one step per rank.
class SharedStepCount {
 public:
  explicit SharedStepCount(Context& ctx)
      : window_(ctx.win_create("decent-train/steps", Buffer(&unused_, 1))) {}

  // Adds this rank's step; true when all ranks together have taken `epoch_end` steps.
  bool add_step(std::int64_t epoch_end) { return window_.fetch_add_counter(0, 1) + 1 >= epoch_end; }

 private:
  double unused_ = 0.0;
  Window& window_;
};

std::vector<EpochMetrics> metrics_from_json(const std::string& text) {
  std::vector<EpochMetrics> out;
  for (const auto& j : nlohmann::json::parse(text)) out.push_back(epoch_metrics_from_json(j));
  return out;
}

std::string metrics_to_json(const std::vector<EpochMetrics>& history) {
  nlohmann::ordered_json array = nlohmann::ordered_json::array();
  for (const auto& m : history) array.push_back(to_json(m));
  return array.dump();
}

}  // namespace

std::string algorithm_list() {
  std::string out;
  std::size_t width = 0;
  const auto algorithms = optim::list_algorithms();
  for (const auto& a : algorithms) width = std::max(width, a.name.size());
  for (const auto& a : algorithms) out += fmt::format("{:<{}}  {}\n", a.name, width, a.description);
  return out;
}

std::string topology_list() {
  std::string out;
  std::size_t width = 0;
  const auto topologies = topology::list_topologies();
  for (const auto& t : topologies) width = std::max(width, t.name.size());
  for (const auto& t : topologies) out += fmt::format("{:<{}}  {}\n", t.name, width, t.description);
  return out;
}

void validate_setup(const TrainOptions& o, int world_size) {
  const auto algorithms = algorithm_names();
  if (std::find(algorithms.begin(), algorithms.end(), o.algorithm) == algorithms.end()) {
    throw UsageError(
        fmt::format("unknown --algorithm '{}' (valid: {})", o.algorithm, join_names(algorithms)));
  }
  try {
    optim::validate(algorithm_config(o));
  } catch (const std::exception& e) {
    throw UsageError(fmt::format("--algorithm {}: {}", o.algorithm, e.what()));
  }
  const auto models = models::model_names();
  if (std::find(models.begin(), models.end(), o.model) == models.end()) {
    throw UsageError(fmt::format("unknown --model '{}' (valid: {})", o.model, join_names(models)));
  }
  try {
    topology_options(o);
  } catch (const topology::TopologyError& e) {
    throw UsageError(fmt::format("--weights: {}", e.what()));
  }
  try {
    topology::make_schedule(o.topology, world_size, topology_options(o));
  } catch (const topology::TopologyError& e) {
    const auto names = topology_names();
    if (std::find(names.begin(), names.end(), o.topology) == names.end() &&
        topology::is_static_topology(o.topology) == false &&
        std::string(e.what()).find("unknown") != std::string::npos) {
      throw UsageError(
          fmt::format("unknown --topology '{}' (valid: {})", o.topology, join_names(names)));
    }
    throw UsageError(
        fmt::format("--topology {} with {} ranks: {}", o.topology, world_size, e.what()));
  }
  if (o.slow_rank >= world_size) {
    throw UsageError(
        fmt::format("--slow-rank {} is not a rank of this {}-rank job", o.slow_rank, world_size));
  }
}

void train_rank(const TrainOptions& o, const TrainingData& d, const ContextPtr& ctx_ptr) {
  Context& ctx = *ctx_ptr;
  const int rank = ctx.rank();
  const int n = ctx.size();
  const bool lead = rank == 0;
  ctx.set_topology(topology::make_schedule(o.topology, n, topology_options(o)));

  // Same seed, same initial model everywhere; the broadcast makes it so even if a rank's
  // LibTorch build drew differently.
  torch::nn::Sequential model =
      models::make_model(o.model, d.train->shape(), d.train->num_classes, o.seed);
  broadcast_parameters(ctx, *model, 0);
  model->train();
  const std::vector<torch::Tensor> parameters = model->parameters();
  std::unique_ptr<torch::optim::Optimizer> optimizer =
      optim::make_optimizer(algorithm_config(o), parameters, ctx_ptr);
  auto* decent_optimizer = dynamic_cast<optim::DecentOptimizer*>(optimizer.get());
  auto* async_optimizer = dynamic_cast<optim::AsyncDecentOptimizer*>(optimizer.get());
  std::unique_ptr<SharedStepCount> shared_steps;
  if (async_optimizer != nullptr) shared_steps = std::make_unique<SharedStepCount>(ctx);

  BatchStream stream(
      d.train, d.parts[static_cast<std::size_t>(rank)], o.batch_size,
      data::mix_seed(data::mix_seed(o.seed, kLoaderSeedStream), static_cast<std::uint64_t>(rank)));
  Evaluator evaluator(o, d, ctx);

  // An epoch is one pass over the training set by all ranks together; every rank takes the
  // same number of steps whatever the size of its part.
  const std::int64_t global_batch = o.batch_size * n;
  std::int64_t steps_per_epoch = (d.train->n + global_batch - 1) / global_batch;
  if (o.max_steps_per_epoch > 0) steps_per_epoch = std::min(steps_per_epoch, o.max_steps_per_epoch);
  const std::int64_t total_steps = static_cast<std::int64_t>(o.epochs) * steps_per_epoch;
  const std::int64_t warmup_steps =
      std::llround(o.warmup_epochs * static_cast<double>(steps_per_epoch));

  const std::string fingerprint = resume_fingerprint(o, n).dump();
  RunDescription run;
  run.algorithm = o.algorithm;
  run.topology = o.topology;
  run.world_size = n;
  run.config = options_to_json(o);
  run.config["backend"] = ctx.backend();
  run.config["total_batch_size"] = global_batch;
  run.config["steps_per_epoch"] = steps_per_epoch;
  run.config["parameters"] = models::parameter_count(*model);
  run.config["train_samples"] = d.train->n;
  run.config["eval_samples"] = d.eval_count;
  run.config["partition_detail"] = d.partition_description;
  run.config["torch_threads"] = torch::get_num_threads();

  Console console(lead && !o.quiet, ctx.backend() == "mpi", steps_per_epoch);
  console.line(fmt::format(
      "decent-train: {} on {} with {} ranks ({} backend), model {} ({} parameters), {} ({} "
      "train / {} eval samples)",
      o.algorithm, o.topology, n, ctx.backend(), o.model,
      with_thousands(models::parameter_count(*model)), o.dataset, d.train->n, d.eval_count));
  console.line(fmt::format("  {}", describe_partition(d)));
  console.line(fmt::format(
      "  batch {} per rank ({} total), {} steps per epoch, lr {} {}{}, momentum {}, epochs {}",
      o.batch_size, global_batch, steps_per_epoch, o.lr, lr_schedule_name(o.lr_schedule),
      o.warmup_epochs > 0 ? fmt::format(" (warm-up {} epochs)", o.warmup_epochs) : "", o.momentum,
      o.epochs));

  // Run state; a checkpoint restores all of it.
  std::int64_t start_epoch = 0;
  std::int64_t global_step = 0;
  std::int64_t bytes_sent = 0;  // this rank's training traffic
  double wall_offset = 0.0;
  std::vector<EpochMetrics> history;

  if (o.resume) {
    // The newest epoch every rank has: a rank may have died before writing its last file.
    std::int64_t common = newest_checkpoint_epoch(o.checkpoint_dir, rank);
    ctx.allreduce(Buffer(&common, 1), ReduceOp::kMin);
    if (common < 0) {
      throw UsageError(
          fmt::format("--resume: {} holds no checkpoint that every one of the {} ranks has written",
                      o.checkpoint_dir, n));
    }
    const RankCheckpoint c =
        load_rank_checkpoint(o.checkpoint_dir, rank, common, fingerprint, *model, *optimizer);
    start_epoch = c.epoch;
    global_step = c.global_step;
    bytes_sent = c.bytes_sent;
    wall_offset = c.wall_time_s;
    stream.restore(c.stream_pass, c.stream_cursor);
    history = metrics_from_json(c.metrics_json);
    console.line(fmt::format("  resumed from {} at epoch {} (step {})", o.checkpoint_dir,
                             start_epoch, global_step));
  } else if (!o.checkpoint_dir.empty()) {
    // A fresh run: files of an earlier run in the directory must not be resumed later.
    remove_rank_checkpoints(o.checkpoint_dir, rank);
  }

  const auto started = SteadyClock::now();
  auto wall_time = [&] { return wall_offset + Seconds(SteadyClock::now() - started).count(); };
  auto write_metrics = [&] {
    if (lead && !o.metrics_file.empty()) {
      write_file_atomically(o.metrics_file, metrics_document(run, history).dump(2) + "\n");
    }
  };
  // Rank 0's clock, shared so that every rank's history (and so its checkpoint) equals rank 0's.
  auto share_wall_time = [&](double& wall) { ctx.broadcast(Buffer(&wall, 1), 0); };
  auto record_accuracies = [&](EpochMetrics& m) {
    const Accuracies a = evaluator.evaluate(model);
    m.test_accuracy_avg = a.average_model;
    m.test_accuracy_local = a.local_models;
    m.test_accuracy_rank0 = a.rank0_model;
  };

  if (o.epochs == 0) {
    EpochMetrics m;
    m.epoch = 0;
    m.consensus_distance = consensus_distance(ctx, parameters);
    record_accuracies(m);
    m.wall_time_s = wall_time();
    share_wall_time(m.wall_time_s);
    m.lr = o.lr;
    history.push_back(m);
    write_metrics();
    console.line(format_epoch_line(m, 0));
    return;
  }

  const int last_epoch = o.stop_after_epoch > 0 ? std::min(o.epochs, o.stop_after_epoch) : o.epochs;
  if (start_epoch >= last_epoch) {
    console.line(fmt::format("  nothing to do: the checkpoint is at epoch {}, --epochs is {}",
                             start_epoch, o.epochs));
    write_metrics();
    return;
  }

  const bool straggler = rank == o.slow_rank && o.slowdown > 1.0;
  for (int epoch = static_cast<int>(start_epoch) + 1; epoch <= last_epoch; ++epoch) {
    const auto epoch_started = SteadyClock::now();
    const std::uint64_t bytes_at_start = ctx.stats().bytes_sent;
    double loss_sum = 0.0;
    double samples = 0.0;
    double lr = o.lr;
    // Synchronous methods: steps_per_epoch steps on every rank. Asynchronous ones: as many
    // steps times n by all ranks together, shared by speed.
    const std::int64_t epoch_end = static_cast<std::int64_t>(epoch) * steps_per_epoch * n;
    bool epoch_done = false;
    std::int64_t local_steps = 0;
    for (std::int64_t step = 0; async_optimizer != nullptr ? !epoch_done : step < steps_per_epoch;
         ++step) {
      lr = learning_rate_at(o.lr_schedule, o.lr, global_step, total_steps, warmup_steps);
      optim::set_learning_rate(*optimizer, lr);
      const data::Batch batch = stream.next();
      const auto compute_started = SteadyClock::now();
      optimizer->zero_grad();
      const torch::Tensor loss =
          torch::nn::functional::cross_entropy(model->forward(batch.images), batch.labels);
      loss.backward();
      if (straggler) {
        std::this_thread::sleep_for((o.slowdown - 1.0) * (SteadyClock::now() - compute_started));
      }
      optimizer->step();
      loss_sum += loss.item<double>();
      samples += static_cast<double>(batch.size());
      ++global_step;
      ++local_steps;
      if (async_optimizer != nullptr) epoch_done = shared_steps->add_step(epoch_end);
      console.progress(epoch, o.epochs, std::min(step, steps_per_epoch - 1),
                       loss_sum / static_cast<double>(step + 1));
    }
    // Asynchronous methods: the epoch's steps are all done when the first rank stops (the
    // shared count reached them); what a slow rank still computes then belongs to no epoch.
    const double stepping_seconds = Seconds(SteadyClock::now() - epoch_started).count();
    if (async_optimizer != nullptr) {
      // Once every rank has stopped, nobody changes another's model: take this rank's own.
      ctx.barrier();
      async_optimizer->refresh_parameters();
    }
    // Communication an optimizer started ahead belongs to this epoch's traffic and time.
    if (decent_optimizer != nullptr) decent_optimizer->synchronize();
    double train_seconds = Seconds(SteadyClock::now() - epoch_started).count();
    bytes_sent += static_cast<std::int64_t>(ctx.stats().bytes_sent - bytes_at_start);

    // Metrics equal on every rank: sums and maxima over the ranks.
    double sums[4] = {loss_sum / static_cast<double>(std::max<std::int64_t>(1, local_steps)),
                      static_cast<double>(bytes_sent), samples, static_cast<double>(global_step)};
    ctx.allreduce(Buffer(sums, 4), ReduceOp::kSum);
    double async_seconds = stepping_seconds;
    ctx.allreduce(Buffer(&train_seconds, 1), ReduceOp::kMax);
    if (async_optimizer != nullptr) {
      ctx.allreduce(Buffer(&async_seconds, 1), ReduceOp::kMin);
      train_seconds = async_seconds;
      sums[2] = static_cast<double>(steps_per_epoch * n * o.batch_size);
    }
    EpochMetrics m;
    m.epoch = epoch;
    m.train_loss = sums[0] / n;
    m.bytes_sent_per_rank = sums[1] / n;
    m.samples_per_sec = train_seconds > 0 ? sums[2] / train_seconds : 0.0;
    m.consensus_distance = consensus_distance(ctx, parameters);
    m.lr = lr;
    // Asynchronous ranks differ in steps taken: the mean, so that every rank records the same.
    m.steps = async_optimizer != nullptr ? std::llround(sums[3] / n) : global_step;
    if (epoch % o.eval_every == 0 || epoch == last_epoch) record_accuracies(m);
    m.wall_time_s = wall_time();
    share_wall_time(m.wall_time_s);
    history.push_back(m);
    write_metrics();
    console.line(format_epoch_line(m, o.epochs));
    // The loss is the same on every rank (allreduced), so all ranks stop together. Going on
    // would only compute NaNs; the checkpoint of the last finite epoch stays resumable.
    if (!std::isfinite(m.train_loss)) {
      throw TrainingDiverged(fmt::format(
          "training diverged: the mean training loss of epoch {} is {} (try a smaller --lr or "
          "a longer --warmup-epochs)",
          epoch, m.train_loss));
    }

    if (!o.checkpoint_dir.empty()) {
      RankCheckpoint c;
      c.rank = rank;
      c.world_size = n;
      c.epoch = epoch;
      c.global_step = global_step;
      c.stream_pass = stream.pass();
      c.stream_cursor = stream.cursor();
      c.bytes_sent = bytes_sent;
      c.wall_time_s = m.wall_time_s;
      c.fingerprint_json = fingerprint;
      c.metrics_json = metrics_to_json(history);
      save_rank_checkpoint(o.checkpoint_dir, c, *model, *optimizer);
      // The manifest names an epoch only once every rank's file of it exists.
      ctx.barrier();
      if (lead) write_manifest(o.checkpoint_dir, epoch, n, fingerprint);
      // Keep the previous epoch too: a resume falls back to it if a later write is cut short.
      remove_rank_checkpoints_before(o.checkpoint_dir, rank, epoch - 1);
    }
  }

  if (!history.empty() && history.back().test_accuracy_avg) {
    const EpochMetrics& last = history.back();
    console.line(fmt::format(
        "final: test accuracy {:.2f}% (average model), {:.2f}% (local models, mean), {:.2f}% "
        "(rank 0)",
        100.0 * *last.test_accuracy_avg, 100.0 * *last.test_accuracy_local,
        100.0 * *last.test_accuracy_rank0));
  }
}

}  // namespace decent::train
