#include "timeline.h"

#include "decent/comm/types.h"

#include <fmt/format.h>

#include <map>

namespace decent::detail {

// ---------------------------------------------------------------- TimelineWriter

TimelineWriter::TimelineWriter(const std::string& path, int rank) : rank_(rank) {
  out_.open(path, std::ios::out | std::ios::trunc);
  if (!out_)
    throw Error(fmt::format("rank {}: cannot open timeline file '{}' for writing", rank, path));
  origin_ = std::chrono::steady_clock::now();
  open_ = true;
  out_ << "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
  out_ << fmt::format(
      "{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":{},\"args\":{{\"name\":\"rank {}\"}}}}",
      rank, rank);
  const std::pair<int, const char*> rows[] = {{Timeline::kQueueTid, "queue"},
                                              {Timeline::kCommunicateTid, "communicate"},
                                              {Timeline::kReduceTid, "reduce"},
                                              {Timeline::kCallerWaitTid, "caller wait"}};
  for (const auto& [tid, row] : rows) {
    out_ << fmt::format(
        ",\n{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":{},\"tid\":{},"
        "\"args\":{{\"name\":\"{}\"}}}}",
        rank, tid, row);
  }
}

TimelineWriter::~TimelineWriter() {
  close();
}

void TimelineWriter::write(const std::string& name, const char* phase, int tid,
                           std::chrono::steady_clock::time_point begin,
                           std::chrono::steady_clock::time_point end, std::uint64_t bytes) {
  using std::chrono::duration_cast;
  using std::chrono::microseconds;
  std::lock_guard<std::mutex> lock(mutex_);
  if (!open_) return;
  const auto ts = duration_cast<microseconds>(begin - origin_).count();
  const auto dur = duration_cast<microseconds>(end - begin).count();
  out_ << fmt::format(
      ",\n{{\"name\":\"{}\",\"cat\":\"{}\",\"ph\":\"X\",\"ts\":{},\"dur\":{},\"pid\":{},\"tid\":{},"
      "\"args\":{{\"phase\":\"{}\",\"bytes\":{}}}}}",
      name, phase, ts, dur, rank_, tid, phase, bytes);
}

void TimelineWriter::record_wait(const std::string& name,
                                 std::chrono::steady_clock::time_point begin,
                                 std::chrono::steady_clock::time_point end) {
  write(name, "wait", Timeline::kCallerWaitTid, begin, end, 0);
}

void TimelineWriter::close() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!open_) return;
  out_ << "\n]}\n";
  out_.close();
  open_ = false;
}

// ---------------------------------------------------------------- Timeline

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
  auto writer = std::make_shared<TimelineWriter>(path, rank);
  std::lock_guard<std::mutex> lock(mutex_);
  if (writer_) writer_->close();
  writer_ = std::move(writer);
  enabled_.store(true, std::memory_order_relaxed);
}

void Timeline::record(const std::string& name, const char* phase,
                      std::chrono::steady_clock::time_point begin,
                      std::chrono::steady_clock::time_point end, std::uint64_t bytes) {
  if (!enabled()) return;
  std::shared_ptr<TimelineWriter> writer = this->writer();
  if (!writer) return;
  // Phases get their own row (tid) so overlapping queue/communicate spans stay readable.
  const int tid = phase[0] == 'q' ? kQueueTid : (phase[0] == 'c' ? kCommunicateTid : kReduceTid);
  writer->write(name, phase, tid, begin, end, bytes);
}

std::shared_ptr<TimelineWriter> Timeline::writer() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return writer_;
}

void Timeline::close() {
  std::shared_ptr<TimelineWriter> writer;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    writer = std::move(writer_);
    enabled_.store(false, std::memory_order_relaxed);
  }
  if (writer) writer->close();
}

}  // namespace decent::detail
