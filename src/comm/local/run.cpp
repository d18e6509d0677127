// decent::local::run: n ranks as threads of this process, each with its own Context over the
// in-process transport.
#include "comm/local/local_transport.h"
#include "decent/comm/context.h"
#include "decent/comm/transport.h"

#include <fmt/format.h>

#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace decent::local {
namespace {

std::string message_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception";
  }
}

// Rethrows `error` as the same decent::Error subclass with "rank R: " in front of its message
// (unless it starts with it); anything else becomes a decent::Error.
[[noreturn]] void rethrow_for_rank(int rank, const std::exception_ptr& error) {
  std::string prefix = fmt::format("rank {}: ", rank);
  // Library errors usually name their rank already; say it once.
  if (message_of(error).rfind(prefix, 0) == 0) prefix.clear();
  try {
    std::rethrow_exception(error);
  } catch (const MismatchError& e) {
    throw MismatchError(prefix + e.what());
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(prefix + e.what());
  } catch (const TimeoutError& e) {
    throw TimeoutError(prefix + e.what());
  } catch (const CommError& e) {
    throw CommError(prefix + e.what());
  } catch (const Error& e) {
    throw Error(prefix + e.what());
  } catch (const std::exception& e) {
    throw Error(prefix + e.what());
  } catch (...) {
    throw Error(prefix + "unknown exception");
  }
}

}  // namespace

// When ranks throw, the error rethrown is the one raised first in time: a failing rank records
// its error before marking itself failed, so the errors its failure causes in peers ("rank R
// failed: ...") always come later and the root cause is what the caller sees.
void run(int n, const std::function<void(Context&)>& fn, const ContextOptions& options) {
  if (n < 1) throw InvalidArgument(fmt::format("local::run: need at least 1 rank, got {}", n));
  std::shared_ptr<comm::LocalWorld> world = comm::LocalWorld::create(n);
  std::vector<std::unique_ptr<comm::Transport>> transports;
  transports.reserve(n);
  for (int r = 0; r < n; ++r) transports.push_back(world->transport(r));

  std::mutex errors_mutex;
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::uint64_t> error_order(n, 0);
  std::uint64_t errors_seen = 0;

  auto rank_main = [&](int rank) {
    std::shared_ptr<Context> ctx;
    try {
      ctx = Context::create(std::move(transports[rank]), options);
      fn(*ctx);
    } catch (...) {
      const std::exception_ptr error = std::current_exception();
      {
        std::lock_guard<std::mutex> lock(errors_mutex);
        errors[rank] = error;
        error_order[rank] = errors_seen++;
      }
      // Release peers blocked on this rank before its context shuts down.
      world->fail(rank, message_of(error));
    }
    ctx.reset();
    // Peers still waiting on this rank would wait forever; let them fail now instead.
    world->leave(rank, "its function in local::run returned");
  };

  std::vector<std::thread> threads;
  threads.reserve(n);
  try {
    for (int r = 0; r < n; ++r) threads.emplace_back(rank_main, r);
  } catch (...) {
    world->shutdown("local::run could not start every rank thread");
    for (auto& thread : threads) thread.join();
    throw;
  }
  for (auto& thread : threads) thread.join();

  int first = -1;
  for (int r = 0; r < n; ++r) {
    if (errors[r] && (first < 0 || error_order[r] < error_order[first])) first = r;
  }
  if (first >= 0) rethrow_for_rank(first, errors[first]);
}

}  // namespace decent::local
