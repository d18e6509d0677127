// Windows on top of the transports' one-sided memory (comm::RmaWindow), and their creation and
// release through Context.
//
// Layout of rank r's memory, for a buffer of V bytes (padded to 8) and in-degree k:
//   [0, 8)                       lock word: 0 free, h + 1 while rank h holds it
//   [8, 16)                      counter (fetch_add_counter)
//   [16, 16 + V)                 published value
//   [16 + V + s V, ...)          slot s (in-neighbour in_[s]), s = 0..k-1
//   [16 + V + k V + 8 s, ...)    version of slot s (int64)
// Offsets in another rank's memory follow from its in-degree, which every rank derives from the
// topology, so no table is exchanged.
#include "decent/comm/window.h"

#include "engine.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

namespace decent {

namespace detail {
// Payload moved between this rank and other ranks' window memory (see Context::stats()).
struct WindowTraffic {
  std::atomic<std::uint64_t> bytes_sent{0};
  std::atomic<std::uint64_t> bytes_received{0};
  std::atomic<std::uint64_t> messages_sent{0};
  std::atomic<std::uint64_t> operations{0};
};

// The windows of one context. Freed windows are kept (emptied) so that a reference still held
// by the application fails with a clear message instead of touching freed memory.
struct WindowRegistry {
  std::mutex mutex;
  std::map<std::string, std::unique_ptr<Window>> live;
  std::vector<std::unique_ptr<Window>> freed;
  std::shared_ptr<WindowTraffic> traffic = std::make_shared<WindowTraffic>();
};

CommStats window_traffic(const WindowRegistry* registry) {
  CommStats s;
  if (!registry) return s;
  const WindowTraffic& t = *registry->traffic;
  s.bytes_sent = t.bytes_sent.load(std::memory_order_relaxed);
  s.bytes_received = t.bytes_received.load(std::memory_order_relaxed);
  s.messages_sent = t.messages_sent.load(std::memory_order_relaxed);
  s.operations = t.operations.load(std::memory_order_relaxed);
  return s;
}
}  // namespace detail

namespace {

std::size_t padded(std::size_t bytes) {
  return (bytes + 7) / 8 * 8;
}

template <typename T>
void combine_into(Buffer out, double self_weight, const std::vector<const void*>& slots,
                  const std::vector<double>& weights) {
  auto* x = static_cast<T*>(out.data);
  std::vector<const T*> s(slots.size());
  for (std::size_t j = 0; j < slots.size(); ++j) s[j] = static_cast<const T*>(slots[j]);
  for (std::size_t i = 0; i < out.count; ++i) {
    double acc = self_weight * static_cast<double>(x[i]);
    for (std::size_t j = 0; j < s.size(); ++j) acc += weights[j] * static_cast<double>(s[j][i]);
    x[i] = static_cast<T>(acc);
  }
}

template <typename T>
void scale_into(void* out, const void* in, std::size_t count, double factor) {
  const auto* x = static_cast<const T*>(in);
  auto* y = static_cast<T*>(out);
  for (std::size_t i = 0; i < count; ++i) y[i] = static_cast<T>(factor * static_cast<double>(x[i]));
}

// Sorted union of the ranks `pick` selects from the plans of `rank` over one period.
std::vector<int> neighbours_over_period(const topology::Schedule& schedule, int rank, int period,
                                        bool incoming) {
  std::set<int> ranks;
  for (int k = 0; k < period; ++k) {
    const topology::StepPlan plan = schedule.plan(k, rank);
    for (const auto& peer : incoming ? plan.recv : plan.send) {
      if (peer.rank != rank) ranks.insert(peer.rank);
    }
  }
  return {ranks.begin(), ranks.end()};
}

}  // namespace

// ---------------------------------------------------------------- Window

// Takes `rank`'s lock for a scope unless the caller already holds it.
class Window::Scoped {
 public:
  Scoped(Window& w, int rank) : window_(w), rank_(rank), taken_(!w.holds_lock(rank)) {
    if (taken_) window_.lock(rank_);
  }
  ~Scoped() {
    if (!taken_) return;
    try {
      window_.unlock(rank_);
    } catch (...) {
      // Unlocking fails only when the job is already failing; the first error is reported.
    }
  }
  Scoped(const Scoped&) = delete;
  Scoped& operator=(const Scoped&) = delete;

