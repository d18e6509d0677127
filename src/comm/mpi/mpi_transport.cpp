#include "comm/mpi/mpi_transport.h"

#include "comm/mpi/mpi_transport_impl.h"
#include "comm/polling.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace decent::comm {
namespace mpi {
namespace {

// A committed derived datatype, freed on destruction.
class OwnedDatatype {
 public:
  OwnedDatatype() = default;
  OwnedDatatype(OwnedDatatype&& other) noexcept
      : type_(std::exchange(other.type_, MPI_DATATYPE_NULL)) {}
  OwnedDatatype& operator=(OwnedDatatype&& other) noexcept {
    if (this != &other) {
      reset();
      type_ = std::exchange(other.type_, MPI_DATATYPE_NULL);
    }
    return *this;
  }
  OwnedDatatype(const OwnedDatatype&) = delete;
  OwnedDatatype& operator=(const OwnedDatatype&) = delete;
  ~OwnedDatatype() { reset(); }

  MPI_Datatype get() const { return type_; }
  MPI_Datatype* out() { return &type_; }
  void reset() {
    // MPI_Type_free is allowed while operations using the type are pending: they complete.
    if (type_ != MPI_DATATYPE_NULL && !mpi_finalized()) MPI_Type_free(&type_);
    type_ = MPI_DATATYPE_NULL;
  }

