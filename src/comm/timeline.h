// Chrome trace ("Trace Event Format") writer: one file per rank, one complete event ("ph":"X")
// per operation phase. Open the file in chrome://tracing or https://ui.perfetto.dev.
#pragma once

#include <chrono>
#include <cstdint>
#include <fstream>
#include <mutex>
#include <string>

namespace decent::detail {

class Timeline {
 public:
  Timeline() = default;
  ~Timeline();
  // The file of `rank` for `prefix`: prefix<rank>.json for the first context of this process
  // that asks, then prefix<rank>.ctx<k>.json for the k-th further one (k = 1, 2, ...), so that
  // several contexts in one process never write the same file. Names are not reused.
  static std::string claim_path(const std::string& prefix, int rank);
  // Starts writing to `path`; does nothing when path is empty.
  void open(const std::string& path, int rank);
  bool enabled() const { return enabled_; }
  // Records a phase [begin, end) of operation `name` (e.g. "neighbor_allreduce#12").
  void record(const std::string& name, const char* phase,
              std::chrono::steady_clock::time_point begin,
              std::chrono::steady_clock::time_point end, std::uint64_t bytes = 0);
  void close();

 private:
  bool enabled_ = false;
  bool first_ = true;
  int rank_ = 0;
  std::mutex mutex_;
  std::ofstream out_;
  std::chrono::steady_clock::time_point origin_;
};

}  // namespace decent::detail
