#include "window_cases.h"

#include "decent/comm/window.h"
#include "decent/topology/dynamic.h"
#include "decent/topology/generators.h"

#include <gtest/gtest.h>

#include <Eigen/Core>

#include <cmath>
#include <set>
#include <string>
#include <thread>

namespace decent::testing {
namespace {

using topology::Graph;

constexpr std::size_t kCount = 7;

double value(int rank, std::size_t k) {
  return (rank + 1.0) * (k + 1.0) + 0.5 * rank * rank;
}

std::vector<double> values(int rank, std::size_t count = kCount) {
  std::vector<double> v(count);
  for (std::size_t k = 0; k < count; ++k) v[k] = value(rank, k);
  return v;
}

template <typename Fn>
void expect_throws_with(Fn&& fn, const std::string& needle, const char* type) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << type << " message '" << e.what() << "' lacks '" << needle << "'";
    return;
  }
  ADD_FAILURE() << "expected " << type << " containing '" << needle << "'";
}

// put, then update with the topology's weights: exactly one round of W x.
void check_put_update(Context& c, Graph g) {
  const Eigen::MatrixXd w = g.mixing_matrix();
  const std::vector<int> in = g.in_ranks(c.rank());
  c.set_topology(g);
  auto x = values(c.rank());
  WindowOptions zero_slots;
  zero_slots.init_slots_with_neighbors = false;
  Window& win = c.win_create("x", x, zero_slots);
  EXPECT_EQ(win.in_neighbors(), in);
  EXPECT_EQ(win.out_neighbors(), g.out_ranks(c.rank()));
  for (int round = 0; round < 3; ++round) win.put();
  c.barrier();
  for (const auto& [src, version] : win.versions()) {
    EXPECT_EQ(version, 3) << "rank " << c.rank() << " from " << src;
  }
  EXPECT_EQ(win.versions().size(), in.size());
  win.update();
  for (std::size_t k = 0; k < kCount; ++k) {
    double want = 0.0;
    for (int j = 0; j < c.size(); ++j) want += w(c.rank(), j) * value(j, k);
    EXPECT_NEAR(x[k], want, 1e-12 * (1 + std::abs(want))) << "rank " << c.rank() << " k " << k;
  }
  for (const auto& [src, version] : win.versions()) EXPECT_EQ(version, 0) << "after update";
  c.barrier();
  c.win_free("x");
}

