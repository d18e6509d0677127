// A small MPI program for the decentrun tests. Each rank prints one line describing what it
// sees; options make a rank exit with a code, fail through the transport, or sleep.
//   decentrun_test_program [--exit-code K] [--on-rank R] [--quit-on R] [--fail-on R]
//                          [--throw-on R] [--sleep SECONDS]
// --on-rank R: rank R exits with K at the end; --quit-on R: rank R returns K at once while the
// others wait for it.
#include "comm/mpi/mpi_transport.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "(unset)";
}

}  // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  int exit_rank = -1;
  int fail_rank = -1;
  int throw_rank = -1;
  int quit_rank = -1;
  int sleep_seconds = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string option = argv[i];
    const int value = std::atoi(argv[i + 1]);
    if (option == "--exit-code") {
      exit_code = value;
    } else if (option == "--on-rank") {
      exit_rank = value;
    } else if (option == "--fail-on") {
      fail_rank = value;
    } else if (option == "--throw-on") {
      throw_rank = value;
    } else if (option == "--quit-on") {
      quit_rank = value;
    } else if (option == "--sleep") {
      sleep_seconds = value;
    } else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 64;
    }
  }

  const bool launched = decent::comm::launched_under_mpi();
  auto world = decent::comm::make_mpi_world_transport();
  std::printf(
      "rank %d of %d pid %d launched=%d backend=%s omp=%s mkl=%s timeline=%s rpm=%s "
      "timeout=%s\n",
      world->rank(), world->size(), static_cast<int>(getpid()), launched ? 1 : 0,
      env("DECENT_BACKEND").c_str(), env("OMP_NUM_THREADS").c_str(), env("MKL_NUM_THREADS").c_str(),
      env("DECENT_TIMELINE").c_str(), env("DECENT_RANKS_PER_MACHINE").c_str(),
      env("DECENT_TIMEOUT_MS").c_str());
  std::fflush(stdout);

  const int failing_rank = std::max({fail_rank, throw_rank, quit_rank});
  if (failing_rank >= 0) {
    if (world->rank() == fail_rank) world->fail("deliberate failure for the launcher test");
    if (world->rank() == throw_rank) throw std::runtime_error("deliberate uncaught exception");
    if (world->rank() == quit_rank) return exit_code;
    // The others wait for a message that never comes; the job must end anyway.
    char byte = 0;
    auto never = world->irecv(&byte, 1, failing_rank, 1);
    never->wait_until(decent::Clock::now() + std::chrono::seconds(120));
    std::fprintf(stderr, "rank %d: still running 120 s after rank %d failed\n", world->rank(),
                 failing_rank);
    return 3;
  }
  if (sleep_seconds > 0) std::this_thread::sleep_for(std::chrono::seconds(sleep_seconds));
  world->ibarrier()->wait_until(decent::Clock::time_point::max());
  const int rank = world->rank();
  world.reset();
  return rank == exit_rank ? exit_code : 0;
}
