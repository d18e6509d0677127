// decent-bench-convex: decentralized solvers on convex problems with a known optimum.
//
//   decent-bench-convex -a dsgd,dmsgd,decentlam,exact-diffusion -t ring,exponential
//                       --local 8 --lr 0.1 --momentum 0.5 --out results/ls
//   mpirun -np 8 decent-bench-convex --algorithms gradient-tracking --topologies
//   one-peer-exponential decent-bench-convex --list
//
// Every run reports (1/n) sum_i ||x_i - x*||^2 per iteration, absolute and relative to ||x*||^2,
// in <out>.csv and <out>.json, a log-scale plot <out>.png (scripts/plot_convex.py, needs
// python3-matplotlib) and a summary table on stdout. Without a launcher the ranks run as threads
// (--local N, default 8); under mpirun every process is one rank.
//
// Exit codes: 0 success, 1 runtime failure (communication, files, plotting), 2 usage errors.
#include "decent/comm/context.h"
#include "decent/convex/experiment.h"
#include "decent/topology/registry.h"

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <spawn.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

extern char** environ;

namespace cvx = decent::convex;
namespace topo = decent::topology;

namespace {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Args {
  std::string problem = "least-squares";
  std::vector<std::string> algorithms;
  std::vector<std::string> topologies = {"ring"};
  std::vector<int> local;
  std::vector<double> step_sizes = {0.1};
  std::vector<double> momenta = {0.0};
  std::string weights = "uniform";
  std::uint64_t topology_seed = 0;
  std::string out = "convex";
  std::string python = DECENT_PYTHON3;
  std::string plot_script = DECENT_PLOT_CONVEX_SCRIPT;
  std::string title;
  bool no_plot = false;
  bool quiet = false;
  bool list = false;
};

void list_everything() {
  std::cout << "algorithms:\n";
  for (const auto& info : cvx::algorithms())
    std::cout << fmt::format("  {:<18} {}\n", info.name, info.description);
  std::cout << "topologies:\n";
  for (const auto& t : topo::list_topologies())
    std::cout << fmt::format("  {:<24} {}{}\n", t.name, t.dynamic ? "(dynamic) " : "",
                             t.description);
}

// Runs `python3 plot_convex.py <csv> -o <png> --quiet`; returns its exit status.
int plot(const Args& args, const std::string& csv, const std::string& png) {
  std::vector<std::string> argv_strings = {args.python, args.plot_script, csv, "-o",
                                           png,         "--quiet"};
  if (!args.title.empty()) {
    argv_strings.push_back("--title");
    argv_strings.push_back(args.title);
  }
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return 127;
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return 127;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

void write_outputs(const Args& args, const cvx::ExperimentSpec& spec,
                   const cvx::ExperimentResult& result) {
  const std::filesystem::path prefix(args.out);
  if (prefix.has_parent_path()) std::filesystem::create_directories(prefix.parent_path());
  const std::string csv = args.out + ".csv", json = args.out + ".json", png = args.out + ".png";
  cvx::write_csv(csv, result);
  cvx::write_json(json, spec, result);
  if (!args.quiet) {
    for (const auto& p : result.problems)
      std::cout << fmt::format(
          "{} n={}: L = {:.4g}, mu = {:.4g}, b^2 = (1/n) sum ||grad f_i(x*)||^2 = {:.4g}, "
          "||x*||^2 = {:.4g}\n",
          cvx::problem_name(spec.problem.kind), p.nodes, p.smoothness, p.strong_convexity,
          p.heterogeneity_b2, p.optimum_norm2);
    std::cout << "\n" << cvx::summary_table(result, spec.target) << "\n";
  }
  std::string written = fmt::format("wrote {} and {}", csv, json);
  if (!args.no_plot) {
    const int status = plot(args, csv, png);
    if (status != 0)
      throw std::runtime_error(fmt::format(
          "plotting failed ({} {} exited with {}); is python3-matplotlib installed? The CSV and "
          "JSON are written; pass --no-plot to skip the plot",
          args.python, args.plot_script, status));
    written += fmt::format(" and {}", png);
  }
  std::cout << written << std::endl;
}

cvx::ExperimentSpec make_spec(const Args& args, cvx::ExperimentSpec spec) {
  try {
    spec.problem.kind = cvx::parse_problem(args.problem);
    spec.algorithms.clear();
    if (args.algorithms.empty())
      for (const auto& info : cvx::algorithms()) spec.algorithms.push_back(info.algorithm);
    for (const auto& name : args.algorithms) spec.algorithms.push_back(cvx::parse_algorithm(name));
    spec.topology_options.weights = topo::parse_weight_rule(args.weights);
  } catch (const std::exception& e) {
    throw UsageError(e.what());
  }
  spec.topology_options.seed = args.topology_seed;
  spec.topologies = args.topologies;
  spec.step_sizes = args.step_sizes;
  spec.momenta = args.momenta;
  // Reject bad topology names and sizes before any rank starts.
  const std::vector<int> sizes = args.local.empty() ? std::vector<int>{2} : args.local;
  for (const auto& name : spec.topologies) {
    for (int n : sizes) {
      try {
        topo::make_schedule(name, n, spec.topology_options);
      } catch (const std::exception& e) {
        throw UsageError(e.what());
      }
    }
  }
  return spec;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Decentralized solvers (D-SGD, DmSGD, DecentLaM, EXTRA, Exact-Diffusion, D^2, gradient "
      "tracking, DGD, centralized GD) on convex problems with a known optimum"};
  Args args;
  cvx::ExperimentSpec spec;
  spec.solver.iterations = 1000;
  app.add_flag("--list", args.list, "List the algorithms and topologies and exit");
  app.add_option("--problem", args.problem, "least-squares or logistic")->capture_default_str();
  app.add_option("-a,--algorithms", args.algorithms,
                 "Comma-separated algorithms (default: all; see --list)")
      ->delimiter(',');
  app.add_option("-t,--topologies", args.topologies, "Comma-separated topologies (see --list)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--local", args.local,
                 "Run N ranks as threads of this process; a comma-separated list runs each size "
                 "(default 8; not with mpirun)")
      ->delimiter(',')
      ->check(CLI::Range(1, 1024));
  app.add_option("--lr,--step-size", args.step_sizes, "Comma-separated step sizes gamma")
      ->delimiter(',')
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--momentum", args.momenta,
                 "Comma-separated beta of centralized (heavy ball), DmSGD and DecentLaM")
      ->delimiter(',')
      ->check(CLI::Range(0.0, 0.999999))
      ->capture_default_str();
  app.add_option("--iterations", spec.solver.iterations, "Iterations per run")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--record-every", spec.solver.record_every,
                 "Record the error every this many iterations")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--dim", spec.problem.dim, "Dimension d")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--samples", spec.problem.samples_per_node, "Rows of data per node")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--heterogeneity", spec.problem.heterogeneity,
                 "h: local optima x*_i = x_base + h u_i, u_i ~ N(0, I)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--observation-noise", spec.problem.observation_noise,
                 "Least squares: std of the noise on b_i")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--l2", spec.problem.l2, "Logistic regression: L2 coefficient lambda")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--seed", spec.problem.seed, "Seed of the problem data")->capture_default_str();
  app.add_option("--batch-size", spec.solver.noise.batch_size,
                 "Mini-batch rows per gradient, with replacement (0: full local gradient)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--sigma", spec.solver.noise.sigma,
                 "Std of Gaussian noise added to every gradient coordinate")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--noise-seed", spec.solver.noise.seed, "Seed of the gradient sampling")
      ->capture_default_str();
  app.add_option("--weights", args.weights, "Weight rule of static graphs: uniform, metropolis")
      ->capture_default_str();
  app.add_option("--topology-seed", args.topology_seed, "Seed of random topologies")
      ->capture_default_str();
  app.add_option("--target", spec.target, "Relative error whose first crossing is reported")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("-o,--out", args.out, "Output prefix: <out>.csv, <out>.json, <out>.png")
      ->capture_default_str();
  app.add_option("--title", args.title, "Plot title");
  app.add_flag("--no-plot", args.no_plot, "Do not run the plot script");
  app.add_option("--python", args.python, "Python interpreter with matplotlib")
      ->capture_default_str();
  app.add_option("--plot-script", args.plot_script, "Path of plot_convex.py")
      ->capture_default_str();
  app.add_flag("-q,--quiet", args.quiet, "Print only the output file names");
  CLI11_PARSE(app, argc, argv);

  if (args.list) {
    list_everything();
    return 0;
  }
  try {
    spec = make_spec(args, spec);
    // mpirun sets these variables; DECENT_BACKEND (mpi or local) overrides the detection.
    const char* backend = std::getenv("DECENT_BACKEND");
    const bool under_mpi = backend != nullptr
                               ? std::string(backend) == "mpi"
                               : (std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK") ||
                                  std::getenv("PMI_RANK"));
    if (under_mpi) {
      if (!args.local.empty())
        throw UsageError("--local runs ranks as threads; do not combine it with mpirun");
      auto ctx = decent::Context::init();
      spec.sizes = {ctx->size()};
      const cvx::ExperimentResult result = cvx::run_on(*ctx, spec);
      if (ctx->rank() == 0) write_outputs(args, spec, result);
      ctx->barrier();
    } else {
      spec.sizes = args.local.empty() ? std::vector<int>{8} : args.local;
      write_outputs(args, spec, cvx::run_local(spec));
    }
  } catch (const UsageError& e) {
    std::cerr << "decent-bench-convex: " << e.what() << std::endl;
    return 2;
  } catch (const cvx::ConvexError& e) {
    std::cerr << "decent-bench-convex: " << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "decent-bench-convex: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
