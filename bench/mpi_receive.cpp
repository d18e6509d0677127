// decent-bench-mpi-receive: what a receive posted before its message arrives would save over
// the MPI_Improbe + MPI_Imrecv matching that Transport::exchange uses, and why exchange does not
// post it. Raw MPI only, two ranks:
//
//   mpiexec -n 2 decent-bench-mpi-receive [--sizes 4096,4224] [--reps 5000]
//
// For each size both ranks send one message to each other and receive the other's, four ways
// (messages of 4033-8066 bytes in two pieces, the first 4033 bytes, as exchange sends them):
//   posted     MPI_Irecv of each piece before the sends, then MPI_Testall
//   improbe    MPI_Improbe each piece as it arrives and MPI_Imrecv it at once
//   exchange   MPI_Improbe both pieces, then MPI_Imrecv both (what exchange does)
//   sendrecv   one MPI_Sendrecv of the whole message
// Each call is timed after an MPI_Barrier; the time is the maximum over the ranks; the median
// and the 10th percentile are printed.
//
// Then it checks what a posted receive does with a message longer than the receive: rank 0
// sends 5000 bytes into a 4033-byte MPI_Irecv on rank 1 whose buffer is followed by a guard
// region, and prints the error code and whether the guard region changed. With Open MPI 4.1.4
// (ob1, shared memory) the receive reports MPI_ERR_TRUNCATE and the guard region has been
// written: the bytes beyond the receive land past the buffer. That is why exchange matches a
// message with MPI_Improbe before receiving it.
#include <mpi.h>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace {

constexpr int kPieceBytes = 4033;  // as in MpiTransport::exchange
constexpr int kTag = 3;

using BenchClock = std::chrono::steady_clock;

void check(int code, const char* what) {
  if (code != MPI_SUCCESS) {
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(code, text, &length);
    throw std::runtime_error(fmt::format("{} failed: {}", what, text));
  }
}

struct Pieces {
  int count = 1;
  int bytes[2] = {0, 0};
};
Pieces pieces_of(int bytes) {
  if (bytes >= kPieceBytes && bytes <= 2 * kPieceBytes)
    return {2, {kPieceBytes, bytes - kPieceBytes}};
  return {1, {bytes, 0}};
}

void wait_both(MPI_Request* received, MPI_Request* sent) {
  int receives_done = 0, sends_done = 0;
  while (!(receives_done && sends_done)) {
    if (!receives_done)
      check(MPI_Testall(2, received, &receives_done, MPI_STATUSES_IGNORE), "MPI_Testall");
    if (!sends_done) check(MPI_Testall(2, sent, &sends_done, MPI_STATUSES_IGNORE), "MPI_Testall");
  }
}

void start_sends(const char* data, const Pieces& p, int peer, MPI_Comm comm, MPI_Request* sent) {
  int offset = 0;
  for (int k = 0; k < p.count; ++k) {
    check(MPI_Isend(data + offset, p.bytes[k], MPI_BYTE, peer, kTag, comm, &sent[k]), "MPI_Isend");
    offset += p.bytes[k];
  }
}

