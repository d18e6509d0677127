// Helpers shared by the topology tests.
#pragma once

#include "decent/topology/topology.h"

#include <gtest/gtest.h>

#include <Eigen/Dense>

#include <vector>

namespace decent::topology::testing {

// n x n matrix with every entry 1/n.
inline Eigen::MatrixXd averaging_matrix(int n) {
  return Eigen::MatrixXd::Constant(n, n, 1.0 / n);
}

// Runs x <- W_k x from x_i = i for `iterations` steps of the schedule and returns x.
inline Eigen::VectorXd run_consensus(const Schedule& schedule, int iterations) {
  const int n = schedule.size();
  Eigen::VectorXd x(n);
  for (int i = 0; i < n; ++i) x(i) = i;
  // Static schedules reuse one matrix; dynamic ones cycle through their period.
  const int period = schedule.period() > 0 ? schedule.period() : iterations;
  std::vector<Eigen::MatrixXd> matrices;
  for (int k = 0; k < std::min(period, iterations); ++k)
    matrices.push_back(schedule.graph_at(k).mixing_matrix());
  for (int k = 0; k < iterations; ++k) x = matrices[k % matrices.size()] * x;
  return x;
}

}  // namespace decent::topology::testing
