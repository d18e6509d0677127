// The MPI transport class, for code of the MPI backend that needs its communicator (windows,
// neighbourhood collectives) and for tests. Users go through mpi_transport.h.
#pragma once

#include "comm/mpi/mpi_runtime.h"
#include "decent/comm/transport.h"

#include <mpi.h>

#include <climits>
#include <cstddef>
#include <memory>
#include <string>

namespace decent::comm::mpi {

class ReceiveMatcher;

struct MpiTransportOptions {
  // Largest count handed to a single MPI call. MPI counts are `int`, so bigger point-to-point,
  // broadcast and allgather buffers travel as one element of a derived datatype, and bigger
  // allreduces run as several calls. Lowering it exercises those paths with small buffers.
  std::size_t max_count = INT_MAX;
};

// Transport over an MPI communicator. Errors come back from MPI (MPI_ERRORS_RETURN) and are
// thrown as CommError, or MismatchError when sizes disagree, naming the rank and the operation.
// Requests are completed with MPI_Test only; waiting polls with backoff, so oversubscribed ranks
// do not burn the CPU that the ranks they wait for need (MPI_Wait would busy-poll).
// Receives match messages with MPI_Improbe/MPI_Imrecv in posting order, so that a message larger
// than the receive is reported (MismatchError with both sizes) without being written anywhere.
class MpiTransport final : public Transport {
 public:
  // Takes ownership of `comm`, which nothing else may use, and sets MPI_ERRORS_RETURN on it.
  MpiTransport(std::shared_ptr<Runtime> runtime, MPI_Comm comm, MpiTransportOptions options);
  ~MpiTransport() override;
  MpiTransport(const MpiTransport&) = delete;
  MpiTransport& operator=(const MpiTransport&) = delete;

  std::string backend() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string host() const override { return host_; }
  int max_tag() const override { return max_tag_; }

  RequestPtr isend(const void* data, std::size_t bytes, int dst, int tag) override;
  RequestPtr irecv(void* data, std::size_t capacity, int src, int tag) override;
  ExchangeStatus exchange(const void* send, std::size_t send_bytes, int dst, void* recv,
                          std::size_t capacity, int src, int tag, Clock::time_point deadline,
                          std::size_t room = 0) override;

  RequestPtr iallreduce(void* data, std::size_t count, DType dtype, ReduceOp op) override;
  RequestPtr ibroadcast(void* data, std::size_t bytes, int root) override;
  RequestPtr iallgather(const void* send, std::size_t bytes, void* recv) override;
  RequestPtr ibarrier() override;

  // MPI_Comm_split after a barrier polled with backoff (MPI has no non-blocking split, and the
  // blocking one would spin while waiting for late ranks). Colors must be >= 0.
  std::unique_ptr<Transport> split(int color, int key) override;

  // Prints the reason with the rank to stderr and calls MPI_Abort: in MPI a failed rank ends the
  // whole job (mpirun kills the other ranks), so peers never hang waiting for it. Does not return.
  void fail(const std::string& reason) override;

  // MPI_Win_allocate over a duplicate of the communicator, kept in one passive-target epoch
  // (MPI_Win_lock_all) for its whole life; every call ends with MPI_Win_flush. Needs
  // MPI_THREAD_MULTIPLE, since windows are used from the caller's thread (mpi_window.cpp).
  std::unique_ptr<RmaWindow> create_window(std::size_t bytes) override;

  MPI_Comm comm() const { return comm_; }
  const std::shared_ptr<Runtime>& runtime() const { return runtime_; }
  // "rank 3 of 8" (plus the world rank for split transports): the prefix of error messages.
  const std::string& where() const { return where_; }

 private:
  void check_peer(int peer, const char* operation, const char* role) const;
  void check_tag(int tag, const char* operation) const;

  std::shared_ptr<Runtime> runtime_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  MpiTransportOptions options_;
  int rank_ = 0;
  int size_ = 1;
  int max_tag_ = 32767;
  std::string host_;
  std::string where_;
  // Receives waiting for a message; shared with their requests, which may outlive the transport.
  std::shared_ptr<ReceiveMatcher> receives_;
};

// The world transport with explicit options (see make_mpi_world_transport in mpi_transport.h).
std::unique_ptr<MpiTransport> make_world_transport(const MpiTransportOptions& options);

}  // namespace decent::comm::mpi
