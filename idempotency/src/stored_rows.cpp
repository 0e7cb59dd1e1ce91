#include "stored_rows.hpp"

#include <pqxx/binarystring>
#include <pqxx/except>

namespace deedkit::idempotency_rows {

std::string header_lines(const StoredResponse& response) {
  std::string lines;
  for (const auto& [name, value] : response.headers) {
    if (!lines.empty()) lines.push_back('\n');
    lines += name + ": " + value;
  }
  return lines;
}

namespace {

StoredResponse parse_response(const pqxx::row& row, int first) {
  StoredResponse response;
  response.status = row[first].as<int>();

  const std::string lines = row[first + 1].is_null() ? "" : row[first + 1].c_str();
  std::size_t start = 0;
  while (start < lines.size()) {
    std::size_t end = lines.find('\n', start);
    if (end == std::string::npos) end = lines.size();
    const std::string line = lines.substr(start, end - start);
    const std::size_t colon = line.find(": ");
    if (colon != std::string::npos) {
      response.headers.emplace_back(line.substr(0, colon), line.substr(colon + 2));
    }
    start = end + 1;
  }

  response.body = pqxx::binarystring(row[first + 2]).str();
  return response;
}

}  // namespace

Result<IdempotentResult> replay_or_mismatch(const pqxx::row& row, int first,
                                            const IdempotencyKey& key,
                                            std::string_view command_name,
                                            const RequestFingerprint& fingerprint) {
  const bool same_request = command_name == row[first].c_str() &&
                            fingerprint.hex == row[first + 1].c_str() &&
                            fingerprint.version == row[first + 2].as<int>();
  if (!same_request) {
    return fail(ErrorCode::kAlreadyExists,
                "Idempotency-Key '" + key.key + "' was already used for a different request (" +
                    row[first].c_str() + "); use a new key for a new request");
  }
  if (row[first + 3].is_null()) {
    return fail(ErrorCode::kInternal,
                "idempotency key '" + key.key + "' is stored without a response");
  }
  return IdempotentResult{parse_response(row, first + 3), true};
}

Result<void> validate_call(const IdempotencyKey& key, const IdempotencyOptions& options) {
  if (auto valid = validate_idempotency_key(key.key); !valid) return valid;
  if (options.wait_for_in_flight.count() < 1) {
    return fail(ErrorCode::kInvalidArgument,
                "the wait for an attempt in flight must be at least 1 ms");
  }
  return {};
}

bool is_lock_timeout(const std::exception& error) {
  const auto* sql = dynamic_cast<const pqxx::sql_error*>(&error);
  if (!sql) return false;
  // libpqxx 6.4 leaves sqlstate() empty for some error classes; the message is stable.
  return sql->sqlstate() == "55P03" ||
         std::string_view(sql->what()).find("lock timeout") != std::string_view::npos;
}

Error still_in_progress(const IdempotencyKey& key) {
  return Error{ErrorCode::kDeadlineExceeded,
               "a request with Idempotency-Key '" + key.key + "' is still in progress; "
               "retry later"};
}

}  // namespace deedkit::idempotency_rows
