// The extension decent._decent: exceptions, the process-wide context, then the communication
// operations (bind_comm.cpp) and the optimizers (bind_optim.cpp). decent/torch/__init__.py
// builds the public API on top of it.
#include "bindings.h"

#include "decent/topology/errors.h"

#include <chrono>
#include <mutex>
#include <optional>
#include <string>

namespace decent::python {

namespace {

std::mutex g_mutex;
ContextPtr g_context;

// Python exception classes mirroring decent's C++ hierarchy. InvalidArgument is also a
// ValueError, TimeoutError also Python's TimeoutError, and TopologyError a ValueError, so code
// catching the built-in categories keeps working.
PyObject* g_decent_error = nullptr;
PyObject* g_invalid_argument = nullptr;
PyObject* g_mismatch_error = nullptr;
PyObject* g_timeout_error = nullptr;
PyObject* g_comm_error = nullptr;
PyObject* g_topology_error = nullptr;

PyObject* new_exception(py::module_& m, const char* name, PyObject* bases, const char* doc) {
  const std::string qualified = std::string("decent.torch.") + name;
  PyObject* type = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases, nullptr);
  if (type == nullptr) throw py::error_already_set();
  m.attr(name) = py::handle(type);  // the module keeps a reference
  return type;
}

PyObject* tuple_of(std::initializer_list<PyObject*> types) {
  PyObject* t = PyTuple_New(static_cast<Py_ssize_t>(types.size()));
  Py_ssize_t i = 0;
  for (PyObject* type : types) {
    Py_INCREF(type);
    PyTuple_SET_ITEM(t, i++, type);
  }
  return t;
}

void register_exceptions(py::module_& m) {
  g_decent_error = new_exception(m, "DecentError", PyExc_RuntimeError,
                                 "Base of every error raised by decent's C++ core.");
  g_invalid_argument = new_exception(
      m, "InvalidArgument", tuple_of({g_decent_error, PyExc_ValueError}),
      "Bad arguments on this rank: weights for a non-neighbour, rank out of range, bad dtype, "
      "non-contiguous tensor.");
  g_mismatch_error =
      new_exception(m, "MismatchError", g_decent_error,
                    "Ranks disagree: different counts, dtypes, operations or send/receive sets.");
  g_timeout_error = new_exception(m, "TimeoutError", tuple_of({g_decent_error, PyExc_TimeoutError}),
                                  "A wait exceeded the context's timeout.");
  g_comm_error = new_exception(m, "CommError", g_decent_error,
                               "The communicator is unusable (peer lost, shut down, or a "
                               "previous operation failed).");
  g_topology_error = new_exception(m, "TopologyError", PyExc_ValueError,
                                   "A topology cannot be built or used as asked.");
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const InvalidArgument& e) {
      PyErr_SetString(g_invalid_argument, e.what());
    } catch (const MismatchError& e) {
      PyErr_SetString(g_mismatch_error, e.what());
    } catch (const TimeoutError& e) {
      PyErr_SetString(g_timeout_error, e.what());
    } catch (const CommError& e) {
      PyErr_SetString(g_comm_error, e.what());
    } catch (const Error& e) {
      PyErr_SetString(g_decent_error, e.what());
    } catch (const topology::TopologyError& e) {
      PyErr_SetString(g_topology_error, e.what());
    }
  });
}

}  // namespace

ContextPtr context_ptr() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_context) throw Error("decent.torch is not initialized: call decent.torch.init() first");
  return g_context;
}

Context& context() {
  return *context_ptr();
}

namespace {

void init(std::optional<double> timeout, std::optional<std::size_t> fusion_threshold_bytes,
          std::optional<int> ranks_per_machine, std::optional<bool> check_consistency,
          std::optional<std::string> timeline_prefix) {
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_context) return;  // init() twice is harmless, as in BlueFog and Horovod
  }
  ContextOptions options = ContextOptions::from_env();
  if (timeout) {
    if (!(*timeout > 0))
      throw InvalidArgument("init: timeout must be > 0 seconds, got " + std::to_string(*timeout));
    options.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(*timeout * 1000.0));
  }
  if (fusion_threshold_bytes) options.fusion_threshold_bytes = *fusion_threshold_bytes;
  if (ranks_per_machine) options.ranks_per_machine = *ranks_per_machine;
  if (check_consistency) options.check_consistency = *check_consistency;
  if (timeline_prefix) options.timeline_prefix = *timeline_prefix;
  ContextPtr ctx;
  {
    py::gil_scoped_release release;
    ctx = Context::init(options);
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_context) g_context = std::move(ctx);
}

void shutdown() {
  ContextPtr ctx;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    ctx = std::move(g_context);
    g_context.reset();
  }
  py::gil_scoped_release release;
  ctx.reset();  // stops the communication thread unless an optimizer still holds the context
}

bool is_initialized() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_context != nullptr;
}

}  // namespace

}  // namespace decent::python

PYBIND11_MODULE(_decent, m) {
  namespace dp = decent::python;
  m.doc() = "C++ core of decent.torch (import decent.torch instead)";
  dp::register_exceptions(m);
  m.def("init", &dp::init, py::arg("timeout") = py::none(),
        py::arg("fusion_threshold_bytes") = py::none(), py::arg("ranks_per_machine") = py::none(),
        py::arg("check_consistency") = py::none(), py::arg("timeline_prefix") = py::none());
  m.def("shutdown", &dp::shutdown);
  m.def("is_initialized", &dp::is_initialized);
  dp::bind_comm(m);
  dp::bind_optim(m);
}
