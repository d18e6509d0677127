// The solvers under mpirun (one process per rank, the MPI backend): the same recursions as the
// stacked reference and the same numbers as the local backend. main() makes every rank run every
// test; all ranks exit non-zero when any rank failed.
#include "decent/comm/context.h"
#include "decent/convex/experiment.h"
#include "reference.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

namespace decent::convex {
namespace {

ContextPtr g_ctx;

TEST(ConvexMpiTest, SolversFollowTheStackedRecursion) {
  Context& ctx = *g_ctx;
  ASSERT_EQ(ctx.backend(), "mpi");
  const Problem p = Problem::generate(test::least_squares(ctx.size()));
  for (const std::string topology : {"ring", "one-peer-exponential"}) {
    const auto schedule = topology::make_schedule(topology, ctx.size());
    ctx.set_topology(schedule);
    for (const AlgorithmInfo& info : algorithms()) {
      SolverOptions o;
      o.algorithm = info.algorithm;
      o.step_size = 0.08;
      o.momentum = 0.6;
      o.iterations = 30;
      const SolverResult r = solve(ctx, p, o);
      const auto expected =
          test::stacked_reference(p, *schedule, info.algorithm, o.step_size, o.momentum, 30);
      ASSERT_EQ(r.error.size(), expected.size());
      for (std::size_t k = 0; k < expected.size(); ++k)
        ASSERT_NEAR(r.error[k], expected[k], 1e-10 * expected[k] + 1e-22 * p.optimum_norm2())
            << info.name << " on " << topology << " at iteration " << k;
    }
  }
}

TEST(ConvexMpiTest, ExperimentMatchesTheLocalBackend) {
  ExperimentSpec spec;
  spec.algorithms = {Algorithm::kDecentLam, Algorithm::kGradientTracking};
  spec.topologies = {"exponential"};
  spec.sizes = {g_ctx->size()};
  spec.solver.iterations = 100;
  spec.momenta = {0.9};
  spec.step_sizes = {0.02};
  spec.solver.noise = GradientNoise{2, 0.1, 4};
  const ExperimentResult mpi = run_on(*g_ctx, spec);
  const ExperimentResult local = run_local(spec);
  ASSERT_EQ(mpi.runs.size(), local.runs.size());
  for (std::size_t r = 0; r < mpi.runs.size(); ++r) {
    ASSERT_EQ(mpi.runs[r].error.size(), local.runs[r].error.size());
    for (std::size_t k = 0; k < mpi.runs[r].error.size(); ++k)
      EXPECT_NEAR(mpi.runs[r].error[k], local.runs[r].error[k], 1e-12 * local.runs[r].error[k]);
    EXPECT_EQ(mpi.runs[r].messages_per_iteration, local.runs[r].messages_per_iteration);
  }
}

}  // namespace
}  // namespace decent::convex

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  decent::convex::g_ctx = decent::Context::init();
  const int rank = decent::convex::g_ctx->rank();
  testing::TestEventListeners& listeners = testing::UnitTest::GetInstance()->listeners();
  if (rank != 0) delete listeners.Release(listeners.default_result_printer());
  double failed = RUN_ALL_TESTS() != 0 ? 1.0 : 0.0;
  if (failed != 0) std::fprintf(stderr, "[rank %d] failed\n", rank);
  decent::convex::g_ctx->allreduce(decent::Buffer(&failed, 1), decent::ReduceOp::kMax);
  decent::convex::g_ctx.reset();
  return failed != 0 ? 1 : 0;
}
