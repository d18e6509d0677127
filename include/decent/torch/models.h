// Small image classifiers for the training command and the benchmarks.
//
// | name      | layers (input 1x28x28, 10 classes)                               | parameters |
// |-----------|------------------------------------------------------------------|-----------:|
// | logreg    | flatten, linear 784-10                                           |      7,850 |
// | mlp       | flatten, 784-256-128-10, ReLU                                    |    235,146 |
// | cnn       | conv5x5 8, ReLU, maxpool 2, conv5x5 16, ReLU, maxpool 2,         |     20,522 |
// |           | flatten, linear 256-64, ReLU, linear 64-10 (LeNet-like)          |            |
// | mlp-large | flatten, 784-2048-2048-10, ReLU (communication-bound benchmarks) |  5,824,522 |
//
// Models are torch::nn::Sequential, so `model->forward(x)` maps [B, C, H, W] float images to
// [B, num_classes] logits and `model->parameters()` is what the optimizers average.
#pragma once

#include <torch/nn/modules/container/sequential.h>

#include <cstdint>
#include <string>
#include <vector>

#include "decent/data/dataset.h"

namespace decent::models {

// Names make_model accepts: "logreg", "mlp", "cnn", "mlp-large".
std::vector<std::string> model_names();

// Builds `name` for inputs of `input_shape` and `num_classes` outputs and initialises it from
// `seed`: the same seed gives bit-identical parameters on every rank, whatever the state of
// the global torch::manual_seed generator. The parameters are redrawn from a private generator
// with LibTorch's default scheme (uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and
// biases), so ranks building models concurrently in one process cannot interleave draws.
// (Constructing the layers still advances the global generator, as any LibTorch layer does.)
// Throws std::invalid_argument for an unknown name, num_classes < 1, or an input too small
// for the cnn (height and width must be at least 12).
torch::nn::Sequential make_model(const std::string& name, const data::ImageShape& input_shape,
                                 int num_classes, std::uint64_t seed = 0);

// Total number of scalar parameters (trainable ones, i.e. requires_grad).
std::int64_t parameter_count(const torch::nn::Module& module);

}  // namespace decent::models
