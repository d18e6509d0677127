#include "train_options.h"

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <iostream>

namespace decent::train {

LrSchedule parse_lr_schedule(const std::string& name) {
  if (name == "constant") return LrSchedule::kConstant;
  if (name == "cosine") return LrSchedule::kCosine;
  if (name == "step") return LrSchedule::kStep;
  throw UsageError(fmt::format("unknown --lr-schedule '{}' (valid: constant, cosine, step)", name));
}

const char* lr_schedule_name(LrSchedule schedule) {
  switch (schedule) {
    case LrSchedule::kConstant:
      return "constant";
    case LrSchedule::kCosine:
      return "cosine";
    case LrSchedule::kStep:
      return "step";
  }
  return "?";
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

std::optional<int> parse_command_line(int argc, const char* const* argv, TrainOptions& o,
                                      bool print) {
  CLI::App app{
      "decent-train: decentralized training of a LibTorch classifier. Runs as one process per "
      "rank under decentrun/mpirun, or as N ranks in one process with --local N. Rank 0 prints "
      "one line per epoch and writes the metrics JSON."};
  app.get_formatter()->column_width(34);
  // A later occurrence overrides an earlier one, so scripts can append overrides.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  std::string lr_schedule = "constant";

  app.add_option("--algorithm", o.algorithm, "optimizer (see --list-algorithms), e.g. dmsgd");
  app.add_option("--topology", o.topology,
                 "communication graph (see --list-topologies), e.g. ring, one-peer-exponential");
  app.add_option("--weights", o.weights,
                 "weight rule of static topologies: uniform, metropolis or max-degree")
      ->capture_default_str();
  auto* local_option = app.add_option("--local", o.local_ranks,
                                      "run N ranks as threads of this process (no MPI launcher)");
  app.add_option("--dataset", o.dataset, "fashion-mnist or synthetic")->capture_default_str();
  app.add_option("--data-dir", o.data_dir,
                 "Fashion-MNIST directory (default $DECENT_FASHION_MNIST_DIR or "
                 "/usr/share/datasets/fashion-mnist)");
  app.add_option("--partition", o.partition, "iid, shards or dirichlet")->capture_default_str();
  app.add_option("--alpha", o.alpha, "Dirichlet concentration (smaller: more heterogeneous)")
      ->capture_default_str();
  app.add_option("--shards-per-rank", o.shards_per_rank, "label-sorted shards per rank (shards)")
      ->capture_default_str();
  app.add_option("--synthetic-samples", o.synthetic_samples,
                 "training samples of the synthetic dataset (test: a fifth as many, held out)")
      ->capture_default_str();
  app.add_option("--model", o.model, "mlp, cnn, mlp-large or logreg")->capture_default_str();
  app.add_option("--batch-size", o.batch_size, "mini-batch size per rank")->capture_default_str();
  app.add_option("--lr", o.lr, "learning rate gamma")->capture_default_str();
  app.add_option("--momentum", o.momentum, "momentum beta (momentum methods)")
      ->capture_default_str();
  app.add_option("--weight-decay", o.weight_decay, "L2 weight decay")->capture_default_str();
  app.add_option("--lr-schedule", lr_schedule, "constant, cosine or step (x0.1 at 50% and 75%)")
      ->capture_default_str();
  app.add_option("--warmup-epochs", o.warmup_epochs, "linear warm-up length in epochs")
      ->capture_default_str();
  app.add_option("--epochs", o.epochs, "training epochs")->capture_default_str();
  app.add_option("--period", o.period,
                 "iterations between exact averages (local-sgd, slowmo, dsgd-pga)")
      ->capture_default_str();
  app.add_option("--gossip-rounds", o.gossip_rounds, "gossip rounds per step (dsgd-multi-gossip)")
      ->capture_default_str();
  app.add_option("--qg-mu", o.qg_mu, "QG-DmSGD momentum decay mu")->capture_default_str();
  app.add_option("--slowmo-beta", o.slowmo_beta, "SlowMo slow momentum")->capture_default_str();
  app.add_option("--slowmo-alpha", o.slowmo_alpha, "SlowMo slow learning rate")
      ->capture_default_str();
  app.add_option("--base-optimizer", o.base_optimizer, "base of 'wrapper': sgd, adam or adamw")
      ->capture_default_str();
  app.add_option("--combine", o.combine, "wrapper combination: atc or awc")->capture_default_str();
  app.add_flag("!--no-overlap", o.overlap,
               "do not overlap neighbour averaging with the gradient computation");
  app.add_option(
         "--compressor", o.compressor,
         "compressor of csgd, doublesqueeze, dcd-psgd, deepsqueeze, choco-sgd, e.g. "
         "qsgd:s=7,bucket=512, topk:ratio=0.01, kbit:bits=4, sign, fp16 (docs/compression.md)")
      ->capture_default_str();
  app.add_option("--consensus-step", o.consensus_step,
                 "consensus step eta in (0, 1] of choco-sgd and deepsqueeze")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "seed of the model, partition, batches and topology")
      ->capture_default_str();
  app.add_option("--metrics", o.metrics_file, "write per-epoch metrics to FILE.json (rank 0)");
  app.add_option("--checkpoint", o.checkpoint_dir, "checkpoint every epoch into DIR");
  app.add_flag("--resume", o.resume, "continue from the newest checkpoint every rank has");
  app.add_option("--max-steps-per-epoch", o.max_steps_per_epoch,
                 "cap on the steps of an epoch (0: one pass over the data)")
      ->capture_default_str();
  app.add_option("--eval-every", o.eval_every, "evaluate every K epochs (and after the last)")
      ->capture_default_str();
  app.add_option("--eval-samples", o.eval_samples, "evaluate on the first N test samples (0: all)")
      ->capture_default_str();
  app.add_option("--stop-after-epoch", o.stop_after_epoch,
                 "stop after epoch K as if interrupted (the schedule still follows --epochs)");
  app.add_option("--slow-rank", o.slow_rank, "straggler rank R (see --slowdown)");
  app.add_option("--slowdown", o.slowdown,
                 "make the straggler's compute F times slower by sleeping (F-1)x its compute time")
      ->capture_default_str();
  app.add_flag("-q,--quiet", o.quiet, "print nothing but errors");
  app.add_flag("--list-algorithms", o.list_algorithms, "list the algorithms and exit");
  app.add_flag("--list-topologies", o.list_topologies, "list the topologies and exit");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    if (print) return app.exit(e);
    return 0;
  } catch (const CLI::ParseError& e) {
    if (print) {
      std::cerr << "decent-train: error: " << e.what() << "\n(run decent-train --help for usage)\n";
    }
    return 2;
  }
  try {
    o.lr_schedule = parse_lr_schedule(lr_schedule);
    if (local_option->count() > 0 && o.local_ranks < 1) {
      throw UsageError(fmt::format("--local must be >= 1, got {}", o.local_ranks));
    }
  } catch (const UsageError& e) {
    if (print) std::cerr << "decent-train: error: " << e.what() << '\n';
    return 2;
  }
  return std::nullopt;
}

