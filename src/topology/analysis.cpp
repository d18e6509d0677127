#include "decent/topology/analysis.h"

#include <fmt/format.h>
#include <Eigen/Eigenvalues>
#include <Eigen/SparseCore>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace decent::topology {
namespace {

std::vector<std::vector<int>> out_lists(const Graph& g) {
  std::vector<std::vector<int>> out(g.size());
  for (int i = 0; i < g.size(); ++i) out[i] = g.out_ranks(i);
  return out;
}

// Hop distances from `source` along out-edges; -1 for unreachable nodes.
std::vector<int> bfs(const std::vector<std::vector<int>>& out, int source) {
  std::vector<int> dist(out.size(), -1);
  std::vector<int> queue{source};
  dist[source] = 0;
  for (std::size_t head = 0; head < queue.size(); ++head) {
    const int v = queue[head];
    for (int u : out[v])
      if (dist[u] < 0) {
        dist[u] = dist[v] + 1;
        queue.push_back(u);
      }
  }
  return dist;
}

Eigen::SparseMatrix<double> sparse_mixing_matrix(const Graph& g) {
  std::vector<Eigen::Triplet<double>> entries;
  entries.reserve(static_cast<std::size_t>(g.size() + g.num_edges()));
  for (int i = 0; i < g.size(); ++i) {
    entries.emplace_back(i, i, g.self_weight(i));
    for (const auto& p : g.in_neighbors(i)) entries.emplace_back(i, p.rank, p.weight);
  }
  Eigen::SparseMatrix<double> w(g.size(), g.size());
  w.setFromTriplets(entries.begin(), entries.end());
  return w;
}

}  // namespace

double rho(const Eigen::MatrixXd& w) {
  if (w.rows() != w.cols() || w.rows() < 1)
    throw std::invalid_argument(
        fmt::format("rho needs a non-empty square matrix, got {}x{}", w.rows(), w.cols()));
  const auto n = w.rows();
  const Eigen::MatrixXd deviation =
      w - Eigen::MatrixXd::Constant(n, n, 1.0 / static_cast<double>(n));
  // For a symmetric matrix the singular values are the absolute eigenvalues, and the symmetric
  // eigensolver is several times faster than an SVD.
  if (deviation.isApprox(deviation.transpose(), 1e-14)) {
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(deviation, Eigen::EigenvaluesOnly);
    return eig.eigenvalues().cwiseAbs().maxCoeff();
  }
  // Otherwise the largest singular value is the square root of the largest eigenvalue of
  // D^T D, which that eigensolver finds to a relative error of about machine epsilon (the
  // largest eigenvalue is the best-conditioned one). An SVD would give the same number but
  // doubles the compile time of this file.
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(deviation.transpose() * deviation,
                                                     Eigen::EigenvaluesOnly);
  return std::sqrt(std::max(0.0, eig.eigenvalues()(n - 1)));
}

double rho(const Graph& graph) {
  return rho(graph.mixing_matrix());
}

double spectral_gap(const Graph& graph) {
  return 1.0 - rho(graph);
}

bool is_symmetric(const Graph& graph, double tolerance) {
  for (int i = 0; i < graph.size(); ++i)
    for (const auto& p : graph.in_neighbors(i))
      if (!(std::abs(p.weight - graph.weight(i, p.rank)) <= tolerance)) return false;
  return true;
}

bool is_row_stochastic(const Graph& graph, double tolerance) {
  for (int i = 0; i < graph.size(); ++i) {
    double sum = graph.self_weight(i);
    if (!(sum >= 0)) return false;
    for (const auto& p : graph.in_neighbors(i)) {
      if (!(p.weight >= 0)) return false;
      sum += p.weight;
    }
    if (!(std::abs(sum - 1.0) <= tolerance)) return false;
  }
  return true;
}

bool is_doubly_stochastic(const Graph& graph, double tolerance) {
  if (!is_row_stochastic(graph, tolerance)) return false;
  for (int j = 0; j < graph.size(); ++j) {
    double sum = graph.self_weight(j);
    for (const auto& p : graph.out_neighbors(j)) sum += p.weight;
    if (!(std::abs(sum - 1.0) <= tolerance)) return false;
  }
  return true;
}

