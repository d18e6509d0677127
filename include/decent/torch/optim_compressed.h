// Optimizers that communicate compressed vectors (ALGORITHMS.md, "Compression"). With C a
// compressor (decent/compress/compressor.h), d_i = g_i + weight_decay * x_i, gamma the
// learning rate and eta the consensus step:
//
//   C-SGD ("csgd"), single compression, needs an unbiased C:
//     g_bar = (1/n) sum_j C(g_j)   (allgather of the encodings);  m <- beta m + g_bar + wd x;
//     x <- x - gamma m   (beta = 0: x <- x - gamma (g_bar + wd x))
//   DoubleSqueeze ("doublesqueeze", Tang et al. 2019), error compensation on both sides, any C:
//     worker i:  v_i = C(g_i + delta_i),  delta_i <- g_i + delta_i - v_i   (sent to rank 0)
//     rank 0:    v = C(avg_j v_j + delta_bar), delta_bar <- avg_j v_j + delta_bar - v (broadcast)
//     every rank: m <- beta m + v + wd x;  x <- x - gamma m
//   DCD-PSGD ("dcd-psgd", Tang et al. 2018), needs an unbiased C:
//     z_i = sum_j w_ij x_j - gamma d_i - x_i;  q_i = C(z_i);  x_i <- x_i + q_i,
//     and every neighbour applies the same q_i to its replica of x_i, so sum_j w_ij x_j is
//     kept as a running sum updated by sum_j w_ij q_j (one exact averaging at the first step)
//   DeepSqueeze ("deepsqueeze", Tang et al. 2019), any C:
//     u_i = x_i - gamma d_i;  v_i = C(u_i + delta_i);  delta_i <- u_i + delta_i - v_i;
//     x_i <- u_i + eta sum_j (w_ij - I_ij) v_j
//   CHOCO-SGD ("choco-sgd", Koloskova et al. 2019), any C:
//     x_i^{1/2} = x_i - gamma d_i, then one CHOCO gossip round (compress::CompressedGossip):
//     q_i = C(x_i^{1/2} - x^_i); x^_j += q_j; x_i <- x_i^{1/2} + eta sum_j w_ij (x^_j - x^_i)
//
// With an exact compressor ("none") and eta = 1 these reduce to their uncompressed forms:
// csgd and doublesqueeze to pmsgd, dcd-psgd to D-SGD adapt-with-combine (DGD), deepsqueeze and
// choco-sgd to D-SGD adapt-then-combine. Momentum applies to csgd and doublesqueeze only.
//
// All parameters (every group, in order) are flattened into one float64 vector, which is
// compressed and sent as one message per neighbour per step; the learning rate and weight
// decay stay per group. dcd-psgd and choco-sgd keep replicas and need a static topology;
// deepsqueeze also runs on dynamic ones (topology step = iteration). Randomized compressors are
// seeded from (seed, rank, iteration), and the residuals and replicas are part of the
// checkpoint, so a resumed run continues bit-identically.
//
//   decent::optim::ChocoSGD opt(model->parameters(), ctx, decent::optim::CompressedOptions(0.1),
//                               decent::optim::CompressionOptions("topk:ratio=0.01")
//                                   .consensus_step(0.4));
#pragma once

#include "decent/compress/compressor.h"
#include "decent/compress/error_feedback.h"
#include "decent/compress/gossip.h"
#include "decent/torch/optim/base.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace decent::optim {

// Per-group options of the compressed optimizers.
struct CompressedOptions : public torch::optim::OptimizerCloneableOptions<CompressedOptions> {
  CompressedOptions(double lr = 0.1);  // NOLINT: implicit like torch::optim::SGDOptions
  TORCH_ARG(double, lr);
  // Momentum beta in [0, 1) of csgd and doublesqueeze (the others reject a non-zero value).
  TORCH_ARG(double, momentum) = 0.0;
  // Added to the gradient as weight_decay * x.
  TORCH_ARG(double, weight_decay) = 0.0;

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
};

// Optimizer-wide compression settings (one compressor for the flattened parameters).
struct CompressionOptions {
  CompressionOptions(std::string compressor = "qsgd:s=16,bucket=512");  // NOLINT
  // Spec of the compressor, see decent::compress::make_compressor.
  TORCH_ARG(std::string, compressor);
  // eta in (0, 1]: CHOCO's gossip step and DeepSqueeze's consensus step. Compressed runs
  // usually need eta < 1; eta = 1 with an exact compressor gives D-SGD.
  TORCH_ARG(double, consensus_step) = 1.0;
  // Base seed of randomized compressors (the stream also depends on rank and iteration).
  TORCH_ARG(std::uint64_t, seed) = 0;
};

// Checks that `algorithm` (a factory name of this file) accepts these settings; throws
// decent::InvalidArgument naming `where` (bad spec, biased compressor for csgd/dcd-psgd,
// consensus_step out of range).
void validate_compression(const std::string& algorithm, const CompressionOptions& options,
                          const std::string& where);