void validate_options(const TrainOptions& o) {
  auto fail = [](const std::string& message) { throw UsageError(message); };
  if (o.algorithm.empty()) fail("missing --algorithm (see --list-algorithms)");
  if (o.topology.empty()) fail("missing --topology (see --list-topologies)");
  if (o.dataset != "fashion-mnist" && o.dataset != "synthetic") {
    fail(fmt::format("unknown --dataset '{}' (valid: fashion-mnist, synthetic)", o.dataset));
  }
  if (o.partition != "iid" && o.partition != "shards" && o.partition != "dirichlet") {
    fail(fmt::format("unknown --partition '{}' (valid: iid, shards, dirichlet)", o.partition));
  }
  if (!(o.alpha > 0) || !std::isfinite(o.alpha)) {
    fail(fmt::format("--alpha must be > 0, got {}", o.alpha));
  }
  if (o.shards_per_rank < 1) {
    fail(fmt::format("--shards-per-rank must be >= 1, got {}", o.shards_per_rank));
  }
  if (o.synthetic_samples < 10) {
    fail(fmt::format("--synthetic-samples must be >= 10, got {}", o.synthetic_samples));
  }
  if (o.batch_size < 1) fail(fmt::format("--batch-size must be >= 1, got {}", o.batch_size));
  if (!(o.lr > 0) || !std::isfinite(o.lr)) fail(fmt::format("--lr must be > 0, got {}", o.lr));
  if (!(o.warmup_epochs >= 0) || !std::isfinite(o.warmup_epochs)) {
    fail(fmt::format("--warmup-epochs must be >= 0, got {}", o.warmup_epochs));
  }
  if (o.epochs < 0) fail(fmt::format("--epochs must be >= 0, got {}", o.epochs));
  if (o.max_steps_per_epoch < 0) {
    fail(fmt::format("--max-steps-per-epoch must be >= 0, got {}", o.max_steps_per_epoch));
  }
  if (o.eval_every < 1) fail(fmt::format("--eval-every must be >= 1, got {}", o.eval_every));
  if (o.eval_samples < 0) fail(fmt::format("--eval-samples must be >= 0, got {}", o.eval_samples));
  if (o.stop_after_epoch < 0) {
    fail(fmt::format("--stop-after-epoch must be >= 0, got {}", o.stop_after_epoch));
  }
  if (o.resume && o.checkpoint_dir.empty()) {
    fail("--resume needs --checkpoint DIR (the directory the interrupted run wrote)");
  }
  if (!(o.slowdown >= 1) || !std::isfinite(o.slowdown)) {
    fail(fmt::format("--slowdown must be >= 1, got {}", o.slowdown));
  }
  if (o.slowdown > 1 && o.slow_rank < 0) fail("--slowdown needs --slow-rank R");
}

