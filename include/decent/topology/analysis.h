// Spectral and combinatorial analysis of mixing matrices and schedules.
//
// rho = ||W - 11^T/n||_2 measures how much one round of averaging shrinks disagreement:
// ||W x - mean|| <= rho ||x - mean|| for doubly stochastic W. rho = 0 is exact averaging
// (fully connected), rho = 1 means no progress (disconnected graph).
#pragma once

#include "decent/topology/graph.h"
#include "decent/topology/schedule.h"

#include <Eigen/Dense>

#include <cstdint>

namespace decent::topology {

// Largest singular value of W - 11^T/n, from Eigen's symmetric eigensolver: of W - 11^T/n when
// W is symmetric (singular values are then absolute eigenvalues), else of its Gram matrix.
double rho(const Eigen::MatrixXd& w);
double rho(const Graph& graph);
// 1 - rho.
double spectral_gap(const Graph& graph);

bool is_symmetric(const Graph& graph, double tolerance = 1e-12);
// Non-negative weights, rows summing to 1.
bool is_row_stochastic(const Graph& graph, double tolerance = 1e-9);
// Row-stochastic and columns summing to 1.
bool is_doubly_stochastic(const Graph& graph, double tolerance = 1e-9);
// Every node reaches every other node along directed edges (the direction messages travel).
bool is_strongly_connected(const Graph& graph);
// Longest shortest directed path (BFS); -1 when the graph is not strongly connected.
int diameter(const Graph& graph);
int max_in_degree(const Graph& graph);
int max_out_degree(const Graph& graph);

struct AnalysisOptions {
  // Compute rho (dense eigensolver, O(n^3)); tools switch it off for very large n.
  bool spectral = true;
  // Compute the diameter (BFS from every node, O(n * edges)).
  bool diameter = true;
  double tolerance = 1e-9;
};

struct GraphAnalysis {
  int n = 0;
  int num_edges = 0;
  int max_in_degree = 0;
  int max_out_degree = 0;
  double average_in_degree = 0.0;
  double rho = -1.0;           // -1 when not computed
  double spectral_gap = -1.0;  // 1 - rho, -1 when not computed
  bool symmetric = false;
  bool row_stochastic = false;
  bool doubly_stochastic = false;
  bool strongly_connected = false;
  int diameter = -1;  // -1 when disconnected or not computed
};
GraphAnalysis analyze(const Graph& graph, const AnalysisOptions& options = {});

// Product of the mixing matrices of steps first .. first+steps-1, in application order:
// W_{first+steps-1} ... W_{first}.
Eigen::MatrixXd schedule_product(const Schedule& schedule, int steps, std::int64_t first = 0);

struct ScheduleAnalysis {
  int n = 0;
  int period = 0;              // schedule.period()
  int steps_analyzed = 0;      // the period, or the requested window for aperiodic schedules
  double rho = -1.0;           // of the product over steps_analyzed steps; -1 when not computed
  double rho_per_step = -1.0;  // rho^(1/steps_analyzed): comparable with a static graph's rho
  double spectral_gap = -1.0;  // 1 - rho
  int max_in_degree = 0;       // over all analyzed steps
  int max_out_degree = 0;
  double average_in_degree = 0.0;   // messages received per node per step
  bool symmetric = false;           // every step's W symmetric
  bool row_stochastic = false;      // every step's W
  bool doubly_stochastic = false;   // every step's W
  bool strongly_connected = false;  // union of the analyzed steps
};
// Analyzes one period (steps = 0) or `steps` steps of a schedule.
ScheduleAnalysis analyze(const Schedule& schedule, int steps = 0,
                         const AnalysisOptions& options = {});

}  // namespace decent::topology
