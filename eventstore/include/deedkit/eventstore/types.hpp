#pragma once

// The values the event store takes and gives: events to append, recorded events, expected
// versions and positions in the global log.

#include <compare>
#include <cstdint>
#include <optional>
#include <string>

#include "deedkit/core/clock.hpp"
#include "deedkit/core/ids.hpp"

namespace deedkit {

// Who and what caused an event. Stored in deedkit.events.metadata as JSON.
struct EventMetadata {
  std::optional<Uuid> correlation_id;  // the request or conversation this belongs to
  std::optional<Uuid> causation_id;    // the command (or event) that directly caused it
  std::string principal;               // the authenticated caller; empty when anonymous

  friend bool operator==(const EventMetadata&, const EventMetadata&) = default;
};

// An event about to be appended. `payload` is opaque bytes (deedkit writes Protobuf).
struct NewEvent {
  Uuid event_id;
  // The Protobuf full message name, e.g. deedkit.realestate.v1.AssetRegistered.
  std::string event_type;
  int schema_version = 1;
  std::string payload;
  EventMetadata metadata;
};

// A position in the global log, in commit-safe order: (transaction_id, global_position).
// Readers checkpoint this pair; see docs/ordering.md for why the position alone is not enough.
struct LogPosition {
  std::uint64_t transaction_id = 0;
  std::int64_t global_position = 0;

  static LogPosition start() { return {}; }
  friend auto operator<=>(const LogPosition&, const LogPosition&) = default;
  std::string to_string() const;  // "<transaction_id>/<global_position>"
};

struct RecordedEvent {
  std::int64_t global_position = 0;
  std::uint64_t transaction_id = 0;
  std::string stream_id;
  std::int64_t stream_version = 0;
  Uuid event_id{};
  std::string event_type;
  int schema_version = 1;
  std::string payload;
  EventMetadata metadata;
  Timestamp recorded_at{};

  LogPosition log_position() const { return {transaction_id, global_position}; }
};

// What an append requires of the stream's current version.
class ExpectedVersion {
 public:
  static ExpectedVersion any() { return ExpectedVersion(kAny); }
  static ExpectedVersion no_stream() { return ExpectedVersion(kNoStream); }
  static ExpectedVersion stream_exists() { return ExpectedVersion(kStreamExists); }
  // Exactly `version` events exist; exact(0) is the same as no_stream(). A negative version
  // makes an expectation that every append refuses (kInvalidArgument), never one of the
  // special kinds above.
  static ExpectedVersion exact(std::int64_t version) {
    if (version < 0) return ExpectedVersion(kInvalid);
    return ExpectedVersion(version == 0 ? kNoStream : version);
  }

  bool is_valid() const { return value_ != kInvalid; }
  bool is_any() const { return value_ == kAny; }
  bool is_no_stream() const { return value_ == kNoStream; }
  bool is_stream_exists() const { return value_ == kStreamExists; }
  bool is_exact() const { return value_ > 0; }
  std::int64_t exact_version() const { return value_; }
  // The wire encoding the append statement understands (negative codes, or the version).
  std::int64_t encoded() const { return value_; }
  std::string to_string() const;

  friend bool operator==(const ExpectedVersion&, const ExpectedVersion&) = default;

 private:
  static constexpr std::int64_t kAny = -1;
  static constexpr std::int64_t kNoStream = -2;
  static constexpr std::int64_t kStreamExists = -3;
  static constexpr std::int64_t kInvalid = -4;
  explicit ExpectedVersion(std::int64_t value) : value_(value) {}
  std::int64_t value_;
};

struct AppendResult {
  std::int64_t first_version = 0;  // version of the first event appended (or already stored)
  std::int64_t last_version = 0;   // the stream's version after the append
  // True when every event was already stored at these positions with the same ids: a
  // retried append, recognised and not written twice.
  bool duplicate = false;
};

// The JSON stored in the metadata column: {"correlation_id":..,"causation_id":..,"principal":..}
std::string metadata_to_json(const EventMetadata& metadata);

// The category of a stream: the part of its id before the first '-' ("asset" in asset-<uuid>).
std::string stream_category(const std::string& stream_id);

}  // namespace deedkit
