// decentrun: starts a decent program on N ranks through Open MPI's mpirun, with the flags this
// kind of machine needs (root, oversubscription, no core binding) and the DECENT_* environment.
//
//   decentrun -np 4 ./train --epochs 3
//   decentrun -np 8 -H node1:4,node2:4 --timeline /tmp/tl ./train
//   decentrun --dry-run -np 16 ./train        # prints the mpirun command only
//   decentrun --cluster default -np 4 ./train # on an emulated cluster (decent-cluster up)
//
// Exit status: mpirun's (128 + signal if it was killed), 2 for bad options, 127 when mpirun is
// not on PATH. When the job fails, a last line names the rank that ended it and how.
#include <CLI/CLI.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

constexpr int kUsageError = 2;
constexpr int kMpirunMissing = 127;
constexpr const char* kUsage =
    "usage: decentrun -np N [OPTIONS] PROGRAM [ARGS...]  (decentrun --help for the options)";

// Raised for bad options; main() prints the message and exits with kUsageError.
struct UsageError {
  std::string message;
};

struct LaunchOptions {
  int np = 0;
  std::string hosts;     // -H host:slots,...
  std::string hostfile;  // --hostfile F
  std::string cluster;   // --cluster NAME (an emulated cluster made by decent-cluster)
  std::string timeline;
  std::optional<int> ranks_per_machine;
  std::optional<long> timeout_ms;
  std::optional<int> threads;
  bool dry_run = false;
  bool verbose = false;
  std::vector<std::string> program;  // the program and its arguments
};

// Options of decentrun that take a value; used to find where the program starts.
const std::vector<std::string> kValueOptions = {
    "-n",           "-np",        "--np",       "-H",
    "--host",       "--hostfile", "--timeline", "--ranks-per-machine",
    "--timeout-ms", "--threads",  "--cluster"};

bool takes_value(const std::string& token) {
  return std::find(kValueOptions.begin(), kValueOptions.end(), token) != kValueOptions.end();
}

// mpirun spells the rank count "-np", which CLI11 would read as "-n" with value "p". Rewrites it
// as "--np", but only among decentrun's own options: the program's arguments stay untouched.
std::vector<std::string> normalize_arguments(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string& token = args[i];
    if (token == "--" || token.empty() || token[0] != '-') break;  // the program starts here
    if (token == "-np") {
      token = "--np";
    } else if (token.rfind("-np=", 0) == 0) {
      token = "--np=" + token.substr(4);
    }
    if (takes_value(token)) ++i;  // skip the value
  }
  return args;
}

int parse_slot_count(const std::string& text, const std::string& where) {
  std::size_t used = 0;
  int slots = 0;
  try {
    slots = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || slots < 1) {
    throw UsageError{"decentrun: " + where + ": slot count '" + text +
                     "' is not a positive integer"};
  }
  return slots;
}

// Total slots of "-H a:2,b:4,c" (a host without ":slots" has one, as in mpirun).
int host_list_slots(const std::string& hosts) {
  int total = 0;
  std::stringstream list(hosts);
  std::string entry;
  while (std::getline(list, entry, ',')) {
    if (entry.empty()) throw UsageError{"decentrun: -H " + hosts + ": empty host name"};
    const std::size_t colon = entry.rfind(':');
    total += colon == std::string::npos ? 1 : parse_slot_count(entry.substr(colon + 1), "-H");
  }
  if (total == 0) throw UsageError{"decentrun: -H needs at least one host"};
  return total;
}

// Total slots of an Open MPI hostfile: lines "host [slots=N] [max_slots=M]", '#' comments. A host
// without slots= counts as one slot, which errs towards allowing oversubscription.
int hostfile_slots(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw UsageError{"decentrun: cannot read hostfile " + path};
  int total = 0;
  std::string line;
  while (std::getline(file, line)) {
    line = line.substr(0, line.find('#'));
    std::stringstream words(line);
    std::string host, word;
    if (!(words >> host)) continue;
    int slots = 1;
    while (words >> word) {
      if (word.rfind("slots=", 0) == 0) slots = parse_slot_count(word.substr(6), path);
    }
    total += slots;
  }
  if (total == 0) throw UsageError{"decentrun: hostfile " + path + " lists no hosts"};
  return total;
}

