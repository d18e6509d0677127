// decentrun: the mpirun command it builds (--dry-run), its option errors, and real launches of a
// small MPI program (ranks, environment, exit codes, a failing rank, signal forwarding).
#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

const std::string kDecentrun = DECENTRUN_PATH;
const std::string kProgram = TEST_PROGRAM_PATH;

using Clock = std::chrono::steady_clock;
// Variable name -> new value, or nullopt to remove it from the child's environment.
using EnvChanges = std::map<std::string, std::optional<std::string>>;

// Variables that would change the command decentrun builds; every test starts without them.
EnvChanges clean_env(EnvChanges changes = {}) {
  for (const char* name : {"OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMPI_MCA_mpi_yield_when_idle",
                           "DECENT_TIMELINE", "DECENT_TIMEOUT_MS", "DECENT_RANKS_PER_MACHINE",
                           "DECENT_FUSION_THRESHOLD", "DECENT_BACKEND"}) {
    changes.emplace(name, std::nullopt);  // keeps an explicit setting from the caller
  }
  return changes;
}

// A child process with its stdout and stderr captured.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const EnvChanges& changes) {
    std::map<std::string, std::string> env;
    for (char** entry = environ; *entry != nullptr; ++entry) {
      const std::string text = *entry;
      const auto equals = text.find('=');
      if (equals != std::string::npos) env[text.substr(0, equals)] = text.substr(equals + 1);
    }
    for (const auto& [name, value] : changes) {
      if (value) {
        env[name] = *value;
      } else {
        env.erase(name);
      }
    }
    std::vector<std::string> env_strings;
    for (const auto& [name, value] : env) env_strings.push_back(name + "=" + value);
    std::vector<char*> c_env, c_argv;
    for (auto& s : env_strings) c_env.push_back(s.data());
    c_env.push_back(nullptr);
    std::vector<std::string> args = argv;
    for (auto& s : args) c_argv.push_back(s.data());
    c_argv.push_back(nullptr);

    int out[2], err[2];
    if (pipe(out) != 0 || pipe(err) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      dup2(err[1], 2);
      close(out[0]);
      close(err[0]);
      close(out[1]);
      close(err[1]);
      execve(c_argv[0], c_argv.data(), c_env.data());
      _exit(126);
    }
    close(out[1]);
    close(err[1]);
    out_fd_ = out[0];
    err_fd_ = err[0];
  }
  ~Process() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) close(out_fd_);
    if (err_fd_ >= 0) close(err_fd_);
  }

  pid_t pid() const { return pid_; }
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

  // Reads output until `done()` holds or both streams close; false on reaching the deadline.
  bool read_until(const std::function<bool()>& done, Clock::time_point deadline) {
    while (!done()) {
      if (out_fd_ < 0 && err_fd_ < 0) return true;
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
      if (poll(fds, 2, static_cast<int>(std::min<long long>(left, 1000))) < 0 && errno != EINTR) {
        return false;
      }
      drain(fds[0], out_fd_, out_);
      drain(fds[1], err_fd_, err_);
    }
    return true;
  }

  // Waits for the process to exit; returns its exit code (128 + signal), or -1 on timeout.
  int finish(Clock::time_point deadline) {
    if (!read_until([] { return false; }, deadline)) return -1;
    int status = 0;
    while (true) {
      const pid_t done = waitpid(pid_, &status, WNOHANG);
      if (done == pid_) break;
      if (Clock::now() >= deadline) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    exited_ = true;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
  }

 private:
  static void drain(const pollfd& fd, int& own_fd, std::string& sink) {
    if (own_fd < 0 || (fd.revents & (POLLIN | POLLHUP | POLLERR)) == 0) return;
    char buffer[4096];
    const ssize_t n = read(own_fd, buffer, sizeof(buffer));
    if (n > 0) {
      sink.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      close(own_fd);
      own_fd = -1;
    }
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  bool exited_ = false;
  std::string out_, err_;
};

struct Result {
  int exit_code = -1;
  std::string out, err;
  double seconds = 0;
};

Result run(const std::vector<std::string>& argv, const EnvChanges& changes = clean_env(),
           std::chrono::seconds limit = std::chrono::seconds(120)) {
  const auto start = Clock::now();
  Process process(argv, changes);
  Result result;
  result.exit_code = process.finish(start + limit);
  result.out = process.out();
  result.err = process.err();
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

// The dry-run command line with a space on both ends, so " word " matches whole words.
std::string dry_run(std::vector<std::string> args, const EnvChanges& changes = clean_env()) {
  args.insert(args.begin(), {kDecentrun, "--dry-run"});
  const Result result = run(args, changes);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out.rfind("mpirun ", 0), 0u) << result.out;
  std::string line = result.out;
  if (!line.empty() && line.back() == '\n') line.pop_back();
  EXPECT_EQ(line.find('\n'), std::string::npos) << "one line expected: " << result.out;
  return " " + line + " ";
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

int cores() {
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

TEST(Decentrun, DryRunPrintsTheMpirunCommand) {
  const std::string line = dry_run({"-np", "1", "./train", "a b", "--epochs", "3"});
  EXPECT_EQ(has(line, " --allow-run-as-root "), geteuid() == 0) << line;
  EXPECT_TRUE(has(line, " -np 1 ")) << line;
  EXPECT_TRUE(has(line, " --bind-to none ")) << line;
  EXPECT_TRUE(has(line, " -x DECENT_BACKEND=mpi ")) << line;
  EXPECT_TRUE(has(line, " -x OMP_NUM_THREADS=1 ")) << line;
  EXPECT_TRUE(has(line, " -x MKL_NUM_THREADS=1 ")) << line;
  EXPECT_FALSE(has(line, "--oversubscribe")) << line;
  EXPECT_FALSE(has(line, "yield_when_idle")) << line;
  // The program and its arguments come last, quoted for the shell where needed.
  EXPECT_TRUE(has(line, " ./train 'a b' --epochs 3 ")) << line;
  EXPECT_EQ(line.substr(line.size() - 12), " --epochs 3 ") << line;
}

TEST(Decentrun, OversubscribesWhenRanksExceedTheCores) {
  const std::string fits = dry_run({"-np", std::to_string(cores()), "prog"});
  EXPECT_FALSE(has(fits, " --oversubscribe ")) << fits;
  const std::string more = dry_run({"-np", std::to_string(cores() + 1), "prog"});
  EXPECT_TRUE(has(more, " --oversubscribe ")) << more;
  EXPECT_TRUE(has(more, " -x OMPI_MCA_mpi_yield_when_idle=1 ")) << more;
  // A yield setting of the user's own is left to mpirun, which reads it from the environment.
  const std::string own =
      dry_run({"-np", "16", "prog"}, clean_env({{"OMPI_MCA_mpi_yield_when_idle", "0"}}));
  EXPECT_TRUE(has(own, " --oversubscribe ")) << own;
  EXPECT_FALSE(has(own, "yield_when_idle=1")) << own;
}

TEST(Decentrun, HostListSlotsDecideOversubscription) {
  const std::string fits = dry_run({"-np", "5", "-H", "node1:2,node2:3", "prog"});
  EXPECT_TRUE(has(fits, " -H node1:2,node2:3 ")) << fits;
  EXPECT_FALSE(has(fits, "--oversubscribe")) << fits;
  const std::string more = dry_run({"-np", "6", "--host", "node1:2,node2:3", "prog"});
  EXPECT_TRUE(has(more, " --oversubscribe ")) << more;
  // A host without a count has one slot, as in mpirun.
  const std::string plain = dry_run({"-np", "3", "-H", "a,b", "prog"});
  EXPECT_TRUE(has(plain, " --oversubscribe ")) << plain;
}

TEST(Decentrun, HostfileSlotsDecideOversubscription) {
  const std::string path = testing::TempDir() + "decentrun_hostfile";
  {
    std::ofstream file(path);
    file << "# two machines\nnode1 slots=2\n\nnode2 slots=3 max_slots=8  # comment\n";
  }
  const std::string fits = dry_run({"-np", "5", "--hostfile", path, "prog"});
  EXPECT_TRUE(has(fits, " --hostfile " + path + " ")) << fits;
  EXPECT_FALSE(has(fits, "--oversubscribe")) << fits;
  const std::string more = dry_run({"-np", "6", "--hostfile", path, "prog"});
  EXPECT_TRUE(has(more, " --oversubscribe ")) << more;
  std::remove(path.c_str());
}

// A cluster state directory as decent-cluster writes it (tools/decent-cluster.sh), made by hand so
// that the command decentrun builds from it can be checked without root.
std::string make_cluster_dir(const std::string& name, int hosts, int ranks_per_host) {
  const std::string root = testing::TempDir() + "decentrun_clusters";
  mkdir(root.c_str(), 0755);
  const std::string dir = root + "/" + name;
  mkdir(dir.c_str(), 0755);
  std::ofstream hostfile(dir + "/hostfile");
  for (int h = 1; h <= hosts; ++h) {
    hostfile << "10.77.9." << 10 + h << " slots=" << ranks_per_host << "\n";
  }
  std::ofstream(dir + "/mpirun.args") << "-mca\nplm_rsh_agent\n"
                                      << dir
                                      << "/agent\n-mca\nbtl\ntcp,self\n-mca\n"
                                         "btl_tcp_if_include\n10.77.9.0/24\n";
  std::ofstream(dir + "/ranks_per_host") << ranks_per_host << "\n";
  return root;
}

TEST(Decentrun, ClusterAddsItsHostfileAgentAndMachineSize) {
  const std::string root = make_cluster_dir("c1", 4, 2);
  const EnvChanges env = clean_env({{"DECENT_CLUSTER_DIR", root}});
  const std::string line = dry_run({"--cluster", "c1", "-np", "8", "prog"}, env);
  EXPECT_TRUE(has(line, " --hostfile " + root + "/c1/hostfile ")) << line;
  EXPECT_TRUE(has(line, " -mca plm_rsh_agent " + root + "/c1/agent -mca btl tcp,self ")) << line;
  EXPECT_TRUE(has(line, " -mca btl_tcp_if_include 10.77.9.0/24 ")) << line;
  // Hosts of 2 ranks form the machines of hierarchical operations.
  EXPECT_TRUE(has(line, " -x DECENT_RANKS_PER_MACHINE=2 ")) << line;
  EXPECT_FALSE(has(line, "--oversubscribe")) << line;  // 8 ranks, 8 slots
  // The emulated hosts share this machine's cores: ranks yield them while waiting.
  EXPECT_EQ(has(line, " -x OMPI_MCA_mpi_yield_when_idle=1 "), 8 > cores()) << line;
  // More ranks than slots, an explicit machine size, and a path instead of a name.
  const std::string more = dry_run(
      {"--cluster", root + "/c1", "-np", "9", "--ranks-per-machine", "3", "prog"}, clean_env());
  EXPECT_TRUE(has(more, " --oversubscribe ")) << more;
  EXPECT_TRUE(has(more, " -x DECENT_RANKS_PER_MACHINE=3 ")) << more;
  EXPECT_FALSE(has(more, "DECENT_RANKS_PER_MACHINE=2")) << more;
}

TEST(Decentrun, ClusterThatIsNotUpIsAUsageError) {
  const std::string root = make_cluster_dir("c2", 2, 1);
  const EnvChanges env = clean_env({{"DECENT_CLUSTER_DIR", root}});
  const Result missing = run({kDecentrun, "--cluster", "nosuch", "-np", "2", "prog"}, env);
  EXPECT_EQ(missing.exit_code, 2) << missing.err;
  EXPECT_TRUE(has(missing.err, "--cluster nosuch: no emulated cluster is up")) << missing.err;
  EXPECT_TRUE(has(missing.err, "decent-cluster up")) << missing.err;
  const Result both = run({kDecentrun, "--cluster", "c2", "-H", "a:2", "-np", "2", "prog"}, env);
  EXPECT_EQ(both.exit_code, 2) << both.err;
  EXPECT_TRUE(has(both.err, "excludes")) << both.err;
}

TEST(Decentrun, SetsAndForwardsTheEnvironment) {
  const std::string line = dry_run({"-np", "2", "--timeline", "/tmp/trace ", "--ranks-per-machine",
                                    "2", "--timeout-ms", "5000", "--threads", "4", "prog"});
  EXPECT_TRUE(has(line, " -x 'DECENT_TIMELINE=/tmp/trace ' ")) << line;
  EXPECT_TRUE(has(line, " -x DECENT_RANKS_PER_MACHINE=2 ")) << line;
  EXPECT_TRUE(has(line, " -x DECENT_TIMEOUT_MS=5000 ")) << line;
  EXPECT_TRUE(has(line, " -x OMP_NUM_THREADS=4 ")) << line;
  EXPECT_TRUE(has(line, " -x MKL_NUM_THREADS=4 ")) << line;

  // The user's thread settings and DECENT_* variables are forwarded as they are.
  const std::string forwarded =
      dry_run({"-np", "2", "prog"},
              clean_env({{"OMP_NUM_THREADS", "3"}, {"DECENT_FUSION_THRESHOLD", "1024"}}));
  EXPECT_TRUE(has(forwarded, " -x OMP_NUM_THREADS ")) << forwarded;
  EXPECT_FALSE(has(forwarded, "OMP_NUM_THREADS=")) << forwarded;
  EXPECT_TRUE(has(forwarded, " -x MKL_NUM_THREADS=1 ")) << forwarded;
  EXPECT_TRUE(has(forwarded, " -x DECENT_FUSION_THRESHOLD ")) << forwarded;
}

TEST(Decentrun, OptionsAfterTheProgramBelongToIt) {
  const std::string line =
      dry_run({"-np", "2", "--", "prog", "-np", "7", "--threads", "9", "--dry-run"});
  EXPECT_TRUE(has(line, " -np 2 ")) << line;
  EXPECT_TRUE(has(line, " -x OMP_NUM_THREADS=1 ")) << line;
  EXPECT_TRUE(has(line, " prog -np 7 --threads 9 --dry-run ")) << line;
  EXPECT_FALSE(has(line, " -- ")) << line;
  // mpirun's spellings of the rank count.
  EXPECT_TRUE(has(dry_run({"-n", "3", "prog"}), " -np 3 "));
  EXPECT_TRUE(has(dry_run({"--np=4", "prog"}), " -np 4 "));
}

TEST(Decentrun, BadOptionsExitWithTwo) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::string hostfile = testing::TempDir() + "decentrun_no_such_hostfile";
  const std::vector<Case> cases = {
      {{"-np", "0", "prog"}, "-np must be at least 1 (got 0)"},
      {{"-np", "-3", "prog"}, "-np must be at least 1"},
      {{"-np", "2"}, "no program given"},
      {{"prog"}, "number of ranks is required"},
      {{"-np", "x", "prog"}, "np"},
      {{"-np", "2", "--bogus", "prog"}, "unknown option --bogus"},
      {{"-np", "2", "-H", "a:x", "prog"}, "slot count 'x'"},
      {{"-np", "2", "-H", "a:1", "--hostfile", "f", "prog"}, "excludes"},
      {{"-np", "2", "--hostfile", hostfile, "prog"}, "cannot read hostfile"},
      {{"-np", "2", "--threads", "0", "prog"}, "threads"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {kDecentrun};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    const Result result = run(argv);
    EXPECT_EQ(result.exit_code, 2) << testing::PrintToString(c.args) << "\n" << result.err;
    EXPECT_TRUE(has(result.err, c.message))
        << testing::PrintToString(c.args) << " should say '" << c.message << "':\n"
        << result.err;
    EXPECT_TRUE(result.out.empty()) << result.out;
  }
}

TEST(Decentrun, ExitsWith127WithoutMpirun) {
  const std::string empty_dir = testing::TempDir() + "decentrun_empty_path";
  mkdir(empty_dir.c_str(), 0755);
  const Result result = run({kDecentrun, "-np", "2", kProgram}, clean_env({{"PATH", empty_dir}}));
  EXPECT_EQ(result.exit_code, 127) << result.err;
  EXPECT_TRUE(has(result.err, "mpirun was not found on PATH")) << result.err;
  // A dry run does not need mpirun.
  const Result dry =
      run({kDecentrun, "--dry-run", "-np", "2", kProgram}, clean_env({{"PATH", empty_dir}}));
  EXPECT_EQ(dry.exit_code, 0) << dry.err;
}

// ---- real launches ----

int count_lines_containing(const std::string& text, const std::string& part) {
  int count = 0;
  for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) {
    ++count;
  }
  return count;
}

TEST(Decentrun, RunsEveryRankWithTheDecentEnvironment) {
  const Result result = run({kDecentrun, "-np", "3", kProgram});
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  for (int rank = 0; rank < 3; ++rank) {
    EXPECT_EQ(count_lines_containing(result.out, "rank " + std::to_string(rank) + " of 3 "), 1)
        << result.out;
  }
  EXPECT_EQ(count_lines_containing(result.out, "launched=1 backend=mpi omp=1 mkl=1 "), 3)
      << result.out;
}

TEST(Decentrun, PassesItsOptionsToTheRanks) {
  const Result result =
      run({kDecentrun, "--verbose", "-np", "2", "--threads", "2", "--timeline", "/tmp/tl_",
           "--ranks-per-machine", "1", "--timeout-ms", "1234", kProgram});
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  EXPECT_EQ(count_lines_containing(result.out, "omp=2 mkl=2 timeline=/tmp/tl_ rpm=1 timeout=1234"),
            2)
      << result.out;
  EXPECT_TRUE(has(result.err, "decentrun: mpirun ")) << result.err;
}

TEST(Decentrun, ExitCodeIsTheRanksFailure) {
  const Result result =
      run({kDecentrun, "-np", "2", kProgram, "--exit-code", "3", "--on-rank", "1"});
  EXPECT_EQ(result.exit_code, 3) << result.out << result.err;
}

TEST(Decentrun, AFailedRankEndsTheJob) {
  const Result result = run({kDecentrun, "-np", "3", kProgram, "--fail-on", "1"});
  EXPECT_NE(result.exit_code, 0) << result.out << result.err;
  EXPECT_LT(result.seconds, 60) << "the other ranks waited for the failed one";
  EXPECT_TRUE(has(result.err, "rank 1 of 3")) << result.err;
  EXPECT_TRUE(has(result.err, "deliberate failure for the launcher test")) << result.err;
  // decentrun's last line names the rank from the library's report, not from mpirun's.
  EXPECT_TRUE(has(result.err, "decentrun: rank 1 aborted the job (MPI_Abort with error code 1)"))
      << result.err;
  EXPECT_FALSE(has(result.err, "still running")) << result.err;
}

TEST(Decentrun, AnUncaughtExceptionEndsTheJob) {
  const Result result = run({kDecentrun, "-np", "3", kProgram, "--throw-on", "2"});
  EXPECT_NE(result.exit_code, 0) << result.out << result.err;
  EXPECT_LT(result.seconds, 60) << "the other ranks waited for the failed one";
  EXPECT_TRUE(has(result.err, "deliberate uncaught exception")) << result.err;
  EXPECT_FALSE(has(result.err, "still running")) << result.err;
}

TEST(Decentrun, ARankExitingWithAnErrorEndsTheJob) {
  // Without the abort at exit, rank 1 would wait in MPI_Finalize for ranks waiting for it.
  const Result result =
      run({kDecentrun, "-np", "3", kProgram, "--exit-code", "5", "--quit-on", "1"});
  EXPECT_EQ(result.exit_code, 5) << result.out << result.err;
  EXPECT_LT(result.seconds, 60) << "the other ranks waited for the failed one";
  EXPECT_TRUE(has(result.err, "world rank 1 exits with status 5")) << result.err;
  EXPECT_TRUE(has(result.err, "decentrun: rank 1 aborted the job (MPI_Abort with error code 5)"))
      << result.err;
  EXPECT_FALSE(has(result.err, "still running")) << result.err;
}

TEST(Decentrun, ForwardsSigtermToMpirun) {
  const auto start = Clock::now();
  Process process({kDecentrun, "-np", "2", kProgram, "--sleep", "100"}, clean_env());
  ASSERT_TRUE(
      process.read_until([&] { return count_lines_containing(process.out(), " pid ") == 2; },
                         start + std::chrono::seconds(60)))
      << process.out() << process.err();
  std::vector<pid_t> ranks;
  for (std::size_t at = process.out().find(" pid "); at != std::string::npos;
       at = process.out().find(" pid ", at + 1)) {
    ranks.push_back(static_cast<pid_t>(std::atol(process.out().c_str() + at + 5)));
  }
  ASSERT_EQ(ranks.size(), 2u);

  ASSERT_EQ(kill(process.pid(), SIGTERM), 0);
  const int code = process.finish(Clock::now() + std::chrono::seconds(30));
  EXPECT_NE(code, -1) << "decentrun did not exit after SIGTERM";
  EXPECT_NE(code, 0);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 60);
  // mpirun stopped the ranks (allow it a moment to reap them).
  for (pid_t rank : ranks) {
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (kill(rank, 0) == 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_NE(kill(rank, 0), 0) << "rank process " << rank << " is still alive";
  }
}

}  // namespace
