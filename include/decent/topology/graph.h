// A weighted directed communication graph: the mixing matrix W of partial averaging.
//
// Node i computes x_i <- w_ii x_i + sum_{j in in(i)} w_ij x_j. An edge j -> i with weight w_ij
// means "i receives from j and gives the message weight w_ij". Pure C++ (Eigen), no MPI/LibTorch.
#pragma once

#include <Eigen/Dense>

#include <map>
#include <string>
#include <vector>

namespace decent::topology {

// One incoming message: the source rank and the weight its message receives.
struct WeightedPeer {
  int rank = 0;
  double weight = 0.0;
  bool operator==(const WeightedPeer& o) const { return rank == o.rank && weight == o.weight; }
};

class Graph {
 public:
  Graph() = default;
  // n isolated nodes with self weight 1 (W = I).
  explicit Graph(int n, std::string name = "custom");

  int size() const { return static_cast<int>(self_weights_.size()); }
  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }

  // Adds or replaces edge src -> dst (dst receives from src) with weight w_{dst,src}.
  // Throws std::out_of_range for ranks outside [0, n) and std::invalid_argument for src == dst.
  void set_edge(int src, int dst, double weight);
  void remove_edge(int src, int dst);
  bool has_edge(int src, int dst) const;
  double weight(int src, int dst) const;  // 0 when there is no edge

  void set_self_weight(int node, double weight);
  double self_weight(int node) const;

  // In-neighbours of `node` (excluding itself), sorted by rank, with their weights.
  std::vector<WeightedPeer> in_neighbors(int node) const;
  // Out-neighbours of `node` (excluding itself), sorted by rank; weight is w_{dst,node}.
  std::vector<WeightedPeer> out_neighbors(int node) const;
  std::vector<int> in_ranks(int node) const;
  std::vector<int> out_ranks(int node) const;
  int in_degree(int node) const;
  int out_degree(int node) const;
  int num_edges() const;

  // Dense mixing matrix, W(i, j) = w_ij (row i is what node i computes).
  Eigen::MatrixXd mixing_matrix() const;
  // Builds a graph from a dense matrix: off-diagonal non-zeros become edges j -> i.
  static Graph from_matrix(const Eigen::MatrixXd& w, std::string name = "custom");

  // True when every edge has its reverse (weights may differ).
  bool is_undirected() const;

 private:
  void check_rank(int r, const char* what) const;
  std::string name_ = "custom";
  std::vector<double> self_weights_;
  std::vector<std::map<int, double>> in_;   // in_[dst][src] = w_{dst,src}
  std::vector<std::map<int, double>> out_;  // out_[src][dst] = w_{dst,src}
};

}  // namespace decent::topology
