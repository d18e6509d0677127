#include "decent/torch/threads.h"

#include <dlfcn.h>
#include <torch/torch.h>

namespace decent {

void set_compute_threads(int threads) {
  if (threads < 1) threads = 1;
  torch::set_num_threads(threads);
  // OpenBLAS (the BLAS behind Debian's LibTorch once libopenblas0 is installed) keeps its own
  // pool sized to the cores; looked up dynamically because the reference BLAS lacks the symbol.
  using SetThreads = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    fn(threads);
}

}  // namespace decent
