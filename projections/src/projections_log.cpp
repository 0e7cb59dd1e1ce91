#include "internal/projections_log.hpp"

#include <spdlog/spdlog.h>

namespace deedkit::internal {

spdlog::logger& projections_log() {
  // The registry shares ownership; holding our own reference keeps the logger alive even if
  // someone calls spdlog::drop_all().
  static const std::shared_ptr<spdlog::logger> logger = [] {
    if (auto registered = spdlog::get("projections")) return registered;
    auto created = spdlog::default_logger()->clone("projections");
    spdlog::register_logger(created);
    return created;
  }();
  return *logger;
}

}  // namespace deedkit::internal
