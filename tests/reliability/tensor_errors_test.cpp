// Tensors the LibTorch adapter must refuse with a message naming the rank and the problem:
// non-contiguous, unsupported dtype, a device other than the CPU, and tensors whose sizes or
// dtypes differ across ranks. Runs on the in-process backend.
#include "decent/comm/context.h"
#include "decent/topology/generators.h"
#include "decent/torch/tensor_ops.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <string>

namespace decent {
namespace {

ContextOptions short_timeout() {
  ContextOptions options;
  options.timeout = std::chrono::milliseconds(3000);
  return options;
}

template <typename ErrorType, typename Fn>
void expect_error(Fn&& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one containing: " << needle;
  } catch (const ErrorType& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(TensorErrors, LocalMisuseIsRefusedOnTheCallingRank) {
  local::run(
      2,
      [](Context& ctx) {
        const std::string rank = "rank " + std::to_string(ctx.rank()) + ": ";
        torch::Tensor strided = torch::zeros({3, 4}).t();
        expect_error<InvalidArgument>([&] { neighbor_allreduce_(ctx, strided); },
                                      rank +
                                          "neighbor_allreduce: tensor is not contiguous (call "
                                          ".contiguous() first)");
        torch::Tensor flags = torch::zeros({4}, torch::kBool);
        expect_error<InvalidArgument>([&] { allreduce_(ctx, flags); },
                                      rank + "allreduce: unsupported tensor dtype Bool");
        torch::Tensor complex = torch::zeros({4}, torch::kComplexFloat);
        expect_error<InvalidArgument>([&] { broadcast_(ctx, complex, 0); },
                                      rank + "broadcast: unsupported tensor dtype ComplexFloat");
        // No accelerator on this machine: the meta device stands for any non-CPU device.
        torch::Tensor elsewhere = torch::empty({4}, torch::TensorOptions().device(torch::kMeta));
        expect_error<InvalidArgument>(
            [&] { neighbor_allreduce_(ctx, elsewhere); },
            rank + "neighbor_allreduce: tensor is on meta, only CPU tensors are supported");
        torch::Tensor undefined;
        expect_error<InvalidArgument>([&] { allreduce_(ctx, undefined); },
                                      rank + "allreduce: undefined tensor");
        // Refused locally, before anything was sent: the context still works.
        torch::Tensor x = torch::full({4}, static_cast<float>(ctx.rank()));
        allreduce_(ctx, x, ReduceOp::kSum);
        EXPECT_EQ(x[0].item<float>(), 1.0f);
      },
      short_timeout());
}

TEST(TensorErrors, SizeMismatchAcrossRanksIsDetected) {
  local::run(
      2,
      [](Context& ctx) {
        ctx.set_topology(topology::ring(2));
        torch::Tensor x = torch::ones({ctx.rank() == 0 ? 4 : 5});
        expect_error<MismatchError>([&] { neighbor_allreduce_(ctx, x); }, "element count mismatch");
      },
      short_timeout());
}

TEST(TensorErrors, DtypeMismatchAcrossRanksIsDetected) {
  local::run(
      2,
      [](Context& ctx) {
        ctx.set_topology(topology::ring(2));
        // The same number of bytes, so only the dtype check can tell.
        torch::Tensor x =
            ctx.rank() == 0 ? torch::ones({4}, torch::kFloat64) : torch::ones({8}, torch::kFloat32);
        expect_error<MismatchError>([&] { neighbor_allreduce_(ctx, x); }, "dtype mismatch");
      },
      short_timeout());
}

TEST(TensorErrors, AllreduceSizeMismatchFailsOnEveryRank) {
  local::run(
      3,
      [](Context& ctx) {
        torch::Tensor x = torch::ones({ctx.rank() == 2 ? 3 : 4});
        expect_error<MismatchError>([&] { allreduce_(ctx, x); }, "ranks disagree");
      },
      short_timeout());
}

}  // namespace
}  // namespace decent