std::vector<WindowCase> make_cases() {
  std::vector<WindowCase> cases;
  auto add = [&](std::string name, std::function<void(Context&)> body, int min_size = 1,
                 std::function<void(ContextOptions&)> configure = nullptr) {
    cases.push_back({std::move(name), std::move(body), min_size, std::move(configure)});
  };

  add("PutThenUpdateExponential",
      [](Context& c) { check_put_update(c, topology::exponential(c.size())); });
  add("PutThenUpdateRing", [](Context& c) { check_put_update(c, topology::ring(c.size())); });
  add("PutThenUpdateDirectedRing",
      [](Context& c) { check_put_update(c, topology::directed_ring(c.size())); });

  add("SlotsStartWithNeighbourValues", [](Context& c) {
    c.set_topology(topology::ring(c.size()));
    std::vector<float> x(kCount);
    for (std::size_t k = 0; k < kCount; ++k) x[k] = static_cast<float>(value(c.rank(), k));
    Window& win = c.win_create("x", x);
    for (int src : win.in_neighbors()) {
      std::vector<float> slot(kCount);
      win.read_slot(src, slot);
      for (std::size_t k = 0; k < kCount; ++k)
        EXPECT_EQ(slot[k], static_cast<float>(value(src, k)));
      EXPECT_EQ(win.versions()[src], 0);
    }
    c.barrier();
    c.win_free("x");
  });

  add("GetFetchesPublishedValues", [](Context& c) {
    c.set_topology(topology::exponential(c.size()));
    auto x = values(c.rank());
    WindowOptions zero_slots;
    zero_slots.init_slots_with_neighbors = false;
    Window& win = c.win_create("x", x, zero_slots);
    for (auto& v : x) v *= 2;  // not published yet: neighbours still see the old values
    c.barrier();
    win.get();
    for (int src : win.in_neighbors()) {
      std::vector<double> slot(kCount);
      win.read_slot(src, slot);
      EXPECT_EQ(slot, values(src));
    }
    c.barrier();
    win.publish();
    c.barrier();
    win.get();
    for (int src : win.in_neighbors()) {
      std::vector<double> slot(kCount), got(kCount);
      win.read_slot(src, slot);
      win.read_value(src, got);
      for (std::size_t k = 0; k < kCount; ++k) EXPECT_EQ(slot[k], 2 * value(src, k));
      EXPECT_EQ(got, slot);
    }
    c.barrier();
    c.win_free("x");
  });

  add("AccumulateSums", [](Context& c) {
    Graph g = topology::exponential(c.size());
    c.set_topology(g);
    auto x = values(c.rank());
    WindowOptions zero_slots;
    zero_slots.init_slots_with_neighbors = false;
    Window& win = c.win_create("x", x, zero_slots);
    for (int i = 0; i < 3; ++i) win.accumulate();
    WinPutOptions twice;
    twice.dst_weights.emplace();
    for (int dst : win.out_neighbors()) (*twice.dst_weights)[dst] = 2.0;
    win.accumulate(twice);
    c.barrier();
    for (int src : win.in_neighbors()) {
      std::vector<double> slot(kCount);
      win.read_slot(src, slot);
      for (std::size_t k = 0; k < kCount; ++k) EXPECT_EQ(slot[k], 5 * value(src, k));
      EXPECT_EQ(win.versions()[src], 4);
    }
    // Sum of the neighbours' mass, slots drained.
    WinUpdateOptions drain;
    drain.self_weight = 0.0;
    drain.src_weights.emplace();
    for (int src : win.in_neighbors()) (*drain.src_weights)[src] = 1.0;
    drain.reset = true;
    win.update(drain);
    for (std::size_t k = 0; k < kCount; ++k) {
      double want = 0;
      for (int src : g.in_ranks(c.rank())) want += 5 * value(src, k);
      EXPECT_EQ(x[k], want);
    }
    for (int src : win.in_neighbors()) {
      std::vector<double> slot(kCount, -1.0);
      win.read_slot(src, slot);
      EXPECT_EQ(slot, std::vector<double>(kCount, 0.0));
    }
    c.barrier();
    c.win_free("x");
  });

  // Every rank hammers its out-neighbours' slots while the owners drain them: the drained totals
  // and the version counts must account for every single accumulate.
  add("ConcurrentAccumulatesLoseNothing", [](Context& c) {
    Graph g = topology::symmetric_exponential(c.size());
    c.set_topology(g);
    constexpr int kRounds = 60;
    constexpr std::size_t kLength = 256;
    const double mine = c.rank() + 1.0;
    std::vector<double> x(kLength, mine);
    WindowOptions zero_slots;
    zero_slots.init_slots_with_neighbors = false;
    Window& win = c.win_create("mass", x, zero_slots);
    WinUpdateOptions drain;
    drain.self_weight = 0.0;
    drain.src_weights.emplace();
    for (int src : win.in_neighbors()) (*drain.src_weights)[src] = 1.0;
    drain.reset = true;
    std::vector<double> total(kLength, 0.0);
    auto drain_into_total = [&] {
      win.update(drain);
      for (std::size_t k = 0; k < kLength; ++k) total[k] += x[k];
      std::fill(x.begin(), x.end(), mine);
    };
    for (int round = 0; round < kRounds; ++round) {
      win.accumulate();
      if (round % 3 == c.rank() % 3) drain_into_total();
    }
    c.barrier();
    drain_into_total();
    double want = 0;
    for (int src : g.in_ranks(c.rank())) want += kRounds * (src + 1.0);
    for (std::size_t k = 0; k < kLength; ++k) ASSERT_EQ(total[k], want) << "element " << k;
    c.barrier();
    c.win_free("mass");

    // Counts: puts without updates in between, from every in-neighbour at once.
    Window& counted = c.win_create("counted", x);
    for (int round = 0; round < kRounds; ++round) counted.put();
    c.barrier();
    for (const auto& [src, version] : counted.versions()) EXPECT_EQ(version, kRounds) << src;
    c.barrier();
    c.win_free("counted");
  });

  // A read-modify-write of rank 0's published value from every rank: only a mutex that excludes
  // gives exactly n * rounds.
  // Context::stats() counts the payload this rank moves to and from other ranks' windows, on
  // the origin only: put/accumulate/write_value add their bytes per destination to bytes_sent
  // and one message each, get/read_value add their bytes per source to bytes_received, every
  // call that moved payload is one operation; locks, versions, the counter, update and access to
  // this rank's own memory count nothing. Window calls use no engine operation, so the deltas
  // follow from the sizes and the degrees alone.
  add("TrafficIsCounted", [](Context& c) {
    const Graph g = topology::exponential(c.size());  // directed for most n: in != out
    c.set_topology(g);
    const int me = c.rank();
    const int n = c.size();
    const std::vector<int> in = g.in_ranks(me);
    const std::vector<int> out = g.out_ranks(me);
    const std::uint64_t d_in = in.size();
    const std::uint64_t d_out = out.size();
    constexpr std::size_t k = 11;
    const std::uint64_t bytes = 4 * k;  // float32
    std::vector<float> x(k, static_cast<float>(me));
    std::vector<float> other(k, 0.0f);

    const CommStats before_create = c.stats();
    Window& win = c.win_create("t", x);
    const CommStats created = c.stats();
    // The creation fetches every in-neighbour's value into its slot (plus engine messages).
    EXPECT_GE(created.bytes_received - before_create.bytes_received, d_in * bytes);

    win.put();              // d_out messages of k floats
    win.accumulate();       // again
    WinPutOptions one_dst;  // one destination with a factor
    if (!out.empty()) one_dst.dst_weights = std::map<int, double>{{out.back(), 0.25}};
    if (!out.empty()) win.accumulate(one_dst);
    win.get();  // d_in values of k floats
    WinGetOptions one_src;
    if (!in.empty()) one_src.srcs = std::vector<int>{in.front()};
    if (!in.empty()) win.get(one_src);
    win.update();  // this rank's memory only
    win.publish();
    win.versions();
    if (!in.empty()) win.read_slot(in.front(), other);
    win.read_value(me, other);  // own memory: nothing
    win.write_value(me, x);
    win.fetch_add_counter(0, 1);  // an atomic: nothing
    { auto held = win.guard((me + 1) % n); }
    const int peer = (me + 1) % n;
    const std::uint64_t remote = peer != me ? 1 : 0;
    win.read_value(peer, other);  // another rank's published value (n > 1)
    win.write_value(peer, x);
    const CommStats after = c.stats();

    const std::uint64_t puts = 2 * d_out + (out.empty() ? 0 : 1) + remote;
    const std::uint64_t gets = d_in + (in.empty() ? 0 : 1) + remote;
    const std::uint64_t calls = (d_out > 0 ? 3 : 0) + (d_in > 0 ? 2 : 0) + 2 * remote;
    EXPECT_EQ(after.bytes_sent - created.bytes_sent, puts * bytes) << "rank " << me;
    EXPECT_EQ(after.messages_sent - created.messages_sent, puts) << "rank " << me;
    EXPECT_EQ(after.bytes_received - created.bytes_received, gets * bytes) << "rank " << me;
    EXPECT_EQ(after.operations - created.operations, calls) << "rank " << me;
    if (n == 5) {
      // The exponential graph on 5 ranks: out-neighbours r+1, r+2, r+4, in-neighbours r-1, r-2,
      // r-4: 2 x 3 + 1 + 1 messages of 44 bytes sent, 3 + 1 + 1 values received.
      EXPECT_EQ(d_out, 3u);
      EXPECT_EQ(after.bytes_sent - created.bytes_sent, 8 * 44u);
      EXPECT_EQ(after.bytes_received - created.bytes_received, 5 * 44u);
    }

    // A float64 window counts 8 bytes per element, in the same registry.
    std::vector<double> y(3, 1.0);
    Window& w64 = c.win_create("t64", y);
    const CommStats y0 = c.stats();
    w64.put();
    const CommStats y1 = c.stats();
    EXPECT_EQ(y1.bytes_sent - y0.bytes_sent, 24 * d_out) << "rank " << me;
    EXPECT_EQ(y1.messages_sent - y0.messages_sent, d_out) << "rank " << me;

    // Freed windows keep their traffic in the counters (freeing itself moves no payload and
    // runs no engine operation).
    c.barrier();
    const CommStats before_free = c.stats();
    c.win_free("t64");
    c.win_free("t");
    const CommStats freed = c.stats();
    EXPECT_EQ(freed.bytes_sent, before_free.bytes_sent);
    EXPECT_EQ(freed.bytes_received, before_free.bytes_received);
    EXPECT_EQ(freed.messages_sent, before_free.messages_sent);
    EXPECT_EQ(freed.operations, before_free.operations);
  });

  add("MutexExcludes", [](Context& c) {
    c.set_topology(topology::ring(c.size()));
    constexpr int kRounds = 40;
    std::vector<double> x(3, 0.0);
    Window& win = c.win_create("counter", x);
    c.barrier();
    std::vector<double> v(3);
    for (int round = 0; round < kRounds; ++round) {
      auto guard = win.guard(0);
      EXPECT_TRUE(win.holds_lock(0));
      win.read_value(0, v);
      std::this_thread::yield();  // widen the window for a lost update
      for (auto& e : v) e += 1.0;
      win.write_value(0, v);
    }
    EXPECT_FALSE(win.holds_lock(0));
    c.barrier();
    win.read_value(0, v);
    for (double e : v) EXPECT_EQ(e, static_cast<double>(kRounds * c.size()));
    c.barrier();
    c.win_free("counter");
  });

  add("SharedCounterCountsEveryAdd", [](Context& c) {
    std::vector<double> x(1, 0.0);
    Window& win = c.win_create("count", x);
    std::int64_t seen_max = -1;
    for (int k = 0; k < 25; ++k) {
      const std::int64_t before = win.fetch_add_counter(0, 2);
      EXPECT_EQ(before % 2, 0);
      EXPECT_GT(before, seen_max);  // the counter only grows
      seen_max = before;
    }
    c.barrier();
    EXPECT_EQ(win.fetch_add_counter(0, 0), 50 * c.size());
    c.barrier();
    c.win_free("count");
  });

  add(
      "LockTimesOutNamingTheHolder",
      [](Context& c) {
        c.set_topology(topology::ring(c.size()));
        std::vector<double> x(1, 0.0);
        WindowOptions quick;
        quick.lock_timeout = std::chrono::milliseconds(200);
        Window& win = c.win_create("x", x, quick);
        if (c.rank() == 0) win.lock();
        c.barrier();
        if (c.rank() == 1) {
          expect_throws_with([&] { win.lock(0); }, "held by rank 0", "TimeoutError");
        }
        c.barrier();
        if (c.rank() == 0) win.unlock();
        c.barrier();
        c.win_free("x");
      },
      2);

  // 16M float32 elements (64 MB per slot): put and update of the whole buffer, exact values.
  add("BigBufferPutUpdate", [](Context& c) {
    Graph g = topology::ring(c.size());
    const Eigen::MatrixXd w = g.mixing_matrix();
    c.set_topology(g);
    constexpr std::size_t kBig = std::size_t{1} << 24;
    auto pattern = [](int rank, std::size_t k) {
      return static_cast<float>((k % 1024) + 1024 * rank);
    };
    std::vector<float> x(kBig);
    for (std::size_t k = 0; k < kBig; ++k) x[k] = pattern(c.rank(), k);
    WindowOptions zero_slots;
    zero_slots.init_slots_with_neighbors = false;
    Window& win = c.win_create("big", x, zero_slots);
    win.put();
    c.barrier();
    win.update();
    std::vector<int> row;  // the nonzeros of W's row
    for (int j = 0; j < c.size(); ++j)
      if (w(c.rank(), j) != 0) row.push_back(j);
    std::size_t wrong = 0;
    for (std::size_t k = 0; k < kBig; ++k) {
      double want = 0;
      for (int j : row) want += w(c.rank(), j) * pattern(j, k);
      if (std::abs(x[k] - want) > 1e-6 * (1 + std::abs(want))) ++wrong;
    }
    EXPECT_EQ(wrong, 0u) << "rank " << c.rank();
    c.barrier();
    c.win_free("big");
  });

  add("DynamicTopologyUsesTheUnionOverAPeriod", [](Context& c) {
    auto schedule = std::make_shared<topology::OnePeerExponential>(c.size());
    c.set_topology(schedule);
    std::set<int> in, out;
    for (int k = 0; k < schedule->period(); ++k) {
      for (const auto& p : schedule->plan(k, c.rank()).recv) in.insert(p.rank);
      for (const auto& p : schedule->plan(k, c.rank()).send) out.insert(p.rank);
    }
    auto x = values(c.rank());
    Window& win = c.win_create("x", x);
    EXPECT_EQ(win.in_neighbors(), std::vector<int>(in.begin(), in.end()));
    EXPECT_EQ(win.out_neighbors(), std::vector<int>(out.begin(), out.end()));
    EXPECT_DOUBLE_EQ(win.self_weight(), 1.0 / (in.size() + 1));
    // Slots hold the neighbours' values, so the default update is the uniform average.
    win.update();
    for (std::size_t k = 0; k < kCount; ++k) {
      double want = value(c.rank(), k);
      for (int src : in) want += value(src, k);
      want /= static_cast<double>(in.size() + 1);
      EXPECT_NEAR(x[k], want, 1e-12 * (1 + want));
    }
    c.barrier();
    c.win_free("x");
  });

  add("ErrorsNameRankAndWindow", [](Context& c) {
    c.set_topology(topology::ring(c.size()));
    const std::string me = "rank " + std::to_string(c.rank());
    expect_throws_with([&] { c.window("nope"); }, "no window named 'nope'", "InvalidArgument");
    std::vector<std::int32_t> ints(4);
    expect_throws_with([&] { c.win_create("ints", Buffer(ints.data(), ints.size())); }, "int32",
                       "InvalidArgument");
    auto x = values(c.rank());
    Window& win = c.win_create("x", x);
    expect_throws_with([&] { c.win_create("x", x); }, "already exists", "InvalidArgument");
    expect_throws_with([&] { win.unlock(); }, "does not hold", "InvalidArgument");
    WinPutOptions bad;
    bad.dst_weights = std::map<int, double>{{c.rank(), 1.0}};
    expect_throws_with([&] { win.put(bad); }, me + ": window 'x': put: rank", "InvalidArgument");
    std::vector<double> short_buffer(kCount - 1);
    expect_throws_with([&] { win.read_value(c.rank(), short_buffer); }, "does not match",
                       "InvalidArgument");
    c.barrier();
    c.win_free("x");
    expect_throws_with([&] { win.put(); }, me + ": window 'x': put after win_free",
                       "InvalidArgument");
    expect_throws_with([&] { c.window("x"); }, "no window named 'x'", "InvalidArgument");
    expect_throws_with([&] { c.win_free("x"); }, "no window named 'x'", "InvalidArgument");
  });

  add(
      "MismatchedSizesAreReported",
      [](Context& c) {
        c.set_topology(topology::ring(c.size()));
        std::vector<double> x(c.rank() == 0 ? 5 : 6, 1.0);
        try {
          c.win_create("x", x);
          ADD_FAILURE() << "rank " << c.rank() << ": expected MismatchError";
        } catch (const MismatchError& e) {
          const std::string text = e.what();
          EXPECT_NE(text.find("window 'x'"), std::string::npos) << text;
          EXPECT_NE(text.find(c.rank() == 0 ? "rank 1 has 6" : "rank 0 has 5"), std::string::npos)
              << text;
        }
        // The failed creation left nothing behind.
        EXPECT_THROW(c.window("x"), InvalidArgument);
      },
      2);

  return cases;
}

}  // namespace

const std::vector<WindowCase>& window_cases() {
  static const std::vector<WindowCase> cases = make_cases();
  return cases;
}

}  // namespace decent::testing
