#pragma once

// with_idempotency: run a command at most once per idempotency key.
//
// The claim on (scope, key), everything the command writes (events, outbox rows) and the
// response to replay are committed in one PostgreSQL transaction, or none of them are:
//
//  - new key: the claim is inserted, the command runs in the same unit, its response is
//    stored, one commit.
//  - completed key, same request: the stored response comes back marked as a replay; the
//    command does not run.
//  - completed key, different request (fingerprint or command differs): kAlreadyExists, and
//    nothing runs. (The HTTP layer answers 422.)
//  - key held by an attempt still running: the claim insert waits on that transaction's
//    row lock, bounded by `wait_for_in_flight`. If the first commits, its response is
//    replayed; if it rolls back, this attempt runs as a new key; past the bound,
//    kDeadlineExceeded (HTTP 409). Two attempts with one key never run at the same time.
//  - a failed attempt (error, crash, lost connection) rolls back its claim with everything
//    else: no key is ever left "in progress".
//
// Thread-safety: free functions; safe from any thread.

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <google/protobuf/message.h>

#include "deedkit/core/error.hpp"
#include "deedkit/eventstore/connection_pool.hpp"
#include "deedkit/eventstore/unit_of_work.hpp"

namespace deedkit {

// Checks a client's key: 1 to 255 printable ASCII characters (0x20..0x7e). kInvalidArgument
// otherwise, saying which rule it broke.
[[nodiscard]] Result<void> validate_idempotency_key(std::string_view key);

struct IdempotencyKey {
  std::string scope;  // the principal or tenant that owns the key
  std::string key;
};

// SHA-256 over the command name and the command's deterministic Protobuf encoding, so two
// JSON spellings of one command (field order, whitespace) fingerprint the same.
struct RequestFingerprint {
  static constexpr int kCurrentVersion = 1;
  std::string hex;
  int version = kCurrentVersion;
};
RequestFingerprint fingerprint_request(std::string_view command_name,
                                       const google::protobuf::Message& command);

// What a retry needs to answer byte for byte the same.
struct StoredResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. {"Location", "/v1/..."}
  std::string body;

  friend bool operator==(const StoredResponse&, const StoredResponse&) = default;
};

// What the command body returns: the response, and whether to store it. A business
// rejection is normally not stored (store = false: the claim rolls back and a retry runs
// again); a command may choose to store deterministic rejections so retries replay them.
struct CommandReply {
  StoredResponse response;
  bool store = true;
};

struct IdempotentResult {
  StoredResponse response;
  bool replayed = false;
};

// Called at named steps inside the transaction ("after_claim", "before_store_response",
// "before_commit"); returning an error aborts the attempt there. Tests inject faults
// through it; production leaves it empty.
using FaultHook = std::function<Result<void>(std::string_view step, UnitOfWork& unit)>;

struct IdempotencyOptions {
  // At least 1 ms (kInvalidArgument otherwise): 0 would mean "wait forever" to PostgreSQL.
  std::chrono::milliseconds wait_for_in_flight{5000};
  // Whole-unit attempts when the body reports kConflict or kAborted after poisoning its unit.
  int max_attempts = 4;
  FaultHook fault_hook;
};

using IdempotentBody = std::function<Result<CommandReply>(UnitOfWork& unit)>;

// Runs `body` at most once for `key` (see the table above). Errors from `body` pass through
// unchanged and store nothing.
[[nodiscard]] Result<IdempotentResult> with_idempotency(ConnectionPool& pool,
                                                        const IdempotencyKey& key,
                                                        std::string_view command_name,
                                                        const RequestFingerprint& fingerprint,
                                                        const IdempotentBody& body,
                                                        const IdempotencyOptions& options = {});

// Deletes keys older than `retention`, at most `batch_size` per transaction, oldest first,
// skipping rows another transaction has locked. Returns how many it deleted in total.
[[nodiscard]] Result<long long> purge_expired_idempotency_keys(ConnectionPool& pool,
                                                               std::chrono::seconds retention,
                                                               int batch_size = 1000);

}  // namespace deedkit
