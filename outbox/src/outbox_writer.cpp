#include "deedkit/outbox/outbox_writer.hpp"

#include <algorithm>

#include "deedkit/eventstore/binary_params.hpp"

namespace deedkit {

namespace {

constexpr std::size_t kRowsPerStatement = 16;

std::string insert_sql(std::size_t rows) {
  std::string sql =
      "INSERT INTO deedkit.outbox (event_id, stream_id, stream_version, event_type, "
      "schema_version, payload, metadata) VALUES ";
  for (std::size_t i = 0; i < rows; ++i) {
    const std::size_t base = 1 + i * 7;
    if (i > 0) sql += ", ";
    sql += "($" + std::to_string(base) + "::uuid, $" + std::to_string(base + 1) + "::text, $" +
           std::to_string(base + 2) + "::int8, $" + std::to_string(base + 3) + "::text, $" +
           std::to_string(base + 4) + "::int4, $" + std::to_string(base + 5) + "::bytea, $" +
           std::to_string(base + 6) + "::jsonb)";
  }
  return sql;
}

}  // namespace

Result<void> write_outbox_rows(UnitOfWork& unit, const std::string& stream_id,
                               std::int64_t first_version, std::span<const NewEvent> events) {
  try {
    for (std::size_t offset = 0; offset < events.size(); offset += kRowsPerStatement) {
      const auto chunk =
          events.subspan(offset, std::min(kRowsPerStatement, events.size() - offset));
      const std::string statement = "deedkit_outbox_insert_" + std::to_string(chunk.size());
      unit.lease().ensure_prepared(statement, insert_sql(chunk.size()));

      BinaryParams params;
      for (std::size_t i = 0; i < chunk.size(); ++i) {
        const NewEvent& event = chunk[i];
        params.uuid(event.event_id)
            .text(stream_id)
            .int8(first_version + static_cast<std::int64_t>(offset + i))
            .text(event.event_type)
            .int4(event.schema_version)
            .bytea(event.payload)
            .jsonb(metadata_to_json(event.metadata));
      }
      unit.tx().exec_prepared(statement, params.dynamic());
    }
    return {};
  } catch (const std::exception&) {
    return std::unexpected(unit.fail_with_current_exception("write outbox rows for " +
                                                            stream_id));
  }
}

const std::string& outbox_insert_from_appended_sql() {
  static const std::string sql =
      "INSERT INTO deedkit.outbox (event_id, stream_id, stream_version, event_type, "
      "schema_version, payload, metadata) SELECT event_id, stream_id, stream_version, "
      "event_type, schema_version, payload, metadata FROM appended ORDER BY stream_version";
  return sql;
}

}  // namespace deedkit
