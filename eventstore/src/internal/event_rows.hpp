#pragma once

// How events are read out of deedkit.events: one column list and one row parser, shared by
// every read so that they cannot drift apart.

#include <pqxx/row>

#include "deedkit/core/error.hpp"
#include "deedkit/eventstore/types.hpp"

namespace deedkit::internal {

// The select list every event read uses, in the order parse_event_row expects.
inline constexpr const char* kEventColumns =
    "e.global_position, e.transaction_id::text, e.stream_id, e.stream_version, e.event_id, "
    "e.event_type, e.schema_version, e.payload, e.metadata->>'correlation_id', "
    "e.metadata->>'causation_id', coalesce(e.metadata->>'principal', ''), "
    "(extract(epoch FROM e.recorded_at) * 1000000)::int8";

// Parses one row selected with kEventColumns. A row whose metadata holds ids that are not
// UUIDs is kDataLoss naming the event.
Result<RecordedEvent> parse_event_row(const pqxx::row& row);

}  // namespace deedkit::internal
