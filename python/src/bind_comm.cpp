// Context operations on torch tensors, topologies and windows for Python. Tensors arrive as the
// at::Tensor behind the Python object (same storage, no copy); every blocking call releases the
// GIL while it communicates, and non-blocking calls return a Handle that keeps its tensors alive
// until the operation has completed.
#include "bindings.h"

#include "decent/comm/window.h"
#include "decent/topology/dynamic.h"
#include "decent/topology/registry.h"
#include "decent/torch/tensor_ops.h"

#include <pybind11/eigen.h>
#include <pybind11/stl.h>

#include <fmt/format.h>

#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace decent::python {

namespace {

using topology::Graph;
using topology::SchedulePtr;
using WeightMap = std::map<int, double>;

// A schedule as Python sees it (SchedulePtr points to const, which pybind11 holders do not take).
struct PySchedule {
  SchedulePtr schedule;
};

NeighborAllreduceOptions neighbor_options(std::optional<double> self_weight,
                                          std::optional<WeightMap> src_weights,
                                          std::optional<WeightMap> dst_weights,
                                          std::optional<std::int64_t> step) {
  NeighborAllreduceOptions opts;
  opts.self_weight = self_weight;
  opts.src_weights = std::move(src_weights);
  opts.dst_weights = std::move(dst_weights);
  opts.step = step;
  return opts;
}

// A pending non-blocking operation: the C++ handle, the tensors it reads and writes (kept alive
// until it completes) and how to produce the Python result once it has.
class PyHandle {
 public:
  PyHandle(Handle handle, std::vector<torch::Tensor> keep, std::function<py::object()> result,
           std::shared_ptr<GatherResult> gather = nullptr)
      : handle_(std::move(handle)),
        keep_(std::move(keep)),
        result_(std::move(result)),
        gather_(std::move(gather)) {}
  ~PyHandle() {
    // Buffers must outlive the operation: a handle dropped unwaited waits here.
    if (!completed_) {
      try {
        py::gil_scoped_release release;
        handle_.wait();
      } catch (...) {
      }
    }
  }

  py::object wait() {
    if (!completed_) {
      {
        py::gil_scoped_release release;
        handle_.wait();
      }
      completed_ = true;
    }
    if (!value_) value_ = result_();
    return *value_;
  }
  bool poll() {
    if (completed_) return true;
    bool done = false;
    {
      py::gil_scoped_release release;
      done = handle_.poll();
    }
    completed_ = done;
    return done;
  }

