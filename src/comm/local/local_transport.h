// The in-process backend: n ranks are threads of one process and exchange data through shared
// memory with the same semantics as the MPI backend.
//
//   auto transports = decent::comm::make_local_transports(4);   // transports[i] for thread i
//
// Point-to-point sends are eager (the payload is copied into the receiver's mailbox and the send
// completes at once); receives match by (source, tag) in FIFO order. Collectives meet by
// sequence number: every rank's k-th collective on a world rendezvouses with the others' k-th,
// and the result is computed once, in rank order, so it is bitwise identical on every rank.
// Waits block on condition variables; nothing polls.
#pragma once

#include "decent/comm/transport.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace decent::comm {

namespace local_detail {
struct Job;
struct WorldState;
struct Collective;
struct CollectiveArgs;
}  // namespace local_detail

class LocalTransport;

// The ranks of one communicator. A world made by `create` is the root of a job; worlds made by
// LocalTransport::split belong to the same job, so failures and shutdown reach them too.
class LocalWorld : public std::enable_shared_from_this<LocalWorld> {
  struct PrivateTag {};

 public:
  static std::shared_ptr<LocalWorld> create(int n, std::string host_prefix = "local");
  LocalWorld(PrivateTag, std::shared_ptr<local_detail::Job> job, std::vector<int> job_ranks,
             std::string host);
  ~LocalWorld();
  LocalWorld(const LocalWorld&) = delete;
  LocalWorld& operator=(const LocalWorld&) = delete;

  int size() const { return static_cast<int>(job_ranks_.size()); }
  const std::string& host() const { return host_; }
  // A transport through which `rank` (in this world's numbering) communicates. Create one per
  // rank: each keeps that rank's collective sequence.
  std::unique_ptr<LocalTransport> transport(int rank);

  // Marks `rank` failed: every pending or later wait that needs it (a receive from it that no
  // queued message satisfies, a collective it has not joined) and every later operation of the
  // rank itself throws CommError("rank R failed: reason"). Applies to every world of the job.
  void fail(int rank, const std::string& reason);
  // Marks `rank` as gone for good (its thread has finished): waits that need it throw
  // CommError("rank R left: reason"). Messages it sent before stay deliverable.
  void leave(int rank, const std::string& reason);
  // Releases every thread blocked in any world of the job; all pending and later operations
  // throw CommError("local job shut down: reason").
  void shutdown(const std::string& reason);
  // Throws CommError when the job is shut down or `rank` has failed or (unless left_is_ok) left.
  // One-sided operations, which bypass the mailboxes, check it on every call.
  void check_usable(int rank, bool left_is_ok = false) const;

 private:
  friend class LocalTransport;
  friend class LocalRequest;
  friend class LocalRecvRequest;
  friend class LocalCollectiveRequest;

  void mark(int rank, bool failed, const std::string& reason);

  std::shared_ptr<local_detail::Job> job_;
  // job_ranks_[r]: the rank in the job's root world (the thread) behind this world's rank r.
  std::vector<int> job_ranks_;
  std::string host_;
  // Mailboxes and open collectives, guarded by the job's mutex.
  std::unique_ptr<local_detail::WorldState> state_;
};

class LocalTransport : public Transport {
 public:
  LocalTransport(std::shared_ptr<LocalWorld> world, int rank);
  ~LocalTransport() override;

  std::string backend() const override { return "local"; }
  int rank() const override { return rank_; }
  int size() const override { return world_->size(); }
  std::string host() const override { return world_->host(); }

  RequestPtr isend(const void* data, std::size_t bytes, int dst, int tag) override;
  RequestPtr irecv(void* data, std::size_t capacity, int src, int tag) override;

  RequestPtr iallreduce(void* data, std::size_t count, DType dtype, ReduceOp op) override;
  RequestPtr ibroadcast(void* data, std::size_t bytes, int root) override;
  RequestPtr iallgather(const void* send, std::size_t bytes, void* recv) override;
  RequestPtr ibarrier() override;

  // Blocks until every rank of this world has called it (or one of them failed).
  std::unique_ptr<Transport> split(int color, int key) override;

  void fail(const std::string& reason) override;

  // Collective (every rank of the world): shared memory that the other threads access directly.
  std::unique_ptr<RmaWindow> create_window(std::size_t bytes) override;

  const std::shared_ptr<LocalWorld>& world() const { return world_; }

 private:
  std::shared_ptr<local_detail::Collective> join_collective(
      const local_detail::CollectiveArgs& args, std::vector<std::uint8_t> input);
  void check_peer(int peer, const char* operation) const;
  void check_tag(int tag, const char* operation) const;
  void check_data(const void* data, std::size_t bytes, const char* operation) const;

  std::shared_ptr<LocalWorld> world_;
  int rank_;
  std::uint64_t next_sequence_ = 0;  // this rank's next collective on world_
};

// One transport per rank of a new job of n ranks; transports[i] is meant for thread i. All ranks
// report `host_prefix` as their host.
std::vector<std::unique_ptr<Transport>> make_local_transports(int n,
                                                              std::string host_prefix = "local");

}  // namespace decent::comm
