#include "database_config.hpp"

#include <cstdlib>

namespace deedkit::cli {

std::optional<std::string> configured_database(const std::string& flag_value) {
  if (!flag_value.empty()) return flag_value;
  if (const char* url = std::getenv("DEEDKIT_DATABASE_URL"); url && *url) return std::string(url);
  for (const char* name : {"PGHOST", "PGDATABASE", "PGSERVICE", "PGPORT", "PGUSER"}) {
    if (const char* value = std::getenv(name); value && *value) return std::string();
  }
  return std::nullopt;
}

}  // namespace deedkit::cli
