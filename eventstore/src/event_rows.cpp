#include "internal/event_rows.hpp"

#include <pqxx/binarystring>

#include "deedkit/core/json_text.hpp"

namespace deedkit::internal {

namespace {

Result<std::optional<Uuid>> optional_uuid(const pqxx::field& field, const char* what,
                                          const RecordedEvent& event) {
  if (field.is_null()) return std::nullopt;
  auto id = parse_uuid(field.c_str());
  if (!id) {
    return fail(ErrorCode::kDataLoss, std::string("event ") + to_string(event.event_id) +
                                          " in " + event.stream_id + " has a " + what +
                                          " that is not a UUID: '" + field.c_str() + "'");
  }
  return *id;
}

}  // namespace

Result<RecordedEvent> parse_event_row(const pqxx::row& row) {
  RecordedEvent event;
  event.global_position = row[0].as<std::int64_t>();
  event.transaction_id = std::stoull(row[1].c_str());
  event.stream_id = row[2].c_str();
  event.stream_version = row[3].as<std::int64_t>();
  event.event_id = *parse_uuid(row[4].c_str());  // the column is uuid: always canonical
  event.event_type = row[5].c_str();
  event.schema_version = row[6].as<int>();
  const pqxx::binarystring payload(row[7]);
  event.payload = payload.str();

  auto correlation = optional_uuid(row[8], "correlation_id", event);
  if (!correlation) return std::unexpected(correlation.error());
  auto causation = optional_uuid(row[9], "causation_id", event);
  if (!causation) return std::unexpected(causation.error());
  event.metadata.correlation_id = *correlation;
  event.metadata.causation_id = *causation;
  event.metadata.principal = row[10].c_str();

  event.recorded_at = Timestamp(std::chrono::microseconds(row[11].as<std::int64_t>()));
  return event;
}

}  // namespace deedkit::internal

namespace deedkit {

std::string metadata_to_json(const EventMetadata& metadata) {
  std::string json = "{";
  if (metadata.correlation_id) {
    json += "\"correlation_id\":\"" + to_string(*metadata.correlation_id) + "\",";
  }
  if (metadata.causation_id) {
    json += "\"causation_id\":\"" + to_string(*metadata.causation_id) + "\",";
  }
  json += "\"principal\":";
  append_json_string(json, metadata.principal);
  json += "}";
  return json;
}

}  // namespace deedkit
