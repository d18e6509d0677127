#include "decent/torch/models.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>
#include <torch/utils.h>

#include <cmath>
#include <stdexcept>

namespace decent::models {
namespace {

namespace nn = torch::nn;

nn::Sequential make_mlp(std::int64_t inputs, const std::vector<std::int64_t>& hidden,
                        int num_classes) {
  nn::Sequential model;
  model->push_back(nn::Flatten());
  std::int64_t width = inputs;
  for (std::int64_t h : hidden) {
    model->push_back(nn::Linear(width, h));
    model->push_back(nn::ReLU());
    width = h;
  }
  model->push_back(nn::Linear(width, num_classes));
  return model;
}

// LeNet-like: two unpadded 5x5 convolutions, each followed by 2x2 max pooling.
nn::Sequential make_cnn(const data::ImageShape& shape, int num_classes) {
  const int out_h = ((shape.height - 4) / 2 - 4) / 2;
  const int out_w = ((shape.width - 4) / 2 - 4) / 2;
  if (shape.height < 12 || shape.width < 12 || out_h < 1 || out_w < 1) {
    throw std::invalid_argument(fmt::format(
        "make_model('cnn'): input {}x{}x{} is too small; height and width must be >= 12",
        shape.channels, shape.height, shape.width));
  }
  nn::Sequential model;
  model->push_back(nn::Conv2d(nn::Conv2dOptions(shape.channels, 8, 5)));
  model->push_back(nn::ReLU());
  model->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2)));
  model->push_back(nn::Conv2d(nn::Conv2dOptions(8, 16, 5)));
  model->push_back(nn::ReLU());
  model->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2)));
  model->push_back(nn::Flatten());
  model->push_back(nn::Linear(16 * out_h * out_w, 64));
  model->push_back(nn::ReLU());
  model->push_back(nn::Linear(64, num_classes));
  return model;
}

// LibTorch's default for Linear and Conv2d (kaiming_uniform with a = sqrt(5) for weights,
// uniform(+-1/sqrt(fan_in)) for biases) both reduce to uniform(+-1/sqrt(fan_in)); drawing it
// from our own generator makes the result depend on the seed alone.
void initialise(nn::Module& model, std::uint64_t seed) {
  at::Generator generator = at::detail::createCPUGenerator(seed);
  torch::NoGradGuard no_grad;
  for (const auto& module : model.modules(/*include_self=*/false)) {
    at::Tensor weight;
    at::Tensor bias;
    if (auto* linear = module->as<nn::Linear>()) {
      weight = linear->weight;
      bias = linear->bias;
    } else if (auto* conv = module->as<nn::Conv2d>()) {
      weight = conv->weight;
      bias = conv->bias;
    } else {
      continue;
    }
    const std::int64_t fan_in = weight.numel() / weight.size(0);
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    weight.uniform_(-bound, bound, generator);
    if (bias.defined()) bias.uniform_(-bound, bound, generator);
  }
}

}  // namespace

std::vector<std::string> model_names() {
  return {"logreg", "mlp", "cnn", "mlp-large"};
}

torch::nn::Sequential make_model(const std::string& name, const data::ImageShape& input_shape,
                                 int num_classes, std::uint64_t seed) {
  if (num_classes < 1) {
    throw std::invalid_argument(
        fmt::format("make_model('{}'): num_classes must be >= 1, got {}", name, num_classes));
  }
  if (input_shape.channels < 1 || input_shape.height < 1 || input_shape.width < 1) {
    throw std::invalid_argument(fmt::format("make_model('{}'): invalid input shape {}x{}x{}", name,
                                            input_shape.channels, input_shape.height,
                                            input_shape.width));
  }
  const std::int64_t inputs = input_shape.numel();
  torch::nn::Sequential model;
  if (name == "logreg") {
    model = make_mlp(inputs, {}, num_classes);
  } else if (name == "mlp") {
    model = make_mlp(inputs, {256, 128}, num_classes);
  } else if (name == "mlp-large") {
    model = make_mlp(inputs, {2048, 2048}, num_classes);
  } else if (name == "cnn") {
    model = make_cnn(input_shape, num_classes);
  } else {
    throw std::invalid_argument(fmt::format(
        "make_model: unknown model '{}' (expected logreg, mlp, cnn or mlp-large)", name));
  }
  initialise(*model, seed);
  return model;
}

std::int64_t parameter_count(const torch::nn::Module& module) {
  std::int64_t count = 0;
  for (const auto& p : module.parameters(/*recurse=*/true)) {
    if (p.requires_grad()) count += p.numel();
  }
  return count;
}

}  // namespace decent::models
