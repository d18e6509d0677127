// Time of the element-wise kernels that combine received buffers, for every instruction-set
// variant this CPU supports (src/comm/simd), single-threaded.
//
//   build/bin/decent-bench-kernels --benchmark_filter='weighted_sum' --benchmark_repetitions=3
//
// Names: <kernel>/<variant>/<bytes per buffer>. weighted_sum_k combines k float32 buffers
// (a neighbour average over k - 1 in-neighbours); sum and sum_scaled are the steps of an
// allreduce (sum_scaled completes an average). The passes_k rows do what weighted_sum_k does one
// buffer at a time, out = w0 s0 then out += w s for each further source (the kernels' former
// approach), to show what a single pass saves once the buffers outgrow the caches.
#include "comm/kernels.h"
#include "comm/simd/native_kernels.h"

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

namespace {

using decent::detail::NativeKernels;
using decent::detail::WeightedSource;

constexpr std::size_t kMaxSources = 4;

struct Buffers {
  std::vector<std::vector<float>> in;
  std::vector<float> out;
  explicit Buffers(std::size_t n) : in(kMaxSources, std::vector<float>(n)), out(n) {
    for (std::size_t k = 0; k < kMaxSources; ++k)
      for (std::size_t i = 0; i < n; ++i) in[k][i] = static_cast<float>((i * 7 + k) % 13) * 0.25f;
  }
  std::vector<WeightedSource> sources(std::size_t k) const {
    std::vector<WeightedSource> s;
    for (std::size_t j = 0; j < k; ++j) s.push_back({in[j].data(), 1.0 / static_cast<double>(k)});
    return s;
  }
};

void set_bytes(benchmark::State& state, std::size_t bytes_touched) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(bytes_touched));
}

void weighted_sum(benchmark::State& state, const NativeKernels* k, std::size_t sources) {
  const auto n = static_cast<std::size_t>(state.range(0)) / sizeof(float);
  Buffers b(n);
  const auto s = b.sources(sources);
  for (auto _ : state) {
    k->weighted_sum_f32(n, s.data(), s.size(), b.out.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, (sources + 1) * n * sizeof(float));
}

void passes(benchmark::State& state, std::size_t sources) {
  const auto n = static_cast<std::size_t>(state.range(0)) / sizeof(float);
  Buffers b(n);
  const auto s = b.sources(sources);
  float* out = b.out.data();
  for (auto _ : state) {
    const float* s0 = static_cast<const float*>(s[0].data);
    const auto w0 = static_cast<float>(s[0].weight);
    for (std::size_t i = 0; i < n; ++i) out[i] = w0 * s0[i];
    for (std::size_t j = 1; j < sources; ++j) {
      const float* sj = static_cast<const float*>(s[j].data);
      const auto w = static_cast<float>(s[j].weight);
      for (std::size_t i = 0; i < n; ++i) out[i] = out[i] + w * sj[i];
    }
    benchmark::ClobberMemory();
  }
  set_bytes(state, (sources + 1) * n * sizeof(float));
}

void sum(benchmark::State& state, const NativeKernels* k, bool scaled) {
  const auto n = static_cast<std::size_t>(state.range(0)) / sizeof(float);
  Buffers b(n);
  for (auto _ : state) {
    if (scaled)
      k->sum_scaled_f32(n, b.in[0].data(), b.in[1].data(), b.out.data(), 0.5f);
    else
      k->sum_f32(n, b.in[0].data(), b.in[1].data(), b.out.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 3 * n * sizeof(float));
}

void apply_sizes(benchmark::internal::Benchmark* b) {
  for (std::int64_t bytes : {4 << 10, 64 << 10, 1 << 20, 16 << 20}) b->Arg(bytes);
}

void register_all() {
  for (const NativeKernels* k : decent::detail::supported_native_kernels()) {
    const std::string isa = k->isa;
    for (std::size_t sources = 1; sources <= kMaxSources; ++sources)
      benchmark::RegisterBenchmark(
          ("weighted_sum_" + std::to_string(sources) + "/" + isa).c_str(),
          [k, sources](benchmark::State& s) { weighted_sum(s, k, sources); })
          ->Apply(apply_sizes);
    benchmark::RegisterBenchmark(("sum/" + isa).c_str(), [k](benchmark::State& s) {
      sum(s, k, false);
    })->Apply(apply_sizes);
    benchmark::RegisterBenchmark(("sum_scaled/" + isa).c_str(), [k](benchmark::State& s) {
      sum(s, k, true);
    })->Apply(apply_sizes);
  }
  for (std::size_t sources = 2; sources <= kMaxSources; ++sources)
    benchmark::RegisterBenchmark(("passes_" + std::to_string(sources) + "/baseline").c_str(),
                                 [sources](benchmark::State& s) { passes(s, sources); })
        ->Apply(apply_sizes);
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
