#pragma once

// Where deedkit finds its database: --database, else DEEDKIT_DATABASE_URL, else the standard
// PG* variables when any is set.

#include <optional>
#include <string>

namespace deedkit::cli {

// Returns the URI to use ("" means: let libpq read the PG* variables), or nullopt when
// nothing is configured at all.
std::optional<std::string> configured_database(const std::string& flag_value);

}  // namespace deedkit::cli