 private:
  MPI_Datatype type_ = MPI_DATATYPE_NULL;
};

// `bytes` bytes as `count` elements of `type`, with count <= max_count.
struct ByteLayout {
  int count = 0;
  MPI_Datatype type = MPI_BYTE;
};

// Up to max_count bytes go as MPI_BYTE. Beyond that, one element of a derived type (max_count
// byte blocks plus a remainder) resized so that its extent is exactly `bytes`: allgather places
// rank i's contribution at i * extent. The type is kept in `holder`.
ByteLayout byte_layout(std::size_t bytes, std::size_t max_count, OwnedDatatype& holder,
                       const std::string& where, const std::string& operation) {
  if (bytes <= max_count) return {static_cast<int>(bytes), MPI_BYTE};
  const std::size_t blocks = bytes / max_count;
  const std::size_t remainder = bytes % max_count;
  if (blocks > static_cast<std::size_t>(INT_MAX)) {
    throw InvalidArgument(
        fmt::format("{}: {}: {} bytes do not fit in one MPI message", where, operation, bytes));
  }
  const std::string op = operation + " (building its datatype)";
  OwnedDatatype block, body, whole;
  check(MPI_Type_contiguous(static_cast<int>(max_count), MPI_BYTE, block.out()), where, op);
  check(MPI_Type_contiguous(static_cast<int>(blocks), block.get(), body.out()), where, op);
  if (remainder > 0) {
    int lengths[2] = {1, static_cast<int>(remainder)};
    MPI_Aint displacements[2] = {0, static_cast<MPI_Aint>(blocks * max_count)};
    MPI_Datatype types[2] = {body.get(), MPI_BYTE};
    check(MPI_Type_create_struct(2, lengths, displacements, types, whole.out()), where, op);
  } else {
    whole = std::move(body);
  }
  holder.reset();
  check(MPI_Type_create_resized(whole.get(), 0, static_cast<MPI_Aint>(bytes), holder.out()), where,
        op);
  check(MPI_Type_commit(holder.out()), where, op);
  return {1, holder.get()};
}

// Polls `request` with a short sleep for up to a second (used when giving up on a request).
void wait_briefly(MPI_Request& request) {
  const auto deadline = Clock::now() + std::chrono::seconds(1);
  int complete = 0;
  while (request != MPI_REQUEST_NULL &&
         MPI_Test(&request, &complete, MPI_STATUS_IGNORE) == MPI_SUCCESS && !complete &&
         Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

// Sends and collectives: one or more started MPI requests, complete when all are.
class MpiRequest final : public Request {
 public:
  enum class Kind { kSend, kCollective };

  MpiRequest(Kind kind, std::string where, std::string operation)
      : kind_(kind), where_(std::move(where)), operation_(std::move(operation)) {}
  // A send of `bytes` to `peer`: its description is formatted only for an error message, which
  // keeps string formatting off the path of every small message.
  MpiRequest(std::string where, std::size_t bytes, int peer, int tag)
      : kind_(Kind::kSend), where_(std::move(where)), send_{bytes, peer, tag} {}
  ~MpiRequest() override { abandon(); }
  MpiRequest(const MpiRequest&) = delete;
  MpiRequest& operator=(const MpiRequest&) = delete;

  std::string operation() const {
    if (!operation_.empty() || kind_ != Kind::kSend) return operation_;
    return fmt::format("MPI_Isend of {} bytes to rank {} (tag {})", send_.bytes, send_.peer,
                       send_.tag);
  }
  // A datatype holder that lives as long as the request.
  OwnedDatatype& datatype() { return datatype_; }
  // Checks the return code of the call that started `request` and adds it to this request.
  // `request` is taken by reference so that it is read after that call has filled it in.
  void start(int code, const MPI_Request& request) {
    if (code != MPI_SUCCESS) check(code, where_, operation());
    pending_.push_back(request);
  }

  bool test() override {
    if (error_) std::rethrow_exception(error_);
    if (done_) return true;
    bool all_complete = true;
    for (MPI_Request& request : pending_) {
      if (request == MPI_REQUEST_NULL) continue;
      int complete = 0;
      const int code = MPI_Test(&request, &complete, MPI_STATUS_IGNORE);
      if (code != MPI_SUCCESS) {
        // Open MPI leaves a request that completed in error allocated.
        if (request != MPI_REQUEST_NULL) MPI_Request_free(&request);
        done_ = true;
        try {
          check(code, where_, operation());
        } catch (...) {
          error_ = std::current_exception();
        }
        std::rethrow_exception(error_);
      }
      all_complete = all_complete && complete;
    }
    if (!all_complete) return false;
    done_ = true;
    pending_.clear();
    datatype_.reset();
    return true;
  }

 private:
  // The caller gave up on the request (e.g. after a timeout).
  void abandon() {
    if (done_ || mpi_finalized()) return;
    for (MPI_Request& request : pending_) {
      if (request == MPI_REQUEST_NULL) continue;
      // A send goes on in the background and MPI releases the request when it is done. MPI
      // forbids freeing or cancelling a pending collective, so that one is left alone: ranks
      // that disagree on which collectives completed have no usable communicator anyway.
      if (kind_ == Kind::kSend) MPI_Request_free(&request);
    }
  }

  Kind kind_;
  std::string where_;
  std::string operation_;
  struct {
    std::size_t bytes = 0;
    int peer = 0, tag = 0;
  } send_;
  std::vector<MPI_Request> pending_;
  OwnedDatatype datatype_;
  bool done_ = false;
  std::exception_ptr error_;
};

// Completes a request that has no deadline, still polling with backoff.
void wait_forever(Request& request) {
  request.wait_until(Clock::time_point::max());
}

std::string describe(MPI_Comm comm, int rank, int size) {
  int compare = MPI_UNEQUAL;
  MPI_Comm_compare(comm, MPI_COMM_WORLD, &compare);
  if (compare == MPI_IDENT || compare == MPI_CONGRUENT) {
    return fmt::format("rank {} of {}", rank, size);
  }
  int world_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  return fmt::format("rank {} of {} (world rank {})", rank, size, world_rank);
}

}  // namespace

// ---- receives ----
//
// Receives are matched with MPI_Improbe + MPI_Imrecv instead of a posted MPI_Irecv: knowing the
// size of a message before receiving it lets a receive refuse a message that does not fit. A
// posted MPI_Irecv that is too small is not safe: Open MPI 4.1 reports MPI_ERR_TRUNCATE but its
// single-copy and self transports have already written the whole message past the end of the
// buffer. MPI matches receives in the order they are posted; the matcher keeps that order with
// one FIFO of waiting receives per (source, tag), whichever receive the caller tests first.

struct ReceiveSlot {
  void* data = nullptr;
  std::size_t capacity = 0;
  int src = 0;
  int tag = 0;
  bool matched = false;            // a message is assigned (its MPI_Imrecv has started)
  std::size_t message_bytes = 0;   // size of that message
  std::vector<std::uint8_t> sink;  // holds a message too large for `data`, then is dropped
  MPI_Request request = MPI_REQUEST_NULL;
  OwnedDatatype datatype;
  std::exception_ptr error;
};

class ReceiveMatcher {
 public:
  ReceiveMatcher(MPI_Comm comm, std::string where, std::size_t max_count)
      : comm_(comm), where_(std::move(where)), max_count_(max_count) {}

  const std::string& where() const { return where_; }

  std::shared_ptr<ReceiveSlot> post(void* data, std::size_t capacity, int src, int tag) {
    auto slot = std::make_shared<ReceiveSlot>();
    slot->data = data;
    slot->capacity = capacity;
    slot->src = src;
    slot->tag = tag;
    std::lock_guard<std::mutex> lock(mutex_);
    waiting_[{src, tag}].push_back(slot);
    return slot;
  }

  // Assigns the messages that have arrived from (src, tag) to the oldest waiting receives.
  void match(int src, int tag) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = waiting_.find({src, tag});
    if (found == waiting_.end()) return;
    std::deque<std::shared_ptr<ReceiveSlot>>& queue = found->second;
    while (!queue.empty()) {
      ReceiveSlot& slot = *queue.front();
      if (comm_ == MPI_COMM_NULL) {
        slot.error = std::make_exception_ptr(CommError(fmt::format(
            "{}: the transport was destroyed while a receive from rank {} (tag {}) was waiting",
            where_, src, tag)));
        slot.matched = true;
        queue.pop_front();
        continue;
      }
      int arrived = 0;
      MPI_Message message = MPI_MESSAGE_NULL;
      MPI_Status status;
      const int code = MPI_Improbe(src, tag, comm_, &arrived, &message, &status);
      if (code != MPI_SUCCESS) {
        check(code, where_, fmt::format("MPI_Improbe for rank {} (tag {})", src, tag));
      }
      if (!arrived) break;
      queue.pop_front();
      slot.matched = true;
      try {
        start_receive(slot, message, status);
      } catch (...) {
        slot.error = std::current_exception();
      }
    }
    if (queue.empty()) waiting_.erase(found);
  }

  // Whether receives from (src, tag) are waiting for a message (a message from there belongs to
  // the oldest of them first).
  bool has_waiting(int src, int tag) {
    std::lock_guard<std::mutex> lock(mutex_);
    return waiting_.count({src, tag}) != 0;
  }

  // Forgets a receive that has not matched yet (its request was destroyed).
  void withdraw(const std::shared_ptr<ReceiveSlot>& slot) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = waiting_.find({slot->src, slot->tag});
    if (found == waiting_.end()) return;
    auto& queue = found->second;
    queue.erase(std::remove(queue.begin(), queue.end(), slot), queue.end());
    if (queue.empty()) waiting_.erase(found);
  }

