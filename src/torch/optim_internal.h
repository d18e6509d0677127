// Helpers shared by the optimizer sources: archive fields, option checks, option casts.
#pragma once

#include "decent/torch/optim/base.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <cmath>
#include <string>

namespace decent::optim::detail {

// ---- archive fields (exact: doubles are stored as doubles) ----
inline void write_field(torch::serialize::OutputArchive& a, const std::string& key, double v) {
  a.write(key, c10::IValue(v));
}
inline void write_field(torch::serialize::OutputArchive& a, const std::string& key,
                        std::int64_t v) {
  a.write(key, c10::IValue(v));
}
inline void write_field(torch::serialize::OutputArchive& a, const std::string& key, bool v) {
  a.write(key, c10::IValue(v));
}
inline void write_field(torch::serialize::OutputArchive& a, const std::string& key,
                        const std::string& v) {
  a.write(key, c10::IValue(v));
}

inline c10::IValue read_value(torch::serialize::InputArchive& a, const std::string& key) {
  c10::IValue v;
  if (!a.try_read(key, v))
    throw InvalidArgument(fmt::format("optimizer checkpoint: missing entry '{}'", key));
  return v;
}
inline void read_field(torch::serialize::InputArchive& a, const std::string& key, double& v) {
  v = read_value(a, key).toDouble();
}
inline void read_field(torch::serialize::InputArchive& a, const std::string& key, std::int64_t& v) {
  v = read_value(a, key).toInt();
}
inline void read_field(torch::serialize::InputArchive& a, const std::string& key, int& v) {
  v = static_cast<int>(read_value(a, key).toInt());
}
inline void read_field(torch::serialize::InputArchive& a, const std::string& key, bool& v) {
  v = read_value(a, key).toBool();
}

// ---- option checks (message: "<where>: <name> = <value>: must be ...") ----
inline void check_learning_rate(const std::string& where, double lr) {
  if (!(std::isfinite(lr) && lr > 0))
    throw InvalidArgument(fmt::format("{}: lr = {}: must be a finite number > 0", where, lr));
}
inline void check_unit_interval(const std::string& where, const char* name, double v) {
  if (!(v >= 0 && v < 1))
    throw InvalidArgument(fmt::format("{}: {} = {}: must be in [0, 1)", where, name, v));
}
inline void check_non_negative(const std::string& where, const char* name, double v) {
  if (!(std::isfinite(v) && v >= 0))
    throw InvalidArgument(fmt::format("{}: {} = {}: must be a finite number >= 0", where, name, v));
}
inline void check_positive(const std::string& where, const char* name, double v) {
  if (!(std::isfinite(v) && v > 0))
    throw InvalidArgument(fmt::format("{}: {} = {}: must be a finite number > 0", where, name, v));
}
inline void check_at_least(const std::string& where, const char* name, std::int64_t v,
                           std::int64_t lowest) {
  if (v < lowest)
    throw InvalidArgument(fmt::format("{}: {} = {}: must be >= {}", where, name, v, lowest));
}

// The options of a group, which must be of the optimizer's own options type.
template <typename Options>
const Options& options_of(const torch::optim::OptimizerParamGroup& group,
                          const std::string& where) {
  const auto* o = dynamic_cast<const Options*>(&group.options());
  if (!o)
    throw InvalidArgument(
        fmt::format("{}: a parameter group carries options of another optimizer", where));
  return *o;
}

// Runs the closure (with gradients enabled) when one is given.
inline torch::Tensor evaluate_closure(const torch::optim::Optimizer::LossClosure& closure) {
  if (!closure) return {};
  torch::AutoGradMode enable_grad(true);
  return closure();
}

inline ContextPtr require_context(ContextPtr ctx, const char* algorithm) {
  if (!ctx) throw InvalidArgument(fmt::format("{}: the communication context is null", algorithm));
  return ctx;
}

// The parameters of the constructors that take a plain tensor list, as one group.
inline std::vector<torch::optim::OptimizerParamGroup> single_group(
    std::vector<torch::Tensor> params) {
  return {torch::optim::OptimizerParamGroup(std::move(params))};
}

}  // namespace decent::optim::detail
