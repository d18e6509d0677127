// Fuzzes the IDX reader (images and labels, plain or gzip) with arbitrary file contents. A
// malformed file must end in DataError; anything else (another exception, a crash, a sanitizer
// report, an allocation beyond what the file can back) is a bug.
#include "decent/data/dataset.h"

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace {

// The reader takes a path, so every input goes through one file per fuzzing process.
const std::string& scratch_path() {
  static const std::string path =
      (access("/dev/shm", W_OK) == 0 ? std::string("/dev/shm") : std::string("/tmp")) +
      "/decent_fuzz_idx_" + std::to_string(getpid());
  return path;
}

void write_file(const std::string& path, const std::uint8_t* data, std::size_t size) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) __builtin_trap();
  if (size > 0 && std::fwrite(data, 1, size, file) != size) __builtin_trap();
  std::fclose(file);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = scratch_path();
  write_file(path, data, size);
  try {
    const decent::data::IdxImages images = decent::data::read_idx_images(path);
    // A successful read holds exactly what the header promised.
    if (images.pixels.size() !=
        static_cast<std::size_t>(images.count) * images.rows * images.cols) {
      __builtin_trap();
    }
  } catch (const decent::data::DataError&) {
  }
  try {
    const std::vector<std::uint8_t> labels = decent::data::read_idx_labels(path);
    if (labels.empty()) __builtin_trap();
  } catch (const decent::data::DataError&) {
  }
  // The same file as both halves of a dataset exercises the cross-file checks.
  try {
    decent::data::load_idx_dataset(path, path, 10);
  } catch (const decent::data::DataError&) {
  }
  return 0;
}