  // The communicator is about to be freed: receives still waiting fail when next tested.
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    comm_ = MPI_COMM_NULL;
  }

 private:
  void start_receive(ReceiveSlot& slot, MPI_Message& message, const MPI_Status& status) {
    MPI_Count bytes = 0;
    check(MPI_Get_elements_x(&status, MPI_BYTE, &bytes), where_, "MPI_Get_elements_x");
    slot.message_bytes = static_cast<std::size_t>(bytes);
    void* target = slot.data;
    if (slot.message_bytes > slot.capacity) {
      // Received in full elsewhere so that the sender completes; the request then reports it.
      slot.sink.resize(slot.message_bytes);
      target = slot.sink.data();
    }
    const std::string operation =
        fmt::format("MPI_Imrecv of {} bytes from rank {} (tag {})", bytes, slot.src, slot.tag);
    const ByteLayout layout =
        byte_layout(slot.message_bytes, max_count_, slot.datatype, where_, operation);
    check(MPI_Imrecv(target, layout.count, layout.type, &message, &slot.request), where_,
          operation);
  }

  std::mutex mutex_;
  MPI_Comm comm_;
  std::string where_;
  std::size_t max_count_;
  std::map<std::pair<int, int>, std::deque<std::shared_ptr<ReceiveSlot>>> waiting_;
};

namespace {

class ReceiveRequest final : public Request {
 public:
  ReceiveRequest(std::shared_ptr<ReceiveMatcher> matcher, std::shared_ptr<ReceiveSlot> slot)
      : matcher_(std::move(matcher)), slot_(std::move(slot)) {}
  ~ReceiveRequest() override { abandon(); }
  ReceiveRequest(const ReceiveRequest&) = delete;
  ReceiveRequest& operator=(const ReceiveRequest&) = delete;

