// One-sided windows of the in-process backend: every rank's memory is a heap block that the other
// threads read and write directly. A mutex per block orders the accesses, which gives the same
// guarantees as MPI's passive target (every call complete at return, accumulate and the atomics
// atomic) and keeps ThreadSanitizer quiet.
#include "comm/local/local_transport.h"

#include <fmt/format.h>

#include <cstdint>
#include <cstring>
#include <mutex>
#include <vector>

namespace decent::comm {
namespace {

struct LocalRmaMemory {
  explicit LocalRmaMemory(std::size_t n) : bytes(n), words((n + 7) / 8, 0) {}
  std::uint8_t* data() { return reinterpret_cast<std::uint8_t*>(words.data()); }

  std::mutex mutex;
  std::size_t bytes;
  std::vector<std::uint64_t> words;  // 8-byte aligned, zero-filled
};

template <typename T>
void add_into(std::uint8_t* target, const void* data, std::size_t count) {
  // memcpy per element: neither side is guaranteed to be aligned for T.
  const auto* source = static_cast<const std::uint8_t*>(data);
  for (std::size_t i = 0; i < count; ++i) {
    T a, b;
    std::memcpy(&a, target + i * sizeof(T), sizeof(T));
    std::memcpy(&b, source + i * sizeof(T), sizeof(T));
    a += b;
    std::memcpy(target + i * sizeof(T), &a, sizeof(T));
  }
}

class LocalRmaWindow final : public RmaWindow {
 public:
  LocalRmaWindow(std::shared_ptr<LocalWorld> world, int rank,
                 std::vector<std::shared_ptr<LocalRmaMemory>> memory)
      : world_(std::move(world)), rank_(rank), memory_(std::move(memory)) {}

  std::size_t bytes(int rank) const override { return memory_.at(check_rank(rank))->bytes; }

  void put(int target, std::size_t offset, const void* data, std::size_t bytes) override {
    LocalRmaMemory& m = access(target, offset, bytes, "put");
    std::lock_guard<std::mutex> lock(m.mutex);
    if (bytes > 0) std::memcpy(m.data() + offset, data, bytes);
  }

  void get(int target, std::size_t offset, void* data, std::size_t bytes) override {
    LocalRmaMemory& m = access(target, offset, bytes, "get");
    std::lock_guard<std::mutex> lock(m.mutex);
    if (bytes > 0) std::memcpy(data, m.data() + offset, bytes);
  }

  void accumulate(int target, std::size_t offset, const void* data, std::size_t count,
                  DType dtype) override {
    LocalRmaMemory& m = access(target, offset, count * dtype_size(dtype), "accumulate");
    std::lock_guard<std::mutex> lock(m.mutex);
    std::uint8_t* at = m.data() + offset;
    switch (dtype) {
      case DType::kFloat32:
        return add_into<float>(at, data, count);
      case DType::kFloat64:
        return add_into<double>(at, data, count);
      case DType::kInt32:
        return add_into<std::int32_t>(at, data, count);
      case DType::kInt64:
        return add_into<std::int64_t>(at, data, count);
      default:
        throw InvalidArgument(
            fmt::format("local rank {}: window accumulate: dtype {} is not float32, float64, "
                        "int32 or int64",
                        rank_, dtype_name(dtype)));
    }
  }

  std::int64_t compare_and_swap(int target, std::size_t offset, std::int64_t expected,
                                std::int64_t desired) override {
    LocalRmaMemory& m = access(target, offset, 8, "compare_and_swap");
    check_aligned(offset, "compare_and_swap");
    std::lock_guard<std::mutex> lock(m.mutex);
    std::int64_t old;
    std::memcpy(&old, m.data() + offset, 8);
    if (old == expected) std::memcpy(m.data() + offset, &desired, 8);
    return old;
  }

  std::int64_t fetch_add(int target, std::size_t offset, std::int64_t delta) override {
    LocalRmaMemory& m = access(target, offset, 8, "fetch_add");
    check_aligned(offset, "fetch_add");
    std::lock_guard<std::mutex> lock(m.mutex);
    std::int64_t old;
    std::memcpy(&old, m.data() + offset, 8);
    const std::int64_t updated = old + delta;
    std::memcpy(m.data() + offset, &updated, 8);
    return old;
  }

 private:
  int check_rank(int rank) const {
    if (rank < 0 || rank >= static_cast<int>(memory_.size())) {
      throw InvalidArgument(
          fmt::format("local rank {}: window access names rank {}, outside [0, {})", rank_, rank,
                      memory_.size()));
    }
    return rank;
  }

  LocalRmaMemory& access(int target, std::size_t offset, std::size_t bytes, const char* op) {
    LocalRmaMemory& m = *memory_[check_rank(target)];
    if (offset > m.bytes || bytes > m.bytes - offset) {
      throw InvalidArgument(fmt::format(
          "local rank {}: window {} of {} bytes at offset {} is outside rank {}'s {} bytes", rank_,
          op, bytes, offset, target, m.bytes));
    }
    world_->check_usable(rank_);
    // A rank that finished normally leaves its memory readable; a failed one ends the job.
    if (target != rank_) world_->check_usable(target, /*left_is_ok=*/true);
    return m;
  }

  void check_aligned(std::size_t offset, const char* op) const {
    if (offset % 8 != 0) {
      throw InvalidArgument(fmt::format(
          "local rank {}: window {} at offset {} is not 8-byte aligned", rank_, op, offset));
    }
  }

  std::shared_ptr<LocalWorld> world_;
  int rank_;
  // Every rank's block; shared, so a block outlives a rank that frees its window first.
  std::vector<std::shared_ptr<LocalRmaMemory>> memory_;
};

}  // namespace

std::unique_ptr<RmaWindow> LocalTransport::create_window(std::size_t bytes) {
  world_->check_usable(rank_);
  auto memory = std::make_shared<LocalRmaMemory>(bytes);
  // The ranks are threads of one process: exchange the addresses of each rank's shared_ptr and
  // copy them, then meet again so that no rank returns (destroying its own) before all copied.
  const auto address = reinterpret_cast<std::uintptr_t>(&memory);
  std::vector<std::uintptr_t> addresses(static_cast<std::size_t>(size()));
  iallgather(&address, sizeof(address), addresses.data())->wait_until(Clock::time_point::max());
  std::vector<std::shared_ptr<LocalRmaMemory>> all;
  all.reserve(addresses.size());
  for (std::uintptr_t a : addresses) {
    all.push_back(*reinterpret_cast<const std::shared_ptr<LocalRmaMemory>*>(a));
  }
  ibarrier()->wait_until(Clock::time_point::max());
  return std::make_unique<LocalRmaWindow>(world_, rank_, std::move(all));
}

}  // namespace decent::comm
