#include "decent/convex/solvers.h"

#include <fmt/format.h>

#include <cmath>
#include <functional>

namespace decent::convex {

namespace {

using Vec = Eigen::VectorXd;

const std::vector<AlgorithmInfo> kAlgorithms = {
    {Algorithm::kCentralized, "centralized",
     "centralized GD/PSGD (heavy ball with momentum): allreduce of gradients", 0, true, true},
    {Algorithm::kDgd, "dgd", "DGD = adapt-with-combine D-SGD: x <- W x - gamma g", 1, false, false},
    {Algorithm::kDsgd, "dsgd", "D-SGD adapt-then-combine: x <- W (x - gamma g)", 1, false, false},
    {Algorithm::kDmsgd, "dmsgd", "DmSGD: m <- beta m + g; x <- W (x - gamma m)", 1, false, true},
    {Algorithm::kDecentLam, "decentlam", "DecentLaM: X+ = W (X - gamma G) + beta (X - X-)", 1,
     false, true},
    {Algorithm::kExtra, "extra", "EXTRA (Shi et al. 2015), W~ = (I + W)/2", 1, true, false},
    {Algorithm::kExactDiffusion, "exact-diffusion",
     "Exact-Diffusion (Yuan et al. 2019), W_bar = (I + W)/2", 1, true, false},
    {Algorithm::kD2, "d2", "D^2 (Tang et al. 2018): Exact-Diffusion with W", 1, true, false},
    {Algorithm::kGradientTracking, "gradient-tracking",
     "gradient tracking / DIGing (Nedic et al. 2017), x and y mixed with the same W^k", 2, true,
     false},
};

// The iteration of one rank: local state, its gradient oracle, and the mixing helpers.
class RankSolver {
 public:
  RankSolver(Context& ctx, const Problem& problem, const SolverOptions& options)
      : ctx_(ctx),
        problem_(problem),
        opt_(options),
        oracle_(problem, ctx.rank(), options.noise),
        gamma_(options.step_size),
        beta_(options.momentum) {}

  SolverResult run() {
    const CommStats before = ctx_.stats();
    Vec x = Vec::Zero(problem_.dim());
    record(0, x);
    switch (opt_.algorithm) {
      case Algorithm::kCentralized:
        run_centralized(x);
        break;
      case Algorithm::kDgd:
        run_dgd(x);
        break;
      case Algorithm::kDsgd:
        run_dmsgd(x, /*beta=*/0.0);
        break;
      case Algorithm::kDmsgd:
        run_dmsgd(x, beta_);
        break;
      case Algorithm::kDecentLam:
        run_decentlam(x);
        break;
      case Algorithm::kExtra:
        run_extra(x);
        break;
      case Algorithm::kExactDiffusion:
        run_exact_diffusion(x, /*half_identity=*/true);
        break;
      case Algorithm::kD2:
        run_exact_diffusion(x, /*half_identity=*/false);
        break;
      case Algorithm::kGradientTracking:
        run_gradient_tracking(x);
        break;
    }
    SolverResult result;
    const CommStats after = ctx_.stats();
    result.traffic.bytes_sent = after.bytes_sent - before.bytes_sent;
    result.traffic.bytes_received = after.bytes_received - before.bytes_received;
    result.traffic.messages_sent = after.messages_sent - before.messages_sent;
    result.traffic.operations = after.operations - before.operations;
    result.payload_messages =
        result.traffic.messages_sent - (after.header_messages - before.header_messages);
    // One allreduce turns every rank's ||x_i - x*||^2 history into the mean over ranks.
    if (!errors_.empty()) ctx_.allreduce(Buffer(errors_), ReduceOp::kAverage);
    result.iterations = std::move(iterations_);
    result.error = std::move(errors_);
    result.x = std::move(x);
    return result;
  }

 private:
  // Mixing matrix of iteration k.
  NeighborAllreduceOptions at(int k) const {
    NeighborAllreduceOptions o;
    o.step = opt_.first_step + k;
    return o;
  }
  // v <- W^k v.
  void mix(int k, Vec& v) { ctx_.neighbor_allreduce(buffer(v), buffer(v), at(k)); }
  // a <- W^k a and b <- W^k b in one fused exchange (one mixing matrix for both).
  void mix(int k, Vec& a, Vec& b) { ctx_.neighbor_allreduce({buffer(a), buffer(b)}, at(k)); }
  // out <- W^k in.
  void mix_into(int k, const Vec& in, Vec& out) {
    out.resize(in.size());
    ctx_.neighbor_allreduce(ConstBuffer(in.data(), static_cast<std::size_t>(in.size())),
                            buffer(out), at(k));
  }
  static Buffer buffer(Vec& v) { return Buffer(v.data(), static_cast<std::size_t>(v.size())); }

