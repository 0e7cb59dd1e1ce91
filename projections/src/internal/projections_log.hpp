#pragma once

// The projections module's logger, "projections": the default logger's sinks under its own
// name, registered so that spdlog::set_level reaches it too.

#include <spdlog/logger.h>

namespace deedkit::internal {

spdlog::logger& projections_log();

}  // namespace deedkit::internal
