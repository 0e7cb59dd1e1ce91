#include "internal/relay_log.hpp"

#include <memory>

namespace deedkit::internal {

spdlog::logger& relay_log() {
  // spdlog hands loggers out as shared_ptr and its registry keeps one; this static keeps
  // ours alive for the process without looking it up by name on every line.
  static const std::shared_ptr<spdlog::logger> logger = [] {
    if (auto existing = spdlog::get("relay")) return existing;
    const auto& sinks = spdlog::default_logger()->sinks();
    auto created = std::make_shared<spdlog::logger>("relay", sinks.begin(), sinks.end());
    created->set_level(spdlog::default_logger()->level());
    spdlog::register_logger(created);
    return created;
  }();
  return *logger;
}

}  // namespace deedkit::internal
