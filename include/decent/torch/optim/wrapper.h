// DecentralizedWrapper: any torch::optim optimizer (SGD, Adam, AdamW, ...) made decentralized.
// Let B(x_k) be the parameters the base optimizer produces from x_k and the gradient at x_k
// (its own momentum, Adam moments and weight decay included).
//
//   adapt-then-combine:  x_{k+1} = W_k B(x_k)                  (base step, then average)
//   adapt-with-combine:  x_{k+1} = W_k x_k + (B(x_k) - x_k)    (average of the pre-step
//                        parameters plus the base optimizer's displacement)
//
// With SGD without momentum these are D-SGD ATC and AWC. In adapt-with-combine mode W_k x_k does
// not depend on the gradient, so with overlap (default) it is started at the end of the
// previous step and runs during the forward/backward pass; results are bit-identical to
// overlap(false). gossip_rounds R applies W R times (steps k*R .. k*R+R-1).
//
// The wrapper takes ownership of the base optimizer. Its param_groups are copies of the base's
// (same tensors, cloned options): set learning rates and other options on the wrapper (a
// scheduler given the wrapper works); they are copied into the base before every base step.
// The checkpoint nests the base optimizer's own save().
//
//   auto base = std::make_unique<torch::optim::Adam>(model->parameters(),
//   torch::optim::AdamOptions(1e-3)); decent::optim::DecentralizedWrapper opt(std::move(base),
//   ctx);
#pragma once

#include "decent/torch/optim/base.h"

namespace decent::optim {

struct WrapperOptions {
  Combine combine = Combine::kAdaptThenCombine;
  // Adapt-with-combine only: compute W x_{k+1} during the next gradient computation.
  bool overlap = true;
  // Rounds of W per iteration (>= 1).
  int gossip_rounds = 1;
};

class DecentralizedWrapper : public DecentOptimizer {
 public:
  DecentralizedWrapper(std::unique_ptr<torch::optim::Optimizer> base, ContextPtr ctx,
                       WrapperOptions options = {}, std::string algorithm = "wrapper");
  torch::Tensor step(LossClosure closure = nullptr) override;

  torch::optim::Optimizer& base() { return *base_; }
  const WrapperOptions& wrapper_options() const { return options_; }

 protected:
  void save_extra(torch::serialize::OutputArchive& archive) const override;
  void load_extra(torch::serialize::InputArchive& archive) override;

 private:
  void copy_options_to_base();
  std::unique_ptr<torch::optim::Optimizer> base_;
  WrapperOptions options_;
};

}  // namespace decent::optim
