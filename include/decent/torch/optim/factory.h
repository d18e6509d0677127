// Optimizers by name, as the training command and configuration files select them.
//
//   decent::optim::AlgorithmConfig cfg;
//   cfg.name = "decentlam";
//   cfg.lr = 0.1;
//   auto opt = decent::optim::make_optimizer(cfg, model->parameters(), ctx);
//   for (const auto& a : decent::optim::list_algorithms()) std::cout << a.name << "\n";
#pragma once

#include "decent/comm/context.h"

#include <torch/optim/optimizer.h>

#include <memory>
#include <string>
#include <vector>

namespace decent::optim {

struct AlgorithmConfig {
  // Algorithm name, see list_algorithms().
  std::string name = "dsgd";
  // Learning rate gamma (> 0).
  double lr = 0.1;
  // Momentum beta in [0, 1); used by the momentum methods (pmsgd*, *dmsgd, decentlam,
  // local-sgd, slowmo, push-sum, ad-psgd, async-gossip, wrapper-sgd); the dsgd* names are
  // momentum-free.
  double momentum = 0.9;
  // Added to the gradient as weight_decay * x (AdamW: decoupled, as torch's AdamW does).
  double weight_decay = 0.0;
  // Iterations between exact averages: tau of local-sgd and slowmo, H of dsgd-pga (>= 1).
  int period = 8;
  // Rounds of W per iteration of dsgd-multi-gossip (>= 1).
  int gossip_rounds = 2;
  // SlowMo slow momentum beta_s in [0, 1) and slow learning rate alpha (> 0).
  double slowmo_beta = 0.5;
  double slowmo_alpha = 1.0;
  // SlowMo inner optimizer: DmSGD over the topology instead of local momentum SGD.
  bool slowmo_gossip = false;
  // QG-DmSGD momentum decay mu in [0, 1).
  double qg_mu = 0.9;
  // LARS trust coefficient eta (> 0).
  double lars_eta = 0.001;
  // Overlap neighbour averaging with the next gradient computation (adapt-with-combine names).
  bool overlap = true;
  // Base optimizer of "wrapper": sgd, adam or adamw.
  std::string base_optimizer = "sgd";
  // Combination of the wrappers: "atc" (adapt-then-combine) or "awc" (adapt-with-combine).
  std::string combine = "atc";
  // Compressed optimizers (csgd, doublesqueeze, dcd-psgd, deepsqueeze, choco-sgd): compressor
  // spec (decent::compress::make_compressor) and consensus step eta in (0, 1] of CHOCO-SGD and
  // DeepSqueeze; csgd and doublesqueeze use `momentum`, the other three none.
  std::string compressor = "qsgd:s=16,bucket=512";
  double consensus_step = 1.0;
  // Adam/AdamW moments and epsilon.
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_eps = 1e-8;
};

struct AlgorithmInfo {
  std::string name;
  std::string description;  // one line
};

// Every accepted name with a one-line description.
std::vector<AlgorithmInfo> list_algorithms();

// Builds the optimizer `config.name` over `params` (one parameter group). Throws
// decent::InvalidArgument for an unknown name (the message lists the valid ones) or an
// out-of-range value. The result is a decent::optim::DecentOptimizer.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const AlgorithmConfig& config,
                                                        std::vector<torch::Tensor> params,
                                                        ContextPtr ctx);

// Checks config without building anything (same exceptions as make_optimizer).
void validate(const AlgorithmConfig& config);

// Learning rate of every parameter group, for schedules written by hand (torch's
// LR schedulers work too: they go through OptimizerOptions::get_lr/set_lr).
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);
// Learning rate of the first parameter group.
double learning_rate(const torch::optim::Optimizer& optimizer);

}  // namespace decent::optim
