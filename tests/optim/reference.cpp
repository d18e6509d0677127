#include "reference.h"

#include <cmath>
#include <stdexcept>

namespace decent::optim::testing {

using Eigen::MatrixXd;
using Eigen::VectorXd;

MatrixXd row_average(const MatrixXd& x) {
  const Eigen::RowVectorXd mean = x.colwise().mean();
  return mean.replicate(x.rows(), 1);
}

MatrixXd push_sum_matrix(const topology::Schedule& schedule, std::int64_t step) {
  const topology::Graph g = schedule.graph_at(step);
  const int n = g.size();
  MatrixXd p = MatrixXd::Zero(n, n);
  for (int j = 0; j < n; ++j) {
    const double share = 1.0 / (g.out_degree(j) + 1);
    p(j, j) = share;
    for (int i : g.out_ranks(j)) p(i, j) = share;
  }
  return p;
}

MatrixXd dsgd_fixed_point(const MatrixXd& w, const MatrixXd& targets, double lr) {
  const MatrixXd identity = MatrixXd::Identity(w.rows(), w.cols());
  return (identity - (1.0 - lr) * w).fullPivLu().solve(lr * w * targets);
}

namespace {

// W_{first+rounds-1} ... W_{first} X.
MatrixXd mix(const topology::Schedule& s, std::int64_t first, int rounds, MatrixXd x) {
  for (int r = 0; r < rounds; ++r) x = s.graph_at(first + r).mixing_matrix() * x;
  return x;
}

// Adam (torch's bias-corrected form) applied to every row; `decoupled` gives AdamW.
struct AdamState {
  MatrixXd m, v;
  int t = 0;
};

MatrixXd adam_step(const ReferenceConfig& c, AdamState& s, const MatrixXd& x, MatrixXd g,
                   bool decoupled) {
  if (s.t == 0) {
    s.m = MatrixXd::Zero(x.rows(), x.cols());
    s.v = MatrixXd::Zero(x.rows(), x.cols());
  }
  ++s.t;
  MatrixXd out = x;
  if (decoupled)
    out *= 1.0 - c.lr * c.weight_decay;
  else
    g += c.weight_decay * x;
  s.m = c.adam_beta1 * s.m + (1.0 - c.adam_beta1) * g;
  s.v = c.adam_beta2 * s.v + (1.0 - c.adam_beta2) * g.cwiseProduct(g);
  const double bc1 = 1.0 - std::pow(c.adam_beta1, s.t);
  const double bc2 = 1.0 - std::pow(c.adam_beta2, s.t);
  const MatrixXd denom = (s.v.cwiseSqrt() / std::sqrt(bc2)).array() + c.adam_eps;
  out -= (c.lr / bc1) * s.m.cwiseQuotient(denom);
  return out;
}

}  // namespace

std::vector<MatrixXd> reference_trajectory(const std::string& a, const ReferenceConfig& c,
                                           const MatrixXd& x0, const MatrixXd& targets,
                                           const topology::Schedule& s, int steps,
                                           const std::vector<int>& layers) {
  const Eigen::Index n = x0.rows(), d = x0.cols();
  const double lr = c.lr, beta = c.momentum, wd = c.weight_decay;
  MatrixXd x = x0;
  MatrixXd m = MatrixXd::Zero(n, d);
  MatrixXd previous = x0;                // DecentLaM's X^-
  MatrixXd anchor = x0;                  // SlowMo's x_start
  MatrixXd slow = MatrixXd::Zero(n, d);  // SlowMo's u
  MatrixXd numerator = x0;               // push-sum x
  VectorXd weight = VectorXd::Ones(n);   // push-sum w
  AdamState adam;
  std::vector<MatrixXd> out{x0};

  for (int k = 0; k < steps; ++k) {
    const MatrixXd g = x - targets;  // gradients at the current parameters (z for push-sum)
    const MatrixXd dg = g + wd * x;  // with weight decay
    if (a == "pmsgd" || a == "pmsgd-lars") {
      const MatrixXd gbar = row_average(g);
      MatrixXd direction = gbar + wd * x;
      if (a == "pmsgd-lars") {
        Eigen::Index col = 0;
        for (int width : layers) {
          for (Eigen::Index i = 0; i < n; ++i) {
            const double xn = x.row(i).segment(col, width).norm();
            const double gn = gbar.row(i).segment(col, width).norm();
            const double trust = (xn > 0 && gn > 0) ? c.lars_eta * xn / (gn + wd * xn) : 1.0;
            direction.row(i).segment(col, width) *= trust;
          }
          col += width;
        }
      }
      m = beta * m + direction;
      x = x - lr * m;
    } else if (a == "dsgd" || a == "dsgd-pga" || a == "dsgd-multi-gossip") {
      const int rounds = a == "dsgd-multi-gossip" ? c.gossip_rounds : 1;
      x = mix(s, std::int64_t{k} * rounds, rounds, x - lr * dg);
      if (a == "dsgd-pga" && (k + 1) % c.period == 0) x = row_average(x);
    } else if (a == "dsgd-awc") {
      x = mix(s, k, 1, x) - lr * dg;
    } else if (a == "dmsgd" || a == "wrapper-sgd") {
      m = beta * m + dg;
      x = c.awc ? MatrixXd(mix(s, k, 1, x) - lr * m) : mix(s, k, 1, x - lr * m);
    } else if (a == "da-dmsgd") {
      const MatrixXd u = beta * m + dg;
      m = mix(s, k, 1, u);
      x = mix(s, k, 1, x - lr * u);
    } else if (a == "awc-dmsgd") {
      m = beta * m + dg;
      x = mix(s, k, 1, x) - lr * m;
    } else if (a == "qg-dmsgd") {
      const MatrixXd half = x - lr * (dg + beta * m);
      const MatrixXd next = mix(s, k, 1, half);
      m = c.qg_mu * m + (1.0 - c.qg_mu) * (x - next) / lr;
      x = next;
    } else if (a == "decentlam") {
      // The stacked form X+ = W(X - lr G) + beta (X - X-).
      const MatrixXd next = mix(s, k, 1, x - lr * dg) + beta * (x - previous);
      previous = x;
      x = next;
    } else if (a == "local-sgd") {
      m = beta * m + dg;
      x = x - lr * m;
      if ((k + 1) % c.period == 0) x = row_average(x);
    } else if (a == "slowmo") {
      m = beta * m + dg;
      x = x - lr * m;
      if (c.slowmo_gossip) x = mix(s, k, 1, x);
      if ((k + 1) % c.period == 0) {
        const MatrixXd average = row_average(x);
        slow = c.slowmo_beta * slow + (anchor - average) / lr;
        x = anchor - c.slowmo_alpha * lr * slow;
        anchor = x;
      }
    } else if (a == "push-sum") {
      m = beta * m + dg;
      numerator = numerator - lr * (beta != 0 ? m : dg);
      const MatrixXd p = push_sum_matrix(s, k);
      numerator = p * numerator;
      weight = p * weight;
      x = numerator.array().colwise() / weight.array();
    } else if (a == "wrapper-adam" || a == "wrapper-adamw") {
      const MatrixXd stepped = adam_step(c, adam, x, g, a == "wrapper-adamw");
      x = c.awc ? MatrixXd(mix(s, k, 1, x) + (stepped - x)) : mix(s, k, 1, stepped);
    } else {
      throw std::invalid_argument("reference_trajectory: no reference for '" + a + "'");
    }
    out.push_back(x);
  }
  return out;
}

}  // namespace decent::optim::testing
