// One-sided windows: asynchronous communication without a matching call on the other side.
//
//   std::vector<float> x(d);
//   decent::Window& win = ctx->win_create("x", x);   // collective, like every creation
//   win.put();                                       // x to my slot at every out-neighbour
//   win.update();                                    // x <- w_ii x + sum_j w_ij slot_j
//   ctx->win_free("x");                              // collective
//
// Every rank's window holds, for one buffer of `count` elements:
//   - its published value (what neighbours read with get(); put(), update() and publish()
//     refresh it, write_value() replaces it remotely),
//   - one slot per in-neighbour j (what j last wrote with put(), or the sum of what j added with
//     accumulate() since the slot was last reset), with a version counter: how many puts and
//     accumulates arrived from j since this rank's last update(),
//   - an atomic counter (fetch_add_counter),
//   - a mutex (a lock word) that put/accumulate/get/update take at the rank they touch, and that
//     lock()/unlock() hold across several calls (e.g. an atomic read-modify-write of a
//     neighbour's value). Calls made while holding a rank's lock do not take it again.
// The neighbours are those of the context's topology when the window is created (for a dynamic
// topology, the union over one period). Nothing here waits for the other rank: a rank that is
// busy computing, or slow, is read and written all the same. Calls complete at return.
//
// Backends: MPI RMA with passive target (one MPI window per window; see docs/async.md) and shared
// memory between the threads of the local backend, with the same semantics. Buffers are float32
// or float64. A Window is used by one thread at a time on its rank.
//
// Context::stats() counts the payload a rank moves to or from other ranks' windows, on the
// calling rank only and the same on both backends: put/accumulate add the buffer's bytes per
// destination to bytes_sent (one message each), write_value to another rank once; get adds the
// buffer's bytes per source to bytes_received, read_value of another rank once; each such call
// is one operation. Locks, versions, the counter, update() and this rank's own memory count
// nothing (docs/communication.md, "Counters").
#pragma once

#include "decent/comm/context.h"
#include "decent/comm/transport.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace decent {

namespace detail {
struct WindowTraffic;  // window.cpp: payload counters shared by a context's windows
// Payload traffic of all windows ever created on the context that owns `registry` (freed ones
// included; nullptr: none); Context::stats() adds it to the engine's counters.
CommStats window_traffic(const WindowRegistry* registry);
}  // namespace detail

struct WindowOptions {
  // Slots start as the in-neighbours' buffers at creation (as if each had put once; versions
  // stay 0) instead of zeros, so that an update() before any put() leaves consensus intact.
  bool init_slots_with_neighbors = true;
  // Longest wait for a window mutex before TimeoutError; default: the context's timeout.
  std::optional<std::chrono::milliseconds> lock_timeout;
};

struct WinPutOptions {
  // Destination rank -> factor the buffer is multiplied by before it is written. Default: every
  // out-neighbour of the window with factor 1. Destinations must be out-neighbours.
  std::optional<std::map<int, double>> dst_weights;
};

struct WinGetOptions {
  // In-neighbours whose published values are fetched into their slots; default: all.
  std::optional<std::vector<int>> srcs;
};

struct WinUpdateOptions {
  // Weight of the local buffer; default from the topology (uniform 1/(in-degree + 1) for the
  // union of a dynamic topology).
  std::optional<double> self_weight;
  // In-neighbour -> weight of its slot; default from the topology. Slots not named count 0.
  std::optional<std::map<int, double>> src_weights;
  // Zero the slots that were read (push-sum style mass that must be used exactly once).
  bool reset = false;
};

class Window {
 public:
  // Use Context::win_create.
  Window(std::string name, int rank, Buffer buffer, std::unique_ptr<comm::RmaWindow> rma,
         std::vector<int> in_neighbors, std::vector<int> out_neighbors,
         std::vector<std::size_t> slot_at_out, std::map<int, int> in_degrees, double self_weight,
         std::vector<double> neighbor_weights, std::chrono::milliseconds timeout,
         std::shared_ptr<detail::WindowTraffic> traffic);
  ~Window();
  Window(const Window&) = delete;
  Window& operator=(const Window&) = delete;

  const std::string& name() const { return name_; }
  Buffer buffer() const { return buffer_; }
  std::size_t count() const { return buffer_.count; }
  DType dtype() const { return buffer_.dtype; }
  // Sorted; slots are kept in this order.
  const std::vector<int>& in_neighbors() const { return in_; }
  const std::vector<int>& out_neighbors() const { return out_; }
  // The default weights of update().
  double self_weight() const { return self_weight_; }
  std::map<int, double> neighbor_weights() const;

