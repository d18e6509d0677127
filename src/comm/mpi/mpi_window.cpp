// One-sided windows of the MPI backend: MPI RMA with passive target synchronisation.
//
// One MPI window per RmaWindow: MPI_Win_allocate_shared when every rank is on one host (Open
// MPI's osc sm), MPI_Win_allocate otherwise (osc rdma or pt2pt between hosts). The window stays in
// a single MPI_Win_lock_all epoch for its whole life and every call completes with MPI_Win_flush,
// so no call waits for the target to take part: a rank busy computing (or sleeping) is read and
// written all the same. Mutual exclusion is the caller's business (compare_and_swap on a lock word
// with backoff), never MPI_Win_lock(MPI_LOCK_EXCLUSIVE), whose waiting spins and would starve
// oversubscribed ranks.
#include "comm/mpi/mpi_transport_impl.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

namespace decent::comm::mpi {
namespace {

// Bytes per MPI call: large buffers go in pieces so that no count overflows an int and no
// transport has to move one huge message at once.
constexpr std::size_t kChunkBytes = std::size_t{16} << 20;

// Completes an MPI request by polling with backoff (MPI_Wait would spin).
void wait_polling(MPI_Request& request, const std::string& where, const std::string& operation) {
  auto pause = std::chrono::microseconds(20);
  for (;;) {
    int done = 0;
    check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), where, operation);
    if (done) return;
    std::this_thread::sleep_for(pause);
    pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(2));
  }
}

void polled_barrier(MPI_Comm comm, const std::string& where, const std::string& operation) {
  MPI_Request request = MPI_REQUEST_NULL;
  check(MPI_Ibarrier(comm, &request), where, operation);
  wait_polling(request, where, operation);
}

