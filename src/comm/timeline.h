// Chrome trace ("Trace Event Format") writer: one file per rank, one complete event ("ph":"X")
// per operation phase. Open the file in chrome://tracing or https://ui.perfetto.dev.
//
// Rows (tid) of a rank's process (pid = rank):
//   0 "queue"        submitted -> started, on the communication thread's side
//   1 "communicate"  messages in flight
//   2 "reduce"       weighted combination
//   3 "caller wait"  the time a caller was blocked in Handle::wait() (only waits that blocked)
//                    or in a blocking call
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>

namespace decent::detail {

// The open trace file. Shared by the Timeline (owned by the engine) and the Handles of a
// context with the timeline on, so that a Handle waited on after its context was destroyed
// writes nothing instead of touching freed memory.
class TimelineWriter {
 public:
  TimelineWriter(const std::string& path, int rank);
  ~TimelineWriter();
  TimelineWriter(const TimelineWriter&) = delete;
  TimelineWriter& operator=(const TimelineWriter&) = delete;
  // One complete event on row `tid`; nothing after close().
  void write(const std::string& name, const char* phase, int tid,
             std::chrono::steady_clock::time_point begin, std::chrono::steady_clock::time_point end,
             std::uint64_t bytes);
  // A caller blocked in Handle::wait() on operation `name` during [begin, end).
  void record_wait(const std::string& name, std::chrono::steady_clock::time_point begin,
                   std::chrono::steady_clock::time_point end);
  void close();

 private:
  std::mutex mutex_;
  bool open_ = false;
  int rank_ = 0;
  std::ofstream out_;
  std::chrono::steady_clock::time_point origin_;
};

class Timeline {
 public:
  static constexpr int kQueueTid = 0;
  static constexpr int kCommunicateTid = 1;
  static constexpr int kReduceTid = 2;
  static constexpr int kCallerWaitTid = 3;

  Timeline() = default;
  ~Timeline();
  // The file of `rank` for `prefix`: prefix<rank>.json for the first context of this process
  // that asks, then prefix<rank>.ctx<k>.json for the k-th further one (k = 1, 2, ...), so that
  // several contexts in one process never write the same file. Names are not reused.
  static std::string claim_path(const std::string& prefix, int rank);
  // Starts writing to `path`; does nothing when path is empty.
  void open(const std::string& path, int rank);
  bool enabled() const { return enabled_.load(std::memory_order_relaxed); }
  // Records a phase [begin, end) of operation `name` (e.g. "neighbor_allreduce#12").
  void record(const std::string& name, const char* phase,
              std::chrono::steady_clock::time_point begin,
              std::chrono::steady_clock::time_point end, std::uint64_t bytes = 0);
  // The open file (for recording callers' waits), or nullptr when the timeline is off.
  std::shared_ptr<TimelineWriter> writer() const;
  void close();

 private:
  std::atomic<bool> enabled_{false};
  mutable std::mutex mutex_;
  std::shared_ptr<TimelineWriter> writer_;
};

}  // namespace decent::detail
