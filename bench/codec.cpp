// Encode and decode time of every compressor on 1M and 5.8M elements, single-threaded.
//
//   build/bin/decent-bench-codec --benchmark_filter='encode/qsgd' --benchmark_repetitions=3
//
// Counters: ns_per_element (wall time per element of the input vector), bytes (encoded size),
// bits_per_element. Inputs are normally distributed (fixed seed); "f32" and "f64" are the
// caller's element type. The error-feedback rows time ErrorFeedback::encode (correction,
// encode, decode of what was sent, residual update).
#include "decent/compress/compressor.h"
#include "decent/compress/error_feedback.h"

#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

namespace {

using decent::compress::make_compressor;

const char* const kSpecs[] = {
    "none",
    "fp16",
    "bf16",
    "qsgd:s=127",
    "qsgd:s=127,bucket=512,norm=max",
    "qsgd:s=7,bucket=512",
    "qsgd:s=1,bucket=512,norm=max",
    "kbit:bits=8,bucket=512",
    "kbit:bits=4",
    "randk:ratio=0.01",
    "topk:ratio=0.01",
    "sign:bucket=512",
};

template <typename T>
const std::vector<T>& input(std::size_t n) {
  static std::vector<T> v;
  if (v.size() != n) {
    std::mt19937_64 gen(42);
    std::normal_distribution<double> normal(0.0, 1.0);
    v.resize(n);
    for (auto& x : v) x = static_cast<T>(normal(gen));
  }
  return v;
}

void set_counters(benchmark::State& state, std::size_t n, std::size_t bytes) {
  state.counters["ns_per_element"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate |
                                                     benchmark::Counter::kInvert);
  state.counters["bytes"] = static_cast<double>(bytes);
  state.counters["bits_per_element"] = 8.0 * static_cast<double>(bytes) / static_cast<double>(n);
}

template <typename T>
void encode(benchmark::State& state, const std::string& spec) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto c = make_compressor(spec);
  const auto& v = input<T>(n);
  std::uint64_t seed = 1;
  std::size_t bytes = 0;
  for (auto _ : state) {
    auto wire = c->encode(v.data(), n, seed++);
    bytes = wire.size();
    benchmark::DoNotOptimize(wire.data());
  }
  set_counters(state, n, bytes);
}

template <typename T>
void decode(benchmark::State& state, const std::string& spec) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto c = make_compressor(spec);
  const auto& v = input<T>(n);
  const auto wire = c->encode(v.data(), n, 1);
  std::vector<T> out(n);
  for (auto _ : state) {
    c->decode(wire.data(), wire.size(), out.data(), n);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, n, wire.size());
}

template <typename T>
void error_feedback(benchmark::State& state, const std::string& spec) {
  const auto n = static_cast<std::size_t>(state.range(0));
  decent::compress::ErrorFeedback<T> ef(make_compressor(spec), n);
  const auto& v = input<T>(n);
  std::vector<T> sent(n);
  std::uint64_t seed = 1;
  std::size_t bytes = 0;
  for (auto _ : state) {
    auto wire = ef.encode(v.data(), seed++, sent.data());
    bytes = wire.size();
    benchmark::DoNotOptimize(wire.data());
  }
  set_counters(state, n, bytes);
}

template <typename Fn>
void add(const std::string& name, Fn fn) {
  benchmark::RegisterBenchmark(name.c_str(), fn)
      ->Arg(1 << 20)
      ->Arg(5800000)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

int register_all() {
  for (const char* spec : kSpecs) {
    const std::string s = spec;
    add("encode/" + s + "/f32", [s](benchmark::State& st) { encode<float>(st, s); });
    add("decode/" + s + "/f32", [s](benchmark::State& st) { decode<float>(st, s); });
    add("encode/" + s + "/f64", [s](benchmark::State& st) { encode<double>(st, s); });
    add("decode/" + s + "/f64", [s](benchmark::State& st) { decode<double>(st, s); });
  }
  for (const char* spec : {"topk:ratio=0.01", "sign:bucket=512"}) {
    const std::string s = spec;
    add("error_feedback/" + s + "/f32",
        [s](benchmark::State& st) { error_feedback<float>(st, s); });
    add("error_feedback/" + s + "/f64",
        [s](benchmark::State& st) { error_feedback<double>(st, s); });
  }
  return 0;
}

const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
