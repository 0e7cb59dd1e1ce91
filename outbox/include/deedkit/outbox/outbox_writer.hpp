#pragma once

// Writes outbox rows (deedkit.outbox) for appended events, inside the caller's unit of work,
// so they commit exactly when the events do. One row per event; the event id is the
// message id the relay publishes with.

#include <cstdint>
#include <span>
#include <string>

#include "deedkit/core/error.hpp"
#include "deedkit/eventstore/types.hpp"
#include "deedkit/eventstore/unit_of_work.hpp"

namespace deedkit {

// Writes one row per event; `events[i]` was appended at `first_version + i`. One statement
// per 16 events. Fails as UnitOfWork maps database errors (the unit is then poisoned).
// Nothing checks that the events were appended, or that they have no outbox row yet: rows
// written twice for one event are published twice, one at a time, and JetStream keeps one
// copy within its duplicate window (docs/relay.md).
[[nodiscard]] Result<void> write_outbox_rows(UnitOfWork& unit, const std::string& stream_id,
                                             std::int64_t first_version,
                                             std::span<const NewEvent> events);

// The same rows as one INSERT ... SELECT from `appended`, the new rows of deedkit.events
// in a statement that appends them (CommandPlan::writes_from_appended).
const std::string& outbox_insert_from_appended_sql();

}  // namespace deedkit