  bool test() override {
    if (error_) std::rethrow_exception(error_);
    if (done_) return true;
    ReceiveSlot& slot = *slot_;
    if (!slot.matched) {
      matcher_->match(slot.src, slot.tag);
      if (!slot.matched) return false;
    }
    if (slot.error) fail(slot.error);
    int complete = 0;
    const int code = MPI_Test(&slot.request, &complete, MPI_STATUS_IGNORE);
    if (code != MPI_SUCCESS) {
      if (slot.request != MPI_REQUEST_NULL) MPI_Request_free(&slot.request);
      try {
        check(code, matcher_->where(),
              fmt::format("receive of {} bytes from rank {} (tag {})", slot.message_bytes, slot.src,
                          slot.tag));
      } catch (...) {
        fail(std::current_exception());
      }
    }
    if (!complete) return false;
    slot.datatype.reset();
    if (slot.message_bytes > slot.capacity) {
      slot.sink = {};
      fail(std::make_exception_ptr(MismatchError(fmt::format(
          "{}: the message from rank {} (tag {}) has {} bytes but the receive posted for it holds "
          "only {} bytes",
          matcher_->where(), slot.src, slot.tag, slot.message_bytes, slot.capacity))));
    }
    done_ = true;
    return true;
  }

  std::size_t received_bytes() const override {
    return done_ && !error_ ? slot_->message_bytes : 0;
  }

 private:
  [[noreturn]] void fail(std::exception_ptr error) {
    done_ = true;
    error_ = std::move(error);
    std::rethrow_exception(error_);
  }

  // The caller gave up on the receive (e.g. after a timeout): it must not write into the buffer
  // later, nor take a message meant for a later receive.
  void abandon() {
    if (done_ || mpi_finalized()) return;
    matcher_->withdraw(slot_);
    if (slot_->request != MPI_REQUEST_NULL) {
      // Already matched: the message is on its way and lands shortly.
      wait_briefly(slot_->request);
      if (slot_->request != MPI_REQUEST_NULL) MPI_Request_free(&slot_->request);
    }
  }

  std::shared_ptr<ReceiveMatcher> matcher_;
  std::shared_ptr<ReceiveSlot> slot_;
  bool done_ = false;
  std::exception_ptr error_;
};

}  // namespace

// ---- the transport ----

MpiTransport::MpiTransport(std::shared_ptr<Runtime> runtime, MPI_Comm comm,
                           MpiTransportOptions options)
    : runtime_(std::move(runtime)), comm_(comm), options_(options) {
  try {
    if (options_.max_count == 0 || options_.max_count > static_cast<std::size_t>(INT_MAX)) {
      throw InvalidArgument(fmt::format("MPI transport: max_count must be in [1, {}], got {}",
                                        INT_MAX, options_.max_count));
    }
    check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI transport",
          "MPI_Comm_set_errhandler");
    check(MPI_Comm_rank(comm_, &rank_), "MPI transport", "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI transport", "MPI_Comm_size");
    where_ = describe(comm_, rank_, size_);
    char name[MPI_MAX_PROCESSOR_NAME];
    int length = 0;
    check(MPI_Get_processor_name(name, &length), where_, "MPI_Get_processor_name");
    host_.assign(name, static_cast<std::size_t>(length));
    void* tag_ub = nullptr;
    int found = 0;
    check(MPI_Comm_get_attr(comm_, MPI_TAG_UB, &tag_ub, &found), where_, "MPI_Comm_get_attr");
    // The attribute is an int (at least 32767 by the standard), so it always fits.
    if (found && tag_ub != nullptr) max_tag_ = *static_cast<int*>(tag_ub);
    receives_ = std::make_shared<ReceiveMatcher>(comm_, where_, options_.max_count);
  } catch (...) {
    MPI_Comm_free(&comm_);
    throw;
  }
}

MpiTransport::~MpiTransport() {
  receives_->close();
  // After MPI_Finalize (a transport outliving the exit handler) nothing may be freed.
  if (comm_ != MPI_COMM_NULL && !mpi_finalized()) MPI_Comm_free(&comm_);
}

void MpiTransport::check_peer(int peer, const char* operation, const char* role) const {
  if (peer < 0 || peer >= size_) {
    throw InvalidArgument(
        fmt::format("{}: {}: {} rank {} is outside [0, {})", where_, operation, role, peer, size_));
  }
}

void MpiTransport::check_tag(int tag, const char* operation) const {
  if (tag < 0 || tag > max_tag_) {
    throw InvalidArgument(
        fmt::format("{}: {}: tag {} is outside [0, {}]", where_, operation, tag, max_tag_));
  }
}