 private:
  Window& window_;
  int rank_;
  bool taken_;
};

Window::Window(std::string name, int rank, Buffer buffer, std::unique_ptr<comm::RmaWindow> rma,
               std::vector<int> in_neighbors, std::vector<int> out_neighbors,
               std::vector<std::size_t> slot_at_out, std::map<int, int> in_degrees,
               double self_weight, std::vector<double> neighbor_weights,
               std::chrono::milliseconds timeout, std::shared_ptr<detail::WindowTraffic> traffic)
    : name_(std::move(name)),
      rank_(rank),
      buffer_(buffer),
      rma_(std::move(rma)),
      in_(std::move(in_neighbors)),
      out_(std::move(out_neighbors)),
      slot_at_out_(std::move(slot_at_out)),
      in_degrees_(std::move(in_degrees)),
      self_weight_(self_weight),
      neighbor_weights_(std::move(neighbor_weights)),
      timeout_(timeout),
      traffic_(std::move(traffic)) {}

Window::~Window() = default;

// Counted as the transfers complete; a call that moved any payload to or from another rank is
// one operation (the caller counts it once, after its last transfer).
void Window::count_sent(std::size_t bytes, std::size_t messages) {
  traffic_->bytes_sent.fetch_add(bytes, std::memory_order_relaxed);
  traffic_->messages_sent.fetch_add(messages, std::memory_order_relaxed);
}

void Window::count_received(std::size_t bytes) {
  traffic_->bytes_received.fetch_add(bytes, std::memory_order_relaxed);
}

std::string Window::where() const {
  return fmt::format("rank {}: window '{}'", rank_, name_);
}

comm::RmaWindow& Window::rma(const char* op) {
  if (!rma_) {
    throw InvalidArgument(fmt::format("{}: {} after win_free", where(), op));
  }
  return *rma_;
}

std::map<int, double> Window::neighbor_weights() const {
  std::map<int, double> out;
  for (std::size_t s = 0; s < in_.size(); ++s) out[in_[s]] = neighbor_weights_[s];
  return out;
}

int Window::slot_index(int src, const char* op) const {
  auto it = std::lower_bound(in_.begin(), in_.end(), src);
  if (it == in_.end() || *it != src) {
    throw InvalidArgument(fmt::format("{}: {}: rank {} is not an in-neighbour (in-neighbours: {})",
                                      where(), op, src, fmt::join(in_, ", ")));
  }
  return static_cast<int>(it - in_.begin());
}

std::size_t Window::slot_offset(std::size_t slot) const {
  const std::size_t v = padded(buffer_.bytes());
  return kHeaderBytes + v + slot * v;
}

std::size_t Window::version_offset(int in_degree, std::size_t slot) const {
  return slot_offset(static_cast<std::size_t>(in_degree)) + 8 * slot;
}

const void* Window::scaled(double factor) {
  if (factor == 1.0) return buffer_.data;
  scratch_.resize(buffer_.bytes());
  if (buffer_.dtype == DType::kFloat32) {
    scale_into<float>(scratch_.data(), buffer_.data, buffer_.count, factor);
  } else {
    scale_into<double>(scratch_.data(), buffer_.data, buffer_.count, factor);
  }
  return scratch_.data();
}

void Window::write_slots(bool add, const WinPutOptions& opts, const char* op) {
  comm::RmaWindow& memory = rma(op);
  std::map<int, double> destinations;
  if (opts.dst_weights) {
    destinations = *opts.dst_weights;
  } else {
    for (int dst : out_) destinations[dst] = 1.0;
  }
  std::vector<std::size_t> slots;
  for (const auto& [dst, factor] : destinations) {
    auto it = std::lower_bound(out_.begin(), out_.end(), dst);
    if (it == out_.end() || *it != dst) {
      throw InvalidArgument(
          fmt::format("{}: {}: rank {} is not an out-neighbour (out-neighbours: {})", where(), op,
                      dst, fmt::join(out_, ", ")));
    }
    if (!std::isfinite(factor)) {
      throw InvalidArgument(
          fmt::format("{}: {}: the factor for rank {} is not finite", where(), op, dst));
    }
    slots.push_back(slot_at_out_[static_cast<std::size_t>(it - out_.begin())]);
  }
  std::size_t k = 0;
  for (const auto& [dst, factor] : destinations) {
    const std::size_t slot = slots[k++];
    const void* data = scaled(factor);
    Scoped lock(*this, dst);
    if (add) {
      memory.accumulate(dst, slot_offset(slot), data, buffer_.count, buffer_.dtype);
    } else {
      memory.put(dst, slot_offset(slot), data, buffer_.bytes());
    }
    count_sent(buffer_.bytes(), 1);
    // After the data: whoever sees the new version also sees the data.
    memory.fetch_add(dst, version_offset(in_degrees_.at(dst), slot), 1);
  }
  if (!destinations.empty()) traffic_->operations.fetch_add(1, std::memory_order_relaxed);
}

void Window::put(const WinPutOptions& opts) {
  write_slots(false, opts, "put");
  publish();
}

void Window::accumulate(const WinPutOptions& opts) {
  write_slots(true, opts, "accumulate");
}

void Window::publish() {
  comm::RmaWindow& memory = rma("publish");
  Scoped lock(*this, rank_);
  memory.put(rank_, kHeaderBytes, buffer_.data, buffer_.bytes());
}

void Window::get(const WinGetOptions& opts) {
  comm::RmaWindow& memory = rma("get");
  const std::vector<int> sources = opts.srcs ? *opts.srcs : in_;
  std::vector<int> slots;
  for (int src : sources) slots.push_back(slot_index(src, "get"));
  scratch_.resize(buffer_.bytes());
  for (std::size_t k = 0; k < sources.size(); ++k) {
    // One lock at a time (the source's, then this rank's), so that two ranks getting from each
    // other cannot deadlock.
    {
      Scoped lock(*this, sources[k]);
      memory.get(sources[k], kHeaderBytes, scratch_.data(), buffer_.bytes());
    }
    count_received(buffer_.bytes());
    Scoped lock(*this, rank_);
    memory.put(rank_, slot_offset(static_cast<std::size_t>(slots[k])), scratch_.data(),
               buffer_.bytes());
  }
  if (!sources.empty()) traffic_->operations.fetch_add(1, std::memory_order_relaxed);
}

void Window::update(const WinUpdateOptions& opts) {
  comm::RmaWindow& memory = rma("update");
  const double self = opts.self_weight ? *opts.self_weight : self_weight_;
  if (!std::isfinite(self)) {
    throw InvalidArgument(fmt::format("{}: update: self_weight is not finite", where()));
  }
  std::vector<int> slots;
  std::vector<double> weights;
  if (opts.src_weights) {
    for (const auto& [src, w] : *opts.src_weights) {
      const int s = slot_index(src, "update");
      if (!std::isfinite(w)) {
        throw InvalidArgument(
            fmt::format("{}: update: the weight of rank {} is not finite", where(), src));
      }
      slots.push_back(s);
      weights.push_back(w);
    }
  } else {
    for (std::size_t s = 0; s < in_.size(); ++s) {
      slots.push_back(static_cast<int>(s));
      weights.push_back(neighbor_weights_[s]);
    }
  }
  const std::size_t bytes = buffer_.bytes();
  const std::size_t degree = in_.size();
  Scoped lock(*this, rank_);
  std::vector<unsigned char> contents(bytes * slots.size());
  std::vector<const void*> pointers;
  for (std::size_t j = 0; j < slots.size(); ++j) {
    memory.get(rank_, slot_offset(static_cast<std::size_t>(slots[j])), &contents[j * bytes], bytes);
    pointers.push_back(&contents[j * bytes]);
  }
  if (buffer_.dtype == DType::kFloat32) {
    combine_into<float>(buffer_, self, pointers, weights);
  } else {
    combine_into<double>(buffer_, self, pointers, weights);
  }
  if (opts.reset && bytes > 0) {
    std::vector<unsigned char> zeros(bytes, 0);
    for (int s : slots)
      memory.put(rank_, slot_offset(static_cast<std::size_t>(s)), zeros.data(), bytes);
  }
  if (degree > 0) {
    std::vector<std::int64_t> zeros(degree, 0);
    memory.put(rank_, version_offset(static_cast<int>(degree), 0), zeros.data(), 8 * degree);
  }
  memory.put(rank_, kHeaderBytes, buffer_.data, bytes);
}

void Window::read_value(int rank, Buffer out) {
  comm::RmaWindow& memory = rma("read_value");
  if (out.count != buffer_.count || out.dtype != buffer_.dtype) {
    throw InvalidArgument(fmt::format(
        "{}: read_value: output ({} x {}) does not match the window "
        "({} x {})",
        where(), out.count, dtype_name(out.dtype), buffer_.count, dtype_name(buffer_.dtype)));
  }
  Scoped lock(*this, rank);
  memory.get(rank, kHeaderBytes, out.data, out.bytes());
  if (rank != rank_) {
    count_received(out.bytes());
    traffic_->operations.fetch_add(1, std::memory_order_relaxed);
  }
}

void Window::write_value(int rank, ConstBuffer in) {
  comm::RmaWindow& memory = rma("write_value");
  if (in.count != buffer_.count || in.dtype != buffer_.dtype) {
    throw InvalidArgument(fmt::format(
        "{}: write_value: input ({} x {}) does not match the window "
        "({} x {})",
        where(), in.count, dtype_name(in.dtype), buffer_.count, dtype_name(buffer_.dtype)));
  }
  Scoped lock(*this, rank);
  memory.put(rank, kHeaderBytes, in.data, in.bytes());
  if (rank != rank_) {
    count_sent(in.bytes(), 1);
    traffic_->operations.fetch_add(1, std::memory_order_relaxed);
  }
}

void Window::read_slot(int src, Buffer out) {
  comm::RmaWindow& memory = rma("read_slot");
  const int s = slot_index(src, "read_slot");
  if (out.count != buffer_.count || out.dtype != buffer_.dtype) {
    throw InvalidArgument(fmt::format(
        "{}: read_slot: output ({} x {}) does not match the window "
        "({} x {})",
        where(), out.count, dtype_name(out.dtype), buffer_.count, dtype_name(buffer_.dtype)));
  }
  Scoped lock(*this, rank_);
  memory.get(rank_, slot_offset(static_cast<std::size_t>(s)), out.data, out.bytes());
}

std::map<int, std::int64_t> Window::versions() {
  comm::RmaWindow& memory = rma("versions");
  std::vector<std::int64_t> counts(in_.size(), 0);
  if (!counts.empty()) {
    Scoped lock(*this, rank_);
    memory.get(rank_, version_offset(static_cast<int>(in_.size()), 0), counts.data(),
               8 * counts.size());
  }
  std::map<int, std::int64_t> out;
  for (std::size_t s = 0; s < in_.size(); ++s) out[in_[s]] = counts[s];
  return out;
}

void Window::lock(int rank) {
  if (rank < 0) rank = rank_;
  comm::RmaWindow& memory = rma("lock");
  if (held_.count(rank)) {
    throw InvalidArgument(
        fmt::format("{}: lock: this rank already holds the lock of rank {}", where(), rank));
  }
  const auto deadline = Clock::now() + timeout_;
  auto pause = std::chrono::microseconds(10);
  for (int attempt = 0;; ++attempt) {
    const std::int64_t holder = memory.compare_and_swap(rank, 0, 0, rank_ + 1);
    if (holder == 0) break;
    if (Clock::now() > deadline) {
      throw TimeoutError(fmt::format("{}: lock of rank {} still held by rank {} after {} ms",
                                     where(), rank, holder - 1, timeout_.count()));
    }
    // Back off: the holder may be a process waiting for this core.
    if (attempt < 3) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(pause);
      pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(1));
    }
  }
  held_.insert(rank);
}