double learning_rate_at(LrSchedule schedule, double base_lr, std::int64_t step,
                        std::int64_t total_steps, std::int64_t warmup_steps) {
  if (step < warmup_steps) {
    return base_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  }
  const std::int64_t decay_steps = std::max<std::int64_t>(1, total_steps - warmup_steps);
  const double progress =
      std::min(1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps));
  switch (schedule) {
    case LrSchedule::kConstant:
      return base_lr;
    case LrSchedule::kCosine:
      return 0.5 * base_lr * (1.0 + std::cos(M_PI * progress));
    case LrSchedule::kStep:
      if (progress >= 0.75) return 0.01 * base_lr;
      if (progress >= 0.5) return 0.1 * base_lr;
      return base_lr;
  }
  return base_lr;
}

nlohmann::ordered_json options_to_json(const TrainOptions& o) {
  nlohmann::ordered_json j;
  j["model"] = o.model;
  j["dataset"] = o.dataset;
  j["partition"] = o.partition;
  if (o.partition == "dirichlet") j["alpha"] = o.alpha;
  if (o.partition == "shards") j["shards_per_rank"] = o.shards_per_rank;
  if (o.dataset == "synthetic") j["synthetic_samples"] = o.synthetic_samples;
  j["batch_size"] = o.batch_size;
  j["lr"] = o.lr;
  j["momentum"] = o.momentum;
  j["weight_decay"] = o.weight_decay;
  j["lr_schedule"] = lr_schedule_name(o.lr_schedule);
  j["warmup_epochs"] = o.warmup_epochs;
  j["epochs"] = o.epochs;
  j["period"] = o.period;
  j["gossip_rounds"] = o.gossip_rounds;
  j["qg_mu"] = o.qg_mu;
  j["overlap"] = o.overlap;
  j["compressor"] = o.compressor;
  j["consensus_step"] = o.consensus_step;
  j["weights"] = o.weights;
  j["seed"] = o.seed;
  j["max_steps_per_epoch"] = o.max_steps_per_epoch;
  j["eval_samples"] = o.eval_samples;
  if (o.slow_rank >= 0) {
    j["slow_rank"] = o.slow_rank;
    j["slowdown"] = o.slowdown;
  }
  return j;
}

nlohmann::ordered_json resume_fingerprint(const TrainOptions& o, int world_size) {
  nlohmann::ordered_json j;
  j["algorithm"] = o.algorithm;
  j["topology"] = o.topology;
  j["weights"] = o.weights;
  j["world_size"] = world_size;
  j["dataset"] = o.dataset;
  j["partition"] = o.partition;
  j["alpha"] = o.alpha;
  j["shards_per_rank"] = o.shards_per_rank;
  j["synthetic_samples"] = o.synthetic_samples;
  j["model"] = o.model;
  j["batch_size"] = o.batch_size;
  j["lr"] = o.lr;
  j["momentum"] = o.momentum;
  j["weight_decay"] = o.weight_decay;
  j["lr_schedule"] = lr_schedule_name(o.lr_schedule);
  j["warmup_epochs"] = o.warmup_epochs;
  j["period"] = o.period;
  j["gossip_rounds"] = o.gossip_rounds;
  j["qg_mu"] = o.qg_mu;
  j["slowmo_beta"] = o.slowmo_beta;
  j["slowmo_alpha"] = o.slowmo_alpha;
  j["base_optimizer"] = o.base_optimizer;
  j["combine"] = o.combine;
  j["overlap"] = o.overlap;
  j["compressor"] = o.compressor;
  j["consensus_step"] = o.consensus_step;
  j["seed"] = o.seed;
  j["max_steps_per_epoch"] = o.max_steps_per_epoch;
  j["eval_samples"] = o.eval_samples;
  return j;
}

std::string describe_mismatch(const nlohmann::ordered_json& saved,
                              const nlohmann::ordered_json& current) {
  std::string out;
  auto option_name = [](std::string key) {
    std::replace(key.begin(), key.end(), '_', '-');
    return key == "world-size" ? std::string("world size") : "--" + key;
  };
  for (const auto& [key, value] : current.items()) {
    const auto it = saved.find(key);
    const std::string before = it == saved.end() ? "(absent)" : it->dump();
    if (it == saved.end() || *it != value) {
      if (!out.empty()) out += "; ";
      out += fmt::format("{}: checkpoint {}, now {}", option_name(key), before, value.dump());
    }
  }
  return out;
}

}  // namespace decent::train