RequestPtr MpiTransport::isend(const void* data, std::size_t bytes, int dst, int tag) {
  check_peer(dst, "isend", "destination");
  check_tag(tag, "isend");
  if (data == nullptr && bytes > 0) {
    throw InvalidArgument(fmt::format("{}: isend of {} bytes from a null buffer", where_, bytes));
  }
  auto request = std::make_unique<MpiRequest>(where_, bytes, dst, tag);
  const ByteLayout layout = bytes <= options_.max_count
                                ? ByteLayout{static_cast<int>(bytes), MPI_BYTE}
                                : byte_layout(bytes, options_.max_count, request->datatype(),
                                              where_, request->operation());
  MPI_Request started = MPI_REQUEST_NULL;
  request->start(MPI_Isend(data, layout.count, layout.type, dst, tag, comm_, &started), started);
  return request;
}

RequestPtr MpiTransport::irecv(void* data, std::size_t capacity, int src, int tag) {
  check_peer(src, "irecv", "source");
  check_tag(tag, "irecv");
  if (data == nullptr && capacity > 0) {
    throw InvalidArgument(
        fmt::format("{}: irecv of up to {} bytes into a null buffer", where_, capacity));
  }
  auto request =
      std::make_unique<ReceiveRequest>(receives_, receives_->post(data, capacity, src, tag));
  receives_->match(src, tag);  // starts receiving a message that has already arrived
  return request;
}

// The path of every step of the small collectives, so it allocates nothing in the common case:
// plain MPI requests tested in one loop instead of Request objects, and error text formatted only
// for an error. Without the caller's `room` promise the receive is matched with MPI_Improbe
// first, so that a message larger than `capacity` is consumed into a sink instead of being
// written past `recv` (a posted MPI receive does write past its buffer: bench/mpi_receive.cpp).
// With it, the receive is posted before the sends: 1.0-1.8 µs less per exchange of 2-32 KiB
// between two ranks here (bench/results/mpi_receive/).
//
// Messages of kExchangePieceBytes to twice that travel as two pieces: the first exactly
// kExchangePieceBytes, the second the rest (possibly empty). Over shared memory each piece then
// fits Open MPI's eager limit (vader: 4096 bytes including ob1's 14-byte match header) and is
// copied through the shared segment, where one message would go by rendezvous with a
// process_vm_readv system call: for the 4224-byte message of a 4 KiB allreduce (payload +
// header) 5.4 µs against 6.7-7.9 µs between two ranks here. The receiver recognises a split
// message by its first piece: every other message is shorter or longer than
// kExchangePieceBytes. Both pieces are probed before either is received, so a split message
// larger than `capacity` is consumed whole into the sink.
namespace {
constexpr std::size_t kExchangePieceBytes = 4033;

bool split_in_pieces(std::size_t bytes) {
  return bytes >= kExchangePieceBytes && bytes <= 2 * kExchangePieceBytes;
}
}  // namespace

