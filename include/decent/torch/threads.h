// Compute-thread control for ranks sharing a machine.
#pragma once

namespace decent {

// Sets LibTorch's intra-op threads and, when the process uses OpenBLAS, its thread pool to
// `threads`. Several ranks per machine each want 1, or they fight over the cores.
void set_compute_threads(int threads);

}  // namespace decent
