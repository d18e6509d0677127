// The transport interface: what a backend (MPI, in-process threads) must provide.
//
// Modelled on c10d's ProcessGroup/Work split: operations start and return a Request that the
// caller polls. The algorithms (neighbour averaging, hierarchical averaging, fusion...) live in
// Context and are written once on top of this interface. A transport is driven by a single
// thread at a time (the rank's communication worker), so implementations need no locking of
// their own state except what is shared between ranks.
#pragma once

#include "decent/comm/types.h"

#include <memory>
#include <string>

namespace decent::comm {

class Request {
 public:
  virtual ~Request() = default;
  // Non-blocking completion check; drives progress. Throws decent::Error on failure
  // (e.g. a received message larger than the posted buffer).
  virtual bool test() = 0;
  // Blocks until complete or `deadline`; returns false on timeout. The default polls test()
  // with backoff (yield, then short sleeps) so oversubscribed ranks do not starve each other.
  virtual bool wait_until(Clock::time_point deadline);
  // For receives: the number of bytes that actually arrived (valid once complete).
  virtual std::size_t received_bytes() const { return 0; }
};

using RequestPtr = std::unique_ptr<Request>;

// How Transport::exchange ended.
struct ExchangeStatus {
  enum class State {
    kDone,             // both directions completed
    kReceiveTimedOut,  // the deadline passed before the message from `src` arrived
    kSendTimedOut,     // the message arrived but the send to `dst` did not complete in time
  };
  State state = State::kDone;
  // Bytes of the received message (0 when none was expected or it was too large).
  std::size_t received_bytes = 0;
  // The message had more than `capacity` bytes: it was consumed without being written anywhere.
  bool too_large = false;
};

// Memory on every rank of a transport that every rank reads and writes one-sidedly (MPI RMA,
// passive target; shared memory in the local backend). Offsets are in bytes. Each call is
// complete at return: a put is visible at the target, a get has landed. Calls may come from any
// thread, concurrently with the transport's communication thread. Conflicting accesses (a put
// and a get of the same bytes) must be ordered by the caller, e.g. with a lock word and
// compare_and_swap; accumulate and the atomics are atomic per element.
class RmaWindow {
 public:
  virtual ~RmaWindow() = default;
  // Bytes of `rank`'s memory (ranks may expose different sizes).
  virtual std::size_t bytes(int rank) const = 0;
  virtual void put(int target, std::size_t offset, const void* data, std::size_t bytes) = 0;
  virtual void get(int target, std::size_t offset, void* data, std::size_t bytes) = 0;
  // target[offset..] += data, element-wise; float32, float64, int32 or int64.
  virtual void accumulate(int target, std::size_t offset, const void* data, std::size_t count,
                          DType dtype) = 0;
  // Atomic operations on an 8-byte aligned int64 of `target`; both return the previous value.
  virtual std::int64_t compare_and_swap(int target, std::size_t offset, std::int64_t expected,
                                        std::int64_t desired) = 0;
  virtual std::int64_t fetch_add(int target, std::size_t offset, std::int64_t delta) = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;

  virtual std::string backend() const = 0;  // "mpi" or "local"
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Name of the machine this rank runs on (hierarchical operations group ranks by it).
  virtual std::string host() const = 0;

  // Point-to-point. Messages from one sender to one receiver with the same tag are delivered in
  // the order they were sent. `isend` may complete before the receiver posts its receive.
  // Tags are in [0, max_tag()].
  virtual RequestPtr isend(const void* data, std::size_t bytes, int dst, int tag) = 0;
  // Receives at most `capacity` bytes from `src`; a larger message makes test() throw.
  virtual RequestPtr irecv(void* data, std::size_t capacity, int src, int tag) = 0;
  virtual int max_tag() const { return 32767; }

  // One step of a collective algorithm, blocking: sends `send_bytes` from `send` to `dst` and
  // receives at most `capacity` bytes from `src` into `recv`, both with `tag`; a negative `dst`
  // or `src` skips that direction. Returns when both are complete or at `deadline`; on a timeout
  // the send goes on in the background and the receive is withdrawn. A message sent by
  // exchange is received by exchange: a backend may cut it into pieces (the MPI transport cuts
  // 4033-8066 bytes in two, to stay under the shared-memory eager limit), which irecv would take
  // for separate messages; otherwise exchange messages keep their order with isend/irecv ones of
  // the same tag. The default runs isend/irecv and waits on both; a backend overrides it to save
  // the request objects on the path of every small collective.
  //
  // `room` >= capacity is a promise by the caller: `recv` has room for `room` bytes, and no
  // message that can arrive from `src` with `tag` is larger (the engine knows this of its
  // collective tag). It lets a backend post the receive before the message arrives, which
  // saves matching an unexpected message: MPI writes a message longer than its receive past
  // the buffer (Open MPI 4.1, measured: bench/mpi_receive.cpp), so without the promise the MPI
  // transport matches with MPI_Improbe first. A message longer than `capacity` (but within
  // `room`) is still reported as too large, though `recv` has then been written. 0: no promise.
  virtual ExchangeStatus exchange(const void* send, std::size_t send_bytes, int dst, void* recv,
                                  std::size_t capacity, int src, int tag,
                                  Clock::time_point deadline, std::size_t room = 0);

  // Collectives (every rank calls them in the same order). In place, non-blocking start.
  // `op` is kSum, kMin or kMax (averaging is done by the caller).
  virtual RequestPtr iallreduce(void* data, std::size_t count, DType dtype, ReduceOp op) = 0;
  virtual RequestPtr ibroadcast(void* data, std::size_t bytes, int root) = 0;
  // Every rank contributes `bytes` bytes; `recv` receives size()*bytes ordered by rank.
  virtual RequestPtr iallgather(const void* send, std::size_t bytes, void* recv) = 0;
  virtual RequestPtr ibarrier() = 0;

  // A transport over the ranks that pass the same `color`, ordered by (key, rank). Collective
  // over all ranks of this transport. The result is independent of this one (own tag space).
  virtual std::unique_ptr<Transport> split(int color, int key) = 0;

  // Collective: memory of `bytes` bytes (zero-filled, 8-byte aligned) on this rank, exposed to
  // every rank. Must be ordered with the other collectives (the Context runs it on its
  // communication thread). Backends without one-sided communication throw CommError.
  virtual std::unique_ptr<RmaWindow> create_window(std::size_t bytes) {
    throw CommError("rank " + std::to_string(rank()) + ": backend '" + backend() +
                    "' has no one-sided windows");
  }

  // Marks this rank as failed so that peers blocked on it fail fast instead of timing out
  // (best effort; the MPI backend may abort the job).
  virtual void fail(const std::string& reason) = 0;
};

}  // namespace decent::comm
