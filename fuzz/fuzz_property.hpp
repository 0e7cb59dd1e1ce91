#pragma once

// Property checks for the fuzz targets.
//
// A fuzz target that only survives its input proves little; each target states what must hold
// for every input and checks it with require(). A broken property aborts the process, which
// libFuzzer reports as a crash (keeping the input as a reproducer) and which fails the corpus
// replay test under ctest. Assertions must not depend on NDEBUG: the targets are built with
// optimisation, so assert() would vanish in RelWithDebInfo.

#include <cstdio>
#include <cstdlib>
#include <source_location>
#include <string_view>

namespace deedkit::fuzz {

// Aborts with `property` and the caller's location unless `holds`. `detail` (an error message,
// the offending value) is printed beside it to make the report actionable.
inline void require(bool holds, std::string_view property, std::string_view detail = {},
                    std::source_location where = std::source_location::current()) {
  if (holds) return;
  std::fprintf(stderr, "fuzz property broken at %s:%u: %.*s\n", where.file_name(),
               static_cast<unsigned>(where.line()), static_cast<int>(property.size()),
               property.data());
  if (!detail.empty()) {
    std::fprintf(stderr, "  detail: %.*s\n", static_cast<int>(detail.size()), detail.data());
  }
  std::abort();
}

}  // namespace deedkit::fuzz