 private:
  Handle handle_;
  std::vector<torch::Tensor> keep_;
  std::function<py::object()> result_;
  std::shared_ptr<GatherResult> gather_;
  bool completed_ = false;
  std::optional<py::object> value_;
};

py::object tensor_object(const torch::Tensor& t) {
  return py::cast(t);
}

py::object tensors_object(const std::vector<torch::Tensor>& ts) {
  py::list out;
  for (const auto& t : ts) out.append(py::cast(t));
  return out;
}

// Communication writes the tensors' memory directly; autograd must not record it.
#define DECENT_NO_GRAD torch::NoGradGuard no_grad_guard

Buffer checked(const torch::Tensor& t, const char* op) {
  return buffer_of(t, context(), op);
}

// ---- neighbour averaging ----

torch::Tensor py_neighbor_allreduce(const torch::Tensor& x, std::optional<double> self_weight,
                                    std::optional<WeightMap> src_weights,
                                    std::optional<WeightMap> dst_weights,
                                    std::optional<std::int64_t> step) {
  auto opts = neighbor_options(self_weight, std::move(src_weights), std::move(dst_weights), step);
  Context& ctx = context();
  DECENT_NO_GRAD;
  py::gil_scoped_release release;
  return neighbor_allreduce(ctx, x, opts);
}

torch::Tensor py_neighbor_allreduce_(torch::Tensor x, std::optional<double> self_weight,
                                     std::optional<WeightMap> src_weights,
                                     std::optional<WeightMap> dst_weights,
                                     std::optional<std::int64_t> step) {
  auto opts = neighbor_options(self_weight, std::move(src_weights), std::move(dst_weights), step);
  Context& ctx = context();
  DECENT_NO_GRAD;
  py::gil_scoped_release release;
  neighbor_allreduce_(ctx, x, opts);
  return x;
}

std::vector<torch::Tensor> py_neighbor_allreduce_list_(std::vector<torch::Tensor> xs,
                                                       std::optional<double> self_weight,
                                                       std::optional<WeightMap> src_weights,
                                                       std::optional<WeightMap> dst_weights,
                                                       std::optional<std::int64_t> step) {
  auto opts = neighbor_options(self_weight, std::move(src_weights), std::move(dst_weights), step);
  Context& ctx = context();
  DECENT_NO_GRAD;
  py::gil_scoped_release release;
  neighbor_allreduce_(ctx, xs, opts);
  return xs;
}

std::unique_ptr<PyHandle> py_neighbor_allreduce_nonblocking(
    const torch::Tensor& x, std::optional<double> self_weight, std::optional<WeightMap> src_weights,
    std::optional<WeightMap> dst_weights, std::optional<std::int64_t> step, bool inplace) {
  auto opts = neighbor_options(self_weight, std::move(src_weights), std::move(dst_weights), step);
  Context& ctx = context();
  DECENT_NO_GRAD;
  checked(x, "neighbor_allreduce");
  torch::Tensor out = inplace ? x : torch::empty_like(x, torch::MemoryFormat::Contiguous);
  Handle h;
  {
    py::gil_scoped_release release;
    h = neighbor_allreduce_async(ctx, x, out, opts);
  }
  return std::make_unique<PyHandle>(std::move(h), std::vector<torch::Tensor>{x, out},
                                    [out] { return tensor_object(out); });
}

std::unique_ptr<PyHandle> py_neighbor_allreduce_list_nonblocking_(
    std::vector<torch::Tensor> xs, std::optional<double> self_weight,
    std::optional<WeightMap> src_weights, std::optional<WeightMap> dst_weights,
    std::optional<std::int64_t> step) {
  auto opts = neighbor_options(self_weight, std::move(src_weights), std::move(dst_weights), step);
  Context& ctx = context();
  DECENT_NO_GRAD;
  Handle h;
  {
    py::gil_scoped_release release;
    h = neighbor_allreduce_async_(ctx, xs, opts);
  }
  return std::make_unique<PyHandle>(std::move(h), xs, [xs] { return tensors_object(xs); });
}

torch::Tensor py_neighbor_allgather(const torch::Tensor& x, std::optional<WeightMap> src_weights,
                                    std::optional<WeightMap> dst_weights,
                                    std::optional<std::int64_t> step) {
  auto opts = neighbor_options(std::nullopt, std::move(src_weights), std::move(dst_weights), step);
  Context& ctx = context();
  DECENT_NO_GRAD;
  py::gil_scoped_release release;
  return neighbor_allgather(ctx, x, opts);
}

torch::Tensor py_hierarchical_neighbor_allreduce_(torch::Tensor x,
                                                  std::optional<double> self_weight,
                                                  std::optional<WeightMap> src_weights,
                                                  std::optional<WeightMap> dst_weights,
                                                  std::optional<std::int64_t> step) {
  auto opts = neighbor_options(self_weight, std::move(src_weights), std::move(dst_weights), step);
  Context& ctx = context();
  DECENT_NO_GRAD;
  py::gil_scoped_release release;
  hierarchical_neighbor_allreduce_(ctx, x, opts);
  return x;
}

torch::Tensor py_pair_gossip_(torch::Tensor x, int peer, double self_weight) {
  Context& ctx = context();
  DECENT_NO_GRAD;
  py::gil_scoped_release release;
  pair_gossip_(ctx, x, peer, self_weight);
  return x;
}

// ---- collectives ----

torch::Tensor py_allreduce_(torch::Tensor x, ReduceOp op) {
  Context& ctx = context();
  DECENT_NO_GRAD;
  py::gil_scoped_release release;
  allreduce_(ctx, x, op);
  return x;
}

std::vector<torch::Tensor> py_allreduce_list_(std::vector<torch::Tensor> xs, ReduceOp op) {
  Context& ctx = context();
  DECENT_NO_GRAD;
  py::gil_scoped_release release;
  allreduce_(ctx, xs, op);
  return xs;
}

std::unique_ptr<PyHandle> py_allreduce_nonblocking_(torch::Tensor x, ReduceOp op) {
  Context& ctx = context();
  DECENT_NO_GRAD;
  Buffer b = checked(x, "allreduce");
  Handle h;
  {
    py::gil_scoped_release release;
    h = ctx.allreduce_async(b, op);
  }
  return std::make_unique<PyHandle>(std::move(h), std::vector<torch::Tensor>{x},
                                    [x] { return tensor_object(x); });
}

std::unique_ptr<PyHandle> py_allreduce_list_nonblocking_(std::vector<torch::Tensor> xs,
                                                         ReduceOp op) {
  Context& ctx = context();
  DECENT_NO_GRAD;
  Handle h;
  {
    py::gil_scoped_release release;
    h = allreduce_async_(ctx, xs, op);
  }
  return std::make_unique<PyHandle>(std::move(h), xs, [xs] { return tensors_object(xs); });
}

torch::Tensor py_broadcast_(torch::Tensor x, int root) {
  Context& ctx = context();
  DECENT_NO_GRAD;
  py::gil_scoped_release release;
  broadcast_(ctx, x, root);
  return x;
}

std::unique_ptr<PyHandle> py_broadcast_nonblocking_(torch::Tensor x, int root) {
  Context& ctx = context();
  DECENT_NO_GRAD;
  Buffer b = checked(x, "broadcast");
  Handle h;
  {
    py::gil_scoped_release release;
    h = ctx.broadcast_async(b, root);
  }
  return std::make_unique<PyHandle>(std::move(h), std::vector<torch::Tensor>{x},
                                    [x] { return tensor_object(x); });
}

torch::Tensor py_allgather(const torch::Tensor& x) {
  Context& ctx = context();
  DECENT_NO_GRAD;
  py::gil_scoped_release release;
  return allgather(ctx, x);
}

std::unique_ptr<PyHandle> py_allgather_nonblocking(const torch::Tensor& x) {
  Context& ctx = context();
  DECENT_NO_GRAD;
  Buffer b = checked(x, "allgather");
  auto gather = std::make_shared<GatherResult>();
  Handle h;
  {
    py::gil_scoped_release release;
    h = ctx.allgather_async(ConstBuffer(b), *gather);
  }
  return std::make_unique<PyHandle>(
      std::move(h), std::vector<torch::Tensor>{x},
      [gather, x] { return tensor_object(gathered_tensor(*gather, x, context(), "allgather")); },
      gather);
}

void py_broadcast_parameters(std::vector<torch::Tensor> tensors, int root) {
  Context& ctx = context();
  DECENT_NO_GRAD;
  py::gil_scoped_release release;
  broadcast_parameters(ctx, std::move(tensors), root);
}

double py_consensus_distance(const std::vector<torch::Tensor>& tensors) {
  Context& ctx = context();
  py::gil_scoped_release release;
  return consensus_distance(ctx, tensors);
}

// ---- topologies ----

topology::WeightRule weight_rule(const std::string& text) {
  return topology::parse_weight_rule(text);
}

void set_topology(const py::object& topo) {
  Context& ctx = context();
  if (py::isinstance<Graph>(topo)) {
    ctx.set_topology(topo.cast<Graph>());
  } else if (py::isinstance<PySchedule>(topo)) {
    ctx.set_topology(topo.cast<PySchedule>().schedule);
  } else if (py::isinstance<py::str>(topo)) {
    ctx.set_topology(topology::make_schedule(topo.cast<std::string>(), ctx.size()));
  } else {
    throw py::type_error(
        "set_topology: expected a decent.torch.Graph, a Schedule or a topology name, got " +
        std::string(py::str(py::type::of(topo).attr("__name__"))));
  }
}

topology::TopologyOptions topology_options(const std::string& weights, std::uint64_t seed,
                                           double probability, int base, int local_size) {
  topology::TopologyOptions o;
  o.weights = weight_rule(weights);
  o.seed = seed;
  o.probability = probability;
  o.base = base;
  o.local_size = local_size;
  return o;
}

py::dict plan_dict(const topology::StepPlan& plan) {
  py::dict d;
  d["self_weight"] = plan.self_weight;
  WeightMap recv, send;
  for (const auto& p : plan.recv) recv[p.rank] = p.weight;
  for (const auto& p : plan.send) send[p.rank] = p.weight;
  d["src_weights"] = recv;
  d["dst_weights"] = send;
  return d;
}

// ---- windows ----

WinPutOptions put_options(std::optional<WeightMap> dst_weights) {
  WinPutOptions o;
  o.dst_weights = std::move(dst_weights);
  return o;
}

}  // namespace