  void gradient(const Vec& x, Vec& g) { oracle_(x, g); }

  void record(int k, const Vec& x) {
    if (k != 0 && k != opt_.iterations && k % opt_.record_every != 0) return;
    iterations_.push_back(k);
    errors_.push_back((x - problem_.optimum()).squaredNorm());
  }

  // g_bar = (1/n) sum_j g_j (allreduce); m <- beta m + g_bar; x <- x - gamma m. Every rank
  // holds the same x. With beta = 0 this is GD (full batch) or PSGD.
  void run_centralized(Vec& x) {
    Vec g, m = Vec::Zero(x.size());
    for (int k = 0; k < opt_.iterations; ++k) {
      gradient(x, g);
      ctx_.allreduce(buffer(g), ReduceOp::kAverage);
      m = beta_ * m + g;
      x -= gamma_ * m;
      record(k + 1, x);
    }
  }

  // DGD (Nedic & Ozdaglar 2009), i.e. adapt-with-combine D-SGD: x <- W x - gamma g(x). W x does
  // not depend on the gradient, so the exchange runs while the gradient is computed.
  void run_dgd(Vec& x) {
    Vec g, wx(x.size());
    for (int k = 0; k < opt_.iterations; ++k) {
      Handle h = ctx_.neighbor_allreduce_async(
          ConstBuffer(x.data(), static_cast<std::size_t>(x.size())), buffer(wx), at(k));
      gradient(x, g);
      h.wait();
      x = wx - gamma_ * g;
      record(k + 1, x);
    }
  }

  // DmSGD: m <- beta m + g; x <- W (x - gamma m). beta = 0 is adapt-then-combine D-SGD,
  // x <- W (x - gamma g).
  void run_dmsgd(Vec& x, double beta) {
    Vec g, m = Vec::Zero(x.size());
    for (int k = 0; k < opt_.iterations; ++k) {
      gradient(x, g);
      m = beta * m + g;
      x -= gamma_ * m;
      mix(k, x);
      record(k + 1, x);
    }
  }

  // DecentLaM (Yuan et al. 2021, Algorithm 1): g~ = (x - W (x - gamma g)) / gamma;
  // m <- beta m + g~; x <- x - gamma m. Stacked: X+ = W (X - gamma G) + beta (X - X-), so its
  // fixed point is D-SGD's whatever beta is.
  void run_decentlam(Vec& x) {
    Vec g, z, m = Vec::Zero(x.size());
    for (int k = 0; k < opt_.iterations; ++k) {
      gradient(x, g);
      z = x - gamma_ * g;
      mix(k, z);
      m = beta_ * m + (x - z) / gamma_;
      x -= gamma_ * m;
      record(k + 1, x);
    }
  }

  // EXTRA (Shi, Ling, Wu & Yin 2015, eq. (2.13)-(2.14) with W~ = (I + W)/2):
  //   X^1 = W X^0 - alpha grad F(X^0),
  //   X^{k+1} = (I + W) X^k - W~ X^{k-1} - alpha (grad F(X^k) - grad F(X^{k-1})).
  // W X^{k-1} is kept from the previous iteration, so each iteration mixes once.
  void run_extra(Vec& x) {
    if (opt_.iterations == 0) return;
    Vec g, g_prev, wx, wx_prev, x_prev;
    gradient(x, g_prev);
    mix_into(0, x, wx_prev);
    x_prev = x;
    x = wx_prev - gamma_ * g_prev;
    record(1, x);
    for (int k = 1; k < opt_.iterations; ++k) {
      gradient(x, g);
      mix_into(k, x, wx);
      Vec next = x + wx - 0.5 * (x_prev + wx_prev) - gamma_ * (g - g_prev);
      x_prev = std::move(x);
      x = std::move(next);
      wx_prev.swap(wx);
      g_prev.swap(g);
      record(k + 1, x);
    }
  }

