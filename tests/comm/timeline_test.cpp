// The timeline's "wait" events (local backend): every Handle::wait() that blocks, and every
// blocking call, is recorded on the "caller wait" row with the operation's name; a wait on a
// handle already complete is not.
#include "decent/comm/context.h"
#include "decent/topology/generators.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace decent::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr auto kDelay = 300ms;
// The ranks leave the barrier before the delay at slightly different times (threads on a
// loaded machine): a blocked wait lasts at least kDelay minus this.
constexpr std::int64_t kToleranceUs = 100000;
constexpr int kWaitTid = 3;

json read_trace(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return json::parse(in);
}

std::vector<json> waits_named(const json& trace, const std::string& name) {
  std::vector<json> out;
  for (const auto& e : trace["traceEvents"])
    if (e.value("cat", "") == "wait" && e["name"] == name) out.push_back(e);
  return out;
}

class TimelineWaits : public ::testing::TestWithParam<int> {};

TEST_P(TimelineWaits, BlockedWaitsAreRecordedWithTheirDuration) {
  const int n = GetParam();
  const std::string prefix = ::testing::TempDir() + "decent_timeline_waits_" +
                             std::to_string(getpid()) + "_n" + std::to_string(n) + "_";
  ContextOptions options;
  options.timeout = std::chrono::seconds(60);
  options.timeline_prefix = prefix;
  decent::local::run(
      n,
      [&](Context& c) {
        c.set_topology(topology::ring(c.size()));
        const bool delayed = c.rank() == 1;
        std::vector<double> x(64, c.rank());

        // A: rank 1 submits kDelay late; its ring neighbours' waits block that long.
        c.barrier();
        if (delayed) std::this_thread::sleep_for(kDelay);
        Handle a = c.neighbor_allreduce_async(x, x);
        a.wait();

        // B: a handle polled until complete: its wait does not block and records nothing.
        c.barrier();
        std::vector<double> b(8, 1.0);
        Handle h = c.broadcast_async(b, 0);
        while (!h.poll()) std::this_thread::sleep_for(1ms);
        h.wait();

        // C: a blocking call queued behind a non-blocking one whose peer is late waits through
        // the same path; the earlier handle is then complete and its wait records nothing.
        c.barrier();
        if (delayed) std::this_thread::sleep_for(kDelay);
        GatherResult gathered;
        Handle g = c.neighbor_allgather_async(x, gathered);
        GatherResult all = c.allgather(x);
        g.wait();
        EXPECT_EQ(all.ranks.size(), static_cast<std::size_t>(c.size()));

        // D: a blocking call, on an idle context it runs on the caller's thread: the caller
        // was blocked for all of it, which is recorded as one wait as well.
        c.barrier();
        if (delayed) std::this_thread::sleep_for(kDelay);
        double sum = c.rank();
        c.allreduce(Buffer(&sum, 1), ReduceOp::kSum);
        EXPECT_DOUBLE_EQ(sum, c.size() * (c.size() - 1) / 2.0);
      },
      options);

  for (int r = 0; r < n; ++r) {
    const std::string path = prefix + std::to_string(r) + ".json";
    const json trace = read_trace(path);
    std::remove(path.c_str());
    bool wait_row_named = false;
    for (const auto& e : trace["traceEvents"]) {
      if (e["ph"] == "M" && e["name"] == "thread_name" && e.value("tid", -1) == kWaitTid)
        wait_row_named = e["args"]["name"] == "caller wait";
      if (e.value("cat", "") != "wait") continue;
      EXPECT_EQ(e["ph"], "X");
      EXPECT_EQ(e["pid"].get<int>(), r);
      EXPECT_EQ(e["tid"].get<int>(), kWaitTid);
      EXPECT_GE(e["ts"].get<std::int64_t>(), 0);
      EXPECT_GE(e["dur"].get<std::int64_t>(), 0);
      EXPECT_EQ(e["args"]["phase"], "wait");
    }
    EXPECT_TRUE(wait_row_named) << "rank " << r;
    // B and C's earlier handle were complete when waited on.
    EXPECT_TRUE(waits_named(trace, "broadcast").empty()) << "rank " << r;
    EXPECT_TRUE(waits_named(trace, "neighbor_allgather").empty()) << "rank " << r;

    const std::int64_t min_us =
        std::chrono::duration_cast<std::chrono::microseconds>(kDelay).count() - kToleranceUs;
    // C and D: every rank but the late one waited for it in the blocking allgather and
    // allreduce (queued behind another operation or run on the caller's thread: one event
    // either way); the late one recorded at most one, short, wait for each.
    for (const char* name : {"allgather", "allreduce"}) {
      const auto w = waits_named(trace, name);
      if (r == 1) {
        EXPECT_LE(w.size(), 1u) << name;
        continue;
      }
      ASSERT_EQ(w.size(), 1u) << name << " rank " << r;
      EXPECT_GE(w[0]["dur"].get<std::int64_t>(), min_us) << name << " rank " << r;
    }
    // A: the in-neighbours of rank 1 on the ring (0, and 2 when n > 2) were blocked by it.
    const bool blocked = r == 0 || (r == 2 && n > 2);
    if (!blocked) continue;
    const auto a = waits_named(trace, "neighbor_allreduce");
    ASSERT_EQ(a.size(), 1u) << "rank " << r;
    EXPECT_GE(a[0]["dur"].get<std::int64_t>(), min_us) << "rank " << r;
    // The wait ends after the operation's last phase on the communication thread (timestamps
    // are truncated to microseconds separately: 2 us of slack).
    const std::int64_t wait_end = a[0]["ts"].get<std::int64_t>() + a[0]["dur"].get<std::int64_t>();
    bool phase_seen = false;
    for (const auto& e : trace["traceEvents"]) {
      if (e["ph"] != "X" || e.value("cat", "") != "reduce") continue;
      if (e["name"].get<std::string>().rfind("neighbor_allreduce#", 0) != 0) continue;
      phase_seen = true;
      EXPECT_LE(e["ts"].get<std::int64_t>() + e["dur"].get<std::int64_t>(), wait_end + 2);
    }
    EXPECT_TRUE(phase_seen) << "rank " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Ranks, TimelineWaits, ::testing::Values(2, 3, 5),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return "n" + std::to_string(info.param);
                         });

}  // namespace
}  // namespace decent::testing
