#include "timeline.h"

#include "decent/comm/types.h"

#include <fmt/format.h>

#include <map>

namespace decent::detail {

std::string Timeline::claim_path(const std::string& prefix, int rank) {
  static std::mutex mutex;
  static std::map<std::string, int> claimed;  // first name -> contexts that asked for it
  const std::string first = fmt::format("{}{}.json", prefix, rank);
  std::lock_guard<std::mutex> lock(mutex);
  const int earlier = claimed[first]++;
  return earlier == 0 ? first : fmt::format("{}{}.ctx{}.json", prefix, rank, earlier);
}

Timeline::~Timeline() {
  close();
}

void Timeline::open(const std::string& path, int rank) {
  if (path.empty()) return;
  std::lock_guard<std::mutex> lock(mutex_);
  out_.open(path, std::ios::out | std::ios::trunc);
  if (!out_)
    throw Error(fmt::format("rank {}: cannot open timeline file '{}' for writing", rank, path));
  rank_ = rank;
  origin_ = std::chrono::steady_clock::now();
  enabled_ = true;
  first_ = true;
  out_ << "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
  out_ << fmt::format(
      "{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":{},\"args\":{{\"name\":\"rank {}\"}}}}",
      rank, rank);
  first_ = false;
}

void Timeline::record(const std::string& name, const char* phase,
                      std::chrono::steady_clock::time_point begin,
                      std::chrono::steady_clock::time_point end, std::uint64_t bytes) {
  if (!enabled_) return;
  using std::chrono::duration_cast;
  using std::chrono::microseconds;
  const auto ts = duration_cast<microseconds>(begin - origin_).count();
  const auto dur = duration_cast<microseconds>(end - begin).count();
  std::lock_guard<std::mutex> lock(mutex_);
  // Phases get their own track (tid) so overlapping queue/communicate spans stay readable.
  const int tid = phase[0] == 'q' ? 0 : (phase[0] == 'c' ? 1 : 2);
  out_ << fmt::format(
      ",\n{{\"name\":\"{}\",\"cat\":\"{}\",\"ph\":\"X\",\"ts\":{},\"dur\":{},\"pid\":{},\"tid\":{},"
      "\"args\":{{\"phase\":\"{}\",\"bytes\":{}}}}}",
      name, phase, ts, dur, rank_, tid, phase, bytes);
}

void Timeline::close() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!enabled_) return;
  out_ << "\n]}\n";
  out_.close();
  enabled_ = false;
}

}  // namespace decent::detail
