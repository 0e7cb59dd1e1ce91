#pragma once

// One pending row of deedkit.outbox as the relay reads it.

#include <cstdint>
#include <string>

namespace deedkit::internal {

// The number of partitions the outbox is split into (sql/0004_outbox.sql: hashtext & 63).
inline constexpr int kOutboxPartitions = 64;

struct OutboxRow {
  std::int64_t outbox_id = 0;
  std::string event_id;  // canonical lower-case UUID text; the message id
  std::string stream_id;
  std::int64_t stream_version = 0;
  std::string event_type;
  int schema_version = 1;
  std::string payload;
  std::string correlation_id;  // empty when the event has none
  std::string causation_id;
  std::string principal;
  std::int64_t recorded_at_micros = 0;  // since the Unix epoch
  int attempts = 0;                     // failed publish attempts recorded so far
  int partition = 0;
};

}  // namespace deedkit::internal
