// The decentralized optimizers for Python. make_optimizer builds the C++ optimizer over the very
// at::Tensor objects behind the Python parameters, so step() updates the model in place; the
// Python classes (DecentLaM, DSGD, ...) in decent/torch/optim.py call it by name.
#include "bindings.h"

#include "decent/torch/optimizers.h"
#include "decent/torch/tensor_ops.h"

#include <pybind11/stl.h>

#include <fmt/format.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace decent::python {

namespace {

using optim::AlgorithmConfig;

// Field setters of AlgorithmConfig by keyword, so Python passes hyperparameters as **kwargs.
using Setter = std::function<void(AlgorithmConfig&, const py::handle&)>;

template <typename T, typename Field>
Setter set_field(Field AlgorithmConfig::*field) {
  return [field](AlgorithmConfig& c, const py::handle& v) { c.*field = v.cast<T>(); };
}

const std::map<std::string, Setter>& setters() {
  static const std::map<std::string, Setter> s = {
      {"lr", set_field<double>(&AlgorithmConfig::lr)},
      {"momentum", set_field<double>(&AlgorithmConfig::momentum)},
      {"weight_decay", set_field<double>(&AlgorithmConfig::weight_decay)},
      {"period", set_field<int>(&AlgorithmConfig::period)},
      {"gossip_rounds", set_field<int>(&AlgorithmConfig::gossip_rounds)},
      {"slowmo_beta", set_field<double>(&AlgorithmConfig::slowmo_beta)},
      {"slowmo_alpha", set_field<double>(&AlgorithmConfig::slowmo_alpha)},
      {"slowmo_gossip", set_field<bool>(&AlgorithmConfig::slowmo_gossip)},
      {"qg_mu", set_field<double>(&AlgorithmConfig::qg_mu)},
      {"lars_eta", set_field<double>(&AlgorithmConfig::lars_eta)},
      {"overlap", set_field<bool>(&AlgorithmConfig::overlap)},
      {"base_optimizer", set_field<std::string>(&AlgorithmConfig::base_optimizer)},
      {"combine", set_field<std::string>(&AlgorithmConfig::combine)},
      {"compressor", set_field<std::string>(&AlgorithmConfig::compressor)},
      {"consensus_step", set_field<double>(&AlgorithmConfig::consensus_step)},
      {"adam_beta1", set_field<double>(&AlgorithmConfig::adam_beta1)},
      {"adam_beta2", set_field<double>(&AlgorithmConfig::adam_beta2)},
      {"adam_eps", set_field<double>(&AlgorithmConfig::adam_eps)},
      // torch.optim.Adam's spelling.
      {"betas",
       [](AlgorithmConfig& c, const py::handle& v) {
         auto b = v.cast<std::pair<double, double>>();
         c.adam_beta1 = b.first;
         c.adam_beta2 = b.second;
       }},
      {"eps", set_field<double>(&AlgorithmConfig::adam_eps)},
  };
  return s;
}

// A C++ optimizer owned by Python. Its parameters are the Python tensors themselves.
class PyOptimizer {
 public:
  PyOptimizer(std::unique_ptr<torch::optim::Optimizer> opt, ContextPtr ctx)
      : opt_(std::move(opt)), ctx_(std::move(ctx)) {}
  ~PyOptimizer() {
    // The destructor waits for communication still in flight.
    py::gil_scoped_release release;
    opt_.reset();
    ctx_.reset();
  }

  void step() {
    py::gil_scoped_release release;
    opt_->step();
  }
  void zero_grad() { opt_->zero_grad(); }
  double lr() const { return optim::learning_rate(*opt_); }
  void set_lr(double lr) { optim::set_learning_rate(*opt_, lr); }
  optim::DecentOptimizer* decent() const {
    return dynamic_cast<optim::DecentOptimizer*>(opt_.get());
  }
  std::int64_t iteration() const { return decent() ? decent()->iteration() : 0; }
  std::string algorithm() const { return decent() ? decent()->algorithm() : std::string(); }
  void synchronize() {
    if (auto* d = decent()) {
      py::gil_scoped_release release;
      d->synchronize();
    }
  }
  void discard_prefetched_average() {
    if (auto* d = decent()) d->discard_prefetched_average();
  }
  std::vector<torch::Tensor> parameters() const {
    std::vector<torch::Tensor> out;
    for (const auto& g : opt_->param_groups())
      for (const auto& p : g.params()) out.push_back(p);
    return out;
  }
  void save(const std::string& path) const {
    torch::serialize::OutputArchive archive;
    opt_->save(archive);
    archive.save_to(path);
  }
  void load(const std::string& path) {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    opt_->load(archive);
  }
  void broadcast_state(int root) {
    py::gil_scoped_release release;
    broadcast_optimizer_state(*ctx_, *opt_, root);
  }

 private:
  std::unique_ptr<torch::optim::Optimizer> opt_;
  ContextPtr ctx_;
};

std::unique_ptr<PyOptimizer> make(const std::string& name, std::vector<torch::Tensor> params,
                                  const py::dict& hyper) {
  AlgorithmConfig config;
  config.name = name;
  for (const auto& [key, value] : hyper) {
    const std::string k = py::str(key);
    auto it = setters().find(k);
    if (it == setters().end()) {
      std::string accepted;
      for (const auto& [n, s] : setters()) accepted += (accepted.empty() ? "" : ", ") + n;
      throw py::type_error(fmt::format(
          "make_optimizer: unexpected keyword argument '{}' (accepted: {})", k, accepted));
    }
    it->second(config, value);
  }
  for (const auto& p : params) {
    if (!p.defined() || !p.is_leaf())
      throw InvalidArgument(fmt::format(
          "{}: parameters must be leaf tensors (model.parameters()), got a computed tensor", name));
  }
  ContextPtr ctx = context_ptr();
  std::unique_ptr<torch::optim::Optimizer> opt;
  {
    py::gil_scoped_release release;
    opt = optim::make_optimizer(config, std::move(params), ctx);
  }
  return std::make_unique<PyOptimizer>(std::move(opt), std::move(ctx));
}

}  // namespace

void bind_optim(py::module_& m) {
  py::class_<PyOptimizer>(m, "DecentOptimizer",
                          "A decentralized optimizer of the C++ core (see make_optimizer).")
      .def("step", &PyOptimizer::step)
      .def("zero_grad", &PyOptimizer::zero_grad)
      .def_property("lr", &PyOptimizer::lr, &PyOptimizer::set_lr)
      .def_property_readonly("iteration", &PyOptimizer::iteration)
      .def_property_readonly("algorithm", &PyOptimizer::algorithm)
      .def("synchronize", &PyOptimizer::synchronize)
      .def("discard_prefetched_average", &PyOptimizer::discard_prefetched_average)
      .def("parameters", &PyOptimizer::parameters)
      .def("save", &PyOptimizer::save, py::arg("path"))
      .def("load", &PyOptimizer::load, py::arg("path"))
      .def("broadcast_state", &PyOptimizer::broadcast_state, py::arg("root_rank") = 0);

  m.def("make_optimizer", &make, py::arg("name"), py::arg("params"), py::arg("hyper"));
  m.def("list_algorithms", [] {
    py::list out;
    for (const auto& a : optim::list_algorithms())
      out.append(py::make_tuple(a.name, a.description));
    return out;
  });
}

}  // namespace decent::python