ExchangeStatus MpiTransport::exchange(const void* send, std::size_t send_bytes, int dst, void* recv,
                                      std::size_t capacity, int src, int tag,
                                      Clock::time_point deadline, std::size_t room) {
  // Huge messages need derived datatypes, and earlier receives from the same source and tag
  // must match first: the general path keeps both right. (So does a transport whose max_count
  // is too small for the pieces, on every rank alike.)
  if (send_bytes > options_.max_count || capacity > options_.max_count ||
      options_.max_count < 2 * kExchangePieceBytes ||
      (src >= 0 && receives_->has_waiting(src, tag)))
    return Transport::exchange(send, send_bytes, dst, recv, capacity, src, tag, deadline);
  if (dst >= 0) {
    check_peer(dst, "exchange", "destination");
    if (send == nullptr && send_bytes > 0)
      throw InvalidArgument(
          fmt::format("{}: exchange: {} bytes to send from a null buffer", where_, send_bytes));
  }
  if (src >= 0) {
    check_peer(src, "exchange", "source");
    if (recv == nullptr && std::max(capacity, room) > 0)
      throw InvalidArgument(fmt::format(
          "{}: exchange: up to {} bytes to receive into a null buffer", where_, capacity));
    if (room > 0 && room < capacity)
      throw InvalidArgument(
          fmt::format("{}: exchange: room for {} bytes is less than the capacity of {} bytes",
                      where_, room, capacity));
  }
  check_tag(tag, "exchange");

  ExchangeStatus status;
  MPI_Request sent[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  MPI_Request received[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  // Probed but not yet received: the first piece of a split message while its second is awaited.
  MPI_Message first_piece = MPI_MESSAGE_NULL;
  std::vector<std::uint8_t> sink;  // a message too large for `recv` lands here
  bool matched = src < 0, receive_done = src < 0, send_done = dst < 0;
  // With the caller's promise of `room` (and room for a first piece), the receive is posted
  // before the sends start: a message that arrives to a posted receive is copied once, into
  // `recv`, where an unexpected one is copied into MPI's buffer first and matched later. If it
  // brings the first piece of a split message, the second is matched as below.
  MPI_Request posted = MPI_REQUEST_NULL;
  const bool post = src >= 0 && room >= kExchangePieceBytes && room <= options_.max_count;
  bool posted_first_piece = false;  // the posted receive got a first piece
  auto fail_on = [&](int code, auto&& what) {
    if (code != MPI_SUCCESS) check(code, where_, what());
  };
  // Leaves nothing behind when returning early (timeout or error): sends go on in the
  // background, a probed piece is received into the sink, a receive already started is
  // completed briefly (its data is on its way).
  auto release = [&] {
    if (mpi_finalized()) return;
    if (posted != MPI_REQUEST_NULL) {
      // Withdrawn unless a message matched it in the meantime (then that message is consumed).
      MPI_Cancel(&posted);
      MPI_Wait(&posted, MPI_STATUS_IGNORE);
    }
    for (MPI_Request& request : sent)
      if (request != MPI_REQUEST_NULL) MPI_Request_free(&request);
    if (first_piece != MPI_MESSAGE_NULL) {
      sink.resize(kExchangePieceBytes);
      MPI_Mrecv(sink.data(), static_cast<int>(kExchangePieceBytes), MPI_BYTE, &first_piece,
                MPI_STATUS_IGNORE);
    }
    for (MPI_Request& request : received) {
      if (request == MPI_REQUEST_NULL) continue;
      wait_briefly(request);
      if (request != MPI_REQUEST_NULL) MPI_Request_free(&request);
    }
  };
  // Starts receiving the probed message(s): `pieces` of `sizes` bytes, `total` in all.
  auto start_receives = [&](MPI_Message* messages, const int* sizes, int pieces,
                            std::size_t total) {
    auto* target = static_cast<std::uint8_t*>(recv);
    if (total > capacity) {
      status.too_large = true;
      sink.resize(total);
      target = sink.data();
    } else {
      status.received_bytes = total;
    }
    std::size_t offset = 0;
    for (int k = 0; k < pieces; ++k) {
      fail_on(MPI_Imrecv(target + offset, sizes[k], MPI_BYTE, &messages[k], &received[k]), [&] {
        return fmt::format("MPI_Imrecv of {} bytes from rank {} (tag {})", sizes[k], src, tag);
      });
      offset += static_cast<std::size_t>(sizes[k]);
    }
    matched = true;
  };
  // The message is complete at `total` bytes (the caller's buffer was written when posted).
  auto arrived_posted = [&](std::size_t total) {
    status.too_large = total > capacity;
    status.received_bytes = status.too_large ? 0 : total;
    matched = true;
  };
  try {
    if (post)
      fail_on(MPI_Irecv(recv, static_cast<int>(room), MPI_BYTE, src, tag, comm_, &posted), [&] {
        return fmt::format("MPI_Irecv of up to {} bytes from rank {} (tag {})", room, src, tag);
      });
    if (dst >= 0) {
      const auto* bytes = static_cast<const std::uint8_t*>(send);
      const bool split = split_in_pieces(send_bytes);
      const std::size_t first = split ? kExchangePieceBytes : send_bytes;
      auto what = [&] {
        return fmt::format("MPI_Isend of {} bytes to rank {} (tag {})", send_bytes, dst, tag);
      };
      fail_on(MPI_Isend(bytes, static_cast<int>(first), MPI_BYTE, dst, tag, comm_, &sent[0]), what);
      if (split)
        fail_on(MPI_Isend(bytes + first, static_cast<int>(send_bytes - first), MPI_BYTE, dst, tag,
                          comm_, &sent[1]),
                what);
    }
    Backoff backoff;
    while (true) {
      if (!matched && posted != MPI_REQUEST_NULL) {
        int complete = 0;
        MPI_Status received_status;
        fail_on(MPI_Test(&posted, &complete, &received_status), [&] {
          return fmt::format("MPI_Irecv of up to {} bytes from rank {} (tag {})", room, src, tag);
        });
        if (complete) {
          int size = 0;
          fail_on(MPI_Get_count(&received_status, MPI_BYTE, &size), [] { return "MPI_Get_count"; });
          if (static_cast<std::size_t>(size) == kExchangePieceBytes) {
            posted_first_piece = true;  // match the second piece next
          } else {
            arrived_posted(static_cast<std::size_t>(size));
            receive_done = true;
          }
        }
      } else if (!matched) {
        int arrived = 0;
        MPI_Message message = MPI_MESSAGE_NULL;
        MPI_Status probe;
        fail_on(MPI_Improbe(src, tag, comm_, &arrived, &message, &probe),
                [&] { return fmt::format("MPI_Improbe for rank {} (tag {})", src, tag); });
        if (arrived) {
          int size = 0;
          fail_on(MPI_Get_count(&probe, MPI_BYTE, &size), [] { return "MPI_Get_count"; });
          if (posted_first_piece) {  // the second piece, behind the first in `recv`
            const std::size_t total = kExchangePieceBytes + static_cast<std::size_t>(size);
            auto* target = static_cast<std::uint8_t*>(recv) + kExchangePieceBytes;
            if (total > room) {  // a broken promise: never written past `room`
              sink.resize(static_cast<std::size_t>(size));
              target = sink.data();
            }
            fail_on(MPI_Imrecv(target, size, MPI_BYTE, &message, &received[1]), [&] {
              return fmt::format("MPI_Imrecv of {} bytes from rank {} (tag {})", size, src, tag);
            });
            arrived_posted(total);
          } else if (first_piece != MPI_MESSAGE_NULL) {  // the second piece
            MPI_Message messages[2] = {first_piece, message};
            const int sizes[2] = {static_cast<int>(kExchangePieceBytes), size};
            first_piece = MPI_MESSAGE_NULL;
            start_receives(messages, sizes, 2,
                           kExchangePieceBytes + static_cast<std::size_t>(size));
          } else if (static_cast<std::size_t>(size) == kExchangePieceBytes) {
            first_piece = message;  // probe for the second piece next
          } else {
            start_receives(&message, &size, 1, static_cast<std::size_t>(size));
          }
        }
      }
      if (matched && !receive_done) {
        int complete = 0;
        fail_on(MPI_Testall(2, received, &complete, MPI_STATUSES_IGNORE),
                [&] { return fmt::format("receive from rank {} (tag {})", src, tag); });
        receive_done = complete != 0;
      }
      if (!send_done) {
        int complete = 0;
        fail_on(MPI_Testall(2, sent, &complete, MPI_STATUSES_IGNORE), [&] {
          return fmt::format("MPI_Isend of {} bytes to rank {} (tag {})", send_bytes, dst, tag);
        });
        send_done = complete != 0;
      }
      if (receive_done && send_done) return status;
      if (Clock::now() >= deadline) {
        status.state = receive_done ? ExchangeStatus::State::kSendTimedOut
                                    : ExchangeStatus::State::kReceiveTimedOut;
        if (!receive_done) {
          status.received_bytes = 0;
          status.too_large = false;
        }
        release();
        return status;
      }
      backoff.pause(deadline);
    }
  } catch (...) {
    release();
    throw;
  }
}

RequestPtr MpiTransport::iallreduce(void* data, std::size_t count, DType dtype, ReduceOp op) {
  MPI_Op mpi_op = MPI_OP_NULL;
  MPI_Datatype type = MPI_DATATYPE_NULL;
  try {
    mpi_op = runtime_->op(dtype, op);  // rejects kAverage
    type = runtime_->datatype(dtype);
  } catch (const InvalidArgument& error) {
    throw InvalidArgument(fmt::format("{}: allreduce: {}", where_, error.what()));
  }
  if (data == nullptr && count > 0) {
    throw InvalidArgument(fmt::format("{}: allreduce of {} {} elements in a null buffer", where_,
                                      count, dtype_name(dtype)));
  }
  auto request =
      std::make_unique<MpiRequest>(MpiRequest::Kind::kCollective, where_,
                                   fmt::format("MPI_Iallreduce ({}) of {} {} elements",
                                               reduce_op_name(op), count, dtype_name(dtype)));
  // Counts above max_count run as consecutive allreduces; every rank splits identically, and MPI
  // matches nonblocking collectives on a communicator in the order they were started.
  auto* bytes = static_cast<unsigned char*>(data);
  const std::size_t element_size = dtype_size(dtype);
  std::size_t offset = 0;
  do {
    const std::size_t chunk = std::min(count - offset, options_.max_count);
    MPI_Request started = MPI_REQUEST_NULL;
    request->start(MPI_Iallreduce(MPI_IN_PLACE, bytes + offset * element_size,
                                  static_cast<int>(chunk), type, mpi_op, comm_, &started),
                   started);
    offset += chunk;
  } while (offset < count);
  return request;
}

RequestPtr MpiTransport::ibroadcast(void* data, std::size_t bytes, int root) {
  check_peer(root, "broadcast", "root");
  if (data == nullptr && bytes > 0) {
    throw InvalidArgument(
        fmt::format("{}: broadcast of {} bytes with a null buffer", where_, bytes));
  }
  auto request =
      std::make_unique<MpiRequest>(MpiRequest::Kind::kCollective, where_,
                                   fmt::format("MPI_Ibcast of {} bytes from rank {}", bytes, root));
  const ByteLayout layout =
      byte_layout(bytes, options_.max_count, request->datatype(), where_, request->operation());
  MPI_Request started = MPI_REQUEST_NULL;
  request->start(MPI_Ibcast(data, layout.count, layout.type, root, comm_, &started), started);
  return request;
}

RequestPtr MpiTransport::iallgather(const void* send, std::size_t bytes, void* recv) {
  if ((send == nullptr || recv == nullptr) && bytes > 0) {
    throw InvalidArgument(
        fmt::format("{}: allgather of {} bytes per rank with a null buffer", where_, bytes));
  }
  auto request =
      std::make_unique<MpiRequest>(MpiRequest::Kind::kCollective, where_,
                                   fmt::format("MPI_Iallgather of {} bytes per rank", bytes));
  const ByteLayout layout =
      byte_layout(bytes, options_.max_count, request->datatype(), where_, request->operation());
  // MPI forbids aliasing send and receive buffers; a contribution already in place says so.
  auto* own_slot = static_cast<unsigned char*>(recv) + static_cast<std::size_t>(rank_) * bytes;
  const void* send_buffer = (bytes > 0 && send == own_slot) ? MPI_IN_PLACE : send;
  MPI_Request started = MPI_REQUEST_NULL;
  request->start(MPI_Iallgather(send_buffer, layout.count, layout.type, recv, layout.count,
                                layout.type, comm_, &started),
                 started);
  return request;
}

RequestPtr MpiTransport::ibarrier() {
  auto request =
      std::make_unique<MpiRequest>(MpiRequest::Kind::kCollective, where_, "MPI_Ibarrier");
  MPI_Request started = MPI_REQUEST_NULL;
  request->start(MPI_Ibarrier(comm_, &started), started);
  return request;
}

std::unique_ptr<Transport> MpiTransport::split(int color, int key) {
  if (color < 0) {
    throw InvalidArgument(fmt::format("{}: split: color {} must be >= 0", where_, color));
  }
  wait_forever(*ibarrier());
  MPI_Comm sub = MPI_COMM_NULL;
  check(MPI_Comm_split(comm_, color, key, &sub), where_,
        fmt::format("MPI_Comm_split (color {}, key {})", color, key));
  return std::make_unique<MpiTransport>(runtime_, sub, options_);
}

void MpiTransport::fail(const std::string& reason) {
  std::fprintf(stderr, "decent: %s on %s failed: %s; aborting the MPI job\n", where_.c_str(),
               host_.c_str(), reason.c_str());
  std::fflush(stderr);
  if (!mpi_finalized()) MPI_Abort(comm_, 1);
  std::_Exit(1);  // MPI_Abort does not return; this covers an MPI that already shut down
}

std::unique_ptr<MpiTransport> make_world_transport(const MpiTransportOptions& options) {
  std::shared_ptr<Runtime> runtime = Runtime::acquire();
  int world_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  // A private duplicate keeps our messages apart from the application's. MPI_Comm_idup, polled
  // with backoff, waits for the other ranks without spinning.
  MPI_Comm comm = MPI_COMM_NULL;
  MpiRequest dup(MpiRequest::Kind::kCollective, fmt::format("world rank {}", world_rank),
                 "MPI_Comm_idup of MPI_COMM_WORLD");
  MPI_Request started = MPI_REQUEST_NULL;
  dup.start(MPI_Comm_idup(MPI_COMM_WORLD, &comm, &started), started);
  wait_forever(dup);
  return std::make_unique<MpiTransport>(std::move(runtime), comm, options);
}

}  // namespace mpi

std::unique_ptr<Transport> make_mpi_world_transport() {
  return mpi::make_world_transport(mpi::MpiTransportOptions{});
}

bool launched_under_mpi() {
  for (const char* variable : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"}) {
    if (std::getenv(variable) != nullptr) return true;
  }
  return false;
}

}  // namespace decent::comm
