// Stacked reference implementations of the optimizer update rules of ALGORITHMS.md, written
// directly from the formulas in plain Eigen (no LibTorch, no communication): row i of X is rank
// i's parameter vector, W_k comes from the schedule's graph at step k. The optimizer tests
// compare every rank's trajectory against these.
//
// Problem: f_i(x) = 0.5 ||x - c_i||^2, so the gradient of rank i at x is x - c_i exactly.
#pragma once

#include "decent/topology/schedule.h"

#include <Eigen/Dense>

#include <string>
#include <vector>

namespace decent::optim::testing {

struct ReferenceConfig {
  double lr = 0.1;
  double momentum = 0.0;
  double weight_decay = 0.0;
  int period = 1;         // local-sgd / slowmo tau, dsgd-pga H
  int gossip_rounds = 1;  // dsgd-multi-gossip
  double slowmo_beta = 0.5;
  double slowmo_alpha = 1.0;
  bool slowmo_gossip = false;
  double qg_mu = 0.9;
  double lars_eta = 0.001;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_eps = 1e-8;
  // Wrappers: adapt-with-combine instead of adapt-then-combine.
  bool awc = false;
};

// X after every step (steps + 1 matrices, the first is X0) of the algorithm named as in the
// factory (pmsgd, pmsgd-lars, dsgd, dsgd-awc, dmsgd, da-dmsgd, awc-dmsgd, qg-dmsgd, decentlam,
// slowmo, dsgd-pga, local-sgd, dsgd-multi-gossip, push-sum, wrapper-sgd, wrapper-adam,
// wrapper-adamw). `layers` are the column counts of the parameter tensors (LARS works per
// tensor). For push-sum, rows are the de-biased z.
std::vector<Eigen::MatrixXd> reference_trajectory(const std::string& algorithm,
                                                  const ReferenceConfig& config,
                                                  const Eigen::MatrixXd& x0,
                                                  const Eigen::MatrixXd& targets,
                                                  const topology::Schedule& schedule, int steps,
                                                  const std::vector<int>& layers);

// Column-stochastic push-sum matrix of the graph at `step`: P(i, j) = 1 / (out-degree(j) + 1)
// for j = i and every edge j -> i.
Eigen::MatrixXd push_sum_matrix(const topology::Schedule& schedule, std::int64_t step);

// Fixed point of full-batch D-SGD (adapt-then-combine, static W) with step size lr on the
// quadratics: X = W(X - lr (X - C))  =>  X = (I - (1 - lr) W)^{-1} lr W C.
Eigen::MatrixXd dsgd_fixed_point(const Eigen::MatrixXd& w, const Eigen::MatrixXd& targets,
                                 double lr);

// Every row replaced by the column mean.
Eigen::MatrixXd row_average(const Eigen::MatrixXd& x);

}  // namespace decent::optim::testing