std::optional<std::string> find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return std::nullopt;
  std::stringstream directories(path);
  std::string directory;
  while (std::getline(directories, directory, ':')) {
    if (directory.empty()) directory = ".";
    const std::string candidate = directory + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// The DECENT_* variables of our environment, sorted, so the command line is reproducible.
std::vector<std::string> environment_names_with_prefix(const std::string& prefix) {
  std::vector<std::string> names;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string text = *entry;
    const std::size_t equals = text.find('=');
    if (equals != std::string::npos && text.compare(0, prefix.size(), prefix) == 0) {
      names.push_back(text.substr(0, equals));
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

struct Command {
  std::vector<std::string> argv;
  bool oversubscribed = false;
};

// The Python package built next to this launcher (build/bin/decentrun -> build/python/decent), so
// `decentrun -np 4 python3 train.py` imports the `decent` of the same build without installing it.
std::string bundled_python_dir() {
  char exe[4096];
  const ssize_t length = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (length <= 0) return {};
  std::string dir(exe, static_cast<std::size_t>(length));
  dir = dir.substr(0, dir.find_last_of('/'));
  const std::string python_dir = dir.substr(0, dir.find_last_of('/')) + "/python";
  std::ifstream marker(python_dir + "/decent/__init__.py");
  return marker.good() ? python_dir : std::string{};
}

// An emulated cluster brought up by decent-cluster (tools/decent-cluster.sh): its state directory
// holds the hostfile, the mpirun arguments that route Open MPI through the cluster's launch agent
// and network (one per line) and the ranks per emulated host.
struct Cluster {
  std::string hostfile;
  std::vector<std::string> mpirun_args;
  int ranks_per_host = 1;
};

std::string cluster_directory(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* root = std::getenv("DECENT_CLUSTER_DIR");
  return std::string(root != nullptr && *root != '\0' ? root : "/run/decent-cluster") + "/" + name;
}

Cluster read_cluster(const std::string& name) {
  const std::string dir = cluster_directory(name);
  Cluster cluster;
  cluster.hostfile = dir + "/hostfile";
  std::ifstream args(dir + "/mpirun.args");
  if (!args || !std::ifstream(cluster.hostfile)) {
    throw UsageError{"decentrun: --cluster " + name + ": no emulated cluster is up there (" + dir +
                     "/hostfile and mpirun.args); start one with: decent-cluster up -n N --name " +
                     name};
  }
  std::string line;
  while (std::getline(args, line)) {
    if (!line.empty()) cluster.mpirun_args.push_back(line);
  }
  std::ifstream ranks(dir + "/ranks_per_host");
  if (ranks && std::getline(ranks, line)) {
    cluster.ranks_per_host = parse_slot_count(line, dir + "/ranks_per_host");
  }
  return cluster;
}

Command build_command(const LaunchOptions& options) {
  Command command;
  std::vector<std::string>& argv = command.argv;
  argv.push_back("mpirun");
  if (geteuid() == 0) argv.push_back("--allow-run-as-root");
  argv.insert(argv.end(), {"-np", std::to_string(options.np)});

  int available = 0;
  std::optional<Cluster> cluster;
  if (!options.cluster.empty()) cluster = read_cluster(options.cluster);
  if (cluster) {
    available = hostfile_slots(cluster->hostfile);
    argv.insert(argv.end(), {"--hostfile", cluster->hostfile});
  } else if (!options.hosts.empty()) {
    available = host_list_slots(options.hosts);
    argv.insert(argv.end(), {"-H", options.hosts});
  } else if (!options.hostfile.empty()) {
    available = hostfile_slots(options.hostfile);
    argv.insert(argv.end(), {"--hostfile", options.hostfile});
  } else {
    available = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  command.oversubscribed = options.np > available;
  if (command.oversubscribed) argv.push_back("--oversubscribe");
  // Pinning ranks to cores makes oversubscribed ranks share one core while others idle.
  argv.insert(argv.end(), {"--bind-to", "none"});
  if (cluster) argv.insert(argv.end(), cluster->mpirun_args.begin(), cluster->mpirun_args.end());

  // -x NAME=VALUE sets a variable in every rank; -x NAME forwards ours (mpirun only passes the
  // environment on by itself to ranks on the local machine).
  std::map<std::string, std::string> set;
  set["DECENT_BACKEND"] = "mpi";
  if (!options.timeline.empty()) set["DECENT_TIMELINE"] = options.timeline;
  if (options.ranks_per_machine) {
    set["DECENT_RANKS_PER_MACHINE"] = std::to_string(*options.ranks_per_machine);
  } else if (cluster) {
    // The emulated hosts share one host name, so hierarchical operations cannot group by it.
    set["DECENT_RANKS_PER_MACHINE"] = std::to_string(cluster->ranks_per_host);
  }
  if (options.timeout_ms) set["DECENT_TIMEOUT_MS"] = std::to_string(*options.timeout_ms);
  // Several ranks per machine each running a full thread pool would fight over the cores.
  for (const char* name : {"OMP_NUM_THREADS", "MKL_NUM_THREADS"}) {
    if (options.threads) {
      set[name] = std::to_string(*options.threads);
    } else if (std::getenv(name) == nullptr) {
      set[name] = "1";
    }
  }
  // The hosts of an emulated cluster share this machine's cores.
  const bool cores_oversubscribed =
      command.oversubscribed ||
      (cluster && options.np > static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  if (cores_oversubscribed && std::getenv("OMPI_MCA_mpi_yield_when_idle") == nullptr) {
    // Ranks waiting inside MPI yield the core instead of spinning on it.
    set["OMPI_MCA_mpi_yield_when_idle"] = "1";
  }
  if (const std::string python_dir = bundled_python_dir(); !python_dir.empty()) {
    const char* existing = std::getenv("PYTHONPATH");
    set["PYTHONPATH"] = existing && *existing ? python_dir + ":" + existing : python_dir;
  }
  std::vector<std::string> forwarded = environment_names_with_prefix("DECENT_");
  for (const char* name : {"OMP_NUM_THREADS", "MKL_NUM_THREADS"}) {
    if (std::getenv(name) != nullptr) forwarded.push_back(name);
  }
  for (const auto& [name, value] : set) argv.insert(argv.end(), {"-x", name + "=" + value});
  for (const std::string& name : forwarded) {
    if (set.count(name) == 0) argv.insert(argv.end(), {"-x", name});
  }

  argv.insert(argv.end(), options.program.begin(), options.program.end());
  return command;
}

// Quotes a word for a POSIX shell when it needs it, so the printed command can be pasted.
std::string shell_quote(const std::string& word) {
  const bool plain = !word.empty() && std::all_of(word.begin(), word.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("@%+=:,./_-", c) != nullptr;
  });
  if (plain) return word;
  std::string quoted = "'";
  for (char c : word) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

std::string join_for_shell(const std::vector<std::string>& argv) {
  std::string line;
  for (const std::string& word : argv) {
    if (!line.empty()) line += ' ';
    line += shell_quote(word);
  }
  return line;
}

// ---- running mpirun ----

// Reads mpirun's own reports of a failed job from its stderr (passed through unchanged) and
// keeps the first rank that ended the job, so that decentrun can name it in one line at the end
// instead of leaving the user to find it in mpirun's boxed messages.
class FailureWatcher {
 public:
  void feed(const char* data, std::size_t size) {
    pending_.append(data, size);
    std::size_t end;
    while ((end = pending_.find('\n')) != std::string::npos) {
      scan(pending_.substr(0, end));
      pending_.erase(0, end + 1);
    }
    // A line this long is not one of mpirun's reports; drop it rather than grow.
    if (pending_.size() > 4096) pending_.clear();
  }

  // One line naming the rank that ended the job, or "" when mpirun reported none.
  std::string summary() const { return summary_; }

 private:
  void scan(const std::string& line) {
    // The library prints one of these on a failing rank just before it calls MPI_Abort. They are
    // the first and most reliable report: when two ranks abort at once, Open MPI's own boxed
    // "MPI_ABORT was invoked" message can be lost ("Data unpack would read past end of buffer").
    static const std::regex library_exit(
        R"(decent: world rank (\d+) exits with status (-?\d+); aborting the MPI job)");
    static const std::regex library_failure(
        R"(decent: rank (\d+) of \d+(?: \(world rank (\d+)\))? on \S+ failed: .*; aborting the MPI job)");
    static const std::regex signalled(
        R"(mpirun noticed that process rank (\d+) with PID (\d+) on node (\S+) exited on signal (\d+) \(([^)]*)\))");
    // Open MPI breaks this report over two lines: "...on rank R in communicator C" and
    // "with errorcode E."
    static const std::regex aborted(R"(MPI_ABORT was invoked on rank (\d+) in communicator)");
    static const std::regex abort_code(R"(with errorcode (-?\d+))");
    static const std::regex process_name(R"(Process name: \[\[\d+,\d+\],(\d+)\])");
    static const std::regex exit_code(R"(Exit code:\s+(-?\d+))");
    std::smatch m;
    if (!summary_.empty()) return;  // the first failure is the cause; later ones follow from it
    if (std::regex_search(line, m, library_exit)) {
      aborted_rank_ = m[1].str();
      set_abort_summary(m[2].str());
    } else if (std::regex_search(line, m, library_failure)) {
      aborted_rank_ = m[2].matched ? m[2].str() : m[1].str();
      set_abort_summary("1");  // MpiTransport::fail aborts with 1
    } else if (std::regex_search(line, m, signalled)) {
      // mpirun reports PID 0 when it did not record the rank's pid.
      const std::string where =
          m[2] == "0" ? "on " + m[3].str() : "pid " + m[2].str() + " on " + m[3].str();
      summary_ = "rank " + m[1].str() + " (" + where + ") was killed by signal " + m[4].str() +
                 " (" + m[5].str() + "); mpirun stopped the other ranks";
    } else if (std::regex_search(line, m, aborted)) {
      aborted_rank_ = m[1].str();
      if (std::regex_search(line, m, abort_code)) set_abort_summary(m[1].str());
    } else if (!aborted_rank_.empty() && std::regex_search(line, m, abort_code)) {
      set_abort_summary(m[1].str());
    } else if (std::regex_search(line, m, process_name)) {
      exited_rank_ = m[1].str();
    } else if (!exited_rank_.empty() && std::regex_search(line, m, exit_code)) {
      summary_ = "rank " + exited_rank_ + " exited with status " + m[1].str() +
                 "; mpirun stopped the other ranks";
    }
  }

  void set_abort_summary(const std::string& code) {
    summary_ = "rank " + aborted_rank_ + " aborted the job (MPI_Abort with error code " + code +
               "); its error is printed above";
  }

  std::string aborted_rank_;
  std::string pending_;
  std::string exited_rank_;
  std::string summary_;
};

void write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t written = write(fd, data, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      return;  // our stderr is gone; keep watching mpirun regardless
    }
    data += written;
    size -= static_cast<std::size_t>(written);
  }
}

volatile sig_atomic_t g_child = 0;

// Passes SIGINT/SIGTERM/SIGHUP on to mpirun, which then stops the ranks. A signal that the
// terminal sent to the whole foreground process group (Ctrl-C) has reached mpirun already.
void forward_signal(int signal_number, siginfo_t* info, void* /*context*/) {
  if (info != nullptr && info->si_code == SI_KERNEL) return;
  const pid_t child = static_cast<pid_t>(g_child);
  if (child > 0) kill(child, signal_number);
}

int run(const std::vector<std::string>& argv) {
  struct sigaction action {};
  action.sa_sigaction = &forward_signal;
  action.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&action.sa_mask);
  for (int signal_number : {SIGINT, SIGTERM, SIGHUP}) {
    // A signal ignored by whoever started us (nohup, a background job) stays ignored, in mpirun
    // too.
    struct sigaction previous {};
    if (sigaction(signal_number, nullptr, &previous) == 0 && previous.sa_handler == SIG_IGN) {
      continue;
    }
    sigaction(signal_number, &action, nullptr);
  }

  std::vector<char*> c_argv;
  for (const std::string& word : argv) c_argv.push_back(const_cast<char*>(word.c_str()));
  c_argv.push_back(nullptr);

  // mpirun's stderr (its own reports and the ranks' stderr) passes through us to be watched.
  int err_pipe[2];
  if (pipe(err_pipe) != 0) {
    std::fprintf(stderr, "decentrun: pipe failed: %s\n", std::strerror(errno));
    return 1;
  }
  // A reader of our stderr that goes away must not kill decentrun before mpirun is reaped.
  signal(SIGPIPE, SIG_IGN);
  const pid_t child = fork();
  if (child < 0) {
    std::fprintf(stderr, "decentrun: fork failed: %s\n", std::strerror(errno));
    return 1;
  }
  if (child == 0) {
    signal(SIGPIPE, SIG_DFL);  // an ignored signal would stay ignored across exec
    dup2(err_pipe[1], STDERR_FILENO);
    close(err_pipe[0]);
    close(err_pipe[1]);
    execvp(c_argv[0], c_argv.data());  // caught signals revert to their defaults in mpirun
    std::fprintf(stderr, "decentrun: cannot run %s: %s\n", c_argv[0], std::strerror(errno));
    _exit(errno == ENOENT ? kMpirunMissing : 126);
  }
  g_child = child;
  close(err_pipe[1]);

  FailureWatcher watcher;
  int status = 0;
  bool reaped = false;
  bool open = true;
  auto quiet_since = std::chrono::steady_clock::now();
  char buffer[8192];
  while (open) {
    pollfd readable{err_pipe[0], POLLIN, 0};
    const int ready = poll(&readable, 1, 200);
    if (ready > 0) {
      const ssize_t got = read(err_pipe[0], buffer, sizeof buffer);
      if (got > 0) {
        write_all(STDERR_FILENO, buffer, static_cast<std::size_t>(got));
        watcher.feed(buffer, static_cast<std::size_t>(got));
        quiet_since = std::chrono::steady_clock::now();
      } else if (got == 0 || errno != EINTR) {
        open = false;  // every writer closed the pipe
      }
    } else if (ready < 0 && errno != EINTR) {
      open = false;
    }
    if (!reaped) {
      const pid_t done = waitpid(child, &status, WNOHANG);
      if (done == child) {
        reaped = true;
        quiet_since = std::chrono::steady_clock::now();
      }
    }
    // A process started by mpirun may hold the pipe open after mpirun is gone: stop reading once
    // mpirun has exited and the pipe has been quiet for a second.
    if (reaped && std::chrono::steady_clock::now() - quiet_since > std::chrono::seconds(1)) break;
  }
  close(err_pipe[0]);
  while (!reaped && waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) {
      std::fprintf(stderr, "decentrun: waitpid failed: %s\n", std::strerror(errno));
      return 1;
    }
  }
  int code = 1;
  if (WIFEXITED(status)) code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) code = 128 + WTERMSIG(status);
  if (code != 0 && !watcher.summary().empty()) {
    std::fprintf(stderr, "decentrun: %s (exit status %d)\n", watcher.summary().c_str(), code);
  }
  return code;
}

