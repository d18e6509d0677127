// Shared pieces of the decent.torch extension: the process-wide context and the binders of each
// part of the API.
#pragma once

#include "decent/comm/context.h"

#include <torch/extension.h>

namespace decent::python {

namespace py = pybind11;

// The context of this process, created by init(); raises decent.torch.DecentError when there is
// none yet.
Context& context();
ContextPtr context_ptr();

void bind_comm(py::module_& m);
void bind_optim(py::module_& m);

}  // namespace decent::python
