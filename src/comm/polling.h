// How a thread waiting for a request polls it: test, yield for a short window, then sleep with
// growing pauses. The window keeps multi-round collectives (whose progress happens only inside
// our test calls) fast when the peer answers within microseconds; the sleeps leave the cores to
// the ranks that must make progress when several ranks share a core.
#pragma once

#include "decent/comm/types.h"

#include <chrono>

namespace decent::comm {

struct PollPolicy {
  // Test-only window at the start of a wait, without yielding.
  std::chrono::microseconds busy{0};
  // Yield-and-test window before the first sleep.
  std::chrono::microseconds spin{0};
  // First sleep after the window; each further sleep doubles up to max_sleep.
  std::chrono::microseconds first_sleep{20};
  std::chrono::microseconds max_sleep{1000};
  // What the defaults were chosen from.
  int ranks_on_host = 1;
  int hardware_threads = 1;
  bool oversubscribed() const { return ranks_on_host > hardware_threads; }
};

// The policy of this process, computed once: ranks on this host (Open MPI's
// OMPI_COMM_WORLD_LOCAL_SIZE, MPICH's MPI_LOCALNRANKS, else 1) against the hardware threads this
// process may run on. DECENT_POLL_SPIN_US and DECENT_POLL_MAX_SLEEP_US override the window and
// the cap. Throws InvalidArgument for a malformed variable.
const PollPolicy& poll_policy();

// The pauses of one wait, following a policy.
class Backoff {
 public:
  explicit Backoff(const PollPolicy& policy = poll_policy());
  // Pauses before the next test: sched_yield() during the spin window, then a sleep (never past
  // `deadline`).
  void pause(Clock::time_point deadline);

 private:
  const PollPolicy& policy_;
  Clock::time_point start_;
  std::chrono::microseconds sleep_;
};

}  // namespace decent::comm