class MpiRmaWindow final : public RmaWindow {
 public:
  MpiRmaWindow(std::shared_ptr<Runtime> runtime, MPI_Comm comm, std::size_t bytes,
               std::string where)
      : runtime_(std::move(runtime)), comm_(comm), where_(std::move(where)) {
    try {
      check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), where_, "MPI_Comm_set_errhandler");
      int size = 0;
      check(MPI_Comm_size(comm_, &size), where_, "MPI_Comm_size");
      // Everyone arrives before the blocking allocation, which would otherwise spin.
      polled_barrier(comm_, where_, "window creation (barrier)");
      // All ranks on one host: a shared-memory window (Open MPI's osc sm: plain loads, stores and
      // CPU atomics). Open MPI 4.1's osc rdma over the vader transport crashes in its emulated
      // compare-and-swap, so it is used only when the ranks span several hosts.
      MPI_Comm host = MPI_COMM_NULL;
      check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &host), where_,
            "MPI_Comm_split_type");
      int host_size = 0;
      MPI_Comm_size(host, &host_size);
      MPI_Comm_free(&host);
      void* base = nullptr;
      if (host_size == size) {
        MPI_Info info = MPI_INFO_NULL;
        MPI_Info_create(&info);
        MPI_Info_set(info, "alloc_shared_noncontig", "true");
        const int code =
            MPI_Win_allocate_shared(static_cast<MPI_Aint>(bytes), 1, info, comm_, &base, &win_);
        MPI_Info_free(&info);
        check(code, where_, fmt::format("MPI_Win_allocate_shared of {} bytes", bytes));
      } else {
        check(MPI_Win_allocate(static_cast<MPI_Aint>(bytes), 1, MPI_INFO_NULL, comm_, &base, &win_),
              where_, fmt::format("MPI_Win_allocate of {} bytes", bytes));
      }
      check(MPI_Win_set_errhandler(win_, MPI_ERRORS_RETURN), where_, "MPI_Win_set_errhandler");
      if (bytes > 0) std::memset(base, 0, bytes);
      sizes_.resize(static_cast<std::size_t>(size));
      std::uint64_t mine = bytes;
      check(MPI_Allgather(&mine, 1, MPI_UINT64_T, sizes_.data(), 1, MPI_UINT64_T, comm_), where_,
            "MPI_Allgather of window sizes");
      check(MPI_Win_lock_all(MPI_MODE_NOCHECK, win_), where_, "MPI_Win_lock_all");
      check(MPI_Win_sync(win_), where_, "MPI_Win_sync");
      // The zero fill is complete everywhere before anyone writes.
      polled_barrier(comm_, where_, "window creation (barrier)");
    } catch (...) {
      release();
      throw;
    }
  }

  ~MpiRmaWindow() override {
    if (mpi_finalized()) return;  // nothing may be freed any more
    try {
      // MPI_Win_free is collective and blocking: meet first so that it does not spin.
      polled_barrier(comm_, where_, "window free (barrier)");
    } catch (...) {
    }
    release();
  }

  std::size_t bytes(int rank) const override { return sizes_.at(check_rank(rank)); }

  void put(int target, std::size_t offset, const void* data, std::size_t bytes) override {
    check_range(target, offset, bytes, "put");
    const auto* source = static_cast<const std::uint8_t*>(data);
    for (std::size_t done = 0; done < bytes; done += kChunkBytes) {
      const std::size_t n = std::min(kChunkBytes, bytes - done);
      check(MPI_Put(source + done, static_cast<int>(n), MPI_BYTE, target,
                    static_cast<MPI_Aint>(offset + done), static_cast<int>(n), MPI_BYTE, win_),
            where_, fmt::format("MPI_Put of {} bytes to rank {}", n, target));
    }
    flush(target, "put");
  }

  void get(int target, std::size_t offset, void* data, std::size_t bytes) override {
    check_range(target, offset, bytes, "get");
    auto* destination = static_cast<std::uint8_t*>(data);
    for (std::size_t done = 0; done < bytes; done += kChunkBytes) {
      const std::size_t n = std::min(kChunkBytes, bytes - done);
      check(MPI_Get(destination + done, static_cast<int>(n), MPI_BYTE, target,
                    static_cast<MPI_Aint>(offset + done), static_cast<int>(n), MPI_BYTE, win_),
            where_, fmt::format("MPI_Get of {} bytes from rank {}", n, target));
    }
    flush(target, "get");
  }

  void accumulate(int target, std::size_t offset, const void* data, std::size_t count,
                  DType dtype) override {
    if (dtype != DType::kFloat32 && dtype != DType::kFloat64 && dtype != DType::kInt32 &&
        dtype != DType::kInt64) {
      throw InvalidArgument(fmt::format(
          "{}: window accumulate: dtype {} is not float32, float64, int32 or int64 (MPI RMA "
          "accumulates only predefined types)",
          where_, dtype_name(dtype)));
    }
    const std::size_t element = dtype_size(dtype);
    check_range(target, offset, count * element, "accumulate");
    const MPI_Datatype type = runtime_->datatype(dtype);
    const std::size_t chunk = kChunkBytes / element;
    const auto* source = static_cast<const std::uint8_t*>(data);
    for (std::size_t done = 0; done < count; done += chunk) {
      const std::size_t n = std::min(chunk, count - done);
      check(MPI_Accumulate(source + done * element, static_cast<int>(n), type, target,
                           static_cast<MPI_Aint>(offset + done * element), static_cast<int>(n),
                           type, MPI_SUM, win_),
            where_,
            fmt::format("MPI_Accumulate of {} {} to rank {}", n, dtype_name(dtype), target));
    }
    flush(target, "accumulate");
  }

  std::int64_t compare_and_swap(int target, std::size_t offset, std::int64_t expected,
                                std::int64_t desired) override {
    check_range(target, offset, 8, "compare_and_swap");
    std::int64_t old = 0;
    check(MPI_Compare_and_swap(&desired, &expected, &old, MPI_INT64_T, target,
                               static_cast<MPI_Aint>(offset), win_),
          where_, fmt::format("MPI_Compare_and_swap at rank {}", target));
    flush(target, "compare_and_swap");
    return old;
  }

  std::int64_t fetch_add(int target, std::size_t offset, std::int64_t delta) override {
    check_range(target, offset, 8, "fetch_add");
    std::int64_t old = 0;
    check(MPI_Fetch_and_op(&delta, &old, MPI_INT64_T, target, static_cast<MPI_Aint>(offset),
                           MPI_SUM, win_),
          where_, fmt::format("MPI_Fetch_and_op at rank {}", target));
    flush(target, "fetch_add");
    return old;
  }

 private:
  int check_rank(int rank) const {
    if (rank < 0 || rank >= static_cast<int>(sizes_.size())) {
      throw InvalidArgument(fmt::format("{}: window access names rank {}, outside [0, {})", where_,
                                        rank, sizes_.size()));
    }
    return rank;
  }

  void check_range(int target, std::size_t offset, std::size_t bytes, const char* op) const {
    if (mpi_finalized()) {
      throw CommError(fmt::format("{}: window {} after MPI was finalised", where_, op));
    }
    const std::size_t size = sizes_[check_rank(target)];
    if (offset > size || bytes > size - offset) {
      throw InvalidArgument(
          fmt::format("{}: window {} of {} bytes at offset {} is outside rank {}'s {} bytes",
                      where_, op, bytes, offset, target, size));
    }
  }

  void flush(int target, const char* op) {
    check(MPI_Win_flush(target, win_), where_,
          fmt::format("MPI_Win_flush after the {} at rank {}", op, target));
  }

  void release() {
    if (win_ != MPI_WIN_NULL) {
      MPI_Win_unlock_all(win_);
      MPI_Win_free(&win_);
    }
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }

  std::shared_ptr<Runtime> runtime_;
  MPI_Comm comm_;
  std::string where_;
  MPI_Win win_ = MPI_WIN_NULL;
  std::vector<std::uint64_t> sizes_;
};

}  // namespace

std::unique_ptr<RmaWindow> MpiTransport::create_window(std::size_t bytes) {
  if (runtime_->thread_level() < MPI_THREAD_MULTIPLE) {
    throw CommError(fmt::format(
        "{}: one-sided windows need MPI_THREAD_MULTIPLE (they are used from the caller's thread "
        "while the communication thread polls), but MPI provides thread level {}",
        where_, runtime_->thread_level()));
  }
  // A private communicator: the window's own collectives (creation, free) never interleave with
  // the transport's.
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Request request = MPI_REQUEST_NULL;
  check(MPI_Comm_idup(comm_, &comm, &request), where_, "MPI_Comm_idup for a window");
  wait_polling(request, where_, "MPI_Comm_idup for a window");
  return std::make_unique<MpiRmaWindow>(runtime_, comm, bytes, where_);
}

}  // namespace decent::comm::mpi