  // Exact-Diffusion (Yuan, Ying, Zhao & Sayed 2019, Part I, adapt-correct-combine):
  //   psi^{k+1} = x^k - gamma g^k;  phi^{k+1} = psi^{k+1} + x^k - psi^k;  x^{k+1} = W_bar phi^{k+1}
  // with psi^0 = x^0 and W_bar = (I + W)/2. With half_identity = false the combination uses W
  // itself, which is D^2 (Tang, Lian, Yan, Zhang & Liu 2018):
  //   X^{k+1} = W (2 X^k - X^{k-1} - gamma G^k + gamma G^{k-1}),  X^1 = W (X^0 - gamma G^0).
  void run_exact_diffusion(Vec& x, bool half_identity) {
    Vec g, psi, phi, psi_prev = x, w_phi;
    for (int k = 0; k < opt_.iterations; ++k) {
      gradient(x, g);
      psi = x - gamma_ * g;
      phi = psi + x - psi_prev;
      if (half_identity) {
        mix_into(k, phi, w_phi);
        x = 0.5 * (phi + w_phi);
      } else {
        mix(k, phi);
        x = phi;
      }
      psi_prev.swap(psi);
      record(k + 1, x);
    }
  }

  // Gradient tracking, DIGing form (Nedic, Olshevsky & Shi 2017, eq. (5)):
  //   X^{k+1} = W^k X^k - alpha Y^k;  Y^{k+1} = W^k Y^k + grad F(X^{k+1}) - grad F(X^k),
  //   Y^0 = grad F(X^0). x and y travel in one fused message with the same W^k.
  void run_gradient_tracking(Vec& x) {
    Vec g_prev, g, y, y_old;
    gradient(x, g_prev);
    y = g_prev;
    for (int k = 0; k < opt_.iterations; ++k) {
      y_old = y;
      mix(k, x, y);
      x -= gamma_ * y_old;
      gradient(x, g);
      y += g - g_prev;
      g_prev.swap(g);
      record(k + 1, x);
    }
  }

  Context& ctx_;
  const Problem& problem_;
  const SolverOptions& opt_;
  GradientOracle oracle_;
  const double gamma_;
  const double beta_;
  std::vector<int> iterations_;
  std::vector<double> errors_;
};

}  // namespace

const std::vector<AlgorithmInfo>& algorithms() {
  return kAlgorithms;
}

const AlgorithmInfo& algorithm_info(Algorithm a) {
  for (const auto& info : kAlgorithms)
    if (info.algorithm == a) return info;
  throw ConvexError(fmt::format("unknown algorithm id {}", static_cast<int>(a)));
}

const char* algorithm_name(Algorithm a) {
  return algorithm_info(a).name;
}

Algorithm parse_algorithm(const std::string& text) {
  for (const auto& info : kAlgorithms)
    if (text == info.name) return info.algorithm;
  if (text == "gd" || text == "psgd" || text == "pmsgd") return Algorithm::kCentralized;
  if (text == "awc") return Algorithm::kDgd;
  if (text == "d-sgd" || text == "atc") return Algorithm::kDsgd;
  if (text == "ed") return Algorithm::kExactDiffusion;
  if (text == "gt" || text == "diging") return Algorithm::kGradientTracking;
  std::string known;
  for (const auto& info : kAlgorithms)
    known += fmt::format("{}{}", known.empty() ? "" : ", ", info.name);
  throw ConvexError(fmt::format("unknown algorithm '{}': expected one of {}", text, known));
}

SolverResult solve(Context& ctx, const Problem& problem, const SolverOptions& options) {
  const auto where = [&] {
    return fmt::format("rank {}: {}", ctx.rank(), algorithm_info(options.algorithm).name);
  };
  if (ctx.size() != problem.nodes())
    throw ConvexError(fmt::format("{}: the context has {} ranks but the problem has {} nodes",
                                  where(), ctx.size(), problem.nodes()));
  if (!(options.step_size > 0) || !std::isfinite(options.step_size))
    throw ConvexError(fmt::format("{}: step size {} must be positive", where(), options.step_size));
  if (!(options.momentum >= 0 && options.momentum < 1))
    throw ConvexError(fmt::format("{}: momentum {} must be in [0, 1)", where(), options.momentum));
  if (options.iterations < 0)
    throw ConvexError(fmt::format("{}: iterations {} must be >= 0", where(), options.iterations));
  if (options.record_every < 1)
    throw ConvexError(
        fmt::format("{}: record_every {} must be >= 1", where(), options.record_every));
  if (options.first_step < 0)
    throw ConvexError(fmt::format("{}: first_step {} must be >= 0", where(), options.first_step));
  return RankSolver(ctx, problem, options).run();
}

}  // namespace decent::convex