bool is_strongly_connected(const Graph& graph) {
  const int n = graph.size();
  if (n == 0) return false;
  std::vector<std::vector<int>> out(n), in(n);
  for (int i = 0; i < n; ++i) {
    out[i] = graph.out_ranks(i);
    in[i] = graph.in_ranks(i);
  }
  const auto forward = bfs(out, 0);
  const auto backward = bfs(in, 0);
  for (int v = 0; v < n; ++v)
    if (forward[v] < 0 || backward[v] < 0) return false;
  return true;
}

int diameter(const Graph& graph) {
  if (!is_strongly_connected(graph)) return -1;
  const auto out = out_lists(graph);
  int longest = 0;
  for (int s = 0; s < graph.size(); ++s) {
    const auto dist = bfs(out, s);
    longest = std::max(longest, *std::max_element(dist.begin(), dist.end()));
  }
  return longest;
}

int max_in_degree(const Graph& graph) {
  int d = 0;
  for (int i = 0; i < graph.size(); ++i) d = std::max(d, graph.in_degree(i));
  return d;
}

int max_out_degree(const Graph& graph) {
  int d = 0;
  for (int i = 0; i < graph.size(); ++i) d = std::max(d, graph.out_degree(i));
  return d;
}

GraphAnalysis analyze(const Graph& graph, const AnalysisOptions& options) {
  GraphAnalysis a;
  a.n = graph.size();
  a.num_edges = graph.num_edges();
  a.max_in_degree = max_in_degree(graph);
  a.max_out_degree = max_out_degree(graph);
  a.average_in_degree = a.n > 0 ? static_cast<double>(a.num_edges) / a.n : 0.0;
  a.symmetric = is_symmetric(graph, options.tolerance);
  a.row_stochastic = is_row_stochastic(graph, options.tolerance);
  a.doubly_stochastic = is_doubly_stochastic(graph, options.tolerance);
  a.strongly_connected = is_strongly_connected(graph);
  if (options.diameter) a.diameter = diameter(graph);
  if (options.spectral) {
    a.rho = rho(graph);
    a.spectral_gap = 1.0 - a.rho;
  }
  return a;
}

Eigen::MatrixXd schedule_product(const Schedule& schedule, int steps, std::int64_t first) {
  const int n = schedule.size();
  Eigen::MatrixXd product = Eigen::MatrixXd::Identity(n, n);
  for (int k = 0; k < steps; ++k) {
    // W_k is sparse: applying it costs O(edges * n) instead of O(n^3).
    const Eigen::SparseMatrix<double> w = sparse_mixing_matrix(schedule.graph_at(first + k));
    product = (w * product).eval();
  }
  return product;
}

ScheduleAnalysis analyze(const Schedule& schedule, int steps, const AnalysisOptions& options) {
  ScheduleAnalysis a;
  a.n = schedule.size();
  a.period = schedule.period();
  a.steps_analyzed = steps > 0 ? steps : (a.period > 0 ? a.period : 1);
  a.symmetric = a.row_stochastic = a.doubly_stochastic = true;
  long long received = 0;
  Graph union_graph(a.n, schedule.name());
  for (int k = 0; k < a.steps_analyzed; ++k) {
    const Graph g = schedule.graph_at(k);
    a.max_in_degree = std::max(a.max_in_degree, max_in_degree(g));
    a.max_out_degree = std::max(a.max_out_degree, max_out_degree(g));
    received += g.num_edges();
    a.symmetric = a.symmetric && is_symmetric(g, options.tolerance);
    a.row_stochastic = a.row_stochastic && is_row_stochastic(g, options.tolerance);
    a.doubly_stochastic = a.doubly_stochastic && is_doubly_stochastic(g, options.tolerance);
    for (int i = 0; i < a.n; ++i)
      for (int j : g.in_ranks(i)) union_graph.set_edge(j, i, 1.0);
  }
  a.average_in_degree =
      static_cast<double>(received) / (static_cast<double>(a.n) * a.steps_analyzed);
  a.strongly_connected = is_strongly_connected(union_graph);
  if (options.spectral) {
    a.rho = rho(schedule_product(schedule, a.steps_analyzed));
    a.rho_per_step = std::pow(a.rho, 1.0 / a.steps_analyzed);
    a.spectral_gap = 1.0 - a.rho;
  }
  return a;
}

}  // namespace decent::topology