  // buffer * factor into this rank's slot at each destination (replacing it), version + 1;
  // also publishes the buffer.
  void put(const WinPutOptions& opts = {});
  // slot += buffer * factor at each destination, version + 1.
  void accumulate(const WinPutOptions& opts = {});
  // Published value of each source into its slot here (versions unchanged).
  void get(const WinGetOptions& opts = {});
  // buffer <- self_weight * buffer + sum_j w_j slot_j, then versions <- 0 (and the slots read
  // <- 0 with reset), then publishes the buffer. All under this rank's mutex.
  void update(const WinUpdateOptions& opts = {});
  // The buffer becomes this rank's published value.
  void publish();

  // `rank`'s published value (any rank, this one included) into `out`, or replaced by `in`.
  void read_value(int rank, Buffer out);
  void write_value(int rank, ConstBuffer in);
  // The slot of in-neighbour `src` as it is now.
  void read_slot(int src, Buffer out);

  // Puts and accumulates that arrived from each in-neighbour since the last update().
  std::map<int, std::int64_t> versions();

  // Adds `delta` to the counter of `rank`'s window (an int64, 0 at creation) atomically and
  // returns the previous value: a count shared by all ranks without any of them waiting.
  std::int64_t fetch_add_counter(int rank, std::int64_t delta);

  // The mutex of `rank`'s window (default: this rank's). Waits with backoff; TimeoutError after
  // the context's timeout, naming the holder.
  void lock(int rank = -1);
  void unlock(int rank = -1);
  bool holds_lock(int rank = -1) const;

  // Holds a lock for a scope.
  class Guard {
   public:
    Guard(Window& window, int rank) : window_(&window), rank_(rank) { window.lock(rank); }
    ~Guard() {
      if (window_) window_->unlock(rank_);
    }
    Guard(Guard&& other) noexcept : window_(other.window_), rank_(other.rank_) {
      other.window_ = nullptr;
    }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    Guard& operator=(Guard&&) = delete;

   private:
    Window* window_;
    int rank_;
  };
  Guard guard(int rank = -1) { return Guard(*this, rank); }

  // Collective release (Context::win_free calls it); later calls throw InvalidArgument.
  void free();
  bool freed() const { return rma_ == nullptr; }

 private:
  class Scoped;  // takes a lock unless already held
  std::string where() const;
  comm::RmaWindow& rma(const char* op);
  int slot_index(int src, const char* op) const;  // position of src in in_
  // Byte offsets in any rank's memory (see window.cpp); versions depend on its in-degree.
  std::size_t slot_offset(std::size_t slot) const;
  std::size_t version_offset(int in_degree, std::size_t slot) const;
  void write_slots(bool add, const WinPutOptions& opts, const char* op);
  // Payload moved to / from another rank's memory, counted in Context::stats().
  void count_sent(std::size_t bytes, std::size_t messages);
  void count_received(std::size_t bytes);
  const void* scaled(double factor);

  static constexpr std::size_t kCounterOffset = 8;  // after the lock word
  static constexpr std::size_t kHeaderBytes = 16;   // lock word and counter

  std::string name_;
  int rank_;
  Buffer buffer_;
  std::unique_ptr<comm::RmaWindow> rma_;
  std::vector<int> in_, out_;
  std::vector<std::size_t> slot_at_out_;  // this rank's slot index at out_[k]
  std::map<int, int> in_degrees_;         // of this rank and its out-neighbours
  double self_weight_;
  std::vector<double> neighbor_weights_;  // parallel to in_
  std::chrono::milliseconds timeout_;
  std::set<int> held_;
  std::vector<unsigned char> scratch_;
  std::shared_ptr<detail::WindowTraffic> traffic_;
};

// BlueFog-style calls by name on a context.
inline void win_put(Context& ctx, const std::string& name, const WinPutOptions& opts = {}) {
  ctx.window(name).put(opts);
}
inline void win_accumulate(Context& ctx, const std::string& name, const WinPutOptions& opts = {}) {
  ctx.window(name).accumulate(opts);
}
inline void win_get(Context& ctx, const std::string& name, const WinGetOptions& opts = {}) {
  ctx.window(name).get(opts);
}
inline void win_update(Context& ctx, const std::string& name, const WinUpdateOptions& opts = {}) {
  ctx.window(name).update(opts);
}
inline void win_lock(Context& ctx, const std::string& name, int rank = -1) {
  ctx.window(name).lock(rank);
}
inline void win_unlock(Context& ctx, const std::string& name, int rank = -1) {
  ctx.window(name).unlock(rank);
}
inline std::map<int, std::int64_t> win_versions(Context& ctx, const std::string& name) {
  return ctx.window(name).versions();
}

}  // namespace decent
