// The per-rank engine behind Context: a communication thread that runs operations in submission
// order, the neighbour-exchange algorithm, consistency headers, fusion and the timeline.
#pragma once

#include "decent/comm/context.h"
#include "decent/comm/transport.h"
#include "timeline.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace decent::detail {

struct OpState {
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  std::exception_ptr error;
  std::string name;
  std::function<void()> work;
  Clock::time_point submitted;

  void finish(std::exception_ptr e);
  void wait();
  bool poll();
};

enum class OpKind : std::uint8_t {
  kNeighborAllreduce = 1,
  kNeighborAllgather = 2,
  kPairGossip = 3,
  kAllreduce = 4,
  kBroadcast = 5,
  kAllgather = 6,
  kBarrier = 7,
};
const char* op_kind_name(OpKind k);

// Sent ahead of every neighbour payload when consistency checks are on (and always for
// neighbor_allgather, whose receivers need the count).
struct MessageHeader {
  std::uint32_t magic = 0x44435431;  // "DCT1"
  std::uint8_t kind = 0;
  std::uint8_t dtype = 0;
  std::uint16_t reserved = 0;
  std::int64_t seq = 0;
  std::uint64_t count = 0;
};

// How an allreduce runs (chosen by size; every rank must choose the same).
enum class AllreduceAlgorithm : std::uint8_t {
  kRecursiveDoubling = 0,  // small buffers: log2(n) pairwise exchanges over point-to-point
  kTransport = 1,          // the transport's allreduce (MPI_Iallreduce)
  kRing = 2,               // large buffers: reduce-scatter + allgather around the ring
  kRabenseifner = 3,       // middle sizes: recursive-halving reduce-scatter + recursive-doubling
                           // allgather
  kHalvingDoubling = 4,    // small sizes: the same in single blocking steps, header in-message
};
const char* allreduce_algorithm_name(AllreduceAlgorithm a);

// What every rank must agree on for one collective. All fields are compared; fields a kind of
// operation does not use are 0. The layout is the same for every kind, so that ranks running
// different collectives can still exchange and compare them.
struct CollectiveFields {
  std::int64_t kind = 0;  // OpKind
  std::int64_t seq = 0;
  std::int64_t count = 0;
  std::int64_t dtype = 0;
  std::int64_t op = 0;         // ReduceOp (allreduce)
  std::int64_t algorithm = 0;  // AllreduceAlgorithm (allreduce)
  std::int64_t root = 0;       // broadcast
  static constexpr std::size_t kSize = 7;
  std::int64_t* data() { return &kind; }
  const std::int64_t* data() const { return &kind; }
};
static_assert(sizeof(CollectiveFields) == CollectiveFields::kSize * sizeof(std::int64_t));
// "allreduce #12": the operation a collective's error messages name.
std::string collective_name(const CollectiveFields& f);

// Carried at the front of every message of a recursive-doubling collective when consistency
// checks are on: the maximum and the maximum of the negation (the minimum) of every field over
// the ranks the sender has heard from so far, and whether any message on the way had the wrong
// size. After the last step every rank holds the same summary of all ranks: they agree iff
// max == min for every field and nothing was lost.
struct CollectiveHeader {
  std::int64_t magic = 0x4443524431;  // "DCRD1"
  std::int64_t max[CollectiveFields::kSize] = {};
  std::int64_t neg_min[CollectiveFields::kSize] = {};  // max over ranks of -field
  std::int64_t lost = 0;  // 1 if some message could not be read (its size was wrong)

  explicit CollectiveHeader(const CollectiveFields& f);
  CollectiveHeader() = default;
  void merge(const CollectiveHeader& other);
  bool agree() const;
};

// A transport plus the sequence counters that tag its operations.
struct Channel {
  comm::Transport* transport = nullptr;
  std::int64_t collective_seq = 0;       // neighbour ops and collectives, all ranks
  std::map<int, std::int64_t> pair_seq;  // pair gossip, per peer
  int rank() const { return transport->rank(); }
  int size() const { return transport->size(); }
};

