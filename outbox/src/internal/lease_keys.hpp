#pragma once

// The advisory lock keys the relays use, in PostgreSQL's two-int4 form (classid, objid).
// Advisory locks are per database, so relays of different databases never meet.

#include <cstdint>

namespace deedkit::internal {

// (kPartitionLockClass, p) is held by the relay that publishes partition p.
inline constexpr std::int32_t kPartitionLockClass = 0x444b5030;  // "DKP0"
// (kMemberLockClass, slot) is held by each running relay: counting them counts the relays.
inline constexpr std::int32_t kMemberLockClass = 0x444b5231;  // "DKR1"
inline constexpr int kMemberSlots = 256;

// The application_name of a relay's lease connection, so pg_stat_activity shows it.
inline constexpr const char* kRelayApplicationName = "deedkit-relay";

}  // namespace deedkit::internal