void Window::unlock(int rank) {
  if (rank < 0) rank = rank_;
  comm::RmaWindow& memory = rma("unlock");
  if (!held_.count(rank)) {
    throw InvalidArgument(
        fmt::format("{}: unlock: this rank does not hold the lock of rank {}", where(), rank));
  }
  held_.erase(rank);
  const std::int64_t holder = memory.compare_and_swap(rank, 0, rank_ + 1, 0);
  if (holder != rank_ + 1) {
    throw CommError(fmt::format("{}: unlock: the lock word of rank {} names rank {}, not this rank",
                                where(), rank, holder - 1));
  }
}

std::int64_t Window::fetch_add_counter(int rank, std::int64_t delta) {
  return rma("fetch_add_counter").fetch_add(rank, kCounterOffset, delta);
}

bool Window::holds_lock(int rank) const {
  return held_.count(rank < 0 ? rank_ : rank) > 0;
}

void Window::free() {
  if (!held_.empty()) {
    throw InvalidArgument(
        fmt::format("{}: win_free while holding the lock of rank {}", where(), *held_.begin()));
  }
  rma_.reset();
}

// ---------------------------------------------------------------- Context

Window& Context::win_create(const std::string& name, Buffer buffer) {
  return win_create(name, buffer, WindowOptions{});
}

