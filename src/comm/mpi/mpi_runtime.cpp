#include "comm/mpi/mpi_runtime.h"

#include <Eigen/Core>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace decent::comm::mpi {
namespace {

std::mutex g_mutex;
// True when this library called MPI_Init_thread and therefore owes the MPI_Finalize.
bool g_owns_mpi = false;
// The process-wide runtime. Kept until the end of the process: MPI cannot be initialised a second
// time, so a runtime whose transports are all gone must still be the one finalised at exit.
std::shared_ptr<Runtime> g_runtime;

struct Sum {
  float operator()(float a, float b) const { return a + b; }
};
struct Min {
  float operator()(float a, float b) const { return b < a ? b : a; }
};
struct Max {
  float operator()(float a, float b) const { return a < b ? b : a; }
};

// MPI_User_function for the 2-byte floating types: widen to float, combine, round back.
// Elements are copied with memcpy because MPI gives no alignment guarantee for user buffers.
template <typename Half, typename Combine>
void reduce_two_byte(void* in, void* inout, int* len, MPI_Datatype* /*datatype*/) {
  const auto* a = static_cast<const unsigned char*>(in);
  auto* b = static_cast<unsigned char*>(inout);
  const Combine combine;
  for (int i = 0; i < *len; ++i) {
    Half x, y;
    std::memcpy(&x, a + 2 * i, 2);
    std::memcpy(&y, b + 2 * i, 2);
    const Half result(combine(static_cast<float>(x), static_cast<float>(y)));
    std::memcpy(b + 2 * i, &result, 2);
  }
}

static_assert(sizeof(Eigen::half) == 2 && sizeof(Eigen::bfloat16) == 2,
              "the 2-byte MPI datatype assumes 2-byte Eigen half types");

int op_index(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return 0;
    case ReduceOp::kMin:
      return 1;
    case ReduceOp::kMax:
      return 2;
    case ReduceOp::kAverage:
      break;
  }
  throw InvalidArgument(std::string("the MPI transport reduces with sum, min or max, not ") +
                        reduce_op_name(op) + " (averaging divides the sum on the caller's side)");
}

}  // namespace

Runtime::Runtime(bool owns_mpi, int thread_level)
    : owns_mpi_(owns_mpi), thread_level_(thread_level) {
  check(MPI_Type_contiguous(2, MPI_BYTE, &two_byte_type_), "MPI runtime", "MPI_Type_contiguous");
  check(MPI_Type_commit(&two_byte_type_), "MPI runtime", "MPI_Type_commit");
  MPI_User_function* const functions[2][3] = {
      {&reduce_two_byte<Eigen::half, Sum>, &reduce_two_byte<Eigen::half, Min>,
       &reduce_two_byte<Eigen::half, Max>},
      {&reduce_two_byte<Eigen::bfloat16, Sum>, &reduce_two_byte<Eigen::bfloat16, Min>,
       &reduce_two_byte<Eigen::bfloat16, Max>}};
  for (int type = 0; type < 2; ++type) {
    for (int op = 0; op < 3; ++op) {
      check(MPI_Op_create(functions[type][op], /*commute=*/1, &two_byte_ops_[type][op]),
            "MPI runtime", "MPI_Op_create");
    }
  }
}

Runtime::~Runtime() {
  // Normally runs after finalize_at_exit (the handler is registered after g_runtime's
  // construction); if MPI is still up (the application owns it), release our objects.
  if (!mpi_finalized()) free_mpi_objects();
}

void Runtime::free_mpi_objects() {
  for (auto& per_type : two_byte_ops_) {
    for (MPI_Op& op : per_type) {
      if (op != MPI_OP_NULL) MPI_Op_free(&op);
    }
  }
  if (two_byte_type_ != MPI_DATATYPE_NULL) MPI_Type_free(&two_byte_type_);
}