// One exchange of `bytes` with `peer` in the given way.
void exchange(const std::string& way, std::vector<char>& out, std::vector<char>& in, int peer,
              MPI_Comm comm) {
  const int bytes = static_cast<int>(out.size());
  const Pieces p = pieces_of(bytes);
  MPI_Request sent[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  MPI_Request received[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  if (way == "sendrecv") {
    check(MPI_Sendrecv(out.data(), bytes, MPI_BYTE, peer, kTag, in.data(), bytes, MPI_BYTE, peer,
                       kTag, comm, MPI_STATUS_IGNORE),
          "MPI_Sendrecv");
    return;
  }
  if (way == "posted") {
    int offset = 0;
    for (int k = 0; k < p.count; ++k) {
      check(MPI_Irecv(in.data() + offset, p.bytes[k], MPI_BYTE, peer, kTag, comm, &received[k]),
            "MPI_Irecv");
      offset += p.bytes[k];
    }
    start_sends(out.data(), p, peer, comm, sent);
    wait_both(received, sent);
    return;
  }
  start_sends(out.data(), p, peer, comm, sent);
  const bool receive_at_once = way == "improbe";
  MPI_Message messages[2] = {MPI_MESSAGE_NULL, MPI_MESSAGE_NULL};
  int sizes[2] = {0, 0};
  int probed = 0, offset = 0;
  while (probed < p.count) {
    int arrived = 0, sends_done = 0;
    MPI_Status status;
    check(MPI_Improbe(peer, kTag, comm, &arrived, &messages[probed], &status), "MPI_Improbe");
    if (!arrived) {
      check(MPI_Testall(2, sent, &sends_done, MPI_STATUSES_IGNORE), "MPI_Testall");
      continue;
    }
    check(MPI_Get_count(&status, MPI_BYTE, &sizes[probed]), "MPI_Get_count");
    if (receive_at_once) {
      check(MPI_Imrecv(in.data() + offset, sizes[probed], MPI_BYTE, &messages[probed],
                       &received[probed]),
            "MPI_Imrecv");
      offset += sizes[probed];
    }
    ++probed;
  }
  if (!receive_at_once)
    for (int k = 0; k < p.count; ++k) {
      check(MPI_Imrecv(in.data() + offset, sizes[k], MPI_BYTE, &messages[k], &received[k]),
            "MPI_Imrecv");
      offset += sizes[k];
    }
  wait_both(received, sent);
}

// Rank 0 sends `sent_bytes` into a `capacity`-byte receive on rank 1, followed by a guard
// region; rank 1 prints what happened.
void truncation_check(int rank, MPI_Comm comm, int sent_bytes, int capacity) {
  constexpr char kGuard = 0x5a;
  if (rank == 0) {
    std::vector<char> data(sent_bytes, 1);
    check(MPI_Send(data.data(), sent_bytes, MPI_BYTE, 1, kTag, comm), "MPI_Send");
  } else if (rank == 1) {
    // The guard region is larger than the message, so whatever lands past the receive stays
    // inside this allocation.
    std::vector<char> buffer(capacity + sent_bytes, kGuard);
    MPI_Request request = MPI_REQUEST_NULL;
    check(MPI_Irecv(buffer.data(), capacity, MPI_BYTE, 0, kTag, comm, &request), "MPI_Irecv");
    int done = 0, code = MPI_SUCCESS;
    MPI_Status status;
    while (!done) code = MPI_Test(&request, &done, &status);
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(code, text, &length);
    const auto changed =
        std::count_if(buffer.begin() + capacity, buffer.end(), [](char c) { return c != kGuard; });
    std::printf("%d bytes into a %d-byte MPI_Irecv: %s; %ld bytes past the receive buffer %s\n",
                sent_bytes, capacity, text, static_cast<long>(changed),
                changed ? "were overwritten" : "(none overwritten)");
  }
  check(MPI_Barrier(comm), "MPI_Barrier");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Posted receives against MPI_Improbe matching, and MPI truncation (2 ranks)"};
  std::vector<int> sizes{2048, 4096, 4224, 32896};
  int reps = 5000;
  app.add_option("--sizes", sizes, "Message sizes in bytes")->delimiter(',');
  app.add_option("--reps", reps, "Timed exchanges per size and way")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size != 2) {
    if (rank == 0) std::fprintf(stderr, "decent-bench-mpi-receive needs exactly 2 ranks\n");
    MPI_Finalize();
    return 2;
  }
  MPI_Comm comm = MPI_COMM_NULL, control = MPI_COMM_NULL;
  MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  MPI_Comm_dup(MPI_COMM_WORLD, &control);
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  const int peer = 1 - rank;
  const std::vector<std::string> ways{"posted", "improbe", "exchange", "sendrecv"};
  try {
    if (rank == 0) std::printf("%10s  %-10s %12s %12s\n", "bytes", "way", "median us", "p10 us");
    for (int bytes : sizes) {
      std::vector<char> out(bytes, static_cast<char>(rank)), in(bytes);
      std::vector<std::vector<double>> samples(ways.size());
      for (int r = 0; r < reps + 10; ++r)
        for (std::size_t w = 0; w < ways.size(); ++w) {
          check(MPI_Barrier(control), "MPI_Barrier");
          const auto t0 = BenchClock::now();
          exchange(ways[w], out, in, peer, comm);
          double us = std::chrono::duration<double, std::micro>(BenchClock::now() - t0).count();
          check(MPI_Allreduce(MPI_IN_PLACE, &us, 1, MPI_DOUBLE, MPI_MAX, control), "MPI_Allreduce");
          if (r >= 10) samples[w].push_back(us);
        }
      for (std::size_t w = 0; w < ways.size() && rank == 0; ++w) {
        auto& s = samples[w];
        std::sort(s.begin(), s.end());
        std::printf("%10d  %-10s %12.2f %12.2f\n", bytes, ways[w].c_str(), s[s.size() / 2],
                    s[s.size() / 10]);
      }
    }
    truncation_check(rank, comm, 5000, kPieceBytes);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Comm_free(&comm);
  MPI_Comm_free(&control);
  MPI_Finalize();
  return 0;
}
