// Bad input given to the command-line tools and the library, where the tests of each area leave
// a gap: every case must end with a clear message, a non-zero exit code and no output file
// written half-way. docs/errors.md lists these cases with the messages asserted here.
#include "decent/comm/context.h"
#include "decent/comm/types.h"
#include "decent/data/dataset.h"
#include "decent/topology/generators.h"

#include <gtest/gtest.h>
#include <mpi.h>
#include <sys/wait.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

struct Result {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

Result run(const std::string& command) {
  Result r;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return r;
  std::array<char, 4096> buffer{};
  std::size_t got = 0;
  while ((got = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
    r.output.append(buffer.data(), got);
  }
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string scratch(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / "decent_reliability" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

void write_bytes(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

std::vector<unsigned char> be32(std::uint32_t v) {
  return {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
          static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
}

std::vector<unsigned char> idx_header(std::vector<std::uint32_t> words) {
  std::vector<unsigned char> out;
  for (std::uint32_t w : words) {
    const auto b = be32(w);
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}

// ---------------------------------------------------------------- topology files via decent-topo

struct BadGraph {
  const char* label;
  const char* json;
  const char* message;
};

TEST(TopologyFileErrors, DecentTopoRejectsEachAndWritesNoDotFile) {
  const std::vector<BadGraph> cases = {
      {"unknown_rank", R"({"n": 3, "edges": [[0, 1], [1, 3]]})",
       "edge 1 destination is rank 3, out of range [0, 3)"},
      {"negative_weight", R"({"n": 3, "edges": [[0, 1, -0.5], [1, 2, 0.5]]})",
       "edge 0 weight is negative (-0.5)"},
      {"nan_weight", R"({"n": 3, "edges": [[0, 1, NaN]]})", "graph JSON is malformed"},
      {"empty", "", "graph JSON is empty"},
      {"huge_n", R"({"n": 2000000, "edges": []})",
       "\"n\" = 2000000 exceeds the limit of 1000000 nodes"},
      {"huge_matrix", R"({"matrix": [[], [], [], [], [], [], [], []]})",
       "matrix row 0 must be an array of 8 numbers, got 0 entries"},
  };
  const std::string dir = scratch("topology_files");
  for (const BadGraph& c : cases) {
    const std::string graph = dir + "/" + c.label + ".json";
    const std::string dot = dir + "/" + c.label + ".dot";
    write_text(graph, c.json);
    const Result r = run(std::string(DECENT_TOPO_EXE) + " " + graph + " --dot " + dot);
    EXPECT_EQ(r.exit_code, 2) << c.label << ": " << r.output;
    EXPECT_NE(r.output.find("graph file '" + graph + "'"), std::string::npos)
        << c.label << ": " << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << c.label << ": " << r.output;
    EXPECT_FALSE(fs::exists(dot)) << c.label << ": a DOT file was written for a bad graph";
  }
}

// A matrix with many rows but short ones must be refused before an n x n matrix is allocated:
// 60000 rows would need 28 GB.
TEST(TopologyFileErrors, LargeRaggedMatrixFailsWithoutAllocating) {
  std::string json = "{\"matrix\": [";
  for (int i = 0; i < 60000; ++i) json += i == 0 ? "[1]" : ", []";
  json += "]}";
  const std::string dir = scratch("ragged_matrix");
  write_text(dir + "/g.json", json);
  const Result r = run(std::string(DECENT_TOPO_EXE) + " " + dir + "/g.json");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("matrix row 0 must be an array of 60000 numbers, got 1 entries"),
            std::string::npos)
      << r.output;
}

// ---------------------------------------------------------------- dataset headers

// A header that promises far more data than the file holds must be reported as truncation
// without first allocating what the header promises (here 2^30 images of 28x28: 842 GB).
TEST(DatasetFileErrors, ImpossibleImageCountIsTruncationNotAnAllocation) {
  const std::string dir = scratch("idx_huge");
  auto bytes = idx_header({0x803, 1u << 30, 28, 28});
  bytes.resize(bytes.size() + 100, 0);
  write_bytes(dir + "/images", bytes);
  try {
    decent::data::read_idx_images(dir + "/images");
    FAIL() << "a truncated file was accepted";
  } catch (const decent::data::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(dir + "/images"), std::string::npos) << e.what();
  }
}

TEST(DatasetFileErrors, ImpossibleLabelCountIsTruncationNotAnAllocation) {
  const std::string dir = scratch("idx_huge_labels");
  auto bytes = idx_header({0x801, 1u << 30});
  bytes.resize(bytes.size() + 3, 1);
  write_bytes(dir + "/labels", bytes);
  try {
    decent::data::read_idx_labels(dir + "/labels");
    FAIL() << "a truncated file was accepted";
  } catch (const decent::data::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated: the header promises 1073741824 bytes of "
                                         "label data from byte 8 on, only 3 are present"),
              std::string::npos)
        << e.what();
  }
}

// ---------------------------------------------------------------- command-line options

TEST(CommandLineErrors, DecentrunRejectsRankCountsBelowOne) {
  for (const char* np : {"0", "-2"}) {
    const Result r = run(std::string(DECENTRUN_EXE) + " -np " + np + " /bin/true");
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(std::string("decentrun: -np must be at least 1 (got ") + np + ")"),
              std::string::npos)
        << r.output;
  }
}

// ---------------------------------------------------------------- context configuration

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const decent::InvalidArgument& e) {
    std::printf("message: %s\n", e.what());  // the exact text, for docs/errors.md
    return e.what();
  }
  return "(no InvalidArgument)";
}

