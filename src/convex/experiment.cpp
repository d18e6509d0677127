#include "decent/convex/experiment.h"

#include "decent/topology/analysis.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <mutex>

namespace decent::convex {

namespace {

// Window over which an aperiodic (random) schedule is analysed.
constexpr int kAperiodicWindow = 32;
// Relative squared errors below this are rounding noise of double precision around x*.
constexpr double kRoundingLevel = 1e-20;

ProblemOptions with_nodes(ProblemOptions o, int n) {
  o.nodes = n;
  return o;
}

ProblemSummary summarize(const Problem& p) {
  ProblemSummary s;
  s.nodes = p.nodes();
  s.smoothness = p.smoothness();
  s.strong_convexity = p.strong_convexity();
  s.heterogeneity_b2 = p.heterogeneity_b2();
  s.optimum_norm2 = p.optimum_norm2();
  return s;
}

void check_spec(const ExperimentSpec& spec) {
  if (spec.algorithms.empty()) throw ConvexError("experiment: no algorithms");
  if (spec.topologies.empty()) throw ConvexError("experiment: no topologies");
  if (spec.step_sizes.empty()) throw ConvexError("experiment: no step sizes");
  if (spec.momenta.empty()) throw ConvexError("experiment: no momentum values");
  if (!(spec.target > 0))
    throw ConvexError(fmt::format("experiment: target {} must be > 0", spec.target));
}

void summarize_errors(RunRecord& r, double target) {
  const double scale = r.optimum_norm2 > 0 ? r.optimum_norm2 : 1.0;
  const double last = r.error.back();
  r.final_relative_error = last / scale;
  for (double e : r.error) r.diverged = r.diverged || !std::isfinite(e);
  r.diverged = r.diverged || last > r.error.front();
  for (std::size_t i = 0; i < r.error.size() && !r.iterations_to_target; ++i)
    if (r.error[i] / scale <= target) r.iterations_to_target = r.iterations[i];
  // Errors that end at rounding level have converged, not levelled off at a bias.
  if (r.diverged || r.final_relative_error <= kRoundingLevel || r.error.size() < 3) return;
  // The limiting error may be a cycle (a periodic schedule gives a periodic limit), so the band
  // of the last 10% of the run stands for it: when that band spans less than a factor 2 the run
  // has levelled off, and the plateau starts where the error enters the band (1% margin) for
  // good.
  const std::size_t tail_begin =
      std::min(r.error.size() - 2, static_cast<std::size_t>(0.9 * (r.error.size() - 1)));
  const auto [lo, hi] = std::minmax_element(r.error.begin() + tail_begin, r.error.end());
  if (*hi > 2 * *lo) return;
  auto in_band = [&](double e) { return e >= 0.99 * *lo && e <= 1.01 * *hi; };
  std::size_t first = r.error.size() - 1;
  while (first > 0 && in_band(r.error[first - 1])) --first;
  r.iterations_to_plateau = r.iterations[first];
}

ExperimentResult run_problem(Context& ctx, const Problem& problem, const ExperimentSpec& spec) {
  check_spec(spec);
  ExperimentResult out;
  out.problems.push_back(summarize(problem));
  const int n = ctx.size();
  for (const std::string& name : spec.topologies) {
    auto schedule = topology::make_schedule(name, n, spec.topology_options);
    const topology::ScheduleAnalysis facts =
        topology::analyze(*schedule, schedule->period() > 0 ? 0 : kAperiodicWindow);
    ctx.set_topology(schedule);
    for (Algorithm algorithm : spec.algorithms) {
      const bool uses_momentum = algorithm_info(algorithm).uses_momentum;
      const std::vector<double> momenta = uses_momentum ? spec.momenta : std::vector<double>{0.0};
      for (double step_size : spec.step_sizes) {
        for (double momentum : momenta) {
          SolverOptions opts = spec.solver;
          opts.algorithm = algorithm;
          opts.step_size = step_size;
          opts.momentum = momentum;
          const auto t0 = std::chrono::steady_clock::now();
          SolverResult result = solve(ctx, problem, opts);
          const double seconds =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          double traffic[2] = {static_cast<double>(result.payload_messages),
                               static_cast<double>(result.traffic.bytes_sent)};
          ctx.allreduce(Buffer(traffic, 2), ReduceOp::kAverage);

          RunRecord r;
          r.algorithm = algorithm_name(algorithm);
          r.topology = name;
          r.nodes = n;
          r.step_size = step_size;
          r.momentum = momentum;
          r.iterations = std::move(result.iterations);
          r.error = std::move(result.error);
          r.optimum_norm2 = problem.optimum_norm2();
          summarize_errors(r, spec.target);
          r.rho = n == 1 ? 0.0 : facts.rho_per_step;
          r.neighbors_per_round = facts.average_in_degree;
          const double iterations = std::max(1, opts.iterations);
          r.messages_per_iteration = traffic[0] / iterations;
          r.bytes_per_iteration = traffic[1] / iterations;
          r.seconds = seconds;
          out.runs.push_back(std::move(r));
        }
      }
    }
  }
  return out;
}

std::string format_optional(const std::optional<int>& v) {
  return v ? std::to_string(*v) : std::string("-");
}

}  // namespace

ExperimentResult run_on(Context& ctx, const ExperimentSpec& spec) {
  const Problem problem = Problem::generate(with_nodes(spec.problem, ctx.size()));
  return run_problem(ctx, problem, spec);
}

ExperimentResult run_local(const ExperimentSpec& spec, const ContextOptions& options) {
  check_spec(spec);
  if (spec.sizes.empty()) throw ConvexError("experiment: no network sizes");
  ExperimentResult all;
  for (int n : spec.sizes) {
    if (n < 1) throw ConvexError(fmt::format("experiment: network size {} must be >= 1", n));
    const Problem problem = Problem::generate(with_nodes(spec.problem, n));
    ExperimentResult part;
    std::mutex mutex;
    local::run(
        n,
        [&](Context& ctx) {
          ExperimentResult mine = run_problem(ctx, problem, spec);
          if (ctx.rank() == 0) {
            std::lock_guard<std::mutex> lock(mutex);
            part = std::move(mine);
          }
        },
        options);
    all.problems.insert(all.problems.end(), part.problems.begin(), part.problems.end());
    for (auto& r : part.runs) all.runs.push_back(std::move(r));
  }
  return all;
}

void write_csv(const std::string& path, const ExperimentResult& result) {
  std::ofstream f(path);
  if (!f) throw std::runtime_error(fmt::format("cannot write '{}'", path));
  f << "algorithm,topology,nodes,step_size,momentum,iteration,error,relative_error\n";
  for (const RunRecord& r : result.runs) {
    const double scale = r.optimum_norm2 > 0 ? r.optimum_norm2 : 1.0;
    for (std::size_t i = 0; i < r.error.size(); ++i)
      f << fmt::format("{},{},{},{},{},{},{:.17g},{:.17g}\n", r.algorithm, r.topology, r.nodes,
                       r.step_size, r.momentum, r.iterations[i], r.error[i], r.error[i] / scale);
  }
  if (!f) throw std::runtime_error(fmt::format("error writing '{}'", path));
}

void write_json(const std::string& path, const ExperimentSpec& spec,
                const ExperimentResult& result) {
  using nlohmann::ordered_json;
  // Infinite or NaN errors of diverged runs become null (JSON has no such numbers).
  auto number = [](double v) { return std::isfinite(v) ? ordered_json(v) : ordered_json(nullptr); };
  auto optional = [](const std::optional<int>& v) {
    return v ? ordered_json(*v) : ordered_json(nullptr);
  };
  ordered_json j;
  const ProblemOptions& p = spec.problem;
  j["problem"] = {{"kind", problem_name(p.kind)},
                  {"dim", p.dim},
                  {"samples_per_node", p.samples_per_node},
                  {"heterogeneity", p.heterogeneity},
                  {"observation_noise", p.observation_noise},
                  {"l2", p.kind == ProblemKind::kLogistic ? p.l2 : 0.0},
                  {"seed", p.seed}};
  const SolverOptions& s = spec.solver;
  j["solver"] = {{"momenta", spec.momenta},        {"iterations", s.iterations},
                 {"record_every", s.record_every}, {"batch_size", s.noise.batch_size},
                 {"sigma", s.noise.sigma},         {"noise_seed", s.noise.seed}};
  j["weights"] = topology::to_string(spec.topology_options.weights);
  j["target_relative_error"] = spec.target;
  j["problems"] = ordered_json::array();
  for (const ProblemSummary& ps : result.problems)
    j["problems"].push_back({{"nodes", ps.nodes},
                             {"smoothness", ps.smoothness},
                             {"strong_convexity", ps.strong_convexity},
                             {"heterogeneity_b2", ps.heterogeneity_b2},
                             {"optimum_norm2", ps.optimum_norm2}});
  j["runs"] = ordered_json::array();
  for (const RunRecord& r : result.runs) {
    ordered_json errors = ordered_json::array();
    for (double e : r.error) errors.push_back(number(e));
    j["runs"].push_back({{"algorithm", r.algorithm},
                         {"topology", r.topology},
                         {"nodes", r.nodes},
                         {"step_size", r.step_size},
                         {"momentum", r.momentum},
                         {"final_relative_error", number(r.final_relative_error)},
                         {"iterations_to_target", optional(r.iterations_to_target)},
                         {"iterations_to_plateau", optional(r.iterations_to_plateau)},
                         {"diverged", r.diverged},
                         {"rho", r.rho},
                         {"neighbors_per_round", r.neighbors_per_round},
                         {"messages_per_iteration", r.messages_per_iteration},
                         {"bytes_per_iteration", r.bytes_per_iteration},
                         {"seconds", r.seconds},
                         {"optimum_norm2", r.optimum_norm2},
                         {"iterations", r.iterations},
                         {"error", errors}});
  }
  std::ofstream f(path);
  if (!f) throw std::runtime_error(fmt::format("cannot write '{}'", path));
  f << j.dump(1) << "\n";
  if (!f) throw std::runtime_error(fmt::format("error writing '{}'", path));
}

std::string summary_table(const ExperimentResult& result, double target) {
  std::string s = fmt::format(
      "| algorithm | topology | n | step | beta | final rel. error | iters to {:.0e} | iters to "
      "plateau | rho | msgs/node/iter | bytes/node/iter |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|\n",
      target);
  for (const RunRecord& r : result.runs)
    s += fmt::format(
        "| {} | {} | {} | {:g} | {:g} | {}{:.3e} | {} | {} | {:.4f} | {:.2f} | {:.0f} |\n",
        r.algorithm, r.topology, r.nodes, r.step_size, r.momentum, r.diverged ? "diverged " : "",
        r.final_relative_error, format_optional(r.iterations_to_target),
        format_optional(r.iterations_to_plateau), r.rho, r.messages_per_iteration,
        r.bytes_per_iteration);
  return s;
}

}  // namespace decent::convex