Window& Context::win_create(const std::string& name, Buffer buffer,
                            const WindowOptions& window_options) {
  const int me = rank();
  const int n = size();
  if (name.empty()) throw InvalidArgument(fmt::format("rank {}: win_create: empty name", me));
  const std::string where = fmt::format("rank {}: window '{}'", me, name);
  if (buffer.dtype != DType::kFloat32 && buffer.dtype != DType::kFloat64) {
    throw InvalidArgument(fmt::format("{}: win_create: dtype {} (windows hold float32 or float64)",
                                      where, dtype_name(buffer.dtype)));
  }
  if (buffer.count > 0 && buffer.data == nullptr) {
    throw InvalidArgument(
        fmt::format("{}: win_create: null buffer with {} elements", where, buffer.count));
  }
  if (!windows_) windows_ = std::make_shared<detail::WindowRegistry>();
  {
    std::lock_guard<std::mutex> lock(windows_->mutex);
    if (windows_->live.count(name)) {
      throw InvalidArgument(fmt::format("{}: win_create: the window already exists", where));
    }
  }

  // Neighbours: the topology's, or their union over one period of a dynamic topology.
  const topology::SchedulePtr schedule = topology();
  const int period = schedule->period();
  if (period <= 0) {
    throw InvalidArgument(fmt::format(
        "{}: win_create: topology '{}' never repeats; windows need a static or periodic one", where,
        schedule->name()));
  }
  std::vector<int> in = neighbours_over_period(*schedule, me, period, true);
  std::vector<int> out = neighbours_over_period(*schedule, me, period, false);
  std::map<int, int> degrees;
  degrees[me] = static_cast<int>(in.size());
  std::vector<std::size_t> slot_at_out;
  for (int dst : out) {
    const std::vector<int> dst_in = neighbours_over_period(*schedule, dst, period, true);
    auto it = std::lower_bound(dst_in.begin(), dst_in.end(), me);
    if (it == dst_in.end() || *it != me) {
      throw InvalidArgument(fmt::format(
          "{}: win_create: topology '{}' sends from rank {} to rank {} but rank {} does not "
          "receive from it",
          where, schedule->name(), me, dst, dst));
    }
    slot_at_out.push_back(static_cast<std::size_t>(it - dst_in.begin()));
    degrees[dst] = static_cast<int>(dst_in.size());
  }
  double self_weight = 1.0 / static_cast<double>(in.size() + 1);
  std::vector<double> weights(in.size(), self_weight);
  if (period == 1) {
    const topology::StepPlan plan = schedule->plan(0, me);
    self_weight = plan.self_weight;
    for (const auto& peer : plan.recv) {
      auto it = std::lower_bound(in.begin(), in.end(), peer.rank);
      if (it != in.end() && *it == peer.rank) weights[it - in.begin()] = peer.weight;
    }
  }

  const std::size_t value_bytes = padded(buffer.bytes());
  const std::size_t bytes = 16 + value_bytes * (1 + in.size()) + 8 * in.size();  // see the top
  std::unique_ptr<comm::RmaWindow> memory;
  comm::Transport* transport = &this->transport();
  const auto timeout = options().timeout;
  // Collective, so it runs on the communication thread, ordered with the other collectives.
  submit(
      "win_create",
      [&] {
        // Same name, count and dtype on every rank, or a MismatchError naming the ranks.
        const std::uint64_t mine[3] = {std::hash<std::string>{}(name), buffer.count,
                                       static_cast<std::uint64_t>(buffer.dtype)};
        std::vector<std::uint64_t> all(3 * static_cast<std::size_t>(n));
        auto request = transport->iallgather(mine, sizeof(mine), all.data());
        if (!request->wait_until(Clock::now() + timeout)) {
          throw TimeoutError(
              fmt::format("{}: win_create: not every rank created a window within {} ms", where,
                          timeout.count()));
        }
        for (int r = 0; r < n; ++r) {
          const std::uint64_t* theirs = &all[3 * static_cast<std::size_t>(r)];
          if (theirs[0] != mine[0]) {
            throw MismatchError(fmt::format(
                "{}: win_create: rank {} creates a window of another name at the same time", where,
                r));
          }
          if (theirs[1] != mine[1] || theirs[2] != mine[2]) {
            throw MismatchError(
                fmt::format("{}: win_create: rank {} has {} x {} but rank {} has {} x {}", where,
                            me, buffer.count, dtype_name(buffer.dtype), r, theirs[1],
                            dtype_name(static_cast<DType>(theirs[2]))));
          }
        }
        memory = transport->create_window(bytes);
      },
      true)
      .wait();

  auto window =
      std::make_unique<Window>(name, me, buffer, std::move(memory), in, out, std::move(slot_at_out),
                               std::move(degrees), self_weight, std::move(weights),
                               window_options.lock_timeout.value_or(timeout), windows_->traffic);
  Window& result = *window;
  {
    std::lock_guard<std::mutex> lock(windows_->mutex);
    windows_->live[name] = std::move(window);
  }
  result.publish();
  if (window_options.init_slots_with_neighbors) {
    barrier();  // every published value is in place
    result.get();
  }
  barrier();  // nobody writes into a slot before its owner has initialised it
  return result;
}

Window& Context::window(const std::string& name) {
  if (windows_) {
    std::lock_guard<std::mutex> lock(windows_->mutex);
    auto it = windows_->live.find(name);
    if (it != windows_->live.end()) return *it->second;
  }
  throw InvalidArgument(fmt::format("rank {}: no window named '{}'", rank(), name));
}

void Context::win_free(const std::string& name) {
  std::unique_ptr<Window> window;
  if (windows_) {
    std::lock_guard<std::mutex> lock(windows_->mutex);
    auto it = windows_->live.find(name);
    if (it != windows_->live.end()) {
      window = std::move(it->second);
      windows_->live.erase(it);
    }
  }
  if (!window)
    throw InvalidArgument(fmt::format("rank {}: win_free: no window named '{}'", rank(), name));
  window->free();
  std::lock_guard<std::mutex> lock(windows_->mutex);
  windows_->freed.push_back(std::move(window));
}

}  // namespace decent
