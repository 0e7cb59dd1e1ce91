#pragma once

// Stored aggregate states (deedkit.snapshots), so long streams load quickly. A snapshot is
// only an optimisation: load() treats a missing, outdated or unreadable one as absent.
//
// Thread-safety: stateless; safe to share. Every call runs in the caller's UnitOfWork.

#include <cstdint>
#include <optional>
#include <string>

#include "deedkit/core/error.hpp"
#include "deedkit/eventstore/unit_of_work.hpp"

namespace deedkit {

struct Snapshot {
  std::int64_t stream_version = 0;
  std::string state;  // Protobuf encoding of the aggregate's state
};

class SnapshotStore {
 public:
  // The stream's snapshot if one exists with this exact schema version, else nullopt.
  [[nodiscard]] Result<std::optional<Snapshot>> load(UnitOfWork& unit,
                                                     const std::string& stream_id,
                                                     int state_schema_version) const;

  // Stores (or replaces) the stream's snapshot.
  [[nodiscard]] Result<void> save(UnitOfWork& unit, const std::string& stream_id,
                                  const std::string& state_type, int state_schema_version,
                                  const Snapshot& snapshot) const;
};

}  // namespace deedkit