LaunchOptions parse(int argc, char** argv) {
  LaunchOptions options;
  CLI::App app{
      "Runs PROGRAM on N ranks with Open MPI's mpirun, adding the flags and DECENT_* "
      "environment a decent job needs. Options after PROGRAM belong to PROGRAM.",
      "decentrun"};
  app.prefix_command();  // stop at PROGRAM; everything after it is passed through
  app.footer(
      "Usage: decentrun -np N [OPTIONS] PROGRAM [ARGS...]\n"
      "Sets DECENT_BACKEND=mpi, OMP_NUM_THREADS/MKL_NUM_THREADS=1 (unless set) and forwards every "
      "DECENT_* variable to the ranks. Exit status: mpirun's; 2 for bad options; 127 without "
      "mpirun.");
  app.add_option("-n,--np", options.np, "Number of ranks (also -np)")->required();
  auto* hosts =
      app.add_option("-H,--host", options.hosts, "Hosts with slot counts, e.g. node1:4,node2:4");
  auto* hostfile =
      app.add_option("--hostfile", options.hostfile, "Open MPI hostfile (lines: host slots=N)");
  hosts->excludes(hostfile);
  auto* cluster = app.add_option("--cluster", options.cluster,
                                 "Run on the emulated cluster NAME made by decent-cluster (its "
                                 "hostfile, launch agent and network; docs/cluster.md)");
  cluster->excludes(hosts);
  cluster->excludes(hostfile);
  app.add_option("--timeline", options.timeline,
                 "Write a Chrome trace per rank to PREFIX<rank>.json (DECENT_TIMELINE)");
  app.add_option("--ranks-per-machine", options.ranks_per_machine,
                 "Group ranks into machines of K for hierarchical operations; 0 groups by host "
                 "(DECENT_RANKS_PER_MACHINE)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--timeout-ms", options.timeout_ms,
                 "Longest a rank waits for its peers before failing (DECENT_TIMEOUT_MS)")
      ->check(CLI::PositiveNumber);
  app.add_option("--threads", options.threads,
                 "Compute threads per rank (OMP_NUM_THREADS, MKL_NUM_THREADS); default 1 unless "
                 "set in the environment")
      ->check(CLI::PositiveNumber);
  app.add_flag("--dry-run", options.dry_run, "Print the mpirun command line and exit");
  app.add_flag("-v,--verbose", options.verbose, "Print the mpirun command line before running");

  std::vector<std::string> args = normalize_arguments(argc, argv);
  std::reverse(args.begin(), args.end());  // CLI11 takes a reversed argument vector
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& help) {
    std::exit(app.exit(help));
  } catch (const CLI::RequiredError&) {
    throw UsageError{"decentrun: the number of ranks is required (-np N)\n" + std::string(kUsage)};
  } catch (const CLI::ParseError& error) {
    throw UsageError{"decentrun: " + std::string(error.what()) + "\n" + kUsage};
  }
  options.program = app.remaining();
  if (!options.program.empty() && options.program.front() == "--") {
    options.program.erase(options.program.begin());
  }
  if (options.np < 1) {
    throw UsageError{"decentrun: -np must be at least 1 (got " + std::to_string(options.np) + ")"};
  }
  if (options.program.empty()) {
    throw UsageError{"decentrun: no program given\n" + std::string(kUsage)};
  }
  if (options.program.front().size() > 1 && options.program.front()[0] == '-') {
    throw UsageError{"decentrun: unknown option " + options.program.front() + "\n" + kUsage};
  }
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  LaunchOptions options;
  Command command;
  try {
    options = parse(argc, argv);
    command = build_command(options);
  } catch (const UsageError& error) {
    std::cerr << error.message << "\n";
    return kUsageError;
  }
  const std::string line = join_for_shell(command.argv);
  if (options.dry_run) {
    std::cout << line << std::endl;
    return 0;
  }
  if (!find_on_path("mpirun")) {
    std::cerr << "decentrun: mpirun was not found on PATH. Install Open MPI (Debian: apt-get "
                 "install openmpi-bin) or add its bin directory to PATH.\n";
    return kMpirunMissing;
  }
  if (options.verbose) std::cerr << "decentrun: " << line << std::endl;
  return run(command.argv);
}
