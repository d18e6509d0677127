// Process-wide MPI state shared by every MPI transport: initialisation, finalisation, the
// datatypes and reduction operators for our dtypes, and the conversion of MPI error codes.
#pragma once

#include "decent/comm/types.h"

#include <mpi.h>

#include <memory>
#include <string>

namespace decent::comm::mpi {

class Runtime {
 public:
  // Initialises MPI on first use (MPI_THREAD_MULTIPLE if available, else at least
  // MPI_THREAD_SERIALIZED) and registers the finalisation at process exit. When the application
  // initialised MPI itself, the runtime only checks the thread level and leaves MPI_Finalize to
  // the application. Every transport holds a reference, so the datatypes and operators below stay
  // valid for as long as a transport exists.
  static std::shared_ptr<Runtime> acquire();

  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
  ~Runtime();

  // MPI_THREAD_SERIALIZED or MPI_THREAD_MULTIPLE.
  int thread_level() const { return thread_level_; }
  // True when this library initialised MPI and therefore finalises it at exit.
  bool owns_mpi() const { return owns_mpi_; }
  // The MPI datatype of one element of `dtype`; float16 and bfloat16 share a 2-byte type.
  MPI_Datatype datatype(DType dtype) const;
  // The operator reducing `dtype` with `op`; float16 and bfloat16 use user-defined operators that
  // compute in float. Throws InvalidArgument for kAverage (callers divide themselves).
  MPI_Op op(DType dtype, ReduceOp op) const;

  // Runs at process exit when this library initialised MPI: MPI_Finalize, or MPI_Abort when the
  // process exits with a non-zero status (so its peers do not wait for it in MPI_Finalize).
  static void finalize_at_exit(int exit_status);

 private:
  Runtime(bool owns_mpi, int thread_level);
  void free_mpi_objects();

  bool owns_mpi_;
  int thread_level_;
  MPI_Datatype two_byte_type_ = MPI_DATATYPE_NULL;
  // Indexed by [0: float16, 1: bfloat16][0: sum, 1: min, 2: max].
  MPI_Op two_byte_ops_[2][3] = {{MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL},
                                {MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL}};
};

// True once MPI_Finalize has run; MPI objects must then no longer be freed.
bool mpi_finalized();

// The text MPI gives for an error code, e.g. "MPI_ERR_RANK: invalid rank".
std::string error_string(int code);

// Throws when `code` is not MPI_SUCCESS: MismatchError for MPI_ERR_TRUNCATE (ranks disagree on a
// size), CommError otherwise. The message reads "<where>: <operation> failed: <MPI text>".
void check(int code, const std::string& where, const std::string& operation);

}  // namespace decent::comm::mpi
