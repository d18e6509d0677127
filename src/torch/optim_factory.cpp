// Optimizers by name.
#include "decent/torch/optim/factory.h"
#include "decent/torch/optim_async.h"
#include "decent/torch/optim_bias_corrected.h"
#include "decent/torch/optim_compressed.h"
#include "decent/torch/optimizers.h"

#include "optim_internal.h"

#include <fmt/format.h>

#include <functional>
#include <map>

namespace decent::optim {

namespace {

using Builder = std::function<std::unique_ptr<torch::optim::Optimizer>(
    const AlgorithmConfig&, std::vector<torch::Tensor>, ContextPtr)>;

struct Entry {
  const char* name;
  const char* description;
  Builder build;
};

Combine parse_combine(const std::string& text, const std::string& where) {
  if (text == "atc" || text == "adapt-then-combine") return Combine::kAdaptThenCombine;
  if (text == "awc" || text == "adapt-with-combine") return Combine::kAdaptWithCombine;
  throw InvalidArgument(
      fmt::format("{}: combine = '{}': expected 'atc' (adapt-then-combine) or 'awc' "
                  "(adapt-with-combine)",
                  where, text));
}

std::unique_ptr<torch::optim::Optimizer> make_base(const std::string& base,
                                                   const AlgorithmConfig& c,
                                                   std::vector<torch::Tensor> params) {
  if (base == "sgd")
    return std::make_unique<torch::optim::SGD>(
        std::move(params),
        torch::optim::SGDOptions(c.lr).momentum(c.momentum).weight_decay(c.weight_decay));
  const auto betas = std::make_tuple(c.adam_beta1, c.adam_beta2);
  if (base == "adam")
    return std::make_unique<torch::optim::Adam>(
        std::move(params),
        torch::optim::AdamOptions(c.lr).betas(betas).eps(c.adam_eps).weight_decay(c.weight_decay));
  return std::make_unique<torch::optim::AdamW>(
      std::move(params),
      torch::optim::AdamWOptions(c.lr).betas(betas).eps(c.adam_eps).weight_decay(c.weight_decay));
}

Builder wrapper_of(std::string fixed_base) {
  return [fixed_base](const AlgorithmConfig& c, std::vector<torch::Tensor> params,
                      ContextPtr ctx) -> std::unique_ptr<torch::optim::Optimizer> {
    const std::string base = fixed_base.empty() ? c.base_optimizer : fixed_base;
    WrapperOptions w;
    w.combine = parse_combine(c.combine, "make_optimizer");
    w.overlap = c.overlap;
    return std::make_unique<DecentralizedWrapper>(make_base(base, c, std::move(params)),
                                                  std::move(ctx), w, "wrapper-" + base);
  };
}

template <typename BiasCorrected>
Builder bias_corrected() {
  return [](const AlgorithmConfig& c, std::vector<torch::Tensor> params,
            ContextPtr ctx) -> std::unique_ptr<torch::optim::Optimizer> {
    return std::make_unique<BiasCorrected>(std::move(params), std::move(ctx),
                                           BiasCorrectedOptions(c.lr).weight_decay(c.weight_decay));
  };
}

template <typename Compressed>
Builder compressed(bool with_momentum) {
  return [with_momentum](const AlgorithmConfig& c, std::vector<torch::Tensor> params,
                         ContextPtr ctx) -> std::unique_ptr<torch::optim::Optimizer> {
    return std::make_unique<Compressed>(
        std::move(params), std::move(ctx),
        CompressedOptions(c.lr)
            .momentum(with_momentum ? c.momentum : 0.0)
            .weight_decay(c.weight_decay),
        CompressionOptions(c.compressor).consensus_step(c.consensus_step));
  };
}

Builder dsgd_of(std::function<DSGDOptions(const AlgorithmConfig&)> options, std::string name) {
  return [options, name](const AlgorithmConfig& c, std::vector<torch::Tensor> params,
                         ContextPtr ctx) -> std::unique_ptr<torch::optim::Optimizer> {
    return std::make_unique<DSGD>(std::move(params), std::move(ctx), options(c), name);
  };
}

const std::vector<Entry>& registry() {
  static const std::vector<Entry> entries = {
      {"pmsgd", "parallel momentum SGD: exact gradient average (allreduce) + momentum",
       [](const AlgorithmConfig& c, std::vector<torch::Tensor> p,
          ContextPtr ctx) -> std::unique_ptr<torch::optim::Optimizer> {
         return std::make_unique<PmSGD>(
             std::move(p), std::move(ctx),
             PmSGDOptions(c.lr).momentum(c.momentum).weight_decay(c.weight_decay));
       }},
      {"pmsgd-lars", "PmSGD with layer-wise adaptive rate scaling (trust ratio per tensor)",
       [](const AlgorithmConfig& c, std::vector<torch::Tensor> p,
          ContextPtr ctx) -> std::unique_ptr<torch::optim::Optimizer> {
         return std::make_unique<PmSGD>(std::move(p), std::move(ctx),
                                        PmSGDOptions(c.lr)
                                            .momentum(c.momentum)
                                            .weight_decay(c.weight_decay)
                                            .lars(true)
                                            .lars_eta(c.lars_eta));
       }},
      {"dsgd", "D-SGD adapt-then-combine: x <- W(x - lr g)",
       dsgd_of(
           [](const AlgorithmConfig& c) { return DSGDOptions(c.lr).weight_decay(c.weight_decay); },
           "dsgd")},
      {"dsgd-awc", "D-SGD adapt-with-combine (DGD): x <- Wx - lr g, communication overlapped",
       dsgd_of(
           [](const AlgorithmConfig& c) {
             return DSGDOptions(c.lr)
                 .weight_decay(c.weight_decay)
                 .combine(Combine::kAdaptWithCombine)
                 .overlap(c.overlap);
           },
           "dsgd-awc")},
      {"dmsgd", "decentralized momentum SGD: m <- beta m + g, x <- W(x - lr m)",
       dsgd_of(
           [](const AlgorithmConfig& c) {
             return DSGDOptions(c.lr).momentum(c.momentum).weight_decay(c.weight_decay);
           },
           "dmsgd")},
      {"da-dmsgd", "DmSGD that also averages the momentum buffers (Yu, Jin & Yang 2019)",
       dsgd_of(
           [](const AlgorithmConfig& c) {
             return DSGDOptions(c.lr)
                 .momentum(c.momentum)
                 .weight_decay(c.weight_decay)
                 .average_momentum(true);
           },
           "da-dmsgd")},
      {"awc-dmsgd", "adapt-with-combine DmSGD: x <- Wx - lr m (Balu et al. 2020), overlapped",
       dsgd_of(
           [](const AlgorithmConfig& c) {
             return DSGDOptions(c.lr)
                 .momentum(c.momentum)
                 .weight_decay(c.weight_decay)
                 .combine(Combine::kAdaptWithCombine)
                 .overlap(c.overlap);
           },
           "awc-dmsgd")},
      {"qg-dmsgd", "quasi-global momentum DmSGD (Lin et al. 2021), decay qg_mu",
       [](const AlgorithmConfig& c, std::vector<torch::Tensor> p,
          ContextPtr ctx) -> std::unique_ptr<torch::optim::Optimizer> {
         return std::make_unique<QGDmSGD>(
             std::move(p), std::move(ctx),
             QGDmSGDOptions(c.lr).momentum(c.momentum).mu(c.qg_mu).weight_decay(c.weight_decay));
       }},
      {"decentlam", "DecentLaM: X+ = W(X - lr G) + beta(X - X-), momentum without its bias",
       [](const AlgorithmConfig& c, std::vector<torch::Tensor> p,
          ContextPtr ctx) -> std::unique_ptr<torch::optim::Optimizer> {
         return std::make_unique<DecentLaM>(
             std::move(p), std::move(ctx),
             DecentLaMOptions(c.lr).momentum(c.momentum).weight_decay(c.weight_decay));
       }},
      {"slowmo", "SlowMo: local momentum SGD, exact average every period, slow momentum",
       [](const AlgorithmConfig& c, std::vector<torch::Tensor> p,
          ContextPtr ctx) -> std::unique_ptr<torch::optim::Optimizer> {
         return std::make_unique<SlowMo>(std::move(p), std::move(ctx),
                                         SlowMoOptions(c.lr)
                                             .momentum(c.momentum)
                                             .weight_decay(c.weight_decay)
                                             .period(c.period)
                                             .slowmo_beta(c.slowmo_beta)
                                             .slowmo_alpha(c.slowmo_alpha)
                                             .gossip_inner(c.slowmo_gossip));
       }},
      {"dsgd-pga", "D-SGD with an exact global average every period iterations",
       dsgd_of(
           [](const AlgorithmConfig& c) {
             return DSGDOptions(c.lr).weight_decay(c.weight_decay).global_average_period(c.period);
           },
           "dsgd-pga")},
      {"local-sgd", "local (momentum) SGD / FedAvg: exact average every period iterations",
       [](const AlgorithmConfig& c, std::vector<torch::Tensor> p,
          ContextPtr ctx) -> std::unique_ptr<torch::optim::Optimizer> {
         return std::make_unique<LocalSGD>(std::move(p), std::move(ctx),
                                           LocalSGDOptions(c.lr)
                                               .momentum(c.momentum)
                                               .weight_decay(c.weight_decay)
                                               .period(c.period));
       }},
      {"dsgd-multi-gossip", "D-SGD applying W gossip_rounds times per iteration",
       dsgd_of(
           [](const AlgorithmConfig& c) {
             return DSGDOptions(c.lr).weight_decay(c.weight_decay).gossip_rounds(c.gossip_rounds);
           },
           "dsgd-multi-gossip")},
      {"push-sum", "stochastic gradient push for directed/one-peer graphs (column-stochastic)",
       [](const AlgorithmConfig& c, std::vector<torch::Tensor> p,
          ContextPtr ctx) -> std::unique_ptr<torch::optim::Optimizer> {
         return std::make_unique<PushSum>(
             std::move(p), std::move(ctx),
             PushSumOptions(c.lr).momentum(c.momentum).weight_decay(c.weight_decay));
       }},
      {"extra", "EXTRA: exact convergence on heterogeneous data, x+ = (I+W)x - W~x- - lr(g - g-)",
       bias_corrected<EXTRA>()},
      {"exact-diffusion", "Exact-Diffusion: adapt, correct, combine with (I+W)/2; no D-SGD bias",
       bias_corrected<ExactDiffusion>()},
      {"d2", "D2: Exact-Diffusion with W (needs symmetric W, eigenvalues > -1/3)",
       bias_corrected<D2>()},
      {"gradient-tracking", "gradient tracking (DIGing): x+ = Wx - lr y, y+ = Wy + g+ - g",
       bias_corrected<GradientTracking>()},
      {"csgd", "C-SGD: momentum SGD on the average of unbiasedly compressed gradients",
       compressed<CSGD>(true)},
      {"doublesqueeze", "DoubleSqueeze: compressed gradients, error feedback on workers and rank 0",
       compressed<DoubleSqueeze>(true)},
      {"dcd-psgd", "DCD-PSGD: x <- x + C(Wx - lr g - x), replicas of neighbours (unbiased C)",
       compressed<DCDPSGD>(false)},
      {"deepsqueeze", "DeepSqueeze: error-compensated compressed x - lr g, consensus step eta",
       compressed<DeepSqueeze>(false)},
      {"choco-sgd", "CHOCO-SGD: x - lr g, then compressed gossip with replicas, step eta",
       compressed<ChocoSGD>(false)},
      {"ad-psgd", "AD-PSGD: asynchronous pairwise averaging with a random neighbour (windows)",
       [](const AlgorithmConfig& c, std::vector<torch::Tensor> p,
          ContextPtr ctx) -> std::unique_ptr<torch::optim::Optimizer> {
         return std::make_unique<ADPSGD>(
             std::move(p), std::move(ctx),
             AsyncOptions(c.lr).momentum(c.momentum).weight_decay(c.weight_decay));
       }},
      {"async-gossip", "asynchronous window gossip: put + update, push-sum on directed graphs",
       [](const AlgorithmConfig& c, std::vector<torch::Tensor> p,
          ContextPtr ctx) -> std::unique_ptr<torch::optim::Optimizer> {
         return std::make_unique<AsyncGossip>(
             std::move(p), std::move(ctx),
             AsyncOptions(c.lr).momentum(c.momentum).weight_decay(c.weight_decay));
       }},
      {"wrapper", "any base_optimizer (sgd, adam, adamw) + neighbour averaging (combine atc|awc)",
       wrapper_of("")},
      {"wrapper-sgd", "torch SGD (with momentum) + neighbour averaging (combine atc|awc)",
       wrapper_of("sgd")},
      {"wrapper-adam", "torch Adam + neighbour averaging (combine atc|awc)", wrapper_of("adam")},
      {"wrapper-adamw", "torch AdamW + neighbour averaging (combine atc|awc)", wrapper_of("adamw")},
  };
  return entries;
}

const std::map<std::string, std::string>& aliases() {
  static const std::map<std::string, std::string> a = {{"fedavg", "local-sgd"},
                                                       {"sgp", "push-sum"},
                                                       {"d-sgd", "dsgd"},
                                                       {"dgd", "dsgd-awc"},
                                                       {"ed", "exact-diffusion"},
                                                       {"gt", "gradient-tracking"},
                                                       {"diging", "gradient-tracking"},
                                                       {"adpsgd", "ad-psgd"},
                                                       {"choco", "choco-sgd"},
                                                       {"dcd", "dcd-psgd"}};
  return a;
}

std::string valid_names() {
  std::string out;
  for (const auto& e : registry()) out += (out.empty() ? "" : ", ") + std::string(e.name);
  for (const auto& [alias, target] : aliases()) out += ", " + alias;
  return out;
}

const Entry& lookup(const std::string& name, const std::string& where) {
  auto alias = aliases().find(name);
  const std::string& canonical = alias == aliases().end() ? name : alias->second;
  for (const auto& e : registry())
    if (canonical == e.name) return e;
  throw InvalidArgument(
      fmt::format("{}: unknown algorithm '{}'; valid names: {}", where, name, valid_names()));
}

void validate_at(const AlgorithmConfig& c, const std::string& where) {
  const Entry& entry = lookup(c.name, where);
  detail::check_learning_rate(where, c.lr);
  detail::check_unit_interval(where, "momentum", c.momentum);
  detail::check_non_negative(where, "weight_decay", c.weight_decay);
  detail::check_at_least(where, "period", c.period, 1);
  detail::check_at_least(where, "gossip_rounds", c.gossip_rounds, 1);
  detail::check_unit_interval(where, "slowmo_beta", c.slowmo_beta);
  detail::check_positive(where, "slowmo_alpha", c.slowmo_alpha);
  detail::check_unit_interval(where, "qg_mu", c.qg_mu);
  detail::check_positive(where, "lars_eta", c.lars_eta);
  detail::check_unit_interval(where, "adam_beta1", c.adam_beta1);
  detail::check_unit_interval(where, "adam_beta2", c.adam_beta2);
  detail::check_positive(where, "adam_eps", c.adam_eps);
  parse_combine(c.combine, where);
  for (const char* name : {"csgd", "doublesqueeze", "dcd-psgd", "deepsqueeze", "choco-sgd"})
    if (std::string(entry.name) == name)
      validate_compression(name, CompressionOptions(c.compressor).consensus_step(c.consensus_step),
                           where);
  if (std::string(entry.name) == "wrapper" && c.base_optimizer != "sgd" &&
      c.base_optimizer != "adam" && c.base_optimizer != "adamw")
    throw InvalidArgument(fmt::format("{}: base_optimizer = '{}': expected sgd, adam or adamw",
                                      where, c.base_optimizer));
}

}  // namespace

std::vector<AlgorithmInfo> list_algorithms() {
  std::vector<AlgorithmInfo> out;
  for (const auto& e : registry()) out.push_back({e.name, e.description});
  return out;
}

void validate(const AlgorithmConfig& config) {
  validate_at(config, "make_optimizer");
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const AlgorithmConfig& config,
                                                        std::vector<torch::Tensor> params,
                                                        ContextPtr ctx) {
  if (!ctx) throw InvalidArgument("make_optimizer: the communication context is null");
  const std::string where = fmt::format("rank {}: make_optimizer", ctx->rank());
  validate_at(config, where);
  return lookup(config.name, where).build(config, std::move(params), std::move(ctx));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  detail::check_learning_rate("set_learning_rate", lr);
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

double learning_rate(const torch::optim::Optimizer& optimizer) {
  if (optimizer.param_groups().empty())
    throw InvalidArgument("learning_rate: the optimizer has no parameter groups");
  return optimizer.param_groups().front().options().get_lr();
}

}  // namespace decent::optim