void Runtime::finalize_at_exit(int exit_status) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_owns_mpi || mpi_finalized()) return;
  if (exit_status != 0) {
    // MPI_Finalize waits for every rank (Open MPI ends it with a barrier), so a rank leaving with
    // an error would wait for peers that may be waiting for it. mpirun ends the job on a non-zero
    // exit anyway; aborting does it now.
    int world_rank = -1;
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    std::fprintf(stderr, "decent: world rank %d exits with status %d; aborting the MPI job\n",
                 world_rank, exit_status);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, exit_status);
  }
  // Transports still alive now (e.g. held by a static) see MPI finalised and free nothing.
  if (g_runtime) g_runtime->free_mpi_objects();
  MPI_Finalize();
}

namespace {

#if defined(__GLIBC__)
// on_exit (unlike atexit) passes the exit status.
void finalize_with_status(int exit_status, void* /*unused*/) {
  Runtime::finalize_at_exit(exit_status);
}
bool register_finalize() {
  return on_exit(&finalize_with_status, nullptr) == 0;
}
#else
void finalize_without_status() {
  Runtime::finalize_at_exit(0);
}
bool register_finalize() {
  return std::atexit(&finalize_without_status) == 0;
}
#endif

}  // namespace

std::shared_ptr<Runtime> Runtime::acquire() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (mpi_finalized()) {
    throw CommError(
        "MPI has already been finalised in this process; no MPI transport can be created");
  }
  if (g_runtime) return g_runtime;

  int initialized = 0;
  MPI_Initialized(&initialized);
  int provided = MPI_THREAD_SINGLE;
  const bool owns_mpi = !initialized;
  if (owns_mpi) {
    // Windows and the communication thread may call MPI from a second thread, hence MULTIPLE when
    // the library offers it; SERIALIZED suffices for one thread at a time.
    const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    if (rc != MPI_SUCCESS) throw CommError("MPI_Init_thread failed: " + error_string(rc));
    g_owns_mpi = true;
    if (!register_finalize()) {
      throw CommError("cannot register MPI finalisation at process exit");
    }
  } else {
    MPI_Query_thread(&provided);
  }
  if (provided < MPI_THREAD_SERIALIZED) {
    // Without SERIALIZED, MPI may only be called from the thread that initialised it, while the
    // transport is driven by a communication thread.
    throw CommError("MPI provides thread level " + std::to_string(provided) +
                    " but the MPI transport needs at least MPI_THREAD_SERIALIZED (" +
                    std::to_string(MPI_THREAD_SERIALIZED) + ")");
  }
  g_runtime = std::shared_ptr<Runtime>(new Runtime(owns_mpi, provided));
  return g_runtime;
}

MPI_Datatype Runtime::datatype(DType dtype) const {
  switch (dtype) {
    case DType::kFloat32:
      return MPI_FLOAT;
    case DType::kFloat64:
      return MPI_DOUBLE;
    case DType::kFloat16:
      return two_byte_type_;
    case DType::kBFloat16:
      return two_byte_type_;
    case DType::kInt32:
      return MPI_INT32_T;
    case DType::kInt64:
      return MPI_INT64_T;
    case DType::kUInt8:
      return MPI_UINT8_T;
  }
  throw InvalidArgument("unknown dtype " + std::to_string(static_cast<int>(dtype)));
}

MPI_Op Runtime::op(DType dtype, ReduceOp op) const {
  const int index = op_index(op);
  if (dtype == DType::kFloat16) return two_byte_ops_[0][index];
  if (dtype == DType::kBFloat16) return two_byte_ops_[1][index];
  static const MPI_Op builtin[3] = {MPI_SUM, MPI_MIN, MPI_MAX};
  return builtin[index];
}

bool mpi_finalized() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}

std::string error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) {
    return "MPI error code " + std::to_string(code);
  }
  return std::string(text, static_cast<std::size_t>(length));
}

void check(int code, const std::string& where, const std::string& operation) {
  if (code == MPI_SUCCESS) return;
  int error_class = code;
  MPI_Error_class(code, &error_class);
  const std::string message = where + ": " + operation + " failed: " + error_string(code);
  if (error_class == MPI_ERR_TRUNCATE) {
    throw MismatchError(message + " (the ranks passed different sizes)");
  }
  throw CommError(message);
}

}  // namespace decent::comm::mpi
