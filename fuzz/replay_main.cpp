// Corpus replay driver: the main() a fuzz target gets when it is built without libFuzzer.
//
// Runs LLVMFuzzerTestOneInput once over every regular file below each directory (or file)
// named on the command line, in sorted path order so a failure reproduces the same way each
// run. Exits non-zero when an argument cannot be read or holds no inputs: a corpus that went
// missing must fail the test, not pass it vacuously. A broken property aborts the process,
// and ctest reports the input it was running from the "replaying" line printed before it.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

namespace fs = std::filesystem;

std::vector<fs::path> inputs_below(const fs::path& root) {
  std::vector<fs::path> inputs;
  if (fs::is_regular_file(root)) {
    inputs.push_back(root);
    return inputs;
  }
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.is_regular_file()) inputs.push_back(entry.path());
  }
  std::sort(inputs.begin(), inputs.end());
  return inputs;
}

bool replay(const fs::path& input) {
  std::ifstream in(input, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", input.c_str());
    return false;
  }
  const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};

  // Flushed first, so the name is on record if the target aborts on this input.
  std::fprintf(stderr, "replaying %s (%zu bytes)\n", input.c_str(), bytes.size());
  std::fflush(stderr);
  // The copy gives the target a buffer of exactly the input's size, as libFuzzer does, so
  // AddressSanitizer catches a read past the end.
  const std::vector<std::uint8_t> exact(bytes.begin(), bytes.end());
  LLVMFuzzerTestOneInput(exact.data(), exact.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
    return 2;
  }

  std::size_t replayed = 0;
  for (int i = 1; i < argc; ++i) {
    const fs::path root = argv[i];
    std::error_code error;
    if (!fs::exists(root, error)) {
      std::fprintf(stderr, "%s does not exist\n", root.c_str());
      return 1;
    }
    const auto inputs = inputs_below(root);
    if (inputs.empty()) {
      std::fprintf(stderr, "%s holds no inputs\n", root.c_str());
      return 1;
    }
    for (const auto& input : inputs) {
      if (!replay(input)) return 1;
      ++replayed;
    }
  }
  std::printf("replayed %zu inputs, every property held\n", replayed);
  return 0;
}