void bind_comm(py::module_& m) {
  // ---- process ----
  m.def("rank", [] { return context().rank(); });
  m.def("size", [] { return context().size(); });
  m.def("local_rank", [] { return context().local_rank(); });
  m.def("local_size", [] { return context().local_size(); });
  m.def("machine_rank", [] { return context().machine_rank(); });
  m.def("machine_size", [] { return context().machine_size(); });
  m.def("backend", [] { return context().backend(); });
  m.def("step", [] { return context().step(); });
  m.def("set_step", [](std::int64_t s) { context().set_step(s); });
  m.def("barrier", [] {
    Context& ctx = context();
    py::gil_scoped_release release;
    ctx.barrier();
  });
  m.def("stats", [] {
    CommStats s = context().stats();
    py::dict d;
    d["bytes_sent"] = s.bytes_sent;
    d["bytes_received"] = s.bytes_received;
    d["messages_sent"] = s.messages_sent;
    d["header_messages"] = s.header_messages;
    d["operations"] = s.operations;
    return d;
  });

  py::enum_<ReduceOp>(m, "ReduceOp")
      .value("Sum", ReduceOp::kSum)
      .value("Average", ReduceOp::kAverage)
      .value("Min", ReduceOp::kMin)
      .value("Max", ReduceOp::kMax);

  // ---- topologies ----
  py::class_<Graph>(m, "Graph", "Weighted directed graph: the mixing matrix W (row i = rank i).")
      .def(py::init<int, std::string>(), py::arg("n"), py::arg("name") = "custom")
      .def_property_readonly("size", &Graph::size)
      .def_property_readonly("name", &Graph::name)
      .def("set_edge", &Graph::set_edge, py::arg("src"), py::arg("dst"), py::arg("weight"))
      .def("remove_edge", &Graph::remove_edge, py::arg("src"), py::arg("dst"))
      .def("has_edge", &Graph::has_edge, py::arg("src"), py::arg("dst"))
      .def("weight", &Graph::weight, py::arg("src"), py::arg("dst"))
      .def("set_self_weight", &Graph::set_self_weight, py::arg("node"), py::arg("weight"))
      .def("self_weight", &Graph::self_weight, py::arg("node"))
      .def("in_neighbors", &Graph::in_ranks, py::arg("node"))
      .def("out_neighbors", &Graph::out_ranks, py::arg("node"))
      .def(
          "in_weights",
          [](const Graph& g, int node) {
            WeightMap w;
            for (const auto& p : g.in_neighbors(node)) w[p.rank] = p.weight;
            return w;
          },
          py::arg("node"))
      .def("num_edges", &Graph::num_edges)
      .def("is_undirected", &Graph::is_undirected)
      .def("mixing_matrix", &Graph::mixing_matrix)
      .def_static(
          "from_matrix",
          [](const Eigen::MatrixXd& w, const std::string& name) {
            return Graph::from_matrix(w, name);
          },
          py::arg("w"), py::arg("name") = "custom")
      .def("__repr__", [](const Graph& g) {
        return fmt::format("<decent.torch.Graph {} n={} edges={}>", g.name(), g.size(),
                           g.num_edges());
      });

  py::class_<PySchedule>(m, "Schedule", "A topology that may change every step (dynamic).")
      .def_property_readonly("size", [](const PySchedule& s) { return s.schedule->size(); })
      .def_property_readonly("name", [](const PySchedule& s) { return s.schedule->name(); })
      .def_property_readonly("period", [](const PySchedule& s) { return s.schedule->period(); })
      .def("is_static", [](const PySchedule& s) { return s.schedule->is_static(); })
      .def(
          "graph_at",
          [](const PySchedule& s, std::int64_t step) { return s.schedule->graph_at(step); },
          py::arg("step"))
      .def(
          "plan",
          [](const PySchedule& s, std::int64_t step, int rank) {
            return plan_dict(s.schedule->plan(step, rank));
          },
          py::arg("step"), py::arg("rank"))
      .def("__repr__", [](const PySchedule& s) {
        return fmt::format("<decent.torch.Schedule {} n={} period={}>", s.schedule->name(),
                           s.schedule->size(), s.schedule->period());
      });

  m.def(
      "make_graph",
      [](const std::string& name, int n, const std::string& weights, std::uint64_t seed,
         double probability, int base, int local_size) {
        return topology::make_graph(name, n,
                                    topology_options(weights, seed, probability, base, local_size));
      },
      py::arg("name"), py::arg("n"), py::arg("weights") = "uniform", py::arg("seed") = 0,
      py::arg("probability") = 0.5, py::arg("base") = 2, py::arg("local_size") = 0);
  m.def(
      "make_schedule",
      [](const std::string& name, int n, const std::string& weights, std::uint64_t seed,
         double probability, int base, int local_size) {
        return PySchedule{topology::make_schedule(
            name, n, topology_options(weights, seed, probability, base, local_size))};
      },
      py::arg("name"), py::arg("n"), py::arg("weights") = "uniform", py::arg("seed") = 0,
      py::arg("probability") = 0.5, py::arg("base") = 2, py::arg("local_size") = 0);
  m.def("list_topologies", [] {
    py::list out;
    for (const auto& t : topology::list_topologies())
      out.append(py::make_tuple(t.name, t.description, t.dynamic));
    return out;
  });
  m.def(
      "apply_weights",
      [](const Graph& g, const std::string& rule) {
        return topology::apply_weights(g, weight_rule(rule));
      },
      py::arg("graph"), py::arg("rule"));
  m.def(
      "ring", [](int n, const std::string& w) { return topology::ring(n, weight_rule(w)); },
      py::arg("n"), py::arg("weights") = "uniform");
  m.def(
      "directed_ring",
      [](int n, const std::string& w) { return topology::directed_ring(n, weight_rule(w)); },
      py::arg("n"), py::arg("weights") = "uniform");
  m.def(
      "star",
      [](int n, int center, const std::string& w) {
        return topology::star(n, center, weight_rule(w));
      },
      py::arg("n"), py::arg("center") = 0, py::arg("weights") = "uniform");
  m.def(
      "grid", [](int n, const std::string& w) { return topology::grid(n, weight_rule(w)); },
      py::arg("n"), py::arg("weights") = "uniform");
  m.def(
      "torus", [](int n, const std::string& w) { return topology::torus(n, weight_rule(w)); },
      py::arg("n"), py::arg("weights") = "uniform");
  m.def(
      "exponential",
      [](int n, int base, const std::string& w) {
        return topology::exponential(n, base, weight_rule(w));
      },
      py::arg("n"), py::arg("base") = 2, py::arg("weights") = "uniform");
  m.def(
      "symmetric_exponential",
      [](int n, const std::string& w) {
        return topology::symmetric_exponential(n, weight_rule(w));
      },
      py::arg("n"), py::arg("weights") = "uniform");
  m.def(
      "hypercube",
      [](int n, const std::string& w) { return topology::hypercube(n, weight_rule(w)); },
      py::arg("n"), py::arg("weights") = "uniform");
  m.def(
      "fully_connected",
      [](int n, const std::string& w) { return topology::fully_connected(n, weight_rule(w)); },
      py::arg("n"), py::arg("weights") = "uniform");
  m.def(
      "random_graph",
      [](int n, double p, std::uint64_t seed, const std::string& w) {
        return topology::random_graph(n, p, seed, weight_rule(w));
      },
      py::arg("n"), py::arg("p") = 0.5, py::arg("seed") = 0, py::arg("weights") = "uniform");
  m.def(
      "one_peer_exponential",
      [](int n) { return PySchedule{std::make_shared<const topology::OnePeerExponential>(n)}; },
      py::arg("n"));

  m.def("set_topology", &set_topology, py::arg("topology"));
  m.def("topology", [] { return PySchedule{context().topology()}; });
  m.def(
      "step_plan",
      [](std::optional<std::int64_t> step) {
        Context& ctx = context();
        return plan_dict(ctx.topology()->plan(step.value_or(ctx.step()), ctx.rank()));
      },
      py::arg("step") = py::none());

  // ---- operations ----
  m.def("neighbor_allreduce", &py_neighbor_allreduce, py::arg("tensor"), py::kw_only(),
        py::arg("self_weight") = py::none(), py::arg("src_weights") = py::none(),
        py::arg("dst_weights") = py::none(), py::arg("step") = py::none());
  m.def("neighbor_allreduce_", &py_neighbor_allreduce_, py::arg("tensor"), py::kw_only(),
        py::arg("self_weight") = py::none(), py::arg("src_weights") = py::none(),
        py::arg("dst_weights") = py::none(), py::arg("step") = py::none());
  m.def("neighbor_allreduce_", &py_neighbor_allreduce_list_, py::arg("tensors"), py::kw_only(),
        py::arg("self_weight") = py::none(), py::arg("src_weights") = py::none(),
        py::arg("dst_weights") = py::none(), py::arg("step") = py::none());
  m.def(
      "neighbor_allreduce_nonblocking",
      [](const torch::Tensor& x, std::optional<double> sw, std::optional<WeightMap> src,
         std::optional<WeightMap> dst, std::optional<std::int64_t> step) {
        return py_neighbor_allreduce_nonblocking(x, sw, std::move(src), std::move(dst), step,
                                                 false);
      },
      py::arg("tensor"), py::kw_only(), py::arg("self_weight") = py::none(),
      py::arg("src_weights") = py::none(), py::arg("dst_weights") = py::none(),
      py::arg("step") = py::none());
  m.def(
      "neighbor_allreduce_nonblocking_",
      [](const torch::Tensor& x, std::optional<double> sw, std::optional<WeightMap> src,
         std::optional<WeightMap> dst, std::optional<std::int64_t> step) {
        return py_neighbor_allreduce_nonblocking(x, sw, std::move(src), std::move(dst), step, true);
      },
      py::arg("tensor"), py::kw_only(), py::arg("self_weight") = py::none(),
      py::arg("src_weights") = py::none(), py::arg("dst_weights") = py::none(),
      py::arg("step") = py::none());
  m.def("neighbor_allreduce_nonblocking_", &py_neighbor_allreduce_list_nonblocking_,
        py::arg("tensors"), py::kw_only(), py::arg("self_weight") = py::none(),
        py::arg("src_weights") = py::none(), py::arg("dst_weights") = py::none(),
        py::arg("step") = py::none());
  m.def("neighbor_allgather", &py_neighbor_allgather, py::arg("tensor"), py::kw_only(),
        py::arg("src_weights") = py::none(), py::arg("dst_weights") = py::none(),
        py::arg("step") = py::none());
  m.def("hierarchical_neighbor_allreduce_", &py_hierarchical_neighbor_allreduce_, py::arg("tensor"),
        py::kw_only(), py::arg("self_weight") = py::none(), py::arg("src_weights") = py::none(),
        py::arg("dst_weights") = py::none(), py::arg("step") = py::none());
  m.def("pair_gossip_", &py_pair_gossip_, py::arg("tensor"), py::arg("peer"),
        py::arg("self_weight") = 0.5);

  m.def("allreduce_", &py_allreduce_, py::arg("tensor"), py::arg("op") = ReduceOp::kAverage);
  m.def("allreduce_", &py_allreduce_list_, py::arg("tensors"), py::arg("op") = ReduceOp::kAverage);
  m.def("allreduce_nonblocking_", &py_allreduce_nonblocking_, py::arg("tensor"),
        py::arg("op") = ReduceOp::kAverage);
  m.def("allreduce_nonblocking_", &py_allreduce_list_nonblocking_, py::arg("tensors"),
        py::arg("op") = ReduceOp::kAverage);
  m.def("broadcast_", &py_broadcast_, py::arg("tensor"), py::arg("root_rank"));
  m.def("broadcast_nonblocking_", &py_broadcast_nonblocking_, py::arg("tensor"),
        py::arg("root_rank"));
  m.def("allgather", &py_allgather, py::arg("tensor"));
  m.def("allgather_nonblocking", &py_allgather_nonblocking, py::arg("tensor"));
  m.def("broadcast_parameters", &py_broadcast_parameters, py::arg("tensors"),
        py::arg("root_rank") = 0);
  m.def("consensus_distance", &py_consensus_distance, py::arg("tensors"));

  py::class_<PyHandle>(m, "Handle", "A non-blocking operation in flight.")
      .def("wait", &PyHandle::wait, "Blocks until done; returns the result tensor(s).")
      .def("poll", &PyHandle::poll, "True when done; raises the operation's error.");

  // ---- windows ----
  py::class_<WindowOptions>(m, "WindowOptions")
      .def(py::init<>())
      .def_readwrite("init_slots_with_neighbors", &WindowOptions::init_slots_with_neighbors);

  py::class_<Window, std::unique_ptr<Window, py::nodelete>>(m, "Window")
      .def_property_readonly("name", &Window::name)
      .def_property_readonly("in_neighbors", &Window::in_neighbors)
      .def_property_readonly("out_neighbors", &Window::out_neighbors)
      .def_property_readonly("self_weight", &Window::self_weight)
      .def("neighbor_weights", &Window::neighbor_weights)
      .def(
          "put",
          [](Window& w, std::optional<WeightMap> dst) {
            auto o = put_options(std::move(dst));
            py::gil_scoped_release release;
            w.put(o);
          },
          py::arg("dst_weights") = py::none())
      .def(
          "accumulate",
          [](Window& w, std::optional<WeightMap> dst) {
            auto o = put_options(std::move(dst));
            py::gil_scoped_release release;
            w.accumulate(o);
          },
          py::arg("dst_weights") = py::none())
      .def(
          "get",
          [](Window& w, std::optional<std::vector<int>> srcs) {
            WinGetOptions o;
            o.srcs = std::move(srcs);
            py::gil_scoped_release release;
            w.get(o);
          },
          py::arg("src_ranks") = py::none())
      .def(
          "update",
          [](Window& w, std::optional<double> self_weight, std::optional<WeightMap> src_weights,
             bool reset) {
            WinUpdateOptions o;
            o.self_weight = self_weight;
            o.src_weights = std::move(src_weights);
            o.reset = reset;
            py::gil_scoped_release release;
            w.update(o);
          },
          py::arg("self_weight") = py::none(), py::arg("src_weights") = py::none(),
          py::arg("reset") = false)
      .def("publish",
           [](Window& w) {
             py::gil_scoped_release release;
             w.publish();
           })
      .def(
          "read_value",
          [](Window& w, int rank, torch::Tensor out) {
            Buffer b = checked(out, "win_read_value");
            py::gil_scoped_release release;
            w.read_value(rank, b);
          },
          py::arg("rank"), py::arg("out"))
      .def(
          "write_value",
          [](Window& w, int rank, const torch::Tensor& in) {
            Buffer b = checked(in, "win_write_value");
            py::gil_scoped_release release;
            w.write_value(rank, ConstBuffer(b));
          },
          py::arg("rank"), py::arg("value"))
      .def(
          "read_slot",
          [](Window& w, int src, torch::Tensor out) {
            Buffer b = checked(out, "win_read_slot");
            py::gil_scoped_release release;
            w.read_slot(src, b);
          },
          py::arg("src"), py::arg("out"))
      .def("versions",
           [](Window& w) {
             py::gil_scoped_release release;
             return w.versions();
           })
      .def(
          "fetch_add_counter",
          [](Window& w, int rank, std::int64_t delta) {
            py::gil_scoped_release release;
            return w.fetch_add_counter(rank, delta);
          },
          py::arg("rank"), py::arg("delta"))
      .def(
          "lock",
          [](Window& w, int rank) {
            py::gil_scoped_release release;
            w.lock(rank);
          },
          py::arg("rank") = -1)
      .def(
          "unlock",
          [](Window& w, int rank) {
            py::gil_scoped_release release;
            w.unlock(rank);
          },
          py::arg("rank") = -1)
      .def("holds_lock", &Window::holds_lock, py::arg("rank") = -1)
      .def_property_readonly("freed", &Window::freed);

  m.def(
      "win_create",
      [](const torch::Tensor& t, const std::string& name, bool zero_init) -> Window* {
        Context& ctx = context();
        Buffer b = checked(t, "win_create");
        WindowOptions o;
        o.init_slots_with_neighbors = !zero_init;
        py::gil_scoped_release release;
        return &ctx.win_create(name, b, o);
      },
      py::arg("tensor"), py::arg("name"), py::arg("zero_init") = false,
      py::return_value_policy::reference);
  m.def(
      "window", [](const std::string& name) -> Window* { return &context().window(name); },
      py::arg("name"), py::return_value_policy::reference);
  m.def(
      "win_free",
      [](const std::string& name) {
        Context& ctx = context();
        py::gil_scoped_release release;
        ctx.win_free(name);
      },
      py::arg("name"));
}

}  // namespace decent::python
