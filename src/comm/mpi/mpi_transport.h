// Entry points of the MPI backend. This header does not include <mpi.h>, so the code that picks
// a backend (Context::init) can use it without MPI's headers or flags.
#pragma once

#include "decent/comm/transport.h"

#include <memory>

namespace decent::comm {

// A transport over all ranks of the MPI job (a duplicate of MPI_COMM_WORLD, so its messages never
// mix with the application's own MPI traffic). Initialises MPI on first use, asking for
// MPI_THREAD_MULTIPLE and accepting MPI_THREAD_SERIALIZED. MPI is finalised once, at process
// exit; a process exiting with a non-zero status aborts the job instead, so that its peers do not
// wait for it. Collective: every rank of the job must call it. Throws CommError when MPI cannot
// start or has already been finalised.
std::unique_ptr<Transport> make_mpi_world_transport();

// True when this process was started by mpirun/mpiexec/srun (Open MPI, PMIx or PMI variables
// are in the environment).
bool launched_under_mpi();

}  // namespace decent::comm
