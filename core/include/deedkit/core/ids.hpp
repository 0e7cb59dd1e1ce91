#pragma once

// Identifiers are UUIDs (Boost.Uuid). New ids are random (version 4) from a per-thread
// generator, so generating one takes no lock.

#include <optional>
#include <string>
#include <string_view>

#include <boost/uuid/uuid.hpp>

namespace deedkit {

using Uuid = boost::uuids::uuid;

// A fresh random UUID. Thread-safe.
Uuid new_uuid();

// Parses the canonical 36-character form (8-4-12 hex groups, either case). Returns nullopt
// for anything else: braces, missing dashes, stray characters, or the wrong length.
std::optional<Uuid> parse_uuid(std::string_view text);

// Lower-case canonical form.
std::string to_string(const Uuid& id);

}  // namespace deedkit