// Resolved per-call plan for one rank.
struct NeighborPlan {
  double self_weight = 1.0;
  std::vector<topology::WeightedPeer> recv;  // source rank, weight applied to its message
  std::vector<topology::WeightedPeer> send;  // destination rank, factor applied before sending
  std::int64_t step = 0;
};

class Engine {
 public:
  Engine(std::unique_ptr<comm::Transport> transport, const ContextOptions& options);
  ~Engine();

  // Queues `work` on the communication thread (or runs it inline when blocking and idle).
  std::shared_ptr<OpState> submit(std::string name, std::function<void()> work, bool blocking);

  comm::Transport& transport() { return *transport_; }
  const ContextOptions& options() const { return options_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  int machine_rank() const { return machine_rank_; }
  int machine_size() const { return machine_size_; }

  // Topology state (read by the caller thread when resolving plans).
  void set_topology(topology::SchedulePtr s);
  topology::SchedulePtr topology() const;
  void set_machine_topology(topology::SchedulePtr s);
  topology::SchedulePtr machine_topology() const;
  std::int64_t step() const { return step_.load(); }
  void set_step(std::int64_t s) { step_.store(s); }
  // Resolves self/src/dst weights against the schedule; throws InvalidArgument on bad input.
  NeighborPlan resolve_plan(const topology::Schedule& schedule, int rank, int size,
                            const NeighborAllreduceOptions& opts, const char* op);

  // ---- algorithms, run on the communication thread ----
  void run_allreduce(Channel& ch, Buffer inout, ReduceOp op);
  void run_broadcast(Channel& ch, Buffer inout, int root);
  GatherResult run_allgather(Channel& ch, ConstBuffer in);
  void run_barrier(Channel& ch);
  void run_neighbor_allreduce(Channel& ch, const NeighborPlan& plan, ConstBuffer in, Buffer out);
  GatherResult run_neighbor_allgather(Channel& ch, const NeighborPlan& plan, ConstBuffer in);
  void run_pair_gossip(Channel& ch, Buffer inout, int peer, double self_weight);
  void run_hierarchical(const NeighborPlan& machine_plan, ConstBuffer in, Buffer out);

  // Runs `op` on each fusion group of `bufs` (consecutive same-dtype buffers packed up to the
  // threshold; a buffer larger than the threshold is used in place).
  void run_fused(const std::vector<Buffer>& bufs, const std::function<void(Buffer)>& op);

  Channel& world() { return world_; }
  Timeline& timeline() { return timeline_; }
  CommStats stats() const;

 private:
  void worker_loop();
  void execute(const std::shared_ptr<OpState>& op);
  void ensure_hierarchy();
  Clock::time_point deadline() const { return Clock::now() + options_.timeout; }
  std::string where() const;  // "rank R" prefix for messages

  // Sends payloads to `sends` and receives into `recvs` with optional consistency headers;
  // waits for all of them. Each recv capacity is `count` elements unless counts_unknown.
  struct Outgoing {
    int peer;
    const void* data;
    std::size_t count;
  };
  struct Incoming {
    int peer;
    void* data;
    std::size_t count;
  };
  void exchange(Channel& ch, OpKind kind, std::int64_t seq, DType dtype,
                const std::vector<Outgoing>& sends, const std::vector<Incoming>& recvs,
                bool with_headers);
  // Waits for all requests, calling on_complete(i) as each finishes; throws TimeoutError naming
  // `describe(i)` of the unfinished ones.
  void wait_all(std::vector<comm::RequestPtr>& reqs,
                const std::function<void(std::size_t)>& on_complete,
                const std::function<std::string(const std::vector<std::size_t>&)>& describe_missing,
                const std::string& op);
  // Bandwidth-optimal allreduce over isend/irecv: reduce-scatter then allgather around the ring
  // of ranks, pipelined in segments (see engine.cpp).
  void ring_allreduce(Channel& ch, Buffer inout, ReduceOp op, std::int64_t seq);
  // Rabenseifner's allreduce over isend/irecv: reduce-scatter by recursive halving, then
  // allgather by recursive doubling, with the fold for non-powers of two (see engine.cpp).
  // With `checked`, CollectiveHeaders built from `fields` travel ahead of the fold and
  // reduce-scatter payloads; returns the merged summary (empty unchecked). On disagreement the
  // buffer is left untouched.
  CollectiveHeader rabenseifner_allreduce(Channel& ch, Buffer inout, ReduceOp op, std::int64_t seq,
                                          const CollectiveFields& fields, bool checked);
  // Picks the allreduce algorithm for `bytes` on a channel of `n` ranks.
  AllreduceAlgorithm allreduce_algorithm(std::size_t bytes, int n) const;
  // Recursive doubling over point-to-point messages (the fold for non-powers of two: ranks
  // 2i < 2(n - p) hand their data to 2i + 1 first and get the result back last). With
  // `checked`, every message starts with a CollectiveHeader built from `fields`; the payload
  // (`data`, reduced in place with `op`, may be empty) follows it. Returns the merged header:
  // unchecked it is empty. A message of the wrong size or content never touches `data`.
  // Every rank takes the same steps whatever the others sent, so a disagreement is found by
  // every rank, and no rank waits for a message that will not come.
  // Error messages name the operation from `fields` (formatted only when raised).
  // The reduction that completes the sum is multiplied by `factor` in the same pass (1/n for an
  // average).
  CollectiveHeader recursive_doubling(Channel& ch, const CollectiveFields& fields, Buffer data,
                                      ReduceOp op, bool checked, double factor = 1.0);
  // Rabenseifner's algorithm with every step one blocking exchange and the header inside the
  // fold and reduce-scatter messages (see engine.cpp). Divides by n for an average. Returns the
  // merged header (empty unchecked); on disagreement the buffer is left untouched.
  CollectiveHeader halving_doubling(Channel& ch, const CollectiveFields& fields, Buffer inout,
                                    ReduceOp op, bool checked);
  // Consistency check of a collective: one recursive-doubling exchange of headers only (no-op
  // when checks are off or with one rank). Throws MismatchError on every rank on disagreement.
  void check_collective(Channel& ch, const CollectiveFields& fields);
  // Every rank calls this when the merged header shows a disagreement: gathers all ranks'
  // fields and throws MismatchError naming every rank's operation and values.
  [[noreturn]] void report_mismatch(Channel& ch, const CollectiveFields& fields,
                                    const std::string& op_name);
  std::vector<std::uint8_t>& scratch(std::size_t slot, std::size_t bytes);

  std::unique_ptr<comm::Transport> transport_;
  ContextOptions options_;
  int rank_ = 0, size_ = 1;
  int local_rank_ = 0, local_size_ = 1, machine_rank_ = 0, machine_size_ = 1;
  Channel world_;
  std::unique_ptr<comm::Transport> machine_transport_;  // ranks of this machine
  std::unique_ptr<comm::Transport> leader_transport_;   // local rank 0 of every machine
  Channel machine_channel_, leader_channel_;

  mutable std::mutex topo_mutex_;
  topology::SchedulePtr schedule_, machine_schedule_;
  std::atomic<std::int64_t> step_{0};

  std::mutex queue_mutex_;
  std::condition_variable queue_cv_;
  std::deque<std::shared_ptr<OpState>> queue_;
  bool busy_ = false;
  bool stopping_ = false;
  std::string failure_;  // set after an operation failed; later operations refuse to run
  std::thread worker_;

  // Bytes that hold any message of kCollectiveTag from any rank (0: unbounded): receives into
  // scratch buffers of this size may be posted before their message arrives.
  std::size_t collective_room_ = 0;
  std::vector<std::vector<std::uint8_t>> scratch_;
  // Staging of neighbour-exchange messages that carry their header inline (see exchange).
  std::vector<std::vector<std::uint8_t>> inline_stage_;
  std::vector<std::uint8_t> scratch_fusion_;
  std::atomic<std::uint64_t> bytes_sent_{0}, bytes_received_{0}, messages_sent_{0},
      header_messages_{0}, operations_{0};
  Timeline timeline_;
};

// The static exponential graph with uniform weights, the default topology.
topology::Graph default_exponential_graph(int n);

}  // namespace decent::detail
