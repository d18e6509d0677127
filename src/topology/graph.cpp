#include "decent/topology/graph.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

namespace decent::topology {

Graph::Graph(int n, std::string name) : name_(std::move(name)) {
  if (n < 1) throw std::invalid_argument(fmt::format("graph size must be >= 1, got {}", n));
  self_weights_.assign(n, 1.0);
  in_.resize(n);
  out_.resize(n);
}

void Graph::check_rank(int r, const char* what) const {
  if (r < 0 || r >= size())
    throw std::out_of_range(fmt::format("{} rank {} is out of range [0, {})", what, r, size()));
}

void Graph::set_edge(int src, int dst, double weight) {
  check_rank(src, "source");
  check_rank(dst, "destination");
  if (src == dst)
    throw std::invalid_argument(
        fmt::format("edge {} -> {} is a self loop; use set_self_weight", src, dst));
  in_[dst][src] = weight;
  out_[src][dst] = weight;
}

void Graph::remove_edge(int src, int dst) {
  check_rank(src, "source");
  check_rank(dst, "destination");
  in_[dst].erase(src);
  out_[src].erase(dst);
}

bool Graph::has_edge(int src, int dst) const {
  check_rank(src, "source");
  check_rank(dst, "destination");
  return in_[dst].count(src) > 0;
}

double Graph::weight(int src, int dst) const {
  check_rank(src, "source");
  check_rank(dst, "destination");
  if (src == dst) return self_weights_[src];
  auto it = in_[dst].find(src);
  return it == in_[dst].end() ? 0.0 : it->second;
}

void Graph::set_self_weight(int node, double weight) {
  check_rank(node, "node");
  self_weights_[node] = weight;
}

double Graph::self_weight(int node) const {
  check_rank(node, "node");
  return self_weights_[node];
}

std::vector<WeightedPeer> Graph::in_neighbors(int node) const {
  check_rank(node, "node");
  std::vector<WeightedPeer> peers;
  peers.reserve(in_[node].size());
  for (const auto& [src, w] : in_[node]) peers.push_back({src, w});
  return peers;
}

std::vector<WeightedPeer> Graph::out_neighbors(int node) const {
  check_rank(node, "node");
  std::vector<WeightedPeer> peers;
  peers.reserve(out_[node].size());
  for (const auto& [dst, w] : out_[node]) peers.push_back({dst, w});
  return peers;
}

std::vector<int> Graph::in_ranks(int node) const {
  std::vector<int> ranks;
  for (const auto& p : in_neighbors(node)) ranks.push_back(p.rank);
  return ranks;
}

std::vector<int> Graph::out_ranks(int node) const {
  std::vector<int> ranks;
  for (const auto& p : out_neighbors(node)) ranks.push_back(p.rank);
  return ranks;
}

int Graph::in_degree(int node) const {
  check_rank(node, "node");
  return static_cast<int>(in_[node].size());
}

int Graph::out_degree(int node) const {
  check_rank(node, "node");
  return static_cast<int>(out_[node].size());
}

int Graph::num_edges() const {
  int total = 0;
  for (const auto& m : in_) total += static_cast<int>(m.size());
  return total;
}

Eigen::MatrixXd Graph::mixing_matrix() const {
  const int n = size();
  Eigen::MatrixXd w = Eigen::MatrixXd::Zero(n, n);
  for (int i = 0; i < n; ++i) {
    w(i, i) = self_weights_[i];
    for (const auto& [j, wij] : in_[i]) w(i, j) = wij;
  }
  return w;
}

Graph Graph::from_matrix(const Eigen::MatrixXd& w, std::string name) {
  if (w.rows() != w.cols() || w.rows() < 1)
    throw std::invalid_argument(
        fmt::format("mixing matrix must be square and non-empty, got {}x{}", w.rows(), w.cols()));
  const int n = static_cast<int>(w.rows());
  Graph g(n, std::move(name));
  for (int i = 0; i < n; ++i) {
    g.set_self_weight(i, w(i, i));
    for (int j = 0; j < n; ++j)
      if (i != j && w(i, j) != 0.0) g.set_edge(j, i, w(i, j));
  }
  return g;
}

bool Graph::is_undirected() const {
  for (int i = 0; i < size(); ++i)
    for (const auto& [j, wij] : in_[i])
      if (!in_[j].count(i)) return false;
  return true;
}

}  // namespace decent::topology
