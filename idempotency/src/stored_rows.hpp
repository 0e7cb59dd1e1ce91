#pragma once

// What both paths of with_idempotency share: how a stored response is written as columns,
// read back and compared with the request that asks for it.

#include <exception>
#include <string>
#include <string_view>

#include <pqxx/row>

#include "deedkit/idempotency/idempotency.hpp"

namespace deedkit::idempotency_rows {

// The stored row of ($1 scope, $2 key) in the six columns replay_or_mismatch reads.
inline const std::string kStoredRowSql =
    "SELECT command_name, fingerprint, fingerprint_version, response_status, "
    "array_to_string(response_headers, E'\\n'), response_body "
    "FROM deedkit.idempotency_keys WHERE scope = $1::text AND idempotency_key = $2::text";

// The stored headers as "Name: value" lines, the form response_headers holds them in.
std::string header_lines(const StoredResponse& response);

// The stored row in six columns from `first`: command_name, fingerprint,
// fingerprint_version, response_status, header lines, response_body. A replay when it was
// stored for the same command and fingerprint; kAlreadyExists for another request.
Result<IdempotentResult> replay_or_mismatch(const pqxx::row& row, int first,
                                            const IdempotencyKey& key,
                                            std::string_view command_name,
                                            const RequestFingerprint& fingerprint);

// The key is valid and the wait is bounded (PostgreSQL reads a lock_timeout of 0 as "wait
// forever"). kInvalidArgument otherwise.
Result<void> validate_call(const IdempotencyKey& key, const IdempotencyOptions& options);

// A lock wait that ran out (lock_timeout, SQLSTATE 55P03).
bool is_lock_timeout(const std::exception& error);

// The error for a key whose first attempt outlasted the bounded wait.
Error still_in_progress(const IdempotencyKey& key);

}  // namespace deedkit::idempotency_rows