TEST(ContextErrors, MalformedEnvironmentIsNamed) {
  setenv("DECENT_TIMEOUT_MS", "5s", 1);
  EXPECT_EQ(error_of([] { decent::ContextOptions::from_env(); }),
            "environment variable DECENT_TIMEOUT_MS='5s' is not a non-negative integer");
  unsetenv("DECENT_TIMEOUT_MS");
  setenv("DECENT_FUSION_THRESHOLD", "-1", 1);
  EXPECT_EQ(error_of([] { decent::ContextOptions::from_env(); }),
            "environment variable DECENT_FUSION_THRESHOLD='-1' is not a non-negative integer");
  unsetenv("DECENT_FUSION_THRESHOLD");
}

TEST(ContextErrors, ZeroTimeoutIsRefused) {
  decent::ContextOptions options;
  options.timeout = std::chrono::milliseconds(0);
  const std::string message = error_of([&] {
    decent::local::run(
        2, [](decent::Context&) {}, options);
  });
  EXPECT_NE(message.find("timeout must be positive"), std::string::npos) << message;
}

TEST(ContextErrors, TopologyOfAnotherSizeIsRefused) {
  decent::local::run(4, [](decent::Context& ctx) {
    EXPECT_EQ(error_of([&] { ctx.set_topology(decent::topology::ring(5)); }),
              "rank " + std::to_string(ctx.rank()) +
                  ": set_topology: topology 'ring' has 5 nodes but the job has 4 ranks");
    // Refused before anything changed: the default topology still works.
    double x = ctx.rank();
    ctx.neighbor_allreduce(decent::Buffer(&x, 1), decent::Buffer(&x, 1));
  });
}

TEST(ContextErrors, NullBufferIsRefused) {
  decent::local::run(2, [](decent::Context& ctx) {
    EXPECT_EQ(error_of([&] { ctx.allreduce(decent::Buffer(static_cast<float*>(nullptr), 3)); }),
              "rank " + std::to_string(ctx.rank()) + ": allreduce: null buffer with 3 elements");
  });
}

// ---------------------------------------------------------------- operations after shutdown

// MPI cannot be initialised twice in a process: once it is finalised, creating an MPI context
// is an error, not a crash inside MPI.
TEST(AfterShutdown, MpiContextAfterFinalizeIsRefused) {
  int provided = 0;
  ASSERT_EQ(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided), MPI_SUCCESS);
  ASSERT_EQ(MPI_Finalize(), MPI_SUCCESS);
  setenv("DECENT_BACKEND", "mpi", 1);
  try {
    decent::Context::init();
    FAIL() << "an MPI context was created after MPI_Finalize";
  } catch (const decent::CommError& e) {
    EXPECT_NE(std::string(e.what()).find("MPI has already been finalised in this process"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