// Common part: flattening, compressor, optimizer-wide state vectors and their checkpoint.
class CompressedOptimizer : public DecentOptimizer {
 public:
  const compress::Compressor& compressor() const { return *compressor_; }
  const CompressionOptions& compression() const { return compression_; }
  // Number of elements of the flattened parameters.
  std::size_t dimension() const { return dimension_; }
  // Bytes of encodings this rank has sent since construction (or restored by load()): the
  // encoded sizes times the number of receivers (a broadcast counts once, as in CommStats),
  // without the transport's message headers.
  std::uint64_t encoded_bytes_sent() const { return encoded_bytes_sent_; }

 protected:
  CompressedOptimizer(std::vector<torch::optim::OptimizerParamGroup> param_groups, ContextPtr ctx,
                      CompressedOptions defaults, CompressionOptions compression,
                      std::string algorithm, bool allows_momentum);

  struct Segment {
    torch::Tensor param;
    std::size_t offset;
    std::size_t numel;
    double lr, momentum, weight_decay;
  };
  // Parameters with their place in the flat vector; checks that the total is dimension().
  std::vector<Segment> segments();
  static std::vector<double> flat_parameters(const std::vector<Segment>& segments);
  // Raw gradients g (undefined read as zero), without weight decay.
  static std::vector<double> flat_gradients(const std::vector<Segment>& segments);
  // u = x - gamma (g + weight_decay x), per segment.
  static std::vector<double> adapted_parameters(const std::vector<Segment>& segments,
                                                const std::vector<double>& x,
                                                const std::vector<double>& g);
  static void write_parameters(const std::vector<Segment>& segments, const std::vector<double>& x);
  // x <- x - gamma m with m <- beta m + (v + wd x) per segment (PmSGD's update with v for the
  // averaged gradient).
  void apply_averaged_gradient(const std::vector<Segment>& segments, const std::vector<double>& v);
  // Seed of this rank's `purpose`-th encoding in the current iteration.
  std::uint64_t seed(std::uint64_t purpose = 0) const;

  // Named vectors of the algorithm's state (dimension() elements each, or empty when not in
  // use on this rank); saved and restored by the checkpoint.
  virtual std::vector<std::pair<std::string, std::vector<double>*>> state_vectors() = 0;
  void save_extra(torch::serialize::OutputArchive& archive) const override;
  void load_extra(torch::serialize::InputArchive& archive) override;

  compress::CompressorPtr compressor_;
  CompressionOptions compression_;
  std::size_t dimension_ = 0;
  std::uint64_t encoded_bytes_sent_ = 0;
  // Whether state that the first step sets up (DCD-PSGD's exact average) exists.
  bool initialized_ = false;
};

class CSGD : public CompressedOptimizer {
 public:
  CSGD(std::vector<torch::Tensor> params, ContextPtr ctx, CompressedOptions defaults = {},
       CompressionOptions compression = {});
  torch::Tensor step(LossClosure closure = nullptr) override;

 protected:
  std::vector<std::pair<std::string, std::vector<double>*>> state_vectors() override { return {}; }
};

class DoubleSqueeze : public CompressedOptimizer {
 public:
  DoubleSqueeze(std::vector<torch::Tensor> params, ContextPtr ctx, CompressedOptions defaults = {},
                CompressionOptions compression = {});
  torch::Tensor step(LossClosure closure = nullptr) override;
  const std::vector<double>& worker_residual() const { return worker_.residual(); }
  // Rank 0's delta_bar (empty on the other ranks).
  const std::vector<double>& aggregator_residual() const { return aggregator_residual_; }

 protected:
  std::vector<std::pair<std::string, std::vector<double>*>> state_vectors() override;

 private:
  compress::ErrorFeedback<double> worker_;
  std::vector<double> aggregator_residual_;
};

class DCDPSGD : public CompressedOptimizer {
 public:
  DCDPSGD(std::vector<torch::Tensor> params, ContextPtr ctx, CompressedOptions defaults = {},
          CompressionOptions compression = {});
  torch::Tensor step(LossClosure closure = nullptr) override;

 protected:
  std::vector<std::pair<std::string, std::vector<double>*>> state_vectors() override;

 private:
  std::vector<double> mixed_parameters_;  // sum_j w_ij x_j from the replicas
};

class DeepSqueeze : public CompressedOptimizer {
 public:
  DeepSqueeze(std::vector<torch::Tensor> params, ContextPtr ctx, CompressedOptions defaults = {},
              CompressionOptions compression = {});
  torch::Tensor step(LossClosure closure = nullptr) override;
  const std::vector<double>& residual() const { return feedback_.residual(); }

 protected:
  std::vector<std::pair<std::string, std::vector<double>*>> state_vectors() override;

 private:
  compress::ErrorFeedback<double> feedback_;
};

class ChocoSGD : public CompressedOptimizer {
 public:
  ChocoSGD(std::vector<torch::Tensor> params, ContextPtr ctx, CompressedOptions defaults = {},
           CompressionOptions compression = {});
  torch::Tensor step(LossClosure closure = nullptr) override;
  const compress::CompressedGossip<double>& gossip() const { return gossip_; }

 protected:
  std::vector<std::pair<std::string, std::vector<double>*>> state_vectors() override;

 private:
  compress::CompressedGossip<double> gossip_;
};

}  // namespace decent::optim
